"""The embedded default: the CMU mocap in ``../shared/data`` converted to SMPL, split by subject.

``posendf data default`` builds train/val/test pose sets (see
:mod:`posendf_plugin.data.posesets`) from every CMU source in ``../shared/data`` (the folder
described in its README), on four rigs and in CMU's native ASF/AMC, converted by
:func:`posendf_plugin.data.mocap_batch.convert_mocap` (rig-independent, reference frames
dropped):

==================================  ==========  ==================================================
source                              rig         subjects
==================================  ==========  ==================================================
``cmu-cc3/SSS_TT``                  iClone CC3  1, 2, 3, 5, 6, 7 (from the file name)
``cmu-std/dmgnn/...``               CMU BVH     known trials (:data:`DMGNN_TRIALS`): 49, 16, 11,
                                                13, 9, 10; the others unknown
``cmu-daz/salsa``, ``indian``,      CMU DAZ     60/61 (salsa), 94 (Indian dance), the walks' trial
``walks/SS_TT``                                 names (8, 10, 16, 46, 69, 83)
``cmu-amc/*/SS_TT*.amc`` + ``.asf``  ASF/AMC     35, 49
==================================  ==========  ==================================================

``cmu-std/01_01`` is the same trial as ``cmu-cc3/001_01`` and ``cmu-amc/subject35-every4th-30fps/
35_01`` the same as ``original-120fps/35_01``; the duplicates are left out.

**Subject-disjoint split** (:data:`CMU_SPLITS`): test = subjects 2 (CC3), 49 (ASF/AMC and CMU
BVH), 94 (DAZ); val = subjects 6 (CC3), 35 (ASF/AMC), 16 (DAZ and CMU BVH); every other subject,
and every clip whose subject is unknown, goes to train. Val and test each hold subjects on four
rigs, and no training clip is on the ASF/AMC rig: weights calibrated on val
see a rig and people the priors never saw.

Sampling as in AMASS/VPoser preparation: resample to :attr:`DefaultConfig.fps` (30), then
drop near-identical consecutive poses: a pose is kept only when some body joint has turned by at
least :attr:`DefaultConfig.min_angle_deg` (5°) since the last kept pose.

**Cross-source test split**: the Bandai-Namco Research Motiondataset clips (``bandai/``; CC BY-NC-ND
4.0) are written as ``test_bandai.npz`` next to the CMU splits when present — never used for
training or for choosing weights, never shipped.

The package ships the CMU splits (``posendf_plugin/assets/cmu_{train,val,test}.npz``, float16;
counts in ``assets/cmu_summary.json``); :func:`default_pose_set` loads them without
``../shared``. CMU attribution: "The data used in this project was obtained from
mocap.cs.cmu.edu. The database was created with funding from NSF EIA-0196217."
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..io import save_json
from ..skeleton import to_body_quat
from .bvh import bvh_clip_name
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
    "split_of_subject",
    "subject_of_label",
    "cmu_clip_sources",
    "bandai_clip_sources",
    "ClipSource",
    "CROSS_SOURCE_SPLIT",
    "DMGNN_TRIALS",
    "build_default",
    "register_cli",
]

log = logging.getLogger(__name__)

SPLITS: Tuple[str, ...] = ("train", "val", "test")
#: the cross-source test split written next to the CMU splits (Bandai-Namco, never shipped)
CROSS_SOURCE_SPLIT = "test_bandai"
#: CMU subject -> split for held-out subjects (subject-disjoint); every other subject is train
CMU_SPLITS: Dict[int, str] = {2: "test", 49: "test", 94: "test", 6: "val", 35: "val", 16: "val"}
#: the CMU trials of the motion-prediction clips in ``cmu-std/dmgnn`` where known (README)
DMGNN_TRIALS: Dict[str, str] = {
    "test_jumping_1": "49_02", "test_running_1": "16_35", "test_soccer_1": "11_01",
    "train_jumping_1": "13_11", "train_jumping_3": "13_19", "train_jumping_5": "13_39",
    "train_running_5": "09_06", "train_soccer_4": "10_05", "train_soccer_5": "10_06",
}
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
        bandai: also write the cross-source test split (Bandai-Namco, only in ``--out`` builds,
            never in the package).
    """

    fps: float = 30.0
    min_angle_deg: float = 5.0
    bandai: bool = True

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if not self.min_angle_deg >= 0:
            raise ValueError(f"min_angle_deg must be >= 0, got {self.min_angle_deg}")


@dataclass(frozen=True)
class ClipSource:
    """One clip of the default set: file, split, name in the pose set, rig, subject."""

    path: Path
    split: str
    label: str
    rig: str
    subject: Optional[str]
    source_fps: Optional[float] = None


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


def split_of_subject(subject: Optional[str]) -> str:
    """Split of a CMU subject (``"2"``, ``"60/61"``; ``None`` = unknown): held-out subjects per
    :data:`CMU_SPLITS`, everything else (unknown subjects included) train."""
    if subject is None:
        return "train"
    splits = {CMU_SPLITS.get(int(p), "train") for p in subject.split("/") if p.isdigit()}
    if len(splits) > 1:
        raise ValueError(f"subjects {subject} fall into different splits {sorted(splits)}")
    return splits.pop() if splits else "train"


def cmu_split_of(name: str) -> Optional[str]:
    """Split of a CMU clip named ``SSS_TT`` (subject, trial); ``None`` when it names no subject."""
    head = name.split("_")[0]
    return split_of_subject(str(int(head))) if head.isdigit() else None


def _subject_of_trial(trial: str) -> Optional[str]:
    head = trial.split("_")[0]
    return str(int(head)) if head.isdigit() else None


def subject_of_label(label: str) -> Optional[str]:
    """CMU subject of a clip in the default pose sets, from its name (``cmu-cc3/002_01``,
    ``cmu-std/test_jumping_1``, ``cmu-daz/salsa/salsa_01``, ``cmu-amc/35_01``); ``None`` when
    unknown (e.g. the unidentified motion-prediction clips)."""
    folder, _, rest = label.partition("/")
    name = rest.rsplit("/", 1)[-1]
    if folder == "cmu-daz":
        group = rest.split("/")[0]
        return {"salsa": "60/61", "indian": "94"}.get(group, _subject_of_trial(name))
    if folder == "cmu-std":
        return _subject_of_trial(DMGNN_TRIALS.get(name, name))
    return _subject_of_trial(name)


def cmu_clip_sources(shared: Union[str, Path]) -> List[ClipSource]:
    """Every CMU clip of the shared data folder with its split (see the module docstring)."""
    from .asf import amc_clip_name

    shared = Path(shared)
    out: List[ClipSource] = []

    def add(path: Path, label: str, rig: str, fps: Optional[float] = None) -> None:
        subject = subject_of_label(label)
        out.append(ClipSource(path, split_of_subject(subject), label, rig, subject, fps))

    for f in sorted((shared / "cmu-cc3").glob("*.bvh*")):
        add(f, f"cmu-cc3/{bvh_clip_name(f)}", "cc3")
    for f in sorted((shared / "cmu-std").rglob("*.bvh*")):
        name = bvh_clip_name(f)
        if f.parent == shared / "cmu-std" and name == "01_01":
            continue  # the same trial as cmu-cc3/001_01
        add(f, f"cmu-std/{name}", "cmu")
    for f in sorted((shared / "cmu-daz").rglob("*.bvh*")):
        add(f, f"cmu-daz/{f.parent.name}/{bvh_clip_name(f)}", "daz")
    seen = set()
    for folder in sorted(p for p in (shared / "cmu-amc").glob("*") if p.is_dir()):
        fps = 30.0 if "30fps" in folder.name else None  # every 4th frame of the 120 fps original
        for f in sorted(folder.glob("*.amc*")):
            trial = "_".join(amc_clip_name(f).split("_")[:2])
            if trial in seen:
                continue  # the same trial at another frame rate
            seen.add(trial)
            add(f, f"cmu-amc/{trial}", "asf", fps)
    return out


def bandai_clip_sources(shared: Union[str, Path]) -> List[ClipSource]:
    """The Bandai-Namco clips of the shared data folder, all in the cross-source test split."""
    return [ClipSource(f, CROSS_SOURCE_SPLIT, f"bandai/{bvh_clip_name(f)}", "bandai", None)
            for f in sorted((Path(shared) / "bandai").rglob("*.bvh*"))]


@dataclass
class _Acc:
    quat: List[np.ndarray] = field(default_factory=list)
    clip_id: List[np.ndarray] = field(default_factory=list)
    names: List[str] = field(default_factory=list)
    frames: int = 0
    by_rig: Dict[str, Dict[str, int]] = field(default_factory=dict)
    subjects: set = field(default_factory=set)


def _shared_reference_frames(files: Sequence[ClipSource]) -> set:
    """Clips whose frame 0 is shared with another clip of the same folder and rig."""
    from .mocap_batch import shared_reference_frames

    groups: Dict[Tuple[Path, Optional[float]], List[Path]] = {}
    for c in files:
        groups.setdefault((c.path.parent, c.source_fps), []).append(c.path)
    shared: set = set()
    for (_, fps), paths in groups.items():
        shared |= set(shared_reference_frames(paths, source_fps=fps))
    return shared


def _collect(files: Sequence[ClipSource], cfg: DefaultConfig, progress: bool) -> Tuple[Dict[str, _Acc], List[Dict]]:
    from tqdm import tqdm

    from .mocap_batch import convert_mocap

    shared_ref = _shared_reference_frames(files)
    acc: Dict[str, _Acc] = {}
    failed = []
    for c in tqdm(files, desc="default pose sets", unit="clip", disable=not progress):
        try:
            res, _ = convert_mocap(c.path, fps=cfg.fps, source_fps=c.source_fps, shared_reference=c.path in shared_ref)
        except (ValueError, KeyError, OSError, RecursionError) as e:
            log.warning("skipping %s: %s", c.path, e)
            failed.append({"file": str(c.path), "error": str(e)})
            continue
        q = to_body_quat(torch.from_numpy(res.motion.pose_body))
        keep = dedup_consecutive(q, cfg.min_angle_deg)
        a = acc.setdefault(c.split, _Acc())
        a.clip_id.append(np.full(len(keep), len(a.names), np.int32))
        a.names.append(c.label)
        a.quat.append(q[keep].numpy())
        a.frames += len(q)
        r = a.by_rig.setdefault(c.rig, {"clips": 0, "poses": 0})
        r["clips"] += 1
        r["poses"] += int(len(keep))
        a.subjects.add(c.subject or "unknown")
    return acc, failed


def build_default(shared: Union[str, Path], out: Union[str, Path], cfg: DefaultConfig = DefaultConfig(),
                  dtype=np.float32, progress: bool = True) -> Dict:
    """Convert, split, deduplicate and save ``{train,val,test}.npz`` (and, with Bandai-Namco
    clips present and ``cfg.bandai``, ``test_bandai.npz``) under ``out``.

    Returns:
        a summary dict (also written to ``out/summary.json``): poses, clips, subjects and rigs
        per split, failures, config.
    Raises:
        FileNotFoundError: ``shared`` holds no CMU clips.
    """
    shared, out = Path(shared), Path(out)
    files = cmu_clip_sources(shared)
    if not files:
        raise FileNotFoundError(f"{shared}: no CMU clips found (cmu-cc3/, cmu-std/, cmu-daz/, cmu-amc/)")
    if cfg.bandai:
        files += bandai_clip_sources(shared)
    acc, failed = _collect(files, cfg, progress)
    cmu_source = (f"CMU mocap ({', '.join(sorted({c.label.split('/')[0] for c in files if c.rig != 'bandai'}))}; "
                  f"subject-disjoint split, held-out subjects {CMU_SPLITS}) converted with posendf data mocap. "
                  f"{CMU_ATTRIBUTION}")
    summary: Dict = {"config": asdict(cfg), "split_rule": {"held_out_subjects": CMU_SPLITS, "other_subjects": "train"},
                     "splits": {}, "failed": failed}
    for split in SPLITS + ((CROSS_SOURCE_SPLIT,) if CROSS_SOURCE_SPLIT in acc else ()):
        a = acc.get(split, _Acc())
        q = np.concatenate(a.quat) if a.quat else np.zeros((0, 21, 4), np.float32)
        cid = np.concatenate(a.clip_id) if a.clip_id else np.zeros(0, np.int32)
        if len(q) == 0:
            log.warning("split %s is empty", split)
        else:
            source = (f"{BANDAI_ATTRIBUTION}; converted with posendf data mocap. Cross-source test data: "
                      "do not redistribute, never train on it" if split == CROSS_SOURCE_SPLIT else cmu_source)
            save_pose_set(out / f"{split}.npz", q, cid, a.names, source=source, dtype=dtype)
        summary["splits"][split] = {"poses": int(len(q)), "clips": len(a.names), "frames_before_dedup": a.frames,
                                    "subjects": sorted(a.subjects), "rigs": a.by_rig}
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
        rigs = ", ".join(f"{r} {v['poses']}" for r, v in sorted(s.get("rigs", {}).items()))
        subjects = f"; subjects {', '.join(s['subjects'])}" if s.get("subjects") else ""
        print(f"{split:>11}: {s['poses']:>7} poses from {s['clips']:>4} clips" + (f" ({rigs}{subjects})" if rigs else ""))
    print(f"wrote {out}")
    return 1 if summary.get("failed") else 0


def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add ``posendf data default``."""
    p = subparsers.add_parser(
        "default",
        help="build the default train/val/test pose sets from ../shared/data (CMU, Bandai-Namco)",
        description=(
            "Convert every CMU clip in the shared data folder (cmu-cc3, cmu-std, cmu-daz BVH and cmu-amc ASF/AMC; "
            "four rigs) to SMPL, split by subject (test = subjects 2, 49, 94; val = 6, 35, 16; every other or "
            "unknown subject train), resample to --fps, drop near-identical consecutive poses and write "
            "OUT/{train,val,test}.npz pose sets ((N,21,4) quaternions w,x,y,z + clip ids) and OUT/summary.json "
            "with the counts. The Bandai-Namco clips (CC BY-NC-ND) become a separate cross-source test split "
            "OUT/test_bandai.npz (never trained on, never shipped). Without a shared data folder it writes the "
            "embedded CMU pose sets instead."
        ),
    )
    p.add_argument("--shared", default=None, metavar="DIR",
                   help="shared data folder (default: $POSENDF_SHARED_DATA or ../shared/data)")
    p.add_argument("--out", default="data/default", metavar="DIR", help="output folder (default: data/default)")
    p.add_argument("--fps", type=float, default=30.0, help="resample clips to this frame rate first (default 30)")
    p.add_argument("--min-angle", type=float, default=5.0,
                   help="drop a pose unless some joint turned by this many degrees since the last kept one (default 5)")
    p.add_argument("--no-bandai", action="store_true", help="CMU only: no cross-source test split")
    p.add_argument("--write-assets", action="store_true",
                   help="maintainers: rebuild the shipped CMU-only float16 arrays in posendf_plugin/assets")
    p.set_defaults(func=_cli)
    return p
