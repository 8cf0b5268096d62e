"""The translator interface: a non-learned translator runs through the real translate pipeline.

``BlockSum`` is the smallest honest translator: it bins an SDSS cutout 2x2 into a survey
with twice the pixel scale, summing the flux of each block (flux conserved, output size
= the input footprint on the target grid).  Run per cutout (in the worker processes) and
batched (in the main process), it must give the same files, with the interface's
geometry, provenance and description, and the pipeline's skipping and failure lines.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from _models import galaxy, write_inputs
from survey2survey import surveys
from survey2survey.errors import CutoutError
from survey2survey.fits_io import Provenance, rescale_wcs, wcs_cards
from survey2survey.pipelines.translate import translate_with
from survey2survey.surveys import Survey, get_survey
from survey2survey.translators import Geometry, Prepared, Translator, resample_mask

SDSS = get_survey("sdss")


class BlockSum(Translator):
    """SDSS -> a survey of 2x2 SDSS pixels: each output pixel is the summed flux of a block."""

    def __init__(self, target: Survey, per_cutout: bool = True, bands: tuple[str, ...] | None = None):
        self.target, self.sources, self.per_cutout = target, {"sdss": SDSS}, per_cutout
        self.bands = bands or target.bands  # the bands it writes (a subset: the others are left out)

    def describe(self) -> str:
        return "block-sum 2x2 (test)"

    def batch_size(self, requested, samples):
        return 1 if self.per_cutout else (requested or 3)

    def prepare(self, cutout, survey) -> Prepared:
        c, h, w = cutout.data.shape
        if h % 2 or w % 2:
            raise CutoutError(cutout.path, f"odd size {w}x{h} px cannot be binned 2x2")
        shape = (h // 2, w // 2)
        wcs = wcs_cards(rescale_wcs(cutout.wcs, (h, w), shape)) if cutout.wcs is not None else None
        keep = [survey.band_index(b) for b in self.bands]
        mask = resample_mask(cutout.mask[keep], shape) if cutout.mask is not None else None
        return Prepared(survey, cutout.data[keep], Geometry(shape, self.bands, wcs), mask, list(cutout.warnings))

    def run(self, batch, keys, samples):
        out = []
        for p in batch:
            c, h, w = p.x.shape
            binned = p.x.reshape(c, h // 2, 2, w // 2, 2).sum(axis=(2, 4))  # (C, H/2, W/2)
            out.append(np.repeat(binned[None], samples, axis=0))  # (S, C, H/2, W/2)
        return out

    def provenance(self, prepared, object_id, seed, n_samples):
        prov = Provenance(method="block-sum", direction=f"sdss->{self.target.name}", source_survey="sdss",
                          target_survey=self.target.name, seed=seed, backend=self.describe(), noise="no")
        return prov, ["2x2 block sum of the SDSS pixels (flux conserved)"], [("S2SNSAMP", n_samples, "copies")]


@pytest.fixture
def binned_survey():
    target = Survey("sdssbin", SDSS.bands, 2 * SDSS.pixel_scale, SDSS.cutout_size // 2, SDSS.zero_point,
                    SDSS.flux_factor, SDSS.flux_unit)
    surveys.register_survey(target)
    yield target
    surveys._registry.pop("sdssbin", None)


@pytest.mark.parametrize("per_cutout, workers", [(True, 0), (True, 2), (False, 2)])
def test_a_non_learned_translator_runs_through_the_pipeline(binned_survey, tmp_path, per_cutout, workers):
    write_inputs(tmp_path / "in", SDSS, 5)
    (tmp_path / "in" / "broken.fits").write_bytes(b"not a FITS file")
    translator = BlockSum(binned_survey, per_cutout)
    report = translate_with(translator, [tmp_path / "in"], out_dir=tmp_path / "out", workers=workers, seed=3)
    assert report.translated == 5 and report.exit_code == 1
    assert [p for p, _ in report.failed] == [str(tmp_path / "in" / "broken.fits")]
    assert report.backend == "block-sum 2x2 (test)" and report.directions == {"sdss->sdssbin": 5}
    for i in range(5):
        data, in_wcs = galaxy(SDSS, i, ra=150 + i * 0.01)
        with fits.open(tmp_path / "out" / f"J{i:04d}.sdssbin.fits", checksum=True) as hdul:
            h, out = hdul[0].header, hdul[0].data
            assert out.shape == (5, 32, 32) and h["SURVEY"] == "sdssbin"
            assert h["S2SBACK"] == "block-sum 2x2 (test)" and h["S2SMETH"] == "block-sum" and h["S2SOBJ"] == f"J{i:04d}"
            assert h["S2SSEED"] == 3 and "2x2 block sum" in str(h["HISTORY"])
            np.testing.assert_allclose(out.sum(axis=(1, 2)), data.sum(axis=(1, 2)), rtol=1e-5)  # flux conserved
            np.testing.assert_allclose(out[:, 3, 4], data[:, 6:8, 8:10].sum(axis=(1, 2)), rtol=1e-6)
            wcs = WCS(h).celestial
        np.testing.assert_allclose(proj_plane_pixel_scales(wcs) * 3600, 2 * SDSS.pixel_scale, rtol=1e-9)
        centre_in = in_wcs.all_pix2world([[31.5, 31.5]], 0)[0]
        np.testing.assert_allclose(wcs.all_pix2world([[15.5, 15.5]], 0)[0], centre_in, atol=1e-10)
    again = translate_with(translator, [tmp_path / "in"], out_dir=tmp_path / "out", workers=workers)
    assert again.translated == 0 and again.skipped == 5


def test_per_cutout_and_batched_schedules_write_the_same_files(binned_survey, tmp_path):
    write_inputs(tmp_path / "in", SDSS, 7)
    for per_cutout in (True, False):
        translate_with(BlockSum(binned_survey, per_cutout), [tmp_path / "in"], out_dir=tmp_path / str(per_cutout),
                       samples=2, workers=2)
    for i in range(7):
        name = f"J{i:04d}.sdssbin.fits"
        with fits.open(tmp_path / "True" / name) as a, fits.open(tmp_path / "False" / name) as b:
            assert [x.name for x in a] == [y.name for y in b] == ["PRIMARY", "SAMPLE2"]
            assert all(np.array_equal(x.data, y.data) for x, y in zip(a, b))


def test_a_translator_may_write_some_bands_only(binned_survey, tmp_path):
    write_inputs(tmp_path / "in", SDSS, 2)
    report = translate_with(BlockSum(binned_survey, bands=("g", "r")), [tmp_path / "in"], out_dir=tmp_path / "out")
    assert report.translated == 2
    data = galaxy(SDSS, 1, ra=150.01)[0]
    with fits.open(tmp_path / "out" / "J0001.sdssbin.fits") as hdul:
        assert hdul[0].header["BANDS"] == "g,r" and hdul[0].data.shape == (2, 32, 32)
        np.testing.assert_allclose(hdul[0].data.sum(axis=(1, 2)), data[1:3].sum(axis=(1, 2)), rtol=1e-5)


class _FailsOnBright(BlockSum):
    """Raises in run() for cutouts brighter than ``limit``: the others must still be written."""

    limit = 0.0

    def run(self, batch, keys, samples):
        if any(p.x.max() > self.limit for p in batch):
            raise ValueError("too bright\nsecond line")
        return super().run(batch, keys, samples)


def test_a_translator_failing_on_one_cutout_fails_that_cutout_only(binned_survey, tmp_path):
    paths = write_inputs(tmp_path / "in", SDSS, 4)
    peaks = [float(galaxy(SDSS, i)[0].max()) for i in range(4)]
    brightest = int(np.argmax(peaks))
    translator = _FailsOnBright(binned_survey)
    translator.limit = (peaks[brightest] + sorted(peaks)[-2]) / 2
    report = translate_with(translator, [tmp_path / "in"], out_dir=tmp_path / "out", workers=2)
    assert report.translated == 3 and report.exit_code == 1
    assert report.failed == [(str(paths[brightest]), f"{paths[brightest]}: translation failed (ValueError: too bright)")]
