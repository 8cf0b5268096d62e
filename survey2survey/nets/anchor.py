"""The photometry anchor: a generator's 2" aperture flux held to the physics's linear estimate.

A network trained to remove noise returns something like the mean of what it has seen for a
given input, and that pulls faint galaxies towards the population: their core flux, and with
it their colours (docs/methods.md measures it).  The physics translation has no such pull
(its error is the input's noise, symmetric about the truth) but keeps the source's broader
PSF, so its own aperture fluxes are low where the target is sharper.

The anchor takes from each the part it gets right.  Per image and band it measures the
generator's flux in a circle of :data:`ANCHOR_RADIUS_ARCSEC` on the cutout's centre and the
physics's estimate of the target's flux there
(:func:`survey2survey.physics.photometry.aperture_estimators`: P corrected for the two PSFs
within the circle's frequencies), both above the sky, and moves flux between the circle and
the ring around it (out to :data:`RING_ARCSEC`) until they agree:

* the flux moved has the generator's own object as its shape (its image above the sky, plus
  :data:`SHAPE_FLOOR` sky sigma for an object it lost), within the disc and within the ring,
  each seen through the target's PSF: the galaxy keeps its shape, and no disc or ring of
  flux is drawn around it;
* the total flux is kept, and past the ring nothing changes but for the PSF's blur of its
  edge (about 1 % of the moved flux lands beyond 4", nothing measurable beyond 5"): the sky and
  any neighbour further out are the generator's;
* the estimate is held within a factor 2 of the generator's own flux: a wild estimate (a
  rare noise excursion past the gate, a source far from what the PSFs assume) changes the
  core by at most that, and never empties it;
* it is applied in full where the generator's object flux in the circle is at least
  ``GATE[1]`` times the estimate's noise (the source's sky sigma, measured on its outer
  frame, through the estimator's weights), not at all below ``GATE[0]`` times, linearly
  between: on a galaxy lost in the noise the estimate is mostly noise, and would print it as
  a hole or a blob.

The estimate is as good as the PSFs it assumes (the registry's typical ones) and its gain
clip (compact sources come out a few per cent low): docs/methods.md has the numbers.
Cutouts are centred on their object, as the photometry metrics assume.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from survey2survey.nets.layers import to_pair
from survey2survey.nets.sky import BORDER, frame_sky

__all__ = ["PhotometryAnchor", "ANCHOR_RADIUS_ARCSEC", "RING_ARCSEC", "SHAPE_FLOOR", "GATE"]

#: Radius of the circle whose flux is held (arcsec).
ANCHOR_RADIUS_ARCSEC = 2.0
#: Outer radius of the ring the circle's flux is exchanged with (arcsec).
RING_ARCSEC = 4.0
#: The moved flux's shape: the generator's object plus this many sky sigmas.
SHAPE_FLOOR = 0.3
#: (none, full): the anchor's weight goes from 0 to 1 as the generator's object flux in the
#: circle goes from ``GATE[0]`` to ``GATE[1]`` times the estimate's noise.
GATE = (1.0, 3.0)


class PhotometryAnchor(nn.Module):
    """``anchor(g, p, x)``: the generator's flux images ``g`` with the circle's flux that the
    physics image ``p`` estimates (``x``: the source's flux images, for the estimate's noise).

    Buffers (a saved model carries them; building them needs GalSim, running them does not):
    ``estimator`` (bands, H, W) the weight map on the physics image, ``aperture`` (H, W) the
    circle, ``windows`` (bands, 2, H, W) the disc and the ring seen through the target's PSF,
    ``noise_gain`` (bands,) the estimate's noise per unit source-pixel sigma.
    """

    def __init__(self, bands: int, size):
        super().__init__()
        h, w = to_pair(size, "size")
        self.register_buffer("estimator", torch.zeros(bands, h, w))
        self.register_buffer("aperture", torch.zeros(h, w))
        self.register_buffer("windows", torch.zeros(bands, 2, h, w))
        self.register_buffer("noise_gain", torch.zeros(bands))

    @staticmethod
    def fits(target, out_size) -> bool:
        """Whether an ``out_size`` cutout of ``target`` holds the anchor's ring inside its sky frame."""
        return RING_ARCSEC / target.pixel_scale + 2 * BORDER <= min(to_pair(out_size, "out_size")) / 2

    @classmethod
    def from_surveys(cls, source, target, bands: int, physics, out_size) -> "PhotometryAnchor":
        """The anchor of ``source`` -> ``target`` (surveys with their PSF and noise) for a generator
        whose physics operator is ``physics`` (a :class:`~survey2survey.nets.residual.PhysicsOperator`)."""
        from survey2survey.metrics.apertures import circular_weights
        from survey2survey.physics.photometry import (aperture_estimators, blurred_discs, point_source_images,
                                                      source_noise_gain)

        shape = to_pair(out_size, "out_size")
        if not cls.fits(target, shape):
            raise ValueError(f"a {shape[1]}x{shape[0]} cutout of {target.name} is too small for the photometry "
                             f"anchor's {RING_ARCSEC:g}\" ring")
        radius, ring = ANCHOR_RADIUS_ARCSEC / target.pixel_scale, RING_ARCSEC / target.pixel_scale
        point = point_source_images(source, list(source.bands)[:bands], physics.in_size)
        with torch.no_grad():
            psf_physics = physics(torch.as_tensor(point[None], dtype=torch.float32))[0].double().numpy()
        psf_target = point_source_images(target, list(target.bands)[:bands], shape)
        estimator = aperture_estimators(psf_physics, psf_target, [radius])[:, 0]
        discs = blurred_discs(psf_target, [radius, ring])
        values = {
            "estimator": estimator,
            "aperture": circular_weights(shape, radius),
            "windows": np.stack([discs[:, 0], discs[:, 1] - discs[:, 0]], axis=1),
            "noise_gain": source_noise_gain(estimator[:, None], physics.my.double().numpy(),
                                            physics.mx.double().numpy(), source.noise_correlation or 0.0)[:, 0],
        }
        anchor = cls(bands, shape)
        with torch.no_grad():
            for name, value in values.items():
                getattr(anchor, name).copy_(torch.tensor(np.array(value), dtype=torch.float32))
        return anchor

    def circle_flux(self, g: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """(N, B) flux of the images ``g`` in the circle above the sky ``level`` (N, B, 1, 1)."""
        return (g * self.aperture).sum(dim=(2, 3)) - level[..., 0, 0] * self.aperture.sum()

    def estimate(self, p: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """(N, B) the physics images ``p``'s linear estimate of the target's flux in the circle,
        above the sky ``level`` (N, B, 1, 1); not yet held to the generator's own flux."""
        return (p * self.estimator).sum(dim=(2, 3)) - level[..., 0, 0] * self.estimator.sum(dim=(1, 2))

    def forward(self, g: torch.Tensor, p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``g`` (N, bands, H, W) with its circle's flux moved to ``p``'s estimate (module docstring)."""
        with torch.autocast(g.device.type, enabled=False):  # fp32: bf16 sums round to ~0.4 %
            g, p, x = g.float(), p.float(), x.float()
            _, level, sigma = frame_sky(p)  # (N, B, 1, 1)
            shape = torch.relu(g - level) + SHAPE_FLOOR * sigma
            mass = torch.einsum("nbhw,bkhw->nbk", shape, self.windows).clamp_min(1e-30)  # in the disc, the ring
            # the correction's unit: the shape within the disc less within the ring, each of unit flux
            unit = shape * (self.windows[None, :, 0] / mass[..., 0, None, None]
                            - self.windows[None, :, 1] / mass[..., 1, None, None])  # (N, B, H, W)
            held = (unit * self.aperture).sum(dim=(2, 3))  # (N, B): the circle's flux per unit
            have, wanted = self.circle_flux(g, level), self.estimate(p, level)
            wanted = torch.minimum(torch.maximum(wanted, 0.5 * have), 2.0 * have)  # have <= 0: the gate is shut
            ok = held.abs() > 1e-6
            amount = torch.where(ok, (wanted - have) / torch.where(ok, held, torch.ones_like(held)), torch.zeros_like(held))
            _, _, source_sigma = frame_sky(x)
            snr = have / (source_sigma[..., 0, 0] * self.noise_gain).clamp_min(1e-30)
            # the gate is a selection, not something to learn: no gradient through it
            weight = ((snr.detach() - GATE[0]) / (GATE[1] - GATE[0])).clamp(0.0, 1.0)
            return g + (weight * amount)[..., None, None] * unit
