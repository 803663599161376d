"""Procedural stand-in body model in the SMPL file layout (**not SMPL**).

This module generates, deterministically and from code only, a simple body model that has the
SMPL *interface*: the 24-joint SMPL kinematic tree, 6890 vertices, linear blend skinning, 10
shape coefficients and 207 pose correctives — so ``smplx.create(dir, model_type="smpl")`` loads
it like a real SMPL file. It exists so that fitting and denoising run end to end on a fresh
machine without the licensed SMPL files. It is **not SMPL**: the mesh is a set of closed tubes
(torso, head + neck, two arms with mitten hands, two legs, two feet) around the bones, the
shape space is seven hand-made directions, and the pose correctives are zero.

What matches SMPL and what does not:

* Joints (rest pose): exactly :data:`posendf_plugin.skeleton.SMPL_REST_JOINTS` + :data:`PELVIS_OFFSET`.
  ``PELVIS_OFFSET`` (metres, Y-up) puts the pelvis roughly where SMPL's template has it (SMPL's
  template is centred near its vertex centroid), so the body "stands like SMPL's template".
  Posing it with ``smplx`` gives exactly :func:`posendf_plugin.skeleton.forward_kinematics` on
  those joints (the kinematics are the same; the J_regressor reproduces the joints exactly).
* Vertex count 6890 and the vertex ids that ``smplx`` / SMPLify / SPIN use for the nose, eyes,
  ears, big/small toes, heels and finger tips (``smplx.vertex_ids.vertex_ids["smplh"]``) are placed
  at the matching places on this mesh, so keypoint code written for SMPL works unchanged. All other
  vertex ids have no correspondence with SMPL.
* Shape directions (per unit beta, in order): stature (+4 % scale about the pelvis), girth (+12 %
  radii), leg length (+6 %), arm length (+6 %), shoulder width (+10 % collar/shoulder spread), torso
  length (+6 % spine), hip width (+15 % hip spread); betas 7..9 are zero directions.
* Skin weights: inverse sixth power of the distance to the bone segments a tube may follow,
  normalised; pose correctives (``posedirs``) are zero.

File encoding: a pickle (protocol 4) whose arrays are rebuilt with public numpy functions
(``numpy.ndarray``, ``numpy.zeros``, ``numpy.bincount``...), so a plain
``pickle.load(f, encoding="latin1")`` (what ``smplx`` does) returns plain numpy arrays, under numpy
1.x and 2.x alike, and the all-zero 6890x3x207 ``posedirs`` costs a few bytes instead of 17 MB.

Regenerate with ``python -m posendf_plugin.bodygen --out DIR`` (writes ``DIR/smpl/SMPL_NEUTRAL.pkl``
and a model card); the packaged copy lives in ``posendf_plugin/assets/body_model/``.
"""
from __future__ import annotations

import argparse
import hashlib
import io as _io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .io import atomic_path
from .skeleton import NUM_SMPL_JOINTS, SMPL_PARENTS, SMPL_REST_JOINTS

__all__ = [
    "GENERATOR_VERSION",
    "NUM_VERTICES",
    "NUM_SHAPE_COEFFS",
    "NUM_POSE_BASIS",
    "PELVIS_OFFSET",
    "SHAPE_DIRECTION_NAMES",
    "STANDIN_MARKER_KEY",
    "SMPLH_KEYPOINT_VERTEX_IDS",
    "ProceduralModel",
    "generate_body_model",
    "save_smpl_pkl",
    "write_body_model",
    "model_card_text",
    "main",
]

GENERATOR_VERSION = 1
NUM_VERTICES = 6890
NUM_SHAPE_COEFFS = 10
#: (24 - 1) joints x 9 entries of (R - I): the SMPL pose-corrective basis size.
NUM_POSE_BASIS = (NUM_SMPL_JOINTS - 1) * 9
#: Where the pelvis joint sits in the model's rest pose (metres, Y-up, facing +Z).
PELVIS_OFFSET = np.array([0.0, -0.22, 0.02])
SHAPE_DIRECTION_NAMES: Tuple[str, ...] = (
    "stature", "girth", "leg_length", "arm_length", "shoulder_width", "torso_length", "hip_width",
)
#: Key stored in the .pkl that marks the file as this stand-in (real SMPL files lack it).
STANDIN_MARKER_KEY = "posendf_standin"

#: The SMPL/SMPL+H vertex ids used by smplx, SMPLify-X and SPIN for extra keypoints
#: (same values as ``smplx.vertex_ids.vertex_ids["smplh"]``); the generator places them.
SMPLH_KEYPOINT_VERTEX_IDS: Dict[str, int] = {
    "nose": 332, "reye": 6260, "leye": 2800, "rear": 4071, "lear": 583,
    "rthumb": 6191, "rindex": 5782, "rmiddle": 5905, "rring": 6016, "rpinky": 6133,
    "lthumb": 2746, "lindex": 2319, "lmiddle": 2445, "lring": 2556, "lpinky": 2673,
    "LBigToe": 3216, "LSmallToe": 3226, "LHeel": 3387,
    "RBigToe": 6617, "RSmallToe": 6624, "RHeel": 6787,
}

# Left/right joint pairs of the SMPL tree (used to build the right side as a mirror image).
_MIRROR = (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22)
_X, _Y, _Z = np.eye(3)


# ---------------------------------------------------------------------------------------------
# Tubes: closed surfaces made of rings around a poly-line, capped by two pole vertices
# ---------------------------------------------------------------------------------------------


@dataclass
class _Station:
    """A ring the tube must pass through.

    ``at`` is ``(joint,)``, ``(joint, offset)`` or ``(joint_a, joint_b, t)`` (interpolation);
    ``sub`` is the number of interpolated rings to the next station (fixed, so every shape
    variant has the same topology); ``key`` marks a ring centred exactly on that joint.
    """

    at: tuple
    ru: float
    rv: float
    sub: int = 0
    key: Optional[int] = None


@dataclass
class _TubeSpec:
    name: str
    stations: List[_Station]
    ref: np.ndarray                # world direction of the ring's u axis (projected)
    segments: int                  # vertices per ring
    cap_start: Tuple[float, int]   # (cap length as a fraction of the mean end radius, rings)
    cap_end: Tuple[float, int]
    owners: Tuple[int, ...]        # joints whose bones may skin this tube
    side: str = "c"                # "c" centre, "l" left (a mirrored right copy is made)


@dataclass
class _Tube:
    name: str
    vertices: np.ndarray           # (n, 3)
    faces: np.ndarray              # (m, 3) local indices
    ring_slices: List[slice]       # vertex ranges of every ring (poles excluded)
    ring_keys: List[Optional[int]]
    owners: Tuple[int, ...]
    side: str


def _point(J: np.ndarray, at: tuple) -> np.ndarray:
    if len(at) == 1:
        return J[at[0]].copy()
    if len(at) == 2:
        return J[at[0]] + np.asarray(at[1], dtype=np.float64)
    a, b, t = at
    return (1.0 - t) * J[a] + t * J[b]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _tube_specs() -> List[_TubeSpec]:
    S = _Station
    torso = _TubeSpec(
        "torso",
        [
            S((0, (0.0, -0.12, 0.0)), 0.165, 0.110, sub=3),
            S((0,), 0.165, 0.115, sub=3, key=0),
            S((3,), 0.145, 0.100, sub=4, key=3),
            S((6,), 0.150, 0.105, sub=1, key=6),
            S((9,), 0.160, 0.110, sub=3, key=9),
            S((12, (0.0, -0.08, 0.01)), 0.165, 0.100, sub=2),
            S((12,), 0.065, 0.060, key=12),
        ],
        ref=_X, segments=56, cap_start=(0.45, 3), cap_end=(0.5, 2), owners=(0, 3, 6, 9),
    )
    head = _TubeSpec(
        "head",
        [
            S((12,), 0.055, 0.055, sub=2, key=12),
            S((15,), 0.072, 0.085, sub=1, key=15),
            S((15, (0.0, 0.065, -0.01)), 0.080, 0.100),
        ],
        ref=_X, segments=48, cap_start=(0.8, 2), cap_end=(1.05, 6), owners=(9, 12, 15),
    )
    arm = _TubeSpec(
        "arm",
        [
            S((13,), 0.050, 0.060, sub=3, key=13),
            S((16,), 0.058, 0.060, sub=3, key=16),
            S((16, 18, 0.5), 0.048, 0.048, sub=3),
            S((18,), 0.040, 0.042, sub=3, key=18),
            S((18, 20, 0.45), 0.042, 0.045, sub=3),
            S((20,), 0.026, 0.036, sub=2, key=20),
            S((22,), 0.018, 0.045, sub=2, key=22),
            S((22, (0.09, 0.0, 0.0)), 0.012, 0.040),
        ],
        ref=_Y, segments=28, cap_start=(0.7, 2), cap_end=(0.8, 2),
        owners=(9, 13, 16, 18, 20, 22), side="l",
    )
    leg = _TubeSpec(
        "leg",
        [
            S((1, (0.0, 0.04, 0.0)), 0.075, 0.080, sub=1),
            S((1,), 0.085, 0.090, sub=3, key=1),
            S((1, 4, 0.3), 0.080, 0.085, sub=3),
            S((1, 4, 0.65), 0.065, 0.070, sub=3),
            S((4,), 0.052, 0.055, sub=3, key=4),
            S((4, 7, 0.3), 0.055, 0.060, sub=4),
            S((4, 7, 0.75), 0.040, 0.042, sub=2),
            S((7,), 0.033, 0.037, key=7),
        ],
        ref=_X, segments=32, cap_start=(0.6, 2), cap_end=(0.7, 2), owners=(0, 1, 4, 7), side="l",
    )
    foot = _TubeSpec(
        "foot",
        [
            S((7, (0.0, -0.045, -0.05)), 0.028, 0.030, sub=1),
            S((7, (0.0, -0.035, 0.0)), 0.035, 0.037, sub=2),
            S((10,), 0.030, 0.045, sub=1, key=10),
            S((10, (0.005, -0.008, 0.05)), 0.020, 0.040),
        ],
        ref=_Y, segments=24, cap_start=(1.0, 2), cap_end=(0.9, 2), owners=(4, 7, 10), side="l",
    )
    return [torso, head, arm, leg, foot]


def _rings_for(spec: _TubeSpec, J: np.ndarray, girth: float):
    """Ring centres, radii and keys of a tube, in order, plus the two pole points."""
    pts = [_point(J, s.at) for s in spec.stations]
    centers: List[np.ndarray] = []
    radii: List[Tuple[float, float]] = []
    keys: List[Optional[int]] = []
    for i, s in enumerate(spec.stations):
        centers.append(pts[i])
        radii.append((s.ru * girth, s.rv * girth))
        keys.append(s.key)
        if i + 1 < len(spec.stations):
            nxt = spec.stations[i + 1]
            for k in range(1, s.sub + 1):
                t = k / (s.sub + 1)
                centers.append((1 - t) * pts[i] + t * pts[i + 1])
                radii.append(((1 - t) * s.ru * girth + t * nxt.ru * girth,
                              (1 - t) * s.rv * girth + t * nxt.rv * girth))
                keys.append(None)
    # ellipsoidal caps beyond both ends
    d0 = _unit(centers[0] - centers[1])
    d1 = _unit(centers[-1] - centers[-2])
    (f0, m0), (f1, m1) = spec.cap_start, spec.cap_end
    L0 = f0 * 0.5 * sum(radii[0])
    L1 = f1 * 0.5 * sum(radii[-1])
    start_c, start_r, end_c, end_r = [], [], [], []
    for k in range(m0, 0, -1):
        phi = k / (m0 + 1) * np.pi / 2
        start_c.append(centers[0] + d0 * L0 * np.sin(phi))
        start_r.append((radii[0][0] * np.cos(phi), radii[0][1] * np.cos(phi)))
    for k in range(1, m1 + 1):
        phi = k / (m1 + 1) * np.pi / 2
        end_c.append(centers[-1] + d1 * L1 * np.sin(phi))
        end_r.append((radii[-1][0] * np.cos(phi), radii[-1][1] * np.cos(phi)))
    centers = start_c + centers + end_c
    radii = start_r + radii + end_r
    keys = [None] * m0 + keys + [None] * m1
    return centers, radii, keys, (pts[0] + d0 * L0, pts[-1] + d1 * L1)


def _stitch(a0: int, na: int, b0: int, nb: int) -> List[Tuple[int, int, int]]:
    """Triangulate the band between ring A (``na`` vertices from ``a0``) and ring B, whose
    vertices are at angles ``2 pi i / n`` in matching frames (zipper by angle)."""
    tris = []
    i = j = 0
    while i < na or j < nb:
        ai, ai1 = a0 + i % na, a0 + (i + 1) % na
        bj, bj1 = b0 + j % nb, b0 + (j + 1) % nb
        if j >= nb or (i < na and (i + 1) / na <= (j + 1) / nb):
            tris.append((ai, ai1, bj))
            i += 1
        else:
            tris.append((ai, bj1, bj))
            j += 1
    return tris


def _build_tube(spec: _TubeSpec, J: np.ndarray, girth: float, counts: Sequence[int]) -> _Tube:
    centers, radii, keys, (pole0, pole1) = _rings_for(spec, J, girth)
    if len(counts) != len(centers):
        raise ValueError("internal error: ring counts do not match the tube layout")
    n_r = len(centers)
    verts = [pole0]
    slices = []
    start = 1
    for k in range(n_r):
        if k == 0:
            tang = centers[1] - centers[0]
        elif k == n_r - 1:
            tang = centers[-1] - centers[-2]
        else:
            tang = _unit(centers[k + 1] - centers[k]) + _unit(centers[k] - centers[k - 1])
        t = _unit(tang)
        u = _unit(spec.ref - (spec.ref @ t) * t)
        v = np.cross(t, u)
        n = counts[k]
        th = 2.0 * np.pi * np.arange(n) / n
        ring = centers[k] + np.outer(radii[k][0] * np.cos(th), u) + np.outer(radii[k][1] * np.sin(th), v)
        verts.extend(ring)
        slices.append(slice(start, start + n))
        start += n
    verts.append(pole1)
    last = start
    faces: List[Tuple[int, int, int]] = []
    n0 = counts[0]
    for i in range(n0):
        faces.append((0, 1 + (i + 1) % n0, 1 + i))
    for k in range(n_r - 1):
        faces.extend(_stitch(slices[k].start, counts[k], slices[k + 1].start, counts[k + 1]))
    nl = counts[-1]
    s = slices[-1].start
    for i in range(nl):
        faces.append((last, s + i, s + (i + 1) % nl))
    return _Tube(spec.name, np.asarray(verts), np.asarray(faces, dtype=np.int64), slices, keys,
                 spec.owners, spec.side)


def _mirror_joints(J: np.ndarray) -> np.ndarray:
    M = J[list(_MIRROR)].copy()
    M[:, 0] *= -1.0
    return M


def _ring_counts(specs: List[_TubeSpec], J: np.ndarray) -> List[List[int]]:
    """Vertices per ring for every tube (left and mirrored right copies), padded so the whole
    mesh has exactly :data:`NUM_VERTICES` vertices."""
    counts = []
    for spec in specs:
        n = len(_rings_for(spec, J, 1.0)[0])
        for _ in range(2 if spec.side == "l" else 1):
            counts.append([spec.segments] * n)
    total = sum(sum(c) + 2 for c in counts)
    deficit = NUM_VERTICES - total
    if deficit < 0:
        raise ValueError("internal error: base resolution exceeds NUM_VERTICES")
    # spread the remainder over the torso's non-key rings
    _, _, keys, _ = _rings_for(specs[0], J, 1.0)
    free = [k for k, key in enumerate(keys) if key is None]
    i = 0
    while deficit > 0:
        counts[0][free[i % len(free)]] += 1
        deficit -= 1
        i += 1
    return counts


def _build_mesh(J: np.ndarray, girth: float = 1.0):
    """All tubes (left parts followed by their mirrored right copies) on pelvis-relative joints
    ``J`` (24, 3), with radii scaled by ``girth``."""
    specs = _tube_specs()
    counts = _ring_counts(specs, SMPL_REST_JOINTS.double().numpy())
    tubes: List[_Tube] = []
    ci = 0
    for spec in specs:
        tube = _build_tube(spec, J, girth, counts[ci])
        ci += 1
        tubes.append(tube)
        if spec.side == "l":
            right = _build_tube(spec, _mirror_joints(J), girth, counts[ci])
            ci += 1
            right.vertices = right.vertices * np.array([-1.0, 1.0, 1.0])
            right.faces = right.faces[:, ::-1].copy()
            right.ring_keys = [None if k is None else _MIRROR[k] for k in right.ring_keys]
            right.owners = tuple(_MIRROR[o] for o in right.owners)
            right.side = "r"
            tubes.append(right)
    return tubes


def _concat(tubes: List[_Tube]):
    verts, faces, offset = [], [], 0
    for t in tubes:
        verts.append(t.vertices)
        faces.append(t.faces + offset)
        offset += len(t.vertices)
    return np.concatenate(verts), np.concatenate(faces)


# ---------------------------------------------------------------------------------------------
# Shape variants, skinning, joint regressor, keypoint vertices
# ---------------------------------------------------------------------------------------------


def _scale_bones(J: np.ndarray, scaled: Dict[int, np.ndarray]) -> np.ndarray:
    """Scale the offset of joint j from its parent by ``scaled[j]`` (per axis); descendants
    follow rigidly. ``J``: (24, 3) pelvis-relative."""
    out = J.copy()
    for j in range(1, NUM_SMPL_JOINTS):
        p = SMPL_PARENTS[j]
        out[j] = out[p] + scaled.get(j, np.ones(3)) * (J[j] - J[p])
    return out


def _shape_variants(J: np.ndarray) -> List[Tuple[np.ndarray, float]]:
    """(joints, girth) of the +1 beta variant of every non-stature direction, in order."""
    s = np.full(3, 1.06)
    legs = {4: s, 5: s, 7: s, 8: s}
    arms = {18: s, 19: s, 20: s, 21: s}
    sx = np.array([1.10, 1.0, 1.0])
    shoulders = {13: sx, 14: sx, 16: sx, 17: sx}
    spine = {3: s, 6: s, 9: s, 12: s}
    hx = np.array([1.15, 1.0, 1.0])
    hips = {1: hx, 2: hx}
    return [
        (J, 1.12),
        (_scale_bones(J, legs), 1.0),
        (_scale_bones(J, arms), 1.0),
        (_scale_bones(J, shoulders), 1.0),
        (_scale_bones(J, spine), 1.0),
        (_scale_bones(J, hips), 1.0),
    ]


def _bone_segments(J: np.ndarray, tips: Dict[int, np.ndarray]) -> List[Tuple[int, np.ndarray, np.ndarray]]:
    segs = []
    for j in range(1, NUM_SMPL_JOINTS):
        p = SMPL_PARENTS[j]
        segs.append((p, J[p], J[j]))
    for j, tip in tips.items():
        segs.append((j, J[j], tip))
    return segs


def _point_segment_distance(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((x - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(x - (a + t[:, None] * ab), axis=1)


def _skin_weights(tubes: List[_Tube], J: np.ndarray, power: float = 6.0) -> np.ndarray:
    """(V, 24) weights: inverse ``power`` distance to the bones each tube may follow."""
    tips = {
        15: J[15] + np.array([0.0, 0.17, -0.01]),
        22: J[22] + np.array([0.11, 0.0, 0.0]),
        23: J[23] + np.array([-0.11, 0.0, 0.0]),
        10: J[10] + np.array([0.005, -0.01, 0.075]),
        11: J[11] + np.array([-0.005, -0.01, 0.075]),
    }
    segs = _bone_segments(J, tips)
    blocks = []
    for t in tubes:
        x = t.vertices
        d = np.full((len(x), NUM_SMPL_JOINTS), np.inf)
        for owner, a, b in segs:
            if owner in t.owners:
                d[:, owner] = np.minimum(d[:, owner], _point_segment_distance(x, a, b))
        w = np.where(np.isfinite(d), np.maximum(d, 1e-4) ** -power, 0.0)
        w /= w.sum(1, keepdims=True)
        w[w < 1e-3] = 0.0
        w /= w.sum(1, keepdims=True)
        blocks.append(w)
    return np.concatenate(blocks)


def _joint_regressor(tubes: List[_Tube], num_vertices: int) -> np.ndarray:
    """(24, V): every joint is the mean of the centroids of the rings centred on it."""
    rings: Dict[int, List[np.ndarray]] = {j: [] for j in range(NUM_SMPL_JOINTS)}
    offset = 0
    for t in tubes:
        for sl, key in zip(t.ring_slices, t.ring_keys):
            if key is not None:
                rings[key].append(np.arange(sl.start, sl.stop) + offset)
        offset += len(t.vertices)
    R = np.zeros((NUM_SMPL_JOINTS, num_vertices))
    for j, lst in rings.items():
        if not lst:
            raise ValueError(f"internal error: no ring is centred on joint {j}")
        for idx in lst:
            R[j, idx] += 1.0 / (len(idx) * len(lst))
    return R


def _keypoint_targets(J: np.ndarray) -> Dict[str, Tuple[str, np.ndarray]]:
    """Anatomical target point (pelvis-relative) and tube for every keypoint vertex id."""
    head = J[15]
    t = {
        "nose": ("head", head + [0.0, 0.045, 0.095]),
        "leye": ("head", head + [0.033, 0.075, 0.08]),
        "reye": ("head", head + [-0.033, 0.075, 0.08]),
        "lear": ("head", head + [0.08, 0.055, -0.02]),
        "rear": ("head", head + [-0.08, 0.055, -0.02]),
    }
    for side, s, hand, ankle, foot in (("l", 1.0, 22, 7, 10), ("r", -1.0, 23, 8, 11)):
        H = J[hand]
        t[side + "thumb"] = ("arm" + side, H + [s * 0.02, -0.005, 0.05])
        t[side + "index"] = ("arm" + side, H + [s * 0.11, 0.0, 0.03])
        t[side + "middle"] = ("arm" + side, H + [s * 0.115, 0.0, 0.01])
        t[side + "ring"] = ("arm" + side, H + [s * 0.11, 0.0, -0.01])
        t[side + "pinky"] = ("arm" + side, H + [s * 0.10, 0.0, -0.03])
        S = side.upper()
        t[S + "BigToe"] = ("foot" + side, J[foot] + [-s * 0.012, -0.012, 0.075])
        t[S + "SmallToe"] = ("foot" + side, J[foot] + [s * 0.035, -0.015, 0.045])
        t[S + "Heel"] = ("foot" + side, J[ankle] + [0.0, -0.06, -0.085])
    return t


def _keypoint_permutation(tubes: List[_Tube], J: np.ndarray) -> np.ndarray:
    """``order`` with ``new_vertices = old_vertices[order]`` placing the keypoint vertices at
    the SMPL vertex ids of :data:`SMPLH_KEYPOINT_VERTEX_IDS`."""
    verts, _ = _concat(tubes)
    ranges, offset = {}, 0
    for t in tubes:
        key = t.name if t.side == "c" else t.name + t.side
        ranges[key] = (offset, offset + len(t.vertices))
        offset += len(t.vertices)
    chosen: Dict[int, int] = {}
    used = set()
    for name, (tube, target) in _keypoint_targets(J).items():
        lo, hi = ranges[tube]
        d = np.linalg.norm(verts[lo:hi] - np.asarray(target), axis=1)
        for cand in np.argsort(d, kind="stable"):
            if lo + int(cand) not in used:
                break
        old = lo + int(cand)
        used.add(old)
        chosen[SMPLH_KEYPOINT_VERTEX_IDS[name]] = old
    order = np.full(len(verts), -1, dtype=np.int64)
    for new, old in chosen.items():
        order[new] = old
    rest = iter(i for i in range(len(verts)) if i not in used)
    for new in range(len(verts)):
        if order[new] < 0:
            order[new] = next(rest)
    return order


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


@dataclass
class ProceduralModel:
    """The generated model as plain numpy arrays, with SMPL's key names and shapes."""

    v_template: np.ndarray        # (6890, 3)
    shapedirs: np.ndarray         # (6890, 3, 10)
    posedirs: np.ndarray          # (6890, 3, 207), zeros
    J_regressor: np.ndarray       # (24, 6890), rows sum to 1
    weights: np.ndarray           # (6890, 24), rows sum to 1
    kintree_table: np.ndarray     # (2, 24) uint32, SMPL convention (root parent = 2**32 - 1)
    f: np.ndarray                 # (F, 3) uint32
    J: np.ndarray                 # (24, 3) rest joints = SMPL_REST_JOINTS + PELVIS_OFFSET
    extras: Dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, object]:
        d = {k: getattr(self, k) for k in
             ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f", "J")}
        d["bs_style"] = "lbs"
        d["bs_type"] = "lrotmin"
        d.update(self.extras)
        return d


def model_card_text() -> str:
    return (
        "# posendf-plugin procedural body model (a stand-in, NOT SMPL)\n\n"
        f"Generated by `posendf_plugin.bodygen` (generator version {GENERATOR_VERSION}), from code\n"
        "only; no SMPL data was used. It is stored in the SMPL file layout (`smpl/SMPL_NEUTRAL.pkl`:\n"
        "v_template, shapedirs, posedirs, J_regressor, weights, kintree_table, f, J) so that\n"
        "`smplx.create(dir, model_type='smpl', gender='neutral')` loads it.\n\n"
        "- Topology: the SMPL 24-joint tree; 6890 vertices forming closed tubes around the bones\n"
        "  (torso, head+neck, arms with mitten hands, legs, feet). Only the keypoint vertex ids that\n"
        "  smplx/SMPLify/SPIN use (nose, eyes, ears, toes, heels, finger tips) correspond to SMPL.\n"
        "- Rest joints: posendf_plugin.skeleton.SMPL_REST_JOINTS + PELVIS_OFFSET "
        f"{PELVIS_OFFSET.tolist()} m; height about 1.73 m.\n"
        "- Shape: betas 0..6 = " + ", ".join(SHAPE_DIRECTION_NAMES) + "; betas 7..9 are zero.\n"
        "- Pose correctives: zero. Skinning: inverse-distance weights to the bones.\n\n"
        "Use the real SMPL / SMPL+H / SMPL-X files (`--body-model DIR`) for results meant to be\n"
        "compared with published numbers; this model is for running the pipelines end to end.\n"
    )


def generate_body_model() -> ProceduralModel:
    """Build the procedural model (deterministic: pure arithmetic, no randomness)."""
    J = SMPL_REST_JOINTS.double().numpy()
    base_tubes = _build_mesh(J)
    verts, faces = _concat(base_tubes)
    if len(verts) != NUM_VERTICES:
        raise ValueError(f"internal error: generated {len(verts)} vertices, expected {NUM_VERTICES}")
    order = _keypoint_permutation(base_tubes, J)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))

    weights = _skin_weights(base_tubes, J)[order]
    J_reg = _joint_regressor(base_tubes, len(verts))[:, order]
    v = verts[order]
    f = inverse[faces]

    dirs = [0.04 * v]  # stature: scale about the pelvis (the pelvis is the origin here)
    for Jv, girth in _shape_variants(J):
        vv, _ = _concat(_build_mesh(Jv, girth))
        dirs.append(vv[order] - v)
    shapedirs = np.zeros((NUM_VERTICES, 3, NUM_SHAPE_COEFFS))
    shapedirs[:, :, : len(dirs)] = np.stack(dirs, axis=-1)

    kintree = np.zeros((2, NUM_SMPL_JOINTS), dtype=np.uint32)
    kintree[0] = [np.uint32(0xFFFFFFFF) if p < 0 else p for p in SMPL_PARENTS]
    kintree[1] = np.arange(NUM_SMPL_JOINTS)
    offset = PELVIS_OFFSET[None]
    return ProceduralModel(
        v_template=(v + offset).astype(np.float32),
        shapedirs=shapedirs.astype(np.float32),
        posedirs=np.zeros((NUM_VERTICES, 3, NUM_POSE_BASIS), dtype=np.float32),
        J_regressor=J_reg.astype(np.float32),
        weights=weights.astype(np.float32),
        kintree_table=kintree,
        f=f.astype(np.uint32),
        J=(J + offset).astype(np.float32),
        extras={
            STANDIN_MARKER_KEY: f"procedural stand-in generated by posendf_plugin.bodygen "
                                f"v{GENERATOR_VERSION}; NOT the SMPL model",
            "shape_direction_names": list(SHAPE_DIRECTION_NAMES),
            "pelvis_offset": PELVIS_OFFSET.astype(np.float32),
        },
    )


# ---------------------------------------------------------------------------------------------
# Writing: arrays as calls to public numpy functions (portable across numpy versions)
# ---------------------------------------------------------------------------------------------


class _Call:
    """Pickles as ``func(*args)`` (``func`` must be a public, importable numpy function)."""

    def __init__(self, func, args: tuple):
        self.func, self.args = func, args


def _encode_array(a: np.ndarray):
    a = np.ascontiguousarray(a)
    dt = a.dtype.str
    if a.size > 64 and not a.any():
        return _Call(np.zeros, (a.shape, dt))
    nz = np.flatnonzero(a)
    if a.size > 4096 and a.dtype.kind == "f" and len(nz) < 0.2 * a.size:
        vals = a.reshape(-1)[nz].astype(np.float64)
        raw = _Call(np.bincount, (_encode_dense(nz.astype(np.int32)), _encode_dense(vals), a.size))
        return _Call(np.reshape, (_Call(np.asarray, (raw, dt)), a.shape))
    return _encode_dense(a)


def _encode_dense(a: np.ndarray):
    return _Call(np.array, (_Call(np.ndarray, (a.shape, a.dtype.str, a.tobytes())),))


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, _Call):
            return obj.func, obj.args
        if isinstance(obj, np.ndarray):
            call = _encode_array(obj)
            return call.func, call.args
        return NotImplemented


def save_smpl_pkl(path, data: Dict[str, object]) -> Path:
    """Atomically write ``data`` (str -> numpy array / str / list) as an SMPL-layout ``.pkl``."""
    buf = _io.BytesIO()
    _Pickler(buf, protocol=4).dump(dict(data))
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
        tmp.chmod(0o644)
    return path


def write_body_model(out_dir) -> Path:
    """Generate the model and write ``out_dir/smpl/SMPL_NEUTRAL.pkl`` plus ``out_dir/MODEL_CARD.md``.

    Returns the path of the ``.pkl``.
    """
    out_dir = Path(out_dir)
    model = generate_body_model()
    pkl = save_smpl_pkl(out_dir / "smpl" / "SMPL_NEUTRAL.pkl", model.as_dict())
    with atomic_path(out_dir / "MODEL_CARD.md") as tmp:
        tmp.write_text(model_card_text())
        tmp.chmod(0o644)
    return pkl


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m posendf_plugin.bodygen",
        description="Generate the procedural stand-in body model (SMPL file layout, not SMPL).",
    )
    parser.add_argument("--out", required=True, help="output folder (gets smpl/SMPL_NEUTRAL.pkl)")
    args = parser.parse_args(argv)
    pkl = write_body_model(args.out)
    print(f"wrote {pkl} (sha256 {_sha256(pkl)[:16]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
