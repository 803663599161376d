"""Reading Acclaim ASF skeletons + AMC motions (CMU's native mocap format), plain or gzipped.

The result is the same :class:`~posendf_plugin.data.bvh.BvhClip` the BVH reader gives, so the
retargeting in :mod:`posendf_plugin.data.convert` works on it unchanged.

Conventions (Acclaim ASF v1.10; the CMU/VICON notes on it; column vectors):

* Every ``direction`` is a unit vector in the **world frame of the rest pose**; a bone runs from
  the end of its parent (the root's position for the root's children) to
  ``start + direction * length``.
* A bone's ``axis ax ay az ORDER`` line gives its local frame ``C``: rotations about the fixed
  x, y, z axes by ``ax, ay, az``, applied in the sequence ``ORDER`` names (``XYZ``: x first,
  so ``C = Rz(az) Ry(ay) Rx(ax)``). The bone's motion ``M`` comes from the AMC values of its
  ``dof`` tokens, rotations about fixed axes applied in the order the ``dof`` line lists them
  (``dof rx ry rz``: ``M = Rz Ry Rx``). Its rotation relative to the parent is
  ``L = C M C^-1``; the global rotation is ``G = G_parent L``.
* The root: ``order`` lists the AMC values (translations and rotations, any interleaving) and
  the sequence of the root's rotations about fixed axes; ``orientation`` (with the ``axis``
  order) is the root's ``C``; ``position`` is added to the AMC translation.
* ``dof`` may hold ``tx ty tz`` (a translation of the bone's start, in its ``C`` frame) and ``l``
  (a length change), which is read but **ignored**: bones keep their ASF length (CMU never uses
  it). ``limits`` are read (:attr:`AsfBone.limits`) and not enforced.
* Units: ``:units angle deg|rad`` applies to the ASF's angles; the AMC's ``:DEGREES`` /
  ``:RADIANS`` to its values (default: the ASF's). Lengths and root translations stay in file
  units; :attr:`AsfSkeleton.metres_per_unit` is ``0.0254 / length`` (Acclaim lengths are inches
  times the ``:units length`` multiplier; CMU's ``length 0.45`` gives the 0.056444 m per unit of
  the CMU FAQ).
* An AMC carries no frame rate: ``fps`` defaults to CMU's 120.

In the returned clip each bone is a joint at the bone's *start* carrying the bone's rotation
(as in CMU's own BVH conversions: ``lfemur`` is the hip joint, ``ltibia`` the knee), each
leaf bone gets an end joint ``<bone>_End`` at its tip, and offsets are expressed in the
parent's frame (the rest pose has identity rotations).

Every problem (ASF and AMC disagreeing on bones or DOFs, a truncated frame, non-numeric or
NaN values, a broken hierarchy) raises ``ValueError`` naming the file and the problem.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .bvh import BvhClip, euler_to_matrix, parse_number, read_mocap_text

__all__ = [
    "AsfBone",
    "AsfSkeleton",
    "CMU_AMC_FPS",
    "read_asf",
    "read_asf_text",
    "read_amc",
    "read_amc_text",
    "amc_clip_name",
    "find_asf_for",
]

log = logging.getLogger(__name__)

#: CMU captures at 120 frames per second; AMC files do not say.
CMU_AMC_FPS = 120.0
_ROT = ("rx", "ry", "rz")
_TRANS = ("tx", "ty", "tz")
_DOFS = _ROT + _TRANS + ("l",)
_AXIS_IDX = {"x": 0, "y": 1, "z": 2}


@dataclass
class AsfBone:
    """One ``begin ... end`` block of an ASF ``:bonedata`` section.

    Attributes:
        name: bone name (as written; matched case-insensitively against the AMC).
        direction: ``(3,)`` unit direction in the rest-pose world frame.
        length: length in file units.
        axis: ``(3,)`` angles in degrees about x, y, z of the bone's frame ``C``.
        axis_order: application order of ``axis``, lower case (``"xyz"``).
        dof: the bone's AMC channels in file order (``rx``, ``ry``, ``rz``, ``tx``, ``ty``,
            ``tz``, ``l``).
        limits: ``(min, max)`` per dof, as written (not enforced).
    """

    name: str
    direction: np.ndarray
    length: float
    axis: np.ndarray
    axis_order: str = "xyz"
    dof: List[str] = field(default_factory=list)
    limits: List[Tuple[float, float]] = field(default_factory=list)

    @property
    def vector(self) -> np.ndarray:
        """``direction * length``: the bone in the rest-pose world frame (file units)."""
        return self.direction * self.length

    def frame(self) -> np.ndarray:
        """``C`` (3, 3): the bone's axis frame in the world rest frame."""
        return _fixed_axes(self.axis, self.axis_order)


@dataclass
class AsfSkeleton:
    """A parsed ASF file.

    Attributes:
        bones: by lower-case name, in file order (without the root).
        parent: lower-case bone name -> lower-case parent name (``"root"`` for the root's children).
        root_order: the root's AMC channels in order (``tx``, ``ty``, ``tz``, ``rx``, ``ry``, ``rz``).
        root_axis_order: application order of ``root_orientation``.
        root_position: ``(3,)`` file units; root_orientation: ``(3,)`` degrees about x, y, z.
        length_unit: the ``:units length`` multiplier; mass_unit: ``:units mass``.
        angle_unit: ``"deg"`` or ``"rad"`` (ASF angles; already converted to degrees above).
        path: the file it came from.
    """

    bones: Dict[str, AsfBone]
    parent: Dict[str, str]
    root_order: List[str]
    root_axis_order: str = "xyz"
    root_position: np.ndarray = field(default_factory=lambda: np.zeros(3))
    root_orientation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    length_unit: float = 1.0
    mass_unit: float = 1.0
    angle_unit: str = "deg"
    path: str = ""

    @property
    def metres_per_unit(self) -> float:
        """Metres per file length unit: ``0.0254 / length`` (inches x multiplier; CMU: 0.056444)."""
        return 0.0254 / self.length_unit

    def joint_order(self) -> List[str]:
        """Lower-case bone names, parents before children (depth first, file order of children)."""
        children: Dict[str, List[str]] = {}
        for b in self.bones:
            children.setdefault(self.parent[b], []).append(b)
        out: List[str] = []
        stack = list(reversed(children.get("root", [])))
        while stack:
            b = stack.pop()
            out.append(b)
            stack.extend(reversed(children.get(b, [])))
        return out


def _fixed_axes(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Rotations about fixed axes applied in ``order``; ``angles_deg[..., k]`` is about axis
    ``"xyz"[k]``. ``order="xyz"`` gives ``Rz Ry Rx``. ``(..., 3) -> (..., 3, 3)``."""
    a = np.asarray(angles_deg, np.float64)
    seq = order[::-1]  # the last applied rotation is the leftmost factor
    return euler_to_matrix(np.stack([a[..., _AXIS_IDX[c]] for c in seq], -1), seq)




def _order_token(tok: str, src: str, ln: int, what: str) -> str:
    t = tok.lower()
    if len(t) != 3 or sorted(t) != ["x", "y", "z"]:
        raise ValueError(f"{src}: line {ln}: {what} must be a rotation order such as XYZ, found {tok!r}")
    return t


def read_asf(path: Union[str, Path]) -> AsfSkeleton:
    """Read an ``.asf`` / ``.asf.gz`` skeleton (see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a valid ASF; the message names the file and the problem.
    """
    path = Path(path)
    return read_asf_text(read_mocap_text(path, "ASF skeleton"), str(path))


def read_asf_text(text: str, src: str = "<asf>") -> AsfSkeleton:
    """Parse ASF text; ``src`` names the source in error messages."""
    lines: List[Tuple[int, List[str]]] = []
    for ln, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].replace("(", " ").replace(")", " ").replace(",", " ")
        toks = line.split()
        if toks:
            lines.append((ln, toks))
    section = None
    units = {"length": 1.0, "mass": 1.0, "angle": "deg"}
    root_order: Optional[List[str]] = None
    root_axis = "xyz"
    root_pos = np.zeros(3)
    root_ori = np.zeros(3)
    raw_bones: List[Tuple[int, Dict[str, Tuple[int, List[str]]], List[List[str]]]] = []
    hierarchy: List[Tuple[int, List[str]]] = []
    cur: Optional[Dict[str, Tuple[int, List[str]]]] = None
    cur_limits: List[List[str]] = []
    in_limits = False
    for ln, toks in lines:
        key = toks[0].lower()
        if key.startswith(":"):
            section = key
            in_limits = False
            if section in (":version", ":name"):
                section = None
            continue
        if section == ":units":
            if key in ("length", "mass") and len(toks) >= 2:
                units[key] = parse_number(toks[1], src, ln, f":units {key}")
                if not units[key] > 0:
                    raise ValueError(f"{src}: line {ln}: :units {key} must be positive, got {toks[1]}")
            elif key == "angle" and len(toks) >= 2:
                a = toks[1].lower()
                if a.startswith("deg"):
                    units["angle"] = "deg"
                elif a.startswith("rad"):
                    units["angle"] = "rad"
                else:
                    raise ValueError(f"{src}: line {ln}: :units angle must be deg or rad, found {toks[1]!r}")
        elif section == ":root":
            if key == "order":
                root_order = [t.lower() for t in toks[1:]]
                bad = [t for t in root_order if t not in _ROT + _TRANS]
                if bad or len(set(root_order)) != len(root_order):
                    raise ValueError(f"{src}: line {ln}: root order must list distinct TX TY TZ RX RY RZ tokens, found {toks[1:]}")
            elif key == "axis" and len(toks) >= 2:
                root_axis = _order_token(toks[1], src, ln, "root axis")
            elif key == "position" and len(toks) >= 4:
                root_pos = np.array([parse_number(t, src, ln, "root position") for t in toks[1:4]])
            elif key == "orientation" and len(toks) >= 4:
                root_ori = np.array([parse_number(t, src, ln, "root orientation") for t in toks[1:4]])
        elif section == ":bonedata":
            if key == "begin":
                if cur is not None:
                    raise ValueError(f"{src}: line {ln}: 'begin' inside a bone block (missing 'end'?)")
                cur, cur_limits, in_limits = {}, [], False
                bone_line = ln
            elif key == "end":
                if cur is None:
                    raise ValueError(f"{src}: line {ln}: 'end' without 'begin'")
                raw_bones.append((bone_line, cur, cur_limits))
                cur, in_limits = None, False
            elif cur is None:
                raise ValueError(f"{src}: line {ln}: {toks[0]!r} outside a begin/end bone block")
            elif key == "limits":
                in_limits = True
                cur_limits.append(toks[1:])
            elif in_limits and key not in ("id", "name", "direction", "length", "axis", "dof", "bodymass", "cofmass"):
                cur_limits.append(toks)
            else:
                in_limits = False
                cur[key] = (ln, toks[1:])
        elif section == ":hierarchy":
            if key in ("begin", "end"):
                continue
            hierarchy.append((ln, [t.lower() for t in toks]))
    if cur is not None:
        raise ValueError(f"{src}: the last bone block has no 'end' (truncated file?)")
    if not raw_bones:
        raise ValueError(f"{src}: not an ASF skeleton (no :bonedata bones)")
    if root_order is None:
        raise ValueError(f"{src}: no ':root' 'order' line (which AMC values the root has)")
    to_deg = 1.0 if units["angle"] == "deg" else 180.0 / np.pi

    bones: Dict[str, AsfBone] = {}
    for ln0, b, lim in raw_bones:
        for k in ("name", "direction", "length"):
            if k not in b or not b[k][1]:
                raise ValueError(f"{src}: line {ln0}: bone block without '{k}'")
        name = b["name"][1][0]
        low = name.lower()
        if low in bones or low == "root":
            raise ValueError(f"{src}: line {b['name'][0]}: duplicate bone name {name!r}")
        ln, d = b["direction"]
        if len(d) < 3:
            raise ValueError(f"{src}: line {ln}: direction of {name!r} needs 3 numbers")
        direction = np.array([parse_number(t, src, ln, f"direction of {name!r}") for t in d[:3]])
        n = float(np.linalg.norm(direction))
        ln, lv = b["length"]
        length = parse_number(lv[0], src, ln, f"length of {name!r}")
        if length < 0:
            raise ValueError(f"{src}: line {ln}: length of {name!r} is negative ({length})")
        if n < 1e-12 and length > 0:
            raise ValueError(f"{src}: line {ln}: bone {name!r} has a zero direction")
        direction = direction / n if n >= 1e-12 else direction
        axis, order = np.zeros(3), "xyz"
        if "axis" in b:
            ln, a = b["axis"]
            if len(a) < 3:
                raise ValueError(f"{src}: line {ln}: axis of {name!r} needs 3 angles and an order")
            axis = np.array([parse_number(t, src, ln, f"axis of {name!r}") for t in a[:3]]) * to_deg
            if len(a) >= 4:
                order = _order_token(a[3], src, ln, f"axis order of {name!r}")
        dof: List[str] = []
        if "dof" in b:
            ln, dv = b["dof"]
            dof = [t.lower() for t in dv]
            bad = [t for t in dof if t not in _DOFS]
            if bad or len(set(dof)) != len(dof):
                raise ValueError(f"{src}: line {ln}: dof of {name!r} must list distinct rx ry rz tx ty tz l tokens, found {dv}")
        flat = [t for row in lim for t in row]
        limits: List[Tuple[float, float]] = []
        for i in range(0, len(flat) - 1, 2):
            try:
                limits.append((float(flat[i]), float(flat[i + 1])))
            except ValueError:
                raise ValueError(f"{src}: limits of {name!r} must be numbers (or inf), found {flat[i:i + 2]}") from None
        bones[low] = AsfBone(name, direction, length, axis, order, dof, limits)

    parent: Dict[str, str] = {}
    for ln, toks in hierarchy:
        p = toks[0]
        if p != "root" and p not in bones:
            raise ValueError(f"{src}: line {ln}: hierarchy names an unknown bone {p!r}")
        for c in toks[1:]:
            if c not in bones:
                raise ValueError(f"{src}: line {ln}: hierarchy names an unknown bone {c!r}")
            if c in parent:
                raise ValueError(f"{src}: line {ln}: bone {c!r} has two parents ({parent[c]!r} and {p!r})")
            parent[c] = p
    orphans = [bones[b].name for b in bones if b not in parent]
    if orphans:
        raise ValueError(f"{src}: bone(s) {orphans[:10]} are not in the :hierarchy section (truncated file?)")
    for b in bones:  # cycles: every chain must reach the root
        seen, k = set(), b
        while k != "root":
            if k in seen:
                raise ValueError(f"{src}: the hierarchy has a cycle through bone {bones[b].name!r}")
            seen.add(k)
            k = parent[k]
    return AsfSkeleton(bones, parent, root_order, root_axis, root_pos, root_ori * to_deg,
                       units["length"], units["mass"], units["angle"], src)


def amc_clip_name(path: Union[str, Path]) -> str:
    """Clip name of an AMC file: the file name without ``.amc`` / ``.amc.gz``."""
    name = Path(path).name
    low = name.lower()
    for suffix in (".amc.gz", ".amc"):
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def find_asf_for(amc: Union[str, Path]) -> Path:
    """The skeleton of an AMC file: the sibling ``<subject>.asf[.gz]`` where ``<subject>`` is the
    AMC name up to its first ``_`` (``35_01.amc`` -> ``35.asf``), else ``<clip>.asf``, else the
    only ``.asf`` in the folder.

    Raises:
        FileNotFoundError: none found (or several and none matching); the message says to pass
            ``--asf FILE``.
    """
    amc = Path(amc)
    folder = amc.parent
    clip = amc_clip_name(amc)
    for stem in (clip.split("_", 1)[0], clip):
        for ext in (".asf", ".asf.gz", ".ASF", ".ASF.GZ"):
            cand = folder / f"{stem}{ext}"
            if cand.is_file():
                return cand
    all_asf = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith((".asf", ".asf.gz")))
    if len(all_asf) == 1:
        return all_asf[0]
    found = f"; the folder holds {len(all_asf)} .asf files ({', '.join(p.name for p in all_asf[:5])})" if all_asf else ""
    raise FileNotFoundError(
        f"{amc}: no ASF skeleton for this AMC motion: looked for {clip.split('_', 1)[0]}.asf[.gz] in "
        f"{folder or '.'}{found}; pass the skeleton with --asf FILE"
    )


def read_amc(path: Union[str, Path], skeleton: Union[AsfSkeleton, str, Path], fps: float = CMU_AMC_FPS,
             max_frames: Optional[int] = None) -> BvhClip:
    """Read an ``.amc`` / ``.amc.gz`` motion on ``skeleton`` (an :class:`AsfSkeleton` or an ASF path).

    Args:
        fps: frames per second (AMC files carry none; CMU's is 120).
        max_frames: read only the first frames (``None``: all).
    Raises:
        FileNotFoundError: no such file.
        ValueError: bad file, or the AMC does not match the ASF; the message names both.
    """
    path = Path(path)
    skel = skeleton if isinstance(skeleton, AsfSkeleton) else read_asf(skeleton)
    return read_amc_text(read_mocap_text(path, "AMC motion"), skel, str(path), fps=fps, max_frames=max_frames)


def read_amc_text(text: str, skeleton: AsfSkeleton, src: str = "<amc>", fps: float = CMU_AMC_FPS,
                  max_frames: Optional[int] = None) -> BvhClip:
    """Parse AMC text against ``skeleton`` (see :func:`read_amc`)."""
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"{src}: the frame rate must be positive, got {fps}")
    skel_src = skeleton.path or "the ASF"
    angle = skeleton.angle_unit
    body_start = 0
    lines = text.splitlines()
    for i, line in enumerate(lines):
        s = line.strip()
        if not s or s.startswith("#"):
            body_start = i + 1
            continue
        if s.startswith(":"):
            u = s.upper()
            if u.startswith(":DEG"):
                angle = "deg"
            elif u.startswith(":RAD"):
                angle = "rad"
            body_start = i + 1
            continue
        break
    channels: Dict[str, List[str]] = {"root": skeleton.root_order}
    for b, bone in skeleton.bones.items():
        if bone.dof:
            channels[b] = bone.dof
    frames: List[Dict[str, np.ndarray]] = []
    cur: Optional[Dict[str, np.ndarray]] = None
    cur_ln = 0

    def close(ln: int, last: bool) -> None:
        missing = [skeleton.bones[b].name if b in skeleton.bones else b for b in channels if b not in cur]
        if missing:
            hint = " (truncated file?)" if last else f" (the ASF {skel_src} gives them dofs; wrong skeleton?)"
            raise ValueError(f"{src}: frame {len(frames) + 1} (line {cur_ln}) lacks bone(s) {missing[:8]}{hint}")
        frames.append(cur)

    def at_end(ln: int) -> bool:
        """Only blank lines follow line ``ln`` (0-based): an error there means a truncated file."""
        return all(not l.strip() for l in lines[ln + 1:])

    for ln in range(body_start, len(lines)):
        toks = lines[ln].split()
        if not toks or toks[0].startswith("#"):
            continue
        if len(toks) == 1 and re.fullmatch(r"\d+", toks[0]):
            if cur is not None:
                close(ln, False)
                if max_frames is not None and len(frames) >= max_frames:
                    cur = None
                    break
            cur, cur_ln = {}, ln + 1
            continue
        if cur is None:
            raise ValueError(f"{src}: line {ln + 1}: expected a frame number, found {lines[ln].strip()[:60]!r}")
        name = toks[0].lower()
        if name not in channels:
            if name in skeleton.bones:
                raise ValueError(f"{src}: line {ln + 1}: bone {toks[0]!r} has values but no dof in {skel_src} (ASF and AMC disagree)")
            if at_end(ln) and any(b.startswith(name) for b in channels):
                raise ValueError(f"{src}: line {ln + 1}: the file ends inside bone name {toks[0]!r} (truncated file?)")
            raise ValueError(
                f"{src}: line {ln + 1}: bone {toks[0]!r} is not in the skeleton {skel_src} "
                "(ASF and AMC disagree: wrong .asf for this motion? pass the right one with --asf FILE)"
            )
        want = channels[name]
        if len(toks) - 1 != len(want):
            raise ValueError(
                f"{src}: line {ln + 1}: bone {toks[0]!r} has {len(toks) - 1} value(s) but {skel_src} gives it "
                f"{len(want)} dof(s) ({' '.join(want)}){' (truncated file?)' if len(toks) - 1 < len(want) and at_end(ln) else ''}"
            )
        try:
            vals = np.array(toks[1:], dtype=np.float64)
        except ValueError:
            raise ValueError(f"{src}: line {ln + 1}: non-numeric value in {lines[ln].strip()[:60]!r}") from None
        if not np.isfinite(vals).all():
            raise ValueError(f"{src}: line {ln + 1}: NaN/Inf value for bone {toks[0]!r}; clean the file before converting")
        if name in cur:
            raise ValueError(f"{src}: line {ln + 1}: bone {toks[0]!r} appears twice in frame {len(frames) + 1}")
        cur[name] = vals
    if cur is not None:
        close(len(lines), True)
    if not frames:
        raise ValueError(f"{src}: no motion frames (empty or truncated AMC file)")

    F = len(frames)
    to_deg = 1.0 if angle == "deg" else 180.0 / np.pi
    order = skeleton.joint_order()
    leaves = {b for b in order if not any(skeleton.parent[c] == b for c in order)}
    names: List[str] = ["root"]
    parents: List[int] = [-1]
    offsets: List[np.ndarray] = [skeleton.root_position.astype(np.float64)]
    chans: List[List[str]] = [[_bvh_channel(t) for t in skeleton.root_order]]
    is_end: List[bool] = [False]
    index = {"root": 0}
    for b in order:
        bone = skeleton.bones[b]
        p = skeleton.parent[b]
        index[b] = len(names)
        names.append(bone.name)
        parents.append(index[p])
        offsets.append(np.zeros(3) if p == "root" else skeleton.bones[p].vector)
        chans.append([_bvh_channel(t) for t in bone.dof if t != "l"])
        is_end.append(False)
    for b in order:
        if b in leaves:
            names.append(f"{skeleton.bones[b].name}_End")
            parents.append(index[b])
            offsets.append(skeleton.bones[b].vector)
            chans.append([])
            is_end.append(True)
    J = len(names)
    off = np.stack(offsets)
    local_rot = np.broadcast_to(np.eye(3), (F, J, 3, 3)).copy()
    local_trans = np.broadcast_to(off, (F, J, 3)).copy()

    # root
    vals = np.stack([fr["root"] for fr in frames]) if skeleton.root_order else np.zeros((F, 0))
    rot_tok = [t for t in skeleton.root_order if t in _ROT]
    trans = np.zeros((F, 3))
    for k, t in enumerate(skeleton.root_order):
        if t in _TRANS:
            trans[:, _AXIS_IDX[t[1]]] = vals[:, k]
    local_trans[:, 0] = skeleton.root_position + trans
    C = _fixed_axes(skeleton.root_orientation, skeleton.root_axis_order)
    M = _dof_rotation(vals, skeleton.root_order, rot_tok, to_deg)
    local_rot[:, 0] = C @ M @ C.T
    # bones
    warned_l = False
    for b in order:
        bone = skeleton.bones[b]
        if not bone.dof:
            continue
        j = index[b]
        v = np.stack([fr[b] for fr in frames])
        C = bone.frame()
        rot_tok = [t for t in bone.dof if t in _ROT]
        local_rot[:, j] = C @ _dof_rotation(v, bone.dof, rot_tok, to_deg) @ C.T
        tt = [(k, t) for k, t in enumerate(bone.dof) if t in _TRANS]
        if tt:
            t = np.zeros((F, 3))
            for k, tok in tt:
                t[:, _AXIS_IDX[tok[1]]] = v[:, k]
            local_trans[:, j] = off[j] + t @ C.T
        if "l" in bone.dof and not warned_l:
            log.warning("%s: 'l' (bone length) channels are ignored; bones keep their ASF lengths", src)
            warned_l = True
    return BvhClip(names, parents, off, chans, local_rot, local_trans, 1.0 / float(fps), src, is_end)


def _dof_rotation(vals: np.ndarray, dof: Sequence[str], rot_tok: Sequence[str], to_deg: float) -> np.ndarray:
    """``(F, 3, 3)`` rotation from the AMC values of the rotation dofs, applied about fixed
    axes in the order ``dof`` lists them (the first listed is applied first)."""
    F = vals.shape[0]
    if not rot_tok:
        return np.broadcast_to(np.eye(3), (F, 3, 3)).copy()
    cols = [list(dof).index(t) for t in rot_tok]
    ang = vals[:, cols] * to_deg
    seq = "".join(t[1] for t in rot_tok)[::-1]  # last applied = leftmost factor
    return euler_to_matrix(ang[:, ::-1], seq)


def _bvh_channel(tok: str) -> str:
    return {"rx": "xrotation", "ry": "yrotation", "rz": "zrotation",
            "tx": "xposition", "ty": "yposition", "tz": "zposition"}.get(tok, tok)
