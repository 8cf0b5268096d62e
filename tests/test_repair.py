"""The speck repair: peaks and dips narrower than the target's PSF taken away, sources left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from survey2survey.nets.repair import KERNEL_SIZE, MTF_LEVEL, SpeckRepair, band_limit_kernel, psf_transfer, repair_config
from survey2survey.surveys import get_survey

CFHT = get_survey("cfht")
FWHM_PX = repair_config(CFHT, 5)["fwhm_px"]
SIGMA = torch.tensor([CFHT.typical_sky_sigma(b) for b in CFHT.bands], dtype=torch.float32).reshape(1, 5, 1, 1)


def psf_image(fwhm_px: float, size: int = 64, centre=(31.3, 32.6), flux: float = 1.0) -> np.ndarray:
    """A Kolmogorov PSF of ``fwhm_px`` drawn by its analytic transfer (pixel included)."""
    f = np.fft.fftfreq(size)
    otf = psf_transfer("kolmogorov", fwhm_px, np.hypot(f[:, None], f[None, :])) * np.sinc(f[:, None]) * np.sinc(f[None, :])
    phase = np.exp(-2j * np.pi * (f[:, None] * centre[0] + f[None, :] * centre[1]))
    return flux * np.real(np.fft.ifft2(otf * phase))


def scene(stars) -> torch.Tensor:
    """(1, 5, 64, 64): a broad galaxy plus PSF-shaped stars ``[(y, x, peak in sigma)]`` in every band."""
    yy, xx = np.mgrid[:64, :64]
    image = np.zeros((5, 64, 64))
    for b in range(5):
        sigma = float(SIGMA[0, b, 0, 0])
        image[b] = 30 * sigma * np.exp(-np.hypot(yy - 32, xx - 32) / 6.0)
        for y, x, peak in stars:
            star = psf_image(FWHM_PX[b], centre=(y, x))
            image[b] += star * peak * sigma / star.max()
    return torch.tensor(image[None], dtype=torch.float32)


def test_the_analytic_transfer_is_galsims():
    galsim = pytest.importorskip("galsim")
    n = 256
    f = np.fft.fftfreq(n)[: n // 2]
    for profile, obj in (("kolmogorov", galsim.Kolmogorov(fwhm=3.74)), ("moffat", galsim.Moffat(beta=3.0, fwhm=3.74))):
        drawn = obj.drawImage(nx=n, ny=n, scale=1.0, method="no_pixel").array
        mtf = np.abs(np.fft.fft2(np.fft.ifftshift(drawn)))[0, : n // 2]
        assert np.abs(mtf - psf_transfer(profile, 3.74, f)).max() < 1e-3


def test_the_band_limit_passes_the_psf_and_stops_where_it_does():
    kernel = band_limit_kernel("kolmogorov", FWHM_PX[2])
    assert kernel.shape == (KERNEL_SIZE,) and kernel.sum() == pytest.approx(1.0)
    transfer = np.abs(np.fft.fft(kernel, 64))[:32]  # along each axis
    f = np.fft.fftfreq(64)[:32]
    psf = psf_transfer("kolmogorov", FWHM_PX[2], f) * np.sinc(f)
    assert transfer[psf > 0.5].min() > 0.98  # the PSF's core frequencies pass
    assert transfer[psf < MTF_LEVEL / 3].max() < 0.15  # beyond its reach, stopped


def test_spikes_and_dips_go_sources_stay_and_the_flux_is_kept():
    repair = SpeckRepair(FWHM_PX)
    clean = scene([(15.0, 48.0, 400.0), (50.0, 14.0, 8.0)])  # a bright and a faint star
    assert torch.equal(repair(clean, SIGMA), clean)  # nothing to take away: bit-identical
    specked = clean.clone()
    specked[0, :, 40, 20] += 7 * SIGMA[0, :, 0, 0]  # one-pixel spikes of 7 sigma, on the galaxy's wing
    specked[0, :, 20, 20] -= 7 * SIGMA[0, :, 0, 0]  # and dips
    out = repair(specked, SIGMA)
    residual = ((out - clean) / SIGMA)[0]
    assert residual[:, 38:43, 18:23].abs().max() < 1.0 and residual[:, 18:23, 18:23].abs().max() < 1.0
    torch.testing.assert_close(out.sum(dim=(2, 3)), specked.sum(dim=(2, 3)), rtol=1e-6, atol=0)
    far = np.ones((64, 64), bool)
    far[14:27, 14:27] = far[34:47, 14:27] = False
    assert residual[:, far].abs().max() < 0.01  # elsewhere only their light, spread over the image


def test_a_sharper_star_is_not_a_speck():
    """A star at 0.8 x the typical seeing (a good night) loses about 20 % of its peak to the band
    limit: it is left alone, from 8 to 400 sigma."""
    repair = SpeckRepair(FWHM_PX)
    yy, xx = np.mgrid[:64, :64]
    image = np.zeros((1, 5, 64, 64), np.float32)
    for b in range(5):
        for (y, x), peak in zip(((20.2, 20.7), (44.5, 40.1)), (8.0, 400.0)):
            star = psf_image(0.8 * FWHM_PX[b], centre=(y, x))
            image[0, b] += star * peak * float(SIGMA[0, b, 0, 0]) / star.max()
    image = torch.from_numpy(image)
    assert torch.equal(repair(image, SIGMA), image)


def test_without_a_sky_sigma_nothing_is_taken():
    specked = scene([])
    specked[0, :, 40, 20] += 7 * SIGMA[0, :, 0, 0]
    assert torch.equal(SpeckRepair(FWHM_PX)(specked, None), specked)


def test_a_bright_core_sharper_than_the_psf_is_left_alone():
    """A source's core the network made too sharp (a star at 0.4 x the seeing, 300 sigma) loses
    over half its peak to the band limit, but far more than a speck's few sigma: it stays."""
    image = np.zeros((1, 5, 64, 64), np.float32)
    for b in range(5):
        star = psf_image(0.4 * FWHM_PX[b], centre=(30.0, 30.0))
        image[0, b] = star * 300 * float(SIGMA[0, b, 0, 0]) / star.max()
    image = torch.from_numpy(image)
    assert (image - SpeckRepair(FWHM_PX).band_limited(image))[0, :, 30, 30].gt(0.45 * image[0, :, 30, 30]).all()
    assert torch.equal(SpeckRepair(FWHM_PX)(image, SIGMA), image)


def test_a_spike_inside_a_brighter_ring_is_never_raised():
    """The fill comes from the pixels around a speck: inside a ring brighter than itself it would
    add light, so a spike is only ever lowered."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 32)
    image = np.zeros((1, 5, 64, 64), np.float32)
    for b in range(5):
        sigma = float(SIGMA[0, b, 0, 0])
        image[0, b] = np.where((r > 2.5) & (r < 3.6), 20 * sigma, 0.0)
        image[0, b, 32, 32] = 7 * sigma
    image = torch.from_numpy(image)
    out = SpeckRepair(FWHM_PX)(image, SIGMA)
    assert ((out - image)[0, :, 31:34, 31:34] <= 0.01 * SIGMA[0]).all()  # (plus the light spread back)


def ringed_star(depth: float, ring=(3.0, 5.0), into_core: bool = True) -> torch.Tensor:
    """(1, 5, 64, 64): a star (300 sigma) whose pixels ``ring`` px from its centre are ``depth``
    sigma below the sky, the light they lack put into its core (an over-sharpened star: its flux
    the star's), or not."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 30.2, xx - 33.7)
    image = np.zeros((1, 5, 64, 64))
    for b in range(5):
        sigma = float(SIGMA[0, b, 0, 0])
        star = psf_image(FWHM_PX[b], centre=(30.2, 33.7))
        star *= 300 * sigma / star.max()
        ringed = np.where((r > ring[0]) & (r < ring[1]), -depth * sigma, star)
        core = r <= 3.0
        if into_core:
            ringed[core] *= 1 + (star.sum() - ringed.sum()) / ringed[core].sum()
        image[0, b] = ringed
    return torch.tensor(image, dtype=torch.float32)


def test_a_dark_ring_is_lifted_from_the_core_near_it_and_the_flux_kept():
    repair = SpeckRepair(FWHM_PX, bands=[], lift=3.0)
    image = ringed_star(8.0)
    for b in range(5):  # and a star without a ring, far from the ringed one
        star = psf_image(FWHM_PX[b], centre=(12.0, 12.0))
        image[0, b] += torch.from_numpy(star * 300 / star.max()).float() * SIGMA[0, b]
    out = repair.lifted(image, SIGMA)
    assert ((image / SIGMA)[0].amin(dim=(1, 2)) < -7.9).all()
    assert ((out / SIGMA)[0].amin(dim=(1, 2)) > -0.5).all()  # the ring raised to (about) the sky
    torch.testing.assert_close(out.sum(dim=(2, 3)), image.sum(dim=(2, 3)), rtol=1e-5, atol=0)
    yy, xx = np.mgrid[:64, :64]
    r = torch.from_numpy(np.hypot(yy - 30.2, xx - 33.7))
    change = ((out - image) / SIGMA)[0]
    assert (change[:, r < 2.5].sum(dim=1) < 0).all()  # its light from the star's core
    assert change[:, r > 20].abs().max() < 0.01  # the sky and the other star far away (a trace spread
    # over the image)
    assert torch.equal(repair(image, SIGMA), image)  # no specks asked for: forward leaves it


def test_the_sky_a_shallow_dip_and_a_clean_star_are_not_lifted():
    """What a noise-free translation's sky holds (a residual of the source's noise, about 0.4
    sigma; a sky subtracted 0.8 sigma too much over a patch) and a 2.5 sigma dip are left
    bit-identical, as is every plane of a batch whose only dark pixels are in another."""
    repair = SpeckRepair(FWHM_PX, bands=[], lift=3.0)
    rng = np.random.default_rng(5)
    quiet = scene([(15.0, 48.0, 400.0)]).numpy() + 0.4 * rng.standard_normal((1, 5, 64, 64)) * SIGMA.numpy()
    quiet[0, :, 5:25, 5:25] -= 0.8 * SIGMA.numpy()[0]
    quiet[0, :, 40, 40] -= 2.5 * SIGMA.numpy()[0, :, 0, 0]
    quiet = torch.from_numpy(quiet.astype(np.float32))
    assert torch.equal(repair.lifted(quiet, SIGMA), quiet)
    batch = torch.cat([quiet, ringed_star(8.0)])
    batch[1, 2] = quiet[0, 2]  # the ringed star's r band replaced by a quiet one
    out = repair.lifted(batch, SIGMA)
    assert torch.equal(out[0], quiet[0]) and torch.equal(out[1, 2], quiet[0, 2])
    assert not torch.equal(out[1, 0], batch[1, 0])


def test_without_a_lift_or_a_sky_sigma_nothing_is_lifted():
    image = ringed_star(8.0)
    assert torch.equal(SpeckRepair(FWHM_PX).lifted(image, SIGMA), image)
    assert torch.equal(SpeckRepair(FWHM_PX, lift=3.0).lifted(image, None), image)


def test_an_image_whose_sky_was_subtracted_too_much_keeps_its_level_and_its_rings_are_lifted_to_it():
    """One SDSS sky sigma subtracted too much is 1.8-4.2 CFHT sigma per pixel: the sky is then the
    frame's level, not zero.  A galaxy on a sky 5 sigma low is left as it is; a ringed star on it
    has its ring raised to that sky, not to zero, and keeps its flux."""
    repair = SpeckRepair(FWHM_PX, bands=[], lift=3.0)
    low = scene([(1.5, 40.0, 3000.0)]) - 5.0 * SIGMA  # (a bright star on the frame: the median's sky)
    torch.testing.assert_close(repair.lifted(low, SIGMA), low, rtol=1e-6, atol=1e-4 * float(SIGMA.min()))
    ringed = ringed_star(8.0) - 5.0 * SIGMA
    out = repair.lifted(ringed, SIGMA)
    assert ((out / SIGMA)[0].amin(dim=(1, 2)) > -5.5).all()
    torch.testing.assert_close(out.sum(dim=(2, 3)), ringed.sum(dim=(2, 3)), rtol=1e-5, atol=0)
    yy, xx = np.mgrid[:64, :64]
    far = torch.from_numpy(np.hypot(yy - 30.2, xx - 33.7) > 20)
    assert ((out - ringed) / SIGMA)[0][:, far].abs().max() < 0.01  # the sky stays 5 sigma low


def _lifter() -> SpeckRepair:
    return SpeckRepair(FWHM_PX, bands=[], lift=3.0)


def test_a_ring_too_far_from_its_core_takes_its_light_from_the_plane_not_from_the_sky():
    """A dark ring 10-16 px from a star (beyond the 3 px Gaussian's reach): its light comes from the
    plane's light (the star), the sky keeps its level and no pixel ends up dark."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 30.2, xx - 33.7)
    image = ringed_star(6.0, ring=(10.0, 16.0), into_core=False)
    out = _lifter().lifted(image, SIGMA)
    torch.testing.assert_close(out.sum(dim=(2, 3)), image.sum(dim=(2, 3)), rtol=1e-5, atol=0)
    change = ((out - image) / SIGMA)[0]
    assert change[:, torch.from_numpy(r > 20)].abs().max() < 0.05  # the sky keeps its level
    assert ((out / SIGMA)[0].amin(dim=(1, 2)) > -0.5).all()
    assert (change[:, torch.from_numpy(r < 3)].sum(dim=1) < 0).all()


def test_a_4_sigma_dip_and_its_neighbours_are_lifted_a_galaxy_filling_the_frame_is_no_sky():
    """A 4 sigma dark pixel is lifted with its 3 x 3 neighbours (one at -2 sigma); a galaxy whose
    light fills the frame does not raise the sky above zero: a -2 sigma pixel away from the dip stays."""
    yy, xx = np.mgrid[:64, :64]
    image = np.zeros((1, 5, 64, 64))
    for b in range(5):
        sigma = float(SIGMA[0, b, 0, 0])
        image[0, b] = 40 * sigma * np.exp(-np.hypot(yy - 32, xx - 32) / 25.0)  # >= 3 sigma on the frame
        image[0, b, 30, 40] = -4.0 * sigma
        image[0, b, 30, 41] = -2.0 * sigma
        image[0, b, 50, 12] = -2.0 * sigma
    image = torch.tensor(image, dtype=torch.float32)
    out = _lifter().lifted(image, SIGMA)
    d = (out / SIGMA)[0]
    assert (d[:, 30, 40] > -0.1).all() and (d[:, 30, 41] > -0.1).all()
    assert ((d[:, 50, 12] + 2.0).abs() < 0.05).all()
    torch.testing.assert_close(out.sum(dim=(2, 3)), image.sum(dim=(2, 3)), rtol=1e-5, atol=0)


def test_a_plane_that_is_not_finite_is_left_and_a_lift_must_be_positive():
    image = ringed_star(8.0)
    image[0, 1, 0, 0] = float("-inf")
    image[0, 2, 0, 0] = float("nan")
    out = _lifter().lifted(image, SIGMA)
    assert torch.equal(out[0, 1], image[0, 1])
    assert torch.isnan(out[0, 2, 0, 0]) and torch.equal(out[0, 2, 1:], image[0, 2, 1:])
    assert torch.isfinite(out[0, [0, 3, 4]]).all() and not torch.equal(out[0, 0], image[0, 0])
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="positive"):
            SpeckRepair(FWHM_PX, lift=bad)


def test_a_dark_patch_with_no_light_in_its_plane_is_lifted_and_the_flux_kept():
    """Nothing to take the light from (a plane of sky with a dark patch): spread over the plane."""
    image = torch.zeros(1, 5, 64, 64)
    image[0, :, 20:23, 30:33] = -5.0 * SIGMA[0]
    out = _lifter().lifted(image, SIGMA)
    assert ((out / SIGMA)[0].amin(dim=(1, 2)) > -0.1).all()
    torch.testing.assert_close(out.sum(dim=(2, 3)), image.sum(dim=(2, 3)), rtol=1e-5, atol=1e-6)


def broad_star() -> torch.Tensor:
    """What the physics makes of ringed_star()'s star: the same flux at twice the seeing (positive
    where the network's ring is)."""
    image = np.zeros((1, 5, 64, 64))
    for b in range(5):
        sharp, broad = psf_image(FWHM_PX[b], centre=(30.2, 33.7)), psf_image(2 * FWHM_PX[b], centre=(30.2, 33.7))
        image[0, b] = broad / broad.sum() * (300 * float(SIGMA[0, b, 0, 0]) * sharp.sum() / sharp.max())
    return torch.tensor(image, dtype=torch.float32)


def test_what_the_physics_shows_dark_is_the_inputs_and_stays():
    """Given the physics translation: the network's ring (the physics bright there) is lifted; a
    sky gradient dark in both (to -5 sigma across the frame's lower rows) stays as it is; a bad
    column in both (its physics far below the sky) stays, and so does the ring if it is within
    DEFECT_REACH of the column (the network spreads a column's darkness wider than the physics)."""
    yy, xx = np.mgrid[:64, :64]
    gradient = torch.from_numpy(np.where(yy > 50, -(yy - 50) * 5.0 / 13, 0.0)).float() * SIGMA[0]
    g, physics = ringed_star(8.0) + gradient, broad_star() + gradient
    out = _lifter().lifted(g, SIGMA, physics)
    assert ((out / SIGMA)[0, :, :45].amin(dim=(1, 2)) > -0.5).all()  # the ring lifted
    assert (((out - g) / SIGMA)[0, :, 51:].abs() < 0.05).all()  # the gradient kept
    torch.testing.assert_close(out.sum(dim=(2, 3)), g.sum(dim=(2, 3)), rtol=1e-5, atol=0)
    for x, ring_lifted in ((10, True), (24, False)):  # 24 and 12 px from the ring's nearest pixel
        column = torch.zeros(1, 5, 64, 64)
        column[..., x] = -60.0 * SIGMA[..., 0]
        g, physics = ringed_star(8.0) + column, broad_star() + column
        out = _lifter().lifted(g, SIGMA, physics)
        change = ((out - g) / SIGMA)[0]
        assert change[..., x - 3 : x + 4].abs().max() < 0.05  # the column as it was
        near = ((out / SIGMA)[0, :, 22:39, 26:37]).amin(dim=(1, 2))  # the ring's half nearer the column
        assert (near > -0.5).all() if ring_lifted else (near < -7.5).all(), x
        torch.testing.assert_close(out.sum(dim=(2, 3)), g.sum(dim=(2, 3)), rtol=1e-5, atol=0)
