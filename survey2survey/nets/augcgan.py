"""Augmented CycleGAN networks (Almahairi et al. 2018), the paper's benchmark (h).

Augmented CycleGAN makes the translation stochastic: a generator A -> B also takes a
latent code z_b (32-d), injected through conditional instance normalisation; a latent
encoder recovers z_a from a pair (x_a, x_b), and a latent discriminator makes the
encoded codes look like draws from N(0, 1).

We follow the variant in Lin & Fouchez's code, built on the CycleGAN ResNet
generator: every instance normalisation of the generator is conditional, with a
scale ``softplus(Linear(z))`` and a shift ``Linear(z)``; the latent encoder is
deterministic (five stride-2 convolutions, a 1x1 convolution to the code, a global
average).  Weights ~ N(0, 0.02), biases 0 (Zhu et al.'s initialisation), except the
scale bias of each conditional normalisation, set so that the scale starts at 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from survey2survey.errors import ModelError
from survey2survey.nets.cyclegan import init_normal_, make_output_activation
from survey2survey.nets.layers import check_bands, check_input, check_size

__all__ = ["CondInstanceNorm", "AugCGANGenerator", "LatentEncoder", "LatentDiscriminator"]

#: softplus(_SCALE_BIAS) = 1: the conditional scale starts at the identity.
_SCALE_BIAS = math.log(math.e - 1.0)


class CondInstanceNorm(nn.Module):
    """Conditional instance normalisation: ``IN(x) * softplus(W_s z + b_s) + (W_t z + b_t)``.

    x ``(N, channels, H, W)``, z ``(N, latent_dim)``; same shape out.
    """

    def __init__(self, channels: int, latent_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels)
        self.scale = nn.Linear(latent_dim, channels)
        self.shift = nn.Linear(latent_dim, channels)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        scale = F.softplus(self.scale(z))[:, :, None, None]  # (N, C, 1, 1) > 0
        return self.norm(x) * scale + self.shift(z)[:, :, None, None]


class _CINConv(nn.Module):
    """conv -> conditional IN -> optional ReLU (one layer of the generator)."""

    def __init__(self, conv: nn.Module, channels: int, latent_dim: int, relu: bool = True, pad: int = 0):
        super().__init__()
        self.pad = pad
        self.conv = conv
        self.norm = CondInstanceNorm(channels, latent_dim)
        self.relu = relu

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="reflect")
        x = self.norm(self.conv(x), z)
        return F.relu(x) if self.relu else x


class _CINResnetBlock(nn.Module):
    """Residual block with conditional instance normalisation after both convolutions."""

    def __init__(self, dim: int, latent_dim: int):
        super().__init__()
        self.first = _CINConv(nn.Conv2d(dim, dim, 3), dim, latent_dim, relu=True, pad=1)
        self.second = _CINConv(nn.Conv2d(dim, dim, 3), dim, latent_dim, relu=False, pad=1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return x + self.second(self.first(x, z), z)


class AugCGANGenerator(nn.Module):
    """Stochastic ResNet generator: forward(x (N, bands, H, W), z (N, latent_dim)) -> (N, bands, H, W).

    The CycleGAN ``ResnetGenerator`` with each instance normalisation made conditional
    on z.  H and W must be multiples of 4.

    Parameters
    ----------
    bands : int
        Input and output channels.
    latent_dim : int
        Size of the latent code z (32 in Almahairi et al. and Lin & Fouchez).
    ngf : int
        Filters of the first layer.
    n_blocks : int
        Residual blocks.
    output_activation : {"none", "tanh"}
        "none" suits unbounded stretched fluxes (see ``cyclegan.make_output_activation``).
    """

    def __init__(
        self,
        bands: int = 5,
        latent_dim: int = 32,
        ngf: int = 64,
        n_blocks: int = 6,
        output_activation: str = "none",
    ):
        super().__init__()
        bands = check_bands(bands, "AugCGANGenerator")
        latent_dim = check_size(latent_dim, "AugCGANGenerator", "latent_dim")
        ngf = check_size(ngf, "AugCGANGenerator", "ngf")
        n_blocks = check_size(n_blocks, "AugCGANGenerator", "n_blocks", minimum=0)
        self.init_kwargs = {
            "bands": bands,
            "latent_dim": latent_dim,
            "ngf": ngf,
            "n_blocks": n_blocks,
            "output_activation": output_activation,
        }
        self.bands, self.latent_dim = bands, latent_dim
        final = make_output_activation(output_activation, "AugCGANGenerator")
        d = latent_dim
        self.stem = _CINConv(nn.Conv2d(bands, ngf, 7), ngf, d, pad=3)
        self.down = nn.ModuleList(
            [
                _CINConv(nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1), 2 * ngf, d),
                _CINConv(nn.Conv2d(2 * ngf, 4 * ngf, 3, stride=2, padding=1), 4 * ngf, d),
            ]
        )
        self.blocks = nn.ModuleList([_CINResnetBlock(4 * ngf, d) for _ in range(n_blocks)])
        def up(c_in: int, c_out: int) -> nn.ConvTranspose2d:
            return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)

        self.up = nn.ModuleList([_CINConv(up(4 * ngf, 2 * ngf), 2 * ngf, d), _CINConv(up(2 * ngf, ngf), ngf, d)])
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, bands, 7), final)
        init_normal_(self)
        for m in self.modules():
            if isinstance(m, CondInstanceNorm):
                nn.init.constant_(m.scale.bias, _SCALE_BIAS)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` under latent code ``z``."""
        check_input(x, "AugCGANGenerator", self.bands)
        if x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ModelError(
                f"AugCGANGenerator needs height and width divisible by 4, got {tuple(x.shape[-2:])}"
            )
        if z.ndim != 2 or z.shape != (x.shape[0], self.latent_dim):
            raise ModelError(
                f"AugCGANGenerator: z must have shape ({x.shape[0]}, {self.latent_dim}), got {tuple(z.shape)}"
            )
        h = self.stem(x, z)  # (N, ngf, H, W)
        for layer in self.down:
            h = layer(h, z)  # -> (N, 4 ngf, H/4, W/4)
        for block in self.blocks:
            h = block(h, z)
        for layer in self.up:
            h = layer(h, z)  # -> (N, ngf, H, W)
        return self.head(h)  # (N, bands, H, W)


class LatentEncoder(nn.Module):
    """Latent encoder: forward(x_a, x_b) -> z (N, latent_dim), the code that maps x_b to x_a.

    Both images on the same grid (the paper regrids CFHT to 64 x 64), concatenated
    along channels -> five conv3 stride-2 layers (64, 128, 256, 512, 512 filters,
    LeakyReLU 0.2, instance normalisation) -> conv1x1 to ``latent_dim`` -> spatial mean.
    Needs H and W above 32 (a 64-px input ends at 2 x 2).

    Parameters
    ----------
    bands : int
        Bands of each of the two images.
    latent_dim : int
        Size of the code.
    nef : int
        Filters of the first layer (64; then x2, x4, x8, x8).
    """

    def __init__(self, bands: int = 5, latent_dim: int = 32, nef: int = 64):
        super().__init__()
        bands = check_bands(bands, "LatentEncoder")
        latent_dim = check_size(latent_dim, "LatentEncoder", "latent_dim")
        nef = check_size(nef, "LatentEncoder", "nef")
        self.init_kwargs = {"bands": bands, "latent_dim": latent_dim, "nef": nef}
        self.bands, self.latent_dim = bands, latent_dim
        widths = [2 * bands, nef, 2 * nef, 4 * nef, 8 * nef, 8 * nef]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
            layers += [conv, nn.LeakyReLU(0.2), nn.InstanceNorm2d(c_out)]
        layers.append(nn.Conv2d(widths[-1], latent_dim, 1))
        self.model = nn.Sequential(*layers)
        init_normal_(self)

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        """Code z (N, latent_dim) from x_a, x_b (N, bands, H, W) each."""
        check_input(x_a, "LatentEncoder", self.bands)
        check_input(x_b, "LatentEncoder", self.bands, tuple(x_a.shape[-2:]))
        if x_a.shape[0] != x_b.shape[0] or min(x_a.shape[-2:]) <= 32:
            raise ModelError(
                f"LatentEncoder needs two batches of the same size above 32 x 32 pixels, "
                f"got {tuple(x_a.shape)} and {tuple(x_b.shape)}"
            )
        h = self.model(torch.cat([x_a, x_b], dim=1))  # (N, latent_dim, H/32, W/32)
        return h.mean(dim=(2, 3))  # (N, latent_dim)


class LatentDiscriminator(nn.Module):
    """Latent discriminator: z (N, latent_dim) -> (N, 1) logit "drawn from N(0, 1)".

    MLP latent_dim -> 64 -> 64 -> 64 -> 1 with LeakyReLU(0.2) between layers.  (The
    paper's code also puts a LeakyReLU on the last layer; a logit should be linear.)
    """

    def __init__(self, latent_dim: int = 32, ndf: int = 64):
        super().__init__()
        latent_dim = check_size(latent_dim, "LatentDiscriminator", "latent_dim")
        ndf = check_size(ndf, "LatentDiscriminator", "ndf")
        self.init_kwargs = {"latent_dim": latent_dim, "ndf": ndf}
        self.latent_dim = latent_dim
        self.model = nn.Sequential(
            nn.Linear(latent_dim, ndf), nn.LeakyReLU(0.2),
            nn.Linear(ndf, ndf), nn.LeakyReLU(0.2),
            nn.Linear(ndf, ndf), nn.LeakyReLU(0.2),
            nn.Linear(ndf, 1),
        )  # fmt: skip
        init_normal_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logit (N, 1) for codes z (N, latent_dim)."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ModelError(
                f"LatentDiscriminator: z must have shape (N, {self.latent_dim}), got {tuple(z.shape)}"
            )
        return self.model(z)
