"""Calibration of the image-fitting prior weights on the **validation** subject (CMU 6), so the
test subject of ``benchmarks/run.py --task image_fit`` stays unseen by every choice.

Same synthetic protocol as the ``image_fit`` task (:mod:`benchmarks.tasks.image_fit`): poses of
the val split with random shapes, known camera, 4 px noise, 20 % of keypoints dropped. For each
prior and each value of its ``prior_scale`` the library's default schedule
(``ImageFitConfig()`` = ``configs/fit_image.yaml``) is run and the mean errors are printed as
a Markdown table (one row per setting); ``--out FILE`` also writes them as JSON.

Examples::

    python benchmarks/calibrate_image_fit.py                                   # the shipped grid
    python benchmarks/calibrate_image_fit.py --scales posendf=1000,3000,10000 --images 32
    python benchmarks/calibrate_image_fit.py --priors none --init zero --bend 20,5,2
    python benchmarks/calibrate_image_fit.py --checkpoint posendf=runs/cmu/model.pt
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BenchContext, write_json  # noqa: E402
from benchmarks.tasks import image_fit as T  # noqa: E402
from posendf_plugin.data.default import default_pose_set  # noqa: E402
from posendf_plugin.fitting.image import ImageFitConfig  # noqa: E402

#: the grid behind the shipped ``prior_scale`` values (configs/fit_image.yaml)
DEFAULT_SCALES = {
    "none": [0.0],
    "gmm": [0.5, 2.0, 5.0],
    "vposer": [0.3, 1.0, 3.0],
    "posendf": [300.0, 1000.0, 3000.0, 10000.0],
    "nrdf": [30.0, 100.0, 300.0, 1000.0],
}


def _floats(text: str, n: int, what: str) -> List[float]:
    vals = [float(v) for v in text.split(",")]
    if len(vals) != n:
        raise SystemExit(f"--{what} needs {n} comma-separated values (one per stage), got {text!r}")
    return vals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--priors", default="none,gmm,vposer,posendf,nrdf")
    ap.add_argument("--scales", action="append", default=[], metavar="PRIOR=V1,V2,...",
                    help="prior_scale values to try for PRIOR (default: DEFAULT_SCALES)")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="PRIOR=PATH", help="weights replacing the shipped ones")
    ap.add_argument("--split", default="val", choices=["val", "test", "train"], help="pose split the images are made from")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", choices=["mean", "zero"], default=None, help="override init_pose")
    ap.add_argument("--bend", default=None, help="override the stages' bend_weight, e.g. 20,5,2")
    ap.add_argument("--pose-l2", default=None, help="override the stages' pose_l2_weight")
    ap.add_argument("--latent-lr-scale", type=float, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    scales: Dict[str, List[float]] = dict(DEFAULT_SCALES)
    for item in args.scales:
        name, _, vals = item.partition("=")
        scales[name] = [float(v) for v in vals.split(",")]
    ckpts = {k: Path(v) for k, _, v in (c.partition("=") for c in args.checkpoint)}
    ctx = BenchContext(seed=args.seed, progress=False, checkpoints=ckpts)
    ctx._cache["test"] = default_pose_set(args.split).quat.float()  # the images' poses
    images = T.synthetic_images(ctx, args.images)

    base = T.fit_config(ctx)
    stages = list(base.stages)
    if args.bend is not None:
        stages = [dataclasses.replace(s, bend_weight=w) for s, w in zip(stages, _floats(args.bend, len(stages), "bend"))]
    if args.pose_l2 is not None:
        stages = [dataclasses.replace(s, pose_l2_weight=w) for s, w in zip(stages, _floats(args.pose_l2, len(stages), "pose-l2"))]
    over = {"stages": tuple(stages)}
    if args.init is not None:
        over["init_pose"] = args.init
    if args.latent_lr_scale is not None:
        over["latent_lr_scale"] = args.latent_lr_scale
    base = dataclasses.replace(base, **over)

    rows = []
    print(f"split {args.split}, {args.images} images, seed {args.seed}, init {base.init_pose}\n")
    print("| prior | prior_scale | PA-MPJPE mm | MPJPE mm | reprojection px | s / image |")
    print("|---|---|---|---|---|---|")
    for name in args.priors.split(","):
        prior = ctx.prior(name, torch.device("cpu"))
        for s in scales.get(name, [1.0]):
            cfg = dataclasses.replace(base, prior_scale={**dict(base.prior_scale), name: s})
            per, secs = [], []
            for im in images:
                t0 = time.perf_counter()
                fit, _ = T.fit_one(ctx, im, prior, cfg)
                secs.append(time.perf_counter() - t0)
                per.append(T._errors(ctx, fit, im.gt_joints))
            row = {"prior": name, "prior_scale": s, **{k: float(np.mean([p[k] for p in per])) for k in per[0]},
                   "seconds_per_image": float(np.mean(secs))}
            rows.append(row)
            print(f"| {name} | {s:g} | {row['pa_mpjpe_mm']:.1f} | {row['mpjpe_mm']:.1f} | {row['reprojection_px']:.1f} | "
                  f"{row['seconds_per_image']:.2f} |", flush=True)
    if args.out:
        write_json(Path(args.out), {"split": args.split, "images": args.images, "seed": args.seed,
                                    "config": ImageFitConfig.to_dict(base), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
