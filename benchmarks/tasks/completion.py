"""completion: fill in hidden joints of held-out poses with the prior
(:func:`posendf_plugin.fitting.completion.evaluate_completion`).

For each pose a random 25% (5 of 21) or 50% (10 of 21) of the body joints are hidden. Every prior
starts from the same guess, the kNN fill (:func:`posendf_plugin.fitting.knn.knn_fill`: the mean of
the hidden joints over the 50 training poses nearest in the visible joints), and completes as
``posendf complete`` does: the distance fields by masked projection (no steps from this start:
:data:`~posendf_plugin.fitting.completion.KNN_PROJECTION_STEPS`), the GMM by Adam on its energy,
VPoser by fitting its latent code to the known joints and decoding the hidden ones. Metrics (means
over poses): ``angle_deg`` — geodesic error of the completed joints; ``position_mm`` — position
error of the joints they move (rest skeleton); ``init_*`` — the same for the start (what the
``none`` prior returns); ``mean_*`` — the mean training pose's joints (the start before session
18); ``identity_*`` — unrotated hidden joints (the issue's "identity start").
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import torch

from posendf_plugin.skeleton import NUM_BODY_JOINTS

from ..common import PER_ITEM, BenchContext, guarded, prior_rows, skipped

NAME = "completion"
NOTES = ["angle_deg: geodesic error of the hidden joints after completion; position_mm: error of the joints they move (rest skeleton); "
         "init_*: the start every prior gets, the mean of the hidden joints over the 50 training poses nearest in the visible joints "
         "(= no prior); mean_*: the mean training pose's joints; identity_*: unrotated hidden joints. The distance fields take "
         "no projection step from this start (posendf_plugin.fitting.completion.KNN_PROJECTION_STEPS), so their rows equal no prior's."]
FRACTIONS = (0.25, 0.5)


def _masks(ctx: BenchContext, n: int, k: int, offset: int) -> np.ndarray:
    rng = ctx.rng(offset)
    m = np.zeros((n, NUM_BODY_JOINTS), bool)
    for i in range(n):
        m[i, rng.choice(NUM_BODY_JOINTS, k, replace=False)] = True
    return m


def hidden_joints(fraction: float) -> int:
    """How many of the 21 body joints a :data:`FRACTIONS` entry hides."""
    return int(round(fraction * NUM_BODY_JOINTS))


def completion_problem(ctx: BenchContext, max_poses: int) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """The seeded completion problem of the active source: ``(poses (n, 21, 4), masks)``, ``n`` =
    up to ``max_poses`` held-out poses (sorted random choice) and one ``(n, 21)`` bool mask per
    :data:`FRACTIONS` (True = hidden). The benchmark, ``calibrate.py --task completion`` and
    ``completion_reference.py`` all score this same problem (CPU tensors)."""
    test = ctx.test_poses()
    n = min(len(test), max_poses)
    poses = test[torch.as_tensor(np.sort(ctx.rng(40).choice(len(test), n, replace=False)))]
    masks = [torch.as_tensor(_masks(ctx, n, hidden_joints(f), 41 + i)) for i, f in enumerate(FRACTIONS)]
    return poses, masks


def run(ctx: BenchContext) -> Dict:
    from posendf_plugin.fitting.completion import SHIPPED_WEIGHTS, evaluate_completion
    from posendf_plugin.fitting.knn import knn_fill

    poses, masks = completion_problem(ctx, ctx.pick(20, 200, 1000))
    n = len(poses)
    poses = poses.to(ctx.fit_device)
    iterations = ctx.pick(5, 200, 200)
    reference = ctx.train_poses().float()
    starts = [knn_fill(poses, m.to(poses.device), reference) for m in masks]  # one fill per mask, shared by the priors
    res: Dict = {}
    for fi, frac in enumerate(FRACTIONS):
        k = hidden_joints(frac)
        setting = f"masked={int(frac * 100)}% ({k} joints)"
        mask = masks[fi].to(ctx.fit_device)
        res[setting] = {}
        for name, prior, why in prior_rows(ctx, ctx.fit_device, setting=setting, shipped=SHIPPED_WEIGHTS):
            if prior is None:
                res[setting][name] = skipped(why)
                continue
            def one(prior=prior, mask=mask, start=starts[fi]):
                ev = evaluate_completion(prior, poses=poses, masks=[mask], n_poses=n, seed=ctx.seed, iterations=iterations,
                                         init="knn", knn_starts=[start])
                m = next(iter(ev.per_mask.values()))
                row = {k2: m[k2] for k2 in ("angle_deg", "position_mm", "init_angle_deg", "init_position_mm",
                                            "mean_angle_deg", "mean_position_mm", "identity_angle_deg",
                                            "identity_position_mm", "energy", "init_energy")}
                row[PER_ITEM] = dict(next(iter(ev.per_pose.values())))  # paired intervals (run.py)
                return row

            res[setting][name] = guarded(ctx, name, one)
    res["_settings"] = {"poses": n, "iterations": iterations, "init": "knn (50 training poses)", "data": ctx.data_name}
    return res


def plot(result: Dict, ctx: BenchContext) -> List:
    return []
