"""Sample AMASS motions into train / vald / test pose sets (the paper's step, VPoser-style).

Input: an AMASS download, one top-level folder per dataset (``CMU/``, ``HumanEva/``, ...), each
holding motion ``.npz`` files in either release:

* SMPL+H (``*_poses.npz``): ``poses`` (N, 156), ``trans``, ``betas``, ``gender``,
  ``mocap_framerate``, ``dmpls``.
* SMPL-X (``*_stageii.npz``): ``poses`` (N, 165) and ``pose_body`` (N, 63), ``root_orient``,
  ``mocap_frame_rate`` (note the spelling), plus marker data. Some of those extra keys are
  pickled Python objects; they are never read (only the pose and frame-rate keys are), so files
  load with ``allow_pickle=False``.

Per-subject body-shape files (``shape.npz``, ``*_stagei.npz``) have no poses and are skipped.

Steps per clip: downsample to about ``fps`` frames per second by keeping every
``round(mocap_fps / fps)``-th frame (VPoser's frame skipping), drop the root, keep the 21 body
joints as quaternions (w, x, y, z), and drop near-identical consecutive poses
(:func:`drop_near_duplicates`). Splits follow VPoser (:data:`VPOSER_SPLITS`): the dataset
folder decides the split. Output (``--out DIR``): ``train.npz``, ``vald.npz``, ``test.npz`` in
the pose-set layout (:mod:`posendf_plugin.data.posesets`) and ``summary.json`` with counts per
dataset and split and the list of skipped files with the reason.
"""
from __future__ import annotations

import argparse
import logging
import math
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from tqdm import tqdm

from ..io import save_json
from ..skeleton import POSE_LAYOUTS, pose_to_quat, pose_units_problem
from .posesets import is_shape_file, save_pose_set

__all__ = [
    "VPOSER_SPLITS",
    "SPLITS",
    "AmassConfig",
    "AmassClip",
    "AmassSummary",
    "split_of",
    "read_amass_clip",
    "downsample_step",
    "drop_near_duplicates",
    "sample_amass",
    "register_cli",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]

#: Output split names, in order (VPoser spells validation "vald").
SPLITS: Tuple[str, ...] = ("train", "vald", "test")

#: VPoser's split by dataset folder; every other dataset goes to ``train``. The AMASS SMPL-X
#: release renamed some folders; both spellings are listed. Matching ignores case.
VPOSER_SPLITS: Dict[str, Tuple[str, ...]] = {
    "vald": ("HumanEva", "MPI_HDM05", "HDM05", "SFU", "MPI_mosh", "MoSh"),
    "test": ("Transitions_mocap", "Transitions", "SSM_synced", "SSM"),
}

#: Files that AMASS ships next to motions but that hold only body shape.
_FPS_KEYS = ("mocap_framerate", "mocap_frame_rate")
#: The body-pose keys we read, in order of preference.
_POSE_KEYS = ("pose_body", "poses")


@dataclass(frozen=True)
class AmassConfig:
    """Settings of :func:`sample_amass`.

    Attributes:
        fps: target frame rate; clips are downsampled by an integer step
            ``max(1, round(mocap_fps / fps))``. ``None`` keeps every frame.
        dedup_deg: a pose is dropped when no body joint turned by at least this many degrees
            since the last kept pose of the same clip. ``0`` keeps everything.
        trim: fraction of frames dropped at each end of a clip (VPoser v1 drops 10 %; default
            0 keeps them).
        float16: store quaternions as float16 (half the size, error ~5e-4).
    """

    fps: Optional[float] = 30.0
    dedup_deg: float = 1.0
    trim: float = 0.0
    float16: bool = False

    def __post_init__(self) -> None:
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"fps must be a positive number (or None to keep all frames), got {self.fps}")
        if not self.dedup_deg >= 0:
            raise ValueError(f"dedup_deg must be >= 0 degrees, got {self.dedup_deg}")
        if not 0 <= self.trim < 0.5:
            raise ValueError(f"trim must be in [0, 0.5), got {self.trim}")


@dataclass
class AmassClip:
    """Body poses of one AMASS clip.

    Attributes:
        quat: ``(N, 21, 4)`` float32 tensor, (w, x, y, z), w >= 0, at the source frame rate.
        fps: source frame rate.
        layout: which key/width the poses came from, e.g. ``"poses (156)"``.
    """

    quat: torch.Tensor
    fps: float
    layout: str


@dataclass
class AmassSummary:
    """What :func:`sample_amass` did (also written to ``summary.json``).

    Attributes:
        counts: ``{dataset: {"split", "files", "frames", "kept"}}``.
        splits: ``{split: {"files", "frames", "kept", "path"}}``; ``path`` is None when empty.
        skipped: ``[{"file", "reason"}]`` bad files that were left out.
        shape_files: number of body-shape-only files ignored.
        config: the :class:`AmassConfig` used.
    """

    counts: Dict[str, Dict[str, Union[int, str]]] = field(default_factory=dict)
    splits: Dict[str, Dict[str, Union[int, str, None]]] = field(default_factory=dict)
    skipped: List[Dict[str, str]] = field(default_factory=list)
    shape_files: int = 0
    config: Dict[str, object] = field(default_factory=dict)


def split_of(dataset: str) -> str:
    """VPoser split (``"train" | "vald" | "test"``) of an AMASS dataset folder name."""
    low = dataset.lower()
    for split, names in VPOSER_SPLITS.items():
        if low in (n.lower() for n in names):
            return split
    return "train"


def read_amass_clip(path: PathLike) -> AmassClip:
    """Read the body poses and frame rate of one AMASS motion file (SMPL+H or SMPL-X).

    Only ``pose_body`` / ``poses`` and ``mocap_framerate`` / ``mocap_frame_rate`` are read, so
    the pickled marker metadata of SMPL-X files is never touched.

    Raises:
        FileNotFoundError: no such file.
        ValueError: truncated / not an npz, pickled pose array, unknown pose width, bad frame
            rate, NaN/Inf values, or no frames.
        KeyError: no pose key or no frame-rate key (the message lists what the file has).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            pose_key = next((k for k in _POSE_KEYS if k in keys), None)
            if pose_key is None:
                raise KeyError(
                    f"{path}: no body poses; expected 'poses' (N, 156) SMPL+H / (N, 165) SMPL-X or "
                    f"'pose_body' (N, 63); found keys {sorted(keys)}"
                )
            fps_key = next((k for k in _FPS_KEYS if k in keys), None)
            if fps_key is None:
                raise KeyError(
                    f"{path}: no frame rate; expected 'mocap_framerate' (SMPL+H) or "
                    f"'mocap_frame_rate' (SMPL-X); found keys {sorted(keys)}"
                )
            poses = np.asarray(z[pose_key])
            fps_arr = np.asarray(z[fps_key])
    except (KeyError, FileNotFoundError):
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, MemoryError) as e:
        from ..io import describe_npz_error

        raise ValueError(f"{path}: not a readable AMASS .npz ({describe_npz_error(e)})") from e
    if poses.dtype.kind not in "fiu":
        raise ValueError(f"{path}: '{pose_key}' has dtype {poses.dtype}, expected floating point")
    if poses.ndim != 2:
        raise ValueError(f"{path}: '{pose_key}' must be 2-D (frames, width), got shape {poses.shape}")
    if poses.shape[0] == 0:
        raise ValueError(f"{path}: '{pose_key}' has no frames")
    width = poses.shape[1]
    if width not in POSE_LAYOUTS:
        raise ValueError(
            f"{path}: '{pose_key}' has width {width}; expected one of {sorted(POSE_LAYOUTS)}"
        )
    try:
        fps = float(fps_arr.reshape(()))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: '{fps_key}' is not a number ({fps_arr!r})") from e
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"{path}: '{fps_key}' must be a positive frame rate, got {fps}")
    bad = ~np.isfinite(poses).all(axis=1)
    if bad.any():
        rows = np.nonzero(bad)[0]
        raise ValueError(
            f"{path}: '{pose_key}' has NaN/Inf in {len(rows)} frame(s), first {rows[:5].tolist()}"
        )
    pose_t = torch.from_numpy(np.ascontiguousarray(poses, dtype=np.float32))
    why = pose_units_problem(pose_t)
    if why:
        raise ValueError(f"{path}: '{pose_key}': {why}")
    quat = pose_to_quat(pose_t)
    return AmassClip(quat=quat, fps=fps, layout=f"{pose_key} ({width})")


def downsample_step(src_fps: float, fps: Optional[float]) -> int:
    """Integer frame step that brings ``src_fps`` closest to ``fps`` (at least 1)."""
    if fps is None:
        return 1
    return max(1, int(round(src_fps / fps)))


def drop_near_duplicates(quat: torch.Tensor, min_deg: float) -> torch.Tensor:
    """Indices of the poses to keep from a sequence, dropping near-identical consecutive ones.

    Walks the sequence once: a pose is kept when some body joint differs by at least
    ``min_deg`` degrees (geodesic angle) from the last *kept* pose, so slow drifts are still
    sampled every ``min_deg``. The first pose is always kept.

    Args:
        quat: ``(N, J, 4)`` quaternions (w, x, y, z) in time order.
        min_deg: threshold in degrees; ``0`` keeps every pose.
    Returns:
        ``(K,)`` int64 indices, increasing.
    """
    n = quat.shape[0]
    if n == 0 or min_deg <= 0:
        return torch.arange(n)
    # angle >= thr  <=>  |<q, q_last>| <= cos(thr / 2) for some joint (sign-invariant); the same
    # rule as posendf_plugin.data.default.dedup_consecutive.
    cos_half = math.cos(math.radians(min_deg) / 2.0)
    q = quat.detach().cpu().to(torch.float64).numpy()
    # Fast path: a pose that moved past the threshold since its predecessor, when that
    # predecessor was kept, is kept without another comparison.
    moved = np.abs((q[1:] * q[:-1]).sum(-1)).min(-1) <= cos_half
    keep = [0]
    last = 0
    for i in range(1, n):
        if (moved[i - 1] and last == i - 1) or np.abs((q[i] * q[last]).sum(-1)).min() <= cos_half:
            keep.append(i)
            last = i
    return torch.tensor(keep, dtype=torch.int64)


def _known_dataset(name: str) -> bool:
    return any(name.lower() == n.lower() for names in VPOSER_SPLITS.values() for n in names)


def _dataset_of(file: Path, root: Path) -> str:
    """The AMASS dataset a file belongs to: the first folder under ``root``, or ``root`` itself when
    it is one dataset's folder (``--amass-dir AMASS/HumanEva``) or the files lie directly in it."""
    rel = file.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 and not _known_dataset(root.name) else root.name


def sample_amass(
    amass_dir: PathLike,
    out_dir: PathLike,
    config: AmassConfig = AmassConfig(),
    progress: bool = True,
) -> AmassSummary:
    """Sample an AMASS tree into ``out_dir/{train,vald,test}.npz`` and ``summary.json``.

    Bad files (truncated, missing keys, NaN, unknown layout) are skipped with a warning naming
    the file and the problem; they are listed in the summary. Empty splits are not written.

    Raises:
        FileNotFoundError: ``amass_dir`` does not exist or holds no ``.npz`` files.
        ValueError: no file could be read (the message shows the first problems).
    """
    root = Path(amass_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--amass-dir {root}: no such folder; pass the folder that holds CMU/, HumanEva/, ...")
    out = Path(out_dir).resolve()
    files = sorted(f for f in root.rglob("*.npz") if out not in f.resolve().parents)  # not a run's own outputs
    if not files:
        raise FileNotFoundError(f"--amass-dir {root}: no .npz files found (expected <dataset>/<subject>/*.npz)")
    summary = AmassSummary(config=asdict(config))
    parts: Dict[str, List[torch.Tensor]] = {s: [] for s in SPLITS}
    clip_names: Dict[str, List[str]] = {s: [] for s in SPLITS}
    frames: Dict[str, int] = {s: 0 for s in SPLITS}
    files_per_split: Dict[str, int] = {s: 0 for s in SPLITS}
    for f in tqdm(files, desc="amass", unit="file", disable=not progress):
        if is_shape_file(f):
            summary.shape_files += 1
            continue
        dataset = _dataset_of(f, root)
        split = split_of(dataset)
        try:
            clip = read_amass_clip(f)
        except (ValueError, KeyError, OSError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            logger.warning("skipping %s", msg)
            summary.skipped.append({"file": str(f.relative_to(root)), "reason": str(msg)})
            continue
        n = clip.quat.shape[0]
        lo, hi = int(config.trim * n), n - int(config.trim * n)
        q = clip.quat[lo:hi:downsample_step(clip.fps, config.fps)]
        q = q[drop_near_duplicates(q, config.dedup_deg)]
        c = summary.counts.setdefault(dataset, {"split": split, "files": 0, "frames": 0, "kept": 0})
        c["files"] += 1
        c["frames"] += n
        c["kept"] += int(q.shape[0])
        frames[split] += n
        files_per_split[split] += 1
        parts[split].append(q)
        clip_names[split].append(str(f.relative_to(root)))
    if not any(parts.values()):
        # each file's reason was logged as it was skipped: not repeated here
        raise ValueError(f"--amass-dir {root}: none of the {len(files)} .npz files could be read (the "
                         "warnings above give each file's reason)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dtype = np.float16 if config.float16 else np.float32
    for split in SPLITS:
        entry: Dict[str, Union[int, str, None]] = {
            "files": files_per_split[split], "frames": frames[split], "kept": 0, "path": None,
        }
        if parts[split]:
            quat = torch.cat(parts[split])
            clip_id = torch.cat([torch.full((len(p),), i, dtype=torch.int32) for i, p in enumerate(parts[split])])
            path = out / f"{split}.npz"
            datasets = sorted({n.split("/")[0] for n in clip_names[split]})
            save_pose_set(
                path, quat, clip_id, clip_names[split],
                source=(
                    f"AMASS ({', '.join(datasets)}), sampled by posendf data amass at ~{config.fps} fps, "
                    f"dedup {config.dedup_deg} deg. AMASS licence: non-commercial scientific research "
                    "only (https://amass.is.tue.mpg.de/license.html)"
                ),
                dtype=dtype,
            )
            entry.update(kept=int(quat.shape[0]), path=path.name)
        else:
            stale = out / f"{split}.npz"
            if stale.exists():  # an earlier run's split would read as this run's
                stale.unlink()
            logger.warning("split %s is empty (no files from %s); not writing %s.npz", split,
                           "/".join(VPOSER_SPLITS.get(split, ("any non-held-out dataset",))), split)
        summary.splits[split] = entry
    save_json(out / "summary.json", asdict(summary))
    return summary


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _run_cli(args: argparse.Namespace) -> int:
    from ..io import check_output_dir

    if not (math.isfinite(args.fps) and args.fps >= 0):
        raise ValueError(f"--fps must be a frame rate > 0, or 0 to keep every frame; got {args.fps}")
    cfg = AmassConfig(fps=None if args.fps == 0 else args.fps, dedup_deg=args.dedup_deg, trim=args.trim,
                      float16=args.float16)
    check_output_dir(args.out, "--out folder")
    summary = sample_amass(args.amass_dir, args.out, cfg, progress=not args.quiet)
    for split, e in summary.splits.items():
        print(f"{split:5s}: {e['kept']:>9d} poses from {e['files']} files -> {e['path'] or '(empty, not written)'}")
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} bad file(s); see {Path(args.out) / 'summary.json'}")
    return 0


def register_cli(subparsers) -> None:
    """Add ``posendf data amass`` to the ``posendf data`` sub-parsers."""
    p = subparsers.add_parser(
        "amass",
        help="sample AMASS motions into train/vald/test pose sets (VPoser splits)",
        description=(
            "Read AMASS .npz motions (SMPL+H 'poses' (N,156) or SMPL-X 'poses' (N,165) / "
            "'pose_body' (N,63)) from --amass-dir, which holds one folder per dataset (CMU/, "
            "HumanEva/, ...). Splits follow VPoser: vald = HumanEva, MPI_HDM05, SFU, MPI_mosh; "
            "test = Transitions_mocap, SSM_synced; train = the rest. Each clip is downsampled to "
            "about --fps, the root is dropped, the 21 body joints are kept as quaternions and "
            "near-identical consecutive poses are dropped. Writes OUT/train.npz, OUT/vald.npz, "
            "OUT/test.npz (pose sets: quat (N,21,4), clip_id, clip_names, source) and "
            "OUT/summary.json (counts per dataset and split, skipped bad files)."
        ),
    )
    p.add_argument("--amass-dir", required=True, type=Path, metavar="DIR", help="AMASS root folder")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument("--fps", type=float, default=30.0, metavar="F",
                   help="target frame rate (integer frame skipping); 0 keeps every frame (default 30)")
    p.add_argument("--dedup-deg", type=float, default=1.0, metavar="DEG",
                   help="drop a pose when no joint moved more than DEG degrees since the last kept one (default 1)")
    p.add_argument("--trim", type=float, default=0.0, metavar="FRAC",
                   help="drop this fraction of frames at each clip end (VPoser v1 used 0.1; default 0)")
    p.add_argument("--float16", action="store_true", help="store quaternions as float16")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_cli)
