"""Projection of poses onto the zero level set of a distance field (pure functions).

Given a field ``f: (B, 21, 4) -> (B,)`` (e.g. :class:`posendf_plugin.model.PoseNDFNet`), each
step moves every pose against the gradient by the predicted distance:

* ``method="posendf"`` (Pose-NDF, Euclidean): ``q ← normalise(q − α·f·∇f / s)`` with the
  gradient ``∇f`` in R^(21·4) and the result renormalised per joint.
* ``method="riemannian"`` (NRDF): the gradient is first projected to each joint's tangent
  space of S³, ``g_k ← g_k − ⟨g_k, q_k⟩ q_k``, then the same step and per-joint
  renormalisation (a retraction back onto the sphere).

The scale ``s`` is ``‖∇f‖`` (``scaling="unit"``, the paper's formula, exact when f is a true
distance with ``‖∇f‖ = 1``) or ``‖P∇f‖²`` (``scaling="newton"``, the default), where ``P``
projects onto the joints' tangent spaces. Only the tangential part of a step survives the
per-joint renormalisation, and to first order it changes f by ``−α·f·‖P∇f‖²/s``: with the
Newton scale every step aims at ``f = 0`` exactly, for both methods, whatever the learned
gradient norm (a per-joint eikonal term makes the whole-pose norm up to √21, and Pose-NDF's
labels ``1 − |⟨q, p⟩|`` have a mostly radial R⁴ gradient near the data). The tangential part of
a step is at most ``max_step`` long (norm over all joints).

Poses stop moving once ``f <= tol``; the loop ends when all have converged or after
``max_iter`` steps. With ``monotone=True`` a step that would raise a pose's f is not taken and
that pose's step size halves instead (used where the zero level set may be out of reach, e.g. a
masked projection whose fixed joints are themselves off the manifold: the Newton step, aimed at
``f = 0``, would overshoot). Quaternions are ``(w, x, y, z)``; results are canonical (``w >= 0``), the
hemisphere the networks are trained on.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch

from ._checks import check_shape
from .priors.base import ProjectionResult
from .rotations import quat_canonical, quat_normalize
from .skeleton import NUM_BODY_JOINTS

__all__ = [
    "distance_and_gradient",
    "tangent_gradient",
    "projection_step",
    "project",
    "method_for_prior",
    "PROJECTION_METHODS",
]

PROJECTION_METHODS = ("posendf", "riemannian")
_EPS = 1e-12

DistanceFn = Callable[[torch.Tensor], torch.Tensor]


def method_for_prior(prior: str) -> str:
    """The projection a field trained as ``experiment.prior`` uses by default: ``nrdf`` →
    ``"riemannian"`` (its labels are geodesic), otherwise ``"posendf"``."""
    return "riemannian" if prior == "nrdf" else "posendf"


def distance_and_gradient(fn: DistanceFn, q: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Evaluate ``f = fn(q)`` ``(B,)`` and ``∇_q f`` ``(B, 21, 4)`` (plain, in R⁴ per joint).

    Works inside ``torch.no_grad()`` (gradients are enabled locally); returns detached tensors.
    """
    with torch.enable_grad():
        x = q.detach().requires_grad_(True)
        f = fn(x)
        (g,) = torch.autograd.grad(f.sum(), x)
    return f.detach(), g


def tangent_gradient(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Component of ``g`` in the tangent space of S³ at each unit quaternion:
    ``g − ⟨g, q⟩ q``. ``(..., 4), (..., 4) -> (..., 4)``."""
    return g - (g * q).sum(-1, keepdim=True) * q


def projection_step(
    q: torch.Tensor,
    f: torch.Tensor,
    g: torch.Tensor,
    step_size: float = 1.0,
    method: str = "posendf",
    scaling: str = "newton",
    max_step: float = 1.0,
    free: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """One projection step (see the module docstring).

    Args:
        q: ``(B, 21, 4)`` unit quaternions ``(w, x, y, z)``.
        f: ``(B,)`` distances at ``q``.
        g: ``(B, 21, 4)`` gradient ``∇_q f`` (plain; the Riemannian method projects it).
        step_size: α, a number or a ``(B,)`` tensor (one per pose).
        method: ``"posendf"`` or ``"riemannian"``.
        scaling: ``"newton"`` (divide by ‖g‖²) or ``"unit"`` (divide by ‖g‖).
        max_step: longest allowed step (norm over all joints).
        free: optional ``(B, 21)`` bool, the joints that may move (the others keep their
            rotation exactly: their gradient is dropped, and the Newton scale uses the free
            joints' gradient only).
    Returns:
        ``(B, 21, 4)`` unit quaternions, ``w >= 0``.
    """
    if method not in PROJECTION_METHODS:
        raise ValueError(f"unknown projection method {method!r}; use one of {PROJECTION_METHODS}")
    if free is not None:
        g = g * free[..., None].to(g.dtype)
    g_t = tangent_gradient(q, g)
    if method == "riemannian":
        g = g_t
    if scaling == "newton":
        scale = f / (g_t * g_t).sum(dim=(-1, -2)).clamp(min=_EPS)
    elif scaling == "unit":
        scale = f / (g * g).sum(dim=(-1, -2)).clamp(min=_EPS).sqrt()
    else:
        raise ValueError(f"unknown scaling {scaling!r}; use 'newton' or 'unit'")
    delta = (step_size * scale)[:, None, None] * g
    # the radial part of a Euclidean step is undone by the renormalisation: bound the rest
    length = tangent_gradient(q, delta).flatten(1).norm(dim=-1)
    delta = delta * (max_step / length.clamp(min=max_step))[:, None, None]
    return quat_canonical(quat_normalize(q - delta))


def project(
    fn: DistanceFn,
    q: torch.Tensor,
    method: str = "posendf",
    step_size: float = 1.0,
    max_iter: int = 100,
    tol: float = 1e-3,
    scaling: str = "newton",
    max_step: float = 1.0,
    free: Optional[torch.Tensor] = None,
    monotone: bool = False,
) -> ProjectionResult:
    """Project poses onto ``{f = 0}`` by repeated :func:`projection_step`.

    Args:
        fn: distance field ``(B, 21, 4) -> (B,)``.
        q: ``(B, 21, 4)`` unit quaternions ``(w, x, y, z)`` (validated by the caller).
        method, step_size, scaling, max_step: see :func:`projection_step`.
        max_iter: iteration cap (gradient evaluations per pose).
        tol: a pose has converged once ``f <= tol``; it then stops moving.
        free: optional ``(B, 21)`` bool: only these joints move (e.g. the unknown joints of a
            pose completion); see :func:`projection_step`.
        monotone: reject a step that raises f and halve that pose's step size (see the module
            docstring); ``iterations`` then counts the steps taken.
    Returns:
        :class:`ProjectionResult` with the poses, ``f`` after projection, a ``converged`` flag
        and the number of steps each pose took.
    """
    check_shape(q, (None, NUM_BODY_JOINTS, 4), "q")
    if method not in PROJECTION_METHODS:
        raise ValueError(f"unknown projection method {method!r}; use one of {PROJECTION_METHODS}")
    if not (max_iter >= 0 and tol >= 0 and step_size > 0 and 0 < max_step < float("inf")):
        raise ValueError(f"need max_iter >= 0, tol >= 0, step_size > 0 and a finite max_step > 0; got {max_iter}, {tol}, "
                         f"{step_size}, {max_step}")
    if free is not None:
        check_shape(free, (q.shape[0], NUM_BODY_JOINTS), "free")
        free = free.to(device=q.device, dtype=torch.bool)
    q = quat_canonical(quat_normalize(q.detach()))
    if monotone:
        return _project_monotone(fn, q, method, step_size, max_iter, tol, scaling, max_step, free)
    B = q.shape[0]
    iterations = torch.zeros(B, dtype=torch.long, device=q.device)
    dist = torch.full((B,), float("inf"), dtype=q.dtype, device=q.device)
    active = torch.arange(B, device=q.device)
    for _ in range(max_iter):
        if active.numel() == 0:
            break
        f, g = distance_and_gradient(fn, q[active])
        dist[active] = f
        moving = f > tol
        active = active[moving]
        if active.numel() == 0:
            break
        q[active] = projection_step(q[active], f[moving], g[moving], step_size, method, scaling, max_step,
                                    None if free is None else free[active])
        iterations[active] += 1
        dist[active] = float("inf")  # moved: re-evaluated below or in the next iteration
    stale = torch.nonzero(torch.isinf(dist)).flatten()
    if stale.numel():
        with torch.no_grad():
            dist[stale] = fn(q[stale]).detach()
    return ProjectionResult(poses=q, distance=dist, converged=dist <= tol, iterations=iterations)


def _project_monotone(fn: DistanceFn, q: torch.Tensor, method: str, step_size: float, max_iter: int, tol: float,
                      scaling: str, max_step: float, free: Optional[torch.Tensor]) -> ProjectionResult:
    """:func:`project` with ``monotone=True``: ``q`` ``(B, 21, 4)`` canonical unit quaternions."""
    alpha = torch.full((q.shape[0],), float(step_size), dtype=q.dtype, device=q.device)
    iterations = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    f, g = distance_and_gradient(fn, q)
    for _ in range(max_iter):
        moving = f > tol
        if not bool(moving.any()):
            break
        cand = projection_step(q, f, g, alpha, method, scaling, max_step, free)
        f_new, g_new = distance_and_gradient(fn, cand)
        ok = (f_new <= f) & moving
        q = torch.where(ok[:, None, None], cand, q)
        f = torch.where(ok, f_new, f)
        g = torch.where(ok[:, None, None], g_new, g)
        alpha = torch.where(ok | ~moving, alpha, alpha / 2)
        iterations += ok.long()
    return ProjectionResult(poses=q, distance=f, converged=f <= tol, iterations=iterations)
