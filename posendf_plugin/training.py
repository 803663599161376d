"""Training a Pose-NDF network (``posendf train --config FILE``).

Losses (weights in the ``training`` section of the config):

* **distance** — L1 or L2 between ``f(q)`` and the label of each noisy pose;
* **manifold** — mean ``f`` on clean poses (``f >= 0``, so this pushes it to 0);
* **eikonal** — mean ``(‖∇_q f‖ − 1)²`` on the noisy poses, where ``∇_q f`` is the gradient
  w.r.t. the input quaternions: by default the plain R⁴ gradient with one norm per joint, as in
  the original (it matches the Pose-NDF labels Σ_k 1 − |⟨q_k, p_k⟩|, whose gradient has unit
  norm at every joint). ``training.eikonal_tangent`` projects it onto each joint's tangent
  space of S³ first; ``training.eikonal_norm = pose`` takes one norm over all joints.

Adam with a per-epoch learning-rate schedule; validation on a held-out share of the labelled
data every epoch. The progress bar counts batches.

Outputs under ``OUT`` (default ``experiment.out_dir / experiment.name``):

=========================  ============================================================
``checkpoints/last.pt``    written atomically after every epoch: model, optimiser, LR
                           scheduler, epoch, RNG state, config, loss history
``checkpoints/best.pt``    the same for the epoch with the lowest validation loss
``model.pt``               the best weights + config only (what ``PoseNDF.from_checkpoint``
                           and the shipped model use; a few MB)
``config.yaml``            the config of the run
``history.json``           the loss curves; ``loss_curves.png`` the same as a plot
``tb/``                    TensorBoard scalars
=========================  ============================================================

Several processes (``torchrun --nproc_per_node=N -m posendf_plugin train ...``, multi-node with
torchrun's rendezvous): DistributedDataParallel, gloo on the CPU, NCCL on GPUs (one per process,
by ``LOCAL_RANK``). ``training.batch_size`` and ``manifold_batch_size`` stay the *global*
batches: every process draws the same batch from the same seeded generator and trains on its
contiguous share (sizes differ by at most one; a DistributedSampler-style split, without
padding), each share's loss is its sum divided by the global batch size, and the averaged
gradients are those of the whole batch. So the learning rate needs no rescaling and the loss
curve equals the one-process curve with the same config to float rounding. Validation is split
the same way; extra samples (``uniform_batch_size``, ``projected_batch_size``) are drawn in
full by every process and split likewise (each process labels only its share, but the
projected samples are projected by every process). Only the first process (rank 0) writes
files and shows the progress bar. A
checkpoint records the process count; resuming needs the same count.

Resuming (``--resume``) restores everything from ``checkpoints/last.pt``; the batch order and
the manifold samples come from one ``torch.Generator`` whose state is checkpointed, so a run
killed at any point (even by SIGKILL: files are only ever replaced atomically) continues with
exactly the loss curve of an uninterrupted run (on the same CPU thread count; on CUDA some
kernels are nondeterministic, so a resumed curve matches only up to rounding).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from tqdm import tqdm

from ._checks import check_device
from .config import Config, save_config
from .io import atomic_path, describe_load_error, save_json, save_torch
from .model import PoseNDFNet, load_field
from .rotations import quat_random
from .skeleton import NUM_BODY_JOINTS

__all__ = [
    "CHECKPOINT_FORMAT",
    "TrainResult",
    "train",
    "export_model",
    "load_labelled_data",
    "online_labels",
    "training_losses",
    "plot_history",
]

log = logging.getLogger(__name__)

#: ``format`` entry of every checkpoint this package writes (told apart from other formats).
CHECKPOINT_FORMAT = "posendf-plugin/1"
#: config keys that may differ between a checkpoint and the config it is resumed with
_RESUME_IGNORED = {("experiment", "device"), ("experiment", "out_dir"), ("data", "train_dir"), ("data", "pose_set"),
                   ("training", "num_threads")}
_HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_dist", "train_manifold", "train_eikonal", "val_dist", "val_mae")


@dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        out_dir: the run folder.
        model_path: ``model.pt`` (best weights + config); None until the last epoch is done.
        history: per-epoch curves (keys ``epoch, lr, train_loss, train_dist, train_manifold,
            train_eikonal, val_dist, val_mae``; ``seconds`` is wall time, not reproducible).
        epochs_run: epochs trained by this call (0 if the run was already complete).
    """

    out_dir: Path
    model_path: Optional[Path]
    history: Dict[str, List[float]] = field(default_factory=dict)
    epochs_run: int = 0


def load_labelled_data(path: Union[str, Path], clean_mask: bool = False) -> Tuple[torch.Tensor, ...]:
    """Labelled training data ``(quat (M, 21, 4), dist (M,))`` float32 tensors, read with
    :func:`posendf_plugin.data.prepare.load_training_data` (with ``clean_mask``, a third ``(M,)``
    bool tensor marks the unperturbed data poses).

    Raises:
        FileNotFoundError: the folder does not exist (the message names the command making it).
        ValueError: inconsistent shapes or NaN labels.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no labelled training data; make it with 'posendf data prepare' or set data.train_dir "
            "in the config (or pass --data DIR)"
        )
    from .data.prepare import load_training_data

    quat, dist, clean = load_training_data(path, clean_mask=True)
    quat = torch.as_tensor(np.asarray(quat), dtype=torch.float32)
    dist = torch.as_tensor(np.asarray(dist), dtype=torch.float32).reshape(-1)
    if quat.ndim != 3 or quat.shape[1:] != (NUM_BODY_JOINTS, 4) or len(quat) != len(dist):
        raise ValueError(f"{path}: expected quat (M, 21, 4) and dist (M,), got {tuple(quat.shape)} and {tuple(dist.shape)}")
    if not bool(torch.isfinite(dist).all()) or not bool(torch.isfinite(quat).all()):
        raise ValueError(f"{path}: training data contains NaN/Inf; rebuild it with 'posendf data prepare'")
    return (quat, dist, clean) if clean_mask else (quat, dist)


def training_losses(
    model: PoseNDFNet,
    q: torch.Tensor,
    dist: torch.Tensor,
    q_clean: Optional[torch.Tensor],
    config: Config,
    n_total: Optional[int] = None,
    n_clean_total: Optional[int] = None,
) -> Dict[str, torch.Tensor]:
    """The weighted loss terms of one batch (see the module docstring).

    Args:
        q: ``(B, 21, 4)`` noisy poses; ``dist``: ``(B,)`` their labels.
        q_clean: ``(C, 21, 4)`` clean poses for the manifold term (None: term off).
        n_total / n_clean_total: for one process's share of a batch split across processes:
            the sizes of the whole batch and of the whole clean batch. The terms are then
            sums divided by these, so the shares of all processes add up to the terms of the
            whole batch (a share may be empty). None: means over this batch.
    Returns:
        dict with ``loss`` (the weighted sum, differentiable) and the unweighted ``dist``,
        ``manifold`` and ``eikonal`` terms (0 when switched off).
    """
    t = config.training
    eik = t.w_eikonal > 0

    def mean(x: torch.Tensor, total: Optional[int]) -> torch.Tensor:  # x: (b, ...) per-sample values
        return x.mean() if total is None else x.sum() / (total * math.prod(x.shape[1:]))

    if eik:
        q = q.detach().requires_grad_(True)
    f = model(q)
    zero = f.new_zeros(())
    err = f - dist
    l_dist = mean(err.abs(), n_total) if t.loss == "l1" else mean(err * err, n_total)
    l_man = mean(model(q_clean), n_clean_total) if (q_clean is not None and t.w_manifold > 0) else zero
    l_eik = zero
    if eik:
        (g,) = torch.autograd.grad(f.sum(), q, create_graph=True)
        if t.eikonal_tangent:
            g = g - (g * q).sum(-1, keepdim=True) * q
        sq = (g * g).sum(-1) if t.eikonal_norm == "joint" else (g * g).sum(dim=(-1, -2))
        l_eik = mean((torch.sqrt(sq + 1e-12) - 1.0) ** 2, n_total)
    loss = t.w_dist * l_dist + t.w_manifold * l_man + t.w_eikonal * l_eik
    return {"loss": loss, "dist": l_dist.detach(), "manifold": l_man.detach(), "eikonal": l_eik.detach()}


def _make_scheduler(opt: torch.optim.Optimizer, config: Config):
    t = config.training
    if t.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=t.lr_step, gamma=t.lr_gamma)
    if t.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t.epochs, eta_min=t.lr * t.lr_min_factor)
    return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=1.0)  # constant


def _check_manifest(path: Path, config: Config) -> None:
    """Warn when the data folder's manifest says its labels use another metric (or, for the online
    hard negatives, another ``k``) than the config, or come from a teacher field (``posendf
    relabel``) that online nearest-neighbour labels would mix with (no ``training.teacher``)."""
    man = path / "manifest.json"
    if not man.is_file():
        return
    try:
        info = json.loads(man.read_text())
        made = info.get("config", {})
        metric, k, clean_labels = made.get("metric"), made.get("k"), made.get("clean_labels", "zero")
        teacher = info.get("relabel", {}).get("teacher", {}).get("path")
    except (ValueError, AttributeError):
        return
    online = [f"training.{key} = {getattr(config.training, key)}" for key in ("uniform_batch_size", "projected_batch_size")
              if getattr(config.training, key) > 0]
    if teacher and online and not config.training.teacher:
        warnings.warn(
            f"{path}: its labels are the field of {teacher} ('posendf relabel') but {' and '.join(online)} adds "
            "poses labelled by nearest neighbours; set them to 0, or training.teacher to that field, to train a student "
            "of that field only", stacklevel=3,
        )
    if clean_labels == "knn" and config.training.w_manifold > 0:
        warnings.warn(
            f"{path}: its data poses are labelled with their k-nearest mean distance (clean_labels: knn) but "
            f"training.w_manifold = {config.training.w_manifold} also pushes the field to 0 on them; set "
            "training.w_manifold: 0", stacklevel=3,
        )
    if metric and metric != config.data.label_metric:
        warnings.warn(
            f"{path}: the labels were made with metric {metric!r} but the config says data.label_metric = "
            f"{config.data.label_metric!r}; check that the data matches the config", stacklevel=3,
        )
    elif metric == "posendf" and isinstance(k, int) and k != config.data.k and config.training.projected_batch_size > 0:
        warnings.warn(
            f"{path}: the labels average the {k} nearest poses but the config says data.k = {config.data.k}, which the "
            f"projected hard negatives are labelled with; set data.k: {k}", stacklevel=3,
        )


def _data_fingerprint(quat: torch.Tensor, dist: torch.Tensor, clean: Optional[torch.Tensor]) -> str:
    """A short identity of the labelled data and clean poses a run trains on (sizes and sums in
    float64), stored in its checkpoints so ``--resume`` cannot continue on other data."""
    def tag(x: Optional[torch.Tensor]) -> str:
        return "none" if x is None else f"{len(x)}:{float(x.detach().double().sum().cpu()):.12g}"

    return f"samples {tag(quat)} labels {tag(dist)} clean {tag(clean)}"


def _config_differences(a: Dict, b: Dict) -> List[str]:
    out = []
    for sec in a:
        for key in a[sec]:
            if (sec, key) in _RESUME_IGNORED:
                continue
            if a[sec].get(key) != b.get(sec, {}).get(key):
                out.append(f"{sec}.{key} (checkpoint: {a[sec].get(key)!r}, config: {b.get(sec, {}).get(key)!r})")
    return out


def _load_resume(path: Path) -> Dict:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated / corrupt file
        raise ValueError(f"{path}: cannot read the checkpoint ({describe_load_error(e)}); delete it to restart") from e
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT or "optimizer_state_dict" not in ck:
        raise ValueError(f"{path}: not a training checkpoint of this package (format {CHECKPOINT_FORMAT})")
    return ck


def _split(n: int, config: Config) -> Tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(config.experiment.seed + 1)
    perm = torch.randperm(n, generator=g)
    if config.data.max_samples:
        perm = perm[: config.data.max_samples]
    n_val = max(1, int(round(config.training.val_fraction * len(perm))))
    if len(perm) - n_val < 1:
        raise ValueError(f"only {n} labelled samples: too few to hold out a validation share; prepare more data")
    return perm[n_val:], perm[:n_val]


def _clean_poses(config: Config, quat: torch.Tensor, is_clean: torch.Tensor) -> Optional[torch.Tensor]:
    if config.training.w_manifold == 0:
        return None
    if config.data.pose_set:
        from .data.posesets import load_pose_set

        try:
            return load_pose_set(config.data.pose_set).quat.float()
        except FileNotFoundError as e:
            raise FileNotFoundError(f"config data.pose_set: {e}") from e
    clean = quat[is_clean]
    if len(clean) == 0:
        raise ValueError(
            "the manifold term needs clean poses: set data.pose_set to a pose-set file, or prepare the "
            "labelled data with some noise-free samples (distance 0), or set training.w_manifold: 0"
        )
    return clean


@torch.no_grad()
def online_labels(q: torch.Tensor, reference: torch.Tensor, metric: str, k: int, chunk: int = 16384) -> torch.Tensor:
    """Exact labels by brute force: distance of ``q (B, 21, 4)`` to ``reference (N, 21, 4)``
    under ``metric`` (``posendf``: mean of the ``k`` nearest; ``nrdf``: nearest geodesic,
    ``k`` ignored), as :mod:`posendf_plugin.data.labels` defines them. Returns ``(B,)``."""
    from .data.labels import pairwise_pose_distance

    best = None
    for i in range(0, len(reference), chunk):
        d = pairwise_pose_distance(q, reference[i:i + chunk], metric)
        kk = min(k if metric == "posendf" else 1, d.shape[1])
        top = torch.topk(d, kk, dim=1, largest=False).values
        best = top if best is None else torch.topk(torch.cat((best, top), 1), kk, dim=1, largest=False).values
    return best.mean(1) if metric == "posendf" else best[:, 0]


def _online_labeller(config: Config, reference: Optional[torch.Tensor],
                     device: torch.device) -> Optional[Callable[[torch.Tensor], torch.Tensor]]:
    """The labels of the online poses (``uniform_batch_size``, ``projected_batch_size``): the
    field of ``training.teacher`` when one is set, else :func:`online_labels` against
    ``reference``. Returns ``q (B, 21, 4) -> (B,)``, or None when there are no online poses."""
    t = config.training
    if not (t.uniform_batch_size or t.projected_batch_size):
        return None
    if not t.teacher:
        return lambda q: online_labels(q, reference, config.data.label_metric, config.data.k)
    try:
        teacher = load_field(config.training.teacher)[0].to(device).eval()
    except FileNotFoundError:
        raise FileNotFoundError(f"training.teacher: {config.training.teacher} does not exist") from None
    except ValueError as e:
        raise ValueError(f"training.teacher: {e}") from None
    for p in teacher.parameters():
        p.requires_grad_(False)

    @torch.no_grad()
    def label(q: torch.Tensor) -> torch.Tensor:
        return teacher(q.to(device)).float()

    return label


@torch.no_grad()
def _between_samples(reference: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` poses spread from the data to everywhere: per-joint slerp from a random clean pose
    towards a uniformly random pose by ``t ~ U(0, 1)`` (``t = 1``: uniform on SO(3)^21)."""
    from .rotations import quat_canonical, quat_slerp

    u = quat_random(n, NUM_BODY_JOINTS, generator=gen).to(reference.device)
    base = reference[torch.randint(len(reference), (n,), generator=gen).to(reference.device)]
    tt = torch.rand(n, 1, generator=gen).to(reference.device).expand(n, NUM_BODY_JOINTS)
    return quat_canonical(quat_slerp(base, u, tt))


def _projected_samples(model: PoseNDFNet, n: int, steps: int, prior: str, gen: torch.Generator,
                       device: torch.device) -> torch.Tensor:
    """``n`` uniformly random poses after ``steps`` projection steps on the current network
    (``(n, 21, 4)``, detached): where the field currently puts its zero level set."""
    from .projection import method_for_prior, project

    u = quat_random(n, NUM_BODY_JOINTS, generator=gen).to(device)
    return project(model, u, method=method_for_prior(prior), max_iter=steps, tol=0.0).poses.detach()


def _init_weights(path: Path, config: Config) -> Dict[str, torch.Tensor]:
    """Weights of a ``model.pt`` / training checkpoint for ``experiment.init_from``; its model
    section must equal ``config.model``."""
    if not path.is_file():
        raise FileNotFoundError(f"experiment.init_from: {path} does not exist")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"experiment.init_from: cannot read {path} ({describe_load_error(e)})") from e
    if not isinstance(ck, dict) or "model_state_dict" not in ck or "config" not in ck:
        raise ValueError(f"experiment.init_from: {path} is not a model file of this package (needs 'config' and 'model_state_dict')")
    diffs = _config_differences({"model": ck["config"].get("model", {})}, {"model": config.to_dict()["model"]})
    if diffs:
        raise ValueError(f"experiment.init_from: {path} has another network shape; differing keys: {'; '.join(diffs)}")
    return ck["model_state_dict"]


@torch.no_grad()
def _validate(model: PoseNDFNet, q: torch.Tensor, d: torch.Tensor, config: Config, device: torch.device,
              dist_ctx: Optional["_Dist"] = None) -> Tuple[float, float]:
    """Validation ``(val_dist, val_mae)``; with several processes each takes a share of the
    validation set and the sums are added up across processes."""
    model.eval()
    se = ae = 0.0
    n = max(len(q), 1)
    if dist_ctx is not None and dist_ctx.world > 1:
        lo, hi = _share(len(q), dist_ctx.rank, dist_ctx.world)
        q, d = q[lo:hi], d[lo:hi]
    bs = max(config.training.batch_size, 4096)
    for i in range(0, len(q), bs):
        err = model(q[i:i + bs].to(device)) - d[i:i + bs].to(device)
        ae += float(err.abs().sum())
        se += float((err * err).sum())
    model.train()
    if dist_ctx is not None and dist_ctx.world > 1:
        ae, se = _all_sum([ae, se], device)
    val_dist = ae / n if config.training.loss == "l1" else se / n
    return val_dist, ae / n


@dataclass(frozen=True)
class _Dist:
    """This process's place in a torch.distributed run (``world == 1``: a plain run)."""

    rank: int = 0
    world: int = 1
    owned: bool = False  # this module started the process group (and ends it)


def _dist_start(dev: torch.device) -> Tuple["_Dist", torch.device]:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1 in the environment)
    or when one is already initialised; NCCL on CUDA, gloo on the CPU. On CUDA each process
    takes the GPU of its ``LOCAL_RANK``."""
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        ctx = _Dist(tdist.get_rank(), tdist.get_world_size(), False)
    else:
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
        except ValueError:
            raise ValueError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} is not a whole number; start the "
                             "run with torchrun, or unset WORLD_SIZE for one process") from None
        if world <= 1:
            return _Dist(), dev
        if not tdist.is_available():
            raise ValueError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run one process")
        tdist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        ctx = _Dist(tdist.get_rank(), tdist.get_world_size(), True)
    if dev.type == "cuda" and ctx.world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", ctx.rank % torch.cuda.device_count())))
        torch.cuda.set_device(dev)
    return ctx, dev


def _share(n: int, rank: int, world: int) -> Tuple[int, int]:
    """``[lo, hi)`` of process ``rank`` in ``n`` items split into ``world`` contiguous shares
    whose sizes differ by at most one."""
    return rank * n // world, (rank + 1) * n // world


def _all_sum(values: List[float], device: torch.device) -> List[float]:
    """Sum float values over all processes (float64)."""
    import torch.distributed as tdist

    dev = device if device.type == "cuda" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    tdist.all_reduce(t)
    return [float(v) for v in t.cpu()]


def plot_history(history: Dict[str, List[float]], path: Union[str, Path]) -> Path:
    """Write a PNG of the loss curves (log scale) atomically; matplotlib's Agg canvas, no
    global backend change."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ep = history.get("epoch", [])
    for key in ("train_loss", "train_dist", "train_manifold", "train_eikonal", "val_dist"):
        vals = history.get(key, [])
        if vals and any(v > 0 for v in vals):
            ax.plot(ep, [max(v, 1e-8) for v in vals], label=key, marker="." if len(ep) < 30 else None)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def export_model(checkpoint: Union[str, Path], out: Union[str, Path]) -> Path:
    """Write the weights and config of a training checkpoint, without the optimiser state, to
    ``out`` (loadable with :meth:`posendf_plugin.prior.PoseNDF.from_checkpoint`)."""
    ck = _load_resume(Path(checkpoint))
    h = ck.get("history", {})
    return save_torch(out, {
        "format": CHECKPOINT_FORMAT,
        "config": ck["config"],
        "model_state_dict": ck["model_state_dict"],
        "epoch": ck["epoch"],
        "val_mae": (h.get("val_mae") or [float("nan")])[-1] if h else float("nan"),
    })


def train(
    config: Config,
    out_dir: Optional[Union[str, Path]] = None,
    data_dir: Optional[Union[str, Path]] = None,
    device: Optional[str] = None,
    resume: bool = False,
    progress: bool = True,
    tensorboard: bool = True,
    stop_after: Optional[int] = None,
) -> TrainResult:
    """Train (or resume training) a Pose-NDF network; see the module docstring for outputs.

    Started by ``torchrun --nproc_per_node=N`` (or inside an initialised process group), every
    process calls this with the same arguments and trains a share of each batch with
    DistributedDataParallel (see the module docstring, "Several processes").

    Args:
        config: the experiment config.
        out_dir: run folder (default ``experiment.out_dir / experiment.name``).
        data_dir: labelled training data (default ``data.train_dir``).
        device: ``cpu`` / ``cuda`` (default ``experiment.device``).
        resume: continue from ``out_dir/checkpoints/last.pt`` (starts fresh if there is none).
        progress: show a tqdm bar over batches (first process only). tensorboard: write
            TensorBoard scalars.
        stop_after: stop after this epoch number (for tests; the run stays resumable).
    Raises:
        ValueError: checkpoints exist and ``resume`` is False; the checkpoint's config or
            process count differs from this run (the message names them); unreadable
            checkpoint; bad data; ``cuda`` without CUDA.
        FileNotFoundError: missing data.
    """
    exp = config.experiment
    out = Path(out_dir) if out_dir is not None else Path(exp.out_dir) / exp.name
    data_path = data_dir if data_dir is not None else config.data.train_dir
    if not data_path:
        raise ValueError("no training data: set data.train_dir in the config or pass --data DIR")
    dev = check_device(device or exp.device, "--device" if device else "experiment.device")
    if config.training.num_threads:
        torch.set_num_threads(config.training.num_threads)
    ctx, dev = _dist_start(dev)
    try:
        return _train(config, out, data_path, dev, ctx, resume, progress, tensorboard, stop_after)
    finally:
        if ctx.owned:
            import torch.distributed as tdist

            tdist.destroy_process_group()


def _train(config: Config, out: Path, data_path, dev: torch.device, ctx: _Dist, resume: bool, progress: bool,
           tensorboard: bool, stop_after: Optional[int]) -> TrainResult:
    exp, t = config.experiment, config.training
    main = ctx.rank == 0
    if ctx.world > 1 and t.batch_size < ctx.world:
        raise ValueError(f"training.batch_size = {t.batch_size} is smaller than the {ctx.world} processes; "
                         "raise it (it is the global batch, split across the processes) or start fewer processes")
    ck_dir = out / "checkpoints"
    last = ck_dir / "last.pt"
    if last.exists() and not resume:
        raise ValueError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")

    quat, dist, is_clean = load_labelled_data(data_path, clean_mask=True)
    if bool((is_clean & (dist <= 1e-6)).any()):  # zero-labelled data poses (clean_labels: zero): those
        is_clean = is_clean & (dist <= 1e-6)       # exactly, as before the knn option existed
    if main:
        _check_manifest(Path(data_path), config)
    train_idx, val_idx = _split(len(quat), config)
    q_train, d_train = quat[train_idx].to(dev), dist[train_idx].to(dev)
    q_val, d_val = quat[val_idx], dist[val_idx]
    clean = _clean_poses(config, quat[train_idx], is_clean[train_idx])
    clean = clean.to(dev) if clean is not None else None
    reference = None
    if t.uniform_batch_size or t.projected_batch_size:
        reference = _clean_poses(config.replace(training={"w_manifold": 1.0}), quat[train_idx], is_clean[train_idx])
        reference = torch.unique(reference.float(), dim=0).to(dev)
    label_online = _online_labeller(config, reference, dev)
    data_id = _data_fingerprint(quat, dist, clean)

    net = PoseNDFNet(config.model, seed=exp.seed).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    sched = _make_scheduler(opt, config)
    gen = torch.Generator().manual_seed(exp.seed)
    history: Dict[str, List[float]] = {k: [] for k in _HISTORY_KEYS + ("seconds",)}
    start_epoch, best_val = 0, math.inf
    cfg_dict = config.to_dict()

    if exp.init_from and not (resume and last.exists()):
        net.load_state_dict(_init_weights(Path(exp.init_from), config))
        log.info("starting from the weights of %s", exp.init_from)
    if resume and last.exists():
        ck = _load_resume(last)
        diffs = _config_differences(ck["config"], cfg_dict)
        if diffs:
            raise ValueError(f"{last}: the run was trained with a different config; differing keys: {'; '.join(diffs)}")
        if ck.get("data_fingerprint") not in (None, data_id):  # checkpoints before session 19 have none
            raise ValueError(f"{last}: the run was trained on other data ({ck['data_fingerprint']}) than this run's "
                             f"--data {data_path} and clean poses ({data_id}); resume with the same data, or start a new --out")
        ws = int(ck.get("world_size", 1))
        if ws != ctx.world:
            how = "plain 'posendf train'" if ws == 1 else f"'torchrun --nproc_per_node={ws} -m posendf_plugin train'"
            raise ValueError(
                f"{last}: the run was trained with {ws} process(es) but this run has {ctx.world}; resume it with "
                f"the same number of processes ({how} ... --resume, or the same total over nodes), or start a "
                "new --out"
            )
        net.load_state_dict(ck["model_state_dict"])
        opt.load_state_dict(ck["optimizer_state_dict"])
        sched.load_state_dict(ck["scheduler_state_dict"])
        gen.set_state(ck["rng"]["torch"])
        history = {k: list(v) for k, v in ck["history"].items()}
        start_epoch, best_val = int(ck["epoch"]), float(ck["best_val"])
        log.info("resuming %s at epoch %d", out, start_epoch)
    elif resume and main:
        log.warning("%s has no checkpoint yet; starting from scratch", last)

    model: torch.nn.Module = net
    if ctx.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)

    writer = None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(out / "config.yaml", config)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"))

    end_epoch = t.epochs if stop_after is None else min(t.epochs, stop_after)
    mbs = t.manifold_batch_size or t.batch_size
    n = len(q_train)
    steps_per_epoch = math.ceil(n / t.batch_size)
    epochs_run = 0
    model.train()
    bar = tqdm(total=t.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch, desc="train", unit="batch",
               disable=not (progress and main), dynamic_ncols=True)
    for epoch in range(start_epoch, end_epoch):
        bar.set_description(f"train epoch {epoch + 1}/{t.epochs}")
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        sums = {"loss": 0.0, "dist": 0.0, "manifold": 0.0, "eikonal": 0.0}
        steps = 0
        lr = opt.param_groups[0]["lr"]
        for i in range(0, n, t.batch_size):
            # every process draws the whole batch from the same generator, then takes its share
            idx = perm[i:i + t.batch_size].to(dev)
            q_clean = None
            if clean is not None:
                q_clean = clean[torch.randint(len(clean), (mbs,), generator=gen).to(dev)]
            qb, db = q_train[idx], d_train[idx]
            extra = []
            if t.uniform_batch_size:
                extra.append(_between_samples(reference, t.uniform_batch_size, gen))
            if t.projected_batch_size:
                extra.append(_projected_samples(net, t.projected_batch_size, t.projected_steps, exp.prior, gen, dev))
            if ctx.world == 1:
                if extra:
                    qu = torch.cat(extra)
                    qb = torch.cat((qb, qu))
                    db = torch.cat((db, label_online(qu)))
                terms = training_losses(model, qb, db, q_clean, config)
                loss = terms["loss"]
            else:
                nb, total = len(qb), len(qb) + sum(len(e) for e in extra)
                lo, hi = _share(total, ctx.rank, ctx.world)
                if extra:
                    qu = torch.cat(extra)[max(lo - nb, 0):max(hi - nb, 0)]
                    qb = torch.cat((qb[lo:hi], qu))
                    db = torch.cat((db[lo:hi], label_online(qu)))
                else:
                    qb, db = qb[lo:hi], db[lo:hi]
                n_clean = None
                if q_clean is not None:
                    n_clean = len(q_clean)
                    clo, chi = _share(n_clean, ctx.rank, ctx.world)
                    q_clean = q_clean[clo:chi]
                terms = training_losses(model, qb, db, q_clean, config, n_total=total, n_clean_total=n_clean)
                loss = terms["loss"] * ctx.world  # DDP averages gradients: the shares' sum is the batch loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)
            opt.step()
            for k in sums:
                sums[k] += float(terms[k].detach())
            steps += 1
            bar.update(1)
        if ctx.world > 1:
            sums = dict(zip(sums, _all_sum(list(sums.values()), dev)))
        sched.step()
        val_dist, val_mae = _validate(net, q_val, d_val, config, dev, ctx)
        ep = epoch + 1
        if not (math.isfinite(sums["loss"]) and math.isfinite(val_dist)):  # before anything of this epoch is saved
            bar.close()
            raise ValueError(
                f"training diverged in epoch {ep} (mean loss {sums['loss'] / max(steps, 1):.4g}, validation {val_dist:.4g}): "
                f"lower training.lr (now {t.lr:g}) or set training.grad_clip; nothing of this epoch was saved "
                f"({'the checkpoints of the epochs before are in ' + str(ck_dir) if ep > 1 else 'no model was written'})")
        row = {"epoch": ep, "lr": lr, "train_loss": sums["loss"] / steps, "train_dist": sums["dist"] / steps,
               "train_manifold": sums["manifold"] / steps, "train_eikonal": sums["eikonal"] / steps,
               "val_dist": val_dist, "val_mae": val_mae, "seconds": time.perf_counter() - t0}
        for k, v in row.items():
            history[k].append(v)
        if writer is not None:
            for k, v in row.items():
                if k != "epoch":
                    writer.add_scalar(("val/" if k.startswith("val") else "train/") + k, v, ep)
            writer.flush()
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", val_mae=f"{val_mae:.4f}")
        is_best = val_dist < best_val
        best_val = min(best_val, val_dist)
        if main:
            state = {
                "format": CHECKPOINT_FORMAT,
                "config": cfg_dict,
                "model_state_dict": net.state_dict(),
                "optimizer_state_dict": opt.state_dict(),
                "scheduler_state_dict": sched.state_dict(),
                "epoch": ep,
                "best_val": best_val,
                "rng": {"torch": gen.get_state()},
                "history": history,
                "world_size": ctx.world,
                "data_fingerprint": data_id,
            }
            if is_best:
                save_torch(ck_dir / "best.pt", state)
            save_torch(last, state)  # written last: a kill in between at worst repeats this epoch
        epochs_run += 1
    bar.close()
    if writer is not None:
        writer.close()

    done = bool(history["epoch"]) and history["epoch"][-1] >= t.epochs
    model_path = None
    if done:
        model_path = out / "model.pt"
        if main:
            save_json(out / "history.json", history)
            plot_history(history, out / "loss_curves.png")
            best = ck_dir / "best.pt"
            export_model(best if best.exists() else last, model_path)
    if ctx.world > 1:
        import torch.distributed as tdist

        tdist.barrier()  # the other processes return once the first has written everything
    return TrainResult(out_dir=out, model_path=model_path, history=history, epochs_run=epochs_run)
