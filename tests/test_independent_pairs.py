"""bench/independent_pairs.py: its pairs must say where their galaxies are and carry the noise it states."""

import sys
from pathlib import Path

import numpy as np
import pytest

galsim = pytest.importorskip("galsim")
from astropy.io import fits  # noqa: E402
from astropy.wcs import WCS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import independent_pairs as ip  # noqa: E402

from survey2survey.surveys import get_survey  # noqa: E402


def lone_galaxy(seed, mag=16.0):
    """A scene with one round, compact galaxy, no knots, neighbour or star."""
    scene = ip.draw_scene(np.random.default_rng(seed))
    scene.update(mag=mag, bt=1.0, hlr_bulge=0.5, q_bulge=1.0, knots=0.0, neighbour=None, star=None)
    return scene


def world_centroid(path):
    """RA, Dec (arcsec, about the file's own reference point) of the r plane's centre of light."""
    with fits.open(path) as hdul:
        data, header = hdul[0].data[2].astype(float), hdul[0].header
    ys, xs = np.indices(data.shape)
    x, y = (data * xs).sum() / data.sum(), (data * ys).sum() / data.sum()
    ra, dec = WCS(header).celestial.all_pix2world([[x, y]], 0)[0]
    return ra, dec, x - (data.shape[1] - 1) / 2, y - (data.shape[0] - 1) / 2


@pytest.mark.parametrize("sizes", [{}, {"sdss": 96, "cfht": 203}])
def test_each_surveys_wcs_places_the_galaxy_where_the_other_does(tmp_path, sizes):
    """The cutout centres are off the galaxy by a different 0.1" in each survey; the WCSs say so
    (for the surveys' own cutout sizes and for ``--size 96``)."""
    offsets = []
    for seed in range(4):
        scene = lone_galaxy(seed)
        rng = np.random.default_rng(seed)
        ra0, dec0 = 150.0, 30.0
        where = {}
        for j, name in enumerate(("sdss", "cfht")):
            survey = get_survey(name)
            _, clean, offset, _ = ip.observe(scene, survey, np.random.default_rng([seed, j]), "kolmogorov", False,
                                             size=sizes.get(name))
            assert clean.shape[-1] == sizes.get(name, survey.cutout_size)
            path = tmp_path / f"{name}{seed}.fits"
            ip.write_cube(path, clean, survey, offset, ra0, dec0)
            ra, dec, dx, dy = world_centroid(path)
            where[name] = (ra, dec)
            offsets.append(np.hypot(dx, dy) * survey.pixel_scale)
        (ra_s, dec_s), (ra_c, dec_c) = where["sdss"], where["cfht"]
        sep = np.hypot((ra_s - ra_c) * np.cos(np.radians(dec0)), dec_s - dec_c) * 3600
        assert sep < 0.01, f"seed {seed}: the two surveys put the galaxy {sep:.3f}\" apart"
        # and where the scene put it: +x (west) lowers the RA
        expect_ra = ra0 - scene["centre"][0] / 3600 / np.cos(np.radians(dec0))
        expect_dec = dec0 + scene["centre"][1] / 3600
        assert np.hypot((ra_s - expect_ra) * np.cos(np.radians(dec0)), dec_s - expect_dec) * 3600 < 0.01
    assert max(offsets) > 0.05  # the grids really are off the galaxy, so the check above has teeth


def test_sky_noise_is_the_registrys_and_source_noise_follows_the_flux():
    for name in ("sdss", "cfht"):
        survey = get_survey(name)
        blank = lone_galaxy(1, mag=40.0)
        noisy, clean, _, _ = ip.observe(blank, survey, np.random.default_rng([7, 1]), "kolmogorov", True)
        sigma = (noisy - clean).std(axis=(1, 2))
        np.testing.assert_allclose(sigma, survey.sky_sigma, rtol=0.05)

        bright = lone_galaxy(2, mag=14.0)
        with_shot, clean, _, _ = ip.observe(bright, survey, np.random.default_rng([7, 2]), "kolmogorov", True)
        without, clean2, _, _ = ip.observe(bright, survey, np.random.default_rng([7, 2]), "kolmogorov", False)
        np.testing.assert_array_equal(clean, clean2)  # one stream: the same PSF and sky noise either way
        for b in range(len(survey.bands)):
            sky = 10 ** (-0.4 * (ip.SKY_MAG[b] - 22.5)) * survey.pixel_scale**2 / survey.flux_factor
            gain = sky / survey.sky_sigma[b] ** 2
            core = clean[b] > 25 * survey.sky_sigma[b]
            assert core.sum() > 20
            shot = (with_shot[b] - without[b])[core] / np.sqrt(clean[b][core] / gain)
            assert abs(shot.std() - 1) < 0.2, f"{name} {survey.bands[b]}: source noise {shot.std():.2f}x Poisson"
            # and a bright core is much noisier than the sky, as on real frames
            assert np.sqrt(clean[b].max() / gain) > 3 * survey.sky_sigma[b]


def test_the_bench_runs_translate_and_evaluate_end_to_end(tmp_path, capsys):
    """With the physics as the model, both rows are the same and the ratio is 1."""
    assert ip.main(["--n", "3", "--work", str(tmp_path / "w"), "--model", "physics"]) == 0
    out = capsys.readouterr().out
    assert "3 pairs, seed 31" in out
    assert out.count("model / physics: sum 1.000") == 2, out
    with pytest.raises(SystemExit, match="not empty"):
        ip.main(["--n", "3", "--work", str(tmp_path / "w"), "--model", "physics"])
