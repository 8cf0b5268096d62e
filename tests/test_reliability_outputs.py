"""Reliability, issue 15: outputs, disks and model configs (cases O1-O24 of docs/reliability.md).

What a command writes must never cost the user an input or a file of theirs, a full or
read-only disk must be one line and a documented exit code (never a traceback or a
SIGBUS), a malformed ``config.json`` one line naming it, and ``evaluate`` must neither
crash on a plot nor merge or clobber reports silently.

A full disk is injected at the write layer (the tests must run without root tricks):
``os.posix_fallocate`` raising ENOSPC where ``prepare`` reserves its arrays, and the
temporary file of every atomic write opened on ``/dev/full`` (whose writes fail with
ENOSPC).  A read-only directory does not stop root, so EROFS is injected into the
write probes as well.  One test runs ``prepare`` on a real 4 MiB tmpfs where mounting one
is permitted (skipped elsewhere).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _faults as F
import pytest
from _models import make_tiny_model
from _tiny_dataset import make_tiny_dataset
from test_reliability import EX, Run, assert_usage_error, s2s, s2s_process

from survey2survey.errors import ModelError, OutputExistsError
from survey2survey.model import load_model

REAL = ["--a", EX / "sdss", "--b", EX / "cfht", "-q", "-j", "1"]


def _tree(d: Path) -> dict[str, bytes]:
    """Every file under ``d`` and its bytes."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def assert_one_error(run: Run, code: int, *fragments: str) -> None:
    """Exit ``code``, one ``s2s: error:`` line on stderr with ``fragments``, no traceback."""
    assert run.code == code, run.text
    assert "Traceback" not in run.text, run.text
    errors = [line for line in run.err.splitlines() if line.startswith("s2s: error: ")]
    assert len(errors) == 1, run.err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


@pytest.fixture
def inputs(tmp_path) -> Path:
    """A copy of the example cutouts: data/sdss, data/cfht (8 pairs), data/notes.txt."""
    data = tmp_path / "data"
    shutil.copytree(EX / "sdss", data / "sdss")
    shutil.copytree(EX / "cfht", data / "cfht")
    (data / "notes.txt").write_text("observing log")
    return data


@pytest.fixture
def full_disk(monkeypatch):
    """Every atomic write (and prepare's array reservation) fails with ENOSPC."""
    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full not available")
    real_fdopen = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        if "w" in mode:  # the temporary file of survey2survey.atomic: its writes now fail
            os.close(fd)
            return open("/dev/full", mode, *args, **kwargs)
        return real_fdopen(fd, mode, *args, **kwargs)

    def posix_fallocate(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", fdopen)
    monkeypatch.setattr(os, "posix_fallocate", posix_fallocate)


@pytest.fixture
def read_only(monkeypatch):
    """The probes that check an output directory can be written say EROFS (root ignores modes)."""

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)


# --- prepare: never over an input, --overwrite removes only its own files ----------------------------


@pytest.mark.parametrize("where", ["an_input_dir", "holds_inputs", "a_link_to_an_input_dir"])
def test_prepare_refuses_an_output_that_is_or_holds_an_input(inputs, capsys, where):
    out = {"an_input_dir": inputs / "sdss", "holds_inputs": inputs, "a_link_to_an_input_dir": inputs / "link"}[where]
    if where == "a_link_to_an_input_dir":  # O1, O2
        out.symlink_to(inputs / "sdss")
    before = _tree(inputs)
    run = s2s(capsys, "prepare", "--a", inputs / "sdss", "--b", inputs / "cfht", "--out", out, "--overwrite", "-q",
              "-j", "1")
    assert_usage_error(run, f"{out}: is or contains the input", "prepare never writes over its inputs")
    assert _tree(inputs) == before
    assert not [p for p in inputs.parent.rglob(".*partial*")]


def test_prepare_into_a_directory_inside_an_input(inputs, capsys):  # O3
    out = inputs / "sdss" / "ds"
    for _ in range(2):  # the second run scans the directory that now holds the dataset
        run = s2s(capsys, "prepare", "--a", inputs / "sdss", "--b", inputs / "cfht", "--out", out, "--overwrite",
                  "-q", "-j", "1")
        assert run.code == 0, run.text
        counts = json.loads((out / "dataset.json").read_text())["counts"]
        assert (counts["inputs_a"], counts["inputs_b"]) == (8, 8)


def test_prepare_overwrite_replaces_only_its_own_files(tmp_path, capsys):  # O4
    out = tmp_path / "ds"
    run = s2s(capsys, "prepare", *REAL, "--out", out, "--regrid")
    assert run.code == 0 and (out / "train_b_on_a.npy").exists()
    (out / "notes.txt").write_text("mine")
    (out / "plots").mkdir()
    (out / "plots" / "a.png").write_bytes(b"png")
    run = s2s(capsys, "prepare", *REAL, "--out", out, "--overwrite", "--n-test", "2")
    assert run.code == 0, run.text
    assert (out / "notes.txt").read_text() == "mine" and (out / "plots" / "a.png").read_bytes() == b"png"
    assert not list(out.glob("*_b_on_a.npy"))  # the earlier run's regridded arrays went with it
    assert json.loads((out / "dataset.json").read_text())["counts"]["test"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]


def test_prepare_overwrite_never_replaces_a_file_it_did_not_write(tmp_path, capsys):  # O5
    out = tmp_path / "ds"
    out.mkdir()
    (out / "manifest.csv").write_text("the user's own manifest")
    run = s2s(capsys, "prepare", *REAL, "--out", out, "--overwrite")
    assert_usage_error(run, f"{out / 'manifest.csv'}: exists and was not written by s2s")
    assert _tree(out) == {"manifest.csv": b"the user's own manifest"}


# --- prepare on a full disk --------------------------------------------------------------------------------


def test_prepare_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys, full_disk):  # O6
    out = tmp_path / "ds"
    run = s2s(capsys, "prepare", *REAL, "--out", out)
    assert_one_error(run, 1, f"{out}/unpaired_a.npy: cannot write output (No space left on device)")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_prepare_refuses_a_dataset_larger_than_the_free_space(tmp_path, capsys, monkeypatch):  # O7
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20))
    out = tmp_path / "ds"
    run = s2s(capsys, "prepare", *REAL, "--out", out)
    assert_usage_error(run, f"{out}: the dataset needs at least 3.4 MiB, only 1.0 MiB free")
    assert list(tmp_path.iterdir()) == []


def test_prepare_on_a_real_full_file_system(tmp_path):  # O8
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        # 3.6 MiB of unpaired arrays fit; the train/test copies do not (a SIGBUS before the fix)
        run = s2s_process("prepare", *REAL, "--out", mnt / "ds")
        assert_one_error(run, 1, f"{mnt / 'ds'}/", "cannot write output (No space left on device)")
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)])


def test_prepare_simulate_on_a_full_disk_with_workers(tmp_path, capsys, full_disk):  # O24
    # the workers' CutoutError crosses the process pool pickled (it used to break the pool)
    out = tmp_path / "sim"
    run = s2s(capsys, "prepare", "--simulate", "2", "--out", out, "-q", "-j", "2")
    assert_one_error(run, 1, f"{out}/", ".fits: cannot write output (No space left on device)")
    assert ".partial" not in run.err and list(tmp_path.iterdir()) == []
    error = pickle.loads(pickle.dumps(OutputExistsError(out / "a.fits")))
    assert type(error) is OutputExistsError and error.path == out / "a.fits" and "output exists" in str(error)


def test_prepare_with_every_input_refused_writes_nothing(tmp_path, capsys):  # O9
    a, b = tmp_path / "a", tmp_path / "b"
    expected = {F.CUTOUT_FAULTS[0].write(a, "sdss"): "empty file", F.CUTOUT_FAULTS[1].write(b, "cfht"): "not a FITS"}
    out = tmp_path / "ds"
    run = s2s(capsys, "prepare", "--a", a, "--b", b, "--out", out, "-q", "-j", "1")
    assert_one_error(run, 1, f"{out}: no dataset written: none of the 2 input cutout(s) is usable")
    for path, message in expected.items():
        lines = run.lines_naming(path)
        assert len(lines) == 1 and message in lines[0], run.text
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]


# --- export, emulate-noise, train on a full disk or a read-only directory ------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def tiny_ds(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "ds", n_unpaired=4, n_pairs=4, n_test=1, sizes=(24, 48))


def test_export_on_a_full_disk(tmp_path, capsys, model, full_disk):  # O10
    out = tmp_path / "onnx"
    run = s2s(capsys, "export", "--model", model, "--out", out, "--direction", "sdss->cfht")
    assert_one_error(run, 1, f"{out / 'sdss-to-cfht.onnx'}: cannot write output (No space left on device)")
    assert list(out.iterdir()) == []


def test_emulate_noise_on_a_full_disk(tmp_path, capsys, model, full_disk):  # O11
    out = tmp_path / "noise.fits"
    run = s2s(capsys, "emulate-noise", "--model", model, "--band", "r", "--n", "2", "--out", out)
    assert_one_error(run, 1, f"{out}: cannot write output (No space left on device)")
    assert list(tmp_path.iterdir()) == []


def test_train_on_a_full_disk(tmp_path, capsys, tiny_ds, full_disk):  # O12
    out = tmp_path / "m"
    run = s2s(capsys, "train", tiny_ds, "--method", "aecnn", "--out", out, "-n", "1", "--batch-size", "2", "-q")
    assert_one_error(run, 1, f"{out / 'train' / 'ckpt-00000001.pt'}: cannot write output (No space left on device)",
                     "free space, then --resume")
    assert not (out / "config.json").exists()


@pytest.mark.parametrize("command", ["export", "emulate-noise", "train"])
def test_read_only_output_directory(tmp_path, capsys, model, tiny_ds, read_only, command):  # O13
    args = {
        "export": ["export", "--model", model, "--out", tmp_path / "onnx"],
        "emulate-noise": ["emulate-noise", "--model", model, "--band", "r", "--n", "2", "--out", tmp_path / "n.fits"],
        "train": ["train", tiny_ds, "--method", "aecnn", "--out", tmp_path / "m", "-n", "1", "--batch-size", "2"],
    }[command]
    run = s2s(capsys, *args)
    assert_usage_error(run, "there (Read-only file system)")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


# --- config.json against its schema ------------------------------------------------------------------------

CONFIG_FAULTS = [  # O14-O17
    ("missing_generator", lambda c: c["directions"]["sdss->cfht"].update(generator="generator_nowhere"),
     "direction 'sdss->cfht' names generator 'generator_nowhere', not a module of the model"),
    ("missing_noise_emulator", lambda c: c["directions"]["sdss->cfht"].update(noise_emulator="ne_nowhere"),
     "direction 'sdss->cfht' names noise emulator 'ne_nowhere', not a module of the model"),
    ("directions_list", lambda c: c.update(directions=list(c["directions"])),
     "'directions' must be an object (\"src->dst\" -> its networks), not a list"),
    ("surveys_string", lambda c: c.update(surveys="sdss,cfht"),
     "'surveys' must be an object (side -> survey definition), not a string"),
    ("survey_definition_broken", lambda c: c["surveys"]["a"].update(pixel_scale=-1),
     "surveys.a: survey 'sdss': 'pixel_scale' must be a positive number of arcsec"),
]


@pytest.mark.parametrize("damage, message", [c[1:] for c in CONFIG_FAULTS], ids=[c[0] for c in CONFIG_FAULTS])
def test_malformed_config_json_is_one_line(tmp_path, capsys, model, damage, message):
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    config = json.loads((broken / "config.json").read_text())
    damage(config)
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="config.json: "):
        load_model(broken)
    F.write_good(tmp_path / "in" / "obj.fits", "sdss")
    for args in (["translate", tmp_path / "in", "--to", "cfht", "--out", tmp_path / "out"],
                 ["emulate-noise", "--band", "r", "--n", "1", "--out", tmp_path / "n.fits"],
                 ["export", "--out", tmp_path / "onnx"]):
        run = s2s(capsys, *args, "--model", broken)
        assert_usage_error(run, f"{broken / 'config.json'}: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "in"]


# --- evaluate ---------------------------------------------------------------------------------------------


def test_evaluate_a_set_against_itself_skips_the_plot_it_cannot_draw(tmp_path):  # O18
    out = tmp_path / "report"
    run = s2s_process("evaluate", "--pred", EX / "cfht", "--ref", EX / "cfht", "-o", out, "-q",
                      env={**os.environ, "PYTHONWARNINGS": "default"})
    assert run.code == 0, run.text
    assert "Traceback" not in run.text and "Warning:" not in run.err, run.err
    warnings = [line for line in run.err.splitlines() if line.strip()]
    assert warnings == ["s2s: warning: flux plot not drawn (ValueError: Data cannot be log-scaled because all values "
                        "are <= 0.); the measurements are in the report"], run.err
    report = json.loads((out / "metrics.json").read_text())
    assert "plot_flux" not in report["files"] and "plot_ssim" in report["files"]


def test_evaluate_refuses_one_name_for_two_sets(tmp_path, capsys):  # O19
    run = s2s(capsys, "evaluate", "--pred", f"a={EX / 'cfht'}", "--pred", f"a={EX / 'truth' / 'cfht'}",
              "--ref", EX / "cfht", "-o", tmp_path / "report", "-q", "--no-plots")
    assert_usage_error(run, "--pred name 'a' is given twice", "give each set of predictions its own name")
    assert not (tmp_path / "report").exists()


def test_evaluate_keeps_an_earlier_report_without_overwrite(tmp_path, capsys):  # O20
    out = tmp_path / "report"
    args = ["evaluate", "--pred", EX / "truth" / "cfht", "--ref", EX / "cfht", "-o", out, "-q", "-m", "flux,ssim"]
    assert s2s(capsys, *args, "--band", "r").code == 0
    (out / "README.txt").write_text("my notes")
    before = _tree(out)
    run = s2s(capsys, *args)
    assert_usage_error(run, f"{out}: holds an earlier report (metrics.json, per_image.csv, arrays.npz): "
                            "use --overwrite")
    assert _tree(out) == before
    run = s2s(capsys, *args, "--no-plots", "--overwrite")
    assert run.code == 0, run.text
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "arrays.npz", "metrics.json", "per_image.csv"]
    assert (out / "README.txt").read_text() == "my notes"


# --- smaller: tables in logs, survey files, batch sizes ---------------------------------------------------------


def test_tables_are_not_cut_in_a_log(tmp_path):  # O21
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    first, second = "translated_by_the_first_method", "translated_by_the_second_method"
    run = s2s_process("evaluate", "--pred", f"{first}={EX / 'truth' / 'cfht'}", "--pred", f"{second}={EX / 'cfht'}",
                      "--ref", EX / "cfht", "-m", "flux", "--band", "r", "--no-plots", "-q", "-o", tmp_path / "r",
                      env=env)
    assert run.code == 0, run.text
    header = next(line for line in run.out.splitlines() if "quantity" in line)
    assert first in header and second in header and len(header) > 80, run.out  # rich alone cuts at 80
    run = s2s_process("surveys", env=env)
    assert "x to nanomaggies" in run.out and "nanomaggy" in run.out, run.out


def test_survey_file_redefining_a_builtin_or_an_alias_warns(tmp_path, capsys):  # O22
    path = tmp_path / "surveys.toml"
    path.write_text(
        '[sdss]\nbands = ["u","g","r","i","z"]\npixel_scale = 0.4\ncutout_size = 64\nzero_point = 22.5\n'
        '[toy]\nbands = ["g"]\npixel_scale = 0.2\ncutout_size = 32\nzero_point = 27\naliases = ["cfhtls"]\n'
    )
    code = subprocess.run([sys.executable, "-m", "survey2survey", "--surveys", str(path), "surveys", "--json"],
                          capture_output=True, text=True)
    assert code.returncode == 0, code.stderr
    assert code.stderr.splitlines() == [
        f"s2s: warning: {path}: survey 'sdss' redefines the built-in survey of that name (this file's definition is used)",
        f"s2s: warning: {path}: survey 'toy' alias 'cfhtls' already names survey 'cfht' (it still means 'cfht')",
    ]
    assert json.loads(code.stdout)["sdss"]["pixel_scale"] == 0.4


def test_train_warns_about_a_batch_larger_than_the_dataset(tmp_path, capsys, tiny_ds):  # O23
    run = s2s(capsys, "train", tiny_ds, "--method", "aecnn", "--out", tmp_path / "m", "-n", "1", "--batch-size", "6",
              "-q")
    assert run.code == 0, run.text
    assert "s2s: warning: a batch of 6 pairs is larger than the dataset's 4 (train_a.npy): every batch repeats " \
           "images" in run.err, run.err
