"""The Generators of Lin & Fouchez (2021), Fig. 2b and 2c.

Each generator maps the image of one survey to the non-noise image of the other, on
the other survey's pixel grid; the noise emulator of the target survey adds the
noise.  They are variants of the autoencoder with one extra re-gridding step:

* ``GeneratorUp`` ("Generator 1", G_{Y->X}, SDSS 64 -> CFHT 136): symmetric padding
  by 2 (64 -> 68) and a nearest-neighbour resize to 136 before the last three
  convolutions;
* ``GeneratorDown`` ("Generator 2", G_{X->Y}, CFHT 136 -> SDSS 64): the decoder stops
  at 68 and an unpadded 5x5 convolution crops 68 -> 64 (the paper's "Cropping").

Figure 2c draws the crop as a separate "Cropping" box after a 68-pixel convolution;
the paper's code (``conv6 ... padding='VALID'``) makes the
convolution itself unpadded.  We follow the code: same parameters, and the border
pixels it drops would have been computed from zero padding anyway.

``upsample="pixelshuffle"`` is the paper's variant (e): every nearest up-sampling is
replaced by a parameter-free pixel shuffle (depth to space, channels / 4), as in the
paper's code, so the convolution after each up-sampling sees a quarter of the
channels (829,125 and 644,485 parameters instead of 1,425,093 and 1,019,269).
"""

from __future__ import annotations

import torch
from torch import nn

from survey2survey.errors import ModelError
from survey2survey.nets.layers import (
    ConvLReLU,
    OutputConvLReLU,
    UpConvLReLU,
    Upsample,
    check_bands,
    check_input,
    same_avg_pool2d,
    symmetric_pad2d,
    to_pair,
)

__all__ = [
    "GeneratorUp",
    "GeneratorDown",
    "generator_sdss_to_cfht",
    "generator_cfht_to_sdss",
    "build_generator",
]

#: Symmetric padding of Generator 1 before the resize (64 -> 68 -> 136 in the paper).
SYMMETRIC_PAD = 2
#: Pixels the unpadded 5x5 convolution of Generator 2 crops (68 -> 64).
CROP = 4


def _sizes(in_size, out_size, owner: str) -> tuple[tuple[int, int], tuple[int, int]]:
    in_hw, out_hw = to_pair(in_size, f"{owner}: in_size"), to_pair(out_size, f"{owner}: out_size")
    if min(in_hw) < 2:
        raise ModelError(f"{owner}: in_size must be at least 2 pixels, got {in_size!r}")
    return in_hw, out_hw


def _json_size(size) -> int | list[int]:
    """Keep ``init_kwargs`` JSON-able and close to what the caller wrote."""
    h, w = to_pair(size, "size")
    return [h, w] if isinstance(size, (tuple, list)) else h


class GeneratorUp(nn.Module):
    """Generator 1 (Fig. 2b): the low-resolution survey -> the high-resolution survey.

    conv k3 n64, pool, conv k3 n128, pool, conv k3 n128, pool, conv k3 n256,
    up, conv k3 n128, up, conv k3 n128, up, conv k3 n128, symmetric padding by 2,
    nearest resize to ``out_size``, conv k5 n64, conv k5 n64, conv k5 n<bands>; every
    convolution followed by LeakyReLU(0.2).  1,425,093 parameters for 5 bands.

    Parameters
    ----------
    bands : int
        Bands of the input and of the output (the same band set in both surveys).
    in_size, out_size : int or (int, int)
        Cutout sizes in pixels (64 and 136 for SDSS -> CFHT); ``out_size`` must be
        larger than ``in_size``.
    upsample : {"nearest", "pixelshuffle"}
        "pixelshuffle" is the paper's variant (e); see the module docstring.
    """

    def __init__(self, bands: int = 5, in_size=64, out_size=136, upsample: str = "nearest"):
        super().__init__()
        bands = check_bands(bands, "GeneratorUp")
        self.in_size, self.out_size = _sizes(in_size, out_size, "GeneratorUp")
        if not all(o > i for i, o in zip(self.in_size, self.out_size)):
            raise ModelError(
                f"GeneratorUp: out_size {out_size!r} must be larger than in_size {in_size!r} "
                "(use GeneratorDown to go to a smaller grid)"
            )
        self.init_kwargs = {
            "bands": bands,
            "in_size": _json_size(in_size),
            "out_size": _json_size(out_size),
            "upsample": upsample,
        }
        self.bands = bands
        ch = Upsample(upsample).out_channels  # channels after an up-sampling (pixel shuffle: / 4)
        self.conv1 = ConvLReLU(bands, 64, 3)
        self.conv2 = ConvLReLU(64, 128, 3)
        self.conv3 = ConvLReLU(128, 128, 3)
        self.conv4 = ConvLReLU(128, 256, 3)
        self.conv5 = UpConvLReLU(ch(256), 128, 3, upsample=upsample)
        self.conv6 = UpConvLReLU(ch(128), 128, 3, upsample=upsample)
        self.conv7 = UpConvLReLU(ch(128), 128, 3, upsample=upsample)
        self.conv8 = UpConvLReLU(ch(128), 64, 5, upsample=upsample)
        self.conv9 = ConvLReLU(64, 64, 5)
        self.conv10 = OutputConvLReLU(64, bands, 5)  # float32 under autocast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (N, bands, *in_size) -> (N, bands, *out_size)."""
        check_input(x, "GeneratorUp", self.bands, self.in_size)
        s0 = x.shape[-2:]
        h = same_avg_pool2d(self.conv1(x))  # (N, 64, 32, 32) for the paper's 64
        s1 = h.shape[-2:]
        h = same_avg_pool2d(self.conv2(h))  # (N, 128, 16, 16)
        s2 = h.shape[-2:]
        h = same_avg_pool2d(self.conv3(h))  # (N, 128, 8, 8)
        h = self.conv4(h)  # (N, 256, 8, 8)
        h = self.conv5(h, s2)  # up, conv: (N, 128, 16, 16)
        h = self.conv6(h, s1)  # up, conv: (N, 128, 32, 32)
        h = self.conv7(h, s0)  # up, conv: (N, 128, 64, 64)
        h = symmetric_pad2d(h, SYMMETRIC_PAD)  # (N, 128, 68, 68)
        h = self.conv8(h, self.out_size)  # up, conv: (N, 64, 136, 136)
        return self.conv10(self.conv9(h))  # (N, bands, 136, 136)


class GeneratorDown(nn.Module):
    """Generator 2 (Fig. 2c): the high-resolution survey -> the low-resolution survey.

    conv k3 n64, pool, conv k3 n64, pool, conv k3 n128, pool, conv k3 n256, up,
    conv k3 n128, up, conv k5 n64 unpadded (the crop, 68 -> 64), conv k5 n64,
    conv k5 n<bands>; every convolution followed by LeakyReLU(0.2).  1,019,269
    parameters for 5 bands.

    Parameters
    ----------
    bands : int
        Bands of the input and of the output.
    in_size, out_size : int or (int, int)
        Cutout sizes in pixels (136 and 64 for CFHT -> SDSS); ``out_size`` must be
        smaller than ``in_size``.
    upsample : {"nearest", "pixelshuffle"}
        "pixelshuffle" is the paper's variant (e).

    Notes
    -----
    The second up-sampling goes to ``out_size + 4`` so that the crop lands on
    ``out_size``.  For 136 -> 64 that is the paper's x2 (34 -> 68); for other survey
    pairs it is a nearest resize by whatever factor is needed.
    """

    def __init__(self, bands: int = 5, in_size=136, out_size=64, upsample: str = "nearest"):
        super().__init__()
        bands = check_bands(bands, "GeneratorDown")
        self.in_size, self.out_size = _sizes(in_size, out_size, "GeneratorDown")
        if not all(o < i for i, o in zip(self.in_size, self.out_size)):
            raise ModelError(
                f"GeneratorDown: out_size {out_size!r} must be smaller than in_size {in_size!r} "
                "(use GeneratorUp to go to a larger grid)"
            )
        self.init_kwargs = {
            "bands": bands,
            "in_size": _json_size(in_size),
            "out_size": _json_size(out_size),
            "upsample": upsample,
        }
        self.bands = bands
        ch = Upsample(upsample).out_channels
        self.conv1 = ConvLReLU(bands, 64, 3)
        self.conv2 = ConvLReLU(64, 64, 3)
        self.conv3 = ConvLReLU(64, 128, 3)
        self.conv4 = ConvLReLU(128, 256, 3)
        self.conv5 = UpConvLReLU(ch(256), 128, 3, upsample=upsample)
        self.conv6 = UpConvLReLU(ch(128), 64, 5, padding="valid", upsample=upsample)
        self.conv7 = ConvLReLU(64, 64, 5)
        self.conv8 = OutputConvLReLU(64, bands, 5)  # float32 under autocast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (N, bands, *in_size) -> (N, bands, *out_size)."""
        check_input(x, "GeneratorDown", self.bands, self.in_size)
        h = same_avg_pool2d(self.conv1(x))  # (N, 64, 68, 68) for the paper's 136
        h = same_avg_pool2d(self.conv2(h))  # (N, 64, 34, 34)
        s2 = h.shape[-2:]
        h = same_avg_pool2d(self.conv3(h))  # (N, 128, 17, 17)
        h = self.conv4(h)  # (N, 256, 17, 17)
        h = self.conv5(h, s2)  # up, conv: (N, 128, 34, 34)
        crop_in = (self.out_size[0] + CROP, self.out_size[1] + CROP)
        h = self.conv6(h, crop_in)  # up to (N, 128, 68, 68), unpadded conv: (N, 64, 64, 64)
        return self.conv8(self.conv7(h))  # (N, bands, 64, 64)


def generator_sdss_to_cfht(**kwargs) -> GeneratorUp:
    """G_{Y->X} of the paper: SDSS 64 x 64 -> CFHT 136 x 136 (keywords override)."""
    return GeneratorUp(**{"bands": 5, "in_size": 64, "out_size": 136, **kwargs})


def generator_cfht_to_sdss(**kwargs) -> GeneratorDown:
    """G_{X->Y} of the paper: CFHT 136 x 136 -> SDSS 64 x 64 (keywords override)."""
    return GeneratorDown(**{"bands": 5, "in_size": 136, "out_size": 64, **kwargs})


def build_generator(in_size, out_size, bands: int = 5, **kwargs) -> GeneratorUp | GeneratorDown:
    """The paper's generator for any pair of cutout sizes.

    Parameters
    ----------
    in_size, out_size : int or (int, int)
        Source and target cutout sizes in pixels.
    bands : int
        Number of bands.
    **kwargs
        Passed on (``upsample``).

    Returns
    -------
    GeneratorUp or GeneratorDown
        ``GeneratorUp`` when the target grid is larger, ``GeneratorDown`` when smaller.

    Raises
    ------
    ModelError
        Equal sizes (the paper's generators change the grid; use ``ResnetGenerator``)
        or a target larger along one axis and smaller along the other.
    """
    in_hw = to_pair(in_size, "build_generator: in_size")
    out_hw = to_pair(out_size, "build_generator: out_size")
    if all(o > i for i, o in zip(in_hw, out_hw)):
        return GeneratorUp(bands=bands, in_size=in_size, out_size=out_size, **kwargs)
    if all(o < i for i, o in zip(in_hw, out_hw)):
        return GeneratorDown(bands=bands, in_size=in_size, out_size=out_size, **kwargs)
    raise ModelError(
        f"build_generator: no generator from {in_hw[0]}x{in_hw[1]} to {out_hw[0]}x{out_hw[1]} pixels: "
        "the target must be larger (GeneratorUp) or smaller (GeneratorDown) along both axes; "
        "for same-size grids use ResnetGenerator"
    )
