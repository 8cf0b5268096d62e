"""Reproducible noise seeds and ``s2s emulate-noise`` (noise maps from a trained emulator)."""

import numpy as np
import pytest
import torch
from astropy.io import fits

from survey2survey.model import store
from survey2survey.cli import main as cli_main
from survey2survey.pipelines.emulate import emulate_noise
from survey2survey.runtime.graph import sample_noise
from survey2survey.runtime.seeds import _standard_normal_torch, noise_inputs, object_seed, standard_normal
from survey2survey.errors import ModelError, SurveyError, UsageError
from survey2survey.nets import NoiseEmulator, generator_cfht_to_sdss
from survey2survey.surveys import get_survey, to_native


@pytest.fixture(scope="module")
def noise_model(tmp_path_factory):
    """A model with a (randomly initialised, seeded) CFHT noise emulator only."""
    torch.manual_seed(3)
    root = tmp_path_factory.mktemp("ne-model")
    config = {
        "name": "tiny-noise", "method": "ours",
        "surveys": {"a": get_survey("sdss").to_dict(), "b": get_survey("cfht").to_dict()},
        "directions": {"sdss->cfht": {"generator": "generator_cfht_to_sdss", "noise_emulator": "noise_emulator_cfht"}},
    }
    # the generator only has to exist for the config to be complete; it is never run here
    modules = {"generator_cfht_to_sdss": generator_cfht_to_sdss(), "noise_emulator_cfht": NoiseEmulator(5)}
    return store.save_model(root / "model", modules, config)


def test_object_seed_is_stable_and_separates_objects_and_runs():
    a = object_seed(0, "J0123")
    assert a == object_seed(0, "J0123") and 0 <= a < 2**63
    assert len({a, object_seed(1, "J0123"), object_seed(0, "J0124"), object_seed(0, "J0123 ")}) == 4


def test_standard_normal_is_a_pure_function_with_normal_statistics():
    keys = [object_seed(0, f"g{i}") for i in range(64)]
    z = standard_normal(keys, 5001, streams=[0, 1])
    assert z.shape == (64, 2, 5001) and z.dtype == torch.float32
    np.testing.assert_array_equal(z.numpy(), standard_normal(keys, 5001, streams=[0, 1]).numpy())
    # one object's numbers do not depend on which other objects or streams are drawn with it
    np.testing.assert_array_equal(z[5, 1].numpy(), standard_normal([keys[5]], 5001, streams=[1])[0, 0].numpy())
    flat = z.numpy().ravel().astype(np.float64)
    assert abs(flat.mean()) < 0.005 and abs(flat.std() - 1) < 0.005  # 640k samples: sigma/sqrt(n) ~ 0.0013
    assert abs(np.mean(flat**4) - 3) < 0.05  # Gaussian kurtosis
    # neighbours, streams and objects uncorrelated
    assert abs(np.corrcoef(z[:, 0, :-1].ravel(), z[:, 0, 1:].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(z[:, 0].ravel(), z[:, 1].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(z[:-1, 0].ravel(), z[1:, 0].ravel())[0, 1]) < 0.01


def test_numpy_and_torch_kernels_agree():
    """The CPU path (numpy) and the GPU path (torch integer kernels, run here on the CPU)."""
    keys = torch.tensor([object_seed(7, f"x{i}") for i in range(5)])
    a = standard_normal(keys, 999, streams=[0, 64, 130])
    b = _standard_normal_torch(keys, 999, [0, 64, 130])
    assert float((a - b).abs().max()) < 1e-5


def test_noise_inputs_streams_per_sample_and_band():
    keys = [object_seed(0, "a"), object_seed(0, "b")]
    z1, z2 = noise_inputs(keys, range(5), 10, 12, samples=3)
    assert z1.shape == (2, 3, 5) and z2.shape == (2, 3, 5, 16, 18)
    # band r of sample 0 is the same draw whatever else is asked for
    r1, r2 = noise_inputs(keys, [2], 10, 12, samples=1)
    np.testing.assert_array_equal(r1[:, 0, 0].numpy(), z1[:, 0, 2].numpy())
    np.testing.assert_array_equal(r2[:, 0, 0].numpy(), z2[:, 0, 2].numpy())
    assert not torch.equal(z2[:, 0], z2[:, 1])


def test_sample_noise_equals_the_emulator_forward():
    torch.manual_seed(0)
    ne = NoiseEmulator(5).eval()
    keys = [object_seed(1, f"m{i}") for i in range(3)]
    noise, amp = sample_noise(ne, keys, range(5), 20, 24)
    z1, z2 = noise_inputs(keys, range(5), 20, 24)
    with torch.no_grad():
        want = ne(z1[:, 0], z2[:, 0])
        want_amp = ne.amplitude(z1[:, 0])
    assert noise.shape == (3, 5, 20, 24)
    assert float((noise - want).abs().max()) < 1e-5
    assert float((amp - want_amp).abs().max()) < 1e-6
    one, _ = sample_noise(ne, keys, [3], 20, 24)  # one band alone: the same map
    assert float((one[:, 0] - want[:, 3]).abs().max()) < 1e-5


def test_emulate_noise_cube_units_and_header_statistics(noise_model, tmp_path):
    out = tmp_path / "r.fits"
    report = emulate_noise("r", 40, model_dir=noise_model, size=(30, 20), seed=5, out=out)
    assert report.path == out and report.bands == ("r",)
    model = store.load_model(noise_model)
    ne = model.modules["noise_emulator_cfht"]
    keys = [object_seed(5, f"noise/{i}") for i in range(40)]
    noise, amp = sample_noise(ne, keys, [2], 30, 20)
    with fits.open(out, checksum=True) as hdul:
        cube, h = hdul[0].data, hdul[0].header
        assert cube.shape == (40, 30, 20) and h["BAND"] == "r" and h["SURVEY"] == "cfht"
        assert h["BUNIT"] == get_survey("cfht").flux_unit and h["NMAPS"] == 40
        # native units: the model-space noise through the survey's inverse transform
        np.testing.assert_allclose(cube, to_native(noise[:, 0].numpy(), "cfht"), rtol=1e-5, atol=1e-3)
        table = hdul["AMPLITUDE"].data
        np.testing.assert_allclose(table["AMP_r"], amp[:, 0].numpy(), rtol=1e-6)
        assert h["AMPMED"] == pytest.approx(float(np.median(table["AMP_r"])), rel=1e-6)
        assert h["AMPMIN"] <= h["AMPMED"] <= h["AMPMAX"] and h["AMPSTD"] > 0
        rms = np.sqrt((cube.astype(np.float64) ** 2).mean(axis=(1, 2)))
        assert h["RMSMED"] == pytest.approx(float(np.median(rms)), rel=1e-5)
        assert h["S2SHASH"] == model.weights_sha256


def test_emulate_noise_reproducible_prefix_and_all_bands(noise_model, tmp_path):
    emulate_noise("g", 6, model_dir=noise_model, size=(16, 16), seed=2, out=tmp_path / "a.fits")
    emulate_noise("g", 3, model_dir=noise_model, size=(16, 16), seed=2, out=tmp_path / "b.fits")
    emulate_noise("g", 3, model_dir=noise_model, size=(16, 16), seed=3, out=tmp_path / "c.fits")
    a, b, c = (fits.getdata(tmp_path / f"{x}.fits") for x in "abc")
    np.testing.assert_array_equal(a[:3], b)  # a smaller n gives the first maps of a larger one
    assert not np.array_equal(b, c)
    emulate_noise("all", 2, model_dir=noise_model, size=(16, 16), seed=2, out=tmp_path / "all.fits")
    with fits.open(tmp_path / "all.fits") as hdul:
        assert [h.name.lower() for h in hdul] == ["u", "g", "r", "i", "z", "amplitude"]
        np.testing.assert_array_equal(hdul["G"].data, a[:2])  # band g is the same draw alone or with all bands


def test_emulate_noise_errors(noise_model, tmp_path):
    with pytest.raises(SurveyError, match="no band 'q'"):
        emulate_noise("q", 2, model_dir=noise_model, out=tmp_path / "x.fits")
    with pytest.raises(ModelError, match="no noise emulator for survey 'sdss'"):
        emulate_noise("r", 2, survey="sdss", model_dir=noise_model, out=tmp_path / "x.fits")
    emulate_noise("r", 2, model_dir=noise_model, size=(8, 8), out=tmp_path / "x.fits")
    with pytest.raises(UsageError, match="output exists"):  # misuse (exit 2), found before sampling
        emulate_noise("r", 2, model_dir=noise_model, size=(8, 8), out=tmp_path / "x.fits")


def test_emulate_noise_command(noise_model, tmp_path, capsys):
    out = tmp_path / "cli.fits"
    code = cli_main(["emulate-noise", "--band", "i", "--n", "12", "--model", str(noise_model),
                     "--size", "24", "32", "--seed", "4", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "12 x 1 cfht noise map(s) of 24x32 px" in text and "maps/s" in text
    assert fits.getdata(out).shape == (12, 24, 32)
    assert cli_main(["emulate-noise", "--band", "i", "--n", "0", "--model", str(noise_model), "--out", str(out)]) == 2
    # the shipped model's CFHT noise: one amplitude for every map, its spread said as 0 (not float rounding)
    capsys.readouterr()
    assert cli_main(["emulate-noise", "--band", "r", "--n", "20", "--out", str(tmp_path / "r.fits")]) == 0
    assert "std 0," in capsys.readouterr().out
