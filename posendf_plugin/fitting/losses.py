"""Loss terms and error metrics for fitting a body model (pure functions, no state).

Conventions:

* Camera frame: OpenCV (x right, y down, z forward, looking along +z); the body model is Y-up
  and faces +Z, so an upright person facing the camera has root orientation ``(π, 0, 0)``.
* Lengths are in the units of the input (metres for 3D, pixels for 2D) unless a function says
  otherwise; the ``*_mm`` helpers of the callers multiply by 1000.
* Shapes are given as ``(..., K, 3)``: any number of leading batch dimensions.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .._checks import check_shape

__all__ = [
    "BEND_PENALTY_INDICES",
    "BEND_PENALTY_SIGNS",
    "perspective_projection",
    "gmof",
    "reprojection_loss",
    "bend_penalty",
    "shape_prior",
    "velocity_loss",
    "acceleration_loss",
    "procrustes_align",
    "mpjpe",
    "pa_mpjpe",
    "v2v",
    "acceleration_error",
]

#: Entries of the flat 21-joint body pose (63 axis-angle values) that SMPLify's angle prior
#: penalises: left elbow y, right elbow y, left knee x, right knee x (SMPLify's full-pose
#: indices 55, 58, 12, 15 minus the 3 root values).
BEND_PENALTY_INDICES: Tuple[int, ...] = (52, 55, 9, 12)
#: Sign making the unnatural bend direction positive (exp grows for the wrong way).
BEND_PENALTY_SIGNS: Tuple[float, ...] = (1.0, -1.0, -1.0, -1.0)


def perspective_projection(
    points: torch.Tensor,
    focal_length: torch.Tensor,
    camera_center: torch.Tensor,
    translation: Optional[torch.Tensor] = None,
    rotation: Optional[torch.Tensor] = None,
    min_depth: float = 1e-3,
) -> torch.Tensor:
    """Pinhole projection ``u = f * X / Z + c`` of camera-frame points.

    Args:
        points: ``(..., N, 3)`` points (metres).
        focal_length: ``(...,)``, ``(..., 1)`` or ``(..., 2)`` focal length(s) in pixels.
        camera_center: ``(..., 2)`` principal point in pixels.
        translation: optional ``(..., 3)`` added to the points (after ``rotation``).
        rotation: optional ``(..., 3, 3)`` applied to the points first.
        min_depth: depths are clamped to at least this (points behind the camera do not
            produce infinities; their gradients are cut there).
    Returns:
        ``(..., N, 2)`` pixel coordinates.
    """
    check_shape(points, ("*", None, 3), "points")
    check_shape(camera_center, ("*", 2), "camera_center")
    x = points
    if rotation is not None:
        check_shape(rotation, ("*", 3, 3), "rotation")
        x = x @ rotation.transpose(-1, -2)
    if translation is not None:
        check_shape(translation, ("*", 3), "translation")
        x = x + translation.unsqueeze(-2)
    f = torch.as_tensor(focal_length, dtype=x.dtype, device=x.device)
    if f.ndim == 0 or f.shape[-1] not in (1, 2):
        f = f.unsqueeze(-1)
    z = x[..., 2:3].clamp(min=min_depth)
    return f.unsqueeze(-2) * x[..., :2] / z + camera_center.unsqueeze(-2)


def gmof(residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure robust penalty ``σ² r² / (σ² + r²)`` (SMPLify's ``GMoF``), elementwise.

    Quadratic (``≈ r²``) for ``|r| ≪ σ``, saturating at ``σ²`` for outliers.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    r2 = residual ** 2
    s2 = sigma ** 2
    return s2 * r2 / (s2 + r2)


def reprojection_loss(
    projected: torch.Tensor,
    keypoints: torch.Tensor,
    confidence: torch.Tensor,
    sigma: float = 100.0,
    weights: Optional[torch.Tensor] = None,
    scale: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Robust 2D reprojection error, summed over keypoints.

    ``sum_k w_k c_k² ρ(‖(p_k - x_k) / s‖)`` with ``ρ`` = :func:`gmof` applied to each of the
    two coordinates (as SMPLify does). Keypoints with confidence 0 contribute nothing.

    Args:
        projected: ``(..., K, 2)`` projected model keypoints (pixels).
        keypoints: ``(..., K, 2)`` detected keypoints (pixels).
        confidence: ``(..., K)`` detection confidences in ``[0, 1]``.
        sigma: GMoF scale in the units of the (scaled) residual.
        weights: optional ``(K,)`` or ``(..., K)`` per-keypoint weights.
        scale: optional ``(...,)`` divisor of the residuals (e.g. the person's size in
            pixels, to make the loss independent of the image resolution).
    Returns:
        ``(...)`` loss per person.
    """
    check_shape(projected, ("*", None, 2), "projected")
    check_shape(keypoints, tuple(["*"]) + tuple(projected.shape[-2:]), "keypoints")
    check_shape(confidence, ("*", projected.shape[-2]), "confidence")
    res = projected - keypoints
    if scale is not None:
        res = res / scale[..., None, None]
    w = confidence ** 2
    if weights is not None:
        w = w * weights
    return (w.unsqueeze(-1) * gmof(res, sigma)).sum(dim=(-1, -2))


def bend_penalty(body_pose: torch.Tensor) -> torch.Tensor:
    """SMPLify's angle prior: ``sum exp(s_i θ_i)²`` over elbows and knees bending the wrong way.

    Args:
        body_pose: ``(..., 63)`` or ``(..., 69)`` axis-angle body pose (SMPL joint order, the
            21 body joints first); the penalised entries are :data:`BEND_PENALTY_INDICES`.
    Returns:
        ``(...)`` penalty (4 for the rest pose, growing exponentially as a joint bends backwards).
    """
    check_shape(body_pose, ("*", None), "body_pose")
    if body_pose.shape[-1] not in (63, 69):
        raise ValueError(f"body_pose must have 63 or 69 values (axis-angle), got {tuple(body_pose.shape)}")
    idx = torch.as_tensor(BEND_PENALTY_INDICES, device=body_pose.device)
    signs = torch.as_tensor(BEND_PENALTY_SIGNS, dtype=body_pose.dtype, device=body_pose.device)
    return torch.exp(body_pose[..., idx] * signs).pow(2).sum(-1)


def shape_prior(betas: torch.Tensor) -> torch.Tensor:
    """``‖β‖²`` ``(..., n) -> (...)``: keeps the shape near the mean body."""
    check_shape(betas, ("*", None), "betas")
    return (betas ** 2).sum(-1)


def velocity_loss(x: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Mean first difference along time, ``(T, ..., D) -> ()``.

    ``mean_t ‖x_{t+1} - x_t‖`` over the last dimension (squared norms with ``squared``);
    zero for fewer than 2 frames.
    """
    if x.ndim < 2:
        raise ValueError(f"x must have shape (T, ..., D), got {tuple(x.shape)}")
    if x.shape[0] < 2:
        return x.sum() * 0.0
    d = x[1:] - x[:-1]
    n = (d ** 2).sum(-1)
    return n.mean() if squared else torch.sqrt(n + 1e-12).mean()


def acceleration_loss(x: torch.Tensor, squared: bool = True) -> torch.Tensor:
    """Mean second difference along time, ``(T, ..., D) -> ()``:
    ``mean_t ‖x_{t+1} - 2 x_t + x_{t-1}‖²`` (plain norms without ``squared``)."""
    if x.ndim < 2:
        raise ValueError(f"x must have shape (T, ..., D), got {tuple(x.shape)}")
    if x.shape[0] < 3:
        return x.sum() * 0.0
    a = x[2:] - 2 * x[1:-1] + x[:-2]
    n = (a ** 2).sum(-1)
    return n.mean() if squared else torch.sqrt(n + 1e-12).mean()


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def procrustes_align(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Similarity-align ``pred`` to ``gt`` (scale, rotation, translation; Umeyama).

    Args:
        pred, gt: ``(..., N, 3)`` point sets.
    Returns:
        ``(..., N, 3)`` aligned ``pred``. Reflections are excluded.
    """
    check_shape(pred, ("*", None, 3), "pred")
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape")
    mp, mg = pred.mean(-2, keepdim=True), gt.mean(-2, keepdim=True)
    p, g = pred - mp, gt - mg
    cov = g.transpose(-1, -2) @ p  # (..., 3, 3)
    u, s, vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(u @ vh))
    diag = torch.ones_like(s)
    diag[..., -1] = d
    rot = u @ torch.diag_embed(diag) @ vh
    var = (p ** 2).sum(dim=(-1, -2)).clamp(min=1e-12)
    scale = (s * diag).sum(-1) / var
    return scale[..., None, None] * (p @ rot.transpose(-1, -2)) + mg


def mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error ``(..., J, 3) -> (...)`` (input units)."""
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape")
    return (pred - gt).norm(dim=-1).mean(-1)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """MPJPE after Procrustes (similarity) alignment of each pose, ``(..., J, 3) -> (...)``."""
    return mpjpe(procrustes_align(pred, gt), gt)


def v2v(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean vertex-to-vertex distance ``(..., V, 3) -> (...)`` (same mesh topology)."""
    return mpjpe(pred, gt)


def acceleration_error(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean error of the per-frame acceleration ``x_{t+1} - 2x_t + x_{t-1}``.

    Args:
        pred, gt: ``(T, J, 3)`` joint trajectories, ``T >= 3``.
    Returns:
        ``()`` mean over frames and joints of ``‖a_pred - a_gt‖`` (input units per frame²).
    """
    check_shape(pred, (None, None, 3), "pred")
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape")
    if pred.shape[0] < 3:
        raise ValueError(f"acceleration needs at least 3 frames, got {pred.shape[0]}")

    def acc(x):
        return x[2:] - 2 * x[1:-1] + x[:-2]

    return (acc(pred) - acc(gt)).norm(dim=-1).mean()
