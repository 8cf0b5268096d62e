"""Sky noise without training: levels, power spectra, propagation, top-up and sampling.

A survey's pixel noise is Gaussian with a per-pixel sigma and a power spectrum.  Two
sources, in order of preference:

* a **noise model** file measured on the survey's own cutouts (:func:`measure_noise_model`,
  ``s2s noise-model``): per band the sigma and the 2-D power spectrum of source-masked sky;
* the **registry**: ``sky_sigma`` (or ``depth``) and ``noise_correlation`` c, the separable
  ``[c, 1, c]`` kernel with which the simulator correlates white noise.

Power spectra here are *unit* spectra ``S(k)`` on an FFT grid, normalised to mean 1: noise
with spectrum ``sigma**2 S`` has per-pixel sigma ``sigma``.  Coloured noise is white noise
filtered by ``sqrt(S)`` in Fourier space.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from survey2survey.errors import S2SError, SurveyError
from survey2survey.physics.spectra import kernel_spectrum
from survey2survey.surveys import Survey, get_survey

__all__ = [
    "corner_squares",
    "NoiseModel",
    "NOISE_MODEL_FORMAT",
    "kernel_spectrum",
    "source_mask",
    "sky_sigma",
    "coloured_noise",
    "correlated_noise",
    "correlate_white",
    "target_noise",
    "source_variance_ratio",
    "draw_source_noise",
    "SOURCE_FLOOR_SIGMA",
    "measure_noise_model",
    "load_noise_model",
    "sample_noise",
    "lag1_correlation",
    "high_k_power",
]

NOISE_MODEL_FORMAT = "s2s-noise-model/1"
_MAD_TO_SIGMA = 1.482602218505602


def source_mask(images: np.ndarray, clip: float = 3.0, grow: int = 2, iterations: int = 2) -> np.ndarray:
    """True on sky pixels of each image (..., H, W): ``clip``-sigma outliers grown by ``grow`` px are False."""
    from scipy import ndimage

    images = np.asarray(images, dtype=np.float64)
    lead, (h, w) = images.shape[:-2], images.shape[-2:]
    flat = images.reshape(-1, h, w)
    sky = np.ones(flat.shape, bool)
    for _ in range(iterations):
        values = np.where(sky, flat, np.nan).reshape(len(flat), -1)
        med = np.nanmedian(values, axis=1)[:, None, None]
        sig = _MAD_TO_SIGMA * np.nanmedian(np.abs(values - med.reshape(-1, 1)), axis=1)[:, None, None]
        outlier = np.abs(flat - med) > clip * np.maximum(sig, 1e-30)
        grown = ndimage.binary_dilation(outlier, structure=np.ones((1, 2 * grow + 1, 2 * grow + 1), bool))
        sky = ~grown
    return sky.reshape(lead + (h, w))


def sky_sigma(images: np.ndarray, mask: np.ndarray | None = None, max_pixels: int = 1200) -> np.ndarray:
    """Robust per-pixel noise sigma of each image (..., H, W): 1.4826 MAD of its sky pixels.

    Without ``mask`` the estimate works on every s-th pixel in x and y (at most about
    ``max_pixels`` per image; 2 % statistical error) with one 3-sigma clip grown by one
    sampled pixel, which leaves out the sources and their wings.
    """
    images = np.asarray(images, dtype=np.float64)
    lead, (h, w) = images.shape[:-2], images.shape[-2:]
    flat_images = images.reshape((-1, h, w))
    if mask is None:
        step = max(1, int(np.ceil(np.sqrt(h * w / max_pixels))))
        sub = flat_images[:, ::step, ::step]
        flat = sub.reshape(len(sub), -1)
        med = np.median(flat, axis=1)
        sig = _MAD_TO_SIGMA * np.median(np.abs(flat - med[:, None]), axis=1)
        out = np.abs(sub - med[:, None, None]) > 3.0 * sig[:, None, None]
        grown = out.copy()  # grow by one sampled pixel (>= 2 px at the default sampling)
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        grown[:, :, 1:] |= grown[:, :, :-1].copy()
        grown[:, :, :-1] |= grown[:, :, 1:].copy()
        sky = ~grown.reshape(len(sub), -1)
    else:
        flat = flat_images.reshape(len(flat_images), -1)
        sky = np.asarray(mask, bool).reshape(len(flat_images), -1)
    sigma = np.zeros(len(flat))
    for b in range(len(flat)):
        values = flat[b][sky[b]]
        if values.size:
            sigma[b] = _MAD_TO_SIGMA * np.median(np.abs(values - np.median(values)))
    # the clip trims the Gaussian tails: undo the 3-sigma truncation's 0.3 % loss
    return (sigma * 1.0034).reshape(lead)


def correlated_noise(rng: np.random.Generator, n: int, shape: tuple[int, int], correlation: float) -> np.ndarray:
    """``n`` unit-sigma maps of white noise smoothed by the separable ``[c, 1, c]`` kernel.

    The simulator's noise (:func:`survey2survey.data.simulate.draw_noise` calls this): a
    one-pixel margin keeps the edges stationary; neighbours correlate by ``2c / (1 + 2c**2)``.
    """
    h, w = shape
    return correlate_white(rng.standard_normal((n, h + 2, w + 2)), correlation)


def correlate_white(white: np.ndarray, correlation: float) -> np.ndarray:
    """Unit-sigma white maps (..., H + 2, W + 2) smoothed by the separable ``[c, 1, c]`` kernel: (..., H, W).

    The one-pixel margin keeps the edges stationary; the result has unit sigma again.
    """
    c = float(correlation)
    if c <= 0:
        return white[..., 1:-1, 1:-1]
    norm = math.sqrt(1.0 / (1.0 + 2.0 * c * c))  # per axis; squared weights of the 3x3 sum to 1
    rows = (c * white[..., :-2, :] + white[..., 1:-1, :] + c * white[..., 2:, :]) * norm
    return (c * rows[..., :-2] + rows[..., 1:-1] + c * rows[..., 2:]) * norm


def coloured_noise(rng: np.random.Generator, n: int, shape: tuple[int, int], spectrum) -> np.ndarray:
    """``n`` unit-sigma noise maps (n, H, W) float64 with a unit power spectrum.

    ``spectrum``: None (white), a number c (the separable ``[c, 1, c]`` kernel, see
    :func:`correlated_noise`) or an (H, W) unit spectrum (white noise filtered by its
    square root in Fourier space).
    """
    if spectrum is None or np.isscalar(spectrum):
        return correlated_noise(rng, n, shape, 0.0 if spectrum is None else float(spectrum))
    white = rng.standard_normal((n,) + tuple(shape))
    h, w = shape
    half = np.sqrt(np.asarray(spectrum)[:, : w // 2 + 1])
    return np.fft.irfft2(np.fft.rfft2(white) * half, s=(h, w))


def resize_spectrum(spectrum: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A unit spectrum on another FFT grid (linear interpolation in frequency), mean 1."""
    if tuple(spectrum.shape) == tuple(shape):
        return spectrum
    from scipy.interpolate import RegularGridInterpolator

    h, w = spectrum.shape
    fy, fx = np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w))
    interp = RegularGridInterpolator((fy, fx), np.fft.fftshift(spectrum), bounds_error=False, fill_value=None)
    ny, nx = np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1])
    ny = np.clip(ny, fy[0], fy[-1])
    nx = np.clip(nx, fx[0], fx[-1])
    grid = np.stack(np.meshgrid(ny, nx, indexing="ij"), axis=-1)
    out = np.maximum(interp(grid), 0.0)
    return out / out.mean()


def lag1_correlation(maps: np.ndarray) -> float:
    """Mean correlation of horizontally and vertically adjacent pixels of maps (..., H, W)."""
    m = np.asarray(maps, dtype=np.float64)
    m = m - m.mean(axis=(-2, -1), keepdims=True)
    var = (m * m).mean()
    cx = (m[..., :, 1:] * m[..., :, :-1]).mean()
    cy = (m[..., 1:, :] * m[..., :-1, :]).mean()
    return float(0.5 * (cx + cy) / var)


def corner_squares(images: np.ndarray) -> np.ndarray:
    """The four corner squares, a third of the shorter side, of each ``(N, B, H, W)`` image:
    ``(4N, B, h, h)``.  Cutouts centred on their galaxy: the corners are mostly sky."""
    h = min(images.shape[-2:]) // 3
    return np.concatenate([images[..., :h, :h], images[..., :h, -h:], images[..., -h:, :h], images[..., -h:, -h:]])


def high_k_power(maps: np.ndarray) -> np.ndarray:
    """Power at |k| > half Nyquist (mean over those modes) of each map of (N, H, W), mean removed."""
    maps = np.asarray(maps, dtype=np.float64)
    ft = np.abs(np.fft.rfft2(maps - maps.mean(axis=(1, 2), keepdims=True))) ** 2
    ky = np.fft.fftfreq(maps.shape[1])[:, None]
    kx = np.fft.rfftfreq(maps.shape[2])[None, :]
    return ft[:, np.hypot(ky, kx) > 0.25].mean(axis=1)


@dataclass
class NoiseModel:
    """A survey's measured sky noise: per band the sigma and the unit power spectrum.

    Attributes
    ----------
    survey : str
    bands : tuple of str
    sigma : ndarray (B,)
        Median per-pixel sigma, native units.
    spectrum : ndarray (B, H, W)
        Unit power spectra on an (H, W) FFT grid (mean 1).
    n_cutouts : int
    pixel_scale : float
    """

    survey: str
    bands: tuple[str, ...]
    sigma: np.ndarray
    spectrum: np.ndarray
    n_cutouts: int
    pixel_scale: float

    def band(self, band: str) -> int:
        lowered = [b.lower() for b in self.bands]
        if band.lower() not in lowered:
            raise SurveyError(f"noise model of {self.survey!r} has no band {band!r} (bands: {','.join(self.bands)})")
        return lowered.index(band.lower())

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the model as an ``.npz`` file (atomically)."""
        import io

        from survey2survey.atomic import write_bytes

        meta = {"format": NOISE_MODEL_FORMAT, "survey": self.survey, "bands": list(self.bands),
                "n_cutouts": self.n_cutouts, "pixel_scale": self.pixel_scale}
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(meta)), sigma=self.sigma.astype(np.float64),
                 spectrum=self.spectrum.astype(np.float32))
        from survey2survey.errors import OutputExistsError

        path = Path(path)
        if path.exists() and not overwrite:
            raise OutputExistsError(path)
        try:
            write_bytes(path, buffer.getvalue(), overwrite=overwrite)
        except FileExistsError:
            raise OutputExistsError(path) from None
        except OSError as exc:
            raise S2SError(f"{path}: cannot write the noise model ({exc.strerror or exc})") from None
        return path


def load_noise_model(path: str | Path) -> NoiseModel:
    """Read a file written by :meth:`NoiseModel.save` (no pickles)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            sigma, spectrum = np.asarray(f["sigma"], np.float64), np.asarray(f["spectrum"], np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise S2SError(f"{path}: not a noise model file ({exc})") from None
    if meta.get("format") != NOISE_MODEL_FORMAT:
        raise S2SError(f"{path}: not a noise model file (format {meta.get('format')!r})")
    bands = tuple(meta["bands"])
    if sigma.shape != (len(bands),) or spectrum.ndim != 3 or spectrum.shape[0] != len(bands):
        raise S2SError(f"{path}: noise model arrays do not match its {len(bands)} bands")
    return NoiseModel(meta["survey"], bands, sigma, spectrum, int(meta["n_cutouts"]), float(meta["pixel_scale"]))


def _cutout_spectra(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per band: robust sigma and |FFT|^2 / N_sky of the source-masked, median-subtracted sky."""
    mask = source_mask(data)
    sigma = sky_sigma(data, mask)
    med = np.array([np.median(d[m]) if m.any() else 0.0 for d, m in zip(data, mask)])
    sky = (data - med[:, None, None]) * mask
    n_sky = np.maximum(mask.sum(axis=(1, 2)), 1)
    power = np.abs(np.fft.fft2(sky)) ** 2 / n_sky[:, None, None]
    return sigma, power


def measure_noise_model(inputs: Sequence[str | Path], survey: Survey | str) -> tuple[NoiseModel, list[str]]:
    """Measure a survey's noise from a directory (or files) of its cutouts.

    Sources are masked (3-sigma clip, grown by 2 px, twice); per band the sigma is the
    median over cutouts of the robust sky sigma and the spectrum the mean of the masked
    sky's power spectra, normalised to mean 1.  Only cutouts of the most common size are
    used.

    Returns
    -------
    (NoiseModel, list of str)
        The model and one line per skipped file.
    """
    from survey2survey.errors import CutoutError
    from survey2survey.fits_io import find_cutouts, read_cutout

    survey = get_survey(survey)
    sources = find_cutouts([str(p) for p in inputs], survey)
    if not sources:
        raise S2SError(f"no FITS cutouts found in {', '.join(map(str, inputs))}")
    sigmas, power_sum, count, skipped, shape = [], None, 0, [], None
    for source in sources:
        try:
            cutout = read_cutout(source, survey)
        except CutoutError as exc:
            skipped.append(str(exc))
            continue
        data = cutout.data.astype(np.float64)
        if shape is None:
            shape = data.shape
        if data.shape != shape:
            skipped.append(f"{source.path}: size {data.shape[2]}x{data.shape[1]} differs from {shape[2]}x{shape[1]}")
            continue
        sigma, power = _cutout_spectra(data)
        sigmas.append(sigma)
        power_sum = power if power_sum is None else power_sum + power
        count += 1
    if not count:
        raise S2SError(f"no readable cutouts of survey {survey.name} ({len(skipped)} skipped)")
    spectrum = power_sum / count
    spectrum /= spectrum.mean(axis=(1, 2), keepdims=True)
    model = NoiseModel(survey.name, tuple(survey.bands), np.median(np.array(sigmas), axis=0), spectrum, count,
                       survey.pixel_scale)
    return model, skipped


def target_noise(survey: Survey, band: str, noise_model: NoiseModel | None, shape: tuple[int, int]):
    """(sigma native, spectrum) of a survey's band; spectrum as :func:`coloured_noise` takes it."""
    if noise_model is None and survey.noise_model:
        noise_model = cached_noise_model(survey.noise_model)
    if noise_model is not None:
        j = noise_model.band(band)
        return float(noise_model.sigma[j]), resize_spectrum(noise_model.spectrum[j], shape)
    sigma = survey.typical_sky_sigma(band)
    return sigma, (survey.noise_correlation if survey.noise_correlation > 0 else None)


#: Pixels fainter than this many sigma of their noise count as sky in
#: :func:`source_variance_ratio`: the sky's own fluctuations add no source noise.
SOURCE_FLOOR_SIGMA = 3.0


def source_variance_ratio(image: np.ndarray, survey: Survey, band: str, sky_survey: Survey | None = None,
                          sky_band: str | None = None, floor=0.0) -> np.ndarray:
    """Per pixel, the variance a source's Poisson noise adds in units of the sky's: S / S_sky.

    A sky-limited image's sky sigma is the sky's own Poisson noise, so a source of surface
    brightness S adds S / S_sky times the sky's variance (the photons are counted alike).

    Parameters
    ----------
    image : ndarray
        The source's flux per pixel, in ``survey``'s native units on its pixels.
    survey, band : the image's survey and band
    sky_survey, sky_band : the survey and band whose sky S_sky is (default ``survey``, ``band``)
    floor : float or ndarray
        Pixels at or below it (native units) are sky: 0 (:data:`SOURCE_FLOOR_SIGMA` times their
        noise keeps the sky's own fluctuations out); from there to 1.5 times it the ratio ramps
        up linearly, so that a pixel a rounding error away gets a rounding error's other noise.

    Returns
    -------
    ndarray of ``image``'s shape (float64), zeros where ``sky_survey`` gives no ``sky_brightness``.
    """
    sky_survey = sky_survey or survey
    sky = sky_survey.sky_surface_flux(sky_band or band)  # nanomaggies / arcsec^2
    image = np.asarray(image, dtype=np.float64)
    if not sky:
        return np.zeros(image.shape)
    surface = np.maximum(image, 0.0) * (survey.flux_factor / survey.pixel_scale**2)  # nanomaggies / arcsec^2
    floor = np.asarray(floor, dtype=np.float64)
    ramp = np.clip((image - floor) / np.maximum(0.5 * floor, 1e-300), 0.0, 1.0)  # 0 at and below the floor
    return surface / sky * ramp


def draw_source_noise(rng: np.random.Generator, truth: np.ndarray, survey: Survey, sigma: Sequence[float],
                      correlation: float = 0.0) -> np.ndarray:
    """The sources' Poisson noise of a noise-free image (bands, H, W), native units, float32.

    Per band the variance is the sky's (``sigma``) times the pixel's surface brightness over
    the registry's sky (:func:`source_variance_ratio`), Gaussian,
    with the sky noise's pixel correlation.
    """
    unit = correlated_noise(rng, truth.shape[0], truth.shape[1:], correlation)
    out = np.zeros(truth.shape, np.float32)
    for j, band in enumerate(survey.bands):
        ratio = source_variance_ratio(truth[j], survey, band)
        out[j] = sigma[j] * np.sqrt(ratio) * unit[j]
    return out


_MODELS: dict[str, NoiseModel] = {}


def cached_noise_model(path: str) -> NoiseModel:
    """The noise model file ``path``, read once per process."""
    if path not in _MODELS:
        _MODELS[path] = load_noise_model(path)
    return _MODELS[path]


def sample_noise(
    survey: Survey | str,
    band: str,
    n: int,
    shape: tuple[int, int] | None = None,
    seed: int = 0,
    noise_model: NoiseModel | str | Path | None = None,
) -> np.ndarray:
    """``n`` noise maps of one band of a survey, native units, (n, H, W) float32.

    Parameters
    ----------
    survey : Survey or str
    band : str
    n : int
    shape : (H, W), optional
        Default the survey's cutout size.
    seed : int
        Map i of band k (the band's index in the survey) is drawn from
        ``numpy.random.default_rng([seed, k, i])``: the same map for any n, and each band's
        maps independent of the other bands'.
    noise_model : NoiseModel or path, optional
        Measured model; default the registry's ``noise_model`` file, else white (or
        ``noise_correlation``-correlated) noise of the registry's sky sigma.
    """
    survey = get_survey(survey)
    k = survey.band_index(band)
    if isinstance(noise_model, (str, Path)):
        noise_model = load_noise_model(noise_model)
    shape = (survey.cutout_size, survey.cutout_size) if shape is None else (int(shape[0]), int(shape[1]))
    sigma, spectrum = target_noise(survey, band, noise_model, shape)
    out = np.empty((int(n),) + shape, np.float32)
    for i in range(int(n)):
        out[i] = coloured_noise(np.random.default_rng([int(seed), k, i]), 1, shape, spectrum)[0] * sigma
    return out
