"""Translate FITS cutouts from one survey into another: the library behind ``s2s translate``.

What happens to one cutout (Lin & Fouchez 2021, F = G + NE)::

    FITS (source survey, native units)
      -> read_cutout, to_model_space                     reader process
      -> G(x) + NE(z1, z2) with z from the object's seed  this process (GPU or CPU)
      -> to_native (target survey), WCS rescaled to the
         output grid, provenance, write_cutout             writer process
    FITS (target survey, native units)

The noise is formed in model space, where the emulator was trained, and converted with
the rest.  ``noise=False`` writes G(x) alone; ``samples=S`` writes S noise realisations
(the primary HDU is realisation 1, extensions ``SAMPLE2`` ... ``SAMPLE<S>``).

A pipeline, not a loop: reading (and the check of existing outputs) and writing run in
worker processes while this process runs the model on large batches in a separate
thread; results do not depend on batch size, worker count or sharding because each
object's noise comes from its own seed (:func:`survey2survey.emulate.object_seed`).

Outputs are named ``<object id>.<target survey>.fits`` in ``out_dir`` (default
``./<target survey>/``), mirroring the sub-directories below a directory given as input,
so that object ids survive.  An existing output that passes its checksums is kept
(counted as skipped) unless ``overwrite``; a broken one is redone.

Every method's model runs: a model trained on the regridded set (cyclegan, augcgan:
``"regridded"`` in config.json) works on survey a's grid, so a b cutout is resampled onto
it before the model, as ``s2s prepare --regrid`` did for training, and an output in b is
resampled from it onto b's cutout grid (flux conserved, ``S2SGRID`` keyword); a stochastic
generator ``G(x, z)`` (augcgan) gets its latent code from the object's seed like the noise.

Bad pixels: pixels that were NaN/inf in the input (filled with 0 by the FITS layer) are
carried as a ``MASK`` extension on the output grid: an output pixel is flagged when its
footprint overlaps a filled input pixel.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from survey2survey.errors import CutoutError, ModelError, S2SError, UsageError
from survey2survey.surveys import Survey, get_survey

__all__ = [
    "BACKENDS",
    "default_model_dir",
    "resolve_device",
    "parse_shard",
    "output_name",
    "Direction",
    "model_directions",
    "TorchEngine",
    "OnnxEngine",
    "load_engine",
    "direction_shapes",
    "TranslateReport",
    "translate",
]

BACKENDS = ("torch", "onnx")
#: Default images per model call.
DEFAULT_BATCH = {"cuda": 512, "cpu": 16}
#: Fewer inputs than this are read and written in this process (no pool start-up).
_INLINE_BELOW = 32


# --- small public helpers --------------------------------------------------------------


def default_model_dir() -> Path:
    """The model used when none is given: ``$S2S_MODEL``, else the shipped ``models/sdss-cfht``.

    Raises
    ------
    ModelError
        When neither exists.
    """
    import survey2survey

    env = os.environ.get("S2S_MODEL")
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise ModelError(f"S2S_MODEL={env}: model directory not found")
        return path
    shipped = Path(survey2survey.__file__).resolve().parents[1] / "models" / "sdss-cfht"
    if (shipped / "config.json").is_file():
        return shipped
    raise ModelError(
        "no model found: give --model DIR, set S2S_MODEL, or train one with `s2s train` "
        f"(the shipped model would be in {shipped.parent.name}/{shipped.name}/)"
    )


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` (``cuda:$LOCAL_RANK`` under torchrun) when torch sees a GPU, else ``cpu``."""
    import torch

    device = (device or "auto").lower()
    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        device = "cuda"
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA GPU is available to torch here (use --device cpu or auto)")
        if device == "cuda" and "LOCAL_RANK" in os.environ:
            device = f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
        return device
    raise UsageError(f"--device must be auto, cpu or cuda[:N], not {device!r}")


#: Arithmetic of the torch backend's generator (``--precision``, besides ``auto``).
PRECISIONS = ("fp32", "tf32", "bf16")
_PRECISION_CHOICES = "auto, fp32, tf32 or bf16"


def set_cuda_fp32_precision(tf32: bool) -> None:
    """Let float32 convolutions and matrix products on CUDA use TF32 tensor cores, or not.

    A process-wide switch of PyTorch (the newer ``fp32_precision`` settings where they
    exist, ``allow_tf32`` before torch 2.9).
    """
    import torch

    mode = "tf32" if tf32 else "ieee"
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        conv.fp32_precision = mode
        torch.backends.cuda.matmul.fp32_precision = mode
    else:  # pragma: no cover - older torch
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` -> (I, N) with 0 <= I < N; ``"auto"`` reads torchrun's RANK/WORLD_SIZE
    or SLURM's SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT (task ids counted from
    SLURM_ARRAY_TASK_MIN); None -> None (everything)."""
    if text is None or text == "":
        return None
    if text == "auto":
        env = os.environ
        if "RANK" in env and "WORLD_SIZE" in env:
            return parse_shard(f"{env['RANK']}/{env['WORLD_SIZE']}")
        if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            first = int(env.get("SLURM_ARRAY_TASK_MIN", "0") or 0)
            return parse_shard(f"{int(env['SLURM_ARRAY_TASK_ID']) - first}/{env['SLURM_ARRAY_TASK_COUNT']}")
        raise UsageError("--shard auto: neither RANK/WORLD_SIZE (torchrun) nor SLURM_ARRAY_TASK_ID/COUNT is set")
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise UsageError(f"--shard must be I/N (e.g. 0/4) or auto, not {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {text}: need 0 <= I < N")
    return index, count


def output_name(object_id: str, target: Survey | str) -> str:
    """``J0123`` + cfht -> ``J0123.cfht.fits``."""
    return f"{object_id}.{get_survey(target).name if isinstance(target, str) else target.name}.fits"


# --- the model's directions ---------------------------------------------------------------


@dataclass(frozen=True)
class Direction:
    """One translation direction of a model (``config.json`` "directions" entry).

    Attributes
    ----------
    latent_dim : int or None
        Size of the latent code z of a stochastic generator ``G(x, z)`` (augcgan).
    source_grid, target_grid : Survey or None
        For models trained on a regridded set (cyclegan, augcgan: b regridded onto a's
        grid), the survey whose pixel grid the generator reads or writes when it is not
        the source's or target's own: the cutout is resampled onto it before the model,
        or the model's output resampled from it onto the target's grid.
    """

    name: str
    source: Survey
    target: Survey
    generator: str
    noise_emulator: str | None
    latent_dim: int | None = None
    source_grid: Survey | None = None
    target_grid: Survey | None = None


def model_directions(config: dict) -> dict[str, Direction]:
    """Directions of a model, with the surveys as the model recorded them.

    The model's own survey definitions (``config["surveys"]``) fix the flux scaling it was
    trained with, so they win over the registry's; a survey the config does not describe
    comes from the registry.
    """
    recorded: dict[str, Survey] = {}
    for spec in (config.get("surveys") or {}).values():
        if isinstance(spec, dict) and spec.get("name"):
            try:
                s = Survey.from_dict(spec["name"], spec, "config.json")
            except S2SError as exc:
                raise ModelError(f"config.json: bad survey definition ({exc})") from None
            recorded[s.name] = s
    grid = None  # regridded models: every network works on survey a's grid
    if config.get("regridded"):
        a_spec = (config.get("surveys") or {}).get("a")
        grid = recorded.get(a_spec.get("name")) if isinstance(a_spec, dict) else None
        if grid is None:
            raise ModelError("config.json: a regridded model must describe survey 'a' (whose grid it works on)")
    out: dict[str, Direction] = {}
    for name, parts in (config.get("directions") or {}).items():
        if "->" not in name or not isinstance(parts, dict) or not parts.get("generator"):
            raise ModelError(f"config.json: direction {name!r} must be 'a->b' with a 'generator'")
        a, b = (s.strip().lower() for s in name.split("->", 1))
        src = recorded.get(a) or get_survey(a)
        tgt = recorded.get(b) or get_survey(b)
        latent = parts.get("latent_dim")
        if latent is not None and (isinstance(latent, bool) or not isinstance(latent, int) or latent < 1):
            raise ModelError(f"config.json: direction {name!r}: latent_dim must be a positive integer, got {latent!r}")
        out[name] = Direction(
            name, src, tgt, parts["generator"], parts.get("noise_emulator") or None, latent,
            source_grid=grid if grid is not None and src.name != grid.name else None,
            target_grid=grid if grid is not None and tgt.name != grid.name else None,
        )
    return out


# --- engines: the model on a device ---------------------------------------------------------


class TorchEngine:
    """Generator + noise emulator of one direction with PyTorch.

    Parameters
    ----------
    model : survey2survey.model_io.LoadedModel
        Its generator and noise emulator are moved to ``device``.
    direction : Direction
    device : str
        ``cpu``, ``cuda``, ``cuda:N``.
    precision : {"auto", "fp32", "tf32", "bf16"}
        Arithmetic of the generator (the noise emulator always runs in float32).
        ``auto`` is fp32 everywhere (on CUDA with TF32 turned off).  tf32 (CUDA tensor
        cores) and bf16 autocast are faster but opt-in: their rounding of the weights is
        the same at every pixel, so the error does not average out over a galaxy.  With
        the shipped model, SDSS -> CFHT, bf16 moves the summed flux of an image by 6.4
        sigma_sum (median over images and bands; sigma_sum is the noise of that sum) and
        TF32 (emulated on a CPU) by 0.5 sigma_sum.  ``bench/translate_speed.py``
        measures both for a model on the device it runs on.
    compile : bool
        ``torch.compile`` the generator (worth it for long GPU runs; batches are padded
        to one size so that it compiles once).
    """

    backend = "torch"

    def __init__(self, model, direction: Direction, device: str = "cpu", precision: str = "auto", compile: bool = False):
        import torch

        from survey2survey.export import TranslationGraph

        self.direction = direction
        self.device = torch.device(device)
        if precision == "auto":
            precision = "fp32"
        if precision not in PRECISIONS:
            raise UsageError(f"precision must be {_PRECISION_CHOICES}, not {precision!r}")
        if precision == "tf32" and self.device.type != "cuda":
            raise UsageError("--precision tf32 needs a CUDA GPU (TF32 is a tensor-core format); use fp32 on the CPU")
        self.precision = precision
        if self.device.type == "cuda":
            set_cuda_fp32_precision(tf32=precision == "tf32")
        gen = model.modules[direction.generator]
        ne = model.modules[direction.noise_emulator] if direction.noise_emulator else None
        self.graph = TranslationGraph(gen, ne).to(self.device).eval()
        self.has_noise = ne is not None
        self.latent_dim = direction.latent_dim
        self.provider = None
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        # channels-last: the fast layout of cuDNN and oneDNN (5-18 % faster on 2 CPU cores)
        self.graph.generator.to(memory_format=torch.channels_last)
        self._generator = torch.compile(self.graph.generator, dynamic=False) if compile else self.graph.generator
        self.compiled = compile
        self.in_shape, self.out_shape = direction_shapes(model, direction)

    def describe(self) -> str:
        """``torch/cuda/bf16`` and the like (the S2SBACK keyword)."""
        return f"torch/{self.device.type}/{self.precision}" + ("/compiled" if self.compiled else "")

    def run(self, x: np.ndarray, keys: np.ndarray, samples: int = 1, noise: bool = True, pad_to: int | None = None) -> np.ndarray:
        """Translate a batch.

        Parameters
        ----------
        x : ndarray, shape (N, C_in, H_in, W_in), float32
            Model space.
        keys : ndarray, shape (N,), int64
            Per-object noise keys (:func:`survey2survey.emulate.object_seed`).
        samples : int
            Noise realisations per image (a stochastic generator: latent codes drawn).
        noise : bool
            False: the generator's output alone (one "sample").
        pad_to : int, optional
            Pad the batch to this size (fixed shapes for a compiled generator).

        Returns
        -------
        ndarray, shape (N, S, C_out, H_out, W_out), float32
            Model space; S = ``samples`` with noise or a latent code, 1 without.
        """
        import torch

        from survey2survey.emulate import latent_codes, noise_inputs, noise_maps

        n = x.shape[0]
        cuda = self.device.type == "cuda"
        if not cuda and not pad_to and n == 1:
            # ATen runs a single image through another convolution kernel than a batch
            # (use_mkldnn: batch size 1 with a small input goes to the native kernel), whose
            # sums round differently; two images keep an object's bytes independent of the
            # batch it lands in (--batch-size, --workers, a re-run).
            pad_to = 2
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if pad_to and n < pad_to:
            xt = torch.cat([xt, xt.new_zeros((pad_to - n, *xt.shape[1:]))])
        if cuda:
            xt = xt.pin_memory().to(self.device, non_blocking=True)
        xt = xt.contiguous(memory_format=torch.channels_last)
        # a stochastic generator draws one latent code per realisation; others run once
        draws = samples if (self.latent_dim and noise) else 1
        with torch.no_grad():
            g = []
            for s in range(draws):
                args = [xt]
                if self.latent_dim:
                    z = latent_codes(keys, self.latent_dim, s, device=self.device)  # (N, latent_dim)
                    args.append(torch.cat([z, z.new_zeros((xt.shape[0] - n, z.shape[1]))]))
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                    g.append(self._generator(*args)[:n].float())  # (N, C, H, W), fp32 from here on
            if noise and self.has_noise:
                c, h, w = g[0].shape[1:]
                z1, z2 = noise_inputs(keys, range(c), h, w, samples, device=self.device)
                # F = G + NE, as TranslationGraph.add_noise, with bits independent of the batch
                ne = noise_maps(self.graph.noise_emulator, z1.flatten(0, 1), z2.flatten(0, 1))  # (N*S, C, H, W)
                out = (g[0].unsqueeze(1) + ne.unflatten(0, (n, samples))).contiguous()  # (N, S, C, H, W)
            else:
                out = torch.stack(g, dim=1).contiguous()  # (N, draws, C, H, W)
            if not cuda:
                return out.numpy()
            # pinned host memory (torch caches these blocks): about twice the copy speed
            host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
            host.copy_(out, non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
            return host.numpy()


class OnnxEngine:
    """The exported graph of one direction with ONNX Runtime (CUDA provider when it works).

    The noise seeds are the same as the torch backend's (computed with torch on the
    CPU, or on the GPU when the CUDA provider runs and torch sees the GPU), so the two
    backends agree to float rounding.
    """

    backend = "onnx"

    def __init__(self, model, direction: Direction, device: str = "auto"):
        from survey2survey.export import create_session, cuda_device_id, onnx_for

        self.direction = direction
        self._device_id = cuda_device_id(device)
        self.path = onnx_for(model, direction.name)
        self.session, self.provider = create_session(self.path, device)
        names = [i.name for i in self.session.get_inputs()]
        self.has_noise = "z1" in names
        self.has_latent = "z" in names
        self.in_shape, self.out_shape = direction_shapes(model, direction)
        self.precision = "fp32"
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        self._torch_cuda = False
        if self.device == "cuda":
            import torch

            self._torch_cuda = torch.cuda.is_available()

    def describe(self) -> str:
        return f"onnx/{self.device}/{self.provider}"

    def run(self, x: np.ndarray, keys: np.ndarray, samples: int = 1, noise: bool = True, pad_to: int | None = None) -> np.ndarray:
        """Same contract as :meth:`TorchEngine.run`."""
        from survey2survey.emulate import noise_inputs

        x = np.ascontiguousarray(x, dtype=np.float32)
        c = self.direction.target.n_bands
        h, w = self.out_shape
        if self.has_latent:  # x, z -> generator, one latent code per realisation
            from survey2survey.emulate import latent_codes

            k = self.direction.latent_dim
            draws = [self.session.run(["generator"], {"x": x, "z": latent_codes(keys, k, s).numpy()})[0]
                     for s in range(samples if noise else 1)]  # fmt: skip
            return np.stack(draws, axis=1)
        if not self.has_noise:
            (g,) = self.session.run(["generator"], {"x": x})
            return g[:, None]
        use = samples if noise else 1
        if self._torch_cuda:
            return self._run_cuda(x, keys, use, noise)
        z1, z2 = noise_inputs(keys, range(c), h, w, use)
        feeds = {"x": x, "z1": z1.numpy(), "z2": z2.numpy()}
        if noise:
            (f,) = self.session.run(["noisy"], feeds)
            return f
        (g,) = self.session.run(["generator"], feeds)
        return g[:, None]

    def _run_cuda(self, x, keys, samples, noise):
        """I/O binding on the GPU: the seeds are drawn there and nothing round-trips the host."""
        import torch

        from survey2survey.emulate import noise_inputs

        dev = torch.device("cuda", self._device_id)
        c = self.direction.target.n_bands
        h, w = self.out_shape
        xt = torch.from_numpy(x).pin_memory().to(dev, non_blocking=True)
        z1, z2 = noise_inputs(keys, range(c), h, w, samples, device=dev)
        n = x.shape[0]
        g = torch.empty((n, c, h, w), device=dev)
        f = torch.empty((n, samples, c, h, w), device=dev)
        binding = self.session.io_binding()
        for name, t in (("x", xt), ("z1", z1.contiguous()), ("z2", z2.contiguous())):
            binding.bind_input(name, "cuda", self._device_id, np.float32, tuple(t.shape), t.data_ptr())
        for name, t in (("generator", g), ("noisy", f)):
            binding.bind_output(name, "cuda", self._device_id, np.float32, tuple(t.shape), t.data_ptr())
        torch.cuda.synchronize(dev)  # inputs ready before ONNX Runtime's own stream reads them
        self.session.run_with_iobinding(binding)
        return (f if noise else g.unsqueeze(1)).cpu().numpy()


def _pair(size) -> tuple[int, int]:
    return (int(size[0]), int(size[1])) if isinstance(size, (tuple, list)) else (int(size), int(size))


def direction_shapes(model, direction: Direction) -> tuple[tuple[int, int], tuple[int, int]]:
    """(H, W) of the generator's input and output for one direction.

    From the generator's ``in_size``/``out_size`` when it has them (the paper's
    generators), else from the grids config.json records (``"sizes"``, written by
    ``s2s train``), else the cutout size of the grid it reads (the source survey's, or for
    a regridded model survey a's) and a probe on the CPU.
    """
    gen = model.modules[direction.generator]
    in_size, out_size = getattr(gen, "in_size", None), getattr(gen, "out_size", None)
    recorded = _recorded_sizes(model.config)
    src, dst = direction.source.name, direction.target.name
    if in_size is None and out_size is None and src in recorded and dst in recorded:
        return recorded[src], recorded[dst]
    grid = direction.source_grid or direction.source
    in_shape = _pair(in_size) if in_size is not None else (grid.cutout_size,) * 2
    if out_size is not None:
        return in_shape, _pair(out_size)
    import torch

    param = next(gen.parameters())
    args = [torch.zeros((1, direction.source.n_bands, *in_shape), device=param.device)]
    if direction.latent_dim:
        args.append(torch.zeros((1, direction.latent_dim), device=param.device))
    with torch.no_grad():
        probe = gen(*args)
    return in_shape, (int(probe.shape[-2]), int(probe.shape[-1]))


def _recorded_sizes(config: dict) -> dict[str, tuple[int, int]]:
    """Survey name -> (H, W) of the grid the networks run on, from config.json's "sizes"."""
    out = {}
    for side, size in (config.get("sizes") or {}).items():
        spec = (config.get("surveys") or {}).get(side)
        if isinstance(spec, dict) and spec.get("name") and isinstance(size, list) and len(size) == 3:
            if all(isinstance(v, int) and v > 0 for v in size):
                out[str(spec["name"]).lower()] = (size[1], size[2])
    return out


def load_engine(model, direction: Direction, backend: str = "torch", device: str = "cpu", precision: str = "auto", compile: bool = False):
    """A :class:`TorchEngine` or :class:`OnnxEngine` for one direction of a loaded model."""
    if backend == "torch":
        return TorchEngine(model, direction, device, precision, compile)
    if backend == "onnx":
        if precision not in ("auto", "fp32"):
            raise UsageError(f"the onnx backend runs in fp32 (precision {precision} is for the torch backend)")
        return OnnxEngine(model, direction, device)
    raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")


# --- work items passed to and from the worker processes ------------------------------------


@dataclass
class _Job:
    index: int
    source: object  # fits_io.CutoutSource
    out_path: Path


@dataclass
class _ReaderSetup:
    """What every reader needs (pickled once per task, small)."""

    given: Survey | None  # --from
    target: Survey
    sources: dict[str, Survey]  # source surveys the model translates into target
    in_shapes: dict[str, tuple[int, int]]
    out_shapes: dict[str, tuple[int, int]]
    overwrite: bool
    # Direction.source_grid, target_grid of each source survey (regridded models)
    grids: dict[str, tuple[Survey | None, Survey | None]] = field(default_factory=dict)


@dataclass
class _Record:
    """One input after reading: ready for the model, or skipped, or failed."""

    index: int
    status: str  # "ok", "skipped", "failed"
    message: str = ""
    source: str = ""  # source survey name
    x: np.ndarray | None = None  # (C, H, W) model space
    wcs_header: str | None = None  # output-grid WCS, as header cards (fits_io.wcs_cards)
    mask: np.ndarray | None = None  # (C, H_out, W_out) bool
    warnings: list[str] = field(default_factory=list)
    replace: bool = False
    resample: tuple[str, str, tuple[int, int]] | None = None  # model-grid WCS, output WCS, output (H, W)


@dataclass
class _WriteJob:
    index: int
    out_path: Path
    data: np.ndarray  # (S, C, H, W) model space
    wcs_header: str | None  # header cards (fits_io.wcs_cards)
    mask: np.ndarray | None
    provenance: object  # fits_io.Provenance
    history: list[str]
    cards: list[tuple[str, object, str]]
    replace: bool
    resample: tuple[str, str, tuple[int, int]] | None = None


def _init_worker(survey_specs: list[dict]) -> None:
    """Worker start: single-threaded numerics, and the parent's survey registry."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from survey2survey.surveys import Survey as _S, register_survey

    for spec in survey_specs:
        register_survey(_S.from_dict(spec["name"], spec, "parent process"))


def _overlap(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) 0/1 matrix: output pixel o overlaps input pixel i (same footprint)."""
    edges_out = np.arange(n_out + 1) * (n_in / n_out)  # output pixel edges in input pixels
    lo = np.floor(edges_out[:-1] + 1e-9).astype(int)
    hi = np.ceil(edges_out[1:] - 1e-9).astype(int)
    i = np.arange(n_in)
    return ((i[None, :] >= lo[:, None]) & (i[None, :] < hi[:, None])).astype(np.float32)


def _resample_mask(mask: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Bad-pixel mask (C, H, W) -> (C, H', W'): flagged where any filled input pixel overlaps."""
    ay = _overlap(mask.shape[1], out_shape[0])  # (H', H)
    ax = _overlap(mask.shape[2], out_shape[1])  # (W', W)
    return np.einsum("yh,chw,xw->cyx", ay, mask.astype(np.float32), ax) > 0


def _read_one(job: _Job, setup: _ReaderSetup) -> _Record:
    from survey2survey.fits_io import make_wcs, read_cutout, rescale_wcs, verify_fits, wcs_cards
    from survey2survey.surveys import to_model_space

    rec = _Record(job.index, "ok")
    if job.out_path.exists() and not setup.overwrite:
        try:
            verify_fits(job.out_path)
        except CutoutError as exc:
            rec.replace = True
            reason = " ".join(exc.reason.split())[:120]
            rec.warnings.append(f"existing output was broken and is redone ({reason})")
        else:
            rec.status, rec.message = "skipped", "output exists"
            return rec
    try:
        if setup.given is not None:
            survey = setup.given
            cut = read_cutout(job.source, survey)
        else:
            try:
                cut = read_cutout(job.source, None)
                detected = cut.survey
            except CutoutError:
                if len(setup.sources) != 1:
                    raise
                detected = None  # e.g. unnamed bands and no survey keyword: try the only source
            if detected is None:
                if len(setup.sources) != 1:
                    raise CutoutError(
                        job.source.path,
                        "cannot tell the source survey (no SURVEY/TELESCOP keyword, pixel scale not a known "
                        "survey's): give --from",
                    )
                survey = next(iter(setup.sources.values()))
                cut = read_cutout(job.source, survey)  # a broken file fails here with its own reason
                cut.warnings.append(f"source survey not in the header: taken as {survey.name}")
            else:
                survey = setup.sources.get(cut.survey.name, cut.survey)
        name = survey.name
        if name == setup.target.name:
            raise CutoutError(job.source.path, f"already a {name} cutout (nothing to translate to {setup.target.name})")
        if name not in setup.sources:
            have = ", ".join(f"{s}->{setup.target.name}" for s in setup.sources) or "nothing"
            raise CutoutError(
                job.source.path, f"the model does not translate {name}->{setup.target.name} (it translates {have})"
            )
        if tuple(cut.bands) != tuple(survey.bands):
            raise CutoutError(
                job.source.path, f"bands {','.join(cut.bands)} do not match the model's {name} bands {','.join(survey.bands)}"
            )
        src_grid, tgt_grid = setup.grids.get(name, (None, None))
        # a regridded model reads the survey's own cutouts and resamples them itself
        want = (survey.cutout_size, survey.cutout_size) if src_grid is not None else setup.in_shapes[name]
        if tuple(cut.data.shape[1:]) != tuple(want):
            raise CutoutError(
                job.source.path,
                f"wrong size {cut.data.shape[2]}x{cut.data.shape[1]} px, the model takes {want[1]}x{want[0]} px {name} cutouts",
            )
        out_shape = setup.out_shapes[name]  # the generator's output grid
        rec.source = name
        data, wcs = cut.data, cut.wcs
        if src_grid is not None:
            from survey2survey.data.regrid import regrid_to_survey

            # onto the grid the model was trained on, as `s2s prepare --regrid` does (flux conserved)
            data, grid_wcs = regrid_to_survey(cut.data, survey, src_grid, cut.wcs, return_wcs=True)
            wcs = grid_wcs if cut.wcs is not None else None
        in_shape = data.shape[1:]
        final_shape = (setup.target.cutout_size,) * 2 if tgt_grid is not None else out_shape
        rec.x = to_model_space(data, survey)  # (C, H, W) float32
        if wcs is not None:
            # the cards the writer puts in the header: it needs no WCS object of its own
            rec.wcs_header = wcs_cards(rescale_wcs(wcs, in_shape, final_shape))
        if tgt_grid is not None:
            # the model's output lies on tgt_grid's grid: resampled onto the target's by the writer
            # (a stand-in WCS when the input has none: only the resampling needs one)
            base = wcs if wcs is not None else make_wcs(0.0, 0.0, tgt_grid.pixel_scale, in_shape)
            rec.resample = (
                rescale_wcs(base, in_shape, out_shape).to_header_string(relax=True),
                rescale_wcs(base, in_shape, final_shape).to_header_string(relax=True),
                final_shape,
            )
        if cut.mask is not None:
            rec.mask = _resample_mask(cut.mask, final_shape)
        rec.warnings += list(cut.warnings)
    except CutoutError as exc:
        rec.status, rec.message = "failed", str(exc)
    except S2SError as exc:
        rec.status, rec.message = "failed", f"{job.source.path}: {exc}"
    return rec


def _read_chunk(jobs: list[_Job], setup: _ReaderSetup) -> list[_Record]:
    out = []
    for job in jobs:
        try:
            out.append(_read_one(job, setup))
        except Exception as exc:  # never lose a batch to one odd file
            out.append(_Record(job.index, "failed", f"{job.source.path}: unexpected {type(exc).__name__}: {exc}"))
    return out


def _write_one(job: _WriteJob, target: Survey, overwrite: bool) -> tuple[int, str | None]:
    from astropy.io import fits
    from astropy.wcs import WCS

    from survey2survey.fits_io import write_cutout
    from survey2survey.surveys import to_native

    native = to_native(job.data, target)  # (S, C, H, W) float32, target's native units
    if not np.isfinite(native).all():
        return job.index, f"{job.out_path}: model output is not finite (NaN/inf); nothing written"
    if job.resample is not None:
        from survey2survey.data.regrid import regrid

        # flux per model-grid pixel -> flux per target pixel (flux conserved)
        grid_header, out_header, shape = job.resample
        grid_wcs, out_wcs = WCS(fits.Header.fromstring(grid_header)), WCS(fits.Header.fromstring(out_header))
        native = np.stack([regrid(sample, grid_wcs, out_wcs, shape) for sample in native])  # (S, C, H', W')
    wcs = job.wcs_header or None  # header cards: write_cutout copies them, no WCS object needed
    extra = []
    for s in range(1, native.shape[0]):
        hdu = fits.ImageHDU(data=native[s], name=f"SAMPLE{s + 1}")
        if wcs is not None:
            hdu.header.extend(fits.Header.fromstring(wcs), update=True)
        hdu.header["BUNIT"] = (target.flux_unit or "unknown", "native pixel unit")
        hdu.header["BANDS"] = (",".join(target.bands), "band of each plane, NAXIS3 order")
        hdu.header["S2SSAMP"] = (s + 1, "noise realisation number")
        extra.append(hdu)
    try:
        write_cutout(
            job.out_path, native[0], target, wcs=wcs, provenance=job.provenance, history=job.history,
            overwrite=overwrite or job.replace, extra_hdus=extra, mask=job.mask, header_cards=job.cards,
        )
    except S2SError as exc:
        return job.index, str(exc)
    return job.index, None


def _write_chunk(jobs: list[_WriteJob], target: Survey, overwrite: bool) -> list[tuple[int, str | None]]:
    out = []
    for job in jobs:
        try:
            out.append(_write_one(job, target, overwrite))
        except Exception as exc:
            out.append((job.index, f"{job.out_path}: unexpected {type(exc).__name__}: {exc}"))
    return out


class _InlineExecutor:
    """Runs tasks at submit time in this process (small runs, tests, --workers 0)."""

    def submit(self, fn, *args):
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # surfaced by fut.result()
            fut.set_exception(exc)
        return fut

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def _noop() -> None:
    return None


def _make_pool(workers: int, survey_specs: list[dict]):
    """Reader/writer processes, started at once (before any model thread or CUDA context).

    Linux forks them, which needs no ``if __name__ == "__main__"`` guard in a user's
    script, as PyTorch's DataLoader does; the workers never touch torch.  Elsewhere they
    are spawned.
    """
    import sys

    method = "fork" if sys.platform.startswith("linux") else "spawn"
    pool = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context(method), initializer=_init_worker, initargs=(survey_specs,))
    pool.submit(_noop).result()  # a forking pool starts every worker on its first task
    return pool


# --- planning ---------------------------------------------------------------------------------


def _plan(inputs: Sequence[str], sources: list, out_dir: Path, target: Survey) -> tuple[list, int]:
    """Output path of each source, in input order.

    Returns
    -------
    entries : list of _Job or (path, message)
        A job per source, or a failure when two sources would write the same file.
    ignored : int
        Sources skipped because they are this command's own outputs
        (``*.<target>.fits`` inside ``out_dir``, e.g. when ``out_dir`` is below an input).
    """
    dirs = [Path(i).resolve() for i in inputs if Path(i).is_dir()]
    out_resolved = out_dir.resolve()
    suffix = f".{target.name}.fits"
    entries: list = []
    taken: dict[Path, str] = {}
    ignored = 0
    for source in sources:
        parent = source.path.resolve().parent
        if (parent == out_resolved or out_resolved in parent.parents) and source.path.name.endswith(suffix):
            ignored += 1
            continue
        rel = Path()
        for d in dirs:
            if parent == d or d in parent.parents:
                rel = parent.relative_to(d)
                break
        out_path = out_dir / rel / output_name(source.object_id, target)
        key = out_path.resolve()
        if key in taken:
            entries.append(
                (str(source.path), f"{source.path}: same output {out_path} as {taken[key]} (object ids must be unique per directory)")
            )
            continue
        taken[key] = str(source.path)
        entries.append(_Job(-1, source, out_path))
    return entries, ignored


# --- the report ---------------------------------------------------------------------------------


@dataclass
class TranslateReport:
    """What :func:`translate` did.

    Attributes
    ----------
    total : int
        Inputs of this shard.
    translated, skipped : int
        Outputs written; inputs whose whole output already existed.
    failed : list of (path, message)
        One line per input that could not be translated.
    warned : list of (path, message)
        One line per warning about an input that was translated (no WCS, NaN pixels
        filled, ...); also in the output's ``HISTORY``.
    seconds : float
        Wall time of the pipeline (model loading included).
    backend : str
        ``torch/cuda/bf16``, ``onnx/cpu/CPUExecutionProvider``, ...
    """

    total: int = 0
    translated: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    backend: str = ""
    device: str = ""
    provider: str | None = None
    precision: str = ""
    out_dir: Path | None = None
    shard: tuple[int, int] | None = None
    workers: int = 0
    batch_size: int = 0
    directions: dict[str, int] = field(default_factory=dict)
    ignored: int = 0
    warnings: int = 0
    warned: list[tuple[str, str]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Cutouts translated per second of wall time."""
        return self.translated / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0 when every input was translated (or already was), 1 when some failed."""
        return 1 if self.failed else 0


# --- the pipeline ---------------------------------------------------------------------------------


def translate(
    inputs: Iterable[str | os.PathLike],
    to: str | Survey,
    *,
    source: str | Survey | None = None,
    model_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    backend: str = "torch",
    device: str = "auto",
    batch_size: int | None = None,
    seed: int = 0,
    samples: int = 1,
    noise: bool = True,
    overwrite: bool = False,
    shard: tuple[int, int] | str | None = None,
    workers: int | None = None,
    precision: str = "auto",
    compile: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> TranslateReport:
    """Translate FITS cutouts into survey ``to`` and write one FITS file per input.

    Parameters
    ----------
    inputs : iterable of path or glob
        Files, directories (recursive) or globs, any layout ``fits_io`` reads.
    to : str or Survey
        Target survey.
    source : str or Survey, optional
        Source survey (``--from``); default from each file's header (``SURVEY``,
        ``TELESCOP``, pixel scale), or the model's only source for ``to``.
    model_dir : path, optional
        Default :func:`default_model_dir`.
    out_dir : path, optional
        Default ``./<target survey>``.
    backend : {"torch", "onnx"}
    device : {"auto", "cpu", "cuda", "cuda:N"}
    batch_size : int, optional
        Images per model call (default 512 on CUDA, 16 on CPU).
    seed : int
        Run seed; each object's noise comes from (seed, object id).
    samples : int
        Noise realisations per cutout (primary HDU + ``SAMPLE2`` ... extensions).
    noise : bool
        False writes the generator's noise-free output.
    overwrite : bool
        Redo inputs whose output exists; otherwise a whole existing output is skipped.
    shard : (I, N) or "I/N" or "auto", optional
        Take inputs I, I+N, I+2N, ... of the sorted input list.
    workers : int, optional
        Reader/writer processes; 0 runs them in this process.  Default: none for fewer
        than 32 inputs, else up to the CPU count minus one (CUDA) or a quarter of the
        CPUs (CPU inference, where the model is the bottleneck).
    precision : {"auto", "fp32", "tf32", "bf16"}
        See :class:`TorchEngine`.
    compile : bool
        ``torch.compile`` the generator (torch backend).
    on_progress : callable(done, total), optional
        Called as inputs finish (translated, skipped or failed).

    Returns
    -------
    TranslateReport

    Raises
    ------
    UsageError, SurveyError, ModelError
        Misuse: bad options, unknown survey, no model, a model that does not translate
        into ``to`` or from ``source``.  Bad inputs are not raised: they are in
        ``report.failed``.
    """
    from survey2survey import model_io
    from survey2survey.emulate import object_seed
    from survey2survey.fits_io import Provenance, find_cutouts
    from survey2survey.surveys import list_surveys

    start = time.perf_counter()
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UsageError(f"--samples must be a positive integer, got {samples!r}")
    if not noise and samples > 1:
        raise UsageError("--samples N asks for noise realisations: it cannot go with --no-noise")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed!r}")
    if backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if precision not in ("auto", *PRECISIONS):
        raise UsageError(f"--precision must be {_PRECISION_CHOICES}, not {precision!r}")
    if backend == "onnx" and precision not in ("auto", "fp32"):
        raise UsageError(f"the onnx backend runs in fp32 (precision {precision} is for the torch backend)")
    if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
        raise UsageError(f"--batch-size must be a positive integer, got {batch_size!r}")
    if workers is not None and workers < 0:
        raise UsageError(f"--workers must be >= 0, got {workers}")
    if isinstance(shard, str) or shard is None:
        shard = parse_shard(shard)
    target_name = get_survey(to).name
    given_name = get_survey(source).name if source is not None else None
    inputs = [str(i) for i in inputs]
    if not inputs:
        raise UsageError("no inputs given")

    # The model first: a missing or unsuitable model is misuse, before any file is read.
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    dev = resolve_device(device) if backend == "torch" else (device or "auto").lower()
    if precision == "tf32" and not dev.startswith("cuda"):
        raise UsageError("--precision tf32 needs a CUDA GPU (TF32 is a tensor-core format); use fp32 on the CPU")
    # On the CPU for now: the worker processes are forked before any CUDA context exists.
    model = model_io.load_model(model_dir, device="cpu")
    directions = model_directions(model.config)
    into = {d.source.name: d for d in directions.values() if d.target.name == target_name}
    if not into:
        have = ", ".join(directions) or "none"
        if len(directions) == 1 and next(iter(directions.values())).source.name == target_name:
            raise ModelError(
                f"{model_dir}: a one-way model ({model.config.get('method') or 'unknown method'}) that translates "
                f"{have} only, not into {target_name} (train one with --direction {have.split('->')[1]}->{target_name})"
            )
        raise ModelError(f"{model_dir}: the model does not translate into {target_name} (its directions: {have})")
    if given_name is not None:
        if given_name == target_name:
            raise UsageError(f"--from and --to are both {target_name}")
        if given_name not in into:
            raise ModelError(
                f"{model_dir}: the model does not translate {given_name}->{target_name} "
                f"(its directions: {', '.join(directions)})"
            )
        into = {given_name: into[given_name]}
    target = next(iter(into.values())).target
    if not noise:
        noise_label = "no"
    elif all(d.noise_emulator for d in into.values()):
        noise_label = "yes"
    else:
        noise_label = "no (model has no noise emulator)"
    if samples > 1 and not all(d.noise_emulator or d.latent_dim for d in into.values()):
        raise UsageError(
            f"--samples {samples}: the model has no noise emulator (nor latent code) to draw realisations from"
        )

    out_dir = Path(out_dir) if out_dir is not None else Path.cwd() / target.name
    sources = find_cutouts(inputs, survey=into[given_name].source if given_name else None)
    entries, ignored = _plan(inputs, sources, out_dir, target)
    if shard is not None:
        entries = entries[shard[0] :: shard[1]]
    jobs = [e for e in entries if isinstance(e, _Job)]
    failed = [e for e in entries if not isinstance(e, _Job)]
    for i, job in enumerate(jobs):
        job.index = i
    report = TranslateReport(total=len(jobs) + len(failed), failed=list(failed), out_dir=out_dir, shard=shard, ignored=ignored)
    if not jobs:
        report.seconds = time.perf_counter() - start
        return report
    _check_out_dir(out_dir)

    shapes = {name: direction_shapes(model, d) for name, d in into.items()}
    on_cuda = dev.startswith("cuda") or (backend == "onnx" and dev != "cpu" and _ort_has_cuda())
    cores = os.cpu_count() or 1
    if workers is None:
        if len(jobs) < _INLINE_BELOW:
            workers = 0
        else:
            workers = max(1, min(cores - 1, 32)) if on_cuda else max(1, cores // 4)
    report.workers = workers
    setup = _ReaderSetup(
        given=into[given_name].source if given_name else None,
        target=target,
        sources={name: d.source for name, d in into.items()},
        in_shapes={name: sh[0] for name, sh in shapes.items()},
        out_shapes={name: sh[1] for name, sh in shapes.items()},
        overwrite=overwrite,
        grids={name: (d.source_grid, d.target_grid) for name, d in into.items()},
    )
    executor = _InlineExecutor() if workers == 0 else _make_pool(workers, [s.to_dict() for s in list_surveys()])
    try:
        # Engines of every direction into the target (usually one).
        engines = {name: load_engine(model, d, backend, dev, precision, compile) for name, d in into.items()}
    except BaseException:
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    first = next(iter(engines.values()))
    # the device that really runs (an ONNX session may fall back to the CPU): not the guess
    batch = report.batch_size = _batch_size(batch_size, str(first.device).startswith("cuda"), samples)
    report.backend = first.describe()
    report.device = str(first.device)
    report.provider = first.provider
    report.precision = first.precision

    method = model.config.get("method")
    model_name = str(model.config.get("name") or model_dir.name)

    def write_job(rec: _Record, job: _Job, data: np.ndarray, engine) -> _WriteJob:
        d = into[rec.source]
        prov = Provenance(
            model=model_name, model_sha256=model.weights_sha256, method=method, direction=d.name,
            source_file=str(job.source.path), source_survey=d.source.name, target_survey=target.name,
            seed=int(seed), backend=engine.describe(), noise=noise_label,
        )
        history = [f"s2s translate {d.name} with model {model_name} ({method or 'unknown method'}), {engine.describe()}"]
        if noise_label == "yes":
            history.append(
                f"F = G + NE in model space, noise from seed {seed} and object id {job.source.object_id!r}, then "
                f"converted to {target.name} native units ({samples} realisation(s))"
            )
        elif d.latent_dim:
            history.append(
                f"G(x, z) with latent code z ~ N(0, I) ({d.latent_dim}-d) from seed {seed} and object id "
                f"{job.source.object_id!r} ({data.shape[0]} draw(s)), converted to {target.name} native units"
            )
        else:
            history.append(f"generator output without noise, converted to {target.name} native units")
        grid = d.source_grid or d.target_grid
        if d.source_grid is not None:
            history.append(
                f"input resampled onto the {grid.name} grid ({grid.cutout_size} px x {grid.pixel_scale}\") the model "
                "was trained on (reproject_adaptive, flux conserved)"
            )
        if d.target_grid is not None:
            history.append(
                f"model output on the {grid.name} grid ({grid.cutout_size} px x {grid.pixel_scale}\") resampled "
                f"onto {target.cutout_size} px (reproject_adaptive, flux conserved): "
                f"its resolution is the {grid.name} grid's"
            )
        if len(job.source.paths) > 1:
            history.append("source files: " + ", ".join(p.name for p in job.source.paths))
        history += [f"input: {w}" for w in rec.warnings]
        history = [_header_text(line) for line in history]
        cards = [
            ("S2SOBJ", job.source.object_id, "object id (with S2SSEED, the noise seed)"),
            ("S2SNSAMP", int(data.shape[0]) if noise_label == "yes" or d.latent_dim else 0,
             "realisations in this file (noise or latent draws)"),
        ]
        if grid is not None:
            cards.append(("S2SGRID", grid.name, "the model ran on this survey's pixel grid"))
        if engine.provider:
            cards.append(("S2SPROV", engine.provider, "ONNX Runtime execution provider"))
        return _WriteJob(
            job.index, job.out_path, data, rec.wcs_header, rec.mask, prov, history, cards, rec.replace, rec.resample
        )

    infer = cf.ThreadPoolExecutor(1, thread_name_prefix="s2s-model")
    chunk = max(1, min(32, batch // max(1, workers))) if workers else batch
    done_count = 0
    total = report.total
    done_count += len(failed)
    if on_progress:
        on_progress(done_count, total)

    todo = deque(jobs)
    reads: set = set()
    writes: set = set()
    inferring: deque = deque()  # (future, direction key, records), in submission order
    buffers: dict[str, list[_Record]] = {name: [] for name in into}
    records_in_flight = 0
    max_read_items = 3 * batch + 2 * chunk * max(1, workers)

    def account(n: int) -> None:
        nonlocal done_count
        done_count += n
        if on_progress:
            on_progress(done_count, total)

    def submit_batch(name: str, recs: list[_Record]) -> None:
        engine = engines[name]
        x = np.stack([r.x for r in recs])  # (N, C, H, W)
        keys = np.array([object_seed(seed, jobs[r.index].source.object_id) for r in recs], dtype=np.int64)
        for r in recs:
            r.x = None
        pad = batch if compile and backend == "torch" else None
        fut = infer.submit(engine.run, x, keys, samples, noise, pad)
        inferring.append((fut, name, recs))

    def finish_batch(fut, name: str, recs: list[_Record]) -> None:
        out = fut.result()  # (N, S, C, H, W) model space
        engine = engines[name]
        report.directions[into[name].name] = report.directions.get(into[name].name, 0) + len(recs)
        wjobs = [write_job(r, jobs[r.index], out[i], engine) for i, r in enumerate(recs)]
        step = max(1, chunk)
        for lo in range(0, len(wjobs), step):
            writes.add(executor.submit(_write_chunk, wjobs[lo : lo + step], target, overwrite))

    try:
        while todo or reads or inferring or writes or any(buffers.values()):
            # 1. keep the readers busy, within a memory budget
            while todo and records_in_flight < max_read_items:
                part = [todo.popleft() for _ in range(min(chunk, len(todo)))]
                reads.add(executor.submit(_read_chunk, part, setup))
                records_in_flight += len(part)
            # 2. collect what the readers finished
            for fut in [f for f in reads if f.done()]:
                reads.discard(fut)
                for rec in fut.result():
                    report.warnings += len(rec.warnings)
                    if rec.status == "ok":  # a failed input gets its one failure line only
                        path = jobs[rec.index].source.path
                        report.warned += [(str(path), f"{path}: {w}") for w in rec.warnings]
                        buffers[rec.source].append(rec)
                        continue
                    records_in_flight -= 1
                    if rec.status == "skipped":
                        report.skipped += 1
                    else:
                        report.failed.append((str(jobs[rec.index].source.path), rec.message))
                    account(1)
            # 3. full batches (or the rest, once nothing more will come) go to the model
            for name, buf in buffers.items():
                while len(buf) >= batch or (buf and not reads and (not todo or records_in_flight >= max_read_items)):
                    if len(inferring) >= 2:
                        break
                    recs, buffers[name] = buf[:batch], buf[batch:]
                    buf = buffers[name]
                    submit_batch(name, recs)
            # 4. model results go to the writers
            while inferring and inferring[0][0].done():
                fut, name, recs = inferring.popleft()
                try:
                    finish_batch(fut, name, recs)
                except (S2SError, RuntimeError) as exc:  # torch and ONNX Runtime raise RuntimeError
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    for r in recs:
                        report.failed.append((str(jobs[r.index].source.path), f"{jobs[r.index].source.path}: model failed ({reason})"))
                    records_in_flight -= len(recs)
                    account(len(recs))
            # 5. collect written files
            for fut in [f for f in writes if f.done()]:
                writes.discard(fut)
                results = fut.result()
                for index, error in results:
                    if error is None:
                        report.translated += 1
                        report.outputs.append(jobs[index].out_path)
                    else:
                        report.failed.append((str(jobs[index].source.path), error))
                records_in_flight -= len(results)
                account(len(results))
            # 6. wait for the next event rather than spin
            waiting = list(reads) + list(writes) + [f for f, _, _ in inferring]
            if waiting and not _progress_possible(todo, records_in_flight, max_read_items, buffers, batch, inferring, reads):
                cf.wait(waiting, timeout=0.5, return_when=cf.FIRST_COMPLETED)
    except cf.process.BrokenProcessPool:
        error = S2SError(
            f"a reader/writer process died (out of memory?) after {report.translated} of {report.total} inputs; "
            "run the same command again to finish (whole outputs are kept)"
        )
        error.exit_code = 1  # some inputs were not translated: not a misuse
        raise error from None
    finally:
        infer.shutdown(wait=True, cancel_futures=True)
        executor.shutdown(wait=True, cancel_futures=True)

    report.outputs.sort()
    report.failed.sort()
    report.warned.sort()
    report.seconds = time.perf_counter() - start
    return report


def _check_out_dir(out_dir: Path) -> None:
    """Misuse, found before any work: ``out_dir`` must be a directory this process can write in.

    Also removes the temporary files that killed runs of this host left there.
    """
    import tempfile

    from survey2survey.atomic import remove_stale

    for parent in (out_dir, *out_dir.parents):
        if parent.exists() and not parent.is_dir():
            if parent == out_dir:
                raise UsageError(f"{out_dir}: exists and is not a directory")
            raise UsageError(f"{parent}: is a file, not a directory (cannot create {out_dir} in it)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise UsageError(f"{out_dir}: cannot write output there ({exc.strerror or exc})") from None
    remove_stale(out_dir, recursive=True)


def _header_text(text: str) -> str:
    """One line of printable ASCII (FITS HISTORY cards accept nothing else)."""
    text = " ".join(str(text).split())
    return text.encode("ascii", "replace").decode("ascii")


def _batch_size(batch_size: int | None, on_cuda: bool, samples: int) -> int:
    """Images per model call: ``--batch-size`` or the device's default."""
    batch = batch_size or DEFAULT_BATCH["cuda" if on_cuda else "cpu"]
    # Keep the images of one model call in memory: S realisations per image count.
    return max(1, min(batch, 4 * batch // samples)) if samples > 1 else batch


def _ort_has_cuda() -> bool:
    """A first guess, before the session exists, that ONNX Runtime will run on a GPU.

    It only sizes the pool of I/O workers, started while the model loads.  The
    compiled-in provider list alone says nothing about the machine (onnxruntime-gpu is
    installed on CPU-only hosts too), so a GPU must also be visible.
    """
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/dxg")


def _progress_possible(todo, in_flight, max_items, buffers, batch, inferring, reads) -> bool:
    """True when the loop can do something without waiting for a worker."""
    if todo and in_flight < max_items:
        return True
    flush = not reads and (not todo or in_flight >= max_items)
    if len(inferring) < 2 and any(len(b) >= batch or (b and flush) for b in buffers.values()):
        return True
    return False
