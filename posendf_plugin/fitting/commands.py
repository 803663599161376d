"""``posendf fit-image``, ``posendf denoise`` and ``posendf complete``."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

__all__ = ["register"]

log = logging.getLogger(__name__)


def _add_prior_args(p: argparse.ArgumentParser, default: str = "none") -> None:
    p.add_argument("--prior", default=default,
                   help="pose prior: none, posendf, nrdf, vposer, gmm (default: %(default)s); the shipped "
                        "weights are used unless --prior-checkpoint is given (fit-image and complete load "
                        "the density-aware Pose-NDF, posendf_density.pt, for posendf)")
    p.add_argument("--prior-checkpoint", type=Path, default=None, metavar="PATH",
                   help="weights for --prior (a checkpoint of posendf train / baseline train, or VPoser V02_05)")


def _add_body_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--body-model", type=Path, default=None, metavar="DIR",
                   help="folder with smpl/SMPL_NEUTRAL.pkl, smplh/ or smplx/ model files (default: the "
                        "embedded procedural stand-in, which is not SMPL)")


def _check_body_model(path) -> None:
    if path is not None and not Path(path).exists():
        raise FileNotFoundError(f"--body-model {path}: no such file or folder")


def _fit_image(args: argparse.Namespace) -> int:
    from .camera import Camera, read_camera_json
    from .image_batch import fit_image_dir
    from .image_fit import ImageFitConfig, load_image_fit_config

    _check_body_model(args.body_model)
    cfg = load_image_fit_config(args.config) if args.config else ImageFitConfig()
    camera = None
    if args.camera is not None:
        camera = read_camera_json(args.camera)
    elif args.focal_length is not None:
        try:
            camera = Camera(args.focal_length)
        except ValueError as e:
            raise ValueError(f"--focal-length: {e}") from e
    s = fit_image_dir(args.image_dir, args.out, prior=args.prior, prior_checkpoint=args.prior_checkpoint,
                      body_model=args.body_model, coco_json=args.coco_json, config=cfg, keypoint_dir=args.keypoint_dir,
                      progress=not args.quiet, render=not args.no_render, camera=camera)
    # each skipped or failed image was already reported (logged) as it happened: not printed again
    people = sum(f["people"] for f in s.fitted)
    errs = [e for f in s.fitted for e in f["reprojection_error_px"] if e is not None]
    msg = f"fitted {people} people in {len(s.fitted)} image(s), skipped {len(s.skipped)} image(s)"
    if s.failed:
        msg += f", failed on {len(s.failed)} image(s)"
    if errs:
        msg += f"; mean reprojection error {np.mean(errs):.2f} px"
    print(msg + f"; outputs in {args.out}")
    return 0 if s.fitted and not s.failed else 1


def _denoise(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .denoise import DenoiseConfig, denoise_motion, load_denoise_config

    from ..io import check_output_dir

    _check_body_model(args.body_model)
    # (cli._check_numbers has refused non-finite numbers and integers beyond 2**63 for every option)
    if args.fps is not None and not args.fps > 0:
        raise ValueError(f"--fps must be a positive number of frames per second, got {args.fps}")
    if args.seed < 0:
        raise ValueError(f"--seed must be an integer from 0 to 2**63 - 1, got {args.seed}")
    if args.motion.is_dir():
        raise ValueError(f"--motion {args.motion} is a folder; give one motion .npz file")
    check_output_dir(args.out, "--out folder")
    cfg = load_denoise_config(args.config) if args.config else DenoiseConfig()
    if args.noise_mm is not None:
        cfg = replace(cfg, noise_mm=args.noise_mm)
    if args.window is not None:
        cfg = replace(cfg, window=args.window)
    r = denoise_motion(args.motion, args.out, prior=args.prior, prior_checkpoint=args.prior_checkpoint,
                       body_model=args.body_model, config=cfg, seed=args.seed, max_windows=args.max_windows,
                       start=args.start, progress=not args.quiet, fps=args.fps)
    m = r.metrics
    span = f" (input frames {m['start_frame']}–{m['start_frame'] + m['frames'] - 1})" if m.get("start_frame", 0) else ""
    print(f"{m['windows']} window(s), {m['frames']} frames{span}, noise {m['noise_mm']:g} mm, prior {m['prior']}: "
          f"MPJPE {m['mpjpe_mm']:.1f} mm (noisy input {m['noisy_mpjpe_mm']:.1f}), V2V {m['v2v_mm']:.1f} mm, "
          f"accel. error {m['accel_mm']:.1f} mm/frame² (noisy {m['noisy_accel_mm']:.1f}); outputs in {args.out}")
    return 0


def _complete(args: argparse.Namespace) -> int:
    import torch

    from .. import rotations as R
    from ..data.posesets import load_pose_set
    from ..io import save_npz
    from ..skeleton import quat_to_pose
    from .completion import SHIPPED_WEIGHTS, _errors, complete_poses, parse_mask

    from ..io import check_output_file

    check_output_file(args.out, inputs=[args.poses] + ([args.reference] if args.reference is not None else []),
                      what="--out file")
    mask = parse_mask(args.mask)
    ps = load_pose_set(args.poses)
    q = ps.quat
    if args.max_poses is not None:
        if args.max_poses < 1:
            raise ValueError(f"--max-poses must be >= 1, got {args.max_poses}")
        q = q[: args.max_poses]
    if len(q) == 0:
        raise ValueError(f"{args.poses}: no poses")
    from .knn import DEFAULT_KNN_K

    knn = DEFAULT_KNN_K if args.knn is None else args.knn
    if knn < 1:
        raise ValueError(f"--knn must be >= 1, got {knn}")
    if args.init != "knn" and (args.reference is not None or args.knn is not None):
        raise ValueError(f"--{'reference' if args.reference is not None else 'knn'} belongs to --init knn; drop it "
                         "or use --init knn")
    reference = None if args.reference is None else load_pose_set(args.reference).quat  # (refuses empty sets)
    if not args.lr > 0:
        raise ValueError(f"--lr must be > 0, got {args.lr}")
    res = complete_poses(q, mask, _prior(args, SHIPPED_WEIGHTS), iterations=args.iterations, lr=args.lr, init=args.init,
                         progress=not args.quiet, projection_steps=args.projection_steps, reference=reference,
                         knn_k=knn)
    ang, pos = _errors(res.quat, q, res.mask)
    per_pose = torch.rad2deg(R.quat_geodesic_angle(res.quat, q))
    save_npz(args.out, quat=res.quat.numpy(), pose_body=quat_to_pose(res.quat, 63).numpy(),
             mask=mask.numpy(), energy_init=res.energy_init.numpy(), energy=res.energy.numpy(),
             angle_error_deg=per_pose.numpy(), prior=np.asarray(args.prior), init=np.asarray(args.init))
    print(f"completed {int(mask.sum())} joint(s) of {len(q)} pose(s) with prior {args.prior}: energy "
          f"{float(res.energy_init.mean()):.4g} -> {float(res.energy.mean()):.4g}; vs the input's values of those "
          f"joints: {ang:.1f} deg, {pos:.1f} mm (meaningful when the input held the true values); wrote {args.out}")
    return 0


def _prior(args, shipped=None):
    """The ``--prior`` / ``--prior-checkpoint`` prior; ``shipped``: the task's shipped model per
    prior name (e.g. :data:`~posendf_plugin.fitting.completion.SHIPPED_WEIGHTS`)."""
    from .params import load_prior

    return load_prior(args.prior, args.prior_checkpoint, shipped=(shipped or {}).get(args.prior))


def register(subparsers) -> None:
    """Add ``fit-image``, ``denoise`` and ``complete`` to the ``posendf`` CLI."""
    p = subparsers.add_parser(
        "fit-image", help="fit SMPL bodies to 2D keypoints of images (SMPLify-style)",
        description=(
            "Fit a body to every person of every image in --image-dir. Keypoints: <name>.json or OpenPose's "
            "<name>_keypoints.json (OpenPose BODY_25 'people[i].pose_keypoints_2d', or COCO-17) in --keypoint-dir, "
            "by default next to <name>.jpg or in a 'keypoints' folder beside --image-dir (SMPLify-X's "
            "DATA/images + DATA/keypoints), or one COCO annotation file (--coco-json). Writes <name>.npz (SMPL parameters, camera) "
            "and <name>.png (overlay + side view) per image, and summary.json. Images without keypoints or "
            "with nobody detected are skipped; an image whose image, keypoint or camera file cannot be read, "
            "or whose fit fails, is reported and the batch goes on (exit status 1). Camera: <name>.camera.json "
            "next to the image ({\"focal_length\": [fx, fy], \"principal_point\": [cx, cy]} or {\"K\": 3x3}, "
            "pixels), else --camera / --focal-length, else 5000 px at the image centre."
        ),
    )
    p.add_argument("--image-dir", type=Path, required=True, metavar="DIR")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--keypoint-dir", type=Path, default=None, metavar="DIR",
                   help="folder of the keypoint files (default: next to the images, then DIR/../keypoints)")
    p.add_argument("--coco-json", type=Path, default=None, metavar="FILE",
                   help="COCO keypoint annotation file (images + annotations) for the images")
    p.add_argument("--config", type=Path, default=None, metavar="YAML",
                   help="fitting schedule (default: built-in = configs/fit_image.yaml)")
    cam = p.add_mutually_exclusive_group()
    cam.add_argument("--focal-length", type=float, default=None, metavar="PX",
                     help="known focal length in pixels for every image (principal point: the image centre); "
                          "default: the config's (5000 px)")
    cam.add_argument("--camera", type=Path, default=None, metavar="FILE",
                     help="camera JSON for every image: {\"focal_length\": [fx, fy], \"principal_point\": [cx, cy]} "
                          "or {\"K\": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]}; a <name>.camera.json next to an image wins")
    p.add_argument("--no-render", action="store_true", help="skip the PNGs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_prior_args(p, default="posendf")
    _add_body_model_arg(p)
    p.set_defaults(func=_fit_image)

    p = subparsers.add_parser(
        "denoise", help="denoise a motion with the pose prior (HuMoR protocol)",
        description=(
            "HuMoR's denoising protocol on a clean motion (.npz with pose_body, root_orient, trans, betas): "
            "body-model joints + Gaussian noise (--noise-mm), then SMPL fitted to the noisy joints with "
            "temporal smoothness and the prior, per window of 60 frames. Reports MPJPE, V2V and acceleration "
            "error against the clean motion; writes <name>_denoised.npz, <name>_denoise.npz, "
            "<name>_metrics.json and <name>_trajectories.png."
        ),
    )
    p.add_argument("--motion", type=Path, required=True, metavar="FILE.npz")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--noise-mm", type=float, default=None, help="joint noise std in mm (default 40; papers: 20/40/100); 0 = fit the motion's own joints "
                        "as they are (a capture's own noise: the data weight follows the noise measured in them)")
    p.add_argument("--window", type=int, default=None, help="frames per window (default 60)")
    p.add_argument("--max-windows", type=int, default=None, help="stop after this many windows (default: all)")
    p.add_argument("--start", type=int, default=0, help="first frame (default 0; after --fps)")
    p.add_argument("--fps", type=float, default=None,
                   help="resample the motion to this frame rate first (HuMoR's protocol: 30; default: as it is)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--config", type=Path, default=None, metavar="YAML",
                   help="schedule (default: built-in = configs/denoise.yaml)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_prior_args(p, default="posendf")
    _add_body_model_arg(p)
    p.set_defaults(func=_denoise)

    p = subparsers.add_parser(
        "complete", help="complete poses with unknown joints using the prior",
        description=(
            "Fill in the joints in --mask of every pose in --poses (a pose set or motion .npz); known joints stay "
            "fixed. The unknown joints start at the mean of those joints over the --knn poses of --reference (default: "
            "the embedded training poses) nearest in the known joints (--init knn, the most accurate completion "
            "measured; benchmarks/RESULTS.md). From there the distance fields (posendf, nrdf) take no projection step "
            "unless --projection-steps N asks for them (so posendf, nrdf and none return the fill), VPoser fits its "
            "latent code to the known joints and the GMM minimises its energy (--iterations, --lr); those two may move "
            "away from the fill. Writes quat (N, 21, 4), pose_body (N, 63), mask (21,), energy_init / energy (N,), "
            "angle_error_deg (N, 21: against the input's values, 0 on known joints), prior and init; root "
            "orientation, translation and shape of a motion input are not copied."
        ),
    )
    p.add_argument("--poses", type=Path, required=True, metavar="FILE")
    p.add_argument("--mask", required=True, metavar="JOINTS",
                   help="unknown joints: comma-separated body-joint names, indices 0..20 or groups "
                        "(left_arm, right_arm, arms, left_leg, right_leg, legs, spine, head)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.npz")
    p.add_argument("--iterations", type=int, default=200, help="Adam steps (energy / VPoser latent completion)")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--projection-steps", type=int, default=None,
                   help="projection steps of a distance-field prior (default: none from --init knn; from the other "
                        "starts posendf_plugin.fitting.completion.DEFAULT_PROJECTION_STEPS: posendf 10, nrdf 1)")
    p.add_argument("--init", choices=("knn", "mean", "identity", "input"), default="knn",
                   help="start the unknown joints at their mean over the nearest --reference poses (default), at the "
                        "mean training pose, unrotated, or at the input's values")
    p.add_argument("--reference", type=Path, default=None, metavar="FILE",
                   help="--init knn: pose set or motion .npz to take neighbours from (default: the embedded training poses)")
    p.add_argument("--knn", type=int, default=None, metavar="K",
                   help="--init knn: neighbours averaged (default: posendf_plugin.fitting.knn.DEFAULT_KNN_K, 50; "
                        "more than the reference holds averages all of it)")
    p.add_argument("--max-poses", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_prior_args(p, default="posendf")
    p.set_defaults(func=_complete)
