"""Benchmark: distance labels for noisy poses against a large pose set (issue 4 target:
1 M samples against a 100 k-pose set on 2 CPU cores in <= 5 minutes, NN recall >= 0.99).

Reference set: the shipped CMU pose set ``posendf_plugin/assets/cmu_train.npz`` when present
(grown to ``--n-ref`` by adding copies with small per-joint perturbations, if it is smaller),
otherwise a synthetic motion-like set (smooth random joint trajectories within human-like
angle ranges). Queries: the same sampler ``posendf data prepare`` uses (clean share, σ list).

Examples::

    python benchmarks/bench_labels.py                     # full size: 1M x 100k, 2 threads
    python benchmarks/bench_labels.py --quick             # 50k x 20k, seconds
    python benchmarks/bench_labels.py --metric nrdf --noise nrdf
    python benchmarks/bench_labels.py --index hnsw --candidates 64
    python benchmarks/bench_labels.py --device cuda       # faiss on the GPU (needs a GPU build of faiss)
    for n in 30000 100000 300000; do python benchmarks/bench_labels.py --n-samples 20000 --n-ref $n; done

Prints one JSON line with timings, throughput and recall; ``--out FILE`` also saves it.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posendf_plugin.data.labels import CandidateIndex, SearchConfig, faiss_threads, knn_labels, measure_recall  # noqa: E402
from posendf_plugin.data.posesets import load_pose_set  # noqa: E402
from posendf_plugin.data.prepare import PrepareConfig, sample_noisy_chunk  # noqa: E402
from posendf_plugin.rotations import axis_angle_to_quat, quat_canonical, quat_mul  # noqa: E402

ASSET = Path(__file__).resolve().parents[1] / "posendf_plugin" / "assets" / "cmu_train.npz"


def synthetic_motion_poses(n: int, seed: int, frames_per_clip: int = 500) -> torch.Tensor:
    """``(n, 21, 4)`` motion-like poses: per clip, each joint follows a smooth random
    trajectory (sum of a few sinusoids) around a random offset, amplitudes ~0.3-0.6 rad."""
    rng = np.random.default_rng(seed)
    n_clips = math.ceil(n / frames_per_clip)
    t = np.linspace(0.0, 1.0, frames_per_clip)[None, :, None, None]
    offset = rng.normal(0.0, 0.35, (n_clips, 1, 21, 3))
    out = offset.copy()
    for _ in range(3):
        amp = rng.normal(0.0, 0.25, (n_clips, 1, 21, 3))
        freq = rng.uniform(0.5, 6.0, (n_clips, 1, 21, 3))
        phase = rng.uniform(0.0, 2 * np.pi, (n_clips, 1, 21, 3))
        out = out + amp * np.sin(2 * np.pi * freq * t + phase)
    aa = torch.from_numpy(out.reshape(-1, 21, 3)[:n].astype(np.float32))
    return quat_canonical(axis_angle_to_quat(aa))


def grow(quat: torch.Tensor, n: int, seed: int, jitter: float = 0.05) -> torch.Tensor:
    """Reach ``n`` poses by appending copies rotated by small random per-joint rotations."""
    if quat.shape[0] >= n:
        return quat[:n]
    rng = np.random.default_rng(seed)
    extra = n - quat.shape[0]
    src = quat[torch.from_numpy(rng.integers(0, quat.shape[0], extra))]
    aa = torch.from_numpy(rng.normal(0.0, jitter, (extra, 21, 3)).astype(np.float32))
    return torch.cat((quat, quat_canonical(quat_mul(src, axis_angle_to_quat(aa)))))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-samples", type=int, default=1_000_000)
    p.add_argument("--n-ref", type=int, default=100_000)
    p.add_argument("--quick", action="store_true", help="50k samples against 20k poses")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--metric", choices=("posendf", "nrdf"), default="posendf")
    p.add_argument("--noise", choices=("posendf", "nrdf"), default=None, help="default: same as --metric")
    p.add_argument("--k", type=int, default=None, help="default: 5 for posendf, 1 for nrdf")
    p.add_argument("--index", default="ivf", choices=("auto", "flat", "ivf", "hnsw", "torch"))
    p.add_argument("--candidates", type=int, default=64)
    p.add_argument("--features", default="poly", choices=("poly", "canonical"))
    p.add_argument("--nlist", type=int, default=None)
    p.add_argument("--nprobe", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--recall-queries", type=int, default=2000)
    p.add_argument("--synthetic", action="store_true", help="ignore the shipped CMU set")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where faiss searches (default cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the JSON result here")
    a = p.parse_args()
    if a.quick:
        a.n_samples, a.n_ref = 50_000, 20_000
    torch.set_num_threads(a.threads)
    noise = a.noise or a.metric
    k = a.k or (5 if a.metric == "posendf" else 1)

    if ASSET.is_file() and not a.synthetic:
        base = load_pose_set(ASSET).quat.float()
        ref_source = f"{ASSET.name} ({base.shape[0]} poses) grown to {a.n_ref} with 0.05 rad jitter"
        ref = grow(base, a.n_ref, a.seed)
    else:
        ref_source = "synthetic motion-like poses"
        ref = synthetic_motion_poses(a.n_ref, a.seed)
    cfg = PrepareConfig(noise=noise, metric=a.metric, k=k, n_samples=a.n_samples,
                        search=SearchConfig(index=a.index, features=a.features, candidates=a.candidates, nlist=a.nlist,
                                            nprobe=a.nprobe, batch_size=a.batch_size))
    rng = np.random.default_rng([a.seed, 1])
    queries, scale, _, clean = sample_noisy_chunk(ref, a.n_samples, cfg, rng)
    noisy = queries[~clean]

    with faiss_threads(a.threads):
        t0, c0 = time.perf_counter(), time.process_time()
        index = CandidateIndex(ref, cfg.search, a.metric, seed=a.seed, device=a.device)
        t_build, c_build = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        res = knn_labels(noisy, index, a.metric, k, progress=True)
        t_label, c_label = time.perf_counter() - t0, time.process_time() - c0
        rq, _, _, _ = sample_noisy_chunk(ref, a.recall_queries, dataclasses.replace(cfg, clean_share=0.0),
                                         np.random.default_rng([a.seed, 2]))
        t0 = time.perf_counter()
        rec = measure_recall(rq, index, a.metric, k)
        t_recall = time.perf_counter() - t0
    out = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "command": " ".join(sys.argv),
        "machine": f"{platform.processor() or platform.machine()}, torch threads {a.threads}",
        "device": a.device if a.device == "cpu" else f"cuda ({torch.cuda.get_device_name(0)})",
        "reference": ref_source, "n_ref": int(ref.shape[0]), "n_samples": a.n_samples,
        "n_labelled": int(noisy.shape[0]), "metric": a.metric, "noise": noise, "k": k,
        "index": index.kind, "features": a.features, "nlist": index.nlist, "nprobe": a.nprobe, "candidates": a.candidates,
        "build_s": round(t_build, 2), "label_s": round(t_label, 2),
        "total_s": round(t_build + t_label, 2),
        # CPU seconds of this process (all threads): / threads = wall time on idle cores
        "build_cpu_s": round(c_build, 2), "label_cpu_s": round(c_label, 2),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "samples_per_s": round(noisy.shape[0] / max(t_label, 1e-9)),
        "recall": round(rec.recall, 5), "exact_label_share": round(rec.exact_share, 5),
        "label_abs_err_mean": rec.label_abs_err_mean, "label_abs_err_max": rec.label_abs_err_max,
        "recall_queries": rec.n_queries, "recall_s": round(t_recall, 2),
        "mean_label": float(res.dist.mean()),
    }
    line = json.dumps(out)
    print(line)
    if a.out:
        a.out.write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
