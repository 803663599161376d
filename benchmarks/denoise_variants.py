"""Denoising variants of the Pose-NDF term and of the data term on **validation** data: the
experiments behind the denoising margin in ``benchmarks/RESULTS.md`` ("Calibration") and
``configs/denoise.yaml``.

Same protocol and noise as ``benchmarks/calibrate.py --task denoise`` (windows of 60 frames,
one seeded generator per window, the library's :func:`denoise_window` and schedule). Each
``--variant`` is one of

* ``none`` — no prior;
* ``lin:S`` — the plain term ``f`` at ``prior_scale`` S (margin 0);
* ``margin:M:S`` — ``max(f − M, 0)`` at S (``DenoiseConfig.prior_margin``, uncapped: the form
  shipped before session 20);
* ``sqrt:EPS:S`` — ``sqrt(f + EPS)``; ``log:EPS:S`` — ``log(f + EPS)`` (weaker pull far from the
  data; both were worse than no prior on a held-out style);
* ``sat:M:C:S`` — the margin term saturated, ``x·C / (x + C)`` with ``x = max(f − M, 0)``: its
  pull fades on frames the field finds very unlikely (``f ≫ C``), e.g. rare real poses of a
  style it never saw;
* ``cap:M:C:S`` — the margin term capped, ``min(max(f − M, 0), C)``: the full pull below
  ``M + C``, none beyond it (a frame whose data demand a pose the field puts that far is left
  to the data); a fixed cap (session 20's shipped form was ``cap:0.05:1:1e-5``);
* ``capn:M:C:Q:X:S`` — the same with the cap scaled by the measured input noise,
  ``C · min((σ̂ / 40 mm)^Q, X)`` (``DenoiseConfig.cap_noise_exponent`` / ``cap_noise_max``; X
  may be ``inf``); ``capn:0.05:1:1:1:1e-5`` is the shipped form (``configs/denoise.yaml``).

Every variant sets Pose-NDF's margin and cap itself (``cap`` / ``capn`` through
``DenoiseConfig.prior_margin``, ``prior_cap``, ``cap_noise_exponent`` and ``cap_noise_max``; the
others uncapped): the config's ``prior_cap`` is not applied on top.

Besides the means, each variant's line gives its worst window against the first variant's
(``worst +X mm``): a prior that fails badly on a few windows shows there.

The data term is ``configs/denoise.yaml``'s (mean squared joint distance, stage data weights
times ``(40 mm / σ̂)^P``, σ̂ the noise measured in each window's input by
:func:`estimate_joint_noise`) unless ``--data-term``, ``--data-weight-factor`` (multiplies every
stage's data weight) or ``--noise-exponent P`` say otherwise; the earlier distance term is
``--data-term distance --data-weight-factor 0.1 --noise-exponent 0``. Prints one line per
variant: mean MPJPE, V2V, acceleration error (mm) and the mean σ̂.

Examples::

    python benchmarks/denoise_variants.py --variant none --variant lin:3e-6 --variant margin:0.05:1e-5
    python benchmarks/denoise_variants.py --data runs/heldout_s1/motions --checkpoint runs/heldout_s1/stage2/model.pt \\
        --noise-mm 20 --noise-exponent 2 --variant none --variant margin:0.05:1e-5
    python benchmarks/denoise_variants.py --windows 2 --variant none --variant margin:0.05:1e-5 --by-true-f
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BenchContext  # noqa: E402
from benchmarks.tasks import denoise as D  # noqa: E402
from posendf_plugin.fitting.denoise import DenoiseConfig, denoise_window  # noqa: E402
from posendf_plugin.fitting.losses import mpjpe  # noqa: E402
from posendf_plugin.priors.base import PosePrior  # noqa: E402


class ShapedPrior(PosePrior):
    """``fn(inner.energy(θ))`` under the inner prior's name (so its ``prior_scale`` applies)."""

    def __init__(self, inner: PosePrior, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.inner, self.fn, self.name = inner, fn, inner.name

    def energy(self, body_pose) -> torch.Tensor:
        return self.fn(self.inner.energy(body_pose))


def saturated(f: torch.Tensor, margin: float, cap: float) -> torch.Tensor:
    """``x·C / (x + C)`` with ``x = max(f − margin, 0)`` (any shape): ≈ x for x ≪ C, → C for x ≫ C."""
    x = torch.relu(f - margin)
    return x * cap / (x + cap)


#: the --variant forms (module docstring)
VARIANTS = "none | lin:S | margin:M:S | sqrt:EPS:S | log:EPS:S | sat:M:C:S | cap:M:C:S | capn:M:C:Q:X:S"


def parse_variant(spec: str, posendf: PosePrior, none: PosePrior, base: DenoiseConfig) -> Tuple[PosePrior, DenoiseConfig]:
    """The prior and config of one ``--variant`` (see the module docstring)."""
    parts = spec.split(":")
    kind = parts[0]
    try:
        nums = [float(x) for x in parts[1:]]
    except ValueError:
        raise SystemExit(f"--variant {spec!r}: numbers expected after the kind")
    want = {"none": 0, "lin": 1, "margin": 2, "sqrt": 2, "log": 2, "sat": 3, "cap": 3, "capn": 5}
    if kind not in want or len(nums) != want[kind]:
        raise SystemExit(f"--variant {spec!r}: expected {VARIANTS.replace(' |', ',')}")
    if kind in ("sat", "cap", "capn") and not (nums[0] >= 0 and nums[1] > 0):
        raise SystemExit(f"--variant {spec!r}: {kind}:M:C:... needs M >= 0 and C > 0")
    if kind == "none":
        return none, base
    scale = {**dict(base.prior_scale), "posendf": nums[-1]}
    margin = {**dict(base.prior_margin), "posendf": nums[0] if kind in ("margin", "cap", "capn") else 0.0}
    cap = {k: v for k, v in dict(base.prior_cap).items() if k != "posendf"}
    if kind in ("cap", "capn"):
        cap["posendf"] = nums[1]  # the config's own cap (DenoiseConfig.prior_cap)
    try:
        cfg = dataclasses.replace(base, prior_scale=scale, prior_margin=margin, prior_cap=cap,
                                  cap_noise_exponent=nums[2] if kind == "capn" else 0.0,
                                  cap_noise_max=nums[3] if kind == "capn" else base.cap_noise_max)
    except ValueError as e:
        raise SystemExit(f"--variant {spec!r}: {e}")
    if kind == "sqrt":
        return ShapedPrior(posendf, lambda f, e=nums[0]: torch.sqrt(f + e)), cfg
    if kind == "log":
        return ShapedPrior(posendf, lambda f, e=nums[0]: torch.log(f + e)), cfg
    if kind == "sat":
        return ShapedPrior(posendf, lambda f, m=nums[0], c=nums[1]: saturated(f, m, c)), cfg
    return posendf, cfg


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", required=True, help=VARIANTS)
    ap.add_argument("--data", default=None, metavar="DIR", help="motions (AMASS layout); default: the val split's clips")
    ap.add_argument("--checkpoint", default=None, metavar="MODEL.pt", help="Pose-NDF weights replacing the shipped ones")
    ap.add_argument("--noise-mm", type=float, default=40.0)
    ap.add_argument("--windows", type=int, default=30)
    D.add_data_term_args(ap)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--by-true-f", action="store_true",
                    help="also print each variant's per-frame MPJPE against the first variant's, binned by the "
                         "Pose-NDF field's f on the true pose (where a prior helps and where it hurts)")
    args = ap.parse_args(argv)
    if not (args.data_weight_factor > 0 and args.windows > 0 and args.noise_mm > 0):
        raise SystemExit("--data-weight-factor, --windows and --noise-mm must be positive")
    torch.set_num_threads(args.threads)
    ctx = BenchContext(seed=args.seed, progress=False, split="val", data=None if args.data is None else Path(args.data),
                       checkpoints={} if args.checkpoint is None else {"posendf": Path(args.checkpoint)})
    wins = D._windows(ctx, 60, args.windows)
    if not wins:
        raise SystemExit(f"no motion of at least 60 frames in {ctx.data_name}")
    bm = ctx.body_model()
    posendf, none = ctx.prior("posendf", torch.device("cpu")), ctx.prior("none", torch.device("cpu"))
    try:
        base = D.with_data_term(DenoiseConfig(noise_mm=args.noise_mm), args)
    except ValueError as e:
        raise SystemExit(f"denoise_variants.py: {e}")
    print(f"{ctx.data_name}: {len(wins)} windows, {args.noise_mm:g} mm, Pose-NDF {args.checkpoint or 'shipped'}, "
          f"data term {base.data_term} x {args.data_weight_factor:g}, noise exponent {base.noise_exponent:g}", flush=True)
    frame_errors: List[torch.Tensor] = []
    first: Optional[np.ndarray] = None  # the first variant's MPJPE per window
    for spec in args.variant:
        prior, cfg = parse_variant(spec, posendf, none, base)
        # one seeded generator per window: the noise calibrate.py draws
        runs = [denoise_window(win, bm, prior, cfg, ctx.generator(1000 + wi)) for wi, (_, _, win) in enumerate(wins)]
        per: List[dict] = [m for _, m in runs]
        window_mpjpe = np.array([m["mpjpe_mm"] for m in per])
        first = window_mpjpe if first is None else first
        worst = int(np.argmax(window_mpjpe - first))
        print(spec, *(f"{k} {np.mean([m[k] for m in per]):.2f}" for k in ("mpjpe_mm", "v2v_mm", "accel_mm")),
              f"noise_estimate_mm {np.mean([m['noise_estimate_mm'] for m in per]):.1f}",
              *([f"cap {np.mean([m['prior_cap'] for m in per]):.2f}"] if "prior_cap" in per[0] else []),
              f"worst {window_mpjpe[worst] - first[worst]:+.2f} mm (window {worst}, {wins[worst][0]})", flush=True)
        if args.by_true_f:
            frame_errors.append(torch.cat([1000 * mpjpe(a["joints"], a["gt_joints"]) for a, _ in runs]))
    if args.by_true_f:
        with torch.no_grad():
            f_true = torch.cat([posendf.energy(torch.as_tensor(win.pose_body, dtype=torch.float32).reshape(-1, 21, 3))
                                for _, _, win in wins])
        print_by_true_f(args.variant, frame_errors, f_true)
    return 0


#: bins of the field's f on the true pose for ``--by-true-f`` (σ = 0.1 quaternion noise: mean f ≈ 0.37)
TRUE_F_BINS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5, math.inf)


def print_by_true_f(names: Sequence[str], errors: Sequence[torch.Tensor], f_true: torch.Tensor) -> None:
    """Markdown table: per bin of ``f_true (F,)`` the frame count and each variant's mean MPJPE
    ``errors[i] (F,)`` (mm), with the difference to the first variant's."""
    print("\n| f of the true pose | frames | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for lo, hi in zip(TRUE_F_BINS[:-1], TRUE_F_BINS[1:]):
        sel = (f_true >= lo) & (f_true < hi)
        if not bool(sel.any()):
            continue
        cells = [f"{float(errors[0][sel].mean()):.2f}"] + [
            f"{float(e[sel].mean()):.2f} ({float((e - errors[0])[sel].mean()):+.2f})" for e in errors[1:]]
        print(f"| [{lo:g}, {hi:g}) | {int(sel.sum())} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
