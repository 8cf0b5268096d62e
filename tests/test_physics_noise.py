"""Noise models without training: measured on sky with known statistics, sampled back."""

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from survey2survey.cli import main as cli_main
from survey2survey.physics.noise import (
    lag1_correlation,
    load_noise_model,
    measure_noise_model,
    sample_noise,
    sky_sigma,
)
from survey2survey.surveys import get_survey

SIGMA = 0.05
SMOOTH = 0.45  # px: Gaussian smoothing of white noise, lag-1 correlation ~0.15, like a resampled stack


def correlated_sky(rng, n, shape=(64, 64)):
    """Smoothed white noise rescaled to per-pixel sigma SIGMA (not the model's own [c, 1, c] recipe)."""
    white = rng.standard_normal((n,) + shape)
    smooth = ndimage.gaussian_filter(white, sigma=(0, SMOOTH, SMOOTH), mode="wrap")
    unit = np.zeros(shape)
    unit[0, 0] = 1.0
    gain = np.sqrt((ndimage.gaussian_filter(unit, SMOOTH, mode="wrap") ** 2).sum())
    return smooth / gain * SIGMA


@pytest.fixture(scope="module")
def sky_dir(tmp_path_factory):
    """40 SDSS-like 5-band cutouts: correlated sky plus a bright galaxy and a star in each."""
    rng = np.random.default_rng(1)
    root = tmp_path_factory.mktemp("sky")
    yy, xx = np.indices((64, 64))
    noise_only = []
    for i in range(40):
        noise = correlated_sky(rng, 5)
        noise_only.append(noise)
        gal = 3.0 * np.exp(-np.hypot(xx - 31.5, yy - 31.5) / 3.0)
        star = 8.0 * np.exp(-0.5 * ((xx - rng.uniform(5, 58)) ** 2 + (yy - rng.uniform(5, 58)) ** 2) / 1.5**2)
        cube = (noise + gal + star).astype(np.float32)
        fits.PrimaryHDU(cube).writeto(root / f"obj{i:03d}.fits")
    return root, np.array(noise_only)


def test_measured_model_samples_the_sky_it_was_measured_on(sky_dir, tmp_path):
    root, noise_only = sky_dir
    model, skipped = measure_noise_model([root], "sdss")
    assert not skipped and model.n_cutouts == 40 and model.spectrum.shape == (5, 64, 64)
    truth_lag1 = lag1_correlation(noise_only[:, 2])
    assert 0.1 < truth_lag1 < 0.3
    path = model.save(tmp_path / "sdss-noise.npz")
    for band in ("g", "r"):
        maps = sample_noise("sdss", band, 300, (64, 64), seed=4, noise_model=path)
        assert np.std(maps) == pytest.approx(SIGMA, rel=0.05)  # the sources were masked away
        assert lag1_correlation(maps) == pytest.approx(truth_lag1, abs=0.03)
    # another size: the spectrum is interpolated in frequency
    big = sample_noise("sdss", "r", 40, (100, 120), seed=4, noise_model=path)
    assert big.shape == (40, 100, 120)
    assert np.std(big) == pytest.approx(SIGMA, rel=0.05) and lag1_correlation(big) == pytest.approx(truth_lag1, abs=0.03)
    again = load_noise_model(path)
    np.testing.assert_allclose(again.sigma, model.sigma)


def test_registry_noise_white_and_correlated():
    sdss, cfht = get_survey("sdss"), get_survey("cfht")
    white = sample_noise("sdss", "r", 200, seed=1)
    assert white.shape == (200, 64, 64) and white.dtype == np.float32
    assert np.std(white) == pytest.approx(sdss.typical_sky_sigma("r"), rel=0.05)
    assert abs(lag1_correlation(white)) < 0.03
    stack = sample_noise("cfht", "i", 50, seed=1)
    c = cfht.noise_correlation
    assert np.std(stack) == pytest.approx(cfht.typical_sky_sigma("i"), rel=0.05)
    assert lag1_correlation(stack) == pytest.approx(2 * c / (1 + 2 * c * c), abs=0.03)
    # map i is the same whatever n
    np.testing.assert_array_equal(sample_noise("sdss", "g", 3, seed=9)[2], sample_noise("sdss", "g", 10, seed=9)[2])
    # ... and the bands are independent of each other (the same map scaled was each band's noise)
    maps = {b: sample_noise("sdss", b, 20, seed=9).ravel() for b in "ugriz"}
    for a, b in (("u", "g"), ("g", "r"), ("r", "z")):
        assert abs(np.corrcoef(maps[a], maps[b])[0, 1]) < 0.02, (a, b)


def test_sky_sigma_ignores_sources():
    rng = np.random.default_rng(3)
    yy, xx = np.indices((136, 136))
    images = rng.normal(0, 2.0, (20, 136, 136)) + 500 * np.exp(-np.hypot(xx - 67.5, yy - 67.5) / 4.0)
    assert np.median(sky_sigma(images)) == pytest.approx(2.0, rel=0.03)


def test_noise_model_command(sky_dir, tmp_path, capsys):
    root, _ = sky_dir
    out = tmp_path / "m.npz"
    assert cli_main(["noise-model", str(root), "--survey", "sdss", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "from 40 cutout(s) of 64x64 px" in text and "  r: sigma 0.0" in text and 'noise_model = "' in text
    assert cli_main(["noise-model", str(root), "--survey", "sdss", "--out", str(out)]) == 1
    assert "output exists" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(Exception, match="not a noise model"):
        load_noise_model(tmp_path / "bad.npz")


def test_a_registry_noise_model_drives_the_translator(sky_dir, tmp_path):
    from dataclasses import replace

    from survey2survey.fits_io import make_wcs
    from survey2survey.physics.translator import PhysicsTranslator

    root, _ = sky_dir
    model, _ = measure_noise_model([root], "sdss")
    path = model.save(tmp_path / "sdss-noise.npz")
    measured = replace(get_survey("sdss"), name="sdss-measured", noise_model=str(path))
    sky = np.random.default_rng(2).normal(0.0, 3.5, (1, 136, 136))
    out, _, info = PhysicsTranslator("cfht", measured).translate(sky, ("r",), make_wcs(34.5, -7.0, 0.187, (136, 136)),
                                                                 seed=1)
    assert info["per_band"]["r"]["noise_from"] == "noise model"
    assert info["per_band"]["r"]["sigma_target"] == pytest.approx(model.sigma[2])
    assert np.std(out) == pytest.approx(model.sigma[2], rel=0.06)
    # as a source, its spectrum shapes the carried noise that the analytic propagation predicts
    sdss_sky = np.array([correlated_sky(np.random.default_rng(3), 1)[0]])
    t = PhysicsTranslator(measured, "cfht")
    carried, _, _ = t.translate(sdss_sky, ("r",), make_wcs(34.5, -7.0, 0.396, (64, 64)), noise=False)
    _, _, info = t.translate(sdss_sky, ("r",), make_wcs(34.5, -7.0, 0.396, (64, 64)), input_sigma=[SIGMA])
    assert np.std(carried[0, 8:-8, 8:-8]) == pytest.approx(info["per_band"]["r"]["sigma_carried"], rel=0.1)
