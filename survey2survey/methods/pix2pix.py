"""(a) Adapted pix2pix (Lin & Fouchez 2021, section IV-B; code README method 3).

One-way translation with the paper's generator and discriminator, trained on the pairs
only, without autoencoders or noise emulators, like pix2pix (Isola et al. 2017).  As for
every baseline without noise emulators, the generator minimises
``1000 x L_id + L_adv(G)``:

    L_id     = |G(pair_src) - pair_dst|^2                         (Eq. 4, one term)
    L_adv(G) = -log D(G(pair_src))
    L_adv(D) = -log D(pair_dst) - log(1 - D(G(pair_src)))

Update order per iteration: the generator, then the discriminator (on the generator's
output of this iteration, detached).
"""

from __future__ import annotations

import torch

from survey2survey.errors import UsageError
from survey2survey.methods.base import CONTENT_WEIGHT, TrainingMethod, adv_fake, adv_real, mse
from survey2survey.nets import Discriminator, build_generator

__all__ = ["AdaptedPix2Pix", "parse_direction"]


def parse_direction(method: TrainingMethod, direction: str | None) -> tuple[str, str]:
    """``"sdss->cfht"`` -> ``("sdss", "cfht")``; ``None``: a -> b of the dataset."""
    if direction is None:
        return method.a, method.b
    parts = [p.strip().lower() for p in str(direction).split("->")]
    if len(parts) != 2 or set(parts) != {method.a, method.b}:
        raise UsageError(
            f"--direction {direction!r}: expected {method.a}->{method.b} or {method.b}->{method.a} for this dataset"
        )
    return parts[0], parts[1]


class AdaptedPix2Pix(TrainingMethod):
    """Method (a): ``G_{src->dst}`` and ``D_dst`` on paired images (``--direction``)."""

    name = "pix2pix"
    parts = ("paired",)
    one_way = True

    def build(self) -> None:
        self.src, self.dst = parse_direction(self, self.options.get("direction"))
        src, dst = self.src, self.dst
        self.add(self.G(src, dst), build_generator(self.size[src], self.size[dst], bands=self.bands), "generators")
        self.add(self.D(dst), Discriminator(bands=self.bands), "discriminators")

    def saved_modules(self) -> list[str]:
        return [self.G(self.src, self.dst)]

    def directions(self) -> dict:
        return {f"{self.src}->{self.dst}": {"generator": self.G(self.src, self.dst), "noise_emulator": None}}

    def _pair(self, batch, domain: str) -> torch.Tensor:
        return batch.pair_a if domain == self.a else batch.pair_b

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        x, y = self._pair(batch, self.src), self._pair(batch, self.dst)
        G, D = self.G(self.src, self.dst), self.D(self.dst)
        with self.autocast(), self.frozen(D):
            fake = self.fn[G](x)  # (N, C, H_dst, W_dst)
            L_id = mse(fake, y)
            L_adv_G = adv_real(self.fn[D](fake))
            loss = CONTENT_WEIGHT * L_id + L_adv_G
        self.update("generators", loss)
        with self.autocast():
            real_logits, fake_logits = self.cat_forward(D, y, fake.detach())
            L_adv_D = adv_real(real_logits) + adv_fake(fake_logits)
        self.update("discriminators", L_adv_D)
        return {"L_id": L_id.detach(), "L_adv_G": L_adv_G.detach(), "L_adv_D": L_adv_D.detach()}
