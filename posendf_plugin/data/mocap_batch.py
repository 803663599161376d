"""``posendf data mocap`` (alias ``posendf data bvh``): convert BVH and ASF/AMC mocap files or
folders to AMASS-layout SMPL ``.npz`` clips, with a per-clip report.

* Inputs: ``.bvh`` / ``.bvh.gz`` and ``.amc`` / ``.amc.gz`` files, or folders searched
  recursively. An AMC's skeleton is ``--asf FILE``, else the sibling ``<subject>.asf[.gz]``
  (``35_01.amc`` -> ``35.asf``), else the only ``.asf`` in its folder
  (:func:`~posendf_plugin.data.asf.find_asf_for`).
* Frame rate: a BVH's ``Frame Time``, an AMC's 120 fps (CMU), either overridden by
  ``--source-fps``; ``--fps`` resamples the output.
* Reference frames (a T-pose or shared bind pose in frame 0) are dropped and reported
  (:mod:`posendf_plugin.data.refpose`; ``--keep-reference-frames`` keeps them).
* Output names: ``<clip>.npz`` under ``--out``, keeping the sub-folders of a folder input;
  inputs that would get the same name are told apart by their parent folders, and two files of
  one clip in one folder (``walk.bvh`` next to ``walk.bvh.gz``) are refused.
* Bad files (unreadable, truncated, ASF/AMC that disagree, a rig that cannot be mapped, every
  frame identical) are reported and skipped; the good ones are written; the exit status is 1
  when some failed, 2 when none could be converted.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..io import save_json
from .asf import AsfSkeleton, amc_clip_name, find_asf_for, read_amc, read_asf
from .bvh import BvhClip, bvh_clip_name, read_bvh
from .convert import ConversionResult, convert_clip, plot_frames, quality_report
from .motion import Motion, save_motion
from .refpose import ReferenceFrame, detect_reference_frame, drop_frames, shared_first_frames
from .rigs import RigProfile, detect_rig, load_rig_yaml

__all__ = [
    "MOCAP_SUFFIXES",
    "find_mocap_files",
    "find_bvh_files",
    "read_mocap",
    "convert_mocap",
    "run_mocap",
    "shared_reference_frames",
    "run_bvh",
    "BatchSummary",
    "register_cli",
]

log = logging.getLogger(__name__)

#: file name endings read as motion (lower case)
MOCAP_SUFFIXES: Tuple[str, ...] = (".bvh", ".bvh.gz", ".amc", ".amc.gz")


def _is_mocap(p: Path) -> bool:
    return p.name.lower().endswith(MOCAP_SUFFIXES)


def _is_amc(p: Path) -> bool:
    return p.name.lower().endswith((".amc", ".amc.gz"))


def _clip_name(p: Path) -> str:
    return amc_clip_name(p) if _is_amc(p) else bvh_clip_name(p)


def find_mocap_files(inputs: Sequence[Union[str, Path]]) -> List[Tuple[Path, Path]]:
    """Expand files and folders into ``(file, relative output stem)`` pairs with distinct stems.

    A folder keeps its sub-folders in the stems. Inputs whose stems collide (``a/walk.bvh.gz``
    and ``b/walk.bvh.gz``) get their parent folder names prepended (``a/walk``, ``b/walk``); a
    file given twice is read once.

    Raises:
        FileNotFoundError: an input does not exist, or a folder holds no mocap file.
        ValueError: two files of one folder would write the same clip (``walk.bvh`` and
            ``walk.bvh.gz``).
    """
    found: List[Tuple[Path, Path]] = []
    seen = set()
    for inp in inputs:
        inp = Path(inp)
        if inp.is_dir():
            files = sorted(p for p in inp.rglob("*") if p.is_file() and _is_mocap(p))
            if not files:
                raise FileNotFoundError(f"{inp}: folder contains no .bvh or .bvh.gz (nor .amc / .amc.gz) motion files")
            pairs = [(f, f.parent.relative_to(inp) / _clip_name(f)) for f in files]
        elif inp.is_file():
            if inp.name.lower().endswith((".asf", ".asf.gz")):
                raise ValueError(f"{inp}: an ASF file is a skeleton, not a motion; pass the .amc motions "
                                 f"(with --asf {inp} if it is not next to them)")
            pairs = [(inp, Path(_clip_name(inp)))]
        else:
            raise FileNotFoundError(f"{inp}: no such file or folder")
        for f, rel in pairs:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                found.append((f, rel))
    # tell colliding stems apart by the parent folders of the files
    for depth in range(1, 64):
        groups: Dict[str, List[int]] = {}
        for i, (_, rel) in enumerate(found):
            groups.setdefault(rel.as_posix().lower(), []).append(i)
        clashes = [g for g in groups.values() if len(g) > 1]
        if not clashes:
            return found
        for g in clashes:
            parents = {found[i][0].resolve().parent for i in g}
            if len(parents) < len(g):
                a, b = _same_folder_pair(found, g)
                raise ValueError(
                    f"{a} and {b} would both be written as {found[g[0]][1].as_posix()}.npz (the same clip in "
                    "two files of one folder); pass only one of them"
                )
            for i in g:  # the last `depth` folder names above the file, never an absolute path
                f = found[i][0]
                parts = [q for q in f.resolve().parent.parts if q not in (f.resolve().anchor, "")]
                found[i] = (f, Path(*parts[-depth:], _clip_name(f)))
    raise ValueError(f"cannot give distinct output names to {len(found)} inputs")  # pragma: no cover


def _same_folder_pair(found, group) -> Tuple[Path, Path]:
    by_parent: Dict[Path, Path] = {}
    for i in group:
        f = found[i][0]
        p = f.resolve().parent
        if p in by_parent:
            return by_parent[p], f
        by_parent[p] = f
    return found[group[0]][0], found[group[1]][0]


def find_bvh_files(inputs: Sequence[Union[str, Path]]) -> List[Tuple[Path, Path]]:
    """Old name of :func:`find_mocap_files` (it also finds ``.amc`` files now)."""
    return find_mocap_files(inputs)


def read_mocap(path: Union[str, Path], asf: Optional[Union[str, Path, AsfSkeleton]] = None,
               source_fps: Optional[float] = None, max_frames: Optional[int] = None) -> Tuple[BvhClip, Optional[float]]:
    """Read a BVH or AMC file.

    Args:
        asf: the skeleton of an AMC file (default: :func:`~posendf_plugin.data.asf.find_asf_for`).
        source_fps: the file's true frame rate (overrides a BVH's ``Frame Time``; an AMC's
            default 120).
    Returns:
        ``(clip, metres per file unit)``; the unit is known for AMC (from the ASF) and ``None``
        for BVH.
    """
    path = Path(path)
    if source_fps is not None and not (np.isfinite(source_fps) and source_fps > 0):
        raise ValueError(f"--source-fps must be positive, got {source_fps}")
    if _is_amc(path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such AMC file")
        skel = asf if isinstance(asf, AsfSkeleton) else read_asf(asf if asf is not None else find_asf_for(path))
        clip = read_amc(path, skel, fps=source_fps or 120.0, max_frames=max_frames)
        return clip, skel.metres_per_unit
    clip = read_bvh(path, max_frames=max_frames)
    if source_fps is not None:
        clip = dataclasses.replace(clip, frame_time=1.0 / float(source_fps))
    elif clip.frame_time > 1.0:  # no capture runs below 1 fps: a Frame Time written in milliseconds
        raise ValueError(f"{path}: Frame Time {clip.frame_time:g} s ({1.0 / clip.frame_time:.3g} fps) is no mocap frame "
                         "rate (milliseconds?); give the true rate with --source-fps (e.g. 120)")
    return clip, None


def _check_moves(clip: BvhClip) -> None:
    if clip.num_frames < 2:
        return
    r = np.abs(clip.local_rot - clip.local_rot[:1]).max()
    t = np.abs(clip.local_trans - clip.local_trans[:1]).max()
    scale = max(1.0, float(np.abs(clip.offsets).max()))
    if r < 1e-9 and t < 1e-9 * scale:
        raise ValueError(
            f"{clip.path}: all {clip.num_frames} frames are identical (a still pose, not motion); "
            "nothing to convert"
        )


def convert_mocap(path: Union[str, Path], rig: Optional[RigProfile] = None, fps: Optional[float] = None,
                  source_fps: Optional[float] = None, asf: Optional[Union[str, Path, AsfSkeleton]] = None,
                  drop_reference: bool = True, shared_reference: bool = False,
                  ) -> Tuple[ConversionResult, Optional[ReferenceFrame]]:
    """Read and convert one BVH or AMC file.

    Args:
        rig: a rig profile (default: detected from the joint names / hierarchy); an AMC's
            units come from its ASF unless the profile sets ``scale``.
        fps: resample the output to this rate.
        source_fps, asf: see :func:`read_mocap`.
        drop_reference: drop a reference frame 0 (:func:`~posendf_plugin.data.refpose.detect_reference_frame`).
        shared_reference: frame 0 is shared with another clip of the rig in the batch.
    Returns:
        ``(result, the dropped reference frame or None)``.
    Raises:
        ValueError / FileNotFoundError: bad file; the message names it.
    """
    path = Path(path)
    clip, unit = read_mocap(path, asf=asf, source_fps=source_fps)
    _check_moves(clip)
    ref = detect_reference_frame(clip, shared=shared_reference) if drop_reference else None
    if ref is not None:
        clip = drop_frames(clip, 1)
        _check_moves(clip)
    if unit is not None:
        if rig is None:
            rig = detect_rig(clip.names, str(path), parents=clip.parents, offsets=clip.offsets).profile
        if rig.scale is None:
            rig = dataclasses.replace(rig, scale=unit)
    res = convert_clip(clip, rig=rig, fps=fps, name=_clip_name(path))
    return res, ref


@dataclass
class BatchSummary:
    """What a batch conversion did: one dict per converted / failed file."""

    converted: List[Dict] = field(default_factory=list)
    failed: List[Dict] = field(default_factory=list)


def shared_reference_frames(files: Sequence[Path], asf: Optional[AsfSkeleton] = None,
                            source_fps: Optional[float] = None) -> Dict[Path, int]:
    """Files whose frame 0 is shared with other clips of the same rig among ``files``
    (:func:`~posendf_plugin.data.refpose.shared_first_frames`): file -> clips sharing it.
    Files that cannot be read are left out (the conversion reports them)."""
    first: Dict[Path, BvhClip] = {}
    for f in files:
        try:
            first[f] = read_mocap(f, asf=asf, source_fps=source_fps, max_frames=1)[0]
        except (ValueError, KeyError, OSError, RecursionError):
            continue
    return shared_first_frames(first)  # type: ignore[return-value]


#: median root speed (m/s) above which a converted clip's frame rate is questioned (a sprint is ~10 m/s
#: at its peak; a clip read at 4 × its true rate, e.g. a 30 fps AMC at CMU's 120, walks at ~6 m/s)
IMPLAUSIBLE_ROOT_SPEED = 6.0


def root_speed(motion: Motion) -> float:
    """Median speed of the root over the clip, m/s (0 for a single frame)."""
    if len(motion) < 2:
        return 0.0
    return float(np.median(np.linalg.norm(np.diff(motion.trans, axis=0), axis=1)) * motion.fps)


def run_mocap(inputs: Sequence[Union[str, Path]], out: Union[str, Path], fps: Optional[float] = None,
              report: bool = False, rig: Optional[RigProfile] = None, plot_dir: Optional[Union[str, Path]] = None,
              progress: bool = True, source_fps: Optional[float] = None, asf: Optional[Union[str, Path]] = None,
              keep_reference_frames: bool = False, report_name: str = "mocap_report.json") -> BatchSummary:
    """Convert BVH / AMC files and folders to AMASS-layout ``.npz`` files under ``out``.

    Bad files are logged and listed in the summary (and in ``out/report_name`` with
    ``report=True``); the good ones are still written. Each converted entry records the
    reference frame dropped, if any (``reference_frame``).
    """
    from tqdm import tqdm

    if source_fps is not None and not (np.isfinite(source_fps) and source_fps > 0):
        raise ValueError(f"--source-fps must be positive, got {source_fps}")
    skel = read_asf(asf) if asf is not None else None
    files = find_mocap_files(inputs)
    out = Path(out)
    shared = {} if keep_reference_frames or len(files) < 2 else shared_reference_frames([f for f, _ in files], skel, source_fps)
    summary = BatchSummary()
    single = len(files) == 1  # one file: its error is the command's one-line error, not a warning too
    for f, rel in tqdm(files, desc="mocap -> smpl", unit="clip", disable=not progress or single):
        try:
            res, ref = convert_mocap(f, rig=rig, fps=fps, source_fps=source_fps, asf=skel,
                                     drop_reference=not keep_reference_frames, shared_reference=f in shared)
            dest = out / rel.parent / f"{rel.name}.npz"
            save_motion(dest, res.motion)
            entry = {"file": str(f), "out": str(dest), "rig": res.mapping.profile.name,
                     "frames": len(res.motion), "fps": res.motion.fps}
            speed = root_speed(res.motion)
            if speed > IMPLAUSIBLE_ROOT_SPEED:
                entry["median_root_speed_m_s"] = round(speed, 2)
                log.warning("%s: the root moves at a median %.1f m/s at %g fps — faster than a sprint; is the "
                            "frame rate right? pass the file's true rate with --source-fps", f, speed, res.motion.fps)
            if ref is not None:
                entry["reference_frame"] = {"frame": ref.frame, "reason": ref.reason, "jump_deg": round(ref.jump_deg, 1),
                                            "median_step_deg": round(ref.median_step_deg, 2)}
                if ref.reason == "shared":
                    entry["reference_frame"]["clips_sharing_it"] = shared[f]
            if report:
                q = quality_report(res)
                entry.update(mean_deg=q.mean_deg, p95_deg=q.p95_deg, max_deg=q.max_deg, bones=q.num_bones,
                             all_bones_mean_deg=q.all_mean_deg, all_bones_p95_deg=q.all_p95_deg,
                             hinge_offaxis_deg=q.hinge_offaxis_deg,
                             per_bone_mean_deg=q.per_bone_mean_deg)
            if plot_dir is not None:
                entry["plot"] = str(plot_frames(res, Path(plot_dir) / rel.parent / f"{rel.name}.png"))
            summary.converted.append(entry)
        except (ValueError, KeyError, OSError, RecursionError, np.linalg.LinAlgError) as e:
            if isinstance(e, RecursionError):
                msg = "the skeleton is nested too deeply to process (corrupt file?)"
            else:
                msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            if str(f) not in msg:
                msg = f"{f}: {msg}"
            if not single:
                log.warning("skipping %s", msg)
            summary.failed.append({"file": str(f), "error": msg})
    if report:
        rows = summary.converted
        worst = max(rows, key=lambda r: r["p95_deg"]) if rows else None
        save_json(out / report_name, {
            "metric": "angle between SMPL bone directions (FK of SMPL_REST_JOINTS with the converted pose) and the "
                      "source skeleton's bone directions over all frames, degrees. mean/p95: all mapped articulated "
                      "bones (excluding the rigid sideways offsets pelvis->hips and spine3->collars, which are body "
                      "shape); all_bones_*: including them",
            "clips": rows, "failed": summary.failed,
            "overall": {
                "clips": len(rows),
                "frames": int(sum(r["frames"] for r in rows)),
                "reference_frames_dropped": sum("reference_frame" in r for r in rows),
                "mean_of_means_deg": float(np.mean([r["mean_deg"] for r in rows])) if rows else None,
                "frame_weighted_mean_deg": float(np.average([r["mean_deg"] for r in rows],
                                                            weights=[r["frames"] for r in rows])) if rows else None,
                "mean_of_p95_deg": float(np.mean([r["p95_deg"] for r in rows])) if rows else None,
                "worst_mean_deg": float(max(r["mean_deg"] for r in rows)) if rows else None,
                "worst_p95_deg": worst["p95_deg"] if worst else None,
                "worst_p95_clip": worst["file"] if worst else None,
            },
        })
    return summary


def run_bvh(inputs: Sequence[Union[str, Path]], out: Union[str, Path], fps: Optional[float] = None,
            report: bool = False, rig: Optional[RigProfile] = None, plot_dir: Optional[Union[str, Path]] = None,
            progress: bool = True, **kw) -> BatchSummary:
    """:func:`run_mocap` writing its report as ``bvh_report.json`` (the ``data bvh`` name)."""
    kw.setdefault("report_name", "bvh_report.json")
    return run_mocap(inputs, out, fps=fps, report=report, rig=rig, plot_dir=plot_dir, progress=progress, **kw)


def _print_table(summary: BatchSummary, report: bool) -> None:
    if report and summary.converted:
        w = max(len(Path(r["file"]).name) for r in summary.converted)
        print(f"{'clip':<{w}}  {'rig':<8} {'frames':>7} {'mean°':>7} {'p95°':>7} {'all mean°':>10} {'all p95°':>9} "
              f"{'hinge off°':>10}")
        for r in summary.converted:
            print(f"{Path(r['file']).name:<{w}}  {r['rig']:<8} {r['frames']:>7} {r['mean_deg']:>7.2f} {r['p95_deg']:>7.2f} "
                  f"{r['all_bones_mean_deg']:>10.2f} {r['all_bones_p95_deg']:>9.2f} {r['hinge_offaxis_deg']:>10.2f}")
        means = [r["mean_deg"] for r in summary.converted]
        p95s = [r["p95_deg"] for r in summary.converted]
        print(f"{len(means)} clip(s), articulated bones: mean of means {np.mean(means):.2f}°, worst mean "
              f"{max(means):.2f}°, worst p95 {max(p95s):.2f}° (all_* columns include pelvis->hip and "
              "spine3->collar offsets)")
    dropped = [r for r in summary.converted if "reference_frame" in r]
    if dropped:
        reasons: Dict[str, int] = {}
        for r in dropped:
            reasons[r["reference_frame"]["reason"]] = reasons.get(r["reference_frame"]["reason"], 0) + 1
        names = ", ".join(Path(r["file"]).name for r in dropped[:5]) + (", ..." if len(dropped) > 5 else "")
        print(f"dropped reference frame 0 of {len(dropped)} clip(s) ({names}: "
              + ", ".join(f"{n} {k}" for k, n in sorted(reasons.items()))
              + "; --keep-reference-frames keeps them)")
    print(f"converted {len(summary.converted)} clip(s), failed {len(summary.failed)}")
    for r in summary.failed:
        print(f"  FAILED {r['error']}")


def _cli(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if args.fps is not None and not args.fps > 0:
        raise ValueError(f"--fps must be positive, got {args.fps}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: --out must be a folder, but a file of that name exists; pass another folder")
    rig = load_rig_yaml(args.rig) if args.rig else None
    summary = run_mocap(args.inputs, args.out, fps=args.fps, report=args.report, rig=rig, plot_dir=args.plot,
                        source_fps=args.source_fps, asf=args.asf, keep_reference_frames=args.keep_reference_frames,
                        report_name=args.report_name)
    if not summary.converted and len(summary.failed) == 1:
        raise ValueError(summary.failed[0]["error"])
    _print_table(summary, args.report)
    if not summary.converted:
        raise ValueError(f"no clip could be converted ({len(summary.failed)} failed); see the messages above")
    return 1 if summary.failed else 0


def _add_parser(subparsers, name: str, help_text: str, report_name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_text,
        description=(
            "Retarget motion capture onto the SMPL skeleton: BVH (.bvh / .bvh.gz; CC3/iClone, CMU, CMU 3ds-Max, "
            "CMU DAZ, Bandai-Namco, Mixamo and LAFAN1 rigs are recognised from their joint names, other humanoid "
            "rigs from common naming conventions or the shape of the joint tree, any rig via --rig) and CMU's "
            "native ASF/AMC (.amc / .amc.gz with its .asf skeleton). Writes one .npz per clip under --out, named "
            "after the clip (folders keep their sub-folders; same-named inputs from different folders keep their "
            "parent folder name), in the AMASS layout: root_orient (N,3) and trans (N,3, metres) in a Z-up world, "
            "pose_body (N,63), poses (N,156), betas, mocap_framerate, gender. A reference pose in frame 0 "
            "(T-pose, shared bind pose) is dropped and reported. Bad files are reported and skipped; the exit "
            "status is 1 when some failed."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="BVH / AMC files or folders (searched recursively; .asf files are skeletons, not inputs)")
    p.add_argument("--out", required=True, help="output folder for the .npz clips")
    p.add_argument("--fps", type=float, default=None, help="resample to this frame rate (default: keep the source's)")
    p.add_argument("--source-fps", type=float, default=None, metavar="F",
                   help="the files' true frame rate: overrides a BVH's 'Frame Time'; sets an AMC's (default 120, CMU)")
    p.add_argument("--asf", default=None, metavar="FILE",
                   help="ASF skeleton for the AMC inputs (default: the sibling <subject>.asf, e.g. 35.asf for "
                        "35_01.amc, or the only .asf in the folder)")
    p.add_argument("--keep-reference-frames", action="store_true",
                   help="keep a frame 0 detected as a reference pose (T-pose / shared bind pose; dropped by default)")
    p.add_argument("--report", action="store_true",
                   help=f"measure bone-direction error (mean / p95 degrees per clip), print a table and write "
                        f"OUT/{report_name}")
    p.add_argument("--rig", default=None, metavar="FILE", help="YAML joint mapping for a rig not recognised automatically")
    p.add_argument("--plot", default=None, metavar="DIR", help="also render 4 frames per clip (source vs SMPL) to DIR/<clip>.png")
    p.set_defaults(func=_cli, report_name=report_name)
    return p


def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add ``posendf data mocap`` and its alias ``posendf data bvh``; returns the ``mocap`` parser."""
    _add_parser(subparsers, "bvh", "convert BVH (or ASF/AMC) mocap of any humanoid rig to AMASS-layout SMPL .npz "
                "clips (same as 'mocap')", "bvh_report.json")
    return _add_parser(subparsers, "mocap", "convert BVH or ASF/AMC mocap of any humanoid rig to AMASS-layout SMPL "
                       ".npz clips", "mocap_report.json")
