"""Field stars and the realistic population of the GalSim survey pair."""

import dataclasses
import json
import math

import numpy as np
import pytest
from astropy.table import Table

from survey2survey.data.simulate import (
    POPULATIONS,
    SimulationConfig,
    render_galaxy,
    simulate_object,
    simulate_survey_pair,
)
from survey2survey.data.conditions import conditions_of
from survey2survey.data.stars import STAR_EXCLUSION, stellar_sed
from survey2survey.errors import UsageError
from survey2survey.fits_io import make_wcs
from survey2survey.surveys import get_survey

STARS = SimulationConfig(n_paired=3, seed=7, star_fraction=3.0, neighbour_fraction=0.0)


def _star_alone(obj, config, name, star):
    """The image of one star of ``obj`` in survey ``name``: truth with it minus truth without."""
    survey = get_survey(name)
    obs, beta = obj.observations[name], conditions_of(survey, None).psf_beta
    bare = dataclasses.replace(obj.galaxy, stars=())
    with_star = dataclasses.replace(obj.galaxy, stars=(star,))
    return (render_galaxy(with_star, survey, obs, config.psf, beta).astype(np.float64)
            - render_galaxy(bare, survey, obs, config.psf, beta))  # fmt: skip


def _centroid_radec(image, name, obs, star_radec):
    """First moment of a star image in a 4" box around where it should be, as (RA, Dec)."""
    survey = get_survey(name)
    wcs = make_wcs(obs.ra_center, obs.dec_center, survey.pixel_scale, image.shape)
    x0, y0 = (int(round(float(v))) for v in wcs.world_to_pixel_values(*star_radec))
    r = int(math.ceil(4.0 / survey.pixel_scale))
    box = image[y0 - r: y0 + r + 1, x0 - r: x0 + r + 1]
    yy, xx = np.mgrid[y0 - r: y0 + r + 1, x0 - r: x0 + r + 1]
    x, y = (box * xx).sum() / box.sum(), (box * yy).sum() / box.sum()
    return wcs.pixel_to_world_values(x, y)


def test_a_star_has_its_catalog_flux_and_the_same_sky_position_in_both_surveys():
    measured = 0
    for index in range(STARS.n_paired):
        obj = simulate_object(STARS, index)
        g = obj.galaxy
        for star in g.stars:
            assert math.hypot(star.east, star.north) >= STAR_EXCLUSION
            if max(abs(star.east), abs(star.north)) > 12.5 - 5.0:
                continue  # PSF wings beyond the cutout: flux and centroid are not the star's alone
            cos_dec = math.cos(math.radians(g.dec))
            star_radec = (g.ra + star.east / 3600 / cos_dec, g.dec + star.north / 3600)
            positions = []
            for name in ("sdss", "cfht"):
                survey = get_survey(name)
                image = _star_alone(obj, STARS, name, star)
                for j, band in enumerate(survey.bands):
                    expected = 10 ** (-0.4 * (star.magnitude(band) - 22.5)) / survey.flux_factor
                    assert image[j].sum() == pytest.approx(expected, rel=0.01), (index, name, band)
                ra, dec = _centroid_radec(image[2], name, obj.observations[name], star_radec)
                positions.append((float(ra), float(dec)))
                sep = math.hypot((ra - star_radec[0]) * cos_dec, dec - star_radec[1]) * 3600
                assert sep < 0.05, (index, name, sep)
            (ra_s, dec_s), (ra_c, dec_c) = positions
            assert math.hypot((ra_s - ra_c) * cos_dec, dec_s - dec_c) * 3600 < 0.05
            measured += 1
    assert measured >= 2  # the seed gives stars well inside the footprint


def test_stars_are_in_the_truth_and_leave_the_galaxy_unchanged():
    no_stars = dataclasses.replace(STARS, star_fraction=0.0)
    for index in range(STARS.n_paired):
        obj, plain = simulate_object(STARS, index), simulate_object(no_stars, index)
        assert repr(dataclasses.replace(obj.galaxy, stars=())) == repr(plain.galaxy)  # drawn after the galaxy
        # the sky's noise is the same draw; the sources' Poisson noise follows the stars too
        sky, sky_plain = (simulate_object(dataclasses.replace(c, source_noise=False), index) for c in (STARS, no_stars))
        for name in ("sdss", "cfht"):
            stars = sum((_star_alone(obj, STARS, name, s) for s in obj.galaxy.stars), np.zeros(1))
            scale = np.abs(obj.truth[name]).max()
            np.testing.assert_allclose(obj.truth[name] - plain.truth[name], stars, atol=1e-4 * scale)
            np.testing.assert_array_equal(sky.noise[name], sky_plain.noise[name])


def test_stars_are_recorded_in_the_truth_table_not_the_catalog(tmp_path):
    simulate_survey_pair(STARS, tmp_path / "sim", workers=1)
    catalog = Table.read(tmp_path / "sim" / "catalog.ecsv")
    assert len(catalog) == STARS.n_total  # galaxies only
    table = Table.read(tmp_path / "sim" / "truth" / "galaxies.ecsv")
    for row in table:
        stars = simulate_object(STARS, int(row["index"])).galaxy.stars
        assert row["n_stars"] == len(stars)
        if stars:
            assert row["star_mag_r"] == pytest.approx(min(s.mag_r for s in stars))
        else:
            assert np.isnan(row["star_mag_r"])
    assert sum(table["n_stars"]) > 0
    default = SimulationConfig(n_paired=1, seed=7)
    simulate_survey_pair(default, tmp_path / "plain", workers=1)
    plain = Table.read(tmp_path / "plain" / "truth" / "galaxies.ecsv")
    assert "n_stars" not in plain.colnames and "bulge_n" not in plain.colnames  # default table unchanged
    assert "star_fraction" not in default.to_dict() and STARS.to_dict()["star_fraction"] == 3.0


def test_stellar_colours_follow_the_locus():
    blue, red = stellar_sed(0.3), stellar_sed(1.4)
    # (u-r, g-r, 0, i-r, z-r, y-r): redder in every colour along the locus
    assert blue[1] == pytest.approx(0.3) and red[1] == pytest.approx(1.4)
    assert red[0] - red[1] > blue[0] - blue[1] > 0.8  # u - g
    assert -red[3] > -blue[3] > 0  # r - i
    assert red[3] - red[4] > blue[3] - blue[4] > 0  # i - z


def test_realistic_population_varies_bulges_and_fits_bright_galaxies():
    config = SimulationConfig.for_population("realistic", n_paired=60, seed=3)
    assert config.mag_range == (14.0, 21.0) and config.star_fraction == 0.5
    galaxies = [simulate_object(config, i).galaxy for i in range(0, 60, 3)]
    assert {g.bulge_n for g in galaxies} == {2.0, 3.0, 4.0}
    assert max(g.disk_hlr for g in galaxies) <= 4.0
    assert any(g.stars for g in galaxies)
    assert SimulationConfig.for_population("default", n_paired=1) == SimulationConfig(n_paired=1)
    assert set(POPULATIONS) >= {"default", "realistic"}
    with pytest.raises(UsageError, match="unknown population"):
        SimulationConfig.for_population("bogus", n_paired=1)
    for bad in (dict(star_fraction=-1.0), dict(bulge_n=(9.0,)), dict(bulge_n=()), dict(max_hlr=0.0)):
        with pytest.raises(UsageError):
            SimulationConfig(n_paired=1, **bad)


def test_prepare_simulate_with_stars_and_the_realistic_population(tmp_path):
    from survey2survey.cli import main

    out = tmp_path / "sim"
    assert main(["prepare", "--simulate", "4", "--stars", "2", "--out", str(out), "-j", "1", "-q"]) == 0
    meta = json.loads((out / "simulation.json").read_text())
    assert meta["config"]["star_fraction"] == 2.0 and meta["config"]["mag_range"] == [16.0, 21.0]
    assert (out / "dataset" / "dataset.json").is_file()
    assert "n_stars" in Table.read(out / "truth" / "galaxies.ecsv").colnames
    real = tmp_path / "real"
    assert main(["prepare", "--simulate", "2", "--population", "realistic", "--unpaired-a", "0", "--unpaired-b", "0",
                 "--out", str(real), "-j", "1", "-q", "--fits-only"]) == 0
    config = json.loads((real / "simulation.json").read_text())["config"]
    assert config["mag_range"] == [14.0, 21.0] and config["star_fraction"] == 0.5
    assert config["bulge_n"] == [2.0, 3.0, 4.0] and config["max_hlr"] == 4.0
    assert main(["prepare", "--simulate", "1", "--population", "bogus", "--out", str(tmp_path / "x")]) == 2
    assert main(["prepare", "--a", "x", "--b", "y", "--stars", "1", "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
