"""Distillation: one network that reproduces another field — e.g. an ensemble of seeds — at the
cost of one network.

An ensemble (``posendf ensemble``: the mean of several fields trained from different seeds)
averages out where its members disagree, but costs M networks at every evaluation: inside a
fitting loop that is M times the prior's share of the time. :func:`relabel_training_data`
(``posendf relabel``) labels every sample of a ``posendf data prepare`` folder with a trained
field (the *teacher*) instead of its nearest-neighbour label; ``posendf train`` on that folder,
with the config the members were trained with, then fits one network (the *student*) to the
teacher. The samples, their noise scales and which of them are clean data poses stay as they
were, so the student sees the same poses its teacher's members saw.

The student learns the teacher's field, not the labels: train it with a config that takes no
label from the data poses' neighbours during training — no online hard negatives
(``training.projected_batch_size: 0``), or online ones labelled by the teacher too
(``training.teacher``); otherwise the trainer warns. Measured for the shipped fields in
``benchmarks/RESULTS.md`` (*Calibration*, sessions 13 and 14).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from .data.prepare import MANIFEST, _provenance, _settings_sha1, read_training_chunks
from .io import load_json, load_npz, save_json, save_npz
from .model import PoseNDFEnsemble, load_field

__all__ = ["RelabelResult", "relabel_training_data"]

PathLike = Union[str, Path]


@dataclass(frozen=True)
class RelabelResult:
    """What :func:`relabel_training_data` did: the output folder, samples and chunks in it, chunks
    written in this run (the others were complete already), and the mean absolute change of the
    labels (teacher − source)."""

    out: Path
    samples: int
    chunks: int
    written: int
    label_change: float


def _file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _finished_labels(path: Path, n: int, index: int, sha: str) -> Optional[np.ndarray]:
    """The labels of ``path`` if it is this run's finished chunk ``index`` of ``n`` samples, else None."""
    if not path.is_file():
        return None
    try:
        d = load_npz(path, required=("quat", "dist", "provenance"))
        p = json.loads(str(d["provenance"]))
    except (ValueError, KeyError, FileNotFoundError):
        return None
    done = isinstance(p, dict) and p.get("settings_sha1") == sha and p.get("chunk") == index and len(d["dist"]) == n
    return np.asarray(d["dist"], np.float32) if done else None


def relabel_training_data(teacher: PathLike, data: PathLike, out: PathLike, batch_size: int = 8192,
                          progress: bool = False, device: Union[str, torch.device] = "cpu") -> RelabelResult:
    """Write ``data`` (a ``posendf data prepare`` folder) to ``out`` with every label replaced by
    the teacher's distance ``f(q)``; poses, noise scales (``sigma``) and origins unchanged.

    Resumable: chunks already written for the same teacher and data are kept. The manifest keeps
    the source's settings (label metric, ``k``, ``clean_labels``: what the trainer checks) and
    records the teacher (path, SHA-1, kind) and the source folder.

    Args:
        teacher: a model file (``model.pt`` of ``posendf train`` or of ``posendf ensemble``).
        data: the prepared folder whose samples are relabelled.
        out: the new folder (not ``data``).
    Raises:
        ValueError: ``out`` is ``data``, or holds data relabelled from another teacher or folder;
            a teacher or data folder that does not load (the message names the file).
        FileNotFoundError: no such teacher or data folder.
    """
    teacher, data, out = Path(teacher), Path(data), Path(out)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data}: not a folder of training data; make one with 'posendf data prepare'")
    if out.resolve() == data.resolve():
        raise ValueError(f"--out {out} is the --data folder; write the relabelled samples to a new folder")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    net = load_field(teacher)[0].to(device).eval()
    src_man, chunks = read_training_chunks(data)  # every check the trainer makes, before anything is written
    names = [f.name for f, _ in chunks]
    kind = net.extra_repr() if isinstance(net, PoseNDFEnsemble) else "one field"
    settings = {"source_settings_sha1": src_man.get("settings_sha1"), "source_chunks": names,
                "teacher_sha1": _file_sha1(teacher)}
    sha = _settings_sha1(settings)
    man_path = out / MANIFEST
    if man_path.is_file():
        old = load_json(man_path, "manifest")
        if not isinstance(old, dict) or old.get("settings_sha1") != sha:
            raise ValueError(f"--out {out} already holds other training data (another teacher or source); use a new "
                             f"--out folder or delete {out}")
    elif out.is_dir() and any(out.glob("chunk_*.npz")):
        raise ValueError(f"--out {out} already holds training-data chunks of another run; use a new --out folder")
    out.mkdir(parents=True, exist_ok=True)
    relabel = {"teacher": {"path": str(teacher), "sha1": settings["teacher_sha1"], "kind": kind},
               "source": {"path": str(data), "settings_sha1": settings["source_settings_sha1"]}}
    manifest: Dict[str, Any] = {k: v for k, v in src_man.items() if k not in ("recall", "label_stats", "timings", "index")}
    manifest.update(status="running", settings_sha1=sha, chunks=names, relabel=relabel)
    save_json(man_path, manifest)

    written, samples, change = 0, 0, 0.0
    t0 = time.perf_counter()
    for i, (f, d) in enumerate(tqdm(chunks, desc="relabel", unit="chunk", disable=not progress)):
        quat = d["quat"]
        target = out / f.name
        new = _finished_labels(target, len(quat), i, sha)
        if new is None:
            q = torch.from_numpy(quat).to(device)
            with torch.no_grad():
                new = torch.cat([net(q[j:j + batch_size]) for j in range(0, len(q), batch_size)]).cpu().numpy()
            arrays = {k: np.asarray(d[k]) for k in ("sigma", "origin") if k in d}
            save_npz(target, quat=quat, dist=new.astype(np.float32), **arrays,
                     provenance=_provenance(sha, i, len(quat)))
            written += 1
        samples += len(quat)
        change += float(np.abs(new - d["dist"]).sum())
    mae = change / max(samples, 1)
    relabel.update(label_change_mae=mae, seconds=time.perf_counter() - t0)
    manifest.update(status="complete", n_samples=samples, n_chunks=len(names), relabel=relabel)
    save_json(man_path, manifest)
    return RelabelResult(out, samples, len(names), written, mae)
