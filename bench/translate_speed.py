"""Translation speed, measured in one run: model-only images/s and FITS-to-FITS cutouts/s.

    python bench/translate_speed.py                          # CPU, small counts (a minute or two)
    python bench/translate_speed.py --device cuda --n 20000 --files 20000 --workers 15

Model-only rows time the generator plus a fresh noise-emulator draw (F = G + NE, z drawn on
the device from per-object seeds) on inputs already on the device, output left there.  The
baseline (the "x fp32" column) is the plain port in true fp32: up-sampling then
convolution as the paper writes it, contiguous tensors, eager.  Then the same network with
the up-sampling folded into the next convolution (``nets.layers.fold_upsampling``: the same
function with fewer FLOPs, printed in the notes) and channels-last, in fp32, TF32 (CUDA),
bf16 autocast and compiled, the engine call with host copies, and ONNX Runtime (CPU
provider, and CUDA when it really runs).

Speed is not the only thing a precision changes: the notes give, for bf16 and TF32 (real
on CUDA, emulated on a CPU by rounding the convolutions' inputs and weights to 10 mantissa
bits), the error of G(x) against fp32 in native units, per pixel against the emulated
noise sigma and for the summed flux of each image and band against sigma_sum, the noise of
that sum (the quantity of Lin & Fouchez Fig. 5).  bf16 rounds every weight the same way at
every pixel, so its flux error does not average out.

End-to-end rows run ``translate()`` on a directory of FITS cutouts into another
directory, and once more with the model replaced by a nearest-neighbour resize to show
what the reading/writing pipeline alone sustains, batched (a model's schedule) and per
cutout in the worker processes (a cheap translator's schedule).

Weights do not change the speed: without ``--model`` a model of the paper's architecture
with random weights is used.  Targets (SDSS -> CFHT): >= 20,000 images/s model-only and
>= 3,000 cutouts/s end to end on one H100 with 16 cores.
"""

from __future__ import annotations

import argparse
import copy
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from survey2survey.fits_io import Provenance, make_wcs, rescale_wcs, wcs_cards, write_cutout  # noqa: E402
from survey2survey.model import direction_shapes, load_model, model_directions, save_model  # noqa: E402
from survey2survey.nets import NoiseEmulator, generator_cfht_to_sdss, generator_sdss_to_cfht  # noqa: E402
from survey2survey.nets.layers import fold_upsampling  # noqa: E402
from survey2survey.pipelines.translate import translate, translate_with  # noqa: E402
from survey2survey.runtime.device import resolve_device, set_cuda_fp32_precision  # noqa: E402
from survey2survey.runtime.engines import OnnxEngine, TorchEngine  # noqa: E402
from survey2survey.runtime.graph import TranslationGraph  # noqa: E402
from survey2survey.runtime.seeds import noise_inputs, object_seed  # noqa: E402
from survey2survey.surveys import get_survey, to_model_space, to_native  # noqa: E402
from survey2survey.translators import Geometry, Prepared, Translator  # noqa: E402
from survey2survey.translators.learned import LearnedTranslator  # noqa: E402


def random_model(root: Path) -> Path:
    torch.manual_seed(0)
    sdss, cfht = get_survey("sdss"), get_survey("cfht")
    modules = {
        "generator_sdss_to_cfht": generator_sdss_to_cfht(), "generator_cfht_to_sdss": generator_cfht_to_sdss(),
        "noise_emulator_cfht": NoiseEmulator(5), "noise_emulator_sdss": NoiseEmulator(5),
    }
    config = {
        "name": "random-weights", "method": "ours", "surveys": {"a": sdss.to_dict(), "b": cfht.to_dict()},
        "directions": {
            "sdss->cfht": {"generator": "generator_sdss_to_cfht", "noise_emulator": "noise_emulator_cfht"},
            "cfht->sdss": {"generator": "generator_cfht_to_sdss", "noise_emulator": "noise_emulator_sdss"},
        },
    }
    return save_model(root / "model", modules, config)


def example_inputs(survey, n: int) -> np.ndarray:
    """(n, C, H, W) native cutouts: the bundled examples, repeated, else smooth blobs + noise."""
    from survey2survey.data import example_dir
    from survey2survey.fits_io import read_cutout

    files = sorted((example_dir() / survey.name).glob("*.fits")) if (example_dir() / survey.name).is_dir() else []
    if files:
        cubes = [read_cutout(f, survey).data for f in files]
    else:
        rng = np.random.default_rng(0)
        s = survey.cutout_size
        yy, xx = np.mgrid[0:s, 0:s] / s - 0.5
        blob = np.exp(-(xx**2 + yy**2) / 0.01)
        cubes = [((blob * 5 + 0.05 * rng.standard_normal((5, s, s))) / survey.flux_factor).astype(np.float32)]
    return np.stack([cubes[i % len(cubes)] for i in range(n)])


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(fn, n_images: int, device, min_seconds: float, max_calls: int) -> float:
    """Images/s of ``fn`` (one call = n_images), after one warm-up call."""
    fn()
    sync(device)
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or calls >= max_calls:
            return calls * n_images / elapsed


def gflop_per_image(gen, shape, device) -> float | None:
    try:
        from torch.utils.flop_counter import FlopCounterMode

        x = torch.zeros((1, *shape), device=device)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            gen(x)
        return counter.get_total_flops() / 1e9
    except Exception:
        return None


def round_mantissa(t: torch.Tensor, bits: int) -> torch.Tensor:
    """Round float32 values to ``bits`` mantissa bits, to nearest even (TF32: 10 bits)."""
    i = t.float().contiguous().view(torch.int32)
    drop = 23 - bits
    i = (i + ((1 << (drop - 1)) - 1) + ((i >> drop) & 1)) & ~((1 << drop) - 1)
    return i.view(torch.float32)


@contextlib.contextmanager
def emulated_tf32():
    """Convolutions with TF32-rounded inputs and weights (float32 sums), for a CPU."""
    plain = torch.nn.functional.conv2d

    def conv2d(x, weight, bias=None, *args, **kwargs):
        return plain(round_mantissa(x, 10), round_mantissa(weight, 10), bias, *args, **kwargs)

    torch.nn.functional.conv2d = conv2d
    try:
        yield
    finally:
        torch.nn.functional.conv2d = plain


def flux_errors(gen, x, ne_native, g_ref, target, run) -> tuple[float, float, float]:
    """Errors of one precision against fp32, in native units, per image and band.

    Returns the median pixel RMS error / noise sigma, and the median and largest
    |summed flux error| / sigma_sum, where sigma is the emulated noise's standard
    deviation and sigma_sum = sigma sqrt(pixels), the noise of a summed flux (Lin Fig. 5).
    """
    with torch.no_grad():
        g = to_native(run(gen, x).float().cpu().numpy(), target)
    d = g - g_ref  # (N, C, H, W)
    sigma = ne_native.std(axis=(2, 3))  # (N, C)
    rms = np.sqrt((d**2).mean(axis=(2, 3))) / sigma
    flux = np.abs(d.sum(axis=(2, 3))) / (sigma * np.sqrt(d.shape[2] * d.shape[3]))
    return float(np.median(rms)), float(np.median(flux)), float(flux.max())


def model_only(model, direction, device, batch, args, rows, notes):
    d = model_directions(model.config)[direction]
    plain = model.modules[d.generator].to(device).eval()  # as loaded for training: up-sampling as written
    gen = fold_upsampling(copy.deepcopy(plain))  # as loaded for inference
    ne = model.modules[d.noise_emulator].to(device).eval()
    graph = TranslationGraph(gen, ne)
    in_shape, out_shape = direction_shapes(model, d)
    native = example_inputs(d.source, batch)
    x = torch.from_numpy(to_model_space(native, d.source)).to(device)
    keys = np.array([object_seed(0, f"bench{i}") for i in range(batch)], dtype=np.int64)
    c = d.target.n_bands
    on_cuda = device.type == "cuda"

    def step(generator, bf16, inputs=x):
        z1, z2 = noise_inputs(keys, range(c), *out_shape, 1, device=device)
        with torch.no_grad():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                g = generator(inputs)
            return graph.add_noise(g.float(), z1, z2)

    def timed(fn):
        return rate(fn, batch, device, args.seconds, args.max_calls)

    gf_plain = gflop_per_image(plain, x.shape[1:], device)
    gf = gflop_per_image(gen, x.shape[1:], device)
    if gf:
        notes.append(f"generator {direction}: {gf_plain:.2f} GFLOP per image as written, {gf:.2f} with the "
                     "up-sampling folded into the next convolution (torch flop counter)")
    if on_cuda:
        set_cuda_fp32_precision(tf32=False)  # the baseline is true fp32

    # the baseline: the plain port (up-sample, then convolve), fp32, contiguous tensors
    rows.append(("model", "torch fp32 eager, plain port", timed(lambda: step(plain, False)), gf_plain))
    gen.to(memory_format=torch.channels_last)
    xc = x.contiguous(memory_format=torch.channels_last)
    rows.append(("model", "torch fp32 eager, folded, channels-last", timed(lambda: step(gen, False, xc)), gf))
    if on_cuda:
        set_cuda_fp32_precision(tf32=True)
        rows.append(("model", "torch tf32 eager, folded, channels-last", timed(lambda: step(gen, False, xc)), gf))
    rows.append(("model", "torch bf16 eager, folded, channels-last", timed(lambda: step(gen, True, xc)), gf))

    # what each precision does to the science: pixel and summed-flux errors against fp32
    with torch.no_grad():
        if on_cuda:
            set_cuda_fp32_precision(tf32=False)
        g32 = gen(xc).float()
        ne_native = to_native((step(gen, False, xc)[:, 0]).cpu().numpy(), d.target) - to_native(g32.cpu().numpy(), d.target)
    g_ref = to_native(g32.cpu().numpy(), d.target)

    def bf16_run(net, inputs):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return net(inputs)

    def tf32_run(net, inputs):
        if on_cuda:
            set_cuda_fp32_precision(tf32=True)
            try:
                return net(inputs)
            finally:
                set_cuda_fp32_precision(tf32=False)
        with emulated_tf32():
            return net(inputs)

    for name, run in (("bf16", bf16_run), ("tf32" if on_cuda else "tf32 (emulated: rounded inputs and weights)", tf32_run)):
        rms, flux_med, flux_max = flux_errors(gen, xc, ne_native, g_ref, d.target, run)
        notes.append(f"{name} error of G(x) vs fp32, native units: pixel RMS {rms:.3g} sigma; summed flux "
                     f"{flux_med:.3g} sigma_sum median, {flux_max:.3g} max (per image and band)")

    if not args.no_compile:
        precision = "tf32" if on_cuda else "fp32"
        if on_cuda:
            set_cuda_fp32_precision(tf32=True)
        compiled = torch.compile(gen, dynamic=False)
        t0 = time.perf_counter()
        step(compiled, False, xc)
        sync(device)
        notes.append(f"torch.compile ({precision}): first call {time.perf_counter() - t0:.1f} s")
        rows.append(("model", f"torch compiled {precision}, folded, channels-last",
                     timed(lambda: step(compiled, False, xc)), gf))
        if on_cuda:
            step(compiled, True, xc)
            rows.append(("model", "torch compiled bf16, folded, channels-last", timed(lambda: step(compiled, True, xc)), gf))

    engine = TorchEngine(load_model(model.path, "cpu", fold=True), d, str(device), "auto")
    host = x.float().cpu().numpy()
    rows.append(("model", f"engine {engine.describe()} incl. host copies", timed(lambda: engine.run(host, keys)), gf))
    if not args.no_onnx:
        cpu_model = load_model(model.path, "cpu", fold=True)
        for dev in (["cuda"] if on_cuda else []) + ["cpu"]:
            try:
                onnx_engine = OnnxEngine(cpu_model, d, dev)
            except Exception as exc:  # a provider that does not come up is a note, not a crash
                notes.append(f"ONNX Runtime on {dev}: not available ({exc})")
                continue
            n_onnx = batch if onnx_engine.device == "cuda" else min(batch, args.cpu_batch)
            rows.append(("model", f"onnx {onnx_engine.provider} incl. host copies",
                         rate(lambda: onnx_engine.run(host[:n_onnx], keys[:n_onnx]), n_onnx, device, args.seconds,
                              args.max_calls), gf))


class _ResizeTranslator(LearnedTranslator):
    """The model replaced by a nearest-neighbour resize, to time the I/O pipeline alone."""

    def start(self):
        self.device, self.provider, self.precision = "cpu", None, "fp32"
        self._description = "resize (no model)"

    def run(self, batch, keys, samples):
        x = np.stack([p.x for p in batch])  # (N, C, H, W)
        out_shape = self.shapes[batch[0].source.name][1]
        iy = (np.arange(out_shape[0]) * x.shape[2]) // out_shape[0]
        ix = (np.arange(out_shape[1]) * x.shape[3]) // out_shape[1]
        return np.ascontiguousarray(x[:, None][:, :, :, iy][:, :, :, :, ix])  # (N, 1, C, H', W')


class _PerCutoutResize(Translator):
    """A per-cutout translator (nearest resize in native units, no model) run in the worker
    processes: what the pipeline sustains for a cheap translator such as the physics one."""

    per_cutout = True

    def __init__(self, source, target):
        self.sources, self.target = {source.name: source}, target

    def describe(self):
        return "resize per cutout (no model)"

    def prepare(self, cutout, survey):
        h, w = cutout.data.shape[1:]
        shape = (round(h * survey.pixel_scale / self.target.pixel_scale),) * 2
        wcs = wcs_cards(rescale_wcs(cutout.wcs, (h, w), shape)) if cutout.wcs is not None else None
        return Prepared(survey, cutout.data, Geometry(shape, self.target.bands, wcs), None, list(cutout.warnings))

    def run(self, batch, keys, samples):
        out = []
        for p in batch:
            iy = (np.arange(p.geometry.shape[0]) * p.x.shape[1]) // p.geometry.shape[0]
            ix = (np.arange(p.geometry.shape[1]) * p.x.shape[2]) // p.geometry.shape[1]
            out.append(np.ascontiguousarray(p.x[None][:, :, iy][:, :, :, ix]))  # (1, C, H', W')
        return out

    def provenance(self, prepared, object_id, seed, n_samples):
        return Provenance(backend=self.describe(), seed=seed), ["nearest resize (bench)"], []


def end_to_end(model_dir, direction, device, args, rows, notes):
    src, tgt = direction.split("->")
    survey = get_survey(src)
    with tempfile.TemporaryDirectory(prefix="s2s-bench-") as tmp:
        tmp = Path(tmp)
        native = example_inputs(survey, min(args.files, 64))
        wcs = make_wcs(150.0, 2.0, survey.pixel_scale, native.shape[2:])
        t0 = time.perf_counter()
        for i in range(args.files):
            write_cutout(tmp / "in" / f"obj{i:07d}.fits", native[i % len(native)], survey, wcs=wcs)
        notes.append(f"wrote {args.files} input cutouts in {time.perf_counter() - t0:.1f} s (one process)")
        kw = dict(model_dir=model_dir, device=str(device), batch_size=args.batch, workers=args.workers, seed=1)
        report = translate([tmp / "in"], tgt, out_dir=tmp / "out", **kw)
        rows.append(("fits->fits", f"translate {report.backend}, {report.workers} workers", report.rate, None))
        notes.append(
            f"end to end: {report.translated} translated, {len(report.failed)} failed in {report.seconds:.1f} s "
            f"(model loading and worker start included), batch {report.batch_size}"
        )
        resize = _ResizeTranslator.load(model_dir, tgt, device="cpu")
        io = translate_with(resize, [tmp / "in"], out_dir=tmp / "out-io", batch_size=args.batch, workers=args.workers, seed=1)
        rows.append(("fits->fits", f"I/O pipeline only (model replaced by a resize), {io.workers} workers", io.rate, None))
        cheap = translate_with(_PerCutoutResize(survey, get_survey(tgt)), [tmp / "in"], out_dir=tmp / "out-cheap",
                               workers=args.workers, seed=1)
        rows.append(("fits->fits", f"per-cutout translator in the workers (a resize), {cheap.workers} workers",
                     cheap.rate, None))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--direction", default="sdss->cfht")
    p.add_argument("--model", type=Path, help="model directory (default: the paper's architecture, random weights)")
    p.add_argument("--batch", type=int, help="images per call (default 512 on CUDA, 8 on CPU)")
    p.add_argument("--cpu-batch", type=int, default=8, help="batch of the ONNX Runtime CPU row")
    p.add_argument("--seconds", type=float, default=3.0, help="time each model row for at least this long")
    p.add_argument("--max-calls", type=int, default=50)
    p.add_argument("--files", type=int, default=48, help="cutouts in the end-to-end run")
    p.add_argument("--workers", type=int, help="reader/writer processes (default: translate's)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--no-onnx", action="store_true")
    p.add_argument("--no-e2e", action="store_true")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)

    device = torch.device(resolve_device(args.device))
    args.batch = args.batch or (512 if device.type == "cuda" else 8)
    rows: list = []
    notes: list[str] = [
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{os.cpu_count()} CPU cores'}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}"
    ]
    with tempfile.TemporaryDirectory(prefix="s2s-bench-model-") as tmp:
        os.environ.setdefault("S2S_CACHE", str(Path(tmp) / "cache"))
        model_dir = args.model or random_model(Path(tmp))
        model = load_model(model_dir, "cpu")
        model_only(model, args.direction, device, args.batch, args, rows, notes)
        if not args.no_e2e:
            end_to_end(model_dir, args.direction, device, args, rows, notes)

    base = rows[0][2]
    print(f"\n{args.direction} translation speed")
    for line in notes:
        print("  " + line)
    print(f"\n  {'kind':<11} {'what':<62} {'per s':>10} {'x fp32':>7} {'TFLOP/s':>8}")
    for kind, what, value, gf in rows:
        tflops = f"{value * gf / 1e3:8.2f}" if gf else " " * 8
        unit = "img" if kind == "model" else "cutouts"
        print(f"  {kind:<11} {what:<62} {value:>6.1f} {unit:<4}{value / base:>6.2f}x {tflops}")
    if args.json:
        args.json.write_text(json.dumps({"notes": notes, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
