"""``ours-phys``: Lin & Fouchez (2021)'s two-step model on the physics translation.

The paper's training (``ours``: step 1 noise emulators against discriminators, Eq. 1-3;
step 2 generators with the frozen noise emulators, identity and cycle losses, Eq. 4-5)
with changes that make it start from, and never fall below, the physics of the two
surveys (:mod:`survey2survey.physics`), and learn on a CPU budget:

* each generator is a residual on the physics translation, G(x) = P(x) + R(x)
  (:class:`~survey2survey.nets.residual.PhysicsResidualGenerator`): P is PSF matching and
  flux-conserving resampling at the registry's typical seeing, R a small network that
  starts at zero and keeps the object's and the sky's flux apart (``correction="object"``),
  so at iteration 0 the model is the physics translation (with the anchor below) and at
  every iteration it conserves flux and the sky level;
* where the cutouts are large enough, the generator's 2" aperture flux on the centre is held
  to the physics's linear estimate of it (:class:`~survey2survey.nets.anchor.PhotometryAnchor`):
  a denoising network pulls faint galaxies towards the population, and their colours with them;
* the content losses (Eq. 4-5) are Huber's in units of the target survey's registry sky
  sigma (:meth:`OursPhys.content`): the paper's plain mean squared error lets the noisier
  survey's terms drown the other direction, and squares rule by the bright pixels;
* the cycle (Eq. 5) trains the second generator only (:meth:`OursPhys.cycle_input`);
* each noise emulator starts as its survey's registry noise (sigma and pixel correlation,
  :func:`~survey2survey.nets.residual.physics_noise_emulator`); step 1 then trains it
  adversarially as the paper does.  Step 2 takes the noise emulators of a step-1 model
  (``--init``, or step 1 of the same run) and otherwise keeps the registry noise.

In step 2 the identity loss against noisy pairs makes G the non-noise image (the paper's
role of G): R learns to remove the source noise that P carries along, to sharpen towards
a sharper target, and the noise emulator adds the target's noise.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from survey2survey.errors import ModelError, UsageError
from survey2survey.methods.ours import Ours
from survey2survey.nets.anchor import PhotometryAnchor
from survey2survey.nets.residual import PhysicsResidualGenerator, model_space_sky_sigma, physics_noise_emulator
from survey2survey.physics.noise import corner_squares, high_k_power
from survey2survey.surveys import unstretch

__all__ = ["OursPhys", "undo_noise_calibration", "survey_with_physics", "CALIBRATION_PAIRS", "HUBER_DELTA",
           "APERTURES_ARCSEC", "APERTURE_FLOOR"]

#: Training inputs the noise calibration after step 2 reads (:meth:`OursPhys.finalize`).
CALIBRATION_PAIRS = 256
#: Where the content loss turns from quadratic to linear, in sky sigma (:meth:`OursPhys.content`).
HUBER_DELTA = 3.0
#: Radii of the photometry term's apertures on the cutout centre (arcsec; :meth:`OursPhys.photometry`).
APERTURES_ARCSEC = (1.0, 2.0, 4.0)
#: Fractional flux error that counts as one sigma in the photometry term, with the apertures' noise.
APERTURE_FLOOR = 0.02


class OursPhys(Ours):
    """The paper's two steps with physics-residual generators and physics-initialised noise emulators."""

    name = "ours-phys"
    steps = (1, 2)
    accepted_options = ("photometry",)

    def __init__(self, *args, **kwargs):
        self._sigma: dict = {}
        self._apertures: dict = {}
        super().__init__(*args, **kwargs)
        weight = self.options.get("photometry", 0.0)
        if not (isinstance(weight, (int, float)) and np.isfinite(weight) and weight >= 0):
            raise ValueError(f"--photometry must be a number >= 0, not {weight!r}")
        #: Weight of :meth:`photometry` in the identity loss (``--photometry``; 0: the pixels only).
        self.photometry_weight = float(weight)
        #: What ``--init`` gave: the model fine-tuned (:meth:`initialised_from`), for the config.
        self._fine_tuned_from: dict | None = None

    def state_dict(self):
        """The checkpoint's state, with the model a fine-tuning started from (a resumed run records it too)."""
        state = super().state_dict()
        if self._fine_tuned_from:
            state["fine_tuned_from"] = dict(self._fine_tuned_from)
        return state

    def load_state_dict(self, state) -> None:
        """A checkpoint's state; one of a run started before generators had the photometry anchor
        resumes with this run's (its buffers follow from the surveys: nothing trained is lost)."""
        modules = {name: _with_anchor(saved, self.nets[name]) if name in self.nets else saved
                   for name, saved in state["modules"].items()}
        super().load_state_dict({**state, "modules": modules})
        self._fine_tuned_from = state.get("fine_tuned_from", self._fine_tuned_from)

    def build(self) -> None:
        if self.step != 2:
            super().build()  # step 1 as the paper's, with new_noise_emulator below
            return
        a, b, c = self.a, self.b, self.bands
        for s, t in ((a, b), (b, a)):
            generator = PhysicsResidualGenerator.from_surveys(self.physics_survey(s), self.physics_survey(t), c,
                                                              self.size[s], self.size[t], correction="object",
                                                              repair=True,
                                                              anchor=PhotometryAnchor.fits(self.physics_survey(t),
                                                                                           self.size[t]))
            self.add(self.G(s, t), generator, "generators")
        for d in (a, b):
            self.add(self.NE(d), self.new_noise_emulator(d), None)  # frozen

    def new_noise_emulator(self, domain: str):
        """The registry noise of ``domain`` (:func:`~survey2survey.nets.residual.physics_noise_emulator`)."""
        return physics_noise_emulator(self.physics_survey(domain), self.bands)

    def physics_survey(self, domain: str):
        """The survey of ``domain`` with its PSF and noise (:func:`survey_with_physics`)."""
        return survey_with_physics(next(s for s in self.surveys.values() if s.name == domain))

    def content(self, pred, target, domain: str):
        """Content loss per pixel in units of the target's sky noise: Huber's, quadratic up to
        :data:`HUBER_DELTA` sigma and linear beyond.

        The paper's plain mean squared error in model space is dominated by the noisier
        survey (SDSS's sky is ~10x CFHT's in the common flux scale, and more in z): the
        SDSS-side terms' noise would drown the signal that teaches the CFHT-side generator.
        Dividing each band by the registry's model-space noise sigma of the target survey
        (:meth:`noise_sigma`) weighs the two directions and the bands alike.  A pure chi^2
        (squares all the way) is then ruled by the few bright pixels of each object, whose
        misfit is tens of sigma, and the network learns the sky's noise, most of the image,
        slowly (docs/methods.md: 1,000 iterations, 5 % below the physics with chi^2 against
        40 % with this loss).  Huber's loss is chi^2 / 2 in the noise (an unbiased mean there)
        and grows only linearly on the bright pixels.
        """
        sigma = self._sigma.get(domain)
        if sigma is None:
            sigma = self._sigma[domain] = self.noise_sigma(domain).to(pred.device)
        return F.huber_loss(pred.float() / sigma, target.float() / sigma, delta=HUBER_DELTA)

    def identity(self, pred, target, domain: str):
        """The identity loss (Eq. 4): :meth:`content`, plus ``photometry_weight`` x :meth:`photometry`."""
        loss = self.content(pred, target, domain)
        if self.photometry_weight > 0:
            loss = loss + self.photometry_weight * self.photometry(pred, target, domain)
        return loss

    def photometry(self, pred, target, domain: str):
        """Aperture photometry of ``pred`` against its pair ``target``: Huber's loss of the flux
        difference in circles of :data:`APERTURES_ARCSEC` on the cutout centre, per image and
        band, in units of the error to expect: the sky noise of both surveys in the aperture
        (:meth:`_apertures_of`) and :data:`APERTURE_FLOOR` of the flux, in quadrature.

        The pixel loss weighs every pixel alike, and a galaxy's core is a few dozen of them:
        what an astronomer measures first (aperture fluxes, so colours and the profile's
        concentration) is left to whatever the pixel loss leaves over (docs/methods.md: after
        6,000 iterations of the pixels alone, the r 2" aperture flux 2 % low, u-g and i-z off by
        0.02-0.05 mag).  The source survey's noise is part of the unit because no generator can
        know an aperture's flux better than its input does: without it a faint, noisy band's
        term asks for more than the input holds and pulls its fluxes towards the population's.
        """
        weights, sigma = self._apertures_of(domain, pred.shape[-2:], pred.device)
        with torch.autocast(pred.device.type, enabled=False):  # fp32: bf16 sums round to ~0.4 %
            flux_p = torch.einsum("nchw,rhw->ncr", unstretch(pred.float()), weights)
            flux_t = torch.einsum("nchw,rhw->ncr", unstretch(target.float()), weights)
            scale = torch.sqrt(sigma**2 + (APERTURE_FLOOR * flux_t.abs()) ** 2)
            return F.huber_loss(flux_p / scale, flux_t / scale, delta=HUBER_DELTA)

    def _apertures_of(self, domain: str, shape, device):
        """``(radii, H, W)`` aperture weights on ``domain``'s grid, and the ``(1, bands, radii)`` flux
        sigma of the sky noise in each: the target's (its registry sigma through the weights) and
        the source's (its registry sigma over the aperture's area in its own pixels), uncorrelated."""
        key = (domain, tuple(shape))
        if key not in self._apertures:
            from survey2survey.metrics.apertures import circular_weights

            source = self.a if domain == self.b else self.b
            grid, other = self.physics_survey(domain), self.physics_survey(source)
            w = np.stack([circular_weights(tuple(shape), r / grid.pixel_scale) for r in APERTURES_ARCSEC])
            n_target = torch.tensor((w**2).sum(axis=(1, 2)), dtype=torch.float32).reshape(1, 1, -1)
            n_source = torch.tensor([np.pi * (r / other.pixel_scale) ** 2 for r in APERTURES_ARCSEC],
                                    dtype=torch.float32).reshape(1, 1, -1)
            flux_sigma = {d: 2.0 * self.noise_sigma(d).reshape(1, -1, 1) for d in (domain, source)}  # slope 1/2
            sigma = torch.sqrt(flux_sigma[domain] ** 2 * n_target + flux_sigma[source] ** 2 * n_source)
            self._apertures[key] = (torch.tensor(w, dtype=torch.float32, device=device), sigma.to(device))
        return self._apertures[key]

    def cycle_input(self, translated):
        """G(x) as the cycle of Eq. 5 takes it: held fixed (no gradient into the first generator).

        L_cyc = |G_ba(G_ab(a) + NE_b) - a|^2 against a noisy ``a`` is lowest when G_ab carries
        ``a``'s own noise through for G_ba to give back, the opposite of what G_ab should
        learn from the pairs (remove it).  So L_cyc here trains the second generator only, on
        the first one's translations of the unpaired images.
        """
        return translated.detach()

    def noise_sigma(self, domain: str):
        """``(1, bands, 1, 1)`` registry sky sigma of ``domain`` in model space (sigma / 2 at zero flux)."""
        sigma = model_space_sky_sigma(self.physics_survey(domain), self.bands)
        return torch.tensor(sigma, dtype=torch.float32).reshape(1, -1, 1, 1)

    def init_modules(self) -> list[str]:
        return []

    def finalize(self, dataset) -> dict:
        """Step 2: scale each noise emulator so that it adds only the noise G does not carry.

        G = P + R still carries some of the source's noise, resampled, at the highest spatial
        frequencies (R removes it at low ones): adding the target's full noise on top would
        give too much.  On the sky a galaxy cutout's noise-free image has no power at high k,
        so there G's own high-k power is the noise it carries.  Per band, on up to
        :data:`CALIBRATION_PAIRS` training inputs, with HK the median over the four corner
        squares of a third of the side (the cutouts are centred on their galaxy) of the power
        at |k| > half Nyquist: ``s^2 = 1 - HK(G(x)) / HK(NE)`` (clipped to [0, 1]), and the
        kernel of NE is multiplied by s.  G + s NE then has NE's high-k noise on the sky: the
        registry's survey noise (or step 1's).  The targets are not read.

        Earlier calibrations compared G with the targets.  On whole images the galaxy's misfit
        counted as carried noise (CFHT g got 0.59x the survey's high-k noise on the sky,
        docs/model-card.md).  On the sky, ``s^2 = 2 - HK(G(x) - y) / HK(NE)`` took the pairs'
        noise for NE's and a median of sums for a sum of medians: it scattered by up to 10 %
        between sets of 256 pairs and left CFHT g at 0.80-0.85x.
        """
        if self.step != 2:
            return {}
        out = {"fine_tuned_from": self._fine_tuned_from} if self._fine_tuned_from else {}
        inputs = {self.a: dataset.arrays["train_a"], self.b: dataset.arrays["train_b"]}
        for s, t in ((self.a, self.b), (self.b, self.a)):
            gen, ne = self.nets[self.G(s, t)], self.nets[self.NE(t)]
            n = min(CALIBRATION_PAIRS, len(inputs[s]))
            x = torch.from_numpy(np.array(inputs[s][:n], dtype=np.float32)).to(self.device)
            gen.eval()
            with torch.no_grad():
                g = torch.cat([gen(chunk) for chunk in x.split(16)]).cpu().numpy()
                generator = torch.Generator(device="cpu").manual_seed(0)
                z1, z2 = ne.sample_inputs(n, g.shape[-2], g.shape[-1], generator=generator)
                noise = ne(z1, z2).cpu().numpy()
            gen.train()
            scale = []
            sky_g, sky_noise = corner_squares(g), corner_squares(noise)
            for band in range(self.bands):
                carried = np.median(high_k_power(sky_g[:, band])) / np.median(high_k_power(sky_noise[:, band]))
                # rounded as config.json records it: dividing the recorded scale out restores the kernel
                scale.append(round(float(np.sqrt(np.clip(1.0 - carried, 0.0, 1.0))), 4))
            with torch.no_grad():
                ne.kernel.mul_(torch.tensor(scale, device=ne.kernel.device).reshape(-1, 1, 1, 1))
            out[f"noise_scale_{t}"] = scale
        return out

    def optional_init_modules(self) -> list[str]:
        """Step 2: the noise emulators of step 1 when there is one, else the registry noise."""
        return [self.NE(self.a), self.NE(self.b)] if self.step == 2 else []

    def initialised_from(self, loaded, explicit: bool) -> None:
        """Step 2 from a finished ``ours-phys`` model: its noise emulators without their
        calibration, and, given with ``--init``, its generators (the run fine-tunes it).

        The noise calibration (:meth:`finalize`) scaled the model's noise emulators to add only
        what its generators lacked; its scales are divided out, so that this run calibrates
        the full noise again (a band scaled to 0 cannot be: that band takes the registry's
        noise).
        """
        config = loaded.config
        if self.step != 2 or config.get("method") != self.name or config.get("step") != 2:
            return
        for d in (self.a, self.b):
            undo_noise_calibration(config, self.nets[self.NE(d)], self.physics_survey(d))
        if not explicit:
            return
        for s, t in ((self.a, self.b), (self.b, self.a)):
            name = self.G(s, t)
            generator = loaded.modules.get(name)
            if getattr(generator, "correction", None) != "object":
                raise ModelError(f"{loaded.path}: {name} is not a generator with correction='object' "
                                 "(a model from before that correction cannot be fine-tuned)")
            try:
                self.nets[name].load_state_dict(_with_anchor(generator.state_dict(), self.nets[name]))
            except RuntimeError as exc:
                raise ModelError(f"{loaded.path}: {name} does not fit ({str(exc).splitlines()[0]})") from None
        self._fine_tuned_from = {k: config.get(k) for k in ("name", "iterations", "weights_sha256")}


def undo_noise_calibration(config: dict, emulator, survey) -> bool:
    """Divide out, in place, the calibration of ``emulator`` (the noise emulator of ``survey`` in a
    model with ``config``), so that it draws the survey's whole noise.

    An ``ours-phys`` model's noise emulators are scaled to add only the noise its generator
    lacks (:meth:`OursPhys.finalize`); other models' are left as they are.  Returns whether
    anything was divided out (False also when every scale is 1).
    """
    if config.get("method") != OursPhys.name:
        return False
    scale = config.get("steps", {}).get("step2", {}).get("finalized", {}).get(f"noise_scale_{survey.name}")
    if scale is None or all(v == 1 for v in scale):
        return False
    _undo_noise_scale(emulator, scale, physics_noise_emulator(survey_with_physics(survey), len(scale)))
    return True


def _with_anchor(state: dict, net) -> dict:
    """``state`` of a generator made to fit ``net``: a state from before the photometry anchor gets
    ``net``'s anchor buffers, and one with an anchor loses it where ``net`` has none (a cutout too
    small for it)."""
    has = any(k.startswith("anchor.") for k in state)
    if getattr(net, "anchor", None) is None:
        return {k: v for k, v in state.items() if not k.startswith("anchor.")} if has else state
    if has:
        return state
    return {**state, **{k: v for k, v in net.state_dict().items() if k.startswith("anchor.")}}


def _undo_noise_scale(ne, scale, registry) -> None:
    """Divide each band of the noise emulator ``ne`` by its ``scale``; a band scaled to 0 takes
    the ``registry`` emulator's band (every parameter of a noise emulator is per band)."""
    scale = torch.tensor(scale, dtype=torch.float32)
    fresh = registry.state_dict()
    with torch.no_grad():
        ne.kernel.div_(torch.where(scale > 0, scale, 1.0).reshape(-1, 1, 1, 1))
        for name, value in ne.state_dict().items():
            for band in torch.nonzero(scale <= 0).flatten().tolist():
                value[band] = fresh[name][band]


def survey_with_physics(survey):
    """The dataset's survey, or the registry's of that name for a dataset written before
    surveys carried their PSF and noise (same bands, grid and units required)."""
    if survey.has_physics:
        return survey
    from survey2survey.surveys import get_survey

    try:
        known = get_survey(survey.name)
    except Exception:
        known = None
    same = known is not None and (known.bands, known.pixel_scale, known.cutout_size, known.zero_point) == (
        survey.bands, survey.pixel_scale, survey.cutout_size, survey.zero_point)
    if not (same and known.has_physics):
        raise UsageError(
            f"ours-phys: survey {survey.name!r} of the dataset has no PSF and noise (psf_profile, psf_fwhm, "
            "sky_sigma or depth): prepare the dataset again, or define them with --surveys FILE"
        )
    return known

