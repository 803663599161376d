"""Does mocap conversion depend on the rig? The same motion converted from different rigs.

1. **Real pair**: CMU trial 01_01 on the standard CMU BVH rig (``cmu-std/01_01``) and on the
   iClone CC3 rig (``cmu-cc3/001_01``), resampled to 30 fps and aligned in time (the offset
   that best matches the knee angles). The CC3 character has other proportions, so the motion
   itself differs slightly (its knees, a pure hinge, differ by 2-5°).
2. **Generated pairs**: real clips (converted from ``cmu-cc3``) written on generated rigs with
   other joint placements, spine counts, bone rolls and rest poses
   (:mod:`posendf_plugin.data.rerig`), converted back; every pair of rigs is compared.

Metric: per-joint geodesic angle between the two conversions' 21 body rotations, in degrees;
mean and 95th percentile over all joints and frames, plus the worst joints. Targets (issue
"Rig-invariant mocap conversion"): mean <= 3°, p95 <= 8°.

    python benchmarks/bench_rigs.py [--shared ../shared/data] [--clips 4] [--out runs/bench_rigs]
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from posendf_plugin import rotations as R  # noqa: E402
from posendf_plugin.data.convert import ConversionResult, convert_bvh, quality_report  # noqa: E402
from posendf_plugin.data.default import find_shared_data  # noqa: E402
from posendf_plugin.data.rerig import RIG_VARIANTS, variant_profile, write_rig_bvh  # noqa: E402
from posendf_plugin.io import save_json  # noqa: E402
from posendf_plugin.skeleton import BODY_JOINT_NAMES, to_body_quat  # noqa: E402

MEAN_TARGET_DEG = 3.0
P95_TARGET_DEG = 8.0


def body_quat(res: ConversionResult) -> torch.Tensor:
    """``(F, 21, 4)`` body rotations of a conversion."""
    return to_body_quat(torch.from_numpy(res.motion.pose_body).double())


def compare(qa: torch.Tensor, qb: torch.Tensor) -> Dict:
    """Per-joint geodesic differences (degrees) of two ``(F, 21, 4)`` pose sequences."""
    d = np.degrees(R.quat_geodesic_angle(qa, qb).numpy())
    per_joint = {n: round(float(d[:, j].mean()), 2) for j, n in enumerate(BODY_JOINT_NAMES)}
    worst = sorted(per_joint.items(), key=lambda kv: -kv[1])[:4]
    return {"frames": int(d.shape[0]), "mean_deg": float(d.mean()), "p95_deg": float(np.percentile(d, 95)),
            "worst_joints_mean_deg": dict(worst), "per_joint_mean_deg": per_joint}


def align(qa: torch.Tensor, qb: torch.Tensor, max_shift: int = 60) -> int:
    """Frame offset ``k`` (b[t + k] ~ a[t]) that best matches the knees and elbows."""
    hinges = [BODY_JOINT_NAMES.index(n) for n in ("left_knee", "right_knee", "left_elbow", "right_elbow")]
    best = (np.inf, 0)
    for k in range(-max_shift, max_shift + 1):
        ia = np.arange(len(qa))
        m = (ia + k >= 0) & (ia + k < len(qb))
        if m.sum() < 30:
            continue
        d = R.quat_geodesic_angle(qa[ia[m]][:, hinges], qb[ia[m] + k][:, hinges]).mean().item()
        best = min(best, (d, k))
    return best[1]


def real_pair(shared: Path) -> Optional[Dict]:
    a, b = shared / "cmu-std" / "01_01.bvh.gz", shared / "cmu-cc3" / "001_01.bvh.gz"
    if not (a.is_file() and b.is_file()):
        return None
    ra, rb = convert_bvh(a, fps=30), convert_bvh(b, fps=30)
    qa, qb = body_quat(ra), body_quat(rb)
    k = align(qa, qb)
    ia = np.arange(len(qa))
    m = (ia + k >= 0) & (ia + k < len(qb))
    out = compare(qa[ia[m]], qb[ia[m] + k])
    out.update(pair=f"{a.relative_to(shared)} ({ra.mapping.profile.name}) vs {b.relative_to(shared)} "
                    f"({rb.mapping.profile.name})", frame_offset=int(k))
    return out


def generated_pairs(shared: Optional[Path], clips: int, seed: int) -> List[Dict]:
    sources = []
    if shared is not None:
        files = sorted((shared / "cmu-cc3").glob("002_*.bvh*"))[:clips]  # the CMU test subject
        sources = [(f.name, body_quat(convert_bvh(f, fps=30))) for f in files]
    if not sources:
        from posendf_plugin.data.default import default_pose_set

        ps = default_pose_set("test")
        sources = [("embedded test split", ps.quat[:600].double())]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, q in sources:
            conv = {}
            for i, v in enumerate(RIG_VARIANTS):
                path = write_rig_bvh(Path(tmp) / f"{v}.bvh", q, v, roll_seed=None if v == "smpl" else seed + i)
                try:  # as a user would: the rig recognised from its joint names
                    res = convert_bvh(path)
                except ValueError:
                    res = convert_bvh(path, rig=variant_profile(v))
                conv[v] = (body_quat(res), quality_report(res), res.mapping.profile.name)
            for a, b in itertools.combinations(RIG_VARIANTS, 2):
                row = compare(conv[a][0], conv[b][0])
                row.update(source=name, pair=f"{a} ({conv[a][2]}) vs {b} ({conv[b][2]})",
                           bone_mean_deg={a: conv[a][1].mean_deg, b: conv[b][1].mean_deg})
                rows.append(row)
    return rows


def markdown(result: Dict) -> str:
    lines = ["| pair | source | frames | mean ° | p95 ° | worst joints (mean °) |", "|---|---|---|---|---|---|"]
    rows = ([result["real"]] if result.get("real") else []) + result["generated"]
    for r in rows:
        worst = ", ".join(f"{k} {v:.1f}" for k, v in r["worst_joints_mean_deg"].items())
        lines.append(f"| {r['pair']} | {r.get('source', 'real')} | {r['frames']} | {r['mean_deg']:.2f} | "
                     f"{r['p95_deg']:.2f} | {worst} |")
    s = result["summary"]
    lines.append("")
    lines.append(f"Worst pair: mean {s['worst_mean_deg']:.2f}° (target <= {MEAN_TARGET_DEG}), p95 "
                 f"{s['worst_p95_deg']:.2f}° (target <= {P95_TARGET_DEG}): {'met' if s['met'] else 'NOT met'}.")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", default=None, help="shared data folder (default: ../shared/data)")
    p.add_argument("--clips", type=int, default=4, help="real clips to re-rig (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bone rolls")
    p.add_argument("--out", default="runs/bench_rigs", help="output folder (results.json, results.md)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    shared = find_shared_data(args.shared)
    result: Dict = {"real": real_pair(shared) if shared is not None else None,
                    "generated": generated_pairs(shared, args.clips, args.seed)}
    rows = ([result["real"]] if result["real"] else []) + result["generated"]
    worst_mean = max(r["mean_deg"] for r in rows)
    worst_p95 = max(r["p95_deg"] for r in rows)
    result["summary"] = {"worst_mean_deg": worst_mean, "worst_p95_deg": worst_p95,
                         "met": bool(worst_mean <= MEAN_TARGET_DEG and worst_p95 <= P95_TARGET_DEG)}
    out = Path(args.out)
    save_json(out / "results.json", result)
    md = markdown(result)
    (out / "results.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
