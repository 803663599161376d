"""interpolation: paths between two held-out poses: plain per-joint slerp; ``projected``, each
intermediate pose projected onto the prior's manifold on its own (the paper's way,
``PoseNDF.interpolate(a, b, steps, smoothness=None)``); ``smooth path``, the intermediate poses
optimised together with a smoothness term (``PoseNDF.interpolate``'s default,
:func:`posendf_plugin.prior.smooth_path`). Priors without a distance field are skipped in the last two.

Per prior and setting, over the interior poses of all paths:

* ``energy_mean`` — the prior's own energy (for Pose-NDF / NRDF: the distance to its
  manifold; lower = the path stays on the manifold);
* ``dnn_rad`` / ``dnn_rms_deg`` — prior-independent distance to the nearest training pose
  (as in generation); the same for every prior in the ``slerp`` setting;
* ``max_step_rms_deg`` — largest step between consecutive poses (RMS per-joint angle):
  smoothness; a projection that jumps between modes shows up here.
"""
from __future__ import annotations

from typing import Dict, List

import torch

from posendf_plugin.rotations import nrdf_pose_distance, quat_canonical, quat_slerp
from posendf_plugin.skeleton import NUM_BODY_JOINTS

from ..common import BenchContext, guarded, nearest_geodesic, prior_rows, rms_deg, skipped

NAME = "interpolation"
NOTES = ["energy_mean: the prior's energy along the path (lower = closer to its manifold); dnn: geodesic distance to the nearest training pose; "
         "max_step_rms_deg: largest jump between consecutive poses (RMS per-joint angle)."]


def _pairs(ctx: BenchContext, n_pairs: int):
    test = ctx.test_poses()
    rng = ctx.rng(30)
    a = rng.choice(len(test), n_pairs, replace=len(test) < n_pairs)
    b = rng.choice(len(test), n_pairs, replace=len(test) < n_pairs)
    return test[torch.as_tensor(a)], test[torch.as_tensor(b)]


def _slerp(qa: torch.Tensor, qb: torch.Tensor, steps: int) -> torch.Tensor:
    """``(P, steps, 21, 4)`` per-joint slerp paths between pose pairs ``(P, 21, 4)``."""
    t = torch.linspace(0.0, 1.0, steps)[None, :, None].expand(len(qa), steps, NUM_BODY_JOINTS)
    return quat_canonical(quat_slerp(qa[:, None].expand(-1, steps, -1, -1), qb[:, None].expand(-1, steps, -1, -1), t))


def _path_metrics(prior, paths: torch.Tensor, train: torch.Tensor, device) -> Dict[str, float]:
    inner = paths[:, 1:-1].reshape(-1, NUM_BODY_JOINTS, 4).to(device)
    with torch.no_grad():
        e = prior.energy(inner).reshape(-1).float()
    d = nearest_geodesic(inner, train)
    step = rms_deg(nrdf_pose_distance(paths[:, 1:], paths[:, :-1]))
    return {"energy_mean": float(e.mean()), "dnn_rad": float(d.mean()), "dnn_rms_deg": float(rms_deg(d).mean()),
            "max_step_rms_deg": float(step.max())}


def run(ctx: BenchContext) -> Dict:
    n_pairs, steps = ctx.pick((2, 5), (10, 11), (100, 21))
    qa, qb = _pairs(ctx, n_pairs)
    train = ctx.train_poses().to(ctx.device)
    plain = _slerp(qa, qb, steps)
    res: Dict = {"slerp": {}, "projected": {}, "smooth path": {}}
    for name, prior, why in prior_rows(ctx):
        if prior is None:
            res["slerp"][name] = res["projected"][name] = res["smooth path"][name] = skipped(why)
            continue
        res["slerp"][name] = guarded(ctx, name, lambda prior=prior: _path_metrics(prior, plain, train, ctx.device))
        if not hasattr(prior, "interpolate"):
            res["projected"][name] = res["smooth path"][name] = skipped(f"prior '{name}' has no projection onto a manifold")
            continue

        def projected(prior=prior):
            paths = torch.stack([prior.interpolate(qa[i:i + 1].to(ctx.device), qb[i:i + 1].to(ctx.device), steps,
                                                   smoothness=None).float().cpu() for i in range(n_pairs)])
            return _path_metrics(prior, paths, train, ctx.device)

        def smooth(prior=prior):  # all pairs at once: the same per-path optimisation as interpolate's
            from posendf_plugin.prior import INTERPOLATION_SMOOTHNESS, smooth_path

            paths = plain.clone().to(ctx.device)
            paths[:, 1:-1] = smooth_path(prior.net, paths, INTERPOLATION_SMOOTHNESS)
            return _path_metrics(prior, paths.float().cpu(), train, ctx.device)

        res["projected"][name] = guarded(ctx, name, projected)
        res["smooth path"][name] = guarded(ctx, name, smooth)
    res["_settings"] = {"pairs": n_pairs, "steps": steps, "data": ctx.data_name}
    return res


def plot(result: Dict, ctx: BenchContext) -> List:
    return []
