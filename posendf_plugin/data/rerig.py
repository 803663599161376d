"""Put an SMPL motion on other rigs: other joint placements, spine counts, bone rolls, rest poses.

Used to check that mocap conversion does not depend on the rig
(:mod:`posendf_plugin.data.anatomy`): the same motion written on two rigs must convert to the
same SMPL pose. A rig is a list of :class:`RigJoint`: each joint moves rigidly with one SMPL
segment (``segment``) at a point given in that segment's rest frame; a joint with an ``aim``
child is turned (smallest swing from its segment) so that the child stays on its bone, which lets
a rig skip SMPL joints (fewer spine bones) or put joints elsewhere (a collar starting at the
neck base, a pelvis joint below the hips). ``roll`` gives each joint its own constant frame
(bone roll), so the rig's rest pose (all rotations zero) is another posture and every channel
value differs. The landmarks the converter reads (hips, knees, ankles, toes, shoulders,
elbows, wrists, neck base, head) stay at the SMPL joints, as on a real body.

Y-up, metres, SMPL rest skeleton :data:`~posendf_plugin.skeleton.SMPL_REST_JOINTS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .. import rotations as R
from ..skeleton import NUM_BODY_JOINTS, SMPL_JOINT_NAMES, SMPL_REST_JOINTS, forward_kinematics
from .anatomy import swing, unit
from .bvh import write_bvh

if TYPE_CHECKING:
    from .rigs import RigProfile

__all__ = ["RigJoint", "RIG_VARIANTS", "rig_variant", "variant_profile", "smpl_global", "write_rig_bvh"]

_IDX = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}


@dataclass(frozen=True)
class RigJoint:
    """One joint of a generated rig.

    Attributes:
        name: joint name in the BVH.
        parent: parent joint name (``None`` for the root).
        segment: SMPL joint whose segment the joint turns with. A joint must sit where its
            parent's frame carries it rigidly: at an SMPL joint of its parent's segment, or be
            its parent's ``aim``.
        at: SMPL joint whose rest position the point starts from (default ``segment``).
        toward: optional SMPL joint; the point is ``at + frac * (toward - at)`` in rest.
        frac: see ``toward``.
        shift: extra rest-frame offset in metres (e.g. a pelvis joint lower than SMPL's).
        aim: child joint name whose direction the joint follows by a swing (for joints whose
            child sits in another SMPL segment); ``None`` = the segment's orientation.
        plays: the SMPL joint this joint stands for in a rig mapping (default: ``segment`` when
            the joint sits at it, else none).
    """

    name: str
    parent: Optional[str]
    segment: str
    at: Optional[str] = None
    toward: Optional[str] = None
    frac: float = 0.0
    shift: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    aim: Optional[str] = None
    role: Optional[str] = ""

    @property
    def plays(self) -> Optional[str]:
        if self.role != "":
            return self.role
        return self.segment if (self.at in (None, self.segment) and self.toward is None) else None

    def rest_position(self, rest: np.ndarray) -> np.ndarray:
        """Rest position ``(3,)`` on the SMPL rest skeleton ``rest (24, 3)``."""
        p = rest[_IDX[self.at or self.segment]].copy()
        if self.toward is not None:
            p = p + self.frac * (rest[_IDX[self.toward]] - p)
        return p + np.asarray(self.shift)


def _limbs(names: Dict[str, str], collar_at: str = "collar") -> List[RigJoint]:
    """Arms and legs, ``names`` maps SMPL-ish keys (``{s}_hip`` ...) to rig names."""
    out: List[RigJoint] = []
    for s in ("left", "right"):
        n = {k: names[f"{s}_{k}"] for k in ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist", "hand")}
        out += [
            RigJoint(n["hip"], names["pelvis"], f"{s}_hip", aim=n["knee"]),
            RigJoint(n["knee"], n["hip"], f"{s}_knee", aim=n["ankle"]),
            RigJoint(n["ankle"], n["knee"], f"{s}_ankle"),
            RigJoint(n["foot"], n["ankle"], f"{s}_foot"),
            RigJoint(n["collar"], names["chest"], f"{s}_collar", at=f"{s}_collar" if collar_at == "collar" else "neck",
                     aim=n["shoulder"], role=f"{s}_collar"),
            RigJoint(n["shoulder"], n["collar"], f"{s}_shoulder", aim=n["elbow"]),
            RigJoint(n["elbow"], n["shoulder"], f"{s}_elbow", aim=n["wrist"]),
            RigJoint(n["wrist"], n["elbow"], f"{s}_wrist"),
            RigJoint(n["hand"], n["wrist"], f"{s}_wrist", at=f"{s}_hand", role=f"{s}_hand"),
        ]
    return out


def _sided(fmt: str, keys: Dict[str, str]) -> Dict[str, str]:
    return {f"{s}_{k}": fmt.format(S=S, s=s[0], v=v) for s, S in (("left", "Left"), ("right", "Right")) for k, v in keys.items()}


def rig_variant(name: str) -> List[RigJoint]:
    """A generated rig by name (:data:`RIG_VARIANTS`)."""
    if name == "smpl":  # SMPL's own joints, Mixamo names
        names = {"pelvis": "Hips", "chest": "Spine2", **_sided("{S}{v}", {
            "hip": "UpLeg", "knee": "Leg", "ankle": "Foot", "foot": "ToeBase", "collar": "Shoulder", "shoulder": "Arm",
            "elbow": "ForeArm", "wrist": "Hand", "hand": "HandMiddle1"})}
        return [
            RigJoint("Hips", None, "pelvis"),
            RigJoint("Spine", "Hips", "spine1"), RigJoint("Spine1", "Spine", "spine2"), RigJoint("Spine2", "Spine1", "spine3"),
            RigJoint("Neck", "Spine2", "neck"), RigJoint("Head", "Neck", "head"),
        ] + _limbs(names)
    if name == "cmu-like":  # pelvis joint 4 cm low, two spine bones, collars from the neck base, two neck bones
        names = {"pelvis": "Hips", "chest": "Spine1", **_sided("{S}{v}", {
            "hip": "UpLeg", "knee": "Leg", "ankle": "Foot", "foot": "ToeBase", "collar": "Shoulder", "shoulder": "Arm",
            "elbow": "ForeArm", "wrist": "Hand", "hand": "Fingers"})}
        return [
            RigJoint("Hips", None, "pelvis", shift=(0.0, -0.04, 0.0), role="pelvis"),
            RigJoint("Spine", "Hips", "pelvis", at="spine1", aim="Spine1", role="spine1"),
            RigJoint("Spine1", "Spine", "spine3"),
            RigJoint("Neck", "Spine1", "neck", aim="Neck1"), RigJoint("Neck1", "Neck", "neck", toward="head", frac=0.5, aim="Head", role=None),
            RigJoint("Head", "Neck1", "head"),
        ] + _limbs(names, collar_at="neck")
    if name == "four-spine":  # DAZ-like names, four spine bones, the chest joint above SMPL's spine3
        names = {"pelvis": "hip", "chest": "chestUpper", **_sided("{s}{v}", {
            "hip": "Thigh", "knee": "Shin", "ankle": "Foot", "foot": "Toe", "collar": "Collar", "shoulder": "Shldr",
            "elbow": "ForeArm", "wrist": "Hand", "hand": "Mid1"})}
        return [
            RigJoint("hip", None, "pelvis", shift=(0.0, 0.02, -0.01), role="pelvis"),
            RigJoint("abdomenLower", "hip", "spine1", aim="abdomenUpper"),
            RigJoint("abdomenUpper", "abdomenLower", "spine2", aim="chestLower"),
            RigJoint("chestLower", "abdomenUpper", "spine2", toward="spine3", frac=0.5, aim="chestUpper", role=None),
            RigJoint("chestUpper", "chestLower", "spine3", toward="neck", frac=0.3, role="spine3"),
            RigJoint("neck", "chestUpper", "neck"), RigJoint("head", "neck", "head"),
        ] + _limbs(names)
    raise ValueError(f"unknown rig variant {name!r}; choose one of {list(RIG_VARIANTS)}")


def variant_profile(name: str) -> "RigProfile":
    """The :class:`~posendf_plugin.data.rigs.RigProfile` of a generated rig (what a user would
    write for it): SMPL joint -> the rig joint that plays it."""
    from .rigs import RigProfile

    joints = {j.plays: (j.name,) for j in rig_variant(name) if j.plays is not None}
    return RigProfile(name=f"generated-{name}", joints=joints, description=f"generated rig {name!r}")


#: names of the generated rigs
RIG_VARIANTS: Tuple[str, ...] = ("smpl", "cmu-like", "four-spine")


def smpl_global(local: np.ndarray, trans: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """FK of the SMPL rest skeleton. ``local (F, 24, 3, 3)`` incl. the root, ``trans (F, 3)`` ->
    ``(positions (F, 24, 3), orientations (F, 24, 3, 3))``, Y-up."""
    pos, rot = forward_kinematics(torch.from_numpy(local), SMPL_REST_JOINTS.double(),
                                  root_translation=torch.from_numpy(trans))
    return pos.numpy(), rot.numpy()


def write_rig_bvh(path: Union[str, Path], body_quat: torch.Tensor, variant: str, root_rot: Optional[np.ndarray] = None,
                  trans: Optional[np.ndarray] = None, roll_seed: Optional[int] = None, units: float = 100.0,
                  fps: float = 30.0) -> Path:
    """Write an SMPL body motion on the generated rig ``variant``.

    Args:
        path: output ``.bvh`` (or ``.bvh.gz``).
        body_quat: ``(F, 21, 4)`` body pose, quaternions ``(w, x, y, z)``.
        variant: one of :data:`RIG_VARIANTS`.
        root_rot: ``(F, 3, 3)`` pelvis orientation in the Y-up world (default: a slow turn).
        trans: ``(F, 3)`` pelvis position in metres (default: walking 2 m along +Z at 0.95 m).
        roll_seed: give every joint a random constant frame (bone roll / another rest pose).
        units: file units per metre.
        fps: frame rate.
    """
    from scipy.spatial.transform import Rotation

    F = int(body_quat.shape[0])
    local = np.tile(np.eye(3), (F, 24, 1, 1))
    local[:, 1:NUM_BODY_JOINTS + 1] = R.quat_to_matrix(body_quat.double()).numpy()
    if root_rot is None:
        yaw = np.linspace(0, 1.5, F)
        root_rot = Rotation.from_euler("YX", np.stack([yaw, 0.1 * np.sin(yaw)], 1)).as_matrix()
    local[:, 0] = root_rot
    if trans is None:
        trans = np.stack([np.zeros(F), np.full(F, 0.95), np.linspace(0, 2.0, F)], 1)
    P, G = smpl_global(local, np.asarray(trans, float))
    joints = rig_variant(variant)
    index = {j.name: i for i, j in enumerate(joints)}
    rest = SMPL_REST_JOINTS.double().numpy()
    rest_pos = np.stack([j.rest_position(rest) for j in joints])
    seg = [_IDX[j.segment] for j in joints]
    # world positions: on the SMPL skeleton (joints or points between two of them), plus a shift
    # that moves with the joint's own segment
    pos = np.stack([
        P[:, _IDX[j.at or j.segment]] + j.frac * (P[:, _IDX[j.toward]] - P[:, _IDX[j.at or j.segment]] if j.toward else 0.0)
        + np.einsum("fij,j->fi", G[:, s], np.asarray(j.shift)) for j, s in zip(joints, seg)], 1)
    roll = (Rotation.random(len(joints), random_state=roll_seed).as_matrix() if roll_seed is not None
            else np.tile(np.eye(3), (len(joints), 1, 1)))
    orient = np.zeros((F, len(joints), 3, 3))
    for k, j in enumerate(joints):
        Gk = G[:, seg[k]]
        if j.aim is not None:
            c = index[j.aim]
            v_rest = unit(rest_pos[c] - rest_pos[k])
            Gk = swing(np.einsum("fij,j->fi", Gk, v_rest), unit(pos[:, c] - pos[:, k])) @ Gk
        orient[:, k] = Gk @ roll[k]
    parents = [index[j.parent] if j.parent is not None else -1 for j in joints]
    offsets = np.zeros((len(joints), 3))
    lrot = np.zeros_like(orient)
    for k, p in enumerate(parents):
        if p < 0:
            lrot[:, k] = orient[:, k]
        else:
            offsets[k] = roll[p].T @ (rest_pos[k] - rest_pos[p])
            lrot[:, k] = np.swapaxes(orient[:, p], -1, -2) @ orient[:, k]
    ends: Dict[int, Sequence[float]] = {}
    for k, j in enumerate(joints):
        if j.segment == "head" and j.at is None:
            ends[k] = roll[k].T @ np.array([0.0, 0.1, 0.0]) * units
        elif j.segment.endswith("_foot") and j.at is None:
            ends[k] = roll[k].T @ np.array([0.0, 0.0, 0.05]) * units
    root = index[joints[0].name]
    return write_bvh(path, [j.name for j in joints], parents, offsets * units, lrot, pos[:, root] * units,
                     1.0 / fps, "zyx", False, end_sites=ends)
