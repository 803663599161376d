"""Reading 2D keypoint files for image fitting: OpenPose JSON (BODY_25, or 17 x 3 values read as
COCO-17), per-image COCO keypoint lists, and COCO annotation files (``images`` +
``annotations``, visibility ``v > 0`` counts as confidence 1).

Everything here returns :class:`PersonKeypoints`, the input of
:func:`posendf_plugin.fitting.image_fit.fit_people`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..io import load_json

__all__ = ["PersonKeypoints", "NoPeopleError", "read_keypoint_json", "read_coco_annotations", "keypoint_file_for",
           "keypoint_folders", "keypoint_candidates", "KEYPOINT_FILE_PATTERNS"]

#: the keypoint file names looked for for an image ``<stem>.<ext>``: ``<stem>.json``, then
#: OpenPose's ``--write_json`` name ``<stem>_keypoints.json`` (what SMPLify-X reads)
KEYPOINT_FILE_PATTERNS = ("{stem}.json", "{stem}_keypoints.json")


class NoPeopleError(ValueError):
    """A readable keypoint file in which nobody was detected (a batch skips such an image)."""


def keypoint_folders(image_dir: Union[str, Path], keypoint_dir: Optional[Union[str, Path]] = None) -> List[Path]:
    """Where the keypoint files of the images in ``image_dir`` are looked for: ``keypoint_dir``
    when given; else the image folder itself, then — SMPLify-X's data layout, ``DATA/images`` with
    ``DATA/keypoints`` — a ``keypoints`` folder beside it."""
    if keypoint_dir is not None:
        return [Path(keypoint_dir)]
    image_dir = Path(image_dir)
    beside = image_dir.parent / "keypoints"
    return [image_dir] + ([beside] if beside.is_dir() and beside.resolve() != image_dir.resolve() else [])


def keypoint_candidates(image: Union[str, Path], folders: Sequence[Path]) -> List[Path]:
    """Every path :func:`keypoint_file_for` tries for ``image``, in order."""
    stem = Path(image).stem
    return [Path(d) / pat.format(stem=stem) for d in folders for pat in KEYPOINT_FILE_PATTERNS]


def keypoint_file_for(image: Union[str, Path], folders: Optional[Sequence[Path]] = None) -> Path:
    """The keypoint file of ``image``: the first of :func:`keypoint_candidates` that exists (in
    ``folders``, default :func:`keypoint_folders` of the image's folder), else the first one
    (which does not exist)."""
    image = Path(image)
    names = keypoint_candidates(image, folders if folders is not None else keypoint_folders(image.parent))
    return next((p for p in names if p.is_file()), names[0])


@dataclass
class PersonKeypoints:
    """2D keypoints of the people in one image.

    Attributes:
        keypoints: ``(P, K, 3)`` float32 ``(x, y, confidence)``; confidence 0 = missing.
        fmt: ``"openpose25"`` or ``"coco17"``.
        ids: a label per person (OpenPose index or COCO annotation id).
    """

    keypoints: np.ndarray
    fmt: str
    ids: List[str]


def _people_array(rows: Sequence[Sequence[float]], where: str) -> Tuple[np.ndarray, str]:
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise ValueError(f"{where}: people have keypoint lists of different lengths {sorted(lengths)}")
    n = lengths.pop()
    fmt = {75: "openpose25", 51: "coco17"}.get(n)
    if fmt is None:
        raise ValueError(
            f"{where}: a keypoint list has {n} values; expected 75 (OpenPose BODY_25: 25 x (x, y, c)) "
            "or 51 (COCO-17: 17 x (x, y, v))"
        )
    try:
        arr = np.asarray(rows, np.float64).reshape(len(rows), n // 3, 3)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: keypoint values must be numbers ({e})") from e
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: keypoints contain NaN or Inf")
    if fmt == "coco17":  # COCO visibility flag: 0 = not labelled, 1/2 = labelled
        if np.all(np.isin(arr[..., 2], (0, 1, 2))):
            arr[..., 2] = (arr[..., 2] > 0).astype(np.float64)
    arr[..., 2] = np.clip(arr[..., 2], 0.0, 1.0)
    return arr.astype(np.float32), fmt


def _openpose_person_id(pid, index: int) -> str:
    """OpenPose's ``person_id`` (``[-1]`` without tracking, ``[n]`` with it; older files a bare
    number) as the person's label; the person's position in the file when there is none."""
    if isinstance(pid, list) and len(pid) == 1:
        pid = pid[0]
    if isinstance(pid, bool) or pid is None or isinstance(pid, list):
        return str(index)
    if isinstance(pid, (int, float)) and pid < 0:
        return str(index)
    return str(pid)


def read_keypoint_json(path: Union[str, Path], image_name: Optional[str] = None) -> PersonKeypoints:
    """Read one keypoint file.

    Accepted layouts:

    * OpenPose: ``{"people": [{"pose_keypoints_2d": [x, y, c, ...]}, ...]}`` (75 values =
      BODY_25; 51 values = COCO-17 order). A person may also carry ``"keypoints"`` instead.
    * COCO results / annotations: a list ``[{"keypoints": [51 values], ...}, ...]``, or a
      COCO file ``{"images": [...], "annotations": [...]}`` (people of ``image_name`` only).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, an unknown layout, or no people in it.
    """
    path = Path(path)
    data = load_json(path, "keypoint file")
    if isinstance(data, dict) and "annotations" in data and "images" in data:
        per_image = read_coco_annotations(path)
        name = image_name or path.with_suffix(".jpg").name
        if name not in per_image:
            raise NoPeopleError(f"{path}: no annotated people for image {name!r} in this COCO file")
        return per_image[name]
    if isinstance(data, dict) and "people" in data:
        people = data["people"]
        if not isinstance(people, list):
            raise ValueError(f"{path}: 'people' must be a list, got {type(people).__name__}")
        rows, ids = [], []
        for i, p in enumerate(people):
            if not isinstance(p, dict):
                raise ValueError(f"{path}: people[{i}] must be an object, got {type(p).__name__}")
            kp = p.get("pose_keypoints_2d", p.get("keypoints"))
            if kp is None:
                raise ValueError(f"{path}: people[{i}] has no 'pose_keypoints_2d'; found keys {sorted(p)}")
            rows.append(kp)
            ids.append(_openpose_person_id(p.get("person_id"), i))
    elif isinstance(data, list) and all(isinstance(p, dict) for p in data):
        rows = [p.get("keypoints") for p in data]
        if any(r is None for r in rows):
            raise ValueError(f"{path}: every entry of a COCO keypoint list needs 'keypoints' (17 x (x, y, v))")
        ids = [str(p.get("id", i)) for i, p in enumerate(data)]
    else:
        raise ValueError(
            f"{path}: unknown keypoint layout; expected OpenPose JSON ({{'people': [{{'pose_keypoints_2d': "
            "[...]}}]}}), a COCO keypoint list or a COCO annotation file"
        )
    if not rows:
        raise NoPeopleError(f"{path}: no people detected (empty list)")
    arr, fmt = _people_array(rows, str(path))
    return PersonKeypoints(arr, fmt, ids)


def read_coco_annotations(path: Union[str, Path]) -> Dict[str, PersonKeypoints]:
    """People of every image of a COCO keypoint annotation file, by image file name (the base name:
    a ``file_name`` with a folder, e.g. ``val2017/x.jpg``, is found as ``x.jpg``).

    Crowd annotations are skipped; annotations without any labelled keypoint are kept (with all
    confidences 0) so that the fitting reports them as skipped people.

    Raises:
        FileNotFoundError / ValueError: missing, not JSON, or not a COCO keypoint file.
    """
    path = Path(path)
    data = load_json(path, "COCO annotation file")
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise ValueError(f"{path}: not a COCO annotation file (needs 'images' and 'annotations')")
    for key in ("images", "annotations"):
        if not isinstance(data[key], list):
            raise ValueError(f"{path}: '{key}' must be a list of objects, got {type(data[key]).__name__}")
        for i, x in enumerate(data[key]):
            if not isinstance(x, dict):
                raise ValueError(f"{path}: {key}[{i}] must be an object, got {type(x).__name__}")
    names, full = {}, {}
    for im in data["images"]:
        if "id" not in im or "file_name" not in im:
            raise ValueError(f"{path}: every image needs 'id' and 'file_name'")
        # by base name: COCO files often say 'val2017/000000000785.jpg' for an image in any folder
        base = PurePosixPath(str(im["file_name"]).replace("\\", "/")).name
        if full.setdefault(base, im["file_name"]) != im["file_name"]:
            raise ValueError(f"{path}: images {full[base]!r} and {im['file_name']!r} share the file name {base!r}; "
                             "split the annotation file by folder")
        names[im["id"]] = base
    rows: Dict[str, list] = {}
    for a in data["annotations"]:
        if a.get("iscrowd", 0) or "keypoints" not in a:
            continue
        if a.get("image_id") not in names:
            raise ValueError(f"{path}: annotation {a.get('id')} refers to unknown image_id {a.get('image_id')}")
        rows.setdefault(names[a["image_id"]], []).append(a)
    out = {}
    for name, anns in rows.items():
        arr, fmt = _people_array([a["keypoints"] for a in anns], f"{path} ({name})")
        if fmt != "coco17":
            raise ValueError(f"{path}: COCO keypoints must have 51 values, got {arr.shape[1] * 3}")
        out[name] = PersonKeypoints(arr, fmt, [str(a.get("id", i)) for i, a in enumerate(anns)])
    return out

