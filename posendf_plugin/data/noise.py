"""Noise models that move data poses off the pose manifold, to make distance-field training data.

* :func:`gaussian_quat_noise` — Pose-NDF: add ``N(0, σ²)`` independently to each of the four
  components of every joint's quaternion, then renormalise (and make w ≥ 0). The paper draws
  σ from {0.01, 0.05, 0.1, 0.25, 0.5}.
* :func:`heavy_tailed_rotation_noise` — NRDF-style: rotate every joint by a random axis
  (uniform on the sphere) and an angle ``min(scale·|X|, π)`` with ``X`` heavy-tailed
  (standard Cauchy or Student-t), so most joints move a little and a few move a lot. The
  perturbation is applied in the joint's local frame, ``q' = q ⊗ δ``.

Random numbers come from a ``numpy.random.Generator`` (seeded by the caller), so the same seed
gives the same noise on every platform; the maths is in torch. Quaternions are (w, x, y, z).
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import numpy as np
import torch

from .._checks import check_shape
from ..rotations import axis_angle_to_quat, quat_canonical, quat_mul, quat_normalize

__all__ = [
    "TAILS",
    "draw_scales",
    "gaussian_quat_noise",
    "heavy_tailed_angles",
    "heavy_tailed_rotation_noise",
]

#: heavy-tailed angle distributions: ``cauchy`` = |standard Cauchy| (half-Cauchy), ``t`` =
#: |Student-t with ``df`` degrees of freedom|.
TAILS = ("cauchy", "t")

ArrayLike = Union[np.ndarray, torch.Tensor, float]


def _as_scale(scale: ArrayLike, batch: torch.Size, like: torch.Tensor) -> torch.Tensor:
    s = torch.as_tensor(np.asarray(scale) if not isinstance(scale, torch.Tensor) else scale, dtype=like.dtype)
    s = s.to(like.device)
    if s.ndim == 0:
        s = s.expand(batch)
    if tuple(s.shape) != tuple(batch):
        raise ValueError(f"scale must be a scalar or have shape {tuple(batch)} (one per pose), got {tuple(s.shape)}")
    if bool((s < 0).any()) or not bool(torch.isfinite(s).all()):
        raise ValueError("scale must be finite and >= 0")
    return s


def draw_scales(
    rng: np.random.Generator, n: int, values: Sequence[float], shares: Sequence[float] | None = None
) -> np.ndarray:
    """Draw ``n`` noise scales from ``values`` with probabilities ``shares`` (uniform if None).

    Returns ``(n,)`` float32.
    """
    v = np.asarray(values, np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError(f"values must be a non-empty list of noise scales, got {values!r}")
    p = None
    if shares is not None:
        p = np.asarray(shares, np.float64)
        if p.shape != v.shape or (p < 0).any() or p.sum() <= 0:
            raise ValueError(f"shares must be {len(v)} non-negative numbers with a positive sum, got {shares!r}")
        p = p / p.sum()
    return v[rng.choice(len(v), size=n, p=p)].astype(np.float32)


def gaussian_quat_noise(q: torch.Tensor, sigma: ArrayLike, rng: np.random.Generator) -> torch.Tensor:
    """Pose-NDF noise: ``normalize(q + σ·ε)``, ``ε ~ N(0, I₄)`` per joint, then w ≥ 0.

    Args:
        q: ``(M, J, 4)`` unit quaternions (w, x, y, z).
        sigma: scalar or ``(M,)`` per-pose standard deviation (0 = unchanged).
        rng: numpy random generator.
    Returns:
        ``(M, J, 4)`` unit quaternions, w ≥ 0.
    """
    check_shape(q, (None, None, 4), "q")
    s = _as_scale(sigma, q.shape[:1], q)
    eps = torch.from_numpy(rng.standard_normal(tuple(q.shape)).astype(np.float32)).to(q)
    return quat_canonical(quat_normalize(q + s[:, None, None] * eps))


def heavy_tailed_angles(
    rng: np.random.Generator, shape: tuple, tail: str = "cauchy", df: float = 3.0
) -> np.ndarray:
    """Non-negative heavy-tailed samples ``|X|`` (float32) of the given shape.

    ``tail="cauchy"``: half-Cauchy (median 1). ``tail="t"``: |Student-t(df)|.
    """
    if tail == "cauchy":
        x = rng.standard_cauchy(shape)
    elif tail == "t":
        if not df > 0:
            raise ValueError(f"df must be > 0 for the Student-t tail, got {df}")
        x = rng.standard_t(df, shape)
    else:
        raise ValueError(f"tail must be one of {list(TAILS)}, got {tail!r}")
    return np.abs(x).astype(np.float32)


def heavy_tailed_rotation_noise(
    q: torch.Tensor,
    scale: ArrayLike,
    rng: np.random.Generator,
    tail: str = "cauchy",
    df: float = 3.0,
    max_angle: float = math.pi,
) -> torch.Tensor:
    """NRDF-style noise: per joint, a uniform random axis and angle ``min(scale·|X|, max_angle)``.

    Args:
        q: ``(M, J, 4)`` unit quaternions (w, x, y, z).
        scale: scalar or ``(M,)`` per-pose angle scale in radians (the median angle for the
            Cauchy tail; 0 = unchanged).
        rng: numpy random generator.
        tail: ``"cauchy"`` or ``"t"`` (see :func:`heavy_tailed_angles`).
        df: Student-t degrees of freedom.
        max_angle: angles are clipped to this (radians, ≤ π).
    Returns:
        ``(M, J, 4)`` unit quaternions, w ≥ 0.
    """
    check_shape(q, (None, None, 4), "q")
    if not 0 < max_angle <= math.pi:
        raise ValueError(f"max_angle must be in (0, pi], got {max_angle}")
    s = _as_scale(scale, q.shape[:1], q)
    m, j = q.shape[0], q.shape[1]
    axis = rng.standard_normal((m, j, 3)).astype(np.float32)
    axis /= np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-12)
    mag = torch.from_numpy(heavy_tailed_angles(rng, (m, j), tail, df)).to(q)
    angle = (s[:, None] * mag).clamp(max=max_angle)
    delta = axis_angle_to_quat(torch.from_numpy(axis).to(q) * angle[..., None])
    return quat_canonical(quat_normalize(quat_mul(q, delta)))
