"""FITS cutout reading in every layout, writing with provenance, and clear errors."""

import os
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs.utils import proj_plane_pixel_scales

from survey2survey import __version__
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


# --- the fast paths give what astropy gives ----------------------------------------------------


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
    return {"cd": cd, "pc": pc, "crota": crota, "fk5": fk5, "cube3": cube, "gal_sin": gal_sin, "tpv": tpv}


@pytest.mark.parametrize("name", [n for n in _wcs_flavours() if n != "tpv"])
def test_one_parse_wcs_is_astropys_wcs(tmp_path, name):
    """The reader's WCS (wcslib parse only) equals WCS(header, naxis=2), through the file's text too."""
    from astropy.wcs import WCS

    from survey2survey.fits_io import _PlainHDU, _plain_wcs, _read_plain

    header = _wcs_flavours()[name]
    header["BANDS"] = "u,g,r,i,z"
    fits.PrimaryHDU(_cube(), header=header).writeto(tmp_path / "w.fits")
    plain = _read_plain(tmp_path / "w.fits", (tmp_path / "w.fits").stat().st_size)
    assert isinstance(plain, _PlainHDU)
    expected = WCS(plain.header, naxis=2)
    for text in (None, plain.text):
        fast = _plain_wcs(plain.header, text)
        assert fast is not None
        assert fast.to_header_string(relax=True) == expected.to_header_string(relax=True)
        assert fast.wcs.compare(expected.wcs) and fast.naxis == expected.naxis == 2
        assert fast.pixel_shape == expected.pixel_shape == (64, 64, 5)  # every NAXISn, as astropy keeps them
        assert fast.sip is None and fast.is_celestial == expected.is_celestial


def test_one_parse_wcs_leaves_distortions_to_astropy():
    from survey2survey.fits_io import _plain_wcs

    sip = _wcs_header()
    sip["CTYPE1"], sip["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    sip["A_ORDER"], sip["B_ORDER"], sip["A_2_0"], sip["B_0_2"] = 2, 2, 1e-6, -2e-6
    assert _plain_wcs(sip) is None
    assert _plain_wcs(_wcs_flavours()["tpv"]) is None  # PVi_j: astropy's SCAMP handling decides
    singular = _wcs_header()
    singular["PC1_1"] = singular["PC2_2"] = 0.0
    assert _plain_wcs(singular) is None  # astropy's WCS() then gives its own error


@pytest.mark.parametrize("name", list(_wcs_flavours()))
def test_wcs_cards_are_what_the_rescaled_wcs_writes(name):
    """wcs_cards (what translate's readers hand the writers) = astropy's header of the WCS, and of its re-read text."""
    from astropy.wcs import WCS

    from survey2survey.fits_io import wcs_cards

    with np.errstate(all="ignore"):
        wcs = rescale_wcs(WCS(_wcs_flavours()[name], naxis=2), (64, 64), (136, 136))
    cards = wcs_cards(wcs)
    assert cards == wcs.to_header(relax=False).tostring(endcard=False, padding=False)
    # the cards the writer made before, from the relax=True text it was handed (and put as
    # they were in SAMPLEn extensions)
    relaxed = fits.Header.fromstring(wcs.to_header_string(relax=True))
    assert cards == WCS(relaxed).to_header(relax=False).tostring(endcard=False, padding=False)
    assert cards == relaxed.tostring(endcard=False, padding=False)


@pytest.fixture
def fixed_clock(monkeypatch):
    """Same timestamps for astropy's CHECKSUM comments and ours, so that files compare byte for byte."""
    import datetime as dt

    import astropy.io.fits.hdu.base as hdu_base

    from survey2survey import fits_io

    when = dt.datetime(2030, 1, 2, 3, 4, 5)

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return when.replace(tzinfo=tz) if tz else when

    monkeypatch.setattr(fits_io, "_dt", type("dt", (), {"datetime": Clock, "timezone": dt.timezone}))
    monkeypatch.setattr(hdu_base._ValidHDU, "_get_timestamp", lambda self: when.isoformat()[:19])


def _write_with_astropy(path, data, survey, **kw):
    """write_cutout through astropy's HDUList (the path the byte-level writer reproduces)."""
    from survey2survey import fits_io

    real = fits_io._cutout_hdus
    fits_io._cutout_hdus = lambda *a: None
    try:
        return write_cutout(path, data, survey, **kw)
    finally:
        fits_io._cutout_hdus = real


@pytest.mark.parametrize("case", ["plain", "wcs_text", "everything"])
def test_byte_level_writer_writes_astropys_bytes(tmp_path, fixed_clock, case):
    from survey2survey import fits_io
    from survey2survey.fits_io import _cutout_hdus, _intact_s2s_output, wcs_cards

    data = _cube(3)
    kw = {}
    if case == "wcs_text":
        kw = dict(wcs=wcs_cards(make_wcs(150.1, 2.2, 0.396, (64, 64))), mask=np.zeros(data.shape, bool))
    elif case == "everything":
        mask = np.zeros(data.shape, bool)
        mask[2, 5, 6:9] = True
        kw = dict(
            wcs=make_wcs(150.1, 2.2, 0.396, (64, 64)), mask=mask,
            provenance=Provenance(model="m" * 90, model_sha256="ab" * 32, source_file="d/" + "x" * 100 + ".fits",
                                  seed=7, extra={"S2SXTRA": (1.5, "a float"), "S2SBOOL": (True, "a bool")}),
            history=["short", "a long line " * 12, ""],
            header_cards=[("S2SOBJ", "obj", "object id"), ("S2SNEG", -0.0, "negative zero"),
                          ("S2SI", np.int64(3), "a numpy integer")],
            extra_hdus=[fits.ImageHDU(data + 1, name="SAMPLE2")],
        )
    assert _cutout_hdus(data, fits_io.get_survey("sdss"), kw.get("wcs"), [], (), None, ()) is not None
    fast = write_cutout(tmp_path / "fast.fits", data, "sdss", **kw)
    if case == "everything":  # extensions are written as they are: give astropy fresh ones
        kw["extra_hdus"] = [fits.ImageHDU(data + 1, name="SAMPLE2")]
    slow = _write_with_astropy(tmp_path / "slow.fits", data, "sdss", **kw)
    assert fast.read_bytes() == slow.read_bytes()
    verify_fits(fast)
    with fits.open(fast, checksum=True) as hdul:  # astropy checks CHECKSUM/DATASUM of every HDU
        assert all(h._checksum_valid and h._datasum_valid for h in hdul)
    assert _intact_s2s_output(fast) == (case == "everything")  # the quick check is for s2s's own outputs


def test_repeated_or_odd_keywords_go_through_astropy(tmp_path, monkeypatch):
    from survey2survey import fits_io

    data = _cube(4)
    built = []
    real = fits_io._cutout_hdulist
    monkeypatch.setattr(fits_io, "_cutout_hdulist", lambda *a: built.append(a) or real(*a))
    wcs = make_wcs(150.1, 2.2, 0.396, (64, 64))
    for i, cards in enumerate([[("BUNIT", "override", "x")], [("WCSAXES", 3, "odd")], [("S2SLONGKEYWORD", 1, "x")]]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy's HIERARCH warning
            write_cutout(tmp_path / f"{i}.fits", data, "sdss", wcs=wcs, header_cards=cards)
        assert len(built) == i + 1
        verify_fits(tmp_path / f"{i}.fits")
    with fits.open(tmp_path / "0.fits") as hdul:  # updated in place, as astropy does
        assert hdul[0].header["BUNIT"] == "override" and list(hdul[0].header).count("BUNIT") == 1
    for p in tmp_path.iterdir():
        p.unlink()
    with pytest.raises(ValueError, match="ASCII"):  # astropy's error either way
        write_cutout(tmp_path / "bad.fits", data, "sdss", provenance=Provenance(source_file="caf\u00e9.fits"))
    assert not list(tmp_path.iterdir())


def test_quick_check_of_existing_outputs_defers_to_astropy(tmp_path):
    """verify_fits accepts an intact s2s output at once; anything else gets astropy's check and message."""
    from survey2survey.fits_io import _intact_s2s_output

    mask = np.zeros((5, 64, 64), bool)
    mask[0, 1, 1] = True
    p = write_cutout(tmp_path / "o.fits", _cube(), "sdss", wcs=make_wcs(1.0, 2.0, 0.396, (64, 64)), mask=mask,
                     provenance=Provenance(model="m"))
    good = p.read_bytes()
    assert _intact_s2s_output(p)
    verify_fits(p)
    damaged = {
        "data": good[:-3000] + bytes([good[-3000] ^ 1]) + good[-2999:],
        "header": good.replace(b"MAGZP   =                 22.5", b"MAGZP   =                 22.6", 1),
        "truncated": good[:-2880],
        "appended": good + bytes(2880),
    }
    for name, raw in damaged.items():
        p.write_bytes(raw)
        assert not _intact_s2s_output(p), name
        if name != "appended":
            with pytest.raises(CutoutError, match="FITS verification failed"):
                verify_fits(p)
    fits.PrimaryHDU(_cube()).writeto(tmp_path / "plain.fits")  # no checksums, not ours
    assert not _intact_s2s_output(tmp_path / "plain.fits")
    with pytest.raises(CutoutError, match="has no CHECKSUM/DATASUM"):
        verify_fits(tmp_path / "plain.fits")


def test_one_read_of_a_plain_file_equals_astropys_read(tmp_path, monkeypatch):
    """read_cutout's one-read path gives the header, data, WCS and warnings that fits.open gives."""
    from survey2survey import fits_io

    data = _cube(6)
    data[1, 2, 3] = np.nan
    header = _wcs_header()
    header["BANDS"] = "u,g,r,i,z"
    header["OBJECT"] = "x" * 100  # a long string: CONTINUE cards
    paths = [tmp_path / "f32.fits", tmp_path / "i16.fits", tmp_path / "scaled.fits"]
    fits.PrimaryHDU(data, header=header).writeto(paths[0])
    fits.PrimaryHDU(np.nan_to_num(data * 100).astype(np.int16), header=header).writeto(paths[1])
    bands_card = fits.Card("BANDS", "u,g,r,i,z").image.encode()
    paths[2].write_bytes(paths[1].read_bytes().replace(bands_card, fits.Card("BZERO", 5.0).image.encode(), 1))
    raw = paths[0].read_bytes()
    paths.append(tmp_path / "lower.fits")  # a non-standard card astropy fixes when it checks the header
    paths[-1].write_bytes(raw.replace(b"BANDS   = ", b"bands   = ", 1))
    read = {p: fits_io.read_cutout(p) for p in paths}
    assert fits_io._read_plain(paths[0], len(raw)) is not None and fits_io._read_plain(paths[2], 1 << 20) is None
    monkeypatch.setattr(fits_io, "_read_plain", lambda path, size: None)  # always fits.open
    for p in paths:
        a, b = read[p], fits_io.read_cutout(p)
        np.testing.assert_array_equal(a.data, b.data)
        texts, notes = [], []
        for c in (a, b):  # the header is as read: astropy's card check (and its warnings) still to come
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                texts.append(c.header.tostring())
            notes.append([str(w.message) for w in seen])
        assert texts[0] == texts[1] and notes[0] == notes[1] and (p.name != "lower.fits" or notes[0])
        assert a.warnings == b.warnings and a.bands == b.bands
        assert a.wcs.to_header_string(relax=True) == b.wcs.to_header_string(relax=True)
        assert a.wcs.pixel_shape == b.wcs.pixel_shape
        np.testing.assert_array_equal(a.mask, b.mask)
