"""Training data for a distance field: noisy poses around a pose set, labelled with their
distance to a reference pose set (``posendf data prepare``).

Pipeline per chunk (chunk ``i`` uses its own generator seeded by ``(seed, i)``, so any chunk
can be rebuilt alone and a resumed run writes identical files):

1. pick data poses uniformly from ``--poses``;
2. leave a share ``clean_share`` unchanged (noise scale 0) and perturb the rest with the
   configured noise model (:mod:`posendf_plugin.data.noise`): Pose-NDF Gaussian quaternion
   noise with σ drawn from ``sigmas``, or NRDF heavy-tailed per-joint rotations with an angle
   scale drawn from ``angle_scales``;
3. label every pose with its distance to ``--reference`` (default: the ``--poses`` set) under
   ``metric`` (:mod:`posendf_plugin.data.labels`): ``posendf`` = mean of the k = 5 nearest
   summed ``1 − |⟨q, q'⟩|``; ``nrdf`` = exact nearest geodesic distance. Clean poses get
   label 0 when the reference is the pose set they come from.

Output folder:

=====================  ================================================================
``manifest.json``      config, seed, source pose sets (path, size, checksum), counts,
                       NN recall vs. brute force, label statistics, status
``chunk_00000.npz``    ``quat`` (M, 21, 4) float32 noisy poses (w, x, y, z), w ≥ 0;
                       ``dist`` (M,) float32 label; ``sigma`` (M,) float32 noise scale
                       (σ, or the angle scale for NRDF noise; 0 = clean);
                       ``origin`` (M,) int64 index of the source pose in ``--poses``;
                       ``provenance`` a JSON string: hash of the settings (pose-set
                       checksums, config, seed), chunk number, sample count
``shard_K-of-N.json``  (sharded runs only) the manifest of shard K of N
=====================  ================================================================

Every file is written atomically; re-running with the same arguments skips complete chunks
whose provenance matches (a chunk of another data set is never reused or overwritten: the run
stops with a message). ``--shard K/N`` computes the chunks ``K, K+N, ...`` only (any scheduler
can run the N shards, concurrently, into one folder); ``--merge DIR`` checks all shards and
writes ``manifest.json``, giving the same files as one unsharded run.
:func:`load_training_data` reads the folder back as tensors.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from .._checks import check_shape
from ..io import load_npz, load_yaml, save_json, save_npz
from ..skeleton import NUM_BODY_JOINTS, with_mirror_images
from .augment import with_part_mixes
from .labels import (METRICS, CandidateIndex, SearchConfig, check_label_device, faiss_threads, knn_labels,
                     measure_recall)
from .noise import TAILS, draw_scales, gaussian_quat_noise, heavy_tailed_rotation_noise
from .posesets import load_pose_set

__all__ = [
    "NOISE_KINDS",
    "CLEAN_LABELS",
    "PrepareConfig",
    "PrepareResult",
    "load_prepare_config",
    "sample_noisy_chunk",
    "prepare_training_data",
    "parse_shard",
    "shard_chunks",
    "merge_shards",
    "load_training_data",
    "read_training_chunks",
    "DistanceDataset",
    "register_cli",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
NOISE_KINDS: Tuple[str, ...] = ("posendf", "nrdf")
#: values of ``PrepareConfig.clean_labels``
CLEAN_LABELS: Tuple[str, ...] = ("zero", "knn")
MANIFEST = "manifest.json"
_CHUNK_FMT = "chunk_{:05d}.npz"
_SHARD_FMT = "shard_{:05d}-of-{:05d}.json"
_CHUNK_KEYS = ("quat", "dist", "sigma", "origin")
#: second seed word of the recall-query generator (chunks use 0, 1, 2, ...)
_RECALL_STREAM = 2**31 - 1


def _tuple_of_floats(name: str, v: Any, allow_none: bool = False) -> Optional[Tuple[float, ...]]:
    if v is None and allow_none:
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = [v]
    try:
        out = tuple(float(x) for x in v)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a list of numbers, got {v!r}") from e
    if not out or any(not math.isfinite(x) or x < 0 for x in out):
        raise ValueError(f"{name} must be a non-empty list of finite numbers >= 0, got {v!r}")
    return out


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of :func:`prepare_training_data` (YAML: ``configs/prepare_posendf.yaml``,
    ``configs/prepare_nrdf.yaml``; an unknown key is an error).

    Attributes:
        noise: ``"posendf"`` (Gaussian quaternion noise) or ``"nrdf"`` (heavy-tailed rotations).
        metric: label metric, ``"posendf"`` or ``"nrdf"``.
        k: neighbours averaged into the label (Pose-NDF 5, NRDF 1).
        n_samples: total samples (clean + noisy).
        chunk_size: samples per chunk file.
        clean_share: share of unperturbed data poses.
        clean_labels: the label of those poses: ``"zero"`` (the paper: the field is 0 on every
            data pose, rare or common) or ``"knn"`` (their own mean distance to the ``k``
            nearest, like every other sample: the field then also ranks data poses by how
            common they are; train it with ``training.w_manifold: 0``).
        sigmas / sigma_shares: Pose-NDF noise σ values and their probabilities (None = equal).
        angle_scales / angle_scale_shares: NRDF per-pose angle scales (radians) and probabilities.
        tail: NRDF angle distribution, ``"cauchy"`` (half-Cauchy) or ``"t"`` (|Student-t|).
        df: Student-t degrees of freedom.
        max_angle: NRDF angles are clipped to this (radians, ≤ π).
        recall_queries: noisy queries checked against brute force to report NN recall (0 = skip).
        search: candidate search settings (:class:`~posendf_plugin.data.labels.SearchConfig`).
        mirror: add the left/right mirror image of every pose to the pose set and to the
            reference set (:func:`~posendf_plugin.skeleton.mirror_body_quat`): twice the poses,
            no side bias.
        part_mix: add ``part_mix × N`` poses made of the body parts (legs, arms, trunk) of two
            data poses to the pose set and the reference set, before mirroring
            (:func:`~posendf_plugin.data.augment.with_part_mixes`, seeded by ``seed``); 0 = off.
    """

    noise: str = "posendf"
    metric: str = "posendf"
    k: int = 5
    n_samples: int = 1_000_000
    chunk_size: int = 100_000
    clean_share: float = 0.1
    clean_labels: str = "zero"
    sigmas: Tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5)
    sigma_shares: Optional[Tuple[float, ...]] = None
    angle_scales: Tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8)
    angle_scale_shares: Optional[Tuple[float, ...]] = None
    tail: str = "cauchy"
    df: float = 3.0
    max_angle: float = math.pi
    recall_queries: int = 1000
    search: SearchConfig = field(default_factory=SearchConfig)
    mirror: bool = False
    part_mix: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.part_mix, bool) or not isinstance(self.part_mix, (int, float)) or not 0 <= self.part_mix <= 10:
            raise ValueError(f"part_mix must be a number in [0, 10], got {self.part_mix!r}")
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {list(NOISE_KINDS)}, got {self.noise!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {list(METRICS)}, got {self.metric!r}")
        for name in ("k", "n_samples", "chunk_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(self.recall_queries, int) or isinstance(self.recall_queries, bool) or self.recall_queries < 0:
            raise ValueError(f"recall_queries must be an integer >= 0, got {self.recall_queries!r}")
        for name in ("clean_share", "df", "max_angle"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if not isinstance(self.mirror, bool):
            raise ValueError(f"mirror must be true or false, got {self.mirror!r}")
        if not 0.0 <= self.clean_share <= 1.0:
            raise ValueError(f"clean_share must be in [0, 1], got {self.clean_share}")
        if self.clean_labels not in CLEAN_LABELS:
            raise ValueError(f"clean_labels must be one of {list(CLEAN_LABELS)}, got {self.clean_labels!r}")
        if self.tail not in TAILS:
            raise ValueError(f"tail must be one of {list(TAILS)}, got {self.tail!r}")
        if not self.df > 0:
            raise ValueError(f"df must be > 0, got {self.df}")
        if not 0 < self.max_angle <= math.pi + 1e-9:
            raise ValueError(f"max_angle must be in (0, pi], got {self.max_angle}")
        # normalise lists to tuples (YAML gives lists) so the config stays hashable/frozen
        for name, none_ok in (("sigmas", False), ("sigma_shares", True), ("angle_scales", False),
                              ("angle_scale_shares", True)):
            object.__setattr__(self, name, _tuple_of_floats(name, getattr(self, name), none_ok))
        for vals, shares, vname, sname in ((self.sigmas, self.sigma_shares, "sigmas", "sigma_shares"),
                                           (self.angle_scales, self.angle_scale_shares, "angle_scales",
                                            "angle_scale_shares")):
            if shares is not None and (len(shares) != len(vals) or sum(shares) <= 0):
                raise ValueError(
                    f"{sname} must have one non-negative entry per value of {vname} "
                    f"({len(vals)}) with a positive sum, got {list(shares)}"
                )
        if isinstance(self.search, Mapping):
            object.__setattr__(self, "search", _search_from_dict(self.search))
        if not isinstance(self.search, SearchConfig):
            raise TypeError(f"search must be a mapping of search settings, got {type(self.search).__name__}")
        if self.search.candidates < self.k:
            raise ValueError(f"search.candidates ({self.search.candidates}) must be >= k ({self.k})")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PrepareConfig":
        """Build from a mapping (e.g. parsed YAML); unknown keys raise ``ValueError`` naming them."""
        if not isinstance(d, Mapping):
            raise ValueError(f"the data-preparation config must be a mapping, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown data-preparation config key(s) {unknown}; valid keys: {sorted(known)}")
        return cls(**dict(d))

    def to_dict(self) -> Dict[str, Any]:
        """Plain-YAML/JSON mapping (lists instead of tuples)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


def _search_from_dict(d: Mapping[str, Any]) -> SearchConfig:
    known = {f.name for f in dataclasses.fields(SearchConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown search config key(s) {unknown}; valid keys: {sorted(known)}")
    return SearchConfig(**dict(d))


def load_prepare_config(path: PathLike) -> PrepareConfig:
    """Read a data-preparation YAML (``configs/prepare_*.yaml``: the keys of :class:`PrepareConfig`).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not valid YAML, not a mapping, unknown keys / bad values, or a trainer config.
    """
    path = Path(path)
    d = load_yaml(path, "--config file")
    if d is None:
        d = {}
    if isinstance(d, Mapping) and {"experiment", "model", "training"} & set(d):
        raise ValueError(f"--config {path}: this is a trainer config (posendf train --config); data prepare takes "
                         "the keys of a preparation config, e.g. configs/prepare_posendf.yaml")
    try:
        return PrepareConfig.from_dict(d)
    except (ValueError, TypeError) as e:
        raise ValueError(f"--config {path}: {e}") from e


@dataclass
class PrepareResult:
    """What :func:`prepare_training_data` did.

    Attributes:
        out_dir: output folder.
        n_samples: samples in all chunks.
        n_chunks: chunk files.
        written / skipped: chunks written now / found complete and kept.
        recall: NN recall report (see :class:`~posendf_plugin.data.labels.RecallResult`) or None.
        manifest: the manifest written.
    """

    out_dir: Path
    n_samples: int
    n_chunks: int
    written: int
    skipped: int
    recall: Optional[Dict[str, Any]]
    manifest: Dict[str, Any]


def _chunk_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index)])


def sample_noisy_chunk(
    poses: torch.Tensor, n: int, config: PrepareConfig, rng: np.random.Generator
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``n`` samples around ``poses`` (``(N, 21, 4)``).

    Returns:
        ``(quat (n, 21, 4) float32, scale (n,) float32, origin (n,) int64, clean (n,) bool)``.
    """
    check_shape(poses, (None, NUM_BODY_JOINTS, 4), "poses")
    origin = rng.integers(0, poses.shape[0], size=n)
    clean = rng.random(n) < config.clean_share
    if config.noise == "posendf":
        scale = draw_scales(rng, n, config.sigmas, config.sigma_shares)
    else:
        scale = draw_scales(rng, n, config.angle_scales, config.angle_scale_shares)
    scale[clean] = 0.0
    q0 = poses[torch.from_numpy(origin)].to(torch.float32)
    if config.noise == "posendf":
        noisy = gaussian_quat_noise(q0, scale, rng)
    else:
        noisy = heavy_tailed_rotation_noise(q0, scale, rng, config.tail, config.df, config.max_angle)
    clean_t = torch.from_numpy(clean)
    noisy = torch.where(clean_t[:, None, None], q0, noisy)
    return noisy.contiguous(), torch.from_numpy(scale), torch.from_numpy(origin.astype(np.int64)), clean_t


def _fingerprint(quat: torch.Tensor) -> str:
    return hashlib.sha1(np.ascontiguousarray(quat.detach().cpu().numpy().astype(np.float32)).tobytes()).hexdigest()


def _load_set(path: PathLike, flag: str) -> torch.Tensor:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{flag} {p}: no such file or folder; pass a pose set .npz or a folder of them")
    q = load_pose_set(p).quat
    if q.shape[0] == 0:
        raise ValueError(f"{flag} {p}: the pose set is empty; build it with 'posendf data amass' or 'posendf data default'")
    return q.to(torch.float32)


def _settings(config: PrepareConfig, seed: int, poses_info: dict, ref_info: dict) -> Dict[str, Any]:
    cfg = config.to_dict()
    if cfg["clean_labels"] == "zero":  # the default is left out: data made before the option keeps its hash
        del cfg["clean_labels"]
    if not cfg.get("part_mix"):  # likewise
        cfg.pop("part_mix", None)
    return {"config": cfg, "seed": int(seed), "poses": poses_info, "reference": ref_info}


def _settings_sha1(settings: Mapping[str, Any]) -> str:
    """Hash of everything that determines the chunk contents (pose-set checksums, config, seed;
    not the paths: the same pose set moved elsewhere is the same data)."""
    def strip(d: Mapping) -> Dict:
        return {k: strip(v) if isinstance(v, Mapping) else v for k, v in d.items() if k != "path"}

    return hashlib.sha1(json.dumps(strip(settings), sort_keys=True).encode()).hexdigest()


def _provenance(settings_sha1: str, index: int, n: int) -> np.ndarray:
    """The ``provenance`` entry of a chunk file: a JSON string (a plain unicode array, no pickle)."""
    return np.array(json.dumps({"settings_sha1": settings_sha1, "chunk": int(index), "samples": int(n)}))


def _chunk_state(path: Path, n: int, index: int, settings_sha1: str, vouched: bool) -> str:
    """``"ok"`` (reuse), ``"redo"`` (absent or unreadable: write it) or ``"foreign"`` (a readable
    chunk of another data set, or one without a provenance record that no matching manifest
    vouches for: never overwritten silently).

    ``vouched``: a readable manifest with the same settings exists (chunks written before
    provenance records existed are trusted through it)."""
    if not path.exists():
        return "redo"
    try:
        d = load_npz(path, required=_CHUNK_KEYS)
    except (ValueError, KeyError, FileNotFoundError):
        return "redo"
    sized = all(len(d[k]) == n for k in _CHUNK_KEYS) and d["quat"].shape[1:] == (NUM_BODY_JOINTS, 4)
    prov = d.get("provenance")
    if prov is None:
        if not vouched:
            return "foreign"
        return "ok" if sized else "redo"
    try:
        p = json.loads(str(prov))
    except ValueError:
        return "foreign"
    if not isinstance(p, dict) or p.get("settings_sha1") != settings_sha1 or p.get("chunk") != index:
        return "foreign"
    return "ok" if sized else "redo"


def _foreign_error(out: Path, names: List[str]) -> ValueError:
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return ValueError(
        f"--out {out}: {shown} belong(s) to another data set (made with another pose set, config or "
        f"seed, or without a provenance record to check); nothing was changed. Use a new --out folder, "
        f"or delete {out} to rebuild it"
    )


def _diff_keys(a: Mapping, b: Mapping, prefix: str = "") -> List[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        if k == "path":  # the same pose set moved elsewhere is still the same data
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(prefix + k)
    return out


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    """A JSON object from ``path``, or None when absent / unreadable / not an object."""
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


# ---------------------------------------------------------------------------------------------
# Shards
# ---------------------------------------------------------------------------------------------


def parse_shard(text: str) -> Tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``0 <= K < N`` (shard numbers start at 0, like SLURM array
    indices and torchrun ranks)."""
    try:
        k, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard must be K/N with whole numbers (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"--shard {text}: need 0 <= K < N (shards are numbered 0 .. N-1), got K={k}, N={n}")
    return k, n


def shard_chunks(n_chunks: int, shard: Tuple[int, int]) -> List[int]:
    """Chunk indices of shard ``(K, N)``: ``K, K+N, K+2N, ...`` (disjoint, together all chunks)."""
    k, n = shard
    return list(range(k, n_chunks, n))


def _shard_name(k: int, n: int) -> str:
    return _SHARD_FMT.format(k, n)


def _shard_manifests(out: Path) -> Dict[Path, Optional[Dict[str, Any]]]:
    return {p: _read_json(p) for p in sorted(out.glob("shard_*-of-*.json"))}


def _check_other_shards(out: Path, settings: Dict[str, Any], shard: Tuple[int, int]) -> None:
    for p, man in _shard_manifests(out).items():
        if man is None or not isinstance(man.get("shard"), dict):
            continue
        n_other = man["shard"].get("count")
        if n_other != shard[1]:
            raise ValueError(
                f"--out {out} holds shards of a {n_other}-way split ({p.name}); run every shard with "
                f"--shard K/{n_other}, or use a new --out folder for a {shard[1]}-way split"
            )
        diff = _diff_keys({k: man.get(k) for k in settings}, settings)
        if diff:
            raise ValueError(
                f"--out {out}: {p.name} was made with different settings (differs in {diff}); run every "
                f"shard with the same --poses, --reference, --config and --seed, or use a new --out folder"
            )


# ---------------------------------------------------------------------------------------------
# Preparing
# ---------------------------------------------------------------------------------------------


def prepare_training_data(
    poses: PathLike,
    out_dir: PathLike,
    config: PrepareConfig = PrepareConfig(),
    seed: int = 0,
    reference: Optional[PathLike] = None,
    threads: Optional[int] = None,
    progress: bool = True,
    shard: Optional[Tuple[int, int]] = None,
    device: str = "cpu",
) -> PrepareResult:
    """Write noisy-pose training data with distance labels to ``out_dir`` (module docstring).

    Args:
        poses: pose set (file or folder) to draw noisy samples around.
        out_dir: output folder (created; resumed if it holds a run with the same settings).
        config: :class:`PrepareConfig`.
        seed: base seed; chunk ``i`` uses ``numpy.random.default_rng([seed, i])``.
        reference: pose set the labels measure distance to; default ``poses``.
        threads: faiss threads (None = faiss default).
        progress: show tqdm bars.
        shard: ``(K, N)``: compute only the chunks of shard K of N (:func:`shard_chunks`) and
            write ``shard_K-of-N.json`` instead of ``manifest.json``; :func:`merge_shards`
            assembles the data set when all N shards are complete. Shard 0 measures the recall.
        device: ``"cpu"`` or ``"cuda"`` (faiss on the GPU; needs faiss built with GPU support).
    Raises:
        FileNotFoundError: a pose set path does not exist.
        ValueError: empty pose set, k larger than the reference set, bad ``shard``/``device``,
            or ``out_dir`` holds data (manifest, shard manifests or chunk files) made with
            different settings; nothing is written then.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if shard is not None and (len(shard) != 2 or not 0 <= shard[0] < shard[1]):
        raise ValueError(f"shard must be (K, N) with 0 <= K < N, got {shard!r}")
    check_label_device(device, config.search)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    def load(path: PathLike, flag: str) -> torch.Tensor:
        q = with_part_mixes(_load_set(path, flag), config.part_mix, seed)
        return with_mirror_images(q) if config.mirror else q

    poses_q = load(poses, "--poses")
    same_ref = reference is None or Path(reference).resolve() == Path(poses).resolve()
    ref_q = poses_q if same_ref else load(reference, "--reference")
    if config.k > ref_q.shape[0]:
        raise ValueError(f"k = {config.k} but the reference pose set has only {ref_q.shape[0]} poses; lower k")
    poses_info = {"path": str(Path(poses)), "n": int(poses_q.shape[0]), "sha1": _fingerprint(poses_q)}
    ref_info = dict(poses_info) if same_ref else {
        "path": str(Path(reference)), "n": int(ref_q.shape[0]), "sha1": _fingerprint(ref_q)}
    settings = _settings(config, seed, poses_info, ref_info)
    sha = _settings_sha1(settings)

    # --- every check before anything is written ---
    man_path = out / MANIFEST
    old = _read_json(man_path) if man_path.is_file() else None
    if old is not None:
        diff = _diff_keys({k: old.get(k) for k in settings}, settings)
        if diff:
            raise ValueError(
                f"--out {out} already holds training data made with different settings "
                f"(differs in {diff}); use a new --out folder or delete {out}"
            )
    n_chunks = math.ceil(config.n_samples / config.chunk_size)
    sizes = [min(config.chunk_size, config.n_samples - i * config.chunk_size) for i in range(n_chunks)]
    mine = shard_chunks(n_chunks, shard) if shard is not None else list(range(n_chunks))
    own_path = out / _shard_name(*shard) if shard is not None else man_path
    own_old = old if shard is None else (_read_json(own_path) if own_path.is_file() else None)
    if shard is not None and out.is_dir():
        _check_other_shards(out, settings, shard)
    vouched = (old is not None) or (own_old is not None and not _diff_keys({k: own_old.get(k) for k in settings}, settings))
    states = {i: _chunk_state(out / _CHUNK_FMT.format(i), sizes[i], i, sha, vouched) for i in mine}
    foreign = [_CHUNK_FMT.format(i) for i, s in states.items() if s == "foreign"]
    if foreign:
        raise _foreign_error(out, foreign)
    todo = [i for i in mine if states[i] != "ok"]

    out.mkdir(parents=True, exist_ok=True)
    for i in mine:  # temp files left behind by a killed run (only this run's own chunks)
        for stale in out.glob(f".{_CHUNK_FMT.format(i)}.*.tmp"):
            stale.unlink()
    manifest: Dict[str, Any] = {"status": "running", **settings, "settings_sha1": sha, "n_samples": config.n_samples,
                                "n_chunks": n_chunks, "chunks": [_CHUNK_FMT.format(i) for i in range(n_chunks)]}
    if shard is not None:
        manifest["shard"] = {"index": shard[0], "count": shard[1], "chunks": [_CHUNK_FMT.format(i) for i in mine]}
    save_json(own_path, manifest)

    timings: Dict[str, float] = {}
    recall = None
    measure = config.recall_queries > 0 and (shard is None or shard[0] == 0)
    finished_before = not todo and own_old is not None and own_old.get("status") == "complete"
    if finished_before:  # nothing to do: keep the recall measured when the data was made
        recall, timings = own_old.get("recall"), own_old.get("timings", {})
    need_index = bool(todo) or (measure and not finished_before)
    with faiss_threads(threads):
        index = None
        if need_index:
            t0 = time.perf_counter()
            index = CandidateIndex(ref_q, config.search, config.metric, seed=seed, device=device)
            timings["index_build_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in tqdm(todo, desc="prepare", unit="chunk", disable=not progress):
            q, scale, origin, clean = sample_noisy_chunk(poses_q, sizes[i], config, _chunk_rng(seed, i))
            dist = torch.zeros(sizes[i], dtype=torch.float32)
            todo_mask = ~clean if (same_ref and config.clean_labels == "zero") else torch.ones_like(clean)
            if bool(todo_mask.any()):
                dist[todo_mask] = knn_labels(q[todo_mask], index, config.metric, config.k, progress=progress).dist
            save_npz(out / _CHUNK_FMT.format(i), quat=q.numpy(), dist=dist.numpy(),
                     sigma=scale.numpy().astype(np.float32), origin=origin.numpy(),
                     provenance=_provenance(sha, i, sizes[i]))
        if todo:
            timings["labels_s"] = time.perf_counter() - t0
        if measure and not finished_before:
            rq, _, _, _ = sample_noisy_chunk(
                poses_q, config.recall_queries,
                dataclasses.replace(config, clean_share=0.0), _chunk_rng(seed, _RECALL_STREAM))
            t0 = time.perf_counter()
            rr = measure_recall(rq, index, config.metric, config.k)
            timings["recall_s"] = time.perf_counter() - t0
            recall = asdict(rr)
            logger.info("NN recall %.4f on %d queries (index %s)", rr.recall, rr.n_queries, index.kind)

    index_info = (own_old or {}).get("index") if index is None else {"kind": index.kind, "nlist": index.nlist}
    if shard is not None:
        manifest.update(status="complete", recall=recall, index=index_info, timings=timings,
                        device=device, chunks_written_last_run=len(todo))
        save_json(own_path, manifest)
        return PrepareResult(out, sum(sizes[i] for i in mine), len(mine), len(todo), len(mine) - len(todo),
                             recall, manifest)
    stats = _label_stats(out, n_chunks)
    manifest.update(
        status="complete",
        counts={"samples": config.n_samples, "chunks": n_chunks, "clean": stats.pop("clean"),
                "poses": poses_info["n"], "reference": ref_info["n"]},
        recall=recall,
        index=index_info,
        label_stats=stats,
        timings=timings,
        device=device,
        chunks_written_last_run=len(todo),
    )
    save_json(man_path, manifest)
    return PrepareResult(out, config.n_samples, n_chunks, len(todo), n_chunks - len(todo), recall, manifest)


def merge_shards(out_dir: PathLike) -> PrepareResult:
    """Check that every shard of a sharded ``prepare`` run in ``out_dir`` is present, complete
    and made with the same settings, that every chunk file is there with the right provenance,
    and write ``manifest.json``: the folder is then the data set one unsharded run writes (the
    same chunk files, bit for bit). Nothing is changed when a check fails.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: no shard manifests; a shard missing, incomplete, duplicated or made with
            other settings or another split; a chunk missing or from another data set (the
            message names the shard to re-run).
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"--merge {out}: no such folder")
    mans = _shard_manifests(out)
    if not mans:
        raise ValueError(f"--merge {out}: no shard manifests (shard_K-of-N.json); run 'posendf data prepare "
                         "... --out DIR --shard K/N' for K = 0 .. N-1 first")
    bad = [p.name for p, m in mans.items() if m is None or not isinstance(m.get("shard"), dict)]
    if bad:
        raise ValueError(f"--merge {out}: {', '.join(bad)} cannot be read; re-run that shard with the same "
                         "arguments (it keeps its finished chunks)")
    by_index: Dict[int, Path] = {}
    counts = set()
    for p, m in mans.items():
        k, n = m["shard"].get("index"), m["shard"].get("count")
        counts.add(n)
        if p.name != _shard_name(k, n):
            raise ValueError(f"--merge {out}: {p.name} says it is shard {k}/{n}: it was renamed or copied; "
                             f"delete it and re-run that shard")
        if k in by_index:  # unreachable with distinct names, kept for copies across folders
            raise ValueError(f"--merge {out}: shard {k}/{n} appears twice ({by_index[k].name}, {p.name}); delete one")
        by_index[k] = p
    if len(counts) != 1:
        raise ValueError(f"--merge {out}: shards of different splits ({sorted(counts)}-way) are mixed; keep "
                         "the shards of one split (delete the others) and re-run any missing shard")
    n = counts.pop()
    first = mans[by_index[min(by_index)]]
    settings = {k: first.get(k) for k in ("config", "seed", "poses", "reference")}
    for k, p in sorted(by_index.items()):
        diff = _diff_keys({key: mans[p].get(key) for key in settings}, settings)
        if diff:
            raise ValueError(
                f"--merge {out}: {p.name} was made with different settings than {by_index[min(by_index)].name} "
                f"(differs in {diff}); re-run the odd shard(s) with the same --poses, --reference, --config "
                f"and --seed into a clean folder"
            )
    missing = [k for k in range(n) if k not in by_index]
    if missing:
        shown = ", ".join(f"{k}/{n}" for k in missing)
        raise ValueError(f"--merge {out}: missing shard(s) {shown}; run 'posendf data prepare' with the same "
                         f"arguments and --shard {missing[0]}/{n} (and the others), then merge again")
    running = [f"{k}/{n}" for k, p in sorted(by_index.items()) if mans[p].get("status") != "complete"]
    if running:
        raise ValueError(f"--merge {out}: shard(s) {', '.join(running)} not complete; re-run them with the same "
                         "arguments (they resume), then merge again")
    sha = _settings_sha1(settings)
    config = PrepareConfig.from_dict(settings["config"])
    n_chunks = math.ceil(config.n_samples / config.chunk_size)
    sizes = [min(config.chunk_size, config.n_samples - i * config.chunk_size) for i in range(n_chunks)]
    for k in range(n):
        for i in shard_chunks(n_chunks, (k, n)):
            state = _chunk_state(out / _CHUNK_FMT.format(i), sizes[i], i, sha, vouched=False)
            if state != "ok":
                what = "is missing or unreadable" if state == "redo" else "belongs to another data set"
                raise ValueError(f"--merge {out}: {_CHUNK_FMT.format(i)} {what}; re-run shard {k}/{n} with the "
                                 "same arguments (it rewrites only that chunk), then merge again")
    shard0 = mans[by_index[0]]
    stats = _label_stats(out, n_chunks)
    manifest: Dict[str, Any] = {
        "status": "complete", **settings, "settings_sha1": sha, "n_samples": config.n_samples, "n_chunks": n_chunks,
        "chunks": [_CHUNK_FMT.format(i) for i in range(n_chunks)],
        "counts": {"samples": config.n_samples, "chunks": n_chunks, "clean": stats.pop("clean"),
                   "poses": settings["poses"]["n"], "reference": settings["reference"]["n"]},
        "recall": shard0.get("recall"), "index": shard0.get("index"), "label_stats": stats,
        "timings": {f"shard_{k}": mans[p].get("timings", {}) for k, p in sorted(by_index.items())},
        "device": shard0.get("device", "cpu"),
        "merged_from_shards": n,
        "chunks_written_last_run": 0,
    }
    save_json(out / MANIFEST, manifest)
    return PrepareResult(out, config.n_samples, n_chunks, 0, n_chunks, manifest["recall"], manifest)


def _label_stats(out: Path, n_chunks: int) -> Dict[str, Any]:
    by_scale: Dict[float, List[float]] = {}
    clean = 0
    for i in range(n_chunks):
        d = load_npz(out / _CHUNK_FMT.format(i), required=("dist", "sigma"))
        clean += int((d["sigma"] == 0).sum())
        for s in np.unique(d["sigma"]):
            m = d["sigma"] == s
            agg = by_scale.setdefault(float(s), [0.0, 0.0])
            agg[0] += float(d["dist"][m].sum(dtype=np.float64))
            agg[1] += int(m.sum())
    return {
        "clean": clean,
        "mean_dist_by_scale": {f"{s:g}": v[0] / v[1] for s, v in sorted(by_scale.items())},
        "count_by_scale": {f"{s:g}": int(v[1]) for s, v in sorted(by_scale.items())},
    }


# ---------------------------------------------------------------------------------------------
# Reading training data back
# ---------------------------------------------------------------------------------------------


def _original_layout_files(path: Path) -> List[Path]:
    """The ``.npz`` files of the original Pose-NDF's training data (``data/prepare_traindata.py``:
    ``<out>/<dataset>/<sequence>.npz``), or ``[]`` when ``path`` does not look like it."""
    files = sorted(path.glob("*/*.npz")) or sorted(path.glob("*.npz"))
    if not files:
        return []
    try:
        with np.load(files[0], allow_pickle=False) as z:
            return files if {"pose", "dist"} <= set(z.files) else []
    except Exception:  # noqa: BLE001 — unreadable: not this layout; the caller's message applies
        return []


def _read_original_file(f: Path) -> Dict[str, np.ndarray]:
    """One file of the original layout: ``pose (M, 21, 4)`` quaternions (w, x, y, z, as its
    pytorch3d code makes them) and ``dist (M, k)`` — the distances to the k nearest poses, whose
    mean is the label its data loader trains on — as ``quat (M, 21, 4)`` and ``dist (M,)``."""
    d = load_npz(f, required=("pose", "dist"))
    q = np.asarray(d["pose"], np.float32)
    dist = np.asarray(d["dist"], np.float32)
    if q.ndim == 2 and q.shape[1] == NUM_BODY_JOINTS * 4:
        q = q.reshape(-1, NUM_BODY_JOINTS, 4)
    dd = dist.mean(axis=1) if dist.ndim == 2 else dist.reshape(-1)
    if q.ndim != 3 or q.shape[1:] != (NUM_BODY_JOINTS, 4) or len(q) != len(dd) or dist.ndim > 2:
        raise ValueError(f"{f}: the original Pose-NDF layout has pose (M, 21, 4) and dist (M, k) or (M,), got "
                         f"{np.shape(d['pose'])} and {dist.shape}")
    if not (np.isfinite(q).all() and np.isfinite(dd).all()):
        raise ValueError(f"{f}: 'pose' or 'dist' holds NaN/Inf values; clean or drop the file")
    return {"quat": q, "dist": dd}


def read_training_chunks(path: PathLike) -> Tuple[Dict[str, Any], List[Tuple[Path, Dict[str, np.ndarray]]]]:
    """Read and check prepared training data chunk by chunk: a ``prepare`` output folder or one
    chunk ``.npz``, or the original Pose-NDF's training data folder (``<dataset>/*.npz`` with
    ``pose``, ``dist`` and ``nn_pose``; labels = the mean of each row of ``dist``, as its loader
    trains on; its metric is its own, so train such data on its own, not mixed with ours).

    Returns:
        ``(manifest, chunks)``: the folder's manifest (``{}`` without one) and, per chunk file
        in order, ``(path, arrays)`` with ``quat (M, 21, 4)`` and ``dist (M,)`` as float32 and
        every other array of the file as stored.
    Raises:
        FileNotFoundError: no such path, or a folder without chunk files.
        ValueError: the folder's manifest says the run did not finish, or a file is corrupt or
            belongs to another data set.
        KeyError: a file lacks ``quat`` / ``dist``.
    """
    path = Path(path)
    info: Dict[str, Any] = {}
    if path.is_dir():
        man = path / MANIFEST
        if man.is_file():
            info = _read_json(man)
            if info is None:
                raise ValueError(f"{man}: not a readable manifest; re-run the 'posendf data prepare' command that "
                                 "made the folder (it keeps the finished chunks)")
            if info.get("status") != "complete":
                hint = (" (a sharded run: finish every shard, then 'posendf data prepare --merge DIR')"
                        if any(path.glob("shard_*-of-*.json")) else "")
                raise ValueError(
                    f"{path}: training data is incomplete (status {info.get('status')!r}); re-run the same "
                    f"'posendf data prepare' command to finish it{hint}"
                )
            names = info.get("chunks", [])
            if not isinstance(names, list) or not all(
                    isinstance(c, str) and c and Path(c).name == c and c not in (".", "..") for c in names):
                raise ValueError(f"{man}: 'chunks' must list file names inside {path} (no folders, absolute "
                                 "paths or '..'); re-run 'posendf data prepare' to rewrite it")
            files = [path / c for c in names]
        elif any(path.glob("shard_*-of-*.json")):
            raise ValueError(f"{path}: a sharded 'posendf data prepare' run that is not merged yet; run "
                             f"'posendf data prepare --merge {path}' when every shard is complete")
        else:
            files = sorted(p for p in path.glob("chunk_*.npz"))
            if not files:
                original = _original_layout_files(path)
                if original:
                    return {}, [(f, _read_original_file(f)) for f in original]
        if not files:
            raise FileNotFoundError(f"{path}: no chunk_*.npz files (nor the original Pose-NDF's <dataset>/*.npz with "
                                    "'pose' and 'dist'); run 'posendf data prepare' first")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"{path}: no such file or folder")
    sha = info.get("settings_sha1")
    chunks = []
    for f in files:
        d = load_npz(f, required=("quat", "dist"))
        if sha is not None and "provenance" in d:
            try:
                prov = json.loads(str(d["provenance"]))
            except ValueError:
                prov = None
            if not isinstance(prov, dict) or prov.get("settings_sha1") != sha:
                raise ValueError(f"{f}: belongs to another data set than {path / MANIFEST} says; re-run the "
                                 "'posendf data prepare' command that made the folder")
        q, dd = np.asarray(d["quat"], np.float32), np.asarray(d["dist"], np.float32).reshape(-1)
        if q.ndim != 3 or q.shape[1:] != (NUM_BODY_JOINTS, 4) or len(q) != len(dd):
            raise ValueError(f"{f}: expected quat (M, 21, 4) and dist (M,), got {q.shape} and {dd.shape}")
        chunks.append((f, {**d, "quat": q, "dist": dd}))
    return info, chunks


def load_training_data(path: PathLike, clean_mask: bool = False) -> Tuple[torch.Tensor, ...]:
    """Load prepared training data: a ``prepare`` output folder or one chunk ``.npz``
    (:func:`read_training_chunks`, whose checks and errors apply).

    Args:
        clean_mask: also return which samples are unperturbed data poses.
    Returns:
        ``(quat (M, 21, 4) float32, dist (M,) float32)``, and with ``clean_mask`` a third
        ``(M,)`` bool tensor: ``sigma == 0`` (chunks without ``sigma``: label ≤ 1e-6).
    """
    _, chunks = read_training_chunks(path)
    quats, dists, cleans = [], [], []
    for _, d in chunks:
        dd = d["dist"]
        quats.append(d["quat"])
        dists.append(dd)
        sig = np.asarray(d["sigma"]).reshape(-1) if "sigma" in d else None
        cleans.append(sig == 0 if sig is not None and len(sig) == len(dd) else dd <= 1e-6)
    out = (torch.from_numpy(np.concatenate(quats)), torch.from_numpy(np.concatenate(dists)))
    return out + (torch.from_numpy(np.concatenate(cleans)),) if clean_mask else out


class DistanceDataset(Dataset):
    """``(quat (21, 4), dist ())`` pairs of prepared training data, held in memory.

    Args:
        path: a ``prepare`` output folder or chunk file (see :func:`load_training_data`).
    """

    def __init__(self, path: PathLike) -> None:
        self.quat, self.dist = load_training_data(path)

    def __len__(self) -> int:
        return int(self.dist.shape[0])

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.quat[i], self.dist[i]


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _run_cli(args: argparse.Namespace) -> int:
    if args.merge is not None:
        given = [f for f, v in (("--poses", args.poses), ("--out", args.out), ("--shard", args.shard),
                                ("--reference", args.reference), ("--config", args.config)) if v is not None]
        if given:
            raise ValueError(f"--merge DIR takes no {', '.join(given)}: the shards in DIR carry their settings")
        res = merge_shards(args.merge)
        print(f"{res.n_samples} samples in {res.n_chunks} chunk(s) in {res.out_dir} "
              f"(merged from {res.manifest['merged_from_shards']} shards)")
        return 0
    if args.poses is None or args.out is None:
        raise ValueError("--poses and --out are required (or --merge DIR to assemble a sharded run)")
    shard = parse_shard(args.shard) if args.shard is not None else None
    cfg = load_prepare_config(args.config) if args.config is not None else PrepareConfig()
    if args.n_samples is not None:
        cfg = dataclasses.replace(cfg, n_samples=args.n_samples)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    res = prepare_training_data(args.poses, args.out, cfg, seed=args.seed, reference=args.reference,
                                threads=args.threads, progress=not args.quiet, shard=shard, device=args.device)
    if shard is not None:
        print(f"shard {shard[0]}/{shard[1]}: {res.n_samples} samples in {res.n_chunks} chunk(s) in {res.out_dir} "
              f"({res.written} written, {res.skipped} already complete); when all {shard[1]} shards are done: "
              f"posendf data prepare --merge {res.out_dir}")
    else:
        print(f"{res.n_samples} samples in {res.n_chunks} chunk(s) in {res.out_dir} "
              f"({res.written} written, {res.skipped} already complete)")
    if res.recall is not None:
        r = res.recall
        print(f"nearest-neighbour recall vs brute force: {r['recall']:.4f} on {r['n_queries']} queries "
              f"(k={r['k']}; labels exact on {100 * r['exact_share']:.1f}%, max error {r['label_abs_err_max']:.2e})")
    return 0


def register_cli(subparsers) -> None:
    """Add ``posendf data prepare`` to the ``posendf data`` sub-parsers."""
    p = subparsers.add_parser(
        "prepare",
        help="draw noisy poses around a pose set and label them with their distance to it",
        description=(
            "Make distance-field training data. Draws noisy poses around the poses of --poses "
            "(Pose-NDF Gaussian quaternion noise or NRDF heavy-tailed rotations, plus a share of "
            "clean poses), labels each with its distance to --reference (default: --poses) under "
            "the Pose-NDF (mean of k=5 nearest, 1-|<q,q'>|) or NRDF (nearest, geodesic) metric, "
            "using faiss candidate search and an exact re-rank, and reports nearest-neighbour "
            "recall against brute force. Writes OUT/manifest.json and OUT/chunk_00000.npz ... "
            "(quat (M,21,4), dist (M,), sigma (M,), origin (M,)). Re-running the same command "
            "resumes: complete chunks are kept. --shard K/N computes one shard of N (run them "
            "anywhere, e.g. as a SLURM array, into one folder); --merge DIR then checks them and "
            "writes the manifest."
        ),
    )
    p.add_argument("--poses", type=Path, metavar="PATH", help="pose set .npz or folder (required unless --merge)")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (required unless --merge)")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="YAML settings, e.g. configs/prepare_posendf.yaml or configs/prepare_nrdf.yaml "
                        "(default: built-in Pose-NDF settings)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="base random seed (default 0)")
    p.add_argument("--reference", type=Path, metavar="PATH",
                   help="pose set the labels measure distance to (default: --poses)")
    p.add_argument("--n-samples", type=int, metavar="N", help="override n_samples of the config")
    p.add_argument("--threads", type=int, metavar="T", help="CPU threads for torch and faiss")
    p.add_argument("--shard", metavar="K/N",
                   help="compute only shard K of N (K = 0 .. N-1: chunks K, K+N, ...); writes OUT/shard_K-of-N.json")
    p.add_argument("--merge", type=Path, metavar="DIR",
                   help="check that all shards in DIR are complete and consistent, then write DIR/manifest.json")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="where faiss searches: cpu (default) or cuda (needs faiss with GPU support)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_cli)
