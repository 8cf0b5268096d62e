"""bench/psf_growth.py against frames whose PSF is known: it must name the family and its width."""

import bz2
import sys
from pathlib import Path

import numpy as np
import pytest

galsim = pytest.importorskip("galsim")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import psf_growth  # noqa: E402

PIXEL = 0.396


def frame(psf, seed, n_stars=14, n_galaxies=6, size=700):
    """A sky-subtracted frame with white noise (sigma 1), stars through ``psf`` and wider galaxies."""
    rng = np.random.default_rng(seed)
    image = galsim.ImageD(size, size, scale=PIXEL)
    grid = [(x, y) for x in range(70, size - 70, 95) for y in range(70, size - 70, 95)]  # 95 px > 2 x 12"
    spots = rng.permutation(len(grid))[: n_stars + n_galaxies]
    for k, spot in enumerate(spots):
        x, y = grid[spot]
        flux = rng.uniform(2000, 12000)  # peaks of about 150-1500 sigma
        if k < n_stars:
            obj = psf.withFlux(flux)
        else:  # a galaxy: a 1.5" exponential disk through the same PSF
            obj = galsim.Convolve(galsim.Exponential(half_light_radius=1.5, flux=flux), psf)
        offset = galsim.PositionD(*rng.uniform(-0.5, 0.5, 2))
        stamp = obj.drawImage(nx=81, ny=81, scale=PIXEL, offset=offset)
        stamp.setCenter(x, y)
        bounds = stamp.bounds & image.bounds
        image[bounds] += stamp[bounds]
    return image.array + rng.normal(0.0, 1.0, image.array.shape)


@pytest.mark.parametrize("family,truth", [("moffat2.5", galsim.Moffat(beta=2.5, fwhm=1.15)),
                                          ("kolmogorov", galsim.Kolmogorov(fwhm=1.4))])
def test_the_frames_own_family_fits_best_at_its_width(family, truth):
    frames = {f"frame-r-{k}": ("r", frame(truth, seed=k)) for k in range(2)}
    result = psf_growth.measure(frames, ["kolmogorov", "moffat2.5", "moffat3.5"], PIXEL, 100.0, 2000.0)
    assert set(result) == {"r"} and len(result["r"]) == 2
    for name, v in result["r"].items():
        assert v["n"] >= psf_growth.MIN_STARS
        best = min(v["fits"], key=lambda f: v["fits"][f][1])
        assert best == family, (name, v["fits"])
        assert v["fits"][family][0] == pytest.approx(truth.calculateFWHM(), rel=0.04), (name, v["fits"])
        assert v["fits"][family][1] < 0.5 * min(r for f, (_, r) in v["fits"].items() if f != family)


def test_frames_are_read_compressed_and_the_band_comes_from_the_name(tmp_path):
    from astropy.io import fits

    data = np.arange(12.0).reshape(3, 4)
    path = tmp_path / "frame-g-000001-1-0001.fits.bz2"
    buffer = fits.HDUList([fits.PrimaryHDU(data)])
    raw = tmp_path / "raw.fits"
    buffer.writeto(raw)
    path.write_bytes(bz2.compress(raw.read_bytes()))
    assert np.array_equal(psf_growth.read_frame(path), data)
    assert psf_growth.band_of(path, None) == "g" and psf_growth.band_of(path, "r") == "r"
    with pytest.raises(SystemExit, match="no band"):
        psf_growth.band_of(tmp_path / "image.fits", None)
