"""Known-answer tests of the metrics library (survey2survey.metrics).

Every metric is checked on cases whose answer is known in advance: identical images, a
constant offset, white noise of known sigma, a Gaussian source of known flux, a known
profile; the vectorised apertures and profiles are checked against photutils itself and
SSIM against an explicit window-by-window computation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from survey2survey.errors import UsageError
from survey2survey.metrics import default_metrics, get_metric_class, metric_names, parse_metrics
from survey2survey.metrics.apertures import aperture_sum, circular_weights, cutout_center
from survey2survey.metrics.background import background_sigma, sigma_from_truth
from survey2survey.metrics.base import MetricContext
from survey2survey.metrics.flux import summed_abs_difference, summed_noise_amplitude
from survey2survey.metrics.fourier import HIGH_PASS_KERNEL, fourier_amplitude, full_plane, high_pass
from survey2survey.metrics.magnitude import aperture_magnitude, magnitude
from survey2survey.metrics.noise import power_spectrum_2d, radial_average
from survey2survey.metrics.profile import radial_profile
from survey2survey.metrics.snr import mean_snr
from survey2survey.metrics.ssim import ssim
from survey2survey.metrics.stats import ks_2samp, robust_sigma, summarize

BANDS = ("g", "r")


def context(**kw):
    base = dict(bands=BANDS, pixel_scale=0.4, zero_point=22.5, flux_unit="nanomaggy")
    base.update(kw)
    return MetricContext(**base)


def gaussian(shape, flux, sigma, center=None):
    """Pixel-sampled circular Gaussian of total ``flux`` (native units)."""
    h, w = shape
    cx, cy = cutout_center(shape) if center is None else center
    yy, xx = np.mgrid[:h, :w]
    r2 = (xx - cx) ** 2 + (yy - cy) ** 2
    return (flux / (2 * np.pi * sigma**2) * np.exp(-r2 / (2 * sigma**2))).astype(np.float32)


def stack(image, n, bands=len(BANDS)):
    return np.ascontiguousarray(np.broadcast_to(image, (n, bands) + image.shape), dtype=np.float32)


def run(name, pred, ref, truth=None, **ctx):
    metric = get_metric_class(name)(context(**ctx))
    cols = metric.update(pred, ref, truth)
    return cols, metric.result()


# --- statistics ---------------------------------------------------------------------


def test_summarize_gaussian_and_nan():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, 20000)
    x[:10] = 1e6  # outliers: the robust spread ignores them
    x[10:20] = np.nan
    s = summarize(x)
    assert s["n"] == 19990 and s["n_undefined"] == 10
    assert s["median"] == pytest.approx(3.0, abs=0.05)
    assert s["spread"] == pytest.approx(2.0, rel=0.03)
    assert summarize([np.nan])["median"] is None


def test_robust_sigma_and_ks():
    assert robust_sigma(np.array([1.0, 1.0, 1.0, 50.0])) == 0.0
    assert ks_2samp([1, 2, 3], [10, 11, 12])["statistic"] == 1.0
    same = ks_2samp(np.arange(100.0), np.arange(100.0))
    assert same["statistic"] == 0.0 and same["pvalue"] == pytest.approx(1.0)


# --- registry -----------------------------------------------------------------------


def test_registry_and_parse():
    assert metric_names()[:3] == ["flux", "fourier", "ssim"]
    assert "photometry" not in default_metrics(False)
    assert {"photometry", "noise"} <= set(default_metrics(True))
    assert parse_metrics("ssim, flux", False) == ["flux", "ssim"]  # report order
    assert parse_metrics("all", True) == metric_names()
    with pytest.raises(UsageError, match="unknown metric"):
        parse_metrics("flux,psnr", False)
    with pytest.raises(UsageError, match="--truth"):
        parse_metrics("noise", False)
    for name in metric_names():
        assert get_metric_class(name).name == name


def test_the_cli_lists_come_from_the_metric_registry():
    import typer.main

    from survey2survey.cli import app
    from survey2survey.commands import evaluate as command

    assert ", ".join(metric_names()) in " ".join(command.__doc__.split())
    option = next(p for p in typer.main.get_command(app).commands["evaluate"].params if p.name == "metrics")
    assert ",".join(metric_names()) in option.help
    # each class owns whether it needs the truth; the registry has no copy of it
    needing = [n for n in metric_names() if get_metric_class(n).needs_truth]
    assert needing == ["photometry", "noise"] and set(default_metrics(False)) == set(metric_names()) - set(needing)


# --- apertures (vectorised vs photutils) --------------------------------------------


def test_aperture_sum_matches_photutils():
    from photutils.aperture import CircularAperture, aperture_photometry

    rng = np.random.default_rng(2)
    images = rng.normal(1.0, 1.0, (3, 2, 33, 40)).astype(np.float32)
    got = aperture_sum(images, 7.3)
    for i in range(3):
        for b in range(2):
            table = aperture_photometry(images[i, b], CircularAperture(cutout_center((33, 40)), r=7.3))
            # float32 stack summed in float32 by BLAS: agreement to ~1e-6
            assert got[i, b] == pytest.approx(float(table["aperture_sum"][0]), rel=1e-5)
    # exact overlap: the weights add up to the circle's area
    assert circular_weights((64, 64), 10.0).sum() == pytest.approx(math.pi * 100, rel=1e-9)


def test_gaussian_source_of_known_flux_through_aperture():
    img = gaussian((80, 80), 1000.0, 5.0)
    # fraction of a circular Gaussian within r: 1 - exp(-r^2 / 2 sigma^2), up to the
    # pixelisation error of a sampled Gaussian (about 0.04 / sigma^2 at r = sigma)
    for r in (5.0, 10.0, 20.0):
        expected = 1000.0 * (1 - math.exp(-(r**2) / 50.0))
        assert aperture_sum(img[None], r)[0] == pytest.approx(expected, rel=2.5e-3)


# --- background noise level ---------------------------------------------------------


@pytest.mark.parametrize("size", [64, 136])  # 136: the subsampled path
def test_background_sigma_white_noise_with_galaxy(size):
    rng = np.random.default_rng(3)
    sigma = 0.05
    images = rng.normal(0, sigma, (40, 1, size, size)).astype(np.float32) + gaussian((size, size), 500.0, 3.0)
    est = background_sigma(images)
    assert est.shape == (40, 1)
    assert np.median(est) == pytest.approx(sigma, rel=0.03)
    truth = np.broadcast_to(gaussian((size, size), 500.0, 3.0), images.shape)
    assert np.median(sigma_from_truth(images, truth)) == pytest.approx(sigma, rel=0.01)


# --- flux (Lin Fig. 5) --------------------------------------------------------------


def test_flux_identical_and_constant_offset():
    img = stack(gaussian((32, 32), 100.0, 2.0), 4)
    assert np.all(summed_abs_difference(img, img) == 0)
    cols, _ = run("flux", img + np.float32(0.25), img)
    assert np.allclose(cols["flux_absdiff"], 32 * 32 * 0.25, rtol=1e-5)
    assert np.allclose(cols["flux_total_diff"], 32 * 32 * 0.25, rtol=1e-4)
    assert np.allclose(cols["ref_flux"], img.sum(axis=(-2, -1)), rtol=1e-6)


def test_flux_white_noise_sqrt2_sigma_line():
    rng = np.random.default_rng(4)
    sigma, n, size = 0.1, 200, 32
    truth = stack(gaussian((size, size), 50.0, 2.0), n)
    ref = truth + rng.normal(0, sigma, truth.shape).astype(np.float32)
    pred = truth + rng.normal(0, sigma, truth.shape).astype(np.float32)
    expected = size * size * math.sqrt(2) * sigma * math.sqrt(2 / math.pi)
    assert summed_noise_amplitude(sigma, size * size) * math.sqrt(2) == pytest.approx(expected)
    for t in (None, truth):  # noise measured from the reference, or from the truth
        cols, res = run("flux", pred, ref, t)
        assert np.mean(cols["flux_absdiff"]) == pytest.approx(expected, rel=0.01)
        assert np.median(cols["flux_absdiff_norm"]) == pytest.approx(math.sqrt(2), rel=0.02)
        assert res.values["r"]["sqrt2_sigma_line"] == pytest.approx(expected, rel=0.03)
    # a perfect noise-free prediction sits on the sigma line
    cols, res = run("flux", truth, ref, truth)
    assert np.allclose(cols["flux_absdiff_norm"], 1.0)
    assert "truth" in res.notes["noise_sigma"]


# --- Fourier (Lin Fig. 6) -----------------------------------------------------------


def test_high_pass_matches_direct_correlation_and_kills_planes():
    from scipy import signal

    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 20, 23)).astype(np.float32)
    hp = high_pass(x)
    assert hp.shape == (2, 16, 19)
    for i in range(2):
        direct = signal.correlate2d(x[i].astype(np.float64), HIGH_PASS_KERNEL, mode="valid")
        assert np.allclose(hp[i], direct, atol=1e-4)
    yy, xx = np.mgrid[:20, :23]
    plane = (3.0 + 0.2 * xx - 0.1 * yy).astype(np.float32)
    assert np.abs(high_pass(plane[None])).max() < 1e-4


def test_full_plane_rebuilds_fft_amplitude():
    rng = np.random.default_rng(6)
    for shape in ((12, 12), (11, 14), (10, 9)):
        x = rng.normal(size=(3,) + shape)
        assert np.allclose(full_plane(fourier_amplitude(x), shape[1]), np.abs(np.fft.fft2(x)), rtol=1e-4, atol=1e-4)


def test_fourier_identical_offset_and_scaled_noise():
    rng = np.random.default_rng(7)
    ref = rng.normal(0, 1, (50, 2, 24, 24)).astype(np.float32) + stack(gaussian((24, 24), 30.0, 2.0), 50)
    cols, res = run("fourier", ref, ref)
    assert np.allclose(cols["hf_amp_ratio"], 1.0) and res.values["g"]["stack_distance"] == 0.0
    assert res.arrays["stack_ref"].shape == (2, 20, 20)
    # a constant offset has no high-frequency content
    cols, res = run("fourier", ref + np.float32(5.0), ref)
    assert np.allclose(cols["hf_amp_ratio"], 1.0, atol=1e-4)
    assert res.values["r"]["stack_distance"] < 1e-4
    # twice the noise: amplitudes double
    noise = rng.normal(0, 1, ref.shape).astype(np.float32)
    cols, res = run("fourier", 2 * noise, noise)
    assert np.allclose(cols["hf_amp_ratio"], 2.0, rtol=1e-4)
    assert res.values["g"]["stack_amp_ratio"] == pytest.approx(2.0, rel=1e-4)
    assert res.values["g"]["stack_distance"] == pytest.approx(math.log10(2), rel=1e-3)


def test_fourier_stack_of_white_noise_matches_expectation():
    """Stacked amplitude of filtered white noise = sqrt(pi/4 E|F|^2), E|F|^2 from the filter."""
    from scipy import signal

    rng = np.random.default_rng(8)
    sigma, n, size = 0.7, 300, 28
    noise = rng.normal(0, sigma, (n, 1, size, size)).astype(np.float32)
    metric = get_metric_class("fourier")(context(bands=("r",)))
    metric.update(noise, noise)
    stack_ref = metric.result().arrays["stack_ref"][0]
    m = size - 4
    acf = signal.correlate2d(HIGH_PASS_KERNEL, HIGH_PASS_KERNEL)  # (9, 9), lag 0 at [4, 4]
    u = np.arange(m)[:, None]
    v = np.arange(m)[None, :]
    power = np.zeros((m, m))
    for ty in range(-4, 5):  # E|F|^2 = sum over lags of (pairs at that lag) x covariance
        for tx in range(-4, 5):
            power += (m - abs(ty)) * (m - abs(tx)) * acf[ty + 4, tx + 4] * np.cos(2 * np.pi * (u * ty + v * tx) / m)
    expected = np.sqrt(np.pi / 4 * sigma**2 * power)  # mean of a Rayleigh amplitude
    ratio = (stack_ref / expected)[1:, 1:]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.02)
    # Parseval: total power of the stack's images = N' x sum of filtered pixel variance
    hp = high_pass(noise)
    assert np.mean(hp**2) == pytest.approx(sigma**2 * np.sum(HIGH_PASS_KERNEL**2), rel=0.02)


# --- SSIM ---------------------------------------------------------------------------


def _ssim_by_windows(x, y, r):
    """Wang et al. SSIM, one explicit 11x11 Gaussian window per valid pixel."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    win = np.outer(g, g)
    win /= win.sum()
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    terms = {"mssim": [], "l_mean": [], "c_mean": [], "s_mean": []}
    h, w = x.shape
    for i in range(5, h - 5):
        for j in range(5, w - 5):
            a = x[i - 5 : i + 6, j - 5 : j + 6]
            b = y[i - 5 : i + 6, j - 5 : j + 6]
            mx, my = (win * a).sum(), (win * b).sum()
            vx, vy = (win * (a - mx) ** 2).sum(), (win * (b - my) ** 2).sum()
            cov = (win * (a - mx) * (b - my)).sum()
            sx, sy = math.sqrt(vx), math.sqrt(vy)
            lum = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
            con = (2 * sx * sy + c2) / (vx + vy + c2)
            st = (cov + c2 / 2) / (sx * sy + c2 / 2)
            terms["l_mean"].append(lum)
            terms["c_mean"].append(con)
            terms["s_mean"].append(st)
            terms["mssim"].append(lum * con * st)
    return {k: float(np.mean(v)) for k, v in terms.items()}


def test_ssim_matches_explicit_windows():
    rng = np.random.default_rng(9)
    ref = (gaussian((21, 24), 200.0, 3.0) + rng.normal(0, 0.3, (21, 24))).astype(np.float32)
    pred = (0.8 * ref + rng.normal(0, 0.4, ref.shape) + 0.2).astype(np.float32)
    got = ssim(pred[None], ref[None])
    want = _ssim_by_windows(pred.astype(np.float64), ref.astype(np.float64), float(ref.max() - ref.min()))
    for k in want:
        assert got[k][0] == pytest.approx(want[k], abs=2e-4), k


def test_ssim_identical_offset_and_scale_invariance():
    rng = np.random.default_rng(10)
    ref = rng.normal(0, 1, (3, 2, 24, 24)).astype(np.float32) + stack(gaussian((24, 24), 100.0, 2.0), 3)
    cols, _ = run("ssim", ref, ref)
    for k in ("mssim", "l_mean", "c_mean", "s_mean"):
        assert np.allclose(cols[k], 1.0, atol=1e-5)
    # a constant offset changes the luminance only: contrast and structure stay 1
    out = ssim(ref + np.float32(2.0), ref)
    assert np.allclose(out["c_mean"], 1.0, atol=1e-5) and np.allclose(out["s_mean"], 1.0, atol=1e-4)
    assert np.all(out["l_mean"] < 0.999)
    # R from the data: multiplying both images by 1000 (a unit change) changes nothing
    pred = ref + rng.normal(0, 1, ref.shape).astype(np.float32)
    a, b = ssim(pred, ref), ssim(1000 * pred, 1000 * ref)
    for k in a:
        assert np.allclose(a[k], b[k], atol=1e-4)


# --- magnitude, S/N, profile (Survey2Survey) ----------------------------------------


def test_magnitude_known_flux_and_offset():
    img = gaussian((64, 64), 1000.0, 3.0)
    # within r_max = 32 px the Gaussian's whole flux is enclosed
    assert aperture_magnitude(img[None], 22.5)[0] == pytest.approx(22.5 - 2.5 * math.log10(1000.0), abs=1e-3)
    ref = stack(img, 3)
    pred = ref * np.float32(10 ** (-0.4 * 0.1))  # 0.1 mag fainter
    cols, res = run("magnitude", pred, ref)
    assert np.allclose(cols["dmag"], 0.1, atol=1e-5)
    assert np.isnan(magnitude(-1.0, 22.5)) and np.isnan(magnitude(0.0, 22.5))
    assert res.values["g"]["ks_statistic"] == 1.0  # every pred fainter than every ref


def test_snr_known_answer():
    rng = np.random.default_rng(11)
    level, sigma = 2.0, 0.5
    images = (level + rng.normal(0, sigma, (20, 2, 64, 64))).astype(np.float32)
    assert np.median(mean_snr(images)) == pytest.approx(level / sigma, rel=0.02)
    cols, _ = run("snr", images, images)
    assert np.all(cols["snr_rel_diff"] == 0)


def test_profile_matches_photutils_and_known_profiles():
    from photutils.profiles import RadialProfile

    rng = np.random.default_rng(12)
    img = (gaussian((40, 40), 300.0, 4.0) + rng.normal(0, 0.1, (40, 40))).astype(np.float32)
    radii, prof = radial_profile(img[None])
    ref = RadialProfile(img.astype(np.float64), cutout_center((40, 40)), np.arange(21.0))
    assert np.allclose(radii, ref.radius)
    assert np.allclose(prof[0], ref.profile, rtol=1e-5, atol=1e-6)
    # a flat image has a flat profile
    _, flat = radial_profile(np.full((1, 40, 40), 3.0, np.float32))
    assert np.allclose(flat, 3.0)
    # a Gaussian: annulus [k, k+1) holds F (exp(-k^2/2s^2) - exp(-(k+1)^2/2s^2)) over pi (2k + 1)
    _, g = radial_profile(gaussian((64, 64), 1000.0, 4.0)[None])
    k = np.arange(g.shape[-1])
    analytic = 1000.0 * (np.exp(-(k**2) / 32.0) - np.exp(-((k + 1) ** 2) / 32.0)) / (np.pi * (2 * k + 1))
    inner = analytic > 0.01 * analytic.max()
    assert np.allclose(g[0][inner], analytic[inner], rtol=0.02)


def test_profile_metric_identical_and_scaled():
    ref = stack(gaussian((32, 32), 100.0, 3.0), 3)
    cols, res = run("profile", ref, ref)
    assert np.all(cols["profile_dev"] == 0)
    cols, res = run("profile", np.float32(1.1) * ref, ref)
    assert np.allclose(cols["profile_dev"], 0.1, rtol=1e-4)
    assert res.arrays["median_pred"].shape == (2, 16)


# --- photometry and noise against the truth -----------------------------------------


def test_photometry_bias_and_scatter_known_answers():
    rng = np.random.default_rng(13)
    sigma, n, radius = 0.2, 2000, 6.0
    truth = stack(gaussian((24, 24), 80.0, 3.0), n)
    ref = truth + rng.normal(0, sigma, truth.shape).astype(np.float32)
    pred = truth + np.float32(0.01)  # noise-free, with a constant offset of 0.01 per pixel
    cols, res = run("photometry", pred, ref, truth, aperture_radius=radius)
    area = math.pi * radius**2
    assert np.allclose(cols["dflux_pred"], 0.01 * area, rtol=1e-4)
    f_true = 80.0 * (1 - math.exp(-(radius**2) / 18.0))
    assert np.allclose(cols["flux_truth"], f_true, rtol=3e-3)
    # white noise: aperture flux error sigma sqrt(sum w^2), no bias
    w2 = np.sum(circular_weights((24, 24), radius) ** 2)
    v = res.values["r"]
    assert v["scatter_ref"] == pytest.approx(sigma * math.sqrt(w2), rel=0.06)
    assert abs(v["bias_ref"]) < 3 * sigma * math.sqrt(w2 / n) * 1.26
    assert v["scatter_pred"] == pytest.approx(0.0, abs=1e-5) and v["scatter_ratio"] < 1e-3
    # a default aperture of 2 arcsec at 0.4 arcsec/px is 5 px
    metric = get_metric_class("photometry")(context())
    assert metric.radius == pytest.approx(5.0)


def test_noise_power_spectrum_and_ks_known_answers():
    rng = np.random.default_rng(14)
    sigma, n, size = 0.3, 200, 32
    truth = stack(gaussian((size, size), 80.0, 2.0), n)
    ref = truth + rng.normal(0, sigma, truth.shape).astype(np.float32)
    pred = truth + rng.normal(0, 2 * sigma, truth.shape).astype(np.float32)
    cols, res = run("noise", pred, ref, truth)
    # white noise: flat power spectrum at sigma^2
    assert np.allclose(res.arrays["ps_ref"], sigma**2, rtol=0.05)
    assert np.allclose(res.arrays["ps_pred"], 4 * sigma**2, rtol=0.05)
    assert res.values["g"]["ps_distance"] == pytest.approx(math.log10(4), abs=0.01)
    assert np.median(cols["noise_sigma_ratio"]) == pytest.approx(2.0, rel=0.01)
    assert res.values["g"]["ks_statistic"] == 1.0  # disjoint sigma distributions
    cols, res = run("noise", ref, ref, truth)
    assert res.values["r"]["ks_statistic"] == 0.0 and res.values["r"]["ps_distance"] == 0.0
    # radial average of a flat map is flat; the zero frequency is left out
    k, p = radial_average(np.ones((16, 9)), (16, 16))
    assert np.allclose(p, 1.0) and k[0] > 0 and k[-1] == pytest.approx(0.5)
    assert power_spectrum_2d(np.ones((4, 4)))[0, 0] == 0.0


def test_metrics_refuse_mismatched_shapes_and_missing_truth():
    a = np.zeros((2, 2, 16, 16), np.float32)
    with pytest.raises(ValueError, match="differs"):
        get_metric_class("flux")(context()).update(a, a[:, :, :8])
    with pytest.raises(ValueError, match="truth"):
        get_metric_class("noise")(context()).update(a, a)
