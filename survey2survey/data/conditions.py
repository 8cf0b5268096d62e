"""How each survey observes in the simulator: seeing, sky noise and astrometry, as distributions.

The values come from the survey registry (``surveys.toml``: ``psf_fwhm``, ``sky_sigma`` or
``depth``, ``noise_correlation`` and the ``[name.simulation]`` spread);
:mod:`survey2survey.data.simulate` draws each image's conditions from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from survey2survey.errors import SurveyError
from survey2survey.data.galaxies import band_key
from survey2survey.surveys import SimulationSpread, Survey

__all__ = ["SurveyConditions", "survey_conditions", "conditions_of"]


@dataclass(frozen=True)
class SurveyConditions:
    """How one survey observes: seeing, sky noise and astrometry, as distributions.

    Parameters
    ----------
    seeing : float
        Median PSF FWHM in r (arcsec); other bands scale as ``(lambda / lambda_r)**-0.2``.
    seeing_scatter : float
        Log-normal scatter (natural log) of an image's seeing.
    band_seeing_scatter : float
        Extra log-normal scatter per band (small when all bands are taken at once).
    seeing_limits : (float, float)
        The r-band FWHM is clipped to this range (arcsec).
    sky_sigma : dict
        Band -> median per-pixel sky-noise sigma in native units.
    sky_scatter_image : float
        Log-normal scatter of the noise level shared by all bands of an image.
    sky_scatter_band : float
        Further log-normal scatter per band.
    noise_correlation : float
        Weight ``c`` of the nearest pixels in the separable 3x3 kernel ``[c, 1, c]`` applied
        to white noise (renormalised so that the per-pixel sigma is unchanged); 0 = white.
    astrometric_jitter : float
        Sigma (arcsec, per axis) of the offset between a cutout's centre and the galaxy.
    psf_beta : float
        Moffat index of the PSF.
    psf_shear : float
        Largest reduced shear |g| of the PSF (drawn uniformly in the disc per band).
    """

    seeing: float
    seeing_scatter: float
    band_seeing_scatter: float
    seeing_limits: tuple[float, float]
    sky_sigma: dict[str, float]
    sky_scatter_image: float
    sky_scatter_band: float
    noise_correlation: float = 0.0
    astrometric_jitter: float = 0.1
    psf_beta: float = 3.0
    psf_shear: float = 0.03


def survey_conditions(survey: Survey) -> SurveyConditions:
    """The simulator's conditions for ``survey``, from its registry entry (``surveys.toml``).

    Typical seeing (``psf_fwhm``), sky sigma (``sky_sigma`` or from ``depth``), noise
    correlation and the ``[name.simulation]`` spread; a survey without a PSF or a noise
    level in the registry cannot be simulated.
    """
    if not (survey.psf_fwhm and (survey.sky_sigma or survey.depth)):
        raise SurveyError(
            f"no simulation conditions for survey {survey.name!r}: its registry entry needs psf_profile, "
            "psf_fwhm and sky_sigma or depth (see docs/physics.md), or pass SurveyConditions for it in "
            "SimulationConfig.conditions"
        )
    for band in survey.bands:
        band_key(band)
    spread = survey.simulation or SimulationSpread()
    seeing = survey.reference_fwhm()
    limits = spread.seeing_limits or (round(0.6 * seeing, 3), round(1.9 * seeing, 3))
    return SurveyConditions(
        seeing=seeing,
        seeing_scatter=spread.seeing_scatter,
        band_seeing_scatter=spread.band_seeing_scatter,
        seeing_limits=tuple(limits),
        sky_sigma={band: survey.typical_sky_sigma(band) for band in survey.bands},
        sky_scatter_image=spread.sky_scatter_image,
        sky_scatter_band=spread.sky_scatter_band,
        noise_correlation=survey.noise_correlation,
        astrometric_jitter=spread.astrometric_jitter,
        psf_beta=survey.psf_beta,
        psf_shear=spread.psf_shear,
    )


def conditions_of(survey: Survey, conditions: dict[str, SurveyConditions] | None) -> SurveyConditions:
    """``conditions[survey.name]`` checked against the survey's bands, else the registry's."""
    if conditions is None or survey.name not in conditions:
        return survey_conditions(survey)  # the registry's (or a clear error naming what is missing)
    cond = conditions[survey.name]
    missing = [b for b in survey.bands if b not in cond.sky_sigma]
    if missing:
        raise SurveyError(f"simulation conditions of {survey.name!r} have no sky sigma for band(s) {','.join(missing)}")
    for band in survey.bands:
        band_key(band)
    return cond
