"""Model directories: save_model / load_model round trip and every way a model can be broken."""

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from survey2survey.errors import ModelError, OutputExistsError, UsageError
from survey2survey.model import CONFIG_NAME, WEIGHTS_NAME, load_model, save_model, weights_sha256
from survey2survey.nets import Autoencoder, GeneratorDown, NoiseEmulator


def _modules():
    torch.manual_seed(0)
    # small networks: the checks do not depend on the size
    return {
        "generator_cfht_to_sdss": GeneratorDown(bands=2, in_size=40, out_size=16),
        "noise_emulator_sdss": NoiseEmulator(bands=2),
    }


CONFIG = {"name": "tiny", "method": "ours", "surveys": {"a": "sdss", "b": "cfht"}, "iterations": 3}


@pytest.fixture
def model_dir(tmp_path):
    return save_model(tmp_path / "model", _modules(), CONFIG)


def _rewrite_weights(model_dir, tensors):
    """Replace the weights and record their new SHA-256, so that only the tensor checks can fail."""
    save_file(tensors, str(model_dir / WEIGHTS_NAME))
    config = json.loads((model_dir / CONFIG_NAME).read_text())
    config["weights_sha256"] = weights_sha256(model_dir / WEIGHTS_NAME)
    (model_dir / CONFIG_NAME).write_text(json.dumps(config))


def _load_error(model_dir, match):
    with pytest.raises(ModelError, match=match) as info:
        load_model(model_dir)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- round trip
def test_round_trip_gives_identical_outputs(model_dir):
    original = _modules()
    loaded = load_model(model_dir)
    assert loaded.path == model_dir
    assert set(loaded.modules) == set(original)
    assert all(not m.training for m in loaded.modules.values())
    x = torch.randn(3, 2, 40, 40)
    ne, ne_loaded = original["noise_emulator_sdss"], loaded.modules["noise_emulator_sdss"]
    z1, z2 = ne.sample_inputs(3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.modules["generator_cfht_to_sdss"](x), original["generator_cfht_to_sdss"](x))
        assert torch.equal(ne_loaded(z1, z2), ne(z1, z2))


def test_files_follow_the_contract(model_dir):
    assert sorted(p.name for p in model_dir.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]  # no temp files left
    config = json.loads((model_dir / CONFIG_NAME).read_text())
    assert config["format"] == "s2s-model/1" and config["name"] == "tiny" and config["iterations"] == 3
    assert config["modules"]["noise_emulator_sdss"] == {"class": "NoiseEmulator", "kwargs": {"bands": 2}}
    assert config["modules"]["generator_cfht_to_sdss"]["kwargs"]["in_size"] == 40
    tensors = load_file(str(model_dir / WEIGHTS_NAME))
    assert "noise_emulator_sdss.kernel" in tensors and "generator_cfht_to_sdss.conv6.weight" in tensors
    assert all(t.is_contiguous() and t.device.type == "cpu" for t in tensors.values())
    digest = hashlib.sha256((model_dir / WEIGHTS_NAME).read_bytes()).hexdigest()
    assert weights_sha256(model_dir / WEIGHTS_NAME) == weights_sha256(model_dir) == digest
    assert config["weights_sha256"] == digest == load_model(model_dir).weights_sha256


def test_existing_model_needs_overwrite(model_dir):
    (model_dir / "train").mkdir()
    with pytest.raises(OutputExistsError, match="config.json|weights.safetensors"):
        save_model(model_dir, _modules(), CONFIG)
    modules = {"autoencoder_sdss": Autoencoder(bands=1)}
    save_model(model_dir, modules, {"name": "other"}, overwrite=True)
    assert load_model(model_dir).config["name"] == "other"
    assert (model_dir / "train").is_dir()  # the rest of the directory is left alone


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised by torch's own imports
def test_compiled_module_is_saved_as_the_module_it_wraps(tmp_path):
    net = NoiseEmulator(bands=1)
    save_model(tmp_path / "m", {"ne": torch.compile(net)}, {})  # compiles lazily: nothing runs here
    assert set(load_file(str(tmp_path / "m" / WEIGHTS_NAME))) == {f"ne.{k}" for k in net.state_dict()}


def test_save_rejects_what_it_cannot_rebuild(tmp_path):
    with pytest.raises(ModelError, match="not a network of survey2survey.nets"):
        save_model(tmp_path / "m", {"g": torch.nn.Linear(2, 2)}, {})
    with pytest.raises(ModelError, match="invalid module name"):
        save_model(tmp_path / "m", {"a.b": NoiseEmulator(bands=1)}, {})
    with pytest.raises(ModelError, match="not JSON-serialisable"):
        save_model(tmp_path / "m", {"ne": NoiseEmulator(bands=1)}, {"when": object()})
    assert not (tmp_path / "m" / CONFIG_NAME).exists()


# ---------------------------------------------------------------- broken models
def test_missing_directory_and_files(tmp_path, model_dir):
    _load_error(tmp_path / "nowhere", r"nowhere: model directory not found")
    (model_dir / WEIGHTS_NAME).unlink()
    _load_error(model_dir, rf"{WEIGHTS_NAME}: weights file not found")
    (model_dir / CONFIG_NAME).unlink()
    _load_error(model_dir, rf"{CONFIG_NAME}: missing")


def test_truncated_weights(model_dir):
    path = model_dir / WEIGHTS_NAME
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _load_error(model_dir, rf"{WEIGHTS_NAME}: corrupted or truncated")
    path.write_bytes(data[:5])
    _load_error(model_dir, rf"{WEIGHTS_NAME}: truncated \(5 bytes\)")


def test_random_bytes_instead_of_weights(model_dir):
    path = model_dir / WEIGHTS_NAME
    noise = torch.randint(0, 256, (4096,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    path.write_bytes(noise.numpy().tobytes())
    _load_error(model_dir, rf"{WEIGHTS_NAME}: corrupted or truncated")


def test_bytes_flipped_inside_the_tensor_data(model_dir):
    path = model_dir / WEIGHTS_NAME
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # still a valid safetensors file, only a weight changed
    path.write_bytes(bytes(data))
    _load_error(model_dir, rf"{WEIGHTS_NAME}: SHA-256 .* does not match")


def test_missing_tensor(model_dir):
    tensors = load_file(str(model_dir / WEIGHTS_NAME))
    del tensors["noise_emulator_sdss.fc2.bias"]
    _rewrite_weights(model_dir, tensors)
    _load_error(model_dir, rf"{WEIGHTS_NAME}: missing tensor 'noise_emulator_sdss.fc2.bias'")


def test_unexpected_tensor(model_dir):
    tensors = load_file(str(model_dir / WEIGHTS_NAME))
    tensors["discriminator_sdss.fc1.weight"] = torch.zeros(3)
    _rewrite_weights(model_dir, tensors)
    _load_error(model_dir, rf"{WEIGHTS_NAME}: unexpected tensor 'discriminator_sdss.fc1.weight'")


def test_wrong_shape(model_dir):
    tensors = load_file(str(model_dir / WEIGHTS_NAME))
    tensors["generator_cfht_to_sdss.conv1.weight"] = torch.zeros(64, 3, 3, 3)
    _rewrite_weights(model_dir, tensors)
    _load_error(
        model_dir,
        rf"{WEIGHTS_NAME}: tensor 'generator_cfht_to_sdss.conv1.weight' has shape \(64, 3, 3, 3\), "
        r"GeneratorDown expects \(64, 2, 3, 3\)",
    )


def _edit_config(model_dir, edit):
    path = model_dir / CONFIG_NAME
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def test_unknown_class(model_dir):
    _edit_config(model_dir, lambda c: c["modules"]["noise_emulator_sdss"].update({"class": "os.system"}))
    _load_error(model_dir, rf"{CONFIG_NAME}: module 'noise_emulator_sdss' has unknown class 'os.system'")


def test_bad_kwargs(model_dir):
    _edit_config(model_dir, lambda c: c["modules"]["noise_emulator_sdss"].update(kwargs={"bands": "five"}))
    _load_error(model_dir, rf"{CONFIG_NAME}: cannot build module 'noise_emulator_sdss'.*bands must be")
    _edit_config(model_dir, lambda c: c["modules"]["noise_emulator_sdss"].update({"kwargs": {"colour": 1}}))
    _load_error(model_dir, rf"{CONFIG_NAME}: cannot build module 'noise_emulator_sdss' as NoiseEmulator")


def test_config_without_modules_or_not_json(model_dir):
    _edit_config(model_dir, lambda c: c.pop("modules"))
    _load_error(model_dir, rf"{CONFIG_NAME}: no 'modules' entry")
    (model_dir / CONFIG_NAME).write_text('{"modules": {')
    _load_error(model_dir, rf"{CONFIG_NAME}: not valid JSON")
    (model_dir / CONFIG_NAME).write_text("[1, 2]")
    _load_error(model_dir, rf"{CONFIG_NAME}: must hold a JSON object")
    (model_dir / CONFIG_NAME).write_text('{"format": "s2s-model/9", "modules": {}}')
    _load_error(model_dir, rf"{CONFIG_NAME}: unsupported format 's2s-model/9'")


def test_bad_device_is_a_usage_error(model_dir):
    with pytest.raises(UsageError, match="device 'gpu-please'"):
        load_model(model_dir, device="gpu-please")
