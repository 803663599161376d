"""Reference completions for the completion task: how much of the hidden joints the *data*
predicts, next to what a prior's samples predict — the diagnosis behind *Known limits* in
``benchmarks/RESULTS.md``.

Same poses, masks and metric as ``benchmarks/calibrate.py --task completion`` (200 poses of the
split, 25 % / 50 % of the joints hidden at random, geodesic angle error of the hidden joints).
Each ``--method`` fills the hidden joints of a pose with the chordal mean of that joint over the
``k`` poses of a reference set nearest in the *visible* joints (sum of per-joint geodesic angles;
:func:`posendf_plugin.fitting.knn.knn_fill`, the start ``posendf complete`` uses):

* ``train-knn`` — the reference set is the shipped training split: a nonparametric estimate of
  the conditional mean the data supports;
* ``sample-knn`` — the reference set is ``--samples`` poses drawn from the prior itself
  (``prior.sample``; for ``posendf`` the shipped model completion loads): what the prior's own
  distribution supports, independent of the completion procedure.

Examples::

    python benchmarks/completion_reference.py --method train-knn --k 1,10,50
    python benchmarks/completion_reference.py --method sample-knn --prior posendf --samples 30000 --k 10,50
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BenchContext  # noqa: E402
from benchmarks.tasks.completion import FRACTIONS, completion_problem  # noqa: E402
from posendf_plugin.fitting.completion import SHIPPED_WEIGHTS, _errors  # noqa: E402
from posendf_plugin.fitting.knn import knn_fill  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", choices=["train-knn", "sample-knn"], required=True)
    ap.add_argument("--k", default="10,50", help="neighbour counts, e.g. 1,10,50")
    ap.add_argument("--prior", default="posendf", help="sample-knn: the prior to sample")
    ap.add_argument("--samples", type=int, default=30000, help="sample-knn: how many samples")
    ap.add_argument("--split", choices=["val", "test"], default="val")
    ap.add_argument("--poses", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    try:
        ks = [int(v) for v in args.k.split(",")]
    except ValueError:
        ks = []
    if not ks or min(ks) < 1 or args.samples < 1 or args.poses < 1:
        raise SystemExit("--k expects positive integers (e.g. 10,50); --samples and --poses must be positive")
    torch.set_num_threads(args.threads)
    ctx = BenchContext(seed=args.seed, progress=False, split=args.split)
    poses, masks = completion_problem(ctx, args.poses)
    n = len(poses)
    if args.method == "train-knn":
        reference, what = ctx.train_poses().float(), "the training split"
    else:
        prior = ctx.prior(args.prior, torch.device("cpu"), SHIPPED_WEIGHTS.get(args.prior))
        reference, what = prior.sample(args.samples, seed=args.seed + 3).float(), f"{args.samples} samples of {args.prior}"
    print(f"split {args.split}, {n} poses; reference: {what} ({len(reference)} poses); hidden-joint angle ° at "
          + " / ".join(f"{int(100 * f)} %" for f in FRACTIONS), flush=True)
    for k in ks:
        errs = [_errors(knn_fill(poses, m, reference, k), poses, m)[0] for m in masks]
        print(f"{args.method} k={k}: " + " / ".join(f"{e:.2f}" for e in errs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
