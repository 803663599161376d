"""Distance labels: how far a pose is from a pose set, by nearest-neighbour search.

Two metrics (both over the 21 body joints, quaternions (w, x, y, z)):

* ``"posendf"`` — Pose-NDF: the label is the **mean of the k nearest** (k = 5 in the paper)
  distances ``Σ_j 1 − |⟨q_j, q'_j⟩|`` (:func:`posendf_plugin.rotations.posendf_pose_distance`).
* ``"nrdf"`` — NRDF: the **exact nearest** (k = 1) geodesic distance on SO(3)^21,
  ``sqrt(Σ_j θ_j²)`` (:func:`posendf_plugin.rotations.nrdf_pose_distance`).

Search is two-stage. (1) Candidates by maximum inner product over fixed feature vectors. A
pose's sign-canonical quaternions flattened to 84 numbers (``features: canonical``) give
``Σ_j ⟨q_j, q'_j⟩``, which equals the Pose-NDF similarity only while every per-joint dot product
is positive; far-off noisy poses break that (``q`` and ``-q`` are the same rotation, and no
single sign convention keeps all dot products positive). The default ``features: poly`` is
sign-invariant: per joint the symmetric tensor powers ``q⊗q`` (10 numbers) and ``q⊗q⊗q⊗q``
(35 numbers), weighted so that ``⟨φ(q), ψ(q')⟩ = Σ_j a·u_j + b·u_j²`` with ``u_j = ⟨q_j, q'_j⟩²``
and ``(a, b)`` a least-squares fit over ``u ∈ [0, 1]`` of the metric's per-joint similarity
(``|⟨q, q'⟩| = √u`` for Pose-NDF, ``−θ² = −4·acos²(√u)`` for NRDF). A faiss index (exact
``flat``, ``ivf`` = IndexIVFFlat, or ``hnsw``) or a torch brute-force fallback returns
``candidates`` poses per query. (2) Exact re-rank of the candidates with the true metric in
torch. :func:`measure_recall` checks the result against brute force on a subset of queries.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import math
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

import numpy as np
import torch
from tqdm import tqdm

from .._checks import check_shape
from ..rotations import nrdf_pose_distance, posendf_pose_distance, quat_canonical, quat_normalize
from ..skeleton import NUM_BODY_JOINTS

__all__ = [
    "METRICS",
    "INDEX_KINDS",
    "FEATURES",
    "SearchConfig",
    "LabelResult",
    "RecallResult",
    "CandidateIndex",
    "faiss_available",
    "faiss_gpu_available",
    "check_label_device",
    "faiss_threads",
    "canonical_flat",
    "search_features",
    "pose_distance",
    "pairwise_pose_distance",
    "brute_force_knn",
    "rerank",
    "knn_labels",
    "measure_recall",
]

METRICS: Tuple[str, ...] = ("posendf", "nrdf")
INDEX_KINDS: Tuple[str, ...] = ("auto", "flat", "ivf", "hnsw", "torch")
FEATURES: Tuple[str, ...] = ("poly", "canonical")
#: ``auto`` uses an exact flat index up to this many reference poses, IVF above.
AUTO_FLAT_MAX = 20_000
_DIM = NUM_BODY_JOINTS * 4
#: NRDF re-rank: candidates kept after the cheap acos pass for the exact (stable) evaluation
_NRDF_SHORTLIST = 15


def faiss_available() -> bool:
    """True when ``import faiss`` works (``pip install faiss-cpu``)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def faiss_gpu_available() -> bool:
    """True when faiss is installed with GPU support and sees at least one GPU."""
    if not faiss_available():
        return False
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def check_label_device(device: str, config: "SearchConfig") -> None:
    """Refuse a label ``device`` that cannot run here, before any work starts.

    ``"cpu"``: always fine. ``"cuda"``: needs CUDA (``torch.cuda.is_available()``); a faiss
    index (``flat``/``ivf``, or ``auto`` with faiss installed) also needs faiss built with GPU
    support; ``hnsw`` has no GPU version in faiss.

    Raises:
        ValueError: naming the device, the reason and the fix.
    """
    if device == "cpu":
        return
    if device != "cuda":
        raise ValueError(f"--device must be 'cpu' or 'cuda', got {device!r}")
    if not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine (torch.cuda.is_available() is "
                         "False); use --device cpu")
    if config.index == "hnsw":
        raise ValueError("--device cuda: faiss has no GPU HNSW index; set search.index to ivf or flat, or use "
                         "--device cpu")
    if config.index in ("flat", "ivf") or (config.index == "auto" and faiss_available()):
        if not faiss_gpu_available():
            raise ValueError("--device cuda: the installed faiss has no GPU support (or sees no GPU); install "
                             "a GPU build (e.g. conda install -c pytorch faiss-gpu) or use --device cpu")


@contextlib.contextmanager
def faiss_threads(n: Optional[int]) -> Iterator[None]:
    """Temporarily set faiss's OpenMP thread count (no-op for ``None`` or without faiss)."""
    if n is None or not faiss_available():
        yield
        return
    import faiss

    old = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(old)


@dataclass(frozen=True)
class SearchConfig:
    """Candidate search settings.

    Attributes:
        index: ``"auto"`` (flat up to :data:`AUTO_FLAT_MAX` reference poses, else IVF; torch
            when faiss is missing), ``"flat"`` (exact), ``"ivf"``, ``"hnsw"`` or ``"torch"``
            (exact brute force in torch, no faiss needed).
        features: ``"poly"`` (sign-invariant polynomial features, 945 numbers per pose) or
            ``"canonical"`` (w ≥ 0 quaternions, 84 numbers; faster, lower recall far from the data).
        candidates: poses retrieved per query before the exact re-rank (>= k).
        nlist: IVF lists; ``None`` = ``4·sqrt(N)`` rounded to a power of two.
        nprobe: IVF lists visited per query.
        hnsw_m: HNSW graph degree.
        ef_search: HNSW search breadth (raised to ``candidates`` if smaller).
        train_size: reference poses used to train IVF centroids (a seeded random subset).
        batch_size: queries per search / re-rank batch.
    """

    index: str = "auto"
    features: str = "poly"
    candidates: int = 64
    nlist: Optional[int] = None
    nprobe: int = 32
    hnsw_m: int = 32
    ef_search: int = 256
    train_size: int = 100_000
    batch_size: int = 4096

    def __post_init__(self) -> None:
        if self.index not in INDEX_KINDS:
            raise ValueError(f"index must be one of {list(INDEX_KINDS)}, got {self.index!r}")
        if self.features not in FEATURES:
            raise ValueError(f"features must be one of {list(FEATURES)}, got {self.features!r}")
        for name in ("candidates", "nprobe", "hnsw_m", "ef_search", "train_size", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.nlist is not None and (not isinstance(self.nlist, int) or self.nlist < 1):
            raise ValueError(f"nlist must be a positive integer or null, got {self.nlist!r}")


@dataclass
class LabelResult:
    """Labels of a batch of query poses.

    Attributes:
        dist: ``(M,)`` label = mean of the k nearest distances.
        nn_dist: ``(M, k)`` the k nearest distances, ascending.
        nn_idx: ``(M, k)`` their indices into the reference set.
    """

    dist: torch.Tensor
    nn_dist: torch.Tensor
    nn_idx: torch.Tensor


@dataclass
class RecallResult:
    """Candidate search vs. brute force on a subset of queries.

    Attributes:
        recall: mean over queries of the share of the k returned neighbours that belong to the
            true k nearest (ties within ``tol`` count as hits); 1.0 = perfect.
        exact_share: share of queries whose label equals the brute-force label within ``tol``.
        label_abs_err_mean / label_abs_err_max: label error vs. brute force.
        n_queries: queries checked.
        k: neighbours per query.
    """

    recall: float
    exact_share: float
    label_abs_err_mean: float
    label_abs_err_max: float
    n_queries: int
    k: int


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")


def canonical_flat(quat: torch.Tensor) -> np.ndarray:
    """``(M, 21, 4)`` quaternions to the ``(M, 84)`` float32 C-contiguous search vectors
    (each joint sign-canonical, w ≥ 0)."""
    check_shape(quat, (None, NUM_BODY_JOINTS, 4), "quat")
    flat = quat_canonical(quat.detach().to(torch.float32)).reshape(-1, _DIM)
    return np.ascontiguousarray(flat.cpu().numpy())


@functools.lru_cache(maxsize=None)
def _sym_monomials(n: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Index tuples ``(K, n)`` of the degree-n monomials in 4 variables and the weights
    ``sqrt(multinomial)`` that make ``Σ_K w² Π q Π r = ⟨q, r⟩ⁿ``."""
    combos = list(itertools.combinations_with_replacement(range(4), n))
    weights = []
    for c in combos:
        m = math.factorial(n)
        for v in set(c):
            m //= math.factorial(c.count(v))
        weights.append(math.sqrt(m))
    return torch.tensor(combos, dtype=torch.int64), torch.tensor(weights, dtype=torch.float64)


@functools.lru_cache(maxsize=None)
def _poly_coefficients(metric: str) -> Tuple[float, float]:
    """``(a, b)`` of the least-squares fit ``a·u + b·u² (+ c)`` over ``u = ⟨q, q'⟩² ∈ [0, 1]`` of
    the per-joint similarity: ``√u`` (Pose-NDF) or ``−4·acos²(√u)`` (NRDF, minus θ²)."""
    u = np.linspace(0.0, 1.0, 4001)
    target = np.sqrt(u) if metric == "posendf" else -4.0 * np.arccos(np.sqrt(u)) ** 2
    coef = np.linalg.lstsq(np.stack((np.ones_like(u), u, u * u), 1), target, rcond=None)[0]
    return float(coef[1]), float(coef[2])


def _sympow(x: torch.Tensor, n: int) -> torch.Tensor:
    idx, w = _sym_monomials(n)
    return x[..., idx].prod(-1) * w.to(x.dtype)  # (..., K)


def search_features(quat: torch.Tensor, features: str, metric: str, query: bool) -> np.ndarray:
    """Search vectors ``(M, D)`` float32 for ``(M, 21, 4)`` poses (see the module docstring).

    Database vectors (``query=False``) have a constant norm; query vectors carry the metric's
    weights, so the inner product ranks candidates. ``D`` = 84 (canonical) or 945 (poly).
    """
    check_shape(quat, (None, NUM_BODY_JOINTS, 4), "quat")
    if features == "canonical":
        return canonical_flat(quat)
    _check_metric(metric)
    q = quat.detach().to(torch.float32)
    f2, f4 = _sympow(q, 2), _sympow(q, 4)
    if query:
        a, b = _poly_coefficients(metric)
        f2, f4 = f2 * a, f4 * b
    return np.ascontiguousarray(torch.cat((f2, f4), -1).reshape(q.shape[0], -1).cpu().numpy())


def pose_distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """True whole-pose distance under ``metric``, broadcast. ``(..., 21, 4) -> (...)``."""
    _check_metric(metric)
    return posendf_pose_distance(a, b) if metric == "posendf" else nrdf_pose_distance(a, b)


def pairwise_pose_distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """Dense distance matrix via one small matmul per joint. ``(M, J, 4), (N, J, 4) -> (M, N)``.

    The NRDF angle uses ``2·acos|⟨q, q'⟩|``, which is precise in float64 (use float64 input for
    reference values; in float32 it loses ~3e-4 rad near 0).
    """
    _check_metric(metric)
    check_shape(a, (None, None, 4), "a")
    check_shape(b, (None, a.shape[1], 4), "b")
    out = a.new_zeros(a.shape[0], b.shape[0])
    for j in range(a.shape[1]):
        dots = (a[:, j] @ b[:, j].T).abs()
        if metric == "posendf":
            out += 1.0 - dots
        else:
            out += (2.0 * torch.acos(dots.clamp(max=1.0))) ** 2
    return out if metric == "posendf" else out.sqrt()


def brute_force_knn(
    queries: torch.Tensor, ref: torch.Tensor, metric: str, k: int, batch_size: int = 256,
    ref_batch: int = 65536,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest neighbours (float64). ``(M, J, 4), (N, J, 4) -> ((M, k) dist, (M, k) idx)``."""
    k = min(k, ref.shape[0])
    # renormalise in float64: float32 unit quaternions are off by ~1e-7, which 2·acos|⟨q, q'⟩|
    # turns into ~5e-4 rad errors at zero distance
    q64, r64 = quat_normalize(queries.to(torch.float64)), quat_normalize(ref.to(torch.float64))
    dists, idxs = [], []
    for s in range(0, q64.shape[0], batch_size):
        qb = q64[s:s + batch_size]
        best_d = qb.new_full((qb.shape[0], 0), math.inf)
        best_i = torch.zeros((qb.shape[0], 0), dtype=torch.int64)
        for r in range(0, r64.shape[0], ref_batch):
            d = pairwise_pose_distance(qb, r64[r:r + ref_batch], metric)
            kk = min(k, d.shape[1])
            dd, ii = torch.topk(d, kk, dim=1, largest=False)
            best_d = torch.cat((best_d, dd), 1)
            best_i = torch.cat((best_i, ii + r), 1)
            best_d, order = torch.topk(best_d, min(k, best_d.shape[1]), dim=1, largest=False)
            best_i = torch.gather(best_i, 1, order)
        dists.append(best_d)
        idxs.append(best_i)
    return torch.cat(dists), torch.cat(idxs)


class CandidateIndex:
    """Nearest-neighbour candidates over a reference pose set (see the module docstring).

    Args:
        ref: ``(N, 21, 4)`` reference quaternions (w, x, y, z).
        config: :class:`SearchConfig`.
        metric: the label metric the candidates are for (weights the ``poly`` features).
        seed: seeds the IVF training subset, so the index (and hence the labels) are reproducible.
        device: ``"cpu"`` or ``"cuda"``: candidate search on the GPU (a faiss GPU index, or the
            torch brute force on CUDA); IVF centroids are still trained on the CPU (bit-identical
            every run). The exact re-rank stays on the CPU. GPU search may order exact ties
            differently from the CPU, so labels can differ in rare cases.
    """

    def __init__(
        self, ref: torch.Tensor, config: SearchConfig = SearchConfig(), metric: str = "posendf", seed: int = 0,
        device: str = "cpu",
    ) -> None:
        check_shape(ref, (None, NUM_BODY_JOINTS, 4), "ref")
        _check_metric(metric)
        check_label_device(device, config)
        self.device = device
        if ref.shape[0] == 0:
            raise ValueError("the reference pose set is empty; pass a pose set with at least one pose")
        self.config = config
        self.metric = metric
        self.ref = quat_canonical(ref.detach().to(torch.float32)).contiguous()
        self.n = int(ref.shape[0])
        kind = config.index
        if kind == "auto":
            kind = ("flat" if self.n <= AUTO_FLAT_MAX else "ivf") if faiss_available() else "torch"
        if kind in ("flat", "ivf", "hnsw") and not faiss_available():
            raise ImportError(
                f"index {kind!r} needs faiss: pip install faiss-cpu (or set index: torch / auto)"
            )
        self.nlist: Optional[int] = None
        if kind == "ivf":
            nlist = config.nlist or 2 ** max(0, round(math.log2(4 * math.sqrt(self.n))))
            if self.n < 8 * nlist:  # too few points per list to train: exact search is cheap anyway
                kind = "flat"
            else:
                self.nlist = nlist
        self.kind = kind
        self._faiss_index = None
        self._db_t: Optional[torch.Tensor] = None
        db = search_features(self.ref, config.features, metric, query=False)
        if kind == "torch":
            self._db_t = torch.from_numpy(db).to(device)
        else:
            self._build_faiss(db, seed)

    def _build_faiss(self, db: np.ndarray, seed: int) -> None:
        import faiss

        dim = db.shape[1]
        ip = faiss.METRIC_INNER_PRODUCT
        if self.kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self.config.hnsw_m, ip)
            index.hnsw.efConstruction = max(40, 2 * self.config.hnsw_m)
        else:
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, self.nlist, ip)
            index.cp.seed = int(seed) % (2**31)
            rng = np.random.default_rng(seed)
            n_train = min(self.n, self.config.train_size, 256 * self.nlist)
            sub = db[np.sort(rng.choice(self.n, n_train, replace=False))]
            with faiss_threads(1):  # single-threaded k-means: bit-identical centroids every run
                index.train(sub)
            index.nprobe = min(self.config.nprobe, self.nlist)
        index.add(db)
        if self.device == "cuda":
            self._gpu_resources = faiss.StandardGpuResources()
            index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, index)
            if self.kind == "ivf":
                faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", min(self.config.nprobe, self.nlist))
        self._faiss_index = index

    def search(self, queries: torch.Tensor, candidates: Optional[int] = None) -> torch.Tensor:
        """Candidate indices ``(M, C)`` int64 for ``(M, 21, 4)`` queries; ``-1`` pads when the
        index returns fewer than ``C``. ``C = min(candidates, N)``."""
        c = min(candidates or self.config.candidates, self.n)
        xq = search_features(queries, self.config.features, self.metric, query=True)
        if self.kind == "torch":
            xt = torch.from_numpy(xq).to(self._db_t.device)
            return torch.topk(xt @ self._db_t.T, c, dim=1).indices.cpu()
        if self.kind == "hnsw":
            self._faiss_index.hnsw.efSearch = max(self.config.ef_search, c)
        _, idx = self._faiss_index.search(xq, c)
        return torch.from_numpy(idx.astype(np.int64))


def rerank(
    queries: torch.Tensor, ref: torch.Tensor, cand: torch.Tensor, metric: str, k: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest among candidates.

    Args:
        queries: ``(M, 21, 4)``; ref: ``(N, 21, 4)``; cand: ``(M, C)`` int64 indices into
            ``ref`` (``-1`` = none); metric: ``"posendf" | "nrdf"``; k: ``<= C``.
    Returns:
        ``(dist (M, k), idx (M, k))`` ascending; missing neighbours are ``inf`` / ``-1``.
    """
    _check_metric(metric)
    valid = cand >= 0
    q = queries.to(ref.dtype).unsqueeze(1)
    gathered = ref[cand.clamp(min=0)]  # (M, C, J, 4)
    if metric == "nrdf" and cand.shape[1] > k + _NRDF_SHORTLIST:
        # Cheap pass: |<q, q'>| per joint ranks by 2·acos|<q, q'>| exactly, but acos loses
        # ~1e-3 rad near 0 in float32; keep a shortlist and evaluate the stable formula on it.
        dots = (q * gathered).sum(-1).abs().clamp(max=1.0)
        approx = (torch.acos(dots) ** 2).sum(-1)
        approx = torch.where(valid, approx, torch.full_like(approx, math.inf))
        order = torch.topk(approx, k + _NRDF_SHORTLIST, dim=1, largest=False).indices
        cand = torch.gather(cand, 1, order)
        valid = cand >= 0
        gathered = torch.gather(gathered, 1, order[..., None, None].expand(-1, -1, *gathered.shape[2:]))
    d = pose_distance(q, gathered, metric)
    d = torch.where(valid, d, torch.full_like(d, math.inf))
    k = min(k, cand.shape[1])
    dd, order = torch.topk(d, k, dim=1, largest=False)
    ii = torch.gather(cand, 1, order)
    return dd, torch.where(torch.isfinite(dd), ii, torch.full_like(ii, -1))


def knn_labels(
    queries: torch.Tensor,
    index: CandidateIndex,
    metric: str,
    k: int,
    batch_size: Optional[int] = None,
    progress: bool = False,
) -> LabelResult:
    """Distance labels of ``(M, 21, 4)`` queries to the index's reference set.

    The label is the mean of the k nearest true distances after re-ranking the candidates.
    """
    _check_metric(metric)
    check_shape(queries, (None, NUM_BODY_JOINTS, 4), "queries")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > index.n:
        raise ValueError(f"k = {k} but the reference pose set has only {index.n} poses; lower k")
    bs = batch_size or index.config.batch_size
    q = queries.detach().to(torch.float32)
    dists, idxs = [], []
    for s in tqdm(range(0, q.shape[0], bs), desc="labels", unit="batch", disable=not progress, leave=False):
        qb = q[s:s + bs]
        cand = index.search(qb)
        dd, ii = rerank(qb, index.ref, cand, metric, k)
        dists.append(dd)
        idxs.append(ii)
    nn_dist = torch.cat(dists) if dists else q.new_zeros(0, k)
    nn_idx = torch.cat(idxs) if idxs else torch.zeros(0, k, dtype=torch.int64)
    return LabelResult(dist=nn_dist.mean(1), nn_dist=nn_dist, nn_idx=nn_idx)


def measure_recall(
    queries: torch.Tensor, index: CandidateIndex, metric: str, k: int, tol: float = 1e-4
) -> RecallResult:
    """Compare :func:`knn_labels` with exact brute force (float64) on ``queries``.

    A returned neighbour is a hit when its exact distance is within ``tol`` of the true k-th
    nearest distance or below (so ties do not count as misses).
    """
    res = knn_labels(queries, index, metric, k)
    true_d, _ = brute_force_knn(queries, index.ref, metric, k)
    k_eff = true_d.shape[1]
    # exact float64 distances of the returned neighbours (the float32 re-rank may differ ~1e-6)
    got = res.nn_idx
    got_d = pose_distance(
        queries.to(torch.float64).unsqueeze(1), index.ref.to(torch.float64)[got.clamp(min=0)], metric
    )
    got_d = torch.where(got >= 0, got_d, torch.full_like(got_d, math.inf))
    hits = (got_d <= true_d[:, -1:] + tol).sum(1).to(torch.float64) / k_eff
    label_true = true_d.mean(1)
    err = (res.dist.to(torch.float64) - label_true).abs()
    n = int(queries.shape[0])
    return RecallResult(
        recall=float(hits.mean()) if n else 1.0,
        exact_share=float((err <= tol).to(torch.float64).mean()) if n else 1.0,
        label_abs_err_mean=float(err.mean()) if n else 0.0,
        label_abs_err_max=float(err.max()) if n else 0.0,
        n_queries=n,
        k=k_eff,
    )
