"""Tiny synthetic fixtures for the NDF tests, in the exact layouts of the data pipeline.

* labelled data folder: ``chunk_00000.npz`` ... with ``quat (m, 21, 4)``, ``dist (m,)``,
  ``sigma (m,)`` float32 and a ``manifest.json`` (layout of ``posendf data prepare``);
* clean poses: a pose-set ``.npz`` (:func:`posendf_plugin.data.posesets.save_pose_set`).

Clean poses lie near a few random "mean" poses; labels are the exact Pose-NDF distance to the
nearest clean pose (brute force), so a small network can learn the field in a second.
"""
from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from posendf_plugin import rotations as R
from posendf_plugin.config import Config, load_config
from posendf_plugin.data.posesets import save_pose_set

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"


def clean_poses(n: int = 300, seed: int = 0) -> torch.Tensor:
    """``(n, 21, 4)`` clean poses: 4 random centres (angles ≤ ~0.6 rad) + small jitter."""
    g = torch.Generator().manual_seed(seed)
    centres = R.axis_angle_to_quat((torch.rand(4, 21, 3, generator=g) - 0.5) * 0.7)
    k = torch.randint(4, (n,), generator=g)
    jitter = R.axis_angle_to_quat(torch.randn(n, 21, 3, generator=g) * 0.03)
    return R.quat_canonical(R.quat_mul(centres[k], jitter))


def labelled(clean: torch.Tensor, n: int = 3000, seed: int = 1):
    """Noisy poses around ``clean`` with their Pose-NDF distance to the nearest clean pose."""
    g = torch.Generator().manual_seed(seed)
    sig = torch.tensor([0.0, 0.05, 0.15, 0.4])[torch.randint(4, (n,), generator=g)]
    base = clean[torch.randint(len(clean), (n,), generator=g)]
    noise = R.axis_angle_to_quat(torch.randn(n, 21, 3, generator=g) * sig[:, None, None])
    q = R.quat_canonical(R.quat_mul(base, noise))
    d = R.posendf_pose_distance(q[:, None], clean[None]).min(dim=1).values
    return q, d, sig


def write_training_dir(path: Path, n: int = 3000, chunk: int = 1000, seed: int = 0) -> Path:
    """Write the labelled-data layout to ``path``; returns ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    clean = clean_poses(seed=seed)
    q, d, s = labelled(clean, n, seed + 1)
    for i in range(0, n, chunk):
        np.savez(path / f"chunk_{i // chunk:05d}.npz", quat=q[i:i + chunk].numpy().astype(np.float32),
                 dist=d[i:i + chunk].numpy().astype(np.float32), sigma=s[i:i + chunk].numpy().astype(np.float32))
    chunks = [f"chunk_{i:05d}.npz" for i in range((n + chunk - 1) // chunk)]
    (path / "manifest.json").write_text(json.dumps(
        {"status": "complete", "config": {"metric": "posendf"}, "n_samples": n, "n_chunks": len(chunks), "chunks": chunks}))
    save_pose_set(path.parent / f"{path.name}_clean.npz", clean)
    return path


def tiny_config(**sections) -> Config:
    cfg = load_config(TINY)
    return cfg.replace(**sections) if sections else cfg


@functools.lru_cache(maxsize=None)
def trained_tiny(epochs: int = 12) -> Path:
    """Train the tiny config once per test session; returns its ``model.pt``."""
    from posendf_plugin.training import train

    root = Path(tempfile.mkdtemp(prefix="posendf_tiny_"))
    data = write_training_dir(root / "data")
    cfg = tiny_config(training={"epochs": epochs}, data={"pose_set": str(root / "data_clean.npz")})
    res = train(cfg, out_dir=root / "run", data_dir=data, progress=False, tensorboard=False)
    return res.model_path


