"""The GalSim survey pair: truth + noise = FITS, recorded noise, same galaxy in a pair."""

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from survey2survey.data import example_dir
from survey2survey.data.simulate import (
    SimulationConfig,
    survey_conditions,
    draw_observation,
    object_id,
    simulate_object,
    simulate_survey_pair,
)
from survey2survey.errors import SurveyError, UsageError
from survey2survey.fits_io import find_cutouts, read_cutout
from survey2survey.surveys import Survey, get_survey, register_survey

CONFIG = SimulationConfig(n_paired=3, n_unpaired_a=1, n_unpaired_b=1, seed=5)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "pair"
    simulate_survey_pair(CONFIG, out, workers=1)
    return out


def _noise_table(path):
    table = Table.read(path / "truth" / "noise.ecsv")
    return {(r["id"], r["survey"], r["band"]): (float(r["sigma"]), float(r["psf_fwhm"])) for r in table}


def test_layout_catalog_and_roles(sim):
    catalog = Table.read(sim / "catalog.ecsv")
    assert list(catalog["id"]) == [object_id(i) for i in range(5)]
    assert list(catalog["paired"]) == [True, True, True, False, False]
    assert list(catalog["surveys"]) == ["sdss,cfht"] * 3 + ["sdss", "cfht"]
    assert catalog["ra"].unit == "deg"
    sdss = sorted(p.stem for p in (sim / "sdss").glob("*.fits"))
    cfht = sorted(p.stem for p in (sim / "cfht").glob("*.fits"))
    assert sdss == [object_id(i) for i in (0, 1, 2, 3)]
    assert cfht == [object_id(i) for i in (0, 1, 2, 4)]
    assert sorted(p.stem for p in (sim / "truth" / "sdss").glob("*.fits")) == sdss
    assert sorted(p.stem for p in (sim / "truth" / "cfht").glob("*.fits")) == cfht
    meta = json.loads((sim / "simulation.json").read_text())
    assert meta["config"]["seed"] == 5 and meta["counts"]["fits_files"] == 16
    assert not [p for p in sim.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_fits_is_truth_plus_noise_and_reproducible_from_seed_and_index(sim):
    for index in range(CONFIG.n_total):
        obj = simulate_object(CONFIG, index)
        for survey, noise in obj.noise.items():
            name = f"{obj.id}.fits"
            noisy = read_cutout(sim / survey / name, survey)
            truth = read_cutout(sim / "truth" / survey / name, survey)
            np.testing.assert_array_equal(truth.data, obj.truth[survey])  # re-rendered = written
            np.testing.assert_array_equal(noisy.data, truth.data + noise)
            assert noisy.wcs is not None and noisy.data.shape == (5,) + (get_survey(survey).cutout_size,) * 2


def test_measured_noise_sigma_matches_recorded_sigma(sim):
    recorded = _noise_table(sim)
    sigmas = {"sdss": [], "cfht": []}
    for survey in ("sdss", "cfht"):
        for path in sorted((sim / survey).glob("*.fits")):
            noisy = fits.getdata(path).astype(np.float64)
            truth = fits.getdata(sim / "truth" / survey / path.name).astype(np.float64)
            header = fits.getheader(sim / "truth" / survey / path.name)
            for j, band in enumerate("ugriz"):
                sigma, _ = recorded[(path.stem, survey, band)]
                assert header[f"SKYSIG{j + 1}"] == pytest.approx(sigma)
                measured = np.std(noisy[j] - truth[j])
                # 4096 (SDSS) or 18496 correlated (CFHT) pixels: a few % statistical error
                assert measured == pytest.approx(sigma, rel=0.06), (path.name, band)
                sigmas[survey].append(sigma)
    # the amplitude varies from image to image and band to band (the emulator must learn it)
    for survey in sigmas:
        per_band = np.array(sigmas[survey]).reshape(-1, 5)
        assert len(np.unique(per_band[:, 2])) == len(per_band)
    # CFHT is deeper: less noise per unit sky area once both are in nanomaggies
    sd, cf = get_survey("sdss"), get_survey("cfht")
    sdss_sb = np.median(sigmas["sdss"]) * sd.flux_factor / sd.pixel_scale
    cfht_sb = np.median(sigmas["cfht"]) * cf.flux_factor / cf.pixel_scale
    assert cfht_sb < sdss_sb / 3


def test_cfht_noise_is_mildly_correlated_and_sdss_white():
    obj = simulate_object(CONFIG, 0)

    def lag1(noise):
        return np.mean([np.corrcoef(n[:, :-1].ravel(), n[:, 1:].ravel())[0, 1] for n in noise])

    c = survey_conditions(get_survey("cfht")).noise_correlation
    assert lag1(obj.noise["cfht"]) == pytest.approx(2 * c / (1 + 2 * c * c), abs=0.03)
    assert abs(lag1(obj.noise["sdss"])) < 0.03


def test_a_pair_is_the_same_galaxy_at_the_same_place(sim):
    for index in range(CONFIG.n_paired):
        name = f"{object_id(index)}.fits"
        s = read_cutout(sim / "truth" / "sdss" / name, "sdss")
        c = read_cutout(sim / "truth" / "cfht" / name, "cfht")
        flux_s = s.data.sum(axis=(1, 2)) * get_survey("sdss").flux_factor  # nanomaggies
        flux_c = c.data.sum(axis=(1, 2)) * get_survey("cfht").flux_factor
        # same galaxy and SED; the two footprints differ by 0.4 % in side, PSF wings by seeing
        np.testing.assert_allclose(flux_s, flux_c, rtol=0.02)
        (ra_s, dec_s), (ra_c, dec_c) = s.center_radec(), c.center_radec()
        sep = np.hypot((ra_s - ra_c) * np.cos(np.radians(dec_s)), dec_s - dec_c) * 3600
        assert sep < 0.6  # astrometric jitter only (0.08" and 0.05" per axis)
        # brightest pixel at the centre of both (north up, east left on both grids)
        for img, size in ((s.data[2], 64), (c.data[2], 136)):
            y, x = np.unravel_index(np.argmax(img), img.shape)
            assert abs(y - (size - 1) / 2) < 0.2 * size and abs(x - (size - 1) / 2) < 0.2 * size


def test_total_flux_matches_the_catalog_magnitude():
    config = SimulationConfig(n_paired=2, seed=2, neighbour_fraction=0.0, psf="moffat")
    for index in range(2):
        obj = simulate_object(config, index)
        for survey_name in ("sdss", "cfht"):
            survey = get_survey(survey_name)
            for j, band in enumerate(survey.bands):
                expected = 10 ** (-0.4 * (obj.galaxy.magnitude(band) - 22.5)) / survey.flux_factor
                got = obj.truth[survey_name][j].sum()
                # up to ~1 % of a big galaxy's light falls outside the 25" cutout
                assert got == pytest.approx(expected, rel=0.02), (index, survey_name, band)
                assert got <= expected * 1.001


def test_seeing_distributions_are_survey_like():
    sdss, cfht = get_survey("sdss"), get_survey("cfht")
    obj = simulate_object(CONFIG, 0)
    rng = np.random.default_rng(0)
    r = sdss.band_index("r")
    cond_s, cond_c = survey_conditions(sdss), survey_conditions(cfht)
    fwhm_s = [draw_observation(rng, sdss, cond_s, obj.galaxy).fwhm[r] for _ in range(400)]
    fwhm_c = [draw_observation(rng, cfht, cond_c, obj.galaxy).fwhm[r] for _ in range(400)]
    assert np.median(fwhm_s) == pytest.approx(1.4, rel=0.08)
    assert np.median(fwhm_c) == pytest.approx(0.7, rel=0.08)
    assert np.std(np.log(fwhm_s)) > 0.1  # it varies from image to image


def test_object_depends_on_seed_and_index_only():
    a = simulate_object(SimulationConfig(n_paired=3, seed=9), 1)
    b = simulate_object(SimulationConfig(n_paired=5, n_unpaired_b=2, seed=9), 1)  # other counts
    np.testing.assert_array_equal(a.truth["cfht"], b.truth["cfht"])
    np.testing.assert_array_equal(a.noise["sdss"], b.noise["sdss"])
    c = simulate_object(SimulationConfig(n_paired=3, seed=10), 1)
    assert not np.array_equal(a.truth["cfht"], c.truth["cfht"])


def test_bad_configurations_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="psf"):
        SimulationConfig(n_paired=1, psf="gaussian")
    with pytest.raises(UsageError, match="nothing to simulate"):
        SimulationConfig(n_paired=0)
    with pytest.raises(UsageError, match="must differ"):
        SimulationConfig(n_paired=1, survey_b="sdss").surveys()
    register_survey(Survey.from_dict("toy", {"bands": ["g", "r"], "pixel_scale": 0.2, "cutout_size": 32,
                                             "zero_point": 27.0}))
    with pytest.raises(SurveyError, match="no simulation conditions for survey 'toy'"):
        SimulationConfig(n_paired=1, survey_b="toy").surveys()
    with pytest.raises(SurveyError, match="cannot simulate band 'Q'"):
        register_survey(Survey.from_dict("toyq", {"bands": ["Q"], "pixel_scale": 0.2, "cutout_size": 32,
                                                  "zero_point": 27.0, "psf_profile": "moffat",
                                                  "psf_fwhm": {"Q": 0.8}, "depth": {"Q": 25.0}}))
        SimulationConfig(n_paired=1, survey_b="toyq").surveys()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="output exists"):
        simulate_survey_pair(SimulationConfig(n_paired=1), tmp_path / "taken", workers=1)
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def test_bundled_example_set():
    root = example_dir()
    assert (root / "README.md").is_file()
    catalog = Table.read(root / "catalog.ecsv")
    assert len(catalog) >= 8 and all(catalog["paired"])
    recorded = _noise_table(root)
    for survey in ("sdss", "cfht"):
        sources = find_cutouts([root / survey], survey)
        assert sorted(s.object_id for s in sources) == sorted(catalog["id"])
        for source in sources[:2]:
            noisy = read_cutout(source, survey)
            truth = read_cutout(root / "truth" / survey / source.path.name, survey)
            assert noisy.data.dtype == np.float32 and noisy.wcs is not None
            # the recorded sigma is the sky's: the sources add their Poisson noise on top
            from survey2survey.physics.noise import source_variance_ratio

            sky = source_variance_ratio(truth.data[2], get_survey(survey), "r") < 0.01
            measured = np.std((noisy.data[2] - truth.data[2])[sky])
            assert measured == pytest.approx(recorded[(source.object_id, survey, "r")][0], rel=0.06)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < 10e6  # stays a small download


def test_conditions_come_from_the_registry():
    # the values the simulator used before they moved into surveys.toml, but for the SDSS sky
    # sigma, since measured on real SDSS frames (1.4-2.6x below the first values)
    sdss, cfht = survey_conditions(get_survey("sdss")), survey_conditions(get_survey("cfht"))
    assert (sdss.seeing, sdss.seeing_scatter, sdss.band_seeing_scatter, sdss.seeing_limits) == (1.4, 0.18, 0.03, (0.8, 2.6))
    assert sdss.sky_sigma == {"u": 0.045, "g": 0.017, "r": 0.028, "i": 0.05, "z": 0.18}
    assert (sdss.sky_scatter_image, sdss.sky_scatter_band, sdss.noise_correlation, sdss.astrometric_jitter) == (
        0.15, 0.15, 0.0, 0.08)
    assert (cfht.seeing, cfht.seeing_scatter, cfht.band_seeing_scatter, cfht.seeing_limits) == (0.7, 0.15, 0.12, (0.45, 1.3))
    assert cfht.sky_sigma == {"u": 2.4, "g": 2.0, "r": 3.5, "i": 4.6, "z": 10.5}
    assert (cfht.sky_scatter_image, cfht.sky_scatter_band, cfht.noise_correlation, cfht.astrometric_jitter) == (
        0.15, 0.25, 0.15, 0.05)
    assert sdss.psf_beta == cfht.psf_beta == 3.0 and sdss.psf_shear == cfht.psf_shear == 0.03


@pytest.mark.parametrize("pair", [("hsc", "lsst"), ("legacy", "sdss")])
def test_a_new_survey_simulates_from_its_registry_entry_alone(pair):
    obj = simulate_object(SimulationConfig(n_paired=1, survey_a=pair[0], survey_b=pair[1], seed=3), 0)
    for name in pair:
        survey = get_survey(name)
        assert obj.truth[name].shape == (survey.n_bands, survey.cutout_size, survey.cutout_size)
        sigma = np.std(obj.noise[name], axis=(1, 2))
        typical = np.array([survey.typical_sky_sigma(b) for b in survey.bands])
        assert np.all((sigma > typical / 3) & (sigma < typical * 3))


def test_bundled_example_is_bit_identical_to_a_fresh_rendering():
    # the conditions moved from Python into surveys.toml: the same seed gives the same bits
    root = example_dir()
    config = SimulationConfig(n_paired=8, seed=14)
    for index in (0, 5):
        obj = simulate_object(config, index)
        for survey in ("sdss", "cfht"):
            truth = read_cutout(root / "truth" / survey / f"{obj.id}.fits", survey)
            assert [truth.header[f"PSFFWHM{j}"] for j in range(1, 6)] == list(obj.observations[survey].fwhm)
            assert [truth.header[f"SKYSIG{j}"] for j in range(1, 6)] == list(obj.observations[survey].sigma)
            noisy = read_cutout(root / survey / f"{obj.id}.fits", survey).data
            np.testing.assert_array_equal(noisy, truth.data + obj.noise[survey])  # noise bit-identical


def test_bundled_example_is_what_its_readme_command_makes():
    root = example_dir()
    meta = json.loads((root / "simulation.json").read_text())
    assert "--simulate 8 --unpaired-a 0 --unpaired-b 0 --seed 14" in (root / "README.md").read_text()
    config = SimulationConfig(n_paired=8, seed=14)
    assert meta["config"] == config.to_dict() | {"mag_range": [16.0, 21.0], "field_center": [34.5, -7.0]}
    obj = simulate_object(config, 1)  # the one with knots and a neighbour
    for survey in ("sdss", "cfht"):
        written = read_cutout(root / survey / f"{obj.id}.fits", survey).data
        # FFT round-off may differ between machines: compare to the image's scale
        np.testing.assert_allclose(written, obj.image(survey), rtol=0, atol=1e-5 * np.abs(written).max())
