"""The sources' own Poisson noise: registry, physics translator, learned translator, simulator.

Sky-limited images: the registry's sky sigma is the sky's Poisson noise, so a pixel of surface
brightness S has variance sigma^2 (1 + S / S_sky), S_sky the registry's sky brightness.
"""

import numpy as np
import pytest

from survey2survey.errors import SurveyError
from survey2survey.physics.noise import source_variance_ratio
from survey2survey.surveys import Survey, get_survey, stretch, to_model_space, to_native

SDSS, CFHT = get_survey("sdss"), get_survey("cfht")


def flat(survey, band, ratio, size=64):
    """An image whose surface brightness is ``ratio`` times the registry sky's, native units."""
    per_pixel = ratio * survey.sky_surface_flux(band) * survey.pixel_scale**2 / survey.flux_factor
    return np.full((size, size), per_pixel)


def test_registry_sky_brightness_round_trips_and_is_checked():
    assert SDSS.sky_brightness == (22.3, 22.0, 20.95, 20.3, 18.95)
    assert SDSS.sky_surface_flux("r") == pytest.approx(10 ** (-0.4 * (20.95 - 22.5)))
    again = Survey.from_dict("sdss", SDSS.to_dict())
    assert again.sky_brightness == SDSS.sky_brightness
    spec = {k: v for k, v in CFHT.to_dict().items() if k != "sky_brightness"}
    bare = Survey.from_dict("cfht", spec)
    assert bare.sky_surface_flux("r") == 0.0 and not bare.sky_brightness
    with pytest.raises(SurveyError, match="sky_brightness"):
        Survey.from_dict("cfht", spec | {"sky_brightness": {"u": 22, "g": 22, "r": -1, "i": 20, "z": 19}})


def test_the_variance_ratio_is_the_surface_brightness_over_the_skys():
    image = flat(CFHT, "g", 2.5)
    np.testing.assert_allclose(source_variance_ratio(image, CFHT, "g"), 2.5)
    # the same light on SDSS's pixels, against SDSS's sky (another surface brightness)
    expect = 2.5 * CFHT.sky_surface_flux("g") / SDSS.sky_surface_flux("g")
    np.testing.assert_allclose(source_variance_ratio(image, CFHT, "g", SDSS, "g"), expect)
    assert not source_variance_ratio(image, CFHT, "g", floor=image[0, 0] + 1).any()  # all below the floor: sky
    # from the floor to 1.5 times it the ratio ramps up: a pixel a rounding error off the floor
    # gets a rounding error's noise, not a jump
    level = image[0, 0]
    np.testing.assert_allclose(source_variance_ratio(image, CFHT, "g", floor=level / 1.25), 2.5 * 0.5)
    np.testing.assert_allclose(source_variance_ratio(image, CFHT, "g", floor=level / 1.5), 2.5)
    bare = Survey.from_dict("cfht", {k: v for k, v in CFHT.to_dict().items() if k != "sky_brightness"})
    assert not source_variance_ratio(image, bare, "g").any()


def test_physics_gives_a_noise_free_source_the_targets_poisson_noise():
    """CFHT -> SDSS of a noise-free flat source: sky sigma outside it, sigma sqrt(1 + S/S_sky) on it."""
    from survey2survey.physics.translator import PhysicsTranslator

    t = PhysicsTranslator("cfht", "sdss")
    cube = np.zeros((5, 136, 136))
    ratio = 4.0
    for j, band in enumerate(CFHT.bands):  # a flat patch of 4 SDSS skies in the middle
        level = flat(SDSS, band, ratio, 1)[0, 0] * SDSS.flux_factor / CFHT.flux_factor * (0.187 / 0.396) ** 2
        cube[j, 28:108, 28:108] = level
    clean, _, _ = t.translate(cube, CFHT.bands, noise=False)
    draws = np.stack([t.translate(cube, CFHT.bands, seed=s)[0] for s in range(6)]) - clean
    for j, band in enumerate(SDSS.bands):
        sigma = SDSS.typical_sky_sigma(band)
        inner, sky = draws[:, j, 26:38, 26:38], draws[:, j, :6, :]
        got = clean[j, 26:38, 26:38] / (SDSS.sky_surface_flux(band) * 0.396**2)
        assert np.std(sky) == pytest.approx(sigma, rel=0.06)
        assert np.std(inner) == pytest.approx(sigma * np.sqrt(1 + got.mean()), rel=0.08), band


def test_physics_adds_none_where_the_inputs_own_poisson_noise_already_exceeds_the_targets():
    """SDSS -> CFHT: SDSS's noise, sky and source, carried onto CFHT's pixels, exceeds CFHT's in u."""
    from survey2survey.physics.translator import PhysicsTranslator

    t = PhysicsTranslator("sdss", "cfht")
    rng = np.random.default_rng(0)
    cube = np.zeros((5, 64, 64))
    cube[:, 16:48, 16:48] = flat(SDSS, "u", 20.0, 32)[0, 0]
    noisy = cube + rng.normal(0, 1, cube.shape) * np.array(SDSS.sky_sigma)[:, None, None] * np.sqrt(
        1 + np.stack([source_variance_ratio(cube[j], SDSS, b) for j, b in enumerate(SDSS.bands)]))
    a, _, info = t.translate(noisy, SDSS.bands, seed=1)
    b, _, _ = t.translate(noisy, SDSS.bands, noise=False)
    assert info["per_band"]["u"]["sigma_added"] == 0.0
    np.testing.assert_array_equal(a[0], b[0])


def test_learned_outputs_get_the_targets_poisson_noise_above_the_sky_only():
    from survey2survey.translators.learned import add_source_noise

    sigma = CFHT.typical_sky_sigma("r")
    image = np.zeros((5, 136, 136))
    image[:, :, 68:] = flat(CFHT, "r", 3.0, 136)[:, 68:]  # right half: 3 skies, far above 3 sigma
    image[:, :, :68] = 0.5 * sigma  # left half: within the sky's noise
    f = to_model_space(image, CFHT)[None, None]  # (N, S, C, H, W)
    out = add_source_noise(np.repeat(f, 2, axis=1), np.array([12345]), CFHT, CFHT)
    np.testing.assert_array_equal(out[0, 0, :, :, :68], f[0, 0, :, :, :68])  # the sky: bit for bit
    extra = to_native(out[0, 0, 2, :, 68:], CFHT) - image[2, :, 68:]
    assert np.std(extra) == pytest.approx(sigma * np.sqrt(3.0), rel=0.03)
    assert abs(extra.mean()) < 3 * sigma * np.sqrt(3.0) / np.sqrt(extra.size)
    assert not np.array_equal(out[0, 0], out[0, 1])  # each sample its own draw
    np.testing.assert_array_equal(out, add_source_noise(np.repeat(f, 2, axis=1), np.array([12345]), CFHT, CFHT))
    assert not np.array_equal(out, add_source_noise(np.repeat(f, 2, axis=1), np.array([54321]), CFHT, CFHT))
    assert out.dtype == np.float32 and stretch(np.float32(0)) == 0
    # an object's noise does not depend on the batch it is in
    other = to_model_space(image[:, ::-1], CFHT)[None, None]
    both = add_source_noise(np.concatenate([other, f]), np.array([777, 12345]), CFHT, CFHT)
    np.testing.assert_array_equal(both[1, 0], add_source_noise(f, np.array([12345]), CFHT, CFHT)[0, 0])
    # CFHT's sky noise is correlated between neighbours: so is its sources' noise
    lag1 = np.corrcoef(extra[:, :-1].ravel(), extra[:, 1:].ravel())[0, 1]
    c = CFHT.noise_correlation
    assert lag1 == pytest.approx(2 * c / (1 + 2 * c**2), abs=0.05)


def test_simulated_sources_carry_poisson_noise_and_the_sky_stays_the_same():
    pytest.importorskip("galsim")
    from survey2survey.data.simulate import SimulationConfig, simulate_object

    with_, without = (simulate_object(SimulationConfig(n_paired=1, seed=4, mag_range=(15.0, 15.0),
                                                       source_noise=flag), 0) for flag in (True, False))
    for name, survey in (("sdss", SDSS), ("cfht", CFHT)):
        np.testing.assert_array_equal(with_.truth[name], without.truth[name])
        extra = with_.noise[name] - without.noise[name]
        truth = with_.truth[name]
        for j, band in enumerate(survey.bands):
            ratio = source_variance_ratio(truth[j], survey, band)
            sigma = with_.observations[name].sigma[j]
            bright = ratio > 1.0
            assert bright.sum() > 20, (name, band)
            assert np.std(extra[j][bright] / (sigma * np.sqrt(ratio[bright]))) == pytest.approx(1.0, abs=0.25)
            # the sky's noise is the same draw: all the difference is the source's, sqrt(ratio)-small
            assert np.all(np.abs(extra[j]) <= 6 * sigma * np.sqrt(ratio) + 1e-4 * sigma)
    # an earlier simulation (no source noise) keeps its configuration, and so its fingerprint
    assert "source_noise" not in SimulationConfig(n_paired=1, source_noise=False).to_dict()
    assert SimulationConfig(n_paired=1).to_dict()["source_noise"] is True


def test_which_survey_gives_a_learned_models_source_noise():
    from survey2survey.translators.learned import source_noise_survey

    recorded = Survey.from_dict("cfht", {k: v for k, v in CFHT.to_dict().items() if k != "sky_brightness"})
    assert source_noise_survey(recorded) == CFHT  # recorded before the key: the registry's
    spec = {k: v for k, v in CFHT.to_dict().items() if k != "aliases"}
    own = Survey.from_dict("only-in-a-model", spec)
    assert source_noise_survey(own) is own  # not in the registry: its own
    bare = Survey.from_dict("only-in-a-model", {k: v for k, v in spec.items() if k != "sky_brightness"})
    assert source_noise_survey(bare) is None
    # a noise level only from a noise-model file: no sky sigma to scale by
    no_sigma = Survey.from_dict("only-in-a-model", {k: v for k, v in spec.items() if k not in ("sky_sigma", "depth")})
    assert source_noise_survey(no_sigma) is None


def test_the_registry_decides_even_against_a_models_own_record(monkeypatch):
    """A --surveys file without sky_brightness switches the learned source noise off, as for the physics."""
    from survey2survey import surveys
    from survey2survey.surveys import register_survey
    from survey2survey.translators.learned import source_noise_survey

    get_survey("sdss")  # the built-ins loaded, then this test's registry is a copy
    monkeypatch.setattr(surveys, "_registry", dict(surveys._registry))

    spec = {k: v for k, v in CFHT.to_dict().items() if k != "aliases"}
    recorded = Survey.from_dict("cfht-like-test", spec)  # the model's config.json has it
    register_survey(Survey.from_dict("cfht-like-test", {k: v for k, v in spec.items() if k != "sky_brightness"}))
    assert source_noise_survey(recorded) is None


def test_a_sky_brightness_in_counts_is_refused():
    spec = CFHT.to_dict() | {"sky_brightness": {"u": 22, "g": 22, "r": 150, "i": 20, "z": 19}}
    with pytest.raises(SurveyError, match=r"sky_brightness.r = 150 is not a sky surface brightness"):
        Survey.from_dict("cfht", spec)


def test_a_simulation_without_any_sky_brightness_is_recorded_as_before():
    from survey2survey.data.simulate import SimulationConfig

    config = SimulationConfig(n_paired=1, survey_a="des", survey_b="hsc")
    assert not config.source_noise and "source_noise" not in config.to_dict()
