"""ONNX export of a translation model, and ONNX Runtime sessions that run it.

One graph per direction of a model, :class:`~survey2survey.runtime.graph.TranslationGraph`: the generator plus the
target survey's noise emulator, with the noise seeds as explicit inputs, so that the
ONNX backend fed the z of :func:`survey2survey.runtime.seeds.noise_inputs` reproduces the
torch backend (the paper's F = G + NE)::

    inputs   x          (N, C_in, H_in, W_in)          model space, source survey
             z1         (N, S, C_out)                   amplitude seeds
             z2         (N, S, C_out, H_out+6, W_out+6) noise-map seeds
    outputs  generator  (N, C_out, H_out, W_out)        G(x), model space, no noise
             noisy      (N, S, C_out, H_out, W_out)     G(x) + NE(z1, z2), S realisations

N (batch) and S (noise samples per image) are dynamic.  A model direction without a
noise emulator exports ``x -> generator`` only; one with a stochastic generator (augcgan)
``x, z -> generator``, z the latent code ``(N, latent_dim)`` (:class:`LatentGraph`).  Each file carries metadata
(``s2s.format``, ``s2s.direction``, ``s2s.weights_sha256``, ``s2s.graph_sha256``,
``s2s.max_abs_diff``) so that a stale file is never used for other weights, nor for the same
weights built into another graph (the modules' config changed: a speck repair added; or the
package's code: another forward).

Where the files live: ``s2s export --model DIR`` writes ``DIR/onnx/<a>-to-<b>.onnx``;
``s2s translate --backend onnx`` uses those when they match the weights, and otherwise
exports on first use into a per-user cache (the model directory may be read-only):
``$S2S_CACHE/onnx/<graph sha256>/``, default ``~/.cache/survey2survey`` (or
``$XDG_CACHE_HOME/survey2survey``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from survey2survey.atomic import write_bytes
from survey2survey.errors import ModelError, UsageError, first_line, write_failure
from survey2survey.model.directions import default_model_dir, direction_shapes, model_directions
from survey2survey.model.store import load_model
from survey2survey.runtime.device import cuda_device_id
from survey2survey.runtime.graph import LatentGraph, TranslationGraph
from survey2survey.runtime.seeds import latent_codes, noise_inputs

__all__ = [
    "ONNX_FORMAT",
    "OPSET",
    "TOLERANCE",
    "ExportResult",
    "onnx_file_name",
    "cache_dir",
    "export_direction",
    "export_model",
    "onnx_for",
    "create_session",
]

#: Value of the ``s2s.format`` metadata entry.
ONNX_FORMAT = "s2s-onnx/1"
#: ONNX opset of the exported graphs (the torch.export-based exporter's own default).
OPSET = 20
#: Largest model-space difference between ONNX Runtime (CPU) and torch accepted at export.
TOLERANCE = 1e-4


@dataclass
class ExportResult:
    """One exported direction."""

    direction: str
    path: Path
    max_abs_diff: float | None
    has_noise: bool
    has_latent: bool = False


def onnx_file_name(direction: str) -> str:
    """``"sdss->cfht"`` -> ``"sdss-to-cfht.onnx"``."""
    return direction.replace("->", "-to-").replace(" ", "") + ".onnx"


def graph_sha256(model) -> str:
    """SHA-256 of a loaded model's weights, its modules' config and the code that builds them into
    a graph: what its graphs are made of."""
    import hashlib
    import json

    modules = json.dumps(model.config.get("modules") or {}, sort_keys=True)
    return hashlib.sha256(f"{model.weights_sha256}\n{modules}\n{code_sha256()}".encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def code_sha256() -> str:
    """SHA-256 of this package's Python source (a graph exported by other code is stale: the same
    weights and config, another forward)."""
    import hashlib

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cache_dir(key: str) -> Path:
    """Per-user cache of exported graphs of one model (by :func:`graph_sha256`)."""
    root = os.environ.get("S2S_CACHE")
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "survey2survey"
    return base / "onnx" / key


def _direction_parts(model, direction: str):
    """(generator, noise emulator or None, source Survey, target Survey) of ``direction``."""
    directions = model_directions(model.config)
    if direction not in directions:
        raise ModelError(
            f"{model.path}: model has no direction {direction!r} (it has: {', '.join(directions) or 'none'})"
        )
    d = directions[direction]
    gen = model.modules.get(d.generator)
    if gen is None:
        raise ModelError(f"{model.path}: direction {direction} names generator {d.generator!r}, not in the model")
    ne = None
    if d.noise_emulator:
        ne = model.modules.get(d.noise_emulator)
        if ne is None:
            raise ModelError(f"{model.path}: direction {direction} names noise emulator {d.noise_emulator!r}, not in the model")
    return gen, ne, d


@contextlib.contextmanager
def _quiet_exporter():
    """Keep the exporter's progress lines, warnings and torchvision notes off the terminal."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_direction(model, direction: str, path: str | os.PathLike, *, verify: bool = True) -> ExportResult:
    """Export one direction of a loaded model as an ONNX file (atomically).

    Parameters
    ----------
    model : survey2survey.model.LoadedModel
    direction : str
        ``"sdss->cfht"``.
    path : path
        Output ``.onnx`` file.
    verify : bool
        Run the file with ONNX Runtime (CPU) on a small batch and compare with torch;
        refuse it when they differ by more than :data:`TOLERANCE` (model space).

    Returns
    -------
    ExportResult
    """
    import onnx

    gen, ne, d = _direction_parts(model, direction)
    # the emulator's own forward pass: one static graph (N and S stay dynamic)
    graph = (LatentGraph(gen) if d.latent_dim else TranslationGraph(gen, ne, batch_invariant=False)).to("cpu").eval()
    in_hw, out_hw = direction_shapes(model, d)  # the generator's grids (a regridded model: survey a's)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, d.source.n_bands, *in_hw)).astype(np.float32))
    # Two samples and two images: a dimension of size 1 would be specialised away.
    z1, z2 = noise_inputs([11, 12], range(d.target.n_bands), *out_hw, samples=2)
    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples")
    if d.latent_dim:
        args = (x, latent_codes([11, 12], d.latent_dim))
        names_in, names_out = ["x", "z"], ["generator"]
        dynamic = {"x": {0: batch}, "z": {0: batch}}
    elif ne is not None:
        args = (x, z1, z2)
        names_in, names_out = ["x", "z1", "z2"], ["generator", "noisy"]
        dynamic = {"x": {0: batch}, "z1": {0: batch, 1: samples}, "z2": {0: batch, 1: samples}}
    else:
        args = (x,)
        names_in, names_out = ["x"], ["generator"]
        dynamic = {"x": {0: batch}}
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                graph, args, dynamo=True, input_names=names_in, output_names=names_out,
                dynamic_shapes=dynamic, opset_version=OPSET, verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; one line is what the user needs
        raise ModelError(f"{model.path}: ONNX export of {direction} failed ({type(exc).__name__}: {first_line(exc)})") from None
    proto = program.model_proto
    meta = {
        "s2s.format": ONNX_FORMAT,
        "s2s.direction": direction,
        "s2s.weights_sha256": model.weights_sha256,
        "s2s.graph_sha256": graph_sha256(model),
        "s2s.model": str(model.config.get("name", "")),
        "s2s.noise": "yes" if ne is not None else "no",
    }
    onnx.checker.check_model(proto)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    max_diff = None
    if verify:
        max_diff = _verify(proto, graph, d, in_hw, out_hw)
        if not max_diff <= TOLERANCE:
            raise ModelError(
                f"{model.path}: ONNX export of {direction} differs from torch by {max_diff:.2e} "
                f"(more than {TOLERANCE:g} in model space); not written"
            )
        meta["s2s.max_abs_diff"] = f"{max_diff:.3e}"
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        write_bytes(path, proto.SerializeToString())
    except OSError as exc:  # a full disk: exit 1; read-only, no permission: exit 2
        raise write_failure(path, exc) from None
    return ExportResult(direction, path, max_diff, ne is not None, bool(d.latent_dim))


def _verify(proto, graph, d, in_hw, out_hw) -> float:
    """Max |ONNX Runtime (CPU) - torch| over a fresh batch of 3 images, 2 samples."""
    session = _session_from_bytes(proto.SerializeToString())
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((3, d.source.n_bands, *in_hw)).astype(np.float32))
    z1, z2 = noise_inputs([1, 2, 3], range(d.target.n_bands), *out_hw, samples=2)
    feeds = {"x": x.numpy()}
    with torch.no_grad():
        if d.latent_dim:
            z = latent_codes([1, 2, 3], d.latent_dim)
            feeds["z"] = z.numpy()
            want = (graph(x, z),)
        elif graph.noise_emulator is not None:
            feeds.update(z1=z1.numpy(), z2=z2.numpy())
            want = graph(x, z1, z2)
        else:
            want = (graph(x),)
    got = session.run(None, feeds)
    return max(float(np.max(np.abs(g - w.numpy()))) for g, w in zip(got, want))


def export_model(
    model_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    fmt: str = "onnx",
    directions: list[str] | None = None,
    overwrite: bool = False,
    verify: bool = True,
) -> list[ExportResult]:
    """Export every direction (or the given ones) of a model directory.

    Parameters
    ----------
    model_dir : path, optional
        Default :func:`survey2survey.model.default_model_dir`.
    out_dir : path, optional
        Default ``<model_dir>/onnx``.
    fmt : {"onnx"}
    directions : list of str, optional
    overwrite : bool
        Replace existing files; otherwise an existing file is a UsageError (exit 2).
    verify : bool
        See :func:`export_direction`.
    """
    if fmt.lower() != "onnx":
        raise UsageError(f"unknown export format {fmt!r} (supported: onnx)")
    model_dir = model_dir if model_dir is not None else default_model_dir()
    model = load_model(model_dir, device="cpu", fold=True)
    out_dir = Path(out_dir) if out_dir is not None else Path(model_dir) / "onnx"
    known = model_directions(model.config)
    names = directions or list(known)
    if not names:
        raise ModelError(f"{model_dir}: the model has no translation directions")
    for name in names:  # before anything is created
        if name not in known:
            raise ModelError(f"{model.path}: model has no direction {name!r} (it has: {', '.join(known) or 'none'})")
    targets = [(name, out_dir / onnx_file_name(name)) for name in names]
    if not overwrite:
        for _, path in targets:
            if path.exists():
                raise UsageError(f"{path}: exists (use --overwrite to replace it)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):  # unwritable: misuse, found before any work
            pass
    except OSError as exc:
        raise UsageError(f"{out_dir}: cannot write output there ({exc.strerror or exc})") from None
    return [export_direction(model, name, path, verify=verify) for name, path in targets]


def _metadata(path: Path) -> dict[str, str]:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        return {}
    return {p.key: p.value for p in proto.metadata_props}


def onnx_for(model, direction: str) -> Path:
    """The ONNX file of ``direction`` for these exact weights, exporting it on first use.

    Looks in ``<model dir>/onnx/`` (written by ``s2s export``), then in the user cache;
    exports into the cache when neither holds a file made from these weights.
    """
    name = onnx_file_name(direction)
    key = graph_sha256(model)
    for candidate in (Path(model.path) / "onnx" / name, cache_dir(key) / name):
        if candidate.is_file():
            meta = _metadata(candidate)
            if (meta.get("s2s.weights_sha256"), meta.get("s2s.graph_sha256"), meta.get("s2s.direction")) == \
                    (model.weights_sha256, key, direction):
                return candidate
    target = cache_dir(key) / name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"{target.parent}: cannot create the ONNX cache ({exc.strerror or exc}); set S2S_CACHE to a writable directory"
        ) from None
    # Several shards may export at once: each writes a temporary file and renames it,
    # and the files are identical, so the last rename wins harmlessly.
    print(f"s2s: note: exporting {direction} of model {Path(model.path).name} to ONNX, once for these weights "
          f"(seconds; kept in {target.parent})", file=sys.stderr, flush=True)
    export_direction(model, direction, target, verify=True)
    return target


def _session_from_bytes(data, providers=("CPUExecutionProvider",), threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(data, sess_options=options, providers=list(providers))


def create_session(path: str | os.PathLike, device: str = "auto"):
    """An ONNX Runtime session on the CUDA provider when it really works, else the CPU.

    Parameters
    ----------
    path : path
        ``.onnx`` file.
    device : {"auto", "cpu", "cuda", "cuda:N"}
        ``"cpu"`` never tries CUDA; ``"cuda"`` fails (UsageError) when the CUDA provider
        does not come up; ``"auto"`` falls back to the CPU quietly.

    Returns
    -------
    session : onnxruntime.InferenceSession
    provider : str
        The provider that runs the graph (``session.get_providers()[0]``, not the
        compiled-in list, which names CUDA even where its libraries are missing).
    """
    import onnxruntime as ort

    device = str(device)
    want_cuda = device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers()
    if device.startswith("cuda") and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise UsageError("--device cuda: this ONNX Runtime build has no CUDA provider (install onnxruntime-gpu)")
    providers: list = ["CPUExecutionProvider"]
    if want_cuda:
        providers = [("CUDAExecutionProvider", {"device_id": cuda_device_id(device)}), "CPUExecutionProvider"]
    # ONNX Runtime logs an error and a warning through its default logger when the CUDA
    # libraries are missing, even though it then runs fine on the CPU: silence it while
    # the session comes up, and report what actually runs instead.
    ort.set_default_logger_severity(4)
    try:
        session = _session_from_bytes(str(path), providers)
    except Exception as exc:
        raise ModelError(f"{path}: ONNX Runtime cannot load the graph ({first_line(exc)})") from None
    finally:
        ort.set_default_logger_severity(2)
    provider = session.get_providers()[0]
    if device.startswith("cuda") and provider != "CUDAExecutionProvider":
        raise UsageError(
            "--device cuda: ONNX Runtime's CUDA provider did not start (missing CUDA/cuDNN libraries or no GPU); "
            "use --device cpu or auto"
        )
    return session, provider
