"""(h) Augmented CycleGAN (Almahairi et al. 2018) on the regridded set (README method 10).

"The semi-supervised two-way translation setting of Augmented CycleGAN ... based on the
CycleGAN architecture with the identity loss, having random seeds injected to the
Generators to enable stochastic mappings."  Networks: conditional-instance-norm ResNet
generators ``G_ab(a, z_b)``, ``G_ba(b, z_a)`` with 32-d latent codes; latent encoders
``E_a(a, b)`` -> z_a (the code under which ``G_ba`` maps b to a) and ``E_b(b, a)`` -> z_b;
PatchGAN image discriminators ``D_a``, ``D_b``; latent discriminators ``D_za``, ``D_zb``.

Per iteration, with z_a, z_b ~ N(0, I):

* generators + encoders minimise ``1000 x (L_cyc + L_cyc_z + L_id) + L_adv(G)``:

  - L_cyc: a -> b~ = G_ab(a, z_b) -> G_ba(b~, E_a(a, b~)) ~ a, and the same from b;
  - L_cyc_z: E_b(b~, a) ~ z_b and E_a(a~, b) ~ z_a (the codes are recovered);
  - L_id (pairs): G_ab(pair_a, E_b(pair_b, pair_a)) ~ pair_b and the reverse;
  - L_adv(G): b~, a~ fool D_b, D_a; the inferred codes E_a(a, b~), E_b(b, a~) fool D_za, D_zb;

* discriminators: real images against b~, a~ (detached); prior samples z against the
  inferred codes (detached).

Content losses are MSE x 1,000 and adversarial losses binary cross-entropy, the paper's
common form for baselines without noise emulators (Almahairi et al. use L1 and LSGAN).
The saved model translates a -> b with ``G_ab`` and a code z_b ~ N(0, I) drawn per image
(``"latent_dim"`` in the direction entry of config.json).
"""

from __future__ import annotations

import torch

from survey2survey.methods.base import CONTENT_WEIGHT, TrainingMethod, adv_fake, adv_real, mse
from survey2survey.nets import AugCGANGenerator, LatentDiscriminator, LatentEncoder, PatchGANDiscriminator

__all__ = ["AugCGAN"]


class AugCGAN(TrainingMethod):
    """Method (h): stochastic two-way translation with latent codes, on a's grid."""

    name = "augcgan"
    accepted_options = ("latent_dim", "n_blocks")
    regridded = True

    def E(self, domain: str) -> str:
        return f"latent_encoder_{domain}"

    def Dz(self, domain: str) -> str:
        return f"latent_discriminator_{domain}"

    def build(self) -> None:
        a, b, c = self.a, self.b, self.bands
        self.latent_dim = int(self.options.get("latent_dim", 32))
        k, blocks = self.latent_dim, int(self.options.get("n_blocks", 6))
        self.add(self.G(a, b), AugCGANGenerator(bands=c, latent_dim=k, n_blocks=blocks), "generators")
        self.add(self.G(b, a), AugCGANGenerator(bands=c, latent_dim=k, n_blocks=blocks), "generators")
        for d in (a, b):
            self.add(self.E(d), LatentEncoder(bands=c, latent_dim=k), "generators")
        for d in (a, b):
            self.add(self.D(d), PatchGANDiscriminator(bands=c), "discriminators")
        for d in (a, b):
            self.add(self.Dz(d), LatentDiscriminator(latent_dim=k), "discriminators")

    def saved_modules(self) -> list[str]:
        a, b = self.a, self.b
        return [self.G(a, b), self.G(b, a), self.E(a), self.E(b)]

    def directions(self) -> dict:
        return self.two_way_directions(noise=False, latent_dim=self.latent_dim)

    def _z(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self.device)  # (n, latent_dim)

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        a, b = self.a, self.b
        f = self.fn
        G_ab, G_ba, E_a, E_b = self.G(a, b), self.G(b, a), self.E(a), self.E(b)
        xa, xb, pa, pb = batch.a, batch.b, batch.pair_a, batch.pair_b
        z_a, z_b = self._z(xb.shape[0]), self._z(xa.shape[0])
        with self.autocast(), self.frozen(self.D(a), self.D(b), self.Dz(a), self.Dz(b)):
            fake_b = f[G_ab](xa, z_b)  # a -> b~ under z_b, (N, C, H, W)
            fake_a = f[G_ba](xb, z_a)
            code_a = f[E_a](xa, fake_b)  # the code that maps b~ back to a
            code_b = f[E_b](xb, fake_a)
            L_cyc = mse(f[G_ba](fake_b, code_a), xa) + mse(f[G_ab](fake_a, code_b), xb)
            L_cyc_z = mse(f[E_b](fake_b, xa), z_b) + mse(f[E_a](fake_a, xb), z_a)
            L_id = mse(f[G_ab](pa, f[E_b](pb, pa)), pb) + mse(f[G_ba](pb, f[E_a](pa, pb)), pa)
            L_adv_G = (
                adv_real(f[self.D(b)](fake_b)) + adv_real(f[self.D(a)](fake_a))
                + adv_real(f[self.Dz(a)](code_a)) + adv_real(f[self.Dz(b)](code_b))
            )  # fmt: skip
            loss = CONTENT_WEIGHT * (L_cyc + L_cyc_z + L_id) + L_adv_G
        self.update("generators", loss)
        with self.autocast():
            L_adv_D = 0.0
            for d, real, fake in ((a, xa, fake_a), (b, xb, fake_b)):
                real_logits, fake_logits = self.cat_forward(self.D(d), real, fake.detach())
                L_adv_D = L_adv_D + adv_real(real_logits) + adv_fake(fake_logits)
            for d, code in ((a, code_a), (b, code_b)):
                prior_logits, code_logits = self.cat_forward(self.Dz(d), self._z(code.shape[0]), code.detach())
                L_adv_D = L_adv_D + adv_real(prior_logits) + adv_fake(code_logits)
        self.update("discriminators", L_adv_D)
        return {
            "L_cyc": L_cyc.detach(),
            "L_cyc_z": L_cyc_z.detach(),
            "L_id": L_id.detach(),
            "L_adv_G": L_adv_G.detach(),
            "L_adv_D": L_adv_D.detach(),
        }
