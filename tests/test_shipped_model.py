"""The shipped models: the default (models/sdss-cfht) and the faithful `ours` (models/sdss-cfht-ours).

Both intact and documented; the default is translate's, and per direction it is the network
or the physics as its selection.json (experiments/ship_default.py) measured.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from survey2survey.cli import main
from survey2survey.data import example_dir
from survey2survey.fits_io import verify_fits
from survey2survey.model import default_model_dir, load_model, physics_directions

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "sdss-cfht"
OURS = ROOT / "models" / "sdss-cfht-ours"


def test_faithful_model_loads_and_matches_its_model_card():
    model = load_model(OURS)
    assert model.config["method"] == "ours" and model.config["name"] == "sdss-cfht-ours"
    assert set(model.config["directions"]) == {"sdss->cfht", "cfht->sdss"}
    n = sum(p.numel() for m in model.modules.values() for p in m.parameters())
    assert n == 1_425_093 + 1_019_269 + 2 * 22_010  # both generators and noise emulators
    card = (ROOT / "docs" / "model-card-ours.md").read_text()
    assert model.weights_sha256 in card
    assert f"{n:,}" in card
    iterations = sum(s["iterations"] for s in model.config["steps"].values())
    assert f"{iterations:,} iterations" in card


def test_default_model_is_the_measured_winner_per_direction_and_documented():
    model = load_model(SHIPPED)
    assert model.config["method"] == "ours-phys"
    selection = json.loads((SHIPPED / "selection.json").read_text())
    physics = physics_directions(model.config)
    for direction, choice in selection["choice"].items():
        assert (direction in physics) == (choice == "physics"), direction
    assert model.config["training_range"]["mag"] == [14.0, 21.0]
    card = (ROOT / "docs" / "model-card.md").read_text()
    assert model.weights_sha256 in card


def test_translate_uses_the_default_model_and_says_which_translator(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("S2S_MODEL", raising=False)
    assert default_model_dir().resolve() == SHIPPED.resolve()
    config = load_model(SHIPPED).config
    physics = physics_directions(config)
    for source, target in (("sdss", "cfht"), ("cfht", "sdss")):
        src = sorted((example_dir() / source).glob("*.fits"))[0]
        out = tmp_path / target
        code = main(["translate", str(src), "--to", target, "--out", str(out), "--seed", "1", "--workers", "0"])
        assert code == 0
        said = capsys.readouterr().err
        (written,) = out.glob("*.fits")
        verify_fits(written)
        assert re.match(rf"{src.stem}\.{target}\.fits$", written.name)
        with fits.open(written) as hdul:
            h = hdul[0].header
            assert np.isfinite(hdul[0].data).all() and h["SURVEY"] == target
            if f"{source}->{target}" in physics:
                assert h["S2SMETH"] == "physics"
                assert "translating by survey physics" in said and f"uses the physics for {source}->{target}" in said
            else:
                assert h["S2SMETH"] == "ours-phys" and h["S2SHASH"] == load_model(SHIPPED).weights_sha256
                assert h["S2SDIR"] == f"{source}->{target}"
                assert f"translating with model {config['name']} (ours-phys" in said


def test_selection_noise_split_has_known_answers():
    """experiments/against_physics: high-k noise ratios on the sky (corners) and on the galaxy
    (centre), per band.  Known answers: white noise twice as large is 4x the power; a bright
    galaxy in the centre of the difference leaves the corners' ratio alone."""
    from experiments.against_physics import _centre, _hk_ratio
    from survey2survey.physics.noise import corner_squares

    rng = np.random.default_rng(0)
    noise = rng.standard_normal((64, 2, 60, 60))
    diff = 2.0 * rng.standard_normal((64, 2, 60, 60))
    diff[:, 1, 30, 30] += 100.0  # an unresolved misfit at the centre, band 1: power 1e4 at every k
    assert corner_squares(diff).shape == (256, 2, 20, 20) and _centre(diff).shape == (64, 2, 20, 20)
    sky = _hk_ratio(corner_squares(diff), corner_squares(noise))
    galaxy = _hk_ratio(_centre(diff), _centre(noise))
    assert np.allclose(sky, 4.0, rtol=0.1)
    assert galaxy[0] == pytest.approx(4.0, rel=0.1)
    assert galaxy[1] == pytest.approx((4.0 * 400 + 1e4) / 400, rel=0.1)  # (noise + spike) / noise, 20 x 20 px


def test_a_noise_free_input_gets_no_hole_in_its_core(tmp_path):
    """The default network on a noise-free SDSS image (a simulation's truth): with a sky sigma of 0
    every faint wing counted as the object and R's sky correction was taken back from the core
    (u -42, z -16 CFHT sky sigma).  With the flux correction's sky floor the image is sane, and a
    noisy input is translated as before (the floor is far below the noise P carries)."""
    from survey2survey.pipelines.translate import translate
    from survey2survey.surveys import get_survey

    cfht = get_survey("cfht")
    truth = example_dir() / "truth" / "sdss" / "sim0000000.fits"
    report = translate([truth], "cfht", out_dir=tmp_path, noise=False)
    assert report.translated == 1
    out = fits.getdata(tmp_path / "sim0000000.cfht.fits")
    sigma = np.array([cfht.typical_sky_sigma(b) for b in cfht.bands])
    assert (out.min(axis=(1, 2)) > -sigma).all(), out.min(axis=(1, 2)) / sigma
    expected = fits.getdata(example_dir() / "truth" / "cfht" / "sim0000000.fits")
    yy, xx = np.mgrid[:136, :136] - 67.5
    circle = np.hypot(yy, xx) < 2 / cfht.pixel_scale
    ratio = out[:, circle].sum(axis=1) / expected[:, circle].sum(axis=1)
    assert np.all(np.abs(ratio - 1) < 0.15), ratio  # 2" flux near the truth's (the seeings differ)


@pytest.mark.parametrize("source", ["sdss", "cfht"])
def test_the_noise_free_rule_never_acts_on_noisy_inputs(source):
    """Both generators of the trained ours-phys on the bundled noisy examples: bit-identical with
    and without the noise-free rule (what P carries is far above a thousandth of the target's sigma)."""
    import torch

    from survey2survey.fits_io import read_cutout
    from survey2survey.surveys import get_survey, to_model_space

    target = "cfht" if source == "sdss" else "sdss"
    gen = load_model(ROOT / "models" / "sdss-cfht-ours-phys").modules[f"generator_{source}_to_{target}"].eval()
    gen.repair = None  # (which takes nothing away without the registry's sigma)
    survey = get_survey(source)
    x = torch.from_numpy(np.stack([to_model_space(read_cutout(f, survey).data, survey)
                                   for f in sorted((example_dir() / source).glob("*.fits"))]))
    with torch.no_grad():
        with_rule = gen(x)
        floor, gen.registry_sigma = gen.registry_sigma, None
        without = gen(x)
        gen.registry_sigma = floor
    assert floor is not None and torch.equal(with_rule, without)


def test_a_band_without_image_is_left_to_the_physics(tmp_path):
    """An SDSS cube whose u plane is all zero (padding, no coverage): the network painted a u
    galaxy from the other bands (44 % of the real u flux in 5") and moved their cores by ~20 % of
    the peak; the default now translates that cutout by the physics, every band its own, and says so."""
    from survey2survey.pipelines.translate import translate

    src = sorted((example_dir() / "sdss").glob("*.fits"))[0]
    (tmp_path / "in").mkdir()
    with fits.open(src) as h:
        h[0].data[0] = 0.0
        h.writeto(tmp_path / "in" / src.name)
    report = translate([tmp_path / "in"], "cfht", out_dir=tmp_path / "default", noise=False)
    physics = translate([tmp_path / "in"], "cfht", model_dir="physics", out_dir=tmp_path / "physics", noise=False)
    assert report.translated == physics.translated == 1
    said = " ".join(message for _, message in report.warned)
    assert "translated by the physics instead of the network: band(s) u hold no image" in said
    out = fits.getdata(report.outputs[0])
    np.testing.assert_array_equal(out, fits.getdata(physics.outputs[0]))
    assert not out[0].any()  # nothing painted where there was no image


def test_a_direction_left_to_the_physics_names_the_model_that_chose_it(tmp_path):
    """The default's CFHT -> SDSS is the physics: its outputs say which model chose it and why
    (they were the same as `--model physics`'s, with nothing of the model)."""
    from survey2survey.model.store import weights_sha256
    from survey2survey.pipelines.translate import translate

    src = sorted((example_dir() / "cfht").glob("*.fits"))[0]
    report = translate([src], "sdss", out_dir=tmp_path, noise=False)
    h = fits.getheader(report.outputs[0])
    assert h["S2SMODEL"] == "physics" and h["S2SBYMOD"] == "sdss-cfht"
    assert h["S2SBYHSH"] == weights_sha256(SHIPPED)
    assert "model sdss-cfht uses the physics for cfht->sdss (the network did not beat" in "".join(h["HISTORY"])


def test_engine_options_on_a_physics_direction_are_said_unused(tmp_path):
    """`--backend onnx` with the default model into SDSS (its physics direction) ran the physics
    and said nothing; it now says the option was not used (refusing it would refuse the same
    command that runs the network the other way)."""
    from survey2survey.pipelines.translate import translate

    src = sorted((example_dir() / "cfht").glob("*.fits"))[:1]
    report = translate(src, "sdss", out_dir=tmp_path, noise=False, backend="onnx")
    assert report.translated == 1
    assert any("--backend not used: model sdss-cfht translates cfht->sdss by the physics" in n for n in report.notes)
    plain = translate(src, "sdss", out_dir=tmp_path / "plain", noise=False)
    assert not any("not used" in n for n in plain.notes)


def test_a_cutout_with_some_bands_is_left_to_the_physics(tmp_path):
    """A g, r, i cube through the default: the network needs all five bands, so the physics
    translates it, band by band, and says so (it was refused: `missing band(s) u,z`)."""
    from survey2survey.pipelines.translate import translate

    src = sorted((example_dir() / "sdss").glob("*.fits"))[0]
    (tmp_path / "in").mkdir()
    with fits.open(src) as h:
        header = h[0].header.copy()
        header["BANDS"] = "g,r,i"
        for k in range(1, 6):
            header.remove(f"BAND{k}", ignore_missing=True)
        fits.PrimaryHDU(h[0].data[1:4], header).writeto(tmp_path / "in" / "gri.fits")
    report = translate([tmp_path / "in"], "cfht", out_dir=tmp_path / "out", noise=False)
    assert report.translated == 1 and not report.failed
    assert any("translated by the physics instead of the network: missing band(s) u,z" in m for _, m in report.warned)
    h = fits.getheader(report.outputs[0])
    assert h["BANDS"] == "g,r,i" and h["S2SMODEL"] == "physics" and h["NAXIS3"] == 3


def test_a_flat_band_under_a_model_without_physics_is_translated_by_its_network(tmp_path):
    """A model whose surveys carry no PSF or noise has no physics to fall back on: a cutout with an
    empty band is translated by its network as before (with the reader's warning), not refused."""
    import sys

    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from _models import galaxy
    from survey2survey.fits_io import write_cutout
    from survey2survey.model import save_model
    from survey2survey.nets import generator_cfht_to_sdss, generator_sdss_to_cfht
    from survey2survey.pipelines.translate import translate
    from survey2survey.surveys import get_survey

    def without_physics(survey):
        d = dict(get_survey(survey).to_dict())
        for key in ("psf_profile", "psf_fwhm", "psf_beta", "sky_sigma", "depth", "sky_brightness", "noise_model"):
            d.pop(key, None)
        return d

    torch.manual_seed(0)
    modules = {"generator_sdss_to_cfht": generator_sdss_to_cfht(), "generator_cfht_to_sdss": generator_cfht_to_sdss()}
    directions = {"sdss->cfht": {"generator": "generator_sdss_to_cfht", "noise_emulator": None},
                  "cfht->sdss": {"generator": "generator_cfht_to_sdss", "noise_emulator": None}}
    config = {"name": "nophys", "method": "ours", "directions": directions,
              "surveys": {"a": without_physics("sdss"), "b": without_physics("cfht")}}
    model = save_model(tmp_path / "model", modules, config)
    data, wcs = galaxy(get_survey("sdss"), 1)[:2]
    data = np.asarray(data, np.float32).copy()
    data[0] = 0.0
    (tmp_path / "in").mkdir()
    write_cutout(tmp_path / "in" / "obj.fits", data, "sdss", wcs=wcs)
    report = translate([tmp_path / "in"], "cfht", model_dir=model, out_dir=tmp_path / "out", noise=False, workers=0)
    assert report.translated == 1 and not report.failed
    assert fits.getheader(report.outputs[0])["S2SMETH"] == "ours"
    assert any("u all zero: no image there" in m for _, m in report.warned)


def test_the_network_on_a_smaller_cutout_agrees_with_it_on_its_own(tmp_path):
    """The shipped network on the central 48 x 48 px of the bundled SDSS examples agrees with its
    translation of the whole 64 x 64 there: a convolutional correction on the physics, which only
    the sky statistics of the frame (the object mask, the anchor's gate) tell apart.  A physics
    operator one pixel off differs by 15-30 % of the peak."""
    from survey2survey.pipelines.translate import translate

    crops = tmp_path / "c48"
    crops.mkdir()
    for path in sorted((example_dir() / "sdss").glob("*.fits"))[:4]:
        with fits.open(path) as hdul:
            header = hdul[0].header.copy()
            header["CRPIX1"] -= 8
            header["CRPIX2"] -= 8
            fits.PrimaryHDU(hdul[0].data[:, 8:56, 8:56], header).writeto(crops / path.name)
    whole = translate(sorted((example_dir() / "sdss").glob("*.fits"))[:4], "cfht", out_dir=tmp_path / "o64", noise=False)
    part = translate(sorted(crops.glob("*.fits")), "cfht", out_dir=tmp_path / "o48", noise=False)
    assert not whole.failed and not part.failed
    yy, xx = np.indices((102, 102))
    core = np.hypot(yy - 50.5, xx - 50.5) < 3 / 0.187
    for path in sorted((tmp_path / "o48").glob("*.fits")):
        small, header = fits.getdata(path).astype(float), fits.getheader(path)
        assert header["S2SMETH"] == "ours-phys" and small.shape == (5, 102, 102)
        large = fits.getdata(tmp_path / "o64" / path.name).astype(float)[:, 17:119, 17:119]  # the same pixels
        g_to_i = slice(1, 4)
        diff = np.abs(small - large)[g_to_i, 15:87, 15:87].max(axis=(1, 2))
        assert (diff < 0.05 * large[g_to_i].max(axis=(1, 2))).all(), (path.name, diff)
        np.testing.assert_allclose(small[g_to_i][:, core].sum(1), large[g_to_i][:, core].sum(1), rtol=0.03)


def test_the_default_leaves_no_speck_on_the_examples():
    """The default network on the bundled SDSS examples, noise-free: without its speck repair three
    u peaks above 5 CFHT sky sigma stand where the truth has nothing (SDSS noise spikes it left);
    with it none."""
    import torch
    from scipy import ndimage

    from survey2survey.fits_io import read_cutout
    from survey2survey.surveys import get_survey, to_model_space, unstretch

    sdss, cfht = get_survey("sdss"), get_survey("cfht")
    gen = load_model(SHIPPED).modules["generator_sdss_to_cfht"].eval()
    files = sorted((example_dir() / "sdss").glob("*.fits"))
    x = torch.from_numpy(np.stack([to_model_space(read_cutout(f, sdss).data, sdss) for f in files]))
    sigma = gen.registry_sigma.numpy().reshape(5, 1, 1)
    truth = np.stack([fits.getdata(example_dir() / "truth" / "cfht" / f.name) for f in files]) * cfht.flux_factor
    empty = ndimage.uniform_filter(truth, size=(1, 1, 3, 3)) < sigma  # where the truth has nothing

    def specks(images):
        images = images / sigma
        peaks = (images == ndimage.maximum_filter(images, size=(1, 1, 3, 3))) & (images > 5) & empty
        return peaks[..., 6:-6, 6:-6].sum(axis=(0, 2, 3))

    with torch.no_grad():
        repaired = unstretch(gen(x)).numpy()
        gen.repair, repair = None, gen.repair
        left = unstretch(gen(x)).numpy()
    assert repair is not None and specks(left)[0] >= 2
    assert specks(repaired).sum() == 0


def test_the_translator_sent_to_the_workers_carries_no_resized_network(tmp_path):
    """The reader/writer processes get the translator with every task: the networks built for
    other cutout sizes stay in the main process, as the model's own do."""
    import pickle

    from survey2survey.fits_io import make_wcs, read_cutout, write_cutout
    from survey2survey.surveys import get_survey
    from survey2survey.translators.learned import LearnedTranslator

    sdss = get_survey("sdss")
    yy, xx = np.mgrid[0:100, 0:100] - 49.5
    big = (20 * np.exp(-np.hypot(yy, xx) / 3))[None].repeat(5, axis=0).astype(np.float32)
    write_cutout(tmp_path / "big.fits", big, sdss, wcs=make_wcs(151.0, 2.0, sdss.pixel_scale, (100, 100)))
    translator = LearnedTranslator.load(SHIPPED, "cfht", device="cpu")
    translator.start()
    translator.batch_size(None, 1)
    before = len(pickle.dumps(translator))
    prepared = translator.prepare(read_cutout(tmp_path / "big.fits", sdss), sdss)
    out = translator.run([prepared], np.array([7]), 1)
    assert np.asarray(out[0]).shape[-2:] == (212, 212) and translator._sized  # a network built for 100 x 100
    assert len(pickle.dumps(translator)) < before + 10_000
