"""Pose sets: the compact arrays that training data, benchmarks and baselines read.

A pose set ``.npz`` (what :func:`save_pose_set` writes):

==============  ============  ==========================================================
key             shape         meaning
==============  ============  ==========================================================
``quat``        (N, 21, 4)    body-joint quaternions (w, x, y, z), w >= 0; float16/32
``clip_id``     (N,)          int32 index into ``clip_names``
``clip_names``  (C,)          source clip of each pose (str)
``source``      ()            provenance and licence note (str)
==============  ============  ==========================================================

:func:`load_pose_set` also accepts files with ``pose_body`` (N, 63), ``poses`` (N, 156 / 72 /
165), or the original Pose-NDF ``body_pose`` ((N, 21, 4) quaternions or flat axis-angle), and
a folder of such files (concatenated, one clip per file).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..io import NpzData, load_npz, read_array, save_npz
from ..rotations import quat_canonical
from ..skeleton import NUM_BODY_JOINTS, pose_units_problem, to_body_quat

__all__ = ["PoseSet", "load_pose_set", "save_pose_set", "is_shape_file"]

_POSE_KEYS = ("quat", "pose_body", "poses", "body_pose")
#: AMASS's per-subject body-shape files, which hold no poses (SMPL+H ``shape.npz``, SMPL-X
#: ``*_stagei.npz``); a folder of motions skips them
_SHAPE_FILE_NAMES = ("shape.npz",)
_SHAPE_FILE_SUFFIXES = ("_stagei.npz",)


def is_shape_file(path: Union[str, Path]) -> bool:
    """Whether ``path`` is one of AMASS's per-subject body-shape files (no poses)."""
    name = Path(path).name
    return name in _SHAPE_FILE_NAMES or name.endswith(_SHAPE_FILE_SUFFIXES)


@dataclass
class PoseSet:
    """Poses with their source clips.

    Attributes:
        quat: ``(N, 21, 4)`` float32 tensor, ``(w, x, y, z)``, ``w >= 0``.
        clip_id: ``(N,)`` int64 tensor indexing ``clip_names``.
        clip_names: source clip names.
        source: provenance / licence note.
    """

    quat: torch.Tensor
    clip_id: torch.Tensor
    clip_names: Sequence[str]
    source: str = ""

    def __len__(self) -> int:
        return int(self.quat.shape[0])


def save_pose_set(
    path: Union[str, Path],
    quat: Union[torch.Tensor, np.ndarray],
    clip_id: Optional[Union[torch.Tensor, np.ndarray]] = None,
    clip_names: Sequence[str] = ("unknown",),
    source: str = "",
    dtype=np.float32,
) -> Path:
    """Atomically write a pose set (see the module docstring). ``dtype=np.float16`` halves the
    size for shipped arrays (max quaternion error ~5e-4)."""
    q = to_body_quat(quat, "quat").detach().cpu().numpy()
    cid = np.zeros(len(q), np.int32) if clip_id is None else np.asarray(clip_id, np.int32)
    if cid.shape != (len(q),):
        raise ValueError(f"clip_id must have shape ({len(q)},), got {cid.shape}")
    return save_npz(
        path, quat=q.astype(dtype), clip_id=cid, clip_names=np.asarray(list(clip_names)), source=np.asarray(source)
    )


def _from_arrays(data: dict, path: Path) -> PoseSet:
    key = next((k for k in _POSE_KEYS if k in data), None)
    if key is None:
        found = data.describe() if isinstance(data, NpzData) else f"found keys {sorted(data)}"
        raise KeyError(f"{path}: no poses found; expected one of {list(_POSE_KEYS)}, {found}")
    arr = read_array(data, key, path, ndim=(2, 3, 4))
    why = pose_units_problem(arr)  # first: values in no unit would read as an unknown layout
    if why:
        raise ValueError(f"{path}: '{key}': {why}")
    try:
        q = to_body_quat(arr, f"{path}[{key}]")
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: '{key}' has an unknown pose layout ({e})") from e
    q = quat_canonical(q.reshape(-1, NUM_BODY_JOINTS, 4))
    n = q.shape[0]
    if "clip_id" in data:
        cid_np = read_array(data, "clip_id", path, ndim=(1,), dtype=np.int64, nonempty=False)
        if cid_np.shape != (n,):
            raise ValueError(f"{path}: 'clip_id' must have shape ({n},), got {cid_np.shape}")
    else:
        cid_np = np.zeros(n, np.int64)
    cid = torch.from_numpy(np.ascontiguousarray(cid_np))
    names = [str(s) for s in np.asarray(data.get("clip_names", [path.stem])).reshape(-1)]
    return PoseSet(q, cid, names, str(data.get("source", "")))


def load_pose_set(path: Union[str, Path]) -> PoseSet:
    """Load a pose set file, any supported motion/pose file, or a folder of them (AMASS's
    body-shape files in it, :func:`is_shape_file`, are skipped).

    Raises:
        FileNotFoundError: the path does not exist, or a folder holds no ``.npz`` files.
        KeyError: a file has none of the pose keys.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(f for f in path.rglob("*.npz") if not is_shape_file(f))
        if not files:
            from .mocap_batch import MOCAP_SUFFIXES  # only for the hint: the reader stays light

            mocap = [f for f in path.rglob("*") if f.name.lower().endswith(MOCAP_SUFFIXES)]
            hint = (f" (it holds {len(mocap)} mocap file(s): convert them first with 'posendf data mocap {path} --out DIR')"
                    if mocap else "")
            raise FileNotFoundError(f"{path}: folder contains no .npz motion or pose files{hint}")
        parts = [_from_arrays(load_npz(f), f) for f in files]
        quat = torch.cat([p.quat for p in parts])
        names, ids = [], []
        for f, p in zip(files, parts):
            offset = len(names)
            names.extend(p.clip_names if len(p.clip_names) > 1 else [str(f.relative_to(path))])
            ids.append(p.clip_id + offset)
        return PoseSet(quat, torch.cat(ids), names, parts[0].source)
    return _from_arrays(load_npz(path), path)
