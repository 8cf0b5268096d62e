"""Reproducible random inputs of the networks: noise seeds z1, z2 and latent codes z.

The translation graph (:mod:`survey2survey.runtime.graph`, the paper's F = G + NE) takes
its seeds from here, drawn from a per-object key, so that an object's noise does not
depend on the batch it was in, the shard, the worker count, the backend or the device;
``s2s emulate-noise`` draws its blank-sky maps the same way.

Random numbers
--------------
The seeds z1, z2 come from a counter-based generator written in plain integer tensor
operations (a 32-bit avalanche hash of (object key, stream, element index), two hash
rounds per uniform, then Box-Muller).  Unlike ``torch.randn`` it gives the same bits on
CPU and GPU, needs no generator state, and on a GPU draws the z of a whole batch in a
few kernels instead of one ``torch.Generator`` call per object (a CPU-side draw of the
~100,000 normals of a CFHT cutout would otherwise limit a GPU run).  The integer part is exact; the float part (log, cos, sin) may differ by
an ulp between devices.  Normals are truncated at about 5.9 sigma (24-bit uniforms).

Streams: the noise of sample ``s`` (``--samples``) and band ``b`` of an object is stream
``s * 64 + b``, one scalar z1 then the ``(H + 6) x (W + 6)`` map z2, so that band r of
sample 0 of an object is the same draw whichever other bands or samples are asked for.
The latent code z of a stochastic generator (augcgan) is stream ``2**31 + s``
(:func:`latent_codes`).
"""

from __future__ import annotations

import hashlib
import math
from typing import Sequence

import numpy as np

from survey2survey.errors import UsageError

__all__ = [
    "MAX_BANDS",
    "object_seed",
    "standard_normal",
    "noise_inputs",
    "latent_codes",
    "LATENT_STREAM",
]

#: Streams reserve this many band slots per sample (stream = sample * MAX_BANDS + band).
MAX_BANDS = 64
#: First stream of the latent codes of stochastic generators (augcgan): sample s uses
#: ``LATENT_STREAM + s``, far from the noise streams.
LATENT_STREAM = 1 << 31

_M32 = 0xFFFFFFFF
# Multipliers of the avalanche hash; both < 2**31 so that a 32-bit value times one of
# them never leaves int64 (exact on every device, no reliance on wrap-around).
_MUL1 = 0x7FEB352D
_MUL2 = 0x2C1B3C6D
_GOLDEN = 0x9E3779B9
# Elements of int64 scratch per chunk: keeps the CPU working set in cache, the GPU busy.
_CHUNK_CPU = 1 << 19
_CHUNK_GPU = 1 << 26


def object_seed(seed: int, object_id: str) -> int:
    """63-bit key of one object's noise, from the run's ``seed`` and the object's id.

    SHA-256 of ``"<seed>/<object_id>"``: the same object gets the same noise in any
    batch, shard or process, and different objects get unrelated noise.
    """
    digest = hashlib.sha256(f"{int(seed)}/{object_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _mix_(x):
    """In-place 32-bit avalanche hash of int64 values in [0, 2**32) (torch tensor)."""
    x ^= x >> 16
    x.mul_(_MUL1).bitwise_and_(_M32)
    x ^= x >> 15
    x.mul_(_MUL2).bitwise_and_(_M32)
    x ^= x >> 16
    return x


def _mix_np(x: np.ndarray) -> np.ndarray:
    """The same hash on uint32 numpy arrays (wrap-around multiplication is the mod 2**32)."""
    x ^= x >> np.uint32(16)
    x *= np.uint32(_MUL1)
    x ^= x >> np.uint32(15)
    x *= np.uint32(_MUL2)
    x ^= x >> np.uint32(16)
    return x


def standard_normal(keys, n: int, streams: Sequence[int] = (0,), device=None):
    """Standard normal numbers ``(N, K, n)`` float32, a pure function of (key, stream, index).

    Parameters
    ----------
    keys : torch.Tensor or sequence of int, shape (N,)
        Per-object keys in [0, 2**63) (:func:`object_seed`).
    n : int
        Numbers per (object, stream).
    streams : sequence of int, length K
        Independent streams per object (non-negative, < 2**32).
    device : torch.device or str, optional
        Where to compute (default: the keys' device, else CPU).

    Returns
    -------
    torch.Tensor
        ``(N, K, n)`` float32 on ``device``.

    Notes
    -----
    On the CPU the numbers are computed with numpy (native uint32 arithmetic, one
    thread: fast, and immune to thread oversubscription on shared nodes); elsewhere
    with torch integer kernels.  Both compute the same integers; the float transform
    may differ by an ulp.
    """
    import torch

    if torch.is_tensor(keys):
        device = torch.device(device) if device is not None else keys.device
        keys_np = keys.detach().to("cpu", torch.int64).numpy()
    else:
        device = torch.device(device) if device is not None else torch.device("cpu")
        keys_np = np.asarray(keys, dtype=np.int64).reshape(-1)
    streams = [int(s) for s in streams]
    if device.type == "cpu":
        return torch.from_numpy(_standard_normal_np(keys_np, n, streams))
    return _standard_normal_torch(torch.as_tensor(keys_np, device=device), n, streams)


def _standard_normal_np(keys: np.ndarray, n: int, streams: list[int]) -> np.ndarray:
    n_obj, n_streams = keys.shape[0], len(streams)
    m = (n + 1) // 2  # Box-Muller pairs per stream
    out = np.empty((n_obj, n_streams, n), dtype=np.float32)
    if n_obj == 0 or n == 0:
        return out
    base = _mix_np(np.arange(2 * m, dtype=np.uint32))  # (2m,)
    skey = _mix_np((np.array(streams, dtype=np.uint64) * _GOLDEN + 0x632BE5AB).astype(np.uint32))  # (K,)
    counters = _mix_np(base[None, :] ^ skey[:, None])  # (K, 2m)
    k = keys.astype(np.uint64)
    key_lo = (k & np.uint64(_M32)).astype(np.uint32)
    key_hi = (k >> np.uint64(32)).astype(np.uint32)
    chunk = max(1, _CHUNK_CPU // (n_streams * 2 * m))
    for start in range(0, n_obj, chunk):
        stop = min(start + chunk, n_obj)
        h = counters[None] ^ key_lo[start:stop, None, None]  # (n, K, 2m)
        _mix_np(h)
        h += key_hi[start:stop, None, None]
        _mix_np(h)
        u = (h >> np.uint32(8)).astype(np.float32)
        u += np.float32(0.5)
        u *= np.float32(2.0**-24)  # 24-bit uniforms in (0, 1), exact in float32
        radius = np.sqrt(np.float32(-2.0) * np.log(u[..., :m]))  # (n, K, m)
        angle = u[..., m:] * np.float32(2.0 * math.pi)
        out[start:stop, :, :m] = radius * np.cos(angle)
        out[start:stop, :, m:] = (radius * np.sin(angle))[..., : n - m]
    return out


def _standard_normal_torch(keys, n: int, streams: list[int]):
    import torch

    device = keys.device
    n_obj, n_streams = keys.shape[0], len(streams)
    m = (n + 1) // 2
    out = torch.empty((n_obj, n_streams, n), dtype=torch.float32, device=device)
    if n_obj == 0 or n == 0:
        return out
    # Per-(stream, index) counters, shared by every object: c[k, j], j < 2m.
    base = _mix_(torch.arange(2 * m, dtype=torch.int64, device=device))  # (2m,)
    skey = torch.as_tensor(streams, dtype=torch.int64, device=device)
    skey = _mix_((skey * _GOLDEN + 0x632BE5AB) & _M32)  # (K,)
    counters = _mix_(base[None, :] ^ skey[:, None])  # (K, 2m)
    key_lo = keys & _M32  # (N,)
    key_hi = (keys >> 32) & _M32
    chunk = max(1, (_CHUNK_GPU if device.type == "cuda" else _CHUNK_CPU) // (n_streams * 2 * m))
    for start in range(0, n_obj, chunk):
        stop = min(start + chunk, n_obj)
        h = counters[None] ^ key_lo[start:stop, None, None]  # (n, K, 2m)
        _mix_(h)
        h += key_hi[start:stop, None, None]
        h &= _M32
        _mix_(h)
        u = (h >> 8).to(torch.float32).add_(0.5).mul_(2.0**-24)  # (n, K, 2m)
        radius = torch.log(u[..., :m]).mul_(-2.0).sqrt_()  # (n, K, m)
        angle = u[..., m:].mul_(2.0 * math.pi)
        out[start:stop, :, :m] = radius * torch.cos(angle)
        out[start:stop, :, m:] = (radius * torch.sin(angle))[..., : n - m]
    return out


def noise_inputs(keys, bands: Sequence[int], height: int, width: int, samples: int = 1, device=None):
    """The noise emulator seeds z1, z2 of ``samples`` draws per object.

    Parameters
    ----------
    keys : torch.Tensor or sequence of int, shape (N,)
        Per-object keys (:func:`object_seed`).
    bands : sequence of int
        Band indices (in the survey's order) to draw for.
    height, width : int
        Size of the noise image; z2 is 6 pixels larger (7x7 'valid' kernel).
    samples : int
        Independent realisations per object; sample 0 is the one a plain run uses.
    device : torch.device or str, optional

    Returns
    -------
    z1 : torch.Tensor
        ``(N, samples, len(bands))`` float32.
    z2 : torch.Tensor
        ``(N, samples, len(bands), height + 6, width + 6)`` float32.
    """
    if any(not 0 <= int(b) < MAX_BANDS for b in bands):
        raise UsageError(f"band indices must be in [0, {MAX_BANDS}), got {list(bands)}")
    streams = [s * MAX_BANDS + int(b) for s in range(samples) for b in bands]
    hp, wp = height + 6, width + 6
    z = standard_normal(keys, 1 + hp * wp, streams, device=device)  # (N, S*C, 1 + hp*wp)
    z = z.reshape(z.shape[0], samples, len(bands), 1 + hp * wp)
    return z[..., 0].contiguous(), z[..., 1:].reshape(z.shape[0], samples, len(bands), hp, wp)


def latent_codes(keys, latent_dim: int, sample: int = 0, device=None):
    """Latent codes z ~ N(0, I) of a stochastic generator (augcgan's ``G(x, z)``).

    Drawn like the noise seeds, from each object's key (stream ``LATENT_STREAM + sample``),
    so that an object's translation does not depend on its batch, shard or device.

    Returns
    -------
    torch.Tensor
        ``(N, latent_dim)`` float32.
    """
    return standard_normal(keys, int(latent_dim), [LATENT_STREAM + int(sample)], device=device)[:, 0]
