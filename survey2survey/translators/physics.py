"""Translation by the physics of two surveys as a :class:`~survey2survey.translators.base.Translator`.

``s2s translate IN --to T --model physics`` runs this: no training, any pair of surveys
whose registry entries carry a PSF and a noise level (docs/physics.md).  Per cutout, in
the worker processes (``per_cutout = True``)::

    FITS (source survey, native units, with a WCS)
      -> output grid from the input's WCS (exactly the target's pixel scale)   prepare
      -> PhysicsTranslator.translate: PSF matching, flux-conserving resampling,
         zero points, noise topped up to the target's; once per realisation    run
    FITS (target survey, native units), PSFs and noise in the header             provenance

It works band by band: the input's bands that the target has are translated (a file with
only an r image gives an r image).  Each object's noise comes from its key
(:func:`survey2survey.runtime.seeds.object_seed`); realisation ``s > 1`` of ``--samples``
from ``object_seed(key, "sample<s>")``, so realisation 1 is the plain run's.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from survey2survey.errors import CutoutError, SurveyError, UsageError
from survey2survey.fits_io import Provenance, wcs_cards
from survey2survey.physics.translator import METHOD, PhysicsTranslator, provenance_cards
from survey2survey.runtime.seeds import object_seed
from survey2survey.surveys import Survey, get_survey, list_surveys
from survey2survey.translators.base import Geometry, Prepared, Translator, resample_mask

__all__ = ["SurveyPhysicsTranslator", "sample_seed"]


def sample_seed(key: int, sample: int) -> int:
    """Noise key of realisation ``sample`` (0-based) of an object with key ``key``."""
    return int(key) if sample == 0 else object_seed(int(key), f"sample{sample + 1}")


class SurveyPhysicsTranslator(Translator):
    """Every registry survey (or ``source`` alone) into ``to``, by the surveys' physics.

    Parameters
    ----------
    to : str or Survey
        Target survey; needs a PSF (``psf_profile``, ``psf_fwhm``) and, with noise, a
        noise level (``sky_sigma``, ``depth`` or ``noise_model``).
    source : str or Survey, optional
        Translate this survey only (``--from``); default every other registry survey,
        told from each file's header.
    noise : bool
        False: the noise-free mapping (nothing added; the input's own noise stays).
    chosen_by : str, optional
        Why physics runs when the user did not ask for it (a model that leaves this
        direction to the physics); said in :meth:`summary` and in each output's HISTORY.
    chosen_model : (str, str), optional
        That model's name and weights SHA-256, written as ``S2SBYMOD`` and ``S2SBYHSH``.

    Raises
    ------
    SurveyError, UsageError
        The target (or the given source) lacks the physics the translation needs.
    """

    per_cutout = True
    #: read a cutout's bands as the file has them (band by band)
    partial_bands = True

    def __init__(self, to, *, source=None, noise: bool = True, chosen_by: str = "", chosen_model: tuple[str, str] | None = None):
        self.target = get_survey(to)
        self.chosen_by = chosen_by
        self.chosen_model = chosen_model  # (name, weights SHA-256) of the model that chose the physics
        _need_psf(self.target, "target")
        if noise and not (self.target.sky_sigma or self.target.depth or self.target.noise_model):
            raise SurveyError(
                f"survey {self.target.name!r} has no noise level in the registry (sky_sigma, depth or noise_model): "
                "add one (docs/physics.md) or translate with --no-noise"
            )
        if source is not None:
            given = get_survey(source)
            if given.name == self.target.name:
                raise UsageError(f"--from and --to are both {self.target.name}")
            _need_psf(given, "source")
            self.sources = {given.name: given}
        else:  # a survey without a PSF is refused per file, in prepare(), with the reason
            self.sources = {s.name: s for s in list_surveys() if s.name != self.target.name}
        self.noise = noise
        _preload()

    def _core(self, source: Survey) -> PhysicsTranslator:
        return _core(source, self.target)

    def describe(self) -> str:
        return "physics (no training), cpu"

    def summary(self) -> str:
        """One line for the start of a run: what translates what."""
        into = ", ".join(f"{s}->{self.target.name}" for s in self.sources) if len(self.sources) == 1 else (
            f"any registry survey -> {self.target.name} (source from each file's header)")
        noise = "target noise topped up" if self.noise else "no noise added (--no-noise)"
        how = "PSF matching, flux-conserving resampling, zero points"
        if self.chosen_by:
            return f"translating by survey physics ({how}; {noise}): {into}; {self.chosen_by}"
        return f"translating by survey physics (--model physics: {how}; {noise}), no training: {into}"

    # --- worker processes -------------------------------------------------------------
    def prepare(self, cutout, survey: Survey) -> Prepared:
        path = cutout.path
        if cutout.wcs is None:
            raise CutoutError(path, "no usable WCS: the physics translator needs the input's pixel scale and sky position")
        try:
            _need_psf(survey, "source")
            core = self._core(survey)
            pairs = core.band_pairs(list(cutout.bands))
            shape, wcs_out = core.output_geometry(cutout.data.shape, cutout.wcs)
        except SurveyError as exc:
            raise CutoutError(path, str(exc)) from None
        planes = [j for j, _, _ in pairs]
        bands_out = tuple(b for _, _, b in pairs)
        mask = None
        if cutout.mask is not None:  # a filled pixel reaches as far as the PSF matching kernel spreads it
            kernels = core.matching_kernels(cutout.data.shape[1:], cutout.bands, cutout.wcs, cutout.header)
            mask = resample_mask(np.stack([_grow(cutout.mask[j], k) for j, k in zip(planes, kernels)]), shape)
        state = {"bands": tuple(cutout.bands), "wcs": cutout.wcs, "header": cutout.header}
        return Prepared(survey, cutout.data, Geometry(tuple(shape), bands_out, wcs_cards(wcs_out)), mask,
                        list(cutout.warnings), state)

    def run(self, batch: Sequence[Prepared], keys: np.ndarray, samples: int) -> list[np.ndarray]:
        out = []
        for p, key in zip(batch, keys):
            core, st = self._core(p.source), p.state
            draws = []
            for s in range(samples):
                # the output WCS is the one prepare() made (Geometry.wcs): not made again
                image, _, info = core.translate(p.x, st["bands"], st["wcs"], st["header"], seed=sample_seed(key, s),
                                                noise=self.noise, output_wcs=False)
                draws.append(image)
                if s == 0:
                    st["info"] = info
            out.append(np.stack(draws))  # (S, C, H, W) target native units
        return out

    def provenance(self, prepared: Prepared, object_id: str, seed: int, n_samples: int):
        info, source, target = prepared.state["info"], prepared.source, self.target
        direction = f"{source.name}->{target.name}"
        prov = Provenance(model=METHOD, method=METHOD, direction=direction, source_survey=source.name,
                          target_survey=target.name, seed=int(seed), backend=self.describe(),
                          noise="yes (physics: target noise topped up)" if self.noise else "no")
        history = [
            f"s2s translate {direction} by survey physics (no training): PSF matching to the target where it is "
            f"broader, flux-conserving {info['resampling']} resampling onto {target.pixel_scale}\"/px, zero points",
        ]
        kept = [b for b in info["bands"] if not info["per_band"][b]["psf_matched"]]
        if kept:
            history.append(
                f"band(s) {','.join(kept)}: the target PSF is sharper than the input's: nothing deconvolved, "
                "the output keeps the source resolution (PSFFWHMn = the output's FWHM)"
            )
        if self.noise:
            history.append(
                f"noise: the input's own noise carried, Gaussian noise topped up to the {target.name} level where "
                f"it is noisier, from seed {seed} and object id {object_id!r} ({n_samples} realisation(s))"
            )
            if self._core(source).source_noise:
                history.append(f"the sources' Poisson noise included (both surveys' sky brightness in the registry): "
                               f"{target.name}'s less the input's carried along")
        else:
            history.append("no noise added (--no-noise): the input's own noise is carried")
        cards = [c for c in provenance_cards(info) if c[0] != "S2SMETH"]
        cards.append(("S2SNSAMP", int(n_samples) if self.noise else 0, "noise realisations in this file"))
        if self.chosen_by:
            history.append(self.chosen_by)
        if self.chosen_model is not None:
            cards.append(("S2SBYMOD", self.chosen_model[0], "model that left this direction to the physics"))
            cards.append(("S2SBYHSH", self.chosen_model[1], "its weights' SHA-256"))
        return prov, history, cards


#: One PhysicsTranslator per (source, target) in each process: its propagated-noise cache
#: then lasts for the whole run (the translator itself is pickled afresh with every task).
_CORES: dict[tuple[Survey, Survey], PhysicsTranslator] = {}


def _core(source: Survey, target: Survey) -> PhysicsTranslator:
    core = _CORES.get((source, target))
    if core is None:
        if len(_CORES) > 64:
            _CORES.clear()
        core = _CORES[(source, target)] = PhysicsTranslator(source, target)
    return core


def _preload() -> None:
    """Import what the workers run, once, in the process that forks them (not once in each)."""
    import astropy.wcs.utils  # noqa: F401
    import galsim  # noqa: F401
    import scipy.fft  # noqa: F401
    import scipy.sparse  # noqa: F401


#: A masked (filled) input pixel flags the input pixels where the matching kernel is at least this
#: fraction of its peak.
MASK_KERNEL_FRACTION = 1e-3


def _grow(mask: np.ndarray, kernel) -> np.ndarray:
    """A band's bad-pixel mask (H, W) grown by the support of its PSF matching kernel (None: as it is)."""
    if kernel is None or not mask.any():
        return mask
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, structure=np.abs(kernel) >= MASK_KERNEL_FRACTION * np.abs(kernel).max())


def _need_psf(survey: Survey, role: str) -> None:
    if not (survey.psf_profile and survey.psf_fwhm):
        raise SurveyError(
            f"{role} survey {survey.name!r} has no PSF in the registry (psf_profile, psf_fwhm): "
            "--model physics needs both surveys' PSFs (docs/physics.md)"
        )
