"""Building blocks shared by the networks of Lin & Fouchez (2021).

Everything here follows the conventions of the paper's TensorFlow 1.12 code: Xavier (Glorot) uniform weights, biases initialised to 0.1,
LeakyReLU with slope 0.2 after every convolution, 2x2 average pooling with 'SAME'
padding, nearest-neighbour up-sampling by two.

The per-band pieces (``GroupedLinear``, ``GroupedACM``) keep one independent set of
weights per band but compute all bands in one batched call, so that no network loops
over bands in Python (GPU friendliness).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from survey2survey.errors import ModelError

__all__ = [
    "LEAKY_SLOPE",
    "BIAS_INIT",
    "HIGH_PASS_KERNEL",
    "xavier_uniform_",
    "ConvLReLU",
    "OutputConvLReLU",
    "GroupedLinear",
    "GroupedACM",
    "Upsample",
    "UpConvLReLU",
    "FoldedUpConvLReLU",
    "fold_upsampling",
    "HighPassFilter",
    "same_avg_pool2d",
    "symmetric_pad2d",
    "check_bands",
    "check_size",
    "check_input",
    "to_pair",
]

#: Slope of every LeakyReLU in the paper's networks (``tf.nn.leaky_relu`` default).
LEAKY_SLOPE = 0.2
#: Initial value of every bias in the paper's networks.
BIAS_INIT = 0.1

#: The fixed 5x5 high-pass filter of the discriminators (paper Fig. 2g).
HIGH_PASS_KERNEL = (
    (-1.0, 3.0, -4.0, 3.0, -1.0),
    (3.0, -8.0, 10.0, -8.0, 3.0),
    (-4.0, 10.0, -12.0, 10.0, -4.0),
    (3.0, -8.0, 10.0, -8.0, 3.0),
    (-1.0, 3.0, -4.0, 3.0, -1.0),
)


def xavier_uniform_(tensor: torch.Tensor, fan_in: int, fan_out: int) -> torch.Tensor:
    """Fill ``tensor`` in place from U(-a, a), a = sqrt(6 / (fan_in + fan_out)).

    The fans are given explicitly because ``torch.nn.init.xavier_uniform_`` counts the
    output channels of *all* groups of a grouped convolution, whereas each band of the
    paper has its own layer with its own fans.
    """
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return tensor.uniform_(-bound, bound)


class ConvLReLU(nn.Conv2d):
    """Convolution (stride 1) followed by LeakyReLU(0.2), initialised as in the paper.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of all groups together.
    kernel_size : int
        Odd square kernel size.
    padding : {"same", "valid"}
        'same' keeps the size with zero padding ``kernel_size // 2``; 'valid' crops
        ``kernel_size - 1`` pixels (used for Generator 2's cropping and nowhere else).
    groups : int
        One group per band for the per-band sub-discriminators.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding: str = "same",
        groups: int = 1,
    ):
        if padding not in ("same", "valid"):
            raise ModelError(f"ConvLReLU: padding must be 'same' or 'valid', not {padding!r}")
        # An explicit integer padding (not the string 'same') exports to ONNX everywhere.
        pad = kernel_size // 2 if padding == "same" else 0
        super().__init__(in_channels, out_channels, kernel_size, padding=pad, groups=groups)
        fan_in = (in_channels // groups) * kernel_size * kernel_size
        fan_out = (out_channels // groups) * kernel_size * kernel_size
        xavier_uniform_(self.weight, fan_in, fan_out)
        nn.init.constant_(self.bias, BIAS_INIT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(super().forward(x), LEAKY_SLOPE)


class OutputConvLReLU(ConvLReLU):
    """The last ConvLReLU of an image-producing network, computed in float32 under autocast.

    Under bfloat16 autocast an ordinary convolution returns bfloat16, whose rounding
    step (2^-8 relative) is ~0.02 on a galaxy core of 5 in model space: as large as
    the sky noise, and on a regular grid that a discriminator could learn to spot in
    fakes.  This layer is a small fraction of the compute, so it runs in float32 and
    returns float32; outside autocast it is exactly ``ConvLReLU``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            return super().forward(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = F.conv2d(x.float(), self.weight.float(), self.bias.float(), padding=self.padding)
            return F.leaky_relu(y, LEAKY_SLOPE)


class GroupedLinear(nn.Module):
    """``groups`` independent fully connected layers evaluated in one batched product.

    Input ``(N, groups, in_features)`` -> output ``(N, groups, out_features)``; group
    ``g`` only sees its own features and has its own weights (one per band).
    Weights are stored as ``(groups, in_features, out_features)``.
    """

    def __init__(self, groups: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(groups, in_features, out_features))
        self.bias = nn.Parameter(torch.full((groups, out_features), BIAS_INIT))
        xavier_uniform_(self.weight, in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, G, I) x (G, I, O) -> (N, G, O): one batched matmul over the groups
        return torch.einsum("ngi,gio->ngo", x, self.weight) + self.bias

    def extra_repr(self) -> str:
        g, i, o = self.weight.shape
        return f"groups={g}, in_features={i}, out_features={o}"


class GroupedACM(nn.Module):
    """Attention complementary module, one per band: ``x * sigmoid(FC(mean_space(x)))``.

    As in the paper's code, the FC maps the ``channels`` spatial means of a band to
    ``channels`` gates with a bias (``channels**2 + channels`` parameters per band).
    Input and output ``(N, groups * channels, H, W)``, band-major channels.
    """

    def __init__(self, groups: int, channels: int):
        super().__init__()
        self.groups = groups
        self.channels = channels
        self.fc = GroupedLinear(groups, channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        squeeze = x.mean(dim=(2, 3)).reshape(n, self.groups, self.channels)  # (N, G, C)
        gate = torch.sigmoid(self.fc(squeeze))  # (N, G, C)
        return x * gate.reshape(n, self.groups * self.channels, 1, 1)


def same_avg_pool2d(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling, stride 2, TensorFlow 'SAME' padding.

    An odd size rounds up (33 -> 17) and the last window averages only the pixels
    that exist, as ``tf.nn.avg_pool(..., padding='SAME')`` does.
    """
    return F.avg_pool2d(x, kernel_size=2, stride=2, ceil_mode=True, count_include_pad=False)


def symmetric_pad2d(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad the last two axes by ``pad`` on each side, mirroring *including* the edge.

    Same as ``numpy.pad(mode='symmetric')`` and ``tf.pad(mode='SYMMETRIC')``:
    ``[a b c]`` padded by 2 is ``[b a a b c c b]``. Built from slices, ``flip`` and
    ``cat`` so that it traces, compiles and exports to ONNX.
    """
    if pad == 0:
        return x
    if pad > x.shape[-1] or pad > x.shape[-2]:
        raise ModelError(f"symmetric padding by {pad} needs at least {pad} pixels, got {tuple(x.shape[-2:])}")
    x = torch.cat([x[..., :pad].flip(-1), x, x[..., -pad:].flip(-1)], dim=-1)  # (N, C, H, W+2p)
    return torch.cat([x[..., :pad, :].flip(-2), x, x[..., -pad:, :].flip(-2)], dim=-2)  # (N, C, H+2p, W+2p)


class Upsample(nn.Module):
    """Up-sampling to a given size: nearest-neighbour (the paper) or pixel shuffle.

    ``"nearest"`` resizes with nearest-neighbour interpolation, which for an exact
    factor 2 is the paper's "up" (``tf.image.resize_images(..., NEAREST_NEIGHBOR)``,
    same floor rule as PyTorch's 'nearest').  ``"pixelshuffle"`` is the paper's
    variant (e): the parameter-free depth-to-space of its code, channels / 4 and size
    x 2 (channel ``4c + 2i + j`` goes to sub-pixel ``(i, j)``, as ``F.pixel_shuffle``);
    if that does not land on the requested size (only for sizes other than the
    paper's), a nearest resize finishes the job.
    """

    MODES = ("nearest", "pixelshuffle")

    def __init__(self, mode: str = "nearest"):
        super().__init__()
        if mode not in self.MODES:
            raise ModelError(f"upsample must be one of {', '.join(self.MODES)}, not {mode!r}")
        self.mode = mode

    def out_channels(self, in_channels: int) -> int:
        """Channels after up-sampling ``in_channels`` (pixel shuffle divides by 4)."""
        if self.mode == "pixelshuffle":
            if in_channels % 4:
                raise ModelError(f"pixel shuffle needs channels divisible by 4, got {in_channels}")
            return in_channels // 4
        return in_channels

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        size = (size[0], size[1])  # no int(): keeps symbolic sizes symbolic under torch.export
        if self.mode == "pixelshuffle":
            x = F.pixel_shuffle(x, 2)  # (N, C/4, 2H, 2W)
            if tuple(x.shape[-2:]) == size:
                return x
        return F.interpolate(x, size=size, mode="nearest")

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class UpConvLReLU(ConvLReLU):
    """Up-sampling to a given size, then a :class:`ConvLReLU` (the paper's "up", "conv").

    The up-sampling has no parameters, so the layer's weights are those of the
    convolution alone (the same ``weight`` and ``bias`` as a ``ConvLReLU``).

    Parameters
    ----------
    in_channels : int
        Channels after the up-sampling (a pixel shuffle divides them by 4).
    out_channels, kernel_size, padding
        As :class:`ConvLReLU`.
    upsample : {"nearest", "pixelshuffle"}
        See :class:`Upsample`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: str = "same", upsample: str = "nearest"):
        super().__init__(in_channels, out_channels, kernel_size, padding=padding)
        self.up = Upsample(upsample)

    def forward(self, x: torch.Tensor, size) -> torch.Tensor:
        """``(N, C, h, w)`` -> up-sampled to ``size`` -> convolved ``(N, out_channels, H', W')``."""
        return super().forward(self.up(x, size))


class FoldedUpConvLReLU(UpConvLReLU):
    """:class:`UpConvLReLU` computed at the low resolution when it doubles the size (nearest).

    A convolution that follows a nearest-neighbour x2 up-sampling sees each input pixel
    four times, so its output can be computed on the small grid: the four output
    phases (even/odd row, even/odd column) are four convolutions with kernels folded
    from the original one (:func:`_phase_kernels`), interleaved by a pixel shuffle.
    Same parameters, same function (to float rounding), fewer operations: a 5x5
    kernel becomes 3x3 per phase (36 instead of 100 multiply-adds per input pixel and
    channel pair), a 3x3 kernel 2x2 (16 instead of 36).  Any other size runs the two
    steps as written.  Made by :func:`fold_upsampling`.
    """

    def forward(self, x: torch.Tensor, size) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        if (size[0], size[1]) == (2 * h, 2 * w):
            return F.leaky_relu(_nearest2x_conv2d(x, self.weight, self.bias, self.padding[0]), LEAKY_SLOPE)
        return super().forward(x, size)


def fold_upsampling(module: nn.Module) -> nn.Module:
    """Replace, in place, every nearest :class:`UpConvLReLU` of ``module`` by a :class:`FoldedUpConvLReLU`.

    The replacement shares the original's parameters (same state dict, gradients reach
    the same weights): the network computes the same function with fewer operations.
    Applied when a model is loaded for inference (``load_model(..., fold=True)``); a
    training loop may apply it too.

    Returns
    -------
    nn.Module
        ``module`` itself.
    """
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is UpConvLReLU and child.up.mode == "nearest":
                folded = FoldedUpConvLReLU(
                    child.in_channels, child.out_channels, child.kernel_size[0],
                    padding="valid" if child.padding[0] == 0 else "same", upsample="nearest",
                )
                folded.weight, folded.bias = child.weight, child.bias
                folded.train(child.training)
                setattr(parent, name, folded)
    return module


def _phase_kernels(weight: torch.Tensor, pad: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Fold a (O, I, k, k) kernel that follows a nearest x2 up-sampling into 4 phase kernels.

    Output pixel ``2i + a`` (a = 0, 1) of a convolution with padding ``pad`` on the
    up-sampled grid reads up-sampled pixels ``2i + a + d - pad`` (d = 0..k-1), that is
    input pixels ``i + (a + d - pad) // 2``: ``m = (k + 1) // 2`` consecutive pixels
    from ``i + start[a]``.  Returns the kernels, shape (4 O, I, m, m), channel
    ``4 o + 2 a_row + a_col`` (the order of ``F.pixel_shuffle``), and ``start``.
    """
    k = weight.shape[-1]
    start = ((0 - pad) // 2, (1 - pad) // 2)
    m = (k + 1) // 2
    fold = torch.zeros(2, m, k, dtype=weight.dtype, device=weight.device)  # (phase, tap, original tap)
    for a in (0, 1):
        for d in range(k):
            fold[a, (a + d - pad) // 2 - start[a], d] = 1.0
    kernels = torch.einsum("aud,bve,oide->oabiuv", fold, fold, weight)  # (O, 2, 2, I, m, m)
    return kernels.reshape(4 * weight.shape[0], weight.shape[1], m, m), start


def _nearest2x_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, pad: int) -> torch.Tensor:
    """``F.conv2d(interpolate(x, scale 2, nearest), weight, bias, padding=pad)`` on the small grid."""
    k = weight.shape[-1]
    with torch.autocast(device_type=x.device.type, enabled=False):
        # fold in (at least) float32: under autocast the convolution casts the sums once
        kernels, start = _phase_kernels(weight if weight.dtype == torch.float64 else weight.float(), pad)
    kernels = kernels.to(weight.dtype)
    m = kernels.shape[-1]
    h, w = x.shape[-2], x.shape[-1]
    out_h, out_w = h - (k - 1 - 2 * pad) // 2, w - (k - 1 - 2 * pad) // 2  # per phase
    lo = max(0, -min(start))
    hi_h = max(0, max(out_h + s + m - 1 for s in start) - h)
    hi_w = max(0, max(out_w + s + m - 1 for s in start) - w)
    y = F.conv2d(F.pad(x, (lo, hi_w, lo, hi_h)), kernels, bias.repeat_interleave(4))  # (N, 4 O, L_h, L_w)
    if start[0] == start[1] and y.shape[-2:] == (out_h, out_w):
        return F.pixel_shuffle(y, 2)  # (N, O, 2 out_h, 2 out_w)
    # the phases read windows that start one pixel apart (k = 3): take each its slice
    n, c = y.shape[0], y.shape[1] // 4
    y = y.reshape(n, c, 2, 2, y.shape[-2], y.shape[-1])
    rows = [y[:, :, a, :, start[a] + lo : start[a] + lo + out_h] for a in (0, 1)]  # (N, O, 2, out_h, L_w)
    y = torch.stack(rows, dim=2)  # (N, O, 2, 2, out_h, L_w)
    cols = [y[:, :, :, b, :, start[b] + lo : start[b] + lo + out_w] for b in (0, 1)]  # (N, O, 2, out_h, out_w)
    y = torch.stack(cols, dim=3)  # (N, O, 2, 2, out_h, out_w)
    return F.pixel_shuffle(y.reshape(n, 4 * c, out_h, out_w), 2)


class HighPassFilter(nn.Module):
    """The fixed 5x5 high-pass filter (Fig. 2g), per band, 'valid': H -> H - 4.

    The kernel is a non-persistent buffer: it is a constant of the architecture, not
    a weight, so it is neither trained nor saved.  The filter runs in float32 even
    under autocast (it subtracts nearly equal numbers on bright sources); the result
    has the dtype of the input.
    """

    def __init__(self, bands: int):
        super().__init__()
        self.bands = bands
        kernel = torch.tensor(HIGH_PASS_KERNEL).reshape(1, 1, 5, 5).repeat(bands, 1, 1, 1)
        self.register_buffer("kernel", kernel, persistent=False)  # (C, 1, 5, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = F.conv2d(x.float(), self.kernel.float(), groups=self.bands)  # (N, C, H-4, W-4)
        return out.to(x.dtype)


def to_pair(size, name: str) -> tuple[int, int]:
    """``64`` or ``(64, 64)`` (or a JSON list) -> ``(64, 64)``; anything else is a ModelError."""
    if _is_int(size):
        size = (size, size)
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(_is_int(s) and s >= 1 for s in size):
        return int(size[0]), int(size[1])
    raise ModelError(f"{name} must be a positive integer or a (height, width) pair, not {size!r}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_bands(bands, owner: str) -> int:
    """Validate a number of bands (channels) given to a network constructor."""
    if not _is_int(bands) or bands < 1:
        raise ModelError(f"{owner}: bands must be a positive integer, not {bands!r}")
    return int(bands)


def check_size(value, owner: str, name: str, minimum: int = 1) -> int:
    """Validate a positive integer hyper-parameter (channels, blocks, latent size)."""
    if not _is_int(value) or value < minimum:
        raise ModelError(f"{owner}: {name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def check_input(x: torch.Tensor, owner: str, channels: int, size: tuple[int, int] | None = None) -> None:
    """Raise a one-line ModelError if ``x`` is not ``(N, channels, *size)``."""
    shape = tuple(x.shape)
    if x.ndim != 4 or shape[1] != channels or (size is not None and shape[2:] != tuple(size)):
        want = f"(N, {channels}, {size[0]}, {size[1]})" if size is not None else f"(N, {channels}, H, W)"
        raise ModelError(f"{owner} expects input of shape {want}, got {shape}")
