"""Save and load trained models: a directory with ``config.json`` and ``weights.safetensors``.

Layout (``docs/dev/CONTRACTS.md``)::

    MODEL_DIR/
      config.json          the caller's config plus
                           "format": "s2s-model/1",
                           "modules": {"<name>": {"class": "<class in nets.NETWORKS>", "kwargs": {...}}},
                           "weights_sha256": "<hex digest of weights.safetensors>"
      weights.safetensors  tensors "<module name>.<state_dict key>", contiguous CPU tensors

Loading never executes code from the files: the weights are safetensors, the
architecture is a class name looked up in ``survey2survey.nets.NETWORKS`` and rebuilt
from JSON keywords.  Anything wrong with the files is a ``ModelError`` with one line
naming the file and the problem.  The SHA-256 of ``weights.safetensors`` is the
model's identity in FITS provenance; it is also recorded in ``config.json`` at save
time so that a weights file corrupted in place (or swapped) is caught at load time.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from survey2survey.atomic import remove_stale, write_bytes
from survey2survey.errors import ModelError, OutputExistsError, UsageError, first_line, write_failure

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "MODEL_FORMAT",
    "LoadedModel",
    "save_model",
    "load_model",
    "weights_sha256",
    "leave_to_physics",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"
MODEL_FORMAT = "s2s-model/1"
_CHUNK = 1 << 20


@dataclass
class LoadedModel:
    """A model read back by ``load_model``.

    Attributes
    ----------
    config : dict
        Contents of ``config.json``.
    modules : dict of str to torch.nn.Module
        The networks, on the requested device, in eval mode.
    weights_sha256 : str
        Hex SHA-256 of ``weights.safetensors`` (the model's identity).
    path : pathlib.Path
        The model directory.
    """

    config: dict[str, Any]
    modules: dict[str, Any]
    weights_sha256: str
    path: Path


# ---------------------------------------------------------------------- save
def save_model(model_dir, modules: dict, config: dict, overwrite: bool = False) -> Path:
    """Write ``modules`` and ``config`` to ``model_dir`` (created if needed).

    Parameters
    ----------
    model_dir : str or pathlib.Path
        Directory of the model.  Other content (``train/``) is left alone.
    modules : dict of str to torch.nn.Module
        Networks from ``survey2survey.nets`` by module name (e.g.
        ``"generator_sdss_to_cfht"``).  A ``torch.compile``-d module is saved as the
        module it wraps.
    config : dict
        JSON-able metadata (method, surveys, directions, ...).  Its "modules" entry,
        if any, is replaced by the description of ``modules``; "format" defaults to
        ``"s2s-model/1"``; "weights_sha256" is set.
    overwrite : bool
        Replace an existing ``config.json`` / ``weights.safetensors``.

    Returns
    -------
    pathlib.Path
        ``model_dir``.

    Raises
    ------
    OutputExistsError
        The model files exist and ``overwrite`` is false.
    ModelError
        A module is not a network of ``survey2survey.nets``, a name is invalid, or the
        config cannot be written as JSON.
    """
    import torch
    from safetensors.torch import save

    model_dir = Path(model_dir)
    config_path, weights_path = model_dir / CONFIG_NAME, model_dir / WEIGHTS_NAME
    if not isinstance(config, dict):
        raise ModelError(f"{config_path}: config must be a dict, not {type(config).__name__}")
    if not isinstance(modules, dict) or not (modules or _physics_only(config)):
        raise ModelError(f"{config_path}: modules must be a non-empty dict of name -> network")

    tensors: dict[str, torch.Tensor] = {}
    described: dict[str, dict[str, Any]] = {}
    for name, module in modules.items():
        module = getattr(module, "_orig_mod", module)  # unwrap torch.compile
        cls_name = _check_module(name, module, config_path)
        described[name] = {"class": cls_name, "kwargs": copy.deepcopy(module.init_kwargs)}
        for key, value in module.state_dict().items():
            # copy=True: never share storage between tensors (safetensors refuses it)
            tensors[f"{name}.{key}"] = value.detach().to("cpu", copy=True).contiguous()

    out = dict(config)
    out.setdefault("format", MODEL_FORMAT)
    out["modules"] = described
    blob = save(tensors)
    out["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    try:
        text = json.dumps(out, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{config_path}: config is not JSON-serialisable ({exc})") from None

    if model_dir.exists() and not model_dir.is_dir():
        raise ModelError(f"{model_dir}: exists and is not a directory")
    if not overwrite:
        for path in (config_path, weights_path):
            if path.exists():
                raise OutputExistsError(path)
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        # weights first: a config.json only ever exists next to the weights it describes
        remove_stale(model_dir)
        write_bytes(weights_path, blob)
        write_bytes(config_path, text.encode("utf-8"))
    except OSError as exc:  # a full disk: exit 1; read-only, no permission: exit 2
        raise write_failure(exc.filename or model_dir, exc) from None
    return model_dir


def _check_module(name, module, config_path: Path) -> str:
    """Validate one entry of ``modules``; return its class name."""
    from survey2survey.nets import NETWORKS

    if not isinstance(name, str) or not name or "." in name:
        raise ModelError(f"{config_path}: invalid module name {name!r} (non-empty, no '.')")
    cls_name = type(module).__name__
    if NETWORKS.get(cls_name) is not type(module):
        raise ModelError(
            f"{config_path}: module {name!r} is a {cls_name}, not a network of survey2survey.nets "
            f"(known: {', '.join(sorted(NETWORKS))})"
        )
    kwargs = getattr(module, "init_kwargs", None)
    if not isinstance(kwargs, dict):
        raise ModelError(f"{config_path}: module {name!r} ({cls_name}) has no init_kwargs dict")
    return cls_name


# ---------------------------------------------------------------------- load
def weights_sha256(path) -> str:
    """Hex SHA-256 of a weights file, or of ``weights.safetensors`` in a model directory."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        raise ModelError(f"{path}: weights file not found") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return digest.hexdigest()


def load_model(model_dir, device="cpu", *, fold: bool = False) -> LoadedModel:
    """Read a model directory written by ``save_model``.

    Parameters
    ----------
    model_dir : str or pathlib.Path
        The model directory.
    device : str or torch.device
        Where to put the networks ("cpu", "cuda", "cuda:1", ...).
    fold : bool
        For inference: fold each nearest x2 up-sampling into the convolution after it
        (:func:`survey2survey.nets.layers.fold_upsampling`; same weights and function,
        fewer operations).

    Returns
    -------
    LoadedModel
        Config, networks in eval mode, SHA-256 of the weights, path.

    Raises
    ------
    ModelError
        Missing directory or file, bad JSON, unknown network class or bad keywords,
        corrupted / truncated weights, missing or unexpected tensors, wrong shapes.
    UsageError
        ``device`` is not a usable torch device.
    """
    import torch

    from survey2survey.nets.layers import fold_upsampling

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        what = "is a file, not a model directory" if model_dir.exists() else "model directory not found"
        raise ModelError(f"{model_dir}: {what}")
    config_path, weights_path = model_dir / CONFIG_NAME, model_dir / WEIGHTS_NAME
    config = _read_config(config_path)
    torch_device = _device(device)

    # Build every network first: cheap, and catches config errors before reading weights.
    networks = {name: _build(name, spec, config_path) for name, spec in config["modules"].items()}

    try:
        blob = weights_path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{weights_path}: weights file not found") from None
    except OSError as exc:
        raise ModelError(f"{weights_path}: cannot read ({exc.strerror or exc})") from None
    sha = hashlib.sha256(blob).hexdigest()
    recorded = config.get("weights_sha256")
    tensors = _parse_weights(blob, weights_path)
    if recorded is not None and recorded != sha:
        raise ModelError(
            f"{weights_path}: SHA-256 {sha[:12]}... does not match the {recorded[:12]}... recorded in "
            f"{CONFIG_NAME} (file changed or corrupted)"
        )
    del blob

    expected = {f"{name}.{key}": (name, key) for name, net in networks.items() for key in net.state_dict()}
    missing = [k for k in expected if k not in tensors]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ModelError(f"{weights_path}: missing tensor '{missing[0]}'{more}")
    extra = sorted(k for k in tensors if k not in expected)
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise ModelError(
            f"{weights_path}: unexpected tensor '{extra[0]}'{more}, not part of the networks in {CONFIG_NAME}"
        )

    for name, net in networks.items():
        state = net.state_dict()
        for key, ref in state.items():
            got = tensors[f"{name}.{key}"]
            if tuple(got.shape) != tuple(ref.shape):
                raise ModelError(
                    f"{weights_path}: tensor '{name}.{key}' has shape {tuple(got.shape)}, "
                    f"{type(net).__name__} expects {tuple(ref.shape)}"
                )
            if got.dtype.is_floating_point != ref.dtype.is_floating_point:
                raise ModelError(
                    f"{weights_path}: tensor '{name}.{key}' has dtype {got.dtype}, expected {ref.dtype}"
                )
        net.load_state_dict({key: tensors[f"{name}.{key}"] for key in state}, strict=True)
        try:
            net.to(torch_device)
        except (RuntimeError, AssertionError) as exc:
            raise UsageError(f"device {str(device)!r} is not usable here ({first_line(exc, 10_000)})") from None
        net.eval()
        if fold:
            fold_upsampling(net)
    return LoadedModel(config=config, modules=networks, weights_sha256=sha, path=model_dir)


def _read_config(config_path: Path) -> dict[str, Any]:
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"{config_path}: missing (not a model directory?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{config_path}: cannot read ({first_line(exc, 10_000)})") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ModelError(f"{config_path}: not valid JSON ({exc.msg} at {where})") from None
    if not isinstance(config, dict):
        raise ModelError(f"{config_path}: must hold a JSON object, not {type(config).__name__}")
    fmt = config.get("format", MODEL_FORMAT)
    if fmt != MODEL_FORMAT:
        raise ModelError(f"{config_path}: unsupported format {fmt!r} (this version reads {MODEL_FORMAT!r})")
    modules = config.get("modules")
    if not isinstance(modules, dict) or not (modules or _physics_only(config)):
        raise ModelError(f"{config_path}: no 'modules' entry describing the networks")
    if "weights_sha256" in config and not isinstance(config["weights_sha256"], str):
        raise ModelError(f"{config_path}: 'weights_sha256' must be a string")
    _check_schema(config, config_path)
    return config


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), type(value).__name__)


def _check_schema(config: dict[str, Any], config_path: Path) -> None:
    """Refuse a config.json whose entries the commands read have the wrong shape.

    Checked: ``surveys`` (side -> survey name, or definition valid as in the registry),
    ``directions`` ("src->dst" -> generator and noise emulator naming modules of the
    model, positive ``latent_dim``; or ``"translator": "physics"`` and no generator),
    ``regridded``, ``sizes``; other keys are free.
    """
    from survey2survey.errors import S2SError
    from survey2survey.surveys import Survey

    def fail(problem: str):
        raise ModelError(f"{config_path}: {problem}")

    surveys = config.get("surveys", {})
    if not isinstance(surveys, dict):
        fail(f"'surveys' must be an object (side -> survey definition), not {_kind(surveys)}")
    for side, spec in surveys.items():
        if isinstance(spec, str) and spec.strip():  # a survey's name: the registry's definition is used
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            fail(f"surveys.{side} must be a survey name or a definition with a 'name', not {_kind(spec)}")
        try:
            Survey.from_dict(spec["name"], spec, f"surveys.{side}")
        except S2SError as exc:
            fail(str(exc))
    directions = config.get("directions", {})
    if not isinstance(directions, dict):
        fail(f"'directions' must be an object (\"src->dst\" -> its networks), not {_kind(directions)}")
    modules = config["modules"]
    for name, parts in directions.items():
        if "->" not in name or not all(side.strip() for side in name.split("->", 1)):
            fail(f"direction {name!r} must be named 'src->dst'")
        if not isinstance(parts, dict):
            fail(f"direction {name!r} must be an object, not {_kind(parts)}")
        physics = parts.get("translator") == "physics"  # left to the physics translator: no generator
        if "translator" in parts and not physics:
            fail(f"direction {name!r}: 'translator' can only be \"physics\", not {parts['translator']!r}")
        for key, role in (("generator", "generator"), ("noise_emulator", "noise emulator")):
            module = parts.get(key)
            if module is None and (key == "noise_emulator" or physics):
                continue
            if not isinstance(module, str) or module not in modules:
                fail(f"direction {name!r} names {role} {module!r}, not a module of the model "
                     f"(modules: {', '.join(sorted(modules))})")
        latent = parts.get("latent_dim")
        if latent is not None and (isinstance(latent, bool) or not isinstance(latent, int) or latent < 1):
            fail(f"direction {name!r}: latent_dim must be a positive integer, not {latent!r}")
    if not isinstance(config.get("regridded", False), bool):
        fail(f"'regridded' must be true or false, not {config['regridded']!r}")
    sizes = config.get("sizes", {})
    if not isinstance(sizes, dict):
        fail(f"'sizes' must be an object (side -> [bands, H, W]), not {_kind(sizes)}")


def _build(name: str, spec, config_path: Path):
    """Rebuild network ``name`` from its {"class", "kwargs"} description."""
    from survey2survey.nets import NETWORKS

    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        raise ModelError(f"{config_path}: module {name!r} needs a 'class' name and 'kwargs'")
    cls_name, kwargs = spec["class"], spec.get("kwargs", {})
    cls = NETWORKS.get(cls_name)
    if cls is None:
        known = ", ".join(sorted(NETWORKS))
        raise ModelError(f"{config_path}: module {name!r} has unknown class {cls_name!r} (known: {known})")
    if not isinstance(kwargs, dict):
        raise ModelError(f"{config_path}: 'kwargs' of module {name!r} must be an object")
    try:
        return cls(**kwargs)
    except ModelError as exc:
        raise ModelError(f"{config_path}: cannot build module {name!r}: {exc}") from None
    except (TypeError, ValueError) as exc:
        reason = first_line(exc, 10_000)
        raise ModelError(f"{config_path}: cannot build module {name!r} as {cls_name}: {reason}") from None


def _parse_weights(blob: bytes, weights_path: Path):
    """Parse a safetensors byte string; any failure is a one-line ModelError."""
    from safetensors.torch import load

    if len(blob) < 8:
        raise ModelError(f"{weights_path}: truncated ({len(blob)} bytes), not a safetensors file")
    try:
        return load(blob)
    except Exception as exc:  # safetensors raises its own error types (Rust side) for every kind of damage
        reason = first_line(exc, 10_000)
        raise ModelError(f"{weights_path}: corrupted or truncated safetensors file ({reason})") from None


def _device(device):
    import torch

    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UsageError(f"invalid device {str(device)!r} ({first_line(exc, 10_000)})") from None


def _physics_only(config: dict) -> bool:
    """True when every direction of ``config`` is left to the physics translator (no network needed)."""
    directions = config.get("directions")
    return bool(directions) and isinstance(directions, dict) and all(
        isinstance(p, dict) and p.get("translator") == "physics" for p in directions.values())


def leave_to_physics(model_dir, out_dir, reasons: dict[str, str], overwrite: bool = False,
                     extra: dict | None = None) -> Path:
    """Copy a model, with the directions of ``reasons`` left to the physics translator.

    Those directions' generators and noise emulators are dropped (``s2s emulate-noise``
    then draws the survey's physics noise); a model whose directions all go to the physics
    holds no network.  ``reasons``: ``{"cfht->sdss": "why"}``, said by
    ``s2s translate`` when it uses the physics for that direction.  ``extra``: config.json
    entries to set (``name``, ``validity``, ``training_range``).
    """
    loaded = load_model(model_dir, device="cpu")
    config = copy.deepcopy(loaded.config) | dict(extra or {})
    for name, reason in reasons.items():
        spec = config["directions"].get(name)
        if spec is None:
            raise ModelError(f"{model_dir}: no direction {name!r} (it has {', '.join(config['directions'])})")
        config["directions"][name] = {"translator": "physics", "reason": str(reason)}
    used = {spec.get(k) for spec in config["directions"].values() for k in ("generator", "noise_emulator")}
    modules = {n: m for n, m in loaded.modules.items() if n in used}
    return save_model(out_dir, modules, config, overwrite=overwrite)
