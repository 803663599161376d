"""``posendf train | project | sample | interpolate``: the NDF commands of the CLI.

Each command prints a short summary; errors in the input are raised as ``ValueError`` /
``FileNotFoundError`` / ``KeyError`` and shown as one line by :func:`posendf_plugin.cli.main`.
"""
from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from ._checks import check_device
from .io import atomic_path, check_output_dir, check_output_file, finite_or_none, load_npz, save_json, save_npz
from .skeleton import SKELETON_SIDE_COLOURS
from .skeleton import SMPL_JOINT_NAMES as _JOINT_NAMES

__all__ = ["register", "draw_skeletons", "average_pairwise_distance", "SKELETON_SIDE_COLOURS"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _load_prior(args):
    from .prior import NRDF, PoseNDF

    cls = NRDF if getattr(args, "prior", "posendf") == "nrdf" else PoseNDF
    device = check_device(args.device)
    if args.checkpoint:
        return cls.from_checkpoint(args.checkpoint, device=device)
    return cls.from_pretrained(device=device)


def _project_kwargs(args) -> dict:
    return {k: v for k, v in (("method", args.method), ("max_iter", args.max_iter), ("tol", args.tol),
                              ("step_size", args.step_size)) if v is not None}


def _add_prior_args(p: argparse.ArgumentParser, projection: bool = True) -> None:
    p.add_argument("--checkpoint", default=None, help="model .pt from 'posendf train' (default: the shipped model)")
    p.add_argument("--prior", choices=("posendf", "nrdf"), default="posendf",
                   help="variant: posendf (Euclidean projection) or nrdf (Riemannian projection)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    if projection:
        p.add_argument("--method", choices=("posendf", "riemannian"), default=None,
                       help="projection step (default: the variant's)")
        p.add_argument("--max-iter", type=int, default=None, help="iteration cap (default 100)")
        p.add_argument("--tol", type=float, default=None, help="stop once f <= TOL (default 1e-3)")
        p.add_argument("--step-size", type=float, default=None, help="step size alpha (default 1.0)")


def _save_quat_motion(path: Path, q: torch.Tensor, fps: float = 30.0) -> Path:
    from .data.motion import Motion, save_motion
    from .skeleton import quat_to_pose

    body = quat_to_pose(q.detach().cpu().float(), 63).numpy()
    n = len(body)
    return save_motion(path, Motion(pose_body=body, root_orient=np.zeros((n, 3), np.float32),
                                    trans=np.zeros((n, 3), np.float32), fps=fps))


def _read_pose(spec: str) -> torch.Tensor:
    """``FILE`` or ``FILE:INDEX`` (a pose-set or motion ``.npz``) -> one pose ``(21, 4)``."""
    from .data.posesets import load_pose_set

    path, index = spec, 0
    if ":" in spec and not Path(spec).exists():
        path, _, idx = spec.rpartition(":")
        try:
            index = int(idx)
        except ValueError as e:
            raise ValueError(f"{spec!r}: expected FILE or FILE:INDEX with an integer frame index") from e
    q = load_pose_set(path).quat
    if not -len(q) <= index < len(q):
        raise ValueError(f"{path}: frame index {index} out of range (the file has {len(q)} poses)")
    return q[index]


def average_pairwise_distance(q: torch.Tensor) -> float:
    """APD: mean over pairs of samples of the mean per-joint distance between their skeletons
    (:func:`skeleton.body_joint_positions`, identity root), in **centimetres**."""
    from .skeleton import body_joint_positions

    n = q.shape[0]
    if n < 2:
        return float("nan")
    pos = body_joint_positions(q.detach().cpu().float())  # (n, 24, 3) metres
    d = torch.cdist(pos.transpose(0, 1), pos.transpose(0, 1)).mean(0)  # (n, n)
    return float(d.sum() / (n * (n - 1))) * 100.0


#: bone colours of the skeleton plots, (colour, legend text): the person's left limbs, right limbs, spine


def draw_skeletons(rows: Sequence[Tuple[str, torch.Tensor]], path: Path, titles: Optional[Sequence[str]] = None) -> Path:
    """PNG grid of front-view skeletons: one row per ``(label, q (n, 21, 4))`` (atomic write).

    Bones of the person's left limbs are blue, right limbs red, the spine black (a legend
    says so)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from .skeleton import SMPL_PARENTS, body_joint_positions

    ncol = max(len(q) for _, q in rows)
    fig = Figure(figsize=(1.3 * ncol + 0.6, 2.2 * len(rows)), dpi=90)
    FigureCanvasAgg(fig)
    for r, (label, q) in enumerate(rows):
        pos = body_joint_positions(q.detach().cpu().float()).numpy()
        for c in range(len(q)):
            ax = fig.add_subplot(len(rows), ncol, r * ncol + c + 1)
            p = pos[c]
            for j, par in enumerate(SMPL_PARENTS):
                if par >= 0:
                    side = SKELETON_SIDE_COLOURS[0 if "left" in _JOINT_NAMES[j] else 1 if "right" in _JOINT_NAMES[j] else 2][0]
                    ax.plot([p[j, 0], p[par, 0]], [p[j, 1], p[par, 1]], color=side, lw=1.5)
            ax.set_xlim(-1.0, 1.0)
            ax.set_ylim(-1.1, 0.9)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if titles is not None and c < len(titles):
                ax.set_title(titles[r * ncol + c] if len(titles) > ncol else titles[c], fontsize=7)
    legend = [Line2D([], [], color=c, lw=1.5, label=t) for c, t in SKELETON_SIDE_COLOURS]
    across = fig.get_figwidth() >= 4.5  # a narrow figure stacks the legend entries
    fig.set_figheight(fig.get_figheight() + (0.25 if across else 0.6))
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.25 if across else 0.6) / fig.get_figheight()))
    fig.legend(handles=legend, loc="upper center", ncol=len(legend) if across else 1, fontsize=7,
               frameon=False, bbox_to_anchor=(0.5, 1.0))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------


def _cmd_train(args) -> int:
    from .config import load_config
    from .training import train

    cfg = load_config(args.config)
    if args.out is not None:
        check_output_dir(args.out, "--out folder")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        cfg = cfg.replace(training={"num_threads": args.threads})
    if args.seed is not None:
        cfg = cfg.replace(experiment={"seed": args.seed})
    res = train(cfg, out_dir=args.out, data_dir=args.data, device=args.device, resume=args.resume,
                progress=not args.no_progress)
    h = res.history
    if res.model_path is not None:
        print(f"trained {len(h['epoch'])} epochs ({res.epochs_run} in this run); val MAE {h['val_mae'][-1]:.4f}; "
              f"model: {res.model_path}; curves: {res.out_dir / 'loss_curves.png'}")
    else:
        print(f"stopped after epoch {h['epoch'][-1] if h['epoch'] else 0}; continue with --resume ({res.out_dir})")
    return 0


def _cmd_ensemble(args) -> int:
    from .prior import save_ensemble

    check_output_file(args.out, inputs=args.models, what="--out file", suffix=".pt")
    out = save_ensemble(args.models, args.out, args.reduce)
    print(f"wrote {out}: the {args.reduce} of {len(args.models)} fields; use it with --checkpoint {out}")
    return 0


def _cmd_relabel(args) -> int:
    from .distill import relabel_training_data

    check_output_dir(args.out, "--out folder")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    res = relabel_training_data(args.teacher, args.data, args.out, progress=not args.no_progress)
    print(f"relabelled {res.samples} samples in {res.chunks} chunk(s) with {args.teacher} ({res.written} written, "
          f"{res.chunks - res.written} already complete; labels changed by {res.label_change:.4f} on average); "
          f"train the student with 'posendf train --config <the members' config> --data {res.out}'")
    return 0


def _cmd_project(args) -> int:
    from .data.motion import load_motion
    from .data.posesets import load_pose_set
    from .skeleton import set_body_pose, to_body_quat

    check_output_file(args.out, inputs=[args.poses], what="--out file")
    raw = load_npz(args.poses)
    q = load_pose_set(args.poses).quat if "quat" in raw else to_body_quat(load_motion(args.poses).pose_body)
    prior = _load_prior(args)
    t0 = time.perf_counter()
    before = prior.distance(q)
    res = prior.project(q, **_project_kwargs(args))
    secs = time.perf_counter() - t0
    out = Path(args.out)
    # the same file back: every key as it was, the body joints of each pose key replaced in its own layout
    arrays = dict(raw)
    keys = [k for k in _PROJECTED_KEYS if k in arrays]
    for k in keys:
        arrays[k] = set_body_pose(torch.from_numpy(np.asarray(arrays[k])), res.poses.cpu()).numpy()
    save_npz(out, **arrays)
    dropped = f"; left out {sorted(raw.objects)} (pickled objects are never read)" if raw.objects else ""
    print(f"projected {len(q)} poses in {secs:.2f} s: mean f {float(before.mean()):.4f} -> {float(res.distance.mean()):.4f}; "
          f"converged {float(res.converged.float().mean()) * 100:.1f}% (mean {float(res.iterations.float().mean()):.1f} steps); "
          f"wrote {out} (body joints of {', '.join(keys)} replaced, every other key as in the input{dropped})")
    return 0


#: the pose keys ``posendf project`` rewrites (each in its own layout); every other key is copied
_PROJECTED_KEYS = ("quat", "pose_body", "poses", "body_pose")


def _nearest_share(q: torch.Tensor, reference: torch.Tensor, near_deg: float) -> Tuple[float, float]:
    """Share of poses whose nearest reference pose is within an RMS per-joint geodesic angle of
    ``near_deg`` degrees (NRDF distance / √21), and the mean of that RMS angle in degrees."""
    from .data.labels import brute_force_knn

    d, _ = brute_force_knn(q.detach().cpu(), reference.cpu(), "nrdf", 1)
    rms_deg = d[:, 0] / math.sqrt(q.shape[1]) * 180.0 / math.pi
    return float((rms_deg <= near_deg).float().mean()), float(rms_deg.mean())


def _reference_poses(args) -> Tuple[Optional[torch.Tensor], str]:
    from .data.posesets import load_pose_set

    if args.reference:
        return load_pose_set(args.reference).quat, str(args.reference)
    try:
        from .data.default import default_pose_set

        return default_pose_set("train").quat.float(), "the default training pose set"
    except (ImportError, FileNotFoundError, ValueError, KeyError) as e:
        log.warning("no reference pose set (%s); pass --reference FILE for the nearest-pose statistic", e)
        return None, ""


def _cmd_sample(args) -> int:
    from .data.posesets import load_pose_set

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    if args.grid < 1:
        raise ValueError(f"--grid must be >= 1, got {args.grid}")
    if args.sigma is not None and not args.around:
        raise ValueError("--sigma is the noise added to the --around poses; give --around FILE with it")
    sigma = 0.5 if args.sigma is None else args.sigma
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"--sigma must be a finite number > 0 (radians of axis-angle noise), got {sigma}")
    if args.seed is not None and args.seed < 0:  # (beyond 2**63: cli._check_numbers)
        raise ValueError(f"--seed must be an integer in 0 .. 2**63 - 1, got {args.seed}")
    if not (math.isfinite(args.near_deg) and args.near_deg > 0):
        raise ValueError(f"--near-deg must be a finite number > 0 (degrees), got {args.near_deg}")
    out = check_output_dir(args.out, "--out folder")
    around = load_pose_set(args.around).quat if args.around else None
    ref, ref_name = _reference_poses(args)  # read before the work: a bad --reference fails fast
    prior = _load_prior(args)
    t0 = time.perf_counter()
    init, res = prior.sample_with_result(args.n, seed=args.seed, around=around, sigma=sigma, **_project_kwargs(args))
    secs = time.perf_counter() - t0
    _save_quat_motion(out / "samples.npz", res.poses)
    _save_quat_motion(out / "initial.npz", init)
    k = min(args.grid, args.n)
    f0 = prior.distance(init)
    draw_skeletons([("initial", init[:k]), ("projected", res.poses[:k])], out / "samples.png",
                   titles=[f"f={float(v):.2f}" for v in f0[:k]] + [f"f={float(v):.3f}" for v in res.distance[:k]])
    summary = {
        "n": args.n, "seed": args.seed, "seconds": secs,
        "mean_f_initial": float(f0.mean()), "mean_f_projected": float(res.distance.mean()),
        "converged_share": float(res.converged.float().mean()),
        # APD is undefined for a single sample: null in the JSON
        "apd_cm_initial": finite_or_none(average_pairwise_distance(init)),
        "apd_cm": finite_or_none(average_pairwise_distance(res.poses)),
        "near_threshold_deg_rms_per_joint": args.near_deg,
    }
    if ref is not None:
        share, mean_deg = _nearest_share(res.poses, ref, args.near_deg)
        share0, _ = _nearest_share(init, ref, args.near_deg)
        summary.update(reference=ref_name, near_share=share, near_share_initial=share0, mean_nearest_deg_rms=mean_deg)
    save_json(out / "summary.json", summary)
    msg = (f"sampled {args.n} poses in {secs:.2f} s: mean f {summary['mean_f_initial']:.3f} -> {summary['mean_f_projected']:.4f} "
           f"(converged {summary['converged_share'] * 100:.1f}%); "
           + (f"APD {summary['apd_cm']:.1f} cm" if summary["apd_cm"] is not None else "APD undefined for one sample"))
    if ref is not None:
        msg += (f"; {summary['near_share'] * 100:.1f}% within {args.near_deg:g} deg RMS per-joint geodesic distance "
                f"of a pose in {ref_name} (before projection: {summary['near_share_initial'] * 100:.1f}%)")
    print(msg + f"; wrote {out}/samples.npz, samples.png, summary.json")
    return 0


def _cmd_interpolate(args) -> int:
    if not 2 <= args.steps <= 1000:
        raise ValueError(f"--steps must be 2 .. 1000 (both ends included), got {args.steps}")
    out = check_output_dir(args.out, "--out folder")
    a, b = _read_pose(args.start), _read_pose(args.end)
    prior = _load_prior(args)
    if not 0 <= args.smoothness < float("inf"):
        raise ValueError(f"--smoothness must be a finite number >= 0 (0: project each pose on its own), got {args.smoothness}")
    proj = _project_kwargs(args)
    if args.smoothness and proj:
        raise ValueError(f"--{', --'.join(k.replace('_', '-') for k in sorted(proj))} set the per-pose projection; add "
                         "--smoothness 0 to use it (the default path optimisation does not project)")
    path = prior.interpolate(a, b, args.steps, project=True, smoothness=args.smoothness or None, **proj)
    plain = prior.interpolate(a, b, args.steps, project=False)
    f_path, f_plain = prior.distance(path), prior.distance(plain)
    _save_quat_motion(out / "interpolation.npz", path)
    _save_quat_motion(out / "slerp.npz", plain)
    shown = torch.linspace(0, args.steps - 1, min(args.steps, 20)).round().long()  # the PNG: at most 20 poses of the path
    label = "projected" if not args.smoothness or args.steps <= 2 else "smooth path"
    draw_skeletons([("slerp", plain[shown]), (label, path[shown])], out / "interpolation.png",
                   titles=[f"f={float(v):.3f}" for v in f_plain[shown]] + [f"f={float(v):.3f}" for v in f_path[shown]])
    inner = slice(1, -1) if args.steps > 2 else slice(None)
    summary = {"steps": args.steps, "smoothness": args.smoothness, "path": label, "mean_f_projected": float(f_path[inner].mean()), "mean_f_slerp": float(f_plain[inner].mean()),
               "f_projected": f_path.tolist(), "f_slerp": f_plain.tolist()}
    save_json(out / "summary.json", summary)
    which = "intermediate poses" if args.steps > 2 else "the two end poses; no intermediate pose with --steps 2"
    print(f"mean f along the path ({which}): {'smooth path' if args.smoothness else 'projected'} "
          f"{summary['mean_f_projected']:.4f} vs plain slerp "
          f"{summary['mean_f_slerp']:.4f}; wrote {out}/interpolation.npz, slerp.npz, interpolation.png")
    return 0


def register(subparsers) -> None:
    """Add ``train``, ``ensemble``, ``relabel``, ``project``, ``sample`` and ``interpolate`` to the ``posendf`` CLI."""
    p = subparsers.add_parser("train", help="train a Pose-NDF model from a YAML config",
                              description="Train (or resume) a Pose-NDF network. Writes OUT/checkpoints/{last,best}.pt "
                                          "every epoch, OUT/model.pt, OUT/loss_curves.png, OUT/history.json, OUT/tb/.")
    p.add_argument("--config", required=True, help="YAML config (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt (bit-identical)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: experiment.device)")
    p.add_argument("--data", default=None, help="labelled data folder from 'posendf data prepare' (default: data.train_dir)")
    p.add_argument("--out", default=None, help="run folder (default: experiment.out_dir/experiment.name)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: training.num_threads)")
    p.add_argument("--seed", type=int, default=None,
                   help="experiment.seed (initial weights, batch order, hard negatives); train a recipe with several "
                        "seeds to see its spread, or combine them with 'posendf ensemble' (default: the config's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)

    p = subparsers.add_parser("ensemble", help="combine several trained fields (mean or minimum) into one model file",
                              description="Write one model file whose field is the mean (or with --reduce min the "
                                          "minimum) of the given fields (model.pt "
                                          "files of 'posendf train' with one network config, e.g. several "
                                          "experiment.seed); load it with --checkpoint or PoseNDF.from_checkpoint (not as experiment.init_from).")
    p.add_argument("models", nargs="+", help="model.pt files (at least two)")
    p.add_argument("--out", required=True, help="output .pt")
    p.add_argument("--reduce", choices=("mean", "min"), default="mean",
                   help="mean of the fields (default; zero where every member is) or their minimum (zero where any is)")
    p.set_defaults(func=_cmd_ensemble)

    p = subparsers.add_parser("relabel", help="label prepared training data with a trained field (distil an ensemble into one network)",
                              description="Copy a 'posendf data prepare' folder with every label replaced by the "
                                          "distance of a trained field (the teacher, e.g. a 'posendf ensemble' file); "
                                          "'posendf train --data OUT' with the members' config then trains one network "
                                          "(the student) that reproduces it at one network's cost. Resumable.")
    p.add_argument("--teacher", required=True, help="model file (model.pt of 'posendf train' or 'posendf ensemble')")
    p.add_argument("--data", required=True, help="prepared training data folder ('posendf data prepare')")
    p.add_argument("--out", required=True, help="new folder for the relabelled data")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_relabel)

    p = subparsers.add_parser("project", help="project poses onto the pose manifold",
                              description="Project every pose of a motion (.npz: AMASS/HuMoR/original Pose-NDF) or a "
                                          "pose set onto the manifold; writes the same file to --out with the body joints replaced in "
                                          "each pose key's own layout (root, hands, translation, shape and every "
                                          "other key as in the input).")
    p.add_argument("--poses", required=True, help="motion or pose-set .npz")
    p.add_argument("--out", required=True, help="output .npz")
    _add_prior_args(p)
    p.set_defaults(func=_cmd_project)

    p = subparsers.add_parser("sample", help="generate poses: random quaternions projected onto the manifold",
                              description="Writes OUT/samples.npz (AMASS layout), OUT/initial.npz, OUT/samples.png (before/"
                                          "after) and OUT/summary.json (APD, share near a training pose).")
    p.add_argument("--n", type=int, required=True, help="number of samples")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--around", default=None, help="start from noisy poses of this pose set instead of uniform quaternions")
    p.add_argument("--sigma", type=float, default=None, help="axis-angle noise std (rad) with --around (default 0.5)")
    p.add_argument("--reference", default=None, help="pose set for the nearest-pose statistic (default: default train set)")
    p.add_argument("--near-deg", type=float, default=30.0,
                   help="'near a training pose' threshold: RMS per-joint geodesic angle in degrees (default 30; "
                        "95%% of the held-out CMU test poses are that close to a CMU training pose)")
    p.add_argument("--grid", type=int, default=12, help="samples shown in the PNG (default 12)")
    _add_prior_args(p)
    p.set_defaults(func=_cmd_sample)

    p = subparsers.add_parser("interpolate", help="interpolate two poses along the manifold",
                              description="Per-joint slerp from --start to --end, then the intermediate poses moved towards "
                                          "the manifold: optimised together with a smoothness term (default), or each "
                                          "projected on its own (--smoothness 0, the paper's way; between poses unlike the "
                                          "training data that path can jump). Writes OUT/interpolation.npz, OUT/slerp.npz, "
                                          "OUT/interpolation.png, OUT/summary.json.")
    p.add_argument("--start", required=True, help="FILE or FILE:INDEX (pose-set or motion .npz; default index 0)")
    p.add_argument("--end", required=True, help="FILE or FILE:INDEX")
    p.add_argument("--steps", type=int, default=10, help="poses on the path including both ends (default 10)")
    from .prior import INTERPOLATION_SMOOTHNESS

    p.add_argument("--smoothness", type=float, default=INTERPOLATION_SMOOTHNESS,
                   help=f"weight of the path's smoothness against f (default {INTERPOLATION_SMOOTHNESS:g}, "
                        "posendf_plugin.prior.INTERPOLATION_SMOOTHNESS; 0: project each pose on its own)")
    p.add_argument("--out", required=True, help="output folder")
    _add_prior_args(p)
    p.set_defaults(func=_cmd_interpolate)
