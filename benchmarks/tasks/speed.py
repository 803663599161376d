"""speed: throughput of each prior's energy and its cost inside a fitting loop.

* ``forward B=…`` — ``prior.energy(q)`` without gradients on ``B`` held-out poses given as
  ``(B, 21, 4)`` quaternions (layout conversion included), poses/s.
* ``forward+backward B=…`` — energy and its gradient with respect to the poses
  (``torch.autograd.grad``), poses/s.
* ``image fit time`` — seconds to fit the same synthetic images
  (:func:`benchmarks.tasks.image_fit.synthetic_images`, :func:`fit_people`) with each prior,
  and ``ratio_vs_none``: that time over the no-prior time measured in the same loop (the
  priors take turns image by image, in reverse order every other image, so background load and
  cache warmth hit all of them alike; each prior first fits one image untimed);
  ``ratio_median``: the median over images of the per-image ratio (each image is fitted with
  and without the prior moments apart, so slow spells of the machine cancel).
"""
from __future__ import annotations

import os
from typing import Dict, List

import numpy as np
import torch

from ..common import BenchContext, guarded, is_metrics, mpl, prior_rows, save_figure, skipped, timed
from . import image_fit

NAME = "speed"
NOTES = ["poses_per_s: energy evaluations per second (forward) or energy + gradient (forward+backward); "
         "ratio_vs_none: image-fitting wall time with the prior over the time without one, measured in the same run; "
         "ratio_median: median over images of that ratio per image."]
BATCHES = (1, 64, 1024)


def _throughput(prior, q: torch.Tensor, device: torch.device, backward: bool, min_seconds: float) -> float:
    if backward:
        def fn():
            x = q.detach().requires_grad_(True)
            e = prior.energy(x).sum()
            torch.autograd.grad(e, x, allow_unused=True)
    else:
        def fn():
            with torch.no_grad():
                prior.energy(q)
    n, dt = timed(fn, device, min_seconds)
    return n * len(q) / dt


def run(ctx: BenchContext) -> Dict:
    min_seconds = ctx.pick(0.01, 0.3, 2.0)
    test = ctx.test_poses()
    res: Dict = {}
    rows = list(prior_rows(ctx, setting="throughput"))
    for B in BATCHES:
        q = test[torch.arange(B) % len(test)].to(ctx.device)
        for mode in ("forward", "forward+backward"):
            setting = f"{mode} B={B}"
            res[setting] = {}
            for name, prior, why in rows:
                if prior is None:
                    res[setting][name] = skipped(why)
                    continue
                res[setting][name] = guarded(ctx, name, lambda prior=prior, q=q, mode=mode: {
                    "poses_per_s": _throughput(prior, q, ctx.device, mode != "forward", min_seconds)})
    # fitting time with vs without a prior, taking turns per image
    n_img = ctx.pick(1, 3, 10)
    images = image_fit.synthetic_images(ctx, n_img, offset=60)
    config = image_fit.fit_config(ctx)
    fit_rows = [(n, p, w) for n, p, w in prior_rows(ctx, ctx.fit_device, setting="fitting time",
                                                    shipped=dict(config.shipped_weights))]
    if "none" not in [n for n, _, _ in fit_rows]:
        fit_rows.insert(0, ("none", ctx.prior("none", ctx.fit_device), None))
    times: Dict[str, List[float]] = {n: [] for n, p, _ in fit_rows if p is not None}
    failed: Dict[str, Dict] = {}
    for name, prior, _ in fit_rows:  # one untimed fit each first: lazy set-up is not fitting time
        if prior is not None:
            r = guarded(ctx, name, lambda prior=prior: {"s": image_fit.fit_one(ctx, images[0], prior, config)[1]})
            if "s" not in r:
                failed[name] = r
    rounds = ctx.pick(1, 1, 2)  # full: every image twice, so one slow moment weighs less
    for i, img in enumerate(images * rounds):
        for name, prior, _ in (fit_rows if i % 2 == 0 else fit_rows[::-1]):  # no prior does not always go first
            if prior is not None and name not in failed:
                r = guarded(ctx, name, lambda prior=prior, img=img: {"s": image_fit.fit_one(ctx, img, prior, config)[1]})
                if "s" in r:
                    times[name].append(r["s"])
                else:
                    failed[name] = r
    setting = f"image fit time ({n_img} images)"
    res[setting] = {}
    for name, prior, why in fit_rows:
        if name not in ctx.priors:
            continue
        if prior is None or name in failed or "none" in failed:
            res[setting][name] = skipped(why) if prior is None else failed.get(name, failed.get("none"))
            continue
        t, t0 = np.asarray(times[name]), np.asarray(times["none"])
        res[setting][name] = {"seconds_per_image": float(t.mean()), "ratio_vs_none": float(t.sum() / t0.sum()),
                              "ratio_median": float(np.median(t / t0))}
    res["_settings"] = {"device": str(ctx.device), "fit_device": str(ctx.fit_device), "torch_threads": torch.get_num_threads(),
                        "cpus": os.cpu_count(), "min_seconds_per_measurement": min_seconds, "fit_images": n_img,
                        "fit_rounds": rounds}
    return res


def plot(result: Dict, ctx: BenchContext) -> List:
    plt = mpl()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    names = list(ctx.priors)
    width = 0.8 / max(len(names), 1)
    drew = False
    for ax, mode in zip(axes, ("forward", "forward+backward")):
        for i, name in enumerate(names):
            vals = []
            for B in BATCHES:
                e = result.get(f"{mode} B={B}", {}).get(name)
                vals.append(e["poses_per_s"] if is_metrics(e) else 0.0)
            if any(vals):
                ax.bar([b + (i - len(names) / 2 + 0.5) * width for b in range(len(BATCHES))], vals, width, label=name)
                drew = True
        ax.set_xticks(range(len(BATCHES)))
        ax.set_xticklabels([f"B={b}" for b in BATCHES])
        ax.set_yscale("log")
        ax.set_ylabel("poses / s")
        ax.set_title(ctx.source_title(f"{mode} ({ctx.device})"), fontsize=9)
    if not drew:
        plt.close(fig)
        return []
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return [save_figure(fig, ctx.source_path("speed_throughput"))]
