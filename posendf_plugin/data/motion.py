"""SMPL motion files in the AMASS layout, and the layouts of HuMoR and the original Pose-NDF.

AMASS layout (what :func:`save_motion` writes, one ``.npz`` per clip):

=================  ==========  ====================================================
key                shape       meaning
=================  ==========  ====================================================
``root_orient``    (N, 3)      root orientation, axis-angle, Z-up world (AMASS)
``pose_body``      (N, 63)     21 body joints, axis-angle
``pose_hand``      (N, 90)     finger joints (zeros when unknown)
``trans``          (N, 3)      root translation in metres, Z-up world
``betas``          (16,)       shape coefficients
``poses``          (N, 156)    SMPL+H full pose = root | body | hands (AMASS tools)
``mocap_framerate`` ()         frames per second
``gender``         ()          "neutral", "male" or "female"
=================  ==========  ====================================================

:func:`load_motion` also reads HuMoR's processed files (same ``root_orient``/``pose_body``/
``trans``/``betas`` keys) and the original Pose-NDF denoising input (``body_pose`` (N, 63/69)
or (N, 21, 4) quaternions, ``betas``, ``root_orient``).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np
import torch

from ..io import load_npz, read_array, save_npz
from ..rotations import axis_angle_to_quat, quat_slerp, quat_to_axis_angle
from ..skeleton import pose_to_quat, pose_units_problem, quat_to_pose

__all__ = ["Motion", "load_motion", "save_motion", "NUM_BETAS", "MOTION_KEYS"]

NUM_BETAS = 16


@dataclass
class Motion:
    """One SMPL motion clip (numpy arrays, float32).

    Attributes:
        pose_body: ``(N, 63)`` body-joint axis-angle.
        root_orient: ``(N, 3)`` root axis-angle (Z-up world).
        trans: ``(N, 3)`` root translation, metres.
        betas: ``(NUM_BETAS,)`` shape.
        fps: frames per second.
        gender: ``"neutral" | "male" | "female"``.
        pose_hand: ``(N, 90)`` finger pose (zeros when unknown).
    """

    pose_body: np.ndarray
    root_orient: np.ndarray
    trans: np.ndarray
    betas: np.ndarray = field(default_factory=lambda: np.zeros(NUM_BETAS, np.float32))
    fps: float = 30.0
    gender: str = "neutral"
    pose_hand: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        n = len(self.pose_body)
        for name, arr, width in (("pose_body", self.pose_body, 63), ("root_orient", self.root_orient, 3), ("trans", self.trans, 3)):
            if arr.ndim != 2 or arr.shape != (n, width):
                raise ValueError(f"Motion.{name} must have shape ({n}, {width}), got {arr.shape}")
            if not np.isfinite(arr).all():
                rows = np.nonzero(~np.isfinite(arr).all(1))[0]
                raise ValueError(f"Motion.{name} has NaN/Inf in frame(s) {rows[:10].tolist()}")
        if self.pose_hand is None:
            self.pose_hand = np.zeros((n, 90), np.float32)
        if not np.isfinite(np.asarray(self.betas, np.float64)).all():
            raise ValueError(f"Motion.betas has NaN/Inf: {np.asarray(self.betas).reshape(-1)[:NUM_BETAS].tolist()}")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"Motion.fps must be a positive finite number, got {self.fps}")

    def __len__(self) -> int:
        return len(self.pose_body)

    def resampled(self, fps: float) -> "Motion":
        """The motion at ``fps`` frames per second over the same time span: every joint rotation
        (root, body, hands) slerped, the translation linear; the motion itself when ``fps`` is its own."""
        if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive finite number (frames per second), got {fps!r}")
        fps = float(fps)
        n = len(self)
        if n < 2 or abs(fps - self.fps) < 1e-6:
            return self
        t = np.arange(int(np.floor((n - 1) / self.fps * fps + 1e-6)) + 1) * (self.fps / fps)  # in source frames
        i0 = np.clip(np.floor(t).astype(int), 0, n - 2)
        w = (t - i0)[:, None]

        def slerped(aa: np.ndarray) -> np.ndarray:
            q = axis_angle_to_quat(torch.from_numpy(aa.reshape(n, -1, 3).astype(np.float64)))
            tw = torch.from_numpy(np.broadcast_to(w, (len(t), q.shape[1])).copy())
            return quat_to_axis_angle(quat_slerp(q[i0], q[i0 + 1], tw)).reshape(len(t), -1).numpy().astype(np.float32)

        return Motion(
            pose_body=slerped(self.pose_body), root_orient=slerped(self.root_orient),
            trans=(self.trans[i0] * (1 - w) + self.trans[i0 + 1] * w).astype(np.float32), betas=self.betas,
            fps=fps, gender=self.gender, pose_hand=slerped(self.pose_hand),
        )

    @property
    def poses(self) -> np.ndarray:
        """``(N, 156)`` SMPL+H full pose (root | body | hands), as in AMASS."""
        return np.concatenate([self.root_orient, self.pose_body, self.pose_hand], axis=1)


#: the arrays :func:`save_motion` writes (AMASS layout)
MOTION_KEYS = ("root_orient", "pose_body", "pose_hand", "trans", "betas", "poses", "mocap_framerate", "gender")


def save_motion(path: Union[str, Path], motion: Motion, extra: Optional[Mapping[str, np.ndarray]] = None) -> Path:
    """Atomically write ``motion`` in the AMASS layout (see the module docstring).

    ``extra``: further arrays stored beside the AMASS keys (e.g. the denoiser's ``start_frame``);
    readers of the AMASS layout, :func:`load_motion` included, ignore them. A name that is one of
    the layout's keys is refused (ValueError).
    """
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(MOTION_KEYS))
    if clash:
        raise ValueError(f"save_motion: extra arrays may not replace the AMASS keys {clash}")
    betas = np.zeros(NUM_BETAS, np.float32)
    b = np.asarray(motion.betas, np.float32).reshape(-1)[:NUM_BETAS]
    betas[: len(b)] = b
    return save_npz(
        path,
        root_orient=motion.root_orient.astype(np.float32),
        pose_body=motion.pose_body.astype(np.float32),
        pose_hand=motion.pose_hand.astype(np.float32),
        trans=motion.trans.astype(np.float32),
        betas=betas,
        poses=motion.poses.astype(np.float32),
        mocap_framerate=np.array(motion.fps, np.float64),
        gender=np.array(motion.gender),
        **{k: np.asarray(v) for k, v in extra.items()},
    )


def load_motion(path: Union[str, Path]) -> Motion:
    """Read an AMASS / HuMoR / original-Pose-NDF motion ``.npz``.

    Every array read is checked (numeric, shape, non-empty, finite), so a bad file gives one
    message naming the file and the key.

    Raises:
        FileNotFoundError: no such file.
        KeyError: the body pose keys are missing (message lists the accepted key sets).
        ValueError: inconsistent lengths, NaN, non-numeric or empty arrays, a bad frame rate, or
            an unknown body-pose width.
    """
    data = load_npz(path)
    if "pose_body" in data:
        body = _checked_units(read_array(data, "pose_body", path, ndim=(2, 3)), path, "pose_body")
        body = body.reshape(len(body), -1)
        root = read_array(data, "root_orient", path, ndim=(2,), width=3) if "root_orient" in data else None
        if root is None and "poses" in data:
            root = read_array(data, "poses", path, ndim=(2,))[:, :3]
    elif "poses" in data:
        poses = _checked_units(read_array(data, "poses", path, ndim=(2,)), path, "poses")
        body = _body63(poses, path, "poses")
        root = poses[:, :3] if poses.shape[1] in (72, 156, 165) else None
    elif "body_pose" in data:
        bp = _checked_units(read_array(data, "body_pose", path, ndim=(2, 3)), path, "body_pose")
        if bp.ndim == 3 and bp.shape[1:] == (21, 4):
            body = quat_to_pose(torch.from_numpy(bp), 63).numpy()
        else:
            body = _body63(bp.reshape(len(bp), -1), path, "body_pose")
        root = read_array(data, "root_orient", path, ndim=(2,), width=3) if "root_orient" in data else None
    else:
        raise KeyError(
            f"{path}: no body pose found; expected 'pose_body' (AMASS/HuMoR), 'poses' (AMASS SMPL+H) "
            f"or 'body_pose' (original Pose-NDF); {data.describe()}"
        )
    n = len(body)
    if body.shape[1] != 63:
        raise ValueError(f"{path}: pose_body must be (N, 63), got {body.shape}")
    root = np.zeros((n, 3), np.float32) if root is None else root
    trans = read_array(data, "trans", path, ndim=(2,), width=3) if "trans" in data else np.zeros((n, 3), np.float32)
    if len(trans) != n or len(root) != n:
        raise ValueError(f"{path}: frame counts differ: pose {n}, root_orient {len(root)}, trans {len(trans)}")
    betas = read_array(data, "betas", path, ndim=(1, 2)) if "betas" in data else np.zeros(NUM_BETAS, np.float32)
    if betas.ndim == 2:  # per-frame betas (HuMoR): take the first frame
        betas = betas[0]
    # AMASS SMPL+H spells it mocap_framerate, the AMASS SMPL-X release mocap_frame_rate
    fps_key = next((k for k in ("mocap_framerate", "mocap_frame_rate", "fps") if k in data), None)
    fps = 30.0
    if fps_key is not None:
        f = read_array(data, fps_key, path, dtype=np.float64, finite=False)
        if f.size != 1 or not np.isfinite(f).all() or float(f.reshape(-1)[0]) <= 0:
            raise ValueError(f"{path}: '{fps_key}' must be one positive number (frames per second), got "
                             f"{f.reshape(-1)[:3].tolist()}")
        fps = float(f.reshape(-1)[0])
    gender = _gender(data["gender"], path) if "gender" in data else "neutral"
    hand = None
    if "pose_hand" in data:
        hand = read_array(data, "pose_hand", path, ndim=(2,), width=90)
    elif "poses" in data and data["poses"].shape[1] == 156:
        hand = data["poses"][:, 66:156]
    if hand is not None and len(hand) != n:
        raise ValueError(f"{path}: 'pose_hand' has {len(hand)} frames, the pose {n}")
    return Motion(
        pose_body=body, root_orient=root, trans=trans, betas=betas, fps=fps, gender=gender,
        pose_hand=None if hand is None else np.asarray(hand, np.float32),
    )


_GENDERS = ("neutral", "male", "female")


def _gender(value, path) -> str:
    """AMASS / HuMoR ``gender`` (a str or bytes scalar, or a one-element array of them) as
    ``"neutral" | "male" | "female"``; ValueError naming the file otherwise."""
    a = np.asarray(value)
    v = a.reshape(-1)[0] if a.size == 1 and a.dtype.kind in "SUO" else None
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    g = v.strip().lower() if isinstance(v, str) else None
    if g not in _GENDERS:
        shown = a.reshape(-1)[:3].tolist() if a.dtype.kind in "SUO" else f"a {a.dtype} array of shape {a.shape}"
        raise ValueError(f"{path}: 'gender' must be one of {', '.join(_GENDERS)}, got {shown}; fix or drop the key")
    return g


def _checked_units(pose: np.ndarray, path, key: str) -> np.ndarray:
    """``pose`` unchanged, or ValueError when it looks like degrees / (x, y, z, w) quaternions
    (:func:`posendf_plugin.skeleton.pose_units_problem`)."""
    why = pose_units_problem(pose)
    if why:
        raise ValueError(f"{path}: '{key}': {why}")
    return pose


def _body63(pose: np.ndarray, path=None, key: str = "poses") -> np.ndarray:
    """Any flat layout (63/69/72/156/165) -> ``(N, 63)`` body axis-angle (numpy)."""
    try:
        q = pose_to_quat(torch.from_numpy(np.ascontiguousarray(pose)))
    except ValueError as e:
        raise ValueError(f"{path}: '{key}' has an unknown layout ({e})") from e
    return quat_to_pose(q, 63).numpy()
