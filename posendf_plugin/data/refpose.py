"""Reference frames at the start of mocap clips: detect and drop them.

Many mocap exports put a calibration / bind pose in frame 0 and the motion after it: the CMU
standard BVH files (a T-pose), the CMU "DAZ-friendly" files (a reference pose shared by the
clips of a collection), some iClone conversions. Converting that frame adds a pose nobody
performed. A frame 0 is dropped when it is **not part of the motion** — the step from frame 0
to frame 1 is a jump, much larger than the clip's typical frame-to-frame step — and there is
evidence that it is a reference pose:

* ``"shared"``: the same frame-0 pose (every joint within :attr:`RefPoseConfig.shared_deg`)
  starts at least one other clip of the same rig (same joint names) in the batch;
* ``"rest"``: frame 0 is the rig's rest pose: at least :attr:`RefPoseConfig.rest_fraction` of
  the joints have (almost) zero local rotation, more than in frame 1;
* ``"jump"``: the jump alone is overwhelming (larger than :attr:`RefPoseConfig.strong_jump_deg`
  and :attr:`RefPoseConfig.strong_ratio` times the typical step).

A step is the largest geodesic angle any joint's local rotation turns between two frames; the
typical step is the median over the clip. Nothing depends on folder or file names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Hashable, List, Mapping, Optional, Tuple

import numpy as np

from .bvh import BvhClip

__all__ = [
    "RefPoseConfig",
    "ReferenceFrame",
    "frame_steps",
    "shared_first_frames",
    "detect_reference_frame",
    "drop_frames",
]


@dataclass(frozen=True)
class RefPoseConfig:
    """Thresholds of :func:`detect_reference_frame` (degrees unless noted).

    Attributes:
        jump_deg / jump_ratio: a frame-0 step counts as a jump when larger than both
            ``jump_deg`` and ``jump_ratio`` x the clip's median step.
        strong_jump_deg / strong_ratio: a jump large enough to drop frame 0 on its own.
        shared_deg: two frame-0 poses are the same when no joint differs by more.
        rest_deg / rest_fraction: frame 0 is a rest pose when at least ``rest_fraction`` of
            the joints have a local rotation below ``rest_deg``.
    """

    jump_deg: float = 15.0
    jump_ratio: float = 5.0
    strong_jump_deg: float = 30.0
    strong_ratio: float = 8.0
    shared_deg: float = 0.5
    rest_deg: float = 1.0
    rest_fraction: float = 0.6

    def __post_init__(self) -> None:
        for k, v in self.__dict__.items():
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"RefPoseConfig.{k} must be a positive number, got {v!r}")


@dataclass(frozen=True)
class ReferenceFrame:
    """A detected reference frame: its index (always 0), why, and the jump it makes."""

    frame: int
    reason: str
    jump_deg: float
    median_step_deg: float


def _joints(clip: BvhClip) -> List[int]:
    return [j for j in range(len(clip.names)) if not (clip.is_end and clip.is_end[j])]


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angle in degrees between rotation matrices ``(..., 3, 3)``."""
    tr = np.einsum("...ij,...ij->...", a, b)  # trace(a^T b)
    return np.degrees(np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0)))


def frame_steps(clip: BvhClip) -> np.ndarray:
    """``(F-1,)`` degrees: the largest turn of any joint's local rotation between frames."""
    L = clip.local_rot[:, _joints(clip)]
    if L.shape[0] < 2:
        return np.zeros(0)
    return _angle(L[:-1], L[1:]).max(axis=1)


def shared_first_frames(first: Mapping[Hashable, BvhClip], config: RefPoseConfig = RefPoseConfig()) -> Dict[Hashable, int]:
    """Which clips start with a frame-0 pose that another clip of the same rig also starts with.

    Args:
        first: key -> a clip (only its frame 0 is used; e.g. read with ``max_frames=1``).
    Returns:
        key -> number of clips sharing that frame 0 (>= 2), for the keys that share one.
    """
    groups: Dict[Tuple[str, ...], List[Hashable]] = {}
    for key, clip in first.items():
        groups.setdefault(tuple(n.lower() for n in clip.names), []).append(key)
    out: Dict[Hashable, int] = {}
    for keys in groups.values():
        if len(keys) < 2:
            continue
        f0 = {k: first[k].local_rot[0, [j for j in _joints(first[k]) if first[k].parents[j] >= 0]] for k in keys}
        for k in keys:
            same = sum(1 for o in keys if o != k and _angle(f0[k], f0[o]).max() <= config.shared_deg)
            if same:
                out[k] = same + 1
    return out


def detect_reference_frame(clip: BvhClip, shared: bool = False,
                           config: RefPoseConfig = RefPoseConfig()) -> Optional[ReferenceFrame]:
    """Whether frame 0 of ``clip`` is a reference pose (see the module docstring).

    Args:
        shared: frame 0 is shared with another clip of the rig (:func:`shared_first_frames`).
    Returns:
        the detection, or ``None`` (also for clips of fewer than 3 frames).
    """
    steps = frame_steps(clip)
    if steps.size < 2:
        return None
    jump = float(steps[0])
    med = float(np.median(steps[1:]))
    if not (jump > config.jump_deg and jump > config.jump_ratio * med):
        return None
    if shared:
        return ReferenceFrame(0, "shared", jump, med)
    inner = [j for j in _joints(clip) if clip.parents[j] >= 0]
    if inner:
        eye = np.eye(3)
        a0 = _angle(clip.local_rot[0, inner], eye) < config.rest_deg
        a1 = _angle(clip.local_rot[1, inner], eye) < config.rest_deg
        if a0.mean() >= config.rest_fraction and a0.sum() > a1.sum():
            return ReferenceFrame(0, "rest", jump, med)
    if jump > config.strong_jump_deg and jump > config.strong_ratio * med:
        return ReferenceFrame(0, "jump", jump, med)
    return None


def drop_frames(clip: BvhClip, n: int) -> BvhClip:
    """``clip`` without its first ``n`` frames."""
    from dataclasses import replace

    if not 0 <= n < clip.num_frames:
        raise ValueError(f"{clip.path}: cannot drop {n} of {clip.num_frames} frames")
    return replace(clip, local_rot=clip.local_rot[n:], local_trans=clip.local_trans[n:])
