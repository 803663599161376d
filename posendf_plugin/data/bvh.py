"""Reading BVH motion capture files (``.bvh`` and gzipped ``.bvh.gz``).

* Any channel order: each joint's rotation is the product of its rotation channels in the order
  the ``CHANNELS`` line lists them (``Zrotation Yrotation Xrotation`` gives ``Rz @ Ry @ Rx``),
  angles in degrees, matrices acting on column vectors.
* Position channels may sit on any joint. Exporters disagree on whether they *replace* the
  joint's ``OFFSET`` (Blender, Bandai-Namco: the channel values equal the offset) or are *added*
  to it (iClone/CC3 roots). :func:`read_bvh` decides per joint: when the channel values are
  closer to the offset than to zero they replace it, otherwise they are added.
* ``End Site`` blocks become extra joints named ``<parent>_End`` with no channels.
* Units and the up axis are whatever the file uses (usually centimetres, Y-up); scaling to
  metres and retargeting happen in :mod:`posendf_plugin.data.convert`.

Every problem with a file (unreadable gzip, truncated hierarchy or motion, wrong number of
values in a frame, non-numeric values, NaN/Inf) raises ``ValueError`` naming the file and the
problem.
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .. import rotations as R

__all__ = ["BvhClip", "read_bvh", "read_bvh_text", "write_bvh", "euler_to_matrix", "matrix_to_euler", "bvh_clip_name", "read_mocap_text", "parse_number"]

_AXES = {"x": 0, "y": 1, "z": 2}
_ROT_CHANNELS = ("xrotation", "yrotation", "zrotation")
_POS_CHANNELS = ("xposition", "yposition", "zposition")


@dataclass
class BvhClip:
    """A parsed BVH clip.

    Attributes:
        names: joint names (J,), parents before children; end sites are ``<parent>_End``.
        parents: parent index per joint, ``-1`` for a root.
        offsets: ``(J, 3)`` rest offsets from the parent (file units).
        channels: per joint, the lower-case channel names in file order.
        local_rot: ``(F, J, 3, 3)`` float64 local rotation matrices.
        local_trans: ``(F, J, 3)`` float64 local translations (offset, or position channels).
        frame_time: seconds per frame.
        path: the file it came from ("" for text input).
    """

    names: List[str]
    parents: List[int]
    offsets: np.ndarray
    channels: List[List[str]]
    local_rot: np.ndarray
    local_trans: np.ndarray
    frame_time: float
    path: str = ""
    is_end: List[bool] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.local_rot.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"{self.path or 'BVH'}: no joint named {name!r}") from None

    def global_transforms(self, joints: Optional[Sequence[int]] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Forward kinematics.

        Args:
            joints: compute only these joints (and their ancestors); default all.
        Returns:
            ``(positions (F, J, 3), rotations (F, J, 3, 3))`` in the file's world frame; joints
            not requested are NaN.
        """
        J = len(self.names)
        need = np.zeros(J, bool)
        for j in range(J) if joints is None else joints:
            while j >= 0 and not need[j]:
                need[j] = True
                j = self.parents[j]
        F = self.num_frames
        pos = np.full((F, J, 3), np.nan)
        rot = np.full((F, J, 3, 3), np.nan)
        for j in range(J):
            if not need[j]:
                continue
            p = self.parents[j]
            if p < 0:
                pos[:, j] = self.local_trans[:, j]
                rot[:, j] = self.local_rot[:, j]
            else:
                pos[:, j] = pos[:, p] + np.einsum("fab,fb->fa", rot[:, p], self.local_trans[:, j])
                rot[:, j] = rot[:, p] @ self.local_rot[:, j]
        return pos, rot

    def resampled(self, fps: float) -> "BvhClip":
        """The clip resampled to ``fps``: slerp for rotations, linear for translations."""
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        F = self.num_frames
        if F < 2 or abs(fps - self.fps) < 1e-6:
            return self
        duration = (F - 1) * self.frame_time
        n = int(np.floor(duration * fps + 1e-6)) + 1
        t = np.arange(n) / fps / self.frame_time  # in source frames
        i0 = np.clip(np.floor(t).astype(int), 0, F - 2)
        w = (t - i0)[:, None]
        q = R.matrix_to_quat(torch.from_numpy(self.local_rot))  # (F, J, 4)
        tw = torch.from_numpy(np.broadcast_to(w, (n, q.shape[1])).copy()).to(q)
        qi = R.quat_slerp(q[i0], q[i0 + 1], tw)
        rot = R.quat_to_matrix(qi).numpy()
        tr = self.local_trans[i0] * (1 - w[:, :, None]) + self.local_trans[i0 + 1] * w[:, :, None]
        return BvhClip(
            self.names, self.parents, self.offsets, self.channels, rot, tr, 1.0 / fps, self.path,
            list(self.is_end),
        )


def bvh_clip_name(path: Union[str, Path]) -> str:
    """Clip name of a BVH file: the file name without ``.bvh`` / ``.bvh.gz``."""
    name = Path(path).name
    for suffix in (".bvh.gz", ".BVH.GZ", ".bvh", ".BVH", ".gz"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def euler_to_matrix(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Euler angles to rotation matrices, ``R = R_{order[0]} @ R_{order[1]} @ R_{order[2]}``.

    Args:
        angles_deg: ``(..., k)`` angles in degrees, one per axis letter of ``order``.
        order: axis letters, e.g. ``"zyx"`` (any length 0-3, repeats allowed).
    Returns:
        ``(..., 3, 3)`` float64.
    """
    angles = np.deg2rad(np.asarray(angles_deg, np.float64))
    out = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for k, axis in enumerate(order):
        c, s = np.cos(angles[..., k]), np.sin(angles[..., k])
        m = np.zeros(angles.shape[:-1] + (3, 3))
        a = _AXES[axis]
        b, d = (a + 1) % 3, (a + 2) % 3
        m[..., a, a] = 1.0
        m[..., b, b] = c
        m[..., d, d] = c
        m[..., b, d] = -s
        m[..., d, b] = s
        out = out @ m
    return out


def matrix_to_euler(m: np.ndarray, order: str) -> np.ndarray:
    """Inverse of :func:`euler_to_matrix` for three distinct axes: ``(..., 3, 3) -> (..., 3)``
    degrees, ``R = R_{order[0]} @ R_{order[1]} @ R_{order[2]}``."""
    from scipy.spatial.transform import Rotation

    m = np.asarray(m, np.float64)
    flat = m.reshape(-1, 3, 3)
    e = Rotation.from_matrix(flat).as_euler(order.upper(), degrees=True)  # upper case = intrinsic
    return e.reshape(m.shape[:-2] + (3,))


def write_bvh(
    path: Union[str, Path],
    names: Sequence[str],
    parents: Sequence[int],
    offsets: np.ndarray,
    local_rot: np.ndarray,
    root_pos: np.ndarray,
    frame_time: float = 1.0 / 30.0,
    order: str = "zyx",
    positions_on_all: bool = False,
    end_sites: Optional[Dict[int, Sequence[float]]] = None,
) -> Path:
    """Write a BVH file (gzipped when ``path`` ends in ``.gz``).

    Args:
        names, parents: joints in parent-before-child order, ``parents[0] == -1``.
        offsets: ``(J, 3)`` rest offsets.
        local_rot: ``(F, J, 3, 3)`` local rotation matrices.
        root_pos: ``(F, 3)`` root position channels.
        order: rotation channel order, e.g. ``"zyx"`` writes ``Zrotation Yrotation Xrotation``.
        positions_on_all: also give every non-root joint position channels (equal to its offset),
            as Bandai-Namco files do.
        end_sites: joint index -> end-site offset for leaf joints (default: none).
    """
    from ..io import atomic_path

    J = len(names)
    children: List[List[int]] = [[] for _ in range(J)]
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    rot_ch = " ".join(f"{a.upper()}rotation" for a in order)
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        ind = "  " * depth
        lines.append(f"{ind}{'ROOT' if parents[j] < 0 else 'JOINT'} {names[j]}")
        lines.append(f"{ind}{{")
        lines.append(f"{ind}  OFFSET {' '.join(f'{v:.6f}' for v in offsets[j])}")
        if parents[j] < 0 or positions_on_all:
            lines.append(f"{ind}  CHANNELS 6 Xposition Yposition Zposition {rot_ch}")
        else:
            lines.append(f"{ind}  CHANNELS 3 {rot_ch}")
        for c in children[j]:
            emit(c, depth + 1)
        if end_sites and j in end_sites:
            lines.extend([f"{ind}  End Site", f"{ind}  {{", f"{ind}    OFFSET {' '.join(f'{v:.6f}' for v in end_sites[j])}", f"{ind}  }}"])
        lines.append(f"{ind}}}")

    for r in (j for j in range(J) if parents[j] < 0):
        emit(r, 0)
    order_idx: List[int] = []

    def walk(j: int) -> None:
        order_idx.append(j)
        for c in children[j]:
            walk(c)

    for r in (j for j in range(J) if parents[j] < 0):
        walk(r)
    F = local_rot.shape[0]
    eul = matrix_to_euler(local_rot, order)  # (F, J, 3)
    cols = []
    for j in order_idx:
        if parents[j] < 0:
            cols.append(root_pos)
        elif positions_on_all:
            cols.append(np.broadcast_to(offsets[j], (F, 3)))
        cols.append(eul[:, j])
    data = np.concatenate(cols, axis=1)
    lines += ["MOTION", f"Frames: {F}", f"Frame Time: {frame_time:.8f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in data]
    text = "\n".join(lines) + "\n"
    path = Path(path)
    with atomic_path(path) as tmp:
        raw = text.encode()
        tmp.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def read_bvh(path: Union[str, Path], max_frames: Optional[int] = None) -> BvhClip:
    """Read a ``.bvh`` or ``.bvh.gz`` file (gzip is detected from the content).

    Args:
        max_frames: read only the first frames (``None``: all).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not valid BVH; the message names the file and the problem.
    """
    path = Path(path)
    return read_bvh_text(read_mocap_text(path, "BVH"), str(path), max_frames=max_frames)


def read_mocap_text(path: Union[str, Path], what: str) -> str:
    """The text of a plain or gzipped mocap file (gzip is detected from the content; UTF-8,
    else Latin-1).

    Raises:
        FileNotFoundError: no such file (the message says ``no such <what> file``).
        ValueError: corrupt gzip data; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what} file")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({type(e).__name__}: {e})") from e
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


#: deepest joint nesting accepted (a humanoid with fingers is ~15 deep)
MAX_DEPTH = 256


def parse_number(tok: str, src: str, ln: int, what: str) -> float:
    """A finite number from a token of a mocap text file (BVH, ASF, AMC).

    Raises:
        ValueError: not a number, NaN or Inf; the message names the file, the line and ``what``.
    """
    try:
        v = float(tok)
    except ValueError:
        raise ValueError(f"{src}: line {ln}: expected a number for {what}, found {tok!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{src}: line {ln}: {what} is {tok}")
    return v


class _Tokens:
    def __init__(self, header: str, src: str):
        self.toks: List[Tuple[str, int]] = []
        for ln, line in enumerate(header.splitlines(), 1):
            for t in line.replace("{", " { ").replace("}", " } ").split():
                self.toks.append((t, ln))
        self.i = 0
        self.src = src

    def next(self, what: str) -> Tuple[str, int]:
        if self.i >= len(self.toks):
            raise ValueError(f"{self.src}: hierarchy ends early while expecting {what} (truncated file?)")
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, word: str) -> None:
        t, ln = self.next(repr(word))
        if t.upper() != word.upper():
            raise ValueError(f"{self.src}: line {ln}: expected {word!r}, found {t!r}")

    def number(self, what: str) -> float:
        t, ln = self.next(what)
        return parse_number(t, self.src, ln, what)

    def peek(self) -> Optional[str]:
        return self.toks[self.i][0] if self.i < len(self.toks) else None


def read_bvh_text(text: str, src: str = "<bvh>", max_frames: Optional[int] = None) -> BvhClip:
    """Parse BVH text (see :func:`read_bvh`); ``src`` names the source in error messages."""
    upper = text.upper()
    h = upper.find("HIERARCHY")
    m = upper.find("MOTION")
    if h < 0:
        raise ValueError(f"{src}: not a BVH file (no HIERARCHY section)")
    if m < 0:
        raise ValueError(f"{src}: no MOTION section (truncated file?)")
    tk = _Tokens(text[h + len("HIERARCHY"):m], src)
    names: List[str] = []
    parents: List[int] = []
    offsets: List[List[float]] = []
    channels: List[List[str]] = []
    is_end: List[bool] = []

    def joint(parent: int, end: bool, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise ValueError(
                f"{src}: the hierarchy nests joints more than {MAX_DEPTH} deep; not a humanoid skeleton "
                "(corrupt file?)"
            )
        if end:
            tk.expect("Site")
            name = f"{names[parent]}_End"
            while name in names:  # a real joint already has that name
                name += "_Site"
        else:
            name, _ = tk.next("a joint name")
        idx = len(names)
        names.append(name)
        parents.append(parent)
        is_end.append(end)
        channels.append([])
        offsets.append([0.0, 0.0, 0.0])
        tk.expect("{")
        while True:
            t, ln = tk.next(f"'}}' closing joint {name!r}")
            key = t.upper()
            if key == "}":
                return
            if key == "OFFSET":
                offsets[idx] = [tk.number(f"OFFSET of {name!r}") for _ in range(3)]
            elif key == "CHANNELS":
                n = tk.number(f"channel count of {name!r}")
                if n != int(n) or not 0 <= n <= 9:
                    raise ValueError(f"{src}: line {ln}: joint {name!r} has an invalid channel count {n:g}")
                chans = [tk.next(f"channel name of {name!r}")[0].lower() for _ in range(int(n))]
                bad = [c for c in chans if c not in _ROT_CHANNELS + _POS_CHANNELS]
                if bad:
                    raise ValueError(
                        f"{src}: line {ln}: joint {name!r} has unknown channel(s) {bad} (the CHANNELS "
                        "count does not match the names that follow, or a typo); expected "
                        "Xposition/Yposition/Zposition/Xrotation/Yrotation/Zrotation"
                    )
                channels[idx] = chans
            elif key == "JOINT":
                joint(idx, False, depth + 1)
            elif key == "END":
                joint(idx, True, depth + 1)
            elif t.lower() in _ROT_CHANNELS + _POS_CHANNELS:
                raise ValueError(
                    f"{src}: line {ln}: joint {name!r} lists more channel names than its CHANNELS count "
                    f"({len(channels[idx])}); fix the count"
                )
            else:
                raise ValueError(f"{src}: line {ln}: unexpected {t!r} inside joint {name!r}")

    while tk.peek() is not None:
        t, ln = tk.next("ROOT")
        if t.upper() != "ROOT":
            raise ValueError(f"{src}: line {ln}: expected ROOT, found {t!r}")
        joint(-1, False)
    if not names:
        raise ValueError(f"{src}: the HIERARCHY section defines no joints")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{src}: duplicate joint names {dup}")

    # --- MOTION -----------------------------------------------------------------------------
    body = text[m + len("MOTION"):]
    lines = body.splitlines()
    n_frames = frame_time = None
    k = 0
    while k < len(lines) and (n_frames is None or frame_time is None):
        line = lines[k].strip()
        k += 1
        if not line:
            continue
        low = line.lower()
        try:
            if low.startswith("frames:"):
                n_frames = int(float(line.split(":", 1)[1]))
            elif low.startswith("frame time:"):
                frame_time = float(line.split(":", 1)[1])
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"{src}: MOTION section: expected 'Frames: N' and 'Frame Time: T', found {line[:60]!r}") from None
    if n_frames is None or frame_time is None:
        raise ValueError(f"{src}: MOTION section lacks 'Frames:' or 'Frame Time:' (truncated file?)")
    if not (np.isfinite(frame_time) and frame_time > 0):
        raise ValueError(f"{src}: Frame Time must be a positive number of seconds, got {frame_time}")
    if n_frames < 1:
        raise ValueError(f"{src}: the file declares {n_frames} frames; a clip needs at least one")
    n_ch = sum(len(c) for c in channels)
    rows = [ln for ln in lines[k:] if ln.strip()]
    if len(rows) < n_frames:
        raise ValueError(f"{src}: declares {n_frames} frames but holds only {len(rows)} (truncated file?)")
    if max_frames is not None:
        n_frames = min(n_frames, max(int(max_frames), 1))
    rows = rows[:n_frames]
    try:
        data = np.array(" ".join(rows).split(), dtype=np.float64)
    except ValueError:
        for i, row in enumerate(rows):
            try:
                np.array(row.split(), dtype=np.float64)
            except ValueError:
                raise ValueError(f"{src}: frame {i}: non-numeric value in {row.strip()[:60]!r}") from None
        raise
    if data.size != n_frames * n_ch:
        for i, row in enumerate(rows):
            c = len(row.split())
            if c != n_ch:
                raise ValueError(
                    f"{src}: frame {i} has {c} values but the hierarchy declares {n_ch} channels "
                    "(wrong CHANNELS counts or a truncated/corrupt frame)"
                )
    data = data.reshape(n_frames, n_ch)
    if not np.isfinite(data).all():
        fr, col = np.argwhere(~np.isfinite(data))[0]
        owner, off = _channel_owner(channels, int(col))
        raise ValueError(
            f"{src}: NaN/Inf value in frame {fr}, joint {names[owner]!r} channel {channels[owner][off]!r}; "
            "clean the file (or cut the broken frames) before converting"
        )

    J = len(names)
    off = np.asarray(offsets, np.float64)
    local_rot = np.broadcast_to(np.eye(3), (n_frames, J, 3, 3)).copy()
    local_trans = np.broadcast_to(off, (n_frames, J, 3)).copy()
    convention = _position_convention(data, channels, off, parents)
    col = 0
    for j, chans in enumerate(channels):
        vals = data[:, col:col + len(chans)]
        col += len(chans)
        rot_idx = [i for i, c in enumerate(chans) if c in _ROT_CHANNELS]
        pos_idx = [i for i, c in enumerate(chans) if c in _POS_CHANNELS]
        if rot_idx:
            order = "".join(chans[i][0] for i in rot_idx)
            local_rot[:, j] = euler_to_matrix(vals[:, rot_idx], order)
        if pos_idx:
            axes = [_AXES[chans[i][0]] for i in pos_idx]
            p = vals[:, pos_idx]
            ref = off[j, axes]
            if convention is None:
                med = np.median(p, axis=0)
                replace = np.linalg.norm(med - ref) <= np.linalg.norm(med)
            else:
                replace = convention
            local_trans[:, j, axes] = p if replace else ref + p
    return BvhClip(names, parents, off, channels, local_rot, local_trans, float(frame_time), src, is_end)


def _position_convention(
    data: np.ndarray, channels: List[List[str]], offsets: np.ndarray, parents: List[int]
) -> Optional[bool]:
    """Whether position channels replace the offset (True) or add to it (False), judged from
    non-root joints with a non-zero offset (their channel values equal the offset when the file
    uses the "replace" convention); ``None`` when no such joint exists."""
    col = 0
    votes = []
    for j, chans in enumerate(channels):
        pos_idx = [i for i, c in enumerate(chans) if c in _POS_CHANNELS]
        if pos_idx and parents[j] >= 0:
            axes = [_AXES[chans[i][0]] for i in pos_idx]
            ref = offsets[j, axes]
            scale = np.linalg.norm(ref)
            if scale > 1e-6:
                med = np.median(data[:, [col + i for i in pos_idx]], axis=0)
                votes.append(np.linalg.norm(med - ref) <= 0.05 * scale)
        col += len(chans)
    if not votes:
        return None
    return sum(votes) * 2 >= len(votes)


def _channel_owner(channels: List[List[str]], col: int) -> Tuple[int, int]:
    for j, c in enumerate(channels):
        if col < len(c):
            return j, col
        col -= len(c)
    return len(channels) - 1, 0
