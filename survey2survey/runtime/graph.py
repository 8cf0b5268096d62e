"""The translation graph F = G + NE (Lin & Fouchez 2021, Sect. 3 and Fig. 1), written once.

One direction of a model is a generator G (source survey -> target survey, model space)
and, optionally, the target survey's noise emulator NE (Fig. 2e).  Its translation of
an image x with noise seeds z1, z2 is

    F(x, z1, z2) = G(x) + NE(z1, z2)

and :class:`TranslationGraph` is the only place that adds them.  Its three users:

* the torch engine (:mod:`survey2survey.runtime.engines`) runs it on batches, with
  ``batch_invariant=True`` so that an object's bytes do not depend on its batch;
* the ONNX export (:mod:`survey2survey.runtime.onnx`) exports it as is (one static
  graph, N and S dynamic);
* ``s2s emulate-noise`` draws the NE term alone on blank sky (:func:`sample_noise`).

A stochastic generator G(x, z) (Augmented CycleGAN) has no emulator; its graph is
:class:`LatentGraph`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from survey2survey.runtime.seeds import noise_inputs

__all__ = [
    "AMPLITUDE_BLOCK",
    "TranslationGraph",
    "LatentGraph",
    "noise_amplitude",
    "noise_maps",
    "sample_noise",
]

#: Rows per call of the noise emulator's amplitude network on the CPU (:func:`noise_amplitude`).
AMPLITUDE_BLOCK = 64


def noise_amplitude(noise_emulator, z1: torch.Tensor) -> torch.Tensor:
    """``noise_emulator.amplitude(z1)``, ``(N, bands)``, with bits that do not depend on N.

    The CPU's matrix products round differently for different numbers of rows, so the
    amplitude network is run on blocks of exactly :data:`AMPLITUDE_BLOCK` rows (the last
    one padded): an object's noise is then the same bytes in any batch, with any
    ``--batch-size`` or worker count.  On a GPU it is one call (no such guarantee there).
    """
    n = z1.shape[0]
    if z1.device.type != "cpu" or n == 0:
        return noise_emulator.amplitude(z1)
    pad = (-n) % AMPLITUDE_BLOCK
    z = torch.cat([z1, z1.new_zeros((pad, z1.shape[1]))]) if pad else z1
    return torch.cat([noise_emulator.amplitude(block) for block in z.split(AMPLITUDE_BLOCK)])[:n]


def noise_maps(noise_emulator, z1: torch.Tensor, z2: torch.Tensor, bands: Sequence[int] | None = None):
    """NE(z1, z2) with batch-independent bits: the emulator's forward pass for inference.

    Parameters
    ----------
    noise_emulator : survey2survey.nets.NoiseEmulator
    z1 : torch.Tensor, shape (N, B)
        Amplitude seeds of the B bands asked for.
    z2 : torch.Tensor, shape (N, B, H + 6, W + 6)
        Noise-map seeds.
    bands : sequence of int, optional
        Which of the emulator's bands the B columns are (default: all, in order).  Each
        band of the emulator is independent, so only these are computed.

    Returns
    -------
    noise : torch.Tensor, shape (N, B, H, W)
        Model space.
    amplitude : torch.Tensor, shape (N, B)
        The amplitude a_b of each map (model space).
    """
    n, b = z2.shape[0], z2.shape[1]
    if bands is None:
        amplitude = noise_amplitude(noise_emulator, z1)  # (N, C)
        kernel = noise_emulator.symmetric_kernel()  # (C, 1, 7, 7)
    else:
        # The amplitude network takes all of its bands: the asked-for ones in their
        # places, the others zero (their outputs are not used).
        idx = torch.as_tensor(list(bands), device=z1.device)
        full = z1.new_zeros((n, noise_emulator.bands))
        full[:, idx] = z1
        amplitude = noise_amplitude(noise_emulator, full)[:, idx]  # (N, B)
        kernel = noise_emulator.symmetric_kernel()[idx]  # (B, 1, 7, 7)
    scaled = z2 * amplitude[:, :, None, None]  # (N, B, H+6, W+6)
    # One depthwise convolution over all N*B maps: the same numbers as the emulator's
    # grouped convolution over a batch, and much faster on a CPU (oneDNN's depthwise kernel).
    flat = scaled.reshape(1, n * b, *scaled.shape[2:])
    noise = F.conv2d(flat, kernel.to(scaled.dtype).repeat(n, 1, 1, 1), groups=n * b)
    return noise.reshape(n, b, *noise.shape[2:]), amplitude  # (N, B, H, W), (N, B)


def sample_noise(noise_emulator, keys, bands: Sequence[int], height: int, width: int, device=None):
    """Blank-sky noise maps NE(z1, z2) of ``bands`` for each key, in model space.

    Parameters
    ----------
    noise_emulator : survey2survey.nets.NoiseEmulator
    keys : sequence of int, shape (N,)
        Per-map keys (:func:`survey2survey.runtime.seeds.object_seed`).
    bands : sequence of int
        Band indices in the survey's order.
    height, width : int

    Returns
    -------
    noise : torch.Tensor
        ``(N, len(bands), height, width)`` float32, model space.
    amplitude : torch.Tensor
        ``(N, len(bands))`` the emulator's amplitude a_b of each map (model space).
    """
    device = torch.device(device) if device is not None else next(noise_emulator.parameters()).device
    z1, z2 = noise_inputs(keys, bands, height, width, samples=1, device=device)
    with torch.no_grad():
        return noise_maps(noise_emulator, z1[:, 0], z2[:, 0], bands)  # (N, B, H, W), (N, B)


class TranslationGraph(nn.Module):
    """One direction of a model: ``(x, z1, z2) -> (G(x), G(x) + NE(z1, z2))``.

    Parameters
    ----------
    generator : nn.Module
        ``(N, C_in, H_in, W_in) -> (N, C_out, H_out, W_out)``, model space.
    noise_emulator : nn.Module, optional
        ``NoiseEmulator`` of the target survey; without one the graph is ``x -> G(x)``.
    batch_invariant : bool
        Compute NE with :func:`noise_maps` (an object's bits independent of its batch,
        for the engines); False runs the emulator's own forward pass, one static graph
        (what the ONNX export records).
    """

    def __init__(self, generator: nn.Module, noise_emulator: nn.Module | None = None, batch_invariant: bool = True):
        super().__init__()
        self.generator = generator
        self.noise_emulator = noise_emulator
        self.batch_invariant = batch_invariant

    def add_noise(self, g: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """F = G + NE: ``g`` (N, C, H, W) plus S noise draws -> (N, S, C, H, W).

        z1 is (N, S, C) and z2 (N, S, C, H + 6, W + 6) (:func:`~survey2survey.runtime.seeds.noise_inputs`).
        """
        n, s = z1.shape[0], z1.shape[1]
        if self.batch_invariant:
            ne, _ = noise_maps(self.noise_emulator, z1.flatten(0, 1), z2.flatten(0, 1))  # (N*S, C, H, W)
        else:
            ne = self.noise_emulator(z1.flatten(0, 1), z2.flatten(0, 1))  # (N*S, C, H, W)
        return g.unsqueeze(1) + ne.unflatten(0, (n, s))  # (N, S, C, H, W)

    def forward(self, x: torch.Tensor, z1: torch.Tensor | None = None, z2: torch.Tensor | None = None):
        g = self.generator(x)  # (N, C, H, W)
        if self.noise_emulator is None:
            return g
        return g, self.add_noise(g, z1, z2)


class LatentGraph(nn.Module):
    """A stochastic generator (augcgan) as a graph: ``(x, z) -> G(x, z)``, z ``(N, latent_dim)``."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator
        self.noise_emulator = None

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.generator(x, z)
