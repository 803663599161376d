"""Data sources of the benchmark runner: the held-out poses and motions each task is measured on.

``python benchmarks/run.py`` reports every task once per source, side by side:

* ``cmu`` — the shipped CMU split (``posendf_plugin/assets/cmu_test.npz``; ``--split val``:
  ``cmu_val.npz``). Its "motions" for denoising are the split's clips as pseudo-motions (the
  kept poses in time order, root and translation zero).
* ``bandai`` — the cross-source test split: Bandai-Namco clips from ``../shared/data/bandai``
  (CC BY-NC-ND 4.0; never used for training or for calibrating weights), converted to SMPL
  with :func:`posendf_plugin.data.convert.convert_bvh` at 30 fps. Poses: each clip's frames
  after dropping near-identical consecutive poses
  (:func:`posendf_plugin.data.default.dedup_consecutive`, 5°), as the default pose sets are
  built; motions: the full 30 fps frame sequences. Quick runs take one clip per content
  (:func:`bandai_subset`), full runs all clips. Conversions are cached (:func:`load_bandai`).
  Skipped, with a note, when the folder is absent (a fresh clone) or with ``--split val``
  (a test-only source).
* ``--data PATH`` — a folder (or file) of AMASS-layout motion ``.npz`` files or a pose set
  (:class:`DataSource`), named after its folder.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = [
    "SOURCE_NAMES",
    "BANDAI_QUICK_CLIPS",
    "BANDAI_TINY_CLIPS",
    "Source",
    "CmuSource",
    "BandaiSource",
    "DataSource",
    "BandaiData",
    "bandai_files",
    "bandai_subset",
    "cache_key",
    "load_bandai",
    "data_source_name",
    "parse_sources",
    "resolve_sources",
]

log = logging.getLogger("benchmarks")

#: built-in sources, in report order
SOURCE_NAMES: Tuple[str, ...] = ("cmu", "bandai")
#: Bandai-Namco clips in tiny (smoke test) runs; quick runs take one per content, full runs all
BANDAI_TINY_CLIPS = 3
#: at most this many Bandai-Namco clips in a quick run (one per dataset x content first)
BANDAI_QUICK_CLIPS = 26
#: resampling rate and near-duplicate threshold, as in posendf_plugin.data.default.DefaultConfig
FPS = 30.0
MIN_ANGLE_DEG = 5.0

_BANDAI_NAME = re.compile(r"^(dataset-\d+)_(.+)_([^_]+)_(\d+)$")


class Source:
    """One data source: held-out poses and clean motions, loaded lazily and kept.

    Attributes:
        name: short name used in results.json keys, file names and titles (``cmu``, ``bandai``,
            or the ``--data`` folder's name).
        kind: ``"cmu"``, ``"bandai"`` or ``"data"``.
        description: one line saying what the data is (shown in the tables).
    """

    name: str
    kind: str
    description: str

    def __init__(self) -> None:
        self._poses: Optional[torch.Tensor] = None
        self._motions: Optional[List[Tuple[str, Any]]] = None

    def poses(self) -> torch.Tensor:
        """Held-out poses ``(N, 21, 4)``, CPU float32, ``(w, x, y, z)``."""
        if self._poses is None:
            q = self._load_poses().float()
            if len(q) == 0:
                raise ValueError(f"{self.description}: no poses")
            self._poses = q
        return self._poses

    def motions(self) -> List[Tuple[str, Any]]:
        """Clean motions ``[(clip name, Motion)]`` for the denoising task."""
        if self._motions is None:
            self._motions = self._load_motions()
        return self._motions

    def summary(self) -> Dict[str, Any]:
        """What the run used (for ``results.json["meta"]["sources"]``)."""
        return {"kind": self.kind, "description": self.description, "poses": int(len(self.poses()))}

    def _load_poses(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load_motions(self) -> List[Tuple[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError


def _pseudo_motions(ps) -> List[Tuple[str, Any]]:
    """Each clip of a pose set as a pseudo-motion: its kept poses in time order, root
    orientation and translation zero, mean shape, 30 fps."""
    from posendf_plugin.data.motion import Motion
    from posendf_plugin.skeleton import quat_to_pose

    out = []
    for c, name in enumerate(ps.clip_names):
        q = ps.quat[ps.clip_id == c].float()
        if len(q) == 0:
            continue
        T = len(q)
        out.append((str(name), Motion(pose_body=quat_to_pose(q, 63).numpy(), root_orient=np.zeros((T, 3), np.float32),
                                      trans=np.zeros((T, 3), np.float32), betas=np.zeros(16, np.float32), fps=FPS)))
    return out


class CmuSource(Source):
    """The shipped CMU split ``split`` (``test`` or ``val``); see the module docstring."""

    kind = "cmu"

    def __init__(self, split: str = "test") -> None:
        super().__init__()
        if split not in ("test", "val"):
            raise ValueError(f"CMU benchmark split must be 'test' or 'val', got {split!r}")
        self.name = "cmu" if split == "test" else f"cmu-{split}"  # val runs do not overwrite the test tables
        self.split = split
        self.description = f"default CMU {split} split (posendf_plugin/assets/cmu_{split}.npz)"

    def _set(self):
        from posendf_plugin.data.default import default_pose_set

        return default_pose_set(self.split)

    def _load_poses(self) -> torch.Tensor:
        return self._set().quat

    def _load_motions(self) -> List[Tuple[str, Any]]:
        return _pseudo_motions(self._set())

    def summary(self) -> Dict[str, Any]:
        ps = self._set()
        return {**super().summary(), "split": self.split, "clips": len(ps.clip_names)}


class DataSource(Source):
    """``--data PATH``: a folder (or one file) of AMASS-layout motion ``.npz`` files or a pose set."""

    kind = "data"

    def __init__(self, path: Path, name: Optional[str] = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = name or data_source_name(self.path)
        self.description = str(self.path)

    def _load_poses(self) -> torch.Tensor:
        from posendf_plugin.data.posesets import load_pose_set

        try:
            return load_pose_set(self.path).quat
        except KeyError as e:  # e.g. AMASS folders also hold shape.npz files without poses
            log.warning("%s; using the frames of the readable motions instead", e)
            from posendf_plugin.skeleton import to_body_quat

            ms = self.motions()
            if not ms:
                raise ValueError(f"{self.path}: no readable poses or motions") from e
            return torch.cat([to_body_quat(torch.as_tensor(m.pose_body, dtype=torch.float32)) for _, m in ms])

    def _load_motions(self) -> List[Tuple[str, Any]]:
        from posendf_plugin.data.motion import load_motion
        from posendf_plugin.data.posesets import is_shape_file

        out = []
        files = sorted(f for f in self.path.rglob("*.npz") if not is_shape_file(f)) if self.path.is_dir() else [self.path]
        for f in files:
            try:
                out.append((f.stem, load_motion(f)))
            except (KeyError, ValueError) as e:
                log.warning("denoise: skipping %s: %s", f, e)
        return out


def data_source_name(path: Path) -> str:
    """The name of a ``--data`` source: its folder's name (a file's name without suffix),
    prefixed with ``data-`` when it would clash with a built-in source."""
    path = Path(path)
    name = (path.name if path.is_dir() else path.stem) or "data"
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "data"
    return f"data-{name}" if name in SOURCE_NAMES else name


# ---------------------------------------------------------------------------------------------
# Bandai-Namco
# ---------------------------------------------------------------------------------------------


def bandai_files(root: Path) -> List[Path]:
    """All Bandai-Namco BVH files under ``root`` (``dataset-*/…bvh.gz``), sorted by path."""
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and p.name.lower().endswith((".bvh", ".bvh.gz")))


def _parts(path: Path) -> Tuple[str, str, str]:
    """``(dataset-content, style, take)`` of a Bandai clip file; unknown names form their own group."""
    from posendf_plugin.data.bvh import bvh_clip_name

    name = bvh_clip_name(path)
    m = _BANDAI_NAME.match(name)
    return (f"{m.group(1)}_{m.group(2)}", m.group(3), m.group(4)) if m else (name, "", "")


def bandai_subset(files: Sequence[Path], n: Optional[int]) -> List[Path]:
    """A deterministic subset of at most ``n`` clips spread over contents and styles
    (``None``: all, in path order).

    Clips are grouped by dataset and content (``dataset-1_walk``, ``dataset-2_run``, …); each
    round takes one clip of every content in turn, and content ``c`` walks through the styles
    starting at its ``c``-th style (lowest take first), so a one-round subset holds every content with
    varied styles. Depends only on the file names.
    """
    files = sorted(files, key=lambda p: p.name)
    if n is None or n >= len(files):
        return sorted(files)
    by_content: Dict[str, List[Path]] = {}
    for f in files:
        by_content.setdefault(_parts(f)[0], []).append(f)
    queues = []
    for c, content in enumerate(sorted(by_content)):
        styles = sorted({_parts(f)[1] for f in by_content[content]})

        def order(f: Path, c: int = c, styles: List[str] = styles) -> Tuple[int, str, str]:
            _, style, take = _parts(f)
            return ((styles.index(style) - c) % len(styles), take, f.name)

        # one take per style first, then the remaining takes
        ranked = sorted(by_content[content], key=order)
        seen, first, rest = set(), [], []
        for f in ranked:
            (rest if _parts(f)[1] in seen else first).append(f)
            seen.add(_parts(f)[1])
        queues.append(first + rest)
    out: List[Path] = []
    r = 0
    while len(out) < n:
        for q in queues:
            if r < len(q) and len(out) < n:
                out.append(q[r])
        r += 1
    return sorted(out, key=lambda p: p.name)


def _code_digest() -> str:
    """Digest of the package version and the converter's source (data/*.py, rotations,
    skeleton), so that a cache written by another converter is rebuilt."""
    import posendf_plugin

    root = Path(posendf_plugin.__file__).resolve().parent
    h = hashlib.sha256(str(getattr(posendf_plugin, "__version__", "")).encode())
    for f in sorted((root / "data").glob("*.py")) + [root / "rotations.py", root / "skeleton.py"]:
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def cache_key(files: Sequence[Path], root: Path) -> str:
    """Key of a Bandai conversion cache: the files (path under ``root``, size, modification
    time), the package version and converter source, and the sampling settings."""
    items = []
    for f in files:
        st = Path(f).stat()
        items.append([Path(f).relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    blob = json.dumps({"files": items, "code": _code_digest(), "fps": FPS, "min_angle_deg": MIN_ANGLE_DEG}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class BandaiData:
    """Converted Bandai-Namco clips.

    Attributes:
        names: clip names (``dataset-1_walk_angry_001``).
        pose_body / root_orient / trans: ``(F, 63)`` / ``(F, 3)`` / ``(F, 3)`` float32, all
            clips' 30 fps frames concatenated.
        offsets: ``(C + 1,)`` int64, clip ``c`` is frames ``offsets[c]:offsets[c + 1]``.
        kept: ``(F,)`` bool, the frames kept after dropping near-identical consecutive poses.
        failed: ``[(file, error)]`` of clips that could not be converted.
        cache: the cache file read or written (None when not cached).
        from_cache: True when read from an existing cache.
    """

    names: List[str]
    pose_body: np.ndarray
    root_orient: np.ndarray
    trans: np.ndarray
    offsets: np.ndarray
    kept: np.ndarray
    failed: List[Tuple[str, str]] = field(default_factory=list)
    cache: Optional[Path] = None
    from_cache: bool = False


def _convert_all(files: Sequence[Path], root: Path, progress: bool) -> BandaiData:
    from tqdm.auto import tqdm

    from posendf_plugin.data.convert import convert_bvh
    from posendf_plugin.data.default import dedup_consecutive
    from posendf_plugin.skeleton import to_body_quat

    names, body, root_o, trans, kept, failed = [], [], [], [], [], []
    for f in tqdm(files, desc="bandai: converting clips", unit="clip", disable=not progress, leave=False):
        try:
            m = convert_bvh(f, fps=FPS).motion
        except (ValueError, KeyError, OSError) as e:
            log.warning("bandai: skipping %s: %s", f, e)
            failed.append((Path(f).relative_to(root).as_posix(), str(e)))
            continue
        keep = np.zeros(len(m), bool)
        keep[dedup_consecutive(to_body_quat(torch.from_numpy(m.pose_body)), MIN_ANGLE_DEG)] = True
        names.append(_clip_name(f))
        body.append(m.pose_body)
        root_o.append(m.root_orient)
        trans.append(m.trans)
        kept.append(keep)
    offsets = np.cumsum([0] + [len(b) for b in body]).astype(np.int64)
    cat = lambda xs, w: np.concatenate(xs).astype(np.float32) if xs else np.zeros((0, w), np.float32)  # noqa: E731
    return BandaiData(names, cat(body, 63), cat(root_o, 3), cat(trans, 3), offsets,
                      np.concatenate(kept) if kept else np.zeros(0, bool), failed)


def _clip_name(f: Path) -> str:
    from posendf_plugin.data.bvh import bvh_clip_name

    return bvh_clip_name(f)


def load_bandai(files: Sequence[Path], root: Path, cache_dir: Optional[Path], progress: bool = False) -> BandaiData:
    """Convert ``files`` (see the module docstring), reading / writing the cache
    ``cache_dir/bandai_<clips>clips_<key>.npz`` (atomic; the key covers the files, the package
    version and the converter's source, so a stale cache is never read). ``cache_dir=None``
    converts without caching. An unreadable cache file is rebuilt."""
    from posendf_plugin.io import load_npz, save_npz

    root = Path(root)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"bandai_{len(files)}clips_{cache_key(files, root)}.npz"
        if path.is_file():
            try:
                z = load_npz(path, required=("names", "pose_body", "root_orient", "trans", "offsets", "kept", "failed"))
                failed = [tuple(r) for r in z["failed"].reshape(-1, 2).tolist()]
                return BandaiData([str(s) for s in z["names"].tolist()], z["pose_body"], z["root_orient"], z["trans"],
                                  z["offsets"].astype(np.int64), z["kept"].astype(bool), failed, path, True)
            except (ValueError, KeyError) as e:
                log.warning("bandai cache %s is unreadable (%s); converting again", path, e)
    data = _convert_all(files, root, progress)
    if path is not None:
        save_npz(path, names=np.asarray(data.names, dtype=str).reshape(-1), pose_body=data.pose_body,
                 root_orient=data.root_orient, trans=data.trans, offsets=data.offsets, kept=data.kept,
                 failed=np.asarray(data.failed, dtype=str).reshape(-1, 2))
        data.cache = path
    return data


class BandaiSource(Source):
    """Bandai-Namco clips converted to SMPL (see the module docstring)."""

    kind = "bandai"

    def __init__(self, root: Path, files: Sequence[Path], cache_dir: Optional[Path], total: int, progress: bool = False) -> None:
        super().__init__()
        self.name = "bandai"
        self.root = Path(root)
        self.files = list(files)
        self.total = total
        self.cache_dir = cache_dir
        self.progress = progress
        self._data: Optional[BandaiData] = None
        subset = "all" if len(self.files) == total else f"{len(self.files)} of {total}"
        default = Path(__file__).resolve().parents[2] / "shared" / "data" / "bandai"
        where = "../shared/data/bandai" if self.root.resolve() == default.resolve() else str(self.root)
        self.description = (f"Bandai-Namco cross-source test clips ({subset} clips of {where}, converted with "
                            f"convert_bvh at 30 fps; CC BY-NC-ND 4.0)")

    def data(self) -> BandaiData:
        if self._data is None:
            self._data = load_bandai(self.files, self.root, self.cache_dir, self.progress)
            if not self._data.names:
                raise ValueError(f"{self.root}: none of the {len(self.files)} Bandai-Namco clips could be converted "
                                 f"(first error: {self._data.failed[0][1] if self._data.failed else 'none'})")
        return self._data

    def _load_poses(self) -> torch.Tensor:
        from posendf_plugin.rotations import quat_canonical
        from posendf_plugin.skeleton import to_body_quat

        d = self.data()
        return quat_canonical(to_body_quat(torch.from_numpy(d.pose_body[d.kept])))  # w >= 0, as pose sets are loaded

    def _load_motions(self) -> List[Tuple[str, Any]]:
        from posendf_plugin.data.motion import Motion

        d = self.data()
        out = []
        for c, name in enumerate(d.names):
            a, b = int(d.offsets[c]), int(d.offsets[c + 1])
            out.append((name, Motion(pose_body=d.pose_body[a:b], root_orient=d.root_orient[a:b], trans=d.trans[a:b], fps=FPS)))
        return out

    def summary(self) -> Dict[str, Any]:
        d = self.data()
        return {**super().summary(), "clips": len(d.names), "clips_available": self.total, "frames": int(len(d.pose_body)),
                "failed": [f"{f}: {e}" for f, e in d.failed], "cache": str(d.cache) if d.cache else None,
                "licence": "CC BY-NC-ND 4.0 (Bandai-Namco-Research-Motiondataset, Bandai Namco Research Inc.)"}


# ---------------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------------


def parse_sources(text: Optional[str]) -> Optional[List[str]]:
    """``--sources`` -> names (None when not given). Raises ValueError on an unknown name."""
    if text is None:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in SOURCE_NAMES]
    if bad or not names:
        raise ValueError(f"--sources: unknown source(s) {bad or [text]}; choose from {', '.join(SOURCE_NAMES)} "
                         "(and --data PATH for your own data)")
    return list(dict.fromkeys(names))


def resolve_sources(names: Optional[Sequence[str]], data: Optional[Path], split: str, size: str,
                    shared: Optional[Path], cache_dir: Optional[Path], progress: bool = False) -> Tuple[List[Source], Dict[str, str]]:
    """The sources of a run and the notes of those skipped.

    Args:
        names: ``--sources`` (None: every available built-in source, or only ``data`` when
            ``data`` is given).
        data: ``--data`` path, added as a source named after its folder.
        split: ``test`` or ``val`` (``val``: the CMU validation split; ``bandai`` is test-only
            and skipped).
        size: ``tiny``, ``quick`` or ``full`` (how many Bandai clips).
        shared: the shared data folder (``../shared/data``), or None on a fresh clone.
        cache_dir: where converted clips are cached (None: no cache).
    Returns:
        ``(sources, {name: reason skipped})``.
    Raises:
        ValueError: nothing left to benchmark.
    """
    if names is None:
        names = [] if data is not None else list(SOURCE_NAMES)
    sources: List[Source] = []
    notes: Dict[str, str] = {}
    for n in names:
        if n == "cmu":
            sources.append(CmuSource(split))
        elif n == "bandai":
            root = None if shared is None else Path(shared) / "bandai"
            if split != "test":
                notes[n] = f"skipped: Bandai-Namco is a test-only source (never used to choose weights); not run with --split {split}"
            elif root is None or not root.is_dir():
                where = "no ../shared/data folder (fresh clone)" if shared is None else f"no bandai/ folder in {shared}"
                notes[n] = f"skipped: {where}; the Bandai-Namco clips are not redistributed with the package"
            else:
                files = bandai_files(root)
                if not files:
                    notes[n] = f"skipped: no .bvh/.bvh.gz files under {root}"
                    continue
                pick = bandai_subset(files, {"tiny": BANDAI_TINY_CLIPS, "quick": BANDAI_QUICK_CLIPS, "full": None}[size])
                sources.append(BandaiSource(root, pick, cache_dir, len(files), progress))
        else:
            raise ValueError(f"--sources: unknown source {n!r}; choose from {', '.join(SOURCE_NAMES)}")
    if data is not None:
        sources.append(DataSource(data))
    if not sources:
        raise ValueError("no data source to benchmark: " + "; ".join(f"{k}: {v}" for k, v in notes.items())
                         + " (use --sources cmu or --data PATH)")
    return sources, notes
