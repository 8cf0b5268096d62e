"""Sampling the trained Noise Emulators: reproducible seeds z1, z2 and noise maps.

Two users:

* ``s2s translate`` forms the paper's F = G + NE in model space, with z1, z2 drawn
  here from a per-object seed, so that an object's noise does not depend on the batch
  it was in, the shard, the worker count, the backend or the device;
* ``s2s emulate-noise`` samples noise maps of one survey and band(s) for noise
  studies and writes them as a FITS cube (:func:`emulate_noise`).

Random numbers
--------------
The seeds z1, z2 come from a counter-based generator written in plain integer tensor
operations (a 32-bit avalanche hash of (object key, stream, element index), two hash
rounds per uniform, then Box-Muller).  Unlike ``torch.randn`` it gives the same bits on
CPU and GPU, needs no generator state, and on a GPU draws the z of a whole batch in a
few kernels instead of one ``torch.Generator`` call per object (the CPU-side draw of
~100,000 normals per CFHT cutout would otherwise cap a GPU at a few thousand
cutouts/s).  The integer part is exact; the float part (log, cos, sin) may differ by
an ulp between devices.  Normals are truncated at about 5.9 sigma (24-bit uniforms).

Streams: the noise of sample ``s`` (``--samples``) and band ``b`` of an object is stream
``s * 64 + b``, one scalar z1 then the ``(H + 6) x (W + 6)`` map z2, so that band r of
sample 0 of an object is the same draw whichever other bands or samples are asked for.
The latent code z of a stochastic generator (augcgan) is stream ``2**31 + s``
(:func:`latent_codes`).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from survey2survey.errors import ModelError, UsageError
from survey2survey.surveys import Survey, get_survey

__all__ = [
    "MAX_BANDS",
    "object_seed",
    "standard_normal",
    "noise_inputs",
    "latent_codes",
    "find_noise_emulator",
    "sample_noise",
    "noise_amplitude",
    "noise_maps",
    "EmulateReport",
    "emulate_noise",
]

#: Streams reserve this many band slots per sample (stream = sample * MAX_BANDS + band).
MAX_BANDS = 64
#: Rows per call of the noise emulator's amplitude network on the CPU (:func:`noise_amplitude`).
AMPLITUDE_BLOCK = 64
#: Largest output of ``emulate-noise`` (the cubes are held in memory before writing).
MAX_OUTPUT_BYTES = 8 << 30
#: First stream of the latent codes of stochastic generators (augcgan): sample s uses
#: ``LATENT_STREAM + s``, far from the noise streams.
LATENT_STREAM = 1 << 31

_M32 = 0xFFFFFFFF
# Multipliers of the avalanche hash; both < 2**31 so that a 32-bit value times one of
# them never leaves int64 (exact on every device, no reliance on wrap-around).
_MUL1 = 0x7FEB352D
_MUL2 = 0x2C1B3C6D
_GOLDEN = 0x9E3779B9
# Elements of int64 scratch per chunk: keeps the CPU working set in cache, the GPU busy.
_CHUNK_CPU = 1 << 19
_CHUNK_GPU = 1 << 26


def object_seed(seed: int, object_id: str) -> int:
    """63-bit key of one object's noise, from the run's ``seed`` and the object's id.

    SHA-256 of ``"<seed>/<object_id>"``: the same object gets the same noise in any
    batch, shard or process, and different objects get unrelated noise.
    """
    digest = hashlib.sha256(f"{int(seed)}/{object_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _mix_(x):
    """In-place 32-bit avalanche hash of int64 values in [0, 2**32) (torch tensor)."""
    x ^= x >> 16
    x.mul_(_MUL1).bitwise_and_(_M32)
    x ^= x >> 15
    x.mul_(_MUL2).bitwise_and_(_M32)
    x ^= x >> 16
    return x


def _mix_np(x: np.ndarray) -> np.ndarray:
    """The same hash on uint32 numpy arrays (wrap-around multiplication is the mod 2**32)."""
    x ^= x >> np.uint32(16)
    x *= np.uint32(_MUL1)
    x ^= x >> np.uint32(15)
    x *= np.uint32(_MUL2)
    x ^= x >> np.uint32(16)
    return x


def standard_normal(keys, n: int, streams: Sequence[int] = (0,), device=None):
    """Standard normal numbers ``(N, K, n)`` float32, a pure function of (key, stream, index).

    Parameters
    ----------
    keys : torch.Tensor or sequence of int, shape (N,)
        Per-object keys in [0, 2**63) (:func:`object_seed`).
    n : int
        Numbers per (object, stream).
    streams : sequence of int, length K
        Independent streams per object (non-negative, < 2**32).
    device : torch.device or str, optional
        Where to compute (default: the keys' device, else CPU).

    Returns
    -------
    torch.Tensor
        ``(N, K, n)`` float32 on ``device``.

    Notes
    -----
    On the CPU the numbers are computed with numpy (native uint32 arithmetic, one
    thread: fast, and immune to thread oversubscription on shared nodes); elsewhere
    with torch integer kernels.  Both compute the same integers; the float transform
    may differ by an ulp.
    """
    import torch

    if torch.is_tensor(keys):
        device = torch.device(device) if device is not None else keys.device
        keys_np = keys.detach().to("cpu", torch.int64).numpy()
    else:
        device = torch.device(device) if device is not None else torch.device("cpu")
        keys_np = np.asarray(keys, dtype=np.int64).reshape(-1)
    streams = [int(s) for s in streams]
    if device.type == "cpu":
        return torch.from_numpy(_standard_normal_np(keys_np, n, streams))
    return _standard_normal_torch(torch.as_tensor(keys_np, device=device), n, streams)


def _standard_normal_np(keys: np.ndarray, n: int, streams: list[int]) -> np.ndarray:
    n_obj, n_streams = keys.shape[0], len(streams)
    m = (n + 1) // 2  # Box-Muller pairs per stream
    out = np.empty((n_obj, n_streams, n), dtype=np.float32)
    if n_obj == 0 or n == 0:
        return out
    base = _mix_np(np.arange(2 * m, dtype=np.uint32))  # (2m,)
    skey = _mix_np((np.array(streams, dtype=np.uint64) * _GOLDEN + 0x632BE5AB).astype(np.uint32))  # (K,)
    counters = _mix_np(base[None, :] ^ skey[:, None])  # (K, 2m)
    k = keys.astype(np.uint64)
    key_lo = (k & np.uint64(_M32)).astype(np.uint32)
    key_hi = (k >> np.uint64(32)).astype(np.uint32)
    chunk = max(1, _CHUNK_CPU // (n_streams * 2 * m))
    for start in range(0, n_obj, chunk):
        stop = min(start + chunk, n_obj)
        h = counters[None] ^ key_lo[start:stop, None, None]  # (n, K, 2m)
        _mix_np(h)
        h += key_hi[start:stop, None, None]
        _mix_np(h)
        u = (h >> np.uint32(8)).astype(np.float32)
        u += np.float32(0.5)
        u *= np.float32(2.0**-24)  # 24-bit uniforms in (0, 1), exact in float32
        radius = np.sqrt(np.float32(-2.0) * np.log(u[..., :m]))  # (n, K, m)
        angle = u[..., m:] * np.float32(2.0 * math.pi)
        out[start:stop, :, :m] = radius * np.cos(angle)
        out[start:stop, :, m:] = (radius * np.sin(angle))[..., : n - m]
    return out


def _standard_normal_torch(keys, n: int, streams: list[int]):
    import torch

    device = keys.device
    n_obj, n_streams = keys.shape[0], len(streams)
    m = (n + 1) // 2
    out = torch.empty((n_obj, n_streams, n), dtype=torch.float32, device=device)
    if n_obj == 0 or n == 0:
        return out
    # Per-(stream, index) counters, shared by every object: c[k, j], j < 2m.
    base = _mix_(torch.arange(2 * m, dtype=torch.int64, device=device))  # (2m,)
    skey = torch.as_tensor(streams, dtype=torch.int64, device=device)
    skey = _mix_((skey * _GOLDEN + 0x632BE5AB) & _M32)  # (K,)
    counters = _mix_(base[None, :] ^ skey[:, None])  # (K, 2m)
    key_lo = keys & _M32  # (N,)
    key_hi = (keys >> 32) & _M32
    chunk = max(1, (_CHUNK_GPU if device.type == "cuda" else _CHUNK_CPU) // (n_streams * 2 * m))
    for start in range(0, n_obj, chunk):
        stop = min(start + chunk, n_obj)
        h = counters[None] ^ key_lo[start:stop, None, None]  # (n, K, 2m)
        _mix_(h)
        h += key_hi[start:stop, None, None]
        h &= _M32
        _mix_(h)
        u = (h >> 8).to(torch.float32).add_(0.5).mul_(2.0**-24)  # (n, K, 2m)
        radius = torch.log(u[..., :m]).mul_(-2.0).sqrt_()  # (n, K, m)
        angle = u[..., m:].mul_(2.0 * math.pi)
        out[start:stop, :, :m] = radius * torch.cos(angle)
        out[start:stop, :, m:] = (radius * torch.sin(angle))[..., : n - m]
    return out


def noise_inputs(keys, bands: Sequence[int], height: int, width: int, samples: int = 1, device=None):
    """The noise emulator seeds z1, z2 of ``samples`` draws per object.

    Parameters
    ----------
    keys : torch.Tensor or sequence of int, shape (N,)
        Per-object keys (:func:`object_seed`).
    bands : sequence of int
        Band indices (in the survey's order) to draw for.
    height, width : int
        Size of the noise image; z2 is 6 pixels larger (7x7 'valid' kernel).
    samples : int
        Independent realisations per object; sample 0 is the one a plain run uses.
    device : torch.device or str, optional

    Returns
    -------
    z1 : torch.Tensor
        ``(N, samples, len(bands))`` float32.
    z2 : torch.Tensor
        ``(N, samples, len(bands), height + 6, width + 6)`` float32.
    """
    if any(not 0 <= int(b) < MAX_BANDS for b in bands):
        raise UsageError(f"band indices must be in [0, {MAX_BANDS}), got {list(bands)}")
    streams = [s * MAX_BANDS + int(b) for s in range(samples) for b in bands]
    hp, wp = height + 6, width + 6
    z = standard_normal(keys, 1 + hp * wp, streams, device=device)  # (N, S*C, 1 + hp*wp)
    z = z.reshape(z.shape[0], samples, len(bands), 1 + hp * wp)
    return z[..., 0].contiguous(), z[..., 1:].reshape(z.shape[0], samples, len(bands), hp, wp)


def latent_codes(keys, latent_dim: int, sample: int = 0, device=None):
    """Latent codes z ~ N(0, I) of a stochastic generator (augcgan's ``G(x, z)``).

    Drawn like the noise seeds, from each object's key (stream ``LATENT_STREAM + sample``),
    so that an object's translation does not depend on its batch, shard or device.

    Returns
    -------
    torch.Tensor
        ``(N, latent_dim)`` float32.
    """
    return standard_normal(keys, int(latent_dim), [LATENT_STREAM + int(sample)], device=device)[:, 0]


# --- the emulate-noise command's library ----------------------------------------------


def find_noise_emulator(config: dict, survey: Survey) -> str:
    """Name of the module that emulates ``survey``'s noise in a model's ``config.json``.

    Raises
    ------
    ModelError
        If no direction of the model ends in ``survey`` with a noise emulator.
    """
    found = []
    for direction, parts in config.get("directions", {}).items():
        target = direction.split("->")[-1].strip()
        if target == survey.name and parts.get("noise_emulator"):
            found.append(parts["noise_emulator"])
    if not found:
        have = [d.split("->")[-1] for d, p in config.get("directions", {}).items() if p.get("noise_emulator")]
        raise ModelError(
            f"model {config.get('name', '?')!r} has no noise emulator for survey {survey.name!r}"
            + (f" (it has: {', '.join(sorted(set(have)))})" if have else " (it was trained without noise emulators)")
        )
    return found[0]


def noise_amplitude(noise_emulator, z1):
    """``noise_emulator.amplitude(z1)``, ``(N, bands)``, with bits that do not depend on N.

    The CPU's matrix products round differently for different numbers of rows, so the
    amplitude network is run on blocks of exactly :data:`AMPLITUDE_BLOCK` rows (the last
    one padded): an object's noise is then the same bytes in any batch, with any
    ``--batch-size`` or worker count.  On a GPU it is one call (no such guarantee there).
    """
    import torch

    n = z1.shape[0]
    if z1.device.type != "cpu" or n == 0:
        return noise_emulator.amplitude(z1)
    pad = (-n) % AMPLITUDE_BLOCK
    z = torch.cat([z1, z1.new_zeros((pad, z1.shape[1]))]) if pad else z1
    return torch.cat([noise_emulator.amplitude(block) for block in z.split(AMPLITUDE_BLOCK)])[:n]


def noise_maps(noise_emulator, z1, z2):
    """``NE(z1, z2)``: z1 ``(N, C)``, z2 ``(N, C, H+6, W+6)`` -> ``(N, C, H, W)``, batch-independent bits.

    The noise emulator's forward pass with its amplitude from :func:`noise_amplitude`
    (the depthwise convolution is per image already).
    """
    import torch.nn.functional as F

    scaled = z2 * noise_amplitude(noise_emulator, z1)[:, :, None, None]  # (N, C, H+6, W+6)
    kernel = noise_emulator.symmetric_kernel().to(scaled.dtype)  # (C, 1, 7, 7)
    return F.conv2d(scaled, kernel, groups=noise_emulator.bands)  # (N, C, H, W)


def sample_noise(noise_emulator, keys, bands: Sequence[int], height: int, width: int, device=None):
    """Noise maps and amplitudes of ``bands`` for each key, in model space.

    Only the asked-for bands are computed (each band of the emulator is independent).

    Parameters
    ----------
    noise_emulator : survey2survey.nets.NoiseEmulator
    keys : sequence of int, shape (N,)
    bands : sequence of int
        Band indices in the survey's order.
    height, width : int

    Returns
    -------
    noise : torch.Tensor
        ``(N, len(bands), height, width)`` float32, model space.
    amplitude : torch.Tensor
        ``(N, len(bands))`` the emulator's amplitude a_b of each map (model space).
    """
    import torch
    import torch.nn.functional as F

    device = torch.device(device) if device is not None else next(noise_emulator.parameters()).device
    z1, z2 = noise_inputs(keys, bands, height, width, samples=1, device=device)
    z1, z2 = z1[:, 0], z2[:, 0]  # (N, B), (N, B, H+6, W+6)
    idx = torch.as_tensor(list(bands), device=device)
    with torch.no_grad():
        # The emulator's amplitude network needs all of its bands: run it on a full z1
        # with the asked-for bands in their places (the others are ignored).
        full = torch.zeros(z1.shape[0], noise_emulator.bands, device=device)
        full[:, idx] = z1
        amplitude = noise_amplitude(noise_emulator, full)[:, idx]  # (N, B)
        kernel = noise_emulator.symmetric_kernel()[idx]  # (B, 1, 7, 7)
        scaled = z2 * amplitude[:, :, None, None]  # (N, B, H+6, W+6)
        n, b = scaled.shape[:2]
        # One depthwise convolution over all N*B maps: the same numbers as the emulator's
        # grouped convolution over a batch, ~25x faster on CPU (oneDNN's depthwise kernel).
        noise = F.conv2d(
            scaled.reshape(1, n * b, *scaled.shape[2:]), kernel.repeat(n, 1, 1, 1), groups=n * b
        ).reshape(n, b, height, width)  # (N, B, H, W)
    return noise, amplitude


@dataclass
class EmulateReport:
    """What :func:`emulate_noise` did."""

    path: Path
    survey: str
    bands: tuple[str, ...]
    n: int
    shape: tuple[int, int]
    seconds: float
    amplitude: dict[str, dict[str, float]] = field(default_factory=dict)
    rms_native: dict[str, float] = field(default_factory=dict)

    @property
    def maps_per_second(self) -> float:
        return self.n * len(self.bands) / self.seconds if self.seconds > 0 else float("inf")


def _stats(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "std": float(np.std(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


def emulate_noise(
    band: str,
    n: int,
    *,
    survey: str | Survey | None = None,
    model_dir: str | os.PathLike | None = None,
    size: tuple[int, int] | None = None,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    batch_size: int = 256,
    device: str = "cpu",
) -> EmulateReport:
    """Sample ``n`` noise maps per band from a model's noise emulator and write a FITS cube.

    Parameters
    ----------
    band : str
        A band of the survey, or ``"all"``.
    n : int
        Maps per band.
    survey : str or Survey, optional
        Whose noise; default the target survey of the model's first direction that has a
        noise emulator (``cfht`` for the shipped SDSS <-> CFHT model).
    model_dir : path, optional
        Default :func:`survey2survey.translate.default_model_dir`.
    size : (H, W), optional
        Map size in pixels; default the survey's cutout size.
    seed : int
        Map ``i`` is drawn from :func:`object_seed` ``(seed, "noise/<i>")``, so a smaller
        ``n`` gives the first maps of a larger one.
    out : path, optional
        Output file; default ``noise-<survey>-<band>.fits`` in the current directory.
    overwrite : bool
    batch_size : int
        Maps drawn per step.
    device : {"cpu", "cuda", "auto"}

    Returns
    -------
    EmulateReport

    Notes
    -----
    The maps are the emulator's noise on blank sky: model-space noise converted with
    :func:`survey2survey.surveys.to_native` (background 0).  Layout: the primary HDU is
    the first band's cube ``(n, H, W)``, each further band an image extension named by
    the band, and a binary table ``AMPLITUDE`` holds each map's amplitude (model space)
    and pixel RMS (native units) per band.
    """
    import warnings

    from astropy.io import fits

    from survey2survey import model_io
    from survey2survey.errors import CutoutError
    from survey2survey.fits_io import write_hdul_atomic
    from survey2survey.surveys import to_native
    from survey2survey.translate import default_model_dir, model_directions, resolve_device

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"--n must be a positive integer, got {n!r}")
    if batch_size < 1:
        raise UsageError(f"batch size must be positive, got {batch_size}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed!r}")
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    dev = resolve_device(device)
    model = model_io.load_model(model_dir, device=dev)
    config = model.config
    # the survey as the model recorded it: its flux scaling is the one the emulator learnt in
    recorded = {d.target.name: d.target for d in model_directions(config).values() if d.noise_emulator}
    if survey is None:
        if not recorded:
            raise ModelError(f"{model_dir}: model {config.get('name', '?')!r} has no noise emulator")
        survey = next(iter(recorded.values()))
    survey = recorded.get(get_survey(survey).name, get_survey(survey))
    emulator = model.modules[find_noise_emulator(config, survey)]
    emulator.eval()
    if band.lower() == "all":
        band_idx = list(range(survey.n_bands))
    else:
        band_idx = [survey.band_index(band)]
    if getattr(emulator, "bands", survey.n_bands) != survey.n_bands:
        raise ModelError(f"{model_dir}: noise emulator has {emulator.bands} bands, survey {survey.name} {survey.n_bands}")
    names = tuple(survey.bands[i] for i in band_idx)
    height, width = size if size is not None else (survey.cutout_size, survey.cutout_size)
    if height < 1 or width < 1:
        raise UsageError(f"--size must be positive, got {height} {width}")
    need = 4 * n * len(band_idx) * height * width  # bytes of the cubes, in memory and in the file
    if need > MAX_OUTPUT_BYTES:
        raise UsageError(
            f"--n {n} maps of {height}x{width} px in {len(band_idx)} band(s) would take {need / 2**30:.1f} GiB "
            f"(more than {MAX_OUTPUT_BYTES / 2**30:.0f} GiB): ask for fewer or smaller maps"
        )
    path = Path(out) if out is not None else Path(f"noise-{survey.name}-{band.lower() if band.lower() == 'all' else names[0]}.fits")
    _check_output(path, overwrite)

    start = time.perf_counter()
    cubes = np.empty((len(band_idx), n, height, width), np.float32)  # native units
    amps = np.empty((len(band_idx), n), np.float32)
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        keys = [object_seed(seed, f"noise/{i}") for i in range(lo, hi)]
        noise, amplitude = sample_noise(emulator, keys, band_idx, height, width, device=dev)
        # (N, B, H, W) model space -> native, band-major
        native = to_native(noise.float().cpu().numpy(), survey)
        cubes[:, lo:hi] = native.transpose(1, 0, 2, 3)
        amps[:, lo:hi] = amplitude.float().cpu().numpy().T
    seconds = time.perf_counter() - start
    rms = np.sqrt(np.mean(cubes.astype(np.float64) ** 2, axis=(2, 3)))  # (B, n) native

    report = EmulateReport(path, survey.name, names, n, (height, width), seconds)
    hdus = []
    for b, name in enumerate(names):
        stats = _stats(amps[b])
        report.amplitude[name] = stats
        report.rms_native[name] = float(np.median(rms[b]))
        hdu = (fits.PrimaryHDU if b == 0 else fits.ImageHDU)(data=cubes[b])
        h = hdu.header
        h["EXTNAME"] = (name, "band of this cube")
        h["SURVEY"] = (survey.name, "survey whose noise this is")
        h["BAND"] = (name, "band")
        h["BUNIT"] = (survey.flux_unit or "unknown", "native pixel unit")
        h["MAGZP"] = (survey.zero_point, "AB mag of one pixel unit")
        h["FLUXFAC"] = (survey.flux_factor, "x pixel value = nanomaggies")
        h["PIXSCALE"] = (survey.pixel_scale, "nominal survey pixel scale (arcsec)")
        h["NMAPS"] = (n, "noise maps in this cube (NAXIS3)")
        h["AMPMEAN"] = (stats["mean"], "mean noise amplitude a_b (model space)")
        h["AMPMED"] = (stats["median"], "median noise amplitude (model space)")
        h["AMPSTD"] = (stats["std"], "std of the noise amplitude (model space)")
        h["AMPMIN"] = (stats["min"], "smallest noise amplitude (model space)")
        h["AMPMAX"] = (stats["max"], "largest noise amplitude (model space)")
        h["RMSMED"] = (report.rms_native[name], "median pixel RMS of a map (native units)")
        h["RMSMEAN"] = (float(np.mean(rms[b])), "mean pixel RMS of a map (native units)")
        h["S2SMODEL"] = (str(config.get("name", "")), "model name")
        h["S2SHASH"] = (model.weights_sha256, "SHA-256 of the model weights")
        h["S2SSEED"] = (int(seed), "seed: map i uses object_seed(seed, 'noise/i')")
        h["S2SNE"] = (find_noise_emulator(config, survey), "noise emulator module")
        h.add_history("noise emulator draw on blank sky (background 0), model space -> native units")
        hdus.append(hdu)
    columns = [fits.Column(name="INDEX", format="J", array=np.arange(n, dtype=np.int32))]
    for b, name in enumerate(names):
        columns.append(fits.Column(name=f"AMP_{name}", format="E", array=amps[b]))
        columns.append(fits.Column(name=f"RMS_{name}", format="E", unit=survey.flux_unit, array=rms[b].astype(np.float32)))
    hdus.append(fits.BinTableHDU.from_columns(columns, name="AMPLITUDE"))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Card is too long, comment will be truncated")
        try:
            write_hdul_atomic(fits.HDUList(hdus), path, overwrite)
        except CutoutError as exc:  # the one output cannot be written: a bad --out (exit 2)
            raise UsageError(str(exc)) from None
    return report


def _check_output(path: Path, overwrite: bool) -> None:
    """Misuse found before sampling: an existing ``path`` (without ``overwrite``), a
    directory, or a place where the file cannot be created."""
    import tempfile

    if path.is_dir():
        raise UsageError(f"{path}: is a directory (give --out FILE)")
    if path.exists() and not overwrite:
        raise UsageError(f"{path}: output exists (use --overwrite to replace it)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{parent}: is a file, not a directory (cannot create {path.name} in it)")
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise UsageError(f"{path.parent}: cannot write output there ({exc.strerror or exc})") from None
