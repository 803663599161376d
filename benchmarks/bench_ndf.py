"""Speed of the Pose-NDF network: training throughput, forward throughput, projection time.

    python benchmarks/bench_ndf.py --threads 2 [--checkpoint runs/cmu/model.pt]

Measures, for the network of ``--config`` (default configs/cmu.yaml, the embedded default)
and, for reference, the paper's network (configs/amass.yaml):

1. training samples/s: full optimiser steps (distance + manifold + eikonal terms, Adam) on
   batches of ``training.batch_size`` labelled poses (the manifold batch is extra work, not
   counted as samples); target >= 5k/s on 2 CPU cores with the eikonal term on;
2. forward poses/s (no gradient, batches of 8192); target >= 20k/s;
3. projection of 1k uniformly random poses to mean |f| <= 0.01 (needs a trained model:
   ``--checkpoint`` or the shipped one; skipped otherwise); target <= 2 s;
4. with a trained model, quality: mean f on the held-out default test split vs the same poses
   with noise σ = 0.1 / 0.25 / 0.5 (must increase; real < 95% of σ = 0.1).

Writes the figures to ``benchmarks/results_ndf.md`` (``--out``) with the command, the date, the
thread count and the load average (other processes may share the CPU).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from posendf_plugin.config import load_config  # noqa: E402
from posendf_plugin.io import atomic_path  # noqa: E402
from posendf_plugin.model import PoseNDFNet  # noqa: E402
from posendf_plugin.rotations import quat_random  # noqa: E402
from posendf_plugin.training import training_losses  # noqa: E402


def _timeit(fn, min_seconds: float, warmup: int = 2):
    for _ in range(warmup):
        fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_seconds and n >= 3:
            return n, dt


def bench_training(cfg, seconds: float) -> float:
    g = torch.Generator().manual_seed(0)
    net = PoseNDFNet(cfg.model)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.training.lr)
    bs = cfg.training.batch_size
    mbs = cfg.training.manifold_batch_size or bs
    q = quat_random(bs, 21, generator=g)
    d = torch.rand(bs, generator=g)
    clean = quat_random(mbs, 21, generator=g)

    def step():
        t = training_losses(net, q, d, clean, cfg)
        opt.zero_grad(set_to_none=True)
        t["loss"].backward()
        opt.step()

    n, dt = _timeit(step, seconds)
    return n * bs / dt


def bench_forward(cfg, seconds: float, batch: int = 8192) -> float:
    net = PoseNDFNet(cfg.model).eval()
    q = quat_random(batch, 21, generator=torch.Generator().manual_seed(1))

    def fwd():
        with torch.no_grad():
            net(q)

    n, dt = _timeit(fwd, seconds)
    return n * batch / dt


def bench_projection(prior, n: int, method: str, tol: float, max_iter: int):
    q = quat_random(n, 21, generator=torch.Generator().manual_seed(2))
    prior.project(q[:16], method=method, tol=tol, max_iter=3)  # warm-up
    t0 = time.perf_counter()
    res = prior.project(q, method=method, tol=tol, max_iter=max_iter)
    dt = time.perf_counter() - t0
    return dt, res


def quality(prior, sigmas=(0.1, 0.25, 0.5), seed: int = 0):
    """Mean f on the held-out default test split vs the same poses with Pose-NDF Gaussian
    quaternion noise (:func:`posendf_plugin.data.noise.gaussian_quat_noise`)."""
    import numpy as np

    from posendf_plugin.data.default import default_pose_set
    from posendf_plugin.data.noise import gaussian_quat_noise

    q = default_pose_set("test").quat.float()
    rng = np.random.default_rng(seed)
    out = {"real": float(prior.distance(q).mean())}
    for s in sigmas:
        out[f"sigma={s:g}"] = float(prior.distance(gaussian_quat_noise(q, s, rng)).mean())
    return len(q), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "cmu.yaml"))
    ap.add_argument("--threads", default="1,2", help="torch thread counts to measure, comma-separated (default 1,2)")
    ap.add_argument("--seconds", type=float, default=5.0, help="minimum timing window per measurement")
    ap.add_argument("--checkpoint", default=None, help="trained model for the projection benchmark")
    ap.add_argument("--tol", type=float, default=0.005, help="per-pose stopping tolerance on f")
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--no-paper", action="store_true", help="skip the paper-size network")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results_ndf.md"))
    args = ap.parse_args(argv)
    threads = [int(t) for t in str(args.threads).split(",")]
    load0 = os.getloadavg()

    rows = []
    cfgs = [("default (" + Path(args.config).name + ")", load_config(args.config))]
    if not args.no_paper:
        cfgs.append(("paper (amass.yaml)", load_config(REPO / "configs" / "amass.yaml")))
    for nt in threads:
        torch.set_num_threads(nt)
        for name, cfg in cfgs:
            tr = bench_training(cfg, args.seconds)
            fw = bench_forward(cfg, args.seconds)
            rows.append((name, nt, list(cfg.model.hidden), cfg.training.batch_size, cfg.training.w_eikonal, tr, fw))
            print(f"{name}, {nt} thread(s): train {tr:,.0f} samples/s (eikonal w={cfg.training.w_eikonal}), "
                  f"forward {fw:,.0f} poses/s", flush=True)
    torch.set_num_threads(threads[0])

    proj_lines = []
    prior = None
    try:
        from posendf_plugin.prior import PoseNDF

        prior = PoseNDF.from_checkpoint(args.checkpoint) if args.checkpoint else PoseNDF.from_pretrained()
        src = args.checkpoint or "shipped model"
    except FileNotFoundError as e:
        proj_lines.append(f"Projection benchmark skipped: {e}")
    if prior is not None:
        for method in ("posendf", "riemannian"):
            dt, res = bench_projection(prior, 1000, method, args.tol, args.max_iter)
            mean_f = float(res.distance.abs().mean())
            line = (f"| {method} | {dt:.2f} s | {mean_f:.4f} | {float(res.converged.float().mean()) * 100:.1f}% | "
                    f"{float(res.iterations.float().mean()):.1f} | {'yes' if mean_f <= 0.01 and dt <= 2.0 else 'no'} |")
            proj_lines.append(line)
            print(f"projection {method} ({threads[0]} thread(s)): {dt:.2f} s, mean |f| {mean_f:.4f}", flush=True)
    qual = None
    if prior is not None:
        try:
            qual = quality(prior)
        except FileNotFoundError as e:
            print(f"quality skipped: {e}")
    load1 = os.getloadavg()

    cmd = "python " + " ".join(sys.argv)
    text = [
        "# Pose-NDF speed (benchmarks/bench_ndf.py)",
        "",
        f"- command: `{cmd}`",
        f"- date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, torch {torch.__version__}, "
        f"torch threads measured: {', '.join(map(str, threads))}",
        f"- load average before / after: {load0[0]:.1f} / {load1[0]:.1f} — other processes shared the CPU, so these "
        "are lower bounds for an idle machine",
        "",
        "| network | threads | hidden | batch | eikonal w | train samples/s (target ≥ 5k) | forward poses/s (target ≥ 20k) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, nt, hidden, bs, we, tr, fw in rows:
        text.append(f"| {name} | {nt} | {hidden} | {bs} | {we} | {tr:,.0f} | {fw:,.0f} |")
    text += ["", f"Projection of 1,000 uniformly random poses with {threads[0]} thread(s) (tol {args.tol} per pose, "
             f"≤ {args.max_iter} steps; target: mean |f| ≤ 0.01 in ≤ 2 s):", ""]
    if prior is not None:
        text += [f"model: {src}", "", "| method | time | mean abs f | converged | mean steps | target met |", "|---|---|---|---|---|---|"]
    text += proj_lines
    if qual is not None:
        n, vals = qual
        keys = list(vals)
        noisy = [vals[k] for k in keys[1:]]
        mono = all(a < b for a, b in zip([vals["real"]] + noisy, noisy))
        text += ["", f"Quality on the held-out default test split ({n} CMU poses, not in training): mean f of the real "
                 "poses and of the same poses with Pose-NDF Gaussian quaternion noise (seed 0):", "",
                 "| " + " | ".join(keys) + " | increasing with noise | real < 95% of σ=0.1 |",
                 "|" + "---|" * (len(keys) + 2),
                 "| " + " | ".join(f"{vals[k]:.4f}" for k in keys) + f" | {'yes' if mono else 'no'} | "
                 f"{'yes' if vals['real'] < 0.95 * noisy[0] else 'no'} ({vals['real'] / noisy[0] * 100:.1f}%) |"]
    out = Path(args.out)
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(text) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
