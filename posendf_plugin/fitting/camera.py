"""Pinhole camera intrinsics for image fitting, when the user knows them (calibrated datasets such
as Human3.6M, 3DPW or EasyMocap captures ship them).

Convention: pixel coordinates ``u = fx * X / Z + cx``, ``v = fy * Y / Z + cy`` with the camera
frame's x right, y down, z forward (OpenCV); no skew, no lens distortion. Without a
:class:`Camera`, :func:`~posendf_plugin.fitting.image_fit.fit_people` uses
``ImageFitConfig.focal_length`` (5000 px as SMPLify) and the image centre.

A camera file is JSON, either::

    {"focal_length": [fx, fy], "principal_point": [cx, cy]}   # or "focal_length": f

(``principal_point`` optional: the image centre) or a 3 x 3 intrinsic matrix::

    {"K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]}

``posendf fit-image`` reads ``<image stem>.camera.json`` next to each image, else ``--camera
FILE``, else ``--focal-length F``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

from ..io import load_json

__all__ = ["Camera", "CAMERA_SUFFIX", "read_camera_json", "camera_file_for"]

#: per-image camera file: ``<image stem>.camera.json``
CAMERA_SUFFIX = ".camera.json"


def _pair(value: Any, what: str) -> Tuple[float, float]:
    """A finite number (used twice) or a pair of finite numbers, as ``(a, b)`` floats."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number or a pair of numbers, got {value!r}")
    if isinstance(value, (int, float)):
        vals = (float(value), float(value))
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2 \
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        vals = (float(value[0]), float(value[1]))
    else:
        raise TypeError(f"{what} must be a number or a pair of numbers, got {value!r}")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return vals


@dataclass(frozen=True)
class Camera:
    """Known pinhole intrinsics (pixels).

    Attributes:
        focal_length: ``(fx, fy)``; a single number means ``fx = fy``.
        principal_point: ``(cx, cy)``; ``None`` = the image centre.
    """

    focal_length: Union[float, Tuple[float, float]]
    principal_point: Optional[Tuple[float, float]] = None

    def __post_init__(self) -> None:
        f = _pair(self.focal_length, "focal_length")
        if not (f[0] > 0 and f[1] > 0):
            raise ValueError(f"focal_length must be positive, got {self.focal_length!r}")
        object.__setattr__(self, "focal_length", f)
        if self.principal_point is not None:
            object.__setattr__(self, "principal_point", _pair(self.principal_point, "principal_point"))

    @classmethod
    def from_matrix(cls, K: Any) -> "Camera":
        """From a 3 x 3 intrinsic matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (nested lists or
        an array). Skew is not supported."""
        try:
            rows = [[float(v) for v in r] for r in K]
        except (TypeError, ValueError) as e:
            raise ValueError(f"K must be a 3 x 3 matrix of numbers, got {K!r}") from e
        if len(rows) != 3 or any(len(r) != 3 for r in rows):
            raise ValueError(f"K must be a 3 x 3 matrix, got {len(rows)} rows of lengths {[len(r) for r in rows]}")
        if not all(math.isfinite(v) for r in rows for v in r):
            raise ValueError("K must be finite")
        if rows[2] != [0.0, 0.0, 1.0] or rows[1][0] != 0.0:
            raise ValueError(f"K must have the form [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], got {rows}")
        if rows[0][1] != 0.0:
            raise ValueError(f"K has skew {rows[0][1]:g}; only cameras without skew (K[0][1] = 0) are supported")
        return cls((rows[0][0], rows[1][1]), (rows[0][2], rows[1][2]))

    def centre(self, image_size: Tuple[int, int]) -> Tuple[float, float]:
        """``(cx, cy)``: the principal point, or the centre of an image of ``(width, height)``."""
        if self.principal_point is not None:
            return self.principal_point  # type: ignore[return-value]
        return image_size[0] / 2.0, image_size[1] / 2.0

    def to_dict(self) -> dict:
        return {"focal_length": list(self.focal_length), "principal_point":
                None if self.principal_point is None else list(self.principal_point)}


def read_camera_json(path: Union[str, Path]) -> Camera:
    """Read a camera file (see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, unknown keys, or bad values; the message names the file.
    """
    path = Path(path)
    data = load_json(path, "camera file")
    fix = ('use {"focal_length": [fx, fy], "principal_point": [cx, cy]} or '
           '{"K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]} (pixels)')
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a camera file must be a JSON object; {fix}")
    unknown = sorted(set(data) - {"focal_length", "principal_point", "K"})
    if unknown:
        raise ValueError(f"{path}: unknown camera key(s) {unknown}; {fix}")
    try:
        if "K" in data:
            if len(data) > 1:
                raise ValueError("give either K or focal_length / principal_point, not both")
            return Camera.from_matrix(data["K"])
        if "focal_length" not in data:
            raise ValueError(f"no focal_length; {fix}")
        return Camera(data["focal_length"], data.get("principal_point"))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e


def camera_file_for(image_path: Union[str, Path]) -> Path:
    """``<image stem>.camera.json`` next to ``image_path``."""
    image_path = Path(image_path)
    return image_path.with_name(image_path.stem + CAMERA_SUFFIX)
