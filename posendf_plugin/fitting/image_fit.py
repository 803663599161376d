"""SMPLify-style fitting of bodies to the 2D keypoints of one image (:func:`fit_people`) and its
settings (:class:`ImageFitConfig`, ``configs/fit_image.yaml``). The method is described in
:mod:`posendf_plugin.fitting.image`."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from .. import keypoints as KP
from .. import rotations as R
from ..body_model import BodyModel
from ..priors.base import PosePrior
from ..skeleton import quat_to_pose, to_body_quat
from . import losses as L
from .camera import Camera
from .keypoint_files import PersonKeypoints
from .params import BodyPoseVariable, StagedFitConfig, check_stage, load_prior

__all__ = ["ImageStage", "ImageFitConfig", "ImageFitResult", "INIT_POSES", "load_image_fit_config", "fit_people"]

#: values of ``ImageFitConfig.init_pose``
INIT_POSES: Tuple[str, ...] = ("mean", "zero")
_FACE = {"openpose25": (0, 15, 16, 17, 18), "coco17": (0, 1, 2, 3, 4)}
#: (left shoulder, left hip), (right shoulder, right hip) per format
_TORSO_PAIRS = {"openpose25": ((5, 12), (2, 9)), "coco17": ((5, 11), (6, 12))}
_TORSO = {"openpose25": (1, 2, 5, 8, 9, 12), "coco17": (5, 6, 11, 12)}


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageStage:
    """One stage of the pose fitting.

    Attributes:
        iterations: Adam steps.
        prior_weight: weight of the prior term (times the prior's ``prior_scale``).
        shape_weight: weight of ``‖β‖²``.
        bend_weight: weight of SMPLify's elbow/knee angle term.
        pose_l2_weight: weight of ``‖θ‖²`` on the axis-angle body pose (0 = off).
        lr: Adam learning rate.
    """

    iterations: int = 40
    prior_weight: float = 1.0
    shape_weight: float = 5.0
    bend_weight: float = 5.0
    pose_l2_weight: float = 0.0
    lr: float = 0.05

    def __post_init__(self) -> None:
        check_stage(self, ("prior_weight", "shape_weight", "bend_weight", "pose_l2_weight"))


_DEFAULT_STAGES = (
    ImageStage(40, prior_weight=4.0, shape_weight=20.0, bend_weight=0.0, pose_l2_weight=0.0, lr=0.05),
    ImageStage(40, prior_weight=1.0, shape_weight=5.0, bend_weight=0.0, pose_l2_weight=0.0, lr=0.05),
    ImageStage(40, prior_weight=0.25, shape_weight=2.0, bend_weight=0.0, pose_l2_weight=0.0, lr=0.03),
)
#: multiplier of the prior term per prior, so one schedule serves every prior; chosen on the
#: validation subject of the synthetic image benchmark (benchmarks/README.md, "Calibration").
_DEFAULT_PRIOR_SCALE = {"none": 0.0, "posendf": 100.0, "nrdf": 100.0, "vposer": 3.0, "gmm": 10.0}
#: priors whose weight is not annealed over the stages (``ImageFitConfig.prior_anneal``)
_DEFAULT_PRIOR_ANNEAL: Dict[str, bool] = {"posendf": False}
#: shipped model per prior name for image fitting (``ImageFitConfig.shipped_weights``)
_DEFAULT_SHIPPED_WEIGHTS: Dict[str, str] = {"posendf": "posendf_density"}


@dataclass(frozen=True)
class ImageFitConfig(StagedFitConfig):
    """Settings of :func:`fit_people` (YAML: ``configs/fit_image.yaml``).

    Attributes:
        focal_length: pixels, used when ``fit_people`` gets no ``camera``; ``None`` uses the image
            diagonal. The principal point is then the image centre.
        camera_iterations / camera_lr: the camera (root orientation + translation) stage.
        try_flipped: also try the person facing away from the camera and keep the better fit.
        stages: the pose stages (:class:`ImageStage`), in order.
        gmof_sigma: Geman-McClure scale, in percent of the person's keypoint box size.
        approx_weight: weight of keypoints that are not the same landmark on the body model
            (hips, OpenPose neck; :data:`posendf_plugin.keypoints.APPROXIMATE_KEYPOINTS`).
        face_weight: weight of nose / eyes / ears.
        min_keypoints: people with fewer keypoints of confidence > 0 are skipped.
        pose_parameterisation: ``"auto"`` (VPoser latent space for ``vposer``, else
            axis-angle), ``"axis_angle"`` or ``"vposer_latent"``.
        prior_scale: per-prior multiplier of ``prior_weight``; unknown priors use 1.
        prior_anneal: per prior, whether its weight follows the stages' decreasing
            ``prior_weight`` (SMPLify's annealing; priors not listed do) or keeps the first
            stage's weight throughout (``false``: the density-aware Pose-NDF, whose preference
            among poses that explain the keypoints equally is what resolves depth ambiguities).
        shipped_weights: which of the package's models a prior given by name (and no
            checkpoint) loads for image fitting (:func:`~posendf_plugin.fitting.image_batch.fit_image_dir`,
            ``posendf fit-image``, the benchmarks): ``posendf`` → ``posendf_density``, the
            density-aware Pose-NDF (:data:`posendf_plugin.prior.DEFAULT_WEIGHTS`).
        num_betas: shape coefficients fitted.
        latent_lr_scale: the VPoser latent code's learning rate is the stage's times this.
        latent_init: where the VPoser latent code starts: ``"encode"`` (the posterior mean of
            the start pose) or ``"zero"`` (``z = 0``, SMPLify-X); see
            :class:`~posendf_plugin.fitting.params.BodyPoseVariable`.
        init_pose: the body pose the pose stages start from: ``"mean"`` (the mean pose of the
            embedded training poses, :func:`posendf_plugin.data.default.default_mean_pose`, as
            SMPLify starts from its prior's mean) or ``"zero"`` (the T-pose, SMPLify-X's start
            without VPoser). ``fit_people(init_body_pose=...)`` overrides it per person.
    """

    focal_length: Optional[float] = 5000.0
    camera_iterations: int = 40
    camera_lr: float = 0.05
    try_flipped: bool = True
    stages: Tuple[ImageStage, ...] = _DEFAULT_STAGES
    gmof_sigma: float = 30.0
    approx_weight: float = 0.5
    face_weight: float = 0.5
    min_keypoints: int = 4
    pose_parameterisation: str = "auto"
    prior_scale: Mapping[str, float] = field(default_factory=lambda: dict(_DEFAULT_PRIOR_SCALE))
    prior_anneal: Mapping[str, bool] = field(default_factory=lambda: dict(_DEFAULT_PRIOR_ANNEAL))
    shipped_weights: Mapping[str, str] = field(default_factory=lambda: dict(_DEFAULT_SHIPPED_WEIGHTS))
    num_betas: int = 10
    latent_lr_scale: float = 3.0
    latent_init: str = "encode"
    init_pose: str = "mean"

    STAGE: ClassVar[type] = ImageStage

    def __post_init__(self) -> None:
        if self.focal_length is not None and not self.focal_length > 0:
            raise ValueError(f"focal_length must be positive or null (image diagonal), got {self.focal_length}")
        if not (isinstance(self.camera_iterations, int) and self.camera_iterations >= 0):
            raise ValueError(f"camera_iterations must be an integer >= 0, got {self.camera_iterations!r}")
        if not self.camera_lr > 0 or not self.gmof_sigma > 0 or not self.latent_lr_scale > 0:
            raise ValueError("camera_lr, gmof_sigma and latent_lr_scale must be positive")
        self.check_staging()
        for k in ("approx_weight", "face_weight"):
            if not 0 <= getattr(self, k):
                raise ValueError(f"{k} must be >= 0, got {getattr(self, k)}")
        if not (isinstance(self.min_keypoints, int) and self.min_keypoints >= 2):
            raise ValueError(f"min_keypoints must be an integer >= 2, got {self.min_keypoints!r}")
        if not (isinstance(self.num_betas, int) and 0 <= self.num_betas <= 300):
            raise ValueError(f"num_betas must be an integer in [0, 300], got {self.num_betas!r}")
        if self.init_pose not in INIT_POSES:
            raise ValueError(f"init_pose must be one of {INIT_POSES}, got {self.init_pose!r}")
        if not isinstance(self.prior_anneal, Mapping) or not all(isinstance(v, bool) for v in self.prior_anneal.values()):
            raise ValueError(f"prior_anneal must map prior names to true / false, got {self.prior_anneal!r}")
        if not isinstance(self.shipped_weights, Mapping) or not all(isinstance(v, str) for v in self.shipped_weights.values()):
            raise ValueError(f"shipped_weights must map prior names to shipped model names, got {self.shipped_weights!r}")

    def stage_prior_weight(self, prior_name: str, index: int) -> float:
        """Weight of the prior term in stage ``index``: the stage's ``prior_weight`` (the first
        stage's for a prior with ``prior_anneal: false``) times the prior's ``prior_scale``."""
        stage = self.stages[index] if self.prior_anneal.get(prior_name, True) else self.stages[0]
        return stage.prior_weight * self.scale_for(prior_name)



def load_image_fit_config(path: Union[str, Path]) -> ImageFitConfig:
    """Read ``configs/fit_image.yaml``-style YAML (unknown keys are an error)."""
    return ImageFitConfig.load(path)


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------


@dataclass
class ImageFitResult:
    """Fitted bodies of the people of one image (``P`` people kept).

    Attributes:
        body_pose: ``(P, 63)`` axis-angle of the 21 body joints.
        global_orient: ``(P, 3)`` root axis-angle, in the camera frame.
        betas: ``(P, n)``. transl: ``(P, 3)`` body-model translation (camera frame, metres).
        focal_length: ``(2,)`` px ``(fx, fy)``. camera_center: ``(2,)`` px ``(cx, cy)``.
        keypoints_2d: ``(P, K, 3)`` input. projected_2d: ``(P, K, 2)`` fitted keypoints.
        reprojection_error_px: ``(P,)`` mean pixel error over keypoints with confidence > 0.
        person_index: ``(P,)`` index of each fitted person in the input.
        skipped: ``(index, reason)`` of people not fitted.
        vertices: ``(P, V, 3)`` camera-frame meshes. faces: ``(F, 3)``.
        losses: the loss terms at the final pose, summed over people.
        image_size: ``(width, height)`` px of the fitted image.
    """

    body_pose: torch.Tensor
    global_orient: torch.Tensor
    betas: torch.Tensor
    transl: torch.Tensor
    focal_length: torch.Tensor
    camera_center: torch.Tensor
    keypoints_2d: torch.Tensor
    projected_2d: torch.Tensor
    reprojection_error_px: torch.Tensor
    person_index: torch.Tensor
    keypoint_format: str
    model_kind: str
    prior: str
    skipped: List[Tuple[int, str]]
    vertices: torch.Tensor
    faces: np.ndarray
    losses: Dict[str, float] = field(default_factory=dict)
    image_size: Optional[Tuple[int, int]] = None


def _keypoint_weights(fmt: str, cfg: ImageFitConfig) -> torch.Tensor:
    names = KP.keypoint_names(fmt)
    w = torch.ones(len(names))
    for i, n in enumerate(names):
        if n in KP.APPROXIMATE_KEYPOINTS[fmt]:
            w[i] = cfg.approx_weight
    w[list(_FACE[fmt])] = cfg.face_weight
    return w


def _facing_root(flipped: bool) -> torch.Tensor:
    """Root axis-angle of an upright body facing the camera (``R_x(π)``) or facing away
    (``R_y(π) R_x(π)`` = ``R_z(π)``)."""
    return torch.tensor([0.0, 0.0, math.pi]) if flipped else torch.tensor([math.pi, 0.0, 0.0])


class _Translation(torch.nn.Module):
    """Camera-frame translation through dimensionless variables (well scaled for Adam):
    the torso centre's image position is ``c2d + s * (a, b)`` (``s`` = person size, px) and its
    depth ``z0 * exp(l)``."""

    def __init__(self, c2d, s, z0, m, focal, center):
        super().__init__()
        n = c2d.shape[0]
        self.ab = torch.nn.Parameter(torch.zeros(n, 2))
        self.logz = torch.nn.Parameter(torch.zeros(n))
        for k, v in dict(c2d=c2d, s=s, z0=z0, m=m, focal=focal, center=center).items():
            self.register_buffer(k, v)

    def forward(self) -> torch.Tensor:
        z = self.z0 * torch.exp(self.logz)
        uv = self.c2d + self.s[:, None] * self.ab
        xy = (uv - self.center) * z[:, None] / self.focal
        return torch.cat((xy, z[:, None]), -1) - self.m


def _torso_depth(kp: torch.Tensor, rest_kp: torch.Tensor, fmt: str, focal: float, size2d: torch.Tensor) -> torch.Tensor:
    """Initial depth per person from the shoulder-hip lengths (or the box size if missing)."""
    out = []
    for p in range(kp.shape[0]):
        l2, l3 = [], []
        for a, b in _TORSO_PAIRS[fmt]:
            if kp[p, a, 2] > 0 and kp[p, b, 2] > 0:
                l2.append(float((kp[p, a, :2] - kp[p, b, :2]).norm()))
                l3.append(float((rest_kp[a] - rest_kp[b]).norm()))
        if l2 and max(l2) > 1.0:
            z = focal * (sum(l3) / len(l3)) / max(sum(l2) / len(l2), 1.0)
        else:  # no torso: compare the box size with the body's extent over the same keypoints
            vis = kp[p, :, 2] > 0
            ext = (rest_kp[vis].max(0).values - rest_kp[vis].min(0).values)[:2].max()
            z = focal * float(ext.clamp(min=0.3)) / max(float(size2d[p]), 1.0)
        out.append(z)
    return torch.tensor(out)


def _initial_pose(init_body_pose, mode: str, n_people: int) -> torch.Tensor:
    """``(n_people, 63)`` axis-angle start pose: ``init_body_pose`` (any layout) or ``mode``."""
    if init_body_pose is not None:
        q = to_body_quat(init_body_pose, "init_body_pose")
        if q.ndim != 3 or q.shape[0] != n_people:
            raise ValueError(
                f"init_body_pose must hold one pose per person ({n_people}), got shape "
                f"{tuple(torch.as_tensor(init_body_pose).shape)}"
            )
        return quat_to_pose(q.float(), 63)
    if mode == "zero":
        return torch.zeros(n_people, 63)
    from ..data.default import default_mean_pose

    return quat_to_pose(default_mean_pose()[None], 63).expand(n_people, 63).clone()


def _pose_l2(pose: torch.Tensor) -> torch.Tensor:
    """``(P, 63) -> (P,)`` squared norm of the axis-angle body pose."""
    return (pose ** 2).sum(-1)


def fit_people(
    people: PersonKeypoints,
    image_size: Tuple[int, int],
    body_model: BodyModel,
    prior: Union[str, PosePrior],
    config: ImageFitConfig = ImageFitConfig(),
    progress: bool = False,
    init_body_pose=None,
    camera: Optional[Camera] = None,
) -> ImageFitResult:
    """Fit one body per person of one image (see the module docstring).

    Args:
        people: keypoints (:func:`read_keypoint_json`).
        image_size: ``(width, height)`` in pixels.
        body_model: e.g. :func:`posendf_plugin.body_model.get_body_model`.
        prior: a built prior, or its name (loaded as ``posendf fit-image`` loads it:
            :func:`posendf_plugin.fitting.params.load_prior` with ``config.shipped_weights``,
            so ``"posendf"`` is the density-aware field).
        init_body_pose: optional start pose per input person, any supported layout with a
            leading dimension of the number of people (e.g. a regressor's output, as SPIN
            starts SMPLify); default: ``config.init_pose``.
        camera: known intrinsics (:class:`~posendf_plugin.fitting.camera.Camera`); default:
            ``config.focal_length`` and the image centre.
    Raises:
        ValueError: no person has at least ``config.min_keypoints`` keypoints, or
            ``init_body_pose`` does not have one pose per person.
    """
    if isinstance(prior, str):
        prior = load_prior(prior, shipped=config.shipped_weights.get(prior))
    fmt = people.fmt
    W, H = int(image_size[0]), int(image_size[1])
    kp_all = torch.as_tensor(people.keypoints, dtype=torch.float32)
    if kp_all.ndim != 3 or kp_all.shape[-1] != 3 or kp_all.shape[1] != len(KP.keypoint_names(fmt)):
        raise ValueError(f"keypoints must have shape (P, {len(KP.keypoint_names(fmt))}, 3), got {tuple(kp_all.shape)}")
    nvis = (kp_all[..., 2] > 0).sum(-1)
    keep = [p for p in range(kp_all.shape[0]) if int(nvis[p]) >= config.min_keypoints]
    skipped = [(p, f"only {int(nvis[p])} keypoints with confidence > 0 (need {config.min_keypoints})")
               for p in range(kp_all.shape[0]) if p not in keep]
    if not keep:
        raise ValueError(
            f"no person with at least {config.min_keypoints} keypoints of confidence > 0 "
            f"({kp_all.shape[0]} people in the input)"
        )
    kp = kp_all[keep]
    P = kp.shape[0]
    dtype = body_model.dtype
    if camera is not None:
        if not isinstance(camera, Camera):
            raise TypeError(f"camera must be a posendf_plugin.fitting.camera.Camera, got {type(camera).__name__}")
        focal = torch.tensor(camera.focal_length, dtype=torch.float32)
        center = torch.tensor(camera.centre((W, H)), dtype=torch.float32)
        focal_val = math.sqrt(camera.focal_length[0] * camera.focal_length[1])
    else:
        focal_val = float(config.focal_length) if config.focal_length is not None else math.hypot(W, H)
        focal = torch.tensor([focal_val, focal_val])
        center = torch.tensor([W / 2.0, H / 2.0])
    conf = kp[..., 2]
    vis = conf > 0
    big = torch.where(vis[..., None], kp[..., :2], torch.full_like(kp[..., :2], float("inf")))
    small = torch.where(vis[..., None], kp[..., :2], torch.full_like(kp[..., :2], -float("inf")))
    lo, hi = big.min(1).values, small.max(1).values
    size2d = (hi - lo).max(-1).values.clamp(min=10.0)  # (P,) px
    scale = size2d / 100.0  # residuals in percent of the person's size
    kw = _keypoint_weights(fmt, config)
    nb = config.num_betas

    init = _initial_pose(init_body_pose, config.init_pose, kp_all.shape[0])[keep]  # (P, 63)
    with torch.no_grad():
        rest_kp = body_model(keypoints=fmt).keypoints.reshape(-1, 3).to(torch.float32)
        init_kp = body_model(body_pose=init.to(dtype), keypoints=fmt).keypoints.to(torch.float32)  # (P, K, 3)
    z0 = _torso_depth(kp, rest_kp, fmt, focal_val, size2d)
    torso = list(_TORSO[fmt])
    tvis = vis[:, torso]
    c2d = torch.stack([
        (kp[p, torso, :2][tvis[p]].mean(0) if bool(tvis[p].any()) else kp[p, :, :2][vis[p]].mean(0))
        for p in range(P)
    ])

    # --- camera stage, both orientation hypotheses --------------------------------------------------
    hyps = [False, True] if config.try_flipped else [False]
    nh = len(hyps)
    go0 = torch.stack([_facing_root(f) for f in hyps for _ in range(P)])  # (nh*P, 3)
    rep = lambda t: t.repeat((nh,) + (1,) * (t.ndim - 1))  # noqa: E731
    # with the start pose fixed the body is rigid: the model rotates it about the pelvis (joint 0)
    with torch.no_grad():
        pelvis = body_model.rest_joints().reshape(-1, 3)[0].to(torch.float32)
    rest_rel = rep(init_kp - pelvis)  # (nh*P, K, 3)

    def posed(orient: torch.Tensor) -> torch.Tensor:
        return rest_rel @ R.axis_angle_to_matrix(orient).transpose(-1, -2) + pelvis

    kp3 = posed(go0)
    tw = torch.zeros_like(conf)
    tw[:, torso] = 1.0
    use_torso = (tvis.sum(-1) >= 3)[:, None]
    cam_w = torch.where(use_torso, tw * kw, kw.expand_as(conf))  # torso only when enough of it
    m = torch.stack([
        kp3[h * P + p, torso][tvis[p]].mean(0) if bool(tvis[p].any()) else kp3[h * P + p][vis[p]].mean(0)
        for h in range(nh) for p in range(P)
    ])
    trans = _Translation(rep(c2d), rep(size2d), rep(z0), m, focal, center)
    go = torch.nn.Parameter(go0.clone())
    opt = torch.optim.Adam([go, *trans.parameters()], lr=config.camera_lr)
    kpH, confH, scaleH, wH = rep(kp), rep(conf), rep(scale), rep(cam_w)

    def cam_loss():
        pts = posed(go) + trans().unsqueeze(-2)
        proj = L.perspective_projection(pts, focal, center)
        return L.reprojection_loss(proj, kpH[..., :2], confH, config.gmof_sigma, wH, scaleH)

    for _ in range(config.camera_iterations):
        opt.zero_grad()
        cam_loss().sum().backward()
        opt.step()
    with torch.no_grad():
        lc = cam_loss().reshape(nh, P)
        best = lc.argmin(0)  # (P,)
        pick = best * P + torch.arange(P)
        go_init = go.detach()[pick]
        t_state = {k: v.detach()[pick] for k, v in trans.state_dict().items() if k not in ("focal", "center")}

    # --- pose stages ----------------------------------------------------------------------------------
    trans = _Translation(c2d, size2d, z0, t_state["m"], focal, center)
    with torch.no_grad():
        trans.ab.copy_(t_state["ab"])
        trans.logz.copy_(t_state["logz"])
    go = torch.nn.Parameter(go_init.clone())
    betas = torch.nn.Parameter(torch.zeros(P, nb))
    pose_var = BodyPoseVariable(init, prior, config.pose_parameterisation, config.latent_init)
    pname = getattr(prior, "name", "")
    terms: Dict[str, torch.Tensor] = {}

    def pose_loss(stage: ImageStage, prior_w: float) -> torch.Tensor:
        pose = pose_var.pose()
        out = body_model(body_pose=pose.to(dtype), global_orient=go.to(dtype), betas=betas.to(dtype) if nb else None,
                         transl=trans().to(dtype), keypoints=fmt)
        proj = L.perspective_projection(out.keypoints.to(torch.float32), focal, center)
        terms["data"] = L.reprojection_loss(proj, kp[..., :2], conf, config.gmof_sigma, kw, scale)
        terms["prior"] = pose_var.prior_energy(pose) if prior_w > 0 else pose.new_zeros(P)
        terms["shape"] = L.shape_prior(betas) if nb else pose.new_zeros(P)
        total = terms["data"] + prior_w * terms["prior"] + stage.shape_weight * terms["shape"]
        # optional pose terms only when weighted (off by default); otherwise measured once at the end
        for key, weight, term in (("bend", stage.bend_weight, L.bend_penalty), ("pose_l2", stage.pose_l2_weight, _pose_l2)):
            if weight > 0:
                terms[key] = term(pose)
                total = total + weight * terms[key]
            else:
                terms.pop(key, None)
        return total.sum()

    params = [go, betas, *trans.parameters()]
    pose_params = [p for p in pose_var.parameters() if p.requires_grad]
    lr_scale = config.latent_lr_scale if pose_var.mode == "vposer_latent" else 1.0
    total_iters = sum(s.iterations for s in config.stages)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_iters, desc="fitting", leave=False)
    for si, stage in enumerate(config.stages):
        prior_w = config.stage_prior_weight(pname, si)
        opt = torch.optim.Adam([{"params": params}, {"params": pose_params, "lr": stage.lr * lr_scale}], lr=stage.lr)
        for _ in range(stage.iterations):
            opt.zero_grad()
            loss = pose_loss(stage, prior_w)
            loss.backward()
            opt.step()
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()

    with torch.no_grad():
        pose = pose_var.pose()
        out = body_model(body_pose=pose.to(dtype), global_orient=go.to(dtype), betas=betas.to(dtype) if nb else None,
                         transl=trans().to(dtype), keypoints=fmt)
        proj = L.perspective_projection(out.keypoints.to(torch.float32), focal, center)
        err = ((proj - kp[..., :2]).norm(dim=-1) * vis).sum(-1) / vis.sum(-1).clamp(min=1)
        terms.setdefault("bend", L.bend_penalty(pose))
        terms.setdefault("pose_l2", _pose_l2(pose))
        final_terms = {k: float(v.sum()) for k, v in terms.items()}
        res = ImageFitResult(
            body_pose=pose.detach().float(), global_orient=go.detach().float(), betas=betas.detach().float(),
            transl=trans().detach().float(), focal_length=focal, camera_center=center,
            keypoints_2d=kp, projected_2d=proj.float(), reprojection_error_px=err.float(),
            person_index=torch.as_tensor(keep), keypoint_format=fmt, model_kind=body_model.model_type,
            prior=getattr(prior, "name", type(prior).__name__), skipped=skipped,
            vertices=out.vertices.float(), faces=body_model.faces, losses=final_terms, image_size=(W, H),
        )
    return res


