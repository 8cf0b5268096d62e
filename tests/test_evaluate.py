"""The evaluate library and the ``s2s evaluate`` command on small FITS sets."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from survey2survey.errors import UsageError
from survey2survey.evaluate import evaluate, match_sources, normalize_object_id
from survey2survey.fits_io import find_cutouts, make_wcs, write_cutout
from survey2survey.surveys import get_survey

SDSS = get_survey("sdss")
SIGMA = 0.05  # sky noise, nanomaggies per pixel


def _truth(rng, size=64):
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2.0
    flux, width = 10 ** rng.uniform(1.0, 2.0), rng.uniform(1.5, 3.0)
    gal = flux / (2 * np.pi * width**2) * np.exp(-(xx**2 + yy**2) / (2 * width**2))
    return np.stack([gal * f for f in (0.3, 0.7, 1.0, 1.1, 0.9)]).astype(np.float32)  # (5, H, W)


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    """12 SDSS objects: ref (noisy), truth, and predictions of three kinds."""
    root = tmp_path_factory.mktemp("sky")
    rng = np.random.default_rng(0)
    for i in range(12):
        ra, dec = 150.0 + 0.01 * i, 2.0
        wcs = make_wcs(ra, dec, SDSS.pixel_scale, (64, 64))
        truth = _truth(rng)
        ref = truth + rng.normal(0, SIGMA, truth.shape).astype(np.float32)
        noisy = truth + rng.normal(0, SIGMA, truth.shape).astype(np.float32)
        write_cutout(root / "ref" / f"obj{i:02d}.fits", ref, SDSS, wcs=wcs)
        write_cutout(root / "truth" / f"obj{i:02d}.fits", truth, SDSS, wcs=wcs)
        # what s2s translate writes: <id>.<target survey>.fits
        write_cutout(root / "same" / f"obj{i:02d}.sdss.fits", ref, SDSS, wcs=wcs)
        write_cutout(root / "noisy" / f"obj{i:02d}_sdss.fits", noisy, SDSS, wcs=wcs)
        # other names, WCS 0.3 arcsec away: matched by sky position
        near = make_wcs(ra + 0.3 / 3600 / math.cos(math.radians(dec)), dec, SDSS.pixel_scale, (64, 64))
        write_cutout(root / "renamed" / f"galaxy-{i}.fits", noisy, SDSS, wcs=near)
    return root


# --- matching -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("obj42.cfht", "obj42"),
        ("obj42_CFHT", "obj42"),
        ("obj42-sdss", "obj42"),
        ("obj42.sdss2cfht", "obj42"),
        ("obj42_sdss_to_cfht", "obj42"),
        ("obj42.megapipe", "obj42"),  # an alias of cfht
        ("obj42", "obj42"),
        ("cfht", "cfht"),  # never strips a name to nothing
        ("sdss_obj7", "sdss_obj7"),  # only suffixes
    ],
)
def test_normalize_object_id(name, expected):
    assert normalize_object_id(name) == expected


def test_match_by_id_then_position_and_radius(sky, tmp_path):
    refs = find_cutouts([sky / "ref"])
    m = match_sources(find_cutouts([sky / "same"]), refs, SDSS)
    assert m.by_id == 12 and m.by_position == 0 and not m.unmatched and not m.unused_ref
    m = match_sources(find_cutouts([sky / "renamed"]), refs, SDSS)
    assert m.by_position == 12 and not m.unmatched
    assert all(0.25 < sep < 0.35 for _, _, how, sep in m.pairs)
    assert all(p.object_id == f"galaxy-{int(r.object_id[3:])}" for p, r, _, _ in m.pairs)
    m = match_sources(find_cutouts([sky / "renamed"]), refs, SDSS, radius_arcsec=0.2)
    assert len(m.unmatched) == 12 and len(m.unused_ref) == 12


# --- the library ----------------------------------------------------------------------


def test_identical_prediction_gives_the_known_answers(sky, tmp_path):
    out = tmp_path / "report"
    ev = evaluate({"same": [sky / "same"]}, sky / "ref", out=out, plots=False)
    assert ev.exit_code == 0 and ev.survey.name == "sdss" and ev.bands == SDSS.bands
    assert ev.metrics == ["flux", "fourier", "ssim", "magnitude", "snr", "profile", "colour"]
    cols = ev.methods["same"].columns
    assert np.all(cols["flux_absdiff"] == 0) and np.all(cols["flux_absdiff_norm"] == 0)
    assert np.allclose(cols["mssim"], 1) and np.allclose(cols["s_mean"], 1, atol=1e-4)
    assert np.all(cols["profile_dev"] == 0) and np.allclose(cols["hf_amp_ratio"], 1)
    assert np.all(np.nan_to_num(cols["dmag"]) == 0)
    # the noise level was measured from the reference: the per-pixel sigma we put in
    assert np.median(cols["noise_sigma_ref"]) == pytest.approx(SIGMA, rel=0.05)
    assert "measured from the reference" in ev.noise_sigma

    report = json.loads((out / "metrics.json").read_text())
    assert report["format"] == "s2s-evaluate/1" and report["flux_unit"] == "nanomaggy"
    r = report["results"]["same"]["r"]
    assert r["ssim"]["per_image"]["mssim"]["median"] == pytest.approx(1.0)
    assert r["fourier"]["set"]["stack_distance"] == 0.0
    assert report["matching"]["same"]["matched_by_id"] == 12
    assert report["quantities"]["flux_absdiff"]["unit"] == "nanomaggy"
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 12 * 5 and rows[0]["method"] == "same" and rows[0]["matched_by"] == "id"
    assert float(rows[0]["flux_absdiff"]) == 0.0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_two_methods_with_truth_one_table_and_plots(sky, tmp_path):
    out = tmp_path / "report"
    ev = evaluate(
        {"noisy": [sky / "noisy"], "renamed": [str(sky / "renamed")]},
        [sky / "ref"], truth=[sky / "truth"], band="r", out=out,
    )
    assert ev.exit_code == 0 and ev.bands == ("r",)
    assert set(ev.metrics) >= {"photometry", "noise"} and "truth" in ev.noise_sigma
    for name in ("noisy", "renamed"):  # the same images, matched by id or by position
        m = ev.methods[name]
        assert len(m.pairs) == 12
        # an independent noise draw of the same level: sqrt(2) sigma line, sigma ratio 1
        assert np.median(m.columns["flux_absdiff_norm"]) == pytest.approx(math.sqrt(2), rel=0.03)
        assert np.median(m.columns["noise_sigma_ratio"]) == pytest.approx(1.0, rel=0.05)
    assert np.array_equal(ev.methods["noisy"].columns["mssim"], ev.methods["renamed"].columns["mssim"])
    expected = {"flux.png", "fourier_r.png", "ssim.png", "magnitude.png", "snr.png", "profile.png",
                "photometry.png", "noise.png", "metrics.json", "per_image.csv", "arrays.npz"}
    assert expected == {p.name for p in out.iterdir()}
    assert (out / "flux.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    arrays = np.load(out / "arrays.npz")
    assert arrays["noisy/fourier/stack_ref"].shape == (1, 60, 60)
    from survey2survey.evaluate import table_rows

    rows = table_rows(ev, "r")
    assert rows[0][1] == "images measured" and rows[0][4] == ["12", "12"]
    assert any(label == "MSSIM" and len(cells) == 2 for _, label, _, _, cells in rows)


def test_bad_files_are_reported_and_the_rest_measured(sky, tmp_path):
    pred = tmp_path / "pred"
    pred.mkdir()
    for p in sorted((sky / "same").iterdir())[:4]:
        (pred / p.name).write_bytes(p.read_bytes())
    (pred / "obj05.sdss.fits").write_bytes(b"SIMPLE  = garbage")  # unreadable
    write_cutout(pred / "obj06.sdss.fits", np.zeros((5, 32, 32), np.float32), SDSS)  # wrong size
    write_cutout(pred / "stray.fits", np.zeros((5, 64, 64), np.float32), SDSS)  # no ref, no WCS
    ev = evaluate([pred], sky / "ref", metrics="flux,ssim", band="g")
    assert len(ev.methods["pred"].pairs) == 4 and ev.exit_code == 1
    reasons = dict(ev.failures)
    assert any("obj05" in f for f in reasons) and any("differs from the reference" in r for r in reasons.values())
    assert [Path(p).name for _, p in ev.unmatched] == ["stray.fits"]
    # obj05 and obj06 matched their references by name, then failed (reported above)
    assert len(ev.unused_ref["pred"]) == 12 - 6


def test_nothing_measured_is_said_and_no_plot_is_attempted(sky, tmp_path):
    for i in range(3):  # every prediction of the wrong size
        write_cutout(tmp_path / "pred" / f"obj{i:02d}.fits", np.zeros((5, 32, 32), np.float32), SDSS)
    ev = evaluate([tmp_path / "pred"], sky / "ref", out=tmp_path / "report")
    assert ev.exit_code == 1 and len(ev.failures) == 3 and not ev.methods["pred"].pairs
    assert any(w.startswith("nothing measured") for w in ev.warnings)
    assert not [w for w in ev.warnings if "plot not drawn" in w]
    assert (tmp_path / "report" / "metrics.json").exists()


def test_a_users_png_named_as_a_plot_is_never_replaced_without_overwrite(sky, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "flux.png").write_bytes(b"mine")
    for name in ("notes.png", "flux_calib.png", "noise_model.png"):  # no plot's name: not the report's business
        (out / name).write_bytes(b"also mine")
    with pytest.raises(UsageError, match="flux.png, which the report's plots would replace"):
        evaluate([sky / "noisy"], sky / "ref", out=out, metrics="flux", band="r")
    assert (out / "flux.png").read_bytes() == b"mine" and not (out / "metrics.json").exists()
    # a report that would not draw flux.png (another metric, or no plots) is no threat to it
    for kwargs in ({"metrics": "ssim"}, {"metrics": "flux", "plots": False}):
        other = tmp_path / f"other{len(kwargs)}{kwargs['metrics']}"
        other.mkdir()
        (other / "flux.png").write_bytes(b"mine")
        assert evaluate([sky / "noisy"], sky / "ref", out=other, band="r", **kwargs).exit_code == 0
        assert (other / "flux.png").read_bytes() == b"mine"
    ev = evaluate([sky / "noisy"], sky / "ref", out=out, metrics="flux", band="r", overwrite=True)
    assert ev.exit_code == 0 and (out / "flux.png").read_bytes()[:4] == b"\x89PNG"
    assert all((out / n).read_bytes() == b"also mine" for n in ("notes.png", "flux_calib.png", "noise_model.png"))
    # s2s's own plot (its earlier report gone) is no user's file
    (out / "metrics.json").unlink()
    (out / "per_image.csv").unlink()
    (out / "arrays.npz").unlink()
    assert evaluate([sky / "noisy"], sky / "ref", out=out, metrics="flux", band="r").exit_code == 0


@pytest.mark.parametrize("existing", [False, True])
def test_an_interrupted_report_leaves_nothing_that_blocks_the_same_command(sky, tmp_path, monkeypatch, existing):
    """Ctrl-C (or SIGTERM, or a full disk) while the report is written: the files it had added go
    again (a directory it created too), the user's stay, and the same command then runs."""
    from survey2survey.evaluation import report as report_module

    out = tmp_path / "report"
    if existing:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    real = report_module.draw_plots

    def interrupted(evaluation, directory):
        real(evaluation, directory)  # the plots are on disk, metrics.json is not yet
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module, "draw_plots", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate([sky / "noisy"], sky / "ref", out=out, band="r")
    if existing:
        assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    else:
        assert not out.exists()
    monkeypatch.setattr(report_module, "draw_plots", real)
    assert evaluate([sky / "noisy"], sky / "ref", out=out, band="r").exit_code == 0
    assert (out / "metrics.json").is_file() and (out / "flux.png").is_file()


def test_a_truth_off_its_references_grid_is_refused(sky, tmp_path):
    """A noise-free truth must lie on its reference's pixels: one 0.4 px off (its WCS says so) is
    refused per file, not measured against the wrong pixels."""
    from survey2survey.fits_io import read_cutout

    for i in range(3):
        cut = read_cutout(sky / "truth" / f"obj{i:02d}.fits", SDSS)
        wcs = cut.wcs.deepcopy()
        if i == 0:
            wcs.wcs.crpix = [wcs.wcs.crpix[0] + 0.4, wcs.wcs.crpix[1] - 0.3]
            wcs.wcs.set()
        write_cutout(tmp_path / "truth" / f"obj{i:02d}.fits", cut.data, SDSS, wcs=wcs)
    refs = [sky / "ref" / f"obj{i:02d}.fits" for i in range(3)]
    ev = evaluate([sky / "noisy"], refs, truth=[tmp_path / "truth"], metrics="noise", band="r")
    assert [Path(f).name for f, _ in ev.failures] == ["obj00.fits"]
    assert "0.5 px from the reference's: a truth must lie on its reference's pixels" in ev.failures[0][1]
    assert [len(m.pairs) for m in ev.methods.values()] == [2]


def test_bad_pixels_are_left_out_of_every_image(sky, tmp_path):
    ref = find_cutouts([sky / "ref"])[0]
    from survey2survey.fits_io import read_cutout

    data = read_cutout(ref, SDSS).data.copy()
    data[2, 10, 10:20] = np.nan  # 10 NaN pixels in r: filled with 0 and masked by the reader
    write_cutout(tmp_path / "pred" / "obj00.fits", data, SDSS)
    ev = evaluate([tmp_path / "pred"], [ref.path], metrics="flux")
    m = ev.methods["pred"]
    assert m.n_masked[0].tolist() == [0, 0, 10, 0, 0]
    assert np.all(m.columns["flux_absdiff"] == 0)  # zeroed in both: no spurious difference


def _gaussians(size, cy, cx, width=2.5, flux=3000.0):
    yy, xx = np.mgrid[:size, :size]
    gal = flux / (2 * np.pi * width**2) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width**2))
    return np.stack([gal * f for f in (0.3, 0.7, 1.0, 1.1, 0.9)]).astype(np.float32)


@pytest.mark.parametrize("d", [0.5, 0.3, -0.25, 1.5])
def test_shift_keeps_the_noise_power_at_every_frequency(d):
    """White noise shifted by a fraction of a pixel keeps its power at every frequency, the
    Nyquist row and column included (they were scaled by |cos(pi d)|: nothing left at 0.5 px)."""
    from survey2survey.evaluation.align import shift_image

    noise = np.random.default_rng(7).normal(0, 1, (200, 64, 64))
    moved = shift_image(noise, d, d)
    power = np.mean(np.abs(np.fft.fft2(moved[:, 8:-8, 8:-8])) ** 2, axis=0)  # away from the mirrored edges
    before = np.mean(np.abs(np.fft.fft2(noise[:, 8:-8, 8:-8])) ** 2, axis=0)
    nyquist = power[24, :].mean() / before[24, :].mean(), power[:, 24].mean() / before[:, 24].mean()
    assert nyquist == pytest.approx((1.0, 1.0), abs=0.05)
    assert power.mean() / before.mean() == pytest.approx(1.0, abs=0.03)
    # and a smooth source still lands where it should
    src = _gaussians(64, 31.5, 31.5)[2]
    np.testing.assert_allclose(shift_image(src, d, d), _gaussians(64, 31.5 - d, 31.5 - d)[2], atol=1e-3 * src.max())


def test_align_shifts_predictions_onto_the_references_grid(tmp_path):
    """A prediction cut 0.3, -0.4 px off the reference's grid (its WCS says so) of the same bright
    source: pixel by pixel it is far from the sqrt(2) line of a perfect translation, and a warning
    says why; aligned it is on the line, its noise untouched; a rotated grid is refused."""
    rng = np.random.default_rng(3)
    c, (dy, dx) = 31.5, (0.3, -0.4)
    for i in range(6):
        ra, dec = 150.0 + 0.01 * i, 2.0
        wcs = make_wcs(ra, dec, SDSS.pixel_scale, (64, 64))
        ref = _gaussians(64, c, c) + rng.normal(0, SIGMA, (5, 64, 64)).astype(np.float32)
        write_cutout(tmp_path / "ref" / f"obj{i}.fits", ref, SDSS, wcs=wcs)
        off = make_wcs(ra, dec, SDSS.pixel_scale, (64, 64))
        off.wcs.crpix = [off.wcs.crpix[0] + dx, off.wcs.crpix[1] + dy]  # the sky's centre at pixel c + (dy, dx)
        off.wcs.set()
        pred = _gaussians(64, c + dy, c + dx) + rng.normal(0, SIGMA, (5, 64, 64)).astype(np.float32)
        write_cutout(tmp_path / "pred" / f"obj{i}.fits", pred, SDSS, wcs=off)
    plain = evaluate([tmp_path / "pred"], tmp_path / "ref", metrics="flux", band="r")
    aligned = evaluate([tmp_path / "pred"], tmp_path / "ref", metrics="flux", band="r", align=True)
    assert np.median(plain.methods["pred"].columns["flux_absdiff_norm"]) > 3
    assert np.median(aligned.methods["pred"].columns["flux_absdiff_norm"]) == pytest.approx(math.sqrt(2), rel=0.05)
    assert plain.parameters["grid_offset_px_median"] == pytest.approx(0.5, abs=0.01)
    assert any("--align" in w for w in plain.warnings) and not aligned.warnings
    assert aligned.parameters["align"] and aligned.exit_code == 0

    # a prediction with a row of bad pixels through the galaxy: its mask moves with it
    for i in range(6):
        path = tmp_path / "pred" / f"obj{i}.fits"
        from survey2survey.fits_io import read_cutout

        cut = read_cutout(path, SDSS)
        data = cut.data.copy()
        data[:, 33, :] = np.nan
        write_cutout(tmp_path / "holed" / f"obj{i}.fits", data, SDSS, wcs=cut.wcs)
    holed = evaluate([tmp_path / "holed"], tmp_path / "ref", metrics="flux", band="r", align=True)
    # the sqrt(2) line less the masked pixels' share (zero in both; the spline shift smooths a little)
    expected = math.sqrt(2) * (1 - 6 * 64 / 64**2)
    assert np.median(holed.methods["pred"].columns["flux_absdiff_norm"]) == pytest.approx(expected, rel=0.05)
    assert set(holed.methods["pred"].n_masked[:, 0]) == {6 * 64}  # the row, where it lands, grown by 2 px

    # no WCS on one side: said, not aligned
    for i in range(6):
        write_cutout(tmp_path / "bare" / f"obj{i}.fits", read_cutout(tmp_path / "pred" / f"obj{i}.fits", SDSS).data, SDSS)
    bare = evaluate([tmp_path / "bare"], tmp_path / "ref", metrics="flux", band="r", align=True)
    assert any("6 pair(s) not aligned" in w for w in bare.warnings) and bare.parameters["pairs_without_wcs"] == 6

    rotated = make_wcs(150.0, 2.0, SDSS.pixel_scale, (64, 64))
    rotated.wcs.cd = np.array([[0.0, SDSS.pixel_scale / 3600], [SDSS.pixel_scale / 3600, 0.0]])
    rotated.wcs.set()
    write_cutout(tmp_path / "pred" / "obj0.fits", _gaussians(64, c, c), SDSS, wcs=rotated, overwrite=True)
    ev = evaluate([tmp_path / "pred"], tmp_path / "ref", metrics="flux", band="r", align=True)
    assert ev.exit_code == 1 and len(ev.methods["pred"].pairs) == 5
    assert [(Path(f).name, "rotated or scaled" in r) for f, r in ev.failures] == [("obj0.fits", True)]
    plain = evaluate([tmp_path / "pred"], tmp_path / "ref", metrics="flux", band="r")  # measured, and said
    assert plain.exit_code == 0 and any("1 prediction(s) lie on pixel grids that are more than shifted" in w
                                        for w in plain.warnings)

    # a grid 10 px away (another cutout of the sky), and one whose WCS cannot place the reference's
    # centre (its projection centred on the other side of the sky): refused per file with --align,
    # counted in the warning without, and no offset of theirs in the report
    far = make_wcs(150.0, 2.0, SDSS.pixel_scale, (64, 64))
    far.wcs.crpix = [far.wcs.crpix[0] + 10, far.wcs.crpix[1]]
    far.wcs.set()
    write_cutout(tmp_path / "pred" / "obj0.fits", _gaussians(64, c, c), SDSS, wcs=far, overwrite=True)
    opposite = make_wcs(330.0, -2.0, SDSS.pixel_scale, (64, 64))
    write_cutout(tmp_path / "pred" / "obj1.fits", _gaussians(64, c, c), SDSS, wcs=opposite, overwrite=True)
    ev = evaluate([tmp_path / "pred"], tmp_path / "ref", metrics="flux", band="r", align=True)
    reasons = dict((Path(f).name, r) for f, r in ev.failures)
    assert ev.exit_code == 1 and len(ev.methods["pred"].pairs) == 4
    assert "10 px from the reference's" in reasons["obj0.fits"] and "cannot place" in reasons["obj1.fits"]
    plain = evaluate([tmp_path / "pred"], tmp_path / "ref", metrics="flux", band="r")
    assert plain.exit_code == 0 and any("2 prediction(s) lie on pixel grids" in w for w in plain.warnings)
    assert plain.parameters["grid_offset_px_max"] < 1


def test_the_offset_limit_is_5_percent_of_the_side_and_at_least_2_px():
    from survey2survey.evaluation.align import grid_offset

    for size, offset, ok in ((20, 1.5, True), (20, 2.5, False), (64, 3.0, True), (64, 3.5, False)):
        ref = make_wcs(150.0, 2.0, SDSS.pixel_scale, (size, size))
        pred = make_wcs(150.0, 2.0, SDSS.pixel_scale, (size, size))
        pred.wcs.crpix = [pred.wcs.crpix[0] + offset, pred.wcs.crpix[1]]
        pred.wcs.set()
        if ok:
            assert grid_offset(pred, ref, (size, size))[1] == pytest.approx(offset)
        else:
            with pytest.raises(ValueError, match="not a cutout of the same position"):
                grid_offset(pred, ref, (size, size))


def test_misuse_raises_usage_errors(sky, tmp_path):
    with pytest.raises(UsageError, match="unknown metric"):
        evaluate([sky / "same"], sky / "ref", metrics="flux,psnr")
    with pytest.raises(UsageError, match="--truth"):
        evaluate([sky / "same"], sky / "ref", metrics="noise")
    with pytest.raises(UsageError, match="unknown band 'y'"):
        evaluate([sky / "same"], sky / "ref", band="y")
    with pytest.raises(UsageError, match="no prediction matched"):
        evaluate([sky / "renamed"], sky / "ref", match_radius=0.1)
    with pytest.raises(UsageError, match="no such file"):
        evaluate([tmp_path / "missing"], sky / "ref")
    # a survey that the headers do not tell
    from astropy.io import fits

    odd = tmp_path / "odd"
    odd.mkdir()
    fits.PrimaryHDU(np.zeros((5, 16, 16), np.float32)).writeto(odd / "a.fits")
    with pytest.raises(UsageError, match="--survey"):
        evaluate([odd], odd)


# --- the command ------------------------------------------------------------------------


def _s2s(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "survey2survey", "evaluate", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
    )


def test_command_table_exit_codes_and_one_line_errors(sky, tmp_path):
    out = _s2s("--pred", f"ours={sky / 'noisy'}", "--pred", f"copy={sky / 'same'}", "--ref", sky / "ref",
               "--band", "r", "--metrics", "flux,ssim,magnitude", "--no-plots", "-o", tmp_path / "rep", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "r band" in out.stdout and "ours" in out.stdout and "copy" in out.stdout
    assert "MSSIM" in out.stdout and "Δmag" in out.stdout and "ideal" in out.stdout
    assert (tmp_path / "rep" / "metrics.json").is_file()

    # some files unusable: exit 1, one line each, the table still printed
    part = tmp_path / "part"
    part.mkdir()
    (part / "obj01.fits").write_bytes((sky / "same" / "obj01.sdss.fits").read_bytes())
    (part / "obj02.fits").write_bytes(b"not a fits file at all")
    out = _s2s("--pred", part, "--ref", sky / "ref", "--metrics", "flux", "--no-plots", "-o", tmp_path / "r2",
               cwd=tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("s2s: warning:")]
    assert any("obj02.fits" in w and "not a FITS file" in w for w in warnings)
    assert sum("no prediction of part" in w for w in warnings) == 10
    assert "images measured" in out.stdout

    # misuse: exit 2 and a single error line
    out = _s2s("--pred", sky / "same", "--ref", sky / "ref", "--band", "y", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "s2s: error: unknown band 'y' for survey sdss (bands: u,g,r,i,z, or 'all')"
    ]


def test_measure_arrays_same_answer_whatever_the_chunks_and_threads():
    from survey2survey.evaluate import measure_arrays

    rng = np.random.default_rng(5)
    truth = np.stack([_truth(rng, 32) for _ in range(23)])
    ref = truth + rng.normal(0, SIGMA, truth.shape).astype(np.float32)
    pred = truth + rng.normal(0, SIGMA, truth.shape).astype(np.float32)
    one = measure_arrays(pred, ref, truth, survey="sdss", chunk_size=100, jobs=1)
    many = measure_arrays(pred, ref, truth, survey="sdss", chunk_size=4, jobs=2)
    assert set(one.columns) == set(many.columns) and one.columns["mssim"].shape == (23, 5)
    for key in one.columns:
        # float32 BLAS sums depend on the block shapes at the 1e-6 level
        assert np.allclose(one.columns[key], many.columns[key], equal_nan=True, rtol=1e-5, atol=1e-8), key
    # per-image arrays kept by the metrics follow the image order, not the thread timing
    assert np.array_equal(one.results["noise"].arrays["sigma_pred"], many.results["noise"].arrays["sigma_pred"])
    assert np.allclose(one.results["fourier"].arrays["stack_ref"], many.results["fourier"].arrays["stack_ref"])
    with pytest.raises(UsageError, match="must both be"):
        measure_arrays(pred[:, :2], ref, survey="sdss")


def test_pred_option_names_methods():
    from survey2survey.commands.evaluate import _parse_pred

    got = _parse_pred(["runs/a/out", "runs/b/out/", "cyclegan=runs/cg"])
    assert got == {"out": ["runs/a/out"], "out-2": ["runs/b/out/"], "cyclegan": ["runs/cg"]}
    with pytest.raises(UsageError, match="--pred name 'cyclegan' is given twice"):  # issue 15: never merged
        _parse_pred(["cyclegan=runs/cg", "cyclegan=runs/cg2"])
    with pytest.raises(UsageError, match="after '='"):
        _parse_pred(["ours="])
