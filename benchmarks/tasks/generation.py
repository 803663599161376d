"""generation: sampling quality of each prior (``prior.sample(n, seed)``).

Metrics on ``n`` samples, joint positions from the rest skeleton
(:func:`posendf_plugin.skeleton.body_joint_positions`, 24 joints, root fixed):

* ``apd_cm`` — average pairwise distance between samples (mean joint distance, cm): diversity.
* ``fid`` — Fréchet distance (cm²) between Gaussians fitted to the flattened joint positions
  of the samples and of the held-out poses (23 joints; the root is fixed): realism of the distribution.
* ``dnn_rad`` / ``dnn_rms_deg`` — mean geodesic distance of each sample to its nearest
  training pose (NRDF's ``sqrt(Σ θ_j²)`` over the 21 joints, radians; and as an RMS
  per-joint angle in degrees): how far samples stray from seen poses.
* ``plausible_share`` — share of samples whose dNN is within ``threshold_rad``, the 95th
  percentile of the held-out poses' own dNN (so 95% of real unseen poses pass).

Reference rows: ``none`` draws uniformly random joint rotations (what "no prior" generates);
``_heldout`` is ``n`` held-out poses themselves; ``_train`` is ``n`` training poses — the FID of
a prior that reproduced its training distribution exactly (the train and test subjects differ,
so this is not 0; a prior can only beat it by sampling a narrower, more average set).
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional

import numpy as np
import torch

from posendf_plugin.rotations import quat_random
from posendf_plugin.skeleton import NUM_BODY_JOINTS

from ..common import BenchContext, apd_cm, guarded, draw_skeleton, fid, joint_positions, mpl, nearest_geodesic, prior_rows, rms_deg, save_figure, skipped

NAME = "generation"
NOTES = [
    "apd_cm: average pairwise joint distance of the samples (diversity); fid: Fréchet distance of joint positions vs held-out poses (cm², lower = more realistic);",
    "dnn: geodesic distance to the nearest training pose; plausible_share: samples within the 95th percentile of held-out poses' dNN;",
    "none = uniformly random joint rotations; _heldout = held-out poses themselves; _train = training poses (the FID of reproducing the training data exactly).",
]
_N_SAMPLES = 500
_N_SAMPLES_QUICK = 250  # the quick default run (sampling the NDFs dominates its time)
_GRID = 8


def fid_features(pos: torch.Tensor) -> torch.Tensor:
    """``(N, 69)`` FID features of joint positions ``pos (N, 24, 3)`` (metres,
    :func:`joint_positions`): joints 1..23 in cm (the root joint is fixed)."""
    return 100.0 * pos[:, 1:].reshape(len(pos), -1)


def _metrics(q: torch.Tensor, ref_feat: torch.Tensor, train: torch.Tensor, tau: float, d: Optional[torch.Tensor] = None,
             apd: Optional[float] = None) -> Dict[str, float]:
    """Metrics of samples ``q (N, 21, 4)``; ``d`` (dNN per sample) and ``apd`` when already known."""
    pos = joint_positions(q.cpu())
    d = nearest_geodesic(q, train) if d is None else d
    return {
        "n": int(len(q)),
        "apd_cm": apd_cm(pos) if apd is None else apd,
        "fid": fid(fid_features(pos), ref_feat),
        "dnn_rad": float(d.mean()),
        "dnn_rms_deg": float(rms_deg(d).mean()),
        "plausible_share": float((d <= tau).float().mean()),
    }


def run(ctx: BenchContext) -> Dict:
    n = ctx.pick(20, _N_SAMPLES_QUICK, _N_SAMPLES)
    test = ctx.test_poses()
    train = ctx.train_poses().to(ctx.device)
    ref_feat = fid_features(joint_positions(test))
    # plausibility threshold: 95th percentile of held-out poses' distance to the training set
    g = ctx.rng(11)
    idx = torch.as_tensor(np.sort(g.choice(len(test), min(n, len(test)), replace=False)))
    held = test[idx]
    d_held = nearest_geodesic(held.to(ctx.device), train)
    tau = float(torch.quantile(d_held.cpu(), 0.95))
    setting = f"n={n}"
    rows: Dict[str, Dict] = {}
    samples: Dict[str, torch.Tensor] = {}
    for name, prior, why in prior_rows(ctx):
        if prior is None:
            rows[name] = skipped(why)
            continue

        def one(name=name, prior=prior):
            key = ("generation_draws", name, n)  # the samples do not depend on the source: draw once per run
            if key not in ctx._cache:
                t0 = time.perf_counter()
                if name == "none":
                    q = quat_random(n, NUM_BODY_JOINTS, generator=ctx.generator(12)).to(ctx.device)
                else:
                    q = prior.sample(n, seed=ctx.seed)
                secs = time.perf_counter() - t0
                q = q.detach().float().reshape(-1, NUM_BODY_JOINTS, 4)
                ctx._cache[key] = (q, secs, nearest_geodesic(q, train), apd_cm(joint_positions(q.cpu())))
            q, secs, d, apd = ctx._cache[key]
            samples[name] = q[:_GRID].cpu()
            return {**_metrics(q, ref_feat, train, tau, d, apd), "sample_seconds": secs}

        rows[name] = guarded(ctx, name, one)
    rows["_heldout"] = _metrics(held.to(ctx.device), ref_feat, train, tau)
    # the training poses themselves: the FID a prior reaches by reproducing its data exactly
    if ("generation_train", n) not in ctx._cache:  # the same training poses for every source
        pick = torch.as_tensor(np.sort(ctx.rng(14).choice(len(train), min(n, len(train)), replace=False)))
        q_train = train[pick.to(train.device)]
        ctx._cache[("generation_train", n)] = (q_train, nearest_geodesic(q_train, train), apd_cm(joint_positions(q_train.cpu())))
    q_train, d_train, apd_train = ctx._cache[("generation_train", n)]
    rows["_train"] = _metrics(q_train, ref_feat, train, tau, d_train, apd_train)
    samples["_heldout"] = held[torch.randperm(len(held), generator=ctx.generator(13))[:_GRID]]
    ctx._cache["source:generation_samples"] = samples
    return {setting: rows, "_settings": {"samples": n, "threshold_rad": tau, "reference": ctx.data_name,
                                         "training_set": "default CMU train split"}}


def plot(result: Dict, ctx: BenchContext) -> List:
    samples = ctx._cache.get("source:generation_samples")
    if not samples:
        return []
    plt = mpl()
    names = list(samples)
    fig, axes = plt.subplots(len(names), _GRID, figsize=(1.3 * _GRID, 1.7 * len(names) + 0.4), squeeze=False)
    for r, name in enumerate(names):
        pos = joint_positions(samples[name]).numpy()
        for c in range(_GRID):
            ax = axes[r, c]
            if c < len(pos):
                draw_skeleton(ax, pos[c], "tab:gray" if name.startswith("_") else "tab:blue")
            else:
                ax.axis("off")
        axes[r, 0].text(-1.0, 0.95, name, fontsize=9, transform=axes[r, 0].transData)
    fig.suptitle(ctx.source_title(f"samples per prior (seed {ctx.seed}; front view, rest skeleton)"), fontsize=10)
    fig.tight_layout()
    return [save_figure(fig, ctx.source_path("generation_samples"))]
