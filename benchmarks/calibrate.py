"""Calibration of the fitting prior weights (``prior_scale``) on a **validation** set — the
shipped CMU val split (default), or ``--data PATH``: any validation pose set / motion folder,
e.g. one holding a rig and subjects not in training (``data/default/val.npz`` written by
``posendf data default``) — so the test subjects and the cross-source test clips that
``benchmarks/run.py`` reports stay unseen by every choice (test sets are refused).

* ``--task image_fit`` (default): the ``image_fit`` protocol (:mod:`benchmarks.tasks.image_fit`)
  on val poses — random shapes, known camera, 4 px noise, 20 % of keypoints dropped — with the
  library's default schedule (``ImageFitConfig()`` = ``configs/fit_image.yaml``).
* ``--task denoise``: the ``denoise`` protocol (:mod:`benchmarks.tasks.denoise`) on windows of
  the val clips at ``--noise-mm`` (default 40), ``DenoiseConfig()`` = ``configs/denoise.yaml``.
* ``--task completion``: the ``completion`` protocol (:mod:`benchmarks.tasks.completion`) on
  ``--poses`` val poses, 25 % and 50 % of the joints hidden; the grid value is VPoser's
  ``latent_weight``, for the distance fields the masked projection's ``--projection-steps`` ×
  ``--projection-step-size`` (``--completion-mode axis_angle``: Adam on the energy instead). Every
  prior starts from ``--init`` (default ``knn``: the mean of the hidden joints over the 50 poses of
  ``--reference``, default the shipped training split, nearest in the visible joints; ``mean``: the
  training mean pose). ``mean pose`` and ``knn start`` rows give those starts' own errors.

For each prior and each value of its ``prior_scale`` the mean errors are printed as a Markdown
table (one row per setting); ``--out FILE`` also writes them as JSON.

Examples::

    python benchmarks/calibrate.py                                   # the shipped image-fit grid
    python benchmarks/calibrate.py --task denoise                    # the shipped denoise grid
    python benchmarks/calibrate.py --task completion --priors none,vposer
    python benchmarks/calibrate.py --task completion --data DANCE_MOTIONS --reference TRAIN_WITHOUT_DANCE.npz
    python benchmarks/calibrate.py --task completion --priors posendf --projection-steps 1,3,10,30 --projection-step-size 0.5,1
    python benchmarks/calibrate.py --scales posendf=1000,3000,10000 --images 32
    python benchmarks/calibrate.py --priors none --init zero --bend 20,5,2
    python benchmarks/calibrate.py --checkpoint posendf=runs/cmu/model.pt
    python benchmarks/calibrate.py --data data/default/val.npz       # another validation set
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import PRIOR_NAMES, BenchContext, PriorUnavailable, parse_checkpoints, script_error, write_json  # noqa: E402
from posendf_plugin.io import check_output_file  # noqa: E402
from benchmarks.tasks import denoise as D  # noqa: E402
from benchmarks.tasks import image_fit as T  # noqa: E402

#: the grids behind the shipped ``prior_scale`` values (configs/denoise.yaml)
DENOISE_SCALES = {
    "none": [0.0],
    "gmm": [1e-10, 1e-9, 1e-8],
    "vposer": [1e-10, 1e-9, 1e-8],
    "posendf": [1e-6, 3e-6, 1e-5, 3e-5],
    "nrdf": [3e-7, 1e-6, 3e-6],
}
#: the grid behind ``fitting.completion.DEFAULT_LATENT_WEIGHT`` (VPoser latent completion)
COMPLETION_WEIGHTS = {"vposer": [1e-3, 1e-2, 0.1, 1.0, 10.0]}
#: the grid behind the shipped ``prior_scale`` values (configs/fit_image.yaml)
DEFAULT_SCALES = {
    "none": [0.0],
    "gmm": [2.0, 5.0, 10.0, 20.0, 40.0],
    "vposer": [0.3, 1.0, 3.0, 10.0],
    "posendf": [30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0],
    "nrdf": [3.0, 10.0, 30.0, 100.0, 300.0],
}


def _floats(text: str, n: int, what: str) -> List[float]:
    vals = [float(v) for v in text.split(",")]
    if len(vals) != n:
        raise ValueError(f"--{what} needs {n} comma-separated values (one per stage), got {text!r}")
    return vals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["image_fit", "denoise", "completion"], default="image_fit",
                    help="what to calibrate (default image_fit)")
    ap.add_argument("--priors", default="none,gmm,vposer,posendf,nrdf", help="comma-separated (default: all five)")
    ap.add_argument("--windows", type=int, default=30, help="denoise: windows of 60 frames (6 were too few to choose by)")
    ap.add_argument("--noise-mm", type=float, default=40.0, help="denoise: joint noise")
    ap.add_argument("--poses", type=int, default=200, help="completion: held-out poses")
    ap.add_argument("--scales", action="append", default=[], metavar="PRIOR=V1,V2,...",
                    help="prior_scale values to try for PRIOR (default: DEFAULT_SCALES)")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="PRIOR=PATH", help="weights replacing the shipped ones")
    ap.add_argument("--split", default="val", choices=["val", "train"],
                    help="shipped CMU pose split the problems are made from (default val; train for diagnosis; the test "
                         "split is never used to choose weights)")
    ap.add_argument("--data", default=None, metavar="PATH",
                    help="validation pose set (.npz) or folder of AMASS-layout motions instead of the shipped split "
                         "(test sets and the Bandai-Namco clips are refused)")
    ap.add_argument("--images", type=int, default=16, help="image_fit: synthetic images (default 16)")
    ap.add_argument("--seed", type=int, default=0, help="default 0")
    ap.add_argument("--init", choices=["mean", "zero", "truth", "knn"], default=None,
                    help="override init_pose; truth = start from the true pose (an oracle bound, image_fit only); "
                         "completion: its start (default knn; knn is for completion only)")
    ap.add_argument("--reference", default=None, metavar="POSES",
                    help="completion with --init knn: the pose set the neighbours come from (default: the shipped "
                         "training split); for --data holding a subject of that split, the training poses without it")
    ap.add_argument("--bend", default=None, help="override the stages' bend_weight, e.g. 20,5,2")
    ap.add_argument("--pose-l2", default=None, help="override the stages' pose_l2_weight")
    ap.add_argument("--iterations", default=None, help="image fit: override the stages' iterations, e.g. 80,80,80")
    ap.add_argument("--lr", default=None, help="image fit: override the stages' learning rates, e.g. 0.1,0.1,0.06")
    ap.add_argument("--latent-lr-scale", type=float, default=None, help="override VPoser's latent learning-rate factor")
    ap.add_argument("--prior-anneal", action="append", default=[], metavar="PRIOR=true|false",
                    help="image fit: whether PRIOR's weight follows the stages' annealing (ImageFitConfig.prior_anneal)")
    ap.add_argument("--squared-priors", default=None, metavar="A,B",
                    help="denoise: priors whose term is the squared energy (default: configs/denoise.yaml's; '' = none)")
    ap.add_argument("--prior-margin", action="append", default=[], metavar="PRIOR=M",
                    help="denoise: energy below which PRIOR's term is zero (default: configs/denoise.yaml's; 0 = the plain term)")
    D.add_data_term_args(ap)
    ap.add_argument("--projection-steps", default=None,
                    help="completion: masked-projection steps to try, e.g. 1,3,10 (default: the prior's shipped value)")
    ap.add_argument("--projection-step-size", default="0.5", help="completion: projection step sizes to try, e.g. 0.5,1")
    ap.add_argument("--completion-mode", default="auto", choices=["auto", "axis_angle", "projection", "vposer_latent"],
                    help="completion: complete_poses' parameterisation (auto: projection for distance fields)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except (ValueError, KeyError, OSError, PriorUnavailable) as e:  # bad input: one line, exit 2
        return script_error("calibrate.py", e)


def _run(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)

    scales: Dict[str, List[float]] = dict(
        {"image_fit": DEFAULT_SCALES, "denoise": DENOISE_SCALES, "completion": COMPLETION_WEIGHTS}[args.task])
    scales.update(_prior_values(args.scales, "--scales", "PRIOR=V[,V...] (e.g. posendf=30,100)",
                                lambda v: [float(x) for x in v.split(",")]))
    anneal = _prior_values(args.prior_anneal, "--prior-anneal", "PRIOR=true or PRIOR=false", _bool)
    data = None
    if args.data is not None:
        data = Path(args.data)
        why = _not_for_calibration(data)
        if why:
            raise ValueError(f"--data {data}: {why}")
    if args.reference is not None:
        if args.task != "completion" or args.init not in (None, "knn"):
            raise ValueError("--reference is the pose set of the completion task's kNN start (--task completion, "
                             "--init knn)")
        why = _not_for_calibration(Path(args.reference))
        if why:
            raise ValueError(f"--reference {args.reference}: {why}")
        if data is not None and Path(args.reference).resolve() == data.resolve() or \
                data is None and Path(args.reference).resolve().name == f"cmu_{args.split}.npz":
            raise ValueError(f"--reference {args.reference}: holds the poses being completed; give training poses "
                             "without them")
    priors = args.priors.split(",")
    for name in priors:
        if name not in PRIOR_NAMES:
            raise ValueError(f"--priors: unknown prior {name!r}; choose from {', '.join(PRIOR_NAMES)}")
    for item in args.scales:
        if item.split("=", 1)[0] not in priors:
            raise ValueError(f"--scales {item!r}: {item.split('=', 1)[0]} is not among --priors ({args.priors})")
    loaded: Dict[str, Any] = {}  # read now, not after the other priors' rows have run; used by the grid
    ckpts = parse_checkpoints(args.checkpoint, priors, loaded)
    count = {"image_fit": ("--images", args.images), "denoise": ("--windows", args.windows),
             "completion": ("--poses", args.poses)}[args.task]
    if count[1] < 1:
        raise ValueError(f"{count[0]} must be at least 1, got {count[1]}")
    if args.task == "completion" and args.projection_steps is not None:
        _ints(args.projection_steps, "--projection-steps")
    if args.out:
        check_output_file(args.out, what="--out", suffix=".json")
    ctx = BenchContext(seed=args.seed, progress=False, checkpoints=ckpts, preloaded=loaded, split=args.split, data=data)
    if data is not None:
        share = _test_share(ctx.test_poses())
        if share > 0.05:
            raise ValueError(f"--data {data}: {100 * share:.0f} % of its poses are poses of the shipped CMU test split; "
                             "weights are chosen on validation data only")
    if args.task == "denoise":
        return _denoise(args, ctx, scales)
    if args.task == "completion":
        return _completion(args, ctx, scales)
    images = T.synthetic_images(ctx, args.images)

    if args.init == "knn":
        raise ValueError("--init knn is for --task completion only")
    base = T.fit_config(ctx)
    stages = list(base.stages)
    if args.bend is not None:
        stages = [dataclasses.replace(s, bend_weight=w) for s, w in zip(stages, _floats(args.bend, len(stages), "bend"))]
    if args.pose_l2 is not None:
        stages = [dataclasses.replace(s, pose_l2_weight=w) for s, w in zip(stages, _floats(args.pose_l2, len(stages), "pose-l2"))]
    if args.iterations is not None:
        its = _floats(args.iterations, len(stages), "iterations")
        if not all(v >= 1 and v == int(v) for v in its):
            raise ValueError(f"--iterations takes whole numbers >= 1, got {args.iterations!r}")
        stages = [dataclasses.replace(s, iterations=int(v)) for s, v in zip(stages, its)]
    if args.lr is not None:
        lrs = _floats(args.lr, len(stages), "lr")
        if not all(0 < v < math.inf for v in lrs):
            raise ValueError(f"--lr takes positive numbers, got {args.lr!r}")
        stages = [dataclasses.replace(s, lr=v) for s, v in zip(stages, lrs)]
    over = {"stages": tuple(stages)}
    if args.init in ("mean", "zero"):
        over["init_pose"] = args.init
    if args.latent_lr_scale is not None:
        over["latent_lr_scale"] = args.latent_lr_scale
    over["prior_anneal"] = {**dict(base.prior_anneal), **anneal}
    base = dataclasses.replace(base, **over)

    print(f"{ctx.data_name}: {args.images} images, seed {args.seed}, init {'truth' if args.init == 'truth' else base.init_pose}\n")

    def evaluate(prior, cfg) -> Dict[str, float]:
        per, secs = [], []
        for im in images:
            t0 = time.perf_counter()
            fit, _ = T.fit_one(ctx, im, prior, cfg, from_truth=args.init == "truth")
            secs.append(time.perf_counter() - t0)
            per.append(T._errors(ctx, fit, im.gt_joints))
        return {**{k: float(np.mean([p[k] for p in per])) for k in per[0]}, "seconds_per_image": float(np.mean(secs))}

    columns = [("pa_mpjpe_mm", "PA-MPJPE mm", ".1f"), ("mpjpe_mm", "MPJPE mm", ".1f"),
               ("reprojection_px", "reprojection px", ".1f"), ("seconds_per_image", "s / image", ".2f")]
    rows = _grid(ctx, args.priors.split(","), scales, base, evaluate, columns)
    if args.out:
        write_json(Path(args.out), {"task": "image_fit", "split": args.split, "data": ctx.data_name, "images": args.images, "seed": args.seed,
                                    "config": base.to_dict(), "rows": rows})
    return 0


def _ints(text: str, option: str) -> List[int]:
    try:
        vals = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} takes comma-separated whole numbers, e.g. 1,3,10; got {text!r}") from None
    if any(v < 0 for v in vals):
        raise ValueError(f"{option} takes numbers >= 0, got {text!r}")
    return vals


def _test_share(poses: torch.Tensor) -> float:
    """Share of ``poses`` that are poses of the shipped CMU test split (rounded to 1e-4, either
    quaternion sign): a renamed or re-saved copy of it is still the test split."""
    from posendf_plugin.data.default import default_pose_set
    from posendf_plugin.rotations import quat_canonical

    def keys(q: torch.Tensor) -> List[bytes]:
        a = np.round(quat_canonical(q.double().reshape(-1, 21, 4)).numpy().reshape(len(q), -1), 4) + 0.0
        return [r.tobytes() for r in a]

    test = set(keys(default_pose_set("test").quat))
    mine = keys(poses)
    return float(np.mean([k in test for k in mine])) if mine else 0.0


def _not_for_calibration(path: Path) -> str:
    """Why ``path`` must not be used to choose weights ("" when it may): a missing path, or a
    file / folder named like a test split (``test.npz``, ``test_bandai.npz``, ``amass_test/``)
    or the Bandai-Namco clips (the cross-source test set)."""
    if not path.exists():
        return "no such file or folder"
    name = path.resolve().name
    words = re.split(r"[^a-z0-9]+", name.lower().split(".")[0])
    if path.is_dir():  # a folder holding a test set
        for f in sorted(path.rglob("*")):
            inner = re.split(r"[^a-z0-9]+", f.name.lower().split(".")[0])
            if "test" in inner or "bandai" in inner:
                return (f"it holds {f.relative_to(path)}, named like a test set or the Bandai-Namco cross-source test "
                        "clips; weights are chosen on validation data only")
    if "test" in words or "bandai" in words:
        return (f"'{name}' looks like a test set or the Bandai-Namco cross-source test clips; weights are chosen on "
                "validation data only (e.g. the val split written by 'posendf data default')")
    return ""


def _grid(ctx: BenchContext, priors: List[str], scales: Dict[str, List[float]], base, evaluate, columns) -> List[Dict]:
    """Run ``evaluate(prior, config)`` for every prior and each of its ``prior_scale`` values,
    printing a Markdown row per setting; returns the rows."""
    print("| prior | prior_scale | " + " | ".join(label for _, label, _ in columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    rows = []
    for name in priors:
        prior = ctx.prior(name, torch.device("cpu"), dict(getattr(base, "shipped_weights", {})).get(name))
        for s in scales.get(name, [1.0]):
            cfg = dataclasses.replace(base, prior_scale={**dict(base.prior_scale), name: s})
            row = {"prior": name, "prior_scale": s, **evaluate(prior, cfg)}
            rows.append(row)
            print(f"| {name} | {s:g} | " + " | ".join(format(row[k], f) for k, _, f in columns) + " |", flush=True)
    return rows


def _bool(value: str) -> bool:
    if value.strip().lower() not in ("true", "false"):
        raise ValueError(value)
    return value.strip().lower() == "true"


def _prior_values(items: List[str], option: str, form: str, convert: Callable[[str], Any]) -> Dict[str, Any]:
    """``PRIOR=VALUE`` items of a repeatable option -> ``{prior: convert(VALUE)}``; a missing ``=``,
    an empty prior name or a value ``convert`` refuses is one line naming ``option`` and ``form``."""
    out: Dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not (sep and name.strip()):
                raise ValueError(item)
            out[name.strip()] = convert(value)
        except ValueError:
            raise ValueError(f"{option} expects {form}, got {item!r}") from None
    return out


def _denoise(args, ctx: BenchContext, scales: Dict[str, List[float]]) -> int:
    from posendf_plugin.fitting.denoise import DenoiseConfig, denoise_window

    base = DenoiseConfig(noise_mm=args.noise_mm, **({} if args.squared_priors is None else
                                                     {"squared_priors": tuple(p for p in args.squared_priors.split(",") if p)}))
    margins = {**dict(base.prior_margin), **_prior_values(args.prior_margin, "--prior-margin", "PRIOR=M (e.g. posendf=0.05)", float)}
    try:
        base = D.with_data_term(dataclasses.replace(base, prior_margin=margins), args)
    except ValueError as e:
        raise ValueError(f"--task denoise: {e}") from None
    wins = D._windows(ctx, base.window, args.windows)
    if not wins:
        raise ValueError(f"no motion of at least {base.window} frames in {ctx.data_name}")
    bm = ctx.body_model()
    print(f"{ctx.data_name}: {len(wins)} windows of {base.window} frames from {len({w[0] for w in wins})} clips, "
          f"{args.noise_mm:g} mm noise, seed {args.seed}; prior margins {margins or 'none'}, data term {base.data_term}"
          f"{'' if args.data_weight_factor == 1 else f' x {args.data_weight_factor:g}'}, noise exponent {base.noise_exponent:g}\n")

    def evaluate(prior, cfg) -> Dict[str, float]:
        per, t0 = [], time.perf_counter()
        for wi, (_, _, win) in enumerate(wins):
            per.append(denoise_window(win, bm, prior, cfg, ctx.generator(1000 + wi))[1])  # same noise for every row
        return {**{k: float(np.mean([m[k] for m in per])) for k in ("mpjpe_mm", "v2v_mm", "accel_mm")},
                "seconds_per_window": (time.perf_counter() - t0) / len(per)}

    columns = [("mpjpe_mm", "MPJPE mm", ".2f"), ("v2v_mm", "V2V mm", ".2f"), ("accel_mm", "accel mm/frame²", ".2f"),
               ("seconds_per_window", "s / window", ".2f")]
    rows = _grid(ctx, args.priors.split(","), scales, base, evaluate, columns)
    if args.out:
        write_json(Path(args.out), {"task": "denoise", "split": args.split, "data": ctx.data_name, "windows": len(wins), "seed": args.seed,
                                    "config": base.to_dict(), "rows": rows})
    return 0


def _completion(args, ctx: BenchContext, scales: Dict[str, List[float]]) -> int:
    from benchmarks.tasks.completion import FRACTIONS, completion_problem
    from posendf_plugin.data.default import default_mean_pose
    from posendf_plugin.fitting.completion import _errors, evaluate_completion

    poses, masks = completion_problem(ctx, args.poses)
    n = len(poses)
    init = {"zero": "identity", None: "knn"}.get(args.init, args.init)  # the benchmark starts from the kNN fill
    if init == "truth":
        raise ValueError("--init truth is for --task image_fit only")
    reference = None
    if args.reference is not None:
        from posendf_plugin.data.posesets import load_pose_set

        reference = load_pose_set(args.reference).quat.float()
    print(f"{ctx.data_name}: {n} poses, 200 iterations, start {init}, seed {args.seed}\n")
    columns = [(f"{k}_{int(f * 100)}", f"{int(f * 100)} % {label}", ".2f" if k == "angle" else ".1f")
               for f in FRACTIONS for k, label in (("angle", "angle °"), ("position", "position mm"))]
    print("| prior | setting | " + " | ".join(label for _, label, _ in columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    rows = []

    def emit(name, w, per):
        row = {"prior": name, "setting": w}
        for f, (a, p) in zip(FRACTIONS, per):
            row[f"angle_{int(f * 100)}"], row[f"position_{int(f * 100)}"] = a, p
        rows.append(row)
        print(f"| {name} | {'' if w is None else w} | " + " | ".join(format(row[k], fm) for k, _, fm in columns) + " |", flush=True)

    mean = default_mean_pose().expand_as(poses)
    emit("mean pose", None, [_errors(torch.where(m[..., None], mean, poses), poses, m) for m in masks])
    fills = [None] * len(masks)  # the kNN fill of each mask, computed once for every prior and setting
    if init == "knn":
        from posendf_plugin.fitting.completion import _reference
        from posendf_plugin.fitting.knn import knn_fill

        ref = _reference(reference)
        fills = [knn_fill(poses, m, ref) for m in masks]
        emit("knn start", None, [_errors(f, poses, m) for f, m in zip(fills, masks)])
    from posendf_plugin.fitting.completion import SHIPPED_WEIGHTS, _can_project

    steps = [None] if args.projection_steps is None else _ints(args.projection_steps, "--projection-steps")
    sizes = [float(v) for v in args.projection_step_size.split(",")]
    for name in args.priors.split(","):
        prior = ctx.prior(name, torch.device("cpu"), SHIPPED_WEIGHTS.get(name))
        mode = args.completion_mode
        if mode in ("auto", "projection") and _can_project(prior):
            grid = [(f"projection {'shipped' if k is None else k} x {a:g}", {"projection_steps": k, "projection_step_size": a})
                    for k in steps for a in sizes]
        elif mode in ("auto", "vposer_latent"):
            grid = [(None if w is None else f"latent_weight {w:g}", {} if w is None else {"latent_weight": w})
                    for w in scales.get(name, [None])]
        else:
            grid = [(mode, {})]
        for label, kw in grid:
            per = []
            for m, fill in zip(masks, fills):
                ev = evaluate_completion(prior, poses=poses, masks=[m], n_poses=n, seed=ctx.seed, iterations=200, init=init,
                                         parameterisation=mode, reference=None if fill is not None else reference,
                                         knn_starts=None if fill is None else [fill], **kw)
                r = next(iter(ev.per_mask.values()))
                per.append((r["angle_deg"], r["position_mm"]))
            emit(name, label, per)
    if args.out:
        write_json(Path(args.out), {"task": "completion", "split": args.split, "poses": n, "seed": args.seed, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
