"""Rig profiles: which joint of a source skeleton (BVH) plays which SMPL joint.

A :class:`RigProfile` maps SMPL joint names (:data:`posendf_plugin.skeleton.SMPL_JOINT_NAMES`)
to candidate source joint names (the first one present in the file wins). Names are matched
case-insensitively after stripping a namespace prefix (``mixamorig:Hips`` matches ``Hips``).
SMPL joints a rig lacks (e.g. CMU's spine has two segments where SMPL has three) may be left
out; the converter places them on the line between their mapped neighbours. The joints in
:data:`REQUIRED_JOINTS` must be found.

Built-in profiles (:data:`BUILTIN_RIGS`): ``cc3`` (iClone / Character Creator 3, the
``cmu-cc3`` data), ``cmu`` (standard CMU 31-joint BVH), ``cmu-asf`` (CMU's ASF/AMC bone names,
``lfemur``/``ltibia``/``lhumerus``; units from the ASF), ``cmu-max`` (CMU 3ds-Max-friendly),
``daz`` (CMU DAZ-friendly / Poser: ``hip``, ``abdomen``, ``chest``, ``rShldr``, ``rThigh``),
``bandai`` (Bandai-Namco Research Motiondataset), ``mixamo`` and ``lafan1``.
:func:`detect_rig` picks one from the joint names; when none fits, :func:`generic_profile`
maps the rig from the shape of its joint tree (two legs and a spine at the pelvis, two arms and
the neck at the chest), with left/right from joint names in any common convention (see
:func:`_side`) or the rest pose. For anything else, :func:`load_rig_yaml` reads a user mapping
(``--rig FILE``)::

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

_DAZ = _profile(
    "daz",
    {"pelvis": ["hip"], "spine1": ["abdomen", "abdomenLower"], "spine2": ["abdomenUpper"],
     "spine3": ["chest", "chestUpper"], "neck": ["neck", "neckLower"], "head": ["head"]},
    {
        # rButtock sits ~3 cm above rThigh and barely moves: rThigh starts the femur (hip joint)
        "hip": ["{S}Thigh"], "knee": ["{S}Shin"], "ankle": ["{S}Foot"], "foot": ["{S}Toe", "{S}Foot_End"],
        "collar": ["{S}Collar"], "shoulder": ["{S}Shldr"], "elbow": ["{S}ForeArm"], "wrist": ["{S}Hand"],
        "hand": ["{S}Mid1"],
    },
    ("l", "r"),
    scale=None,
    signature=("abdomen", "rButtock", "lButtock", "rShldr", "lShldr", "rCollar"),
    description="CMU DAZ-friendly / Poser rig (hip, abdomen, chest, rShldr, rThigh, ...), units estimated, Y-up",
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
    p.name: p for p in (_CC3, _CMU, _CMU_ASF, _CMU_MAX, _DAZ, _BANDAI, _MIXAMO, _LAFAN1)
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
#: body-part words that may follow a fused one-letter side prefix (``lthigh``, ``rhumerus``)
_PART_WORDS = (
    "thigh", "shin", "calf", "knee", "foot", "ankle", "toe", "ball", "hip", "upleg", "upperleg", "lowerleg",
    "leg", "buttock", "femur", "tibia", "shldr", "shoulder", "collar", "clavicle", "clav", "uparm", "upperarm",
    "arm", "forearm", "lowerarm", "elbow", "humerus", "radius", "ulna", "wrist", "hand", "finger", "thumb",
    "index", "mid", "ring", "pinky", "eye", "ear", "breast", "pectoral",
)


def _side(name: str) -> Optional[str]:
    """'left', 'right' or None from a joint name, in any common convention: ``LeftArm``,
    ``ArmLeft``, ``L_Thigh``, ``Bip01 L Thigh``, ``LThigh``, ``lShldr`` (Poser/DAZ), ``thigh.L``,
    ``Thigh_R``, ``lfemur`` / ``rhumerus`` / ``lknee`` (CMU ASF style, lower case)."""
    base = re.split(r"[:|]", name)[-1].strip()
    low = base.lower()
    for side, rx, letter in (("left", _LEFT, "l"), ("right", _RIGHT, "r")):
        if rx.search(low) or re.match(rf"^{letter.upper()}[A-Z_]", base) or re.match(rf"^{letter}[A-Z_]", base):
            return side
        if low.startswith(letter) and low[1:].startswith(_PART_WORDS):
            return side
    return None


_HELPER = re.compile(r"twist|share|roll|pole|helper|adjust|(^|[^a-z])ik([^a-z]|$)")
_END_WORDS = ("_end", "end", "site", "nub", "top", "tip")
_ELBOW_WORDS = ("forearm", "lowerarm", "elbow", "radius", "ulna", "loarm")
_KNEE_WORDS = ("shin", "calf", "knee", "tibia", "lowerleg", "crus", "loleg")
#: a limb branch counts as long when it reaches this fraction of the root's reach
_LONG_FRACTION = 0.2


def _is_knee_name(low: str) -> bool:
    if any(w in low for w in _KNEE_WORDS):
        return True
    # Mixamo / CMU "LeftLeg" is the knee; "LeftUpLeg" / "UpperLeg" is the hip
    return bool(re.search(r"leg", low)) and not re.search(r"up(per)?_?leg|leg_?up", low)


def generic_profile(names: Sequence[str], parents: Sequence[int], offsets=None) -> Optional[RigProfile]:
    """Guess a mapping for an unknown humanoid rig from the shape of its joint tree, helped by
    joint names where they follow a common convention.

    1. Rest positions come from the offsets (topology alone when ``offsets`` is ``None``). A
       child branch is *long* when its reach (longest path to a leaf) is at least
       :data:`_LONG_FRACTION` of the root's; a *junction* has two or more long branches, and a
       *limb* is a long branch with no junction inside (fingers, toes, eyes, twist bones are
       short). A humanoid has four or five limbs on two junctions: the legs on one, the arms
       (and the neck/head) on the other. The leg junction is the one whose limbs point away
       from the other junction.
    2. pelvis = the common ancestor of both junctions; spine3 = the arm junction; spine1 (and
       spine2) = joints between them; neck = the first joint of the head limb, head = its last
       joint before an end site or a branching (eyes, jaw).
    3. In each limb (following the longest branch, skipping twist/helper bones) the knee /
       elbow is the joint named so (``shin``, ``calf``, ``knee``, ``tibia``, ``Leg`` but not
       ``UpLeg``; ``forearm``, ``lowerarm``, ``elbow``, ``radius``), else the start of the
       second of the two longest consecutive segments; the hip / shoulder is the joint before
       it, the ankle / wrist the one after, the toe / hand the next, the collar the joint
       before the shoulder.
    4. Left and right come from the names (any convention :func:`_side` knows); without side
       names, from the rest geometry: up = pelvis -> chest, forward = ankle -> toe, and the
       left limbs lie on the side of ``up x forward`` (SMPL: +x).

    Returns ``None`` when the tree does not have this shape (or left/right cannot be told).
    """
    import numpy as np

    J = len(names)
    if J < 10 or len(parents) != J:
        return None
    low = [normalize_joint_name(n) for n in names]
    if offsets is None:
        off = np.zeros((J, 3))
        off[:, 1] = 1.0
    else:
        off = np.asarray(offsets, float).reshape(J, 3)
    children: List[List[int]] = [[] for _ in range(J)]
    roots = []
    for j, p in enumerate(parents):
        if p is None or p < 0:
            roots.append(j)
        elif 0 <= p < J:
            children[p].append(j)
        else:
            return None
    if len(roots) != 1:
        return None
    order: List[int] = []  # parents first, without recursion
    stack = [roots[0]]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(children[j])
    if len(order) != J:
        return None
    P = np.zeros((J, 3))
    for j in order:
        P[j] = off[j] + (P[parents[j]] if parents[j] >= 0 else 0.0)
    seglen = np.linalg.norm(off, axis=1)
    reach = np.zeros(J)
    for j in reversed(order):
        reach[j] = max((seglen[c] + reach[c] for c in children[j]), default=0.0)
    H = reach[roots[0]]
    if not H > 0:
        return None
    long_ch = [[c for c in children[j] if seglen[c] + reach[c] >= _LONG_FRACTION * H] for j in range(J)]
    is_junction = [len(long_ch[j]) >= 2 for j in range(J)]
    has_junction = [False] * J  # in the subtree
    for j in reversed(order):
        has_junction[j] = is_junction[j] or any(has_junction[c] for c in children[j])
    limbs: Dict[int, List[int]] = {}  # junction -> limb roots
    for j in range(J):
        if is_junction[j]:
            ls = [c for c in long_ch[j] if not has_junction[c]]
            if ls:
                limbs[j] = ls
    if len(limbs) != 2 or sum(len(v) for v in limbs.values()) not in (4, 5):
        return None
    (ja, la), (jb, lb) = limbs.items()

    def helper(j: int) -> bool:
        return bool(_HELPER.search(low[j]))

    def end_site(j: int) -> bool:
        return not children[j] and any(w in low[j] for w in _END_WORDS)

    def chain(c: int) -> List[int]:
        """The limb from ``c`` down its longest branch, without helper bones."""
        out, j = [], c
        while True:
            if not helper(j):
                out.append(j)
            if not children[j]:
                return out
            j = max(children[j], key=lambda k: seglen[k] + reach[k])

    def ancestors(j: int) -> List[int]:
        out = []
        while parents[j] >= 0:
            j = parents[j]
            out.append(j)
        return out

    def tree_dist(a: int, b: int) -> float:  # b is an ancestor of a
        d = 0.0
        while a != b:
            d += seglen[a]
            a = parents[a]
        return d

    anc_b = set([jb] + ancestors(jb))
    common = next(k for k in [ja] + ancestors(ja) if k in anc_b)
    # the arm junction carries the head too; else it is the one farther up the spine from the
    # common ancestor (rotation-free: rest poses of real rigs need not be upright)
    if len(la) != len(lb):
        legs_j = ja if len(la) < len(lb) else jb
    else:
        da, db = tree_dist(ja, common), tree_dist(jb, common)
        legs_j = ja if (da, -max(reach[c] + seglen[c] for c in la)) < (db, -max(reach[c] + seglen[c] for c in lb)) else jb
    arms_j = jb if legs_j == ja else ja
    legs, upper = limbs[legs_j], limbs[arms_j]
    pelvis = common
    if pelvis == arms_j:
        return None
    up = P[arms_j] - P[pelvis]
    if np.linalg.norm(up) < 1e-9:
        return None
    up = up / np.linalg.norm(up)
    if len(upper) == 3:  # the head limb is the shortest
        head_root = min(upper, key=lambda c: seglen[c] + reach[c])
        arms = [c for c in upper if c != head_root]
    else:
        arms = list(upper)
        rest = [c for c in children[arms_j] if c not in arms and not helper(c)]
        if not rest:
            return None
        head_root = max(rest, key=lambda c: seglen[c] + reach[c])

    def limb_roles(c: int, is_leg: bool) -> Optional[Dict[str, int]]:
        ch = chain(c)
        if len(ch) < 3:
            return None
        words = _is_knee_name if is_leg else (lambda s: any(w in s for w in _ELBOW_WORDS))
        named = [i for i, j in enumerate(ch) if words(low[j]) and not end_site(j)]
        if named and 1 <= named[0] <= len(ch) - 2:
            mid = named[0]
        else:
            seg = [float(np.linalg.norm(P[ch[i + 1]] - P[ch[i]])) for i in range(len(ch) - 1)]
            m = int(np.argmax(seg))
            before = seg[m - 1] if m >= 1 else -1.0
            after = seg[m + 1] if m + 1 < len(seg) else -1.0
            mid = m + 1 if after >= before else m
            if not 1 <= mid <= len(ch) - 2:
                return None
        roles = {"upper": ch[mid - 1], "mid": ch[mid], "lower": ch[mid + 1]}
        if mid + 2 < len(ch):
            roles["extremity"] = ch[mid + 2]
            if mid + 3 < len(ch) and end_site(ch[mid + 3]):
                roles["end"] = ch[mid + 3]
        if mid >= 2 and np.linalg.norm(P[ch[mid - 1]] - P[ch[mid - 2]]) > 1e-6 * H:
            roles["collar"] = ch[mid - 2]
        return roles

    leg_roles = [limb_roles(c, True) for c in legs]
    arm_roles = [limb_roles(c, False) for c in arms]
    if any(r is None for r in leg_roles + arm_roles):
        return None

    def sides(pair: List[Dict[str, int]], attach: int) -> Optional[Tuple[int, int]]:
        """(index of the left limb, index of the right limb) in ``pair``."""
        votes = []
        for r in pair:
            s = [_side(names[j]) for j in r.values()]
            votes.append("left" if s.count("left") > s.count("right") else "right" if s.count("right") > s.count("left") else None)
        if votes == ["left", "right"]:
            return 0, 1
        if votes == ["right", "left"]:
            return 1, 0
        fwd = np.zeros(3)
        for r in leg_roles:
            toe = r.get("end", r.get("extremity"))
            if toe is not None:
                fwd += P[toe] - P[r["lower"]]
        fwd -= (fwd @ up) * up
        if np.linalg.norm(fwd) < 1e-6 * H:
            return None
        lateral = np.cross(up, fwd / np.linalg.norm(fwd))
        key = [float((P[r["upper"]] - P[attach]) @ lateral) for r in pair]
        if abs(key[0] - key[1]) < 1e-6 * H:
            return None
        return (0, 1) if key[0] > key[1] else (1, 0)

    leg_lr, arm_lr = sides(leg_roles, pelvis), sides(arm_roles, arms_j)
    if leg_lr is None or arm_lr is None:
        return None
    joints: Dict[str, Tuple[str, ...]] = {}
    ends: Dict[str, Tuple[str, ...]] = {}
    for side, i_leg, i_arm in (("left", leg_lr[0], arm_lr[0]), ("right", leg_lr[1], arm_lr[1])):
        lr, ar = leg_roles[i_leg], arm_roles[i_arm]
        joints.update({f"{side}_hip": (names[lr["upper"]],), f"{side}_knee": (names[lr["mid"]],),
                       f"{side}_ankle": (names[lr["lower"]],), f"{side}_shoulder": (names[ar["upper"]],),
                       f"{side}_elbow": (names[ar["mid"]],), f"{side}_wrist": (names[ar["lower"]],)})
        if "extremity" in lr:
            joints[f"{side}_foot"] = (names[lr["extremity"]],)
            if "end" in lr:
                ends[f"{side}_foot"] = (names[lr["end"]],)
        if "extremity" in ar and not end_site(ar["extremity"]):
            joints[f"{side}_hand"] = (names[ar["extremity"]],)
        if "collar" in ar:
            joints[f"{side}_collar"] = (names[ar["collar"]],)
    joints["pelvis"] = (names[pelvis],)
    joints["spine3"] = (names[arms_j],)
    between = [j for j in reversed(ancestors(arms_j)) if pelvis in ancestors(j) and not helper(j)]
    lower_sp = [j for j in between if seglen[j] > 1e-6 * H]
    if lower_sp:
        joints["spine1"] = (names[lower_sp[0]],)
    if len(lower_sp) >= 2:
        joints["spine2"] = (names[lower_sp[len(lower_sp) // 2]],)
    head_chain = [head_root]
    j = head_root
    while True:
        kids = [k for k in children[j] if not end_site(k)]  # CC3's neck joints are "NeckTwist"
        if len(kids) != 1:
            break
        j = kids[0]
        head_chain.append(j)
    named_head = [i for i, k in enumerate(head_chain) if "head" in low[k] and "top" not in low[k]]
    if named_head and named_head[-1] >= 1:
        head_chain = head_chain[: named_head[-1] + 1]
    if len(head_chain) >= 2:
        joints["neck"] = (names[head_chain[0]],)
    joints["head"] = (names[head_chain[-1]],)
    top = [k for k in children[head_chain[-1]] if end_site(k) and seglen[k] > 1e-6 * H]
    if len(top) == 1:
        ends["head"] = (names[top[0]],)
    return RigProfile(name="generic", joints=joints, ends=ends,
                      description="guessed from the joint tree and name conventions")


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
