"""(b)-(e) Adapted CycleGAN and its variants (Lin & Fouchez 2021, section IV-B; README 4-7).

Two-way translation with the paper's generators and discriminators, without
autoencoders or noise emulators, like CycleGAN (Zhu et al. 2017).  The generators
minimise ``1000 x (content losses) + L_adv(G)``; the discriminators see real unpaired
images against the generators' output.

=======================  ===============================================  ==============
method                   content losses                                    up-sampling
=======================  ===============================================  ==============
cyclegan-adapted (b)     L_cyc                                             nearest
cyclegan-adapted-pid (c) L_cyc + L_pseudo-id                               nearest
cyclegan-adapted-id (d)  L_cyc + L_id                                      nearest
cyclegan-adapted-id-ps   L_cyc + L_id                                      pixel shuffle
(e)
=======================  ===============================================  ==============

    L_cyc       = |G_ba(G_ab(a)) - a|^2 + |G_ab(G_ba(b)) - b|^2     (Eq. 5 without NE)
    L_id        = |G_ab(pair_a) - pair_b|^2 + |G_ba(pair_b) - pair_a|^2           (Eq. 4)
    L_pseudo-id = |G_ab(a) - R_b(a)|^2 + |G_ba(b) - R_a(b)|^2                     (Eq. 6)

where R_d bilinearly resizes to domain d's grid and rescales by the ratio of the pixel
scales (``flux_preserving_resize``): Eq. 6 (Lin & Fouchez 2021, section IV-B) compares
images of two grids without saying how; that is our reading.  Update order: generators, then discriminators (on this
iteration's generator output, detached).
"""

from __future__ import annotations

import torch

from survey2survey.methods.base import (
    CONTENT_WEIGHT,
    TrainingMethod,
    adv_fake,
    adv_real,
    flux_preserving_resize,
    mse,
)
from survey2survey.nets import Discriminator, build_generator

__all__ = ["AdaptedCycleGAN", "AdaptedCycleGANPID", "AdaptedCycleGANID", "AdaptedCycleGANIDPS"]


class AdaptedCycleGAN(TrainingMethod):
    """Method (b); the class attributes switch on the variants (c), (d), (e)."""

    name = "cyclegan-adapted"
    pseudo_identity = False
    identity = False
    upsample = "nearest"

    @property
    def parts(self):  # noqa: D401 - pairs only when the identity loss needs them
        return ("unpaired", "paired") if self.identity else ("unpaired",)

    def build(self) -> None:
        a, b, c = self.a, self.b, self.bands
        self.add(self.G(a, b), build_generator(self.size[a], self.size[b], bands=c, upsample=self.upsample), "generators")
        self.add(self.G(b, a), build_generator(self.size[b], self.size[a], bands=c, upsample=self.upsample), "generators")
        for d in (a, b):
            self.add(self.D(d), Discriminator(bands=c), "discriminators")

    def saved_modules(self) -> list[str]:
        return [self.G(self.a, self.b), self.G(self.b, self.a)]

    def directions(self) -> dict:
        return self.two_way_directions(noise=False)

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        a, b = self.a, self.b
        G_ab, G_ba = self.G(a, b), self.G(b, a)
        x = {a: batch.a, b: batch.b}
        out: dict[str, torch.Tensor] = {}
        with self.autocast(), self.frozen(self.D(a), self.D(b)):
            if self.identity:
                fake_b, id_b = self.cat_forward(G_ab, batch.a, batch.pair_a)  # (N, C, Hb, Wb) each
                fake_a, id_a = self.cat_forward(G_ba, batch.b, batch.pair_b)
                out["L_id"] = mse(id_b, batch.pair_b) + mse(id_a, batch.pair_a)
            else:
                fake_b, fake_a = self.fn[G_ab](batch.a), self.fn[G_ba](batch.b)
            fake = {b: fake_b, a: fake_a}
            out["L_cyc"] = mse(self.fn[G_ba](fake_b), batch.a) + mse(self.fn[G_ab](fake_a), batch.b)
            if self.pseudo_identity:
                out["L_pid"] = sum(
                    mse(fake[dst], flux_preserving_resize(
                        x[src], (self.size[dst],) * 2, self.pixel_scale[src], self.pixel_scale[dst]))
                    for src, dst in ((a, b), (b, a))
                )  # fmt: skip
            content = sum(out.values())
            out["L_adv_G"] = adv_real(self.fn[self.D(b)](fake_b)) + adv_real(self.fn[self.D(a)](fake_a))
            loss = CONTENT_WEIGHT * content + out["L_adv_G"]
        self.update("generators", loss)
        with self.autocast():
            L_adv_D = 0.0
            for d in (a, b):
                real_logits, fake_logits = self.cat_forward(self.D(d), x[d], fake[d].detach())
                L_adv_D = L_adv_D + adv_real(real_logits) + adv_fake(fake_logits)
        self.update("discriminators", L_adv_D)
        out["L_adv_D"] = L_adv_D
        return {k: v.detach() for k, v in out.items()}


class AdaptedCycleGANPID(AdaptedCycleGAN):
    """Method (c): (b) + the pseudo-identity loss (Eq. 6)."""

    name = "cyclegan-adapted-pid"
    pseudo_identity = True


class AdaptedCycleGANID(AdaptedCycleGAN):
    """Method (d): (b) + the identity loss on pairs (Eq. 4)."""

    name = "cyclegan-adapted-id"
    identity = True


class AdaptedCycleGANIDPS(AdaptedCycleGANID):
    """Method (e): (d) with pixel-shuffle up-sampling in the generators."""

    name = "cyclegan-adapted-id-ps"
    upsample = "pixelshuffle"
