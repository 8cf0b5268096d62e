"""``s2s translate --model physics`` and ``s2s emulate-noise --model physics``, end to end through the CLI.

Known answers: a compact, noise-free source keeps its total flux (to 1e-4) in every
direction with ``--no-noise``; the output WCS keeps the input's centre and has exactly
the target's pixel scale; emulated registry noise has the registry's sigma.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from survey2survey.cli import main
from survey2survey.data import example_dir
from survey2survey.fits_io import make_wcs, write_cutout
from survey2survey.surveys import get_survey

EX = example_dir()
SDSS, CFHT, HSC = get_survey("sdss"), get_survey("cfht"), get_survey("hsc")


def run(capsys, *args):
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def compact(survey, bands=None, n=None, ra=150.0, dec=2.0, fwhm=1.5):
    """Noise-free round Gaussian source (FWHM arcsec) at the centre: (bands, n, n) native, WCS."""
    bands = tuple(bands or survey.bands)
    n = n or survey.cutout_size
    scale = survey.pixel_scale
    yy, xx = (np.mgrid[0:n, 0:n] - (n - 1) / 2) * scale
    blob = np.exp(-(xx**2 + yy**2) / (2 * (fwhm / 2.3548) ** 2))
    flux = np.array([10.0 * (k + 1) for k in range(len(bands))])  # nanomaggies
    cube = blob[None] / blob.sum() * flux[:, None, None] / survey.flux_factor
    return cube.astype(np.float32), make_wcs(ra, dec, scale, (n, n))


def centre(wcs: WCS, shape) -> np.ndarray:
    return wcs.all_pix2world([[(shape[-1] - 1) / 2, (shape[-2] - 1) / 2]], 0)[0]


@pytest.mark.parametrize("source, target", [("sdss", "cfht"), ("cfht", "sdss"), ("hsc", "sdss")])
def test_no_noise_conserves_the_flux_of_a_compact_source(capsys, tmp_path, source, target):
    src, tgt = get_survey(source), get_survey(target)
    cube, wcs = compact(src)
    write_cutout(tmp_path / "in" / "obj.fits", cube, src, wcs=wcs)
    code, _, _ = run(capsys, "translate", tmp_path / "in", "--to", target, "--model", "physics", "--no-noise",
                     "--out", tmp_path / "out", "-q")
    assert code == 0
    with fits.open(tmp_path / "out" / f"obj.{target}.fits", checksum=True) as hdul:
        h, out = hdul[0].header, hdul[0].data
        out_wcs = WCS(h).celestial
    common = [b for b in tgt.bands if b in src.bands]
    assert h["BANDS"] == ",".join(common) and out.shape[0] == len(common)
    flux_in = cube[[src.band_index(b) for b in common]].sum(axis=(1, 2), dtype=np.float64) * src.flux_factor
    np.testing.assert_allclose(out.sum(axis=(1, 2), dtype=np.float64) * tgt.flux_factor, flux_in, rtol=1e-4)
    np.testing.assert_allclose(proj_plane_pixel_scales(out_wcs) * 3600, tgt.pixel_scale, rtol=1e-12)
    assert h["PIXSCALE"] == tgt.pixel_scale and h["S2SPSCL"] == tgt.pixel_scale
    np.testing.assert_allclose(centre(out_wcs, out.shape), centre(wcs, cube.shape), atol=0.01 / 3600)
    assert h["S2SMETH"] == "physics" and h["S2SDIR"] == f"{source}->{target}" and h["S2SNOISE"] == "no"


@pytest.mark.parametrize("source, target", [("sdss", "cfht"), ("cfht", "sdss")])
def test_bundled_examples_translate_both_ways_with_provenance(capsys, tmp_path, source, target):
    code, _, err = run(capsys, "translate", EX / source, "--to", target, "--model", "physics", "--seed", 1,
                       "--out", tmp_path / "out")
    assert code == 0
    assert "by survey physics" in err and "any registry survey -> " + target in err  # the start line
    src, tgt = get_survey(source), get_survey(target)
    files = sorted((EX / source).glob("*.fits"))
    assert len(files) == 8
    for f in files:
        with fits.open(f) as hin, fits.open(tmp_path / "out" / f"{f.stem}.{target}.fits", checksum=True) as hout:
            h, out = hout[0].header, hout[0].data
            in_wcs, out_wcs = WCS(hin[0].header).celestial, WCS(h).celestial
            data_in = hin[0].data.astype(np.float64)
        assert np.isfinite(out).all() and out.shape[0] == 5
        np.testing.assert_allclose(centre(out_wcs, out.shape), centre(in_wcs, data_in.shape), atol=0.01 / 3600)
        assert h["S2SMETH"] == "physics" and h["S2SMODEL"] == "physics" and h["S2SSEED"] == 1
        for n, band in enumerate(tgt.bands, start=1):
            assert h[f"PSFIN{n}"] == pytest.approx(src.typical_fwhm(band), abs=1e-3)
            assert h[f"NOISTG{n}"] > 0 and f"NOISAD{n}" in h
        history = " ".join(str(v) for v in h["HISTORY"])
        if target == "cfht":  # CFHT is sharper: no deconvolution, said so
            assert all(h[f"PSFMAT{n}"] is False for n in range(1, 6))
            assert "keeps the source resolution" in history
        else:
            assert all(h[f"PSFMAT{n}"] is True for n in range(1, 6))
            assert h["PSFFWHM3"] == pytest.approx(tgt.typical_fwhm("r"), abs=1e-3)
        # the galaxy's light: central 8" box, within the noise of both images
        box = [int(round(4.0 / s)) for s in (src.pixel_scale, tgt.pixel_scale)]
        f_in = _box(data_in[2], box[0]) * src.flux_factor
        f_out = _box(out[2].astype(np.float64), box[1]) * tgt.flux_factor
        assert abs(f_out - f_in) < 0.05 * abs(f_in) + 1.0


def _box(image, half):
    cy, cx = image.shape[0] // 2, image.shape[1] // 2
    return float(image[cy - half : cy + half, cx - half : cx + half].sum())


def test_samples_seed_workers_and_shard(capsys, tmp_path):
    # CFHT -> SDSS: the target is noisier, so noise is added and realisations differ
    args = ["--to", "sdss", "--model", "physics", "--seed", 5, "-q"]
    assert run(capsys, "translate", EX / "cfht", *args, "--out", tmp_path / "one")[0] == 0
    assert run(capsys, "translate", EX / "cfht", *args, "--samples", 3, "--workers", 2, "--out", tmp_path / "three")[0] == 0
    for i in (0, 1):
        assert run(capsys, "translate", EX / "cfht", *args, "--shard", f"{i}/2", "--out", tmp_path / "shards")[0] == 0
    name = "sim0000003.sdss.fits"
    with fits.open(tmp_path / "one" / name) as a, fits.open(tmp_path / "three" / name) as b, \
            fits.open(tmp_path / "shards" / name) as c:
        assert [x.name for x in b] == ["PRIMARY", "SAMPLE2", "SAMPLE3"] and b[0].header["S2SNSAMP"] == 3
        assert np.array_equal(a[0].data, b[0].data) and np.array_equal(a[0].data, c[0].data)  # realisation 1
        assert not np.array_equal(b[0].data, b[1].data) and not np.array_equal(b[1].data, b[2].data)
        signal = a[0].data - b[1].data  # two realisations differ by noise only: same mean image
        assert abs(float(np.mean(signal))) < 0.1 * float(np.std(signal))
    other = run(capsys, "translate", EX / "cfht", "--to", "sdss", "--model", "physics", "--seed", 6, "-q",
                "--out", tmp_path / "seed6")
    assert other[0] == 0
    assert not np.array_equal(fits.getdata(tmp_path / "seed6" / name), fits.getdata(tmp_path / "one" / name))


def test_no_noise_is_added_where_the_input_is_already_noisier(capsys, tmp_path):
    """SDSS -> CFHT: where SDSS's noise, carried over, exceeds CFHT's at every frequency (u and z of
    this cutout), nothing is added (no denoising either) and the realisations are the same image;
    where it is below (r: the real SDSS r sky is quieter than CFHT's on CFHT's pixels), it is
    topped up to CFHT's.  The headers say which."""
    args = ["--to", "cfht", "--model", "physics", "-q"]
    assert run(capsys, "translate", EX / "sdss", *args, "--samples", 2, "--out", tmp_path / "two")[0] == 0
    with fits.open(tmp_path / "two" / "sim0000003.cfht.fits") as b:
        h = b[0].header
        for n in (1, 5):  # u, z
            assert np.array_equal(b[0].data[n - 1], b[1].data[n - 1])
            assert h[f"NOISAD{n}"] == 0 and h[f"NOISCR{n}"] > h[f"NOISTG{n}"]
        assert h["NOISCR3"] < h["NOISTG3"] and h["NOISAD3"] > 0  # r
        assert not np.array_equal(b[0].data[2], b[1].data[2])
        for n in range(1, 6):  # carried and added together reach the target
            assert np.hypot(h[f"NOISCR{n}"], h[f"NOISAD{n}"]) >= 0.97 * h[f"NOISTG{n}"]


def test_a_single_band_file_translates_its_band(capsys, tmp_path):
    cube, wcs = compact(SDSS, bands=("r",))
    write_cutout(tmp_path / "in" / "r_only.fits", cube, dataclasses.replace(SDSS, bands=("r",)), wcs=wcs)
    code, _, _ = run(capsys, "translate", tmp_path / "in", "--to", "cfht", "--from", "sdss", "--model", "physics",
                     "--out", tmp_path / "out", "-q")
    assert code == 0
    with fits.open(tmp_path / "out" / "r_only.cfht.fits") as hdul:
        h, out = hdul[0].header, hdul[0].data
    assert out.shape == (1, 136, 136) and h["BANDS"] == "r" and h["PSFIN1"] == pytest.approx(1.4)
    # noise was added, but the source's flux is kept within the noise of the sum
    flux = out.sum(dtype=np.float64) * CFHT.flux_factor
    assert abs(flux - 10.0) < 5 * h["NOISTG1"] * CFHT.flux_factor * 136


def test_hsc_to_sdss_with_the_builtin_registry(capsys, tmp_path):
    cube, wcs = compact(HSC, fwhm=0.8)
    rng = np.random.default_rng(3)
    cube = cube + rng.normal(0, HSC.typical_sky_sigma("r"), cube.shape).astype(np.float32)
    write_cutout(tmp_path / "in" / "h1.fits", cube, HSC, wcs=wcs)  # SURVEY = 'hsc' in the header
    code, _, err = run(capsys, "translate", tmp_path / "in", "--to", "sdss", "--model", "physics",
                       "--out", tmp_path / "out")
    assert code == 0, err
    with fits.open(tmp_path / "out" / "h1.sdss.fits") as hdul:
        h, out = hdul[0].header, hdul[0].data
    assert h["BANDS"] == "g,r,i,z" and h["S2SDIR"] == "hsc->sdss" and out.shape == (4,) + (round(HSC.cutout_size * HSC.pixel_scale / SDSS.pixel_scale),) * 2
    assert all(h[f"PSFMAT{n}"] is True for n in range(1, 5))  # SDSS's PSF is broader: matched
    # SDSS noise topped up: the output's sky (away from the source) has SDSS's r sigma
    sky = np.concatenate([out[1, :8].ravel(), out[1, -8:].ravel()])
    assert np.std(sky) == pytest.approx(SDSS.typical_sky_sigma("r"), rel=0.15)


def test_a_cutout_without_wcs_is_refused_in_one_line(capsys, tmp_path):
    cube, wcs = compact(SDSS)
    write_cutout(tmp_path / "in" / "a.fits", cube, SDSS, wcs=wcs)
    write_cutout(tmp_path / "in" / "nowcs.fits", cube, SDSS)
    code, out, err = run(capsys, "translate", tmp_path / "in", "--to", "cfht", "--model", "physics",
                         "--out", tmp_path / "out", "-q")
    assert code == 1 and (tmp_path / "out" / "a.cfht.fits").exists()
    lines = [line for line in (out + err).splitlines() if "nowcs.fits" in line]
    assert len(lines) == 1 and "no usable WCS" in lines[0] and "Traceback" not in out + err


@pytest.mark.parametrize("args, fragment", [
    (["--to", "hsc"], "does not translate into hsc"),
    (["--to", "cfht", "--from", "des"], "does not translate des->cfht"),
])
def test_no_trained_model_for_the_pair_names_model_physics(capsys, tmp_path, args, fragment):
    code, out, err = run(capsys, "translate", EX / "sdss", *args, "--out", tmp_path / "out")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert fragment in lines[0] and "--model physics" in lines[0]
    assert not (tmp_path / "out").exists()


def test_the_learned_model_announces_itself_and_its_validity(capsys, tmp_path):
    ours = Path(__file__).resolve().parents[1] / "models" / "sdss-cfht-ours"
    code, out, err = run(capsys, "translate", EX / "cfht", "--to", "sdss", "--model", ours, "--out", tmp_path / "out")
    assert code == 0
    start = [line for line in err.splitlines() if line.startswith("s2s: translating with model")]
    assert len(start) == 1 and "cfht->sdss" in start[0] and "demonstration model" in start[0]
    quiet = run(capsys, "translate", EX / "cfht", "--to", "sdss", "--model", ours, "--out", tmp_path / "out", "-q")
    assert quiet[0] == 0 and "translating with" not in quiet[2]


def test_preview_writes_a_png_per_cutout(capsys, tmp_path):
    code, _, _ = run(capsys, "translate", EX / "sdss", "--to", "cfht", "--model", "physics", "--preview",
                     "--out", tmp_path / "out", "-q")
    assert code == 0
    pngs = sorted((tmp_path / "out").glob("*.cfht.png"))
    assert len(pngs) == 8
    head = pngs[0].read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert 300 < width < 500 and height > 4 * width / 2  # 2 columns, 5 band rows
    # a PNG of that name that s2s did not write is the user's: that input fails, the file is kept
    mine = tmp_path / "out2" / pngs[0].name
    mine.parent.mkdir()
    mine.write_bytes(b"mine")
    code, _, err = run(capsys, "translate", EX / "sdss", "--to", "cfht", "--model", "physics", "--preview",
                       "--out", tmp_path / "out2", "-q")
    assert code == 1 and f"{mine} exists and is no s2s preview" in err and mine.read_bytes() == b"mine"
    assert len(list((tmp_path / "out2").glob("*.cfht.fits"))) == 7
    # s2s's own preview is redone with its output (here: the output removed), --overwrite replaces the user's
    (tmp_path / "out" / pngs[1].name.replace(".png", ".fits")).unlink()
    assert run(capsys, "translate", EX / "sdss", "--to", "cfht", "--model", "physics", "--preview",
               "--out", tmp_path / "out", "-q")[0] == 0
    assert run(capsys, "translate", EX / "sdss", "--to", "cfht", "--model", "physics", "--preview",
               "--out", tmp_path / "out2", "-q", "--overwrite")[0] == 0
    assert mine.read_bytes()[:4] == b"\x89PNG"


def test_physics_refuses_the_options_of_a_model_engine(capsys, tmp_path):
    code, _, err = run(capsys, "translate", EX / "sdss", "--to", "cfht", "--model", "physics", "--backend", "onnx",
                       "--out", tmp_path / "out")
    assert code == 2 and "--backend is an option of a trained model's engine" in err


@pytest.mark.parametrize("survey, band", [("sdss", "r"), ("hsc", "i")])
def test_emulate_noise_physics_has_the_registry_sigma(capsys, tmp_path, survey, band):
    out = tmp_path / "noise.fits"
    code, text, err = run(capsys, "emulate-noise", "--model", "physics", "--survey", survey, "--band", band,
                          "--n", 200, "--seed", 2, "--out", out)
    assert code == 0, err
    s = get_survey(survey)
    with fits.open(out, checksum=True) as hdul:
        cube, h = hdul[0].data, hdul[0].header
        table = hdul["AMPLITUDE"].data
    assert cube.shape == (200, s.cutout_size, s.cutout_size) and h["SURVEY"] == survey and h["BAND"] == band
    assert h["S2SMODEL"] == "physics" and len(table) == 200 and f"RMS_{band}" in table.names
    assert np.std(cube) == pytest.approx(s.typical_sky_sigma(band), rel=0.05)
    assert abs(float(np.mean(cube))) < 0.01 * s.typical_sky_sigma(band)
    code, _, err = run(capsys, "emulate-noise", "--model", "physics", "--band", "r", "--n", 2, "--out", tmp_path / "x.fits")
    assert code == 2 and "give --survey" in err


def test_mask_covers_every_pixel_a_filled_one_reaches(tmp_path):
    """CFHT -> SDSS with a 6x6 px core of NaN (a saturated star's): the physics fills it with 0 and
    convolves with its matching kernel, so the hole spreads as far as the kernel; MASK must cover
    every output pixel the fill changed (it flagged only the footprint: pixels outside it were off
    by up to 34 % of the peak)."""
    from survey2survey.pipelines.translate import translate

    src = sorted((EX / "cfht").glob("*.fits"))[2]
    (tmp_path / "clean").mkdir()
    (tmp_path / "holed").mkdir()
    with fits.open(src) as h:
        h.writeto(tmp_path / "clean" / "obj.fits")
        h[0].data[:, 65:71, 65:71] = np.nan
        h.writeto(tmp_path / "holed" / "obj.fits")
    clean = translate([tmp_path / "clean"], "sdss", model_dir="physics", out_dir=tmp_path / "o1", noise=False)
    holed = translate([tmp_path / "holed"], "sdss", model_dir="physics", out_dir=tmp_path / "o2", noise=False)
    with fits.open(clean.outputs[0]) as a, fits.open(holed.outputs[0]) as b:
        ref, out, mask = a[0].data, b[0].data, b["MASK"].data.astype(bool)
    changed = np.abs(out - ref) > 1e-3 * ref.max(axis=(1, 2), keepdims=True)
    assert changed.any() and not (changed & ~mask).any(), (changed & ~mask).sum(axis=(1, 2))
    assert mask.sum(axis=(1, 2)).max() < 0.1 * mask[0].size  # grown by the kernel, not the whole image
