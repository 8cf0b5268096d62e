"""(g) CycleGAN (Zhu et al. 2017) on the regridded set (Lin & Fouchez 2021; README 9).

Two-way translation with CycleGAN's 6-residual-block generators and PatchGAN
discriminators, on b regridded onto a's grid (CFHT at 64 x 64 px), "with only the
cycle-consistency loss" (no identity loss).  The losses are the paper's common form for
baselines without noise emulators:

    generators:     1000 x L_cyc + L_adv(G),   L_cyc = |G_ba(G_ab(a)) - a|^2 + |G_ab(G_ba(b)) - b|^2
    discriminators: L_adv(D), binary cross-entropy on PatchGAN logits (mean over patches)

Zhu et al. themselves use a least-squares GAN loss and an L1 cycle loss weighted by
10; Lin & Fouchez state that every baseline without noise emulators uses the content
losses x 1,000 plus the adversarial loss, which we follow so that (g) differs from (b)
in the networks only.  Update order: generators, then discriminators.
"""

from __future__ import annotations

import torch

from survey2survey.methods.base import CONTENT_WEIGHT, TrainingMethod, adv_fake, adv_real, mse
from survey2survey.nets import PatchGANDiscriminator, ResnetGenerator

__all__ = ["CycleGAN"]


class CycleGAN(TrainingMethod):
    """Method (g): ResNet generators and PatchGAN discriminators on a's grid."""

    name = "cyclegan"
    accepted_options = ("n_blocks",)
    parts = ("unpaired",)
    regridded = True

    def build(self) -> None:
        a, b, c = self.a, self.b, self.bands
        blocks = int(self.options.get("n_blocks", 6))
        self.add(self.G(a, b), ResnetGenerator(bands=c, n_blocks=blocks), "generators")
        self.add(self.G(b, a), ResnetGenerator(bands=c, n_blocks=blocks), "generators")
        for d in (a, b):
            self.add(self.D(d), PatchGANDiscriminator(bands=c), "discriminators")

    def saved_modules(self) -> list[str]:
        return [self.G(self.a, self.b), self.G(self.b, self.a)]

    def directions(self) -> dict:
        return self.two_way_directions(noise=False)

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        a, b = self.a, self.b
        G_ab, G_ba = self.G(a, b), self.G(b, a)
        with self.autocast(), self.frozen(self.D(a), self.D(b)):
            fake_b, fake_a = self.fn[G_ab](batch.a), self.fn[G_ba](batch.b)  # (N, C, Ha, Wa) both
            L_cyc = mse(self.fn[G_ba](fake_b), batch.a) + mse(self.fn[G_ab](fake_a), batch.b)
            L_adv_G = adv_real(self.fn[self.D(b)](fake_b)) + adv_real(self.fn[self.D(a)](fake_a))
            loss = CONTENT_WEIGHT * L_cyc + L_adv_G
        self.update("generators", loss)
        with self.autocast():
            L_adv_D = 0.0
            for d, real, fake in ((a, batch.a, fake_a), (b, batch.b, fake_b)):
                # InstanceNorm works per image, so one call on real + fake is exact.
                real_logits, fake_logits = self.cat_forward(self.D(d), real, fake.detach())
                L_adv_D = L_adv_D + adv_real(real_logits) + adv_fake(fake_logits)
        self.update("discriminators", L_adv_D)
        return {"L_cyc": L_cyc.detach(), "L_adv_G": L_adv_G.detach(), "L_adv_D": L_adv_D.detach()}
