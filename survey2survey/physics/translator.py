"""The physics translator: one survey's cutout as another survey would record it.

Per band (see :mod:`survey2survey.physics` and docs/physics.md):

1. the input's PSF FWHM comes from a header keyword (``Survey.seeing_keyword_names``) or
   the registry's typical value;
2. where the target PSF is broader than what the input shows after resampling, the input
   is convolved with the matching kernel (:mod:`.kernel`); where it is not, nothing is
   deconvolved: the output keeps the input's resolution and reports its FWHM;
3. the image is resampled, flux-conserving, onto a grid of exactly the target's pixel
   scale with the same centre and footprint (:mod:`.resample`), orientation kept;
4. native units change by the zero points (``flux_factor``);
5. the noise the input carried through 2-3 is computed analytically (per output pixel,
   from the input sigma measured on the cutout's sky and the input's noise spectrum), and
   Gaussian noise with the target's spectrum tops it up to the target's sigma where the
   target is noisier.  Where the registry gives both surveys' sky brightness, the sources'
   Poisson noise counts too: the target's (its sky variance times the source's surface
   brightness over its sky's), less the input's carried along (``source_noise``).  Nothing
   is denoised.

Everything is deterministic given the integer ``seed`` (band k's noise comes from
``numpy.random.default_rng([seed, k])``, k the band's index in the target survey).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from survey2survey.errors import SurveyError
from survey2survey.fits_io.wcs import rescale_wcs
from survey2survey.physics.kernel import convolve_stack, matching_kernel
from survey2survey.physics.noise import (
    SOURCE_FLOOR_SIGMA,
    NoiseModel,
    cached_noise_model,
    coloured_noise,
    kernel_spectrum,
    load_noise_model,
    resize_spectrum,
    sky_sigma,
    source_variance_ratio,
    target_noise,
)
from survey2survey.physics.psf import effective_fwhm, header_fwhm
from survey2survey.physics.resample import BASIS_BOXES, axis_weights, resample
from survey2survey.surveys import Survey, get_survey

__all__ = ["PhysicsTranslator", "provenance_cards", "METHOD"]

#: Value of the ``S2SMETH`` provenance card.
METHOD = "physics"
#: A target PSF less than this much broader than the input's is not matched (no kernel).
_MATCH_TOLERANCE = 1e-3


@dataclass(frozen=True)
class _Geometry:
    in_shape: tuple[int, int]
    out_shape: tuple[int, int]
    scale_in: tuple[float, float]  # (y, x) arcsec per input pixel
    basis: str


#: Pixels whose two scales differ by at most this fraction count as square (:meth:`PhysicsTranslator._geometry`).
_SQUARE_PIXELS = 0.01


class PhysicsTranslator:
    """Translate cutouts from ``source`` to ``target`` by the physics of the two surveys.

    Parameters
    ----------
    source, target : Survey or str
        Registry surveys; both need ``psf_profile`` and ``psf_fwhm``, the target a noise
        level (``sky_sigma``, ``depth`` or a noise model).
    noise_model : NoiseModel or path, optional
        The target's measured noise; default the registry's ``noise_model`` of the target,
        else its ``sky_sigma`` / ``depth`` with ``noise_correlation``.
    """

    def __init__(self, source: Survey | str, target: Survey | str, noise_model: NoiseModel | str | None = None):
        self.source, self.target = get_survey(source), get_survey(target)
        for survey in (self.source, self.target):
            if not (survey.psf_profile and survey.psf_fwhm):
                raise SurveyError(
                    f"survey {survey.name!r} has no PSF in the registry (psf_profile, psf_fwhm): "
                    "the physics translator needs both surveys' PSFs (see docs/physics.md)"
                )
        if isinstance(noise_model, (str,)) or hasattr(noise_model, "__fspath__"):
            noise_model = load_noise_model(noise_model)
        self.noise_model = noise_model
        #: native input units -> native output units
        self.flux_scale = self.source.flux_factor / self.target.flux_factor
        #: the sources' Poisson noise in the top-up: both surveys' sky brightness known
        self.source_noise = bool(self.source.sky_brightness and self.target.sky_brightness)
        self._variance_cache: dict = {}

    # --- bands and geometry -------------------------------------------------------------

    def band_pairs(self, bands: Sequence[str]) -> list[tuple[int, str, str]]:
        """``(index in input, input band, target band)`` of every band both surveys have, target order."""
        lowered = [b.lower() for b in bands]
        pairs = []
        for band_out in self.target.bands:
            if band_out.lower() in lowered:
                j = lowered.index(band_out.lower())
                pairs.append((j, bands[j], band_out))
        if not pairs:
            raise SurveyError(
                f"no band of the input ({','.join(bands)}) exists in {self.target.name} ({','.join(self.target.bands)})"
            )
        return pairs

    def _scales(self, wcs) -> tuple[float, float]:
        if wcs is None:
            return (self.source.pixel_scale, self.source.pixel_scale)
        from astropy.wcs.utils import proj_plane_pixel_scales

        sx, sy = proj_plane_pixel_scales(wcs if wcs.naxis == 2 else wcs.celestial) * 3600.0
        return (float(sy), float(sx))

    def _geometry(self, shape: tuple[int, int], wcs) -> _Geometry:
        h, w = int(shape[-2]), int(shape[-1])
        sy, sx = self._scales(wcs)
        p = self.target.pixel_scale
        out = (max(1, int(round(h * sy / p))), max(1, int(round(w * sx / p))))
        if h == w and abs(sy - sx) <= _SQUARE_PIXELS * max(sy, sx):
            # a square cutout of square pixels stays square: real WCSs carry scales that differ in
            # the 4th digit (SDSS 0.3959 and 0.3961"/px), and each axis rounded alone can differ
            side = max(1, int(round(h * 0.5 * (sy + sx) / p)))
            out = (side, side)
        basis = "box" if min(p / sy, p / sx) >= 1.0 else "linear"
        return _Geometry((h, w), out, (sy, sx), basis)

    def output_geometry(self, shape: tuple[int, int], wcs=None):
        """Output (H, W) and WCS of an input of ``shape`` (..., H, W) with ``wcs``.

        Same centre and footprint (to the nearest target pixel), same orientation, pixel
        scale exactly the target's; SIP rescaled with it (:func:`~survey2survey.fits_io.wcs.rescale_wcs`).  WCS None -> None.
        """
        geo = self._geometry(shape, wcs)
        return geo.out_shape, self._output_wcs(geo, wcs)

    def _output_wcs(self, geo: _Geometry, wcs):
        """The input's WCS on the output grid: the target's pixel scale, the same centre, SIP kept."""
        if wcs is None:
            return None
        p = self.target.pixel_scale
        (sy, sx) = geo.scale_in
        return rescale_wcs(wcs if wcs.naxis == 2 else wcs.celestial, geo.in_shape, geo.out_shape,
                           scale=(p / sx, p / sy))

    # --- per band physics ---------------------------------------------------------------

    def _psf_plan(self, plane, band_in, band_out, header, n_boxes, scale_in, target_fwhm):
        src, tgt = self.source, self.target
        fwhm_in, key = header_fwhm(header, src.seeing_keyword_names(band_in, plane + 1))
        origin = f"header {key}" if key else "registry"
        if fwhm_in is None:
            fwhm_in = src.typical_fwhm(band_in)
        shown = effective_fwhm(src.psf_profile, fwhm_in, scale_in, n_boxes, src.psf_beta)
        wanted = float(target_fwhm[band_out]) if target_fwhm and band_out in target_fwhm else tgt.typical_fwhm(band_out)
        kernel = None
        if wanted > shown * (1 + _MATCH_TOLERANCE):
            kernel = matching_kernel((src.psf_profile, fwhm_in, src.psf_beta), (tgt.psf_profile, wanted, tgt.psf_beta),
                                     scale_in, n_boxes)
        info = {"band_in": band_in, "fwhm_in": fwhm_in, "fwhm_in_from": origin, "fwhm_target": wanted,
                "fwhm_out": wanted if kernel is not None else shown, "psf_matched": kernel is not None}
        return kernel, info

    def _source_spectrum(self, band: str, shape: tuple[int, int]) -> np.ndarray:
        if self.source.noise_model:
            model = cached_noise_model(self.source.noise_model)
            return resize_spectrum(model.spectrum[model.band(band)], shape)
        return kernel_spectrum(shape, self.source.noise_correlation)

    def propagated_variance(self, band_in: str, kernel, geo: _Geometry) -> np.ndarray:
        """Variance map (Ho, Wo) that unit-sigma input noise of ``band_in`` has after kernel and resampling."""
        wy, wx = self._weights(geo)
        key = (band_in, id(kernel), geo)
        hit = self._variance_cache.get(key)
        if hit is not None and hit[0] is kernel:
            return hit[1]
        d = int(np.ceil(max(self.target.pixel_scale / s for s in geo.scale_in))) + 2
        size = 64
        k_size = 0 if kernel is None else kernel.shape[0]
        while size < k_size + 2 * d + 8:
            size *= 2
        spectrum = self._source_spectrum(band_in, (size, size))
        if kernel is not None:
            spectrum = spectrum * np.abs(np.fft.fft2(kernel, (size, size))) ** 2
        cov = np.fft.ifft2(spectrum).real  # autocovariance of the input noise after the kernel
        lags = np.arange(-d, d + 1)
        cmat = cov[np.ix_(lags % size, lags % size)]
        var = _lag_products(wy, d) @ cmat @ _lag_products(wx, d).T
        if len(self._variance_cache) > 256:
            self._variance_cache.clear()
        self._variance_cache[key] = (kernel, var)
        return var

    def _weights(self, geo: _Geometry):
        p = self.target.pixel_scale
        wy = axis_weights(geo.in_shape[0], geo.out_shape[0], p / geo.scale_in[0], geo.basis)
        wx = axis_weights(geo.in_shape[1], geo.out_shape[1], p / geo.scale_in[1], geo.basis)
        return wy, wx

    def linear_operator(self, shape: tuple[int, int], bands: Sequence[str] | None = None, wcs=None,
                        out_shape: tuple[int, int] | None = None) -> list[dict]:
        """The noise-free translation of one band as a linear map, per target band.

        Band k of the output is ``Wy @ (K * image) @ Wx.T`` (times ``flux_scale``), with
        ``K`` the PSF matching kernel (None: no convolution) applied with mirrored edges
        and ``Wy``, ``Wx`` the resampling weights, for the registry's typical seeing of
        both surveys, onto the footprint's grid or ``out_shape`` (same centre).  Learned
        translators built on the physics
        (:class:`survey2survey.nets.residual.PhysicsOperator`) take it from here.

        Returns
        -------
        list of dict
            ``{"band_in", "band_out", "kernel" (ndarray or None), "wy", "wx", "info"}``.
        """
        bands = list(bands) if bands is not None else list(self.source.bands)
        geo = self._geometry(tuple(shape), wcs)
        if out_shape is not None:  # a fixed output grid, same centre (e.g. a model's cutout size)
            geo = _Geometry(geo.in_shape, (int(out_shape[0]), int(out_shape[1])), geo.scale_in, geo.basis)
        n_boxes = 1 + BASIS_BOXES[geo.basis]
        scale_in = float(np.sqrt(geo.scale_in[0] * geo.scale_in[1]))
        wy, wx = self._weights(geo)
        out = []
        for j, band_in, band_out in self.band_pairs(bands):
            kernel, info = self._psf_plan(j, band_in, band_out, None, n_boxes, scale_in, None)
            out.append({"band_in": band_in, "band_out": band_out, "kernel": kernel, "wy": wy, "wx": wx, "info": info})
        return out

    def matching_kernels(self, shape: tuple[int, int], bands: Sequence[str], wcs=None, header=None) -> list:
        """The PSF matching kernel (ndarray, or None where nothing is matched) of each band pair
        (:meth:`band_pairs`), as :meth:`translate` takes them for an image of ``shape`` with this
        ``wcs`` and ``header`` (its seeing keywords)."""
        geo = self._geometry(tuple(shape), wcs)
        n_boxes = 1 + BASIS_BOXES[geo.basis]
        scale_in = float(np.sqrt(geo.scale_in[0] * geo.scale_in[1]))
        return [self._psf_plan(j, b_in, b_out, header, n_boxes, scale_in, None)[0]
                for j, b_in, b_out in self.band_pairs(list(bands))]

    # --- translation --------------------------------------------------------------------

    def translate(
        self,
        data: np.ndarray,
        bands: Sequence[str],
        wcs=None,
        header=None,
        seed: int = 0,
        noise: bool = True,
        target_fwhm: Mapping[str, float] | None = None,
        input_sigma: Sequence[float] | str | None = None,
        output_wcs: bool = True,
    ) -> tuple[np.ndarray, Any, dict]:
        """Translate one cutout.

        Parameters
        ----------
        data : ndarray (bands, H, W)
            Native units of the source survey.
        bands : sequence of str
            Band of each plane; bands the target lacks are dropped.
        wcs : astropy.wcs.WCS, optional
            Celestial WCS of the input (pixel scale and orientation); None: the source
            survey's pixel scale and no output WCS.
        header : mapping, optional
            Input header, for per-object seeing keywords.
        seed : int
            Noise key of this cutout (e.g. ``emulate.object_seed(seed, object_id)``).
        noise : bool
            Top the noise up to the target's level; False returns the noise-free mapping.
        target_fwhm : {band: arcsec}, optional
            Target PSF FWHM per band instead of the registry's typical values.
        input_sigma : sequence of float or "registry", optional
            Input per-pixel noise sigma per plane (native), or ``"registry"`` for the source
            survey's typical values; default measured on the cutout's source-masked sky
            (1.4826 MAD after a grown 3-sigma clip).
        output_wcs : bool
            False: no output WCS is made (None is returned in its place), for a caller that
            has it already from :meth:`output_geometry`.

        Returns
        -------
        (ndarray (bands_out, Ho, Wo) float32, WCS or None, dict)
            Target native units; the output WCS; ``info`` (see :func:`provenance_cards`).
        """
        data = np.asarray(data)
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3 or len(bands) != data.shape[0]:
            raise ValueError(f"expected (bands, H, W) data with {len(bands)} band names, got shape {data.shape}")
        if input_sigma is not None and not isinstance(input_sigma, str):
            input_sigma = np.asarray(input_sigma, np.float64)[None]
        out, wcs_out, info = self.translate_batch(data[None], bands, [wcs], [header], [seed], noise, target_fwhm,
                                                  input_sigma, output_wcs)
        return out[0], wcs_out[0], info[0]

    def translate_batch(
        self,
        data: np.ndarray,
        bands: Sequence[str],
        wcs: Sequence | None = None,
        headers: Sequence | None = None,
        seeds: Sequence[int] | None = None,
        noise: bool = True,
        target_fwhm: Mapping[str, float] | None = None,
        input_sigma: np.ndarray | str | None = None,
        output_wcs: bool = True,
    ) -> tuple[np.ndarray, list, list[dict]]:
        """Translate N cutouts of one shape and pixel scale at once (same results as one by one).

        Parameters
        ----------
        data : ndarray (N, bands, H, W)
            Native units of the source survey.
        bands : sequence of str
        wcs, headers : sequences of N (or None)
            Each cutout's WCS (all with the pixel scale of the first) and header.
        seeds : sequence of N int
            Noise key of each cutout (default 0, 1, ...).
        noise, target_fwhm, output_wcs : as :meth:`translate`
        input_sigma : ndarray (N, bands) or "registry", optional

        Returns
        -------
        (ndarray (N, bands_out, Ho, Wo) float32, list of WCS or None, list of info dicts)
        """
        data = np.asarray(data)
        n = data.shape[0]
        wcs = list(wcs) if wcs is not None else [None] * n
        headers = list(headers) if headers is not None else [None] * n
        seeds = list(seeds) if seeds is not None else list(range(n))
        if data.ndim != 4 or len(bands) != data.shape[1] or not len(wcs) == len(headers) == len(seeds) == n:
            raise ValueError(f"expected (N, {len(bands)}, H, W) data and N wcs, headers, seeds; got {data.shape}")
        pairs = self.band_pairs(list(bands))
        geo = self._geometry(data.shape, wcs[0])
        if any(self._geometry(data.shape, w) != geo for w in wcs[1:]):
            raise ValueError("translate_batch needs cutouts of one pixel scale: translate them one by one")
        n_boxes = 1 + BASIS_BOXES[geo.basis]
        scale_in = float(np.sqrt(geo.scale_in[0] * geo.scale_in[1]))
        plans = [[self._psf_plan(j, b_in, b_out, h, n_boxes, scale_in, target_fwhm) for j, b_in, b_out in pairs]
                 for h in headers]
        planes_in = [j for j, _, _ in pairs]
        out = resample(self._convolve(data[:, planes_in].astype(np.float64) * self.flux_scale, plans),
                       *self._weights(geo))
        infos = [[i for _, i in row] for row in plans]
        if noise:
            if input_sigma is None:
                sigma_in = sky_sigma(data[:, planes_in])
            elif isinstance(input_sigma, str) and input_sigma == "registry":
                sigma_in = np.tile([self.source.typical_sky_sigma(b) for _, b, _ in pairs], (n, 1))
            else:
                sigma_in = np.asarray(input_sigma, np.float64)[:, planes_in]
            for c in range(n):
                self._top_up(out[c], pairs, [k for k, _ in plans[c]], geo, sigma_in[c] * self.flux_scale, infos[c],
                             seeds[c])
        common = {"method": METHOD, "source": self.source.name, "target": self.target.name,
                  "bands": tuple(b for _, _, b in pairs), "pixel_scale_in": scale_in,
                  "pixel_scale_out": self.target.pixel_scale, "resampling": geo.basis, "noise": bool(noise),
                  "flux_scale": self.flux_scale}
        info = [common | {"per_band": dict(zip(common["bands"], row))} for row in infos]
        wcs_out = [self._output_wcs(geo, w) if output_wcs else None for w in wcs]
        return out.astype(np.float32), wcs_out, info

    @staticmethod
    def _convolve(planes: np.ndarray, plans) -> np.ndarray:
        """Each band of each cutout (N, B, H, W) with its kernel.

        One FFT pair per image: stacked FFTs outgrow the CPU caches and run slower per image.
        """
        out = np.asarray(planes, dtype=np.float32)
        for c, row in enumerate(plans):
            for k, (kernel, _) in enumerate(row):
                if kernel is not None:
                    out[c, k] = convolve_stack(out[c, k], kernel)
        return out

    def _top_up(self, out, pairs, kernels, geo, sigma_prop_in, infos, seed) -> None:
        """Add noise where the target is noisier than the carried input noise (in place)."""
        for k, ((_, band_in, band_out), kernel) in enumerate(zip(pairs, kernels)):
            var_unit = self.propagated_variance(band_in, kernel, geo)
            carried = sigma_prop_in[k] ** 2 * var_unit
            sigma_t, spectrum = target_noise(self.target, band_out, self.noise_model, geo.out_shape)
            # the sources' Poisson noise: the target's, less what the input's carries through (both
            # surveys' sky brightness needed: the input's own would otherwise be counted twice)
            shot_t = shot_in = 0.0
            if self.source_noise:
                floor = SOURCE_FLOOR_SIGMA * np.sqrt(sigma_t**2 + carried)
                shot_t = source_variance_ratio(out[k], self.target, band_out, floor=floor)
                shot_in = shot_t * (self.target.sky_surface_flux(band_out) / self.source.sky_surface_flux(band_in))
            add = np.sqrt(np.maximum(sigma_t**2 * (1.0 + shot_t) - carried * (1.0 + shot_in), 0.0))
            if add.any():  # nothing to draw where the carried noise already exceeds the target's
                rng = np.random.default_rng([int(seed), self.target.band_index(band_out)])
                out[k] += add * coloured_noise(rng, 1, geo.out_shape, spectrum)[0]
            infos[k].update(
                sigma_in=float(sigma_prop_in[k] / self.flux_scale), sigma_carried=float(np.sqrt(carried.mean())),
                sigma_target=float(sigma_t), sigma_added=float(np.sqrt((add * add).mean())),
                noise_from="noise model" if (self.noise_model is not None or self.target.noise_model) else "registry",
            )


def _lag_products(w: np.ndarray, d: int) -> np.ndarray:
    """``A[m, l] = sum_i w[m, i] w[m, i + l]`` for lags l = -d..d, (n_out, 2d + 1)."""
    n = w.shape[1]
    out = np.zeros((w.shape[0], 2 * d + 1))
    for lag in range(0, min(d, n - 1) + 1):
        v = (w[:, : n - lag] * w[:, lag:]).sum(axis=1)
        out[:, d + lag] = v
        out[:, d - lag] = v
    return out


def provenance_cards(info: dict) -> list[tuple[str, Any, str]]:
    """FITS cards ``(key, value, comment)`` (keys <= 8 characters) recording a physics translation.

    ``PSFFWHMn`` is the output PSF FWHM of band n: the keyword the translator itself reads
    as per-object seeing, so a translated file can be translated again.
    """
    cards: list[tuple[str, Any, str]] = [
        ("S2SMETH", METHOD, "translated by survey physics, no training"),
        ("S2SPSCL", round(float(info["pixel_scale_out"]), 6), "output pixel scale (arcsec/px)"),
        ("S2SRESMP", info["resampling"], "flux-conserving interpolant (box | linear)"),
    ]
    for n, band in enumerate(info["bands"], start=1):
        b = info["per_band"][band]
        cards += [
            (f"PSFFWHM{n}", round(b["fwhm_out"], 4), f"{band} output PSF FWHM (arcsec)"),
            (f"PSFIN{n}", round(b["fwhm_in"], 4), f"{band} input PSF FWHM (arcsec, {b['fwhm_in_from']})"[:47]),
            (f"PSFMAT{n}", bool(b["psf_matched"]), f"{band} matched to target PSF; F: input resolution kept"[:47]),
        ]
        if "sigma_added" in b:
            cards += [
                (f"NOISCR{n}", float(f"{b['sigma_carried']:.5g}"), f"{band} input noise carried (sigma, native)"),
                (f"NOISAD{n}", float(f"{b['sigma_added']:.5g}"), f"{band} noise added (rms sigma, native)"),
                (f"NOISTG{n}", float(f"{b['sigma_target']:.5g}"), f"{band} target noise sigma ({b['noise_from']})"[:47]),
            ]
    return cards
