"""Training speed of ``ours`` (step 1 and step 2), plain eager fp32 against the optimised path.

    python bench/train_speed.py                     # CPU: batch 2, 2 timed iterations (checks it runs)
    python bench/train_speed.py --device cuda       # GPU: the paper's batch 24+24+24, 30 timed iterations

Each row builds the method's networks with a fixed seed and times full training
iterations (``method.train_step``: forward passes, losses, clipped Adam updates in the
paper's order) on mini-batches already on the device, with a device synchronisation
only around the timed loop.  Rows, measured in the same run:

* ``plain fp32``  -- the plain port: the networks as the paper writes them (up-sampling,
  then convolution), fp32 (no TF32 on CUDA), contiguous tensors, no compilation, Adam
  with ``foreach`` kernels; the ``x plain`` column is relative to it;
* ``eager fp32``  -- the same with every convolution after a nearest x2 up-sampling
  computed on the small grid (``nets.layers.fold_upsampling``, same function, fewer FLOPs);
* ``eager bf16``  -- bf16 autocast + channels-last;
* ``optimised``   -- what ``s2s train`` uses on a GPU: bf16 autocast, channels-last,
  ``torch.compile`` d networks, fused Adam.  On CPU only with ``--compile`` (it checks
  that the compiled path runs; compiling takes minutes on a small CPU).

TFLOP/s counts the FLOPs of one iteration with ``torch.utils.flop_counter`` (convolutions
and matrix products, forward and backward; the discriminators' FFTs are not counted),
divided by the measured time; on an H100 the share of its dense bf16 peak (989 TFLOP/s,
SXM) is printed too.  A last row measures the mini-batch loader alone (background thread,
pinned memory, memory-mapped arrays of a temporary dataset): it must deliver batches
faster than the optimised step consumes them.

Targets on one H100 (issue 4): step 1 <= 30 ms/it, step 2 <= 15 ms/it at batch 24+24+24.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from survey2survey.data.loader import Batch, MiniBatchLoader, open_dataset
from survey2survey.methods import get_method
from survey2survey.nets.layers import fold_upsampling
from survey2survey.surveys import get_survey
from survey2survey.runtime.device import set_cuda_fp32_precision

H100_BF16_PEAK = 989e12  # dense bf16 FLOP/s, H100 SXM


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_batch(step: int, batch: int, device, channels_last: bool, seed: int = 0) -> list[Batch]:
    """A few different model-space mini-batches on the device (stretched-flux-like values)."""
    a, b = get_survey("sdss"), get_survey("cfht")
    g = torch.Generator().manual_seed(seed)

    def images(n: int, s) -> torch.Tensor:
        x = 0.1 * torch.randn(n, s.n_bands, s.cutout_size, s.cutout_size, generator=g)
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, s.cutout_size), torch.linspace(-1, 1, s.cutout_size), indexing="ij")
        x += torch.exp(-(xx**2 + yy**2) / 0.05)  # a central "galaxy"
        x = x.to(device)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    out = []
    for i in range(3):
        if step == 1:
            out.append(Batch(a=images(batch, a), b=images(batch, b), iteration=i))
        else:
            out.append(Batch(a=images(batch, a), b=images(batch, b), pair_a=images(batch, a), pair_b=images(batch, b), iteration=i))
    return out


def build(step: int, device, *, amp: bool, channels_last: bool, compile: bool, plain: bool = False):
    a, b = get_survey("sdss"), get_survey("cfht")
    torch.manual_seed(0)
    method = get_method("ours")({"a": a, "b": b}, step=step)
    if not plain:  # what s2s train runs; plain = the networks exactly as written (Fig. 2)
        for net in method.nets.values():
            fold_upsampling(net)
    method.setup(
        device,
        amp_dtype=torch.bfloat16 if amp else None,
        channels_last=channels_last,
        compile=compile,
        lr=1e-4,
    )
    if not compile and device.type == "cuda":
        # The plain port: Adam with foreach kernels rather than the fused ones.
        for group, opt in method.optimizers.items():
            for pg in opt.param_groups:
                pg["fused"], pg["foreach"] = None, True
    return method


def count_flops(step: int, device, batch: int, plain: bool = False) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    method = build(step, device, amp=False, channels_last=False, compile=False, plain=plain)
    batches = random_batch(step, batch, device, channels_last=False)
    counter = FlopCounterMode(display=False)
    with counter:
        method.train_step(batches[0])
    return float(counter.get_total_flops())


def time_row(step: int, device, batch: int, iters: int, warmup: int, *, amp: bool, channels_last: bool, compile: bool,
             plain: bool = False, tf32: bool = True):
    if device.type == "cuda":
        set_cuda_fp32_precision(tf32)
    return _time_row(step, device, batch, iters, warmup, amp=amp, channels_last=channels_last, compile=compile,
                     plain=plain)


def _time_row(step: int, device, batch: int, iters: int, warmup: int, *, amp: bool, channels_last: bool, compile: bool,
              plain: bool = False):
    method = build(step, device, amp=amp, channels_last=channels_last, compile=compile, plain=plain)
    batches = random_batch(step, batch, device, channels_last)
    t0 = time.perf_counter()
    for i in range(warmup):
        method.train_step(batches[i % len(batches)])
    sync(device)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(iters):
        losses = method.train_step(batches[i % len(batches)])
        method.lr_step()
    sync(device)
    ms = (time.perf_counter() - t0) / iters * 1000.0
    finite = all(torch.isfinite(v).item() for v in losses.values())
    return ms, warm, finite


def loader_rate(device, batch: int, n_batches: int) -> float:
    """Batches/s of the mini-batch loader alone (host placement, background thread)."""
    a, b = get_survey("sdss"), get_survey("cfht")
    with tempfile.TemporaryDirectory(prefix="s2s-bench-") as tmp:
        root = Path(tmp)
        n_un, n_pair = max(4 * batch, 16), max(2 * batch, 8)
        shapes = {
            "unpaired_a": (n_un, 5, 64, 64), "unpaired_b": (n_un, 5, 136, 136),
            "train_a": (n_pair, 5, 64, 64), "train_b": (n_pair, 5, 136, 136),
        }  # fmt: skip
        rng = np.random.default_rng(0)
        for name, shape in shapes.items():
            arr = np.lib.format.open_memmap(root / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)
            arr[:] = rng.standard_normal(shape, dtype=np.float32)
            arr.flush()
            del arr
        info = {
            "format": "s2s-dataset/1", "surveys": {"a": a.to_dict(), "b": b.to_dict()},
            "arrays": {k: {"file": f"{k}.npy", "shape": list(v)} for k, v in shapes.items()},
            "fingerprint": "bench", "transform": "lin2021-stretch",
        }  # fmt: skip
        (root / "dataset.json").write_text(json.dumps(info))
        ds = open_dataset(root)
        loader = MiniBatchLoader(
            ds, batch_unpaired=batch, batch_paired=batch, device=device, placement="host",
            channels_last=device.type == "cuda",
        )  # fmt: skip
        next(loader)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(n_batches):
            batch_ = next(loader)
        _ = batch_.pair_b.sum().item()  # wait for the last copy
        rate = n_batches / (time.perf_counter() - t0)
        loader.close()
        del ds, loader
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="per part (default 24 on GPU, 2 on CPU)")
    parser.add_argument("--iterations", type=int, default=None, help="timed iterations (default 30 GPU, 2 CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first iterations (default 10 GPU, 1 CPU)")
    parser.add_argument("--steps", default="1,2")
    parser.add_argument("--compile", action="store_true", help="CPU: add the optimised (compiled) row")
    args = parser.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch_size or (24 if cuda else 2)
    iters = args.iterations or (30 if cuda else 2)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    if cuda:
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(f"device {name}, torch {torch.__version__}, batch {batch}+{batch}+{batch}, "
          f"{iters} timed iterations after {warmup} warm-up")  # fmt: skip

    rows = [
        ("plain fp32", dict(amp=False, channels_last=False, compile=False, plain=True, tf32=False)),
        ("eager fp32", dict(amp=False, channels_last=False, compile=False, tf32=False)),
        ("eager bf16", dict(amp=True, channels_last=True, compile=False)),
    ]
    if cuda or args.compile:
        rows += [("optimised", dict(amp=True, channels_last=True, compile=True))]

    print(f"{'step':>4}  {'path':<14} {'ms/it':>9} {'x plain':>8} {'TFLOP/s':>8} {'% peak':>7} {'warm-up s':>9}  finite")
    for step in (int(s) for s in args.steps.split(",")):
        flops = {plain: count_flops(step, device, batch, plain) for plain in (True, False)}
        base = None
        for label, kw in rows:
            ms, warm, finite = time_row(step, device, batch, iters, warmup, **kw)
            base = base or ms
            f = flops[kw.get("plain", False)]
            tflops = f / (ms / 1000.0) / 1e12
            peak = f"{100 * f / (ms / 1000.0) / H100_BF16_PEAK:6.1f}%" if "H100" in name else "      -"
            print(f"{step:>4}  {label:<14} {ms:9.1f} {base / ms:7.2f}x {tflops:8.2f} {peak:>7} {warm:9.1f}  {finite}",
                  flush=True)
        print(f"      (step {step}: {flops[True] / 1e9:.1f} GFLOP per iteration as written, "
              f"{flops[False] / 1e9:.1f} with the up-sampling folded into the convolutions)")
    rate = loader_rate(device, batch, n_batches=20 if cuda else 5)
    print(f"loader: {rate:.1f} batches/s ({1000 / rate:.1f} ms per batch of {batch}+{batch}+{batch}, background thread)")


if __name__ == "__main__":
    main()
