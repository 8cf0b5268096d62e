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
