"""Smoothness of interpolation paths against the projection's step limit and against the path
optimisation's smoothness weight — the checks behind :data:`posendf_plugin.prior.INTERPOLATION_PROJECTION`
and :data:`posendf_plugin.prior.INTERPOLATION_SMOOTHNESS`.

Paths: ``--pairs`` random pairs of poses of the split (seeded), ``--steps`` poses each, per-joint
slerp; the interior poses projected with each ``--max-step`` (and ``--max-iter``), and optimised as one
path with each ``--smoothness`` (:func:`posendf_plugin.prior.smooth_path`). Per setting:
the prior's mean f over the interior poses, the largest step between consecutive poses (RMS
per-joint angle, degrees), the mean of each path's largest step, how many paths have a step over
twice their slerp's largest, and the most projection steps a pose took.

Examples::

    python benchmarks/interpolation_steps.py
    python benchmarks/interpolation_steps.py --prior nrdf --max-step 1,0.1,0.02
    python benchmarks/interpolation_steps.py --data runs/heldout_style/motions --checkpoint runs/heldout_style/stage2/model.pt
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BenchContext, PriorUnavailable, rms_deg, script_error  # noqa: E402
from benchmarks.tasks.interpolation import _slerp  # noqa: E402
from posendf_plugin.rotations import nrdf_pose_distance  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default="posendf", choices=["posendf", "nrdf"])
    ap.add_argument("--split", default="val", choices=["val"], help="shipped split the poses come from (val; never test)")
    ap.add_argument("--data", default=None, metavar="PATH", help="a validation pose set / motion folder instead of the split")
    ap.add_argument("--checkpoint", default=None, metavar="MODEL", help="the field to use instead of the shipped one")
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--steps", type=int, default=11)
    ap.add_argument("--max-step", default="1,0.1,0.05,0.02", help="step limits to compare, e.g. 1,0.1,0.02")
    ap.add_argument("--max-iter", type=int, default=400)
    ap.add_argument("--smoothness", default="", help="path-optimisation weights to compare, e.g. 2,5,10")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        limits = [float(v) for v in args.max_step.split(",")]
        weights = [float(v) for v in args.smoothness.split(",") if v.strip()]
    except ValueError:
        limits, weights = [], []
    if not limits or not all(0 < v < math.inf for v in limits + weights) or args.pairs < 1 or args.steps < 3 \
            or args.max_iter < 1 or args.seed < 0:
        print("interpolation_steps.py: error: --max-step and --smoothness take finite positive numbers (e.g. 1,0.02); "
              f"--pairs >= 1, --steps >= 3, --max-iter >= 1, --seed >= 0 (got --pairs {args.pairs}, --steps {args.steps}, "
              f"--max-iter {args.max_iter}, --seed {args.seed})", file=sys.stderr)
        return 2
    try:
        return _run(args, limits, weights)
    except (ValueError, FileNotFoundError, KeyError, PriorUnavailable) as e:
        return script_error("interpolation_steps.py", e)


def _run(args: argparse.Namespace, limits, weights) -> int:
    torch.set_num_threads(1)
    if args.data:
        from benchmarks.calibrate import _not_for_calibration

        why = _not_for_calibration(Path(args.data))
        if why:
            raise ValueError(f"--data {args.data}: {why}")
    if args.checkpoint and not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"--checkpoint {args.checkpoint}: no such file")
    kw = {"data": Path(args.data)} if args.data else {}
    if args.checkpoint:
        kw["checkpoints"] = {args.prior: Path(args.checkpoint)}
    ctx = BenchContext(seed=args.seed, progress=False, split=args.split, **kw)
    poses = ctx.test_poses()
    rng = ctx.rng(77)
    a = torch.as_tensor(rng.choice(len(poses), args.pairs))
    b = torch.as_tensor(rng.choice(len(poses), args.pairs))
    paths = _slerp(poses[a], poses[b], args.steps)
    prior = ctx.prior(args.prior, torch.device("cpu"))
    slerp_worst = rms_deg(nrdf_pose_distance(paths[:, 1:], paths[:, :-1])).max(1).values

    def row(label: str, p: torch.Tensor, iters: str) -> None:
        with torch.no_grad():
            f = prior.energy(p[:, 1:-1].reshape(-1, 21, 4)).reshape(-1)
        worst = rms_deg(nrdf_pose_distance(p[:, 1:], p[:, :-1])).max(1).values
        print(f"| {label} | {float(f.mean()):.5f} | {float(worst.max()):.2f} | {float(worst.mean()):.2f} | "
              f"{int((worst > 2 * slerp_worst).sum())} | {iters} |", flush=True)

    print(f"{args.prior} ({ctx.prior_source(args.prior)}), {ctx.data_name}, {args.pairs} pairs x {args.steps} poses, seed {args.seed}\n")
    print("| path | mean f | largest step ° | mean of each path's largest step ° | paths with a step > 2x slerp's | most projection steps |")
    print("|---|---|---|---|---|---|")
    row("slerp", paths, "0")
    for m in limits:
        res = prior.project(paths[:, 1:-1].reshape(-1, 21, 4), max_step=m, max_iter=args.max_iter)
        p = paths.clone()
        p[:, 1:-1] = res.poses.reshape(args.pairs, args.steps - 2, 21, 4)
        row(f"projected, max_step {m:g}", p, str(int(res.iterations.max())))
    from posendf_plugin.prior import smooth_path

    for w in weights:
        p = paths.clone()
        p[:, 1:-1] = smooth_path(prior.net, paths, w)
        row(f"smooth path, smoothness {w:g}", p, "-")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
