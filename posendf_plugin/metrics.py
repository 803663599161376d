"""Prior-independent metrics of pose priors, as in the Pose-NDF paper and its benchmarks, so that
anyone can score their own prior's samples or energies the same way.

* :func:`apd_cm` — APD, average pairwise distance of samples (diversity), cm.
* :func:`fid` — Fréchet distance between Gaussians fitted to two feature sets (realism of
  samples against real poses; the benchmarks use joint positions in cm, so cm²).
* :func:`nearest_geodesic` — dNN, distance of each pose to its nearest reference pose
  (NRDF's whole-pose geodesic, radians); :func:`rms_deg` turns it into a per-joint angle.
* :func:`auroc` — area under the ROC curve of telling two sets apart by a score (e.g. a prior's
  energy on real vs noisy poses).
* :func:`joint_positions` — the features used for APD and FID: rest-skeleton joint positions
  of body poses.
* :func:`paired_ratio_ci` — a paired bootstrap interval of ``mean(errors) / mean(reference
  errors)`` over the same test items (images, windows, poses), to tell a real lead from a tie.

Poses are ``(N, 21, 4)`` body-joint quaternions, ``(w, x, y, z)`` (see
:mod:`posendf_plugin.rotations`), or any layout :func:`posendf_plugin.skeleton.to_body_quat`
reads (axis-angle ``(N, 63)`` / ``(N, 72)`` ..., rotation matrices; numpy or torch); joint
positions are metres. Example::

    from posendf_plugin import metrics as M
    pos = M.joint_positions(samples)                       # (N, 24, 3)
    diversity = M.apd_cm(pos)
    realism = M.fid(100 * pos[:, 1:].flatten(1), 100 * M.joint_positions(real)[:, 1:].flatten(1))
    d = M.nearest_geodesic(samples, training_poses)        # (N,) radians
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np
import torch

from ._checks import as_tensor, check_finite, check_shape, is_count
from .skeleton import NUM_BODY_JOINTS, body_joint_positions, to_body_quat

__all__ = ["joint_positions", "nearest_geodesic", "rms_deg", "apd_cm", "fid", "auroc", "paired_ratio_ci"]


def joint_positions(q) -> torch.Tensor:
    """``(N, 21, 4)`` poses (or any layout ``to_body_quat`` reads) -> ``(N, 24, 3)`` SMPL joint
    positions (metres) of the rest skeleton (:data:`posendf_plugin.skeleton.SMPL_REST_JOINTS`),
    root at the origin, unrotated. Any leading dimensions work: ``(..., 21, 4) -> (..., 24, 3)``."""
    return body_joint_positions(to_body_quat(q, "q").float())


def nearest_geodesic(q, reference, chunk: int = 64) -> torch.Tensor:
    """dNN: geodesic distance (radians, NRDF's ``sqrt(Σ_k θ_k²)`` over the 21 joints) of each pose
    of ``q (N, 21, 4)`` to its nearest pose in ``reference (M, 21, 4)``; ``(N,)`` float32.

    Brute force on ``q``'s device in float64, chunks of ``chunk`` query poses; per joint
    ``θ = 2 acos|⟨q, p⟩|`` (the same value as :func:`posendf_plugin.rotations.nrdf_pose_distance`,
    computed from dot products so that all pairs are one matmul per joint). Both sets are
    normalised to unit length first (:func:`~posendf_plugin.skeleton.to_body_quat`; a float16
    pose set is off by up to ~5e-4, which the ``acos`` would turn into 0.1 rad); ``q`` and
    ``-q`` are the same rotation (distance 0).

    Both sets may come in any layout :func:`~posendf_plugin.skeleton.to_body_quat` reads.

    Raises:
        ValueError: unknown layouts, an empty reference, or zero-length quaternions.
    """
    # normalised in float64: a float32 normalisation is off by ~1e-7, which the acos turns into ~1e-3 rad
    q = to_body_quat(as_tensor(q, "q").double(), "q").reshape(-1, NUM_BODY_JOINTS, 4)
    ref = to_body_quat(as_tensor(reference, "reference").to(q.device, torch.float64), "reference").reshape(-1, NUM_BODY_JOINTS, 4)
    if len(ref) == 0 and len(q):
        raise ValueError("reference must hold at least one pose")
    if not is_count(chunk, 1):
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    chunk = int(chunk)
    out = []
    for a in range(0, len(q), chunk):
        dots = torch.einsum("njk,mjk->nmj", q[a:a + chunk], ref).abs().clamp(max=1.0)  # (c, M, 21)
        theta = 2.0 * torch.acos(dots)
        out.append((theta ** 2).sum(-1).min(dim=1).values.sqrt().float())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float32, device=q.device)


def rms_deg(d: torch.Tensor) -> torch.Tensor:
    """Whole-pose geodesic distance (radians, any shape) -> RMS per-joint angle in degrees
    (``d / sqrt(21)``, same shape)."""
    return d / math.sqrt(NUM_BODY_JOINTS) * 180.0 / math.pi


def apd_cm(pos: torch.Tensor, chunk: int = 64) -> float:
    """APD: average pairwise distance of samples, in cm: mean over sample pairs ``i != j`` of the
    mean over joints of ``‖p_i - p_j‖``. ``pos``: ``(N, J, 3)`` metres (tensor or array),
    ``N >= 2``, finite."""
    pos = as_tensor(pos, "pos")
    check_shape(pos, (None, None, 3), "pos")
    if not is_count(chunk, 1):
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    n = len(pos)
    if n < 2:
        raise ValueError(f"APD needs at least 2 samples, got {n}")
    check_finite(pos.reshape(n, -1), "pos")
    total = 0.0
    for a in range(0, n, chunk):
        d = (pos[a:a + chunk, None] - pos[None]).norm(dim=-1).mean(-1)  # (c, N)
        total += float(d.sum())
    return 100.0 * total / (n * (n - 1))


def fid(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(N, D)`` and ``(M, D)``:
    ``‖μ_a − μ_b‖² + tr(Σ_a) + tr(Σ_b) − 2 tr((Σ_a Σ_b)^{1/2})`` in float64, in the squared unit
    of the features. The last trace is the sum of the square roots of the eigenvalues of
    ``Σ_a Σ_b`` (real and >= 0 for two PSD matrices; rounding noise is clipped), which stays
    finite for singular covariances. Needs at least 2 finite rows in each set (tensors or arrays)."""
    a, b = as_tensor(a, "a"), as_tensor(b, "b")
    check_shape(a, (None, None), "a")
    check_shape(b, (None, a.shape[1]), "b")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"FID needs at least 2 feature rows in each set, got {len(a)} and {len(b)}")
    check_finite(a, "a")
    check_finite(b, "b")
    x, y = a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy()
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    ev = np.linalg.eigvals(s1 @ s2)
    tr_sqrt = float(np.sqrt(np.clip(ev.real, 0.0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


def auroc(negative: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve of telling ``positive`` (should score higher) from
    ``negative`` by the score (tensors of any shape, flattened); 0.5 = chance, 1 = perfect.
    Ties count half. NaN and +inf scores count as the highest score (tied with each other), -inf
    as the lowest: a prior whose energy is NaN on a pose is not rewarded with a low score."""
    from sklearn.metrics import roc_auc_score

    negative, positive = as_tensor(negative, "negative"), as_tensor(positive, "positive")
    if negative.numel() == 0 or positive.numel() == 0:
        raise ValueError(f"AUROC needs scores in both sets, got {negative.numel()} and {positive.numel()}")
    s = torch.cat((negative.reshape(-1), positive.reshape(-1))).detach().double().cpu().numpy()
    y = np.r_[np.zeros(negative.numel()), np.ones(positive.numel())]
    if not np.isfinite(s).all():
        # sklearn refuses non-finite scores: put them just beyond the finite ones (ranks are all that count)
        finite = s[np.isfinite(s)]
        hi = np.nextafter(finite.max(), np.inf) if finite.size else 1.0
        lo = np.nextafter(finite.min(), -np.inf) if finite.size else -1.0
        s = np.where(np.isnan(s) | (s == np.inf), hi, np.where(s == -np.inf, lo, s))
    return float(roc_auc_score(y, s))


def paired_ratio_ci(values, reference, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> Tuple[float, float]:
    """Percentile bootstrap interval of ``mean(values) / mean(reference)``, resampling the items
    in pairs: ``values[i]`` and ``reference[i]`` are two methods' errors on the same item (one
    image, window or pose, same noise), so what the items share cancels out.

    Args:
        values, reference: ``(N,)`` per-item errors (tensors, arrays or lists; N >= 2, finite;
            ``reference`` must have a positive mean in every resample, i.e. errors >= 0 with at
            least one > 0).
        level: coverage in (0, 1), e.g. 0.95.
        resamples: bootstrap draws (>= 100).
        seed: the draws' seed (the interval is deterministic for a seed).

    Returns:
        ``(low, high)``: an interval straddling a target threshold means these items cannot
        tell passing from failing.
    """
    a = as_tensor(values, "values").detach().double().cpu().reshape(-1).numpy()
    b = as_tensor(reference, "reference").detach().double().cpu().reshape(-1).numpy()
    if a.shape != b.shape:
        raise ValueError(f"values and reference must hold the same items, got {a.size} and {b.size} numbers")
    if a.size < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 items, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("values and reference must be finite (NaN or inf per-item errors have no mean)")
    if (b < 0).any() or not (b > 0).any():
        raise ValueError("reference must hold errors >= 0 with at least one above 0 (the ratio's denominator)")
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if not is_count(resamples, 100):
        raise ValueError(f"resamples must be an integer >= 100, got {resamples!r}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(int(resamples), a.size))
    num, den = a[idx].mean(1), b[idx].mean(1)
    ratio = np.divide(num, den, out=np.full_like(num, np.inf), where=den > 0)
    tail = 50.0 * (1.0 - float(level))
    lo, hi = np.percentile(ratio, [tail, 100.0 - tail])
    return float(lo), float(hi)
