"""AECNN: Survey2Survey's paired convolutional autoencoder (Buncher et al. 2021, section 3.1).

One-way translation (``--direction``, default a -> b) trained on the pairs only with the
mean squared error between the reconstruction and the target, optimised with Adadelta
(Zeiler 2012; learning rate 1.0, the algorithm as published).  No adversarial loss.
The network (``survey2survey.nets.AECNN``) resizes the input to the target grid first
(bilinear) when the surveys' cutouts differ in size.
"""

from __future__ import annotations

import torch

from survey2survey.methods.base import TrainingMethod, mse
from survey2survey.methods.pix2pix import parse_direction
from survey2survey.nets import AECNN

__all__ = ["AECNNMethod"]


class AECNNMethod(TrainingMethod):
    """Paired AECNN, ``L = |AECNN(pair_src) - pair_dst|^2``."""

    name = "aecnn"
    parts = ("paired",)
    one_way = True
    optimizer = "adadelta"
    default_lr = 1.0

    def build(self) -> None:
        self.src, self.dst = parse_direction(self, self.options.get("direction"))
        net = AECNN(bands=self.bands, in_size=self.size[self.src], out_size=self.size[self.dst])
        self.add(self.generator_name, net, "generators")

    @property
    def generator_name(self) -> str:
        return f"aecnn_{self.src}_to_{self.dst}"

    def directions(self) -> dict:
        return {f"{self.src}->{self.dst}": {"generator": self.generator_name, "noise_emulator": None}}

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        x = batch.pair_a if self.src == self.a else batch.pair_b
        y = batch.pair_b if self.dst == self.b else batch.pair_a
        with self.autocast():
            L_mse = mse(self.fn[self.generator_name](x), y)
        self.update("generators", L_mse)
        return {"L_mse": L_mse.detach()}
