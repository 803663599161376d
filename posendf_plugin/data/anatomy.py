"""What an SMPL body pose *means*, joint by joint, read from rig-independent quantities.

A mocap rig's joint frames and joint placements are its own (where it puts the pelvis joint,
how many spine bones it has, how its bones are rolled, what its rest pose is), so a converter
that copies rig rotations, or matches rig-specific bone directions, gives every rig its own
constant offsets. This module defines the 21 SMPL body rotations from **anatomical landmarks**
(the positions of the hip, knee, ankle, toe, shoulder, elbow, wrist, neck-base and head joints,
which every humanoid rig places at the same body points) plus the *changes* of segment
orientations, never from a rig's rest pose:

=================  ============================================================================
pelvis (root)      the rig's pelvis-segment orientation, offset by a constant calibrated so that
                   the hip line (left hip - right hip) is the pelvis's left axis in every frame,
                   and the pelvis is upright (its up axis vertical) in **standing frames**: the
                   trunk vertical and both knees nearly straight (else any frames with the trunk
                   vertical). A clip with neither uses the trunk (hips -> neck base) at its rest
                   direction on average.
spine1..3          the thorax (the rig's chest-segment orientation, offset so that the spine is
                   neutral — thorax aligned with pelvis — in the same standing frames)
                   relative to the pelvis; the bend is **shared equally** among
                   spine1, spine2 and spine3 (each takes a third of the axis-angle).
neck, head         the head-segment orientation relative to the thorax, offset so that the
                   head is neutral when standing; shared equally between neck and head.
collars            swing from the thorax frame that points the SMPL collar bone from a
                   thorax-fixed base to the shoulder landmark: shrugs and protraction, no twist.
                   The base is placed (relative to the rig's chest joint, SMPL collar length
                   scaled to the subject's shoulder width) so that the collar is neutral when
                   standing.
hips, shoulders    bone direction (hip->knee, shoulder->elbow) exact; twist from the knee /
                   elbow hinge plane (flexion axis = SMPL's), calibrated over the clip
                   (:func:`posendf_plugin.data.convert.solve_smpl`).
knees, elbows      same: bone direction exact, hinge plane for twist.
ankles, wrists,    the rig's segment orientation relative to the parent (shin / forearm / foot),
feet (toes)        offset so that the joint is neutral when standing.
hands              identity (SMPL's hand joints are not part of the body pose).
=================  ============================================================================

"Neutral when standing" is the one convention that fixes what landmarks cannot (the pelvis tilt
about the hip line, the spine's and the head's bend, foot and wrist flexion): SMPL's zero pose is an upright
stance, and mocap clips contain upright frames. A clip without any (sitting, crawling) falls
back to the clip average for these offsets; :func:`standing_weights` says which frames count.

All functions take and return numpy arrays (float64, Y-up, metres); axis-angle maps go through
:mod:`posendf_plugin.rotations`.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch

from .. import rotations as R

__all__ = [
    "standing_weights",
    "calibrate_offset",
    "calibrate_axes",
    "calibration_weights",
    "rotation_power",
    "swing",
    "kabsch",
    "unit",
    "MIN_STANDING_FRAMES",
]

#: below this many (weighted) neutral frames, an offset falls back to the clip average.
MIN_STANDING_FRAMES = 5.0


def unit(v: np.ndarray) -> np.ndarray:
    """``v / |v|`` along the last axis (0 stays 0). ``(..., 3) -> (..., 3)``."""
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def kabsch(H: np.ndarray) -> np.ndarray:
    """Rotation ``C`` maximising ``trace(C^T H)`` for ``H = Σ w b a^T`` (so ``C a ≈ b``).
    ``(..., 3, 3) -> (..., 3, 3)``."""
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(U @ Vt))
    d = np.where(d == 0, 1.0, d)
    D = np.zeros(H.shape)
    D[..., 0, 0] = 1.0
    D[..., 1, 1] = 1.0
    D[..., 2, 2] = d
    return U @ D @ Vt


def swing(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Smallest rotations taking unit vectors ``v`` to ``w``. ``(..., 3) -> (..., 3, 3)``."""
    v, w = np.broadcast_arrays(v, w)
    axis = np.cross(v, w)
    s = np.linalg.norm(axis, axis=-1)
    c = np.sum(v * w, axis=-1)
    perp = np.cross(v, np.array([1.0, 0.0, 0.0]))
    perp = np.where(np.linalg.norm(perp, axis=-1, keepdims=True) < 1e-6, np.cross(v, np.array([0.0, 1.0, 0.0])), perp)
    axis = unit(np.where((s < 1e-9)[..., None], perp, axis))
    angle = np.arctan2(s, c)
    return _aa_to_matrix(axis * angle[..., None])


def rotation_power(Rm: np.ndarray, t: float) -> np.ndarray:
    """``R^t``: the rotation about the same axis by ``t`` times the angle (angle in [0, π]).
    ``(..., 3, 3) -> (..., 3, 3)``."""
    aa = R.matrix_to_axis_angle(torch.from_numpy(np.ascontiguousarray(Rm, dtype=np.float64)))
    return R.axis_angle_to_matrix(aa * t).numpy()


def _aa_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Axis-angle ``(..., 3)`` to rotation matrices ``(..., 3, 3)``, float64, through
    :mod:`posendf_plugin.rotations`."""
    return R.axis_angle_to_matrix(torch.from_numpy(np.ascontiguousarray(aa, dtype=np.float64))).numpy()


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.sum(unit(a) * unit(b), -1), -1.0, 1.0)))


def _ramp(x: np.ndarray, full: float, zero: float) -> np.ndarray:
    """1 at ``x <= full``, 0 at ``x >= zero``, linear between (NaN -> 0)."""
    return np.nan_to_num(np.clip((zero - x) / (zero - full), 0.0, 1.0))


def standing_weights(pos: Dict[str, np.ndarray], up: np.ndarray = np.array([0.0, 1.0, 0.0])) -> Dict[str, np.ndarray]:
    """How much each frame shows each body part in its neutral upright posture, in [0, 1].

    Args:
        pos: landmark name -> ``(F, 3)`` positions: ``{left,right}_{hip,knee,ankle,shoulder,
            elbow,wrist}`` and ``neck`` (neck base).
        up: the world's up direction.
    Returns:
        ``"trunk"``: the trunk (hips midpoint -> neck base) within 10° of vertical (falling to 0
        at 25°); ``"left_leg"`` / ``"right_leg"``: trunk upright and that knee within 25° of
        straight (0 at 50°) — walking frames count, the two thighs swing about neutral;
        ``"left_foot"`` / ``"right_foot"``: trunk upright, knee within 15°, shin within 10° of
        vertical (stance); ``"left_arm"`` / ``"right_arm"``: trunk upright, upper arm within
        20° of hanging down, elbow within 20° of straight. Each ``(F,)``.
    """
    trunk = pos["neck"] - 0.5 * (pos["left_hip"] + pos["right_hip"])
    w_up = _ramp(_angle_deg(trunk, up), 10.0, 25.0)
    out = {"trunk": w_up}
    for s in ("left", "right"):
        thigh = pos[f"{s}_knee"] - pos[f"{s}_hip"]
        shin = pos[f"{s}_ankle"] - pos[f"{s}_knee"]
        knee = _angle_deg(thigh, shin)
        out[f"{s}_leg"] = w_up * _ramp(knee, 25.0, 50.0)
        out[f"{s}_foot"] = w_up * _ramp(knee, 15.0, 30.0) * _ramp(_angle_deg(shin, -up), 10.0, 25.0)
        upper = pos[f"{s}_elbow"] - pos[f"{s}_shoulder"]
        fore = pos[f"{s}_wrist"] - pos[f"{s}_elbow"]
        out[f"{s}_arm"] = w_up * _ramp(_angle_deg(upper, -up), 20.0, 40.0) * _ramp(_angle_deg(upper, fore), 20.0, 40.0)
    return out


def calibrate_offset(orient: np.ndarray, target: np.ndarray, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Constant rotation ``C`` with ``orient[t] @ C ≈ target[t]`` in the weighted least-squares
    sense over frames: :func:`calibrate_axes` on the three axes of ``target``.
    ``(F, 3, 3), (F, 3, 3), (F,) -> (3, 3)`` (identity without data)."""
    w = 1.0 if weights is None else np.nan_to_num(np.asarray(weights, float))
    ok = np.isfinite(target).all(axis=(1, 2))
    return calibrate_axes(orient, [(np.eye(3)[k], target[..., k], w * ok) for k in range(3)])


def calibrate_axes(orient: np.ndarray, pairs) -> np.ndarray:
    """Constant rotation ``C`` with ``orient[t] @ C @ a ≈ b[t]`` for weighted direction pairs.

    Args:
        orient: ``(F, 3, 3)`` segment orientations.
        pairs: iterable of ``(a (3,), b (F, 3), w (F,) or float)``: a direction in the SMPL rest
            frame of the segment and the landmark direction it must follow in frame ``t``.
    Returns:
        ``(3, 3)`` (identity when no pair has weight).
    """
    F = len(orient)
    ok = np.isfinite(orient).all(axis=(1, 2))
    H = np.zeros((3, 3))
    for a, b, w in pairs:
        bl = np.einsum("fba,fb->fa", np.nan_to_num(orient), np.nan_to_num(unit(b)))
        wt = np.broadcast_to(np.asarray(w, float), (F,)) * ok * np.isfinite(b).all(-1)
        H += np.einsum("f,fi,j->ij", np.nan_to_num(wt), bl, np.asarray(a, float))
    return kabsch(H) if np.abs(H).sum() > 0 else np.eye(3)


def calibration_weights(standing: np.ndarray) -> np.ndarray:
    """``standing`` when it sums to at least :data:`MIN_STANDING_FRAMES`, else uniform. ``(F,)``."""
    return standing if float(standing.sum()) >= MIN_STANDING_FRAMES else np.ones_like(standing)
