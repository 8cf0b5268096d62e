"""``s2s translate``: FITS in, FITS out, F = G + NE, seeds, shards, resuming, bad inputs.

The model is the paper's networks at the shipped sizes (SDSS 64 px <-> CFHT 136 px) with
seeded random weights: the pipeline does not care whether the weights were trained.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

import survey2survey
from _models import galaxy, make_tiny_model, method_model, write_inputs
from survey2survey.model import store
from survey2survey.cli import main as cli_main
from survey2survey.runtime.seeds import noise_inputs, object_seed
from survey2survey.errors import ModelError, UsageError
from survey2survey.data import example_dir
from survey2survey.fits_io import verify_fits, write_cutout
from survey2survey.methods import METHODS, get_method
from survey2survey.surveys import get_survey, to_model_space, to_native
from survey2survey.model import default_model_dir, model_directions
from survey2survey.pipelines.translate import parse_shard, translate
from survey2survey.runtime.engines import TorchEngine

SDSS, CFHT = get_survey("sdss"), get_survey("cfht")
EX = example_dir()  # 8 simulated galaxies seen by SDSS and CFHT


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def sdss_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sdss")
    write_inputs(d, SDSS, 4)
    return d


def _model_space(path, survey):
    with fits.open(path) as h:
        return to_model_space(h[0].data, survey)


def test_sdss_to_cfht_shape_units_wcs_and_provenance(model_dir, sdss_dir, tmp_path):
    out = tmp_path / "out"
    report = translate([sdss_dir], "cfht", model_dir=model_dir, out_dir=out, seed=7)
    assert report.exit_code == 0 and report.translated == 4 and not report.failed
    assert report.backend == "torch/cpu/fp32" and report.directions == {"sdss->cfht": 4}
    sha = store.weights_sha256(model_dir)
    with fits.open(out / "J0002.cfht.fits", checksum=True) as hdul:
        h, data = hdul[0].header, hdul[0].data
        assert data.shape == (5, 136, 136) and data.dtype == np.dtype(">f4")
        assert h["SURVEY"] == "cfht" and h["BUNIT"] == CFHT.flux_unit and h["MAGZP"] == 30.0
        assert h["S2SHASH"] == sha and h["S2SDIR"] == "sdss->cfht" and h["S2SMETH"] == "ours"
        assert h["S2SSRCSV"] == "sdss" and h["S2STGTSV"] == "cfht" and h["S2SSEED"] == 7
        assert h["S2SBACK"] == "torch/cpu/fp32" and h["S2SNOISE"] == "yes" and h["S2SOBJ"] == "J0002"
        assert h["S2SSRC"].endswith("J0002.fits") and "F = G + NE" in str(h["HISTORY"])
        wcs = WCS(h).celestial
    # the network's pixels are CFHT's (0.187", as its training pairs), about the input's centre
    scale = proj_plane_pixel_scales(wcs) * 3600
    np.testing.assert_allclose(scale, 0.187, rtol=1e-9)
    in_wcs = galaxy(SDSS, 2, ra=150.02)[1]
    centre_in = in_wcs.all_pix2world([[31.5, 31.5]], 0)[0]
    centre_out = wcs.all_pix2world([[67.5, 67.5]], 0)[0]
    np.testing.assert_allclose(centre_out, centre_in, atol=1e-10)

    # The data are F = G(x) + NE(z) in model space, z from (seed, object id), in CFHT units,
    # and where F is a source, CFHT's Poisson noise of it from the same key.
    from survey2survey.translators.learned import add_source_noise

    model = store.load_model(model_dir)
    x = to_model_space(galaxy(SDSS, 2)[0], SDSS)[None]
    key = object_seed(7, "J0002")
    with torch.no_grad():
        g = model.modules["generator_sdss_to_cfht"](torch.from_numpy(x))
        z1, z2 = noise_inputs([key], range(5), 136, 136)
        f = g + model.modules["noise_emulator_cfht"](z1[:, 0], z2[:, 0])
    f = f.numpy()[:, None]  # (N, S, C, H, W)
    with_source = add_source_noise(f, np.array([key]), CFHT, get_survey("cfht"))
    assert (with_source != f).sum() > 100  # the galaxy is bright enough to carry some
    np.testing.assert_allclose(_model_space(out / "J0002.cfht.fits", CFHT), with_source[0, 0], atol=1e-4)


def test_cfht_to_sdss_from_the_bundled_examples(model_dir, tmp_path):
    from survey2survey.data import example_dir

    cfht = sorted((example_dir() / "cfht").glob("*.fits"))[:2]
    report = translate(cfht, "sdss", model_dir=model_dir, out_dir=tmp_path, seed=1)
    assert report.translated == 2 and not report.failed
    out = tmp_path / f"{cfht[0].stem}.sdss.fits"
    with fits.open(out) as hdul:
        h = hdul[0].header
        assert hdul[0].data.shape == (5, 64, 64) and h["BUNIT"] == "nanomaggy" and h["S2SDIR"] == "cfht->sdss"
        scale = proj_plane_pixel_scales(WCS(h).celestial) * 3600
    with fits.open(cfht[0]) as src:
        in_scale = proj_plane_pixel_scales(WCS(src[0].header).celestial)[0] * 3600
    np.testing.assert_allclose(scale, in_scale * 0.396 / 0.187, rtol=1e-9)  # SDSS's pixels, as the network's


def test_same_seed_same_output_other_seed_other_noise(model_dir, sdss_dir, tmp_path):
    files = sorted(sdss_dir.glob("*.fits"))[:2]
    a = translate(files, "cfht", model_dir=model_dir, out_dir=tmp_path / "a", seed=3)
    b = translate(files, "cfht", model_dir=model_dir, out_dir=tmp_path / "b", seed=3)
    c = translate(files, "cfht", model_dir=model_dir, out_dir=tmp_path / "c", seed=4)
    assert a.translated == b.translated == c.translated == 2
    for name in ("J0000.cfht.fits", "J0001.cfht.fits"):
        da, db, dc = (fits.getdata(tmp_path / d / name) for d in "abc")
        np.testing.assert_array_equal(da, db)
        assert not np.allclose(da, dc)
    # one object's noise does not depend on its neighbours in the batch
    single = translate(files[1:], "cfht", model_dir=model_dir, out_dir=tmp_path / "d", seed=3)
    assert single.translated == 1
    np.testing.assert_allclose(
        _model_space(tmp_path / "d" / "J0001.cfht.fits", CFHT), _model_space(tmp_path / "a" / "J0001.cfht.fits", CFHT),
        atol=1e-4,
    )


def test_no_noise_is_the_generator_output(model_dir, sdss_dir, tmp_path):
    files = sorted(sdss_dir.glob("*.fits"))[:2]
    report = translate(files, "cfht", model_dir=model_dir, out_dir=tmp_path, noise=False)
    assert report.translated == 2
    model = store.load_model(model_dir)
    x = np.stack([to_model_space(galaxy(SDSS, i)[0], SDSS) for i in range(2)])
    with torch.no_grad():
        g = model.modules["generator_sdss_to_cfht"](torch.from_numpy(x)).numpy()
    for i in range(2):
        with fits.open(tmp_path / f"J000{i}.cfht.fits") as h:
            assert h[0].header["S2SNOISE"] == "no" and h[0].header["S2SNSAMP"] == 0
            np.testing.assert_allclose(h[0].data, to_native(g[i], CFHT), rtol=1e-5, atol=1e-2)


def test_samples_write_extra_realisations(model_dir, sdss_dir, tmp_path):
    one = sorted(sdss_dir.glob("*.fits"))[:1]
    translate(one, "cfht", model_dir=model_dir, out_dir=tmp_path / "s1", seed=5)
    report = translate(one, "cfht", model_dir=model_dir, out_dir=tmp_path / "s3", seed=5, samples=3)
    assert report.translated == 1
    with fits.open(tmp_path / "s3" / "J0000.cfht.fits", checksum=True) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SAMPLE2", "SAMPLE3"]
        assert hdul[0].header["S2SNSAMP"] == 3 and hdul["SAMPLE3"].header["S2SSAMP"] == 3
        assert all(h.data.shape == (5, 136, 136) for h in hdul)
        assert WCS(hdul["SAMPLE2"].header).celestial.wcs.compare(WCS(hdul[0].header).celestial.wcs)
        # realisation 1 is the plain run's; the others are new draws of the noise
        np.testing.assert_array_equal(hdul[0].data, fits.getdata(tmp_path / "s1" / "J0000.cfht.fits"))
        m = [to_model_space(h.data, CFHT) for h in hdul]
        assert not np.allclose(m[0], m[1]) and not np.allclose(m[1], m[2])
    with pytest.raises(UsageError, match="--no-noise"):
        translate(one, "cfht", model_dir=model_dir, out_dir=tmp_path / "x", samples=2, noise=False)


def test_shards_partition_the_inputs(model_dir, sdss_dir, tmp_path):
    seen = []
    for i in range(3):
        report = translate([sdss_dir], "cfht", model_dir=model_dir, out_dir=tmp_path, shard=(i, 3), noise=False)
        assert report.shard == (i, 3) and report.skipped == 0
        seen += [p.name for p in report.outputs]
    assert sorted(seen) == [f"J000{i}.cfht.fits" for i in range(4)]  # every input once, no overlap
    assert parse_shard("2/5") == (2, 5) and parse_shard(None) is None
    for bad in ("5/5", "-1/2", "1", "a/b", "1/0"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_shard_auto_reads_torchrun_and_slurm(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(UsageError, match="RANK"):
        parse_shard("auto")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    assert parse_shard("auto") == (3, 4)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert parse_shard("auto") == (1, 8)


def test_bad_inputs_are_reported_and_skipped(model_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    write_inputs(src, SDSS, 2)
    (src / "garbage.fits").write_bytes(b"not a fits file at all" * 200)
    small, wcs = galaxy(SDSS, 9)
    fits.PrimaryHDU(small[:, :40, :40], header=fits.Header({"SURVEY": "sdss", "BANDS": "u,g,r,i,z"})).writeto(src / "small.fits")
    data, wcs = galaxy(CFHT, 3)
    write_cutout(src / "already_cfht.fits", data, CFHT, wcs=wcs)
    holes, wcs = galaxy(SDSS, 4)
    holes[1, :20] = np.nan  # 31 % of band g
    write_cutout(src / "holes.fits", np.nan_to_num(holes), SDSS, wcs=wcs)
    with fits.open(src / "holes.fits", mode="update") as h:
        h[0].data[1, :20] = np.nan
    code = cli_main(["translate", str(src), "--to", "cfht", "--model", str(model_dir), "--out", str(tmp_path / "out"),
                     "--no-noise", "--quiet"])
    assert code == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    failures = [line for line in captured.err.splitlines() if line.startswith("s2s: failed:")]
    assert len(failures) == 4 and len(captured.err.splitlines()) == 4
    text = "\n".join(failures)
    assert "garbage.fits: not a FITS file" in text
    assert "small.fits: wrong size 40x40 px, the model takes 64x64 px sdss cutouts" in text
    assert "already_cfht.fits: already a cfht cutout" in text
    assert "holes.fits: 31.2% of band g pixels are NaN/inf" in text
    assert "translated 2, skipped 0 (output exists), failed 4 of 6 inputs" in captured.out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["J0000.cfht.fits", "J0001.cfht.fits"]


def test_existing_outputs_are_kept_and_broken_ones_redone(model_dir, sdss_dir, tmp_path):
    files = sorted(sdss_dir.glob("*.fits"))[:3]
    out = tmp_path / "out"
    first = translate(files, "cfht", model_dir=model_dir, out_dir=out, seed=1, noise=False)
    assert first.translated == 3
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # damage one output: a re-run redoes it and keeps the two whole ones
    broken = out / "J0001.cfht.fits"
    broken.write_bytes(before["J0001.cfht.fits"][:5000])
    again = translate(files, "cfht", model_dir=model_dir, out_dir=out, seed=2, noise=False)
    assert (again.translated, again.skipped, again.failed) == (1, 2, [])
    assert (out / "J0000.cfht.fits").read_bytes() == before["J0000.cfht.fits"]
    assert fits.getdata(broken).shape == (5, 136, 136)
    # --overwrite redoes everything (with the new seed in the header)
    redo = translate(files, "cfht", model_dir=model_dir, out_dir=out, seed=2, noise=False, overwrite=True)
    assert redo.translated == 3 and fits.getheader(out / "J0000.cfht.fits")["S2SSEED"] == 2
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_an_input_named_like_an_output_is_read_never_replaced(sdss_dir, tmp_path):
    """In --out, a *.cfht.fits that s2s wrote is an earlier output (skipped as an input); one
    without s2s's provenance is the user's: it is translated, and the input whose output would
    land on it is refused, --overwrite or not."""
    files = sorted(sdss_dir.glob("*.fits"))[:2]
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "x.cfht.fits"  # an SDSS cutout with an output's name
    mine.write_bytes(files[0].read_bytes())
    other = out / "x.fits"
    other.write_bytes(files[1].read_bytes())
    before = mine.read_bytes()
    for overwrite in (False, True):
        report = translate([mine, other], "cfht", model_dir="physics", out_dir=out, seed=1, overwrite=overwrite)
        assert report.ignored == 0 and mine.read_bytes() == before
        assert [(Path(p).name, m) for p, m in report.failed] == [("x.fits", f"{other}: output {mine} is an input file; give another --out")]
        assert fits.getheader(out / "x.cfht.cfht.fits")["S2SSRC"].endswith("x.cfht.fits")
    # an earlier output of s2s below an input directory is no input
    again = translate([out], "cfht", model_dir="physics", out_dir=out, seed=1)
    assert again.ignored == 1 and mine.read_bytes() == before


def test_worker_processes_mirror_directories_and_carry_the_mask(model_dir, tmp_path):
    src = tmp_path / "in"
    (src / "field1").mkdir(parents=True)
    (src / "field2").mkdir()
    write_inputs(src / "field1", SDSS, 2)
    write_inputs(src / "field2", SDSS, 1, start=2)
    data, wcs = galaxy(SDSS, 5)
    write_cutout(src / "field2" / "J0005.fits", data, SDSS, wcs=wcs)
    with fits.open(src / "field2" / "J0005.fits", mode="update") as h:
        h[0].data[2, 10, 20:23] = np.nan  # 3 pixels of band r to be filled
    out = tmp_path / "out"
    pooled = translate([src], "cfht", model_dir=model_dir, out_dir=out, seed=9, workers=2)
    inline = translate([src], "cfht", model_dir=model_dir, out_dir=tmp_path / "inline", seed=9, workers=0)
    assert pooled.workers == 2 and pooled.translated == inline.translated == 4
    names = sorted(str(p.relative_to(out)) for p in pooled.outputs)
    assert names == ["field1/J0000.cfht.fits", "field1/J0001.cfht.fits", "field2/J0002.cfht.fits", "field2/J0005.cfht.fits"]
    for name in names:
        np.testing.assert_array_equal(fits.getdata(out / name), fits.getdata(tmp_path / "inline" / name))
    with fits.open(out / "field2" / "J0005.cfht.fits") as h:
        mask = h["MASK"].data.astype(bool)
        assert mask.shape == (5, 136, 136) and h[0].header["NBADPIX"] == mask.sum()
        # 3 input pixels of 0.396" cover 7-9 output pixels along x, 2-3 along y, in band r only
        assert mask[2].any() and not mask[[0, 1, 3, 4]].any()
        ys, xs = np.nonzero(mask[2])
        assert 2 <= np.ptp(ys) + 1 <= 3 and 7 <= np.ptp(xs) + 1 <= 9
        assert abs(ys.mean() - 10.5 * 136 / 64 + 0.5) < 1 and abs(xs.mean() - 21.5 * 136 / 64 + 0.5) < 1


def test_source_survey_from_header_or_the_model(model_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    data, _ = galaxy(SDSS, 1)
    fits.PrimaryHDU(data).writeto(src / "anon.fits")  # no SURVEY, no WCS, no band names
    report = translate([src], "cfht", model_dir=model_dir, out_dir=tmp_path / "out", noise=False)
    assert report.translated == 1
    h = fits.getheader(tmp_path / "out" / "anon.cfht.fits")
    assert h["S2SSRCSV"] == "sdss" and "source survey not in the header: taken as sdss" in str(h["HISTORY"])
    assert "CTYPE1" not in h  # no WCS in, none out


def test_misuse_is_a_clear_error(model_dir, sdss_dir, tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="does not translate into des"):
        translate([sdss_dir], "des", model_dir=model_dir, out_dir=tmp_path)
    with pytest.raises(ModelError, match="does not translate des->cfht"):
        translate([sdss_dir], "cfht", source="des", model_dir=model_dir, out_dir=tmp_path)
    with pytest.raises(UsageError, match="both cfht"):
        translate([sdss_dir], "cfht", source="cfht", model_dir=model_dir, out_dir=tmp_path)
    with pytest.raises(UsageError, match="--backend"):
        translate([sdss_dir], "cfht", model_dir=model_dir, backend="tf")
    with pytest.raises(UsageError, match="no such file"):
        translate([tmp_path / "nowhere"], "cfht", model_dir=model_dir, out_dir=tmp_path)
    monkeypatch.setenv("S2S_MODEL", str(tmp_path / "missing"))
    with pytest.raises(ModelError, match="S2S_MODEL"):
        default_model_dir()
    monkeypatch.setenv("S2S_MODEL", str(model_dir))
    assert default_model_dir() == model_dir
    monkeypatch.delenv("S2S_MODEL")
    shipped = Path(survey2survey.__file__).resolve().parents[1] / "models" / "sdss-cfht"
    if not (shipped / "config.json").is_file():
        with pytest.raises(ModelError, match="no model found: give --model DIR"):
            default_model_dir()
    code = cli_main(["translate", str(sdss_dir), "--to", "cfht", "--model", str(tmp_path / "no-model")])
    assert code == 2


def test_bf16_error_is_far_below_the_noise(model_dir):
    """bf16 (the CUDA default; CPU autocast here) changes G(x) much less than the emulated noise."""
    model = store.load_model(model_dir)
    d = model_directions(model.config)["cfht->sdss"]
    x = np.stack([to_model_space(galaxy(CFHT, i)[0], CFHT) for i in range(2)])
    keys = np.array([object_seed(0, f"b{i}") for i in range(2)])
    fp32 = TorchEngine(model, d, "cpu", "fp32").run(x, keys, noise=False)
    bf16 = TorchEngine(model, d, "cpu", "bf16").run(x, keys, noise=False)
    noisy = TorchEngine(model, d, "cpu", "fp32").run(x, keys, noise=True)
    err = np.sqrt(np.mean((bf16 - fp32) ** 2))
    noise = np.sqrt(np.mean((noisy - fp32) ** 2))
    assert 0 < err < 0.05 * noise, (err, noise)


# --- every method's model ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_translates_the_bundled_examples(name, tmp_path):
    """A random-weight model of each method (networks from the method's own build(),
    config.json as `s2s train` writes it) translates two bundled examples each way it can;
    a one-way model refuses the other way."""
    options = {"n_blocks": 1} if get_method(name).regridded else {}  # 6 ResNet blocks cost seconds on CPU
    model = method_model(tmp_path / "model", name, **options)
    config = store.load_model(model).config
    regridded = get_method(name).regridded
    assert config["regridded"] == regridded
    for src, dst in (("sdss", "cfht"), ("cfht", "sdss")):
        files = sorted((EX / src).glob("*.fits"))[:2]
        if f"{src}->{dst}" not in config["directions"]:
            with pytest.raises(ModelError, match=f"one-way model .* translates sdss->cfht only, not into {dst}"):
                translate(files, dst, model_dir=model, out_dir=tmp_path / dst)
            assert not (tmp_path / dst).exists()
            continue
        report = translate(files, dst, model_dir=model, out_dir=tmp_path / dst, seed=1)
        assert report.translated == 2 and not report.failed, report.failed
        target = get_survey(dst)
        for source, out in zip(files, report.outputs):
            verify_fits(out)
            with fits.open(out) as hdul:
                h = hdul[0].header
                assert hdul[0].data.shape == (5, target.cutout_size, target.cutout_size)
                assert np.isfinite(hdul[0].data).all()
                assert h["S2SMETH"] == name and h["S2SDIR"] == f"{src}->{dst}"
                assert h.get("S2SGRID") == ("sdss" if regridded else None)
                n = target.cutout_size
                centre = WCS(h).celestial.all_pix2world([[(n - 1) / 2] * 2], 0)[0]
            m = get_survey(src).cutout_size
            in_centre = WCS(fits.getheader(source)).celestial.all_pix2world([[(m - 1) / 2] * 2], 0)[0]
            np.testing.assert_allclose(centre, in_centre, atol=1e-9)  # same sky position


@pytest.fixture(scope="module")
def regridded_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("regridded")
    return {name: method_model(root / name, name, n_blocks=1) for name in ("cyclegan", "augcgan")}


def test_regridded_model_resamples_its_output_onto_the_target_grid(regridded_models, tmp_path):
    """cyclegan sdss->cfht: G runs on the 64 px SDSS grid; its output is resampled onto 136 px
    with the flux conserved and the input's footprint."""
    model_dir = regridded_models["cyclegan"]
    (src,) = sorted((EX / "sdss").glob("*.fits"))[:1]
    report = translate([src], "cfht", model_dir=model_dir, out_dir=tmp_path, noise=False)
    assert report.translated == 1
    model = store.load_model(model_dir)
    with fits.open(src) as h:
        x = to_model_space(h[0].data.astype(np.float32), SDSS)
        in_wcs = WCS(h[0].header).celestial
    with torch.no_grad():
        g = model.modules["generator_sdss_to_cfht"](torch.from_numpy(x[None]))[0].numpy()  # (5, 64, 64) on SDSS's grid
    on_grid = to_native(g, CFHT) * CFHT.flux_factor  # nanomaggies per SDSS pixel
    with fits.open(report.outputs[0]) as h:
        out = h[0].data * CFHT.flux_factor  # nanomaggies per output pixel
        hist = " ".join(h[0].header["HISTORY"])
        out_wcs = WCS(h[0].header).celestial
    assert out.shape == (5, 136, 136) and "resampled onto 136 px" in hist.replace("\n", "")
    for b in range(5):  # flux conserved band by band (G's random output has both signs: compare to its |flux|)
        assert abs(out[b].sum() - on_grid[b].sum()) < 2e-3 * np.abs(on_grid[b]).sum()
    scale = proj_plane_pixel_scales(out_wcs) * 3600
    np.testing.assert_allclose(scale, proj_plane_pixel_scales(in_wcs) * 3600 * 64 / 136, rtol=1e-9)  # same footprint


def test_regridded_model_resamples_its_input_and_draws_z_from_the_seed(regridded_models, tmp_path):
    """augcgan cfht->sdss: the CFHT cutout is regridded onto 64 px as `s2s prepare --regrid`
    does, and G(x, z) gets z ~ N(0, I) from (seed, object id); --samples draws more z."""
    from survey2survey.data.regrid import regrid_to_survey
    from survey2survey.runtime.seeds import latent_codes

    model_dir = regridded_models["augcgan"]
    (src,) = sorted((EX / "cfht").glob("*.fits"))[:1]
    report = translate([src], "sdss", model_dir=model_dir, out_dir=tmp_path / "s2", seed=4, samples=2)
    assert report.translated == 1
    model = store.load_model(model_dir)
    k = model.config["directions"]["cfht->sdss"]["latent_dim"]
    with fits.open(src) as h:
        on_grid = regrid_to_survey(h[0].data.astype(np.float32), CFHT, SDSS, WCS(h[0].header).celestial)
    x = torch.from_numpy(to_model_space(on_grid, CFHT)[None])  # what `prepare --regrid` stores as b_on_a
    key = [object_seed(4, src.stem)]
    with torch.no_grad():
        want = [model.modules["generator_cfht_to_sdss"](x, latent_codes(key, k, s))[0].numpy() for s in range(2)]
    with fits.open(report.outputs[0]) as h:
        assert [u.name for u in h] == ["PRIMARY", "SAMPLE2"] and h[0].header["S2SNSAMP"] == 2
        assert "latent code z" in " ".join(h[0].header["HISTORY"])
        for hdu, w in zip(h, want):
            np.testing.assert_allclose(hdu.data, to_native(w, SDSS), rtol=1e-4, atol=1e-4)
        assert not np.allclose(h[0].data, h[1].data)


def _sip_cutout(path):
    """An example SDSS galaxy whose WCS is a corner of a large frame with SIP distortion
    (CRPIX far outside the cutout, as ``Cutout2D`` writes it): 6 pixels of distortion there."""
    with fits.open(sorted((EX / "sdss").glob("*.fits"))[0]) as h:
        data, src = h[0].data, h[0].header
    s = 0.396 / 3600
    header = fits.Header({k: src[k] for k in ("BUNIT", "SURVEY", "BANDS") if k in src})
    header.update({"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP", "CRVAL1": 150.2, "CRVAL2": 1.8,
                   "CRPIX1": -1000.0, "CRPIX2": -1000.0, "CD1_1": -s, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": s,
                   "A_ORDER": 2, "B_ORDER": 2, "A_2_0": 2e-6, "A_0_2": 1e-6, "A_1_1": 1e-6,
                   "B_2_0": 1e-6, "B_0_2": 2e-6, "B_1_1": 1e-6})
    fits.PrimaryHDU(data, header).writeto(path)
    return data, WCS(header, naxis=2)


def _centroid_sky(image, wcs):
    y, x = np.indices(image.shape)
    w = np.clip(image - np.median(image), 0, None) * (np.hypot(y - image.shape[0] / 2, x - image.shape[1] / 2) < 12 * image.shape[0] / 64)
    return wcs.all_pix2world([[(w * x).sum() / w.sum(), (w * y).sum() / w.sum()]], 0)[0]


@pytest.mark.parametrize("model", ["physics", "default"])
def test_sip_distortion_is_kept_on_the_output_grid(model, tmp_path):
    """Both translators carry SIP over, rescaled: the galaxy stays where the input's WCS puts it
    (the physics dropped SIP: 2.4" off)."""
    (tmp_path / "in").mkdir()
    data, in_wcs = _sip_cutout(tmp_path / "in" / "sip.fits")
    report = translate([tmp_path / "in"], "cfht", model_dir=None if model == "default" else "physics",
                       out_dir=tmp_path / "out", noise=False)
    assert report.translated == 1
    with fits.open(report.outputs[0]) as h:
        out, header = h[0].data, h[0].header
    out_wcs = WCS(header, naxis=2)
    assert out_wcs.sip is not None and header["CTYPE1"] == "RA---TAN-SIP"
    sky_in, sky_out = _centroid_sky(data[2], in_wcs), _centroid_sky(out[2], out_wcs)
    offset = np.hypot((sky_out[0] - sky_in[0]) * np.cos(np.radians(sky_in[1])), sky_out[1] - sky_in[1]) * 3600
    assert offset < 0.1  # arcsec
