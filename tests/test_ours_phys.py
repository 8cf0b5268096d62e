"""ours-phys: generators on the physics translation, physics-initialised noise, the default model's choice.

Known answers: the torch physics operator equals the numpy physics translator (noise-free);
a residual generator with any weights keeps every band's flux; the physics noise emulator
has the registry's sigma and pixel correlation; a model that leaves a direction to the
physics translates it with the physics and says so.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from survey2survey.cli import app
from survey2survey.model import leave_to_physics, load_model, model_directions, physics_directions
from survey2survey.nets.residual import PhysicsResidualGenerator, physics_noise_emulator
from survey2survey.nets.repair import LIFT_SIGMA
from survey2survey.physics.noise import lag1_correlation
from survey2survey.physics.translator import PhysicsTranslator
from survey2survey.surveys import get_survey, stretch, unstretch
from survey2survey.train import TrainOptions, train
from survey2survey.translators.learned import OUT_OF_RANGE, range_warnings
from tests._models import write_inputs
from tests._tiny_dataset import make_tiny_dataset


def _native(rng, survey, n, size):
    # positive "galaxies" plus sky noise in native units
    return (rng.gamma(0.5, 1.0, (n, survey.n_bands, size, size)) * 0.2 / survey.flux_factor).astype(np.float32)


@pytest.mark.parametrize("source,target", [("cfht", "sdss"), ("sdss", "cfht")])
def test_physics_operator_is_the_physics_translator(source, target):
    src, tgt = get_survey(source), get_survey(target)
    gen = PhysicsResidualGenerator.from_surveys(src, tgt, 5, src.cutout_size, tgt.cutout_size)
    native = _native(np.random.default_rng(1), src, 2, src.cutout_size)
    ref, _, _ = PhysicsTranslator(src, tgt).translate_batch(native, list(src.bands), noise=False)
    with torch.no_grad():
        prior = gen.prior(torch.from_numpy(stretch(native * src.flux_factor).astype(np.float32))).numpy()
        out = gen(torch.from_numpy(stretch(native * src.flux_factor).astype(np.float32))).numpy()
    ref_flux = ref * tgt.flux_factor
    assert prior.shape == ref_flux.shape
    assert np.abs(prior - ref_flux).max() < 1e-5 * ref_flux.max()
    # R starts at zero: the generator is the physics translation
    assert np.abs(out - stretch(prior)).max() < 1e-6


@pytest.mark.parametrize("correction", ["object", "frame"])
def test_residual_keeps_every_bands_flux_whatever_its_weights(correction):
    src, tgt = get_survey("sdss"), get_survey("cfht")
    gen = PhysicsResidualGenerator.from_surveys(src, tgt, 5, 64, 136, correction=correction)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in gen.residual.parameters():
            p.normal_(0.0, 0.1)
        rng = np.random.default_rng(2)
        yy, xx = np.mgrid[0:64, 0:64] - 31.5
        galaxy = 30.0 * np.exp(-(yy**2 + xx**2) / (2 * 4.0**2))  # nanomaggies, on a sky of sigma 0.05
        flux = galaxy[None, None] * rng.uniform(0.5, 2.0, (3, 5, 1, 1)) + 0.05 * rng.standard_normal((3, 5, 64, 64))
        x = torch.from_numpy(stretch(flux).astype(np.float32))
        prior, out = gen.prior(x), gen(x)
    flux_prior = prior.double().sum(dim=(2, 3))
    flux_out = unstretch(out.double()).sum(dim=(2, 3))
    changed = (unstretch(out.double()) - prior.double()).abs().sum(dim=(2, 3))
    assert (changed > 0.01 * flux_prior.abs()).all()  # the residual moved flux ...
    assert torch.allclose(flux_out, flux_prior, rtol=1e-5)  # ... and created none (float32 rounding)
    moved = unstretch(out.double()) - prior.double()
    frame = torch.ones(136, 136, dtype=torch.bool)
    frame[4:-4, 4:-4] = False
    sigma = 0.05 * (0.396 / 0.187) ** -2  # the sky's sigma per CFHT pixel, before any correlation
    assert (moved[..., frame].std(dim=-1) > 0.1 * sigma).all()  # (the random residual does reach the border)
    if correction == "frame":  # ... and raised no pedestal: on the frame
        assert (moved[..., frame].mean(dim=-1).abs() < 0.01 * sigma).all()
    # ("object": the sky keeps P's level, test_removing_the_sky_noise_moves_no_flux_into_the_object)


@pytest.mark.parametrize("correction", ["object", "frame"])
def test_removing_the_sky_noise_moves_no_flux_into_the_object(correction):
    """Known answer: a correction that removes the noise exactly.  ``object`` keeps the sky's and
    the object's flux apart: the galaxy's flux comes out as the truth's up to the noise on the
    galaxy itself; ``frame`` (the first models) moved the whole image's noise sum into it."""
    from survey2survey.nets.residual import conserve_flux

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:96, 0:96] - 47.5
    galaxy = 200.0 * np.exp(-(yy**2 + xx**2) / (2 * 3.0**2)) / (2 * np.pi * 3.0**2)  # flux 200, peak 3.5 sigma
    galaxy = np.broadcast_to(galaxy, (64, 1, 96, 96))
    noise = rng.standard_normal((64, 1, 96, 96)) * 0.1
    p, delta = torch.from_numpy(galaxy + noise), torch.from_numpy(-noise)
    out = (p + conserve_flux(p, delta, correction)).numpy()
    assert np.allclose(out.sum(axis=(2, 3)), p.numpy().sum(axis=(2, 3)), rtol=1e-9)  # flux kept
    inner = np.hypot(yy, xx) < 9.0  # 3 sigma_galaxy: all but 1 % of the galaxy's flux
    error = (out[..., inner].sum(axis=-1) - galaxy[..., inner].sum(axis=-1)).ravel()
    noise_on_galaxy = 0.1 * np.sqrt(inner.sum())  # 1.6
    noise_of_image = 0.1 * 96  # 9.6
    if correction == "object":
        assert np.std(error) < 1.5 * noise_on_galaxy
    else:
        assert np.std(error) > 0.5 * noise_of_image
    far = np.hypot(yy, xx) > 20.0  # the sky: its level stays P's (no pedestal)
    level_out, level_p = out[..., far].mean(axis=-1), p.numpy()[..., far].mean(axis=-1)
    assert np.abs(level_out - level_p).max() < 0.1 * 0.1  # a tenth of the sky sigma


def test_physics_noise_emulator_has_the_registry_noise():
    cfht = get_survey("cfht")
    ne = physics_noise_emulator(cfht, 5)
    torch.manual_seed(0)
    z1, z2 = ne.sample_inputs(48, 96, 96)
    with torch.no_grad():
        noise = ne(z1, z2).numpy()
    sigma = [0.5 * cfht.typical_sky_sigma(b) * cfht.flux_factor for b in cfht.bands]
    assert np.allclose(noise.std(axis=(0, 2, 3)), sigma, rtol=0.02)
    c = cfht.noise_correlation
    assert lag1_correlation(noise[:, 2]) == pytest.approx(2 * c / (1 + 2 * c * c), abs=0.02)
    white = physics_noise_emulator(get_survey("sdss"), 5)  # SDSS frames: white noise, no checkerboard
    with torch.no_grad():
        assert abs(lag1_correlation(white(*white.sample_inputs(48, 64, 64)).numpy()[:, 2])) < 0.02


@pytest.fixture(scope="module")
def phys_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("ours-phys")
    ds = make_tiny_dataset(root / "ds")
    opts = TrainOptions(method="ours-phys", step=2, iterations=2, batch_unpaired=2, batch_paired=1, log_every=1,
                        checkpoint_every=1000, progress=False)
    train(ds, root / "model", opts)
    return root / "model"


def test_ours_phys_trains_and_translates_both_ways(phys_model, tmp_path):
    model = load_model(phys_model)
    assert model.config["method"] == "ours-phys"
    assert set(model_directions(model.config)) == {"sdss->cfht", "cfht->sdss"}
    gen = model.modules["generator_sdss_to_cfht"]
    assert isinstance(gen, PhysicsResidualGenerator) and gen.physics.my.abs().sum() > 0  # the physics was saved
    inputs = tmp_path / "in"
    write_inputs(inputs, get_survey("sdss"), 2)
    result = CliRunner().invoke(app, ["translate", str(inputs), "--to", "cfht", "--model", str(phys_model),
                                      "--out", str(tmp_path / "out"), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "ours-phys" in result.output


def test_a_direction_left_to_the_physics_is_translated_by_it_and_said(phys_model, tmp_path):
    shipped = leave_to_physics(phys_model, tmp_path / "default", {"cfht->sdss": "did not beat it"})
    config = json.loads((shipped / "config.json").read_text())
    assert physics_directions(config) == {"cfht->sdss": "did not beat it"}
    assert set(model_directions(config)) == {"sdss->cfht"}
    model = load_model(shipped)
    assert "generator_cfht_to_sdss" not in model.modules and "noise_emulator_sdss" not in model.modules
    inputs = tmp_path / "cfht"
    write_inputs(inputs, get_survey("cfht"), 2)
    runner = CliRunner()
    into_sdss = runner.invoke(app, ["translate", str(inputs), "--to", "sdss", "--model", str(shipped),
                                    "--out", str(tmp_path / "sdss"), "--seed", "1"])
    assert into_sdss.exit_code == 0, into_sdss.output
    assert "translating by survey physics" in into_sdss.output and "did not beat it" in into_sdss.output
    from astropy.io import fits

    assert fits.getheader(next((tmp_path / "sdss").glob("*.fits")))["S2SMETH"] == "physics"
    noise = runner.invoke(app, ["emulate-noise", "--model", str(shipped), "--survey", "sdss", "--band", "r",
                                "--n", "2", "--out", str(tmp_path / "noise.fits")])
    assert noise.exit_code == 0, noise.output  # the physics noise of SDSS: its translation is the physics
    assert fits.getheader(tmp_path / "noise.fits")["SURVEY"] == "sdss"


def test_inputs_outside_the_training_range_are_named_once(phys_model, tmp_path):
    sdss = get_survey("sdss")
    training_range = {"band": "r", "mag": [14.0, 21.0], "half_light_radius": [0.2, 4.0]}
    yy, xx = np.mgrid[0:64, 0:64] - 31.5
    blob = np.exp(-(yy**2 + xx**2) / (2 * 3.0**2))
    for mag, warned in ((17.0, False), (11.0, True), (24.0, True)):
        data = np.repeat(blob[None], 5, axis=0) * 10 ** (-0.4 * (mag - 22.5)) / blob.sum()
        assert bool(range_warnings(data, sdss, training_range)) == warned, mag
    # with SDSS r's noise: a faint in-range galaxy, or one with a star 10" away, is not said to be out
    # of range (the noisy 11" sum, and the star's light in the half-light radius, made them so)
    rng = np.random.default_rng(1)
    r = np.hypot(yy, xx) * sdss.pixel_scale

    def disk(mag, hlr):
        image = np.exp(-1.678 * r / hlr)
        return image / image.sum() * 10 ** (-0.4 * (mag - 22.5))

    star = np.exp(-((yy + 14) ** 2 + (xx + 20) ** 2) / (2 * 1.5**2))
    star *= 10 ** (-0.4 * (15.0 - 22.5)) / star.sum()
    cases = [(disk(20.8, 1.0), False), (disk(17.0, 1.0) + star, False), (disk(20.5, 0.8) + star, False),
             (disk(15.0, 8.0), True), (disk(12.5, 2.0), True)]
    for image, warned in cases:
        noisy = image[None] + rng.normal(0, sdss.typical_sky_sigma("r"), (5, 64, 64))
        assert bool(range_warnings(noisy, sdss, training_range)) == warned, range_warnings(noisy, sdss, training_range)
    config = json.loads((phys_model / "config.json").read_text())
    config["training_range"] = training_range
    (phys_model / "config.json").write_text(json.dumps(config))
    inputs = tmp_path / "in"
    write_inputs(inputs, get_survey("sdss"), 3)
    result = CliRunner().invoke(app, ["translate", str(inputs), "--to", "cfht", "--model", str(phys_model),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if OUT_OF_RANGE in line]
    assert len(lines) <= 1


def test_noise_calibration_adds_only_the_noise_the_generator_lacks():
    # Known answer: a generator that writes c times the emulator's noise power on a smooth
    # image.  The emulator must be scaled by s = sqrt(1 - c): c = 0 -> 1, c = 0.5 -> 0.707,
    # c = 1.5 -> 0 (clipped).  A misfit on the galaxy (the centre) is no noise (s stays 1),
    # and the targets are not read.
    from types import SimpleNamespace

    from survey2survey.methods.ours_phys import OursPhys

    sdss, cfht = get_survey("sdss"), get_survey("cfht")
    rng = np.random.default_rng(5)

    def sky(survey, size):  # the survey's sky noise, in model space
        sigma = np.array([survey.typical_sky_sigma(b) for b in survey.bands])[None, :, None, None]
        return stretch(rng.normal(0.0, 1.0, (24, 5, size, size)) * sigma * survey.flux_factor).astype(np.float32)

    pair_a, pair_b = sky(sdss, 64), sky(cfht, 136)
    yy, xx = np.mgrid[0:136, 0:136] - 67.5
    galaxy = torch.from_numpy(np.exp(-(yy**2 + xx**2) / (2 * 8.0**2)).astype(np.float32))
    misfit = torch.zeros((1, 5, 136, 136))
    misfit[..., 58:78, 58:78] = torch.from_numpy(np.random.default_rng(6).normal(0.0, 0.05, (20, 20)))

    class Carrying(torch.nn.Module):
        def __init__(self, ne, c, extra):
            super().__init__()
            self.ne, self.c, self.extra = ne, c, extra

        def forward(self, x):
            z1, z2 = self.ne.sample_inputs(len(x), 136, 136, generator=torch.Generator().manual_seed(11))
            return galaxy * x.mean() + np.sqrt(self.c) * self.ne(z1, z2) + self.extra

    def scales(c, extra=0.0, targets=pair_b):
        method = OursPhys({"a": sdss, "b": cfht}, step=2)
        ne = method.nets["noise_emulator_cfht"]
        method.nets["generator_sdss_to_cfht"] = Carrying(ne, c, extra)
        data = SimpleNamespace(arrays={"train_a": pair_a, "train_b": targets})
        return np.array(method.finalize(data)["noise_scale_cfht"])

    assert np.allclose(scales(0.0), 1.0)
    assert np.allclose(scales(0.5), np.sqrt(0.5), atol=0.03)
    assert np.allclose(scales(1.5), 0.0)
    assert np.allclose(scales(0.0, misfit), 1.0)
    assert np.array_equal(scales(0.5, targets=2 * pair_b), scales(0.5))  # the CFHT images calibrate the other way only


def test_content_loss_is_hubers_in_sky_sigma():
    """Known answers: a misfit of k sky sigma costs k^2 / 2 up to HUBER_DELTA sigma, then
    HUBER_DELTA (k - HUBER_DELTA / 2); in each band and each direction alike."""
    from survey2survey.methods.ours_phys import HUBER_DELTA, OursPhys

    method = OursPhys({"a": get_survey("sdss"), "b": get_survey("cfht")}, step=2)
    for domain in ("sdss", "cfht"):
        sigma = method.noise_sigma(domain)
        target = torch.zeros(2, 5, 8, 8)
        for k in (0.5, 2.0, 5.0, 40.0):
            expected = 0.5 * k * k if k <= HUBER_DELTA else HUBER_DELTA * (k - 0.5 * HUBER_DELTA)
            loss = method.content(target + k * sigma, target, domain)
            assert float(loss) == pytest.approx(expected, rel=1e-5), (domain, k)


def test_cycle_trains_the_second_generator_only():
    """L_cyc of ours-phys: no gradient into the generator whose output it starts from (ours: both)."""
    from survey2survey.methods.ours import Ours
    from survey2survey.methods.ours_phys import OursPhys

    x = torch.ones(1, 5, 4, 4, requires_grad=True)
    assert not OursPhys.cycle_input(None, x * 2).requires_grad
    assert Ours.cycle_input(None, x * 2).requires_grad


def test_photometry_term_has_known_answers():
    """Aperture photometry against the pair: a bright central source k % too bright costs
    Huber(k / APERTURE_FLOOR) in each of the apertures; flux moved outside the largest one
    costs nothing; a faint image's misfit is in units of the two surveys' sky noise in the aperture."""
    from survey2survey.methods.ours_phys import APERTURE_FLOOR, APERTURES_ARCSEC, HUBER_DELTA, OursPhys
    from survey2survey.metrics.apertures import circular_weights

    def huber(k):
        return 0.5 * k * k if abs(k) <= HUBER_DELTA else HUBER_DELTA * (abs(k) - 0.5 * HUBER_DELTA)

    method = OursPhys({"a": get_survey("sdss"), "b": get_survey("cfht")}, step=2)
    cfht = get_survey("cfht")
    flux = torch.zeros(2, 5, 40, 40)
    flux[..., 19:21, 19:21] = 2.5e4  # 1e5 in the four central pixels, inside every aperture
    target = stretch(flux)
    assert float(method.photometry(target, target, "cfht")) == 0.0
    for excess in (0.002, 0.01, 0.05, 0.2):
        pred = stretch(flux * (1 + excess))
        expected = huber(excess / APERTURE_FLOOR)
        assert float(method.photometry(pred, target, "cfht")) == pytest.approx(expected, rel=1e-3), excess
        with torch.autocast("cpu", dtype=torch.bfloat16):  # as on a GPU: the sums stay fp32
            assert float(method.photometry(pred, target, "cfht")) == pytest.approx(expected, rel=1e-3), excess
    outside = flux.clone()
    outside[..., 0, 0] = 500.0  # a corner pixel: beyond the largest aperture (4" = 21 px on CFHT)
    assert max(APERTURES_ARCSEC) / cfht.pixel_scale < 19 * 2**0.5
    assert float(method.photometry(stretch(outside), target, "cfht")) == pytest.approx(0.0, abs=1e-6)
    # faint: a flat offset of one CFHT sky sigma per pixel in r -> k = sum(w) sigma / the aperture's
    # noise, both surveys' sky sigma (registry, in flux) over the aperture, in quadrature
    sdss = get_survey("sdss")
    zero = torch.zeros(1, 5, 40, 40)
    sigma = cfht.typical_sky_sigma("r") * cfht.flux_factor
    sigma_sdss = sdss.typical_sky_sigma("r") * sdss.flux_factor
    offset = zero.clone()
    offset[:, 2] = sigma
    ks = []
    for radius in APERTURES_ARCSEC:
        w = circular_weights((40, 40), radius / cfht.pixel_scale)
        noise = np.sqrt(sigma**2 * (w**2).sum() + sigma_sdss**2 * np.pi * (radius / sdss.pixel_scale) ** 2)
        ks.append(w.sum() * sigma / noise)
    expected = sum(huber(k) for k in ks) / (5 * len(ks))
    assert float(method.photometry(stretch(offset), stretch(zero), "cfht")) == pytest.approx(expected, rel=1e-3)


def test_identity_loss_adds_the_photometry_to_the_pixels():
    from survey2survey.methods.ours import Ours
    from survey2survey.methods.ours_phys import OursPhys

    method = OursPhys({"a": get_survey("sdss"), "b": get_survey("cfht")}, step=2, options={"photometry": 1.5})
    rng = np.random.default_rng(3)
    target = torch.from_numpy(rng.normal(0, 0.01, (2, 5, 32, 32)).astype(np.float32))
    pred = target + 0.02
    expected = method.content(pred, target, "cfht") + 1.5 * method.photometry(pred, target, "cfht")
    assert float(method.identity(pred, target, "cfht")) == pytest.approx(float(expected), rel=1e-6)
    assert float(method.photometry(pred, target, "cfht")) > 0
    pixels_only = OursPhys({"a": get_survey("sdss"), "b": get_survey("cfht")}, step=2)  # the default: off
    assert float(pixels_only.identity(pred, target, "cfht")) == pytest.approx(float(method.content(pred, target, "cfht")))
    assert float(Ours.identity(method, pred, target, "cfht")) == pytest.approx(float(method.content(pred, target, "cfht")))
    for bad in (-1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="--photometry"):
            OursPhys({"a": get_survey("sdss"), "b": get_survey("cfht")}, step=2, options={"photometry": bad})


def test_fine_tuning_starts_from_the_model_with_its_full_noise(phys_model, tmp_path):
    """``--init`` a finished ours-phys model: its generators, and its noise emulators with the
    noise calibration divided out (this run's calibration then applies once, not twice); a
    band the calibration silenced (scale 0) takes the registry's noise again."""
    from survey2survey.model import save_model

    init = load_model(phys_model)
    config = json.loads(json.dumps(init.config))
    halved = {"noise_scale_sdss": [0.5] * 5, "noise_scale_cfht": [0.5, 0.5, 0.0, 0.5, 0.5]}
    config["steps"]["step2"]["finalized"] = halved
    # the noise before the calibration: 0.7x the registry's (as step 1 may have learned it)
    learned = {s: 0.7 * physics_noise_emulator(get_survey(s), 5).kernel for s in ("sdss", "cfht")}
    with torch.no_grad():
        for survey in ("sdss", "cfht"):
            init.modules[f"noise_emulator_{survey}"].kernel.copy_(0.5 * learned[survey])
    expected = {s: learned[s].clone() for s in ("sdss", "cfht")}
    expected["cfht"][2] = physics_noise_emulator(get_survey("cfht"), 5).kernel[2]  # silenced: registry's again
    save_model(tmp_path / "init", init.modules, config)
    init = load_model(tmp_path / "init")
    from survey2survey.data.loader import open_dataset
    from survey2survey.methods.ours_phys import OursPhys

    method = OursPhys(open_dataset(phys_model.parent / "ds").surveys, step=2)
    for survey in ("sdss", "cfht"):  # what training takes first (optional_init_modules), then the hook
        method.nets[f"noise_emulator_{survey}"].load_state_dict(init.modules[f"noise_emulator_{survey}"].state_dict())
    method.initialised_from(init, explicit=False)  # found in --out: the noise only
    for survey in ("sdss", "cfht"):
        assert torch.allclose(method.nets[f"noise_emulator_{survey}"].kernel, expected[survey], atol=1e-7), survey
    assert method._fine_tuned_from is None
    out = tmp_path / "fine"
    args = ["train", str(phys_model.parent / "ds"), "--method", "ours-phys", "--step", "2", "--photometry", "1",
            "--batch-size", "2", "--batch-paired", "1", "--lr", "1e-12", "--out", str(out), "--quiet"]
    result = CliRunner().invoke(app, args + ["--init", str(tmp_path / "init"), "-n", "1"])
    assert result.exit_code == 0, result.output
    tuned = load_model(out)
    step2 = tuned.config["steps"]["step2"]
    assert step2["options"]["method_options"] == {"photometry": 1.0}
    assert step2["finalized"]["fine_tuned_from"]["weights_sha256"] == init.config["weights_sha256"]
    for name in ("generator_sdss_to_cfht", "generator_cfht_to_sdss"):
        for key, value in init.modules[name].state_dict().items():
            assert torch.allclose(tuned.modules[name].state_dict()[key], value, atol=1e-6), (name, key)
    for survey in ("sdss", "cfht"):
        new = torch.tensor(step2["finalized"][f"noise_scale_{survey}"]).reshape(-1, 1, 1, 1)
        kernel = expected[survey] * new
        assert torch.allclose(tuned.modules[f"noise_emulator_{survey}"].kernel, kernel, rtol=1e-3, atol=1e-7), survey  # scales kept to 4 decimals
    # resumed (without --init) the run still records the model it fine-tunes
    result = CliRunner().invoke(app, args + ["--resume", "-n", "2"])
    assert result.exit_code == 0, result.output
    resumed = load_model(out).config["steps"]["step2"]
    assert resumed["iterations"] == 2
    assert resumed["finalized"]["fine_tuned_from"]["weights_sha256"] == init.config["weights_sha256"]


def test_photometry_is_an_ours_phys_option(tmp_path, capsys):
    from survey2survey.cli import main as cli_main

    ds = make_tiny_dataset(tmp_path / "ds")
    code = cli_main(["train", str(ds), "--method", "ours", "--photometry", "1", "-n", "1", "--out", str(tmp_path / "m"), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "method 'ours' takes no option 'photometry'" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()
    code = cli_main(["train", str(ds), "--method", "ours-phys", "--step", "1", "--photometry", "1", "-n", "1",
                     "--out", str(tmp_path / "m"), "-q"])
    assert code == 2 and "--photometry weighs a step-2 loss" in capsys.readouterr().err
    # the other methods' own options still pass (cyclegan's n_blocks)
    from survey2survey.train import TrainOptions as Options

    regridded = make_tiny_dataset(tmp_path / "regridded", n_unpaired=4, n_pairs=2, n_test=1, regridded=True)
    cyc = train(regridded, tmp_path / "cyc", Options(method="cyclegan", iterations=1, batch_unpaired=2, batch_paired=1,
                                                     progress=False, method_options={"n_blocks": 1}))
    assert cyc.config["method"] == "cyclegan"


def test_fine_tuning_a_model_without_a_generator_is_a_one_line_error(phys_model, tmp_path, capsys):
    from survey2survey.cli import main as cli_main

    shipped = leave_to_physics(phys_model, tmp_path / "default", {"cfht->sdss": "did not beat it"})
    code = cli_main(["train", str(phys_model.parent / "ds"), "--method", "ours-phys", "--step", "2", "--init",
                     str(shipped), "-n", "1", "--batch-size", "2", "--batch-paired", "1", "--out", str(tmp_path / "m"), "-q"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert str(shipped / "config.json") in err and "no module 'noise_emulator_sdss'" in err  # its direction's NE went too


def test_rebasing_scales_a_noise_emulator_from_its_models_sigma_to_the_datasets(phys_model):
    """A model made when the registry's SDSS sigma was twice today's: its SDSS noise emulator is
    halved, band by band, and config.json gets today's sigma; CFHT, unchanged, is left alone."""
    import copy

    from experiments.recalibrate_noise import rebase
    from survey2survey.data.loader import open_dataset
    from survey2survey.methods.ours_phys import OursPhys

    loaded = load_model(phys_model)
    method = OursPhys(open_dataset(phys_model.parent / "ds").surveys, step=2)
    for name in loaded.modules:
        method.nets[name].load_state_dict(loaded.modules[name].state_dict())
    for s in ("sdss", "cfht"):  # the tiny model's calibration zeroed them: the registry's instead
        method.nets[f"noise_emulator_{s}"].load_state_dict(physics_noise_emulator(get_survey(s), 5).state_dict())
    before = {s: method.nets[f"noise_emulator_{s}"].kernel.detach().clone() for s in ("sdss", "cfht")}
    assert all(k.abs().amax(dim=(1, 2, 3)).min() > 0 for k in before.values())
    config = copy.deepcopy(loaded.config)
    sdss = next(spec for spec in config["surveys"].values() if spec["name"] == "sdss")
    today = dict(sdss["sky_sigma"])
    sdss["sky_sigma"] = {b: 2 * v for b, v in today.items()}
    assert rebase(method, config) == {"sdss": [0.5] * 5}
    assert sdss["sky_sigma"] == today
    assert torch.allclose(method.nets["noise_emulator_sdss"].kernel, 0.5 * before["sdss"])
    assert torch.equal(method.nets["noise_emulator_cfht"].kernel, before["cfht"])
    assert rebase(method, config) == {}  # at today's sigma: nothing to do


def test_recalibrating_a_model_keeps_its_generators_and_records_the_old_scales(phys_model, tmp_path):
    from experiments.recalibrate_noise import main as recalibrate

    assert recalibrate(["--model", str(phys_model), "--dataset", str(phys_model.parent / "ds"),
                        "--out", str(tmp_path / "recal")]) == 0
    before, after = load_model(phys_model), load_model(tmp_path / "recal")
    old = before.config["steps"]["step2"]["finalized"]
    new = after.config["steps"]["step2"]["finalized"]
    assert new["recalibrated_from"] == {k: v for k, v in old.items() if k.startswith("noise_scale_")}
    from survey2survey.data.loader import open_dataset

    assert new["recalibrated_on"] == open_dataset(phys_model.parent / "ds").fingerprint != ""
    assert "fine_tuned_from" not in new and after.config["iterations"] == before.config["iterations"]
    for name in ("generator_sdss_to_cfht", "generator_cfht_to_sdss"):
        for key, value in before.modules[name].state_dict().items():
            assert torch.equal(after.modules[name].state_dict()[key], value), (name, key)
    for survey in ("sdss", "cfht"):  # the registry noise (scales of the tiny model: 0), scaled anew
        scale = torch.tensor(new[f"noise_scale_{survey}"]).reshape(-1, 1, 1, 1)
        kernel = physics_noise_emulator(get_survey(survey), 5).kernel * scale
        assert torch.allclose(after.modules[f"noise_emulator_{survey}"].kernel, kernel, atol=1e-7), survey
    # a second recalibration nests the whole first record, a rebase included
    config = json.loads((tmp_path / "recal" / "config.json").read_text())
    config["steps"]["step2"]["finalized"]["rebased"] = {"sdss": [0.5] * 5}
    (tmp_path / "recal" / "config.json").write_text(json.dumps(config))
    assert recalibrate(["--model", str(tmp_path / "recal"), "--dataset", str(phys_model.parent / "ds"),
                        "--out", str(tmp_path / "again")]) == 0
    again = load_model(tmp_path / "again").config["steps"]["step2"]["finalized"]
    assert again["recalibrated_from"] == config["steps"]["step2"]["finalized"]


def test_anchor_is_built_in_and_can_be_added_to_a_model_without_one(phys_model, tmp_path):
    """New ours-phys generators carry the photometry anchor; experiments/add_anchor gives one to a
    model trained before, its weights and noise emulators unchanged."""
    from experiments.add_anchor import main as add_anchor
    from survey2survey.model import save_model

    model = load_model(phys_model)
    for name in ("generator_sdss_to_cfht", "generator_cfht_to_sdss"):
        assert model.modules[name].anchor is not None, name
        model.modules[name].anchor = None  # as a model from before the anchor
        model.modules[name].init_kwargs.pop("anchor")
    save_model(tmp_path / "old", model.modules, model.config)
    assert load_model(tmp_path / "old").modules["generator_sdss_to_cfht"].anchor is None
    assert add_anchor(["--model", str(tmp_path / "old"), "--out", str(tmp_path / "new")]) == 0
    new, trained = load_model(tmp_path / "new"), load_model(phys_model)
    assert new.config["anchor_added"]["directions"] == ["sdss->cfht", "cfht->sdss"]
    for name, module in trained.modules.items():
        for key, value in module.state_dict().items():  # the anchor built again is the one trained with
            assert torch.allclose(new.modules[name].state_dict()[key], value, atol=1e-6), (name, key)
    with pytest.raises(SystemExit, match="no physics-residual generator without an anchor"):
        add_anchor(["--model", str(tmp_path / "new"), "--out", str(tmp_path / "again")])


def test_speck_repair_is_built_in_and_can_be_added_without_touching_the_weights(phys_model, tmp_path):
    """New ours-phys generators carry the speck repair (all bands); experiments/add_repair gives one
    to a model without, for the bands named, in its config only: the weights file is the same."""
    from experiments.add_repair import main as add_repair
    from survey2survey.model import save_model

    model = load_model(phys_model)
    for name in ("generator_sdss_to_cfht", "generator_cfht_to_sdss"):
        assert model.modules[name].repair is not None and model.modules[name].repair.bands == [0, 1, 2, 3, 4]
        assert model.modules[name].repair.lift == LIFT_SIGMA
        model.modules[name].repair = None  # as a model from before the repair
        model.modules[name].init_kwargs.pop("repair")
    save_model(tmp_path / "old", model.modules, model.config)
    assert add_repair(["--model", str(tmp_path / "old"), "--out", str(tmp_path / "new"), "--bands", "u,z"]) == 0
    new = load_model(tmp_path / "new")
    assert new.config["repair_added"]["directions"] == ["sdss->cfht", "cfht->sdss"]
    assert new.modules["generator_sdss_to_cfht"].repair.bands == [0, 4]
    assert (tmp_path / "new" / "weights.safetensors").read_bytes() == (tmp_path / "old" / "weights.safetensors").read_bytes()
    assert new.modules["generator_sdss_to_cfht"].repair.lift is None
    with pytest.raises(SystemExit, match="no physics-residual generator without the speck repair"):
        add_repair(["--model", str(tmp_path / "new"), "--out", str(tmp_path / "again")])
    # the lift, added to a repair without one (the shipped models' way)
    assert add_repair(["--model", str(tmp_path / "new"), "--out", str(tmp_path / "lifted"), "--lift", "3"]) == 0
    lifted = load_model(tmp_path / "lifted")
    assert lifted.config["lift_added"]["directions"] == ["sdss->cfht", "cfht->sdss"]
    assert lifted.config["repair_added"] == new.config["repair_added"]
    assert lifted.modules["generator_sdss_to_cfht"].repair.bands == [0, 4]
    assert lifted.modules["generator_sdss_to_cfht"].repair.lift == 3.0
    assert (tmp_path / "lifted" / "weights.safetensors").read_bytes() == (tmp_path / "old" / "weights.safetensors").read_bytes()
    with pytest.raises(SystemExit, match="with the speck repair and without the lift"):
        add_repair(["--model", str(tmp_path / "lifted"), "--out", str(tmp_path / "again"), "--lift", "3"])
    with pytest.raises(SystemExit):  # (argparse: exit status 2, the message on stderr)
        add_repair(["--model", str(tmp_path / "new"), "--out", str(tmp_path / "again"), "--lift", "0"])
    assert not (tmp_path / "again").exists()


def test_emulate_noise_draws_the_surveys_whole_noise_not_the_calibrated_top_up(phys_model, tmp_path):
    """An ours-phys noise emulator is scaled to add only what its generator lacks (the tiny model:
    by 0, its generator carries the SDSS noise).  emulate-noise divides that out: the CFHT maps
    have the registry's CFHT sigma."""
    from astropy.io import fits

    cfht = get_survey("cfht")
    scales = load_model(phys_model).config["steps"]["step2"]["finalized"]["noise_scale_cfht"]
    assert scales[cfht.band_index("r")] < 0.5  # (the calibration would draw far less than the survey's noise)
    result = CliRunner().invoke(app, ["emulate-noise", "--model", str(phys_model), "--survey", "cfht", "--band", "r",
                                      "--n", "40", "--seed", "3", "--out", str(tmp_path / "noise.fits")])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "noise.fits") as hdul:
        maps = hdul[0].data
        assert "calibration" in str(hdul[0].header["HISTORY"])
    assert np.std(maps) == pytest.approx(cfht.typical_sky_sigma("r"), rel=0.05)


def test_a_checkpoint_from_before_the_anchor_resumes_with_it(phys_model):
    """A run's checkpoint whose generators have no anchor buffers loads into this method's
    generators (with the anchor) and keeps everything that was trained."""
    from survey2survey.data.loader import open_dataset
    from survey2survey.methods.ours_phys import OursPhys

    dataset = open_dataset(phys_model.parent / "ds")
    fresh, trained = OursPhys(dataset.surveys, step=2), OursPhys(dataset.surveys, step=2)
    with torch.no_grad():
        for weights in trained.nets["generator_sdss_to_cfht"].residual.parameters():
            weights.normal_(0.0, 0.05)
    state = trained.state_dict()
    state["modules"] = {name: {k: v for k, v in module.items() if not k.startswith("anchor.")}
                        for name, module in state["modules"].items()}
    fresh.load_state_dict(state)
    for name, net in trained.nets.items():
        for key, value in net.state_dict().items():
            assert torch.equal(fresh.nets[name].state_dict()[key], value), (name, key)


def test_onnx_export_of_an_anchored_model_reproduces_torch(phys_model, tmp_path, monkeypatch):
    """On galaxies, where the anchor acts (the export's own check feeds noise, which its gate leaves alone)."""
    import onnxruntime

    from survey2survey.runtime.export import export_model
    from survey2survey.runtime.seeds import noise_inputs
    from survey2survey.surveys import to_model_space

    monkeypatch.setenv("S2S_CACHE", str(tmp_path / "cache"))
    model = load_model(phys_model)
    generator = model.modules["generator_sdss_to_cfht"]
    assert generator.anchor is not None
    export_model(phys_model, tmp_path / "onnx", directions=["sdss->cfht"])
    (path,) = (tmp_path / "onnx").glob("*.onnx")
    sdss = get_survey("sdss")
    yy, xx = np.mgrid[0:64, 0:64] - 31.5
    galaxy = 40.0 * np.exp(-np.hypot(yy / 3.0, xx / 5.0))  # nanomaggies, on the SDSS sky below
    rng = np.random.default_rng(3)
    native = galaxy[None, None] * rng.uniform(0.3, 1.5, (3, 5, 1, 1)) + 0.05 * rng.standard_normal((3, 5, 64, 64))
    x = torch.from_numpy(to_model_space(native.astype(np.float32), sdss))
    z1, z2 = noise_inputs([1, 2, 3], range(5), 136, 136, samples=1)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {"x": x.numpy(), "z1": z1.numpy(), "z2": z2.numpy()})))
    with torch.no_grad():
        want = generator(x).numpy()
        generator.anchor, anchor = None, generator.anchor
        without = generator(x).numpy()
        generator.anchor = anchor
        generator.repair.lift, lift = None, generator.repair.lift
        unlifted = generator(x).numpy()
        generator.repair.lift = lift
    assert np.abs(want - without).max() > 1e-3  # the anchor acted on these galaxies
    lifted = np.abs(want - unlifted).max(axis=(2, 3)) > 1e-3
    assert lifted.any() and not lifted.all()  # the lift acted (on this barely trained network's dark pixels)
    assert np.abs(got["generator"] - want).max() < 1e-4


def test_a_cutout_of_another_size_is_translated_by_the_network_built_for_it(phys_model, tmp_path):
    """A 100 x 100 SDSS cutout (the model's own are 64 x 64), with or without a WCS, is translated by
    the network, its physics operator and anchor built for that size: the physics's grid and WCS,
    every band's total flux the physics translation's, HISTORY saying so, next to 64 x 64 ones.  One
    too small for the anchor's ring goes to the physics, said; a CFHT cutout of another size into
    SDSS is the network's too."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from survey2survey.fits_io import make_wcs, write_cutout

    sdss, cfht = get_survey("sdss"), get_survey("cfht")
    inputs = tmp_path / "in"
    write_inputs(inputs, sdss, 2)
    yy, xx = np.mgrid[0:100, 0:100] - 49.5
    big = (20 * np.exp(-np.hypot(yy, xx) / 3))[None].repeat(5, axis=0).astype(np.float32)
    big += 0.05 * np.random.default_rng(0).standard_normal(big.shape).astype(np.float32)
    write_cutout(inputs / "Jbig.fits", big, sdss, wcs=make_wcs(151.0, 2.0, sdss.pixel_scale, (100, 100)))
    write_cutout(inputs / "Jnowcs.fits", big, sdss)
    write_cutout(inputs / "Jtiny.fits", big[:, 38:62, 38:62], sdss, wcs=make_wcs(151.0, 2.0, sdss.pixel_scale, (24, 24)))
    write_cutout(inputs / "Jrect.fits", big[:, 18:82, :], sdss, wcs=make_wcs(151.0, 2.0, sdss.pixel_scale, (64, 100)))
    wide = np.tile(big[:, 30:70, :], (1, 1, 3))[:, :, :260]
    write_cutout(inputs / "Jwide.fits", wide, sdss, wcs=make_wcs(151.0, 2.0, sdss.pixel_scale, (40, 260)))
    outs = {}
    for model in (str(phys_model), "physics"):
        outs[model] = tmp_path / model.split("/")[-1]
        result = CliRunner().invoke(app, ["translate", str(inputs), "--to", "cfht", "--model", model, "--no-noise",
                                          "--out", str(outs[model]), "--seed", "1"])
        assert result.exit_code == (1 if model == "physics" else 0), result.output  # the physics needs a WCS
    result = CliRunner().invoke(app, ["translate", str(inputs), "--to", "cfht", "--model", str(phys_model),
                                      "--out", str(tmp_path / "noisy"), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert ("Jtiny.fits: translated by the physics instead of the network: 24x24 px is too small for the "
            "network's 4\" photometry ring (at least 28 px on each side)") in result.output
    assert "Jbig.fits: translated by the physics" not in result.output
    assert ("Jwide.fits: translated by the physics instead of the network: 260x40 px: the network runs on cutouts "
            "up to 256 px a side") in result.output
    assert "Jnowcs.fits: no WCS" in result.output
    net, phys = outs[str(phys_model)], outs["physics"]
    header, data = fits.getheader(net / "Jbig.cfht.fits"), fits.getdata(net / "Jbig.cfht.fits")
    assert header["S2SMETH"] == "ours-phys" and data.shape == (5, 212, 212)
    assert "network run on this 100x100 px cutout (the model's own: 64x64 px)" in "".join(header["HISTORY"])
    physics = fits.getdata(phys / "Jbig.cfht.fits")
    np.testing.assert_allclose(data.sum(axis=(1, 2)), physics.sum(axis=(1, 2)), rtol=2e-3)
    centre = WCS(header).celestial.pixel_to_world(105.5, 105.5)
    physics_wcs = WCS(fits.getheader(phys / "Jbig.cfht.fits")).celestial
    assert centre.separation(physics_wcs.pixel_to_world(105.5, 105.5)).arcsec < 1e-3
    nowcs = fits.getdata(net / "Jnowcs.cfht.fits")
    assert fits.getheader(net / "Jnowcs.cfht.fits")["S2SMETH"] == "ours-phys"
    np.testing.assert_allclose(nowcs, data, atol=1e-6 * np.abs(data).max())
    assert fits.getheader(net / "Jtiny.cfht.fits")["S2SMETH"] == "physics"
    assert fits.getheader(net / "Jwide.cfht.fits")["S2SMETH"] == "physics"
    rect, rect_physics = fits.getdata(net / "Jrect.cfht.fits"), fits.getdata(phys / "Jrect.cfht.fits")
    assert fits.getheader(net / "Jrect.cfht.fits")["S2SMETH"] == "ours-phys" and rect.shape == rect_physics.shape
    np.testing.assert_allclose(rect.sum(axis=(1, 2)), rect_physics.sum(axis=(1, 2)), rtol=2e-3)
    # larger cutouts go through the network a batch's pixels at a time (at --batch-size 2 one 100 x
    # 100 at a time): the same bytes in any batch
    for size in ("1", "2"):
        result = CliRunner().invoke(app, ["translate", str(inputs), "--to", "cfht", "--model", str(phys_model),
                                          "--no-noise", "--out", str(tmp_path / size), "--seed", "1", "--batch-size", size])
        assert result.exit_code == 0, result.output
        for name in ("Jbig", "Jnowcs", "Jrect", "J0000"):
            np.testing.assert_array_equal(fits.getdata(tmp_path / size / f"{name}.cfht.fits"),
                                          fits.getdata(net / f"{name}.cfht.fits"))
    for name in ("J0000", "J0001"):
        assert fits.getheader(net / f"{name}.cfht.fits")["S2SMETH"] == "ours-phys"
    # the other way: a 150 x 150 CFHT cutout into SDSS, by the network onto the physics's 71 x 71
    yy, xx = np.mgrid[0:150, 0:150] - 74.5
    seen = (40 * np.exp(-np.hypot(yy, xx) / 6))[None].repeat(5, axis=0).astype(np.float32)
    write_cutout(tmp_path / "cfht" / "Jc.fits", seen, cfht, wcs=make_wcs(151.0, 2.0, cfht.pixel_scale, (150, 150)))
    result = CliRunner().invoke(app, ["translate", str(tmp_path / "cfht"), "--to", "sdss", "--model", str(phys_model),
                                      "--out", str(tmp_path / "back"), "--seed", "1"])
    assert result.exit_code == 0, result.output
    header = fits.getheader(tmp_path / "back" / "Jc.sdss.fits")
    assert header["S2SMETH"] == "ours-phys" and (header["NAXIS1"], header["NAXIS2"]) == (71, 71)


def test_another_size_with_the_onnx_backend_goes_to_the_physics_and_says_why(phys_model, tmp_path):
    """The exported ONNX graph is 64 x 64: a 100 x 100 cutout goes to the physics, told that the
    torch backend runs the network on it."""
    from astropy.io import fits

    from survey2survey.fits_io import make_wcs, write_cutout

    pytest.importorskip("onnxruntime")
    sdss = get_survey("sdss")
    yy, xx = np.mgrid[0:100, 0:100] - 49.5
    big = (20 * np.exp(-np.hypot(yy, xx) / 3))[None].repeat(5, axis=0).astype(np.float32)
    write_cutout(tmp_path / "in" / "Jbig.fits", big, sdss, wcs=make_wcs(151.0, 2.0, sdss.pixel_scale, (100, 100)))
    result = CliRunner().invoke(app, ["translate", str(tmp_path / "in"), "--to", "cfht", "--model", str(phys_model),
                                      "--backend", "onnx", "--out", str(tmp_path / "out"), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert ("Jbig.fits: translated by the physics instead of the network: wrong size 100x100 px, the model takes "
            "64x64 px sdss cutouts on --backend onnx (--backend torch runs its network on other sizes)") in result.output
    assert fits.getheader(tmp_path / "out" / "Jbig.cfht.fits")["S2SMETH"] == "physics"


def test_another_size_under_a_registry_whose_psfs_changed_goes_to_the_physics(phys_model, tmp_path, monkeypatch):
    """The network's physics is rebuilt from the registry for another size: a registry whose PSFs are
    not the ones the model was made with (a survey registered again in this process) sends such a
    cutout to the physics, said; the model's own size still runs the network (its physics is saved)."""
    import dataclasses

    from astropy.io import fits

    import survey2survey.surveys as surveys
    from survey2survey.fits_io import make_wcs, write_cutout
    from survey2survey.pipelines.translate import translate

    sdss = get_survey("sdss")
    yy, xx = np.mgrid[0:100, 0:100] - 49.5
    big = (20 * np.exp(-np.hypot(yy, xx) / 3))[None].repeat(5, axis=0).astype(np.float32)
    inputs = tmp_path / "in"
    write_cutout(inputs / "Jbig.fits", big, sdss, wcs=make_wcs(151.0, 2.0, sdss.pixel_scale, (100, 100)))
    write_inputs(inputs, sdss, 1)
    first = translate([inputs], "cfht", model_dir=phys_model, out_dir=tmp_path / "before", noise=False, workers=0)
    assert fits.getheader(tmp_path / "before" / "Jbig.cfht.fits")["S2SMETH"] == "ours-phys" and not first.warned
    monkeypatch.setitem(surveys._registry, "sdss", dataclasses.replace(sdss, psf_fwhm=tuple(1.2 * f for f in sdss.psf_fwhm)))
    report = translate([inputs], "cfht", model_dir=phys_model, out_dir=tmp_path / "after", noise=False, workers=0)
    assert report.translated == 2 and not report.failed, report.warned
    assert any("Jbig.fits" in str(path) and "PSFs of sdss and cfht are not the ones the model was made "
               "with" in message for path, message in report.warned), report.warned
    assert fits.getheader(tmp_path / "after" / "Jbig.cfht.fits")["S2SMETH"] == "physics"
    assert fits.getheader(tmp_path / "after" / "J0000.cfht.fits")["S2SMETH"] == "ours-phys"
