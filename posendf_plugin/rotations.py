"""Rotation conversions and distances on unit quaternions.

Conventions (stated once, used everywhere in this package):

* **Quaternions are ``(w, x, y, z)``, real part first** — the pytorch3d convention. Shapes are
  ``(..., 4)``. Use :func:`quat_xyzw_to_wxyz` / :func:`quat_wxyz_to_xyzw` at the boundary with
  scipy or roma, which store ``(x, y, z, w)``.
* Rotation matrices act on **column vectors**: ``v' = R @ v``; shapes ``(..., 3, 3)``.
* Axis-angle (rotation vectors) are ``(..., 3)``: direction = axis, norm = angle in radians.
* The 6D representation is the pytorch3d one: the first two **rows** of the matrix, ``(..., 6)``.
* ``q`` and ``-q`` are the same rotation. :func:`quat_canonical` picks ``w >= 0``.

All functions are pure, differentiable and accept any number of leading batch dimensions.
Branches that would produce NaN gradients (the identity for axis-angle, zero-distance for
geodesics) use ``torch.where`` with a Taylor expansion or a safe square root; see comments.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._checks import as_tensor, check_shape

__all__ = [
    "quat_normalize",
    "quat_canonical",
    "quat_mul",
    "quat_conjugate",
    "quat_inverse",
    "quat_apply",
    "quat_identity",
    "quat_random",
    "quat_slerp",
    "quat_mean",
    "quat_xyzw_to_wxyz",
    "quat_wxyz_to_xyzw",
    "axis_angle_to_quat",
    "quat_to_axis_angle",
    "quat_to_matrix",
    "matrix_to_quat",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "matrix_to_rot6d",
    "rot6d_to_matrix",
    "quat_to_rot6d",
    "rot6d_to_quat",
    "quat_geodesic_angle",
    "posendf_joint_distance",
    "posendf_pose_distance",
    "nrdf_joint_distance",
    "nrdf_pose_distance",
]

_EPS = 1e-8


def _safe_sqrt(x: torch.Tensor, eps: float = 1e-24) -> torch.Tensor:
    """sqrt with a zero (sub)gradient at 0 instead of ``inf * 0 = NaN``."""
    return torch.sqrt(torch.clamp(x, min=eps))


# ---------------------------------------------------------------------------------------------
# Basic quaternion algebra
# ---------------------------------------------------------------------------------------------


def quat_normalize(q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale quaternions to unit norm. ``(..., 4) -> (..., 4)``, ``(w, x, y, z)``."""
    check_shape(q, ("*", 4), "q")
    return q / q.norm(dim=-1, keepdim=True).clamp(min=eps)


def quat_canonical(q: torch.Tensor) -> torch.Tensor:
    """Flip the sign so that ``w >= 0``. ``(..., 4) -> (..., 4)``, ``(w, x, y, z)``.

    ``q`` and ``-q`` are the same rotation; this picks one representative (Pose-NDF's "flip").
    Exactly ``w == 0`` keeps its sign.
    """
    check_shape(q, ("*", 4), "q")
    return torch.where(q[..., :1] < 0, -q, q)


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``a * b`` (apply ``b`` first, then ``a``). ``(..., 4)``, ``(w, x, y, z)``."""
    check_shape(a, ("*", 4), "a")
    check_shape(b, ("*", 4), "b")
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        dim=-1,
    )


def quat_conjugate(q: torch.Tensor) -> torch.Tensor:
    """Conjugate ``(w, -x, -y, -z)``; the inverse of a unit quaternion. ``(..., 4)``."""
    check_shape(q, ("*", 4), "q")
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def quat_inverse(q: torch.Tensor) -> torch.Tensor:
    """Inverse ``conj(q) / |q|^2`` (also correct for non-unit quaternions). ``(..., 4)``."""
    return quat_conjugate(q) / (q * q).sum(-1, keepdim=True).clamp(min=_EPS)


def quat_apply(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors ``v (..., 3)`` by unit quaternions ``q (..., 4)`` (broadcast)."""
    check_shape(q, ("*", 4), "q")
    check_shape(v, ("*", 3), "v")
    w, xyz = q[..., :1], q[..., 1:]
    t = 2.0 * torch.linalg.cross(xyz, v)  # linalg.cross broadcasts batch dims
    return v + w * t + torch.linalg.cross(xyz, t)


def quat_identity(*shape: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """Identity quaternions ``(*shape, 4)`` = ``(1, 0, 0, 0)``."""
    q = torch.zeros(*shape, 4, dtype=dtype, device=device)
    q[..., 0] = 1.0
    return q


def quat_random(
    *shape: int, generator: torch.Generator | None = None, dtype=torch.float32, device=None
) -> torch.Tensor:
    """Uniformly distributed random unit quaternions ``(*shape, 4)`` with ``w >= 0``.

    Normalised 4D Gaussians are uniform on S^3 (Haar measure on SO(3)).
    """
    g = torch.randn(*shape, 4, generator=generator, dtype=dtype, device=device)
    return quat_canonical(quat_normalize(g))


def quat_slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical linear interpolation along the shorter arc.

    Args:
        a, b: ``(..., 4)`` unit quaternions ``(w, x, y, z)``.
        t: scalar or tensor broadcastable to ``(...)``; 0 gives ``a``, 1 gives ``b``.
    Returns:
        ``(..., 4)`` unit quaternions.
    """
    check_shape(a, ("*", 4), "a")
    check_shape(b, ("*", 4), "b")
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    dot = (a * b).sum(-1, keepdim=True)
    b = torch.where(dot < 0, -b, b)  # shorter arc
    dot = dot.abs().clamp(max=1.0)
    t = t.unsqueeze(-1) if t.ndim > 0 else t
    theta = torch.acos(dot.clamp(max=1.0 - 1e-7))
    sin_theta = torch.sin(theta)
    near = dot > 0.9995  # nearly parallel: linear interpolation is accurate and stable
    wa = torch.where(near, 1.0 - t, torch.sin((1.0 - t) * theta) / sin_theta.clamp(min=_EPS))
    wb = torch.where(near, t, torch.sin(t * theta) / sin_theta.clamp(min=_EPS))
    return quat_normalize(wa * a + wb * b)


def quat_mean(q: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Chordal L2 mean of unit quaternions along ``dim`` (sign-invariant, Markley et al. 2007).

    The mean is the principal eigenvector of ``Σ q qᵀ``: the rotation minimising the sum of
    squared chordal distances ``‖R - R_i‖²_F``, so ``q`` and ``-q`` count as the same rotation.

    Args:
        q: ``(..., 4)`` unit quaternions ``(w, x, y, z)``.
        dim: the dimension averaged over (not the last one).
    Returns:
        ``q`` without ``dim``: unit quaternions with ``w >= 0``.
    """
    check_shape(q, ("*", 4), "q")
    dim = dim % q.ndim
    if dim == q.ndim - 1:
        raise ValueError("dim must not be the quaternion dimension (the last one)")
    if q.shape[dim] == 0:
        raise ValueError("cannot average an empty set of quaternions")
    qm = q.movedim(dim, -2).to(torch.float64)  # (..., N, 4)
    m = qm.transpose(-1, -2) @ qm  # (..., 4, 4)
    _, vecs = torch.linalg.eigh(m)
    return quat_canonical(vecs[..., -1]).to(q.dtype)


def quat_xyzw_to_wxyz(q: torch.Tensor) -> torch.Tensor:
    """Reorder scalar-last ``(x, y, z, w)`` (scipy, roma) to our ``(w, x, y, z)``; a numpy array
    (``Rotation.as_quat()``) becomes a tensor."""
    q = as_tensor(q, "q")
    check_shape(q, ("*", 4), "q")
    return torch.cat((q[..., 3:], q[..., :3]), dim=-1)


def quat_wxyz_to_xyzw(q: torch.Tensor) -> torch.Tensor:
    """Reorder our ``(w, x, y, z)`` to scalar-last ``(x, y, z, w)`` (scipy, roma)."""
    q = as_tensor(q, "q")
    check_shape(q, ("*", 4), "q")
    return torch.cat((q[..., 1:], q[..., :1]), dim=-1)


# ---------------------------------------------------------------------------------------------
# Conversions
# ---------------------------------------------------------------------------------------------


def axis_angle_to_quat(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` to unit quaternions ``(..., 4)``, ``(w, x, y, z)``, ``w >= 0``
    for angles ≤ π.

    ``q = (cos(θ/2), r·sin(θ/2)/θ)`` with ``sin(θ/2)/θ = sinc(θ/2π)/2`` (``torch.sinc`` is
    exact and smooth at 0, and the norm's gradient at 0 is 0), so values and gradients are
    finite at the identity without a case split — few operations, as a fitting loop calls this
    every step.
    """
    check_shape(aa, ("*", 3), "axis_angle")
    angle = torch.linalg.vector_norm(aa, dim=-1, keepdim=True)
    return torch.cat((torch.cos(0.5 * angle), aa * (0.5 * torch.sinc(angle * (0.5 / math.pi)))), dim=-1)


def quat_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` ``(w, x, y, z)`` to axis-angle ``(..., 3)``, angle in [0, π].

    The sign is canonicalised first (``w >= 0``). Near the identity ``θ / sin(θ/2)`` uses its
    Taylor series so values and gradients stay finite.
    """
    check_shape(q, ("*", 4), "q")
    q = quat_canonical(q)
    w, xyz = q[..., :1], q[..., 1:]
    sq = (xyz * xyz).sum(-1, keepdim=True)
    small = sq < 1e-6
    n = torch.sqrt(torch.where(small, torch.ones_like(sq), sq))
    # 2*atan2(n, w)/n  ->  for small n with w>0: 2/w * (1 - n²/(3 w²)) (series of atan)
    w_safe = torch.where(small, w.clamp(min=_EPS), torch.ones_like(w))
    k_small = 2.0 / w_safe * (1.0 - sq / (3.0 * w_safe * w_safe))
    k = torch.where(small, k_small, 2.0 * torch.atan2(n, w) / n)
    return xyz * k


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Quaternions ``(..., 4)`` ``(w, x, y, z)`` to rotation matrices ``(..., 3, 3)``.

    Non-unit input is normalised implicitly (``2/|q|²`` scaling).
    """
    check_shape(q, ("*", 4), "q")
    w, x, y, z = q.unbind(-1)
    s = 2.0 / (q * q).sum(-1).clamp(min=_EPS)
    m = torch.stack(
        (
            1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
            s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
            s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y),
        ),
        dim=-1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to unit quaternions ``(..., 4)``, ``(w, x, y, z)``, ``w >= 0``.

    Computes the four candidate solutions (each divides by one of 4|w|, 4|x|, 4|y|, 4|z|) and
    keeps the best conditioned one, so it is stable for every rotation, including 180°.
    """
    check_shape(m, ("*", 3, 3), "matrix")
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 * squared magnitudes of (w, x, y, z)
    four_sq = torch.stack(
        (1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22), -1
    )
    # sqrt with a zero subgradient at 0 (only the argmax candidate is used, which is >= 1).
    r = _safe_sqrt(four_sq, 1e-12)  # 2|w|, 2|x|, 2|y|, 2|z|
    cands = torch.stack(
        (
            torch.stack((r[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01), -1),
            torch.stack((m21 - m12, r[..., 1] ** 2, m10 + m01, m02 + m20), -1),
            torch.stack((m02 - m20, m10 + m01, r[..., 2] ** 2, m12 + m21), -1),
            torch.stack((m10 - m01, m20 + m02, m21 + m12, r[..., 3] ** 2), -1),
        ),
        dim=-2,
    )  # (..., 4 candidates, 4)
    cands = cands / (2.0 * r.clamp(min=0.1))[..., None]
    best = four_sq.argmax(dim=-1)
    idx = best[..., None, None].expand(best.shape + (1, 4))
    q = torch.gather(cands, -2, idx).squeeze(-2)
    return quat_canonical(quat_normalize(q))


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` to rotation matrices ``(..., 3, 3)``."""
    return quat_to_matrix(axis_angle_to_quat(aa))


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to axis-angle ``(..., 3)``."""
    return quat_to_axis_angle(matrix_to_quat(m))


def matrix_to_rot6d(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to 6D ``(..., 6)`` = first two rows (pytorch3d layout)."""
    check_shape(m, ("*", 3, 3), "matrix")
    return m[..., :2, :].reshape(m.shape[:-2] + (6,))


def rot6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """6D ``(..., 6)`` (two rows, pytorch3d layout) to rotation matrices ``(..., 3, 3)`` by
    Gram–Schmidt (Zhou et al. 2019)."""
    check_shape(d6, ("*", 6), "rot6d")
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-2)


def quat_to_rot6d(q: torch.Tensor) -> torch.Tensor:
    """Quaternions ``(..., 4)`` to 6D ``(..., 6)``."""
    return matrix_to_rot6d(quat_to_matrix(q))


def rot6d_to_quat(d6: torch.Tensor) -> torch.Tensor:
    """6D ``(..., 6)`` to quaternions ``(..., 4)``, ``w >= 0``."""
    return matrix_to_quat(rot6d_to_matrix(d6))


# ---------------------------------------------------------------------------------------------
# Distances
# ---------------------------------------------------------------------------------------------


def quat_geodesic_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rotation angle between ``a`` and ``b`` in radians, in [0, π]. ``(..., 4) -> (...)``.

    Computed as ``2·atan2(|vec(a⁻¹b)|, |w(a⁻¹b)|)`` rather than ``2·acos|⟨a,b⟩|``: acos has an
    infinite derivative at 1 (identical rotations) and loses precision there. The norm uses a
    safe square root whose subgradient at 0 is 0, so gradients are finite everywhere.
    """
    r = quat_mul(quat_conjugate(a), b)
    n = _safe_sqrt((r[..., 1:] ** 2).sum(-1))
    return 2.0 * torch.atan2(n, r[..., 0].abs())


def posendf_joint_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pose-NDF per-joint distance ``1 - |⟨a, b⟩|``. ``(..., 4) -> (...)``, in [0, 1].

    Sign-invariant (``q`` and ``-q`` give 0); equals ``1 - cos(θ/2)`` for relative angle θ.
    """
    check_shape(a, ("*", 4), "a")
    check_shape(b, ("*", 4), "b")
    return 1.0 - (a * b).sum(-1).abs()


def posendf_pose_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pose-NDF whole-pose distance: sum over joints of ``1 - |⟨a_k, b_k⟩|``.
    ``(..., J, 4) -> (...)``."""
    check_shape(a, ("*", None, 4), "a")
    return posendf_joint_distance(a, b).sum(-1)


def nrdf_joint_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """NRDF per-joint geodesic distance ``2·arccos|⟨a, b⟩|`` (the rotation angle, radians).
    ``(..., 4) -> (...)``; evaluated stably via :func:`quat_geodesic_angle`."""
    return quat_geodesic_angle(a, b)


def nrdf_pose_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """NRDF whole-pose distance: the geodesic distance on the product manifold SO(3)^J,
    ``sqrt(Σ_k θ_k²)`` with θ_k the per-joint angle. ``(..., J, 4) -> (...)``."""
    check_shape(a, ("*", None, 4), "a")
    return _safe_sqrt((nrdf_joint_distance(a, b) ** 2).sum(-1))
