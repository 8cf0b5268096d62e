"""AECNN: the paired convolutional autoencoder of Buncher et al. (2021), Table 1.

Seven 3x3 convolutions, no pooling ('same' padding keeps the size): 128, 64, 32
filters ("downsampling" in the table, though no layer changes the grid), then 32, 64,
128, then a decoding layer back to the bands.  ReLU after the six hidden layers.
For 3 bands this has the table's 200,899 parameters.

Two choices of ours (Survey2Survey worked on 8-bit RGB composites):

* Output layer: Table 1 ends in a sigmoid, which maps to [0, 1] and suits 8-bit
  images scaled to that range.  Our model space is stretched float flux, unbounded
  and negative on the sky background, which a sigmoid cannot produce; the default
  output is therefore linear (``output_activation="none"``); "sigmoid" reproduces
  the table for data scaled to [0, 1].
* Grids: the network keeps the size, so when the two surveys have different cutout
  sizes the input is first resized to the output grid with bilinear interpolation
  (how Lin & Fouchez regrid CFHT onto SDSS's grid).  Survey2Survey resampled its
  images beforehand to a common 150 x 150 grid.

Weights Glorot-uniform and biases 0 (the Keras defaults of that work).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from survey2survey.errors import ModelError
from survey2survey.nets.layers import check_bands, check_input, to_pair

__all__ = ["AECNN", "AECNN_WIDTHS"]

#: Filters of the six hidden layers (Table 1).
AECNN_WIDTHS = (128, 64, 32, 32, 64, 128)
_ACTIVATIONS = ("none", "sigmoid")


class AECNN(nn.Module):
    """Convolutional autoencoder (Table 1): (N, bands, *in_size) -> (N, bands, *out_size).

    Parameters
    ----------
    bands : int
        Input and output channels.
    in_size, out_size : int or (int, int)
        Cutout sizes of the source and target surveys in pixels.
    output_activation : {"none", "sigmoid"}
        See the module docstring; "none" for stretched fluxes.
    """

    def __init__(self, bands: int = 5, in_size=64, out_size=64, output_activation: str = "none"):
        super().__init__()
        bands = check_bands(bands, "AECNN")
        self.in_size = to_pair(in_size, "AECNN: in_size")
        self.out_size = to_pair(out_size, "AECNN: out_size")
        if output_activation not in _ACTIVATIONS:
            choices = ", ".join(_ACTIVATIONS)
            raise ModelError(f"AECNN: output_activation must be one of {choices}, not {output_activation!r}")
        self.init_kwargs = {
            "bands": bands,
            "in_size": list(self.in_size) if isinstance(in_size, (tuple, list)) else self.in_size[0],
            "out_size": list(self.out_size) if isinstance(out_size, (tuple, list)) else self.out_size[0],
            "output_activation": output_activation,
        }
        self.bands = bands
        widths = (bands, *AECNN_WIDTHS)
        hidden: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            hidden += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]
        self.hidden = nn.Sequential(*hidden)
        self.decode = nn.Conv2d(widths[-1], bands, 3, padding=1)
        self.output_activation = output_activation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (N, bands, *in_size) -> (N, bands, *out_size)."""
        check_input(x, "AECNN", self.bands, self.in_size)
        if self.in_size != self.out_size:
            # (N, C, *in_size) -> (N, C, *out_size)
            x = F.interpolate(x, size=self.out_size, mode="bilinear", align_corners=False)
        y = self.decode(self.hidden(x))  # (N, bands, *out_size)
        return torch.sigmoid(y) if self.output_activation == "sigmoid" else y
