"""Engines: one direction of a model running on a device, batch in, batch out.

:class:`TorchEngine` runs the :class:`~survey2survey.runtime.graph.TranslationGraph` with
PyTorch; :class:`OnnxEngine` runs the same graph exported to ONNX with ONNX Runtime.
Both take model-space images and per-object keys and return model-space translations
``(N, S, C, H, W)``; the noise seeds come from :mod:`survey2survey.runtime.seeds`, so
the two backends agree to float rounding.
"""

from __future__ import annotations

import copy

import numpy as np

from survey2survey.errors import UsageError
from survey2survey.model.directions import Direction, direction_shapes
from survey2survey.runtime.device import BACKENDS, check_precision, cuda_device_id, set_cuda_fp32_precision
from survey2survey.runtime.graph import TranslationGraph
from survey2survey.runtime.export import create_session, onnx_for
from survey2survey.runtime.seeds import latent_codes, noise_inputs

__all__ = ["TorchEngine", "OnnxEngine", "load_engine"]


class TorchEngine:
    """Generator + noise emulator of one direction with PyTorch.

    Parameters
    ----------
    model : survey2survey.model.LoadedModel
        Its generator and noise emulator are moved to ``device``.
    direction : Direction
    device : str
        ``cpu``, ``cuda``, ``cuda:N``.
    precision : {"auto", "fp32", "tf32", "bf16"}
        Arithmetic of the generator (the noise emulator always runs in float32).
        ``auto`` is fp32 everywhere (on CUDA with TF32 turned off).  tf32 (CUDA tensor
        cores) and bf16 autocast are faster but opt-in: their rounding of the weights is
        the same at every pixel, so the error does not average out over a galaxy
        (``bench/translate_speed.py`` measures the bias of the summed flux in units of
        its noise, for a model on the device it runs on).
    compile : bool
        ``torch.compile`` the generator (worth it for long GPU runs; batches are padded
        to one size so that it compiles once).
    """

    backend = "torch"

    def __init__(self, model, direction: Direction, device: str = "cpu", precision: str = "auto", compile: bool = False):
        import torch

        self.direction = direction
        self.device = torch.device(device)
        self.precision = precision = check_precision(precision, "torch", self.device.type)
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
        # channels-last: the fast layout of cuDNN and oneDNN
        self.graph.generator.to(memory_format=torch.channels_last)
        self._generator = torch.compile(self.graph.generator, dynamic=False) if compile else self.graph.generator
        self.compiled = compile
        self.in_shape, self.out_shape = direction_shapes(model, direction)

    def resized(self, in_shape: tuple[int, int], out_shape: tuple[int, int]) -> "TorchEngine":
        """This engine for cutouts of ``in_shape`` -> ``out_shape``: the generator's own
        ``resized`` (a generator on the physics, :class:`~survey2survey.nets.residual.PhysicsResidualGenerator`),
        the same noise emulator.

        Raises
        ------
        ValueError
            The generator has no ``resized`` or cannot be resized (its message says why).
        """
        import torch

        generator = self.graph.generator
        if not hasattr(generator, "resized"):
            raise ValueError(f"{type(generator).__name__} runs on {self.in_shape[1]}x{self.in_shape[0]} px only")
        other = copy.copy(self)
        other.graph = TranslationGraph(generator.resized(in_shape, out_shape), self.graph.noise_emulator,
                                       self.graph.batch_invariant).to(self.device).eval()
        other.graph.generator.to(memory_format=torch.channels_last)
        other._generator = torch.compile(other.graph.generator, dynamic=False) if self.compiled else other.graph.generator
        other.in_shape, other.out_shape = tuple(in_shape), tuple(out_shape)
        return other

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
            Per-object noise keys (:func:`survey2survey.runtime.seeds.object_seed`).
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
                out = self.graph.add_noise(g[0], z1, z2).contiguous()  # (N, S, C, H, W)
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
        x = np.ascontiguousarray(x, dtype=np.float32)
        c = self.direction.target.n_bands
        h, w = self.out_shape
        if self.has_latent:  # x, z -> generator, one latent code per realisation
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


def load_engine(model, direction: Direction, backend: str = "torch", device: str = "cpu", precision: str = "auto", compile: bool = False):
    """A :class:`TorchEngine` or :class:`OnnxEngine` for one direction of a loaded model."""
    if backend == "torch":
        return TorchEngine(model, direction, device, precision, compile)
    if backend == "onnx":
        check_precision(precision, "onnx")
        return OnnxEngine(model, direction, device)
    raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
