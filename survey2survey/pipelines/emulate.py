"""``s2s emulate-noise``: blank-sky noise maps of a survey from a model's noise emulator.

The maps are the NE term of the translation graph F = G + NE
(:func:`survey2survey.runtime.graph.sample_noise`), drawn from the same per-object seeds
as ``s2s translate`` (map ``i`` is object ``"noise/<i>"``), converted to the survey's
native units and written as one FITS cube per band.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from survey2survey.atomic import check_parents
from survey2survey.errors import CutoutError, ModelError, OutputExistsError, UsageError, write_failure
from survey2survey.model import default_model_dir, find_noise_emulator, load_model, model_directions
from survey2survey.runtime.device import resolve_device
from survey2survey.runtime.graph import sample_noise
from survey2survey.runtime.seeds import object_seed
from survey2survey.surveys import Survey, get_survey, to_native

__all__ = ["MAX_OUTPUT_BYTES", "EmulateReport", "emulate_noise", "emulate_physics_noise"]

#: Largest output of ``emulate-noise`` (the cubes are held in memory before writing).
MAX_OUTPUT_BYTES = 8 << 30


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
    model_dir : path or "physics", optional
        Default :func:`~survey2survey.model.default_model_dir`; "physics": :func:`emulate_physics_noise`.
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

    from astropy.io import fits

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"--n must be a positive integer, got {n!r}")
    if isinstance(model_dir, str) and model_dir.strip().lower() == "physics":
        return emulate_physics_noise(band, n, survey=survey, size=size, seed=seed, out=out, overwrite=overwrite)
    if batch_size < 1:
        raise UsageError(f"batch size must be positive, got {batch_size}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed!r}")
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    dev = resolve_device(device)
    model = load_model(model_dir, device=dev)
    config = model.config
    left = _left_to_physics(config, survey)
    if left is not None:  # the model translates into that survey by the physics: its noise is the registry's
        return emulate_physics_noise(band, n, survey=left, size=size, seed=seed, out=out, overwrite=overwrite)
    survey = _noise_survey(model, survey)
    emulator = model.modules[find_noise_emulator(config, survey)]
    emulator.eval()
    band_idx = list(range(survey.n_bands)) if band.lower() == "all" else [survey.band_index(band)]
    if getattr(emulator, "bands", survey.n_bands) != survey.n_bands:
        raise ModelError(f"{model_dir}: noise emulator has {emulator.bands} bands, survey {survey.name} {survey.n_bands}")
    from survey2survey.methods.ours_phys import undo_noise_calibration

    calibrated = undo_noise_calibration(config, emulator, survey)  # the survey's whole noise
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
    for b, name in enumerate(names):
        report.amplitude[name] = _stats(amps[b])
        report.rms_native[name] = float(np.median(rms[b]))
    hdus = [_cube_hdu(fits, b, cubes[b], rms[b], report, survey, model, find_noise_emulator(config, survey), seed)
            for b in range(len(names))]  # fmt: skip
    if calibrated:
        hdus[0].header.add_history("the model's noise calibration (the part its generator lacks) divided out: "
                                   "the survey's whole noise")
    _write_noise_file(hdus, path, overwrite, survey, names, amps, rms, amp_unit=None)
    return report


def _write_noise_file(hdus, path, overwrite, survey, names, amps, rms, amp_unit) -> None:
    """The noise cubes ``hdus`` plus the AMPLITUDE table (per map: amplitude, rms), written atomically."""
    from astropy.io import fits

    from survey2survey.fits_io import write_hdul_atomic

    columns = [fits.Column(name="INDEX", format="J", array=np.arange(len(amps[0]), dtype=np.int32))]
    for b, name in enumerate(names):
        columns.append(fits.Column(name=f"AMP_{name}", format="E", unit=amp_unit, array=np.asarray(amps[b], np.float32)))
        columns.append(fits.Column(name=f"RMS_{name}", format="E", unit=survey.flux_unit, array=rms[b].astype(np.float32)))
    hdus.append(fits.BinTableHDU.from_columns(columns, name="AMPLITUDE"))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Card is too long, comment will be truncated")
        try:
            write_hdul_atomic(fits.HDUList(hdus), path, overwrite)
        except CutoutError as exc:  # appeared since the check, read-only: a bad --out (2); disk full: 1
            raise (UsageError(str(exc)) if isinstance(exc, OutputExistsError) else write_failure(path, exc)) from None


def _left_to_physics(config: dict, survey) -> str | None:
    """The survey to draw physics noise for when ``config``'s model leaves translation into it to the physics."""
    from survey2survey.model import physics_directions

    physics = {d.split("->")[1] for d in physics_directions(config)}
    learned = {d.target.name for d in model_directions(config).values() if d.noise_emulator}
    if survey is None:
        return sorted(physics)[0] if physics and not learned else None
    name = get_survey(survey).name
    return name if name in physics and name not in learned else None


def _noise_survey(model, survey) -> Survey:
    """The survey whose noise to draw, as the model recorded it (its flux scaling is the one
    the emulator learnt in); default the target of the model's first direction with an emulator."""
    recorded = {d.target.name: d.target for d in model_directions(model.config).values() if d.noise_emulator}
    if survey is None:
        if not recorded:
            raise ModelError(f"{model.path}: model {model.config.get('name', '?')!r} has no noise emulator")
        return next(iter(recorded.values()))
    return recorded.get(get_survey(survey).name, get_survey(survey))


def _cube_hdu(fits, b: int, cube: np.ndarray, rms: np.ndarray, report: EmulateReport, survey: Survey, model, emulator: str, seed: int):
    """The FITS HDU of band ``b``'s cube ``(n, H, W)`` (primary for the first band)."""
    name = report.bands[b]
    stats = report.amplitude[name]
    hdu = (fits.PrimaryHDU if b == 0 else fits.ImageHDU)(data=cube)
    h = hdu.header
    h["EXTNAME"] = (name, "band of this cube")
    h["SURVEY"] = (survey.name, "survey whose noise this is")
    h["BAND"] = (name, "band")
    h["BUNIT"] = (survey.flux_unit or "unknown", "native pixel unit")
    h["MAGZP"] = (survey.zero_point, "AB mag of one pixel unit")
    h["FLUXFAC"] = (survey.flux_factor, "x pixel value = nanomaggies")
    h["PIXSCALE"] = (survey.pixel_scale, "nominal survey pixel scale (arcsec)")
    h["NMAPS"] = (report.n, "noise maps in this cube (NAXIS3)")
    h["AMPMEAN"] = (stats["mean"], "mean noise amplitude a_b (model space)")
    h["AMPMED"] = (stats["median"], "median noise amplitude (model space)")
    h["AMPSTD"] = (stats["std"], "std of the noise amplitude (model space)")
    h["AMPMIN"] = (stats["min"], "smallest noise amplitude (model space)")
    h["AMPMAX"] = (stats["max"], "largest noise amplitude (model space)")
    h["RMSMED"] = (report.rms_native[name], "median pixel RMS of a map (native units)")
    h["RMSMEAN"] = (float(np.mean(rms)), "mean pixel RMS of a map (native units)")
    h["S2SMODEL"] = (str(model.config.get("name", "")), "model name")
    h["S2SHASH"] = (model.weights_sha256, "SHA-256 of the model weights")
    h["S2SSEED"] = (int(seed), "seed: map i uses object_seed(seed, 'noise/i')")
    h["S2SNE"] = (emulator, "noise emulator module")
    h.add_history("noise emulator draw on blank sky (background 0), model space -> native units")
    return hdu


def _check_output(path: Path, overwrite: bool) -> None:
    """Misuse found before sampling: an existing ``path`` (without ``overwrite``), a
    directory, or a place where the file cannot be created."""
    import tempfile

    if path.is_dir():
        raise UsageError(f"{path}: is a directory (give --out FILE)")
    if path.exists() and not overwrite:
        raise UsageError(f"{path}: output exists (use --overwrite to replace it)")
    check_parents(path, path.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise UsageError(f"{path.parent}: cannot write output there ({exc.strerror or exc})") from None


def emulate_physics_noise(
    band: str,
    n: int,
    *,
    survey: str | Survey | None,
    size: tuple[int, int] | None = None,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> EmulateReport:
    """``emulate-noise --model physics``: the survey's noise without a trained model, same file layout.

    Maps come from :func:`survey2survey.physics.noise.sample_noise`: the survey's noise
    model file (``noise_model`` in the registry) when it names one, else Gaussian noise of
    the registry's sky sigma (``sky_sigma`` or from ``depth``), white or
    ``noise_correlation``-correlated.  Map ``i`` of a band comes from
    ``numpy.random.default_rng([seed, k, i])``, k the band's index in the survey (the bands
    independent).  The ``AMPLITUDE`` table's ``AMP_<band>``
    holds the model's sigma (native units; the learned emulator's is in model space).
    """

    from astropy.io import fits

    from survey2survey.physics.noise import sample_noise, target_noise

    if survey is None:
        raise UsageError("--model physics: give --survey (whose registry noise to draw)")
    survey = get_survey(survey)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed!r}")
    if not (survey.sky_sigma or survey.depth or survey.noise_model):
        raise UsageError(f"survey {survey.name!r} has no noise level in the registry (sky_sigma, depth or noise_model)")
    names = tuple(survey.bands) if band.lower() == "all" else (survey.bands[survey.band_index(band)],)
    height, width = size if size is not None else (survey.cutout_size, survey.cutout_size)
    if height < 1 or width < 1:
        raise UsageError(f"--size must be positive, got {height} {width}")
    need = 4 * n * len(names) * height * width
    if need > MAX_OUTPUT_BYTES:
        raise UsageError(f"--n {n} maps of {height}x{width} px in {len(names)} band(s) would take "
                         f"{need / 2**30:.1f} GiB (more than {MAX_OUTPUT_BYTES / 2**30:.0f} GiB): ask for fewer or smaller maps")
    path = Path(out) if out is not None else Path(f"noise-{survey.name}-{band.lower() if band.lower() == 'all' else names[0]}.fits")
    _check_output(path, overwrite)
    start = time.perf_counter()
    cubes = np.stack([sample_noise(survey, b, n, (height, width), seed) for b in names])  # (B, n, H, W) native
    seconds = time.perf_counter() - start
    rms = np.sqrt(np.mean(cubes.astype(np.float64) ** 2, axis=(2, 3)))  # (B, n)
    source = f"noise model {survey.noise_model}" if survey.noise_model else "registry sky sigma"
    report = EmulateReport(path, survey.name, names, n, (height, width), seconds)
    hdus = []
    for b, name in enumerate(names):
        sigma = target_noise(survey, name, None, (height, width))[0]
        report.amplitude[name] = _stats(np.full(n, sigma))
        report.rms_native[name] = float(np.median(rms[b]))
        hdu = (fits.PrimaryHDU if b == 0 else fits.ImageHDU)(data=cubes[b])
        for key, value, comment in _physics_cards(survey, name, n, sigma, report.rms_native[name], rms[b], seed, source):
            hdu.header[key] = (value, comment)
        hdu.header.add_history(f"s2s emulate-noise --model physics: Gaussian noise from the {source}, native units")
        hdus.append(hdu)
    amps = [np.full(n, report.amplitude[name]["mean"], np.float32) for name in names]
    _write_noise_file(hdus, path, overwrite, survey, names, amps, rms, amp_unit=survey.flux_unit)
    return report


def _physics_cards(survey: Survey, band: str, n: int, sigma: float, rms_median: float, rms, seed: int, source: str):
    """Header cards of one band's cube drawn by ``--model physics``."""
    return [
        ("EXTNAME", band, "band of this cube"), ("SURVEY", survey.name, "survey whose noise this is"),
        ("BAND", band, "band"), ("BUNIT", survey.flux_unit or "unknown", "native pixel unit"),
        ("MAGZP", survey.zero_point, "AB mag of one pixel unit"), ("FLUXFAC", survey.flux_factor, "x pixel value = nanomaggies"),
        ("PIXSCALE", survey.pixel_scale, "nominal survey pixel scale (arcsec)"),
        ("NMAPS", n, "noise maps in this cube (NAXIS3)"), ("NOISESIG", sigma, "model noise sigma per pixel (native)"),
        ("RMSMED", rms_median, "median pixel RMS of a map (native units)"),
        ("RMSMEAN", float(np.mean(rms)), "mean pixel RMS of a map (native units)"),
        ("S2SMODEL", "physics", "registry noise, no trained model"), ("S2SMETH", "physics", "noise without training"),
        ("S2SSEED", int(seed), "map i of band k: numpy default_rng([seed, k, i])"), ("S2SNE", source[:60], "noise source"),
    ]
