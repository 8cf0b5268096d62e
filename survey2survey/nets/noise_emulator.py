"""The Noise Emulators NE_X, NE_Y of Lin & Fouchez (2021), Fig. 2e and 2f.

A noise emulator turns two Gaussian random seeds into a noise image for one survey,
one independent channel per band:

* z1 ~ N(0, 1), one scalar per image and band -> FC n64 -> FC n64 -> FC n1 ->
  softplus: the noise amplitude a_b >= 0 of that image and band;
* z2 ~ N(0, 1), a (H + 6) x (W + 6) map per image and band, multiplied by a_b and
  convolved ('valid', no bias) with a 7x7 kernel made symmetric under the eight
  rotations and mirrors of the square (Fig. 2f), which gives the noise its
  correlation between neighbouring pixels.

The output (N, bands, H, W) is added to the non-noise image of a generator or
autoencoder.  Given z1 and z2 the output is deterministic; the randomness is only in
drawing them (``sample_inputs`` with a ``torch.Generator`` for reproducibility).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from survey2survey.errors import ModelError
from survey2survey.nets.layers import LEAKY_SLOPE, GroupedLinear, check_bands, check_size, xavier_uniform_

__all__ = ["NoiseEmulator", "KERNEL_SIZE", "symmetry_orbits"]

#: Size of the noise correlation kernel; z2 is larger than the image by KERNEL_SIZE - 1.
KERNEL_SIZE = 7


def symmetry_orbits(size: int = KERNEL_SIZE) -> torch.Tensor:
    """Label each pixel of a ``size`` x ``size`` kernel with its symmetry class.

    Two pixels share a label when a rotation by a multiple of 90 degrees and/or a
    mirror maps one onto the other, i.e. when their offsets from the centre have the
    same (max(|dy|, |dx|), min(|dy|, |dx|)).  A 7x7 kernel has 10 classes, the
    weights w0 ... w9 of the paper's Fig. 2f.

    Returns
    -------
    torch.Tensor
        ``(size * size,)`` int64 labels 0 ... n_classes - 1, row-major.
    """
    c = size // 2
    keys = []
    for i in range(size):
        for j in range(size):
            a, b = abs(i - c), abs(j - c)
            keys.append((max(a, b), min(a, b)))
    order = {key: n for n, key in enumerate(sorted(set(keys)))}
    return torch.tensor([order[k] for k in keys], dtype=torch.long)


class NoiseEmulator(nn.Module):
    """Noise emulator (Fig. 2e) of one survey: seeds z1, z2 -> noise (N, bands, H, W).

    Per band: FC 1 -> 64 -> 64 -> 1 (LeakyReLU(0.2) after the first two), softplus,
    and a 7x7 kernel of 49 stored weights symmetrised on the fly.  22,010 parameters
    for 5 bands: 5 x (128 + 4,160 + 65 + 49).

    The per-band layers are computed together (``GroupedLinear``, grouped convolution),
    with no Python loop over bands.

    Parameters
    ----------
    bands : int
        Number of bands.

    Notes
    -----
    The paper's code stores a full 7x7 kernel per band (49 weights, which is what
    gives 22,010 parameters) and symmetrises it in the forward pass, averaging it
    with its three 90-degree rotations and then with its left-right mirror; only 10
    combinations per band (Fig. 2f) reach the output.  We compute the same average
    as the mean of each symmetry class, then copy it to every pixel of the class, so
    the kernel is symmetric to the last bit, not only to rounding.
    """

    def __init__(self, bands: int = 5):
        super().__init__()
        bands = check_bands(bands, "NoiseEmulator")
        self.init_kwargs = {"bands": bands}
        self.bands = bands
        self.fc1 = GroupedLinear(bands, 1, 64)
        self.fc2 = GroupedLinear(bands, 64, 64)
        self.fc3 = GroupedLinear(bands, 64, 1)
        self.kernel = nn.Parameter(torch.empty(bands, 1, KERNEL_SIZE, KERNEL_SIZE))
        # Glorot bound of one band's 7x7 -> 1 filter.  (TF's initializer, given the
        # paper's (1, 7, 7, C) variable, used fans 49 and 7C: an 8 % wider bound for C=5.)
        area = KERNEL_SIZE * KERNEL_SIZE
        xavier_uniform_(self.kernel, area, area)

        labels = symmetry_orbits(KERNEL_SIZE)  # (49,)
        n_classes = int(labels.max()) + 1
        members = F.one_hot(labels, n_classes).T.float()  # (10, 49): 1 where pixel is in class
        # Constant projections, not weights: non-persistent buffers follow .to(device).
        self.register_buffer("_class_mean", members / members.sum(dim=1, keepdim=True), persistent=False)
        self.register_buffer("_class_of_pixel", labels, persistent=False)

    # ------------------------------------------------------------------ pieces
    def symmetric_kernel(self) -> torch.Tensor:
        """The symmetrised noise kernel, ``(bands, 1, 7, 7)``."""
        flat = self.kernel.reshape(self.bands, -1)  # (C, 49)
        class_means = flat @ self._class_mean.to(flat.dtype).T  # (C, 10)
        return class_means[:, self._class_of_pixel].reshape(self.kernel.shape)  # (C, 1, 7, 7)

    def amplitude(self, z1: torch.Tensor) -> torch.Tensor:
        """Noise amplitude a >= 0 per image and band, ``(N, bands)`` from z1 ``(N, bands)``."""
        self._check_z1(z1)
        h = F.leaky_relu(self.fc1(z1.unsqueeze(-1)), LEAKY_SLOPE)  # (N, C, 64)
        h = F.leaky_relu(self.fc2(h), LEAKY_SLOPE)  # (N, C, 64)
        return F.softplus(self.fc3(h).squeeze(-1))  # (N, C)

    # ------------------------------------------------------------------ forward
    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Noise from seeds z1 ``(N, bands)`` and z2 ``(N, bands, H + 6, W + 6)`` -> ``(N, bands, H, W)``."""
        self._check_z1(z1)
        if z2.ndim != 4 or z2.shape[:2] != z1.shape or min(z2.shape[-2:]) < KERNEL_SIZE:
            raise ModelError(
                f"NoiseEmulator: z2 must have shape (N, {self.bands}, H + 6, W + 6) with N = {z1.shape[0]}, "
                f"got {tuple(z2.shape)}"
            )
        scaled = z2 * self.amplitude(z1)[:, :, None, None]  # (N, C, H+6, W+6)
        return F.conv2d(scaled, self.symmetric_kernel().to(scaled.dtype), groups=self.bands)  # (N, C, H, W)

    # ------------------------------------------------------------------ sampling
    def sample_inputs(
        self,
        n: int,
        height: int,
        width: int,
        generator: torch.Generator | None = None,
        device=None,
        dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw fresh seeds for ``n`` images of ``height`` x ``width`` pixels.

        Parameters
        ----------
        n, height, width : int
            Number of images and size of the noise image (z2 is 6 pixels larger).
        generator : torch.Generator, optional
            Source of randomness.  The seeds are drawn on the generator's device and
            then moved, so a CPU generator gives the same numbers whatever ``device``.
        device : torch.device or str, optional
            Where to put the seeds (default: this module's device).
        dtype : torch.dtype, optional
            Default float32.

        Returns
        -------
        z1 : torch.Tensor
            ``(n, bands)``.
        z2 : torch.Tensor
            ``(n, bands, height + 6, width + 6)``.
        """
        for name, value in (("n", n), ("height", height), ("width", width)):
            check_size(value, "NoiseEmulator.sample_inputs", name)
        device = torch.device(device) if device is not None else self.kernel.device
        dtype = dtype or torch.float32
        draw_on = generator.device if generator is not None else device
        pad = KERNEL_SIZE - 1
        draw = {"generator": generator, "device": draw_on, "dtype": dtype}
        z1 = torch.randn(n, self.bands, **draw)
        z2 = torch.randn(n, self.bands, height + pad, width + pad, **draw)
        return z1.to(device), z2.to(device)

    def sample(
        self, n: int, height: int, width: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``n`` noise images ``(n, bands, height, width)`` with fresh seeds."""
        return self(*self.sample_inputs(n, height, width, generator=generator))

    def _check_z1(self, z1: torch.Tensor) -> None:
        if z1.ndim != 2 or z1.shape[1] != self.bands:
            raise ModelError(f"NoiseEmulator: z1 must have shape (N, {self.bands}), got {tuple(z1.shape)}")
