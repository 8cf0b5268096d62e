"""The sky of an image stack, measured on its outer frame (the cutouts are centred on their object)."""

from __future__ import annotations

import torch

__all__ = ["BORDER", "frame_pixels", "frame_sky"]

#: Width (pixels) of the outer frame on which the sky is measured.
BORDER = 4


def frame_pixels(images: torch.Tensor) -> torch.Tensor:
    """The outer :data:`BORDER` pixels of ``images`` (..., H, W), ``(..., n)``."""
    b = BORDER
    strips = (images[..., :b, :], images[..., -b:, :], images[..., b:-b, :b], images[..., b:-b, -b:])
    return torch.cat([strip.flatten(-2) for strip in strips], dim=-1)


def frame_sky(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The outer :data:`BORDER` pixels' mask ``(1, 1, H, W)``, and per image and band the sky
    level and noise sigma of ``images`` (N, C, H, W) there, ``(N, C, 1, 1)`` each (mean, and
    1.2533 x the mean absolute deviation)."""
    frame = torch.ones_like(images[:1, :1])
    frame[..., BORDER:-BORDER, BORDER:-BORDER] = 0.0
    edge = frame_pixels(images)  # (N, C, n)
    level = edge.mean(dim=-1, keepdim=True)
    sigma = 1.2533 * (edge - level).abs().mean(dim=-1, keepdim=True)
    return frame, level[..., None], sigma[..., None]
