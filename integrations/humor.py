"""HuMoR (davrempe/humor): its processed-AMASS ``.npz`` layout, and the prior in its test-time
optimisation.

**Motion files.** ``humor/scripts/process_amass_data.py`` writes one
``<clip>_<N>_frames_<fps>_fps.npz`` per clip with ``fps``, ``gender``, ``floor_height``,
``contacts`` (N, 22), ``trans`` (N, 3), ``root_orient`` (N, 3), ``pose_body`` (N, 63),
``pose_hand`` (``None`` unless SAVE_HAND_POSE, stored as a pickled object array), ``betas``
(16,), ``joints`` (N, 22, 3), ``mojo_verts`` (N, 43, 3), ``joints_vel`` (N, 22, 3),
``mojo_verts_vel``, ``trans_vel`` (N, 3), ``root_orient_vel`` (N, 3), ``joint_orient_vel_seq``
(N,), ``pose_body_vel`` (N, 21, 3) and ``world2aligned_rot`` (N, 3, 3); Z-up, floor at z = 0.
:func:`load_humor` reads them (never unpickling: object entries such as ``pose_hand=None`` are
skipped) into the package's AMASS-layout :class:`~posendf_plugin.data.motion.Motion` plus the
HuMoR-only arrays; :func:`save_humor` writes that layout.

**The prior in the optimisation.** HuMoR's ``MotionOptimizer`` optimises a VPoser v1 latent
``latent_pose (B, T, pose_prior.latentD)``, decodes it with ``pose_prior.decode(z,
output_type='matrot')`` and encodes initial poses with ``pose_prior.encode(pose).mean``;
``FittingLoss.pose_prior_loss(latent_pose)`` is ``sum(latent_pose ** 2)`` (VPoser's N(0, I)
prior), weighted by ``loss_weights['pose_prior']`` and logged as ``stats_dict['pose_prior']``.
A pure drop-in with VPoser's surface cannot carry Pose-NDF: the NDF has no latent space, and
the hard-coded ‖z‖² would only ever see the latent. So this adapter does both halves:

* :class:`IdentityLatentPosePrior` has VPoser v1's duck-typed surface (``latentD = 63``,
  ``encode(pose) -> Normal`` with ``.mean = pose``, ``decode(z, output_type='matrot'|'aa')``)
  with the body pose itself as the "latent", so HuMoR optimises axis-angle poses directly;
* :func:`register` replaces ``FittingLoss.pose_prior_loss`` by the prior's energy of those
  poses, summed over batch and time like HuMoR's term (same ``'pose_prior'`` weight/stat key).
"""
from __future__ import annotations

import importlib
import math
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import numpy as np
import torch
from torch import nn

from posendf_plugin import rotations as R
from posendf_plugin._checks import check_shape
from posendf_plugin.data.motion import NUM_BETAS, Motion
from posendf_plugin.io import save_npz
from posendf_plugin.skeleton import NUM_BODY_JOINTS, body_joint_positions, pose_to_quat, pose_units_problem

from ._common import PriorLike, check_margin, guard_line_search, prior_energy, resolve_prior, shipped_model_name, warn_host_weight

__all__ = [
    "HUMOR_NUM_JOINTS",
    "HumorMotion",
    "load_humor",
    "save_humor",
    "humor_filename",
    "IdentityLatentPosePrior",
    "LATENT_OFFSET_RAD",
    "latent_to_body_pose",
    "load_vposer_compatible",
    "PoseNDFPosePriorLoss",
    "register",
    "unregister",
    "HUMOR_VPOSER_POSE_PRIOR_WEIGHTS",
    "HUMOR_CALIBRATED_POSE_PRIOR_WEIGHTS",
]

#: HuMoR's SMPL_JOINTS: root + 21 body joints
HUMOR_NUM_JOINTS = NUM_BODY_JOINTS + 1
_BODY_WIDTH = NUM_BODY_JOINTS * 3
#: HuMoR-only arrays (beyond the AMASS keys) and their per-frame trailing shapes
HUMOR_EXTRA_KEYS: Dict[str, tuple] = {
    "contacts": (HUMOR_NUM_JOINTS,),
    "joints": (HUMOR_NUM_JOINTS, 3),
    "joints_vel": (HUMOR_NUM_JOINTS, 3),
    "trans_vel": (3,),
    "root_orient_vel": (3,),
    "pose_body_vel": (NUM_BODY_JOINTS, 3),
    "joint_orient_vel_seq": (),
    "world2aligned_rot": (3, 3),
    "mojo_verts": (None, 3),
    "mojo_verts_vel": (None, 3),
}


@dataclass
class HumorMotion:
    """A HuMoR processed clip.

    Attributes:
        motion: the AMASS-layout part (pose_body, root_orient, trans, betas, fps, gender).
        floor_height: the floor height HuMoR subtracted (metres).
        extras: HuMoR-only per-frame arrays present in the file (keys of
            :data:`HUMOR_EXTRA_KEYS`), numpy, first dimension N.
    """

    motion: Motion
    floor_height: float = 0.0
    extras: Dict[str, np.ndarray] = field(default_factory=dict)


def humor_filename(stem: str, num_frames: int, fps: float) -> str:
    """HuMoR's output name ``<stem>_<N>_frames_<fps>_fps.npz``."""
    return f"{stem}_{int(num_frames)}_frames_{int(fps)}_fps.npz"


def _read_npz_skipping_objects(path: Path) -> tuple:
    """All non-object arrays of an ``.npz`` without unpickling; also the skipped keys."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data, skipped = {}, []
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not a .npz archive (numpy read a single {type(z).__name__})")
    with z:
        for k in z.files:
            try:
                data[k] = z[k]
            except ValueError:  # object array (HuMoR stores pose_hand=None this way): not unpickled
                skipped.append(k)
            except (zipfile.BadZipFile, EOFError, OSError) as e:
                raise ValueError(f"{path}: entry '{k}' is unreadable ({type(e).__name__}: {e})") from e
    return data, skipped


def load_humor(path: Union[str, Path]) -> HumorMotion:
    """Read a HuMoR processed ``.npz``.

    Raises:
        FileNotFoundError: no such file.
        KeyError: a required key (``trans``, ``root_orient``, ``pose_body``) is missing.
        ValueError: corrupt file, inconsistent frame counts, wrong widths, NaN.
    """
    path = Path(path)
    data, _ = _read_npz_skipping_objects(path)
    missing = [k for k in ("trans", "root_orient", "pose_body") if k not in data]
    if missing:
        raise KeyError(f"{path}: not a HuMoR processed file, missing key(s) {missing}; found {sorted(data)}")
    n = len(data["pose_body"])
    body = np.asarray(data["pose_body"], np.float32).reshape(n, -1)
    if body.shape[1] != _BODY_WIDTH:
        raise ValueError(f"{path}: pose_body must be (N, 63), got {data['pose_body'].shape}")
    why = pose_units_problem(body)
    if why:
        raise ValueError(f"{path}: 'pose_body': {why}")
    betas = np.asarray(data.get("betas", np.zeros(NUM_BETAS)), np.float32)
    if betas.ndim == 2:
        betas = betas[0]
    hand = data.get("pose_hand")
    motion = Motion(
        pose_body=body,
        root_orient=np.asarray(data["root_orient"], np.float32).reshape(n, 3) if len(data["root_orient"]) == n else _bad_len(path, "root_orient", data, n),
        trans=np.asarray(data["trans"], np.float32).reshape(n, 3) if len(data["trans"]) == n else _bad_len(path, "trans", data, n),
        betas=betas,
        fps=float(data.get("fps", data.get("mocap_framerate", 30.0))),
        gender=str(data.get("gender", "neutral")),
        pose_hand=None if hand is None or np.asarray(hand).shape != (n, 90) else np.asarray(hand, np.float32),
    )
    extras = {}
    for key, tail in HUMOR_EXTRA_KEYS.items():
        if key not in data:
            continue
        arr = np.asarray(data[key])
        ok = arr.ndim == 1 + len(tail) and len(arr) == n and all(t is None or t == s for t, s in zip(tail, arr.shape[1:]))
        if not ok:
            raise ValueError(
                f"{path}: '{key}' has shape {arr.shape}; HuMoR's layout is (N{''.join(', ' + ('?' if t is None else str(t)) for t in tail)}) with N = {n}"
            )
        extras[key] = arr
    return HumorMotion(motion=motion, floor_height=float(data.get("floor_height", 0.0)), extras=extras)


def _bad_len(path, key, data, n):
    raise ValueError(f"{path}: frame counts differ: pose_body has {n} frames, {key} has {len(data[key])}")


def _central_velocity(x: np.ndarray, fps: float) -> np.ndarray:
    """Second-order central differences (HuMoR's estimate_velocity) inside, one-sided at the
    two ends so every frame keeps a value (HuMoR instead drops the end frames)."""
    if len(x) < 2:
        return np.zeros_like(x)
    return np.gradient(x, 1.0 / fps, axis=0)


def _angular_velocity(rot: np.ndarray, fps: float) -> np.ndarray:
    """``(N, ..., 3, 3)`` rotations -> ``(N, ..., 3)`` angular velocity (HuMoR's formula)."""
    d = _central_velocity(rot, fps)
    w = d @ np.swapaxes(rot, -1, -2)
    return np.stack([(w[..., 2, 1] - w[..., 1, 2]) / 2, (w[..., 0, 2] - w[..., 2, 0]) / 2, (w[..., 1, 0] - w[..., 0, 1]) / 2], axis=-1)


def save_humor(
    path: Union[str, Path],
    motion: Motion,
    joints: Optional[np.ndarray] = None,
    contacts: Optional[np.ndarray] = None,
    floor_height: float = 0.0,
) -> Path:
    """Atomically write ``motion`` in HuMoR's processed layout.

    Writes ``fps, gender, floor_height, contacts, trans, root_orient, pose_body, betas, joints,
    joints_vel, trans_vel, root_orient_vel, pose_body_vel``. Velocities use central differences
    at the file's fps. ``pose_hand`` is written only when non-zero (HuMoR writes ``None``, a
    pickled object, which this package never writes); ``mojo_verts``, ``world2aligned_rot`` and
    ``joint_orient_vel_seq`` need HuMoR's SMPL+H mesh and are not written.

    Args:
        joints: ``(N, 22, 3)`` SMPL joint positions (root + 21 body) in metres, Z-up. When
            omitted they come from the package's stand-in skeleton
            (:func:`~posendf_plugin.skeleton.body_joint_positions`, mean body, Y-up rest pose
            rotated by ``root_orient``), which is not HuMoR's SMPL+H body model: pass real
            joints for anything that uses their exact positions.
        contacts: ``(N, 22)`` 0/1 contact labels (zeros when omitted).
    """
    n = len(motion)
    if joints is None:
        q = pose_to_quat(torch.from_numpy(motion.pose_body))
        j = body_joint_positions(q, root_orient=torch.from_numpy(motion.root_orient))[..., :HUMOR_NUM_JOINTS, :]
        joints = (j + torch.from_numpy(motion.trans).unsqueeze(-2)).numpy()
    joints = np.asarray(joints, np.float32)
    if joints.shape != (n, HUMOR_NUM_JOINTS, 3):
        raise ValueError(f"joints must have shape ({n}, {HUMOR_NUM_JOINTS}, 3), got {joints.shape}")
    contacts = np.zeros((n, HUMOR_NUM_JOINTS), np.float32) if contacts is None else np.asarray(contacts, np.float32)
    if contacts.shape != (n, HUMOR_NUM_JOINTS):
        raise ValueError(f"contacts must have shape ({n}, {HUMOR_NUM_JOINTS}), got {contacts.shape}")
    root_mat = R.axis_angle_to_matrix(torch.from_numpy(motion.root_orient).double()).numpy()
    body_mat = R.axis_angle_to_matrix(torch.from_numpy(motion.pose_body).double().reshape(n, NUM_BODY_JOINTS, 3)).numpy()
    betas = np.zeros(NUM_BETAS, np.float32)
    b = np.asarray(motion.betas, np.float32).reshape(-1)[:NUM_BETAS]
    betas[: len(b)] = b
    arrays = dict(
        fps=np.array(motion.fps, np.float64),
        gender=np.array(motion.gender),
        floor_height=np.array(floor_height, np.float64),
        contacts=contacts,
        trans=motion.trans.astype(np.float32),
        root_orient=motion.root_orient.astype(np.float32),
        pose_body=motion.pose_body.astype(np.float32),
        betas=betas,
        joints=joints,
        joints_vel=_central_velocity(joints, motion.fps).astype(np.float32),
        trans_vel=_central_velocity(motion.trans, motion.fps).astype(np.float32),
        root_orient_vel=_angular_velocity(root_mat, motion.fps).astype(np.float32),
        pose_body_vel=_angular_velocity(body_mat, motion.fps).astype(np.float32),
    )
    if motion.pose_hand is not None and np.any(motion.pose_hand):
        arrays["pose_hand"] = motion.pose_hand.astype(np.float32)
    return save_npz(path, **arrays)


#: the rotation (rad, about each joint's x axis) that latent ``z = 0`` decodes to. HuMoR starts
#: its latent at zeros and converts decoded matrices back to axis-angle with a formula whose
#: gradient is NaN at exactly the identity (``sqrt`` of the squared sine); VPoser never decodes
#: an exact identity, so HuMoR never meets it. 1e-3 rad keeps the start off that point and is
#: far below any pose difference that matters.
LATENT_OFFSET_RAD = 1e-3


def _latent_offset(like: torch.Tensor) -> torch.Tensor:
    """``(63,)``: :data:`LATENT_OFFSET_RAD` on every joint's x component (dtype/device of ``like``)."""
    offset = torch.zeros(_BODY_WIDTH, dtype=like.dtype, device=like.device)
    offset[0::3] = LATENT_OFFSET_RAD
    return offset


def latent_to_body_pose(z: torch.Tensor) -> torch.Tensor:
    """``(..., 63)`` latent of :class:`IdentityLatentPosePrior` -> ``(..., 63)`` body axis-angle
    (``z`` plus :data:`LATENT_OFFSET_RAD` on every joint's x component)."""
    return z + _latent_offset(z)


class IdentityLatentPosePrior(nn.Module):
    """VPoser v1's duck-typed surface, with the 63-D body axis-angle (less a fixed 1e-3 rad, see
    :data:`LATENT_OFFSET_RAD`) as the "latent".

    ``latentD = 63``; ``encode(pose (N, 63)) -> torch.distributions.Normal`` whose ``mean`` is
    the latent of the pose; ``decode(z (N, 63), output_type='matrot') -> (N, 1, 21, 9)`` rotation
    matrices (``'aa'`` -> ``(N, 1, 21, 3)``), the shapes VPoser v1 returns;
    ``decode(encode(pose).mean)`` is ``pose``. It has no weights: the prior itself enters
    through :func:`register`'s loss term.
    """

    latentD: int = _BODY_WIDTH

    def encode(self, pose_body: torch.Tensor) -> torch.distributions.Normal:
        pose = pose_body.reshape(-1, _BODY_WIDTH) if pose_body.shape[-1] == _BODY_WIDTH else None
        if pose is None:
            raise ValueError(f"encode expects body poses (..., 63) axis-angle, got {tuple(pose_body.shape)}")
        z = pose - _latent_offset(pose)
        return torch.distributions.Normal(z, torch.full_like(z, 1e-6))

    def decode(self, z: torch.Tensor, output_type: str = "matrot") -> torch.Tensor:
        check_shape(z, (None, self.latentD), "latent z")
        if output_type not in ("matrot", "aa"):
            raise ValueError(f"output_type must be 'matrot' or 'aa' (VPoser v1), got {output_type!r}")
        aa = latent_to_body_pose(z).reshape(-1, 1, NUM_BODY_JOINTS, 3)
        if output_type == "aa":
            return aa
        return R.axis_angle_to_matrix(aa).reshape(-1, 1, NUM_BODY_JOINTS, 9)

    def forward(self, pose_body: torch.Tensor, output_type: str = "matrot") -> torch.Tensor:
        return self.decode(self.encode(pose_body).mean, output_type=output_type)


def load_vposer_compatible(expr_dir: Optional[str] = None, vp_model: str = "snapshot"):
    """Stand-in for ``human_body_prior.tools.model_loader.load_vposer(expr_dir,
    vp_model='snapshot')``: returns ``(IdentityLatentPosePrior(), None)`` like
    ``pose_prior, _ = load_vposer(path)``. Both arguments are accepted so the replaced call can
    keep them, and are not used (there are no VPoser weights to load)."""
    return IdentityLatentPosePrior(), None


class PoseNDFPosePriorLoss(nn.Module):
    """HuMoR's pose-prior term with the prior's energy: ``latent_pose (B, T, 63) -> scalar``
    (the latent of :class:`IdentityLatentPosePrior`, decoded by :func:`latent_to_body_pose`),
    the energy of each decoded pose summed over B and T (HuMoR sums its ‖z‖² the same way).

    ``scale`` multiplies the energy; see the README for the calibrated HuMoR weight. ``margin``
    makes each pose's energy ``max(E − margin, 0)`` (0 = off).
    """

    def __init__(self, prior: PriorLike = "posendf_density", scale: float = 1.0, prior_kwargs: Optional[dict] = None,
                 margin: float = 0.0) -> None:
        super().__init__()
        self.prior = resolve_prior(prior, prior_kwargs)
        self.scale = float(scale)
        self.margin = check_margin(margin)
        self._host_weights_checked = False

    def check_host_weights(self, loss_weights: Optional[Mapping]) -> bool:
        """Warn (once) when HuMoR's ``'pose_prior'`` weight is still VPoser's
        (:data:`HUMOR_VPOSER_POSE_PRIOR_WEIGHTS`, its configs' ``--pose-prior-weight``) at
        ``scale`` 1: ~350 × too weak for a Pose-NDF field. Returns whether it warned."""
        if self._host_weights_checked or self.scale != 1.0 or not isinstance(loss_weights, Mapping):
            return False
        self._host_weights_checked = True
        w = loss_weights.get("pose_prior")
        kind = next((k for k, v in HUMOR_VPOSER_POSE_PRIOR_WEIGHTS.items()
                     if isinstance(w, (int, float)) and math.isclose(w, v, rel_tol=1e-6)), None)
        if kind is None:
            return False
        name = shipped_model_name(self.prior)
        use = (
            f"--pose-prior-weight {HUMOR_CALIBRATED_POSE_PRIOR_WEIGHTS[name][kind]:g} (same value in each stage that uses the prior) "
            f"for the shipped '{name}'" if name in HUMOR_CALIBRATED_POSE_PRIOR_WEIGHTS else "a weight calibrated for your model"
        )
        warn_host_weight("HuMoR", "the 'pose_prior' loss weight", w, f"VPoser's latent ‖z‖² ({kind} configs)", use)
        return True

    def forward(self, latent_pose_pred: torch.Tensor) -> torch.Tensor:
        if not isinstance(latent_pose_pred, torch.Tensor) or latent_pose_pred.shape[-1] != _BODY_WIDTH:
            shape = tuple(latent_pose_pred.shape) if isinstance(latent_pose_pred, torch.Tensor) else type(latent_pose_pred).__name__
            raise ValueError(
                f"HuMoR passed latent_pose of shape {shape}; the Pose-NDF term needs (B, T, 63) body "
                "axis-angle, i.e. HuMoR must use IdentityLatentPosePrior (pose_prior, _ = "
                "load_vposer_compatible()) instead of VPoser, whose latent is 32-D"
            )
        dev = latent_pose_pred.device
        if any(p.device != dev for p in self.prior.parameters()):
            self.prior.to(dev)
        e = prior_energy(self.prior, latent_to_body_pose(latent_pose_pred.reshape(-1, _BODY_WIDTH)), self.margin)
        return e.sum() * self.scale


#: HuMoR's ``--pose-prior-weight`` for VPoser's ‖z‖² in its configs (``fit_amass_joints.cfg``;
#: the RGB / PROX ones): what a user who swaps only the prior still passes
HUMOR_VPOSER_POSE_PRIOR_WEIGHTS: Dict[str, float] = {"3D joints": 2e-4, "RGB": 0.04}
#: the calibrated weight of each shipped model for those configs (integrations/README.md,
#: "Calibrated weights": the real-vs-noisy energy gap matched to ‖z‖²'s at σ = 0.1)
HUMOR_CALIBRATED_POSE_PRIOR_WEIGHTS: Dict[str, Dict[str, float]] = {
    "posendf": {"3D joints": 0.070, "RGB": 14.1},
    "posendf_density": {"3D joints": 0.074, "RGB": 14.8},
    "nrdf": {"3D joints": 0.014, "RGB": 2.8},
}

_HUMOR_LOSS_MODULES = ("fitting.fitting_loss", "humor.fitting.fitting_loss")
_ORIG_ATTR = "_posendf_original_pose_prior_loss"


def _find_fitting_loss_cls():
    for name in _HUMOR_LOSS_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        cls = getattr(mod, "FittingLoss", None)
        if cls is not None and hasattr(cls, "pose_prior_loss"):
            return cls
    raise ImportError(
        "HuMoR is not importable: neither fitting.fitting_loss (HuMoR's scripts put humor/ on "
        "sys.path) nor humor.fitting.fitting_loss provides FittingLoss. Add /path/to/humor/humor "
        "to PYTHONPATH (or sys.path) before calling register(), or pass the FittingLoss class"
    )


def register(
    fitting_loss=None,
    prior: PriorLike = "posendf_density",
    scale: float = 1.0,
    margin: float = 0.0,
    **prior_kwargs,
) -> PoseNDFPosePriorLoss:
    """Replace HuMoR's ``FittingLoss.pose_prior_loss`` (‖z‖²) by the prior's energy.

    Args:
        fitting_loss: HuMoR's ``FittingLoss`` class (patched for every instance) or an
            instance (patched alone); ``None`` imports it from HuMoR.
        prior, scale, margin, prior_kwargs: see :class:`PoseNDFPosePriorLoss`.
    Returns:
        The loss module now called as ``pose_prior_loss``.
    Raises:
        ImportError: HuMoR not importable (and no class given).
        TypeError: the object has no ``pose_prior_loss``.

    The default prior is the density-aware field ``'posendf_density'`` (weight 0.074 for HuMoR's
    AMASS-joints config, 14.8 for RGB; since 2026-12-06, before ``'posendf'`` at 0.070 / 14.1):
    on 8 real unseen CMU clips in HuMoR's stage-2 fit it beat the distance field on every clip
    in joint angle (integrations/README.md, HuMoR section).

    Registering again replaces the earlier term (with a warning); :func:`unregister` restores.
    It also guards ``torch.optim.lbfgs``'s line search, which HuMoR's fitting uses
    (:func:`~._common.guard_line_search`: a trial step that overflows the loss no longer turns
    the fit into NaN; finite steps unchanged), for the rest of the process.
    """
    target = _find_fitting_loss_cls() if fitting_loss is None else fitting_loss
    if not hasattr(target, "pose_prior_loss"):
        raise TypeError(f"{target!r} has no pose_prior_loss: pass HuMoR's FittingLoss class or an instance of it")
    term = PoseNDFPosePriorLoss(prior, scale=scale, prior_kwargs=prior_kwargs or None, margin=margin)
    holder = target
    if _ORIG_ATTR in vars(holder):
        warnings.warn(
            f"posendf_plugin is already registered in {getattr(holder, '__name__', type(holder).__name__)}."
            "pose_prior_loss; replacing it", UserWarning, stacklevel=2,
        )
    else:
        setattr(holder, _ORIG_ATTR, vars(holder).get("pose_prior_loss"))

    if isinstance(target, type):
        def pose_prior_loss(self, latent_pose_pred):
            term.check_host_weights(getattr(self, "loss_weights", None))
            return term(latent_pose_pred)
    else:
        def pose_prior_loss(latent_pose_pred):
            term.check_host_weights(getattr(target, "loss_weights", None))
            return term(latent_pose_pred)
    pose_prior_loss.posendf_term = term
    setattr(holder, "pose_prior_loss", pose_prior_loss)
    guard_line_search("torch.optim.lbfgs")
    return term


def unregister(fitting_loss=None) -> None:
    """Restore HuMoR's own ``pose_prior_loss`` on the class (or instance) given to
    :func:`register`. Raises ``RuntimeError`` if it was not registered."""
    target = _find_fitting_loss_cls() if fitting_loss is None else fitting_loss
    if _ORIG_ATTR not in vars(target):
        raise RuntimeError(f"posendf_plugin is not registered on {target!r}; nothing to unregister")
    original = vars(target)[_ORIG_ATTR]
    delattr(target, _ORIG_ATTR)
    if original is None:
        delattr(target, "pose_prior_loss")
    else:
        setattr(target, "pose_prior_loss", original)
