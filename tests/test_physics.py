"""The physics translator against known answers: GalSim renderings through both surveys' PSFs."""

import numpy as np
import pytest

galsim = pytest.importorskip("galsim")

from astropy.wcs.utils import proj_plane_pixel_scales  # noqa: E402

from survey2survey.errors import SurveyError  # noqa: E402
from survey2survey.fits_io import make_wcs  # noqa: E402
from survey2survey.physics.psf import fwhm_of_image, make_psf  # noqa: E402
from survey2survey.physics.resample import axis_weights, resample  # noqa: E402
from survey2survey.physics.translator import PhysicsTranslator, provenance_cards  # noqa: E402
from survey2survey.surveys import get_survey  # noqa: E402

RA, DEC = 34.5, -7.0


def render(survey, gal, bands=None, fwhm=None, size=None):
    """Noise-free cube of ``gal`` (fluxes in nanomaggies) as ``survey`` sees it, native units."""
    survey = get_survey(survey)
    bands = bands or survey.bands
    size = size or survey.cutout_size
    planes = []
    for band in bands:
        psf = make_psf(survey.psf_profile, fwhm or survey.typical_fwhm(band), survey.psf_beta)
        image = galsim.Convolve(gal, psf).drawImage(nx=size, ny=size, scale=survey.pixel_scale).array
        planes.append(image / survey.flux_factor)
    return np.stack(planes).astype(np.float64), make_wcs(RA, DEC, survey.pixel_scale, (size, size))


POINT = galsim.DeltaFunction(flux=200.0)
SERSIC = galsim.Sersic(n=2.0, half_light_radius=1.5, flux=200.0).shear(q=0.6, beta=30 * galsim.degrees)


@pytest.mark.parametrize("name, gal", [("point", POINT), ("sersic", SERSIC)])
def test_cfht_to_sdss_matches_the_sdss_rendering(name, gal):
    cfht, wcs = render("cfht", gal, bands=("g", "r", "i"))
    sdss, _ = render("sdss", gal, bands=("g", "r", "i"))
    out, _, info = PhysicsTranslator("cfht", "sdss").translate(cfht, ("g", "r", "i"), wcs, noise=False)
    assert out.shape == sdss.shape == (3, 64, 64)
    for j, band in enumerate("gri"):
        assert info["per_band"][band]["psf_matched"]
        assert out[j].sum() == pytest.approx(sdss[j].sum(), rel=0.01)
        assert fwhm_of_image(out[j], 0.396) == pytest.approx(fwhm_of_image(sdss[j], 0.396), rel=0.02)
        assert np.abs(out[j] - sdss[j]).max() < 0.02 * sdss[j].max()  # the same image, pixel by pixel


@pytest.mark.parametrize("source, target", [("cfht", "sdss"), ("sdss", "cfht"), ("hsc", "sdss"), ("sdss", "lsst")])
def test_flux_is_conserved_without_noise(source, target):
    # compact, so that the rounding of the footprint to whole target pixels loses nothing
    cube, wcs = render(source, galsim.Exponential(half_light_radius=0.8, flux=200.0))
    t = PhysicsTranslator(source, target)
    out, _, info = t.translate(cube, get_survey(source).bands, wcs, noise=False)
    s, g = get_survey(source), get_survey(target)
    for k, band in enumerate(info["bands"]):
        j = [b.lower() for b in s.bands].index(band.lower())
        assert out[k].sum() * g.flux_factor == pytest.approx(cube[j].sum() * s.flux_factor, rel=1e-4)


def test_sharper_target_keeps_the_input_resolution_and_says_so():
    sdss, wcs = render("sdss", POINT)
    out, _, info = PhysicsTranslator("sdss", "cfht").translate(sdss, tuple("ugriz"), wcs, noise=False)
    r = info["per_band"]["r"]
    assert not r["psf_matched"] and r["fwhm_target"] == 0.7
    # the output shows the input's 1.4" PSF broadened by its pixels and the interpolant: reported
    # as the FWHM on the sky, which a CFHT rendering with that seeing reproduces
    same, _ = render("cfht", POINT, bands=("r",), fwhm=r["fwhm_out"])
    assert fwhm_of_image(out[2], 0.187) == pytest.approx(fwhm_of_image(same[0], 0.187), rel=0.02)
    assert 1.4 < r["fwhm_out"] < 1.6
    cards = dict((k, v) for k, v, _ in provenance_cards(info))
    assert cards["PSFFWHM3"] == pytest.approx(r["fwhm_out"], abs=1e-4) and cards["PSFMAT3"] is False
    assert all(len(k) <= 8 for k, _, _ in provenance_cards(info))


def test_per_object_seeing_from_the_header():
    cfht, wcs = render("cfht", POINT, bands=("r",), fwhm=0.95)
    sdss, _ = render("sdss", POINT, bands=("r",))
    t = PhysicsTranslator("cfht", "sdss")
    out, _, info = t.translate(cfht, ("r",), wcs, header={"PSFFWHM1": 0.95}, noise=False)
    assert info["per_band"]["r"]["fwhm_in_from"] == "header PSFFWHM1"
    assert fwhm_of_image(out[0], 0.396) == pytest.approx(fwhm_of_image(sdss[0], 0.396), rel=0.02)
    # without the keyword the registry's 0.7" is assumed: the output comes out too sharp
    blind, _, info = t.translate(cfht, ("r",), wcs, noise=False)
    assert info["per_band"]["r"]["fwhm_in_from"] == "registry"
    assert fwhm_of_image(blind[0], 0.396) > 1.02 * fwhm_of_image(sdss[0], 0.396)


def test_a_single_band_translates_alone():
    cube, wcs = render("cfht", SERSIC, bands=("r",))
    out, wcs_out, info = PhysicsTranslator("cfht", "sdss").translate(cube, ("r",), wcs, seed=3)
    assert out.shape == (1, 64, 64) and info["bands"] == ("r",) and out.dtype == np.float32
    with pytest.raises(SurveyError, match="no band of the input"):
        PhysicsTranslator("hsc", "sdss").translate(cube, ("y",), wcs)


def test_hsc_to_sdss_with_the_builtin_registry():
    hsc, wcs = render("hsc", SERSIC)
    sdss, _ = render("sdss", SERSIC)
    t = PhysicsTranslator("hsc", "sdss")
    out, wcs_out, info = t.translate(hsc, tuple("grizy"), wcs, seed=1, noise=False)
    assert info["bands"] == tuple("griz") and out.shape == (4, 64, 64)  # y has no SDSS counterpart
    for k, band in enumerate("griz"):
        j = "ugriz".index(band)
        assert out[k].sum() == pytest.approx(sdss[j].sum(), rel=0.01)
        assert fwhm_of_image(out[k], 0.396) == pytest.approx(fwhm_of_image(sdss[j], 0.396), rel=0.02)
    noisy, _, info = t.translate(hsc, tuple("grizy"), wcs, seed=1)
    resid = noisy - out
    for k, band in enumerate("griz"):
        # HSC has no sky brightness in the registry: its own Poisson noise is unknown, so SDSS's
        # is not added either (it would be counted twice); the sky's noise everywhere
        assert np.std(resid[k]) == pytest.approx(get_survey("sdss").typical_sky_sigma(band), rel=0.06)
    assert not t.source_noise and PhysicsTranslator("cfht", "sdss").source_noise


@pytest.mark.parametrize("rotation", [0.0, 25.0])
def test_output_wcs_is_centred_on_the_input_at_the_target_scale(rotation):
    cube, wcs = render("cfht", POINT, bands=("r",))
    theta = np.radians(rotation)
    wcs.wcs.cd = wcs.wcs.cd @ np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    wcs.wcs.set()
    t = PhysicsTranslator("cfht", "sdss")
    (ho, wo), wcs_out = t.output_geometry(cube.shape, wcs)
    out, wcs2, _ = t.translate(cube, ("r",), wcs, noise=False)
    assert out.shape[1:] == (ho, wo) == (64, 64)
    np.testing.assert_allclose(proj_plane_pixel_scales(wcs2) * 3600, [0.396, 0.396], rtol=1e-12)
    centre_in = wcs.pixel_to_world((136 - 1) / 2, (136 - 1) / 2)
    x, y = wcs2.world_to_pixel(centre_in)
    assert abs(x - (wo - 1) / 2) < 0.01 and abs(y - (ho - 1) / 2) < 0.01
    # and the source (at the input's centre) is at the output's centre
    yy, xx = np.indices(out[0].shape)
    cx, cy = (out[0] * xx).sum() / out[0].sum(), (out[0] * yy).sum() / out[0].sum()
    assert abs(cx - (wo - 1) / 2) < 0.01 and abs(cy - (ho - 1) / 2) < 0.01


def test_a_square_cutout_of_nearly_square_pixels_stays_square():
    """Real SDSS frames' WCSs have scales 0.3959 and 0.3961"/px: 64 x 0.3959 / 0.187 = 135.49 rounds
    to 135 on one axis and 136 on the other; the CFHT output is 136 x 136, centred as before."""
    cube, wcs = render("sdss", POINT, bands=("r",))
    wcs.wcs.cd = np.diag([-0.3959, 0.3961]) / 3600.0
    wcs.wcs.set()
    t = PhysicsTranslator("sdss", "cfht")
    (ho, wo), wcs_out = t.output_geometry(cube.shape, wcs)
    assert (ho, wo) == (136, 136)
    out, _, _ = t.translate(cube, ("r",), wcs, noise=False)
    assert out.shape[1:] == (136, 136)
    x, y = wcs_out.world_to_pixel(wcs.pixel_to_world(31.5, 31.5))
    assert abs(x - 67.5) < 0.01 and abs(y - 67.5) < 0.01
    wcs.wcs.cd = np.diag([-0.3959, 0.42]) / 3600.0  # pixels 6 % apart are not square: each axis its own
    wcs.wcs.set()
    assert t.output_geometry(cube.shape, wcs)[0] == (int(round(64 * 0.42 / 0.187)), 135)


def test_a_cdelt_pc_wcs_and_no_wcs():
    from astropy.wcs import WCS

    cube, _ = render("sdss", POINT, bands=("r",))
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [RA, DEC]
    w.wcs.crpix = [32.5, 32.5]
    w.wcs.cdelt = [-0.396 / 3600, 0.396 / 3600]
    w.wcs.set()
    t = PhysicsTranslator("sdss", "cfht")
    out, w2, _ = t.translate(cube, ("r",), w, noise=False)
    np.testing.assert_allclose(proj_plane_pixel_scales(w2) * 3600, [0.187, 0.187], rtol=1e-12)
    x, y = w2.world_to_pixel(w.pixel_to_world(31.5, 31.5))
    assert abs(x - (out.shape[2] - 1) / 2) < 0.01 and abs(y - (out.shape[1] - 1) / 2) < 0.01
    bare, none, info = t.translate(cube, ("r",), None, noise=False)  # no WCS: the survey's pixel scale
    assert none is None and info["pixel_scale_in"] == 0.396
    np.testing.assert_allclose(bare, out)


def test_noise_is_topped_up_to_the_target_and_never_removed():
    rng = np.random.default_rng(0)
    sdss, cfht = get_survey("sdss"), get_survey("cfht")
    # CFHT sky only: after matching to SDSS its noise is far below SDSS's, which is added
    sky = rng.normal(0.0, 3.5, (1, 136, 136))
    wcs = make_wcs(RA, DEC, 0.187, (136, 136))
    out, _, info = PhysicsTranslator("cfht", "sdss").translate(sky, ("r",), wcs, seed=5)
    assert np.std(out[0]) == pytest.approx(sdss.typical_sky_sigma("r"), rel=0.05)
    assert info["per_band"]["r"]["sigma_carried"] < 0.2 * info["per_band"]["r"]["sigma_target"]
    # SDSS sky at SDSS depth is noisier than CFHT per unit area: nothing is added
    sky = rng.normal(0.0, 0.05, (1, 64, 64))
    out, _, info = PhysicsTranslator("sdss", "cfht").translate(sky, ("r",), make_wcs(RA, DEC, 0.396, (64, 64)), seed=5)
    r = info["per_band"]["r"]
    assert r["sigma_added"] == 0.0 and r["sigma_carried"] > cfht.typical_sky_sigma("r")
    # the carried noise is what the analytic propagation says it is
    assert np.std(out[0, 10:-10, 10:-10]) == pytest.approx(r["sigma_carried"], rel=0.08)
    _, _, info = PhysicsTranslator("sdss", "cfht").translate(sky, ("r",), make_wcs(RA, DEC, 0.396, (64, 64)),
                                                             input_sigma="registry")
    assert info["per_band"]["r"]["sigma_in"] == pytest.approx(sdss.typical_sky_sigma("r"))


def test_noise_is_deterministic_per_seed():
    cube, wcs = render("cfht", SERSIC, bands=("g", "r"))
    t = PhysicsTranslator("cfht", "sdss")
    a = t.translate(cube, ("g", "r"), wcs, seed=7)[0]
    b = t.translate(cube, ("g", "r"), wcs, seed=7)[0]
    c = t.translate(cube, ("g", "r"), wcs, seed=8)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # band r's noise does not depend on which other bands came along
    r_alone = t.translate(cube[1:], ("r",), wcs, seed=7)[0]
    np.testing.assert_array_equal(r_alone[0], a[1])


def test_resampling_weights_conserve_flux_and_centre():
    for n_in, n_out, ratio, basis in ((136, 64, 0.396 / 0.187, "box"), (64, 136, 0.187 / 0.396, "linear")):
        w = axis_weights(n_in, n_out, ratio, basis)
        inner = w.sum(axis=0)[5:-5]
        np.testing.assert_allclose(inner, 1.0, atol=1e-12)
        x_in = np.arange(n_in) - (n_in - 1) / 2
        x_out = (np.arange(n_out) - (n_out - 1) / 2) * ratio
        # a flat image stays flat (per unit area) away from the edges
        flat = resample(np.ones((1, n_in, n_in)), w, w)[0]
        np.testing.assert_allclose(flat[5:-5, 5:-5], ratio**2, rtol=1e-12)
        # a centred symmetric profile stays centred
        prof = np.exp(-0.5 * (x_in / 4.0) ** 2)
        moved = w @ prof
        assert abs((moved * x_out).sum() / moved.sum()) < 1e-9


def test_surveys_without_physics_are_refused():
    from survey2survey.surveys import Survey

    plain = Survey.from_dict("plain", {"bands": ["r"], "pixel_scale": 0.2, "cutout_size": 64, "zero_point": 27.0})
    with pytest.raises(SurveyError, match="no PSF in the registry"):
        PhysicsTranslator(plain, "sdss")


def test_kernel_never_amplifies_a_frequency():
    from survey2survey.physics.kernel import matching_kernel

    # Kolmogorov 0.7" to a Moffat of 0.76": the raw ratio of transforms grows ~13x at high k
    k = matching_kernel(("kolmogorov", 0.7, 3.0), ("moffat", 0.76, 3.0), 0.187, 2)
    assert k.sum() == pytest.approx(1.0)
    assert np.abs(np.fft.fft2(k, (256, 256))).max() < 1.1
    # and the noise it carries is what the analytic propagation predicts (a few % of edge effects)
    wcs = make_wcs(RA, DEC, 0.187, (136, 136))
    from survey2survey.physics.noise import correlated_noise

    sky = 3.0 * correlated_noise(np.random.default_rng(0), 1, (136, 136), get_survey("cfht").noise_correlation)
    t = PhysicsTranslator("cfht", "hsc")
    carried, _, _ = t.translate(sky, ("r",), wcs, noise=False)
    _, _, info = t.translate(sky, ("r",), wcs, input_sigma=[3.0])
    assert np.std(carried[0, 16:-16, 16:-16]) == pytest.approx(info["per_band"]["r"]["sigma_carried"], rel=0.08)


def test_a_batch_gives_what_one_by_one_gives():
    cubes, wcss, headers = [], [], []
    for i, fwhm in enumerate((0.6, 0.7, 0.8)):
        gal = galsim.Exponential(half_light_radius=0.5 + 0.3 * i, flux=100.0)
        cube, wcs = render("cfht", gal, bands=("g", "r"), fwhm=fwhm)
        cubes.append(cube + np.random.default_rng(i).normal(0, 3.0, cube.shape))
        wcss.append(wcs)
        headers.append({"PSFFWHM2": fwhm} if i else None)  # one without a seeing keyword
    t = PhysicsTranslator("cfht", "sdss")
    out, wcs_out, infos = t.translate_batch(np.array(cubes), ("g", "r"), wcss, headers, seeds=[5, 6, 7])
    for i in range(3):
        one, w1, info = t.translate(cubes[i], ("g", "r"), wcss[i], headers[i], seed=5 + i)
        np.testing.assert_allclose(out[i], one, rtol=1e-6, atol=1e-6 * np.abs(one).max())
        assert infos[i]["per_band"]["r"] == info["per_band"]["r"]
        assert w1.wcs.compare(wcs_out[i].wcs)


@pytest.mark.parametrize("source, target", [("sdss", "lsst"), ("hsc", "sdss"), ("cfht", "sdss"), ("sdss", "cfht")])
def test_a_flat_sky_stays_flat_to_the_border(source, target):
    """No dark frame: a uniform sky maps to a uniform sky in every output pixel, the border
    ones included (the footprint is rounded to whole target pixels; the image is mirrored)."""
    src, tgt = get_survey(source), get_survey(target)
    size = src.cutout_size
    sky = np.full((len(src.bands), size, size), 2.0, np.float32)
    t = PhysicsTranslator(src, tgt)
    out, _, _ = t.translate(sky, src.bands, make_wcs(150.0, 2.0, src.pixel_scale, (size, size)), noise=False)
    expected = 2.0 * t.flux_scale * (tgt.pixel_scale / src.pixel_scale) ** 2  # same surface brightness
    assert np.allclose(out, expected, rtol=1e-5)


def test_output_wcs_false_skips_only_the_output_wcs():
    cube, wcs = render("cfht", SERSIC, bands=("g", "r"))
    t = PhysicsTranslator("cfht", "sdss")
    out, wcs_out, info = t.translate(cube, ("g", "r"), wcs, seed=4)
    bare, none, bare_info = t.translate(cube, ("g", "r"), wcs, seed=4, output_wcs=False)
    assert none is None and wcs_out is not None
    assert bare.tobytes() == out.tobytes() and bare_info == info
