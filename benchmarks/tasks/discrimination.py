"""discrimination: does the prior's energy tell real poses from noisy ones? (issue 7's quality
table).

Held-out poses are perturbed with Pose-NDF's Gaussian quaternion noise
(:func:`posendf_plugin.data.noise.gaussian_quat_noise`: ``normalize(q + σ ε)`` per joint) at
σ = 0.1 / 0.25 / 0.5. Per prior and σ: ``auroc`` of separating noisy (positive) from real
(negative) poses by ``prior.energy`` (0.5 = chance, 1 = perfect), and the mean energies.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import torch

from ..common import BenchContext, auroc, guarded, mpl, prior_rows, save_figure, skipped

NAME = "discrimination"
NOTES = ["auroc: area under the ROC curve of telling noisy held-out poses from the real ones by the prior's energy (0.5 = chance, 1 = perfect)."]
SIGMAS = (0.1, 0.25, 0.5)


def _energy(prior, q: torch.Tensor, device: torch.device, batch: int = 4096) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([prior.energy(q[a:a + batch].to(device)).reshape(-1).float().cpu() for a in range(0, len(q), batch)])


def _row(e_noisy: torch.Tensor, e_real: torch.Tensor) -> Dict[str, float]:
    return {"auroc": auroc(e_real, e_noisy), "energy_real": float(e_real.mean()), "energy_noisy": float(e_noisy.mean())}


def run(ctx: BenchContext) -> Dict:
    try:
        from posendf_plugin.data.noise import gaussian_quat_noise
    except ImportError as e:  # the noise module belongs to the data-preparation issue
        return {"skipped": f"posendf_plugin.data.noise.gaussian_quat_noise is not available ({e})"}
    test = ctx.test_poses()
    n = min(len(test), ctx.pick(50, 1000, len(test)))
    idx = torch.as_tensor(np.sort(ctx.rng(20).choice(len(test), n, replace=False)))
    real = test[idx]
    noisy = {s: gaussian_quat_noise(real, s, ctx.rng(21 + i)) for i, s in enumerate(SIGMAS)}
    res: Dict = {f"sigma={s:g}": {} for s in SIGMAS}
    for name, prior, why in prior_rows(ctx):
        if prior is None:
            for s in SIGMAS:
                res[f"sigma={s:g}"][name] = skipped(why)
            continue
        e_real = guarded(ctx, name, lambda: {"e": _energy(prior, real, ctx.device)})
        for s in SIGMAS:
            if "e" not in e_real:
                res[f"sigma={s:g}"][name] = e_real
                continue
            res[f"sigma={s:g}"][name] = guarded(ctx, name, lambda s=s: _row(_energy(prior, noisy[s], ctx.device), e_real["e"]))
    res["_settings"] = {"poses": n, "noise": "Pose-NDF Gaussian quaternion noise", "data": ctx.data_name}
    return res


def plot(result: Dict, ctx: BenchContext) -> List:
    plt = mpl()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    any_line = False
    for name in ctx.priors:
        ys = [result[f"sigma={s:g}"].get(name, {}).get("auroc") for s in SIGMAS]
        if all(isinstance(y, float) for y in ys):
            ax.plot(SIGMAS, ys, "o-", label=name)
            any_line = True
    if not any_line:
        plt.close(fig)
        return []
    ax.set_xlabel("noise σ (quaternion components)")
    ax.set_ylabel("AUROC real vs noisy")
    ax.set_ylim(0.4, 1.02)
    ax.axhline(0.5, color="0.7", lw=0.8, ls="--")
    ax.legend(fontsize=8)
    ax.set_title(ctx.source_title("energy separates real from noisy poses"), fontsize=9)
    fig.tight_layout()
    return [save_figure(fig, ctx.source_path("discrimination_auroc"))]
