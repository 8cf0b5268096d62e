"""Reference for tests: the discriminator (Fig. 2d, 2g) one band at a time.

``Discriminator`` computes all bands together (grouped convolutions, batched per-band
layers); this loop is the paper's independent sub-discriminators written out, used to
check that the grouped computation is the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from survey2survey.nets import Discriminator
from survey2survey.nets.discriminator import high_pass_and_fourier
from survey2survey.nets.layers import LEAKY_SLOPE, ConvLReLU, GroupedACM, check_input, same_avg_pool2d


def forward_per_band(self: Discriminator, x: torch.Tensor) -> torch.Tensor:
    """Same as ``Discriminator.forward``, one band at a time in a Python loop (slow).

    Each band uses its slice of the grouped weights, exactly as an independent
    sub-discriminator with its own layers (the paper's code) would.
    """
    check_input(x, "Discriminator", self.bands)
    logits = []
    for b in range(self.bands):
        # (N, 1, h, w) and (N, 2, h, w) for band b alone
        band, f = high_pass_and_fourier(x[:, b : b + 1], self.high_pass.kernel[b : b + 1])
        fb, pb = self.fourier, self.pixel
        h = same_avg_pool2d(_conv(fb.conv1, f, b))
        h = same_avg_pool2d(_acm(fb.acm2, _conv(fb.conv2, h, b), b))
        h = same_avg_pool2d(_acm(fb.acm3, _conv(fb.conv3, h, b), b))
        h = same_avg_pool2d(_acm(fb.acm4, _conv(fb.conv4, h, b), b))
        h = _acm(fb.acm5, _conv(fb.conv5, h, b), b)
        fourier = _stats(h)  # (N, 384)
        h = same_avg_pool2d(_conv(pb.conv1, band, b))
        h = same_avg_pool2d(_acm(pb.acm2, _conv(pb.conv2, h, b), b))
        h = _acm(pb.acm3, _conv(pb.conv3, h, b), b)
        pixel = _stats(h)  # (N, 192)
        h = torch.cat([fourier, pixel], dim=1)  # (N, 576)
        h = F.leaky_relu(h @ self.fc1.weight[b] + self.fc1.bias[b], LEAKY_SLOPE)  # (N, 32)
        logits.append(h @ self.fc2.weight[b] + self.fc2.bias[b])  # (N, 1)
    return torch.cat(logits, dim=1)  # (N, C)


def _stats(x: torch.Tensor) -> torch.Tensor:
    """Global average, max and min of one band's features: (N, K, H, W) -> (N, 3K)."""
    return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3)), x.amin(dim=(2, 3))], dim=1)


def _conv(conv: ConvLReLU, x: torch.Tensor, band: int) -> torch.Tensor:
    """Apply band ``band``'s slice of a grouped ConvLReLU to that band's features."""
    k = conv.out_channels // conv.groups
    w, bias = conv.weight[band * k : (band + 1) * k], conv.bias[band * k : (band + 1) * k]
    return F.leaky_relu(F.conv2d(x, w, bias, padding=conv.padding), LEAKY_SLOPE)


def _acm(acm: GroupedACM, x: torch.Tensor, band: int) -> torch.Tensor:
    """Apply band ``band``'s ACM to that band's features (N, K, H, W)."""
    gate = torch.sigmoid(x.mean(dim=(2, 3)) @ acm.fc.weight[band] + acm.fc.bias[band])  # (N, K)
    return x * gate[:, :, None, None]
