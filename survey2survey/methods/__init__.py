"""Training methods: the paper's model, its ablation and the Survey2Survey baseline.

One method is one file with one :class:`~survey2survey.methods.base.TrainingMethod`
subclass; adding a method means adding a file and one entry in :data:`METHODS`, from
which ``s2s train --help``, docs/cli.md and the ``--method`` check are derived.

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
ours-phys                  ours with generators on the physics, G = P + R         ours_phys.py
=========================  ====================================================  ==============

Importing this package is cheap (no torch); :func:`get_method` imports the method's file.
``tests/test_train.py`` checks that each entry names a class of that name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from survey2survey.errors import UsageError

__all__ = ["MethodInfo", "METHODS", "method_names", "method_help", "get_method"]


@dataclass(frozen=True)
class MethodInfo:
    """Registry entry: where a method lives, and how the CLI help names it.

    Attributes
    ----------
    name : str
        ``s2s train --method NAME`` (the class's ``name``).
    target : str
        ``"module:Class"`` under ``survey2survey.methods``.
    letter : str
        The paper's ablation letter (``"a"`` to ``"h"``), or ``""``.
    note : str
        A few words for the help when the letter does not say it.
    """

    name: str
    target: str
    letter: str = ""
    note: str = ""


#: Every method, in the paper's order.
METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo("ours", "ours:Ours", note="the paper's two-step model; --step 1|2 runs one step"),
        MethodInfo("pix2pix", "pix2pix:AdaptedPix2Pix", "a"),
        MethodInfo("cyclegan-adapted", "cyclegan_adapted:AdaptedCycleGAN", "b"),
        MethodInfo("cyclegan-adapted-pid", "cyclegan_adapted:AdaptedCycleGANPID", "c"),
        MethodInfo("cyclegan-adapted-id", "cyclegan_adapted:AdaptedCycleGANID", "d"),
        MethodInfo("cyclegan-adapted-id-ps", "cyclegan_adapted:AdaptedCycleGANIDPS", "e"),
        MethodInfo("ours-noauto", "ours_noauto:OursNoAuto", "f"),
        MethodInfo("cyclegan", "cyclegan:CycleGAN", "g"),
        MethodInfo("augcgan", "augcgan:AugCGAN", "h"),
        MethodInfo("aecnn", "aecnn:AECNNMethod"),
        MethodInfo("ours-phys", "ours_phys:OursPhys", note="ours on the physics translation, G = P + R; --step 1|2"),
    )
}


def method_names() -> list[str]:
    """Every registered method name, in the paper's order."""
    return list(METHODS)


def method_help() -> str:
    """``ours (the paper's ...), pix2pix (a), ...``: the method list of the CLI help."""
    parts = []
    for m in METHODS.values():
        tag = m.note or m.letter
        parts.append(f"{m.name} ({tag})" if tag else m.name)
    return ", ".join(parts)


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
    module, cls = METHODS[key].target.split(":")
    return getattr(importlib.import_module(f"survey2survey.methods.{module}"), cls)
