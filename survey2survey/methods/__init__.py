"""Training methods: the paper's model, its ablation and the Survey2Survey baseline.

One method is one file with one :class:`~survey2survey.methods.base.TrainingMethod`
subclass; adding a method means adding a file and one line in :data:`METHODS`.

=========================  ====================================================  ==============
name                       what (Lin & Fouchez 2021 ablation letter)             file
=========================  ====================================================  ==============
ours                       two-step model: step 1 A + NE + D, step 2 G (+ NE)    ours.py
pix2pix                    (a) one way, identity loss, our G and D               pix2pix.py
cyclegan-adapted           (b) two way, cycle loss, our G and D                  cyclegan_adapted.py
cyclegan-adapted-pid       (c) (b) + pseudo-identity loss                        cyclegan_adapted.py
cyclegan-adapted-id        (d) (b) + identity loss                               cyclegan_adapted.py
cyclegan-adapted-id-ps     (e) (d) with pixel-shuffle up-sampling                cyclegan_adapted.py
ours-noauto                (f) ours in one step, without autoencoders            ours_noauto.py
cyclegan                   (g) Zhu et al. CycleGAN, regridded set                cyclegan.py
augcgan                    (h) Augmented CycleGAN, regridded set                 augcgan.py
aecnn                      Survey2Survey's paired autoencoder (Buncher 2021)     aecnn.py
=========================  ====================================================  ==============

Importing this package is cheap (no torch); :func:`get_method` imports the method's file.
"""

from __future__ import annotations

import importlib

from survey2survey.errors import UsageError

__all__ = ["METHODS", "method_names", "get_method"]

#: Method name -> "module:Class" under survey2survey.methods.
METHODS: dict[str, str] = {
    "ours": "ours:Ours",
    "pix2pix": "pix2pix:AdaptedPix2Pix",
    "cyclegan-adapted": "cyclegan_adapted:AdaptedCycleGAN",
    "cyclegan-adapted-pid": "cyclegan_adapted:AdaptedCycleGANPID",
    "cyclegan-adapted-id": "cyclegan_adapted:AdaptedCycleGANID",
    "cyclegan-adapted-id-ps": "cyclegan_adapted:AdaptedCycleGANIDPS",
    "ours-noauto": "ours_noauto:OursNoAuto",
    "cyclegan": "cyclegan:CycleGAN",
    "augcgan": "augcgan:AugCGAN",
    "aecnn": "aecnn:AECNNMethod",
}


def method_names() -> list[str]:
    """Every registered method name, in the paper's order."""
    return list(METHODS)


def get_method(name: str):
    """The :class:`~survey2survey.methods.base.TrainingMethod` subclass called ``name``.

    Raises
    ------
    UsageError
        Unknown name (the message lists the known ones).
    """
    key = str(name).strip().lower()
    if key not in METHODS:
        raise UsageError(f"unknown method {name!r} (known: {', '.join(METHODS)})")
    module, cls = METHODS[key].split(":")
    return getattr(importlib.import_module(f"survey2survey.methods.{module}"), cls)
