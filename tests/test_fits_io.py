"""FITS cutout reading in every layout, writing with provenance, and clear errors."""

import os
import re
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs.utils import proj_plane_pixel_scales

from survey2survey import __version__
from survey2survey.data import example_dir
from survey2survey.errors import CutoutError, OutputExistsError, UsageError
from survey2survey.fits_io import (
    Provenance,
    find_cutouts,
    make_wcs,
    read_cutout,
    rescale_wcs,
    verify_fits,
    write_cutout,
)

BANDS = "ugriz"


def _cube(seed=0, size=64):
    rng = np.random.default_rng(seed)
    # band b is filled around b so that the order of planes is visible
    return (rng.standard_normal((5, size, size)) * 0.01 + np.arange(5)[:, None, None]).astype(np.float32)


def _wcs_header(size=64, scale=0.396, ra=150.1, dec=2.2):
    return make_wcs(ra, dec, scale, (size, size)).to_header()


def test_cube_round_trip_with_provenance_and_checksums(tmp_path):
    data = _cube()
    wcs = make_wcs(150.1, 2.2, 0.396, (64, 64))
    prov = Provenance(model="sdss-cfht-ours", model_sha256="ab" * 32, method="ours", direction="sdss->cfht",
                      source_file="a_rather_long_object_identifier_that_goes_past_the_card_limit_J095.fits",
                      source_survey="sdss", target_survey="cfht", seed=7, backend="torch/cpu")
    out = write_cutout(tmp_path / "obj.fits", data, "sdss", wcs=wcs, provenance=prov, history=["made by a test"])
    verify_fits(out)
    with fits.open(out, checksum=True) as hdul:
        h = hdul[0].header
        assert hdul[0].data.dtype == np.dtype(">f4")
        assert h["NAXIS3"] == 5 and h["BANDS"] == "u,g,r,i,z" and h["MAGZP"] == 22.5
        assert h["BUNIT"] == "nanomaggy"
        assert h["S2SVER"] == __version__ and h["S2SHASH"] == "ab" * 32 and h["S2SSEED"] == 7
        assert h["S2SSRC"] == prov.source_file  # long strings survive (CONTINUE cards)
        assert h["S2SDIR"] == "sdss->cfht" and h["S2STGTSV"] == "cfht" and "S2SDATE" in h
        assert "made by a test" in str(h["HISTORY"])
        assert "CHECKSUM" in h and "DATASUM" in h
    c = read_cutout(out, "sdss")
    np.testing.assert_array_equal(c.data, data)
    assert c.bands == tuple(BANDS) and c.object_id == "obj" and c.mask is None
    ra, dec = c.center_radec()
    assert ra == pytest.approx(150.1, abs=1e-9) and dec == pytest.approx(2.2, abs=1e-9)
    # survey detected from the SURVEY keyword when not given
    assert read_cutout(out).survey.name == "sdss"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_header_cards_keep_their_types_and_later_duplicates_win(tmp_path):
    """Card images are cached by value: 1, 1.0 and True must stay an int, a float and a bool;
    a long HISTORY line and a key given twice come out as assignment would give them."""
    cards = [("XINT", 1, "an int"), ("XFLT", 1.0, "a float"), ("XBOOL", True, "a bool"), ("XFLT2", 1.0, None),
             ("XINT", 2, "given twice: the last wins"), ("COMMENT", "a comment card", None)]
    long = "a history line longer than one card " * 4
    for i, same in enumerate((1, 1.0, True)):  # later files are made from cached card images
        out = write_cutout(tmp_path / f"t{i}.fits", _cube(), "sdss", wcs=make_wcs(150.1, 2.2, 0.396, (64, 64)),
                           header_cards=cards + [("XSAME", same, "one value, three types")], history=[long])
        verify_fits(out)
        h = fits.getheader(out)
        assert type(h["XFLT"]) is float and type(h["XBOOL"]) is bool and type(h["XFLT2"]) is float
        assert h["XINT"] == 2 and type(h["XINT"]) is int and list(h.keys()).count("XINT") == 1
        assert "a comment card" in str(h["COMMENT"])
        assert "".join(str(v) for v in h["HISTORY"]).replace(" ", "") == long.replace(" ", "")
        assert h["WCSAXES"] == 2 and h["CTYPE1"].startswith("RA---TAN")
        assert type(h["XSAME"]) is type(same)


def test_structural_header_cards_come_from_the_data(tmp_path):
    """BITPIX, NAXISn, EXTEND given as header cards cannot describe other data than the file holds."""
    cards = [("BITPIX", 16, "x"), ("NAXIS2", 3, "y"), ("EXTEND", False, "z"), ("XKEEP", 1, "kept")]
    for mask in (None, np.zeros((5, 64, 64), bool)):
        out = write_cutout(tmp_path / f"s{mask is None}.fits", _cube(), "sdss", header_cards=cards, mask=mask)
        verify_fits(out)
        h = fits.getheader(out)
        assert (h["BITPIX"], h["NAXIS"], h["NAXIS1"], h["NAXIS2"], h["NAXIS3"], h["XKEEP"]) == (-32, 3, 64, 64, 5, 1)
        assert h.get("EXTEND", True) is True
        np.testing.assert_array_equal(read_cutout(out, "sdss").data, _cube())


def test_cube_in_file_order_is_reordered_to_survey_order(tmp_path):
    data = _cube()
    order = [3, 0, 4, 1, 2]  # i u z g r
    hdr = _wcs_header()
    hdr["BANDS"] = ",".join(BANDS[i] for i in order)
    fits.PrimaryHDU(data[order], header=hdr).writeto(tmp_path / "x.fits")
    c = read_cutout(tmp_path / "x.fits", "sdss")
    np.testing.assert_array_equal(c.data, data)
    # BANDn keywords work too
    hdr2 = _wcs_header()
    for i, b in enumerate(order, 1):
        hdr2[f"BAND{i}"] = BANDS[b]
    fits.PrimaryHDU(data[order], header=hdr2).writeto(tmp_path / "y.fits")
    np.testing.assert_array_equal(read_cutout(tmp_path / "y.fits", "sdss").data, data)


def test_multi_extension_file_any_order_and_filter_names(tmp_path):
    data = _cube(1, 136)
    hdus = [fits.PrimaryHDU()]
    names = {"u": "u.MP9302", "g": "g.MP9402", "r": "r.MP9602", "i": "i.MP9703", "z": "z.MP9901"}
    for b in "zrgui":
        h = fits.Header()
        h["FILTER"] = names[b]
        hdus.append(fits.ImageHDU(data[BANDS.index(b)], header=h))
    fits.HDUList(hdus).writeto(tmp_path / "mef.fits")
    c = read_cutout(tmp_path / "mef.fits", "cfht")
    np.testing.assert_array_equal(c.data, data)
    assert any("no WCS" in w for w in c.warnings)
    # EXTNAME as the band
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(data[BANDS.index(b)], name=b.upper()) for b in "igzur"]
    fits.HDUList(hdus).writeto(tmp_path / "mef2.fits")
    np.testing.assert_array_equal(read_cutout(tmp_path / "mef2.fits", "cfht").data, data)


@pytest.mark.parametrize("sep", ["-", "_"])
def test_one_file_per_band_grouped_by_object(tmp_path, sep):
    objs = {"J1": _cube(2), "gal_7": _cube(3)}
    for name, data in objs.items():
        for b in "zuirg":  # written in a scrambled order
            fits.PrimaryHDU(data[BANDS.index(b)], header=_wcs_header()).writeto(tmp_path / f"{name}{sep}{b}.fits")
    sources = find_cutouts([tmp_path], "sdss")
    assert sorted(s.object_id for s in sources) == sorted(objs)
    for s in sources:
        assert s.per_band and len(s.paths) == 5
        c = read_cutout(s, "sdss")
        np.testing.assert_array_equal(c.data, objs[s.object_id])
        assert c.wcs is not None


def _blob(size, cy, cx, width=2.0):
    yy, xx = np.mgrid[:size, :size]
    return (100.0 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width**2))).astype(np.float32)


def _centroid(image):
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    w = np.clip(image, 0, None)
    return (w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()


def test_band_files_on_grids_a_fraction_apart_are_registered(tmp_path):
    """Per-band files cut at the nearest pixel of one sky position, each with its WCS: every band
    is moved onto the first file's grid (they were stacked as they were: a galaxy up to 4" apart
    between SDSS frames' bands); far apart, or rotated, the cutout is refused."""
    size, c = 64, 31.5
    offsets = {"u": (0.4, -0.3), "g": (0.0, 0.0), "i": (-0.45, 0.2), "r": (0.2, 0.35), "z": (0.0, 0.0)}
    for b, (dy, dx) in offsets.items():
        h = _wcs_header()  # the sky at (c + dy, c + dx) of this band's pixels
        h["CRPIX1"], h["CRPIX2"] = h["CRPIX1"] + dx, h["CRPIX2"] + dy
        h["FILTER"] = b
        fits.PrimaryHDU(_blob(size, c + dy, c + dx), header=h).writeto(tmp_path / f"obj-{b}.fits")
    (source,) = find_cutouts([tmp_path], "sdss")
    cut = read_cutout(source, "sdss")
    for k, b in enumerate(BANDS):
        y, x = _centroid(cut.data[k])
        assert abs(y - c) < 0.02 and abs(x - c) < 0.02, (b, y, x)  # on the first (g) file's grid
        assert abs(cut.data[k].sum() - _blob(size, c, c).sum()) < 1e-3 * _blob(size, c, c).sum()
    (moved,) = [w for w in cut.warnings if "moved onto the first image's pixel grid" in w]
    assert "u 0.50" in moved and "r 0.40" in moved and "z" not in moved

    h = _wcs_header()
    h["CRPIX1"] += 6.0  # an r cut 6 px away
    fits.PrimaryHDU(_blob(size, c, c + 6), header=h).writeto(tmp_path / "obj-r.fits", overwrite=True)
    with pytest.raises(CutoutError, match=r"band r's image is 6.0 px off the first image's .* same sky position"):
        read_cutout(find_cutouts([tmp_path], "sdss")[0], "sdss")
    h = fits.Header(make_wcs(150.1, 2.2, 0.396, (size, size)).to_header())
    h["PC1_1"], h["PC1_2"], h["PC2_1"], h["PC2_2"] = 0.0, 1.0, -1.0, 0.0  # rotated 90 degrees
    fits.PrimaryHDU(_blob(size, c, c), header=h).writeto(tmp_path / "obj-r.fits", overwrite=True)
    with pytest.raises(CutoutError, match="rotated or scaled against the first image's"):
        read_cutout(find_cutouts([tmp_path], "sdss")[0], "sdss")


def test_a_band_file_of_another_size_is_the_one_named(tmp_path):
    data = _cube(4)
    for b in "ugriz":
        plane = data[BANDS.index(b)][:60, :60] if b == "z" else data[BANDS.index(b)]
        fits.PrimaryHDU(plane, header=_wcs_header()).writeto(tmp_path / f"sz-{b}.fits")
    (source,) = find_cutouts([tmp_path], "sdss")
    with pytest.raises(CutoutError) as err:
        read_cutout(source, "sdss")
    assert err.value.path.name == "sz-z.fits"
    assert "sz-z.fits is 60x60 px, the others 64x64 px" in str(err.value)


def test_find_cutouts_directories_globs_and_missing(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for p in ["a/one.fits", "a/b/two.fits", "a/b/notes.txt", "a/.hidden.fits"]:
        (tmp_path / p).write_bytes(b"")
    found = {s.object_id for s in find_cutouts([tmp_path / "a"])}
    assert found == {"one", "two"}
    found = {s.object_id for s in find_cutouts([str(tmp_path / "a" / "**" / "*.fits")])}
    assert found == {"one", "two"}
    with pytest.raises(UsageError, match="no such file"):
        find_cutouts([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no FITS cutouts found"):
        find_cutouts([tmp_path / "empty"])


def test_no_band_keywords_taken_in_survey_order_with_warning(tmp_path):
    data = _cube()
    fits.PrimaryHDU(data, header=_wcs_header()).writeto(tmp_path / "plain.fits")
    c = read_cutout(tmp_path / "plain.fits", "sdss")
    np.testing.assert_array_equal(c.data, data)
    assert any("no band keywords" in w for w in c.warnings)


def test_survey_detected_from_pixel_scale_and_telescope(tmp_path):
    fits.PrimaryHDU(_cube(size=136), header=_wcs_header(136, 0.187)).writeto(tmp_path / "c.fits")
    assert read_cutout(tmp_path / "c.fits").survey.name == "cfht"
    h = fits.Header()
    h["TELESCOP"] = "SDSS 2.5-M"
    fits.PrimaryHDU(_cube(), header=h).writeto(tmp_path / "s.fits")
    assert read_cutout(tmp_path / "s.fits").survey.name == "sdss"


def test_wcs_rescaled_to_output_grid_keeps_centre_and_corners(tmp_path):
    src = make_wcs(210.5, -1.25, 0.396, (64, 64))
    src.wcs.cd = src.wcs.cd @ np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])  # rotated
    src.wcs.set()
    out = rescale_wcs(src, (64, 64), (136, 136))
    # pixel scale becomes the target-like one (footprint kept: 0.396 * 64 / 136)
    scale = proj_plane_pixel_scales(out).mean() * 3600
    assert scale == pytest.approx(0.396 * 64 / 136, rel=1e-9)
    assert abs(scale - 0.187) / 0.187 < 0.005
    # centre and the four outer corners land on the same sky position
    in_pts = np.array([[31.5, 31.5], [-0.5, -0.5], [63.5, -0.5], [-0.5, 63.5], [63.5, 63.5]])
    out_pts = np.array([[67.5, 67.5], [-0.5, -0.5], [135.5, -0.5], [-0.5, 135.5], [135.5, 135.5]])
    sky_in = src.pixel_to_world(in_pts[:, 0], in_pts[:, 1])
    back = out.world_to_pixel(sky_in)
    np.testing.assert_allclose(np.stack(back, axis=1), out_pts, atol=1e-3)  # << 0.1 px
    # written and re-read, it is the same WCS
    write_cutout(tmp_path / "w.fits", np.zeros((5, 136, 136), np.float32), "cfht", wcs=out)
    c = read_cutout(tmp_path / "w.fits", "cfht")
    np.testing.assert_allclose(
        np.stack(c.wcs.world_to_pixel(sky_in), axis=1), np.stack(back, axis=1), atol=1e-6
    )


def test_existing_output_kept_without_overwrite(tmp_path):
    p = tmp_path / "o.fits"
    write_cutout(p, _cube(), "sdss")
    before = p.read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_cutout(p, _cube(5), "sdss")
    assert p.read_bytes() == before
    write_cutout(p, _cube(5), "sdss", overwrite=True)
    np.testing.assert_array_equal(read_cutout(p, "sdss").data, _cube(5))
    assert sorted(x.name for x in tmp_path.iterdir()) == ["o.fits"]


def test_nan_policy_fill_and_mask_or_refuse(tmp_path):
    data = _cube()
    data[2, 10, 10:13] = np.nan
    data[4, 0, 0] = np.inf
    fits.PrimaryHDU(data, header=_wcs_header()).writeto(tmp_path / "few.fits")
    c = read_cutout(tmp_path / "few.fits", "sdss")
    assert c.n_bad_pixels == 4 and np.isfinite(c.data).all() and c.data[2, 10, 11] == 0
    assert c.mask[2, 10, 11] and not c.mask[0, 10, 11]
    write_cutout(tmp_path / "out.fits", c.data, "sdss", mask=c.mask)
    with fits.open(tmp_path / "out.fits") as h:
        assert h[0].header["NBADPIX"] == 4 and h["MASK"].data.sum() == 4
    data[1, :20] = np.nan  # 31% of band g
    fits.PrimaryHDU(data, header=_wcs_header()).writeto(tmp_path / "many.fits")
    with pytest.raises(CutoutError, match=r"many.fits: 31.2% of band g pixels are NaN/inf"):
        read_cutout(tmp_path / "many.fits", "sdss")


def _truncated(tmp_path):
    p = tmp_path / "full.fits"
    fits.PrimaryHDU(_cube(), header=_wcs_header()).writeto(p)
    t = tmp_path / "trunc.fits"
    t.write_bytes(p.read_bytes()[: 2880 + 20000])
    return t


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: (d / "zero.fits").write_bytes(b"") or d / "zero.fits", "empty file"),
        (lambda d: (d / "text.fits").write_text("hello, I am not FITS\n" * 200) and d / "text.fits", "not a FITS file"),
        (_truncated, "truncated"),
        (lambda d: fits.PrimaryHDU(np.zeros((2, 5, 8, 8), np.float32)).writeto(d / "4d.fits") or d / "4d.fits",
         "wrong number of axes"),
        (lambda d: fits.PrimaryHDU(np.zeros(64, np.float32)).writeto(d / "1d.fits") or d / "1d.fits",
         "wrong number of axes"),
        (lambda d: fits.PrimaryHDU(np.zeros((3, 64, 64), np.float32)).writeto(d / "3b.fits") or d / "3b.fits",
         "3 bands without names"),
        (lambda d: fits.PrimaryHDU(np.zeros((5, 32, 32), np.float32)).writeto(d / "small.fits") or d / "small.fits",
         "wrong size 32x32 px, expected 64x64"),
        (lambda d: fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
            [fits.Column(name="a", format="E", array=np.zeros(3))])]).writeto(d / "tab.fits") or d / "tab.fits",
         "no image data"),
    ],
)
def test_bad_files_give_one_clear_line(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(CutoutError) as info:
        read_cutout(path, "sdss", expected_size=64)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_missing_and_unknown_bands(tmp_path):
    data = _cube()
    h = _wcs_header()
    h["BANDS"] = "u,g,r,i,i"
    fits.PrimaryHDU(data, header=h).writeto(tmp_path / "dup.fits")
    with pytest.raises(CutoutError, match="duplicate bands"):
        read_cutout(tmp_path / "dup.fits", "sdss")
    h["BANDS"] = "g,r,i,z,Y"
    fits.PrimaryHDU(data, header=h).writeto(tmp_path / "des.fits")
    with pytest.raises(CutoutError, match="band 'Y' is not a band of survey sdss"):
        read_cutout(tmp_path / "des.fits", "sdss")
    assert read_cutout(tmp_path / "des.fits", "des").bands == ("g", "r", "i", "z", "Y")
    for b in "ugri":  # z missing
        fits.PrimaryHDU(data[0]).writeto(tmp_path / f"obj-{b}.fits")
    (src,) = [s for s in find_cutouts([tmp_path], "sdss") if s.object_id == "obj"]
    with pytest.raises(CutoutError, match="missing band.*z"):
        read_cutout(src, "sdss")


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can read any file")
    p = tmp_path / "locked.fits"
    fits.PrimaryHDU(_cube()).writeto(p)
    p.chmod(0)
    with pytest.raises(CutoutError, match="permission denied"):
        read_cutout(p, "sdss")


def test_verify_detects_corruption(tmp_path):
    p = write_cutout(tmp_path / "v.fits", _cube(), "sdss")
    verify_fits(p)
    raw = bytearray(p.read_bytes())
    raw[2880 + 100] ^= 0xFF  # flip a data byte
    p.write_bytes(bytes(raw))
    with pytest.raises(CutoutError, match="verification failed"):
        verify_fits(p)


def test_reads_back_own_output_with_mask_and_sample_extensions(tmp_path):
    data = _cube()
    mask = np.zeros(data.shape, bool)
    mask[1, 3, 4] = True
    extra = [fits.ImageHDU(data + 1, name="SAMPLE2")]
    p = write_cutout(tmp_path / "o.cfht.fits", data, "sdss", mask=mask, extra_hdus=extra)
    c = read_cutout(p)
    np.testing.assert_array_equal(c.data, data)  # the primary cube, not a sample
    assert c.mask is not None and c.mask.sum() == 1 and c.mask[1, 3, 4]
    # a MASK extension in a multi-extension layout is not taken for a band
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(data[i], name=b.upper()) for i, b in enumerate(BANDS)]
    hdus.append(fits.ImageHDU(np.zeros((64, 64), np.uint8), name="MASK"))
    fits.HDUList(hdus).writeto(tmp_path / "mef.fits")
    np.testing.assert_array_equal(read_cutout(tmp_path / "mef.fits", "sdss").data, data)


# --- the WCS is astropy's reading of the header -------------------------------------------------


def _wcs_flavours(n=64, scale=0.396):
    """Headers of image WCSs as cutouts carry them (name, header)."""
    cd = make_wcs(150.1, 2.2, scale, (n, n)).to_header()
    pc = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 34.501877121298, "CRVAL2": -7.0007980186728,
                      "CRPIX1": 32.5, "CRPIX2": 32.5, "PC1_1": -0.00011, "PC2_2": 0.00011, "CDELT1": 1.0, "CDELT2": 1.0,
                      "CUNIT1": "deg", "CUNIT2": "deg", "RADESYS": "ICRS"})
    crota = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 10.5, "CRVAL2": 41.2, "CRPIX1": n / 2,
                         "CRPIX2": n / 2, "CDELT1": -scale / 3600, "CDELT2": scale / 3600, "CROTA2": 12.5})
    fk5 = cd.copy()
    fk5["RADESYS"], fk5["EQUINOX"], fk5["DATE-OBS"] = "FK5", 2000.0, "2004-03-05T06:07:08"
    cube = cd.copy()
    cube["WCSAXES"] = 3
    cube["CTYPE3"], cube["CRVAL3"], cube["CDELT3"], cube["CRPIX3"], cube["CUNIT3"] = "WAVE", 5e-7, 1e-7, 1.0, "m"
    gal_sin = fits.Header({"CTYPE1": "GLON-SIN", "CTYPE2": "GLAT-SIN", "CRVAL1": 120.0, "CRVAL2": -30.0,
                           "CRPIX1": n / 2, "CRPIX2": n / 2, "CDELT1": -scale, "CDELT2": scale,
                           "CUNIT1": "arcsec", "CUNIT2": "arcsec"})
    tpv = cd.copy()
    tpv["CTYPE1"], tpv["CTYPE2"], tpv["PV1_1"], tpv["PV2_1"], tpv["PV1_4"] = "RA---TPV", "DEC--TPV", 1.0, 1.0, 1e-4
    return {"cd": cd, "pc": pc, "crota": crota, "fk5": fk5, "cube3": cube, "gal_sin": gal_sin, "tpv": tpv,
            "cd_and_pc": _cd_and_pc_header(n)}


def _cd_and_pc_header(n=64, pc_factor=0.5):
    """What ``header.update(Cutout2D(...).wcs.to_header())`` gives on a frame header with a rotated CD matrix.

    The PC matrix is wcslib's choice when both are present; ``pc_factor`` != 1 makes it differ
    from the CD matrix left behind (as after a tool that rescaled the cutout).
    """
    from astropy.nddata import Cutout2D
    from astropy.wcs import WCS

    frame = fits.Header({"NAXIS": 2, "NAXIS1": 2048, "NAXIS2": 1489, "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN",
                         "CRVAL1": 150.0, "CRVAL2": 2.0, "CRPIX1": 1024.5, "CRPIX2": 745.0,
                         "CD1_1": 1.2e-5, "CD1_2": 1.0e-4, "CD2_1": 1.0e-4, "CD2_2": -1.2e-5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cut = Cutout2D(np.zeros((1489, 2048)), (700, 400), (n, n), wcs=WCS(frame))
        header = frame.copy()
        header.update(cut.wcs.to_header())
    for key in ("PC1_1", "PC1_2", "PC2_1", "PC2_2"):
        header[key] = header[key] * pc_factor
    del header["NAXIS"], header["NAXIS1"], header["NAXIS2"]
    return header


@pytest.mark.parametrize("name", list(_wcs_flavours()) + ["s2s_output"])
def test_reader_wcs_is_astropys_wcs(tmp_path, name):
    """The reader's WCS is WCS(header, naxis=2) of the file's whole header: same keywords, same sky positions."""
    from astropy.wcs import WCS

    if name == "s2s_output":  # every keyword s2s writes, and HISTORY
        write_cutout(tmp_path / "w.fits", _cube(), "sdss", wcs=rescale_wcs(WCS(_sip_header()), (64, 64), (64, 64)),
                     provenance=Provenance(model="m", source_file="x.fits", seed=3), history=["h"],
                     mask=np.zeros((5, 64, 64), bool))
    else:
        header = _wcs_flavours()[name]
        header["BANDS"] = "u,g,r,i,z"
        fits.PrimaryHDU(_cube(), header=header).writeto(tmp_path / "w.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = WCS(fits.getheader(tmp_path / "w.fits"), naxis=2)
    c = read_cutout(tmp_path / "w.fits", "sdss")
    assert c.wcs.to_header_string(relax=True) == expected.to_header_string(relax=True)
    pts = np.array([[0.0, 0.0], [63.0, 0.0], [31.5, 31.5]])
    np.testing.assert_allclose(c.wcs.all_pix2world(pts, 0), expected.all_pix2world(pts, 0), rtol=0, atol=1e-12)


def _plain_headers(n=64, scale=0.396):
    """Headers :func:`_plain_wcs` builds itself (name, header): each must give WCS(header, naxis=2)."""
    d = scale / 3600
    base = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.1, "CRVAL2": 2.2, "CRPIX1": 32.5, "CRPIX2": 32.5}
    rot = np.deg2rad(23.0)
    return {
        "make_wcs": make_wcs(150.1, 2.2, scale, (n, n)).to_header(),
        "cd_rotated": fits.Header({**base, "CD1_1": -d * np.cos(rot), "CD1_2": d * np.sin(rot),
                                   "CD2_1": d * np.sin(rot), "CD2_2": d * np.cos(rot)}),
        "cd_partial": fits.Header({**base, "CD1_1": -d, "CD2_2": d}),
        "cdelt_only": fits.Header({**base, "CDELT1": -d, "CDELT2": d}),
        "pc_cdelt_units": fits.Header({**base, "PC1_1": -0.9, "PC1_2": 0.1, "PC2_1": 0.1, "PC2_2": 0.9,
                                       "CDELT1": d, "CDELT2": d, "CUNIT1": "deg", "CUNIT2": "deg"}),
        "fk5_equinox": fits.Header({**base, "CD1_1": -d, "CD2_2": d, "RADESYS": "FK5", "EQUINOX": 2000.0}),
        "equinox_only": fits.Header({**base, "CD1_1": -d, "CD2_2": d, "EQUINOX": 2000}),
        "poles_mjdref": fits.Header({**base, "CD1_1": -d, "CD2_2": d, "LONPOLE": 180.0, "LATPOLE": 2.2,
                                     "MJDREF": 0.0, "WCSAXES": 2, "OBJECT": "x", "DATE": "2020-01-01"}),
        "sin_south": fits.Header({**base, "CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN", "CRVAL2": -89.9,
                                  "CD1_1": -d, "CD2_2": d}),
        "bundled": fits.getheader(next((example_dir() / "sdss").glob("*.fits*"))),
    }


@pytest.mark.parametrize("name", list(_plain_headers()))
def test_plain_wcs_is_the_wcs_astropy_reads(name):
    """The header's WCS built keyword by keyword (the reader's fast path) is WCS(header, naxis=2)."""
    from astropy.wcs import WCS

    from survey2survey.fits_io.wcs import _plain_wcs

    header = fits.Header.fromstring(_plain_headers()[name].tostring())  # values as a file holds them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = WCS(header, naxis=2)
        got = _plain_wcs(header)
    assert got is not None, f"{name}: not taken as plain"
    got.wcs.set()
    expected.wcs.set()
    assert got.wcs.compare(expected.wcs), f"{name}: Wcsprm differs"
    assert got.to_header_string(relax=True) == expected.to_header_string(relax=True)
    pts = np.array([[0.0, 0.0], [63.0, 0.0], [31.5, 31.5], [-100.0, 500.0]])
    np.testing.assert_array_equal(got.all_pix2world(pts, 0), expected.all_pix2world(pts, 0))


@pytest.mark.parametrize("name", ["crota", "fk5", "cube3", "gal_sin", "tpv", "cd_and_pc"])
def test_headers_beyond_the_plain_wcs_go_to_astropy(name):
    """CROTA, DATE-OBS, a third axis, other frames, PV terms, CD with PC: left to WCS(header)."""
    from survey2survey.fits_io.wcs import _plain_wcs

    assert _plain_wcs(_wcs_flavours()[name]) is None


def test_plain_wcs_refuses_sip_and_odd_values():
    from survey2survey.fits_io.wcs import _plain_wcs

    assert _plain_wcs(_sip_header()) is None
    header = _plain_headers()["cd_partial"]
    for key, value in (("CUNIT1", "arcsec"), ("RADESYS", "FK4"), ("CRVAL1", "150"), ("WCSAXES", 3),
                       ("CTYPE2", "DEC--SIN"), ("PV2_1", 0.0), ("CDELT1", 1.0), ("A_ORDER", 2),
                       ("MJDREF", 51544.5), ("CD2_2", 0.0), ("DATE-OBS", "2004-03-05")):
        odd = header.copy()
        odd[key] = value
        assert _plain_wcs(odd) is None, key
    # a keyword given twice: wcslib reads the last card, the header's get the first (240" apart here)
    twice = header.copy()
    twice.append(("CRVAL1", header["CRVAL1"] + 0.067), useblanks=False, bottom=True)
    assert _plain_wcs(twice) is None
    from survey2survey.fits_io.wcs import celestial_wcs

    assert celestial_wcs(twice, []).wcs.crval[0] == pytest.approx(header["CRVAL1"] + 0.067)


def _footprint_points(n):
    """Centre and outer corners of an n x n image, 0-based pixel coordinates."""
    e = n - 0.5
    return np.array([[(n - 1) / 2, (n - 1) / 2], [-0.5, -0.5], [e, -0.5], [-0.5, e], [e, e]])


@pytest.mark.parametrize("name", list(_wcs_flavours()))
def test_rescaled_output_wcs_keeps_centre_and_corners(tmp_path, name):
    """The output WCS (rescaled 64 -> 136 px, written, read back) puts the footprint where the input's was."""
    from astropy.wcs import WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = WCS(_wcs_flavours()[name], naxis=2)
    out = rescale_wcs(src, (64, 64), (136, 136))
    write_cutout(tmp_path / "o.fits", np.zeros((5, 136, 136), np.float32), "cfht", wcs=out)
    back = read_cutout(tmp_path / "o.fits", "cfht").wcs
    for w in (out, back):
        sky_in = src.all_pix2world(_footprint_points(64), 0)
        sky_out = w.all_pix2world(_footprint_points(136), 0)
        np.testing.assert_allclose(sky_out, sky_in, rtol=0, atol=1e-9)  # deg: < 4 uas
    from survey2survey.fits_io import pixel_scale_arcsec

    assert pixel_scale_arcsec(back) == pytest.approx(pixel_scale_arcsec(src) * 64 / 136, rel=1e-9)


@pytest.mark.parametrize("pc_factor", [1.0, 0.5])
def test_cd_and_pc_header_output_centre_matches_input(pc_factor):
    """Issue 15 item 4: with both CD and PC, wcslib uses PC; the output centre must be the input's."""
    from astropy.wcs import WCS

    header = _cd_and_pc_header(pc_factor=pc_factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = WCS(header, naxis=2)
    assert src.wcs.has_cd() and src.wcs.has_pc()
    out = rescale_wcs(src, (64, 64), (136, 136))
    centre_in = src.pixel_to_world(31.5, 31.5)
    centre_out = out.pixel_to_world(67.5, 67.5)
    assert centre_in.separation(centre_out).arcsec < 1e-6
    corner_in, corner_out = src.pixel_to_world(-0.5, -0.5), out.pixel_to_world(-0.5, -0.5)
    assert corner_in.separation(corner_out).arcsec < 1e-6


def _sip_header(n=64, scale=0.396):
    h = make_wcs(150.1, 2.2, scale, (n, n)).to_header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    h["A_ORDER"], h["B_ORDER"] = 2, 2
    h["A_2_0"], h["A_0_2"], h["A_1_1"] = 2e-4, -1e-4, 5e-5
    h["B_2_0"], h["B_0_2"], h["B_1_1"] = -1e-4, 3e-4, 2e-5
    return h


def test_sip_distortion_is_carried_to_the_output_grid(tmp_path):
    from astropy.wcs import WCS

    src = WCS(_sip_header(), naxis=2)
    assert src.sip is not None
    out = rescale_wcs(src, (64, 64), (136, 136))
    assert out.sip is not None and all(c.endswith("-SIP") for c in out.wcs.ctype)
    # every point of the footprint, not only where the distortion vanishes
    grid_out = np.stack(np.meshgrid(np.linspace(-0.5, 135.5, 9), np.linspace(-0.5, 135.5, 9)), -1).reshape(-1, 2)
    grid_in = (grid_out + 0.5) * 64 / 136 - 0.5
    np.testing.assert_allclose(out.all_pix2world(grid_out, 0), src.all_pix2world(grid_in, 0), rtol=0, atol=1e-10)
    write_cutout(tmp_path / "s.fits", np.zeros((5, 136, 136), np.float32), "cfht", wcs=out)
    h = fits.getheader(tmp_path / "s.fits")
    assert h["CTYPE1"] == "RA---TAN-SIP" and h["A_ORDER"] == 2 and "A_2_0" in h
    back = read_cutout(tmp_path / "s.fits", "cfht").wcs
    np.testing.assert_allclose(back.all_pix2world(grid_out, 0), src.all_pix2world(grid_in, 0), rtol=0, atol=1e-10)


def test_rescale_with_a_scale_keeps_the_centre_and_the_sip_terms():
    """``rescale_wcs(..., scale=(sx, sy))``: output pixel p lies where input pixel c_in + s (p - c_out)
    does, about the two grids' centres, SIP included, for a reference pixel off the image and
    different scales and sizes per axis."""
    from astropy.wcs import WCS

    h = _sip_header()
    h["CRPIX1"], h["CRPIX2"] = -300.0, 410.0
    src = WCS(h, naxis=2)
    in_shape, out_shape, (sx, sy) = (64, 80), (130, 150), (0.47, 0.52)  # (H, W), input pixels per output pixel
    out = rescale_wcs(src, in_shape, out_shape, scale=(sx, sy))
    assert out.sip is not None
    xs, ys = np.meshgrid(np.linspace(-0.5, out_shape[1] - 0.5, 7), np.linspace(-0.5, out_shape[0] - 0.5, 7))
    p_out = np.stack([xs.ravel(), ys.ravel()], -1)
    c_in = (np.array([in_shape[1], in_shape[0]]) - 1) / 2  # 0-based centres (x, y)
    c_out = (np.array([out_shape[1], out_shape[0]]) - 1) / 2
    p_in = c_in + (p_out - c_out) * np.array([sx, sy])
    np.testing.assert_allclose(out.all_pix2world(p_out, 0), src.all_pix2world(p_in, 0), rtol=0, atol=1e-10)


def test_fluxmag0_in_the_primary_header_calibrates_an_extension(tmp_path):
    primary = fits.Header({"FLUXMAG0": 10 ** (27.5 / 2.5)})
    image = fits.Header(_wcs_header())
    image["BANDS"] = "u,g,r,i,z"
    data = _cube()
    fits.HDUList([fits.PrimaryHDU(header=primary), fits.ImageHDU(data, header=image)]).writeto(tmp_path / "x.fits")
    c = read_cutout(tmp_path / "x.fits", "sdss")
    np.testing.assert_allclose(c.data, data * 0.01, rtol=1e-6)
    assert any("FLUXMAG0" in w for w in c.warnings)


def test_sip_ctype_without_coefficients_is_not_written(tmp_path):
    from survey2survey.fits_io import wcs_cards

    h = _sip_header()
    for key in [k for k in h if k.startswith(("A_", "B_"))]:
        del h[key]
    fits.PrimaryHDU(_cube(), header=h).writeto(tmp_path / "x.fits")
    c = read_cutout(tmp_path / "x.fits", "sdss")
    cards = wcs_cards(rescale_wcs(c.wcs, (64, 64), (136, 136)))
    assert "-SIP" not in cards and "RA---TAN" in cards


@pytest.mark.parametrize("matrix", [[0.0, 0.0, 0.0, 0.0], [1e-4, 1e-4, 1e-4, 1e-4], [1e-4, 2e-4, -1e-4, -2e-4]])
def test_singular_cd_matrix_is_one_warning_and_no_wcs(tmp_path, matrix):
    h = _wcs_header()
    for key in ("PC1_1", "PC1_2", "PC2_1", "PC2_2", "CDELT1", "CDELT2"):
        h.remove(key, ignore_missing=True)
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = matrix
    fits.PrimaryHDU(_cube(), header=h).writeto(tmp_path / "s.fits")
    c = read_cutout(tmp_path / "s.fits", "sdss")
    assert c.wcs is None
    (w,) = [w for w in c.warnings if w.startswith("unusable WCS ignored")]
    assert "singular" in w and "\n" not in w


def test_pixel_scale_and_survey_guess():
    from survey2survey.fits_io import detect_survey, pixel_scale_arcsec

    for scale in (0.396, 0.187, 0.263, 1.19):
        wcs = make_wcs(10.0, 20.0, scale, (64, 64))
        assert pixel_scale_arcsec(wcs) == pytest.approx(scale, rel=1e-12)
    empty = fits.Header()
    assert detect_survey(empty, make_wcs(1, 2, 0.263, (64, 64))).name == "des"
    assert detect_survey(empty, make_wcs(1, 2, 0.396 * 1.02, (64, 64))).name == "sdss"
    assert detect_survey(empty, make_wcs(1, 2, 1.19, (64, 64))) is None  # 3x SDSS's: no survey
    assert detect_survey(empty, make_wcs(1, 2, 0.396 * 1.05, (64, 64))) is None
    rotated = _wcs_flavours(scale=0.187)["crota"]
    from astropy.wcs import WCS

    assert pixel_scale_arcsec(WCS(rotated)) == pytest.approx(0.187, rel=1e-12)


# --- bands: single-letter strings, fall-through, no guessing ------------------------------------


def _named_cube(tmp_path, name, order, **keys):
    data = _cube()
    h = _wcs_header()
    for k, v in keys.items():
        h[k] = v
    fits.PrimaryHDU(data[[BANDS.index(b) for b in order]], header=h).writeto(tmp_path / name)
    return tmp_path / name, data


def test_single_letter_bands_and_filter_fall_through(tmp_path):
    filters = {f"FILTER{i}": b for i, b in enumerate("zirgu", 1)}
    p, data = _named_cube(tmp_path, "zirgu.fits", "zirgu", BANDS="zirgu", **filters)
    c = read_cutout(p, "sdss")
    np.testing.assert_array_equal(c.data, data)
    assert not any("band keywords" in w for w in c.warnings)
    p, data = _named_cube(tmp_path, "ugriz.fits", "ugriz", BANDS="ugriz")
    c = read_cutout(p, "sdss")
    np.testing.assert_array_equal(c.data, data)
    assert not any("no band keywords" in w for w in c.warnings)
    # BANDS unreadable (3 names for 5 planes): FILTERn say the truth
    p, data = _named_cube(tmp_path, "fall.fits", "zirgu", BANDS="u,g,r", **filters)
    np.testing.assert_array_equal(read_cutout(p, "sdss").data, data)
    p, data = _named_cube(tmp_path, "space.fits", "iugzr", BANDS="i u g z r")
    np.testing.assert_array_equal(read_cutout(p, "sdss").data, data)


def test_unreadable_or_contradictory_band_keywords_are_errors(tmp_path):
    p, _ = _named_cube(tmp_path, "three.fits", "ugriz", BANDS="u,g,r")
    expected = r"three.fits: band keyword BANDS='u,g,r' names 3 band\(s\) for 5 image planes"
    with pytest.raises(CutoutError, match=expected):
        read_cutout(p, "sdss")
    filters = {f"FILTER{i}": b for i, b in enumerate("zirgu", 1)}
    p, _ = _named_cube(tmp_path, "disagree.fits", "zirgu", BANDS="u,g,r,i,z", **filters)
    with pytest.raises(CutoutError, match="band keywords disagree"):
        read_cutout(p, "sdss")
    p, _ = _named_cube(tmp_path, "number.fits", "ugriz", BANDS=5)
    with pytest.raises(CutoutError, match="cannot be read as 5 band names"):
        read_cutout(p, "sdss")


# --- units ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys, factor",
    [
        ({"BUNIT": "nanomaggy"}, 1.0),
        ({"BUNIT": "nmgy"}, 1.0),
        ({"BUNIT": "DN", "NMGY": 0.005}, 0.005),
        ({"BUNIT": "ADU", "MAGZP": 27.5}, 0.01),
        ({"BUNIT": "counts", "PHOTZP": 25.0}, 0.1),
        ({"BUNIT": "nJy"}, 1 / 3631.0),
        ({"BUNIT": "uJy"}, 1e3 / 3631.0),
        ({"BUNIT": "mJy"}, 1e6 / 3631.0),
        ({"BUNIT": "Jy"}, 1e9 / 3631.0),
        ({"BUNIT": "ADU (ZP 30)"}, 1e-3),
        ({"MAGZP": 25.0}, 0.1),  # no BUNIT, a zero point other than the survey's
        ({"FLUXMAG0": 10 ** (27.5 / 2.5)}, 0.01),  # HSC/LSST: counts of magnitude 0, no BUNIT
        ({"BUNIT": "counts", "FLUXMAG0": 10 ** (25.0 / 2.5)}, 0.1),
        ({"BUNIT": "ADU", "MAGZP": 27.5, "FLUXMAG0": 1e10}, 0.01),  # a zero point keyword first
        ({"BUNIT": "nanomaggy", "FLUXMAG0": 0.0}, 1.0),  # a flux unit: FLUXMAG0 not read
        ({"MAGZP": 22.5}, 1.0),
        ({}, 1.0),
    ],
)
def test_units_converted_to_the_survey_unit(tmp_path, keys, factor):
    p, data = _named_cube(tmp_path, "u.fits", "ugriz", BANDS="u,g,r,i,z", **keys)
    c = read_cutout(p, "sdss")
    np.testing.assert_allclose(c.data, data * factor, rtol=1e-6)
    converted = [w for w in c.warnings if w.startswith("pixel values converted")]
    assert len(converted) == (factor != 1.0)
    if not keys:
        return  # nothing says the unit: taken as the survey's own, whichever it is
    # into CFHT's ADU (ZP 30): 1 nanomaggy = 1000 ADU
    c = read_cutout(p, "cfht")
    np.testing.assert_allclose(c.data, data * factor * 1000, rtol=1e-6)


@pytest.mark.parametrize("keys, message", [
    ({"BUNIT": "W/m2"}, "BUNIT 'W/m2' is a unit s2s cannot convert"),
    ({"BUNIT": "MJy/sr"}, "BUNIT 'MJy/sr' is a unit s2s cannot convert"),
    ({"BUNIT": "DN"}, "BUNIT 'DN' is counts without a calibration keyword"),
])
def test_unknown_units_are_refused(tmp_path, keys, message):
    p, _ = _named_cube(tmp_path, "u.fits", "ugriz", BANDS="u,g,r,i,z", **keys)
    with pytest.raises(CutoutError, match=message) as info:
        read_cutout(p, "sdss")
    assert str(info.value).startswith(str(p)) and "sdss cutouts are in nanomaggy" in str(info.value)


def test_counts_without_zero_point_are_the_counting_surveys_own(tmp_path):
    p, data = _named_cube(tmp_path, "adu.fits", "ugriz", BANDS="u,g,r,i,z", BUNIT="ADU")
    np.testing.assert_array_equal(read_cutout(p, "cfht").data, data)


# --- flat bands, partial cutouts, compressed files, SDSS frames --------------------------------------


def test_zero_or_constant_band_warns(tmp_path):
    data = _cube()
    data[0] = 0.0
    data[3] = 7.0
    h = _wcs_header()
    h["BANDS"] = "u,g,r,i,z"
    fits.PrimaryHDU(data, header=h).writeto(tmp_path / "pad.fits")
    c = read_cutout(tmp_path / "pad.fits", "sdss")
    (w,) = [w for w in c.warnings if "no image there" in w]
    assert "u all zero" in w and "i constant (7)" in w


def test_a_sky_left_in_is_warned_of(tmp_path):
    """A cutout whose sky was not subtracted (0.5 nanomaggy on every pixel, about SDSS r's sky per
    pixel) is read with a warning naming the bands; a sky-subtracted one, noisy or noise-free, is not."""
    rng = np.random.default_rng(5)
    sigma = np.array([0.045, 0.017, 0.028, 0.05, 0.18])[:, None, None]  # SDSS's registry sky sigma
    h = _wcs_header()
    h["BANDS"] = "u,g,r,i,z"
    clean = (rng.normal(0, 1, (5, 64, 64)) * sigma + _blob(64, 31.5, 31.5) * 0.01).astype(np.float32)
    for name, data in (("clean", clean), ("truth", _blob(64, 31.5, 31.5)[None].repeat(5, 0)), ("sky", clean + 0.5)):
        fits.PrimaryHDU(data, header=h).writeto(tmp_path / f"{name}.fits")
    said = {name: [w for w in read_cutout(tmp_path / f"{name}.fits", "sdss").warnings if "border median" in w]
            for name in ("clean", "truth", "sky")}
    assert not said["clean"] and not said["truth"]
    (w,) = said["sky"]
    assert "g +29" in w and " z " not in w and "is the sky subtracted?" in w
    # an over-subtracted r band with a bright star on the border: the star must not hide it
    over = clean.copy()
    over[2] -= 10 * 0.028
    over[2] += _blob(64, 1.0, 40.0, width=1.5) * 0.2  # a star of ~280 nanomaggies (r 16.4) on the border
    fits.PrimaryHDU(over, header=h).writeto(tmp_path / "over.fits")
    (w,) = [w for w in read_cutout(tmp_path / "over.fits", "sdss").warnings if "border median" in w]
    assert re.search(r"r -(9|10)\b", w), w


def test_partial_reads_the_bands_present_in_survey_order(tmp_path):
    data = _cube()
    h = _wcs_header()
    h["FILTER"] = "r"
    fits.PrimaryHDU(data[2], header=h).writeto(tmp_path / "only_r.fits")
    with pytest.raises(CutoutError, match="missing band"):
        read_cutout(tmp_path / "only_r.fits", "sdss")
    c = read_cutout(tmp_path / "only_r.fits", "sdss", partial=True)
    assert c.bands == ("r",) and c.data.shape == (1, 64, 64)
    np.testing.assert_array_equal(c.data[0], data[2])
    p, _ = _named_cube(tmp_path, "zgi.fits", "zgi", BANDS="z,g,i")
    c = read_cutout(p, "sdss", partial=True)
    assert c.bands == ("g", "i", "z")
    np.testing.assert_array_equal(c.data, data[[1, 3, 4]])
    fits.PrimaryHDU(data[:2], header=_wcs_header()).writeto(tmp_path / "unnamed.fits")
    with pytest.raises(CutoutError, match="2 bands without names"):
        read_cutout(tmp_path / "unnamed.fits", "sdss", partial=True)


@pytest.mark.parametrize("suffix", [".fits.gz", ".fits.bz2", ".fits.fz"])
def test_compressed_files_are_found_and_read(tmp_path, suffix):
    import bz2
    import gzip

    data = _cube()
    h = _wcs_header()
    h["BANDS"] = "u,g,r,i,z"
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    target = raw_dir / f"obj{suffix}"
    if suffix == ".fits.fz":
        comp = fits.CompImageHDU(data, header=h, compression_type="GZIP_1", quantize_level=0.0)  # lossless
        fits.HDUList([fits.PrimaryHDU(), comp]).writeto(target)
    else:
        fits.PrimaryHDU(data, header=h).writeto(tmp_path / "plain.fits")
        packed = (gzip.compress if suffix.endswith("gz") else bz2.compress)((tmp_path / "plain.fits").read_bytes())
        target.write_bytes(packed)
    (source,) = find_cutouts([raw_dir])
    assert source.object_id == "obj" and source.path == target
    (source,) = find_cutouts([str(raw_dir / ("*" + suffix.rsplit(".", 1)[1]))])  # raw/*.bz2
    c = read_cutout(source, "sdss")
    np.testing.assert_array_equal(c.data, data)
    assert c.wcs is not None


def _sdss_frame(path, band="r", nmgy=0.005):
    """An SDSS frame-*.fits laid out as the archive serves it: image, 1-D calibration, two tables."""
    rng = np.random.default_rng(3)
    image = rng.normal(0, 0.02, (100, 120)).astype(np.float32)
    h = make_wcs(150.0, 2.0, 0.396, (100, 120)).to_header()
    h["FILTER"], h["BUNIT"], h["NMGY"], h["TELESCOP"] = band, "nanomaggy", nmgy, "SDSS 2.5-M"
    calib = fits.ImageHDU(np.full(120, nmgy, np.float32))
    sky = fits.BinTableHDU.from_columns([fits.Column(name="ALLSKY", format="E", array=np.zeros(3))])
    trace = fits.BinTableHDU.from_columns([fits.Column(name="AMPLITUDE", format="E", array=np.zeros(2))])
    fits.HDUList([fits.PrimaryHDU(image, header=h), calib, sky, trace]).writeto(path)
    return image


def test_sdss_frame_reads_the_image_and_ignores_the_rest(tmp_path):
    image = _sdss_frame(tmp_path / "frame-r-001000-1-0027.fits")
    c = read_cutout(tmp_path / "frame-r-001000-1-0027.fits", partial=True)
    assert c.survey.name == "sdss" and c.bands == ("r",) and c.unit == "nanomaggy"
    np.testing.assert_array_equal(c.data[0], image)
    assert c.pixel_scale == pytest.approx(0.396)
    with pytest.raises(CutoutError, match="missing band"):  # the learned models want all five
        read_cutout(tmp_path / "frame-r-001000-1-0027.fits")


# --- headers from any path; intact outputs of ours ---------------------------------------------------


def test_non_ascii_paths_are_written_escaped(tmp_path):
    name = "gal\u00e9xie_\u0394\u2013\u00fc.fits"
    prov = Provenance(source_file=str(tmp_path / name), model="m\u00f6del")
    out = write_cutout(tmp_path / "o.fits", _cube(), "sdss", provenance=prov, history=[f"from {name}\tok"],
                       header_cards=[("S2SOBJ", "gal\u00e9xie", "object id")])
    verify_fits(out)
    h = fits.getheader(out)
    assert h["S2SSRC"].endswith("gal\\xe9xie_\\u0394\\u2013\\xfc.fits") and h["S2SMODEL"] == "m\\xf6del"
    assert h["S2SOBJ"] == "gal\\xe9xie" and "from gal\\xe9xie" in str(h["HISTORY"]) and "\\tok" in str(h["HISTORY"])


def test_header_problem_names_the_input_file(tmp_path):
    prov = Provenance(source_file=str(tmp_path / "in.fits"))
    with pytest.raises(CutoutError) as info:
        write_cutout(tmp_path / "o.fits", _cube(), "sdss", provenance=prov, header_cards=[("S2SLIST", [1, 2], "x")])
    assert str(info.value).startswith(f"{tmp_path / 'in.fits'}: cannot write the FITS header for o.fits")
    assert not list(tmp_path.glob("*o.fits*"))


def test_verify_and_own_output(tmp_path):
    from survey2survey.fits_io import is_s2s_output

    mask = np.zeros((5, 64, 64), bool)
    mask[0, 1, 1] = True
    p = write_cutout(tmp_path / "o.fits", _cube(), "sdss", wcs=make_wcs(1.0, 2.0, 0.396, (64, 64)), mask=mask,
                     provenance=Provenance(model="m"))
    verify_fits(p)
    assert is_s2s_output(p)
    good = p.read_bytes()
    for raw in (good[:-3000] + bytes([good[-3000] ^ 1]) + good[-2999:],
                good.replace(b"MAGZP   =                 22.5", b"MAGZP   =                 22.6", 1),
                good[:-2880]):
        p.write_bytes(raw)
        with pytest.raises(CutoutError, match="FITS verification failed"):
            verify_fits(p)
        assert is_s2s_output(p)  # broken, but ours
    fits.PrimaryHDU(_cube()).writeto(tmp_path / "plain.fits")  # no checksums, not ours
    assert not is_s2s_output(tmp_path / "plain.fits")
    with pytest.raises(CutoutError, match="has no CHECKSUM/DATASUM"):
        verify_fits(tmp_path / "plain.fits")
    (tmp_path / "junk.fits").write_bytes(b"junk")
    assert not is_s2s_output(tmp_path / "junk.fits")


def test_header_cards_update_in_place_and_long_keywords(tmp_path):
    wcs = make_wcs(150.1, 2.2, 0.396, (64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's HIERARCH warning
        write_cutout(tmp_path / "o.fits", _cube(), "sdss", wcs=wcs,
                     header_cards=[("BUNIT", "override", "x"), ("S2SLONGKEYWORD", 1, "x")])
    verify_fits(tmp_path / "o.fits")
    with fits.open(tmp_path / "o.fits") as hdul:
        h = hdul[0].header
        assert h["BUNIT"] == "override" and list(h).count("BUNIT") == 1 and h["S2SLONGKEYWORD"] == 1
        assert h["WCSAXES"] == 2 and h["NAXIS"] == 3


def test_scaled_integer_data_read_as_astropy_scales_it(tmp_path):
    data = _cube(6)
    h = _wcs_header()
    h["BANDS"] = "u,g,r,i,z"
    stored = np.round(data * 100).astype(np.int16)
    h["XSCALE"], h["XZERO"] = 0.01, 5.0  # renamed below: astropy drops BSCALE/BZERO of unscaled data
    fits.PrimaryHDU(stored, header=h).writeto(tmp_path / "raw.fits")
    raw = (tmp_path / "raw.fits").read_bytes().replace(b"XSCALE  =", b"BSCALE  =").replace(b"XZERO   =", b"BZERO   =")
    (tmp_path / "i16.fits").write_bytes(raw)
    with fits.open(tmp_path / "i16.fits") as hdul:
        expected = hdul[0].data.astype(np.float32)
    c = read_cutout(tmp_path / "i16.fits", "sdss")
    np.testing.assert_array_equal(c.data, expected)
    np.testing.assert_allclose(c.data, stored * 0.01 + 5.0, atol=1e-5)  # physical = BZERO + BSCALE * stored
