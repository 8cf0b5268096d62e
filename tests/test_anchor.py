"""The photometry anchor (nets/anchor.py, physics/photometry.py).

Known answers: galaxies drawn with GalSim through the registry's two PSFs, whose CFHT 2"
aperture fluxes are known, are estimated from the SDSS image's physics translation within
0.5 % (resolved disks), 2.5 % (a compact bulge) and 5.5 % (a point source: the gain clip),
where the plain physics is 5-14 % low; the estimate's noise is the Monte Carlo noise of white
and of correlated input noise; an anchored image has the estimated flux in its circle, and
its total flux and its sky as they were, and about 1 % of the change past the ring; the correction has the
object's shape; the gate ramps from nothing to all of it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from survey2survey.metrics.apertures import aperture_sum
from survey2survey.nets.anchor import ANCHOR_RADIUS_ARCSEC, GATE, RING_ARCSEC, PhotometryAnchor
from survey2survey.nets.residual import PhysicsResidualGenerator
from survey2survey.physics.psf import make_psf
from survey2survey.surveys import get_survey, stretch

SDSS, CFHT = get_survey("sdss"), get_survey("cfht")
RADIUS = ANCHOR_RADIUS_ARCSEC / CFHT.pixel_scale


@pytest.fixture(scope="module")
def generator():
    return PhysicsResidualGenerator.from_surveys(SDSS, CFHT, 5, 64, 136, correction="object", anchor=True)


def _seen(profile, survey, size):
    """``profile`` (GalSim) through ``survey``'s PSF in every band, pixel-integrated: (5, size, size)."""
    import galsim

    return np.array([galsim.Convolve(profile, make_psf(survey.psf_profile, survey.typical_fwhm(b), survey.psf_beta))
                     .drawImage(nx=size, ny=size, scale=survey.pixel_scale).array for b in survey.bands])


def _galaxy(hlr=1.0, flux=100.0, q=0.5):
    import galsim

    return galsim.Exponential(half_light_radius=hlr, flux=flux).shear(q=q, beta=0.4 * galsim.radians)


@pytest.mark.parametrize("kind,tolerance", [("disk", 0.005), ("large disk", 0.005), ("compact bulge", 0.025),
                                            ("point", 0.055)])
def test_estimates_are_the_sharper_surveys_aperture_fluxes(generator, kind, tolerance):
    import galsim

    profile = {"disk": _galaxy(1.0), "large disk": _galaxy(3.0, q=0.4),
               "compact bulge": galsim.DeVaucouleurs(half_light_radius=0.5, flux=100.0),
               "point": galsim.DeltaFunction(flux=100.0)}[kind]
    source, truth = _seen(profile, SDSS, 64), _seen(profile, CFHT, 136)
    with torch.no_grad():
        p = generator.physics(torch.tensor(source[None], dtype=torch.float32))
    estimates = (p[0] * generator.anchor.estimator).sum(dim=(1, 2)).numpy()
    want = aperture_sum(truth[None], RADIUS)[0]
    assert np.abs(estimates / want - 1).max() < tolerance
    plain = aperture_sum(p.numpy(), RADIUS)[0]
    assert (plain / want < 0.95).all()  # the physics keeps SDSS's PSF: its own flux is well below


@pytest.mark.parametrize("source,target", [("sdss", "cfht"), ("cfht", "sdss")])
def test_estimates_noise_is_the_monte_carlo_noise(source, target):
    """White SDSS noise, and CFHT noise correlated by the registry's [c, 1, c] kernel."""
    from scipy.ndimage import correlate1d

    src, tgt = get_survey(source), get_survey(target)
    gen = PhysicsResidualGenerator.from_surveys(src, tgt, 5, src.cutout_size, tgt.cutout_size, anchor=True)
    noise = np.random.default_rng(0).standard_normal((1200, 5, src.cutout_size, src.cutout_size))
    c = src.noise_correlation or 0.0
    if c:
        k1 = np.array([c, 1.0, c]) / np.sqrt(1 + 2 * c * c)
        noise = correlate1d(correlate1d(noise, k1, axis=-1, mode="constant"), k1, axis=-2, mode="constant")
    with torch.no_grad():
        p = gen.physics(torch.tensor(noise, dtype=torch.float32))
    estimates = (p * gen.anchor.estimator).sum(dim=(2, 3)).numpy()
    assert np.allclose(estimates.std(axis=0), gen.anchor.noise_gain.numpy(), rtol=0.07)


def test_windows_are_centred_where_the_circle_is(generator):
    yy, xx = np.mgrid[0:136, 0:136]
    for band in range(5):
        for window in generator.anchor.windows[band].double().numpy():
            centre = ((window * yy).sum() / window.sum(), (window * xx).sum() / window.sum())
            assert np.allclose(centre, 67.5, atol=0.01)


def _anchor_case(generator, lost=0.3, flux=3000.0, noise=0.05, seed=0):
    """A galaxy through the physics (p), and a 'generator output' g that is the truth with ``lost``
    of the flux within 2" moved out evenly to the 2"-4" ring (the circle's flux too low)."""
    rng = np.random.default_rng(seed)
    galaxy = _galaxy(1.0, flux)
    source = _seen(galaxy, SDSS, 64) + noise * rng.standard_normal((5, 64, 64))
    truth = _seen(galaxy, CFHT, 136)
    r = np.hypot(*(np.mgrid[0:136, 0:136] - 67.5)) * CFHT.pixel_scale
    inner, ring = r < 2.0, (r >= 2.0) & (r < 4.0)
    taken = lost * truth * inner
    g = truth - taken + ring * taken.sum(axis=(1, 2), keepdims=True) / ring.sum()
    x = torch.tensor(source[None], dtype=torch.float32)
    with torch.no_grad():
        p = generator.physics(x)
    return torch.tensor(g[None], dtype=torch.float32), p, x, truth


def test_anchored_image_has_the_estimated_flux_and_nothing_else_changed(generator):
    g, p, x, truth = _anchor_case(generator)
    with torch.no_grad():
        out = generator.anchor(g, p, x)
    anchor = generator.anchor
    level = p[..., :4, :].mean(dim=(2, 3)).double()  # (the frame's sky level, as the anchor measures it: ~0 here)
    wanted = (p.double() * anchor.estimator.double()).sum(dim=(2, 3)) - level * anchor.estimator.double().sum(dim=(1, 2))
    area = anchor.aperture.double().sum()
    have = (out.double() * anchor.aperture.double()).sum(dim=(2, 3))
    before = (g.double() * anchor.aperture.double()).sum(dim=(2, 3))
    assert ((before / wanted) < 0.85).all()  # the damaged image was far from it ...
    assert torch.allclose(have, wanted + level * area, rtol=1e-3)  # ... the anchored one holds it
    truth_flux = aperture_sum(truth[None], RADIUS)[0]
    assert np.allclose(have[0].numpy(), truth_flux, rtol=0.01)  # and that is the truth's
    assert torch.allclose(out.double().sum(dim=(2, 3)), g.double().sum(dim=(2, 3)), rtol=1e-5)  # total kept
    r = torch.from_numpy(np.hypot(*(np.mgrid[0:136, 0:136] - 67.5)) * CFHT.pixel_scale)
    change = (out - g).double().abs()
    assert change[..., r > RING_ARCSEC].sum() < 0.02 * change.sum()  # the ring's PSF-blurred edge only ...
    assert change[..., r > RING_ARCSEC + 1.0].sum() < 0.002 * change.sum()
    frame = torch.ones(136, 136, dtype=torch.bool)
    frame[4:-4, 4:-4] = False
    sky = CFHT.typical_sky_sigma("r") * CFHT.flux_factor
    assert (out - g)[..., frame].abs().max() < 1e-3 * sky  # ... and the sky untouched


def test_a_wild_estimate_changes_the_core_by_a_factor_two_at_most(generator):
    g, p, x, _ = _anchor_case(generator, lost=0.0)
    anchor = generator.anchor
    with torch.no_grad():
        for scale in (0.05, 20.0):  # the physics image scaled: an estimate 20x too low, or too high
            out = anchor(g, p * scale, x)
            ratio = (out * anchor.aperture).sum(dim=(2, 3)) / (g * anchor.aperture).sum(dim=(2, 3))
            assert torch.allclose(ratio, torch.full_like(ratio, 0.5 if scale < 1 else 2.0), rtol=0.01)


def test_correction_has_the_objects_shape(generator):
    """The damaged image is the truth with 30 % of its 2" flux moved out: the anchor moves it
    back in the object's shape, so the result is within 5 % of the truth on the core (a round disc
    of flux added to an elongated galaxy would miss by far more along its minor axis)."""
    g, p, x, truth = _anchor_case(generator)
    with torch.no_grad():
        out = generator.anchor(g, p, x)[0].numpy()
    r = np.hypot(*(np.mgrid[0:136, 0:136] - 67.5)) * CFHT.pixel_scale
    core = (r < 1.0) & (truth[2] > 0.2 * truth[2].max())
    assert np.abs(g[0, 2].numpy()[core] / truth[2][core] - 1).max() > 0.25
    assert np.abs(out[2][core] / truth[2][core] - 1).max() < 0.05


def test_the_gate_ramps_with_the_objects_flux_over_the_estimates_noise(generator):
    """Below GATE[0] times the estimate's noise nothing changes, at GATE[1] and above all of the
    correction is applied, half-way about half of it."""
    noise = 0.05
    sigma = float(generator.anchor.noise_gain[2]) * noise * SDSS.flux_factor  # r, common flux scale
    in_circle = aperture_sum(_seen(_galaxy(1.0, 1.0), CFHT, 136)[None], RADIUS)[0, 2]  # of a unit flux

    def applied(snr):
        g, p, x, _ = _anchor_case(generator, flux=snr * sigma / (0.7 * in_circle), noise=noise)
        with torch.no_grad():
            out = generator.anchor(g, p, x)
            full = generator.anchor(g, p, torch.zeros_like(x))  # a noise-free source: all of it
        return float((out - g)[0, 2].abs().sum() / (full - g)[0, 2].abs().sum())

    assert applied(0.5 * GATE[0]) == 0.0
    assert applied(3.0 * GATE[1]) == pytest.approx(1.0)
    assert applied(0.5 * (GATE[0] + GATE[1])) == pytest.approx(0.5, abs=0.15)


def test_anchored_generator_round_trips_and_old_models_have_none(tmp_path):
    from survey2survey.model import load_model, save_model

    generator = PhysicsResidualGenerator.from_surveys(SDSS, CFHT, 5, 64, 136, correction="object", anchor=True)
    assert generator.init_kwargs["anchor"] is True
    plain = PhysicsResidualGenerator.from_surveys(SDSS, CFHT, 5, 64, 136, correction="object")
    assert plain.anchor is None and "anchor" not in plain.init_kwargs
    torch.manual_seed(0)
    with torch.no_grad():
        for weights in generator.residual.parameters():
            weights.normal_(0.0, 0.05)
    source = _seen(_galaxy(1.0, 3000.0), SDSS, 64) + 0.05 * np.random.default_rng(1).standard_normal((5, 64, 64))
    x = torch.tensor(stretch(source[None]), dtype=torch.float32)
    save_model(tmp_path / "m", {"generator_sdss_to_cfht": generator}, {"method": "test", "step": 2})
    loaded = load_model(tmp_path / "m").modules["generator_sdss_to_cfht"]
    assert loaded.anchor is not None
    with torch.no_grad():
        assert torch.equal(loaded(x), generator(x))
        generator.anchor = None
        assert not torch.equal(loaded(x), generator(x))  # (the anchor did something to this galaxy)


def test_a_cutout_too_small_for_the_anchor_is_named():
    assert PhotometryAnchor.fits(CFHT, 136) and PhotometryAnchor.fits(SDSS, 64)
    assert not PhotometryAnchor.fits(CFHT, 40)
    with pytest.raises(ValueError, match="too small for the photometry anchor"):
        PhysicsResidualGenerator.from_surveys(SDSS, CFHT, 5, 20, 40, correction="object", anchor=True)
