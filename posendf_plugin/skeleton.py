"""The SMPL kinematic tree, the 21 body joints the prior models, and pose layouts.

* SMPL has 24 joints (:data:`SMPL_JOINT_NAMES`, parents :data:`SMPL_PARENTS`). Joint 0 is the
  pelvis (root, "global orient"); joints 22/23 are the hands, which SMPL-X / SMPL+H replace by
  finger chains.
* The prior models the **21 body joints** SMPL 1..21 (:data:`BODY_JOINT_NAMES`): no root, no
  hands. Their parents inside that list are :data:`BODY_PARENTS` (``-1`` = the pelvis).
* Pose layouts (axis-angle, flattened, joint-major ``[j0x, j0y, j0z, j1x, ...]``):

  =====  ===============================================================
  63     AMASS ``pose_body`` / SMPL-X ``body_pose``: 21 body joints
  69     SMPL ``body_pose``: 23 joints = 21 body + 2 hands
  72     SMPL full pose: root + 23 joints
  156    SMPL+H / AMASS ``poses``: root + 21 body + 30 finger joints
  165    SMPL-X full: root + 21 body + jaw + 2 eyes + 30 finger joints
  =====  ===============================================================

Coordinates: the SMPL rest pose is Y-up, facing +Z, subject's left = +X (as in SMPL). AMASS
stores the *root orientation* in a Z-up world; body joints are local and unaffected.
Quaternions are ``(w, x, y, z)`` (see :mod:`posendf_plugin.rotations`).
"""
from __future__ import annotations

import math
import warnings
from typing import Dict, Optional, Tuple

import torch

from . import rotations as R
from ._checks import as_tensor, check_finite, check_shape

__all__ = [
    "SMPL_JOINT_NAMES",
    "SMPL_PARENTS",
    "NUM_SMPL_JOINTS",
    "NUM_BODY_JOINTS",
    "BODY_JOINT_NAMES",
    "BODY_PARENTS",
    "BODY_JOINT_TO_SMPL",
    "POSE_LAYOUTS",
    "SMPL_REST_JOINTS",
    "is_axis_angle",
    "body_axis_angle",
    "pose_to_quat",
    "quat_to_pose",
    "to_body_quat",
    "pose_units_problem",
    "set_body_pose",
    "forward_kinematics",
    "body_joint_positions",
    "BODY_MIRROR",
    "SKELETON_SIDE_COLOURS",
    "mirror_body_quat",
    "with_mirror_images",
]

SMPL_JOINT_NAMES: Tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)
SMPL_PARENTS: Tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)
NUM_SMPL_JOINTS = 24
NUM_BODY_JOINTS = 21
#: SMPL indices of the 21 body joints (SMPL joints 1..21).
BODY_JOINT_TO_SMPL: Tuple[int, ...] = tuple(range(1, NUM_BODY_JOINTS + 1))
BODY_JOINT_NAMES: Tuple[str, ...] = tuple(SMPL_JOINT_NAMES[i] for i in BODY_JOINT_TO_SMPL)
#: Parent of each body joint as an index into the body joints; -1 means the pelvis.
BODY_PARENTS: Tuple[int, ...] = tuple(SMPL_PARENTS[i] - 1 for i in BODY_JOINT_TO_SMPL)

#: width -> (name, offset of the first body joint in joints, number of joints)
POSE_LAYOUTS: Dict[int, Tuple[str, int, int]] = {
    63: ("AMASS pose_body / SMPL-X body_pose (21 joints)", 0, 21),
    69: ("SMPL body_pose (23 joints incl. hands)", 0, 23),
    72: ("SMPL full pose (root + 23 joints)", 1, 24),
    156: ("SMPL+H / AMASS poses (root + 21 body + 30 hand joints)", 1, 52),
    165: ("SMPL-X full pose (root + 21 body + jaw + eyes + 30 hand joints)", 1, 55),
}

#: Largest axis-angle value a pose file (or a one-off call's poses) may hold, radians: a rotation
#: needs at most pi, degrees at most a few turns; beyond it the array is no pose in any unit
#: (:func:`pose_units_problem`). Energies inside fits are not range-checked: a host's line search
#: may try such points, and an exception would end its fit.
AXIS_ANGLE_LIMIT = 1e4

#: Rest-pose joint positions (metres, Y-up, facing +Z, left = +X) of a plausible mean adult
#: on the SMPL tree, pelvis at the origin. Used by the embedded body model and for measuring
#: bone directions. Not the licensed SMPL template: a stand-in with the same topology.
SMPL_REST_JOINTS = torch.tensor(
    [
        [0.000, 0.000, 0.000],     # pelvis
        [0.070, -0.090, 0.000],    # left_hip
        [-0.070, -0.090, 0.000],   # right_hip
        [0.000, 0.110, -0.015],    # spine1
        [0.105, -0.470, 0.005],    # left_knee
        [-0.105, -0.470, 0.005],   # right_knee
        [0.000, 0.245, 0.000],     # spine2
        [0.125, -0.880, -0.035],   # left_ankle
        [-0.125, -0.880, -0.035],  # right_ankle
        [0.000, 0.300, 0.020],     # spine3
        [0.140, -0.940, 0.090],    # left_foot
        [-0.140, -0.940, 0.090],   # right_foot
        [0.000, 0.510, -0.010],    # neck
        [0.075, 0.420, 0.000],     # left_collar
        [-0.075, 0.420, 0.000],    # right_collar
        [0.000, 0.600, 0.040],     # head
        [0.180, 0.455, -0.015],    # left_shoulder
        [-0.180, 0.455, -0.015],   # right_shoulder
        [0.440, 0.440, -0.035],    # left_elbow
        [-0.440, 0.440, -0.035],   # right_elbow
        [0.690, 0.445, -0.025],    # left_wrist
        [-0.690, 0.445, -0.025],   # right_wrist
        [0.775, 0.440, -0.035],    # left_hand
        [-0.775, 0.440, -0.035],   # right_hand
    ],
    dtype=torch.float32,
)


def _layouts_text() -> str:
    return ", ".join(f"{w} = {name}" for w, (name, _, _) in POSE_LAYOUTS.items())


def is_axis_angle(x: torch.Tensor) -> bool:
    """Whether ``x`` has an axis-angle body-pose layout: ``(..., W)`` with W in
    :data:`POSE_LAYOUTS` or ``(..., 21, 3)`` (what :func:`body_axis_angle` takes)."""
    return (x.ndim >= 1 and x.shape[-1] in POSE_LAYOUTS) or (x.ndim >= 2 and x.shape[-2:] == (NUM_BODY_JOINTS, 3))


def body_axis_angle(pose, name: str = "pose") -> torch.Tensor:
    """The 21 body joints of an axis-angle pose of any supported layout, as given (no
    conversion). ``(..., W)`` with W in :data:`POSE_LAYOUTS`, or ``(..., 21, 3)`` -> ``(..., 21, 3)``.

    Raises:
        ValueError: unsupported width (the message lists the accepted layouts) or NaN/Inf.
    """
    pose = as_tensor(pose, name)
    if pose.ndim >= 2 and pose.shape[-2:] == (NUM_BODY_JOINTS, 3):
        aa = pose
    else:
        if pose.ndim == 0 or pose.shape[-1] not in POSE_LAYOUTS:
            raise ValueError(
                f"{name} has shape {tuple(pose.shape)}: the last dimension must be one of the "
                f"axis-angle layouts {_layouts_text()}; or pass (..., 21, 3) axis-angle, "
                "(..., 21, 4) quaternions or (..., 21, 3, 3) rotation matrices to to_body_quat"
            )
        _, first, _ = POSE_LAYOUTS[pose.shape[-1]]
        aa = pose.reshape(pose.shape[:-1] + (pose.shape[-1] // 3, 3))[..., first:first + NUM_BODY_JOINTS, :]
    check_finite(aa.reshape(-1, NUM_BODY_JOINTS * 3) if aa.ndim > 2 else aa.reshape(1, -1), name)
    return aa


def pose_to_quat(pose: torch.Tensor) -> torch.Tensor:
    """Axis-angle pose of any supported layout to body-joint quaternions.

    Args:
        pose: ``(..., W)`` axis-angle with W in :data:`POSE_LAYOUTS` (63, 69, 72, 156, 165), or
            ``(..., 21, 3)``.
    Returns:
        ``(..., 21, 4)`` unit quaternions ``(w, x, y, z)`` with ``w >= 0``.
    Raises:
        ValueError: unsupported width (the message lists the accepted layouts) or NaN/Inf.
    """
    return R.quat_canonical(R.axis_angle_to_quat(body_axis_angle(pose)))


def quat_to_pose(q: torch.Tensor, layout: int = 63) -> torch.Tensor:
    """Body-joint quaternions ``(..., 21, 4)`` to a flat axis-angle pose ``(..., layout)``.

    Joints the prior does not model (root, hands, jaw, eyes, fingers) are set to zero.
    """
    check_shape(q, ("*", NUM_BODY_JOINTS, 4), "quaternions")
    if layout not in POSE_LAYOUTS:
        raise ValueError(f"layout must be one of {_layouts_text()}, got {layout}")
    _, first, n = POSE_LAYOUTS[layout]
    aa = R.quat_to_axis_angle(q)
    out = aa.new_zeros(aa.shape[:-2] + (n, 3))
    out[..., first:first + NUM_BODY_JOINTS, :] = aa
    return out.reshape(aa.shape[:-2] + (n * 3,))


def to_body_quat(x, name: str = "poses") -> torch.Tensor:
    """Any supported body-pose representation to ``(..., 21, 4)`` unit quaternions, ``w >= 0``.

    Accepted (autodetected from the trailing dimensions):

    * ``(..., 21, 4)`` quaternions ``(w, x, y, z)``; non-unit ones are normalised with a
      warning, all-zero ones are rejected.
    * ``(..., 21, 3, 3)`` rotation matrices; also SMPL's ``(..., 24, 3, 3)`` (root first, e.g.
      SPIN's ``pred_rotmat``) and ``(..., 23, 3, 3)`` (no root), whose body joints are taken.
      Matrices must be rotations (orthonormal, determinant +1, to 1e-2).
    * ``(..., 21, 3)`` axis-angle, or flat axis-angle ``(..., W)`` with W in 63/69/72/156/165.

    Raises:
        ValueError: unknown layout, NaN/Inf (naming the rows), zero quaternions or matrices that
            are not rotations.
    """
    x = as_tensor(x, name)
    if x.ndim >= 3 and x.shape[-2:] == (3, 3) and x.shape[-3] in _MATRIX_FIRST:
        first = _MATRIX_FIRST[x.shape[-3]]
        x = x[..., first:first + NUM_BODY_JOINTS, :, :]
        check_finite(x.reshape(-1, NUM_BODY_JOINTS * 9), name)
        _check_rotations(x, name)
        return R.matrix_to_quat(x)
    if x.ndim >= 2 and x.shape[-2:] == (NUM_BODY_JOINTS, 4):
        check_finite(x.reshape(-1, NUM_BODY_JOINTS * 4), name)
        norm = x.norm(dim=-1)
        if bool((norm < 1e-6).any()):
            rows = torch.nonzero((norm < 1e-6).reshape(-1, NUM_BODY_JOINTS).any(-1)).flatten()
            raise ValueError(
                f"{name} has zero-length quaternions in row(s) {rows.tolist()[:10]}: a quaternion "
                "must be (w, x, y, z) with non-zero norm; use (1, 0, 0, 0) for 'no rotation'"
            )
        dev = float((norm.detach() - 1).abs().max()) if norm.numel() else 0.0  # empty input: nothing to check
        if dev > 1e-3:
            warnings.warn(
                f"{name}: quaternions are not unit length (max |norm - 1| = {dev:.3g}); "
                "normalising them",
                stacklevel=2,
            )
        return R.quat_canonical(x / norm.unsqueeze(-1))
    if is_axis_angle(x):
        return pose_to_quat(x)
    raise ValueError(
        f"{name} has shape {tuple(x.shape)}, which is not a supported body-pose layout. Accepted: "
        f"(..., 21, 4) quaternions (w, x, y, z); (..., 21 / 23 / 24, 3, 3) rotation matrices; (..., 21, 3) "
        f"axis-angle; or flat axis-angle with last dimension {_layouts_text()}"
    )


#: rotation-matrix layouts ``(..., J, 3, 3)``: J -> index of the first body joint
_MATRIX_FIRST = {NUM_BODY_JOINTS: 0, 23: 0, 24: 1}


def _check_rotations(m: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` naming the rows of ``m (..., 21, 3, 3)`` that are not rotation matrices."""
    if m.numel() == 0:
        return
    md = m.detach().to(torch.float64)
    eye = torch.eye(3, dtype=md.dtype, device=md.device)
    off = (md.transpose(-1, -2) @ md - eye).abs().amax(dim=(-1, -2))  # (..., 21)
    bad = (off > 1e-2) | (torch.linalg.det(md) < 0)
    if bool(bad.any()):
        rows = torch.nonzero(bad.reshape(-1, NUM_BODY_JOINTS).any(-1)).flatten()
        raise ValueError(
            f"{name} holds matrices that are not rotations in row(s) {rows.tolist()[:10]} (RᵀR ≠ I by up to "
            f"{float(off.max()):.3g}, or a reflection with determinant < 0); pass rotation matrices, e.g. from "
            "axis-angle with posendf_plugin.rotations.axis_angle_to_matrix"
        )


def pose_units_problem(x) -> Optional[str]:
    """Why a body-pose array read from a file looks like the wrong units or component order, or
    ``None`` when it looks right (or holds NaN / Inf, which the readers report themselves). Files
    are checked with this; tensors inside a fit are not.

    * Axis-angle (any layout of :func:`to_body_quat`) is read as radians: when more than 5 % of
      the body joints turn by more than a full turn (2π), or any by more than 4π, the values are
      degrees (a real motion turns many joints by more than 6.3°, and radians never need 2π).
    * Axis-angle values beyond :data:`AXIS_ANGLE_LIMIT` are no rotation in any unit.
    * Quaternions ``(..., 21, 4)`` are read as ``(w, x, y, z)``: when the mean ``|w|`` is below
      0.5 (the average body joint turned by more than 120°) and the last component's is larger
      by 0.3, the order is ``(x, y, z, w)`` (uniformly random rotations have both near 0.42).
    """
    x = as_tensor(x, "pose").detach().double()
    if x.numel() == 0 or not bool(torch.isfinite(x).all()):
        return None  # NaN / Inf: the readers' own finiteness check names the frames
    if x.ndim >= 2 and x.shape[-2:] == (NUM_BODY_JOINTS, 4):
        a = x.abs().reshape(-1, 4).mean(0)
        if float(a[0]) < 0.5 and float(a[3]) > float(a[0]) + 0.3:
            return (f"the quaternions look like (x, y, z, w) order (mean |first| {float(a[0]):.2f}, mean |last| "
                    f"{float(a[3]):.2f}); this package reads (w, x, y, z) — reorder with q[..., [3, 0, 1, 2]]")
        return None
    if not is_axis_angle(x):
        return None
    big = float(x.abs().max())
    if big > AXIS_ANGLE_LIMIT:
        return (f"axis-angle values reach {big:.3g}, neither radians nor degrees of a joint rotation (at most "
                f"{AXIS_ANGLE_LIMIT:g} accepted); check which array this is and its layout")
    r = body_axis_angle(x).norm(dim=-1)
    share = float((r > 2 * math.pi).double().mean())
    top = float(r.max())
    if share > 0.05 or top > 4 * math.pi:
        return (f"the axis-angle values look like degrees ({share * 100:.0f} % of the body joints turn by more than "
                f"2π, the largest by {top:.1f}); this package reads radians — convert with numpy.deg2rad")
    return None


def warn_pose_units(x, name: str = "poses", stacklevel: int = 3) -> None:
    """Warn when the poses ``x`` a user hands to a one-off call (projection, sampling around them,
    interpolation, completion) look like degrees or ``(x, y, z, w)`` quaternions
    (:func:`pose_units_problem`); energy calls inside fitting loops are not checked."""
    try:
        problem = pose_units_problem(x)
    except (TypeError, ValueError):
        return  # not a pose array: the layout check that follows says so
    if problem:
        warnings.warn(f"{name}: {problem}", UserWarning, stacklevel=stacklevel)


def set_body_pose(pose, q: torch.Tensor) -> torch.Tensor:
    """``pose`` in its own layout with its 21 body joints replaced by ``q`` — the inverse of
    :func:`to_body_quat` that keeps every other joint (root, hands, jaw, fingers) as it was.

    Args:
        pose: any layout :func:`to_body_quat` accepts, ``(N, ...)``.
        q: ``(N, 21, 4)`` body-joint quaternions ``(w, x, y, z)``.
    Returns:
        a new tensor of ``pose``'s shape and dtype.
    """
    pose = as_tensor(pose, "pose")
    q = q.to(torch.float64)
    if pose.ndim >= 3 and pose.shape[-2:] == (3, 3) and pose.shape[-3] in _MATRIX_FIRST:
        first = _MATRIX_FIRST[pose.shape[-3]]
        new = pose.to(torch.float64).clone()
        new[..., first:first + NUM_BODY_JOINTS, :, :] = R.quat_to_matrix(q).reshape(new.shape[:-3] + (NUM_BODY_JOINTS, 3, 3))
    elif pose.ndim >= 2 and pose.shape[-2:] == (NUM_BODY_JOINTS, 4):
        new = q
    elif pose.ndim >= 2 and pose.shape[-2:] == (NUM_BODY_JOINTS, 3):
        new = R.quat_to_axis_angle(q)
    elif pose.ndim >= 1 and pose.shape[-1] in POSE_LAYOUTS:
        _, first, _ = POSE_LAYOUTS[pose.shape[-1]]
        new = pose.to(torch.float64).clone()
        new[..., 3 * first:3 * (first + NUM_BODY_JOINTS)] = R.quat_to_axis_angle(q).reshape(q.shape[:-2] + (3 * NUM_BODY_JOINTS,))
    else:
        to_body_quat(pose)  # raises the layout error
        raise AssertionError("unreachable")
    return new.reshape(pose.shape).to(pose.dtype)


def forward_kinematics(
    rotmats: torch.Tensor,
    rest_joints: torch.Tensor,
    parents=SMPL_PARENTS,
    root_translation: torch.Tensor | None = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics on a kinematic tree (parents precede children).

    Args:
        rotmats: ``(..., J, 3, 3)`` local rotations (joint 0 = root orientation).
        rest_joints: ``(J, 3)`` or ``(..., J, 3)`` rest-pose joint positions.
        parents: length-J parent indices, ``-1`` for the root.
        root_translation: optional ``(..., 3)`` added to every joint.
    Returns:
        ``(positions (..., J, 3), global rotations (..., J, 3, 3))``.
    """
    check_shape(rotmats, ("*", len(parents), 3, 3), "rotmats")
    rest = rest_joints.to(rotmats)
    offsets = [rest[..., 0, :]] + [rest[..., j, :] - rest[..., p, :] for j, p in enumerate(parents) if j > 0]
    glob_r = [rotmats[..., 0, :, :]]
    pos = [offsets[0].expand(rotmats.shape[:-3] + (3,))]
    for j in range(1, len(parents)):
        p = parents[j]
        pos.append(pos[p] + (glob_r[p] @ offsets[j].unsqueeze(-1)).squeeze(-1))
        glob_r.append(glob_r[p] @ rotmats[..., j, :, :])
    positions = torch.stack(pos, dim=-2)
    if root_translation is not None:
        positions = positions + root_translation.unsqueeze(-2)
    return positions, torch.stack(glob_r, dim=-3)


def body_joint_positions(
    q: torch.Tensor, root_orient: torch.Tensor | None = None, rest_joints: torch.Tensor | None = None
) -> torch.Tensor:
    """Joint positions ``(..., 24, 3)`` of the rest skeleton posed by body quaternions.

    Args:
        q: ``(..., 21, 4)`` body-joint quaternions.
        root_orient: optional ``(..., 3)`` axis-angle root orientation (identity if omitted).
        rest_joints: ``(24, 3)``; defaults to :data:`SMPL_REST_JOINTS`.
    """
    check_shape(q, ("*", NUM_BODY_JOINTS, 4), "q")
    rest = SMPL_REST_JOINTS if rest_joints is None else rest_joints
    eye = torch.eye(3, dtype=q.dtype, device=q.device).expand(q.shape[:-2] + (1, 3, 3))
    root = eye if root_orient is None else R.axis_angle_to_matrix(root_orient).unsqueeze(-3)
    rot = torch.cat((root, R.quat_to_matrix(q), eye, eye), dim=-3)
    return forward_kinematics(rot, rest)[0]


#: for each body joint, the body joint of the other side (centre joints map to themselves)
BODY_MIRROR: Tuple[int, ...] = tuple(
    BODY_JOINT_NAMES.index(n.replace("left_", "#").replace("right_", "left_").replace("#", "right_"))
    for n in BODY_JOINT_NAMES
)


def mirror_body_quat(q: torch.Tensor) -> torch.Tensor:
    """The left/right mirror image of body poses: each joint's rotation reflected in the
    sagittal plane (SMPL's x = 0 plane, left = +x) and moved to the joint of the other side.
    The SMPL skeleton is left/right symmetric, so a mirrored plausible pose is plausible.

    Args:
        q: ``(..., 21, 4)`` quaternions ``(w, x, y, z)``.
    Returns:
        ``(..., 21, 4)``; ``M R M`` with ``M = diag(-1, 1, 1)`` keeps ``w`` and ``x`` and negates
        ``y`` and ``z``. Mirroring twice gives ``q`` back.
    """
    check_shape(q, ("*", NUM_BODY_JOINTS, 4), "q")
    sign = q.new_tensor([1.0, 1.0, -1.0, -1.0])
    return (q * sign)[..., list(BODY_MIRROR), :]


def with_mirror_images(q: torch.Tensor) -> torch.Tensor:
    """``(N, 21, 4)`` poses followed by their mirror images (:func:`mirror_body_quat`):
    ``(2N, 21, 4)``, the left/right augmentation every shipped prior is trained with."""
    return torch.cat((q, mirror_body_quat(q)))


#: colours of skeleton plots (matplotlib names) with their legend text: the person's left, right,
#: and the joints on the midline
SKELETON_SIDE_COLOURS: Tuple[Tuple[str, str], ...] = (
    ("tab:blue", "person's left"), ("tab:red", "person's right"), ("k", "spine / head"))

