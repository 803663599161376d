"""Partial-pose completion (``posendf complete``): fill in unknown joints with the prior.

Given poses whose joints are partly unknown (a mask over the 21 body joints), only the unknown
joints move; the known joints stay exactly as given. The original Pose-NDF code had no masking.

Every completion starts, by default (``init="knn"``), from the **nearest-neighbour fill**
(:func:`posendf_plugin.fitting.knn.knn_fill`): the unknown joints of each pose are the chordal mean
of those joints over the 50 reference poses (default: the embedded training poses) nearest in the
known joints — a nonparametric conditional mean. It is the most accurate completion we measured,
on validation data and on a motion style it never saw (CMU val: 8.62° / 9.19° hidden-joint error
at 25 % / 50 % hidden, vs 13.27° / 13.39° from the mean pose and 11.21° / 11.73° for the
density-aware field's projection from there; the held-out modern dance: 22.33° / 23.87° vs 25.11° /
26.02° and 24.68° / 25.84°; benchmarks/RESULTS.md, *Completion*). ``init="mean"`` starts from the
embedded mean training pose instead (the protocol before session 18).

Distance-field priors (Pose-NDF, NRDF) complete by **masked projection** (the default for them,
``parameterisation="projection"``): from the start guess, :data:`DEFAULT_PROJECTION_STEPS`
(per prior) projection steps of size :data:`DEFAULT_PROJECTION_STEP_SIZE` move the unknown joints only
towards the field's zero level set (:meth:`PoseNDF.project <posendf_plugin.prior.PoseNDF.project>`
with ``free=mask, monotone=True``: a step that would raise the distance is not taken and its
size halves).
Minimising the energy with Adam instead (``"axis_angle"``, the other priors' way) walks far
along the flat field — Adam's steps do not shrink with the gradient — and on the CMU
validation split left the completed joints further from the truth than its start (the k = 5
Pose-NDF: 18.1° vs 13.3° for the mean-pose start, projection 14.2°; NRDF 26.3° vs 14.2°).

VPoser is used in its latent space by default (``parameterisation="auto"``), as SMPLify-X and
human_body_prior's IK engine use it: a code ``z`` (from ``z = 0``) is fitted so that the
decoded pose matches the *known* joints, ``Σ_known (1 - ⟨q_dec, q⟩²) + latent_weight ‖z‖²``
(``1 - ⟨q_dec, q⟩² = sin²(θ/2)`` of the joint's rotation error θ), and the unknown joints are
taken from the decoded pose. Minimising its encoder energy ``‖μ(x)‖²`` over the unknown joints
instead (``parameterisation="axis_angle"``) drives them to poses the encoder maps near the
origin but that are not real: on the CMU validation subject that left the completed joints
further from the truth than the identity guess (BASELINES_CARD.md).

:func:`evaluate_completion` measures it on held-out poses (by default the shipped CMU test
split, :func:`posendf_plugin.data.default.default_pose_set`): hide a joint group, complete it,
and compare with the hidden truth — geodesic angle error of the completed joints (degrees) and
the position error of the joints they move (mm, on the rest skeleton
:data:`posendf_plugin.skeleton.SMPL_REST_JOINTS`), next to the error of the initial guess.
With the ``none`` prior the completion is the initial guess.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .. import rotations as R
from .._checks import is_count
from ..priors.base import PosePrior
from ..skeleton import BODY_JOINT_NAMES, NUM_BODY_JOINTS, SMPL_PARENTS, body_joint_positions, to_body_quat, warn_pose_units
from .knn import DEFAULT_KNN_K, knn_fill
from .params import load_prior

__all__ = [
    "JOINT_GROUPS",
    "INIT_MODES",
    "COMPLETION_PARAMETERISATIONS",
    "DEFAULT_LATENT_WEIGHT",
    "DEFAULT_PROJECTION_STEPS",
    "DEFAULT_PROJECTION_STEP_SIZE",
    "KNN_PROJECTION_STEPS",
    "SHIPPED_WEIGHTS",
    "CompletionResult",
    "CompletionEvaluation",
    "parse_mask",
    "complete_poses",
    "moved_joints",
    "evaluate_completion",
]

#: named groups of body joints for masks
JOINT_GROUPS: Dict[str, Tuple[str, ...]] = {
    "left_arm": ("left_shoulder", "left_elbow", "left_wrist"),
    "right_arm": ("right_shoulder", "right_elbow", "right_wrist"),
    "left_leg": ("left_hip", "left_knee", "left_ankle", "left_foot"),
    "right_leg": ("right_hip", "right_knee", "right_ankle", "right_foot"),
    "spine": ("spine1", "spine2", "spine3"),
    "head": ("neck", "head"),
}
JOINT_GROUPS["arms"] = JOINT_GROUPS["left_arm"] + JOINT_GROUPS["right_arm"]
JOINT_GROUPS["legs"] = JOINT_GROUPS["left_leg"] + JOINT_GROUPS["right_leg"]
INIT_MODES = ("knn", "mean", "identity", "input")
#: ``complete_poses(parameterisation=...)``: ``"auto"`` = latent for VPoser, masked projection
#: for distance fields (priors with ``project``), else energy minimisation on the axis-angle
COMPLETION_PARAMETERISATIONS = ("auto", "axis_angle", "vposer_latent", "projection")
#: masked-projection completion (distance-field priors) from a mean / identity / input start: steps
#: per prior (others: ``"default"``) and step size, chosen on the CMU validation split (``python
#: benchmarks/calibrate.py --task completion --init mean --priors posendf,nrdf --projection-steps
#: 1,3,10``; benchmarks/RESULTS.md)
DEFAULT_PROJECTION_STEPS: Dict[str, int] = {"default": 10, "posendf": 10, "nrdf": 1}
#: projection steps from the default kNN start (``init="knn"``): none. Every step of either field,
#: of any size, moved the kNN fill further from the truth, on the CMU validation split (Pose-NDF's
#: density-aware field, 1 step of 0.1: 8.62° -> 8.97° at 25 % hidden; its distance field 8.73°;
#: NRDF's 1 step of 0.5: 9.00°) and on the held-out dance (benchmarks/RESULTS.md, *Completion*):
#: the fill is already a plausible pose by the field (median f 0.032 vs 0.039 for the true val
#: poses) and the projection moves the average to one mode. ``projection_steps=N`` still projects.
KNN_PROJECTION_STEPS = 0
DEFAULT_PROJECTION_STEP_SIZE = 0.5
#: which shipped model a prior given by name loads for completion (``posendf complete``,
#: :func:`evaluate_completion`, the benchmarks): Pose-NDF completes with its density-aware field,
#: whose projection moves the unknown joints towards the common completion rather than stopping
#: at the first plausible one (CMU validation split, ``python benchmarks/calibrate.py --task
#: completion --priors posendf --checkpoint posendf=posendf_plugin/assets/posendf_density.pt``:
#: 11.42° / 11.95° at 25 % / 50 % hidden vs 13.52° / 13.43° with the distance field)
SHIPPED_WEIGHTS: Dict[str, str] = {"posendf": "posendf_density"}
#: default weight of ``‖z‖²`` in VPoser latent completion, chosen on the CMU validation split
#: (``python benchmarks/calibrate.py --task completion --priors none,vposer``; benchmarks/RESULTS.md)
DEFAULT_LATENT_WEIGHT = 0.1


def _completion_prior(prior: Union[str, PosePrior]) -> PosePrior:
    """``prior`` built for completion: a name loads its :data:`SHIPPED_WEIGHTS` model."""
    return load_prior(prior, shipped=SHIPPED_WEIGHTS.get(prior) if isinstance(prior, str) else None)


def parse_mask(spec: Union[str, Sequence[Union[str, int]], torch.Tensor, np.ndarray]) -> torch.Tensor:
    """A ``(21,)`` bool mask (True = unknown) from joint names, body-joint indices (0..20) and
    group names (:data:`JOINT_GROUPS`), as a list or a comma-separated string
    (e.g. ``"left_arm,head"`` or ``"17,19"``); a bool array of shape ``(21,)`` or ``(N, 21)``
    is returned as a tensor.

    Raises:
        ValueError: an unknown name / index out of range (the message lists the valid names),
            or an empty mask.
    """
    if isinstance(spec, torch.Tensor):
        spec = spec.detach().cpu().numpy()
    if isinstance(spec, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in spec):
        spec = np.asarray(spec)  # a list of True / False is a mask, not the indices 0 / 1
        if spec.dtype != bool:
            raise ValueError("a mask list mixes True/False with other values; give 21 booleans (True = unknown) "
                             "or joint names / indices")
    if isinstance(spec, np.ndarray) and spec.dtype == bool:
        m = torch.as_tensor(spec)
        if m.shape[-1] != NUM_BODY_JOINTS or m.ndim > 2:
            raise ValueError(f"a boolean mask must have shape (21,) or (N, 21), got {tuple(m.shape)}")
        return m
    if isinstance(spec, np.ndarray):
        if spec.ndim != 1 or not np.issubdtype(spec.dtype, np.integer):
            raise ValueError(f"a mask array must be boolean of shape (21,) or (N, 21), or a 1-D array of joint "
                             f"indices; got {spec.dtype} of shape {spec.shape}")
        if len(spec) == NUM_BODY_JOINTS and set(np.unique(spec).tolist()) <= {0, 1}:
            raise ValueError("a 21-long array of 0 / 1 is ambiguous (a mask, or the indices 0 and 1?); pass it as "
                             "booleans (array.astype(bool)) or as joint indices")
        spec = spec.tolist()
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    items = [s for s in items if not (isinstance(s, str) and not s)]
    mask = torch.zeros(NUM_BODY_JOINTS, dtype=torch.bool)
    for it in items:
        if isinstance(it, (int, np.integer)) or (isinstance(it, str) and it.lstrip("-").isdigit()):
            i = int(it)
            if not 0 <= i < NUM_BODY_JOINTS:
                raise ValueError(f"body joint index {i} is out of range 0..{NUM_BODY_JOINTS - 1}")
            mask[i] = True
        elif it in JOINT_GROUPS:
            for n in JOINT_GROUPS[it]:
                mask[BODY_JOINT_NAMES.index(n)] = True
        elif it in BODY_JOINT_NAMES:
            mask[BODY_JOINT_NAMES.index(it)] = True
        else:
            raise ValueError(
                f"unknown joint {it!r} in the mask; use body joint names {list(BODY_JOINT_NAMES)}, "
                f"indices 0..20, or groups {sorted(JOINT_GROUPS)}"
            )
    if not bool(mask.any()):
        raise ValueError("the mask selects no joint; name at least one unknown joint (e.g. 'left_arm')")
    return mask


@dataclass
class CompletionResult:
    """Completed poses.

    Attributes:
        quat: ``(N, 21, 4)`` completed poses ``(w, x, y, z)``; known joints unchanged.
        mask: ``(N, 21)`` bool, True where a joint was completed.
        energy_init / energy: ``(N,)`` prior energy of the initial guess / of the result.
    """

    quat: torch.Tensor
    mask: torch.Tensor
    energy_init: torch.Tensor
    energy: torch.Tensor


def complete_poses(
    poses,
    mask,
    prior: Union[str, PosePrior],
    iterations: int = 200,
    lr: float = 0.05,
    init: str = "knn",
    batch_size: int = 4096,
    progress: bool = False,
    parameterisation: str = "auto",
    latent_weight: float = DEFAULT_LATENT_WEIGHT,
    projection_steps: Optional[int] = None,
    projection_step_size: float = DEFAULT_PROJECTION_STEP_SIZE,
    reference=None,
    knn_k: int = DEFAULT_KNN_K,
    knn_start: Optional[torch.Tensor] = None,
) -> CompletionResult:
    """Optimise the unknown joints of ``poses`` to minimise ``prior.energy`` (or, for VPoser,
    fit its latent code to the known joints; see the module docstring).

    Args:
        poses: any body-pose layout (:func:`posendf_plugin.skeleton.to_body_quat`), ``N`` poses.
            The values of unknown joints are used only with ``init="input"``.
        mask: ``(21,)`` or ``(N, 21)`` bool (True = unknown), or a spec for :func:`parse_mask`.
        prior: a prior or its name (a name loads :data:`SHIPPED_WEIGHTS`' model for it, as
            ``posendf complete`` does).
        init: ``"knn"`` (default: unknown joints start at the mean of the ``knn_k`` ``reference``
            poses nearest in the known joints, :func:`posendf_plugin.fitting.knn.knn_fill`),
            ``"mean"`` (the embedded training poses' mean,
            :func:`posendf_plugin.data.default.default_mean_pose`, as the image fit starts),
            ``"identity"`` (unrotated) or ``"input"`` (from ``poses``). In latent mode the code starts at
            ``z = 0`` (``"identity"``, ``"mean"``) or at the posterior mean of the start pose
            (``"input"``, ``"knn"``).
        parameterisation: ``"auto"`` (``"vposer_latent"`` for VPoser, ``"projection"`` for
            distance fields, else ``"axis_angle"``), ``"axis_angle"`` (Adam on the energy over the
            unknown joints, ``iterations`` steps of ``lr``), ``"vposer_latent"`` or
            ``"projection"`` (see the module docstring).
        latent_weight: weight of ``‖z‖²`` in latent mode.
        projection_steps / projection_step_size: masked projection only; ``None`` steps =
            :data:`KNN_PROJECTION_STEPS` from the kNN start, else :data:`DEFAULT_PROJECTION_STEPS`
            of the prior's name.
        reference: ``init="knn"``: the poses to take neighbours from (any layout); ``None`` = the
            embedded training poses (:func:`posendf_plugin.data.default.default_pose_set`).
        knn_k: ``init="knn"``: neighbours averaged.
        knn_start: ``init="knn"``: the fill already computed for these poses and mask
            (:func:`~posendf_plugin.fitting.knn.knn_fill`), e.g. when several priors complete the
            same poses; ``reference`` and ``knn_k`` are then not used.
    """
    if init not in INIT_MODES:
        raise ValueError(f"init must be one of {INIT_MODES}, got {init!r}")
    if not is_count(iterations, 0):
        raise ValueError(f"iterations must be an integer >= 0, got {iterations!r}")
    if not lr > 0:
        raise ValueError(f"lr (the learning rate) must be > 0, got {lr!r}")
    if not is_count(knn_k, 1):
        raise ValueError(f"knn_k must be an integer >= 1, got {knn_k!r}")
    if reference is not None and init != "knn":
        raise ValueError(f"reference is the pose set of init='knn'; with init={init!r} it would be ignored")
    if parameterisation not in COMPLETION_PARAMETERISATIONS:
        raise ValueError(f"parameterisation must be one of {COMPLETION_PARAMETERISATIONS}, got {parameterisation!r}")
    if not latent_weight >= 0:
        raise ValueError(f"latent_weight must be >= 0, got {latent_weight!r}")
    if projection_steps is not None and not is_count(projection_steps, 0) or not projection_step_size > 0:
        raise ValueError(f"projection_steps must be an integer >= 0 and projection_step_size > 0, got "
                         f"{projection_steps!r}, {projection_step_size!r}")
    prior = _completion_prior(prior)
    if projection_steps is None:
        projection_steps = KNN_PROJECTION_STEPS if init == "knn" else \
            DEFAULT_PROJECTION_STEPS.get(getattr(prior, "name", ""), DEFAULT_PROJECTION_STEPS["default"])
    if parameterisation == "auto":
        parameterisation = ("vposer_latent" if getattr(prior, "name", "") == "vposer" else
                            "projection" if _can_project(prior) else "axis_angle")
    if parameterisation == "projection" and not _can_project(prior):
        raise ValueError(f"parameterisation 'projection' needs a distance-field prior (posendf, nrdf), got "
                         f"'{getattr(prior, 'name', type(prior).__name__)}'; use 'axis_angle'")
    if parameterisation == "vposer_latent" and not hasattr(prior, "decode_to_quat"):
        raise ValueError(
            f"parameterisation 'vposer_latent' needs a VPoser prior (decode_to_quat), got "
            f"'{getattr(prior, 'name', type(prior).__name__)}'; use 'axis_angle'"
        )
    warn_pose_units(poses, "poses", stacklevel=3)
    q = to_body_quat(poses, "poses").reshape(-1, NUM_BODY_JOINTS, 4).float()
    N = q.shape[0]
    m = parse_mask(mask)
    m = m.expand(N, NUM_BODY_JOINTS) if m.ndim == 1 else m
    if m.shape != (N, NUM_BODY_JOINTS):
        raise ValueError(f"mask must have shape (21,) or ({N}, 21), got {tuple(m.shape)}")
    if knn_start is not None and init != "knn":
        raise ValueError(f"knn_start is the start of init='knn'; with init={init!r} it would be ignored")
    if init == "knn":  # the start, once for all batches: the known joints as given
        q = _knn_start(q, m, reference, knn_k, knn_start, progress)
        init = "input"
    out_q, e0s, e1s = [], [], []
    from tqdm.auto import tqdm

    for a in tqdm(range(0, N, batch_size), desc="completing", disable=not progress):
        qb, mb = q[a:a + batch_size], m[a:a + batch_size]
        if parameterisation == "vposer_latent":
            res, e0 = _complete_latent(qb, mb, prior, iterations, lr, latent_weight, init)
            out_q.append(res)
            e0s.append(e0)
            with torch.no_grad():
                e1s.append(prior.energy(res).reshape(-1))
            continue
        if parameterisation == "projection":
            # masked, monotone: when the known joints are themselves off the manifold the zero
            # level set is out of reach of the free ones, and a Newton step aimed at f = 0 overshoots
            start = _start_guess(qb, mb, init)
            proj = prior.project(start, free=mb, max_iter=projection_steps, step_size=projection_step_size,
                                 tol=0.0, monotone=True)
            out_q.append(torch.where(mb[..., None], proj.poses, qb))
            with torch.no_grad():
                e0s.append(prior.energy(start).reshape(-1))
            e1s.append(proj.distance.reshape(-1))
            continue
        aa0 = (R.quat_to_axis_angle(qb) if init == "input" else
               R.quat_to_axis_angle(_mean_pose()).expand(qb.shape[:-1] + (3,)).clone() if init == "mean" else
               torch.zeros(qb.shape[:-1] + (3,)))
        # start slightly off zero so that gradients of the axis-angle map are well defined
        aa0 = torch.where(mb[..., None], aa0 + 1e-4, aa0)
        var = torch.nn.Parameter(aa0.clone())

        def compose(v):
            return torch.where(mb[..., None], R.quat_canonical(R.axis_angle_to_quat(v)), qb)

        with torch.no_grad():
            e0 = prior.energy(compose(var)).reshape(-1)
        opt = torch.optim.Adam([var], lr=lr)
        for _ in range(iterations):
            opt.zero_grad()
            prior.energy(compose(var)).sum().backward()
            opt.step()
        with torch.no_grad():
            res = compose(var)
            out_q.append(res)
            e0s.append(e0)
            e1s.append(prior.energy(res).reshape(-1))
    if not out_q:  # no poses: an empty result
        return CompletionResult(q.clone(), m.clone(), q.new_zeros(0), q.new_zeros(0))
    return CompletionResult(torch.cat(out_q), m.clone(), torch.cat(e0s), torch.cat(e1s))


def _mean_pose() -> torch.Tensor:
    """``(21, 4)`` mean training pose (lazy import: data sits below fitting)."""
    from ..data.default import default_mean_pose

    return default_mean_pose().float()


def _knn_start(q: torch.Tensor, m: torch.Tensor, reference, knn_k: int, knn_start=None,
               progress: bool = False) -> torch.Tensor:
    """``(N, 21, 4)``: ``q``'s known joints, the unknown ones (``m``) from ``knn_start`` when given
    (a fill computed before), else filled from ``reference`` (:func:`knn_fill`)."""
    if knn_start is None:  # then read like a fill handed in, so both give the same start to the bit
        knn_start = knn_fill(q, m, _reference(reference), int(knn_k), progress=progress)
    start = to_body_quat(knn_start, "knn_start").reshape(-1, NUM_BODY_JOINTS, 4).float()
    if start.shape != q.shape:
        raise ValueError(f"knn_start holds {tuple(start.shape)}, the poses {tuple(q.shape)}")
    return torch.where(m[..., None], start, q)


def _reference(reference) -> torch.Tensor:
    """``(M, 21, 4)`` float32 neighbours for the kNN start: ``reference`` (any layout) or, for
    ``None``, the embedded training poses (lazy import: data sits below fitting)."""
    if reference is None:
        from ..data.default import default_pose_set

        return default_pose_set("train").quat.float()
    return to_body_quat(reference, "reference").reshape(-1, NUM_BODY_JOINTS, 4).float()


def _can_project(prior: PosePrior) -> bool:
    """Whether ``prior`` implements :meth:`PosePrior.project` (the distance fields do)."""
    return type(prior).project is not PosePrior.project


def _start_guess(qb: torch.Tensor, mb: torch.Tensor, init: str) -> torch.Tensor:
    """``(B, 21, 4)`` start of a completion: the known joints of ``qb``, the unknown ones at the
    identity, the mean pose or (``init="input"``) as given."""
    if init == "input":
        return qb
    start = _mean_pose().to(qb).expand_as(qb) if init == "mean" else qb.new_tensor([1.0, 0.0, 0.0, 0.0]).expand_as(qb)
    return torch.where(mb[..., None], start, qb)


def _complete_latent(qb: torch.Tensor, mb: torch.Tensor, prior: PosePrior, iterations: int, lr: float,
                     weight: float, init: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """VPoser latent completion of one batch ``(B, 21, 4)`` / mask ``(B, 21)``; returns the
    completed poses and the energy of the initial guess (unknown joints at the identity, or
    as given with ``init="input"``)."""
    guess = _start_guess(qb, mb, init)
    with torch.no_grad():
        e0 = prior.energy(guess).reshape(-1)
        z0 = prior.encode_mean(guess)
    z = torch.nn.Parameter(z0.clone() if init == "input" else torch.zeros_like(z0))
    known = (~mb).to(qb.dtype)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(iterations):
        opt.zero_grad()
        dec = prior.decode_to_quat(z).to(qb.dtype)
        data = ((1.0 - (dec * qb).sum(-1) ** 2) * known).sum(-1)
        (data + weight * (z ** 2).sum(-1)).sum().backward()
        opt.step()
    with torch.no_grad():
        dec = prior.decode_to_quat(z).to(qb.dtype)
    return torch.where(mb[..., None], R.quat_canonical(dec), qb), e0


def moved_joints(mask: torch.Tensor) -> torch.Tensor:
    """``(..., 24)`` bool: SMPL joints whose position changes when the masked body joints
    ``(..., 21)`` rotate (their strict descendants in the SMPL tree)."""
    out = torch.zeros(mask.shape[:-1] + (len(SMPL_PARENTS),), dtype=torch.bool)
    for j in range(1, len(SMPL_PARENTS)):
        p = SMPL_PARENTS[j]
        rot_p = mask[..., p - 1] if 1 <= p <= NUM_BODY_JOINTS else torch.zeros_like(out[..., 0])
        out[..., j] = rot_p | out[..., p]
    return out


@dataclass
class CompletionEvaluation:
    """Completion errors on held-out poses, per mask.

    Attributes:
        per_mask: mask name -> ``{"angle_deg", "position_mm", "init_angle_deg",
            "init_position_mm", "energy", "init_energy", "poses"}`` (means over poses; angle
            over the completed joints, position over the joints they move).
        per_pose: mask name -> ``{"angle_deg", "init_angle_deg", "identity_angle_deg"}``: the
            hidden-joint angle of each pose (lists in pose order; their means are ``per_mask``'s when
            every pose hides as many joints),
            for paired comparisons of priors (:func:`posendf_plugin.metrics.paired_ratio_ci`).
        prior: the prior's name. n_poses: poses used. seed: sampling seed.
    """

    per_mask: Dict[str, Dict[str, float]] = field(default_factory=dict)
    per_pose: Dict[str, Dict[str, List[float]]] = field(default_factory=dict)
    prior: str = ""
    n_poses: int = 0
    seed: int = 0

    def to_dict(self) -> dict:
        return {"prior": self.prior, "n_poses": self.n_poses, "seed": self.seed, "per_mask": self.per_mask}


def _joint_angles(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``(N, 21)`` geodesic angle (degrees) between ``pred`` and ``gt`` per joint."""
    return torch.rad2deg(R.quat_geodesic_angle(pred, gt))


def _angle_per_pose(ang: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(N,)`` mean of :func:`_joint_angles` ``ang`` over each pose's hidden joints (0 where none)."""
    return (ang * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def _errors(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor,
            ang: Optional[torch.Tensor] = None) -> Tuple[float, float]:
    """Mean hidden-joint angle (degrees) and mean position error (mm) of the joints the hidden
    ones move; ``ang``: :func:`_joint_angles` of ``pred`` and ``gt`` when already computed."""
    ang = _joint_angles(pred, gt) if ang is None else ang
    angle = float((ang * mask).sum() / mask.sum().clamp(min=1))
    moved = moved_joints(mask)
    d = (body_joint_positions(pred) - body_joint_positions(gt)).norm(dim=-1)  # (N, 24)
    pos = float(1000 * (d * moved).sum() / moved.sum().clamp(min=1))
    return angle, pos


def evaluate_completion(
    prior: Union[str, PosePrior],
    poses=None,
    masks: Sequence[str] = ("left_arm", "right_leg", "spine", "arms"),
    n_poses: int = 500,
    seed: int = 0,
    iterations: int = 200,
    lr: float = 0.05,
    init: str = "knn",
    parameterisation: str = "auto",
    latent_weight: float = DEFAULT_LATENT_WEIGHT,
    projection_steps: Optional[int] = None,
    projection_step_size: float = DEFAULT_PROJECTION_STEP_SIZE,
    reference=None,
    knn_k: int = DEFAULT_KNN_K,
    knn_starts: Optional[Sequence[torch.Tensor]] = None,
) -> CompletionEvaluation:
    """Hide each mask on ``n_poses`` held-out poses, complete them, report the errors.

    Args:
        prior: prior or name.
        poses: held-out poses (any layout); default: the shipped CMU test split.
        masks: specs for :func:`parse_mask`, one evaluation each.
        n_poses: poses drawn without replacement with ``seed`` (all if fewer).
        iterations, lr, init, parameterisation, latent_weight, projection_steps,
            projection_step_size, reference, knn_k: as :func:`complete_poses` (the ``reference``
            must not hold ``poses``: the default, the embedded training split, does not hold the
            shipped test split).
        knn_starts: ``init="knn"``: the fill of each mask already computed for ``poses`` (all of
            them: ``n_poses`` must not subsample), e.g. when several priors are evaluated.
    Each mask's entry also holds ``init_*`` (the start, = the ``none`` prior), ``mean_*`` (the
    mean-pose start) and ``identity_*`` (unrotated hidden joints).
    """
    if isinstance(masks, (str, torch.Tensor, np.ndarray)):
        masks = [masks]  # one mask, not a sequence of them
    if not is_count(n_poses, 1):
        raise ValueError(f"n_poses must be an integer >= 1, got {n_poses!r}")
    prior_m = _completion_prior(prior)
    if poses is None:
        from ..data.default import default_pose_set

        poses = default_pose_set("test").quat
    q = to_body_quat(poses, "poses").reshape(-1, NUM_BODY_JOINTS, 4).float()
    if len(q) == 0:
        raise ValueError("evaluate_completion needs at least one pose; got an empty set")
    rng = np.random.default_rng(seed)
    if n_poses < len(q):
        q = q[torch.as_tensor(np.sort(rng.choice(len(q), n_poses, replace=False)))]
    ev = CompletionEvaluation(prior=getattr(prior_m, "name", ""), n_poses=len(q), seed=seed)
    if reference is not None and init != "knn":
        raise ValueError(f"reference is the pose set of init='knn'; with init={init!r} it would be ignored")
    if knn_starts is not None and (init != "knn" or len(knn_starts) != len(masks)):
        raise ValueError("knn_starts holds one kNN fill per mask, for init='knn'")
    ref = _reference(reference) if init == "knn" and knn_starts is None else None
    for mi, spec in enumerate(masks):
        m = parse_mask(spec).expand(len(q), NUM_BODY_JOINTS)
        start = None if knn_starts is None else knn_starts[mi]
        res = complete_poses(q, m, prior_m, iterations=iterations, lr=lr, init=init,
                             parameterisation=parameterisation, latent_weight=latent_weight,
                             projection_steps=projection_steps, projection_step_size=projection_step_size,
                             reference=ref, knn_k=knn_k, knn_start=start)
        init_q = (_knn_start(q, m, ref, knn_k, start) if init == "knn" else
                  complete_poses(q, m, "none", iterations=0, init=init).quat)
        mean_q = complete_poses(q, m, "none", iterations=0, init="mean").quat
        ident_q = complete_poses(q, m, "none", iterations=0, init="identity").quat
        angles = {k: _joint_angles(x, q) for k, x in (("angle_deg", res.quat), ("init_angle_deg", init_q),
                                                          ("identity_angle_deg", ident_q))}
        a, p = _errors(res.quat, q, m, angles["angle_deg"])
        a0, p0 = _errors(init_q, q, m, angles["init_angle_deg"])
        am, pm = _errors(mean_q, q, m)
        ai, pi = _errors(ident_q, q, m, angles["identity_angle_deg"])
        ev.per_mask[str(spec)] = {
            "angle_deg": a, "position_mm": p, "init_angle_deg": a0, "init_position_mm": p0,
            "mean_angle_deg": am, "mean_position_mm": pm, "identity_angle_deg": ai, "identity_position_mm": pi,
            "energy": float(res.energy.mean()), "init_energy": float(res.energy_init.mean()), "poses": len(q),
        }
        ev.per_pose[str(spec)] = {k: _angle_per_pose(ang, m).tolist() for k, ang in angles.items()}
    return ev
