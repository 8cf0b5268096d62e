"""CycleGAN networks of Zhu et al. (2017), the paper's benchmark (g).

* ``ResnetGenerator``: c7s1-64, d128, d256, 6 residual blocks R256, u128, u64,
  c7s1-<bands> (reflection padding, instance normalisation, ReLU), size-preserving.
* ``PatchGANDiscriminator``: the 70 x 70 PatchGAN, C64-C128-C256-C512 then a 1-channel
  convolution: one real/fake logit per overlapping patch, ``(N, 1, h, w)``.

Lin & Fouchez run them on CFHT regridded to SDSS's 64 x 64 grid.  As in Zhu et al.'s
code: instance normalisation without affine parameters, weights ~ N(0, 0.02),
biases 0.  Parameter counts for 3 bands are those of Zhu et al.'s code (11,378,179
for 9 blocks, 2,764,737 for the discriminator).
"""

from __future__ import annotations

import torch
from torch import nn

from survey2survey.errors import ModelError
from survey2survey.nets.layers import check_bands, check_input, check_size

__all__ = [
    "ResnetGenerator",
    "PatchGANDiscriminator",
    "ResnetBlock",
    "init_normal_",
    "make_output_activation",
    "OUTPUT_ACTIVATIONS",
]

#: Output activations offered by the CycleGAN-style generators.
OUTPUT_ACTIVATIONS = ("none", "tanh")


def init_normal_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Zhu et al.'s initialisation: conv / linear weights ~ N(0, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def make_output_activation(name: str, owner: str) -> nn.Module:
    """``"none"`` (identity) or ``"tanh"``.

    Zhu et al. end with tanh because their images are scaled to [-1, 1].  Our model
    space (stretched fluxes) is unbounded, with bright cores well above 1 and
    negative sky, so the default is a linear output.
    """
    if name not in OUTPUT_ACTIVATIONS:
        choices = ", ".join(OUTPUT_ACTIVATIONS)
        raise ModelError(f"{owner}: output_activation must be one of {choices}, not {name!r}")
    return nn.Tanh() if name == "tanh" else nn.Identity()


class ResnetBlock(nn.Module):
    """Residual block R<dim>: x + IN(conv3(pad(ReLU(IN(conv3(pad(x))))))), reflection padding."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            nn.InstanceNorm2d(dim),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            nn.InstanceNorm2d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """CycleGAN ResNet generator (Zhu et al. 2017), (N, bands, H, W) -> same shape.

    Parameters
    ----------
    bands : int
        Input and output channels.
    ngf : int
        Filters of the first layer (64).
    n_blocks : int
        Residual blocks (6, as used for the paper's benchmark (g)).
    output_activation : {"none", "tanh"}
        See ``make_output_activation``; "none" suits unbounded stretched fluxes.

    Notes
    -----
    H and W must be multiples of 4 (two stride-2 down-samplings and two transposed
    convolutions back).
    """

    def __init__(self, bands: int = 5, ngf: int = 64, n_blocks: int = 6, output_activation: str = "none"):
        super().__init__()
        bands = check_bands(bands, "ResnetGenerator")
        ngf = check_size(ngf, "ResnetGenerator", "ngf")
        n_blocks = check_size(n_blocks, "ResnetGenerator", "n_blocks", minimum=0)
        self.init_kwargs = {
            "bands": bands,
            "ngf": ngf,
            "n_blocks": n_blocks,
            "output_activation": output_activation,
        }
        self.bands = bands
        final = make_output_activation(output_activation, "ResnetGenerator")
        self.stem = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(bands, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(inplace=True)
        )
        self.down = nn.Sequential(
            nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1),
            nn.InstanceNorm2d(2 * ngf), nn.ReLU(inplace=True),
            nn.Conv2d(2 * ngf, 4 * ngf, 3, stride=2, padding=1),
            nn.InstanceNorm2d(4 * ngf), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.blocks = nn.Sequential(*[ResnetBlock(4 * ngf) for _ in range(n_blocks)])
        self.up = nn.Sequential(
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 3, stride=2, padding=1, output_padding=1),
            nn.InstanceNorm2d(2 * ngf), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * ngf, ngf, 3, stride=2, padding=1, output_padding=1),
            nn.InstanceNorm2d(ngf), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, bands, 7), final)
        init_normal_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (N, bands, H, W) -> (N, bands, H, W)."""
        check_input(x, "ResnetGenerator", self.bands)
        if x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ModelError(
                f"ResnetGenerator needs height and width divisible by 4, got {tuple(x.shape[-2:])}"
            )
        h = self.down(self.stem(x))  # (N, 4 ngf, H/4, W/4)
        h = self.up(self.blocks(h))  # (N, ngf, H, W)
        return self.head(h)  # (N, bands, H, W)


class PatchGANDiscriminator(nn.Module):
    """PatchGAN discriminator (Zhu et al. 2017): (N, bands, H, W) -> (N, 1, h, w) logits.

    For ``n_layers=3``: conv4 s2 n64, LeakyReLU; conv4 s2 n128, IN, LeakyReLU; conv4 s2
    n256, IN, LeakyReLU; conv4 s1 n512, IN, LeakyReLU; conv4 s1 n1.  A 64 x 64 input
    gives 6 x 6 patch logits (each patch sees 70 x 70 pixels).

    Parameters
    ----------
    bands : int
        Input channels.
    ndf : int
        Filters of the first layer (64).
    n_layers : int
        Stride-2 layers (3).
    """

    def __init__(self, bands: int = 5, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        bands = check_bands(bands, "PatchGANDiscriminator")
        ndf = check_size(ndf, "PatchGANDiscriminator", "ndf")
        n_layers = check_size(n_layers, "PatchGANDiscriminator", "n_layers")
        self.init_kwargs = {"bands": bands, "ndf": ndf, "n_layers": n_layers}
        self.bands = bands
        layers: list[nn.Module] = [
            nn.Conv2d(bands, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last of these keeps the size (70 x 70 receptive field)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1),
                nn.InstanceNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_normal_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch logits (N, 1, h, w) for ``x`` (N, bands, H, W)."""
        check_input(x, "PatchGANDiscriminator", self.bands)
        return self.model(x)
