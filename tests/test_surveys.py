"""Survey registry and the paper's intensity transform."""

import numpy as np
import pytest

from survey2survey import surveys
from survey2survey.errors import SurveyError
from survey2survey.surveys import Survey, get_survey, stretch, to_model_space, to_native, unstretch


def test_builtin_surveys_match_the_design():
    sdss, cfht, des = get_survey("sdss"), get_survey("CFHT"), get_survey("des")
    assert sdss.bands == tuple("ugriz") and sdss.pixel_scale == 0.396 and sdss.cutout_size == 64
    assert sdss.zero_point == 22.5 and sdss.flux_factor == pytest.approx(1.0)
    assert cfht.bands == tuple("ugriz") and cfht.pixel_scale == 0.187 and cfht.cutout_size == 136
    # ZP 30 -> nanomaggies is the paper's division by 1,000
    assert cfht.flux_factor == pytest.approx(1e-3, rel=1e-12)
    assert des.bands == ("g", "r", "i", "z", "Y") and des.pixel_scale == 0.263
    assert get_survey("megapipe") is cfht


def test_unknown_survey_is_a_clear_error():
    with pytest.raises(SurveyError, match="unknown survey 'hubble'.*known: .*sdss"):
        get_survey("hubble")


def test_stretch_matches_paper_formula_and_inverts_exactly():
    x = np.array([-1e4, -3.0, -1.0, -1e-6, 0.0, 1e-6, 0.5, 3.0, 1e5])
    with np.errstate(invalid="ignore"):
        paper = np.where(x > 0, np.sqrt(x + 1) - 1, -np.sqrt(-x + 1) + 1)
    np.testing.assert_allclose(stretch(x), paper, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(unstretch(stretch(x)), x, rtol=1e-12, atol=1e-15)
    # no cancellation near zero: the stretch of a tiny flux is half of it
    assert stretch(np.float64(1e-12)) == pytest.approx(0.5e-12, rel=1e-9)


@pytest.mark.parametrize("name", ["sdss", "cfht", "des"])
def test_native_model_round_trip_is_exact_to_float32(name):
    rng = np.random.default_rng(0)
    scale = 1.0 / get_survey(name).flux_factor
    native = (rng.standard_normal((5, 32, 32)) * scale * np.logspace(-2, 3, 32)).astype(np.float32)
    model = to_model_space(native, name)
    assert model.dtype == np.float32
    back = to_native(model, name)
    # float32 rounding of the model-space value, amplified at most ~2x by the inverse
    np.testing.assert_allclose(back, native, rtol=4 * np.finfo(np.float32).eps, atol=0)


def test_cfht_model_space_is_sdss_flux_scale():
    # the same physical flux in both surveys' native units lands on the same model value
    flux_nmgy = np.array([0.0, 0.1, 5.0, 200.0], dtype=np.float32)
    np.testing.assert_allclose(to_model_space(flux_nmgy * 1000, "cfht"), to_model_space(flux_nmgy, "sdss"), rtol=1e-6)


def test_user_survey_from_toml(tmp_path, monkeypatch):
    f = tmp_path / "mine.toml"
    f.write_text(
        '[hsc]\nbands = ["g", "r", "i", "z", "y"]\npixel_scale = 0.168\ncutout_size = 152\n'
        'zero_point = 27.0\nflux_unit = "ADU"\naliases = ["hsc-ssp"]\n'
    )
    monkeypatch.setattr(surveys, "_registry", dict(surveys._registry))
    (hsc,) = surveys.load_survey_file(f)
    assert get_survey("HSC-SSP") is hsc
    assert hsc.flux_factor == pytest.approx(10 ** ((22.5 - 27.0) / 2.5))
    assert Survey.from_dict("hsc", hsc.to_dict()) == hsc


@pytest.mark.parametrize(
    "text, message",
    [
        ("[x\n", "not valid TOML"),
        ("[x]\nbands = ['g']\npixel_scale = 0.2\n", "missing key.*cutout_size"),
        ("[x]\nbands = []\npixel_scale = 0.2\ncutout_size = 64\nzero_point = 30\n", "non-empty list"),
        ("[x]\nbands = ['g']\npixel_scale = -1\ncutout_size = 64\nzero_point = 30\n", "pixel_scale"),
        ("[x]\nbands = ['g']\npixel_scale = 0.2\ncutout_size = 64\nzero_point = 30\ncolour = 1\n", "unknown key"),
        ("", "no survey tables"),
    ],
)
def test_malformed_survey_toml_names_file_and_problem(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(SurveyError, match=message) as info:
        surveys.load_survey_file(f)
    assert str(f) in str(info.value)
    assert "\n" not in str(info.value)


# --- physics in the registry ----------------------------------------------------------------


def test_every_builtin_survey_carries_its_physics():
    for name in ("sdss", "cfht", "des", "hsc", "legacy", "lsst"):
        s = get_survey(name)
        assert s.has_physics, name
        assert s.psf_profile in ("kolmogorov", "moffat") and len(s.psf_fwhm) == s.n_bands
        assert all(0.4 < f < 2.0 for f in s.psf_fwhm)
        assert all(s.typical_sky_sigma(b) > 0 for b in s.bands)
        assert Survey.from_dict(name, s.to_dict()) == s  # the physics survives JSON (model configs)
    hsc, legacy, lsst = get_survey("hsc"), get_survey("legacy"), get_survey("lsst")
    assert hsc.bands == tuple("grizy") and hsc.pixel_scale == 0.168 and hsc.zero_point == 27.0
    assert legacy.pixel_scale == 0.262 and legacy.flux_factor == pytest.approx(1.0)
    assert lsst.bands == tuple("ugrizy") and lsst.pixel_scale == 0.2
    assert lsst.flux_factor == pytest.approx(10 ** ((22.5 - 31.4) / 2.5))  # nJy -> nanomaggies
    assert get_survey("rubin") is lsst and get_survey("hsc-ssp") is hsc


def test_one_fwhm_number_scales_with_wavelength_and_a_table_is_per_band():
    sdss = get_survey("sdss")
    assert sdss.typical_fwhm("r") == 1.4 and sdss.reference_fwhm() == 1.4
    assert sdss.typical_fwhm("u") == pytest.approx(1.4 * (355 / 617) ** -0.2)
    assert sdss.seeing_ratio("z") == pytest.approx((893 / 617) ** -0.2)
    hsc = get_survey("hsc")
    assert hsc.typical_fwhm("i") == 0.58 and hsc.reference_fwhm() == 0.76
    assert hsc.seeing_ratio("i") == pytest.approx(0.58 / 0.76)


def test_sky_sigma_from_depth_is_the_psf_noise_equivalent_area():
    from survey2survey.physics.psf import noise_equivalent_area

    spec = {"bands": ["r"], "pixel_scale": 0.2, "cutout_size": 64, "zero_point": 27.0, "psf_profile": "moffat",
            "psf_beta": 3.0, "psf_fwhm": {"r": 0.8}, "depth": {"r": 26.0}}
    s = Survey.from_dict("toy", spec)
    f5 = 10 ** (-0.4 * (26.0 - 27.0))
    nea = noise_equivalent_area("moffat", 0.8, 0.2, 3.0)
    # Moffat beta 3: NEA = pi alpha^2 (2 beta - 1) / (beta - 1)^2 without pixels, alpha = FWHM / (2 sqrt(2^(1/3) - 1))
    alpha = 0.8 / 0.2 / (2 * np.sqrt(2 ** (1 / 3) - 1))
    assert nea == pytest.approx(np.pi * alpha**2 * 5 / 4, rel=0.08)  # the pixel adds a little
    assert s.typical_sky_sigma("r") == pytest.approx(f5 / (5 * np.sqrt(nea)))
    assert s.seeing_keyword_names("r") == ["PSFFWHM1"]
    s2 = Survey.from_dict("toy", spec | {"seeing_keywords": ["SEEING_{band}", "FWHM"]})
    assert s2.seeing_keyword_names("r", plane=3) == ["PSFFWHM3", "SEEING_R", "FWHM"]


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"psf_profile": "gaussian"}, "psf_profile"),
        ({"psf_fwhm": 0.8}, "needs 'psf_profile'"),
        ({"psf_profile": "moffat", "psf_fwhm": {"g": 0.8}}, "no value for band 'r'"),
        ({"psf_profile": "moffat", "psf_fwhm": {"r": -1.0}}, "positive"),
        ({"sky_sigma": [0.1]}, "must be a table"),
        ({"noise_correlation": 2.0}, "noise_correlation"),
        ({"simulation": {"seeing_scatter": 0.1, "wobble": 1}}, "unknown simulation key"),
        ({"simulation": {"seeing_limits": [2.0, 1.0]}}, "seeing_limits"),
    ],
)
def test_bad_physics_keys_are_clear_errors(extra, message):
    spec = {"bands": ["r"], "pixel_scale": 0.2, "cutout_size": 64, "zero_point": 27.0} | extra
    with pytest.raises(SurveyError, match=message):
        Survey.from_dict("toy", spec, "mine.toml")


def test_tables_may_name_more_bands_than_the_survey_has():
    spec = {"bands": ["r"], "pixel_scale": 0.2, "cutout_size": 64, "zero_point": 27.0, "psf_profile": "moffat",
            "psf_fwhm": {"g": 0.9, "r": 0.8}}
    assert Survey.from_dict("toy", spec).psf_fwhm == (0.8,)


def test_a_survey_without_physics_says_what_is_missing():
    s = Survey.from_dict("plain", {"bands": ["r"], "pixel_scale": 0.2, "cutout_size": 64, "zero_point": 27.0})
    assert not s.has_physics and "psf_fwhm" not in s.to_dict()
    with pytest.raises(SurveyError, match="survey 'plain' has no psf_fwhm in the registry"):
        s.typical_fwhm("r")
    with pytest.raises(SurveyError, match="no sky_sigma or depth"):
        s.typical_sky_sigma("r")


def test_noise_model_file_is_relative_to_its_toml(tmp_path, monkeypatch):
    f = tmp_path / "mine.toml"
    f.write_text('[deep]\nbands = ["r"]\npixel_scale = 0.2\ncutout_size = 64\nzero_point = 27.0\n'
                 'noise_model = "models/deep-noise.npz"\n')
    monkeypatch.setattr(surveys, "_registry", dict(surveys._registry))
    (deep,) = surveys.load_survey_file(f)
    assert deep.noise_model == str(tmp_path / "models" / "deep-noise.npz")


@pytest.mark.parametrize("name, band", [("hsc", "r"), ("lsst", "i")])
def test_depth_is_met_by_the_sampled_correlated_noise(name, band):
    """A survey whose noise comes from its 5-sigma depth: PSF-weighted fluxes measured on the
    noise it samples (correlated as ``noise_correlation`` says) scatter by F5 / 5."""
    from survey2survey.physics.noise import sample_noise
    from survey2survey.physics.psf import make_psf

    s = get_survey(name)
    assert s.noise_correlation > 0 and not s.sky_sigma  # the case this test is about
    n = 41
    p = make_psf(s.psf_profile, s.typical_fwhm(band), s.psf_beta).drawImage(nx=n, ny=n, scale=s.pixel_scale).array
    maps = sample_noise(s, band, 1500, shape=(n, n), seed=3).astype(np.float64)
    fluxes = (maps * p).sum(axis=(1, 2)) / (p * p).sum()  # PSF-weighted flux of a point source at the centre
    f5 = 10 ** (-0.4 * (s.depth[s.band_index(band)] - s.zero_point))
    assert np.std(fluxes) == pytest.approx(f5 / 5, rel=0.06)
