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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..io import load_npz, save_npz
from ..skeleton import pose_to_quat, quat_to_pose

__all__ = ["Motion", "load_motion", "save_motion", "NUM_BETAS"]

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
        if self.fps <= 0:
            raise ValueError(f"Motion.fps must be positive, got {self.fps}")

    def __len__(self) -> int:
        return len(self.pose_body)

    @property
    def poses(self) -> np.ndarray:
        """``(N, 156)`` SMPL+H full pose (root | body | hands), as in AMASS."""
        return np.concatenate([self.root_orient, self.pose_body, self.pose_hand], axis=1)


def save_motion(path: Union[str, Path], motion: Motion) -> Path:
    """Atomically write ``motion`` in the AMASS layout (see the module docstring)."""
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
    )


def load_motion(path: Union[str, Path]) -> Motion:
    """Read an AMASS / HuMoR / original-Pose-NDF motion ``.npz``.

    Raises:
        FileNotFoundError: no such file.
        KeyError: the body pose keys are missing (message lists the accepted key sets).
        ValueError: inconsistent lengths, NaN, or an unknown body-pose width.
    """
    data = load_npz(path)
    if "pose_body" in data:
        body = np.asarray(data["pose_body"], np.float32).reshape(len(data["pose_body"]), -1)
        root = data.get("root_orient")
        if root is None and "poses" in data:
            root = data["poses"][:, :3]
    elif "poses" in data:
        poses = np.asarray(data["poses"], np.float32)
        body = _body63(poses)
        root = poses[:, :3] if poses.shape[1] in (72, 156, 165) else None
    elif "body_pose" in data:
        bp = np.asarray(data["body_pose"], np.float32)
        if bp.ndim == 3 and bp.shape[1:] == (21, 4):
            body = quat_to_pose(torch.from_numpy(bp), 63).numpy()
        else:
            body = _body63(bp.reshape(len(bp), -1))
        root = data.get("root_orient")
    else:
        raise KeyError(
            f"{path}: no body pose found; expected 'pose_body' (AMASS/HuMoR), 'poses' (AMASS SMPL+H) "
            f"or 'body_pose' (original Pose-NDF); found keys {sorted(data)}"
        )
    n = len(body)
    if body.shape[1] != 63:
        raise ValueError(f"{path}: pose_body must be (N, 63), got {body.shape}")
    root = np.zeros((n, 3), np.float32) if root is None else np.asarray(root, np.float32).reshape(n, 3)
    trans = np.asarray(data.get("trans", np.zeros((n, 3))), np.float32)
    if len(trans) != n or len(root) != n:
        raise ValueError(f"{path}: frame counts differ: pose {n}, root_orient {len(root)}, trans {len(trans)}")
    betas = np.asarray(data.get("betas", np.zeros(NUM_BETAS)), np.float32)
    if betas.ndim == 2:  # per-frame betas (HuMoR): take the first frame
        betas = betas[0]
    # AMASS SMPL+H spells it mocap_framerate, the AMASS SMPL-X release mocap_frame_rate
    fps = float(data.get("mocap_framerate", data.get("mocap_frame_rate", data.get("fps", 30.0))))
    gender = str(data.get("gender", "neutral"))
    hand = data.get("pose_hand")
    if hand is None and "poses" in data and data["poses"].shape[1] == 156:
        hand = data["poses"][:, 66:156]
    return Motion(
        pose_body=body, root_orient=root, trans=trans, betas=betas, fps=fps, gender=gender,
        pose_hand=None if hand is None else np.asarray(hand, np.float32),
    )


def _body63(pose: np.ndarray) -> np.ndarray:
    """Any flat layout (63/69/72/156/165) -> ``(N, 63)`` body axis-angle (numpy)."""
    return quat_to_pose(pose_to_quat(torch.from_numpy(np.ascontiguousarray(pose))), 63).numpy()
