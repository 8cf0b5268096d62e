"""s2s prepare: cross-match, split, model space, regridding, bad cutouts, the dataset layout."""

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from survey2survey.data.crossmatch import crossmatch, read_catalog
from survey2survey.data.loader import open_dataset, source_path, source_paths
from survey2survey.data.prepare import prepare_dataset
from survey2survey.data.rows import truncate_npy as _truncate_npy
from survey2survey.data.regrid import regrid, regrid_to_survey
from survey2survey.data.simulate import SimulationConfig, object_id, simulate_survey_pair
from survey2survey.errors import UsageError
from survey2survey.fits_io import make_wcs, read_cutout, write_cutout
from survey2survey.surveys import get_survey, to_model_space, unstretch

N_PAIRS, N_A, N_B = 8, 2, 3


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "sim"
    simulate_survey_pair(SimulationConfig(n_paired=N_PAIRS, n_unpaired_a=N_A, n_unpaired_b=N_B, seed=1), out,
                         workers=1)
    return out


@pytest.fixture(scope="module")
def dataset(sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "dataset"
    result = prepare_dataset([sim / "sdss"], [sim / "cfht"], out, regrid=True, workers=1)
    return out, result


def _manifest(root):
    with open(root / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _ids(root, split, domain):
    rows = [r for r in _manifest(root) if r["split"] == split and r["domain"] == domain]
    return [r["id"] for r in sorted(rows, key=lambda r: int(r["index"]))]


# --- cross-match -------------------------------------------------------------------------------


def test_crossmatch_finds_exactly_the_planted_pairs():
    rng = np.random.default_rng(3)
    n = 40
    # a sparse field: unrelated objects are >= 30" apart
    ra_a = 150.0 + np.arange(n) * 30 / 3600.0
    dec_a = np.full(n, 2.0) + rng.uniform(-5, 5, n) / 3600.0
    planted = np.arange(0, 30)  # a[0..29] have a partner in b within 0.9"
    offsets = rng.uniform(0.0, 0.9, len(planted))
    angle = rng.uniform(0, 2 * np.pi, len(planted))
    ra_b = list(ra_a[planted] + offsets * np.cos(angle) / 3600.0 / np.cos(np.radians(2.0)))
    dec_b = list(dec_a[planted] + offsets * np.sin(angle) / 3600.0)
    # near miss: 1.05" north of a[30]; just inside: 0.98" south of a[31]
    ra_b += [ra_a[30], ra_a[31]]
    dec_b += [dec_a[30] + 1.05 / 3600.0, dec_a[31] - 0.98 / 3600.0]
    # a second candidate for a[0], farther than its partner: stays unpaired
    ra_b.append(ra_a[0])
    dec_b.append(dec_a[0] + 0.95 / 3600.0)
    # unrelated b objects far from everything
    ra_b += list(151.0 + np.arange(5) * 30 / 3600.0)
    dec_b += [2.0] * 5
    ra_b, dec_b = np.array(ra_b), np.array(dec_b)
    # a duplicate in a: a second a object within 1" of b[5] but farther from it than a[5]
    ra_a = np.append(ra_a, ra_b[5])
    dec_a = np.append(dec_a, dec_b[5] + (offsets[5] + 0.05) / 3600.0)
    m = crossmatch(ra_a, dec_a, ra_b, dec_b, radius=1.0)
    expected = set(zip(planted.tolist(), range(len(planted)))) | {(31, 31)}
    if offsets[0] > 0.95 - 1e-9:  # pragma: no cover - the seed puts the partner closer
        pytest.fail("test set-up: planted partner of a[0] should be the nearer one")
    assert set(zip(m.index_a.tolist(), m.index_b.tolist())) == expected
    assert np.all(m.separation <= 1.0)
    assert 30 not in m.index_a  # the near miss at 1.05"
    assert n not in m.index_a  # the duplicate: b[5] is a[5]'s
    # a larger radius catches the near miss
    m2 = crossmatch(ra_a, dec_a, ra_b, dec_b, radius=1.1)
    assert (30, 30) in set(zip(m2.index_a.tolist(), m2.index_b.tolist()))
    empty = crossmatch(ra_a, dec_a, [], [], radius=1.0)
    assert len(empty) == 0
    with pytest.raises(UsageError):
        crossmatch(ra_a, dec_a, ra_b, dec_b, radius=0)


def test_read_catalog_formats_and_errors(tmp_path):
    Table({"ObjID": [1, 2], "RAJ2000": [10.0, 370.5], "DEJ2000": [-5.0, 5.0]}).write(tmp_path / "c.csv")
    assert read_catalog(tmp_path / "c.csv") == {"1": (10.0, -5.0), "2": (10.5, 5.0)}  # RA wrapped
    t = Table({"name": ["x"], "ra": [1.0], "dec": [2.0]})
    t["ra"].unit = "arcmin"
    t.write(tmp_path / "c.ecsv")
    assert read_catalog(tmp_path / "c.ecsv")["x"] == pytest.approx((1 / 60, 2.0))
    Table({"id": ["p", "q"], "ra": [1.0, 2.0], "dec": [0.0, 0.0]}).write(tmp_path / "c.fits")
    assert set(read_catalog(tmp_path / "c.fits")) == {"p", "q"}
    Table({"id": ["p"], "ra": [1.0]}).write(tmp_path / "nodec.csv")
    with pytest.raises(UsageError, match="nodec.csv: no dec column"):
        read_catalog(tmp_path / "nodec.csv")
    Table({"id": ["p", "p"], "ra": [1.0, 2.0], "dec": [0.0, 0.0]}).write(tmp_path / "dup.csv")
    with pytest.raises(UsageError, match="'p' appears more than once"):
        read_catalog(tmp_path / "dup.csv")
    Table({"id": ["p"], "ra": [1.0], "dec": [95.0]}).write(tmp_path / "bad.csv")
    with pytest.raises(UsageError, match="row 1 has an invalid position"):
        read_catalog(tmp_path / "bad.csv")
    with pytest.raises(UsageError, match="catalog not found"):
        read_catalog(tmp_path / "missing.csv")


# --- regridding --------------------------------------------------------------------------------


def test_regrid_conserves_flux_to_one_percent():
    import galsim

    cfht, sdss = get_survey("cfht"), get_survey("sdss")
    gal = galsim.Convolve(galsim.Exponential(half_light_radius=1.5).shear(q=0.5, beta=0.4 * galsim.radians),
                          galsim.Kolmogorov(fwhm=0.7))
    planes = [gal.shift(dx, 0.3).drawImage(nx=136, ny=136, scale=cfht.pixel_scale).array for dx in (-1, 0, 1.5)]
    cube = np.stack(planes) * np.array([1.0, 20.0, 300.0])[:, None, None]  # (3, 136, 136)
    wcs_in = make_wcs(34.5, -7.0, cfht.pixel_scale, (136, 136))
    out = regrid_to_survey(cube.astype(np.float32), cfht, sdss, wcs=wcs_in)
    assert out.shape == (3, 64, 64) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=(1, 2)), cube.sum(axis=(1, 2)), rtol=0.01)
    # the galaxy stays where it was on the sky: shifted 1.5" west -> ~3.8 SDSS pixels
    y, x = np.unravel_index(np.argmax(out[2]), out[2].shape)
    assert x == pytest.approx(31.5 + 1.5 / sdss.pixel_scale, abs=1.0) and y == pytest.approx(31.5 + 0.3 / 0.396, abs=1)
    # a 2-D image and an offset output grid work too
    wcs_out = make_wcs(34.5 + 2 / 3600, -7.0, 0.396, (64, 64))
    flat = regrid(cube[1], wcs_in, wcs_out, (64, 64))
    assert flat.shape == (64, 64) and flat.sum() == pytest.approx(cube[1].sum(), rel=0.01)


# --- the dataset directory ------------------------------------------------------------------------


def test_dataset_layout_counts_and_contract(dataset):
    root, result = dataset
    info = json.loads((root / "dataset.json").read_text())
    assert info["format"] == "s2s-dataset/2" and info["transform"] == "lin2021-stretch"
    assert info["surveys"]["a"]["name"] == "sdss" and info["bands"]["b"] == list("ugriz")
    c = info["counts"]
    assert (c["train"] + c["test"], c["unpaired_a"], c["unpaired_b"]) == (N_PAIRS, N_A, N_B)
    assert c["test"] == N_PAIRS // 2 and c["skipped_a"] == c["skipped_b"] == 0
    assert info["regridded"] is True and len(info["fingerprint"]) == 64
    expected = {"unpaired_a": (N_A, 5, 64, 64), "unpaired_b": (N_B, 5, 136, 136), "train_a": (4, 5, 64, 64),
                "train_b": (4, 5, 136, 136), "test_a": (4, 5, 64, 64), "test_b": (4, 5, 136, 136),
                "unpaired_b_on_a": (N_B, 5, 64, 64), "train_b_on_a": (4, 5, 64, 64), "test_b_on_a": (4, 5, 64, 64)}
    assert {k: tuple(v["shape"]) for k, v in info["arrays"].items()} == expected
    for name, shape in expected.items():
        arr = np.load(root / f"{name}.npy", mmap_mode="r")
        assert isinstance(arr, np.memmap) and arr.shape == shape and arr.dtype == np.float32
    manifest = _manifest(root)
    assert list(manifest[0]) == ["id", "ra", "dec", "survey", "domain", "split", "index", "source_file"]
    assert len(manifest) == 2 * N_PAIRS + N_A + N_B
    # pairs are aligned: row k of train_a and train_b is the same galaxy
    assert _ids(root, "train", "a") == _ids(root, "train", "b")
    assert _ids(root, "test", "a") == _ids(root, "test", "b")
    assert sorted(_ids(root, "unpaired", "a")) == [object_id(i) for i in range(N_PAIRS, N_PAIRS + N_A)]
    assert sorted(_ids(root, "unpaired", "b")) == [object_id(i) for i in range(N_PAIRS + N_A, N_PAIRS + N_A + N_B)]
    assert (root / "report.csv").read_text().strip() == "file,reason"
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]
    from survey2survey.data.loader import open_dataset

    opened = open_dataset(root)
    assert opened.regridded and opened.fingerprint == info["fingerprint"]


def test_flux_factor_and_stretch_applied_exactly_once(dataset, sim):
    root, _ = dataset
    for row in _manifest(root):
        arr = np.load(root / f"{row['split']}_{row['domain']}.npy", mmap_mode="r")
        stored = np.asarray(arr[int(row["index"])])
        native = read_cutout(source_path(root, row), row["survey"]).data
        np.testing.assert_array_equal(stored, to_model_space(native, row["survey"]))
        back = unstretch(stored.astype(np.float64)) / get_survey(row["survey"]).flux_factor
        np.testing.assert_allclose(back, native, rtol=1e-5, atol=1e-6 * np.abs(native).max())


def test_regridded_copy_conserves_flux(dataset):
    root, _ = dataset
    cfht = get_survey("cfht")
    rows = [r for r in _manifest(root) if r["domain"] == "b"]
    for row in rows:
        on_a = np.load(root / f"{row['split']}_b_on_a.npy", mmap_mode="r")[int(row["index"])]
        flux_on_a = unstretch(on_a.astype(np.float64)).sum(axis=(1, 2))  # nanomaggies
        native = read_cutout(source_path(root, row), "cfht").data.astype(np.float64)
        flux = native.sum(axis=(1, 2)) * cfht.flux_factor
        # noisy cutouts: compare with the flux scale of the image, not just its (noisy) sum
        scale = np.abs(native).sum(axis=(1, 2)) * cfht.flux_factor
        assert np.all(np.abs(flux_on_a - flux) < 0.01 * scale), row["id"]


# --- where the files lie: source_file and the fingerprint -----------------------------------------


def _recomputed_fingerprint(root):
    """The fingerprint as documented, recomputed from the files of a dataset directory."""
    info = json.loads((root / "dataset.json").read_text())
    h = hashlib.sha256(info["format"].encode())
    for name in sorted(info["arrays"]):
        arr = np.load(root / info["arrays"][name]["file"], mmap_mode="r")
        h.update(f"{name}{list(arr.shape)}".encode())
        for row in arr:
            h.update(hashlib.sha256(np.ascontiguousarray(row).tobytes()).digest())
    with open(root / "manifest.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][-1] == "source_file"
    text = io.StringIO(newline="")
    csv.writer(text).writerows(r[:-1] for r in rows)
    h.update(text.getvalue().encode())
    return h.hexdigest()


def test_fingerprint_is_the_data_without_source_file(dataset):
    root, result = dataset
    assert _recomputed_fingerprint(root) == result.fingerprint


def test_fingerprint_does_not_depend_on_out_or_working_directory(sim, tmp_path, monkeypatch):
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(sim.parent)  # relative inputs, dataset next to the simulation
    first = prepare_dataset(["sim/sdss"], ["sim/cfht"], "ds", regrid=True, workers=1)
    monkeypatch.chdir(tmp_path / "elsewhere" / "deeper")  # absolute inputs, another --out
    second = prepare_dataset([sim / "sdss"], [sim / "cfht"], "../other/ds2", regrid=True, workers=1)
    one, two = sim.parent / "ds", tmp_path / "elsewhere" / "other" / "ds2"
    assert (two / "dataset.json").is_file()
    assert _manifest(one) != _manifest(two)  # the source_file values differ ...
    assert first.fingerprint == second.fingerprint  # ... the data do not
    assert json.loads((one / "dataset.json").read_text())["fingerprint"] == second.fingerprint
    # the same with the other row order of a process pool, and the identical pixels of a copy
    copy = tmp_path / "copy"
    shutil.copytree(sim / "sdss", copy / "sdss")
    shutil.copytree(sim / "cfht", copy / "cfht")
    pooled = prepare_dataset([copy / "sdss"], [copy / "cfht"], copy / "ds", regrid=True, workers=2)
    assert pooled.fingerprint == first.fingerprint
    # but the data still count: another split is another dataset
    resplit = prepare_dataset([sim / "sdss"], [sim / "cfht"], tmp_path / "resplit", regrid=True, workers=1, seed=3)
    assert resplit.fingerprint != first.fingerprint


def test_source_file_resolves_from_the_dataset_from_any_directory(sim, tmp_path, monkeypatch):
    tree = tmp_path / "project"
    shutil.copytree(sim, tree / "sim")
    monkeypatch.chdir(tree)
    prepare_dataset(["sim/sdss"], [str(tree / "sim" / "cfht")], "sim/dataset", workers=1)
    root = tree / "sim" / "dataset"
    rows = _manifest(root)
    # under the tree that holds the dataset: relative to the dataset directory, however given
    assert {r["source_file"] for r in rows} == {f"../{r['survey']}/{r['id']}.fits" for r in rows}
    # from anywhere, through a relative dataset path too
    for cwd, ds in ((tmp_path, Path("project/sim/dataset")), (root, Path(".")), (Path("/"), root)):
        monkeypatch.chdir(cwd)
        for row in rows:
            path = source_path(ds, row)
            assert path.is_absolute() and path == tree / "sim" / row["survey"] / f"{row['id']}.fits"
            assert path.is_file()
    monkeypatch.chdir(tmp_path)
    row = next(r for r in rows if r["split"] == "train" and r["domain"] == "a")
    stored = np.load(root / "train_a.npy", mmap_mode="r")[int(row["index"])]
    np.testing.assert_array_equal(stored, to_model_space(read_cutout(source_path(open_dataset(root), row), "sdss").data,
                                                         "sdss"))
    # inputs outside that tree: absolute paths
    prepare_dataset([tree / "sim" / "sdss"], [tree / "sim" / "cfht"], tmp_path / "apart" / "ds", workers=1)
    for r in _manifest(tmp_path / "apart" / "ds"):
        assert Path(r["source_file"]) == tree / "sim" / r["survey"] / f"{r['id']}.fits"


def test_moving_the_simulation_keeps_its_sources(sim, tmp_path, monkeypatch):
    from survey2survey.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "--simulate", "2", "--unpaired-a", "1", "--unpaired-b", "1", "--out", "runs/sim",
                 "-j", "1", "-q"]) == 0
    before = json.loads((tmp_path / "runs" / "sim" / "dataset" / "dataset.json").read_text())["fingerprint"]
    (tmp_path / "archive").mkdir()
    shutil.move(tmp_path / "runs" / "sim", tmp_path / "archive" / "moved")
    shutil.rmtree(tmp_path / "runs")
    moved = tmp_path / "archive" / "moved"
    monkeypatch.chdir(sim)  # any other directory
    rows = _manifest(moved / "dataset")
    assert len(rows) == 2 * 2 + 1 + 1
    for row in rows:
        (path,) = source_paths(moved / "dataset", row)
        assert path == moved / row["survey"] / f"{row['id']}.fits" and path.is_file()
    assert open_dataset(moved / "dataset").fingerprint == before == _recomputed_fingerprint(moved / "dataset")


def test_source_paths_values(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    root.mkdir()
    monkeypatch.chdir(tmp_path)
    assert source_paths(root, "../in/x_g.fits;../in/x_r.fits") == [tmp_path / "in" / "x_g.fits",
                                                                   tmp_path / "in" / "x_r.fits"]
    assert source_path("ds", {"source_file": "/data/x.fits", "id": "x"}) == Path("/data/x.fits")
    assert source_path(root, "a/b/../c.fits") == root / "a" / "c.fits"
    # a dataset of format 1: relative to the directory prepare ran from (here: the current one)
    (root / "dataset.json").write_text(json.dumps({"format": "s2s-dataset/1"}))
    assert source_path(root, "sim/sdss/x.fits") == tmp_path / "sim" / "sdss" / "x.fits"
    assert source_path(root, "sim/x.fits", "s2s-dataset/2") == root / "sim" / "x.fits"


def test_split_is_seeded_and_reproducible(sim, tmp_path):
    def test_ids(**kw):
        out = tmp_path / f"d{len(list(tmp_path.iterdir()))}"
        prepare_dataset([sim / "sdss"], [sim / "cfht"], out, workers=1, **kw)
        return _ids(out, "test", "a")

    first = test_ids(seed=4, n_test=3)
    assert len(first) == 3 and test_ids(seed=4, n_test=3) == first
    assert test_ids(seed=5, n_test=3) != first  # another seed, another split (fixed inputs)
    assert len(test_ids(test_fraction=0.25)) == 2
    with pytest.raises(UsageError, match="only 8 pair"):
        test_ids(n_test=9)
    with pytest.raises(UsageError, match="not both"):
        test_ids(n_test=2, test_fraction=0.5)


def test_process_pool_gives_the_same_dataset(sim, dataset, tmp_path):
    _, serial = dataset
    pooled = prepare_dataset([sim / "sdss"], [sim / "cfht"], tmp_path / "pooled", regrid=True, workers=2)
    assert pooled.fingerprint == serial.fingerprint


def test_catalog_positions_and_a_near_miss(sim, tmp_path):
    catalog = Table.read(sim / "catalog.ecsv")
    a_cat = catalog[catalog["surveys"] != "cfht"]
    b_cat = catalog[catalog["surveys"] != "sdss"]
    b_cat["dec"][b_cat["id"] == object_id(0)] += 1.05 / 3600  # just outside 1"
    b_cat["dec"][b_cat["id"] == object_id(1)] += 0.95 / 3600  # just inside
    b_cat = b_cat[b_cat["id"] != object_id(2)]  # one cutout without a position
    a_cat.write(tmp_path / "a.ecsv")
    b_cat.write(tmp_path / "b.csv")
    result = prepare_dataset([sim / "sdss"], [sim / "cfht"], tmp_path / "ds", a_catalog=tmp_path / "a.ecsv",
                             b_catalog=tmp_path / "b.csv", workers=1)
    paired = set(_ids(tmp_path / "ds", "train", "a") + _ids(tmp_path / "ds", "test", "a"))
    assert paired == {object_id(i) for i in range(3, N_PAIRS)} | {object_id(1)}
    assert object_id(0) in _ids(tmp_path / "ds", "unpaired", "a")
    assert result.counts["skipped_b"] == 1
    assert "not in catalog" in result.skipped[0][1] and result.skipped[0][0].endswith(f"{object_id(2)}.fits")


def _write_bad_inputs(src, dst):
    """Copy the SDSS cutouts and add one broken cutout of every kind; return {stem: reason}."""
    shutil.copytree(src, dst)
    good = fits.getdata(dst / f"{object_id(0)}.fits")
    header = fits.getheader(dst / f"{object_id(0)}.fits")
    (dst / "notfits.fits").write_text("this is not FITS\n")
    raw = (dst / f"{object_id(1)}.fits").read_bytes()
    (dst / "truncated.fits").write_bytes(raw[: len(raw) // 2])
    write_cutout(dst / "small.fits", good[:, :32, :32], "sdss", wcs=make_wcs(1, 1, 0.396, (32, 32)))
    four = fits.PrimaryHDU(good[:4], header=header)
    four.header["BANDS"] = "u,g,r,i"
    four.writeto(dst / "fourbands.fits")
    nan = good.copy()
    nan[3, :8, :] = np.nan  # 12.5 % of band i
    write_cutout(dst / "nans.fits", nan, "sdss", wcs=make_wcs(2, 1, 0.396, (64, 64)))
    few = good.copy()
    few[1, 0, :10] = np.nan  # 0.2 %: filled, kept
    write_cutout(dst / "fewnans.fits", few, "sdss", wcs=make_wcs(3, 1, 0.396, (64, 64)))
    empty = good.copy()
    empty[0] = 0.0
    write_cutout(dst / "emptyband.fits", empty, "sdss", wcs=make_wcs(4, 1, 0.396, (64, 64)))
    return {"notfits": "not a FITS file", "truncated": "truncated", "small": "wrong size",
            "fourbands": "missing band(s) z", "nans": "NaN", "emptyband": "all zero"}


def test_bad_cutouts_are_skipped_and_reported(sim, tmp_path):
    expected = _write_bad_inputs(sim / "sdss", tmp_path / "in")
    result = prepare_dataset([tmp_path / "in"], [sim / "cfht"], tmp_path / "ds", workers=1)
    reasons = {f.split("/")[-1].split(".")[0]: r for f, r in result.skipped}
    assert set(reasons) == set(expected)
    for stem, text in expected.items():
        assert text in reasons[stem], (stem, reasons[stem])
    with open(tmp_path / "ds" / "report.csv", newline="") as fh:
        report = list(csv.DictReader(fh))
    assert len(report) == len(expected) and {r["reason"] for r in report} == set(reasons.values())
    # the run went on: every good cutout is in, the 0.2 %-NaN one too (filled)
    assert result.counts["train"] + result.counts["test"] == N_PAIRS
    assert result.counts["unpaired_a"] == N_A + 1
    assert any("NaN/inf pixels, set to 0" in w for w in result.warnings)
    assert any("skipped 6 input(s)" in line for line in result.summary_lines())


def test_cli_prepare_exit_codes(sim, tmp_path):
    from survey2survey.cli import main

    ok = main(["prepare", "--a", str(sim / "sdss"), "--b", str(sim / "cfht"), "--out", str(tmp_path / "d1"),
               "-j", "1", "-q", "--n-test", "2"])
    assert ok == 0 and json.loads((tmp_path / "d1" / "dataset.json").read_text())["counts"]["test"] == 2
    again = main(["prepare", "--a", str(sim / "sdss"), "--b", str(sim / "cfht"), "--out", str(tmp_path / "d1"),
                  "-q"])
    assert again == 2  # exists, no --overwrite
    _write_bad_inputs(sim / "sdss", tmp_path / "in")
    partial = main(["prepare", "--a", str(tmp_path / "in"), "--b", str(sim / "cfht"), "--out",
                    str(tmp_path / "d2"), "-j", "1", "-q"])
    assert partial == 1 and (tmp_path / "d2" / "dataset.json").is_file()
    assert main(["prepare", "--out", str(tmp_path / "d3"), "-q"]) == 2  # no inputs
    simulated = main(["prepare", "--simulate", "2", "--unpaired-a", "1", "--unpaired-b", "0", "--out",
                      str(tmp_path / "simdir"), "-j", "1", "-q", "--regrid"])
    assert simulated == 0
    info = json.loads((tmp_path / "simdir" / "dataset" / "dataset.json").read_text())
    assert info["counts"]["train"] + info["counts"]["test"] == 2 and info["counts"]["unpaired_a"] == 1


def test_prepare_library_call_behind_the_command(sim, tmp_path):
    from survey2survey.data.build import prepare

    said: list[str] = []
    real = prepare(tmp_path / "real", [str(sim / "sdss")], [str(sim / "cfht")], n_test=2, workers=1, echo=said.append)
    assert real.exit_code == 0 and real.simulation is None and real.dataset.counts["test"] == 2 and said == []
    for kwargs, message in (
        (dict(a=[str(sim / "sdss")]), "give the cutouts of both surveys"),
        (dict(a=[str(sim / "sdss")], b=[str(sim / "cfht")], fits_only=True), "go with --simulate"),
        (dict(simulate=2, a=[str(sim / "sdss")]), "leave out --a and --b"),
        (dict(simulate=2, catalog="cat.csv"), "leave out --catalog"),
        (dict(simulate=2, n_test=1, test_fraction=0.5), "not both"),  # refused before simulating
    ):
        with pytest.raises(UsageError, match=message):
            prepare(tmp_path / "bad", **kwargs)
    assert not (tmp_path / "bad").exists()

    fits_only = prepare(tmp_path / "sim", simulate=2, unpaired_a=1, unpaired_b=0, fits_only=True, workers=1,
                        echo=said.append)  # fmt: skip
    assert fits_only.dataset is None and fits_only.simulation is not None and len(said) == 1
    assert not (tmp_path / "sim" / "dataset").exists()
    # the same simulation again, now with its dataset: the finished simulation is not redone
    again = prepare(tmp_path / "sim", simulate=2, unpaired_a=1, unpaired_b=0, workers=1, echo=said.append)
    assert again.simulation is None and said[-1].endswith("this simulation is already complete; building its dataset")
    assert again.dataset.out == tmp_path / "sim" / "dataset" and again.dataset.counts["unpaired_a"] == 1


def test_truncate_npy_keeps_a_loadable_prefix(tmp_path):
    data = np.arange(10 * 2 * 3, dtype=np.float32).reshape(10, 2, 3)
    for n in (10, 3, 0):
        np.save(tmp_path / "x.npy", data)
        _truncate_npy(tmp_path / "x.npy", n)
        back = np.load(tmp_path / "x.npy", mmap_mode="r")
        assert back.shape == (n, 2, 3)
        np.testing.assert_array_equal(back, data[:n])


def test_existing_output_needs_overwrite(sim, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(UsageError, match="output exists"):
        prepare_dataset([sim / "sdss"], [sim / "cfht"], out, workers=1)
    assert (out / "mine.txt").read_text() == "keep"
    prepare_dataset([sim / "sdss"], [sim / "cfht"], out, workers=1, overwrite=True)
    # --overwrite replaces only what prepare writes (issue 15, item 2): the user's file stays
    assert (out / "mine.txt").read_text() == "keep" and (out / "dataset.json").is_file()
    first = json.loads((out / "dataset.json").read_text())["fingerprint"]
    again = prepare_dataset([sim / "sdss"], [sim / "cfht"], out, workers=1, overwrite=True, n_test=1)
    assert json.loads((out / "dataset.json").read_text())["fingerprint"] == again.fingerprint != first
    assert (out / "mine.txt").read_text() == "keep"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no FITS cutouts found"):
        prepare_dataset([tmp_path / "empty"], [sim / "cfht"], tmp_path / "x", workers=1)
    assert not (tmp_path / "x").exists()


def test_cutouts_without_wcs_need_a_catalog(tmp_path):
    rng = np.random.default_rng(0)
    for name, size in (("sdss", 64), ("cfht", 136)):
        for k in range(3):
            data = rng.standard_normal((5, size, size)).astype(np.float32)
            write_cutout(tmp_path / name / f"{name}{k}.fits", data, name)  # no WCS
    Table({"id": ["sdss0", "sdss1", "sdss2", "cfht0", "cfht1", "cfht2"],
           "ra": [10.0, 10.1, 10.2, 10.0, 10.1 + 0.5 / 3600, 11.0],
           "dec": [0.0] * 6}).write(tmp_path / "cat.csv")
    result = prepare_dataset([tmp_path / "sdss"], [tmp_path / "cfht"], tmp_path / "ds", catalog=tmp_path / "cat.csv",
                             regrid=True, workers=1)
    assert (result.counts["train"] + result.counts["test"], result.counts["unpaired_a"]) == (2, 1)
    assert np.load(tmp_path / "ds" / "unpaired_b_on_a.npy").shape == (1, 5, 64, 64)
    blind = prepare_dataset([tmp_path / "sdss"], [tmp_path / "cfht"], tmp_path / "blind", workers=1)
    assert blind.counts["skipped_a"] == 3 and "no WCS" in blind.skipped[0][1]
    assert blind.warnings and "no pairs found" in blind.warnings[0]
