"""Motion denoising with a pose prior (``posendf denoise``), following HuMoR's protocol.

Protocol (HuMoR, Rempe et al. 2021, "denoising" experiment; used by Pose-NDF):

1. A clean motion (AMASS/HuMoR ``.npz``: ``pose_body``, ``root_orient``, ``trans``, ``betas``;
   or a converted mocap clip) is cut into windows of ``window`` frames (60 frames = 2 s at
   30 fps in HuMoR).
2. The body model gives the clean 3D joints of each frame (the 22 SMPL body joints, pelvis to
   wrists) — the ground truth.
3. Gaussian noise of standard deviation ``noise_mm`` (20, 40 or 100 mm in the papers) is added
   to every coordinate of every joint, with a seeded generator.
4. SMPL parameters (body pose, root orientation, translation, one shape for the window) are
   optimised to fit the noisy joints, with a temporal smoothness term and the pose prior.
   Initialisation uses only the noisy joints: zero body pose, root orientation from a Kabsch
   fit of the torso joints, translation from the pelvis.
5. Metrics against the clean sequence: MPJPE (mm, 22 joints), V2V (mm, all mesh vertices)
   and acceleration error (mm/frame², joints) — for the denoised result and for the noisy
   input (MPJPE/acceleration only).

Default schedule (``configs/denoise.yaml``), after Pose-NDF's ``motion_denoise.py``: Adam, lr
0.03, 5 stages x 50 steps; stage ``s`` weighs the prior by ``1e5 (1 + s)`` (on the squared mean
distance for NRDF) and the shape by 10. Changes, each chosen on validation data (RESULTS.md,
"Calibration"):

* the temporal term (mean joint velocity, metres/frame; Pose-NDF used mesh vertices) keeps the
  weight 10 in every stage instead of rising as ``10 (1 + s)`` — the rising weight flattened
  fast motions (CMU 001_01, frames 120-239, 40 mm noise, no prior: MPJPE 68 mm vs 31 mm);
* the data term is the mean *squared* joint distance (m²) weighted ``1000 / (1 + s²)`` times
  ``(reference_noise_mm / σ̂)^noise_exponent``, σ̂ the noise measured in the window's own input
  (:func:`estimate_joint_noise`): one schedule then serves 20, 40 and 100 mm and real captures
  whose noise nobody states (Pose-NDF: mean distance at ``100 / (1 + s²)``, ``data_term:
  distance``, ``noise_exponent: 0``);
* Pose-NDF's term is ``min(max(f − margin, 0), cap)`` per frame (``prior_margin`` 0.05,
  ``prior_cap`` 1, times the measured input noise / 40 mm when below it: ``cap_noise_exponent`` 1):
  below the margin the data decides, so rare real poses are not pulled towards common ones, and
  beyond ``margin + cap`` too, so a pose the field never saw (a deep squat it scores far off) is
  not dragged to a plausible-looking wrong one — the cleaner the input, the sooner.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from .. import rotations as R
from ..body_model import BodyModel, get_body_model
from ..data.motion import Motion, load_motion, save_motion
from ..io import atomic_path, check_output_dir, json_text, save_json, save_npz
from ..priors.base import PosePrior
from ..skeleton import SMPL_PARENTS, forward_kinematics
from . import losses as L
from .params import BodyPoseVariable, StagedFitConfig, check_stage, load_prior

__all__ = [
    "DenoiseStage",
    "DenoiseConfig",
    "DenoiseResult",
    "NUM_EVAL_JOINTS",
    "load_denoise_config",
    "add_joint_noise",
    "estimate_joint_noise",
    "ground_truth_body",
    "init_root_from_joints",
    "denoise_window",
    "denoise_motion",
    "plot_trajectories",
]

log = logging.getLogger(__name__)

#: joints used for the data term and the metrics: SMPL 0..21 (pelvis to wrists; no hands)
NUM_EVAL_JOINTS = 22
_TORSO = (0, 1, 2, 3, 6, 9, 12, 13, 14, 16, 17)
#: the data term: mean joint distance (metres) or mean squared joint distance (m²)
DATA_TERMS = ("distance", "squared")
#: floor of the measured input noise (mm) in the data weight: below it a window's own motion
#: dominates :func:`estimate_joint_noise` (clean 30 fps clips read under 2 mm)
MIN_NOISE_MM = 2.0


@dataclass(frozen=True)
class DenoiseStage:
    """One stage: ``iterations`` Adam steps with these weights."""

    iterations: int = 50
    data_weight: float = 1000.0
    temporal_weight: float = 10.0
    prior_weight: float = 1e5
    shape_weight: float = 10.0
    lr: float = 0.03

    def __post_init__(self) -> None:
        check_stage(self, ("data_weight", "temporal_weight", "prior_weight", "shape_weight"))


_POSENDF_STAGES = tuple(
    DenoiseStage(50, data_weight=1000.0 / (1 + s * s), temporal_weight=10.0, prior_weight=1e5 * (1 + s))
    for s in range(5)
)


@dataclass(frozen=True)
class DenoiseConfig(StagedFitConfig):
    """Settings of :func:`denoise_motion` (YAML: ``configs/denoise.yaml``).

    Attributes:
        window: frames per window (HuMoR: 60 at 30 fps).
        noise_mm: std of the Gaussian joint noise (mm).
        stages: :class:`DenoiseStage` list.
        squared_priors: priors whose term is the *squared* mean energy (Pose-NDF's choice for
            its distance); the others use the mean energy.
        prior_scale: per-prior multiplier of ``prior_weight`` (so one schedule serves all).
        prior_margin: per-prior energy below which a pose's prior term is zero (Pose-NDF: 0.05,
            chosen on the val split and two held-out motion styles): the term is
            ``max(E(θ) − margin, 0)`` per frame (then squared for ``squared_priors``). A distance
            field labelled over the k nearest poses scores rare real poses (dance) well above 0,
            and a linear term keeps pulling them towards common poses; the margin lets the data
            decide below it. 0 (the default for priors not listed) = the plain term.
        prior_cap: per-prior ceiling ``C`` of that per-frame term: ``min(max(E − margin, 0), C)``,
            so a frame the prior scores beyond ``margin + C`` gets no pull (the data decide
            there) — for rare real poses a field never saw (e.g. deep squats), which a linear
            term otherwise drags to a plausible-looking but wrong pose (Pose-NDF: 1, chosen on
            the val split and two held-out motion styles). Priors not listed: no cap.
        cap_noise_exponent: ``Q``: the cap is ``prior_cap × min((σ̂ / reference_noise_mm)^Q,
            cap_noise_max)``, σ̂ the noise measured in the window's input
            (:func:`estimate_joint_noise`, floored at :data:`MIN_NOISE_MM`): on clean input a
            frame the field scores far off is a rare real pose, not noise, so the cap shrinks
            with the noise. 0 = a fixed cap.
        cap_noise_max: the largest factor of that rule (1: the cap never grows above
            ``prior_cap``; ``inf``: it grows with the noise too — at 100 mm that let the field drag
            rare real poses again, benchmarks/RESULTS.md).
        data_term: ``"squared"`` (mean squared joint distance, m²: the Gaussian likelihood; the
            default) or ``"distance"`` (mean joint distance, m: Pose-NDF's; use it with stage
            data weights / 10 and ``noise_exponent: 0`` to reproduce the earlier schedule).
        noise_exponent: ``P``: every stage's data weight is multiplied by ``(reference_noise_mm /
            σ̂)^P``, σ̂ the noise measured in the window's input (:func:`estimate_joint_noise`,
            floored at :data:`MIN_NOISE_MM`); 0 = fixed weights. 1 was best of 0 / 1 / 2 over the
            val split and two held-out styles at 20 / 40 / 100 mm.
        reference_noise_mm: the noise level at which the stage data weights apply unchanged.
        optimise_betas: fit one shape per window (else keep the input's betas).
        pose_parameterisation: ``"auto"`` (VPoser latent space for ``vposer``), ``"axis_angle"``
            or ``"vposer_latent"``.
        latent_lr_scale: the VPoser latent code's learning rate is the stage's times this.
        latent_init: where the VPoser latent code starts (``"zero"`` or ``"encode"``, see
            :class:`~posendf_plugin.fitting.params.BodyPoseVariable`); the pose starts at the
            T-pose, which is no estimate, hence ``"zero"`` (SMPLify-X's start).
    """

    window: int = 60
    noise_mm: float = 40.0
    stages: Tuple[DenoiseStage, ...] = _POSENDF_STAGES
    squared_priors: Tuple[str, ...] = ("nrdf",)
    prior_scale: Mapping[str, float] = field(
        default_factory=lambda: {"none": 0.0, "posendf": 1e-5, "nrdf": 3e-6, "vposer": 1e-10, "gmm": 3e-9})
    prior_margin: Mapping[str, float] = field(default_factory=lambda: {"posendf": 0.05})
    prior_cap: Mapping[str, float] = field(default_factory=lambda: {"posendf": 1.0})
    cap_noise_exponent: float = 1.0
    cap_noise_max: float = 1.0
    data_term: str = "squared"
    noise_exponent: float = 1.0
    reference_noise_mm: float = 40.0
    optimise_betas: bool = True
    pose_parameterisation: str = "auto"
    latent_lr_scale: float = 3.0
    latent_init: str = "zero"

    STAGE: ClassVar[type] = DenoiseStage

    def __post_init__(self) -> None:
        if not self.latent_lr_scale > 0:
            raise ValueError(f"latent_lr_scale must be positive, got {self.latent_lr_scale}")
        if not (isinstance(self.window, int) and self.window >= 3):
            raise ValueError(f"window must be an integer >= 3 frames, got {self.window!r}")
        if not self.noise_mm >= 0:
            raise ValueError(f"noise_mm must be >= 0, got {self.noise_mm}")
        if self.data_term not in DATA_TERMS:
            raise ValueError(f"data_term must be one of {DATA_TERMS}, got {self.data_term!r}")
        if not (isinstance(self.noise_exponent, (int, float)) and 0 <= self.noise_exponent <= 4):
            raise ValueError(f"noise_exponent must be a number in [0, 4], got {self.noise_exponent!r}")
        if not (isinstance(self.cap_noise_exponent, (int, float)) and not isinstance(self.cap_noise_exponent, bool)
                and 0 <= self.cap_noise_exponent <= 4):
            raise ValueError(f"cap_noise_exponent must be a number in [0, 4], got {self.cap_noise_exponent!r}")
        if not (isinstance(self.cap_noise_max, (int, float)) and not isinstance(self.cap_noise_max, bool)
                and self.cap_noise_max >= 1):
            raise ValueError(f"cap_noise_max must be a number >= 1 (inf: no limit), got {self.cap_noise_max!r}")
        if not (isinstance(self.reference_noise_mm, (int, float)) and self.reference_noise_mm > 0):
            raise ValueError(f"reference_noise_mm must be a positive number (mm), got {self.reference_noise_mm!r}")
        if not isinstance(self.prior_margin, Mapping):
            raise ValueError(f"prior_margin must map prior names to energies >= 0, got {self.prior_margin!r}")
        for name, m in dict(self.prior_margin).items():
            if not (isinstance(m, (int, float)) and not isinstance(m, bool) and m >= 0):
                raise ValueError(f"prior_margin[{name!r}] must be a number >= 0, got {m!r}")
        if not isinstance(self.prior_cap, Mapping):
            raise ValueError(f"prior_cap must map prior names to energies > 0, got {self.prior_cap!r}")
        for name, c in dict(self.prior_cap).items():
            if not (isinstance(c, (int, float)) and not isinstance(c, bool) and c > 0 and math.isfinite(c)):
                raise ValueError(f"prior_cap[{name!r}] must be a finite number > 0, got {c!r}")
        self.check_staging()

    def margin_for(self, prior_name: str) -> float:
        """The energy below which ``prior_name``'s term is zero (0 when not listed)."""
        return float(dict(self.prior_margin).get(prior_name, 0.0))

    def cap_for(self, prior_name: str) -> float:
        """The ceiling of ``prior_name``'s per-frame term (``inf`` when not listed)."""
        return float(dict(self.prior_cap).get(prior_name, math.inf))

    def cap_factor(self, measured_noise_m: float) -> float:
        """Multiplier of every prior's cap for input whose measured noise is ``measured_noise_m``
        (metres): ``min((max(σ̂, MIN_NOISE_MM) / reference_noise_mm)^cap_noise_exponent, cap_noise_max)``."""
        if self.cap_noise_exponent == 0:
            return 1.0
        ratio = _floored_noise_mm(measured_noise_m) / self.reference_noise_mm
        return min(ratio ** self.cap_noise_exponent, float(self.cap_noise_max))

    def data_factor(self, measured_noise_m: float) -> float:
        """Multiplier of every stage's data weight for input whose measured noise is
        ``measured_noise_m`` (metres): ``(reference_noise_mm / max(σ̂, MIN_NOISE_MM))^noise_exponent``."""
        if self.noise_exponent == 0:
            return 1.0
        return (self.reference_noise_mm / _floored_noise_mm(measured_noise_m)) ** self.noise_exponent


def _floored_noise_mm(measured_noise_m: float) -> float:
    """A window's measured input noise in mm, floored at :data:`MIN_NOISE_MM` (the data weight's
    and the cap's measure of how noisy the input is)."""
    return max(1000.0 * measured_noise_m, MIN_NOISE_MM)


def load_denoise_config(path: Union[str, Path]) -> DenoiseConfig:
    """Read ``configs/denoise.yaml``-style YAML (unknown keys are an error)."""
    return DenoiseConfig.load(path)


# ---------------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------------


def add_joint_noise(joints: torch.Tensor, noise_mm: float, generator: torch.Generator) -> torch.Tensor:
    """``joints + N(0, (noise_mm/1000)²)`` per coordinate; ``(..., J, 3)`` metres."""
    noise = torch.randn(joints.shape, generator=generator, dtype=torch.float64).to(joints)
    return joints + noise * (noise_mm / 1000.0)


def estimate_joint_noise(joints: torch.Tensor) -> float:
    """Standard deviation (metres) of white noise on ``(T, J, 3)`` joint trajectories, from their
    second differences: for noise of std σ per coordinate, ``y[t+1] − 2 y[t] + y[t−1]`` has std
    σ√6, and smooth motion adds little to it at 30 fps; the median absolute value makes the
    estimate robust to fast frames (``1.4826 · median |a| / √6``). ``T >= 3``."""
    if joints.ndim < 2 or joints.shape[0] < 3:
        raise ValueError(f"joints must have shape (T >= 3, ..., 3), got {tuple(joints.shape)}")
    a = joints[2:] - 2 * joints[1:-1] + joints[:-2]
    return float(1.4826 * a.abs().median() / 6 ** 0.5)


def init_root_from_joints(joints: torch.Tensor, rest_joints: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Root orientation and translation from observed joints (Kabsch on the torso joints).

    Args:
        joints: ``(T, J>=18, 3)`` observed SMPL joints. rest_joints: ``(24, 3)`` rest-pose joints.
    Returns:
        ``(root axis-angle (T, 3), translation (T, 3))`` such that the rotated rest torso,
        translated, best matches the observation (the body model rotates about joint 0).
    """
    idx = list(_TORSO)
    obs = joints[:, idx].double()
    rest = rest_joints[idx].double().to(obs.device)
    rest0 = rest - rest_joints[0].double()
    oc, rc = obs.mean(1, keepdim=True), rest0.mean(0, keepdim=True)
    h = (rest0 - rc).transpose(0, 1).unsqueeze(0) @ (obs - oc)  # (T, 3, 3) = sum r o^T
    u, _, vh = torch.linalg.svd(h)
    d = torch.sign(torch.linalg.det(vh.transpose(-1, -2) @ u.transpose(-1, -2)))
    diag = torch.diag_embed(torch.stack((torch.ones_like(d), torch.ones_like(d), d), -1))
    rot = vh.transpose(-1, -2) @ diag @ u.transpose(-1, -2)  # maps rest -> obs
    pelvis = oc.squeeze(1) - (rot @ rc.squeeze(0).unsqueeze(-1)).squeeze(-1)
    trans = pelvis - rest_joints[0].double()
    return R.matrix_to_axis_angle(rot).to(joints.dtype), trans.to(joints.dtype)


def _fk_joints(bm: BodyModel, body_pose: torch.Tensor, root: torch.Tensor, trans: torch.Tensor,
               betas: Optional[torch.Tensor]) -> torch.Tensor:
    """SMPL joints ``(T, 24, 3)`` by forward kinematics on the shaped rest joints (exactly what
    the body model returns for its joints; skips skinning the mesh)."""
    rest = bm.rest_joints(betas).reshape(-1, 24, 3)[0]
    T = body_pose.shape[0]
    rot_body = R.axis_angle_to_matrix(body_pose.reshape(T, 21, 3))
    eye = torch.eye(3, dtype=body_pose.dtype).expand(T, 2, 3, 3)
    rots = torch.cat((R.axis_angle_to_matrix(root).unsqueeze(1), rot_body, eye), dim=1)
    return forward_kinematics(rots, rest.to(body_pose.dtype), SMPL_PARENTS, root_translation=trans)[0]


@dataclass
class DenoiseResult:
    """Denoised motion and metrics (all arrays numpy float32).

    Attributes:
        motion: the denoised :class:`~posendf_plugin.data.motion.Motion` (frames covered by the
            windows).
        gt_joints / noisy_joints / joints: ``(N, 22, 3)`` metres.
        metrics: ``mpjpe_mm``, ``v2v_mm``, ``accel_mm``, ``noisy_mpjpe_mm``, ``noisy_accel_mm``
            (means over windows), plus ``windows``, ``frames``, ``noise_mm``, ``prior``.
        window_metrics: the same per window.
    """

    motion: Motion
    gt_joints: np.ndarray
    noisy_joints: np.ndarray
    joints: np.ndarray
    metrics: Dict[str, float]
    window_metrics: List[Dict[str, float]]


def ground_truth_body(gt: Motion, body_model: BodyModel):
    """The clean window posed by ``body_model``: ``(betas (n,), output)``, the motion's betas cut
    or zero-padded to the model's ``n``; ``output.joints[:, :NUM_EVAL_JOINTS]`` are the
    ``(T, 22, 3)`` ground-truth joints the noise is added to (no gradient)."""
    dt = body_model.dtype
    nb = body_model.num_betas
    betas = torch.zeros(nb, dtype=dt)
    b = torch.as_tensor(np.asarray(gt.betas, np.float32)).reshape(-1)[:nb].to(dt)
    betas[: len(b)] = b
    with torch.no_grad():
        out = body_model(body_pose=torch.as_tensor(gt.pose_body).to(dt), global_orient=torch.as_tensor(gt.root_orient).to(dt),
                         betas=betas, transl=torch.as_tensor(gt.trans).to(dt))
    return betas, out


def denoise_window(
    gt: Motion,
    body_model: BodyModel,
    prior: PosePrior,
    config: DenoiseConfig = DenoiseConfig(),
    generator: Optional[torch.Generator] = None,
    noisy_joints: Optional[torch.Tensor] = None,
    progress: bool = False,
) -> Tuple[Dict[str, torch.Tensor], Dict[str, float]]:
    """Denoise one window (all frames of ``gt``).

    Args:
        gt: the clean window.
        noisy_joints: ``(T, 22, 3)`` observations; made from ``gt`` with ``config.noise_mm``
            and ``generator`` if omitted.
    Returns:
        ``(arrays, metrics)``: arrays ``pose_body (T, 63)``, ``root_orient``, ``trans``,
        ``betas (n,)``, ``joints``, ``gt_joints``, ``noisy_joints`` (``(T, 22, 3)``).
    """
    dt = body_model.dtype
    T = len(gt)
    nb = body_model.num_betas
    gt_betas, gt_out = ground_truth_body(gt, body_model)
    gt_j = gt_out.joints[:, :NUM_EVAL_JOINTS]
    if noisy_joints is None:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        noisy_joints = add_joint_noise(gt_j, config.noise_mm, g)
    noisy = torch.as_tensor(noisy_joints).to(dt)
    if noisy.shape != gt_j.shape:
        raise ValueError(f"noisy_joints must have shape {tuple(gt_j.shape)}, got {tuple(noisy.shape)}")

    with torch.no_grad():
        rest0 = body_model.rest_joints().reshape(24, 3)
        root0, trans0 = init_root_from_joints(noisy, rest0)
    root = torch.nn.Parameter(root0.clone())
    trans = torch.nn.Parameter(trans0.clone())
    betas = torch.nn.Parameter(torch.zeros(1, nb, dtype=dt)) if config.optimise_betas else None
    pose_var = BodyPoseVariable(torch.zeros(T, 63, dtype=dt), prior, config.pose_parameterisation, config.latent_init)
    pname = getattr(prior, "name", "")
    pscale = config.scale_for(pname)
    squared = pname in config.squared_priors
    margin, cap = config.margin_for(pname), config.cap_for(pname)
    # the measured input noise sets the data weight (needs T >= 3, which it then requires)
    sigma = estimate_joint_noise(noisy) if config.noise_exponent or T >= 3 else float("nan")
    data_factor = config.data_factor(sigma) if config.noise_exponent else 1.0
    if math.isfinite(cap) and math.isfinite(sigma):  # (sigma is measured whenever T >= 3)
        cap = cap * config.cap_factor(sigma)
    params = [root, trans] + ([betas] if betas is not None else [])
    pose_params = [p for p in pose_var.parameters() if p.requires_grad]
    lr_scale = config.latent_lr_scale if pose_var.mode == "vposer_latent" else 1.0
    fixed_betas = gt_betas[None] if betas is None else None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(s.iterations for s in config.stages), desc="denoising", leave=False)
    for stage in config.stages:
        opt = torch.optim.Adam([{"params": params}, {"params": pose_params, "lr": stage.lr * lr_scale}], lr=stage.lr)
        for _ in range(stage.iterations):
            opt.zero_grad()
            pose = pose_var.pose()
            j = _fk_joints(body_model, pose, root, trans, betas if betas is not None else fixed_betas)[:, :NUM_EVAL_JOINTS]
            diff = j - noisy
            data = (diff ** 2).sum(-1).mean() if config.data_term == "squared" else diff.norm(dim=-1).mean()
            temp = L.velocity_loss(j)
            loss = stage.data_weight * data_factor * data + stage.temporal_weight * temp
            if stage.prior_weight * pscale > 0:
                e = pose_var.prior_energy(pose)
                e = torch.relu(e - margin) if margin > 0 else e
                e = (torch.clamp(e, max=cap) if math.isfinite(cap) else e).mean()
                loss = loss + stage.prior_weight * pscale * (e * e if squared else e)
            if betas is not None and stage.shape_weight > 0:
                loss = loss + stage.shape_weight * (betas ** 2).mean()
            loss.backward()
            opt.step()
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()

    with torch.no_grad():
        pose = pose_var.pose()
        fb = betas if betas is not None else fixed_betas
        out = body_model(body_pose=pose, global_orient=root, betas=fb.expand(T, -1), transl=trans)
        j = out.joints[:, :NUM_EVAL_JOINTS]
        metrics = {
            "mpjpe_mm": 1000 * float(L.mpjpe(j, gt_j).mean()),
            "v2v_mm": 1000 * float(L.v2v(out.vertices, gt_out.vertices).mean()),
            "accel_mm": 1000 * float(L.acceleration_error(j, gt_j)) if T >= 3 else float("nan"),
            "noisy_mpjpe_mm": 1000 * float(L.mpjpe(noisy, gt_j).mean()),
            "noisy_accel_mm": 1000 * float(L.acceleration_error(noisy, gt_j)) if T >= 3 else float("nan"),
            "pa_mpjpe_mm": 1000 * float(L.pa_mpjpe(j, gt_j).mean()),
            "data_factor": float(data_factor),
            "noise_estimate_mm": 1000 * sigma,
        }
        if math.isfinite(cap):  # the per-frame term's ceiling this window used (absent: uncapped)
            metrics["prior_cap"] = float(cap)
        arrays = {
            "pose_body": pose.detach().float(), "root_orient": root.detach().float(), "trans": trans.detach().float(),
            "betas": fb.detach().reshape(-1).float(), "joints": j.float(), "gt_joints": gt_j.float(), "noisy_joints": noisy.float(),
        }
    return arrays, metrics


def _slice(m: Motion, a: int, b: int) -> Motion:
    return Motion(pose_body=m.pose_body[a:b], root_orient=m.root_orient[a:b], trans=m.trans[a:b], betas=m.betas,
                  fps=m.fps, gender=m.gender, pose_hand=m.pose_hand[a:b])


def _motion_body_model(path: Optional[Union[str, Path]], gender: str) -> BodyModel:
    """The body model of ``gender`` in ``path`` (as HuMoR fits each clip with its subject's model);
    the neutral one when the folder has none of that gender, or for the embedded stand-in."""
    if path is None or gender == "neutral":
        return get_body_model(path)
    try:
        return get_body_model(path, gender=gender)
    except FileNotFoundError:
        log.warning("%s: no %s body model; fitting the %s motion with the neutral one (the output says gender "
                    "'neutral')", path, gender, gender)
        return get_body_model(path)


def denoise_motion(
    motion: Union[str, Path, Motion],
    out_dir: Optional[Union[str, Path]] = None,
    prior: Union[str, PosePrior] = "posendf",
    prior_checkpoint: Optional[Union[str, Path]] = None,
    body_model: Optional[Union[str, Path, BodyModel]] = None,
    config: DenoiseConfig = DenoiseConfig(),
    seed: int = 0,
    max_windows: Optional[int] = None,
    start: int = 0,
    progress: bool = True,
    plot: bool = True,
    name: Optional[str] = None,
    fps: Optional[float] = None,
) -> DenoiseResult:
    """Run the protocol of the module docstring on consecutive windows of a motion. Without
    ``max_windows`` the whole motion comes back: the frames after the last full window are fitted
    in one more window ending at the last frame, of which only they are kept (its metrics, over
    the whole window, count in the means by the frames kept).

    ``fps``: resample the motion to this frame rate first (:meth:`Motion.resampled`; HuMoR's
    protocol is 30 fps, AMASS clips are mostly 60–120 fps). The hand pose is not fitted: the
    output carries the input's. With real model files (``body_model`` a folder) the motion is fitted
    with the model of its ``gender`` when the folder has one (as HuMoR does), else the neutral one;
    the output's ``gender`` names the model its ``betas`` belong to.

    Writes (when ``out_dir`` is given), atomically, after every window: ``<name>_denoised.npz``
    (AMASS layout, the frames done so far; its ``start_frame`` says which input frame — after any
    ``fps`` resampling — is its frame 0), ``<name>_denoise.npz`` (joints: ground truth, noisy,
    denoised; per-window metrics), ``<name>_metrics.json``; at the end
    ``<name>_trajectories.png``.

    Raises:
        FileNotFoundError: no motion file / body model. KeyError: the file lacks pose keys.
        ValueError: the motion is shorter than one window (or ``start`` is past its end).
    """
    from tqdm.auto import tqdm

    where = "the motion"
    if not isinstance(motion, Motion):
        path = Path(motion)
        name = name or path.stem
        motion = load_motion(path)
        where = str(path)
    name = name or "motion"
    if fps is not None:
        motion = motion.resampled(fps)  # checks fps
    if out_dir is not None:
        check_output_dir(out_dir, "out_dir")  # before any work: not after the first window
    n = len(motion)
    W = config.window
    if start < 0 or start >= n:
        raise ValueError(f"{where}: start frame {start} is outside the motion (0..{n - 1})")
    nwin = (n - start) // W
    if nwin == 0:
        fix = (f"use a longer clip or a smaller window (--window {n - start}; DenoiseConfig(window=...))" if n - start >= 3
               else "denoising needs at least 3 frames (velocities and accelerations); use a longer clip or an earlier start")
        raise ValueError(f"{where}: {n - start} frame(s) from frame {start}, fewer than one window of {W} frames; {fix}")
    if max_windows is not None:
        if max_windows < 1:
            raise ValueError(f"max_windows must be >= 1, got {max_windows}")
        nwin = min(nwin, max_windows)
    # the frames after the last full window: one more window ending at the last frame, of which
    # only those frames are kept (a whole motion comes back, each frame fitted once)
    tail = (n - start) - nwin * W if max_windows is None else 0
    bm = body_model if isinstance(body_model, BodyModel) else _motion_body_model(body_model, motion.gender)
    bm_gender = str(getattr(bm.model, "gender", "neutral")).lower()  # the output's betas are this model's
    prior_m = load_prior(prior, prior_checkpoint)
    if abs(motion.fps - 30.0) > 0.5:
        log.warning("the motion is at %g fps; HuMoR's protocol uses 30 fps windows of 60 frames "
                    "(resample it with --fps 30 / fps=30 to compare with published numbers)", motion.fps)
    gen = torch.Generator().manual_seed(int(seed))
    parts: List[Dict[str, torch.Tensor]] = []
    wm: List[Dict[str, float]] = []
    out_dir = Path(out_dir) if out_dir is not None else None
    for w in tqdm(range(nwin + (tail > 0)), desc="windows", disable=not progress):
        a = start + w * W if w < nwin else n - W
        t0 = time.time()
        arrays, metrics = denoise_window(_slice(motion, a, a + W), bm, prior_m, config, gen, progress=False)
        metrics.update(window=w, start_frame=a, seconds=round(time.time() - t0, 2))
        if w == nwin:  # the tail window: keep its last frames only (its metrics are over the whole window)
            arrays = {k: (v if k == "betas" else v[W - tail:]) for k, v in arrays.items()}
            metrics.update(kept_from_frame=n - tail, frames_kept=tail)
        parts.append(arrays)
        wm.append(metrics)
        result = _assemble(motion, parts, wm, config, prior_m, start, bm_gender)
        if out_dir is not None:
            _write(out_dir, name, result, config, seed)
    if out_dir is not None and plot:
        plot_trajectories(result, out_dir / f"{name}_trajectories.png", title=f"{name}: {result.metrics['prior']} prior, noise {config.noise_mm:g} mm")
    return result


def _assemble(motion: Motion, parts, wm, config: DenoiseConfig, prior: PosePrior, start: int, gender: str) -> DenoiseResult:
    cat = {k: torch.cat([p[k] for p in parts]).numpy() for k in ("pose_body", "root_orient", "trans", "joints", "gt_joints", "noisy_joints")}
    betas = np.mean([p["betas"].numpy() for p in parts], axis=0)
    n = len(cat["pose_body"])  # the frames from ``start`` on, in order; the hands are not fitted: carried over
    m = Motion(pose_body=cat["pose_body"], root_orient=cat["root_orient"], trans=cat["trans"], betas=betas,
               fps=motion.fps, gender=gender, pose_hand=motion.pose_hand[start:start + n].copy())
    keys = ("mpjpe_mm", "v2v_mm", "accel_mm", "pa_mpjpe_mm", "noisy_mpjpe_mm", "noisy_accel_mm")
    frames = [x.get("frames_kept", config.window) for x in wm]  # a tail window counts by the frames it gave
    metrics = {k: float(np.average([x[k] for x in wm], weights=frames)) for k in keys}
    metrics.update(windows=len(wm), frames=len(cat["joints"]), noise_mm=config.noise_mm,
                   prior=getattr(prior, "name", type(prior).__name__), start_frame=start, fps=motion.fps)
    return DenoiseResult(m, cat["gt_joints"], cat["noisy_joints"], cat["joints"], metrics, wm)


def _write(out_dir: Path, name: str, res: DenoiseResult, config: DenoiseConfig, seed: int) -> None:
    # start_frame: the input frame (after any --fps resampling) the denoised motion's frame 0 is
    save_motion(out_dir / f"{name}_denoised.npz", res.motion,
                extra={"start_frame": np.asarray(int(res.metrics.get("start_frame", 0)), np.int64)})
    save_npz(out_dir / f"{name}_denoise.npz", gt_joints=res.gt_joints, noisy_joints=res.noisy_joints,
             joints=res.joints, window_metrics=np.asarray(json_text(res.window_metrics)),
             metrics=np.asarray(json_text(res.metrics)), config=np.asarray(json_text(config.to_dict())),
             seed=np.asarray(seed))
    save_json(out_dir / f"{name}_metrics.json", {"metrics": res.metrics, "windows": res.window_metrics,
                                                 "seed": seed, "config": config.to_dict()})


_PLOT_JOINTS = ((0, "pelvis"), (15, "head"), (20, "left_wrist"), (8, "right_ankle"))


def plot_trajectories(result: DenoiseResult, path: Union[str, Path], title: str = "") -> Path:
    """PNG of joint trajectories over time (x, y, z of a few joints): noisy input (dots),
    denoised (solid) and ground truth (dashed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..skeleton import SMPL_JOINT_NAMES

    joints = [(j, SMPL_JOINT_NAMES[j]) for j, _ in _PLOT_JOINTS]
    t = np.arange(len(result.joints)) + int(result.metrics.get("start_frame", 0))
    fig, axes = plt.subplots(len(joints), 3, figsize=(13, 2.2 * len(joints) + 0.8), sharex=True)
    for r, (j, jn) in enumerate(joints):
        for c in range(3):
            ax = axes[r, c]
            ax.plot(t, result.noisy_joints[:, j, c], ".", color="0.6", ms=2.5, label="noisy input")
            ax.plot(t, result.gt_joints[:, j, c], "--", color="k", lw=1.2, label="ground truth")
            ax.plot(t, result.joints[:, j, c], "-", color="tab:red", lw=1.2, label="denoised")
            ax.set_title(f"{jn} {'xyz'[c]} (m)", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="best")
    for c in range(3):
        axes[-1, c].set_xlabel("frame", fontsize=8)
    m = result.metrics
    fig.suptitle(
        f"{title}\nMPJPE {m['mpjpe_mm']:.1f} mm (noisy {m['noisy_mpjpe_mm']:.1f}), V2V {m['v2v_mm']:.1f} mm, "
        f"accel. error {m['accel_mm']:.1f} mm/frame² (noisy {m['noisy_accel_mm']:.1f})", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path
