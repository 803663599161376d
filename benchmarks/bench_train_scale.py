"""Benchmark: training throughput (samples/s) with 1 and more processes (``torchrun`` + DDP).

Writes a labelled data set of ``--samples`` noisy poses around the shipped CMU training poses
(labels are random numbers: throughput does not depend on them), then for each process count P
in ``--procs`` runs::

    torchrun --standalone --nproc_per_node=P -m posendf_plugin train --config CFG --data DATA ...

for ``--epochs`` epochs (the config's network, batch and losses; device cpu unless
``--device cuda``) and reports the samples/s of the fastest epoch (training only; the epoch
time includes validation, which is split across processes too) and the wall time of the run.

Examples::

    python benchmarks/bench_train_scale.py                                  # cmu.yaml, 1 and 2 processes
    python benchmarks/bench_train_scale.py --config configs/amass.yaml --device cuda --procs 1

Prints one JSON line per run; ``--out FILE`` also appends them to FILE.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posendf_plugin.config import load_config, save_config  # noqa: E402
from posendf_plugin.data.posesets import load_pose_set  # noqa: E402
from posendf_plugin.io import save_json, save_npz  # noqa: E402
from posendf_plugin.rotations import axis_angle_to_quat, quat_canonical, quat_mul  # noqa: E402


def write_data(folder: Path, n: int, seed: int) -> Path:
    """``n`` noisy CMU poses with random labels in the ``data prepare`` layout (one chunk)."""
    base = load_pose_set(ROOT / "posendf_plugin" / "assets" / "cmu_train.npz").quat.float()
    rng = np.random.default_rng(seed)
    src = base[torch.from_numpy(rng.integers(0, len(base), n))]
    aa = torch.from_numpy(rng.normal(0.0, 0.1, (n, 21, 3)).astype(np.float32))
    quat = quat_canonical(quat_mul(src, axis_angle_to_quat(aa)))
    dist = rng.uniform(0.0, 1.0, n).astype(np.float32)
    dist[: n // 10] = 0.0
    folder.mkdir(parents=True, exist_ok=True)
    save_npz(folder / "chunk_00000.npz", quat=quat.numpy(), dist=dist, sigma=np.full(n, 0.1, np.float32),
             origin=np.zeros(n, np.int64))
    save_json(folder / "manifest.json", {"status": "complete", "config": {"metric": "posendf"}, "chunks": ["chunk_00000.npz"]})
    return folder


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "cmu.yaml"))
    p.add_argument("--samples", type=int, default=20000, help="labelled samples (2%% or the config's share held out)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--procs", default="1,2", help="process counts to run, comma-separated")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    a = p.parse_args()
    cfg = load_config(a.config)
    cfg = cfg.replace(training={"epochs": a.epochs, "num_threads": a.threads}, experiment={"device": a.device})
    with tempfile.TemporaryDirectory(prefix="posendf_scale_") as tmp:
        tmp = Path(tmp)
        data = write_data(tmp / "data", a.samples, a.seed)
        cfg_file = tmp / "config.yaml"
        save_config(cfg_file, cfg)
        for nproc in [int(x) for x in a.procs.split(",")]:
            run = tmp / f"run_{nproc}"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   "-m", "posendf_plugin", "train", "--config", str(cfg_file), "--data", str(data), "--out", str(run),
                   "--no-progress"]
            env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "PYTHONPATH": str(ROOT)}
            t0 = time.perf_counter()
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if r.returncode != 0:
                print(r.stderr[-3000:], file=sys.stderr)
                return 1
            h = json.loads((run / "history.json").read_text())
            n_train = a.samples - max(1, round(cfg.training.val_fraction * a.samples))
            best = min(h["seconds"])
            line = {
                "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
                "command": " ".join(["python"] + sys.argv),
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                "config": Path(a.config).name, "device": a.device, "processes": nproc, "threads_per_process": a.threads,
                "train_samples": n_train, "batch_size": cfg.training.batch_size, "epochs": a.epochs,
                "epoch_s": [round(s, 2) for s in h["seconds"]], "samples_per_s": round(n_train / best, 1),
                "wall_s": round(wall, 1), "load_avg_1min": round(os.getloadavg()[0], 2),
                "final_train_loss": h["train_loss"][-1],
            }
            print(json.dumps(line), flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
