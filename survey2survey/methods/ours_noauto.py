"""(f) Ours without autoencoders, in one step (Lin & Fouchez 2021, section IV-B; README 8).

The generators, noise emulators and discriminators of the paper's model trained
together.  "Only the content losses are used to update the Generators (i.e., the
adversarial loss is applied to the Noise Emulators rather than the Generators, similar
to the training step one for our model)".  Each iteration:

1. generators: L_id + L_cyc as in step 2 of ``ours`` (Eq. 4-5), F = G + NE with NE
   held fixed;
2. discriminators: real unpaired images against F(other) = G(other) + NE (Eq. 2 with
   G in the place of A), G and NE held fixed;
3. noise emulators: fool the updated discriminators (Eq. 3), G held fixed.

Content losses are not multiplied by 1,000 here: they and the adversarial loss update
different networks.  Steps 2 and 3 reuse this iteration's generator output (detached),
as ``ours`` step 1 does with the autoencoders.
"""

from __future__ import annotations

import torch

from survey2survey.methods.base import TrainingMethod, adv_fake, adv_real, mse
from survey2survey.nets import Discriminator, NoiseEmulator, build_generator

__all__ = ["OursNoAuto"]


class OursNoAuto(TrainingMethod):
    """Method (f): G, NE and D of the paper's model in one step, no autoencoders."""

    name = "ours-noauto"

    def build(self) -> None:
        a, b, c = self.a, self.b, self.bands
        self.add(self.G(a, b), build_generator(self.size[a], self.size[b], bands=c), "generators")
        self.add(self.G(b, a), build_generator(self.size[b], self.size[a], bands=c), "generators")
        for d in (a, b):
            self.add(self.D(d), Discriminator(bands=c), "discriminators")
        for d in (a, b):
            self.add(self.NE(d), NoiseEmulator(bands=c), "noise_emulators")

    def saved_modules(self) -> list[str]:
        a, b = self.a, self.b
        return [self.G(a, b), self.G(b, a), self.NE(a), self.NE(b)]

    def directions(self) -> dict:
        return self.two_way_directions(noise=True)

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        a, b = self.a, self.b
        G_ab, G_ba = self.G(a, b), self.G(b, a)
        x = {a: batch.a, b: batch.b}

        # 1. generators: content losses only (Eq. 4-5), NE fixed
        with self.autocast():
            id_b, fake_b = self.cat_forward(G_ab, batch.pair_a, batch.a)
            id_a, fake_a = self.cat_forward(G_ba, batch.pair_b, batch.b)
            L_id = mse(id_b, batch.pair_b) + mse(id_a, batch.pair_a)
            with torch.no_grad():
                noise_b, noise_a = self.noise(b, batch.a.shape[0]), self.noise(a, batch.b.shape[0])
            L_cyc = mse(self.fn[G_ba](fake_b + noise_b), batch.a) + mse(self.fn[G_ab](fake_a + noise_a), batch.b)
        self.update("generators", L_id + L_cyc)
        clean = {b: fake_b.detach(), a: fake_a.detach()}  # non-noise translations, G fixed

        # 2. discriminators: real x against G(other) + NE (both fixed)
        with self.autocast():
            L_adv_D = 0.0
            for d in (a, b):
                with torch.no_grad():
                    fake = clean[d] + self.noise(d, clean[d].shape[0])
                real_logits, fake_logits = self.cat_forward(self.D(d), x[d], fake)
                L_adv_D = L_adv_D + adv_real(real_logits) + adv_fake(fake_logits)
        self.update("discriminators", L_adv_D)

        # 3. noise emulators: fool the updated discriminators
        with self.autocast(), self.frozen(self.D(a), self.D(b)):
            L_adv_NE = 0.0
            for d in (a, b):
                L_adv_NE = L_adv_NE + adv_real(self.fn[self.D(d)](clean[d] + self.noise(d, clean[d].shape[0])))
        self.update("noise_emulators", L_adv_NE)
        return {"L_id": L_id.detach(), "L_cyc": L_cyc.detach(), "L_adv_D": L_adv_D.detach(), "L_adv_NE": L_adv_NE.detach()}
