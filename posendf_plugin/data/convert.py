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

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .. import rotations as R
from ..io import atomic_path
from ..skeleton import NUM_BODY_JOINTS, SKELETON_SIDE_COLOURS, SMPL_JOINT_NAMES, SMPL_PARENTS, SMPL_REST_JOINTS, forward_kinematics
from .anatomy import MIN_STANDING_FRAMES, calibrate_axes, calibrate_offset, calibration_weights, rotation_power, standing_weights, swing
from .anatomy import unit as _unit
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
    "LANDMARK_BONES",
    "standing_frames",
]

log = logging.getLogger(__name__)

#: Rx(+90°): the fixed rotation from the Y-up solver frame to the AMASS Z-up world.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
_Z_UP_TO_Y_UP = Y_UP_TO_Z_UP.T

_J = len(SMPL_JOINT_NAMES)
_IDX = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
#: the child that continues a chain (used to place SMPL joints a rig lacks)
_MAIN_CHILD = {0: 3, 3: 6, 6: 9, 9: 12, 12: 15, 1: 4, 2: 5, 4: 7, 5: 8, 7: 10, 8: 11,
               13: 16, 14: 17, 16: 18, 17: 19, 18: 20, 19: 21, 20: 22, 21: 23}
#: (upper joint, middle joint, lower joint, rest flexion direction of the lower bone)
_HINGES = (
    ("left_hip", "left_knee", "left_ankle", (0.0, 0.0, -1.0)),
    ("right_hip", "right_knee", "right_ankle", (0.0, 0.0, -1.0)),
    ("left_shoulder", "left_elbow", "left_wrist", (0.0, 0.0, 1.0)),
    ("right_shoulder", "right_elbow", "right_wrist", (0.0, 0.0, 1.0)),
)
#: bones between anatomical landmarks that every rig places alike: the quality report's bones.
#: (Foot, hand and head directions are not among them: where a rig puts its toe, finger and head
#: joints is its own; those joints are read as neutral when standing, see anatomy.)
LANDMARK_BONES: Tuple[Tuple[str, str], ...] = tuple(
    (f"{s}_{a}", f"{s}_{b}") for s in ("left", "right") for a, b in (
        ("hip", "knee"), ("knee", "ankle"), ("shoulder", "elbow"), ("elbow", "wrist"))
) + (("mid_hip", "neck"),)
#: joints whose child direction (toe, hand) is followed exactly after the standing calibration
_END_SWING = frozenset(_IDX[n] for n in ("left_ankle", "right_ankle", "left_wrist", "right_wrist"))
_UP = np.array([0.0, 1.0, 0.0])  # the solver frame's up axis
_MIN_BONE_M = 0.01  # bones shorter than this (in the source) give no direction
_FALLBACK_WEIGHT = 0.05  # weight of "follow the parent" pairs in the calibration


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


def _arm_branch(parents: Sequence[int], mapping: RigMapping) -> Optional[int]:
    """The source joint where the two arm chains meet (lowest common ancestor of the shoulders),
    unless that is the mapped pelvis or another mapped joint."""
    a, b = mapping.source[_IDX["left_shoulder"]], mapping.source[_IDX["right_shoulder"]]
    if a is None or b is None:
        return None
    anc = set()
    while a >= 0:
        anc.add(a)
        a = parents[a]
    while b >= 0 and b not in anc:
        b = parents[b]
    return b if b >= 0 and b not in mapping.source else None


def source_targets(clip: BvhClip, mapping: RigMapping, scale: Optional[float] = None) -> Targets:
    """Forward kinematics of ``clip`` and placement of the 24 SMPL joints on it.

    A rig whose profile names no chest joint (spine3) gets the joint where its two arms branch
    off the spine: the thorax orientation must come from the thorax, not from the pelvis.
    """
    profile = mapping.profile
    if scale is None:
        scale = profile.scale if profile.scale is not None else _estimate_scale(clip, mapping)
    th = _IDX["spine3"]
    if mapping.source[th] is None:
        chest = _arm_branch(clip.parents, mapping)
        if chest is not None:
            mapping = dataclasses.replace(mapping, source=[chest if j == th else s for j, s in enumerate(mapping.source)])
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


def _limb_rotation(j: int, tg: Targets, G: np.ndarray, rest: np.ndarray,
                   hinge: Dict[int, Tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Global rotation of a limb joint (hip, knee, shoulder, elbow): the bone to its child is
    exact; the twist follows the rig's segment orientation through a constant offset fitted to
    the hinge plane of the limb (and, weakly, to the parent's axes). ``-> (F, 3, 3)``."""
    T, O = tg.positions, tg.orient
    p = SMPL_PARENTS[j]
    c = _MAIN_CHILD[j]
    a = _unit(rest[c] - rest[j])
    b = T[:, c] - T[:, j]
    pairs = [(a, b, 1.0)]
    if j in hinge:
        pairs.append(hinge[j])
    pairs += [(np.eye(3)[k], G[:, p, :, k], _FALLBACK_WEIGHT) for k in range(3)]
    ok = np.isfinite(O[:, j]).all(axis=(1, 2))
    C = calibrate_axes(O[:, j], pairs)
    return _swing_onto(np.where(ok[:, None, None], O[:, j] @ C, G[:, p]), a, b)


def _swing_onto(G: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Swing the rotations ``G`` (F, 3, 3) so that their direction ``a`` (3,) points along
    ``b`` (F, 3) in every frame where ``b`` is finite and longer than 1 cm (elsewhere unchanged)."""
    cur = np.einsum("fij,j->fi", G, a)
    bu = _unit(b)
    good = np.isfinite(bu).all(-1) & (np.linalg.norm(b, axis=-1) > _MIN_BONE_M)
    return swing(cur, np.where(good[:, None], bu, cur)) @ G


def _follow_direction(G: np.ndarray, b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Swing the rotations ``G`` (F, 3, 3) so that the direction ``b`` (F, 3), whose weighted
    mean in the frame of ``G`` is taken as neutral, is met exactly in every frame."""
    bl = np.einsum("fji,fj->fi", G, _unit(b))  # b in the frame of G
    wts = weights * np.isfinite(bl).all(-1)
    return _swing_onto(G, _unit(np.einsum("f,fi->i", wts, np.nan_to_num(bl))), b)


def standing_frames(tg: Targets) -> Dict[str, np.ndarray]:
    """:func:`~posendf_plugin.data.anatomy.standing_weights` of the targets (``(F,)`` each)."""
    names = [f"{s}_{k}" for s in ("left", "right") for k in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")]
    return standing_weights({n: tg.positions[:, _IDX[n]] for n in names + ["neck"]})


def solve_smpl(tg: Targets) -> Tuple[np.ndarray, np.ndarray]:
    """SMPL global and local rotations of the targets, by the anatomical definitions of
    :mod:`posendf_plugin.data.anatomy` (rig-independent: landmarks and segment orientation
    changes, never the rig's rest pose or where it puts its spine/collar/neck joints).

    Args:
        tg: see :func:`source_targets`.
    Returns:
        ``(global (F, 24, 3, 3), local (F, 24, 3, 3))`` in the Y-up solver frame; the hands
        (22, 23) keep the wrist orientation (identity local).
    """
    rest = SMPL_REST_JOINTS.double().numpy()
    T, O = tg.positions, tg.orient
    F = T.shape[0]
    G = np.zeros((F, _J, 3, 3))
    neutral = standing_frames(tg)
    cal = calibration_weights(neutral["trunk"])
    lh, rh, ls, rs, nk = (_IDX[n] for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder", "neck"))
    mid_hip = 0.5 * (T[:, lh] + T[:, rh])
    rest_mid_hip = 0.5 * (rest[lh] + rest[rh])
    trunk, rest_trunk = T[:, nk] - mid_hip, _unit(rest[nk] - rest_mid_hip)

    # pelvis: hip line = left axis; upright (its up axis vertical) when standing straight: in
    # frames with the trunk upright and both legs straight (else any upright-trunk frames; in a
    # clip without those, the trunk at its rest direction on average)
    stand = neutral["left_leg"] * neutral["right_leg"]
    if stand.sum() < MIN_STANDING_FRAMES:
        stand = neutral["trunk"]
    pairs = [(_unit(rest[lh] - rest[rh]), T[:, lh] - T[:, rh], 1.0)]
    if stand.sum() >= MIN_STANDING_FRAMES:
        pairs.append((_UP, np.broadcast_to(_UP, T[:, 0].shape), stand))
    else:
        pairs.append((rest_trunk, trunk, 1.0))
    G[:, 0] = O[:, 0] @ calibrate_axes(O[:, 0], pairs)

    # thorax (spine3): the spine is neutral in upright frames with straight legs
    th = _IDX["spine3"]
    G9 = O[:, th] @ calibrate_offset(O[:, th], G[:, 0], calibration_weights(stand))
    S = np.swapaxes(G[:, 0], -1, -2) @ G9
    third = rotation_power(S, 1.0 / 3.0)
    for j in (_IDX["spine1"], _IDX["spine2"], th):
        G[:, j] = G[:, SMPL_PARENTS[j]] @ third

    # neck + head: head segment relative to the thorax, neutral when standing, split in halves
    hd = _IDX["head"]
    Gh = O[:, hd] @ calibrate_offset(O[:, hd], G[:, th], cal)
    half = rotation_power(np.swapaxes(G[:, th], -1, -2) @ Gh, 0.5)
    G[:, nk] = G[:, th] @ half
    G[:, hd] = G[:, nk] @ half

    # collars: swing from the thorax aiming the collar bone at the shoulder landmark. The collar
    # base is a thorax-fixed point (relative to the rig's chest joint), placed so that the collar
    # is at its rest direction when standing: shrugs and protraction move it, rig placement not.
    width = np.nanmedian(np.linalg.norm(T[:, ls] - T[:, rs], axis=-1)) / np.linalg.norm(rest[ls] - rest[rs])
    G9t = np.swapaxes(G[:, th], -1, -2)
    for c, s in ((_IDX["left_collar"], ls), (_IDX["right_collar"], rs)):
        a = _unit(rest[s] - rest[c])
        local_sh = np.einsum("fij,fj->fi", G9t, T[:, s] - T[:, th])  # shoulder in the thorax frame
        ok = np.isfinite(local_sh).all(-1)
        wts = cal * ok
        mean_sh = np.einsum("f,fi->i", wts, np.nan_to_num(local_sh)) / max(wts.sum(), 1e-9)
        base = mean_sh - a * np.linalg.norm(rest[s] - rest[c]) * width
        d = _unit(T[:, s] - T[:, th] - np.einsum("fij,j->fi", G[:, th], base))
        cur = np.einsum("fij,j->fi", G[:, th], a)
        good = np.isfinite(d).all(-1)
        G[:, c] = swing(cur, np.where(good[:, None], d, cur)) @ G[:, th]

    # limbs: bone directions exact, twist from the hinge planes
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
    for j in ("left_hip", "right_hip", "left_knee", "right_knee", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow"):
        G[:, _IDX[j]] = _limb_rotation(_IDX[j], tg, G, rest, hinge)

    # ankles, feet (toes), wrists: the rig's segment relative to its parent, neutral when
    # standing; ankles and wrists then swing so that the foot / hand direction (to the toe / hand
    # landmark) moves exactly as the source's, its standing direction being neutral
    for name, part in (("left_ankle", "left_foot"), ("right_ankle", "right_foot"), ("left_foot", "left_foot"),
                       ("right_foot", "right_foot"), ("left_wrist", "left_arm"), ("right_wrist", "right_arm")):
        j, p = _IDX[name], SMPL_PARENTS[_IDX[name]]
        w = calibration_weights(neutral[part])
        ok = np.isfinite(O[:, j]).all(axis=(1, 2))
        G[:, j] = np.where(ok[:, None, None], O[:, j] @ calibrate_offset(O[:, j], G[:, p], w), G[:, p])
        c = _MAIN_CHILD.get(j)
        if j in _END_SWING and tg.mapped[c] and _valid_dir(T[:, c] - T[:, j]):
            G[:, j] = _follow_direction(G[:, j], T[:, c] - T[:, j], w)
    for j in (22, 23):
        G[:, j] = G[:, SMPL_PARENTS[j]]
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
        mean_deg / p95_deg / max_deg: over the **landmark bones** (:data:`LANDMARK_BONES`:
            thighs, shins, upper arms, forearms and the trunk from the hips' midpoint to the neck
            base) whose ends the rig has, all frames. These are
            the directions every rig agrees on; the rig's own spine, collar and pelvis joints
            sit wherever that rig puts them and are not what SMPL's joints mean
            (:mod:`posendf_plugin.data.anatomy`).
        all_mean_deg / all_p95_deg: every SMPL bone whose two ends have their own source joint
            (rig-specific placements included), for information.
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


def _bone(points: np.ndarray, a: str, b: str) -> np.ndarray:
    """Vector from landmark ``a`` to ``b`` of ``points (F, 24, 3)`` (``mid_hip`` = hips' midpoint)."""
    def at(n: str) -> np.ndarray:
        if n == "mid_hip":
            return 0.5 * (points[:, _IDX["left_hip"]] + points[:, _IDX["right_hip"]])
        return points[:, _IDX[n]]
    return at(b) - at(a)


def quality_report(result: ConversionResult) -> QualityReport:
    """Compare SMPL bone directions (FK of the saved pose) with the source's, in degrees.

    Bones count when both ends have their own source joint and the source bone is longer than
    1 cm (see :class:`QualityReport`).
    """
    smpl = smpl_joint_positions(result.motion)
    src = result.targets.positions @ Y_UP_TO_Z_UP.T
    mapped = result.targets.mapped

    def has(n: str) -> bool:
        return bool(mapped[_IDX["left_hip"]] and mapped[_IDX["right_hip"]]) if n == "mid_hip" else bool(mapped[_IDX[n]])

    def angle(a: str, b: str) -> Optional[np.ndarray]:
        if not (has(a) and has(b)):
            return None
        b_src = _bone(src, a, b)
        if not _valid_dir(b_src):
            return None
        cos = np.sum(_unit(b_src) * _unit(_bone(smpl, a, b)), axis=-1)
        return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))

    angles, per_bone = [], {}
    for a, b in LANDMARK_BONES:
        ang = angle(a, b)
        if ang is not None:
            angles.append(ang)
            per_bone[f"{a}->{b}"] = float(np.mean(ang))
    if not angles:
        raise ValueError(f"{result.path}: no mapped bones to compare")
    every = []
    for j in range(1, _J):
        ang = angle(SMPL_JOINT_NAMES[SMPL_PARENTS[j]], SMPL_JOINT_NAMES[j])
        if ang is not None:
            every.append(ang)
            per_bone.setdefault(f"{SMPL_JOINT_NAMES[SMPL_PARENTS[j]]}->{SMPL_JOINT_NAMES[j]}", float(np.mean(ang)))
    art = np.concatenate(angles)
    every_a = np.concatenate(every) if every else art
    return QualityReport(float(art.mean()), float(np.percentile(art, 95)), float(art.max()),
                         per_bone, len(angles), len(smpl), float(every_a.mean()), float(np.percentile(every_a, 95)),
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
                color = SKELETON_SIDE_COLOURS[0][0] if name.startswith("left") else (
                    SKELETON_SIDE_COLOURS[1][0] if name.startswith("right") else SKELETON_SIDE_COLOURS[2][0])
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
    fig.suptitle("left: source (grey; dashed = its joints on the SMPL tree)   right: converted SMPL, "
                 "shifted +0.9 m in x", fontsize=10)
    from matplotlib.lines import Line2D

    fig.legend(handles=[Line2D([], [], color=c, label=t) for c, t in SKELETON_SIDE_COLOURS], loc="lower center", ncol=3)
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
