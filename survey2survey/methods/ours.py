"""Lin & Fouchez (2021)'s two-step model (code README methods 1 and 2).

Step 1 -- noise emulators (paper Fig. 1, Eq. 1-3).  Per domain an autoencoder A learns the
non-noise image; a noise emulator NE learns the noise, adversarially against a
discriminator D that sees real images x and F(x) = A(x) + NE(z1, z2).  Each iteration:

1. update A with L_auto = |A_a(a) - a|^2 + |A_b(b) - b|^2                      (Eq. 1)
2. update D with L_adv(D) = -log D(x) - log(1 - D(F(x))), A and NE held fixed   (Eq. 2)
3. update NE with L_adv(NE) = -log D(F(x)), A and D held fixed                 (Eq. 3)

Step 2 -- generators (Eq. 4-5).  The autoencoders and discriminators are dropped, the
noise emulators frozen; F_{a->b} = G_{a->b} + NE_b.  The generators minimise

    L_id  = |G_ab(pair_a) - pair_b|^2 + |G_ba(pair_b) - pair_a|^2               (Eq. 4)
    L_cyc = |G_ba(F_ab(a)) - a|^2 + |G_ab(F_ba(b)) - b|^2                       (Eq. 5)

with no adversarial loss.  The model translates both ways with G + NE.
"""

from __future__ import annotations

import torch

from survey2survey.methods.base import TrainingMethod, adv_fake, adv_real, mse
from survey2survey.nets import Autoencoder, Discriminator, NoiseEmulator, build_generator

__all__ = ["Ours"]


class Ours(TrainingMethod):
    """The paper's model; ``step`` 1 (A, NE, D) or 2 (G with frozen NE).

    Notes
    -----
    Step 1 uses the unpaired images only (Eq. 1-3 are over x ~ X, y ~ Y).  The
    discriminator and noise-emulator updates reuse this iteration's autoencoder output
    (detached) instead of running the just-updated autoencoder again: one forward pass
    saved; the difference from re-running it is one Adam step of A.
    """

    name = "ours"
    steps = (1, 2)

    @property
    def parts(self):  # noqa: D401 - the mini-batch parts depend on the step
        return ("unpaired",) if self.step == 1 else ("unpaired", "paired")

    def build(self) -> None:
        a, b, c = self.a, self.b, self.bands
        if self.step == 1:
            for d in (a, b):
                self.add(self.A(d), Autoencoder(bands=c), "autoencoders")
            for d in (a, b):
                self.add(self.D(d), Discriminator(bands=c), "discriminators")
            for d in (a, b):
                self.add(self.NE(d), self.new_noise_emulator(d), "noise_emulators")
        elif self.step == 2:
            self.add(self.G(a, b), build_generator(self.size[a], self.size[b], bands=c), "generators")
            self.add(self.G(b, a), build_generator(self.size[b], self.size[a], bands=c), "generators")
            for d in (a, b):
                self.add(self.NE(d), NoiseEmulator(bands=c), None)  # frozen: trained in step 1
        else:
            raise ValueError(f"{self.name} has steps 1 and 2, not {self.step!r}")

    def new_noise_emulator(self, domain: str):
        """A freshly initialised noise emulator of ``domain`` (the paper's: Glorot-random kernel)."""
        return NoiseEmulator(bands=self.bands)

    def init_modules(self) -> list[str]:
        return [self.NE(self.a), self.NE(self.b)] if self.step == 2 else []

    def saved_modules(self) -> list[str]:
        if self.step == 1:
            # F = A + NE is the step-1 self-mapping of each survey; the discriminators
            # are only needed to go on training (they stay in the checkpoints).
            return [self.A(self.a), self.A(self.b), self.NE(self.a), self.NE(self.b)]
        return [self.G(self.a, self.b), self.G(self.b, self.a), self.NE(self.a), self.NE(self.b)]

    def directions(self) -> dict:
        a, b = self.a, self.b
        if self.step == 1:
            return {
                f"{a}->{a}": {"generator": self.A(a), "noise_emulator": self.NE(a)},
                f"{b}->{b}": {"generator": self.A(b), "noise_emulator": self.NE(b)},
            }
        return self.two_way_directions(noise=True)

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        return self._step1(batch) if self.step == 1 else self._step2(batch)

    # -- step 1 ----------------------------------------------------------------------------

    def _step1(self, batch) -> dict[str, torch.Tensor]:
        a, b = self.a, self.b
        x = {a: batch.a, b: batch.b}  # (N, C, Ha, Wa), (N, C, Hb, Wb)

        # (i) autoencoders, Eq. 1
        with self.autocast():
            clean = {d: self.fn[self.A(d)](x[d]) for d in (a, b)}  # non-noise images
            L_auto = mse(clean[a], x[a]) + mse(clean[b], x[b])
        self.update("autoencoders", L_auto)
        clean = {d: clean[d].detach() for d in (a, b)}  # A held fixed from here on

        # (ii) discriminators, Eq. 2: real x against F(x) = A(x) + NE (NE held fixed)
        with self.autocast():
            L_adv_D = 0.0
            for d in (a, b):
                with torch.no_grad():
                    fake = clean[d] + self.noise(d, x[d].shape[0])
                real_logits, fake_logits = self.cat_forward(self.D(d), x[d], fake)  # (N, C) each
                L_adv_D = L_adv_D + adv_real(real_logits) + adv_fake(fake_logits)
        self.update("discriminators", L_adv_D)

        # (iii) noise emulators, Eq. 3: fool the updated discriminators (fresh seeds)
        with self.autocast(), self.frozen(self.D(a), self.D(b)):
            L_adv_NE = 0.0
            for d in (a, b):
                fake = clean[d] + self.noise(d, x[d].shape[0])
                L_adv_NE = L_adv_NE + adv_real(self.fn[self.D(d)](fake))
        self.update("noise_emulators", L_adv_NE)
        return {"L_auto": L_auto.detach(), "L_adv_D": L_adv_D.detach(), "L_adv_NE": L_adv_NE.detach()}

    # -- step 2 ----------------------------------------------------------------------------

    def content(self, pred: torch.Tensor, target: torch.Tensor, domain: str) -> torch.Tensor:
        """A content loss against an image of ``domain``: the paper's mean squared error."""
        return mse(pred, target)

    def identity(self, pred: torch.Tensor, target: torch.Tensor, domain: str) -> torch.Tensor:
        """The identity loss of Eq. 4 against the pairs of ``domain``: :meth:`content` (the paper's)."""
        return self.content(pred, target, domain)

    def cycle_input(self, translated: torch.Tensor) -> torch.Tensor:
        """G(x) as the cycle of Eq. 5 takes it: as it is, so L_cyc trains both generators (the paper's)."""
        return translated

    def _step2(self, batch) -> dict[str, torch.Tensor]:
        a, b = self.a, self.b
        G_ab, G_ba = self.G(a, b), self.G(b, a)
        with self.autocast():
            # One generator call on pairs + unpaired images together: (Np + Nu, C, H, W).
            id_b, cyc_b = self.cat_forward(G_ab, batch.pair_a, batch.a)  # on b's grid
            id_a, cyc_a = self.cat_forward(G_ba, batch.pair_b, batch.b)  # on a's grid
            L_id = self.identity(id_b, batch.pair_b, b) + self.identity(id_a, batch.pair_a, a)  # Eq. 4
            with torch.no_grad():
                noise_b = self.noise(b, batch.a.shape[0])
                noise_a = self.noise(a, batch.b.shape[0])
            # F_ab(a) = G_ab(a) + NE_b; back with G_ba; Eq. 5
            L_cyc = (self.content(self.fn[G_ba](self.cycle_input(cyc_b) + noise_b), batch.a, a)
                     + self.content(self.fn[G_ab](self.cycle_input(cyc_a) + noise_a), batch.b, b))
            loss = L_id + L_cyc
        self.update("generators", loss)
        return {"L_id": L_id.detach(), "L_cyc": L_cyc.detach()}
