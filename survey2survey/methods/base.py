"""The interface every training method implements, and the plumbing they share.

A method (one file per method, ``survey2survey/methods/<name>.py``) is a subclass of
:class:`TrainingMethod` that

* builds its networks in :meth:`~TrainingMethod.build` with :meth:`~TrainingMethod.add`,
  naming each one after the paper (``generator_sdss_to_cfht``, ``noise_emulator_cfht``)
  and putting it in an optimiser group (``"generators"``) or in none (frozen);
* runs one training iteration in :meth:`~TrainingMethod.train_step`: forward passes under
  :meth:`~TrainingMethod.autocast`, then :meth:`~TrainingMethod.update` per optimiser
  group in the paper's order; it returns a dict of 0-d loss tensors, *detached and never
  ``.item()``-ed* (the loop syncs with the GPU only every ``log_every`` iterations);
* says what it saves (:meth:`~TrainingMethod.saved_modules`) and which directions it translates
  (:meth:`~TrainingMethod.directions`).

The training loop (``survey2survey.train``) owns the data, the device, checkpoints and
logs; a method only knows its networks and losses.

Shared losses (paper Eq. 1-6): content losses are mean squared errors over pixels, bands
and batch (:func:`mse`); adversarial losses are binary cross-entropies on logits summed
over the sub-discriminator logits of an image and averaged over images
(:func:`adv_real`, :func:`adv_fake`).
"""

from __future__ import annotations

import abc

import contextlib
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from survey2survey.errors import UsageError
from survey2survey.surveys import Survey

__all__ = [
    "TrainingMethod",
    "mse",
    "adv_real",
    "adv_fake",
    "flux_preserving_resize",
    "CONTENT_WEIGHT",
]

#: The paper's weight of the content losses against the adversarial loss in the
#: baselines without noise emulators (section IV-B: "multiplied by 1,000").
CONTENT_WEIGHT = 1000.0


# --- losses ------------------------------------------------------------------------------


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element, computed in float32 (0-d tensor)."""
    return F.mse_loss(x.float(), y.float())


def _per_image(values: torch.Tensor) -> torch.Tensor:
    """Sum over dim 1 (the band logits of the sub-discriminators; PatchGAN's single
    channel), mean over the batch and any patch dimensions."""
    return values.sum(dim=1).mean()


def adv_real(logits: torch.Tensor) -> torch.Tensor:
    """-log D(x): binary cross-entropy against "real", from logits ``(N, C[, h, w])``.

    ``softplus(-l) = -log(sigmoid(l))``, numerically stable.
    """
    return _per_image(F.softplus(-logits.float()))


def adv_fake(logits: torch.Tensor) -> torch.Tensor:
    """-log(1 - D(x)): binary cross-entropy against "fake", from logits."""
    return _per_image(F.softplus(logits.float()))


def flux_preserving_resize(x: torch.Tensor, size: tuple[int, int], src_scale: float, dst_scale: float) -> torch.Tensor:
    """Bilinear resize of model-space images to another survey's grid (pseudo-identity, (c)).

    ``(N, C, H, W)`` -> ``(N, C, *size)``, multiplied by ``dst_scale / src_scale`` (pixel
    scales in arcsec).  Flux per pixel scales with the pixel *area*, the ratio squared;
    model space is the square-root stretch of flux, so for the galaxy pixels that carry the
    flux the stretched value scales with the ratio itself (SDSS -> CFHT: x 0.396 / 0.187),
    so that the integrated rescaled flux is conserved.  Eq. 6 of Lin & Fouchez (2021,
    section IV-B) writes ``|G(x) - x|^2`` without saying how two grids are compared; this
    is our reading.
    """
    out = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return out * (dst_scale / src_scale)


# --- the method interface ------------------------------------------------------------------


class TrainingMethod(abc.ABC):
    """Base class of the training methods.

    Parameters
    ----------
    surveys : dict
        ``{"a": Survey, "b": Survey}`` of the dataset.
    step : int or None
        Training step for multi-step methods (``ours``: 1 or 2), else ``None``.
    options : dict, optional
        Method options (``direction`` for one-way methods, ...).
    regridded_size : int, optional
        For methods on the regridded set: the side of b's cutouts on a's grid.

    Attributes
    ----------
    nets : torch.nn.ModuleDict
        Every network of the method by name (trainable and frozen).
    fn : dict
        Name -> callable used in ``train_step``: the network, or its ``torch.compile`` d
        version after :meth:`setup` (the parameters are the same).
    """

    #: Registry name (``s2s train --method NAME``).
    name: ClassVar[str] = ""
    #: Steps of the method; ``(None,)`` for one-step methods.
    steps: ClassVar[tuple] = (None,)
    #: Parts of the mini-batch the method reads (``"unpaired"``, ``"paired"``).
    parts: ClassVar[tuple[str, ...]] = ("unpaired", "paired")
    #: Train on b regridded onto a's grid (the paper's methods g, h).
    regridded: ClassVar[bool] = False
    #: Optimiser: ``"adam"`` (the paper's recipe) or ``"adadelta"`` (AECNN).
    optimizer: ClassVar[str] = "adam"
    #: Default learning rate (``--lr`` overrides).
    default_lr: ClassVar[float] = 1e-4
    #: One-way methods translate one direction, chosen with ``--direction``.
    one_way: ClassVar[bool] = False
    #: Method options it reads (``TrainOptions.method_options``; ``--photometry``: ``ours-phys``).
    accepted_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, surveys: dict[str, Survey], step: int | None = None, options: dict | None = None):
        self.surveys = surveys
        self.step = step
        self.options = dict(options or {})
        self.a, self.b = surveys["a"].name, surveys["b"].name
        if self.a == self.b:
            raise UsageError(f"domains a and b are the same survey ({self.a!r})")
        if surveys["a"].n_bands != surveys["b"].n_bands:
            raise UsageError(
                f"surveys {self.a!r} and {self.b!r} have {surveys['a'].n_bands} and {surveys['b'].n_bands} bands; "
                "the networks map band to band and need the same number"
            )
        self.bands = surveys["a"].n_bands
        side_b = surveys["a"].cutout_size if self.regridded else surveys["b"].cutout_size
        #: Cutout side in pixels of each domain as the networks see it.
        self.size = {self.a: surveys["a"].cutout_size, self.b: side_b}
        #: Pixel scale (arcsec) of each domain as the networks see it.
        self.pixel_scale = {
            self.a: surveys["a"].pixel_scale,
            self.b: surveys["a"].pixel_scale if self.regridded else surveys["b"].pixel_scale,
        }
        self.nets = nn.ModuleDict()
        self.groups: dict[str, list[str]] = {}
        self.fn: dict[str, Any] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        self._params: dict[str, list[nn.Parameter]] = {}
        self.device = torch.device("cpu")
        self.amp_dtype: torch.dtype | None = None
        self.clip_norm = 5.0
        self.world = 1
        self.build()

    # -- what a method file writes ---------------------------------------------------------

    @abc.abstractmethod
    def build(self) -> None:
        """Create the networks with :meth:`add` (called by ``__init__``)."""

    @abc.abstractmethod
    def train_step(self, batch) -> dict[str, torch.Tensor]:
        """One training iteration on ``batch`` (a ``survey2survey.data.loader.Batch``).

        Returns
        -------
        dict
            Loss name (the paper's: ``L_auto``, ``L_adv_D``, ``L_id``, ``L_cyc``, ...) ->
            detached 0-d tensor.  No ``.item()``: the loop reads them every k iterations.
        """

    @abc.abstractmethod
    def directions(self) -> dict[str, dict[str, Any]]:
        """``{"sdss->cfht": {"generator": name, "noise_emulator": name or None}, ...}``."""

    def saved_modules(self) -> list[str]:
        """Module names written to the model directory (default: every trainable one)."""
        return [n for names in self.groups.values() for n in names]

    def init_modules(self) -> list[str]:
        """Modules that must come from an earlier model (``--init``); ``ours`` step 2: NE."""
        return []

    def finalize(self, dataset) -> dict[str, Any]:
        """After a step's last iteration, before the model is written: adjustments measured on
        ``dataset`` (a ``PreparedDataset``), recorded in config.json (``steps.<step>.finalized``).

        Default: none.  Must depend only on the weights and the data, so that a resumed run
        that finishes again gives the same model.
        """
        return {}

    def optional_init_modules(self) -> list[str]:
        """Modules taken from an earlier step when there is one, else kept as built (``ours-phys`` step 2: NE)."""
        return []

    def initialised_from(self, loaded, explicit: bool) -> None:
        """After the init modules were taken from the model ``loaded`` (a ``LoadedModel``;
        ``explicit``: given with ``--init``, not found in ``--out``): anything else to take.
        Default: nothing."""

    # -- names from the paper ---------------------------------------------------------------

    def two_way_directions(self, noise: bool, **extra: Any) -> dict[str, dict[str, Any]]:
        """``directions()`` of a two-way method: a->b and b->a through the generators.

        ``noise``: add the target survey's noise emulator (F = G + NE) or none; ``extra``
        keys (e.g. ``latent_dim``) are recorded for both directions.
        """
        return {
            f"{s}->{t}": {"generator": self.G(s, t), "noise_emulator": self.NE(t) if noise else None, **extra}
            for s, t in ((self.a, self.b), (self.b, self.a))
        }

    def G(self, src: str, dst: str) -> str:
        return f"generator_{src}_to_{dst}"

    def NE(self, domain: str) -> str:
        return f"noise_emulator_{domain}"

    def A(self, domain: str) -> str:
        return f"autoencoder_{domain}"

    def D(self, domain: str) -> str:
        return f"discriminator_{domain}"

    # -- plumbing ----------------------------------------------------------------------------

    def add(self, name: str, module: nn.Module, group: str | None) -> nn.Module:
        """Register network ``name`` in optimiser ``group`` (``None``: frozen)."""
        self.nets[name] = module
        if group is None:
            module.requires_grad_(False)
        else:
            self.groups.setdefault(group, []).append(name)
        return module

    def setup(
        self,
        device: torch.device,
        *,
        amp_dtype: torch.dtype | None = None,
        channels_last: bool = False,
        compile: bool = False,
        lr: float | None = None,
        lr_decay_every: int = 20_000,
        lr_decay_factor: float = 5.0,
        clip_norm: float = 5.0,
        world: int = 1,
    ) -> None:
        """Move to ``device``, compile, and create the optimisers and LR schedules.

        The schedule is the paper's step decay: ``lr / lr_decay_factor`` every
        ``lr_decay_every`` iterations (``StepLR``, stepped once per iteration).
        """
        self.device = device
        self.amp_dtype = amp_dtype
        self.clip_norm = clip_norm
        self.world = world
        self.nets.to(device)
        if channels_last:
            self.nets.to(memory_format=torch.channels_last)
        for name, module in self.nets.items():
            module.train(name not in self._frozen_names())
            # dynamic=False: a network sees a few fixed batch sizes (e.g. D on real + fake,
            # then on fake alone); one specialised graph each beats a dynamic-shape graph.
            self.fn[name] = torch.compile(module, dynamic=False) if compile else module
        lr = self.default_lr if lr is None else lr
        fused = device.type == "cuda"
        for group, names in self.groups.items():
            params = [p for n in names for p in self.nets[n].parameters() if p.requires_grad]
            self._params[group] = params
            if self.optimizer == "adadelta":
                opt = torch.optim.Adadelta(params, lr=lr, foreach=not fused or None)
            else:
                # Adam with default betas, as the paper; fused kernels on the GPU.
                opt = torch.optim.Adam(params, lr=lr, fused=fused or None, foreach=None if fused else True)
            self.optimizers[group] = opt
            self.schedulers[group] = torch.optim.lr_scheduler.StepLR(
                opt, step_size=max(1, int(lr_decay_every)), gamma=1.0 / lr_decay_factor
            )

    def _frozen_names(self) -> set[str]:
        trainable = {n for names in self.groups.values() for n in names}
        return set(self.nets) - trainable

    def autocast(self):
        """bf16 autocast on the GPU, nothing on CPU (fp32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    @contextlib.contextmanager
    def frozen(self, *names: str):
        """Record the forward passes inside without gradients for networks ``names``.

        For a loss that flows *through* a network that is not being updated (the
        generators' or noise emulators' adversarial loss through D): gradients still
        reach the inputs, but no weight-gradient kernels run for D.  ``backward(inputs=)``
        in :meth:`update` prunes the same work in eager mode; a compiled network's backward
        is one fused graph, which only this switch slims down.
        """
        params = [p for n in names for p in self.nets[n].parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    def update(self, group: str, loss: torch.Tensor) -> None:
        """One optimiser step of ``group`` on ``loss``: backward, clip, step.

        ``backward(inputs=...)`` computes gradients for this group's parameters only, so
        e.g. the noise emulators' update through the discriminators does not waste
        time on the discriminators' weight gradients.  Gradients are clipped by their
        global norm (the paper's 5) without reading it back to the host.
        """
        params = self._params[group]
        opt = self.optimizers[group]
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        if self.world > 1:
            _all_reduce_mean([p.grad for p in params if p.grad is not None])
        if self.clip_norm and self.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, self.clip_norm, foreach=True)
        opt.step()

    def lr_step(self) -> None:
        for sched in self.schedulers.values():
            sched.step()

    def lr(self) -> float:
        """Current learning rate (the same for every group)."""
        for opt in self.optimizers.values():
            return float(opt.param_groups[0]["lr"])
        return 0.0

    def noise(self, domain: str, n: int) -> torch.Tensor:
        """Fresh noise ``(n, bands, H, W)`` of ``domain``'s noise emulator (its seeds z1, z2
        drawn from the global torch RNG on the device, whose state checkpoints keep)."""
        ne = self.nets[self.NE(domain)]
        size = self.size[domain]
        z1, z2 = ne.sample_inputs(n, size, size, device=self.device)
        return self.fn[self.NE(domain)](z1, z2)

    # -- state (checkpoints) ---------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "modules": {n: m.state_dict() for n, m in self.nets.items()},
            "optimizers": {g: o.state_dict() for g, o in self.optimizers.items()},
            "schedulers": {g: s.state_dict() for g, s in self.schedulers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for n, m in self.nets.items():
            m.load_state_dict(state["modules"][n])
        for g, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][g])
        for g, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][g])

    # -- helpers for method files -----------------------------------------------------------------

    def cat_forward(self, name: str, *xs: torch.Tensor, **kwargs) -> list[torch.Tensor]:
        """Run network ``name`` once on the concatenation of ``xs`` and split the result.

        None of the paper's networks mixes images of a batch (no batch normalisation),
        so one call on ``(N1 + N2, ...)`` equals two calls, in fewer, larger kernels.
        """
        sizes = [x.shape[0] for x in xs]
        out = self.fn[name](torch.cat(xs), **kwargs)
        return list(torch.split(out, sizes))


def _all_reduce_mean(grads: list[torch.Tensor]) -> None:
    """Average gradients over the data-parallel ranks in one flat all-reduce."""
    import torch.distributed as dist

    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n
