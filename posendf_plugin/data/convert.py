"""Retarget BVH mocap of any humanoid rig onto SMPL and write AMASS-layout ``.npz`` clips.

Up-axis convention (stated once, here): the solver works in a **Y-up** frame (BVH files and the
SMPL rest pose are Y-up; a Z-up rig is rotated into it first). The outputs follow **AMASS: a
Z-up world**: ``root_orient = Rx(+90°) · G_pelvis`` and ``trans = Rx(+90°) · p_pelvis`` in
metres, where ``Rx(+90°)`` maps ``(x, y, z)`` to ``(x, -z, y)``. Body-joint rotations are local
and unaffected. With :data:`~posendf_plugin.skeleton.SMPL_REST_JOINTS` (pelvis at the origin)
``trans`` is the pelvis position; with a real SMPL model the pelvis lands at ``trans + J0``.

Retargeting never uses the source rig's rest pose:

1. FK of the BVH gives global joint positions and orientations per frame. A
   :class:`~posendf_plugin.data.rigs.RigProfile` names the source joint of each SMPL joint;
   SMPL joints a rig lacks are placed on the line between mapped neighbours.
2. For each SMPL joint (parents first) the target global rotation must turn the SMPL rest bone
   directions (child minus joint) into the source's bone directions. Twist about a bone comes
   from the source joint's orientation through a constant offset ``C`` fitted over the whole
   clip (Kabsch on direction pairs expressed in the source joint's frame: the bone directions,
   the elbow/knee hinge normal for limbs, the hip→hip / shoulder→shoulder side vector for the
   pelvis and spine, head-top / toe-tip end points, and weakly the parent's axes).
3. Per frame: single-child joints take ``O(t)·C`` and are swung so the bone direction is exact;
   multi-child joints (pelvis, spine3) fit all their bone and side directions by Kabsch,
   regularised towards ``O(t)·C``. Local rotation = ``G_parent⁻¹ · G``.

Quality (:func:`quality_report`): forward kinematics of the SMPL rest skeleton with the saved
pose, compared with the BVH joint positions as bone directions in degrees.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .. import rotations as R
from ..io import atomic_path
from ..skeleton import NUM_BODY_JOINTS, SMPL_JOINT_NAMES, SMPL_PARENTS, SMPL_REST_JOINTS, forward_kinematics
from .bvh import BvhClip, bvh_clip_name, read_bvh
from .motion import Motion
from .rigs import RigMapping, RigProfile, detect_rig, resolve_rig

__all__ = [
    "Targets",
    "ConversionResult",
    "QualityReport",
    "source_targets",
    "solve_smpl",
    "convert_clip",
    "convert_bvh",
    "quality_report",
    "smpl_joint_positions",
    "plot_frames",
    "Y_UP_TO_Z_UP",
]

log = logging.getLogger(__name__)

#: Rx(+90°): the fixed rotation from the Y-up solver frame to the AMASS Z-up world.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
_Z_UP_TO_Y_UP = Y_UP_TO_Z_UP.T

_J = len(SMPL_JOINT_NAMES)
_CHILDREN: List[List[int]] = [[c for c, p in enumerate(SMPL_PARENTS) if p == j] for j in range(_J)]
_IDX = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
#: the child that continues a chain (used to place SMPL joints a rig lacks)
_MAIN_CHILD = {0: 3, 3: 6, 6: 9, 9: 12, 12: 15, 1: 4, 2: 5, 4: 7, 5: 8, 7: 10, 8: 11,
               13: 16, 14: 17, 16: 18, 17: 19, 18: 20, 19: 21, 20: 22, 21: 23}
#: rest direction of the end point of a leaf joint: head top is up, toe tip is forward
_END_REST_DIR = {_IDX["head"]: (0.0, 1.0, 0.0), _IDX["left_foot"]: (0.0, 0.0, 1.0), _IDX["right_foot"]: (0.0, 0.0, 1.0)}
#: (upper joint, middle joint, lower joint, rest flexion direction of the lower bone)
_HINGES = (
    ("left_hip", "left_knee", "left_ankle", (0.0, 0.0, -1.0)),
    ("right_hip", "right_knee", "right_ankle", (0.0, 0.0, -1.0)),
    ("left_shoulder", "left_elbow", "left_wrist", (0.0, 0.0, 1.0)),
    ("right_shoulder", "right_elbow", "right_wrist", (0.0, 0.0, 1.0)),
)
#: rigid sideways offsets inside the pelvis and chest segments (SMPL pelvis->hips, spine3->
#: collars). Their direction is body shape (where a rig puts its pelvis / chest joint), not
#: pose: they get a low weight in the fits, and the quality report lists them separately.
_LATERAL = frozenset(_IDX[n] for n in ("left_hip", "right_hip", "left_collar", "right_collar"))
_LATERAL_WEIGHT = 0.25
_MIN_BONE_M = 0.01  # bones shorter than this (in the source) give no direction
_PRIOR_WEIGHT = 0.3  # weight of the source-orientation axes in per-frame Kabsch fits
_FALLBACK_WEIGHT = 0.05  # weight of "follow the parent" pairs in the calibration


# ---------------------------------------------------------------------------------------------
# Small numpy rotation helpers (float64, batched over leading dims)
# ---------------------------------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def _kabsch(H: np.ndarray) -> np.ndarray:
    """Rotation ``C`` maximising ``trace(C^T H)`` for ``H = Σ w b a^T``. ``(..., 3, 3)``."""
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(U @ Vt))
    d = np.where(d == 0, 1.0, d)
    D = np.zeros(H.shape)
    D[..., 0, 0] = 1.0
    D[..., 1, 1] = 1.0
    D[..., 2, 2] = d
    return U @ D @ Vt


def _swing(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Smallest rotations taking unit vectors ``v`` to ``w``. ``(..., 3) -> (..., 3, 3)``."""
    axis = np.cross(v, w)
    s = np.linalg.norm(axis, axis=-1)
    c = np.sum(v * w, axis=-1)
    # antiparallel: rotate by pi about any axis perpendicular to v
    perp = np.cross(v, np.array([1.0, 0.0, 0.0]))
    perp = np.where(np.linalg.norm(perp, axis=-1, keepdims=True) < 1e-6, np.cross(v, np.array([0.0, 1.0, 0.0])), perp)
    axis = np.where((s < 1e-9)[..., None], perp, axis)
    axis = _unit(axis)
    angle = np.arctan2(s, c)
    K = np.zeros(v.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2] = -axis[..., 2], axis[..., 1]
    K[..., 1, 0], K[..., 1, 2] = axis[..., 2], -axis[..., 0]
    K[..., 2, 0], K[..., 2, 1] = -axis[..., 1], axis[..., 0]
    sa, ca = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + sa * K + (1 - ca) * (K @ K)


# ---------------------------------------------------------------------------------------------
# Source targets
# ---------------------------------------------------------------------------------------------


@dataclass
class Targets:
    """Source skeleton resampled onto the SMPL joints, Y-up, metres.

    Attributes:
        positions: ``(F, 24, 3)`` target joint positions (NaN where unknown).
        orient: ``(F, 24, 3, 3)`` global orientation of the source joint driving each SMPL joint.
        mapped: ``(24,)`` bool, the SMPL joint has its own source joint (not interpolated).
        ends: SMPL leaf joint -> ``(F, 3)`` end point (head top, toe tip).
        scale: metres per file unit used.
        fps: frames per second.
        source_positions: ``(F, Js, 3)`` all computed source joints (for plots), NaN elsewhere.
        source_parents: parents of the source joints.
    """

    positions: np.ndarray
    orient: np.ndarray
    mapped: np.ndarray
    ends: Dict[int, np.ndarray]
    scale: float
    fps: float
    source_positions: np.ndarray
    source_parents: List[int]


def _estimate_scale(clip: BvhClip, mapping: RigMapping) -> float:
    """Metres per file unit from the rest leg length (hip->knee->ankle through the tree)."""
    def chain_len(a: int, b: int) -> float:
        total, j = 0.0, b
        while j != a and j >= 0:
            total += float(np.linalg.norm(clip.offsets[j]))
            j = clip.parents[j]
        return total if j == a else float("nan")

    lens = []
    for side in ("left", "right"):
        h, k, a = (mapping.source[_IDX[f"{side}_{n}"]] for n in ("hip", "knee", "ankle"))
        lens.append(chain_len(h, k) + chain_len(k, a))
    leg = float(np.nanmean(lens))
    if not np.isfinite(leg) or leg <= 0:
        raise ValueError(f"{clip.path}: cannot estimate the units from the leg length; set 'scale' in the rig YAML")
    smpl_leg = float(np.linalg.norm(SMPL_REST_JOINTS[4] - SMPL_REST_JOINTS[1]) + np.linalg.norm(SMPL_REST_JOINTS[7] - SMPL_REST_JOINTS[4]))
    units = np.array([0.001, 0.01, 0.0254, 0.056444, 1.0])
    return float(units[np.argmin(np.abs(np.log(units * leg / smpl_leg)))])


def source_targets(clip: BvhClip, mapping: RigMapping, scale: Optional[float] = None) -> Targets:
    """Forward kinematics of ``clip`` and placement of the 24 SMPL joints on it."""
    profile = mapping.profile
    if scale is None:
        scale = profile.scale if profile.scale is not None else _estimate_scale(clip, mapping)
    used = [s for s in mapping.source if s is not None] + list(mapping.ends.values())
    pos, rot = clip.global_transforms(used)
    pos = pos * scale
    if profile.up_axis == "z":
        pos = pos @ _Z_UP_TO_Y_UP.T
        rot = _Z_UP_TO_Y_UP @ rot
    F = clip.num_frames
    T = np.full((F, _J, 3), np.nan)
    O = np.full((F, _J, 3, 3), np.nan)
    mapped = np.array([s is not None for s in mapping.source])
    for j, s in enumerate(mapping.source):
        if s is not None:
            T[:, j] = pos[:, s]
            O[:, j] = rot[:, s]
    rest = SMPL_REST_JOINTS.double().numpy()
    for j in range(_J):
        if mapped[j]:
            continue
        a = SMPL_PARENTS[j]
        while a >= 0 and not mapped[a]:
            a = SMPL_PARENTS[a]
        O[:, j] = O[:, a] if a >= 0 else np.eye(3)
        path = [j]
        d = _MAIN_CHILD.get(j)
        while d is not None and not mapped[d]:
            path.append(d)
            d = _MAIN_CHILD.get(d)
        if a < 0 or d is None:
            continue
        # chain a -> ... -> j -> ... -> d along SMPL; place j at its rest arc-length fraction
        up = []
        k = j
        while k != a:
            up.append(k)
            k = SMPL_PARENTS[k]
        chain = [a] + up[::-1] + path[1:] + [d]
        seg = [np.linalg.norm(rest[chain[i + 1]] - rest[chain[i]]) for i in range(len(chain) - 1)]
        frac = sum(seg[: chain.index(j)]) / max(sum(seg), 1e-9)
        T[:, j] = T[:, a] + frac * (T[:, d] - T[:, a])
    ends = {j: pos[:, s] for j, s in mapping.ends.items()}
    return Targets(T, O, mapped, ends, float(scale), clip.fps, pos, list(clip.parents))


# ---------------------------------------------------------------------------------------------
# Solver
# ---------------------------------------------------------------------------------------------


def _valid_dir(b: np.ndarray) -> bool:
    n = np.linalg.norm(b, axis=-1)
    return bool(np.isfinite(n).any() and np.nanmedian(n) > _MIN_BONE_M)


def solve_smpl(tg: Targets) -> Tuple[np.ndarray, np.ndarray]:
    """SMPL global and local rotations reproducing the targets.

    Args:
        tg: see :func:`source_targets`.
    Returns:
        ``(global (F, 24, 3, 3), local (F, 24, 3, 3))`` in the Y-up solver frame; the hands
        (22, 23) keep the wrist orientation (identity local).
    """
    rest = SMPL_REST_JOINTS.double().numpy()
    T, O = tg.positions, tg.orient
    F = T.shape[0]
    eye = np.broadcast_to(np.eye(3), (F, 3, 3))
    G = np.zeros((F, _J, 3, 3))
    hinge: Dict[int, Tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for up, mid, low, flex in _HINGES:
        iu, im, il = _IDX[up], _IDX[mid], _IDX[low]
        u, f = T[:, im] - T[:, iu], T[:, il] - T[:, im]
        n = np.cross(u, f)
        s = np.linalg.norm(n, axis=-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(f, axis=-1), 1e-12)
        w = np.clip((np.nan_to_num(s) - 0.15) / 0.35, 0.0, 1.0)
        a = _unit(np.cross(_unit(rest[im] - rest[iu]), np.asarray(flex)))
        for j in (iu, im):
            hinge[j] = (a, _unit(np.nan_to_num(n)), w)
    sides = {
        0: [("left_hip", "right_hip", 1.0)],
        3: [("left_hip", "right_hip", 0.5), ("left_shoulder", "right_shoulder", 0.5)],
        6: [("left_shoulder", "right_shoulder", 1.0)],
        9: [("left_shoulder", "right_shoulder", 1.0)],
    }
    for j in range(_J):
        p = SMPL_PARENTS[j]
        if j in (22, 23):
            G[:, j] = G[:, p]
            continue
        # structural direction pairs: (rest dir (3,), target dir (F,3), weight (F,))
        child_pairs = []
        for c in _CHILDREN[j]:
            w = _LATERAL_WEIGHT if c in _LATERAL else 1.0
            b = T[:, c] - T[:, j]
            if _valid_dir(b):
                child_pairs.append((_unit(rest[c] - rest[j]), b, w))
                continue
            # the source joint coincides with its parent (e.g. CMU's LowerBack at the hips, its
            # LeftShoulder at Spine1): aim at the next joint down the chain instead
            c2 = _MAIN_CHILD.get(c)
            if c2 is not None and _valid_dir(T[:, c2] - T[:, j]):
                child_pairs.append((_unit(rest[c2] - rest[j]), T[:, c2] - T[:, j], w))
        if j in tg.ends:
            b = tg.ends[j] - T[:, j]
            if _valid_dir(b):
                child_pairs.append((np.asarray(_END_REST_DIR[j]), b, 1.0))
        side_pairs = []
        for l, r, w in sides.get(j, ()):
            b = T[:, _IDX[l]] - T[:, _IDX[r]]
            if _valid_dir(b):
                side_pairs.append((_unit(rest[_IDX[l]] - rest[_IDX[r]]), b, w))
        # --- calibration: constant offset C between the source orientation and the SMPL bone
        Oj = O[:, j]
        ok = np.isfinite(Oj).all(axis=(1, 2))
        H = np.zeros((3, 3))

        def add(a: np.ndarray, b: np.ndarray, w) -> None:
            nonlocal H
            bl = np.einsum("fba,fb->fa", Oj, _unit(b))  # O^T b: direction in the source frame
            wt = np.broadcast_to(np.asarray(w, float), (F,)) * ok * np.isfinite(bl).all(-1)
            H += np.einsum("f,fi,j->ij", wt, np.nan_to_num(bl), a)

        for a, b, w in child_pairs:
            add(a, b, w)
        for a, b, w in side_pairs:
            add(a, b, w)
        if j in hinge:
            a, n, w = hinge[j]
            add(a, n, w)
        if p >= 0:
            for k in range(3):
                add(np.eye(3)[k], G[:, p, :, k], _FALLBACK_WEIGHT)
        C = _kabsch(H) if np.abs(H).sum() > 0 else np.eye(3)
        G0 = np.where(ok[:, None, None], Oj @ C, G[:, p] if p >= 0 else eye)
        # --- per frame
        if len(child_pairs) >= 2 or (side_pairs and len(child_pairs) == 0):
            Hf = np.zeros((F, 3, 3))
            for a, b, w in child_pairs:
                Hf += w * np.einsum("fi,j->fij", np.nan_to_num(_unit(b)), a)
            for a, b, w in side_pairs:
                Hf += w * np.einsum("fi,j->fij", np.nan_to_num(_unit(b)), a)
            Hf += _PRIOR_WEIGHT * G0  # sum_k G0 e_k e_k^T
            G[:, j] = _kabsch(Hf)
        elif len(child_pairs) == 1:
            a, b, _ = child_pairs[0]
            bu = _unit(b)
            if side_pairs:  # fit the twist to the side vectors first, then make the bone exact
                Hf = _PRIOR_WEIGHT * G0 + np.einsum("fi,j->fij", np.nan_to_num(bu), a)
                for a2, b2, w in side_pairs:
                    Hf += w * np.einsum("fi,j->fij", np.nan_to_num(_unit(b2)), a2)
                G0 = _kabsch(Hf)
            cur = np.einsum("fij,j->fi", G0, a)
            good = np.isfinite(bu).all(-1)
            S = _swing(cur, np.where(good[:, None], bu, cur))
            G[:, j] = S @ G0
        else:
            G[:, j] = G0
    L = np.zeros_like(G)
    L[:, 0] = G[:, 0]
    for j in range(1, _J):
        L[:, j] = np.swapaxes(G[:, SMPL_PARENTS[j]], -1, -2) @ G[:, j]
    return G, L


# ---------------------------------------------------------------------------------------------
# Conversion, quality, plots
# ---------------------------------------------------------------------------------------------


@dataclass
class QualityReport:
    """Bone-direction agreement between the converted SMPL pose and the source skeleton.

    Attributes:
        mean_deg / p95_deg / max_deg: over all mapped *articulated* bones and frames: every SMPL
            bone whose two ends have their own source joint, except the rigid sideways offsets
            pelvis->hips and spine3->collars, whose direction is body shape, not pose (a rig whose
            pelvis joint sits level with its hip joints differs there by up to 40° from SMPL in
            every frame, whatever the pose).
        all_mean_deg / all_p95_deg: the same including those offsets.
        hinge_offaxis_deg: mean rotation of the knees and elbows away from their hinge axis
            (twist and sideways bend; a check on twist transfer that bone directions alone
            cannot see: a wrong upper-arm twist shows up here as a twisted elbow).
        per_bone_mean_deg: ``"parent->child"`` -> mean angle (all mapped bones).
        num_bones: articulated bones compared; num_frames: frames compared.
    """

    mean_deg: float
    p95_deg: float
    max_deg: float
    per_bone_mean_deg: Dict[str, float]
    num_bones: int
    num_frames: int
    all_mean_deg: float
    all_p95_deg: float
    hinge_offaxis_deg: float = float("nan")


@dataclass
class ConversionResult:
    """One converted clip: the AMASS-layout motion, the source targets and the rig used."""

    name: str
    motion: Motion
    targets: Targets
    mapping: RigMapping
    path: str = ""
    quality: Optional[QualityReport] = None


def convert_clip(clip: BvhClip, rig: Optional[RigProfile] = None, fps: Optional[float] = None,
                 name: Optional[str] = None) -> ConversionResult:
    """Retarget a parsed BVH clip onto SMPL (see the module docstring).

    Args:
        clip: parsed BVH.
        rig: a profile; ``None`` detects a built-in one from the joint names.
        fps: resample to this frame rate first (slerp / linear); ``None`` keeps the file's rate.
        name: clip name (default: from ``clip.path``).
    Raises:
        ValueError: the rig cannot be mapped (lists the missing SMPL joints) or NaN results.
    """
    src = clip.path or "BVH"
    if rig is None:
        mapping = detect_rig(clip.names, src, parents=clip.parents, offsets=clip.offsets)
    else:
        mapping = resolve_rig(clip.names, rig)
        if mapping.missing_required:
            raise ValueError(
                f"{src}: rig mapping {rig.name!r} finds no source joint for SMPL {mapping.missing_required}; "
                f"the file's joints are {clip.names[:40]}"
            )
    if fps is not None:
        clip = clip.resampled(fps)
    tg = source_targets(clip, mapping)
    _, L = solve_smpl(tg)
    if not np.isfinite(L).all():
        bad = np.nonzero(~np.isfinite(L).all(axis=(1, 2, 3)))[0]
        raise ValueError(f"{src}: retargeting produced NaN in frame(s) {bad[:10].tolist()} (degenerate skeleton?)")
    Lt = torch.from_numpy(L)
    body = R.matrix_to_axis_angle(Lt[:, 1:NUM_BODY_JOINTS + 1]).reshape(len(L), -1).numpy()
    root_m = torch.from_numpy(Y_UP_TO_Z_UP @ L[:, 0])
    root = R.matrix_to_axis_angle(root_m).numpy()
    trans = tg.positions[:, 0] @ Y_UP_TO_Z_UP.T
    motion = Motion(
        pose_body=body.astype(np.float32), root_orient=root.astype(np.float32),
        trans=trans.astype(np.float32), fps=float(clip.fps), gender="neutral",
    )
    return ConversionResult(name or bvh_clip_name(clip.path or "clip"), motion, tg, mapping, clip.path)


def convert_bvh(path: Union[str, Path], rig: Optional[RigProfile] = None, fps: Optional[float] = None) -> ConversionResult:
    """Read and convert one BVH file (see :func:`convert_clip`)."""
    return convert_clip(read_bvh(path), rig=rig, fps=fps, name=bvh_clip_name(path))


def smpl_joint_positions(motion: Motion) -> np.ndarray:
    """FK of :data:`SMPL_REST_JOINTS` with a motion's pose: ``(N, 24, 3)`` in the Z-up world."""
    n = len(motion)
    aa = torch.zeros(n, _J, 3, dtype=torch.float64)
    aa[:, 0] = torch.from_numpy(motion.root_orient.astype(np.float64))
    aa[:, 1:NUM_BODY_JOINTS + 1] = torch.from_numpy(motion.pose_body.astype(np.float64)).reshape(n, NUM_BODY_JOINTS, 3)
    pos, _ = forward_kinematics(R.axis_angle_to_matrix(aa), SMPL_REST_JOINTS.double(),
                                root_translation=torch.from_numpy(motion.trans.astype(np.float64)))
    return pos.numpy()


def quality_report(result: ConversionResult) -> QualityReport:
    """Compare SMPL bone directions (FK of the saved pose) with the source's, in degrees.

    Bones count when both ends have their own source joint and the source bone is longer than
    1 cm.
    """
    smpl = smpl_joint_positions(result.motion)
    src = result.targets.positions @ Y_UP_TO_Z_UP.T
    mapped = result.targets.mapped
    angles, lateral, per_bone = [], [], {}
    for j in range(1, _J):
        p = SMPL_PARENTS[j]
        if not (mapped[j] and mapped[p]):
            continue
        b_src = src[:, j] - src[:, p]
        if not _valid_dir(b_src):
            continue
        b_smpl = smpl[:, j] - smpl[:, p]
        cos = np.sum(_unit(b_src) * _unit(b_smpl), axis=-1)
        ang = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
        (lateral if j in _LATERAL else angles).append(ang)
        per_bone[f"{SMPL_JOINT_NAMES[p]}->{SMPL_JOINT_NAMES[j]}"] = float(np.mean(ang))
    if not angles:
        raise ValueError(f"{result.path}: no mapped bones to compare")
    art = np.concatenate(angles)
    every = np.concatenate(angles + lateral)
    return QualityReport(float(art.mean()), float(np.percentile(art, 95)), float(art.max()),
                         per_bone, len(angles), len(smpl), float(every.mean()), float(np.percentile(every, 95)),
                         _hinge_offaxis(result.motion))


def _hinge_offaxis(motion: Motion) -> float:
    """Mean angle (degrees) of the knee/elbow local rotations away from their hinge axes."""
    rest = SMPL_REST_JOINTS.double().numpy()
    q = R.axis_angle_to_quat(torch.from_numpy(motion.pose_body.astype(np.float64)).reshape(-1, NUM_BODY_JOINTS, 3))
    out = []
    for up, mid, _, flex in _HINGES:
        iu, im = _IDX[up], _IDX[mid]
        axis = torch.from_numpy(_unit(np.cross(_unit(rest[im] - rest[iu]), np.asarray(flex))))
        qj = q[:, im - 1]
        # swing-twist: the twist about `axis` keeps (w, (v.axis) axis); the rest is off-axis
        tw = torch.cat([qj[:, :1], (qj[:, 1:] @ axis)[:, None] * axis], -1)
        tw = tw / tw.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        out.append(np.degrees(R.quat_geodesic_angle(tw, qj).numpy()))
    return float(np.mean(np.concatenate(out)))


_DRAW_BONES = [(SMPL_PARENTS[j], j) for j in range(1, _J)]


def plot_frames(result: ConversionResult, path: Union[str, Path], frames: Optional[Sequence[int]] = None,
                num: int = 4) -> Path:
    """Render ``num`` frames: the source skeleton (grey, mapped joints as dots) next to the SMPL
    rest skeleton posed by the converted motion (left side red, right side blue), Z-up, in a
    3/4 view and a side view. Returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.motion)
    if frames is None:
        frames = np.linspace(0, n - 1, num).round().astype(int).tolist()
    smpl = smpl_joint_positions(result.motion)
    tg = result.targets
    srcall = tg.source_positions @ Y_UP_TO_Z_UP.T
    srcj = tg.positions @ Y_UP_TO_Z_UP.T
    fig = plt.figure(figsize=(5 * len(frames), 10))
    shift = np.array([0.9, 0.0, 0.0])
    for row, (elev, azim) in enumerate(((15, -60), (5, 0))):
        for col, f in enumerate(frames):
            ax = fig.add_subplot(2, len(frames), row * len(frames) + col + 1, projection="3d")
            root = srcj[f, 0]
            for j, p in enumerate(tg.source_parents):
                if p >= 0 and np.isfinite(srcall[f, j]).all() and np.isfinite(srcall[f, p]).all():
                    seg = np.stack([srcall[f, p], srcall[f, j]]) - root
                    ax.plot(*seg.T, color="0.5", lw=1.5)
            m = tg.mapped
            ax.scatter(*(srcj[f, m] - root).T, color="k", s=6)
            for p, j in _DRAW_BONES:
                name = SMPL_JOINT_NAMES[j]
                color = "r" if name.startswith("left") else ("b" if name.startswith("right") else "g")
                seg = np.stack([smpl[f, p], smpl[f, j]]) - smpl[f, 0] + shift
                ax.plot(*seg.T, color=color, lw=2)
                seg = np.stack([srcj[f, p], srcj[f, j]]) - root
                if np.isfinite(seg).all():
                    ax.plot(*seg.T, color=color, lw=0.8, ls="--")
            ax.set_xlim(-0.6, 1.5)
            ax.set_ylim(-1.0, 1.0)
            ax.set_zlim(-1.1, 1.0)
            ax.set_box_aspect((2.1, 2.0, 2.1))
            ax.view_init(elev=elev, azim=azim)
            ax.set_title(f"{result.name} frame {f}" if row == 0 else "side view", fontsize=8)
            ax.set_xlabel("x")
            ax.set_ylabel("y")
            ax.set_zlabel("z (up)")
    fig.suptitle("left: source BVH (grey; dashed = its joints on the SMPL tree)   right: converted SMPL, "
                 "shifted +0.9 m in x   (red = left side, blue = right side)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path


# The batch conversion and the ``posendf data bvh|mocap`` command moved to
# :mod:`posendf_plugin.data.mocap_batch`; their old names stay importable from here.
_MOVED = frozenset({"find_bvh_files", "run_bvh", "BatchSummary", "register_cli"})


def __getattr__(name: str):
    if name in _MOVED:
        from . import mocap_batch

        return getattr(mocap_batch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
