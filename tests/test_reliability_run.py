"""Reliability, part 2 (issue 8): ``translate``, ``emulate-noise``, ``train`` (and ``export``).

The same rules as part 1 (``tests/test_reliability.py``, whose helpers are reused): one bad
input costs one line naming it, exit codes 0 / 1 / 2, misuse writes nothing, a killed run
costs nothing and the same command again finishes it.  Models are random-weight networks at
the real sizes (``tests/_models.py``), datasets the tiny synthetic ones
(``tests/_tiny_dataset.py``); the bad inputs come from ``tests/_faults.py``.  Every case is
listed in ``docs/reliability.md``.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import _faults as F
import numpy as np
import pytest
import torch
from _models import make_tiny_model, method_model, write_inputs
from _tiny_dataset import make_tiny_dataset
from astropy.io import fits
from test_reliability import (  # noqa: F401 (immutable_dir is a fixture)
    assert_one_line_each,
    assert_usage_error,
    immutable_dir,
    s2s,
    s2s_process,
)

from survey2survey import model as model_io
from survey2survey.training import memory as train_memory
from survey2survey.fits_io import verify_fits
from survey2survey.methods.aecnn import AECNNMethod
from survey2survey.nets import GeneratorUp
from survey2survey.surveys import get_survey
from survey2survey.train import list_checkpoints

SDSS, CFHT, DES = get_survey("sdss"), get_survey("cfht"), get_survey("des")


def _verified(directory: Path) -> list[Path]:
    """Every ``*.fits`` below ``directory``, each checked with astropy verification and its checksums."""
    found = sorted(directory.rglob("*.fits"))
    for path in found:
        verify_fits(path)
    return found


def _data_bytes(path: Path) -> list[bytes]:
    """The data of every HDU (headers carry dates, the data must not change)."""
    with fits.open(path) as hdul:
        return [np.ascontiguousarray(h.data).tobytes() if h.data is not None else b"" for h in hdul]


def _popen(*args) -> subprocess.Popen:
    """``python -m survey2survey ARGS`` in a new process group (a batch scheduler's kill takes it all)."""
    return subprocess.Popen([sys.executable, "-m", "survey2survey", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _kill_when(proc: subprocess.Popen, ready, rng: random.Random, timeout: float = 120) -> bool:
    """SIGKILL ``proc``'s group a random 0-50 ms after ``ready()``; False if it ended first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the run never got there"
        time.sleep(0.003)
    time.sleep(rng.uniform(0.0, 0.05))
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    return proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """The paper's networks, both ways, with noise emulators (F = G + NE), random weights."""
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def aecnn_model(tmp_path_factory) -> Path:
    """A one-way model without noise emulator."""
    return method_model(tmp_path_factory.mktemp("aecnn") / "aecnn", "aecnn")


@pytest.fixture(scope="module")
def sdss_in(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sdss_in")
    write_inputs(d, SDSS, 2)
    return d


@pytest.fixture(scope="module")
def tiny_ds(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "ds", n_unpaired=4, n_pairs=4, n_test=1, sizes=(24, 48))


# --- translate: bad cutouts among good ones ------------------------------------------------------------


def test_translate_reports_each_bad_cutout_on_one_line_and_translates_the_rest(model, tmp_path):
    src = tmp_path / "in"
    write_inputs(src, SDSS, 2)
    bad = {fault.write(src, SDSS): fault.message for fault in F.CUTOUT_FAULTS}
    # another size of SDSS cutout with a WCS: not the network's, translated by the physics instead
    other_size = next(p for p in bad if p.stem == "bad_wrong_size")
    bad.pop(other_size)
    # a cube without its z band: translated by the physics too, band by band
    four_bands = next(p for p in bad if p.stem == "bad_missing_band")
    bad.pop(four_bands)
    few_nan = F.few_nan_cutout(src, SDSS)
    no_wcs = F.no_wcs(src, SDSS, "no_wcs")
    out = tmp_path / "out"
    # a real process, through the reader/writer pool: no traceback, one line per file
    run = s2s_process("translate", src, "--to", "cfht", "--model", model, "--out", out, "--workers", "2", "-q")
    assert run.code == 1, run.text
    assert_one_line_each(run, bad)
    assert all(f"s2s: failed: {p}: " in run.err for p in bad)
    assert f"translated 6, skipped 0 (output exists), failed {len(bad)} of {len(bad) + 6} inputs" in run.out
    # kept with a warning: no WCS; a few NaN/inf pixels filled and masked; the other size and the
    # cube without z by the physics
    assert_one_line_each(run, {no_wcs: "no WCS: sky positions unknown", few_nan: "9 NaN/inf pixel(s) filled with 0",
                               other_size: "translated by the physics instead of the network: wrong size 32x32 px",
                               four_bands: "translated by the physics instead of the network: missing band(s) z"})
    assert f"s2s: warning: {no_wcs}: " in run.err
    written = _verified(out)
    assert [p.name for p in written] == ["J0000.cfht.fits", "J0001.cfht.fits", "bad_missing_band.cfht.fits",
                                         "bad_wrong_size.cfht.fits", "few_nan.cfht.fits", "no_wcs.cfht.fits"]
    assert fits.getheader(out / "bad_wrong_size.cfht.fits")["S2SMETH"] == "physics"
    four = fits.getheader(out / "bad_missing_band.cfht.fits")
    assert four["S2SMETH"] == "physics" and four["BANDS"] == "u,g,r,i"
    with fits.open(out / "few_nan.cfht.fits") as hdul:
        mask = hdul["MASK"].data.astype(bool)
        assert hdul[0].header["NBADPIX"] == mask.sum() > 0
        assert mask[0].any() and mask[2].any() and not mask[[1, 3, 4]].any()  # bands u and r had them
        assert np.isfinite(hdul[0].data).all()
    assert "CTYPE1" not in fits.getheader(out / "no_wcs.cfht.fits")


# --- translate: misuse, exit 2, one line, nothing written --------------------------------------------------

TRANSLATE_MISUSE = [
    ("directory_without_cutouts", ["{tmp}/empty"], "no FITS cutouts found in {tmp}/empty"),
    ("input_missing", ["{tmp}/nowhere"], "{tmp}/nowhere: no such file or directory"),
    ("unknown_target_survey", ["--to", "hubble"], "unknown survey 'hubble' (known: cfht, des, hsc, legacy, lsst, sdss"),
    ("unknown_source_survey", ["--from", "hubble"], "unknown survey 'hubble'"),
    ("target_not_in_model", ["--to", "des"],
     "the model does not translate into des (its directions: sdss->cfht, cfht->sdss)"),
    ("source_not_in_model", ["--from", "des"], "the model does not translate des->cfht"),
    ("same_survey_both_sides", ["--from", "cfht"], "--from and --to are both cfht"),
    ("one_way_model_other_way", ["--to", "sdss", "--model", "{aecnn}"],
     "a one-way model (aecnn) that translates sdss->cfht only, not into sdss"),
    ("batch_size_zero", ["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
    ("shard_out_of_range", ["--shard", "3/2"], "--shard 3/2: need 0 <= I < N"),
    ("shard_malformed", ["--shard", "half"], "--shard must be I/N (e.g. 0/4) or auto, not 'half'"),
    ("samples_zero", ["--samples", "0"], "--samples must be a positive integer, got 0"),
    ("samples_without_noise", ["--samples", "2", "--no-noise"], "cannot go with --no-noise"),
    ("samples_without_noise_emulator", ["--samples", "2", "--model", "{aecnn}"],
     "--samples 2: the model has no noise emulator (nor latent code)"),
    ("seed_negative", ["--seed", "-1"], "--seed must be a non-negative integer, got -1"),
    ("seed_not_a_number", ["--seed", "abc"], "s2s translate: Invalid value for '--seed'"),
    ("device_unknown", ["--device", "nonsense"], "--device must be auto, cpu or cuda[:N], not 'nonsense'"),
    ("workers_negative", ["--workers", "-1"], "--workers must be >= 0, got -1"),
    ("backend_unknown", ["--backend", "tf"], "--backend must be one of torch, onnx, not 'tf'"),
    ("precision_unknown", ["--precision", "fp8"], "--precision must be auto, fp32, tf32 or bf16, not 'fp8'"),
    ("precision_tf32_on_cpu", ["--precision", "tf32", "--device", "cpu"],  # 215
     "--precision tf32 needs a CUDA GPU (TF32 is a tensor-core format); use fp32 on the CPU"),
    ("model_missing", ["--model", "{tmp}/no-model"], "{tmp}/no-model: model directory not found"),
    ("model_not_a_model", ["--model", "{tmp}/empty"], "{tmp}/empty/config.json: missing (not a model directory?)"),
    ("out_under_a_file", ["--out", "{tmp}/a_file/out"], "{tmp}/a_file: is a file, not a directory"),
    ("out_is_a_file", ["--out", "{tmp}/a_file"], "{tmp}/a_file: exists and is not a directory"),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in TRANSLATE_MISUSE], ids=[c[0] for c in TRANSLATE_MISUSE])
def test_translate_misuse_is_one_line_exit_2_and_writes_nothing(model, aecnn_model, sdss_in, tmp_path, capsys,
                                                                 args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("not a directory")
    fill = {"tmp": tmp_path, "aecnn": aecnn_model}
    args = [a.format(**fill) for a in args]
    full = ([] if args[0].startswith("/") else [str(sdss_in)]) + args
    for flag, default in (("--to", "cfht"), ("--model", str(model)), ("--out", str(tmp_path / "out"))):
        if flag not in full:
            full += [flag, default]
    run = s2s(capsys, "translate", *full, "-q")
    assert_usage_error(run, message.format(**fill))
    assert not (tmp_path / "out").exists()
    assert (tmp_path / "a_file").read_text() == "not a directory"


def test_translate_into_a_read_only_directory(model, sdss_in, capsys, immutable_dir):  # noqa: F811 (fixture)
    run = s2s(capsys, "translate", sdss_in, "--to", "cfht", "--model", model, "--out", immutable_dir / "report", "-q")
    assert_usage_error(run, f"{immutable_dir / 'report'}: cannot write output there (Operation not permitted)")
    assert list((immutable_dir / "report").iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated_weights", "flipped_weight_byte", "config_not_json"])
def test_translate_with_a_corrupted_model_is_one_line_exit_2(model, sdss_in, tmp_path, capsys, damage):
    broken = tmp_path / "model"
    shutil.copytree(model, broken)
    make, message = F.MODEL_FAULTS[damage]
    path = make(broken)
    run = s2s(capsys, "translate", sdss_in, "--to", "cfht", "--model", broken, "--out", tmp_path / "out", "-q")
    assert_usage_error(run, f"{path}: ", message)
    assert not (tmp_path / "out").exists()


def _model_with(root: Path, surveys: dict, direction: str) -> Path:
    """A model of ``direction`` whose config records ``surveys`` (maybe other bands than the registry's)."""
    a, b = surveys["a"], surveys["b"]
    torch.manual_seed(0)
    gen = GeneratorUp(bands=len(a["bands"]), in_size=a["cutout_size"], out_size=b["cutout_size"])
    name = f"generator_{a['name']}_to_{b['name']}"
    config = {"name": "other", "method": "pix2pix", "surveys": surveys,
              "directions": {direction: {"generator": name, "noise_emulator": None}}}
    return model_io.save_model(root, {name: gen}, config)


def test_translate_with_a_model_of_other_surveys_or_bands_refuses_each_input(sdss_in, tmp_path, capsys):
    # recorded SDSS and CFHT with three bands: the 5-band cutouts do not fit
    three = {k: {**s.to_dict(), "bands": ["g", "r", "i"]} for k, s in (("a", SDSS), ("b", CFHT))}
    bands_model = _model_with(tmp_path / "gri", three, "sdss->cfht")
    run = s2s(capsys, "translate", sdss_in, "--to", "cfht", "--model", bands_model, "--out", tmp_path / "o1", "-q")
    inputs = sorted(sdss_in.glob("*.fits"))
    assert run.code == 1
    assert_one_line_each(run, {p: "bands u,g,r,i,z do not match the model's sdss bands g,r,i" for p in inputs})
    # a DES -> CFHT model: SDSS cutouts are refused, each on its line
    des_model = _model_with(tmp_path / "des", {"a": DES.to_dict(), "b": CFHT.to_dict()}, "des->cfht")
    run = s2s(capsys, "translate", sdss_in, "--to", "cfht", "--model", des_model, "--out", tmp_path / "o2", "-q")
    assert run.code == 1
    assert_one_line_each(run, {p: "the model does not translate sdss->cfht (it translates des->cfht)" for p in inputs})
    assert not (tmp_path / "o1").exists() or not list((tmp_path / "o1").rglob("*.fits"))
    assert not (tmp_path / "o2").exists() or not list((tmp_path / "o2").rglob("*.fits"))


def test_translate_keeps_an_existing_output_without_overwrite(aecnn_model, sdss_in, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["translate", sdss_in, "--to", "cfht", "--model", aecnn_model, "--out", out, "-q"]
    assert s2s(capsys, *args).code == 0
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in _verified(out)}
    run = s2s(capsys, *args)
    assert run.code == 0 and run.err == "", run.text
    assert "translated 0, skipped 2 (output exists), failed 0 of 2 inputs" in run.out
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in _verified(out)} == before


# --- translate killed with SIGKILL; same outputs whatever the batch, workers or process -------------------------


def test_killed_translate_leaves_whole_files_and_a_rerun_finishes_the_rest(model, tmp_path, capsys):
    rng = random.Random()
    src = tmp_path / "in"
    n = 24
    write_inputs(src, CFHT, n)
    expected = sorted(f"J{i:04d}.sdss.fits" for i in range(n))
    # the reference: this process, no worker, the CPU's default batch (16 + 8)
    ref = tmp_path / "ref"
    run = s2s(capsys, "translate", src, "--to", "sdss", "--model", model, "--out", ref, "--seed", "5", "--workers", "0",
              "-q")
    assert run.code == 0, run.text
    # the run to kill: another process, one reader/writer process, batches of 2
    out = tmp_path / "out"
    args = ["translate", src, "--to", "sdss", "--model", model, "--out", out, "--seed", "5", "--workers", "1",
            "--batch-size", "2", "-q"]
    for _attempt in range(3):
        shutil.rmtree(out, ignore_errors=True)
        k = rng.randint(1, n - 4)  # kill once k outputs exist, plus a random 0-50 ms

        def done() -> bool:
            return out.is_dir() and sum(1 for p in out.iterdir() if p.name.endswith(".sdss.fits")) >= k

        if _kill_when(_popen(*args), done, rng) and len(list(out.glob("*.sdss.fits"))) < n:
            break
    else:
        pytest.fail("the run always finished before it could be killed")

    # only whole, valid files under their final names (a temporary file at most, hidden)
    whole = _verified(out)
    assert whole and {p.name for p in whole} < set(expected)
    assert all(p.name.endswith(".sdss.fits") or p.name.startswith(".") for p in out.iterdir())
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in whole}

    run = s2s(capsys, *args)  # the very same command again
    assert run.code == 0, run.text
    assert f"translated {n - len(whole)}, skipped {len(whole)} (output exists), failed 0 of {n} inputs" in run.out
    assert [p.name for p in _verified(out)] == expected  # nothing missing, nothing twice
    assert sorted(p.name for p in out.iterdir()) == expected, "the killed run's temporary files are cleaned up"
    after = {name: ((out / name).stat().st_ino, (out / name).stat().st_mtime_ns) for name in before}
    assert after == before, "whole outputs are not redone"
    # byte-identical data: killed process, re-run and reference differ in process, batch size and workers
    for name in expected:
        assert _data_bytes(out / name) == _data_bytes(ref / name), name


def test_emulate_noise_gives_the_same_bytes_in_another_process(model, tmp_path, capsys):
    args = ["emulate-noise", "--model", model, "--band", "all", "--n", "6", "--size", "40", "32", "--seed", "3"]
    run = s2s(capsys, *args, "--out", tmp_path / "a.fits")
    assert run.code == 0, run.text
    other = s2s_process(*args, "--out", tmp_path / "b.fits")
    assert other.code == 0, other.text
    _verified(tmp_path)
    assert _data_bytes(tmp_path / "a.fits") == _data_bytes(tmp_path / "b.fits")


# --- emulate-noise: misuse, exit 2, one line, nothing written --------------------------------------------------

EMULATE_MISUSE = [
    ("unknown_band", ["--band", "y"], "survey 'cfht' has no band 'y' (bands: u,g,r,i,z)"),
    ("unknown_survey", ["--survey", "hubble"], "unknown survey 'hubble'"),
    ("survey_without_emulator", ["--survey", "des"],
     "model 'tiny' has no noise emulator for survey 'des' (it has: cfht, sdss)"),
    ("model_without_emulator", ["--model", "{aecnn}"], "{aecnn}: model 'aecnn' has no noise emulator"),
    ("n_zero", ["--n", "0"], "--n must be a positive integer, got 0"),
    ("n_not_a_number", ["--n", "many"], "s2s emulate-noise: Invalid value for '--n'"),
    ("size_zero", ["--size", "0", "10"], "--size must be positive, got 0 10"),
    ("size_not_a_number", ["--size", "ten", "10"], "s2s emulate-noise: Invalid value for '--size'"),
    ("size_too_large", ["--size", "100000", "100000"],
     "2 maps of 100000x100000 px in 1 band(s) would take 74.5 GiB (more than 8 GiB)"),
    ("seed_negative", ["--seed", "-1"], "--seed must be a non-negative integer, got -1"),
    ("device_unknown", ["--device", "nonsense"], "--device must be auto, cpu or cuda[:N], not 'nonsense'"),
    ("model_missing", ["--model", "{tmp}/no-model"], "{tmp}/no-model: model directory not found"),
    ("out_exists", ["--out", "{tmp}/mine.fits"], "{tmp}/mine.fits: output exists (use --overwrite to replace it)"),
    ("out_is_a_directory", ["--out", "{tmp}"], "{tmp}: is a directory (give --out FILE)"),
    ("out_under_a_file", ["--out", "{tmp}/a_file/noise.fits"], "{tmp}/a_file: is a file, not a directory"),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in EMULATE_MISUSE], ids=[c[0] for c in EMULATE_MISUSE])
def test_emulate_noise_misuse_is_one_line_exit_2_and_writes_nothing(model, aecnn_model, tmp_path, capsys, args,
                                                                    message):
    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "mine.fits").write_text("mine")
    fill = {"tmp": tmp_path, "aecnn": aecnn_model}
    full = [a.format(**fill) for a in args]
    defaults = (("--band", "r"), ("--n", "2"), ("--model", str(model)), ("--out", str(tmp_path / "noise.fits")))
    for flag, default in defaults:
        if flag not in full:
            full += [flag, default]
    run = s2s(capsys, "emulate-noise", *full)
    assert_usage_error(run, message.format(**fill))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "mine.fits"]
    assert (tmp_path / "mine.fits").read_text() == "mine"


def test_emulate_noise_into_a_read_only_directory(model, capsys, immutable_dir):  # noqa: F811 (fixture)
    run = s2s(capsys, "emulate-noise", "--model", model, "--band", "r", "--n", "2", "--out",
              immutable_dir / "report" / "noise.fits")
    assert_usage_error(run, f"{immutable_dir / 'report'}: cannot write output there (Operation not permitted)")


# --- export: misuse ---------------------------------------------------------------------------------------


def test_export_misuse_is_one_line_exit_2(model, aecnn_model, tmp_path, capsys):
    run = s2s(capsys, "export", "--model", model, "--format", "tflite", "--out", tmp_path / "x")
    assert_usage_error(run, "unknown export format 'tflite' (supported: onnx)")
    run = s2s(capsys, "export", "--model", model, "--direction", "sdss->des", "--out", tmp_path / "x")
    assert_usage_error(run, "model has no direction 'sdss->des' (it has: sdss->cfht, cfht->sdss)")
    run = s2s(capsys, "export", "--model", tmp_path / "no-model")
    assert_usage_error(run, f"{tmp_path / 'no-model'}: model directory not found")
    broken = tmp_path / "broken"
    shutil.copytree(aecnn_model, broken)
    weights = F.truncated_weights(broken)
    run = s2s(capsys, "export", "--model", broken)
    assert_usage_error(run, f"{weights}: corrupted or truncated safetensors file")
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "sdss-to-cfht.onnx").write_text("mine")
    run = s2s(capsys, "export", "--model", aecnn_model, "--out", tmp_path / "onnx")
    assert_usage_error(run, f"{tmp_path / 'onnx' / 'sdss-to-cfht.onnx'}: exists (use --overwrite to replace it)")
    assert (tmp_path / "onnx" / "sdss-to-cfht.onnx").read_text() == "mine"
    assert not (tmp_path / "x").exists()


# --- train: misuse, exit 2, one line --------------------------------------------------------------------------


def _damaged_dataset(tiny: Path, where: Path, damage: str) -> Path:
    ds = where / f"ds-{damage}"
    shutil.copytree(tiny, ds)
    if damage == "no_dataset_json":
        (ds / "dataset.json").unlink()
    elif damage == "dataset_json_not_json":
        (ds / "dataset.json").write_text("{not json")
    elif damage == "npy_not_npy":
        (ds / "train_a.npy").write_bytes(b"garbage" * 20)
    elif damage == "npy_truncated":
        raw = (ds / "train_a.npy").read_bytes()
        (ds / "train_a.npy").write_bytes(raw[: len(raw) // 2])
    elif damage == "npy_missing":
        (ds / "train_b.npy").unlink()
    elif damage == "npy_wrong_shape":
        np.save(ds / "unpaired_b.npy", np.zeros((4, 5, 48), np.float32))
    elif damage == "npy_wrong_size":
        np.save(ds / "train_b.npy", np.zeros((4, 5, 24, 24), np.float32))
    return ds


TRAIN_MISUSE = [
    ("no_dataset_json", [], "{ds}/dataset.json: missing (not a prepared dataset directory)"),
    ("dataset_json_not_json", [], "{ds}/dataset.json: unreadable"),
    ("npy_not_npy", [], "{ds}/train_a.npy: cannot memory-map: not a NumPy .npy file"),
    ("npy_truncated", [], "{ds}/train_a.npy: cannot memory-map: corrupted or truncated"),
    ("npy_missing", [], "{ds}/train_b.npy: missing (listed in dataset.json)"),
    ("npy_wrong_shape", [], "{ds}/unpaired_b.npy: expected float32 (N, C, H, W), found float32 (4, 5, 48)"),
    ("npy_wrong_size", [], "{ds}/train_b.npy: shape [4, 5, 24, 24] differs from dataset.json [4, 5, 48, 48]"),
    ("dataset_is_a_file", [], "{tmp}/a_file: not a dataset directory (run `s2s prepare` first)"),
    ("unknown_method", ["--method", "gan"], "unknown method 'gan' (known: ours, pix2pix,"),
    ("iterations_zero", ["-n", "0"], "--iterations must be an integer >= 1, got 0"),
    ("iterations_not_a_number", ["-n", "lots"], "s2s train: Invalid value for '--iterations'"),
    ("batch_size_zero", ["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
    ("batch_paired_negative", ["--batch-paired", "-1"], "--batch-paired must be an integer >= 1, got -1"),
    ("lr_zero", ["--lr", "0"], "--lr must be a positive number, got 0.0"),
    ("lr_nan", ["--lr", "nan"], "--lr must be a positive number, got nan"),
    ("lr_decay_every_zero", ["--lr-decay-every", "0"], "--lr-decay-every must be an integer >= 1, got 0"),
    ("lr_decay_factor_zero", ["--lr-decay-factor", "0"], "--lr-decay-factor must be a positive number, got 0.0"),
    ("clip_norm_negative", ["--clip-norm", "-1"], "--clip-norm must be a number >= 0 (0: no clipping), got -1.0"),
    ("seed_negative", ["--seed", "-1"], "--seed must be a non-negative integer, got -1"),
    ("checkpoint_every_zero", ["--checkpoint-every", "0"], "--checkpoint-every must be an integer >= 1, got 0"),
    ("log_every_zero", ["--log-every", "0"], "--log-every must be an integer >= 1, got 0"),
    ("step_unknown", ["--method", "ours", "--step", "3"], "method 'ours' has steps 1, 2, not 3"),
    ("step_of_one_step_method", ["--step", "1"], "method 'aecnn' has a single step"),
    ("direction_of_two_way_method", ["--method", "cyclegan-adapted", "--direction", "small_a->small_b"],
     "--direction is for one-way methods"),
    ("direction_unknown", ["--direction", "sdss->des"], "--direction 'sdss->des': expected small_a->small_b"),
    ("regridded_method_plain_dataset", ["--method", "cyclegan"], "needs b regridded onto a's grid"),
    ("device_unknown", ["--device", "nonsense"], "--device 'nonsense' is not a torch device"),
    ("precision_unknown", ["--precision", "fp8"], "--precision must be auto, bf16 or fp32, not 'fp8'"),
    ("compile_unknown", ["--compile", "maybe"], "--compile must be auto, yes or no, not 'maybe'"),
    ("resume_and_overwrite", ["--resume", "--overwrite"], "--resume and --overwrite exclude each other"),
    ("resume_nothing", ["--resume"], "{tmp}/m/train: no checkpoint to resume from (drop --resume to start a new run)"),
    ("out_under_a_file", ["--out", "{tmp}/a_file/m"], "{tmp}/a_file: is a file, not a directory"),
    ("unknown_option", ["--epochs", "3"], "No such option: --epochs"),
]


@pytest.mark.parametrize("case, args, message", TRAIN_MISUSE, ids=[c[0] for c in TRAIN_MISUSE])
def test_train_misuse_is_one_line_exit_2_and_writes_nothing(tiny_ds, tmp_path, capsys, case, args, message):
    (tmp_path / "a_file").write_text("not a directory")
    ds = tmp_path / "a_file" if case == "dataset_is_a_file" else _damaged_dataset(tiny_ds, tmp_path, case)
    fill = {"tmp": tmp_path, "ds": ds}
    full = [a.format(**fill) for a in args]
    for flag, default in (("--method", "aecnn"), ("--out", str(tmp_path / "m")), ("-n", "1"), ("--batch-size", "2"),
                          ("--device", "cpu")):
        if flag not in full:
            full += [flag, default]
    run = s2s(capsys, "train", ds, *full, "-q")
    assert_usage_error(run, message.format(**fill))
    assert not (tmp_path / "m").exists()


def test_train_stops_on_non_finite_losses(tiny_ds, tmp_path, capsys):
    ds = tmp_path / "ds"
    shutil.copytree(tiny_ds, ds)
    np.save(ds / "train_a.npy", np.full((4, 5, 24, 24), np.nan, np.float32))  # a damaged dataset: NaN rows
    run = s2s(capsys, "train", ds, "--method", "aecnn", "--out", tmp_path / "m", "-n", "3", "--batch-size", "2",
              "--device", "cpu", "-q")
    assert_usage_error(run, f"{tmp_path / 'm' / 'train'}: training diverged at iteration 3 (L_mse not finite)")
    assert not (tmp_path / "m" / "config.json").exists() and not list_checkpoints(tmp_path / "m" / "train")


class _Payload:
    """Unpickling this creates a marker file: what a hostile checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_train_resume_refuses_a_checkpoint_that_runs_code(tiny_ds, tmp_path, capsys):
    run_dir = tmp_path / "m" / "train"
    run_dir.mkdir(parents=True)
    marker = tmp_path / F.PICKLE_MARKER
    ckpt = run_dir / "ckpt-00000005.pt"
    with open(ckpt, "wb") as fh:
        pickle.dump({"format": "s2s-checkpoint/1", "iteration": 5, "state": _Payload(marker)}, fh, protocol=2)
    run = s2s(capsys, "train", tiny_ds, "--method", "aecnn", "--out", tmp_path / "m", "-n", "8", "--batch-size", "2",
              "--device", "cpu", "--resume", "-q")
    assert run.code == 2 and "Traceback" not in run.text, run.text
    warning, error = run.error_lines()
    assert warning.startswith(f"s2s: warning: {ckpt}: unusable checkpoint (UnpicklingError")
    assert error == f"s2s: error: {run_dir}: no usable checkpoint (1 tried)"
    assert not marker.exists(), "a pickle in a checkpoint was executed"
    assert not (tmp_path / "m" / "config.json").exists()


# --- train killed with SIGKILL and resumed -----------------------------------------------------------------


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_killed_train_resumes_from_its_last_checkpoint_and_a_damaged_one_falls_back(tiny_ds, tmp_path, capsys):
    rng = random.Random()
    out, n, every, factor = tmp_path / "m", 40, 4, 2.0
    args = ["train", tiny_ds, "--method", "aecnn", "--out", out, "-n", n, "--batch-size", "2", "--seed", "3",
            "--checkpoint-every", "1", "--log-every", "1", "--lr-decay-every", every, "--lr-decay-factor", factor,
            "--device", "cpu", "-q"]
    losses = out / "train" / "losses.csv"
    for _attempt in range(3):
        shutil.rmtree(out, ignore_errors=True)
        k = rng.randint(3, n - 5)  # kill once iteration k is logged, plus a random 0-50 ms

        def logged() -> bool:
            try:
                return len(losses.read_text().splitlines()) - 1 >= k
            except OSError:
                return False

        if _kill_when(_popen(*args), logged, rng) and not (out / "config.json").exists():
            break
    else:
        pytest.fail("the run always finished before it could be killed")

    checkpoints = list_checkpoints(out / "train")
    assert len(checkpoints) >= 2, checkpoints  # one per iteration, the last two (three while rotating) kept
    latest, previous = checkpoints[0], checkpoints[1]
    latest.write_bytes(latest.read_bytes()[:1000])  # and the newest one is damaged
    restart = int(previous.stem.split("-")[1])

    run = s2s(capsys, *args, "--resume")
    assert run.code == 0, run.text
    (warning,) = run.error_lines()
    assert warning.startswith(f"s2s: warning: {latest}: unusable checkpoint")
    assert warning.endswith(f"; falling back to {previous.name}")
    rows = _rows(losses)
    assert [int(r["iteration"]) for r in rows] == list(range(1, n + 1))  # each iteration once, none lost
    # the learning-rate schedule goes on where it was: lr / factor every `every` iterations
    schedule = [1.0 / factor ** (i // every) for i in range(1, n + 1)]
    assert [float(r["lr"]) for r in rows] == pytest.approx(schedule, rel=1e-5)
    config = json.loads((out / "config.json").read_text())
    assert config["iterations"] == n and config["steps"]["train"]["iterations"] == n
    options = config["steps"]["train"]["options"]
    assert (options["lr_decay_every"], options["lr_decay_factor"], options["seed"]) == (every, factor, 3)
    final = torch.load(list_checkpoints(out / "train")[0], weights_only=True)
    assert final["iteration"] == n and final["loader"]["iteration"] == n
    assert restart < n and model_io.load_model(out).config["method"] == "aecnn"


# --- train: a batch that does not fit in memory -------------------------------------------------------------

_GIB = 2**30


def test_train_refuses_a_batch_that_cannot_fit_before_any_work(tiny_ds, tmp_path, capsys, monkeypatch):
    # 212: 0.25 GiB said to be available, and the CPU allocator's failure injected above 40 images: batches whose
    # data alone is over 0.25 GiB are not run, the others run one real iteration, halved until one fits
    out = tmp_path / "m"
    calls: list = []
    monkeypatch.setattr(train_memory, "available_memory", lambda device: (_GIB // 4, "available"))
    original = AECNNMethod.train_step

    def train_step(self, batch):
        calls.append(len(batch.pair_a))
        if len(batch.pair_a) > 40:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 4398046511104 bytes.")
        return original(self, batch)

    monkeypatch.setattr(AECNNMethod, "train_step", train_step)
    run = s2s(capsys, "train", tiny_ds, "--method", "aecnn", "--out", out, "--batch-size", "100000", "--device", "cpu",
              "-q")  # fmt: skip
    assert_usage_error(run, "--batch-size 100000 does not fit: one aecnn iteration ran out of memory, "
                            "0.25 GiB available: use --batch-size 24 or less")  # fmt: skip
    # the largest batches were refused on their data alone, the others ran until 24
    assert calls[-2:] == [48, 24] and all(n > 40 for n in calls[:-1]) and calls[0] < 100_000 and not out.exists()

    # the message names the step of a two-step method (1 MiB said to be available, every iteration out of memory)
    from survey2survey.methods.ours import Ours

    monkeypatch.setattr(train_memory, "available_memory", lambda device: (2**20, "available"))

    def out_of_memory(self, batch):
        raise MemoryError("Unable to allocate 4.00 TiB for an array")

    monkeypatch.setattr(Ours, "train_step", out_of_memory)
    run = s2s(capsys, "train", tiny_ds, "--method", "ours", "--out", out, "--batch-size", "100000", "--device", "cpu",
              "-q")  # fmt: skip
    assert_usage_error(run, "--batch-size 100000 does not fit: one ours step-1 iteration ran out of memory, "
                            "0.00098 GiB available: not even the smallest batch fits")  # fmt: skip
    assert not out.exists()


OUT_OF_MEMORY = [
    ("cpu_allocator", RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 4398046511104 "
                                   "bytes. Error code 12 (Cannot allocate memory)")),
    ("cuda", torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
                                    "79.11 GiB of which 1.19 GiB is free. Including non-PyTorch memory, ...")),
    ("numpy", MemoryError("Unable to allocate 4.00 TiB for an array with shape (100000, 5, 1448, 1448)")),
]  # fmt: skip


@pytest.mark.parametrize("kind, error", OUT_OF_MEMORY, ids=[k for k, _ in OUT_OF_MEMORY])
def test_train_out_of_memory_during_a_step_is_one_line_and_resumable(tiny_ds, tmp_path, capsys, monkeypatch, kind,
                                                                      error):  # fmt: skip
    # 213: the third training step runs out of memory (the memory probes' batches say iteration 0)
    original = AECNNMethod.train_step

    def train_step(self, batch):
        if batch.iteration == 2:
            raise error
        return original(self, batch)

    monkeypatch.setattr(AECNNMethod, "train_step", train_step)
    out = tmp_path / "m"
    args = ["train", tiny_ds, "--method", "aecnn", "--out", out, "-n", "4", "--batch-size", "2", "--checkpoint-every",
            "2", "--log-every", "1", "--device", "cpu", "-q"]  # fmt: skip
    run = s2s(capsys, *args)
    assert run.code == 1 and "Traceback" not in run.text, run.text
    (line,) = run.error_lines()
    first = str(error).split(". ")[0]
    assert line.startswith(f"s2s: error: {out / 'train'}: out of memory at iteration 3 of aecnn with --batch-size 2 "
                           f"on cpu ({first}"), line  # fmt: skip
    assert line.endswith("): free memory and --resume from ckpt-00000002.pt, or start again with a smaller "
                         "--batch-size (--overwrite)"), line  # fmt: skip
    assert not (out / "config.json").exists()
    assert [p.name for p in list_checkpoints(out / "train")] == ["ckpt-00000002.pt"]

    monkeypatch.setattr(AECNNMethod, "train_step", original)  # memory freed: the run goes on from its checkpoint
    run = s2s(capsys, *args, "--resume")
    assert run.code == 0, run.text
    assert [int(r["iteration"]) for r in _rows(out / "train" / "losses.csv")] == [1, 2, 3, 4]
    assert json.loads((out / "config.json").read_text())["iterations"] == 4


def test_train_resume_refuses_a_batch_that_no_longer_fits(tiny_ds, tmp_path, capsys, monkeypatch):
    # 214: resumed where less memory is available than when the run started
    out = tmp_path / "m"
    args = ["train", tiny_ds, "--method", "aecnn", "--out", out, "--batch-size", "2", "--checkpoint-every", "1",
            "--device", "cpu", "-q"]  # fmt: skip
    assert s2s(capsys, *args, "-n", "2").code == 0
    before = {p.name: p.read_bytes() for p in (out / "train").iterdir()}
    # 1 MiB said to be available, and every iteration out of memory: the process's own free heap may well hold a
    # batch of 2, so the allocator's failure is injected
    monkeypatch.setattr(train_memory, "available_memory", lambda device: (2**20, "available"))

    def train_step(self, batch):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1048576 bytes.")

    monkeypatch.setattr(AECNNMethod, "train_step", train_step)
    run = s2s(capsys, *args, "-n", "4", "--resume")
    assert_usage_error(run, "--batch-size 2 does not fit: one aecnn iteration ran out of memory, 0.00098 GiB available: ")
    assert run.error_lines()[0].endswith("not even the smallest batch fits: free memory or use a larger device")
    assert {p.name: p.read_bytes() for p in (out / "train").iterdir()} == before  # checkpoints and log untouched
