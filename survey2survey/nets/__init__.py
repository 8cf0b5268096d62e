"""Neural networks of survey2survey, one concept per module.

The networks of Lin & Fouchez (2021), Fig. 2 (faithful PyTorch port of their
TensorFlow code; see ``docs/dev/CONTRACTS.md`` and the module docstrings):

* ``Autoencoder`` -- A_X, A_Y (Fig. 2a);
* ``GeneratorUp`` / ``GeneratorDown`` -- Generator 1 and 2 (Fig. 2b, 2c), with the
  factories ``generator_sdss_to_cfht``, ``generator_cfht_to_sdss``, ``build_generator``;
* ``NoiseEmulator`` -- NE_X, NE_Y (Fig. 2e, 2f);
* ``Discriminator`` -- D_X, D_Y, one sub-discriminator per band (Fig. 2d, 2g).

Benchmarks of the paper's ablation and of Survey2Survey (Buncher et al. 2021):
``ResnetGenerator``, ``PatchGANDiscriminator`` (CycleGAN), ``AugCGANGenerator``,
``LatentEncoder``, ``LatentDiscriminator`` (Augmented CycleGAN), ``AECNN``.

Generators on the physics translation (G = P + R, ``ours-phys``):
``PhysicsResidualGenerator`` (:mod:`survey2survey.nets.residual`).

Every network stores its constructor keywords in ``init_kwargs`` (JSON-able) and is
listed in ``NETWORKS``, so ``NETWORKS[name](**init_kwargs)`` rebuilds it; this is how
``survey2survey.model`` saves and loads models.
"""

from __future__ import annotations

from torch import nn

from survey2survey.nets.aecnn import AECNN
from survey2survey.nets.augcgan import AugCGANGenerator, LatentDiscriminator, LatentEncoder
from survey2survey.nets.autoencoder import Autoencoder
from survey2survey.nets.cyclegan import PatchGANDiscriminator, ResnetGenerator
from survey2survey.nets.discriminator import Discriminator
from survey2survey.nets.generators import (
    GeneratorDown,
    GeneratorUp,
    build_generator,
    generator_cfht_to_sdss,
    generator_sdss_to_cfht,
)
from survey2survey.nets.noise_emulator import NoiseEmulator
from survey2survey.nets.residual import PhysicsResidualGenerator

__all__ = [
    "NETWORKS",
    "count_parameters",
    "Autoencoder",
    "GeneratorUp",
    "GeneratorDown",
    "generator_sdss_to_cfht",
    "generator_cfht_to_sdss",
    "build_generator",
    "NoiseEmulator",
    "Discriminator",
    "ResnetGenerator",
    "PatchGANDiscriminator",
    "AugCGANGenerator",
    "LatentEncoder",
    "LatentDiscriminator",
    "AECNN",
    "PhysicsResidualGenerator",
]

#: Class name -> class, for every network that can be saved and rebuilt.
NETWORKS: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (
        Autoencoder,
        GeneratorUp,
        GeneratorDown,
        NoiseEmulator,
        Discriminator,
        ResnetGenerator,
        PatchGANDiscriminator,
        AugCGANGenerator,
        LatentEncoder,
        LatentDiscriminator,
        AECNN,
        PhysicsResidualGenerator,
    )
}


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters (trainable or not) of ``module``."""
    return sum(p.numel() for p in module.parameters())
