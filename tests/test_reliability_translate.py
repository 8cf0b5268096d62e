"""Reliability of ``s2s translate`` on real files and real runs (issue 15, cases T1-T11).

What the adversarial trials broke in ``translate``: a user's file replaced, an input
overwritten, pixels of another sampling translated, a memory blow-up hidden behind an
AttributeError, workers orphaned by SIGTERM, messages naming the output, two runs into one
directory failing each other, silent logs, unbounded ``--workers``; and outputs flushed to
disk by groups (T11).  Each case is a row of
``docs/reliability.md`` (section "translate on real runs").
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import _faults as F
import numpy as np
import pytest
from _models import method_model, write_inputs
from astropy.io import fits
from test_reliability import assert_usage_error, s2s, s2s_process

from survey2survey.fits_io import make_wcs, verify_fits
from survey2survey.pipelines.translate import usable_cpus
from survey2survey.surveys import get_survey

SDSS, CFHT = get_survey("sdss"), get_survey("cfht")


@pytest.fixture(scope="module")
def aecnn_model(tmp_path_factory) -> Path:
    """A one-way SDSS -> CFHT model without noise emulator (cheap to run)."""
    return method_model(tmp_path_factory.mktemp("aecnn") / "aecnn", "aecnn")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The paper's networks both ways with noise emulators (``--samples`` draws from them)."""
    from _models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def _raw_cfht_cube(path: Path) -> Path:
    """A survey's own file: no s2s provenance, no CHECKSUM (as real CFHT cubes come)."""
    header = make_wcs(150.0, 2.0, CFHT.pixel_scale, (CFHT.cutout_size,) * 2).to_header()
    header["TELESCOP"] = "CFHT"
    fits.PrimaryHDU(F.good_cube(CFHT), header=header).writeto(path)
    return path


def _state(path: Path) -> tuple:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, path.read_bytes()


# --- T1: a file the user had is never replaced without --overwrite -----------------------------------------------


def test_t1_a_users_file_at_the_output_name_is_kept(aecnn_model, tmp_path, capsys):
    d = tmp_path / "objs"
    write_inputs(d, SDSS, 2)
    theirs = _raw_cfht_cube(d / "J0000.cfht.fits")  # a real CFHT cube beside J0000.fits
    before = _state(theirs)
    run = s2s(capsys, "translate", d, "--to", "cfht", "--model", aecnn_model, "--out", d, "-q")  # into itself
    assert run.code == 1, run.text
    # the cube is no earlier output of s2s (no provenance): an input, read and never written
    assert "already a cfht cutout" in run.lines_naming(theirs)[0], run.text
    lines = run.lines_naming(d / "J0000.fits")
    assert len(lines) == 1 and f"output {theirs} is an input file" in lines[0], run.text
    assert "translated 1, skipped 0 (output exists), failed 2 of 3 inputs" in run.out
    assert _state(theirs) == before
    verify_fits(d / "J0001.cfht.fits")
    # our own broken output is still redone without --overwrite (and no input: it has s2s's provenance)
    ours = d / "J0001.cfht.fits"
    ours.write_bytes(ours.read_bytes()[:-2880])
    run = s2s(capsys, "translate", d / "J0001.fits", "--to", "cfht", "--model", aecnn_model, "--out", d, "-q")
    assert run.code == 0 and "existing output was broken and is redone" in run.err, run.text
    verify_fits(ours)
    # a user's file at the output name that is not among the inputs: --overwrite is the user's say-so
    run = s2s(capsys, "translate", d / "J0000.fits", "--to", "cfht", "--model", aecnn_model, "--out", d, "-q")
    assert run.code == 1 and "exists and is not an s2s output (output exists; use --overwrite" in run.err, run.text
    assert _state(theirs) == before
    run = s2s(capsys, "translate", d / "J0000.fits", "--to", "cfht", "--model", aecnn_model, "--out", d, "-q",
              "--overwrite")
    assert run.code == 0, run.text
    assert "S2SVER" in fits.getheader(theirs)
    # the directory again, with --overwrite: the earlier outputs are no inputs, the inputs are redone
    run = s2s(capsys, "translate", d, "--to", "cfht", "--model", aecnn_model, "--out", d, "-q", "--overwrite")
    assert run.code == 0 and "translated 2, skipped 0 (output exists), failed 0 of 2 inputs" in run.out, run.text


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_t2_an_output_that_is_an_input_is_refused_even_with_overwrite(aecnn_model, tmp_path, capsys, link):
    src, out = tmp_path / "in", tmp_path / "out"
    inputs = write_inputs(src, SDSS, 2)
    out.mkdir()
    target = out / "J0000.cfht.fits"
    (os.symlink if link == "symlink" else os.link)(inputs[0], target)
    before = _state(inputs[0])
    run = s2s(capsys, "translate", src, "--to", "cfht", "--model", aecnn_model, "--out", out, "-q", "--overwrite")
    assert run.code == 1, run.text
    lines = run.lines_naming(inputs[0])
    assert len(lines) == 1 and f"output {target} is an input file; give another --out" in lines[0], run.text
    assert "translated 1, skipped 0 (output exists), failed 1 of 2 inputs" in run.out
    assert _state(inputs[0]) == before


# --- T3: pixels of another sampling are refused by a learned model --------------------------------------------


def _cube_at_scale(path: Path, scale: float, survey_keyword: str | None) -> Path:
    header = make_wcs(150.0, 2.0, scale, (SDSS.cutout_size,) * 2).to_header()
    header["BANDS"] = ",".join(SDSS.bands)
    if survey_keyword:
        header["SURVEY"] = survey_keyword
    fits.PrimaryHDU(F.good_cube(SDSS), header=header).writeto(path)
    return path


def test_t3_a_learned_model_refuses_another_pixel_scale(aecnn_model, tmp_path, capsys):
    src = tmp_path / "in"
    write_inputs(src, SDSS, 2)
    hsc_like = _cube_at_scale(src / "hsc_like.fits", 0.263, "sdss")  # called SDSS, HSC's pixels
    binned = _cube_at_scale(src / "binned.fits", 3 * SDSS.pixel_scale, None)  # no survey keyword, 3x SDSS
    near = _cube_at_scale(src / "near.fits", SDSS.pixel_scale * 1.015, "sdss")  # within 2 %: accepted
    out = tmp_path / "out"
    run = s2s(capsys, "translate", src, "--to", "cfht", "--model", aecnn_model, "--out", out, "-q")
    assert run.code == 1, run.text
    assert "Traceback" not in run.text
    for path, scale in ((hsc_like, "0.263"), (binned, "1.188")):
        lines = run.lines_naming(path)
        assert len(lines) == 1, run.text
        assert f'pixel scale {scale}"/px (WCS) is not sdss\'s 0.396"/px (more than 2% off)' in lines[0], lines
    assert "translated 3, skipped 0 (output exists), failed 2 of 5 inputs" in run.out
    assert sorted(p.name for p in out.glob("*.fits")) == ["J0000.cfht.fits", "J0001.cfht.fits", "near.cfht.fits"]
    assert not run.lines_naming(near)


# --- T4: --samples that cannot fit: one line, exit 2, before any allocation ------------------------------------


def test_t4_samples_that_cannot_fit_are_refused_before_any_work(tiny_model, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_inputs(src, SDSS, 1)
    # a real process with the machine's real memory: 100000 CFHT realisations need hundreds of GiB
    run = s2s_process("translate", src, "--to", "cfht", "--model", tiny_model, "--out", out, "--samples", "100000",
                      "--workers", "0", "-q")
    assert_usage_error(run, "--samples 100000 with batches of 1 would hold about", "use --samples")
    largest = int(re.search(r"use --samples (\d+) or less with --batch-size 1$", run.err).group(1))
    assert 1 <= largest < 100000
    assert not out.exists() or not list(out.glob("*.fits"))


def test_t4_the_largest_samples_named_fits_and_one_more_does_not(tiny_model, tmp_path, capsys, monkeypatch):
    from survey2survey.training import memory

    monkeypatch.setattr(memory, "available_memory", lambda device: (64 * 2**20, "available"))
    src, out = tmp_path / "in", tmp_path / "out"
    write_inputs(src, SDSS, 1)
    args = ["translate", src, "--to", "cfht", "--model", tiny_model, "--out", out, "--workers", "0", "-q",
            "--batch-size", "1"]
    run = s2s(capsys, *args, "--samples", "5000")
    assert_usage_error(run, "(0.1 GiB available)")
    largest = int(re.search(r"use --samples (\d+) or less with --batch-size 1$", run.err).group(1))
    image = len(CFHT.bands) * CFHT.cutout_size**2 * 4
    assert largest == 64 * 2**20 // (image * 4 * 5)  # 4 copies x (2 padded model images + 1 writer)
    assert s2s(capsys, *args, "--samples", str(largest + 1)).code == 2
    run = s2s(capsys, *args, "--samples", str(largest))
    assert run.code == 0, run.text
    with fits.open(out / "J0000.cfht.fits") as hdul:
        assert len(hdul) == largest  # the primary + SAMPLE2..SAMPLEn (no mask: no bad pixel)


def test_t4_a_memory_error_in_the_model_is_one_line_per_input(aecnn_model, tmp_path, capsys, monkeypatch):
    from survey2survey.translators.learned import LearnedTranslator

    def no_memory(self, batch, keys, samples):
        raise MemoryError("Unable to allocate 37.0 GiB for an array")

    monkeypatch.setattr(LearnedTranslator, "run", no_memory)
    src = tmp_path / "in"
    write_inputs(src, SDSS, 2)
    run = s2s(capsys, "translate", src, "--to", "cfht", "--model", aecnn_model, "--out", tmp_path / "out",
              "--workers", "0", "-q")
    assert run.code == 1, run.text
    assert "AttributeError" not in run.text and "Traceback" not in run.text
    for p in sorted(src.glob("*.fits")):
        lines = run.lines_naming(p)
        assert len(lines) == 1 and "model failed (MemoryError: Unable to allocate 37.0 GiB" in lines[0], run.text


# --- T5: SIGTERM is an interruption: the pool is shut down, nothing orphaned -------------------------------------


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids |= {int(k) for k in (task / "children").read_text().split()}
        except OSError:
            pass
    return kids


def _kill_group(proc) -> None:
    """SIGKILL to the run's process group, orphaned workers included (the main process may be gone)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("how, model", [("sigterm_to_main", "tiny"), ("sigint_to_group", "tiny"),
                                        ("sigterm_to_group", "tiny"), ("sigterm_to_group", "physics")])
def test_t5_sigterm_shuts_the_workers_down_and_exits_as_interrupted(tiny_model, tmp_path, how, model):
    """SIGTERM to the main process (`kill PID`), Ctrl-C and SIGTERM to the whole process group
    (`scancel`, `kill -- -PGID`): the workers leave the signals to the parent, which stops
    the pool; the batched schedule (a network) and the per-cutout one (physics)."""
    src, out = tmp_path / "in", tmp_path / "out"
    # outputs appear a group (up to 32 files) at a time: enough inputs that the run is still
    # going when the first group lands and the signal is sent
    write_inputs(src, SDSS, 160 if model == "tiny" else 400)
    engine = ["--model", str(tiny_model), "--batch-size", "2"] if model == "tiny" else ["--model", "physics"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "survey2survey", "translate", str(src), "--to", "cfht", *engine,
         "--out", str(out), "--workers", "2", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        # a suite started in the background (`make test &`) ignores SIGINT, and children inherit
        # that: give the run the default disposition a terminal's Ctrl-C meets
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while len(workers) < 2 or not (out.is_dir() and any(out.glob("*.cfht.fits"))):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never started writing"
            workers |= _children(proc.pid)
            time.sleep(0.01)
        if how == "sigterm_to_main":
            os.kill(proc.pid, signal.SIGTERM)  # the main process only, as `kill PID` does
        elif how == "sigterm_to_group":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole process group
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        _kill_group(proc)
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert stderr.strip().splitlines() == [
        "s2s: error: interrupted: run the same command again to finish (whole outputs are kept)"], stderr
    assert "Traceback" not in stderr
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [w for w in workers if _alive(w)], "workers left behind"
    # only whole outputs under final names, no temporary file left
    assert all(p.name.endswith(".cfht.fits") for p in out.iterdir()), sorted(out.iterdir())
    for p in out.iterdir():
        verify_fits(p)


def test_t5_a_signal_stops_the_run_between_steps_not_inside_them():
    """Python's own Ctrl-C raises at whatever bytecode runs, inside an executor's lock or a
    thread join, and the shutdown that follows could wait for ever: the signal only asks."""
    from survey2survey.interrupts import check_interrupt, interrupts_at_safe_points

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    steps = []
    with pytest.raises(KeyboardInterrupt), interrupts_at_safe_points():
        signal.raise_signal(signal.SIGTERM)  # the handler runs now: it must not raise
        steps.append("after the signal")
        check_interrupt()
        steps.append("after the check")
    assert steps == ["after the signal"]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    check_interrupt()  # the request ends with the block
    with pytest.raises(KeyboardInterrupt), interrupts_at_safe_points():
        signal.raise_signal(signal.SIGINT)
        steps.append("a signal after the last check")
    assert steps[-1] == "a signal after the last check"  # the block still ends as interrupted
    with interrupts_at_safe_points():
        steps.append("no signal")  # nothing raised


_WAIT_LOOP = """
import concurrent.futures as cf, os, random, signal, sys, threading, time
from survey2survey.interrupts import check_interrupt, interrupts_at_safe_points
rng = random.Random(int(sys.argv[1]))
for trial in range(int(sys.argv[2])):
    pool = cf.ThreadPoolExecutor(2)
    futures = [pool.submit(time.sleep, 0.001) for _ in range(2000)]
    threading.Timer(rng.random() * 0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    try:
        with interrupts_at_safe_points():
            while True:
                check_interrupt()
                cf.wait(futures, timeout=0.01, return_when=cf.FIRST_COMPLETED)
    except KeyboardInterrupt:
        pass
    pool.shutdown(wait=True)
print("done")
"""


def test_t5_random_signals_during_the_wait_loop_never_hang_the_shutdown():
    """The schedules' loop (a concurrent.futures.wait on many futures) interrupted at random
    times: with Python's own handler the shutdown that follows hung in 12-13 tries of 30
    (a KeyboardInterrupt inside wait's loop over the futures' locks); here, never."""
    proc = subprocess.run([sys.executable, "-c", _WAIT_LOOP, "7", "8"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc


def test_t5_sigint_ignored_by_the_caller_stays_ignored():
    from survey2survey.interrupts import interrupts_at_safe_points

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a run started with `nohup` or `&`
    try:
        with interrupts_at_safe_points():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)  # ignored: the block ends normally
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_t5_a_second_signal_stops_a_command_at_once():
    code = ("import signal, time\n"
            "from survey2survey.interrupts import command_signals, interrupts_at_safe_points\n"
            "with command_signals(), interrupts_at_safe_points():\n"
            "    signal.raise_signal(signal.SIGTERM)\n"
            "    signal.raise_signal(signal.SIGINT)\n"
            "    time.sleep(30)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130, proc
    assert proc.stderr.splitlines() == ["s2s: error: interrupted again: stopped at once "
                                        "(temporary files may be left in the output directory)"], proc.stderr


def test_t5_a_second_signal_interrupts_a_library_caller_at_once():
    """translate() from a script or a notebook: the second Ctrl-C is the caller's KeyboardInterrupt,
    not an exit of the whole process."""
    from survey2survey.interrupts import check_interrupt, interrupts_at_safe_points

    steps = []
    with pytest.raises(KeyboardInterrupt), interrupts_at_safe_points():
        signal.raise_signal(signal.SIGINT)
        steps.append("first")
        signal.raise_signal(signal.SIGINT)
        steps.append("second")
        check_interrupt()
    assert steps == ["first"]


_ENDING = """
import os, signal, sys, time
from survey2survey import cli


def command():  # stands in for a command: done, then signals while the process shuts down
    print("done", flush=True)


cli.app = lambda **kwargs: command()
import atexit
atexit.register(lambda: [os.kill(os.getpid(), s) or time.sleep(0.05) for s in (signal.SIGTERM, signal.SIGINT)])
cli.main()
"""


def test_a_signal_while_the_finished_command_shuts_down_keeps_its_exit_code():
    """The interpreter takes half a second to shut down after a command (torch): a Ctrl-C or
    SIGTERM then must not turn a finished run into a death by signal (-2, -15)."""
    proc = subprocess.run([sys.executable, "-c", _ENDING], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc
    assert proc.stdout.splitlines() == ["done"] and proc.stderr == "", proc


_CLEANUP = """
import os, signal, sys, time
from survey2survey import cli


def command():  # interrupted, then signalled again while it cleans up
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    finally:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)


cli.app = lambda **kwargs: command()
cli.main()
"""


def test_a_second_signal_during_a_commands_clean_up_stops_it_at_once():
    proc = subprocess.run([sys.executable, "-c", _CLEANUP], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130, proc
    assert proc.stderr.splitlines() == ["s2s: error: interrupted again: stopped at once "
                                        "(temporary files may be left in the output directory)"], proc.stderr


_IN_A_DEL = """
import os, signal, time
from survey2survey import cli


class Collected:
    def __del__(self):  # the signal comes while a garbage collection runs a finalizer
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)


def command():
    obj = Collected()
    del obj
    for _ in range(300):
        time.sleep(0.01)
    print("not interrupted")


cli.app = lambda **kwargs: command()
cli.main()
"""


def test_a_signal_during_a_finalizer_still_interrupts_the_command():
    """A KeyboardInterrupt raised inside a __del__ or a weakref callback cannot propagate: Python
    prints it ("Exception ignored ... Traceback") and goes on as if no signal had come."""
    proc = subprocess.run([sys.executable, "-c", _IN_A_DEL], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130, proc
    assert proc.stderr.splitlines() == ["s2s: error: interrupted"] and "not interrupted" not in proc.stdout, proc


def test_t5_sigterm_interrupts_a_command_as_ctrl_c_does(tmp_path, capsys):
    """Outside a pool's run (here: prepare without workers), SIGTERM is Ctrl-C: the command
    exits as interrupted and removes its temporary directory."""
    from survey2survey.cli import main
    from survey2survey.data import simulate as simulate_module

    real = simulate_module._simulate_chunk
    calls = []

    def chunk(*args):
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGTERM)
        return real(*args)

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(simulate_module, "_simulate_chunk", chunk)
        code = main(["prepare", "--simulate", "12", "--out", str(tmp_path / "sim"), "-j", "1", "-q"])
    assert code == 130
    assert capsys.readouterr().err.strip().splitlines() == ["s2s: error: interrupted"]
    assert len(calls) == 2 and sorted(tmp_path.iterdir()) == []  # nothing left, not even hidden
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


@pytest.mark.parametrize("model, workers", [("physics", 0), ("physics", 2), ("tiny", 0)])
def test_t5_both_schedules_stop_at_a_signal_with_or_without_workers(tiny_model, tmp_path, model, workers):
    """A signal during the run (here: from the progress callback, after the first outputs)
    stops the per-cutout schedule (physics) and the batched one (a network), with worker
    processes and without (``--workers 0`` runs every task in this process)."""
    from survey2survey.pipelines.translate import translate

    write_inputs(tmp_path / "in", SDSS, 96)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    sent = []

    def on_progress(done, total):
        if done >= 1 and not sent:  # one signal: a second one stops at once (os._exit)
            sent.append(done)
            signal.raise_signal(signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt):
        translate([tmp_path / "in"], "cfht", model_dir="physics" if model == "physics" else tiny_model,
                  out_dir=tmp_path / "out", seed=1, batch_size=None if model == "physics" else 2, workers=workers,
                  on_progress=on_progress)
    outputs = sorted((tmp_path / "out").iterdir())
    assert 0 < len(outputs) < 96, len(outputs)
    assert all(p.name.endswith(".cfht.fits") for p in outputs)  # whole outputs only
    for p in outputs:
        verify_fits(p)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


# --- T6: messages about an input name the input, whatever its characters ----------------------------------------


def test_t6_non_ascii_input_paths_are_named_in_messages(aecnn_model, tmp_path, capsys):
    src = tmp_path / "gal\u00e9xies \u0394"
    inputs = write_inputs(src, SDSS, 2)
    out = tmp_path / "sortie \u00e9"
    out.mkdir()
    _raw_cfht_cube(out / "J0000.cfht.fits")
    run = s2s(capsys, "translate", src, "--to", "cfht", "--model", aecnn_model, "--out", out, "-q")
    assert run.code == 1, run.text
    failed = [line for line in run.err.splitlines() if line.startswith("s2s: failed: ")]
    assert failed == [f"s2s: failed: {inputs[0]}: output {out / 'J0000.cfht.fits'} exists and is not an s2s output "
                      "(output exists; use --overwrite to replace it)"], run.err


def test_t6_a_write_failure_names_the_input(tmp_path):
    from survey2survey.pipelines.translate_steps import WriteJob, write_chunk

    class Exploding:  # stands in for the record: anything unexpected while writing
        @property
        def prepared(self):
            raise ValueError("boom")

    job = WriteJob(0, tmp_path / "J0.cfht.fits", "J0", "/data/gal\u00e9xies/J0.fits", [], np.zeros(1), Exploding())
    [(index, message)] = write_chunk([job], SimpleNamespace(translator=None))
    assert message.startswith("/data/gal\u00e9xies/J0.fits: unexpected ValueError writing "), message


# --- T7: two runs into the same --out ---------------------------------------------------------------------------


def test_t7_two_runs_into_the_same_directory_both_exit_0(aecnn_model, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_inputs(src, SDSS, 40)
    args = [sys.executable, "-m", "survey2survey", "translate", str(src), "--to", "cfht", "--model", str(aecnn_model),
            "--out", str(out), "--workers", "0", "-q"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (stdout, stderr) in zip(procs, results):
        assert proc.returncode == 0, stdout + stderr
        assert "s2s: failed" not in stderr
    counts = [re.search(r"translated (\d+), skipped (\d+) \(output exists\), failed 0 of 40", o).groups()
              for o, _ in results]
    assert all(int(t) + int(s) == 40 for t, s in counts)
    assert len(list(out.glob("*.cfht.fits"))) == 40
    for p in out.iterdir():
        verify_fits(p)


def test_t7_the_loser_of_a_race_keeps_the_winners_output(aecnn_model, tmp_path, capsys, monkeypatch):
    """Deterministic race: the output appears between this run's check and its write."""
    from survey2survey.pipelines import translate_steps

    src, out, other = tmp_path / "in", tmp_path / "out", tmp_path / "other"
    write_inputs(src, SDSS, 2)
    args = ["translate", src, "--to", "cfht", "--model", aecnn_model, "--workers", "0", "-q"]
    assert s2s(capsys, *args, "--out", other).code == 0  # what the winner writes
    real = translate_steps.write_cutout

    def winner_first(path, *a, **kw):
        if not Path(path).exists():
            Path(path).write_bytes((other / Path(path).name).read_bytes())
        return real(path, *a, **kw)

    monkeypatch.setattr(translate_steps, "write_cutout", winner_first)
    run = s2s(capsys, *args, "--out", out)
    assert run.code == 0 and run.err == "", run.text
    assert "translated 0, skipped 2 (output exists), failed 0 of 2 inputs" in run.out
    # another seed is another output: the loser says so (exit 1) and keeps the file
    for p in out.iterdir():
        p.unlink()
    run = s2s(capsys, *args, "--out", out, "--seed", "7")
    assert run.code == 1, run.text
    assert run.err.count("output exists (use --overwrite to replace it) (") == 2, run.err


# --- T8: progress lines in a log ---------------------------------------------------------------------------------


def test_t8_progress_lines_when_stderr_is_not_a_terminal(aecnn_model, tmp_path):
    src = tmp_path / "in"
    write_inputs(src, SDSS, 6)
    env = {**os.environ, "S2S_PROGRESS_INTERVAL": "0"}
    run = s2s_process("translate", src, "--to", "cfht", "--model", aecnn_model, "--out", tmp_path / "out",
                      "--workers", "0", "--batch-size", "2", env=env)
    assert run.code == 0, run.text
    lines = [line for line in run.err.splitlines() if line.startswith("translating: ")]
    assert lines, run.err
    pattern = r"translating: (\d)/6 cutouts \(\d+%\), [0-9.e+]+ cutouts/s, elapsed \d+s, ETA (\d+s|\d+m\d\ds|unknown)"
    for line in lines:
        assert re.fullmatch(pattern, line), line
    assert lines[-1].startswith("translating: 6/6 cutouts (100%)")
    quiet = s2s_process("translate", src, "--to", "cfht", "--model", aecnn_model, "--out", tmp_path / "q",
                        "--workers", "0", "-q", env=env)
    assert quiet.code == 0 and quiet.err == "", quiet.text


def test_t8_the_log_reporter_prints_at_most_once_per_interval(capsys):
    from survey2survey.progress import log_reporter

    now = [0.0]
    report = log_reporter("doing", "items", 30.0, clock=lambda: now[0])
    for done, t in ((0, 0.0), (10, 10.0), (40, 30.0), (50, 45.0), (100, 60.0), (100, 61.0)):
        now[0] = t
        report(done, 200)
    assert capsys.readouterr().err.splitlines() == [
        "doing: 40/200 items (20%), 1.33 items/s, elapsed 30s, ETA 2m00s",
        "doing: 100/200 items (50%), 1.67 items/s, elapsed 1m00s, ETA 1m00s",
    ]
    # started from a resumed count: the rate is this run's work, not the count's
    now[0] = 0.0
    resumed = log_reporter("training", "it", 30.0, clock=lambda: now[0])
    resumed(50_000, 60_000)
    now[0] = 40.0
    resumed(50_200, 60_000, "L 0.5")
    assert capsys.readouterr().err.splitlines() == [
        "training: 50200/60000 it (84%), 5 it/s, elapsed 40s, ETA 32m40s, L 0.5"]


# --- T9: --workers capped at the usable CPUs ---------------------------------------------------------------------


def test_t9_workers_are_capped_at_the_usable_cpus(aecnn_model, tmp_path, capsys):
    src = tmp_path / "in"
    write_inputs(src, SDSS, 2)
    run = s2s(capsys, "translate", src, "--to", "cfht", "--model", aecnn_model, "--out", tmp_path / "out",
              "--workers", "1000")
    assert run.code == 0, run.text
    cpus = usable_cpus()
    assert cpus == len(os.sched_getaffinity(0))
    assert f"s2s: note: --workers 1000 capped at {cpus} (the usable CPUs)" in run.err.splitlines()
    assert f"{cpus} I/O worker(s)" in run.out


# --- T10: --model given a file ----------------------------------------------------------------------------------


def test_t10_model_given_a_file_says_so(aecnn_model, tmp_path, capsys):
    weights = aecnn_model / "weights.safetensors"
    run = s2s(capsys, "translate", tmp_path, "--to", "cfht", "--model", weights)
    assert_usage_error(run, f"{weights}: is a file, not a model directory")


# --- T11: outputs flushed to disk by groups, then named --------------------------------------------------------


def test_t11_outputs_are_flushed_by_groups_and_a_failed_flush_names_each_output(tmp_path, capsys, monkeypatch):
    from survey2survey import atomic
    from survey2survey.pipelines.translate_schedule import PER_CUTOUT_CHUNK

    src, out = tmp_path / "in", tmp_path / "out"
    inputs = write_inputs(src, SDSS, 20)
    flushes = []
    real = atomic._SYNCFS or os.fsync

    def syncfs(fd):  # when the data go to disk no output has its name yet
        flushes.append(sorted(p.name for p in out.iterdir()) if out.is_dir() else [])
        real(fd)

    monkeypatch.setattr(atomic, "_SYNCFS", syncfs)
    run = s2s(capsys, "translate", src, "--to", "cfht", "--model", "physics", "--out", out, "--workers", "0", "-q")
    assert run.code == 0, run.text
    groups = -(-20 // PER_CUTOUT_CHUNK)
    assert len(flushes) == groups, flushes  # one flush per task, not one per file
    named = [[n for n in names if not n.startswith(".")] for names in flushes]
    assert [len(n) for n in named] == [PER_CUTOUT_CHUNK * g for g in range(groups)]  # only the earlier groups'
    assert sorted(p.name for p in out.iterdir()) == [f"J{i:04d}.cfht.fits" for i in range(20)]
    for p in out.iterdir():
        verify_fits(p)

    def failing(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(atomic, "_SYNCFS", failing)
    again = tmp_path / "again"
    run = s2s(capsys, "translate", src, "--to", "cfht", "--model", "physics", "--out", again, "--workers", "0", "-q")
    assert run.code == 1, run.text
    for i in range(len(inputs)):  # as a failed write of one file says it
        output = again / f"J{i:04d}.cfht.fits"
        assert run.lines_naming(output) == [f"s2s: failed: {output}: cannot write output (Input/output error)"], run.err
    assert list(again.iterdir()) == []  # nothing under a final name, no temporary file


def test_t11_a_large_write_batch_is_flushed_32_files_at_a_time(aecnn_model, tmp_path, capsys, monkeypatch):
    from survey2survey import atomic
    from survey2survey.pipelines.translate_steps import GROUP_FILES

    src, out = tmp_path / "in", tmp_path / "out"
    write_inputs(src, SDSS, 40)
    flushes = []
    real = atomic._SYNCFS or os.fsync
    monkeypatch.setattr(atomic, "_SYNCFS", lambda fd: (flushes.append(fd), real(fd)))
    run = s2s(capsys, "translate", src, "--to", "cfht", "--model", aecnn_model, "--out", out, "--workers", "0",
              "--batch-size", "40", "-q")  # one write task of 40 outputs in this process
    assert run.code == 0, run.text
    assert GROUP_FILES == 32 and len(flushes) == 2  # 32 files, then 8: never more descriptors held
    assert len(list(out.glob("*.cfht.fits"))) == 40 and not [p for p in out.iterdir() if p.name.startswith(".")]
