"""The embedded default pose sets: CMU mocap (and, locally, Bandai-Namco) converted to SMPL.

``posendf data default`` builds train/val/test pose sets (see
:mod:`posendf_plugin.data.posesets`) from ``../shared/data`` (the folder described in its
README):

* **CMU** (``cmu-cc3/``, subjects 1, 2, 3, 5, 6, 7), split **by subject**
  (:data:`CMU_SPLITS`): test = subject 2 (walk, run, jump, punch, bend/scoop, swordplay,
  washing: the most varied), val = subject 6 (basketball dribbling, walk), train = subjects
  1, 3, 5, 7 (playground climbing and jumping, uneven terrain, modern dance, walks).
  ``cmu-std/01_01`` is the same trial as ``cmu-cc3/001_01`` and is left out.
* **Bandai-Namco** (``bandai/``; CC BY-NC-ND 4.0), only in builds written to ``--out``, never
  in the package: split by content x style group (all takes of e.g. ``walk_angry`` go to one
  split; ~80/10/10 by a stable hash of the group name).
* Sampling as in AMASS/VPoser preparation: resample to :attr:`DefaultConfig.fps` (30), then
  drop near-identical consecutive poses: a pose is kept only when some body joint has turned
  by at least :attr:`DefaultConfig.min_angle_deg` (5°) since the last kept pose.

The package ships the CMU part only (``posendf_plugin/assets/cmu_{train,val,test}.npz``,
float16; provenance and counts in ``assets/CARD.md``); :func:`default_pose_set` loads it
without ``../shared``. CMU attribution: "The data used in this project was obtained from
mocap.cs.cmu.edu. The database was created with funding from NSF EIA-0196217."
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..io import save_json
from ..skeleton import to_body_quat
from .bvh import bvh_clip_name
from .convert import convert_bvh
from .posesets import PoseSet, load_pose_set, save_pose_set

__all__ = [
    "SPLITS",
    "CMU_SPLITS",
    "CMU_ATTRIBUTION",
    "BANDAI_ATTRIBUTION",
    "DefaultConfig",
    "assets_dir",
    "default_pose_set",
    "default_mean_pose",
    "find_shared_data",
    "dedup_consecutive",
    "cmu_split_of",
    "bandai_split_of",
    "build_default",
    "register_cli",
]

log = logging.getLogger(__name__)

SPLITS: Tuple[str, ...] = ("train", "val", "test")
#: CMU subject number -> split (subject-disjoint)
CMU_SPLITS: Dict[int, str] = {1: "train", 3: "train", 5: "train", 7: "train", 6: "val", 2: "test"}
CMU_ATTRIBUTION = (
    "The data used in this project was obtained from mocap.cs.cmu.edu. "
    "The database was created with funding from NSF EIA-0196217."
)
BANDAI_ATTRIBUTION = (
    "Bandai-Namco-Research-Motiondataset, Bandai Namco Research Inc. Licence CC BY-NC-ND 4.0: "
    "non-commercial use only, no redistribution of modified material"
)


@dataclass(frozen=True)
class DefaultConfig:
    """How the default pose sets are sampled.

    Attributes:
        fps: frame rate after resampling (AMASS/VPoser use <= 30).
        min_angle_deg: keep a pose only if some joint moved at least this much since the last
            kept pose of the clip.
        bandai: include Bandai-Namco clips (only in ``--out`` builds, never in the package).
        bandai_fractions: (val, test) shares of Bandai content x style groups.
    """

    fps: float = 30.0
    min_angle_deg: float = 5.0
    bandai: bool = True
    bandai_fractions: Tuple[float, float] = (0.1, 0.1)

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if not self.min_angle_deg >= 0:
            raise ValueError(f"min_angle_deg must be >= 0, got {self.min_angle_deg}")
        v, t = self.bandai_fractions
        if not (0 <= v and 0 <= t and v + t < 1):
            raise ValueError(f"bandai_fractions (val, test) must be >= 0 and sum to < 1, got {self.bandai_fractions}")


def assets_dir() -> Path:
    """Folder of the pose arrays shipped inside the package."""
    return Path(__file__).resolve().parents[1] / "assets"


def default_pose_set(split: str = "train") -> PoseSet:
    """The shipped CMU pose set of ``split`` (``"train"``, ``"val"`` or ``"test"``).

    Quaternions are stored as float16 and returned as float32 ``(N, 21, 4)``, ``(w, x, y, z)``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    path = assets_dir() / f"cmu_{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: the embedded pose set is missing; reinstall the package or rebuild it with "
            "'posendf data default --write-assets' from ../shared/data"
        )
    return load_pose_set(path)


def default_mean_pose() -> torch.Tensor:
    """Mean body pose ``(21, 4)`` of the shipped CMU training split (per-joint chordal quaternion
    mean, :func:`posendf_plugin.rotations.quat_mean`): a relaxed standing pose, arms lowered.

    Fitting starts from it (``init_pose: mean``), as SMPLify starts from its prior's mean pose;
    starting from the T-pose (all zeros) leaves the optimiser in the wrong depth branch of
    arms and legs far more often (benchmarks/RESULTS.md, image_fit).
    """
    return _mean_pose_cached().clone()


@functools.lru_cache(maxsize=1)
def _mean_pose_cached() -> torch.Tensor:
    from ..rotations import quat_mean

    return quat_mean(default_pose_set("train").quat.float(), dim=0)


def find_shared_data(explicit: Optional[Union[str, Path]] = None) -> Optional[Path]:
    """Locate the shared data folder: ``explicit``, else ``$POSENDF_SHARED_DATA``, else
    ``../shared/data`` next to the current directory or next to the repository."""
    if explicit is not None:
        p = Path(explicit)
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: --shared folder does not exist")
        return p
    cands = []
    if os.environ.get("POSENDF_SHARED_DATA"):
        cands.append(Path(os.environ["POSENDF_SHARED_DATA"]))
    cands += [Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data",
              Path(__file__).resolve().parents[2].parent / "shared" / "data"]
    return next((c for c in cands if (c / "cmu-cc3").is_dir() or (c / "bandai").is_dir()), None)


def dedup_consecutive(quat: torch.Tensor, min_angle_deg: float) -> np.ndarray:
    """Indices of poses to keep: the first, then each pose where some joint differs from the
    last kept pose by at least ``min_angle_deg``.

    Args:
        quat: ``(N, 21, 4)`` quaternions ``(w, x, y, z)`` of one clip, in time order.
    Returns:
        ``(K,)`` int64 indices, increasing.
    """
    q = quat.detach().cpu().numpy().astype(np.float64)
    n = q.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    cos_thr = np.cos(np.deg2rad(min_angle_deg) / 2.0)  # angle >= thr  <=>  |<a, b>| <= cos(thr/2)
    keep = [0]
    last = q[0]
    # Sequential (the reference is the last *kept* pose); look ahead in small blocks.
    i, block = 1, 8
    while i < n:
        dots = np.abs(np.einsum("bjk,jk->bj", q[i:i + block], last)).min(-1)
        hit = np.nonzero(dots <= cos_thr)[0]
        if hit.size == 0:
            i += block
            block = min(block * 2, 512)
            continue
        i += int(hit[0])
        keep.append(i)
        last = q[i]
        i += 1
        block = 8
    return np.asarray(keep, np.int64)


def cmu_split_of(name: str) -> Optional[str]:
    """Split of a CMU clip named ``SSS_TT`` (subject, trial); ``None`` for unknown subjects."""
    try:
        subject = int(name.split("_")[0])
    except ValueError:
        return None
    return CMU_SPLITS.get(subject)


def bandai_split_of(name: str, fractions: Tuple[float, float] = (0.1, 0.1)) -> str:
    """Split of a Bandai clip ``dataset-N_content_style_id``: all takes of one
    dataset/content/style group share a split, chosen by a stable hash of the group."""
    group = name.rsplit("_", 1)[0]
    u = (zlib.crc32(group.encode()) % 10_000) / 10_000.0
    val, test = fractions
    return "test" if u < test else ("val" if u < test + val else "train")


@dataclass
class _Acc:
    quat: List[np.ndarray] = field(default_factory=list)
    clip_id: List[np.ndarray] = field(default_factory=list)
    names: List[str] = field(default_factory=list)
    frames: int = 0


def _collect(files: Sequence[Tuple[Path, str, str]], cfg: DefaultConfig, progress: bool) -> Tuple[Dict[str, _Acc], List[Dict]]:
    from tqdm import tqdm

    acc = {s: _Acc() for s in SPLITS}
    failed = []
    for path, split, label in tqdm(files, desc="default pose sets", unit="clip", disable=not progress):
        try:
            res = convert_bvh(path, fps=cfg.fps)
        except (ValueError, KeyError, OSError) as e:
            log.warning("skipping %s: %s", path, e)
            failed.append({"file": str(path), "error": str(e)})
            continue
        q = to_body_quat(torch.from_numpy(res.motion.pose_body))
        keep = dedup_consecutive(q, cfg.min_angle_deg)
        a = acc[split]
        a.clip_id.append(np.full(len(keep), len(a.names), np.int32))
        a.names.append(label)
        a.quat.append(q[keep].numpy())
        a.frames += len(q)
    return acc, failed


def build_default(shared: Union[str, Path], out: Union[str, Path], cfg: DefaultConfig = DefaultConfig(),
                  dtype=np.float32, progress: bool = True) -> Dict:
    """Convert, split, deduplicate and save ``{train,val,test}.npz`` under ``out``.

    Returns:
        a summary dict (also written to ``out/summary.json``): poses and clips per split and
        source, failures, config.
    Raises:
        FileNotFoundError: ``shared`` holds neither ``cmu-cc3/`` nor ``bandai/`` clips.
    """
    shared, out = Path(shared), Path(out)
    files: List[Tuple[Path, str, str]] = []
    for f in sorted((shared / "cmu-cc3").glob("*.bvh*")):
        split = cmu_split_of(bvh_clip_name(f))
        if split is None:
            log.warning("skipping %s: CMU subject not in CMU_SPLITS", f)
            continue
        files.append((f, split, f"cmu/{bvh_clip_name(f)}"))
    n_cmu = len(files)
    if cfg.bandai and (shared / "bandai").is_dir():
        for f in sorted((shared / "bandai").rglob("*.bvh*")):
            name = bvh_clip_name(f)
            files.append((f, bandai_split_of(name, cfg.bandai_fractions), f"bandai/{name}"))
    if not files:
        raise FileNotFoundError(f"{shared}: no cmu-cc3/*.bvh.gz or bandai/**/*.bvh.gz clips found")
    acc, failed = _collect(files, cfg, progress)
    has_bandai = len(files) > n_cmu
    source = f"CMU mocap (cmu-cc3, subject-disjoint split {CMU_SPLITS}) converted with posendf data bvh. {CMU_ATTRIBUTION}"
    if has_bandai:
        source += f" Also contains {BANDAI_ATTRIBUTION}; do not redistribute these arrays."
    summary: Dict = {"config": asdict(cfg), "splits": {}, "failed": failed}
    for split in SPLITS:
        a = acc[split]
        q = np.concatenate(a.quat) if a.quat else np.zeros((0, 21, 4), np.float32)
        cid = np.concatenate(a.clip_id) if a.clip_id else np.zeros(0, np.int32)
        if len(q) == 0:
            log.warning("split %s is empty", split)
        else:
            save_pose_set(out / f"{split}.npz", q, cid, a.names or ["none"], source=source, dtype=dtype)
        by_src = {}
        for src in ("cmu", "bandai"):
            ids = [i for i, n in enumerate(a.names) if n.startswith(src + "/")]
            by_src[src] = {"clips": len(ids), "poses": int(np.isin(cid, ids).sum())}
        summary["splits"][split] = {"poses": int(len(q)), "clips": len(a.names), "frames_before_dedup": a.frames, **by_src}
    save_json(out / "summary.json", summary)
    return summary


def _cli(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    cfg = DefaultConfig(fps=args.fps, min_angle_deg=args.min_angle, bandai=not (args.no_bandai or args.write_assets))
    shared = find_shared_data(args.shared)
    if args.write_assets:
        if shared is None:
            raise FileNotFoundError("--write-assets needs the shared data folder; pass --shared DIR")
        summary = build_default(shared, assets_dir(), cfg, dtype=np.float16)
        for split in SPLITS:  # name the shipped files cmu_<split>.npz
            p = assets_dir() / f"{split}.npz"
            if p.exists():
                os.replace(p, assets_dir() / f"cmu_{split}.npz")
        os.replace(assets_dir() / "summary.json", assets_dir() / "cmu_summary.json")
        out = assets_dir()
    elif shared is None:
        out = Path(args.out)
        log.info("no ../shared/data found: writing the embedded CMU pose sets to %s", out)
        summary = {"source": "embedded CMU pose sets (posendf_plugin/assets)", "splits": {}}
        for split in SPLITS:
            ps = default_pose_set(split)
            save_pose_set(out / f"{split}.npz", ps.quat, ps.clip_id, ps.clip_names, ps.source)
            summary["splits"][split] = {"poses": len(ps), "clips": len(ps.clip_names)}
        save_json(out / "summary.json", summary)
    else:
        out = Path(args.out)
        summary = build_default(shared, out, cfg)
    for split, s in summary["splits"].items():
        print(f"{split:>5}: {s['poses']:>7} poses from {s['clips']:>4} clips" +
              (f" (cmu {s['cmu']['poses']}, bandai {s['bandai']['poses']})" if "cmu" in s else ""))
    print(f"wrote {out}")
    return 1 if summary.get("failed") else 0


def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add ``posendf data default``."""
    p = subparsers.add_parser(
        "default",
        help="build the default train/val/test pose sets from ../shared/data (CMU, Bandai-Namco)",
        description=(
            "Convert the CMU (cmu-cc3, split by subject: test = subject 2, val = subject 6, train = 1, 3, 5, 7) "
            "and Bandai-Namco (split by content x style group; CC BY-NC-ND, never shipped) BVH clips in the "
            "shared data folder to SMPL, resample to --fps, drop near-identical consecutive poses and write "
            "OUT/{train,val,test}.npz pose sets ((N,21,4) quaternions w,x,y,z + clip ids) and OUT/summary.json "
            "with the counts. Without a shared data folder it writes the embedded CMU pose sets instead."
        ),
    )
    p.add_argument("--shared", default=None, metavar="DIR",
                   help="shared data folder (default: $POSENDF_SHARED_DATA or ../shared/data)")
    p.add_argument("--out", default="data/default", metavar="DIR", help="output folder (default: data/default)")
    p.add_argument("--fps", type=float, default=30.0, help="resample clips to this frame rate first (default 30)")
    p.add_argument("--min-angle", type=float, default=5.0,
                   help="drop a pose unless some joint turned by this many degrees since the last kept one (default 5)")
    p.add_argument("--no-bandai", action="store_true", help="CMU only")
    p.add_argument("--write-assets", action="store_true",
                   help="maintainers: rebuild the shipped CMU-only float16 arrays in posendf_plugin/assets")
    p.set_defaults(func=_cli)
    return p
