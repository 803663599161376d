"""image_fit: SMPLify-style fitting to 2D keypoints (:func:`posendf_plugin.fitting.image.fit_people`)
on a controlled synthetic benchmark, plus a qualitative run on real images when present.

Synthetic images: held-out poses with random shapes (β ~ N(0, 1), 10 coefficients), facing the
camera with a random yaw in ±40°, 10–13 m in front of the fitter's own camera (focal 5000 px,
1000 x 1000 image, principal point at the centre — the camera is known). Their OpenPose-25
keypoints are projected, Gaussian pixel noise (σ = 4 px, the person is ~700 px tall) is
added and 20% of the keypoints (5 of 25) are dropped at random. Each image is fitted from
scratch with every prior (same inputs for all). Metrics over the 22 body joints (pelvis to
wrists): ``mpjpe_mm`` after aligning the pelvis, ``pa_mpjpe_mm`` after Procrustes alignment,
``seconds_per_image`` (one image per :func:`fit_people` call), ``reprojection_px``.

Qualitative (full runs, when ``../shared/data/images`` exists): every folder of images with a
COCO keypoint file is fitted with :func:`~posendf_plugin.fitting.image.fit_image_dir`; renders go
to ``OUT/image_fit_qualitative/<prior>/``.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from posendf_plugin import rotations as R
from posendf_plugin.skeleton import quat_to_pose

from ..common import PER_ITEM, BenchContext, guarded, prior_rows, skipped

NAME = "image_fit"
NOTES = ["Synthetic keypoints from held-out poses and random shapes, known camera, 4 px noise, 20% of keypoints dropped; "
         "mpjpe_mm is pelvis-aligned, pa_mpjpe_mm Procrustes-aligned, over the 22 body joints; seconds_per_image: one fit_people call."]
IMAGE_SIZE = (1000, 1000)
FOCAL = 5000.0
NOISE_PX = 4.0
DROP = 0.2
FMT = "openpose25"
N_EVAL_JOINTS = 22


@dataclass
class SyntheticImage:
    """One synthetic image: keypoints ``(1, 25, 3)`` (x, y, confidence), the ground-truth
    joints ``(22, 3)`` (camera frame, metres) and body pose ``(21, 4)``."""

    keypoints: np.ndarray
    gt_joints: torch.Tensor
    gt_pose: torch.Tensor


def synthetic_images(ctx: BenchContext, n: int, offset: int = 50) -> List[SyntheticImage]:
    """``n`` synthetic keypoint images (see the module docstring), deterministic in ``ctx.seed``."""
    from posendf_plugin.fitting import losses as L

    bm = ctx.body_model()
    dev, dt = bm.device, bm.dtype
    test = ctx.test_poses()
    g = ctx.generator(offset)
    rng = ctx.rng(offset)
    idx = torch.as_tensor(rng.choice(len(test), n, replace=len(test) < n))
    q = test[idx]
    betas = torch.randn(n, 10, generator=g)
    yaw = (torch.rand(n, generator=g) * 2 - 1) * math.radians(40)
    rot = R.axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0])) @ R.axis_angle_to_matrix(
        torch.stack((torch.zeros(n), yaw, torch.zeros(n)), -1))
    go = R.matrix_to_axis_angle(rot)
    transl = torch.stack(((torch.rand(n, generator=g) - 0.5) * 0.4, (torch.rand(n, generator=g) - 0.5) * 0.4,
                          10.0 + 3.0 * torch.rand(n, generator=g)), -1)
    focal = torch.tensor([FOCAL, FOCAL])
    center = torch.tensor([IMAGE_SIZE[0] / 2.0, IMAGE_SIZE[1] / 2.0])
    with torch.no_grad():
        out = bm(body_pose=quat_to_pose(q, 63).to(dev, dt), global_orient=go.to(dev, dt), betas=betas[:, :bm.num_betas].to(dev, dt),
                 transl=transl.to(dev, dt), keypoints=FMT)
        uv = L.perspective_projection(out.keypoints.float().cpu(), focal, center)
    uv = uv + torch.randn(uv.shape, generator=g) * NOISE_PX
    K = uv.shape[1]
    n_drop = int(round(DROP * K))
    images = []
    for i in range(n):
        conf = np.ones(K, np.float32)
        conf[rng.choice(K, n_drop, replace=False)] = 0.0
        kp = np.concatenate((uv[i].numpy(), conf[:, None]), -1)[None].astype(np.float32)
        images.append(SyntheticImage(kp, out.joints[i, :N_EVAL_JOINTS].float().cpu(), q[i]))
    return images


def fit_config(ctx: BenchContext):
    """The fitting schedule: the library defaults (``configs/fit_image.yaml``) with the known
    focal length; a few steps only in tiny (test) runs."""
    from posendf_plugin.fitting.image import ImageFitConfig, ImageStage

    if ctx.tiny:
        return ImageFitConfig(focal_length=FOCAL, camera_iterations=3, stages=(ImageStage(3),))
    return ImageFitConfig(focal_length=FOCAL)


def fit_one(ctx: BenchContext, image: SyntheticImage, prior, config=None, from_truth: bool = False, init_body_pose=None):
    """Fit one synthetic image with ``prior``; returns ``(ImageFitResult, seconds)``.
    ``from_truth`` starts from the true body pose (an oracle start, for diagnosis only);
    ``init_body_pose`` ``(1, 21, 4)`` from a given pose (default: ``config.init_pose``)."""
    from posendf_plugin.fitting.image import PersonKeypoints, fit_people

    people = PersonKeypoints(image.keypoints, FMT, ["0"])
    t0 = time.perf_counter()
    res = fit_people(people, IMAGE_SIZE, ctx.body_model(), prior, config or fit_config(ctx),
                     init_body_pose=image.gt_pose[None] if from_truth else init_body_pose)
    return res, time.perf_counter() - t0


def _errors(ctx: BenchContext, res, gt: torch.Tensor) -> Dict[str, float]:
    from posendf_plugin.fitting import losses as L

    bm = ctx.body_model()
    with torch.no_grad():
        out = bm(body_pose=res.body_pose.to(bm.device, bm.dtype), global_orient=res.global_orient.to(bm.device, bm.dtype),
                 betas=res.betas.to(bm.device, bm.dtype), transl=res.transl.to(bm.device, bm.dtype))
    pred = out.joints[0, :N_EVAL_JOINTS].float().cpu()
    return {
        "mpjpe_mm": 1000 * float(L.mpjpe(pred - pred[:1], gt - gt[:1])),
        "pa_mpjpe_mm": 1000 * float(L.pa_mpjpe(pred, gt)),
        "reprojection_px": float(res.reprojection_error_px.mean()),
    }


def _qualitative(ctx: BenchContext) -> Optional[Dict]:
    from posendf_plugin.fitting.image import IMAGE_EXTENSIONS, fit_image_dir

    root = ctx.shared_images
    folders = [d for d in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]
               if any(p.suffix.lower() in IMAGE_EXTENSIONS for p in d.iterdir())]
    if not folders:
        return None
    rows: Dict = {}
    for name, prior, why in prior_rows(ctx, ctx.fit_device, setting="qualitative", shipped=dict(fit_config(ctx).shipped_weights)):
        if prior is None:
            rows[name] = skipped(why)
            continue

        def one(name=name, prior=prior):
            errs, n_img, secs = [], 0, 0.0
            for d in folders:
                coco = next((j for j in sorted(d.glob("*.json")) if not any(j.with_suffix(e).exists() for e in IMAGE_EXTENSIONS)), None)
                t0 = time.perf_counter()
                summary = fit_image_dir(d, ctx.out / "image_fit_qualitative" / name / d.name, prior=prior, body_model=ctx.body_model(),
                                        coco_json=coco, progress=False)
                secs += time.perf_counter() - t0
                n_img += len(summary.fitted)
                errs += [e for f in summary.fitted for e in f["reprojection_error_px"]]
            return {"images": n_img, "people": len(errs), "reprojection_px": float(np.mean(errs)) if errs else float("nan"),
                    "seconds_per_image": secs / max(n_img, 1)}

        rows[name] = guarded(ctx, name, one)
    return rows


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory when that is shorter (no machine paths in tables)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return rel if len(rel) < len(str(path)) else str(path)


def run(ctx: BenchContext) -> Dict:
    n = ctx.pick(1, 6, 100)
    config = fit_config(ctx)
    images = synthetic_images(ctx, n)
    setting = f"synthetic ({n} images)"
    res: Dict = {setting: {}}
    for name, prior, why in prior_rows(ctx, ctx.fit_device, setting=setting, shipped=dict(config.shipped_weights)):
        if prior is None:
            res[setting][name] = skipped(why)
            continue

        def one(prior=prior):
            per, secs = [], []
            for img in images:
                fit, s = fit_one(ctx, img, prior, config)
                per.append(_errors(ctx, fit, img.gt_joints))
                secs.append(s)
            row = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
            row["seconds_per_image"] = float(np.mean(secs))
            row[PER_ITEM] = {k: [p[k] for p in per] for k in ("pa_mpjpe_mm", "mpjpe_mm")}  # paired intervals (run.py)
            return row

        res[setting][name] = guarded(ctx, name, one)
    if ctx.shared_images is not None and not ctx.quick and ctx.primary_source:  # real photos: once per run
        q = _qualitative(ctx)
        if q is not None:
            res[f"qualitative ({_shown_path(ctx.shared_images)})"] = q
    res["_settings"] = {"images": n, "image_size": list(IMAGE_SIZE), "focal_px": FOCAL, "noise_px": NOISE_PX, "dropped_keypoints": DROP,
                        "keypoints": FMT, "body_model": ctx.body_model_name(), "data": ctx.data_name,
                        "schedule": "configs/fit_image.yaml defaults (ImageFitConfig())",
                        "shipped_weights": {k: v for k, v in config.shipped_weights.items() if k not in ctx.checkpoints}}
    return res


def plot(result: Dict, ctx: BenchContext) -> List:
    return []
