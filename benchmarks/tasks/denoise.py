"""denoise: HuMoR-protocol motion denoising with each prior
(:func:`posendf_plugin.fitting.denoise.denoise_window`, schedule :class:`DenoiseConfig`).

Windows of ``window`` frames are cut from the clean motions of the source (``--data``
AMASS-layout files, the converted Bandai-Namco clips, or the CMU pose-set clips as
pseudo-motions, see :meth:`BenchContext.motions`); Gaussian
noise of 20 / 40 / 100 mm is added to the 22 body joints; every prior fits the *same* noisy
joints (one seeded generator per window and noise level). Metrics (means over windows):
``mpjpe_mm``, ``v2v_mm``, ``accel_mm`` (mm/frame²), ``pa_mpjpe_mm``, and the noisy input's
``noisy_mpjpe_mm`` / ``noisy_accel_mm``; ``seconds`` per window.
"""
from __future__ import annotations

import time
from typing import Dict, List, Tuple

import numpy as np

from ..common import PER_ITEM, BenchContext, guarded, is_metrics, mpl, prior_rows, save_figure, skipped

NAME = "denoise"
NOTES = ["HuMoR protocol: MPJPE / V2V in mm, accel_mm = acceleration error (mm/frame²); noisy_* = the noisy input; every prior sees the same noise.",
         "On the cmu source the clean 'motions' are the held-out pose-set clips (near-duplicate frames dropped), so motion is faster than "
         "30 fps capture; bandai and --data motions are real frame sequences."]
NOISE_MM = (20.0, 40.0, 100.0)
#: the quick default run denoises at the issue targets' level only (the full run at all three)
QUICK_NOISE_MM = (40.0,)
_KEYS = ("mpjpe_mm", "v2v_mm", "accel_mm", "pa_mpjpe_mm", "noisy_mpjpe_mm", "noisy_accel_mm")


def add_data_term_args(ap) -> None:
    """The data-term options of ``calibrate.py --task denoise`` and ``denoise_variants.py``."""
    ap.add_argument("--data-term", choices=["distance", "squared"], default=None,
                    help="denoise: the data term (default: configs/denoise.yaml's)")
    ap.add_argument("--data-weight-factor", type=float, default=1.0, help="denoise: multiply every stage's data weight by this")
    ap.add_argument("--noise-exponent", type=float, default=None, metavar="P",
                    help="denoise: data weights x (40 mm / measured noise)^P (default: configs/denoise.yaml's; 0 = fixed)")


def with_data_term(base, args):
    """``base`` (a ``DenoiseConfig``) with :func:`add_data_term_args`' options applied.

    Raises:
        ValueError: an option value the config refuses (the message names the field).
    """
    import dataclasses

    return dataclasses.replace(
        base, data_term=args.data_term or base.data_term,
        noise_exponent=base.noise_exponent if args.noise_exponent is None else args.noise_exponent,
        stages=tuple(dataclasses.replace(st, data_weight=st.data_weight * args.data_weight_factor) for st in base.stages))


def _slice(m, a: int, b: int, step: int):
    from posendf_plugin.data.motion import Motion

    sl = slice(a, b, step)
    return Motion(pose_body=m.pose_body[sl], root_orient=m.root_orient[sl], trans=m.trans[sl], betas=m.betas,
                  fps=m.fps / step, gender=m.gender, pose_hand=m.pose_hand[sl])


def _windows(ctx: BenchContext, window: int, max_windows: int) -> List[Tuple[str, int, object]]:
    """Up to ``max_windows`` non-overlapping windows of ``window`` frames at ~30 fps (motions
    captured faster are subsampled, as in HuMoR), one per motion in turn so that quick runs
    cover several clips; with more long-enough motions than windows, the motions are taken
    evenly spaced through the (sorted) list, so they span its contents."""
    motions = []
    for name, m in ctx.motions():
        step = max(1, int(round(m.fps / 30.0)))
        if len(m) >= window * step:
            motions.append((name, m, step))
    if 0 < max_windows < len(motions):
        motions = [motions[(i * len(motions)) // max_windows] for i in range(max_windows)]
    out: List[Tuple[str, int, object]] = []
    k = 0
    while len(out) < max_windows:
        added = False
        for name, m, step in motions:
            a = k * window * step
            if a + window * step <= len(m) and len(out) < max_windows:
                out.append((name, a, _slice(m, a, a + window * step, step)))
                added = True
        if not added:
            break
        k += 1
    return out


def run(ctx: BenchContext) -> Dict:
    from posendf_plugin.fitting.denoise import DenoiseConfig, DenoiseStage, denoise_window

    window = ctx.pick(12, 60, 60)
    max_windows = ctx.pick(2, 2, 10**6 if ctx.active_source.kind == "data" else 40)
    wins = _windows(ctx, window, max_windows)
    if not wins:
        n = len(ctx.active_source.motions())
        why = (f"no readable motion file in {ctx.data_name} (a pose set holds poses, not motions; files refused are "
               "named in the log)" if n == 0 else f"none of the {n} motion(s) of {ctx.data_name} has {window} frames or more")
        return {"skipped": why}
    bm = ctx.body_model()
    res: Dict = {}
    for noise in ctx.pick(NOISE_MM, QUICK_NOISE_MM, NOISE_MM):
        ni = NOISE_MM.index(noise)  # the noise of a level is the same in quick and full runs
        setting = f"noise={noise:g}mm"
        res[setting] = {}
        cfg = DenoiseConfig(window=window, noise_mm=noise, **({'stages': (DenoiseStage(5),)} if ctx.tiny else {}))
        for name, prior, why in prior_rows(ctx, ctx.fit_device, setting=setting):
            if prior is None:
                res[setting][name] = skipped(why)
                continue
            def one(prior=prior, cfg=cfg, ni=ni):
                per: List[Dict[str, float]] = []
                t0 = time.perf_counter()
                for wi, (_, _, win) in enumerate(wins):
                    g = ctx.generator(1000 + 100 * ni + wi)  # same noise for every prior
                    per.append(denoise_window(win, bm, prior, cfg, g)[1])
                secs = time.perf_counter() - t0
                row = {k: float(np.mean([m[k] for m in per])) for k in _KEYS}
                row.update(windows=len(per), seconds_per_window=secs / len(per))
                row[PER_ITEM] = {"mpjpe_mm": [m["mpjpe_mm"] for m in per]}  # paired intervals (run.py)
                return row

            res[setting][name] = guarded(ctx, name, one)
    res["_settings"] = {"window": window, "windows": len(wins), "clips": len({w[0] for w in wins}),
                        "body_model": ctx.body_model_name(), "data": ctx.data_name,
                        "schedule": "configs/denoise.yaml defaults (DenoiseConfig())"}
    return res


def plot(result: Dict, ctx: BenchContext) -> List:
    plt = mpl()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    drew = False
    noisy = None
    levels = [n for n in NOISE_MM if f"noise={n:g}mm" in result]
    for name in ctx.priors:
        ys = [result[f"noise={n:g}mm"].get(name) for n in levels]
        if all(is_metrics(y) for y in ys):
            ax.plot(levels, [y["mpjpe_mm"] for y in ys], "o-", label=name)
            noisy = [y["noisy_mpjpe_mm"] for y in ys]
            drew = True
    if not drew:
        plt.close(fig)
        return []
    ax.plot(levels, noisy, "k--", lw=0.9, label="noisy input")
    ax.set_xlabel("joint noise σ (mm)")
    ax.set_ylabel("MPJPE after denoising (mm)")
    ax.set_title(ctx.source_title("denoising error vs noise level"), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return [save_figure(fig, ctx.source_path("denoise_error_vs_noise"))]
