"""How far a pose set lies from the training poses: dNN (:func:`posendf_plugin.metrics.nearest_geodesic`,
radians) of a seeded sample of its poses to their nearest reference pose — the check behind
"validation data unlike the training data" in ``benchmarks/RESULTS.md`` (*Calibration*).

Without arguments: the shipped CMU val and test splits against the shipped training split.
``--data SET --reference SET`` (pose sets or motion folders, e.g. a style held out with
``benchmarks/hold_out_style.py``: its ``motions`` against its ``train.npz``) adds one row.

Examples::

    python benchmarks/split_distance.py
    python benchmarks/split_distance.py --data runs/heldout_style/motions --reference runs/heldout_style/train.npz
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import script_error  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    from posendf_plugin.data.default import default_pose_set
    from posendf_plugin.data.posesets import load_pose_set
    from posendf_plugin.metrics import nearest_geodesic

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, metavar="SET", help="a pose set or motion folder to measure")
    ap.add_argument("--reference", default=None, metavar="SET", help="with --data: its training poses")
    ap.add_argument("--poses", type=int, default=500, help="poses sampled per set (default 500)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    try:
        if (args.data is None) != (args.reference is None):
            raise ValueError("--data and --reference go together")
        if args.poses < 1 or args.threads < 1:
            raise ValueError(f"--poses and --threads must be >= 1, got {args.poses} and {args.threads}")
        if args.data is not None and Path(args.data).resolve() == Path(args.reference).resolve():
            raise ValueError("--data and --reference are the same set; --reference takes the training poses of --data")
        torch.set_num_threads(args.threads)
        train = default_pose_set("train").quat
        rows = [("CMU val split", default_pose_set("val").quat, train), ("CMU test split", default_pose_set("test").quat, train)]
        if args.data is not None:
            mine, ref = load_pose_set(args.data).quat, load_pose_set(args.reference).quat
            if len(mine) == len(ref) and torch.equal(mine, ref):  # e.g. a folder and its only file
                raise ValueError("--data and --reference hold the same poses; --reference takes the training poses of --data")
            rows.append((args.data, mine, ref))
        g = torch.Generator().manual_seed(args.seed)
        print(f"| pose set | dNN to its training poses, median (rad) | 10 % | 90 % |  ({args.poses} poses, seed {args.seed})")
        print("|---|---|---|---|")
        for name, q, ref in rows:
            q = q[torch.randperm(len(q), generator=g)[:args.poses]]
            d = nearest_geodesic(q.float(), ref.float())
            print(f"| {name} | {float(d.median()):.3f} | {float(d.quantile(0.1)):.3f} | {float(d.quantile(0.9)):.3f} |", flush=True)
    except (ValueError, FileNotFoundError, KeyError) as e:
        return script_error("split_distance.py", e)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
