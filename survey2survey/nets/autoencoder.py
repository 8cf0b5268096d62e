"""The Autoencoders A_X, A_Y of Lin & Fouchez (2021), Fig. 2a.

Step 1 of the paper's training trains one autoencoder per domain to reproduce its
input without the noise (the non-noise image); the noise emulator learns what is
left.  Same layers for both domains; the size is kept:
136 -> 68 -> 34 -> 17 -> 34 -> 68 -> 136 and 64 -> 32 -> 16 -> 8 -> 16 -> 32 -> 64.
"""

from __future__ import annotations

import torch
from torch import nn

from survey2survey.nets.layers import (
    ConvLReLU,
    OutputConvLReLU,
    UpConvLReLU,
    check_bands,
    check_input,
    same_avg_pool2d,
)

__all__ = ["Autoencoder"]


class Autoencoder(nn.Module):
    """Autoencoder (Fig. 2a): 9 convolutions, 3 poolings, 3 nearest up-samplings.

    conv k3 n64, pool, conv k3 n128, pool, conv k3 n256, pool, conv k3 n256, up,
    conv k3 n256, up, conv k3 n128, up, conv k5 n64, conv k5 n64, conv k5 n<bands>;
    every convolution followed by LeakyReLU(0.2), the last one included (as in the
    paper's code).  2,162,501 parameters for 5 bands.

    Parameters
    ----------
    bands : int
        Number of bands (input = output channels).

    Notes
    -----
    Each up-sampling goes back to the size of the matching encoder stage.  For sizes
    divisible by 8 (both of the paper's) that is exactly the paper's nearest x2; it
    also makes any other size come back unchanged (an odd stage was rounded up by the
    'SAME' pooling and is now resized down to its original size).
    """

    def __init__(self, bands: int = 5):
        super().__init__()
        bands = check_bands(bands, "Autoencoder")
        self.init_kwargs = {"bands": bands}
        self.bands = bands
        self.conv1 = ConvLReLU(bands, 64, 3)
        self.conv2 = ConvLReLU(64, 128, 3)
        self.conv3 = ConvLReLU(128, 256, 3)
        self.conv4 = ConvLReLU(256, 256, 3)
        self.conv5 = UpConvLReLU(256, 256, 3)
        self.conv6 = UpConvLReLU(256, 128, 3)
        self.conv7 = UpConvLReLU(128, 64, 5)
        self.conv8 = ConvLReLU(64, 64, 5)
        self.conv9 = OutputConvLReLU(64, bands, 5)  # float32 under autocast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x`` (N, bands, H, W) -> (N, bands, H, W)."""
        check_input(x, "Autoencoder", self.bands)
        s0 = x.shape[-2:]
        h = same_avg_pool2d(self.conv1(x))  # (N, 64, H/2, W/2)
        s1 = h.shape[-2:]
        h = same_avg_pool2d(self.conv2(h))  # (N, 128, H/4, W/4)
        s2 = h.shape[-2:]
        h = same_avg_pool2d(self.conv3(h))  # (N, 256, H/8, W/8)
        h = self.conv4(h)
        h = self.conv5(h, s2)  # up, conv: (N, 256, H/4, W/4)
        h = self.conv6(h, s1)  # up, conv: (N, 128, H/2, W/2)
        h = self.conv7(h, s0)  # up, conv: (N, 64, H, W)
        return self.conv9(self.conv8(h))  # (N, bands, H, W)
