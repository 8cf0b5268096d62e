"""Pixels sharper than the PSF (cosmic rays, hot pixels): flagged, never a source, kept from the network."""

import shutil

import numpy as np
import pytest
from astropy.io import fits

from survey2survey.data import example_dir
from survey2survey.physics.defects import psf_pixels, repair_sharp_pixels, sharp_pixels
from survey2survey.pipelines.translate import translate
from survey2survey.surveys import get_survey

galsim = pytest.importorskip("galsim")


def test_a_hot_pixel_is_flagged_and_no_source_is():
    rng = np.random.default_rng(4)
    flagged = 0
    for psf in (galsim.Kolmogorov(fwhm=0.8), galsim.Moffat(beta=2.5, fwhm=0.7), galsim.Gaussian(fwhm=0.8)):
        for k in range(60):  # SDSS's best seeing (2 px), bright stars and compact galaxies, any centring
            offset = galsim.PositionD(*rng.uniform(-0.5, 0.5, 2))
            star = psf.withFlux(rng.uniform(100, 20000)).drawImage(nx=48, ny=48, scale=0.396, offset=offset).array
            bulge = galsim.Convolve(galsim.DeVaucouleurs(half_light_radius=0.3, flux=5000.0), psf)
            core = bulge.drawImage(nx=48, ny=48, scale=0.396, offset=offset).array
            cube = np.stack([star, core]) + rng.normal(0.0, 1.0, (2, 48, 48))
            flagged += sharp_pixels(cube, psf_pixels(get_survey("sdss"))).sum()  # what the translator passes
    assert flagged == 0
    sky = rng.normal(0.0, 1.0, (3, 40, 40))
    sky[1, 5, 7] += 12.0  # a hot pixel of 12 sigma, and one on the image's edge
    sky[2, 0, 20] += 40.0
    flags = sharp_pixels(sky, 3.5)
    assert [tuple(np.argwhere(f)[0]) for f in flags if f.any()] == [(5, 7), (0, 20)] and flags.sum() == 2
    assert not sharp_pixels(sky, 1.5).any()  # an undersampled PSF: a sharp pixel may be a star
    assert not sharp_pixels(sky, None).any()  # an unknown one: the same
    repaired, counts = repair_sharp_pixels(sky, 3.5)
    assert counts.tolist() == [0, 1, 1] and abs(repaired[1, 5, 7]) < 3 and abs(repaired[2, 0, 20]) < 3
    assert np.array_equal(repaired != sky.astype(np.float32), flags)  # nothing else touched


def test_the_default_network_does_not_paint_a_hot_pixel_into_the_other_bands(tmp_path):
    """A 2-nanomaggy r pixel (about 70 sigma of SDSS r) made 8-21-sigma features in u, g, i, z of
    the default model's translation; now the image is the one without it, a warning says why."""
    src = sorted((example_dir() / "sdss").glob("*.fits"))[0]
    (tmp_path / "clean").mkdir()
    shutil.copy(src, tmp_path / "clean" / "x.fits")
    with fits.open(src) as hdul:
        data = hdul[0].data.copy()
        data[2, 10, 10] += 2.0
        hdul[0].data = data
        (tmp_path / "hot").mkdir()
        hdul.writeto(tmp_path / "hot" / "x.fits")
    clean = translate([tmp_path / "clean"], "cfht", out_dir=tmp_path / "a", noise=False)
    hot = translate([tmp_path / "hot"], "cfht", out_dir=tmp_path / "b", noise=False)
    assert clean.translated == hot.translated == 1
    assert [m for _, m in hot.warned if "sharper than the PSF" in m and "r 1)" in m]
    a, b = fits.getdata(tmp_path / "a" / "x.cfht.fits"), fits.getdata(tmp_path / "b" / "x.cfht.fits")
    assert np.abs(a - b).max() < 0.1  # ADU; CFHT's sky sigma is 2-10.5
