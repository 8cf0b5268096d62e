"""Training: the mini-batch loader, every method, checkpoints and resume (CPU, small).

The every-method test runs at the real sizes (sdss 64 px, cfht 136 px); tests that need
more iterations use two small made-up surveys (36 and 72 px) so they stay fast on CPU.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from _tiny_dataset import make_tiny_dataset
from survey2survey.training import memory as tm
from survey2survey.data.loader import MiniBatchLoader, apply_d4, d4_index_maps, open_dataset
from survey2survey.errors import ModelError, UsageError
from survey2survey.methods import METHODS, get_method
from survey2survey.model import load_model
from survey2survey.train import TrainOptions, list_checkpoints, load_checkpoint, train

SMALL = (36, 72)  # the smallest grids every method's networks accept (AugCGAN's encoder: > 32 px)
TINY = (24, 48)  # for the tests that need many iterations (all but augcgan)


@pytest.fixture(scope="module")
def real_dataset(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("real") / "ds", regridded=True)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("small") / "ds", sizes=SMALL, regridded=True)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "ds", sizes=TINY)


def _quick(**kw) -> TrainOptions:
    base = dict(iterations=2, batch_unpaired=2, batch_paired=1, log_every=1, checkpoint_every=1000, progress=False)
    base.update(kw)
    return TrainOptions(**base)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# --- the loader ------------------------------------------------------------------------------


def test_d4_maps_match_rot90_and_flip():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    maps = d4_index_maps(5)
    seen = set()
    for t in range(8):
        want = torch.rot90(x, t % 4, dims=(2, 3))
        if t >= 4:
            want = torch.flip(want, dims=(3,))
        got = apply_d4(x, torch.full((2,), t), maps)
        assert torch.equal(got, want), t
        seen.add(tuple(got[0, 0].flatten().tolist()))
    assert len(seen) == 8  # the eight elements of D4 are distinct


def test_loader_pairs_share_the_transform_and_batches_are_resumable(tmp_path):
    root = make_tiny_dataset(tmp_path / "ds", n_pairs=6, regridded=True)
    # Make the regridded b of each pair a copy of its a: after augmentation they must
    # still be equal, which only holds if both got the same transform.
    np.save(root / "train_b_on_a.npy", np.load(root / "train_a.npy"))
    ds = open_dataset(root)
    loader = MiniBatchLoader(ds, batch_unpaired=3, batch_paired=5, regridded=True, seed=7, prefetch=2)
    batches = [next(loader) for _ in range(4)]
    loader.close()
    for i, batch in enumerate(batches):
        assert batch.iteration == i
        assert batch.a.shape == (3, 5, 64, 64) and batch.b.shape == (3, 5, 64, 64)
        assert batch.pair_a.shape == (5, 5, 64, 64)
        assert torch.equal(batch.pair_a, batch.pair_b)
    _, codes = loader.draw(0)
    assert np.array_equal(codes["pair_a"], codes["pair_b"])
    assert len(set(np.concatenate([loader.draw(i)[1]["a"] for i in range(8)]).tolist())) > 1  # transforms vary

    # Stateless per iteration: a resumed loader continues with the same batches.
    again = MiniBatchLoader(ds, batch_unpaired=3, batch_paired=5, regridded=True, seed=7)
    again.load_state_dict(loader.state_dict() | {"iteration": 2})
    nxt = next(again)
    again.close()
    assert nxt.iteration == 2 and torch.equal(nxt.a, batches[2].a) and torch.equal(nxt.pair_b, batches[2].pair_b)
    assert torch.equal(again.batch_at(3).b, batches[3].b)
    other_seed = MiniBatchLoader(ds, batch_unpaired=3, batch_paired=5, regridded=True, seed=8).batch_at(0)
    assert not torch.equal(other_seed.a, batches[0].a)


def test_loader_reads_only_the_parts_asked_for(real_dataset):
    ds = open_dataset(real_dataset)
    batch = MiniBatchLoader(ds, batch_paired=3, parts=("paired",), augment=False).batch_at(0)
    assert batch.a is None and batch.b is None
    assert batch.pair_a.shape == (3, 5, 64, 64) and batch.pair_b.shape == (3, 5, 136, 136)
    # Without augmentation the rows are the dataset's rows.
    idx, _ = MiniBatchLoader(ds, batch_paired=3, parts=("paired",), augment=False).draw(0)
    assert np.array_equal(batch.pair_b.numpy(), ds.arrays["train_b"][idx["pair_b"]])


def test_bad_dataset_is_a_one_line_usage_error(tmp_path):
    with pytest.raises(UsageError, match="dataset.json: missing"):
        open_dataset(tmp_path)
    root = make_tiny_dataset(tmp_path / "ds", n_unpaired=2, n_pairs=2, n_test=1)
    np.save(root / "train_b.npy", np.zeros((2, 5, 64, 64), np.float32))
    with pytest.raises(UsageError, match=r"train_b.npy: shape"):
        open_dataset(root)
    info = json.loads((root / "dataset.json").read_text())
    info["format"] = "something-else"
    (root / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(UsageError, match="format"):
        open_dataset(root)
    ds = make_tiny_dataset(tmp_path / "plain", n_unpaired=2, n_pairs=2, n_test=1)
    with pytest.raises(UsageError, match="regridded"):
        train(ds, tmp_path / "m", _quick(method="cyclegan"))


# --- every method ------------------------------------------------------------------------------


def test_the_method_registry_names_its_classes_and_feeds_the_cli():
    import typer.main

    from survey2survey.cli import app
    from survey2survey.commands import train as command
    from survey2survey.methods import method_help

    for name, info in METHODS.items():
        assert get_method(name).name == name == info.name
        assert get_method(name).one_way == (name in ("pix2pix", "aecnn"))
    doc = " ".join(command.__doc__.split())
    assert method_help() in doc and "pix2pix (a)" in doc and "augcgan (h)" in doc
    option = next(p for p in typer.main.get_command(app).commands["train"].params if p.name == "method")
    assert ", ".join(METHODS) in option.help
    with pytest.raises(UsageError, match="unknown method 'nope' \\(known: ours, pix2pix, "):
        get_method("nope")


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_trains_and_writes_a_loadable_model(name, real_dataset, small_dataset, tmp_path):
    cls = get_method(name)
    # Two iterations at batch 2 + 1 on the small surveys: the updates run and repeat.
    small = train(small_dataset, tmp_path / "small", _quick(method=name))
    for key, summary in small.steps.items():
        losses = summary["last_losses"]
        assert losses and all(np.isfinite(v) for v in losses.values()), (key, losses)
        run_dir = tmp_path / "small" / "train" / (key if key.startswith("step") else "")
        assert [int(r["iteration"]) for r in _rows(run_dir / "losses.csv")] == [1, 2]
        assert [p.name for p in list_checkpoints(run_dir)] == ["ckpt-00000002.pt"]

    # One iteration at the real sizes (sdss 64 px, cfht 136 px; cfht on sdss's grid for
    # the regridded methods): the model loads and each direction lands on its grid.
    out = tmp_path / "model"
    result = train(real_dataset, out, _quick(method=name, iterations=1, batch_unpaired=1, batch_paired=1))
    model = load_model(out)
    cfg = model.config
    assert cfg["method"] == name and cfg["format"] == "s2s-model/1"
    assert cfg["dataset_fingerprint"] == json.loads((real_dataset / "dataset.json").read_text())["fingerprint"]
    assert cfg["sizes"]["a"] == [5, 64, 64]
    assert cfg["sizes"]["b"] == ([5, 64, 64] if cls.regridded else [5, 136, 136])
    assert cfg["regridded"] == cls.regridded
    assert cfg["iterations"] == len(cls.steps)
    assert set(cfg["timings"]) == set(result.steps)
    expected = {"pix2pix": {"sdss->cfht"}, "aecnn": {"sdss->cfht"}}.get(name, {"sdss->cfht", "cfht->sdss"})
    assert set(cfg["directions"]) == expected
    for direction, parts in cfg["directions"].items():
        src, dst = direction.split("->")
        gen = model.modules[parts["generator"]]
        side = {"sdss": 64, "cfht": cfg["sizes"]["b"][-1]}
        x = torch.zeros(1, 5, side[src], side[src])
        y = gen(x, torch.zeros(1, parts["latent_dim"])) if "latent_dim" in parts else gen(x)
        assert y.shape == (1, 5, side[dst], side[dst])
    if name in ("ours", "ours-noauto", "ours-phys"):
        assert cfg["directions"]["sdss->cfht"]["noise_emulator"] == "noise_emulator_cfht"
        assert cfg["directions"]["cfht->sdss"]["noise_emulator"] == "noise_emulator_sdss"
        assert model.modules["noise_emulator_cfht"].sample(1, 136, 136).shape == (1, 5, 136, 136)
    else:
        assert all(p["noise_emulator"] is None for p in cfg["directions"].values())
    if name == "ours":
        # Step 2 trained with the step-1 noise emulators, frozen: the saved ones are them.
        ckpt = out / "train" / "step1" / "ckpt-00000001.pt"
        step1 = torch.load(ckpt, weights_only=True)["state"]["modules"]["noise_emulator_cfht"]
        ne = model.modules["noise_emulator_cfht"].state_dict()
        assert all(torch.equal(ne[k], step1[k]) for k in ne)


def test_gpu_code_path_runs_on_cpu(tiny_dataset, tmp_path):
    # bf16 autocast and channels-last, as on a GPU (torch.compile is left out: minutes on CPU).
    result = train(tiny_dataset, tmp_path / "m", _quick(method="ours", precision="bf16", channels_last="yes"))
    for key in ("step1", "step2"):
        assert result.steps[key]["precision"] == "bf16-autocast" and result.steps[key]["channels_last"]
        assert all(np.isfinite(v) for v in result.steps[key]["last_losses"].values())
    model = load_model(tmp_path / "m")
    assert all(p.dtype == torch.float32 for m in model.modules.values() for p in m.parameters())


def test_pix2pix_direction_option(tiny_dataset, tmp_path):
    train(tiny_dataset, tmp_path / "m", _quick(method="pix2pix", direction="small_b->small_a", iterations=1))
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["directions"] == {"small_b->small_a": {"generator": "generator_small_b_to_small_a", "noise_emulator": None}}
    with pytest.raises(UsageError, match="--direction"):
        train(tiny_dataset, tmp_path / "n", _quick(method="pix2pix", direction="sdss->des"))
    with pytest.raises(UsageError, match="one-way"):
        train(tiny_dataset, tmp_path / "n", _quick(method="cyclegan-adapted", direction="small_a->small_b"))


# --- learning, checkpoints, resume -------------------------------------------------------------------


def test_autoencoder_loss_falls_on_a_fixed_seed(tiny_dataset, tmp_path):
    # L_auto (Eq. 1) on the whole unpaired set, before and after a few iterations: a
    # fixed set, because the per-batch losses of 2-image batches vary too much.
    ds = open_dataset(tiny_dataset)
    x = {d: torch.from_numpy(np.array(ds.arrays[f"unpaired_{d}"])) for d in "ab"}

    def L_auto(autoencoders) -> float:
        with torch.no_grad():
            return float(sum(torch.mean((autoencoders[d](x[d]) - x[d]) ** 2) for d in "ab"))

    seed = 3
    torch.manual_seed(seed)  # what train() does before building the networks
    initial = get_method("ours")(ds.surveys, step=1).nets
    before = L_auto({"a": initial["autoencoder_small_a"], "b": initial["autoencoder_small_b"]})
    result = train(tiny_dataset, tmp_path / "m", _quick(method="ours", step=1, iterations=8, seed=seed, lr=3e-4))
    model = load_model(tmp_path / "m")
    after = L_auto({"a": model.modules["autoencoder_small_a"], "b": model.modules["autoencoder_small_b"]})
    print(f"L_auto on the fixed set: {before:.4f} -> {after:.4f}")  # measured: 0.1154 -> 0.0684
    assert after < 0.75 * before, (before, after)
    assert len(_rows(tmp_path / "m" / "train" / "step1" / "losses.csv")) == 8
    cfg = result.config
    assert cfg["step"] == 1 and set(cfg["directions"]) == {"small_a->small_a", "small_b->small_b"}
    # Step 2 alone in the same directory takes the noise emulators from the step-1 model.
    train(tiny_dataset, tmp_path / "m", _quick(method="ours", step=2, iterations=1))
    cfg2 = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg2["step"] == 2 and set(cfg2["steps"]) == {"step1", "step2"}
    assert cfg2["directions"]["small_a->small_b"]["noise_emulator"] == "noise_emulator_small_b"
    # ... or from another directory with --init; its noise emulators are the step-1 ones.
    train(tiny_dataset, tmp_path / "g", _quick(method="ours", step=2, iterations=1, init=str(tmp_path / "m")))
    ne = load_model(tmp_path / "g").modules["noise_emulator_small_a"].state_dict()
    assert all(torch.equal(v, model.modules["noise_emulator_small_a"].state_dict()[k]) for k, v in ne.items())
    with pytest.raises(UsageError, match="--init"):
        train(tiny_dataset, tmp_path / "h", _quick(method="ours", step=1, init=str(tmp_path / "m")))
    with pytest.raises(UsageError, match="no step-1 model"):
        train(tiny_dataset, tmp_path / "h", _quick(method="ours", step=2))


def test_resume_reproduces_the_uninterrupted_run(tiny_dataset, tmp_path):
    common = dict(method="ours", step=1, batch_unpaired=2, seed=5, checkpoint_every=2)
    train(tiny_dataset, tmp_path / "full", _quick(iterations=4, **common))
    train(tiny_dataset, tmp_path / "cut", _quick(iterations=2, **common))
    with pytest.raises(UsageError, match="earlier run"):
        train(tiny_dataset, tmp_path / "cut", _quick(iterations=4, **common))
    with pytest.raises(UsageError, match="--lr"):
        train(tiny_dataset, tmp_path / "cut", _quick(iterations=4, resume=True, lr=3e-4, **common))
    train(tiny_dataset, tmp_path / "cut", _quick(iterations=4, resume=True, **common))
    full = _rows(tmp_path / "full" / "train" / "step1" / "losses.csv")
    cut = _rows(tmp_path / "cut" / "train" / "step1" / "losses.csv")
    assert [r["iteration"] for r in cut] == ["1", "2", "3", "4"]
    for key in ("L_auto", "L_adv_D", "L_adv_NE", "lr"):
        assert [r[key] for r in cut] == [r[key] for r in full], key
    a = load_model(tmp_path / "full").modules["noise_emulator_small_b"].state_dict()
    b = load_model(tmp_path / "cut").modules["noise_emulator_small_b"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_keeps_the_runs_iterations_and_periods(tiny_dataset, tmp_path, capsys):
    """`--resume` without -n, --checkpoint-every, --log-every takes the run's own (they had gone
    back to 60,000 / 5,000 / 100: a short run resumed as the paper's, with no checkpoint for hours)."""
    out = tmp_path / "m"
    opts = dict(method="aecnn", batch_unpaired=2, batch_paired=1, progress=False)
    train(tiny_dataset, out, TrainOptions(iterations=3, checkpoint_every=1, log_every=1, **opts))
    capsys.readouterr()
    result = train(tiny_dataset, out, TrainOptions(resume=True, **{**opts, "progress": True}))
    assert "resuming aecnn at iteration 3 of 3 (checkpoint every 1, log every 1)" in capsys.readouterr().err
    train(tiny_dataset, out, TrainOptions(resume=True, **opts))  # --quiet: no start line
    assert "resuming" not in capsys.readouterr().err
    assert result.steps["train"]["iterations"] == 3
    # a larger -n extends the run, checkpointing and logging at the run's periods
    train(tiny_dataset, out, TrainOptions(resume=True, iterations=5, **opts))
    run_dir = out / "train"
    assert [p.name for p in list_checkpoints(run_dir)] == ["ckpt-00000005.pt", "ckpt-00000004.pt"]
    assert [r["iteration"] for r in _rows(run_dir / "losses.csv")] == ["1", "2", "3", "4", "5"]
    # a two-step method's step-2 run resumed without --step names the step to give
    step1, step2 = tmp_path / "s1", tmp_path / "s2"
    quick = dict(method="ours", iterations=1, progress=False, batch_unpaired=2, batch_paired=1)
    train(tiny_dataset, step1, TrainOptions(step=1, **quick))
    train(tiny_dataset, step2, TrainOptions(step=2, init=str(step1), **quick))
    with pytest.raises(UsageError, match=r"checkpoints of step2: resume it with --step 2"):
        train(tiny_dataset, step2, TrainOptions(method="ours", resume=True, progress=False))
    # a one-step method in a directory that also holds another run's step-2 checkpoints: no --step hint
    lone = tmp_path / "lone"
    (lone / "train" / "step2").mkdir(parents=True)
    (lone / "train" / "step2" / "ckpt-00000001.pt").write_bytes(b"")
    with pytest.raises(UsageError, match=r"no checkpoint to resume from \(drop --resume"):
        train(tiny_dataset, lone, TrainOptions(resume=True, **opts))
    # killed between the steps (step 2 has no checkpoint yet): step 2 keeps step 1's -n and periods
    import survey2survey.train as train_module

    both = tmp_path / "both"
    quick2 = dict(method="ours", progress=False, batch_unpaired=2, batch_paired=1)
    train(tiny_dataset, both, TrainOptions(iterations=2, checkpoint_every=1, log_every=1, **quick2))
    for p in list_checkpoints(both / "train" / "step2"):
        p.unlink()
    seen = {}
    real_loop = train_module._loop

    def loop(s, opts):
        seen[s.step] = (opts.iterations, opts.checkpoint_every, opts.log_every)
        assert opts.iterations <= 2, "the schedule was lost at the step boundary"
        return real_loop(s, opts)

    train_module._loop = loop
    try:
        train(tiny_dataset, both, TrainOptions(resume=True, **quick2))
    finally:
        train_module._loop = real_loop
    assert seen == {1: (2, 1, 1), 2: (2, 1, 1)}
    # a checkpoint written before schedules were kept: the defaults, and a warning that says so
    latest = list_checkpoints(run_dir)[0]
    state = torch.load(latest, weights_only=True)
    del state["schedule"]
    torch.save(state, latest)
    capsys.readouterr()
    train(tiny_dataset, out, TrainOptions(resume=True, iterations=5, **opts))
    err = capsys.readouterr().err
    assert "s2s: warning:" in err and "checkpoint every 5000" in err and "does not record -n" in err


class _Exploit:
    """A pickle that runs code when unpickled without ``weights_only``."""

    def __init__(self, sentinel: str):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.mkdir, (self.sentinel,))


def test_checkpoints_never_run_code_and_damage_falls_back(real_dataset, tmp_path, capsys):
    out = tmp_path / "m"
    opts = _quick(method="aecnn", iterations=3, checkpoint_every=1, batch_paired=2)
    train(real_dataset, out, opts)
    run_dir = out / "train"
    assert [p.name for p in list_checkpoints(run_dir)] == ["ckpt-00000003.pt", "ckpt-00000002.pt"]  # last two kept

    # A newer "checkpoint" that would run code: refused, never executed.
    sentinel = tmp_path / "pwned"
    with open(run_dir / "ckpt-00000009.pt", "wb") as fh:
        pickle.dump({"format": "s2s-checkpoint/1", "x": _Exploit(str(sentinel))}, fh, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="mkdir"):
        torch.load(run_dir / "ckpt-00000009.pt", weights_only=True)
    state, path = load_checkpoint(run_dir, warn=lambda m: None)
    assert path.name == "ckpt-00000003.pt" and state["iteration"] == 3
    assert not sentinel.exists()
    (run_dir / "ckpt-00000009.pt").unlink()

    # A truncated latest checkpoint: resume warns and continues from the previous one.
    latest = run_dir / "ckpt-00000003.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    capsys.readouterr()
    train(real_dataset, out, TrainOptions(**{**opts.__dict__, "iterations": 4, "resume": True}))
    err = capsys.readouterr().err
    assert "ckpt-00000003.pt: unusable checkpoint" in err and "falling back to ckpt-00000002.pt" in err
    rows = _rows(run_dir / "losses.csv")
    assert [r["iteration"] for r in rows] == ["1", "2", "3", "4"]
    assert not sentinel.exists()

    for p in list_checkpoints(run_dir):
        p.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="no usable checkpoint"):
        load_checkpoint(run_dir, warn=lambda m: None)


def test_cli_train_and_its_errors(tiny_dataset, tmp_path, capsys):
    from survey2survey.cli import main

    out = tmp_path / "m"
    code = main(["train", str(tiny_dataset), "--method", "aecnn", "--out", str(out), "-n", "2", "--batch-size", "2", "-q"])
    assert code == 0, capsys.readouterr().err
    assert (out / "weights.safetensors").exists() and json.loads((out / "config.json").read_text())["method"] == "aecnn"
    capsys.readouterr()
    assert main(["train", str(tmp_path / "nowhere"), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("s2s: error:") and "nowhere" in err[0]
    assert main(["train", str(tiny_dataset), "--method", "nope", "--out", str(tmp_path / "x"), "-q"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["train", str(tiny_dataset), "--method", "aecnn", "--step", "2", "--out", str(tmp_path / "x")]) == 2
    assert main(["train", str(tiny_dataset), "--method", "aecnn", "--out", str(out), "-q"]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "x", ignore_errors=True)


# --- memory: the probe behind the --batch-size guard ---------------------------------------------------

GIB = 2**30
MIB = 2**20


def _fake_iteration(per_image: float, fixed: float = 0.0, budget_seen: list | None = None):
    """An iteration that needs ``fixed + per_image * (bu + bp)`` bytes of ``budget["bytes"]``."""
    budget = {"bytes": 0}

    def run_once(bu: int, bp: int) -> None:
        if budget_seen is not None:
            budget_seen.append((bu, bp))
        if fixed + per_image * (bu + bp) > budget["bytes"]:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 B")

    return run_once, budget


def test_batch_guard_halves_until_an_iteration_fits_and_names_it(monkeypatch):
    cpu = torch.device("cpu")
    seen: list = []
    run_once, budget = _fake_iteration(0.5 * GIB, 0.5 * GIB, seen)  # 1 GiB per image of each part

    @contextlib.contextmanager
    def limit(device, nbytes):  # the guard's budget, as the fake iteration sees it
        budget["bytes"] = nbytes
        yield

    monkeypatch.setattr(tm, "memory_limit", limit)
    tm.check_batch_fits(run_once, 17, 17, parts=("unpaired", "paired"), label="toy", available=(20 * GIB, "available"),
                        device=cpu)  # 17.5 GiB: fits, one probe  # fmt: skip
    assert seen == [(17, 17)]
    seen.clear()
    with pytest.raises(UsageError) as err:
        tm.check_batch_fits(run_once, 100_000, 100_000, parts=("unpaired", "paired"), label="toy",
                            available=(20 * GIB, "available"), device=cpu)  # fmt: skip
    # 100000, 50000, 25000, ... 24 (rounded to two digits), 12: the first that ran
    assert str(err.value) == ("--batch-size 100000 does not fit: one toy iteration ran out of memory, "
                              "20.0 GiB available: use --batch-size 12 or less")  # fmt: skip
    assert [bu for bu, _ in seen] == [100_000, 50_000, 25_000, 12_000, 6_200, 3_100, 1_500, 780, 390, 190, 97, 48,
                                      24, 12]  # fmt: skip
    with pytest.raises(UsageError, match=r"in each of 4 processes ran out of memory, .* use --batch-size 48 or less$"):
        tm.check_batch_fits(run_once, 400, 400, parts=("unpaired", "paired"), label="toy",
                            available=(20 * GIB, "free on GPU"), device="cuda", world=4)  # fmt: skip
    with pytest.raises(UsageError, match=r"^--batch-paired 3000 does not fit: .* use --batch-paired 11 or less$"):
        tm.check_batch_fits(run_once, 24, 3000, parts=("paired",), label="toy", available=(20 * GIB, "available"),
                            device=cpu)  # 0.5 + 0.5 * (24 + 11) <= 20 GiB  # fmt: skip
    with pytest.raises(UsageError, match="not even the smallest batch fits"):
        tm.check_batch_fits(run_once, 4, 4, parts=("unpaired", "paired"), label="toy", available=(GIB, "available"),
                            device=cpu)  # fmt: skip
    with pytest.raises(UsageError, match=r"free memory, or start again with --batch-size 12 or less \(--overwrite\)$"):
        tm.check_batch_fits(run_once, 24, 24, parts=("unpaired", "paired"), label="toy",
                            available=(20 * GIB, "available"), device=cpu, resumed=True)  # fmt: skip
    seen.clear()  # a batch whose data alone is over the budget is not run
    with pytest.raises(UsageError, match="use --batch-size 16 or less$"):
        tm.check_batch_fits(run_once, 64, 64, parts=("unpaired", "paired"), label="toy",
                            available=(20 * GIB, "available"), device=cpu,
                            data_bytes=lambda bu, bp: (bu + bp) * 0.4 * GIB)  # fmt: skip
    assert [bu for bu, _ in seen] == [16]  # 64 and 32 refused on their data alone (51 and 26 GiB)


def test_an_error_other_than_memory_goes_through_the_guard():
    def run_once(bu, bp):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        tm.check_batch_fits(run_once, 4, 4, parts=("unpaired",), label="toy", available=(GIB, "available"),
                            device=torch.device("cpu"))  # fmt: skip



def _fail_above(monkeypatch, cls, limit: int, calls: list) -> None:
    """Make ``cls``'s training step run out of memory, as the CPU allocator says it, above ``limit`` images."""
    original = cls.train_step

    def train_step(self, batch):
        n = max(len(getattr(batch, f)) for f in ("a", "b", "pair_a", "pair_b") if getattr(batch, f, None) is not None)
        calls.append(n)
        if n > limit:
            raise RuntimeError(f"DefaultCPUAllocator: can't allocate memory: you tried to allocate {n} GiB")
        return original(self, batch)

    monkeypatch.setattr(cls, "train_step", train_step)


def test_the_probe_runs_real_iterations_halving_until_one_fits(tiny_dataset, monkeypatch):
    from survey2survey import train as train_module

    ds = open_dataset(tiny_dataset)
    cls = get_method("aecnn")
    opts = TrainOptions(method="aecnn", device="cpu")
    run = opts.run_values()
    cpu = torch.device("cpu")
    calls: list = []
    _fail_above(monkeypatch, cls, 40, calls)
    monkeypatch.setattr(tm, "available_memory", lambda device: (GIB // 4, "available"))
    state = torch.get_rng_state()
    with pytest.raises(UsageError) as err:
        train_module._check_memory(ds, cls, None, dict(run, batch_unpaired=4096, batch_paired=4096), opts, cpu, None,
                                   train_module.Ranks())  # fmt: skip
    assert torch.equal(state, torch.get_rng_state())  # the probes leave the random state as it was
    # 4096, 2000, ..., 64 (two significant digits), 32: the largest were refused on their data alone
    assert str(err.value) == ("--batch-size 4096 does not fit: one aecnn iteration ran out of memory, "
                              "0.25 GiB available: use --batch-size 32 or less")  # fmt: skip
    assert calls[-2:] == [64, 32] and all(n > 40 for n in calls[:-1]) and 4096 not in calls
    calls.clear()
    train_module._check_memory(ds, cls, None, dict(run, batch_unpaired=24, batch_paired=24), opts, cpu, None,
                               train_module.Ranks())  # a batch that fits: one iteration, no message  # fmt: skip
    assert calls == [24]


def test_out_of_memory_errors_are_recognised():
    assert tm.is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 B"))
    assert tm.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB."))
    assert tm.is_out_of_memory(MemoryError("Unable to allocate 1.00 TiB for an array"))
    assert not tm.is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not tm.is_out_of_memory(ValueError("out of memory"))


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_a_cgroup_memory_limit_lowers_the_memory_available(tmp_path, version):
    proc = tmp_path / "cgroup"
    if version == "v2":
        proc.write_text("0::/job.slice\n")
        d = tmp_path / "fs" / "job.slice"
        names = ("memory.max", "memory.current", "inactive_file")
    else:
        proc.write_text("4:memory:/job\n0::/\n")
        d = tmp_path / "fs" / "memory" / "job"
        names = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
    d.mkdir(parents=True)
    (d / names[0]).write_text(f"{8 * GIB}\n")
    (d / names[1]).write_text(f"{6 * GIB}\n")
    (d / "memory.stat").write_text(f"anon 1\n{names[2]} {GIB}\n")  # page cache the kernel can drop
    assert tm._cgroup_available(tmp_path / "fs", proc) == 3 * GIB
    (d / names[0]).write_text("max\n" if version == "v2" else f"{2**63 - 4096}\n")  # no limit
    assert tm._cgroup_available(tmp_path / "fs", proc) is None


def test_training_progress_in_a_log_is_whole_lines(tiny_dataset, tmp_path, capsys, monkeypatch):
    """Training's progress written to a log (not a terminal) is whole lines with the losses, not a
    bar cut at 80 columns (`80/2…`, `ETA 0:00:…`)."""
    monkeypatch.setenv("S2S_PROGRESS_INTERVAL", "0")
    capsys.readouterr()
    train(tiny_dataset, tmp_path / "m", TrainOptions(method="aecnn", iterations=3, batch_unpaired=2, batch_paired=1,
                                                     log_every=1, progress=True))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("aecnn: ")]
    assert lines and lines[-1].startswith("aecnn: 3/3 it (100%)") and "ETA" in lines[-1] and "L_" in lines[-1]
    assert not any("…" in line for line in lines)
