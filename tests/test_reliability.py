"""Reliability, part 1 (issue 8): one bad input costs one line, a killed run costs nothing.

Every case runs the real command line: ``survey2survey.cli.main`` in this process (fast),
and a few in a subprocess, to prove that no traceback reaches a user.  Each bad input must
give exactly one line naming its file and the problem, the rest of the batch must be done,
and the exit code must say 0 (all done), 1 (some inputs failed) or 2 (misuse).  The bad
inputs come from ``tests/_faults.py``; ``docs/reliability.md`` lists every case.

Part 1 covers ``prepare``, ``evaluate``, the survey registry, the shared FITS reader and
model loading; part 2 extends it to ``train``, ``translate`` and ``emulate-noise``.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import _faults as F
import numpy as np
import pytest
from astropy.io import fits

from survey2survey.cli import main
from survey2survey.data import example_dir
from survey2survey.errors import ModelError
from survey2survey.fits_io import find_cutouts, make_wcs, verify_fits, write_cutout
from survey2survey.surveys import get_survey, list_surveys

EX = example_dir()  # 8 simulated SDSS/CFHT pairs
SDSS, CFHT = get_survey("sdss"), get_survey("cfht")


# --- running the command line ---------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def lines_naming(self, path: Path) -> list[str]:
        return [line for line in self.text.splitlines() if f"{path}:" in line]

    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def s2s(capsys, *args) -> Run:
    """``s2s ARGS`` in this process, output captured."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return Run(code, out, err)


def s2s_process(*args, env=None, timeout=120) -> Run:
    """``python -m survey2survey ARGS`` in a new process."""
    proc = subprocess.run([sys.executable, "-m", "survey2survey", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_each(run: Run, expected: dict[Path, str]) -> None:
    """Exactly one line names each bad file, and says its problem; no traceback anywhere."""
    assert "Traceback" not in run.text, run.text
    for path, message in expected.items():
        lines = run.lines_naming(path)
        assert len(lines) == 1, f"{path}: {len(lines)} lines\n{run.text}"
        assert message in lines[0], (message, lines[0])


def assert_usage_error(run: Run, *fragments: str) -> None:
    """Exit code 2 and a single ``s2s: error:`` line on stderr containing ``fragments``."""
    assert run.code == 2, run.text
    assert "Traceback" not in run.text, run.text
    lines = run.error_lines()
    assert len(lines) == 1 and lines[0].startswith("s2s: error: "), run.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def immutable_dir(tmp_path):
    """A directory nobody, root included, can create files in (``chattr +i``), or skip."""
    d = tmp_path / "immutable"
    d.mkdir()
    (d / "report").mkdir()
    if shutil.which("chattr") is None:
        pytest.skip("chattr not available")
    flag = subprocess.run(["chattr", "+i", str(d), str(d / "report")], capture_output=True)
    if flag.returncode != 0:
        pytest.skip(f"chattr +i not permitted here ({flag.stderr.decode().strip()})")
    try:
        probe = d / "probe"
        probe.mkdir()
    except OSError:
        pass
    else:  # the flag does not hold on this file system
        probe.rmdir()
        subprocess.run(["chattr", "-i", str(d), str(d / "report")])
        pytest.skip("chattr +i has no effect on this file system")
    yield d
    subprocess.run(["chattr", "-i", str(d), str(d / "report")])


# --- prepare: a batch with bad cutouts of both surveys ------------------------------------------------


def _write_faults(directory: Path, survey, faults) -> dict[Path, str]:
    return {fault.write(directory, survey): fault.message for fault in faults}


def _dataset_is_complete(out: Path) -> dict:
    """dataset.json, every array with its recorded shape, one manifest row per stored row."""
    info = json.loads((out / "dataset.json").read_text())
    rows = 0
    for name, entry in info["arrays"].items():
        arr = np.load(out / entry["file"], mmap_mode="r")
        assert list(arr.shape) == entry["shape"], name
        assert np.isfinite(arr[: min(len(arr), 4)]).all(), name
        rows += arr.shape[0] if "_b_on_a" not in name else 0
    with open(out / "manifest.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == rows
    assert (out / "report.csv").is_file()
    return info


def test_prepare_reports_each_bad_cutout_on_one_line_and_builds_the_rest(tmp_path, capsys):
    a, b = tmp_path / "sdss", tmp_path / "cfht"  # the 8 good example pairs, and bad files among them
    shutil.copytree(EX / "sdss", a)
    shutil.copytree(EX / "cfht", b)
    bad_a = _write_faults(a, SDSS, F.CUTOUT_FAULTS + F.PREPARE_ONLY_FAULTS)
    bad_b = _write_faults(b, CFHT, F.CUTOUT_FAULTS)
    # the NaN policy's other side: a few NaN/inf pixels are filled with 0 and the cutout kept
    F.few_nan_cutout(a, SDSS)
    F.few_nan_cutout(b, CFHT)
    out = tmp_path / "ds"
    run = s2s(capsys, "prepare", "--a", a, "--b", b, "--out", out, "-j", "1", "-q")

    assert run.code == 1
    expected = {**bad_a, **bad_b}
    assert_one_line_each(run, expected)
    assert f"skipped {len(expected)} input(s)" in run.out
    with open(out / "report.csv", newline="") as fh:
        report = {row["file"]: row["reason"] for row in csv.DictReader(fh)}
    assert set(report) == {str(p) for p in expected}
    for path, message in expected.items():
        assert message in report[str(path)]

    # the batch went on: the 8 example pairs and the NaN-filled pair are in the dataset
    info = _dataset_is_complete(out)
    counts = info["counts"]
    assert counts["train"] + counts["test"] == 9
    assert (counts["skipped_a"], counts["skipped_b"]) == (len(bad_a), len(bad_b))
    assert "warning: 2 cutout(s) had a few NaN/inf pixels, set to 0" in run.out
    with open(out / "manifest.csv", newline="") as fh:
        (row,) = [r for r in csv.DictReader(fh) if r["id"] == "few_nan" and r["domain"] == "a"]
    filled = np.load(out / f"{row['split']}_a.npy", mmap_mode="r")[int(row["index"])]
    assert np.all(filled[2, 10, 10:17] == 0) and np.all(filled[0, 0, :2] == 0)  # 0 stays 0 in model space
    assert np.isfinite(filled).all() and filled[2, 32, 32] > 0


def test_prepare_in_a_real_process_with_workers_no_traceback(tmp_path):
    # the faults that used to escape the reader as astropy/numpy exceptions, through the process pool
    faults = [f for f in F.CUTOUT_FAULTS if f.name in ("unparsable_card", "invalid_bitpix", "huge_declared_size",
                                                       "fifo", "zero_byte")]
    bad = _write_faults(tmp_path / "bad", SDSS, faults)
    run = s2s_process("prepare", "--a", EX / "sdss", "--a", tmp_path / "bad", "--b", EX / "cfht",
                      "--out", tmp_path / "ds", "-j", "2", "-q")
    assert run.code == 1
    assert_one_line_each(run, bad)
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["counts"]["train"] == 4


# --- prepare: misuse, exit code 2, nothing written ----------------------------------------------------

REAL = ["--a", "{ex}/sdss", "--b", "{ex}/cfht"]
PREPARE_MISUSE = [
    ("simulate_zero", ["--simulate", "0"], "nothing to simulate"),
    ("simulate_negative", ["--simulate", "-2"], "n_paired must be a non-negative integer, got -2"),
    ("mag_range_text", ["--simulate", "1", "--mag-range", "bright"], "--mag-range must be MIN,MAX"),
    ("mag_range_reversed", ["--simulate", "1", "--mag-range", "25,15"], "must satisfy 10 <= min <= max <= 30"),
    ("psf_unknown", ["--simulate", "1", "--psf", "gaussian"], "psf must be 'moffat' or 'kolmogorov'"),
    ("workers_zero", ["--simulate", "1", "-j", "0"], "--workers must be >= 1"),
    ("same_survey_twice", ["--simulate", "1", "--a-survey", "cfht"], "the two surveys must differ"),
    ("simulate_with_inputs", ["--simulate", "1", "--a", "{ex}/sdss"], "leave out --a and --b"),
    ("test_fraction_before_simulating", ["--simulate", "1", "--test-fraction", "1.5"],
     "--test-fraction must be within [0, 1], got 1.5"),
    ("seed_negative", REAL + ["--seed", "-1"], "--seed must be a non-negative integer, got -1"),
    ("seed_not_a_number", REAL + ["--seed", "abc"], "s2s prepare: Invalid value for '--seed'"),
    ("unknown_option", REAL + ["--colour", "red"], "No such option: --colour"),
    ("max_nan_fraction", REAL + ["--max-nan-fraction", "1.5"], "--max-nan-fraction must be within [0, 1)"),
    ("match_radius_nan", REAL + ["--match-radius", "nan"], "--match-radius must be a positive number"),
    ("n_test_and_fraction", REAL + ["--n-test", "2", "--test-fraction", "0.5"], "not both"),
    ("n_test_too_many", REAL + ["--n-test", "20"], "--n-test 20 but only 8 pair(s)"),
    ("unknown_survey", REAL + ["--a-survey", "hubble"], "unknown survey 'hubble'"),
    ("missing_b", ["--a", "{ex}/sdss"], "give the cutouts of both surveys"),
    ("input_missing", ["--a", "{tmp}/nowhere", "--b", "{ex}/cfht"], "{tmp}/nowhere: no such file or directory"),
    ("directory_without_cutouts", ["--a", "{tmp}/empty", "--b", "{ex}/cfht"], "no FITS cutouts found in {tmp}/empty"),
    ("catalog_missing", REAL + ["--catalog", "{tmp}/nocat.csv"], "{tmp}/nocat.csv: catalog not found"),
    ("catalog_malformed", REAL + ["--catalog", "{tmp}/positions.csv"], "{tmp}/positions.csv: no id column"),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in PREPARE_MISUSE], ids=[c[0] for c in PREPARE_MISUSE])
def test_prepare_misuse_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    F.bad_catalog(tmp_path)
    fill = {"ex": EX, "tmp": tmp_path}
    out = tmp_path / "out"
    run = s2s(capsys, "prepare", *[a.format(**fill) for a in args], "--out", out, "-q")
    assert_usage_error(run, message.format(**fill))
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temporary left either


def test_prepare_keeps_an_existing_output_without_overwrite(tmp_path, capsys):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    run = s2s(capsys, "prepare", *[a.format(ex=EX) for a in REAL], "--out", out, "-q", "-j", "1")
    assert_usage_error(run, f"{out}: output exists (use --overwrite to replace it)")
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def test_prepare_into_an_unwritable_place(tmp_path, capsys, immutable_dir):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    run = s2s(capsys, "prepare", *[a.format(ex=EX) for a in REAL], "--out", a_file / "ds", "-q", "-j", "1")
    assert_usage_error(run, f"{a_file}: is a file, not a directory")
    run = s2s(capsys, "prepare", *[a.format(ex=EX) for a in REAL], "--out", immutable_dir / "ds", "-q", "-j", "1")
    assert_usage_error(run, f"{immutable_dir}: cannot create ds there")
    assert sorted(p.name for p in immutable_dir.iterdir()) == ["report"]


# --- prepare killed with SIGKILL ------------------------------------------------------------------------


def _kill_midway(args, started, final: Path, whole, rng, attempts=5) -> float:
    """Run ``s2s ARGS`` in a new process group; once ``started()`` is true, wait a random
    0-0.3 s and SIGKILL the whole group (parent and workers), as a batch scheduler does.

    Returns the delay of a kill that landed before the output was renamed to ``final``.
    A run that got there first (finished, or killed while exiting) is tried again, after
    checking with ``whole(final)`` that what it left under the final name is complete.
    """
    for _ in range(attempts):
        shutil.rmtree(final, ignore_errors=True)
        proc = subprocess.Popen([sys.executable, "-m", "survey2survey", *map(str, args)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while proc.poll() is None and not started():
            assert time.monotonic() < deadline, "the run never started its output"
            time.sleep(0.005)
        delay = rng.uniform(0.0, 0.3)
        time.sleep(delay)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        if proc.returncode == -signal.SIGKILL and not final.exists():
            return delay
        assert final.exists(), f"the run ended with code {proc.returncode} and no output"
        whole(final)  # whenever it appears under its final name, the output is complete
    pytest.fail(f"the run always finished before it could be killed ({attempts} attempts)")


def _partials(directory: Path, name: str) -> list[Path]:
    return sorted(directory.glob(f".{name}.partial-*"))


def test_killed_prepare_leaves_no_partial_dataset_and_a_rerun_finishes(tmp_path, capsys):
    rng = random.Random()
    out = tmp_path / "ds"
    args = ["prepare", *[a.format(ex=EX) for a in REAL], "--out", out, "-j", "2", "-q", "--regrid"]
    delay = _kill_midway(args, lambda: bool(_partials(tmp_path, "ds")), out, _dataset_is_complete, rng)
    assert _partials(tmp_path, "ds"), f"killed {delay:.3f} s in: its work directory should be there (hidden)"

    run = s2s(capsys, *args)  # the very same command again
    assert run.code == 0, run.text
    info = _dataset_is_complete(out)
    assert not _partials(tmp_path, "ds"), "the re-run should remove the killed run's leftovers"
    clean = s2s(capsys, "prepare", *[a.format(ex=EX) for a in REAL], "--out", tmp_path / "clean", "-j", "1", "-q",
                "--regrid")
    assert clean.code == 0
    assert info["fingerprint"] == json.loads((tmp_path / "clean" / "dataset.json").read_text())["fingerprint"]


@pytest.mark.parametrize("stage", ["simulation", "dataset"])
def test_killed_prepare_simulate_reruns_to_a_valid_simulation(tmp_path, capsys, stage):
    rng = random.Random()
    sim = tmp_path / "sim"
    args = ["prepare", "--simulate", "3", "--unpaired-a", "1", "--unpaired-b", "1", "--out", sim, "-j", "1",
            "-q", "--regrid"]
    if stage == "simulation":
        started = lambda: bool(_partials(tmp_path, "sim"))  # noqa: E731
        delay = _kill_midway(args, started, sim, lambda p: (p / "simulation.json").is_file(), rng)
        assert _partials(tmp_path, "sim"), f"killed {delay:.3f} s in: its work directory should be there"
    else:
        started = lambda: sim.is_dir() and bool(_partials(sim, "dataset"))  # noqa: E731
        delay = _kill_midway(args, started, sim / "dataset", _dataset_is_complete, rng)
        # the simulation was complete, hence renamed into place; its dataset was not
        assert (sim / "simulation.json").is_file(), f"killed {delay:.3f} s in"

    run = s2s(capsys, *args)  # the very same command again
    assert run.code == 0, run.text
    if stage == "dataset":
        assert "this simulation is already complete; building its dataset" in run.out
    assert not _partials(tmp_path, "sim") and not _partials(sim, "dataset")
    _dataset_is_complete(sim / "dataset")
    files = sorted(sim.rglob("*.fits"))
    assert len(files) == 2 * (2 * 3 + 1 + 1)  # noisy and truth cutouts
    for path in files:  # checksums and FITS verification of every output
        verify_fits(path)
        with fits.open(path, checksum=True) as hdul:
            hdul.verify("exception")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("how", ["sigint_to_group", "sigterm_to_main", "sigterm_to_group", "sigterm_twice_to_main"])
def test_interrupted_prepare_with_workers_exits_as_interrupted_and_leaves_nothing(tmp_path, how):
    """Ctrl-C or SIGTERM during ``prepare --simulate -j 2``: the pool stops between results (not
    inside its locks, where a shutdown could hang), the workers leave the signals to the parent;
    a second SIGTERM stops at once, and the workers die with the parent."""
    from test_reliability_translate import _alive, _children, _kill_group

    sim = tmp_path / "sim"
    proc = subprocess.Popen(
        [sys.executable, "-m", "survey2survey", "prepare", "--simulate", "400", "--out", str(sim), "-j", "2", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's Ctrl-C meets it
    )
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while len(workers) < 2 or not _partials(tmp_path, "sim"):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the simulation never started"
            workers |= _children(proc.pid)
            time.sleep(0.01)
        time.sleep(0.5)
        if how == "sigint_to_group":
            os.killpg(proc.pid, signal.SIGINT)
        elif how == "sigterm_to_group":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            os.kill(proc.pid, signal.SIGTERM)
            if how == "sigterm_twice_to_main":
                time.sleep(0.05)
                os.kill(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        _kill_group(proc)
    assert proc.returncode == 130, (proc.returncode, stderr)
    said = ("s2s: error: interrupted again: stopped at once (temporary files may be left in the output directory)"
            if how == "sigterm_twice_to_main" else "s2s: error: interrupted")
    assert stderr.strip().splitlines() == [said], stderr
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [w for w in workers if _alive(w)], "workers left behind"
    assert not sim.exists()
    if how != "sigterm_twice_to_main":  # stopped at once: the next run removes it (row 56)
        assert not _partials(tmp_path, "sim")


# --- evaluate -------------------------------------------------------------------------------------------


@pytest.fixture
def eval_set(tmp_path):
    """References obj00..; good predictions for 3 of them, a bad one for each fault, a bad reference."""
    faults = F.CUTOUT_FAULTS
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    n = 3 + len(faults) + 1
    for i in range(n):
        F.write_good(ref / f"obj{i:02d}.fits", SDSS, seed=i, ra=150.0 + 0.01 * i)
    pred.mkdir()
    for i in range(3):  # named as s2s translate names its outputs
        shutil.copy(ref / f"obj{i:02d}.fits", pred / f"obj{i:02d}.sdss.fits")
    expected = {}
    for k, fault in enumerate(faults, start=3):
        message = "differs from the reference's 64x64 px" if fault.name == "wrong_size" else fault.message
        expected[fault.write(pred, SDSS, stem=f"obj{k:02d}")] = message
    # a good prediction whose reference is broken: the line names the reference
    bad_ref = n - 1
    shutil.copy(ref / f"obj{bad_ref:02d}.fits", pred / f"obj{bad_ref:02d}.fits")
    (ref / f"obj{bad_ref:02d}.fits").write_bytes(b"")
    expected[ref / f"obj{bad_ref:02d}.fits"] = "empty file (0 bytes)"
    # a file that reads well but has no reference (no such id, no WCS)
    write_cutout(pred / "stray.fits", F.good_cube(SDSS, 99), SDSS)
    expected[pred / "stray.fits"] = "no reference matched"
    return ref, pred, expected


def test_evaluate_reports_each_bad_file_on_one_line_and_measures_the_rest(eval_set, tmp_path, capsys):
    ref, pred, expected = eval_set
    run = s2s(capsys, "evaluate", "--pred", f"ours={pred}", "--ref", ref, "--metrics", "flux,ssim", "--band", "r",
              "--no-plots", "-q", "-o", tmp_path / "report")
    assert run.code == 1
    assert_one_line_each(run, expected)
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert report["matching"]["ours"]["pairs_measured"] == 3
    assert report["results"]["ours"]["r"]["n_images"] == 3
    assert report["results"]["ours"]["r"]["flux"]["per_image"]  # measured, not empty
    failed = {f["file"] for f in report["failures"]}
    assert failed == {str(p) for p in expected if p.name != "stray.fits"}
    # a reference whose prediction failed is not also listed as "without a prediction"
    assert report["matching"]["ours"]["reference_without_pred"] == []


def test_evaluate_in_a_real_process_no_traceback(eval_set, tmp_path):
    ref, pred, expected = eval_set
    run = s2s_process("evaluate", "--pred", pred, "--ref", ref, "--metrics", "flux", "--no-plots", "-q",
                      "-o", tmp_path / "report")
    assert run.code == 1
    assert_one_line_each(run, expected)


def test_evaluate_keeps_few_nan_pixels_masked(tmp_path, capsys):
    F.write_good(tmp_path / "ref" / "few_nan.fits", SDSS, seed=11, ra=152.0)
    F.few_nan_cutout(tmp_path / "pred", SDSS)
    run = s2s(capsys, "evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--metrics", "flux",
              "--no-plots", "-q", "-o", tmp_path / "report")
    assert run.code == 0, run.text
    with open(tmp_path / "report" / "per_image.csv", newline="") as fh:
        masked = {row["band"]: int(row["n_masked"]) for row in csv.DictReader(fh)}
    assert masked == {"u": 2, "g": 0, "r": 7, "i": 0, "z": 0}


EVALUATE_MISUSE = [
    ("pred_missing", ["--pred", "{tmp}/nowhere", "--ref", "{ex}/cfht"], "{tmp}/nowhere: no such file or directory"),
    ("ref_missing", ["--pred", "{ex}/truth/cfht", "--ref", "{tmp}/nowhere"], "{tmp}/nowhere: no such file"),
    ("pred_without_cutouts", ["--pred", "{tmp}/empty", "--ref", "{ex}/cfht"], "no FITS cutouts found in {tmp}/empty"),
    ("ref_without_cutouts", ["--pred", "{ex}/truth/cfht", "--ref", "{tmp}/empty"], "no FITS cutouts found"),
    ("unknown_metric", ["-m", "flux,psnr"], "unknown metric(s) psnr"),
    ("metric_needs_truth", ["-m", "noise"], "need the noise-free images: give --truth DIR"),
    ("unknown_band", ["--band", "y"], "unknown band 'y' for survey cfht"),
    ("unknown_survey", ["--survey", "hubble"], "unknown survey 'hubble'"),
    ("match_radius_nan", ["--match-radius", "nan"], "--match-radius must be a positive number, got nan"),
    ("match_radius_negative", ["--match-radius", "-1"], "--match-radius must be a positive number, got -1.0"),
    ("r_max_negative", ["--r-max", "-5"], "--r-max must be a positive number, got -5.0"),
    ("aperture_zero", ["--aperture", "0"], "--aperture must be a positive number, got 0.0"),
    ("jobs_zero", ["-j", "0"], "--jobs must be a positive integer, got 0"),
    ("jobs_not_a_number", ["-j", "two"], "s2s evaluate: Invalid value for '--jobs'"),
    ("nothing_matches", ["--pred", "{tmp}/elsewhere", "--ref", "{ex}/cfht"], "no prediction matched a reference"),
    ("report_under_a_file", ["-o", "{tmp}/a_file/report"], "cannot create the report directory"),
]
_DEFAULT_EVAL = ["--pred", "{ex}/truth/cfht", "--ref", "{ex}/cfht"]


@pytest.mark.parametrize("args, message", [c[1:] for c in EVALUATE_MISUSE], ids=[c[0] for c in EVALUATE_MISUSE])
def test_evaluate_misuse_is_one_line_exit_2(tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("x")
    F.write_good(tmp_path / "elsewhere" / "other_name.fits", CFHT, ra=10.0)  # no id nor position in common
    fill = {"ex": EX, "tmp": tmp_path}
    full = list(args) if "--pred" in args else _DEFAULT_EVAL + list(args)
    if "-o" not in full:
        full += ["-o", "{tmp}/report"]
    run = s2s(capsys, "evaluate", *[a.format(**fill) for a in full], "--no-plots", "-q")
    assert_usage_error(run, message.format(**fill))
    assert not (tmp_path / "report").exists()


def test_evaluate_into_an_unwritable_report_directory(tmp_path, capsys, immutable_dir):
    run = s2s(capsys, "evaluate", "--pred", EX / "truth" / "cfht", "--ref", EX / "cfht", "-m", "flux", "--no-plots",
              "-q", "-o", immutable_dir / "report")
    assert_usage_error(run, f"{immutable_dir / 'report'}/", "cannot write output")
    assert list((immutable_dir / "report").iterdir()) == []


# --- survey definitions -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(F.SURVEY_TOML_FAULTS))
def test_malformed_survey_file_is_one_line_exit_2(tmp_path, capsys, name):
    content, message = F.SURVEY_TOML_FAULTS[name]
    path = tmp_path / f"{name}.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = [s.name for s in list_surveys()]
    run = s2s(capsys, "--surveys", path, "surveys")
    assert_usage_error(run, f"{path}: ", message)
    assert [s.name for s in list_surveys()] == before  # nothing half-registered


def test_unreadable_survey_file(tmp_path, capsys):
    run = s2s(capsys, "--surveys", tmp_path / "nope.toml", "surveys")
    assert_usage_error(run, f"{tmp_path / 'nope.toml'}: cannot read survey file (No such file or directory)")
    run = s2s(capsys, "--surveys", tmp_path, "surveys")  # a directory where the file should be
    assert_usage_error(run, f"{tmp_path}: cannot read survey file (Is a directory)")


def test_malformed_survey_file_from_the_environment_stops_any_command(tmp_path):
    path = tmp_path / "surveys.toml"
    path.write_text(F.SURVEY_TOML_FAULTS["toml_aliases_not_list"][0])
    env = dict(os.environ, S2S_SURVEYS=str(path))
    run = s2s_process("prepare", "--simulate", "1", "--out", tmp_path / "sim", env=env)
    assert_usage_error(run, f"{path}: survey 'toy': 'aliases' must be a list of strings")
    assert not (tmp_path / "sim").exists()


# --- model loading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(F.MODEL_FAULTS))
def test_broken_model_is_refused_on_one_line_and_runs_no_code(tmp_path, name):
    from survey2survey.model import load_model

    damage, message = F.MODEL_FAULTS[name]
    model = F.make_model_dir(tmp_path)
    load_model(model)  # sound before the damage
    path = damage(model)
    with pytest.raises(ModelError) as info:
        load_model(model)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text
    assert not (tmp_path / F.PICKLE_MARKER).exists(), "a pickle in the model directory was executed"


def test_pickle_checkpoint_through_the_command_line(tmp_path):
    model = F.make_model_dir(tmp_path)
    F.pickle_weights(model)
    run = s2s_process("translate", EX / "sdss", "--to", "cfht", "--model", model, "--out", tmp_path / "out")
    assert run.code == 2 and "Traceback" not in run.text, run.text
    (line,) = run.error_lines()
    assert line.startswith(f"s2s: error: {model}/")
    assert not (tmp_path / F.PICKLE_MARKER).exists(), "a pickle in the model directory was executed"
    assert not list(tmp_path.rglob("*.fits")), "nothing is translated with a refused model"


# --- the reader on its own: every fault is a CutoutError naming the file -----------------------------------


@pytest.mark.parametrize("fault", F.CUTOUT_FAULTS, ids=[f.name for f in F.CUTOUT_FAULTS])
@pytest.mark.parametrize("survey", ["sdss", "cfht"])
def test_reader_refuses_each_fault_with_one_line(tmp_path, fault, survey):
    from survey2survey.errors import CutoutError
    from survey2survey.fits_io import read_cutout

    path = fault.write(tmp_path, survey)
    (source,) = find_cutouts([tmp_path], survey)
    s = get_survey(survey)
    with pytest.raises(CutoutError) as info:
        read_cutout(source, s, expected_size=s.cutout_size)
    assert info.value.path == path and fault.message in info.value.reason
    assert "\n" not in str(info.value)


def test_unusable_wcs_warning_is_one_line(tmp_path):
    from survey2survey.fits_io import read_cutout

    header = make_wcs(150.0, 2.0, SDSS.pixel_scale, (64, 64)).to_header()
    header["PC1_1"], header["PC2_2"] = 0.0, 0.0  # singular: wcslib explains over several lines
    fits.PrimaryHDU(F.good_cube(SDSS), header=header).writeto(tmp_path / "singular.fits")
    cutout = read_cutout(tmp_path / "singular.fits", SDSS)
    assert cutout.wcs is None
    (warning,) = [w for w in cutout.warnings if w.startswith("unusable WCS ignored")]
    assert "\n" not in warning and "singular" in warning


def test_unreadable_file_permission(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file: the FIFO and dangling-symlink faults cover unreadable inputs")
    from survey2survey.errors import CutoutError
    from survey2survey.fits_io import read_cutout

    path = F.write_good(tmp_path / "locked.fits", SDSS)
    path.chmod(0)
    with pytest.raises(CutoutError, match="permission denied"):
        read_cutout(path, SDSS)


# --- issue 15: real files (band keywords, units, WCS, layouts, paths) ------------------------------------


@pytest.mark.parametrize("fault", F.HEADER_FAULTS, ids=[f.name for f in F.HEADER_FAULTS])
@pytest.mark.parametrize("survey", ["sdss", "cfht"])
def test_reader_refuses_header_faults_with_one_line(tmp_path, fault, survey):
    from survey2survey.errors import CutoutError
    from survey2survey.fits_io import read_cutout

    path = fault.write(tmp_path, survey)
    (source,) = find_cutouts([tmp_path], survey)
    with pytest.raises(CutoutError) as info:
        read_cutout(source, survey)
    assert info.value.path == path and fault.message in info.value.reason
    assert "\n" not in str(info.value)


def test_prepare_reports_header_faults_on_one_line(tmp_path, capsys):
    a = tmp_path / "sdss"
    shutil.copytree(EX / "sdss", a)
    bad = _write_faults(a, SDSS, F.HEADER_FAULTS)
    run = s2s(capsys, "prepare", "--a", a, "--b", EX / "cfht", "--out", tmp_path / "ds", "-j", "1", "-q")
    assert run.code == 1
    assert_one_line_each(run, bad)
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["counts"]["skipped_a"] == len(bad)


@pytest.mark.parametrize("survey", ["sdss", "cfht"])
def test_real_file_headers_are_read_right(tmp_path, survey):
    from survey2survey.fits_io import read_cutout, rescale_wcs

    s = get_survey(survey)
    path, data = F.bands_run_together(tmp_path, s, "zirgu")
    cut = read_cutout(path, s)
    np.testing.assert_array_equal(cut.data, data)  # survey order, not file order
    assert cut.bands == s.bands and not [w for w in cut.warnings if "band" in w]

    path, data = F.in_nanojansky(tmp_path, s, "njy")
    cut = read_cutout(path, s)
    np.testing.assert_allclose(cut.data, data, rtol=1e-5, atol=1e-6 / s.flux_factor)
    (note,) = [w for w in cut.warnings if w.startswith("pixel values converted from BUNIT 'nJy'")]

    cut = read_cutout(F.zero_band(tmp_path, s, "padded"), s)
    assert [w for w in cut.warnings if w.startswith(f"band(s) {s.bands[0]} all zero")]

    cut = read_cutout(F.singular_cd(tmp_path, s, "singular"), s)
    assert cut.wcs is None
    (warning,) = [w for w in cut.warnings if w.startswith("unusable WCS ignored (singular CD/PC matrix")]

    # CD and PC in one header: what the output WCS says is where the input was
    cut = read_cutout(F.cd_and_pc(tmp_path, s, "cdpc"), s)
    n, m = s.cutout_size, 2 * s.cutout_size + 8
    out = rescale_wcs(cut.wcs, (n, n), (m, m))
    written = write_cutout(tmp_path / "out" / "cdpc.fits", np.zeros((s.n_bands, m, m), np.float32), s, wcs=out)
    back = read_cutout(written, s).wcs
    for (x_in, y_in), (x_out, y_out) in [(((n - 1) / 2,) * 2, ((m - 1) / 2,) * 2), ((-0.5, -0.5), (-0.5, -0.5)),
                                         ((n - 0.5, -0.5), (m - 0.5, -0.5)), ((n - 0.5, n - 0.5), (m - 0.5, m - 0.5))]:
        sky_in = cut.wcs.pixel_to_world(x_in, y_in)
        assert sky_in.separation(back.pixel_to_world(x_out, y_out)).arcsec < 1e-3


def test_compressed_cutouts_and_sdss_frames_are_found_and_read(tmp_path):
    from survey2survey.fits_io import read_cutout

    raw = tmp_path / "raw"
    raw.mkdir()
    files = {kind: F.compressed(raw, SDSS, f"obj_{kind}", kind) for kind in ("gz", "bz2", "fz")}
    sources = {s.path: s for s in find_cutouts([raw], SDSS)}
    assert set(sources) == {p for p, _ in files.values()}
    for path, data in files.values():
        np.testing.assert_array_equal(read_cutout(sources[path], SDSS).data, data)
    (bz2_only,) = find_cutouts([str(raw / "*.bz2")], SDSS)  # "raw/*.bz2"
    assert bz2_only.path == files["bz2"][0]

    frame, image = F.sdss_frame(tmp_path)
    cut = read_cutout(frame, partial=True)  # the survey from TELESCOP, the band from FILTER
    assert cut.survey.name == "sdss" and cut.bands == ("r",) and cut.pixel_scale == pytest.approx(0.396)
    np.testing.assert_array_equal(cut.data[0], image)
    from survey2survey.errors import CutoutError

    with pytest.raises(CutoutError, match="missing band"):  # the learned models need all five bands
        read_cutout(frame)


def test_survey_is_not_guessed_from_a_scale_three_times_off(tmp_path):
    from survey2survey.fits_io import detect_survey, pixel_scale_arcsec, read_cutout

    header = make_wcs(150.0, 2.0, 3 * SDSS.pixel_scale, (64, 64)).to_header()
    header["BANDS"] = "u,g,r,i,z"
    path = tmp_path / "binned.fits"
    fits.PrimaryHDU(F.good_cube(SDSS), header=header).writeto(path)
    cut = read_cutout(path)
    assert cut.survey is None and detect_survey(cut.header, cut.wcs) is None
    assert pixel_scale_arcsec(cut.wcs) == pytest.approx(1.188)


def test_non_ascii_input_paths_translate_and_name_the_input(tmp_path, capsys):
    from _models import method_model

    src = tmp_path / "gal\u00e9xies \u0394"
    src.mkdir()
    for i in range(2):
        F.write_good(src / f"obj{i}_\u00fc.fits", SDSS, seed=i, ra=150.0 + 0.01 * i)
    model = method_model(tmp_path / "aecnn", "aecnn")
    run = s2s(capsys, "translate", src, "--to", "cfht", "--model", model, "--out", tmp_path / "out", "--workers", "0",
              "-q")
    assert run.code == 0, run.text
    outputs = sorted((tmp_path / "out").glob("*.fits"))
    assert len(outputs) == 2
    for out in outputs:
        verify_fits(out)
        header = fits.getheader(out)
        assert "gal\\xe9xies \\u0394" in header["S2SSRC"] and header["S2SSRC"].isascii()
