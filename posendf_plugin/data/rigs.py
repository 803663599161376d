"""Rig profiles: which joint of a source skeleton (BVH) plays which SMPL joint.

A :class:`RigProfile` maps SMPL joint names (:data:`posendf_plugin.skeleton.SMPL_JOINT_NAMES`)
to candidate source joint names (the first one present in the file wins). Names are matched
case-insensitively after stripping a namespace prefix (``mixamorig:Hips`` matches ``Hips``).
SMPL joints a rig lacks (e.g. CMU's spine has two segments where SMPL has three) may be left
out; the converter places them on the line between their mapped neighbours. The joints in
:data:`REQUIRED_JOINTS` must be found.

Built-in profiles (:data:`BUILTIN_RIGS`): ``cc3`` (iClone / Character Creator 3, the
``cmu-cc3`` data), ``cmu`` (standard CMU 31-joint BVH), ``cmu-max`` (CMU 3ds-Max-friendly),
``bandai`` (Bandai-Namco Research Motiondataset), ``mixamo`` and ``lafan1``.
:func:`detect_rig` picks one from the joint names; when none fits, :func:`generic_profile`
guesses a mapping from side/limb keywords (``thigh.L``, ``R_UpperArm``, ``LeftForeArm``) and
the hierarchy (the pelvis is where the legs meet, the chest where the arms meet). For anything
else, :func:`load_rig_yaml` reads a user mapping (``--rig FILE``)::

    name: my_rig          # optional
    scale: 0.01           # optional: metres per file unit (estimated from the legs if absent)
    up_axis: y            # optional: y (default) or z
    joints:               # SMPL joint -> source joint name, or a list of candidates
      pelvis: Hips
      left_hip: [LeftUpLeg, L_Thigh]
      ...
    ends:                 # optional: a point that fixes a leaf joint's direction
      head: HeadTop_End   # top of the head
      left_foot: LeftToe_End
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union


from ..io import load_yaml
from ..skeleton import SMPL_JOINT_NAMES

__all__ = [
    "RigProfile",
    "RigMapping",
    "BUILTIN_RIGS",
    "REQUIRED_JOINTS",
    "LEAF_ENDS",
    "detect_rig",
    "generic_profile",
    "resolve_rig",
    "load_rig_yaml",
    "normalize_joint_name",
]

#: SMPL joints every rig must provide; the others are interpolated when missing.
REQUIRED_JOINTS: Tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
    "right_wrist",
)
#: SMPL leaf joints whose direction an optional end point (head top, toe tip) can fix.
LEAF_ENDS: Tuple[str, ...] = ("head", "left_foot", "right_foot")


def normalize_joint_name(name: str) -> str:
    """Lower-case joint name without a namespace prefix (``mixamorig:LeftArm`` -> ``leftarm``)."""
    return re.split(r"[:|]", name)[-1].strip().lower()


@dataclass(frozen=True)
class RigProfile:
    """How a source rig maps onto SMPL.

    Attributes:
        name: short identifier.
        joints: SMPL joint name -> candidate source joint names (first present wins).
        scale: metres per file unit; ``None`` estimates it from the leg length.
        up_axis: ``"y"`` or ``"z"``: the file's vertical axis.
        ends: SMPL leaf joint (``head``, ``left_foot``, ``right_foot``) -> candidate source
            joints marking the end of that bone (head top, toe tip).
        signature: source names that identify this rig in :func:`detect_rig`.
        description: one line for reports.
    """

    name: str
    joints: Mapping[str, Tuple[str, ...]]
    scale: Optional[float] = None
    up_axis: str = "y"
    ends: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)
    signature: Tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        unknown = [k for k in self.joints if k not in SMPL_JOINT_NAMES]
        if unknown:
            raise ValueError(
                f"rig {self.name!r}: unknown SMPL joint name(s) {unknown}; valid names: {list(SMPL_JOINT_NAMES)}"
            )
        bad_ends = [k for k in self.ends if k not in LEAF_ENDS]
        if bad_ends:
            raise ValueError(f"rig {self.name!r}: 'ends' keys must be among {list(LEAF_ENDS)}, got {bad_ends}")
        if self.up_axis not in ("y", "z"):
            raise ValueError(f"rig {self.name!r}: up_axis must be 'y' or 'z', got {self.up_axis!r}")
        if self.scale is not None and not self.scale > 0:
            raise ValueError(f"rig {self.name!r}: scale must be a positive number, got {self.scale}")


@dataclass
class RigMapping:
    """A profile resolved against one file's joints.

    Attributes:
        profile: the profile used.
        source: SMPL joint index (0..23) -> source joint index, or ``None`` when absent.
        ends: SMPL leaf joint index -> source joint index of its end point.
        missing_required: SMPL joints in :data:`REQUIRED_JOINTS` that were not found.
    """

    profile: RigProfile
    source: List[Optional[int]]
    ends: Dict[int, int]
    missing_required: List[str]

    @property
    def num_mapped(self) -> int:
        return sum(s is not None for s in self.source)


def _expand_sides(prefix_l: str, prefix_r: str, table: Mapping[str, Sequence[str]]) -> Dict[str, Tuple[str, ...]]:
    """Expand ``{"hip": ["{S}UpLeg"]}`` into left/right SMPL joints with ``{S}`` = side token."""
    out: Dict[str, Tuple[str, ...]] = {}
    for joint, names in table.items():
        out[f"left_{joint}"] = tuple(n.replace("{S}", prefix_l) for n in names)
        out[f"right_{joint}"] = tuple(n.replace("{S}", prefix_r) for n in names)
    return out


def _profile(name: str, centre: Mapping[str, Sequence[str]], sided: Mapping[str, Sequence[str]],
             side: Tuple[str, str], ends: Mapping[str, Sequence[str]] = None, **kw) -> RigProfile:
    joints = {k: tuple(v) for k, v in centre.items()}
    joints.update(_expand_sides(side[0], side[1], sided))
    ends_full: Dict[str, Tuple[str, ...]] = {}
    for k, v in (ends or {}).items():
        if k == "foot":
            ends_full["left_foot"] = tuple(n.replace("{S}", side[0]) for n in v)
            ends_full["right_foot"] = tuple(n.replace("{S}", side[1]) for n in v)
        else:
            ends_full[k] = tuple(v)
    return RigProfile(name=name, joints=joints, ends=ends_full, **kw)


_CC3 = _profile(
    "cc3",
    {
        "pelvis": ["CC_Base_Pelvis", "CC_Base_Hip"],
        "spine1": ["CC_Base_Spine01"], "spine3": ["CC_Base_Spine02"],
        "neck": ["CC_Base_NeckTwist01"], "head": ["CC_Base_Head"],
    },
    {
        "hip": ["CC_Base_{S}_Thigh"], "knee": ["CC_Base_{S}_Calf"], "ankle": ["CC_Base_{S}_Foot"],
        "foot": ["CC_Base_{S}_ToeBase"], "collar": ["CC_Base_{S}_Clavicle"],
        "shoulder": ["CC_Base_{S}_Upperarm"], "elbow": ["CC_Base_{S}_Forearm"],
        "wrist": ["CC_Base_{S}_Hand"], "hand": ["CC_Base_{S}_Mid1"],
    },
    ("L", "R"),
    ends={"foot": ["CC_Base_{S}_MidToe1"]},
    scale=0.01,
    signature=("CC_Base_Hip", "CC_Base_Waist", "CC_Base_L_Thigh"),
    description="iClone / Character Creator 3 (CC_Base_*), centimetres, Y-up",
)

_CMU = _profile(
    "cmu",
    {
        "pelvis": ["Hips"], "spine1": ["Spine"], "spine3": ["Spine1"], "neck": ["Neck1"],
        "head": ["Head"],
    },
    {
        "hip": ["{S}UpLeg"], "knee": ["{S}Leg"], "ankle": ["{S}Foot"], "foot": ["{S}ToeBase"],
        "collar": ["{S}Shoulder"], "shoulder": ["{S}Arm"], "elbow": ["{S}ForeArm"],
        "wrist": ["{S}Hand"], "hand": ["{S}Fingers", "{S}HandFingers"],
    },
    ("Left", "Right"),
    ends={"head": ["Head_End"], "foot": ["{S}ToeBase_End"]},
    scale=0.056444,
    signature=("LowerBack", "Neck1", "LHipJoint", "RHipJoint"),
    description="standard CMU 31-joint BVH (CMU length units x 0.056444 = metres), Y-up",
)
# CMU names its finger joints LFingers/RFingers (not LeftFingers): add those candidates.
_CMU = RigProfile(
    name=_CMU.name,
    joints={**_CMU.joints, "left_hand": ("LFingers", "LeftFingerBase"), "right_hand": ("RFingers", "RightFingerBase")},
    scale=_CMU.scale, ends=_CMU.ends, signature=_CMU.signature, description=_CMU.description,
)

_CMU_ASF = _profile(
    "cmu-asf",
    {
        "pelvis": ["root"], "spine1": ["upperback"], "spine3": ["thorax"], "neck": ["upperneck"],
        "head": ["head"],
    },
    {
        "hip": ["{S}femur"], "knee": ["{S}tibia"], "ankle": ["{S}foot"], "foot": ["{S}toes"],
        "collar": ["{S}clavicle"], "shoulder": ["{S}humerus"], "elbow": ["{S}radius"],
        "wrist": ["{S}wrist"], "hand": ["{S}fingers", "{S}hand"],
    },
    ("l", "r"),
    ends={"head": ["head_End"], "foot": ["{S}toes_End"]},
    scale=None,
    signature=("lhipjoint", "lfemur", "ltibia", "lowerback", "upperneck", "lclavicle", "lhumerus"),
    description="CMU ASF/AMC bone names (lfemur, ltibia, lhumerus, ...); units from the ASF",
)

_CMU_MAX = _profile(
    "cmu-max",
    {
        "pelvis": ["Hips"], "spine1": ["Chest"], "spine3": ["Chest2"], "neck": ["Neck"],
        "head": ["Head"],
    },
    {
        "hip": ["{S}Hip"], "knee": ["{S}Knee"], "ankle": ["{S}Ankle"], "foot": ["{S}Toe"],
        "collar": ["{S}Collar"], "shoulder": ["{S}Shoulder"], "elbow": ["{S}Elbow"],
        "wrist": ["{S}Wrist"], "hand": ["{S}Fingers", "{S}Finger"],
    },
    ("Left", "Right"),
    ends={"head": ["Head_End"], "foot": ["{S}Toe_End"]},
    scale=None,
    signature=("lowerback", "lowerneck", "Chest2", "LeftCollar"),
    description="CMU 3ds-Max-friendly BVH (units estimated), Y-up",
)

_BANDAI = _profile(
    "bandai",
    {"pelvis": ["Hips"], "spine1": ["Spine"], "spine3": ["Chest"], "neck": ["Neck"], "head": ["Head"]},
    {
        "hip": ["UpperLeg_{S}"], "knee": ["LowerLeg_{S}"], "ankle": ["Foot_{S}"], "foot": ["Toes_{S}"],
        "collar": ["Shoulder_{S}"], "shoulder": ["UpperArm_{S}"], "elbow": ["LowerArm_{S}"],
        "wrist": ["Hand_{S}"],
    },
    ("L", "R"),
    scale=0.01,
    signature=("joint_Root", "UpperLeg_L", "LowerArm_L"),
    description="Bandai-Namco Research Motiondataset, centimetres, Y-up",
)

_MIXAMO = _profile(
    "mixamo",
    {
        "pelvis": ["Hips"], "spine1": ["Spine"], "spine2": ["Spine1"], "spine3": ["Spine2"],
        "neck": ["Neck"], "head": ["Head"],
    },
    {
        "hip": ["{S}UpLeg"], "knee": ["{S}Leg"], "ankle": ["{S}Foot"], "foot": ["{S}ToeBase"],
        "collar": ["{S}Shoulder"], "shoulder": ["{S}Arm"], "elbow": ["{S}ForeArm"],
        "wrist": ["{S}Hand"], "hand": ["{S}HandMiddle1", "{S}HandIndex1"],
    },
    ("Left", "Right"),
    ends={"head": ["HeadTop_End", "Head_End"], "foot": ["{S}Toe_End", "{S}ToeBase_End"]},
    scale=None,
    signature=("mixamorig:Hips", "HeadTop_End", "LeftHandMiddle1"),
    description="Adobe Mixamo (mixamorig: prefix), units estimated, Y-up",
)

_LAFAN1 = _profile(
    "lafan1",
    {
        "pelvis": ["Hips"], "spine1": ["Spine"], "spine2": ["Spine1"], "spine3": ["Spine2"],
        "neck": ["Neck"], "head": ["Head"],
    },
    {
        "hip": ["{S}UpLeg"], "knee": ["{S}Leg"], "ankle": ["{S}Foot"], "foot": ["{S}Toe"],
        "collar": ["{S}Shoulder"], "shoulder": ["{S}Arm"], "elbow": ["{S}ForeArm"],
        "wrist": ["{S}Hand"],
    },
    ("Left", "Right"),
    ends={"head": ["Head_End"], "foot": ["{S}Toe_End"]},
    scale=0.01,
    signature=("LeftToe", "Spine2"),
    description="Ubisoft LAFAN1, centimetres, Y-up",
)

#: Built-in profiles by name.
BUILTIN_RIGS: Dict[str, RigProfile] = {
    p.name: p for p in (_CC3, _CMU, _CMU_ASF, _CMU_MAX, _BANDAI, _MIXAMO, _LAFAN1)
}


def resolve_rig(names: Sequence[str], profile: RigProfile) -> RigMapping:
    """Match ``profile`` against the joint ``names`` of one file."""
    lookup: Dict[str, int] = {}
    for i, n in enumerate(names):
        lookup.setdefault(normalize_joint_name(n), i)
    source: List[Optional[int]] = [None] * len(SMPL_JOINT_NAMES)
    for j, smpl in enumerate(SMPL_JOINT_NAMES):
        for cand in profile.joints.get(smpl, ()):
            idx = lookup.get(normalize_joint_name(cand))
            if idx is not None:
                source[j] = idx
                break
    ends: Dict[int, int] = {}
    for smpl, cands in profile.ends.items():
        for cand in cands:
            idx = lookup.get(normalize_joint_name(cand))
            if idx is not None:
                ends[SMPL_JOINT_NAMES.index(smpl)] = idx
                break
    missing = [n for n in REQUIRED_JOINTS if source[SMPL_JOINT_NAMES.index(n)] is None]
    if all(source[SMPL_JOINT_NAMES.index(n)] is None for n in ("spine1", "spine2", "spine3", "neck")):
        missing.append("spine1|spine2|spine3|neck (at least one)")
    return RigMapping(profile, source, ends, missing)


def detect_rig(names: Sequence[str], src: str = "BVH", parents: Optional[Sequence[int]] = None,
               offsets=None) -> RigMapping:
    """Pick the built-in profile that fits ``names`` best; when none finds every required
    joint and the hierarchy (``parents``, ``offsets``) is given, try :func:`generic_profile`.

    Raises:
        ValueError: no profile finds all :data:`REQUIRED_JOINTS`; the message lists the SMPL
            joints the closest profile could not find and suggests ``--rig FILE``.
    """
    norm = {normalize_joint_name(n) for n in names}
    raw = set(names)
    best: Optional[Tuple[tuple, RigMapping]] = None
    for profile in BUILTIN_RIGS.values():
        m = resolve_rig(names, profile)
        sig = sum((s in raw) or (normalize_joint_name(s) in norm) for s in profile.signature)
        key = (not m.missing_required, m.num_mapped + len(m.ends), sig)
        if best is None or key > best[0]:
            best = (key, m)
    mapping = best[1]  # type: ignore[index]  (BUILTIN_RIGS is never empty)
    if mapping.missing_required and parents is not None:
        generic = generic_profile(names, parents, offsets)
        if generic is not None:
            g = resolve_rig(names, generic)
            if not g.missing_required:
                return g
    if mapping.missing_required:
        raise ValueError(
            f"{src}: cannot map this rig onto SMPL: the closest built-in profile "
            f"({mapping.profile.name!r}) finds no joint for SMPL {mapping.missing_required}. "
            f"The file's joints are {list(names)[:40]}{' ...' if len(names) > 40 else ''}. "
            "Write a YAML mapping (see posendf_plugin.data.rigs) and pass it with --rig FILE"
        )
    return mapping


_LEFT = re.compile(r"(^|[^a-z])(left|lft|l)([^a-z]|$)|^left|left$")
_RIGHT = re.compile(r"(^|[^a-z])(right|rgt|r)([^a-z]|$)|^right|right$")


def _side(name: str) -> Optional[str]:
    """'left', 'right' or None from a joint name (``LeftArm``, ``L_Thigh``, ``arm.l``, ``LThigh``)."""
    base = re.split(r"[:|]", name)[-1]
    low = base.lower()
    if _LEFT.search(low) or re.match(r"^L[A-Z_]", base):
        return "left"
    if _RIGHT.search(low) or re.match(r"^R[A-Z_]", base):
        return "right"
    return None


def generic_profile(names: Sequence[str], parents: Sequence[int], offsets=None) -> Optional[RigProfile]:
    """Guess a mapping for an unknown humanoid rig from joint-name keywords plus the hierarchy.

    Elbows (``forearm|lowerarm|elbow``) and ankles (``foot|ankle``) are found by keyword and side;
    the shoulder / hip is the nearest ancestor that is not a twist bone and sits at another
    position, the collar the next one up; the wrist, hand and toe are keyword children; the pelvis
    is the joint where the two legs meet, the chest (spine3) where the two arms meet, the head by
    keyword. Returns ``None`` when a limb cannot be found.
    """
    import numpy as np

    low = [normalize_joint_name(n) for n in names]
    off = None if offsets is None else np.asarray(offsets, float)
    children: Dict[int, List[int]] = {}
    for j, p in enumerate(parents):
        children.setdefault(p, []).append(j)

    def has(j: int, *words: str) -> bool:
        return any(w in low[j] for w in words)

    def bad(j: int) -> bool:  # twist / helper / end bones
        return has(j, "twist", "share", "roll", "end", "nub", "site", "ik", "pole")

    def zero(j: int) -> bool:
        return off is not None and float(np.linalg.norm(off[j])) < 1e-6 * max(1.0, float(np.abs(off).max()))

    def ancestors(j: int) -> List[int]:
        out = []
        while parents[j] >= 0:
            j = parents[j]
            out.append(j)
        return out

    def upper(j: int) -> Optional[int]:
        """Nearest ancestor of ``j`` that is not a twist / helper bone."""
        k = parents[j]
        while k >= 0 and bad(k):
            k = parents[k]
        return k if k >= 0 else None

    def first_desc(j: int, *words: str) -> Optional[int]:
        """Breadth-first descendant matching ``words``, preferring one with a non-zero offset."""
        stack, fallback = list(children.get(j, [])), None
        while stack:
            k = stack.pop(0)
            if has(k, *words) and not bad(k):
                if not zero(k):
                    return k
                fallback = k if fallback is None else fallback
            stack.extend(children.get(k, []))
        return fallback

    joints: Dict[str, Tuple[str, ...]] = {}
    limbs: Dict[str, int] = {}
    for side in ("left", "right"):
        sided = [j for j in range(len(names)) if _side(names[j]) == side and not bad(j)]
        elbow = next((j for j in sided if has(j, "forearm", "lowerarm", "elbow")), None)
        ankle = next((j for j in sided if has(j, "foot", "ankle") and not has(j, "toe")), None)
        if elbow is None or ankle is None:
            return None
        shoulder, knee = upper(elbow), upper(ankle)
        if shoulder is None or knee is None:
            return None
        hip = upper(knee)
        collar = upper(shoulder)
        wrist = first_desc(elbow, "hand", "wrist")
        if hip is None or wrist is None:
            return None
        limbs.update({f"{side}_shoulder": shoulder, f"{side}_hip": hip})
        found = {"elbow": elbow, "shoulder": shoulder, "wrist": wrist, "ankle": ankle, "knee": knee, "hip": hip}
        if collar is not None and _side(names[collar]) == side:
            found["collar"] = collar
        toe = first_desc(ankle, "toe", "ball")
        if toe is not None:
            found["foot"] = toe
        hand = first_desc(wrist, "middle", "mid", "finger", "index")
        if hand is not None:
            found["hand"] = hand
        for k, j in found.items():
            joints[f"{side}_{k}"] = (names[j],)

    def lca(a: int, b: int) -> int:
        anc = set([a] + ancestors(a))
        k = b
        while k not in anc:
            k = parents[k]
        return k

    pelvis = lca(limbs["left_hip"], limbs["right_hip"])
    chest = lca(limbs["left_shoulder"], limbs["right_shoulder"])
    if pelvis != chest and pelvis not in ancestors(chest):  # legs and spine hang off sibling bones
        pelvis = lca(pelvis, chest)
    head = next((j for j in range(len(names)) if has(j, "head") and not bad(j) and not has(j, "top")), None)
    if head is None or pelvis < 0 or chest < 0:
        return None
    joints["pelvis"] = (names[pelvis],)
    joints["head"] = (names[head],)
    if chest != pelvis and pelvis in ancestors(chest):
        joints["spine3"] = (names[chest],)
        between = [j for j in reversed(ancestors(chest)) if pelvis in ancestors(j) and not bad(j)]
        lower = [j for j in between if not zero(j)]
        if lower:
            joints["spine1"] = (names[lower[0]],)
        if len(lower) >= 2:
            joints["spine2"] = (names[lower[len(lower) // 2]],)
    necks = [j for j in reversed(ancestors(head)) if chest in ancestors(j) and not has(j, "end", "nub")]
    real_necks = [j for j in necks if not zero(j)] or necks
    if real_necks:
        joints["neck"] = (names[real_necks[0]],)
    ends: Dict[str, Tuple[str, ...]] = {}
    for leaf in LEAF_ENDS:  # an end site / "...End" / "...Top" child marks the head top or toe tip
        if leaf in joints:
            j = names.index(joints[leaf][0])
            tip = next((k for k in children.get(j, []) if has(k, "end", "top", "nub", "tip") and not zero(k)), None)
            if tip is not None:
                ends[leaf] = (names[tip],)
    return RigProfile(name="generic", joints=joints, ends=ends, description="guessed from joint names and hierarchy")


_YAML_KEYS = {"name", "scale", "up_axis", "joints", "ends", "description"}


def load_rig_yaml(path: Union[str, Path]) -> RigProfile:
    """Read a user rig mapping (format in the module docstring).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not valid YAML, unknown keys, unknown SMPL joint names or bad values.
    """
    path = Path(path)
    data = load_yaml(path, "rig mapping file")
    if not isinstance(data, dict) or not isinstance(data.get("joints"), dict):
        raise ValueError(f"{path}: a rig mapping needs a 'joints:' table mapping SMPL joint names to source joint names")
    unknown = sorted(set(data) - _YAML_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(_YAML_KEYS)}")

    def cands(v, key) -> Tuple[str, ...]:
        if isinstance(v, str):
            return (v,)
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return tuple(v)
        raise ValueError(f"{path}: {key} must be a joint name or a list of names, got {v!r}")

    joints = {str(k): cands(v, f"joints.{k}") for k, v in data["joints"].items()}
    ends = {str(k): cands(v, f"ends.{k}") for k, v in (data.get("ends") or {}).items()}
    scale = data.get("scale")
    try:
        return RigProfile(
            name=str(data.get("name", path.stem)), joints=joints,
            scale=None if scale is None else float(scale), up_axis=str(data.get("up_axis", "y")).lower(),
            ends=ends, description=str(data.get("description", f"user mapping {path.name}")),
        )
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
