"""Image-fit variants of the Pose-NDF term on the **validation** split: the experiments behind
"Why the field generalised poorly" in ``benchmarks/RESULTS.md`` (and ``NDF_CARD.md``).

Same protocol as ``benchmarks/calibrate.py`` (the ``image_fit`` task on val poses: random
shapes, known camera, 4 px noise, 20 % of the keypoints dropped; library schedule). Each
``--variant`` is ``KIND:SCALE[:EPS]`` for the ``posendf`` prior (or ``none``):

* ``lin`` — the shipped term ``f`` (what ``calibrate.py`` measures);
* ``sq`` — ``f²``; ``hinge`` — ``max(f − EPS, 0)``; ``meanl2`` — ``f + EPS·‖θ − θ_mean‖²``
  (θ the axis-angle body pose, θ_mean the embedded training mean).

``--starts K`` fits every image from the mean pose and from K − 1 training poses nearest to
k-means centres of the training poses, and keeps the fit with the lowest final objective
(data + prior + shape terms of the last stage). Prints one line per variant: mean PA-MPJPE and
the per-image values. ``--diagnose`` adds, per image, the field's value ``f`` (the ``--prior``
model, or the shipped Pose-NDF for ``none``) at the true and at the fitted pose and the joint
with the largest depth error after aligning the pelvis.

Examples::

    python benchmarks/fit_variants.py --variant lin:100 --variant sq:1e4 --variant hinge:1000:0.05
    python benchmarks/fit_variants.py --prior none --variant lin:0 --starts 4
    python benchmarks/fit_variants.py --checkpoint OLD.pt --variant lin:1000 --variant meanl2:1000:0.001
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BenchContext  # noqa: E402
from benchmarks.tasks import image_fit as T  # noqa: E402
from posendf_plugin.priors.base import PosePrior  # noqa: E402

KINDS = ("lin", "sq", "hinge", "meanl2")


class _Term(PosePrior):
    """The Pose-NDF energy passed through one of :data:`KINDS` (named like the wrapped prior, so
    the config's ``prior_scale`` applies)."""

    def __init__(self, prior: PosePrior, kind: str, eps: float, mean_aa: torch.Tensor) -> None:
        super().__init__()
        self.prior, self.kind, self.eps, self.name = prior, kind, eps, getattr(prior, "name", "posendf")
        self.register_buffer("mean_aa", mean_aa)

    def energy(self, body_pose) -> torch.Tensor:
        f = self.prior.energy(body_pose)
        if self.kind == "sq":
            return f ** 2
        if self.kind == "hinge":
            return torch.relu(f - self.eps)
        if self.kind == "meanl2":
            return f + self.eps * ((body_pose - self.mean_aa) ** 2).sum(-1)
        return f


def _starts(ctx: BenchContext, k: int) -> list:
    """The mean pose and the training poses nearest to ``k - 1`` k-means centres (faiss)."""
    import faiss

    from posendf_plugin.data.default import default_mean_pose
    from posendf_plugin.rotations import quat_to_axis_angle

    out = [default_mean_pose().float()]
    if k > 1:
        train = ctx.train_poses().float()
        x = np.ascontiguousarray(quat_to_axis_angle(train).reshape(len(train), -1).numpy().astype("float32"))
        km = faiss.Kmeans(x.shape[1], k - 1, niter=25, seed=1)
        km.train(x)
        index = faiss.IndexFlatL2(x.shape[1])
        index.add(x)
        _, nearest = index.search(km.centroids, 1)
        out += [train[i] for i in nearest[:, 0]]
    return out


def _diagnose(ctx: BenchContext, i: int, im, res, field, err: float) -> None:
    from posendf_plugin.skeleton import SMPL_JOINT_NAMES

    bm = ctx.body_model()
    with torch.no_grad():
        out = bm(body_pose=res.body_pose.to(bm.dtype), global_orient=res.global_orient.to(bm.dtype),
                 betas=res.betas.to(bm.dtype), transl=res.transl.to(bm.dtype))
    pred = out.joints[0, :T.N_EVAL_JOINTS].float()
    dz = ((pred - pred[:1]) - (im.gt_joints - im.gt_joints[:1]))[:, 2]
    j = int(dz.abs().argmax())
    print(f"  image {i}: PA-MPJPE {err:.0f} mm, f(truth) {float(field.distance(im.gt_pose[None])):.4f}, "
          f"f(fit) {float(field.distance(res.body_pose)):.4f}, worst depth error {1000 * float(dz[j]):+.0f} mm at "
          f"{SMPL_JOINT_NAMES[j]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", default=[], metavar="KIND:SCALE[:EPS]")
    ap.add_argument("--prior", default="posendf", help="posendf (default), nrdf, gmm, vposer or none")
    ap.add_argument("--checkpoint", default=None, help="weights replacing the shipped ones")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--starts", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--diagnose", action="store_true", help="per image: f at the truth and the fit, worst depth error")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ckpts = {args.prior: Path(args.checkpoint)} if args.checkpoint else {}
    ctx = BenchContext(seed=args.seed, progress=False, checkpoints=ckpts, split="val")
    images = T.synthetic_images(ctx, args.images)
    base = T.fit_config(ctx)
    starts = _starts(ctx, args.starts)
    from posendf_plugin.data.default import default_mean_pose
    from posendf_plugin.skeleton import quat_to_pose

    mean_aa = quat_to_pose(default_mean_pose()[None].float(), 63)
    shipped = dict(base.shipped_weights)
    prior0 = ctx.prior(args.prior, torch.device("cpu"), shipped.get(args.prior))
    field = prior0 if hasattr(prior0, "distance") else ctx.prior("posendf", torch.device("cpu"), shipped.get("posendf"))
    last = base.stages[-1]
    print(f"{ctx.data_name}: {args.images} images, {args.starts} start(s), seed {args.seed}")
    for spec in args.variant or ["lin:" + str(base.scale_for(args.prior))]:
        parts = spec.split(":")
        kind, scale = parts[0], float(parts[1])
        eps = float(parts[2]) if len(parts) > 2 else 0.0
        if kind not in KINDS:
            ap.error(f"unknown variant kind {kind!r}; use one of {KINDS}")
        prior = prior0 if kind == "lin" else _Term(prior0, kind, eps, mean_aa)
        cfg = dataclasses.replace(base, prior_scale={**dict(base.prior_scale), args.prior: scale})
        errs, t0 = [], time.perf_counter()
        for im in images:
            best = None
            for s in starts:
                res, _ = T.fit_one(ctx, im, prior, cfg, init_body_pose=s[None])
                obj = res.losses["data"] + last.prior_weight * scale * res.losses["prior"] + last.shape_weight * res.losses["shape"]
                if best is None or obj < best[0]:
                    best = (obj, res)
            errs.append(T._errors(ctx, best[1], im.gt_joints)["pa_mpjpe_mm"])
            if args.diagnose:
                _diagnose(ctx, len(errs) - 1, im, best[1], field, errs[-1])
        print(f"{args.prior} {spec}: PA-MPJPE {np.mean(errs):.1f} mm ({time.perf_counter() - t0:.0f} s) | "
              + " ".join(f"{e:.0f}" for e in errs), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
