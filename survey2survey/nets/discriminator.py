"""The Discriminators D_X, D_Y of Lin & Fouchez (2021), Fig. 2d and 2g.

One sub-discriminator per band judges whether the band's high-frequency content
(its noise) looks real.  Each sees only its band, through the fixed high-pass filter,
in two branches:

* Fourier branch: real and imaginary parts of the 2-D FFT of the filtered band
  (2 channels) -> conv k7 n64, pool, conv k7 n64, ACM, pool, conv k7 n64, ACM, pool,
  conv k3 n128, ACM, pool, conv k3 n128, ACM -> global average, max and min (384);
* pixel branch: the filtered band (1 channel) -> conv k3 n64, pool, conv k3 n64, ACM,
  pool, conv k3 n64, ACM -> global average, max and min (192);

concatenated (576) -> FC n32 (LeakyReLU) -> FC n1: one logit per band.

All bands are computed together: the convolutions are grouped (one group per band,
band-major channels), the ACM and FC layers are batched per band
(``GroupedLinear``).  The tests hold the same computation written as a loop over
bands (one independent sub-discriminator per band, as in the paper's code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from survey2survey.nets.layers import (
    LEAKY_SLOPE,
    ConvLReLU,
    GroupedACM,
    GroupedLinear,
    HighPassFilter,
    check_bands,
    check_input,
    same_avg_pool2d,
)

__all__ = ["Discriminator", "FourierBranch", "PixelBranch", "fourier_channels", "high_pass_and_fourier"]

#: Pixels lost to the 'valid' 5x5 high-pass filter.
HIGH_PASS_CROP = 4


def fourier_channels(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised 2-D FFT of each band as (real, imaginary) channel pairs.

    ``(N, C, H, W)`` -> ``(N, 2C, H, W)`` float32, channels ``[re_0, im_0, re_1, im_1,
    ...]`` (no shift of the zero frequency, no normalisation: ``tf.fft2d``).
    """
    n, c, h, w = x.shape
    spectrum = torch.fft.fft2(x.float())  # (N, C, H, W) complex64
    parts = torch.view_as_real(spectrum)  # (N, C, H, W, 2)
    return parts.permute(0, 1, 4, 2, 3).reshape(n, 2 * c, h, w)  # (N, 2C, H, W)


def high_pass_and_fourier(x: torch.Tensor, kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two inputs of the branches: high-passed bands and their Fourier channels.

    ``x`` (N, C, H, W), ``kernel`` (C, 1, 5, 5) -> ``(N, C, H-4, W-4)`` and
    ``(N, 2C, H-4, W-4)``, in the dtype of ``x``.  Computed in float32 with autocast
    off: FFTs do not support bfloat16, and the filter subtracts nearly equal numbers
    on bright galaxies, where bfloat16 rounding (2^-8 relative) would be as large as
    the sky noise the sub-discriminators are meant to judge.  Once filtered, the
    values are noise-sized and the branches can run in low precision.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        filtered = F.conv2d(x.float(), kernel.float(), groups=kernel.shape[0])  # (N, C, H-4, W-4)
        fourier = fourier_channels(filtered)  # (N, 2C, H-4, W-4) float32
    return filtered.to(x.dtype), fourier.to(x.dtype)


def _global_pool(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Global average, max and min per channel: (N, G*K, H, W) -> (N, G, 3K)."""
    n = x.shape[0]
    stats = (x.mean(dim=(2, 3)), x.amax(dim=(2, 3)), x.amin(dim=(2, 3)))  # 3 x (N, G*K)
    return torch.cat([s.reshape(n, groups, -1) for s in stats], dim=-1)  # (N, G, 3K)


class FourierBranch(nn.Module):
    """Fourier branch of all sub-discriminators: (N, 2C, h, w) -> (N, C, 384)."""

    def __init__(self, bands: int):
        super().__init__()
        self.bands = bands
        g = bands
        self.conv1 = ConvLReLU(2 * g, 64 * g, 7, groups=g)
        self.conv2 = ConvLReLU(64 * g, 64 * g, 7, groups=g)
        self.acm2 = GroupedACM(g, 64)
        self.conv3 = ConvLReLU(64 * g, 64 * g, 7, groups=g)
        self.acm3 = GroupedACM(g, 64)
        self.conv4 = ConvLReLU(64 * g, 128 * g, 3, groups=g)
        self.acm4 = GroupedACM(g, 128)
        self.conv5 = ConvLReLU(128 * g, 128 * g, 3, groups=g)
        self.acm5 = GroupedACM(g, 128)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        h = same_avg_pool2d(self.conv1(f))  # (N, 64C, 30, 30) for a 64-px cutout (60 after the filter)
        h = same_avg_pool2d(self.acm2(self.conv2(h)))  # (N, 64C, 15, 15)
        h = same_avg_pool2d(self.acm3(self.conv3(h)))  # (N, 64C, 8, 8)
        h = same_avg_pool2d(self.acm4(self.conv4(h)))  # (N, 128C, 4, 4)
        h = self.acm5(self.conv5(h))  # (N, 128C, 4, 4)
        return _global_pool(h, self.bands)  # (N, C, 384)


class PixelBranch(nn.Module):
    """Pixel branch of all sub-discriminators: (N, C, h, w) -> (N, C, 192)."""

    def __init__(self, bands: int):
        super().__init__()
        self.bands = bands
        g = bands
        self.conv1 = ConvLReLU(g, 64 * g, 3, groups=g)
        self.conv2 = ConvLReLU(64 * g, 64 * g, 3, groups=g)
        self.acm2 = GroupedACM(g, 64)
        self.conv3 = ConvLReLU(64 * g, 64 * g, 3, groups=g)
        self.acm3 = GroupedACM(g, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = same_avg_pool2d(self.conv1(x))  # (N, 64C, 30, 30)
        h = same_avg_pool2d(self.acm2(self.conv2(h)))  # (N, 64C, 15, 15)
        h = self.acm3(self.conv3(h))  # (N, 64C, 15, 15)
        return _global_pool(h, self.bands)  # (N, C, 192)


class Discriminator(nn.Module):
    """Discriminator (Fig. 2d): ``bands`` sub-discriminators, (N, C, H, W) -> (N, C) logits.

    3,859,845 parameters for 5 bands (771,969 per band).  Works for any cutout of at
    least 5 x 5 pixels (64 and 136 in the paper).  The logits go to a sigmoid /
    binary cross-entropy in the loss, summed over bands (paper Eq. 2-3).

    Parameters
    ----------
    bands : int
        Number of bands = number of sub-discriminators.
    """

    def __init__(self, bands: int = 5):
        super().__init__()
        bands = check_bands(bands, "Discriminator")
        self.init_kwargs = {"bands": bands}
        self.bands = bands
        self.high_pass = HighPassFilter(bands)
        self.fourier = FourierBranch(bands)
        self.pixel = PixelBranch(bands)
        self.fc1 = GroupedLinear(bands, 384 + 192, 32)
        self.fc2 = GroupedLinear(bands, 32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-band logits (N, bands) for images x (N, bands, H, W)."""
        check_input(x, "Discriminator", self.bands)
        filtered, fourier = high_pass_and_fourier(x, self.high_pass.kernel)  # (N, C, h, w), (N, 2C, h, w)
        features = torch.cat([self.fourier(fourier), self.pixel(filtered)], dim=-1)  # (N, C, 576)
        h = F.leaky_relu(self.fc1(features), LEAKY_SLOPE)  # (N, C, 32)
        return self.fc2(h).squeeze(-1)  # (N, C)
