"""SMPLify-style 3D body fitting to 2D keypoints (``posendf fit-image``).

Input: a folder of ``<name>.jpg`` (or ``.jpeg`` / ``.png``) images, each with ``<name>.json``
next to it — OpenPose output (``people[i].pose_keypoints_2d``: 25 x (x, y, confidence) for
BODY_25; 17 x 3 values are read as COCO-17) or a per-image COCO-17 annotation list — or one
COCO keypoint annotation file (``images`` + ``annotations``, visibility ``v > 0`` counts as
confidence 1) given with ``coco_json``.

Fitting, for all people of an image at once (:func:`fit_people`):

1. **Camera.** Fixed pinhole camera, focal length 5000 px as in SMPLify (or the image diagonal,
   ``focal_length: null``), principal point at the image centre, camera rotation identity.
   Each person's depth is initialised from the torso: ``z = f * L3d / L2d`` with ``L`` the mean
   shoulder-to-hip length of the rest body (3D) and of the keypoints (2D).
2. **Orientation.** Two hypotheses per person (facing the camera, facing away); a camera stage
   fits root orientation and translation to the torso keypoints for both, and the better one is
   kept (SMPLify does the same).
3. **Staged fitting** of body pose, shape, root orientation and translation with Adam, starting
   from the mean pose of the embedded training poses (``init_pose``; SMPLify also starts from
   its prior's mean — from the T-pose, arms and legs land in the wrong depth branch far more
   often): robust (Geman-McClure) reprojection error + ``w_prior * prior`` + ``w_shape * ‖β‖²``
   (+ optional SMPLify elbow/knee angle and L2 pose terms); the weights decrease stage by stage
   (:class:`ImageFitConfig`, ``configs/fit_image.yaml``). Residuals are measured in percent of
   the person's keypoint bounding-box size, so the weights do not depend on image resolution.

The prior is plugged in by name (``none``, ``posendf``, ``nrdf``, ``vposer``, ``gmm``); VPoser is
used in latent space by default (optimise ``z``, decode, penalise ``‖z‖²``). Keypoints with
confidence 0 are ignored, so partly visible people still fit.

Output per image: ``<name>.npz`` (see :data:`NPZ_KEYS`) and ``<name>.png`` (the fitted meshes
over the image, plus a side view); ``summary.json`` lists fitted and skipped inputs and is
rewritten after every image, so an interrupted batch keeps what it wrote.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .. import keypoints as KP
from .. import rotations as R
from ..body_model import BodyModel, get_body_model
from ..io import atomic_path, save_json, save_npz
from ..priors.base import PosePrior
from ..skeleton import quat_to_pose, to_body_quat
from . import losses as L
from .params import BodyPoseVariable, StagedFitConfig, check_stage, load_prior

__all__ = [
    "ImageStage",
    "ImageFitConfig",
    "PersonKeypoints",
    "ImageFitResult",
    "ImageDirSummary",
    "NPZ_KEYS",
    "IMAGE_EXTENSIONS",
    "load_image_fit_config",
    "read_keypoint_json",
    "read_coco_annotations",
    "fit_people",
    "fit_image_dir",
    "render_fit",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: Tuple[str, ...] = (".jpg", ".jpeg", ".png")
#: keys of the per-image ``.npz``
NPZ_KEYS: Tuple[str, ...] = (
    "body_pose", "body_quat", "global_orient", "betas", "transl", "focal_length", "camera_center",
    "camera_rotation", "keypoints_2d", "projected_2d", "reprojection_error_px", "person_index",
    "keypoint_format", "model_kind", "prior", "image_size", "config",
)
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
_DEFAULT_PRIOR_SCALE = {"none": 0.0, "posendf": 3000.0, "nrdf": 100.0, "vposer": 1.0, "gmm": 5.0}


@dataclass(frozen=True)
class ImageFitConfig(StagedFitConfig):
    """Settings of :func:`fit_people` (YAML: ``configs/fit_image.yaml``).

    Attributes:
        focal_length: pixels; ``None`` uses the image diagonal.
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



def load_image_fit_config(path: Union[str, Path]) -> ImageFitConfig:
    """Read ``configs/fit_image.yaml``-style YAML (unknown keys are an error)."""
    return ImageFitConfig.load(path)


# ---------------------------------------------------------------------------------------------
# Reading keypoints
# ---------------------------------------------------------------------------------------------


@dataclass
class PersonKeypoints:
    """2D keypoints of the people in one image.

    Attributes:
        keypoints: ``(P, K, 3)`` float32 ``(x, y, confidence)``; confidence 0 = missing.
        fmt: ``"openpose25"`` or ``"coco17"``.
        ids: a label per person (OpenPose index or COCO annotation id).
    """

    keypoints: np.ndarray
    fmt: str
    ids: List[str]


def _people_array(rows: Sequence[Sequence[float]], where: str) -> Tuple[np.ndarray, str]:
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise ValueError(f"{where}: people have keypoint lists of different lengths {sorted(lengths)}")
    n = lengths.pop()
    fmt = {75: "openpose25", 51: "coco17"}.get(n)
    if fmt is None:
        raise ValueError(
            f"{where}: a keypoint list has {n} values; expected 75 (OpenPose BODY_25: 25 x (x, y, c)) "
            "or 51 (COCO-17: 17 x (x, y, v))"
        )
    try:
        arr = np.asarray(rows, np.float64).reshape(len(rows), n // 3, 3)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: keypoint values must be numbers ({e})") from e
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: keypoints contain NaN or Inf")
    if fmt == "coco17":  # COCO visibility flag: 0 = not labelled, 1/2 = labelled
        if np.all(np.isin(arr[..., 2], (0, 1, 2))):
            arr[..., 2] = (arr[..., 2] > 0).astype(np.float64)
    arr[..., 2] = np.clip(arr[..., 2], 0.0, 1.0)
    return arr.astype(np.float32), fmt


def read_keypoint_json(path: Union[str, Path], image_name: Optional[str] = None) -> PersonKeypoints:
    """Read one keypoint file.

    Accepted layouts:

    * OpenPose: ``{"people": [{"pose_keypoints_2d": [x, y, c, ...]}, ...]}`` (75 values =
      BODY_25; 51 values = COCO-17 order). A person may also carry ``"keypoints"`` instead.
    * COCO results / annotations: a list ``[{"keypoints": [51 values], ...}, ...]``, or a
      COCO file ``{"images": [...], "annotations": [...]}`` (people of ``image_name`` only).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, an unknown layout, or no people in it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such keypoint file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if isinstance(data, dict) and "annotations" in data and "images" in data:
        per_image = read_coco_annotations(path)
        name = image_name or path.with_suffix(".jpg").name
        if name not in per_image:
            raise ValueError(f"{path}: no annotated people for image {name!r} in this COCO file")
        return per_image[name]
    if isinstance(data, dict) and "people" in data:
        people = data["people"]
        if not isinstance(people, list):
            raise ValueError(f"{path}: 'people' must be a list, got {type(people).__name__}")
        rows, ids = [], []
        for i, p in enumerate(people):
            if not isinstance(p, dict):
                raise ValueError(f"{path}: people[{i}] must be an object, got {type(p).__name__}")
            kp = p.get("pose_keypoints_2d", p.get("keypoints"))
            if kp is None:
                raise ValueError(f"{path}: people[{i}] has no 'pose_keypoints_2d'; found keys {sorted(p)}")
            rows.append(kp)
            ids.append(str(p.get("person_id", i)) if not isinstance(p.get("person_id"), list) else str(i))
    elif isinstance(data, list) and all(isinstance(p, dict) for p in data):
        rows = [p.get("keypoints") for p in data]
        if any(r is None for r in rows):
            raise ValueError(f"{path}: every entry of a COCO keypoint list needs 'keypoints' (17 x (x, y, v))")
        ids = [str(p.get("id", i)) for i, p in enumerate(data)]
    else:
        raise ValueError(
            f"{path}: unknown keypoint layout; expected OpenPose JSON ({{'people': [{{'pose_keypoints_2d': "
            "[...]}}]}}), a COCO keypoint list or a COCO annotation file"
        )
    if not rows:
        raise ValueError(f"{path}: no people detected (empty list)")
    arr, fmt = _people_array(rows, str(path))
    return PersonKeypoints(arr, fmt, ids)


def read_coco_annotations(path: Union[str, Path]) -> Dict[str, PersonKeypoints]:
    """People of every image of a COCO keypoint annotation file, by image file name.

    Crowd annotations are skipped; annotations without any labelled keypoint are kept (with all
    confidences 0) so that the fitting reports them as skipped people.

    Raises:
        FileNotFoundError / ValueError: missing, not JSON, or not a COCO keypoint file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such COCO annotation file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise ValueError(f"{path}: not a COCO annotation file (needs 'images' and 'annotations')")
    names = {}
    for im in data["images"]:
        if "id" not in im or "file_name" not in im:
            raise ValueError(f"{path}: every image needs 'id' and 'file_name'")
        names[im["id"]] = im["file_name"]
    rows: Dict[str, list] = {}
    for a in data["annotations"]:
        if a.get("iscrowd", 0) or "keypoints" not in a:
            continue
        if a.get("image_id") not in names:
            raise ValueError(f"{path}: annotation {a.get('id')} refers to unknown image_id {a.get('image_id')}")
        rows.setdefault(names[a["image_id"]], []).append(a)
    out = {}
    for name, anns in rows.items():
        arr, fmt = _people_array([a["keypoints"] for a in anns], f"{path} ({name})")
        if fmt != "coco17":
            raise ValueError(f"{path}: COCO keypoints must have 51 values, got {arr.shape[1] * 3}")
        out[name] = PersonKeypoints(arr, fmt, [str(a.get("id", i)) for i, a in enumerate(anns)])
    return out


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
        focal_length: ``(2,)`` px. camera_center: ``(2,)`` px.
        keypoints_2d: ``(P, K, 3)`` input. projected_2d: ``(P, K, 2)`` fitted keypoints.
        reprojection_error_px: ``(P,)`` mean pixel error over keypoints with confidence > 0.
        person_index: ``(P,)`` index of each fitted person in the input.
        skipped: ``(index, reason)`` of people not fitted.
        vertices: ``(P, V, 3)`` camera-frame meshes. faces: ``(F, 3)``.
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
    prior: PosePrior,
    config: ImageFitConfig = ImageFitConfig(),
    progress: bool = False,
    init_body_pose=None,
) -> ImageFitResult:
    """Fit one body per person of one image (see the module docstring).

    Args:
        people: keypoints (:func:`read_keypoint_json`).
        image_size: ``(width, height)`` in pixels.
        body_model: e.g. :func:`posendf_plugin.body_model.get_body_model`.
        prior: a built prior (:func:`posendf_plugin.fitting.params.load_prior`).
        init_body_pose: optional start pose per input person, any supported layout with a
            leading dimension of the number of people (e.g. a regressor's output, as SPIN
            starts SMPLify); default: ``config.init_pose``.
    Raises:
        ValueError: no person has at least ``config.min_keypoints`` keypoints, or
            ``init_body_pose`` does not have one pose per person.
    """
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
    pscale = config.scale_for(getattr(prior, "name", ""))
    terms: Dict[str, torch.Tensor] = {}

    def pose_loss(stage: ImageStage) -> torch.Tensor:
        pose = pose_var.pose()
        out = body_model(body_pose=pose.to(dtype), global_orient=go.to(dtype), betas=betas.to(dtype) if nb else None,
                         transl=trans().to(dtype), keypoints=fmt)
        proj = L.perspective_projection(out.keypoints.to(torch.float32), focal, center)
        terms["data"] = L.reprojection_loss(proj, kp[..., :2], conf, config.gmof_sigma, kw, scale)
        terms["prior"] = pose_var.prior_energy(pose) if stage.prior_weight * pscale > 0 else pose.new_zeros(P)
        terms["shape"] = L.shape_prior(betas) if nb else pose.new_zeros(P)
        total = terms["data"] + stage.prior_weight * pscale * terms["prior"] + stage.shape_weight * terms["shape"]
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
    for stage in config.stages:
        opt = torch.optim.Adam([{"params": params}, {"params": pose_params, "lr": stage.lr * lr_scale}], lr=stage.lr)
        for _ in range(stage.iterations):
            opt.zero_grad()
            loss = pose_loss(stage)
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
            vertices=out.vertices.float(), faces=body_model.faces, losses=final_terms,
        )
    return res


# ---------------------------------------------------------------------------------------------
# Rendering (matplotlib, no OpenGL)
# ---------------------------------------------------------------------------------------------

_COLOURS = ((0.36, 0.62, 0.93), (0.95, 0.55, 0.25), (0.45, 0.80, 0.45), (0.85, 0.40, 0.75),
            (0.95, 0.85, 0.30), (0.40, 0.85, 0.85), (0.75, 0.55, 0.40))


def _shaded_polys(verts: np.ndarray, faces: np.ndarray, to2d, view_dir: np.ndarray, colour, max_faces: int):
    """Triangles facing the viewer, with Lambert shading: (polys (F, 3, 2), depth (F,), rgb (F, 3))."""
    tri = verts[faces]  # (F, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-12
    facing = (n @ view_dir) < 0
    if max_faces and facing.sum() > max_faces:
        idx = np.nonzero(facing)[0]
        facing = np.zeros_like(facing)
        facing[idx[:: int(math.ceil(len(idx) / max_faces))]] = True
    tri, n = tri[facing], n[facing]
    shade = np.clip(-(n @ view_dir), 0.0, 1.0) * 0.7 + 0.3
    rgb = np.clip(np.asarray(colour)[None] * shade[:, None], 0, 1)
    depth = tri.mean(1) @ view_dir
    return to2d(tri.reshape(-1, 3)).reshape(-1, 3, 2), depth, rgb


def render_fit(result: ImageFitResult, image: Optional[np.ndarray], path: Union[str, Path],
               max_faces: int = 0, dpi: int = 100) -> Path:
    """Write a PNG with three panels: the keypoints (input: white-edged dots; fitted: coloured
    skeleton) over the image, the fitted meshes over the image, and a side view of each body
    (seen from the camera's right, camera on the left; one body after the other).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    W, H = int(round(float(result.camera_center[0]) * 2)), int(round(float(result.camera_center[1]) * 2))
    f = result.focal_length.numpy()
    c = result.camera_center.numpy()
    verts = result.vertices.numpy()
    faces = np.asarray(result.faces)
    edges = KP.keypoint_edges(result.keypoint_format)
    aspect = H / max(W, 1)
    fig, (ax, axm, side) = plt.subplots(1, 3, figsize=(15, 4.6 * aspect + 0.7), gridspec_kw={"width_ratios": [1, 1, 0.9]})
    for a in (ax, axm):
        if image is not None:
            a.imshow(image, extent=(0, W, H, 0), alpha=1.0 if a is ax else 0.6)
        a.set_xlim(0, W)
        a.set_ylim(H, 0)
        a.axis("off")

    def project(x):
        return f * x[:, :2] / np.clip(x[:, 2:3], 1e-3, None) + c

    def draw(axis, to2d, view, offsets=None):
        polys, depths, cols = [], [], []
        for p in range(verts.shape[0]):
            v = verts[p] if offsets is None else verts[p] - offsets[p]
            pl, d, rgb = _shaded_polys(v, faces, to2d, view, _COLOURS[p % len(_COLOURS)], max_faces)
            polys.append(pl), depths.append(d), cols.append(rgb)
        allp = np.concatenate(polys)
        order = np.argsort(-np.concatenate(depths))
        fc = np.concatenate(cols)[order]
        axis.add_collection(PolyCollection(allp[order], facecolors=fc, edgecolors=fc, linewidths=0.3,
                                           antialiaseds=False))
        return allp

    draw(axm, project, np.array([0.0, 0.0, 1.0]))
    kp = result.keypoints_2d.numpy()
    pr = result.projected_2d.numpy()
    for p in range(kp.shape[0]):
        col = _COLOURS[p % len(_COLOURS)]
        for a, b in edges:
            ax.plot(pr[p, [a, b], 0], pr[p, [a, b], 1], "-", color=col, lw=1.8)
        v = kp[p, :, 2] > 0
        ax.scatter(kp[p, v, 0], kp[p, v, 1], s=14, c=[col], edgecolors="white", linewidths=0.9, zorder=5)
    ax.set_title(f"keypoints: input (dots), fitted (lines); {result.prior} prior", fontsize=9)
    axm.set_title("fitted bodies", fontsize=9)

    # side views: each body centred on itself, placed left to right in the image's x order
    order_p = np.argsort(verts.mean(1)[:, 0])
    centres = verts.mean(1)
    gap = 0.4
    offs = np.zeros_like(centres)
    x = 0.0
    for p in order_p:
        ext = verts[p][:, 2] - centres[p, 2]
        offs[p] = centres[p] - np.array([0.0, 0.0, x - ext.min()]) + np.array([0.0, 0.0, 0.0])
        offs[p, 1] = centres[p, 1]
        x += float(ext.max() - ext.min()) + gap

    def side2d(v):
        return np.stack((v[:, 2], v[:, 1]), -1)

    allp = draw(side, side2d, np.array([-1.0, 0.0, 0.0]), offs)
    lo, hi = allp.reshape(-1, 2).min(0), allp.reshape(-1, 2).max(0)
    pad = 0.08 * float((hi - lo).max())
    side.set_xlim(lo[0] - pad, hi[0] + pad)
    side.set_ylim(hi[1] + pad, lo[1] - pad)
    side.set_aspect("equal")
    side.set_xlabel("depth (m), each body centred on itself", fontsize=8)
    side.set_title("side views (camera on the left)", fontsize=9)
    side.tick_params(labelsize=7)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# Folders of images
# ---------------------------------------------------------------------------------------------


@dataclass
class ImageDirSummary:
    """What :func:`fit_image_dir` did.

    Attributes:
        fitted: per image: ``{"image", "npz", "png", "people", "skipped_people",
            "reprojection_error_px", "seconds"}``.
        skipped: ``(image name, reason)`` for images not fitted.
    """

    fitted: List[dict] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"fitted": self.fitted, "skipped": [{"image": n, "reason": r} for n, r in self.skipped]}


def _read_image(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    try:
        return mpimg.imread(str(path))
    except Exception as e:  # PIL.UnidentifiedImageError, OSError, ...
        raise ValueError(f"{path}: cannot read the image ({type(e).__name__}: {e})") from e


def fit_image_dir(
    image_dir: Union[str, Path],
    out_dir: Union[str, Path],
    prior: Union[str, PosePrior] = "none",
    prior_checkpoint: Optional[Union[str, Path]] = None,
    body_model: Optional[Union[str, Path, BodyModel]] = None,
    coco_json: Optional[Union[str, Path]] = None,
    config: ImageFitConfig = ImageFitConfig(),
    progress: bool = True,
    render: bool = True,
) -> ImageDirSummary:
    """Fit every image of ``image_dir`` that has keypoints; write ``<name>.npz`` / ``.png``.

    Images without a keypoint file (and not in ``coco_json``), with unreadable keypoints or with
    nobody to fit are skipped with a logged message and listed in ``summary.json``. Each image's
    outputs are written atomically as soon as it is done.

    Raises:
        FileNotFoundError: ``image_dir`` / ``coco_json`` / the body model path does not exist.
        ValueError: no images in ``image_dir``.
    """
    from tqdm.auto import tqdm

    image_dir, out_dir = Path(image_dir), Path(out_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: image folder not found")
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not images:
        raise ValueError(f"{image_dir}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    coco = read_coco_annotations(coco_json) if coco_json is not None else {}
    if coco_json is not None and not any(p.name in coco for p in images):
        raise ValueError(f"{coco_json}: none of its annotated images is in {image_dir}")
    bm = body_model if isinstance(body_model, BodyModel) else get_body_model(body_model, num_betas=max(config.num_betas, 1))
    prior_m = load_prior(prior, prior_checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = ImageDirSummary()
    for img_path in tqdm(images, desc="images", disable=not progress):
        name = img_path.stem
        js = img_path.with_suffix(".json")
        try:
            if js.is_file():
                people = read_keypoint_json(js, img_path.name)
            elif img_path.name in coco:
                people = coco[img_path.name]
            else:
                hint = "" if coco_json is not None else " (pass --coco-json FILE for a COCO annotation file)"
                raise ValueError(f"no keypoint file {js.name} next to the image{hint}")
            image = _read_image(img_path)
            t0 = time.time()
            res = fit_people(people, (image.shape[1], image.shape[0]), bm, prior_m, config)
        except ValueError as e:
            msg = str(e)
            log.warning("skipping %s: %s", img_path.name, msg)
            summary.skipped.append((img_path.name, msg))
            save_json(out_dir / "summary.json", summary.to_dict())
            continue
        npz = save_npz(
            out_dir / f"{name}.npz",
            body_pose=res.body_pose.numpy(), body_quat=R.axis_angle_to_quat(res.body_pose.reshape(-1, 21, 3)).numpy(),
            global_orient=res.global_orient.numpy(), betas=res.betas.numpy(), transl=res.transl.numpy(),
            focal_length=res.focal_length.numpy(), camera_center=res.camera_center.numpy(),
            camera_rotation=np.eye(3, dtype=np.float32), keypoints_2d=res.keypoints_2d.numpy(),
            projected_2d=res.projected_2d.numpy(), reprojection_error_px=res.reprojection_error_px.numpy(),
            person_index=res.person_index.numpy(), person_id=np.asarray([people.ids[i] for i in res.person_index.tolist()]),
            keypoint_format=np.asarray(res.keypoint_format), model_kind=np.asarray(res.model_kind),
            prior=np.asarray(res.prior), image_size=np.asarray([image.shape[1], image.shape[0]]),
            config=np.asarray(json.dumps(config.to_dict())),
        )
        png = render_fit(res, image, out_dir / f"{name}.png") if render else None
        for p, why in res.skipped:
            log.warning("%s: person %s not fitted: %s", img_path.name, people.ids[p], why)
        summary.fitted.append({
            "image": img_path.name, "npz": npz.name, "png": png.name if png else None,
            "people": len(res.person_index),
            "skipped_people": [{"person": people.ids[p], "reason": why} for p, why in res.skipped],
            "reprojection_error_px": [round(float(e), 2) for e in res.reprojection_error_px],
            "seconds": round(time.time() - t0, 2),
        })
        save_json(out_dir / "summary.json", summary.to_dict())
    return summary
