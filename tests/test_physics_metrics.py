"""The colour metric against images whose colours are known."""

import math

import numpy as np
import pytest

from survey2survey.metrics import get_metric_class, parse_metrics
from survey2survey.metrics.base import MetricContext
from survey2survey.metrics.colour import aperture_colours

MAGS = np.array([20.3, 19.1, 18.5, 18.2, 18.0])  # u g r i z: colours 1.2, 0.6, 0.3, 0.2


def galaxies(mags, n=6, size=48, noise=0.0, seed=0):
    yy, xx = np.indices((size, size))
    c = (size - 1) / 2
    profile = np.exp(-np.hypot(xx - c, yy - c) / 2.5)
    profile /= profile.sum()
    flux = 10 ** (-0.4 * (np.asarray(mags) - 22.5))
    images = np.repeat((flux[:, None, None] * profile)[None], n, axis=0)
    if noise:
        images = images + np.random.default_rng(seed).normal(0, noise, images.shape)
    return images.astype(np.float32)


def test_aperture_colours_are_the_magnitude_differences():
    got = aperture_colours(galaxies(MAGS), radius=10.0)
    np.testing.assert_allclose(got[:, :-1], np.broadcast_to(-np.diff(MAGS), (6, 4)), atol=2e-5)  # float32 sums
    assert np.all(np.isnan(got[:, -1]))
    # no positive flux in a band: no colour
    images = galaxies(MAGS)
    images[:, 1] *= -1
    got = aperture_colours(images, 10.0)
    assert np.all(np.isnan(got[:, 0])) and np.all(np.isnan(got[:, 1])) and np.all(np.isfinite(got[:, 2]))


def test_colour_metric_finds_a_known_colour_shift():
    cls = get_metric_class("colour")
    metric = cls(MetricContext(bands=tuple("ugriz"), pixel_scale=0.396))
    assert metric.radius == pytest.approx(2.0 / 0.396)
    truth = galaxies(MAGS)
    redder = MAGS + np.array([0.0, 0.0, 0.0, -0.1, -0.1])  # i and z 0.1 mag brighter: r - i off by +0.1
    pred = galaxies(redder, noise=1e-4, seed=1)
    cols = metric.update(pred, galaxies(MAGS, noise=1e-4, seed=2), truth)
    assert cols["dcolour"].shape == (6, 5)
    res = metric.result()
    assert res.values["r"]["colour_bias"] == pytest.approx(0.1, abs=0.005)
    for band in "gi":
        assert res.values[band]["colour_bias"] == pytest.approx(0.0, abs=0.005)
    assert res.values["z"]["colour_bias"] is None and res.notes["against"] == "truth"
    assert res.values["g"]["colour_valid"] == 6
    # without the truth it compares with the reference
    metric = cls(MetricContext(bands=tuple("ugriz"), aperture_radius=6.0))
    metric.update(pred, galaxies(MAGS))
    res = metric.result()
    assert res.notes["against"] == "reference" and res.values["r"]["colour_bias"] == pytest.approx(0.1, abs=0.005)
    assert not math.isnan(res.values["u"]["colour_scatter"])


def test_colour_is_registered_and_needs_no_truth():
    assert "colour" in parse_metrics("all", False)
    assert parse_metrics("colour", False) == ["colour"]
