"""Training the baseline priors on our pose sets, and the ``posendf baseline`` command.

* :func:`train_vposer` — VPoser v2 with VPoser's losses: KL of the posterior to ``N(0, I)``,
  an L1 reconstruction loss on **joint positions** (forward kinematics of the decoded pose on
  the rest skeleton, :data:`posendf_plugin.skeleton.SMPL_REST_JOINTS`; it stands in for
  VPoser's L1 loss on SMPL-X mesh vertices, whose body model we do not ship) and the geodesic
  loss between decoded and true joint rotations. Weights come from :class:`VPoserTrainConfig`
  (``configs/vposer.yaml``). Adam; deterministic for a seed, including across ``--resume``.
* :func:`train_gmm` — SMPLify's 8-component mixture with scikit-learn
  (:class:`~posendf_plugin.priors.gmm.GMMFitConfig`, ``configs/gmm.yaml``).

Command line::

    posendf baseline train vposer --poses posendf_plugin/assets/cmu_train.npz --out vposer.pt
    posendf baseline train gmm --poses poses.npz --out gmm.npz --config configs/gmm.yaml
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union

import torch

from .._checks import check_shape
from ..data.posesets import PoseSet, load_pose_set
from ..io import load_yaml, save_torch
from ..rotations import quat_to_matrix
from ..skeleton import NUM_BODY_JOINTS, SMPL_PARENTS, SMPL_REST_JOINTS, forward_kinematics, mirror_body_quat, quat_to_pose, with_mirror_images
from .gmm import GaussianMixturePrior, GMMFitConfig, fit_gmm
from .vposer import VPoser, VPoserConfig, load_vposer_state

__all__ = [
    "VPoserTrainConfig",
    "VPoserTrainResult",
    "train_vposer",
    "num_epochs",
    "train_gmm",
    "load_yaml_config",
    "matrix_geodesic_angle",
    "mirror_body_quat",
    "register",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VPoserTrainConfig:
    """Training settings for VPoser (``configs/vposer.yaml`` serialises these defaults).

    Attributes:
        num_neurons, latent_dim: architecture (512 / 32 = the released V02_05 shapes).
        epochs: passes over the training poses.
        min_steps: train for at least this many optimiser steps: on a small pose set ``epochs``
            is raised to ``ceil(min_steps / steps_per_epoch)`` (0 = exactly ``epochs``). With
            the defaults, sets above ~50k poses train for ``epochs``.
        batch_size: poses per step.
        lr, weight_decay: Adam settings (V02_05: 1e-3, 1e-5).
        kl_weight: weight of ``mean_b Σ_z KL(q(z|x) ‖ N(0, I))`` (V02_05: 0.005; 0.002 chosen on
            the CMU validation subject, see ``BASELINES_CARD.md``).
        joint_weight: weight of the L1 loss on the 24 joint positions in metres (stands in for
            V02_05's mesh L1, weight 4).
        matrot_weight: weight of the mean geodesic angle (radians) between decoded and true
            joint rotations (V02_05: 2).
        matrot_until_epoch: use the geodesic term only in epochs ``< matrot_until_epoch``
            (V02_05: 15); ``None`` = always.
        val_fraction: fraction of poses held out for the validation losses in the history,
            early stopping and the learning-rate schedule.
        val_by_clip: hold out whole clips (when the pose set names more than one clip), so the
            validation poses are not near-duplicates of training frames; else random poses.
        early_stopping_patience: stop when the validation loss has not improved for this many
            epochs, and keep the weights of the best validation epoch (V02_05: 10 epochs);
            ``None`` = train all epochs and keep the last weights.
        lr_plateau_patience: divide the learning rate by 10 when the validation loss has not
            improved for this many epochs (V02_05: ReduceLROnPlateau, patience 5); ``None`` = off.
        mirror: add the left-right mirror image of every training pose (doubles the data).
        max_poses: train on at most this many poses (random subset); ``None`` = all.
        seed: seeds initialisation, split, shuffling, dropout and posterior samples.
    """

    num_neurons: int = 512
    latent_dim: int = 32
    epochs: int = 20
    min_steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    kl_weight: float = 0.002
    joint_weight: float = 4.0
    matrot_weight: float = 2.0
    matrot_until_epoch: Optional[int] = None
    val_fraction: float = 0.05
    val_by_clip: bool = True
    early_stopping_patience: Optional[int] = 10
    lr_plateau_patience: Optional[int] = 5
    mirror: bool = True
    max_poses: Optional[int] = None
    seed: int = 0

    def __post_init__(self) -> None:
        VPoserConfig(self.num_neurons, self.latent_dim)  # validates the architecture
        for k in ("epochs", "batch_size"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"VPoserTrainConfig.{k} must be a positive integer, got {v!r}")
        if not isinstance(self.min_steps, int) or self.min_steps < 0:
            raise ValueError(f"VPoserTrainConfig.min_steps must be a non-negative integer, got {self.min_steps!r}")
        for k in ("lr",):
            if not getattr(self, k) > 0:
                raise ValueError(f"VPoserTrainConfig.{k} must be > 0, got {getattr(self, k)!r}")
        for k in ("weight_decay", "kl_weight", "joint_weight", "matrot_weight"):
            if not getattr(self, k) >= 0:
                raise ValueError(f"VPoserTrainConfig.{k} must be >= 0, got {getattr(self, k)!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"VPoserTrainConfig.val_fraction must be in [0, 1), got {self.val_fraction!r}")
        for k in ("val_by_clip", "mirror"):
            if not isinstance(getattr(self, k), bool):
                raise ValueError(f"VPoserTrainConfig.{k} must be true or false, got {getattr(self, k)!r}")
        for k in ("early_stopping_patience", "lr_plateau_patience"):
            v = getattr(self, k)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"VPoserTrainConfig.{k} must be a positive integer or null, got {v!r}")
        for k in ("matrot_until_epoch", "max_poses"):
            v = getattr(self, k)
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ValueError(f"VPoserTrainConfig.{k} must be a non-negative integer or null, got {v!r}")

    @property
    def model(self) -> VPoserConfig:
        return VPoserConfig(self.num_neurons, self.latent_dim)

    @classmethod
    def from_dict(cls, d: Mapping) -> "VPoserTrainConfig":
        """Build from a mapping; unknown keys raise ``KeyError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise KeyError(f"unknown VPoser training config key(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(d))


def load_yaml_config(path: Union[str, Path], cls):
    """Read a YAML file of overrides for the dataclass ``cls`` (``from_dict``); an unknown key
    is an error. Returns an instance of ``cls``."""
    path = Path(path)
    data = load_yaml(path, "config file") or {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    try:
        return cls.from_dict(data)
    except KeyError as e:
        raise KeyError(f"{path}: {e.args[0]}") from None


# ---------------------------------------------------------------------------------------------
# Losses (pure functions)
# ---------------------------------------------------------------------------------------------


def matrix_geodesic_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle (radians, [0, π]) of ``aᵀ b`` for rotation matrices ``(..., 3, 3) -> (...)``.

    Uses ``atan2(|axis|, trace - 1)`` (both ``2 sin θ`` / ``2 cos θ``) rather than VPoser's
    ``acos((trace - 1) / 2)``, whose derivative is infinite at θ = 0; the norm has a clamped
    square root so the gradient at θ = 0 is finite.
    """
    check_shape(a, ("*", 3, 3), "a")
    check_shape(b, ("*", 3, 3), "b")
    m = a.transpose(-1, -2) @ b
    v = torch.stack((m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]), -1)
    s = torch.sqrt((v * v).sum(-1).clamp(min=1e-24))
    c = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2] - 1.0
    return torch.atan2(s, c)




def _joints_from_body_mats(mats: torch.Tensor) -> torch.Tensor:
    """``(B, 21, 3, 3)`` body rotations -> ``(B, 24, 3)`` joint positions (identity root and
    hands, rest skeleton)."""
    eye = torch.eye(3, dtype=mats.dtype, device=mats.device).expand(mats.shape[:-3] + (1, 3, 3))
    rot = torch.cat((eye, mats, eye, eye), dim=-3)
    return forward_kinematics(rot, SMPL_REST_JOINTS.to(mats), SMPL_PARENTS)[0]


def _vposer_losses(
    model: VPoser, aa: torch.Tensor, mats: torch.Tensor, joints: torch.Tensor, cfg: VPoserTrainConfig,
    epoch: int, sample: bool = True,
) -> Dict[str, torch.Tensor]:
    q_z = model.encode(aa)
    z = q_z.rsample() if sample else q_z.mean
    pred = model.decoder_net(z).reshape(-1, NUM_BODY_JOINTS, 3, 3)
    p_z = torch.distributions.Normal(torch.zeros_like(q_z.mean), torch.ones_like(q_z.scale))
    losses = {
        "kl": torch.distributions.kl_divergence(q_z, p_z).sum(-1).mean(),
        "joints": (_joints_from_body_mats(pred) - joints).abs().mean(),
    }
    use_matrot = cfg.matrot_until_epoch is None or epoch < cfg.matrot_until_epoch
    losses["matrot"] = matrix_geodesic_angle(pred, mats).mean() if use_matrot else pred.new_zeros(())
    losses["total"] = (
        cfg.kl_weight * losses["kl"] + cfg.joint_weight * losses["joints"]
        + (cfg.matrot_weight * losses["matrot"] if use_matrot else 0.0)
    )
    return losses


# ---------------------------------------------------------------------------------------------
# VPoser training
# ---------------------------------------------------------------------------------------------


@dataclass
class VPoserTrainResult:
    """Outcome of :func:`train_vposer`.

    Attributes:
        model: the trained model (eval mode).
        history: one dict per finished epoch (``epoch``, ``train_*``, ``val_*`` losses,
            ``seconds``).
        path: the checkpoint written, or ``None``.
        finished: ``False`` when stopped early by ``stop_after`` (resume it later).
    """

    model: VPoser
    history: List[Dict[str, float]] = field(default_factory=list)
    path: Optional[Path] = None
    finished: bool = True


def partial_path(out: Union[str, Path]) -> Path:
    """Where :func:`train_vposer` keeps its resumable state next to ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _as_quat(poses) -> torch.Tensor:
    return _quat_and_clips(poses)[0]


def _quat_and_clips(poses):
    """``(quat (N, 21, 4) float32, clip ids (N,) int64 or None)``."""
    if isinstance(poses, (str, Path)):
        poses = load_pose_set(poses)
    if isinstance(poses, PoseSet):
        return poses.quat.float(), torch.as_tensor(poses.clip_id).long()
    from ..skeleton import to_body_quat

    return to_body_quat(poses, "poses").reshape(-1, NUM_BODY_JOINTS, 4).float(), None


def _split(n: int, clips: Optional[torch.Tensor], cfg: "VPoserTrainConfig", gen: torch.Generator):
    """Indices ``(val, train)`` of ``n`` poses: ``round(val_fraction n)`` random poses, or with
    ``val_by_clip`` and more than one clip, whole clips in random order until at least that many
    poses are held out (never all clips)."""
    n_val = int(round(cfg.val_fraction * n))
    perm = torch.randperm(n, generator=gen)
    if cfg.val_by_clip and clips is not None and n_val > 0:
        ids = torch.unique(clips)
        if len(ids) > 1:
            held = []
            count = 0
            for c in ids[torch.randperm(len(ids), generator=gen)][:-1]:
                held.append(int(c))
                count += int((clips == c).sum())
                if count >= n_val:
                    break
            is_val = torch.isin(clips, torch.as_tensor(held))
            return torch.nonzero(is_val).reshape(-1), torch.nonzero(~is_val).reshape(-1)
    return perm[:n_val], perm[n_val:]


def train_vposer(
    poses,
    config: VPoserTrainConfig = VPoserTrainConfig(),
    out: Optional[Union[str, Path]] = None,
    resume: bool = False,
    stop_after: Optional[int] = None,
    progress: bool = True,
    source: str = "",
) -> VPoserTrainResult:
    """Train VPoser on a pose set.

    Args:
        poses: a :class:`PoseSet`, a pose-set path, or poses in any supported layout ``(N, ...)``.
        config: :class:`VPoserTrainConfig`.
        out: checkpoint to write at the end (our format, config inside). While training, the
            resumable state (weights, optimiser, history) is written atomically after every
            epoch to ``<out>.partial`` and removed when training finishes.
        resume: continue from ``<out>.partial`` (same config and data required; ``epochs`` may
            grow). Results are identical to an uninterrupted run.
        stop_after: stop after this many epochs in this call (keeps ``<out>.partial``).
        progress: show tqdm bars.
        source: provenance note stored in the checkpoint.
    Raises:
        ValueError: too few poses, or a resume state that does not match.
    """
    from tqdm.auto import tqdm

    cfg = config
    q_all, clips = _quat_and_clips(poses)
    n_all = q_all.shape[0]
    gen = torch.Generator().manual_seed(cfg.seed)
    if cfg.max_poses is not None and n_all > cfg.max_poses:
        keep = torch.randperm(n_all, generator=gen)[: cfg.max_poses].sort().values
        q_all = q_all[keep]
        clips = clips[keep] if clips is not None else None
    n = q_all.shape[0]
    i_val, i_train = _split(n, clips, cfg, gen)
    if len(i_train) < 2:
        raise ValueError(f"need at least 2 training poses (after holding out {len(i_val)} for validation), got {n}")
    q_val, q_train = q_all[i_val], q_all[i_train]
    if cfg.mirror:
        q_train = with_mirror_images(q_train)

    def prep(q: torch.Tensor):
        with torch.no_grad():
            mats = quat_to_matrix(q)
            return quat_to_pose(q, 63), mats, _joints_from_body_mats(mats)

    train_data, val_data = prep(q_train), prep(q_val)

    # Initialisation inside a forked RNG: seeded, and the caller's global RNG is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = VPoser(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = (torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=cfg.lr_plateau_patience)
             if cfg.lr_plateau_patience is not None and len(i_val) else None)
    history: List[Dict[str, float]] = []
    best: Optional[Dict] = None  # {"epoch", "val_total", "state_dict"} of the best validation epoch
    start = 0

    part = partial_path(out) if out is not None else None
    if resume:
        if part is None:
            raise ValueError("resume=True needs out= (the state is kept in '<out>.partial')")
        if part.is_file():
            start, history, best = _restore(part, model, opt, sched, cfg, n)
            logger.info("resuming VPoser training from %s after epoch %d", part, start)
        elif Path(out).is_file():
            raise ValueError(
                f"{out} is a finished checkpoint and there is no {part.name} to resume from; "
                "choose another --out or remove the file to train again"
            )
        else:
            logger.info("no %s to resume from; training from scratch", part)
    elif part is not None and part.is_file():
        # as 'posendf train': an interrupted run is never thrown away without being asked
        raise ValueError(f"{part} holds an interrupted VPoser training run; pass --resume (resume=True) to continue "
                         "it, or delete the file to start again")

    n_train = q_train.shape[0]
    steps = math.ceil(n_train / cfg.batch_size)
    epochs = num_epochs(cfg, n_train)
    last = epochs if stop_after is None else min(epochs, start + stop_after)
    for epoch in range(start, last):
        if _should_stop(history, best, cfg):
            break
        t0 = time.perf_counter()
        model.train()
        sums: Dict[str, float] = {}
        # Shuffling, dropout and posterior samples draw from the global RNG; fork it and seed
        # it per epoch, so every epoch is reproducible on its own (and hence after resuming).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed * 1_000_003 + epoch + 1)
            perm = torch.randperm(n_train)
            bar = tqdm(range(steps), desc=f"vposer epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
            for s in bar:
                idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
                if idx.numel() < 2:  # BatchNorm needs 2 samples
                    continue
                losses = _vposer_losses(model, *(t[idx] for t in train_data), cfg, epoch)
                opt.zero_grad(set_to_none=True)
                losses["total"].backward()
                opt.step()
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) * idx.numel()
                if s % 20 == 0:
                    bar.set_postfix(loss=f"{float(losses['total'].detach()):.4f}")
        rec = {"epoch": epoch + 1}
        rec.update({f"train_{k}": v / n_train for k, v in sums.items()})
        rec.update({f"val_{k}": v for k, v in _evaluate(model, val_data, cfg, epoch).items()})
        rec["lr"] = opt.param_groups[0]["lr"]
        rec["seconds"] = time.perf_counter() - t0
        history.append(rec)
        logger.info("vposer epoch %d: %s", epoch + 1, {k: round(v, 5) for k, v in rec.items()})
        if "val_total" in rec:
            if sched is not None:
                sched.step(rec["val_total"])
            if cfg.early_stopping_patience is not None and (best is None or rec["val_total"] < best["val_total"]):
                best = {"epoch": epoch + 1, "val_total": rec["val_total"],
                        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        if part is not None:
            save_torch(part, model.checkpoint_dict(train_state={
                "epoch": epoch + 1, "optimizer": opt.state_dict(), "history": history,
                "train_config": asdict(cfg), "num_poses": n,
                "scheduler": sched.state_dict() if sched is not None else None, "best": best,
            }))

    model.eval()
    finished = last >= epochs or _should_stop(history, best, cfg)
    if finished and best is not None:
        model.load_state_dict(best["state_dict"])
    path = None
    if out is not None and finished:
        path = model.save(out, training={
            "train_config": asdict(cfg), "history": history, "num_poses": n, "source": str(source),
            "num_train_poses": int(q_train.shape[0]), "num_val_poses": int(q_val.shape[0]),
            "best_epoch": best["epoch"] if best is not None else len(history),
        })
        if part is not None and part.is_file():
            part.unlink()
    elif part is not None and part.is_file():
        path = part
    return VPoserTrainResult(model=model, history=history, path=path, finished=finished)


def num_epochs(cfg: VPoserTrainConfig, n_train: int) -> int:
    """Epochs :func:`train_vposer` runs on ``n_train`` training poses (``epochs``, raised to
    reach ``min_steps``)."""
    steps = max(1, math.ceil(n_train / cfg.batch_size))
    return max(cfg.epochs, math.ceil(cfg.min_steps / steps))


def _evaluate(model: VPoser, data, cfg: VPoserTrainConfig, epoch: int) -> Dict[str, float]:
    if data[0].shape[0] == 0:
        return {}
    model.eval()
    sums: Dict[str, float] = {}
    with torch.no_grad():
        for s in range(0, data[0].shape[0], 4096):
            batch = [t[s:s + 4096] for t in data]
            losses = _vposer_losses(model, *batch, cfg, epoch, sample=False)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v) * batch[0].shape[0]
    return {k: v / data[0].shape[0] for k, v in sums.items()}


def _should_stop(history: List[Dict[str, float]], best: Optional[Dict], cfg: VPoserTrainConfig) -> bool:
    """Early stopping: ``early_stopping_patience`` epochs since the best validation loss."""
    if cfg.early_stopping_patience is None or best is None or not history:
        return False
    return int(history[-1]["epoch"]) - int(best["epoch"]) >= cfg.early_stopping_patience


def _restore(part: Path, model: VPoser, opt, sched, cfg: VPoserTrainConfig, n: int):
    try:
        obj = torch.load(part, map_location="cpu", weights_only=True)
        ts = obj["train_state"]
    except Exception as e:
        from ..io import describe_load_error

        raise ValueError(f"{part}: not a readable VPoser resume state ({describe_load_error(e)}); delete it") from e
    saved = dict(ts["train_config"])
    now = asdict(cfg)
    diff = sorted(k for k in now if k != "epochs" and saved.get(k) != now[k])
    if diff:
        raise ValueError(
            f"{part}: cannot resume with a different config; changed: "
            + ", ".join(f"{k} {saved.get(k)!r} -> {now[k]!r}" for k in diff)
        )
    if int(ts["num_poses"]) != n:
        raise ValueError(f"{part}: was trained on {ts['num_poses']} poses, now given {n}; use the same pose set")
    sd, _ = load_vposer_state(part)
    model.load_state_dict(sd, strict=True)
    opt.load_state_dict(ts["optimizer"])
    if sched is not None and ts.get("scheduler") is not None:
        sched.load_state_dict(ts["scheduler"])
    return int(ts["epoch"]), list(ts["history"]), ts.get("best")


# ---------------------------------------------------------------------------------------------
# GMM fitting
# ---------------------------------------------------------------------------------------------


def train_gmm(
    poses, config: GMMFitConfig = GMMFitConfig(), out: Optional[Union[str, Path]] = None, source: str = ""
) -> GaussianMixturePrior:
    """Fit SMPLify's mixture on a pose set (see :func:`~posendf_plugin.priors.gmm.fit_gmm`) and
    write it atomically to ``out`` (``.npz``) if given."""
    prior = fit_gmm(_as_quat(poses), config, source=source)
    if out is not None:
        prior.save(out)
    return prior


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _cmd_train(args) -> int:
    from ..io import check_output_file

    poses_path = Path(args.poses)
    out = check_output_file(args.out, inputs=[poses_path], what="--out file", suffix=".pt" if args.prior == "vposer" else ".npz")
    poses = load_pose_set(poses_path)
    source = f"{poses_path.name}: {poses.source}" if poses.source else poses_path.name
    if args.prior == "vposer":
        cfg = load_yaml_config(args.config, VPoserTrainConfig) if args.config else VPoserTrainConfig()
        if args.seed is not None:
            cfg = VPoserTrainConfig(**{**asdict(cfg), "seed": args.seed})
        res = train_vposer(poses, cfg, out=out, resume=args.resume, source=source)
        vals = [h for h in res.history if "val_total" in h]
        kept = min(vals, key=lambda h: h["val_total"]) if vals and cfg.early_stopping_patience is not None else (
            vals[-1] if vals else {})
        print(
            f"wrote {res.path} ({len(poses)} poses, {len(res.history)} epochs"
            + (f"; weights of epoch {kept['epoch']}: val joints L1 {kept['val_joints']:.4f} m, "
               f"val geodesic {kept['val_matrot']:.4f} rad" if kept else "")
            + ")"
        )
    else:
        cfg = load_yaml_config(args.config, GMMFitConfig) if args.config else GMMFitConfig()
        if args.seed is not None:
            cfg = GMMFitConfig(**{**asdict(cfg), "seed": args.seed})
        if args.resume and out.is_file():
            GaussianMixturePrior.from_checkpoint(out)  # validates it
            print(f"{out} exists; a GMM fit has nothing to resume, keeping it")
            return 0
        try:
            prior = train_gmm(poses, cfg, out=out, source=source)
        except ValueError as e:  # fit_gmm's errors are about the poses (too few for the components)
            raise ValueError(f"--poses {args.poses}: {e}") from None
        print(f"wrote {out} ({prior.num_components} components over {prior.dim}-D poses, {len(poses)} poses)")
    return 0


def register(subparsers) -> None:
    """Add ``posendf baseline train vposer|gmm`` to the CLI."""
    parser = subparsers.add_parser(
        "baseline",
        help="train the baseline priors (VPoser v2, SMPLify GMM) on a pose set",
        description="Train the baseline pose priors on a pose set, for comparison with Pose-NDF.",
    )
    sub = parser.add_subparsers(dest="baseline_command", metavar="STEP")
    sub.required = True
    tr = sub.add_parser(
        "train",
        help="train VPoser or fit the GMM",
        description=(
            "Train VPoser v2 (KL + joint-position + geodesic losses, Adam) or fit SMPLify's 8-component "
            "GMM (scikit-learn) on a pose set. Inputs: --poses, a pose-set .npz, an AMASS-layout .npz, "
            "or a folder of them. Output: --out, a .pt checkpoint (VPoser) or .npz mixture (GMM), "
            "loadable with get_prior('vposer'|'gmm', checkpoint=OUT)."
        ),
    )
    tr.add_argument("prior", choices=("vposer", "gmm"), help="which baseline")
    tr.add_argument("--poses", required=True, help="pose set (.npz or folder)")
    tr.add_argument("--out", required=True, help="output checkpoint (.pt for vposer, .npz for gmm)")
    tr.add_argument("--config", help="YAML overrides (see configs/vposer.yaml, configs/gmm.yaml)")
    tr.add_argument("--seed", type=int, help="random seed (overrides the config)")
    tr.add_argument(
        "--resume", action="store_true",
        help="vposer: continue from OUT.partial left by an interrupted run; gmm: keep an existing OUT",
    )
    tr.set_defaults(func=_cmd_train)
