"""VPoser v2: a variational auto-encoder over the 21 SMPL body joints, used as a pose prior.

Our own implementation of the architecture of ``human_body_prior`` v2
(nghorbani/human_body_prior, ``models/vposer_model.py``, released checkpoints ``V02_05``). The
module layout is kept **state-dict compatible** with the official checkpoints, so
:meth:`VPoser.from_checkpoint` loads them with strict key checking:

==========================  ===================================================================
``encoder_net``             0 flatten, 1 BatchNorm1d(63), 2 Linear(63, H), 3 LeakyReLU,
                            4 BatchNorm1d(H), 5 Dropout(0.1), 6 Linear(H, H), 7 Linear(H, H),
                            8 Normal head (``mu`` and ``logvar`` Linear(H, Z)); the scale is
                            ``softplus(logvar)`` as in the original (the name is historical)
``decoder_net``             0 Linear(Z, H), 1 LeakyReLU, 2 Dropout(0.1), 3 Linear(H, H),
                            4 LeakyReLU, 5 Linear(H, 126), 6 6D -> rotation matrix
==========================  ===================================================================

with ``H = 512`` and ``Z = 32`` in the released models (:data:`VPOSER_V2_KEYS` lists every
key). PyPI's ``human_body_prior`` is v1 and is not needed.

**6D layout.** VPoser's decoder reads each joint's 6 numbers as a ``3 x 2`` matrix whose two
**columns** are Gram–Schmidt orthonormalised into the first two columns of the rotation
(:func:`vposer_rot6d_to_matrix`). :func:`posendf_plugin.rotations.rot6d_to_matrix` uses the
pytorch3d layout (two **rows**); the two do not mix.

**As a prior.** :meth:`VPoser.energy` is ``‖μ(x)‖²``, the squared norm of the encoder's mean
for the pose ``x`` — the VPoser term of SMPLify-X when the body pose is fitted directly.
For latent-space fitting (SMPLify-X's default) optimise ``z`` with an ``‖z‖²`` penalty and
decode it with :meth:`VPoser.decode_to_quat`.

Quaternions are ``(w, x, y, z)`` (see :mod:`posendf_plugin.rotations`).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .. import rotations as R
from .._checks import as_tensor, check_finite, check_shape
from ..skeleton import NUM_BODY_JOINTS, POSE_LAYOUTS, quat_to_pose, to_body_quat
from .base import PosePrior, register_prior

__all__ = [
    "VPoserConfig",
    "VPoserOutput",
    "VPoser",
    "VPOSER_V2_KEYS",
    "LIGHTNING_PREFIX",
    "CHECKPOINT_FORMAT",
    "DEFAULT_CHECKPOINT",
    "vposer_rot6d_to_matrix",
    "body_axis_angle",
    "load_vposer_state",
]

logger = logging.getLogger(__name__)

#: Flat axis-angle width of the 21 body joints.
BODY_AA_DIM = NUM_BODY_JOINTS * 3  # 63
#: Key prefix of the VPoser weights inside the official PyTorch-Lightning ``.ckpt`` files.
LIGHTNING_PREFIX = "vp_model."
#: ``format`` tag of the checkpoints this package writes.
CHECKPOINT_FORMAT = "posendf_plugin.vposer/1"
#: The shipped checkpoint, trained on the default CMU pose set.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "assets" / "vposer_cmu.pt"
TRAIN_COMMAND = (
    "posendf baseline train vposer --poses posendf_plugin/assets/cmu_train.npz "
    "--out posendf_plugin/assets/vposer_cmu.pt"
)

#: Every state-dict key of an official VPoser v2 model (V02_05), in order. This is the
#: compatibility contract: :class:`VPoser` must produce exactly these keys.
VPOSER_V2_KEYS: Tuple[str, ...] = (
    "encoder_net.1.weight",
    "encoder_net.1.bias",
    "encoder_net.1.running_mean",
    "encoder_net.1.running_var",
    "encoder_net.1.num_batches_tracked",
    "encoder_net.2.weight",
    "encoder_net.2.bias",
    "encoder_net.4.weight",
    "encoder_net.4.bias",
    "encoder_net.4.running_mean",
    "encoder_net.4.running_var",
    "encoder_net.4.num_batches_tracked",
    "encoder_net.6.weight",
    "encoder_net.6.bias",
    "encoder_net.7.weight",
    "encoder_net.7.bias",
    "encoder_net.8.mu.weight",
    "encoder_net.8.mu.bias",
    "encoder_net.8.logvar.weight",
    "encoder_net.8.logvar.bias",
    "decoder_net.0.weight",
    "decoder_net.0.bias",
    "decoder_net.3.weight",
    "decoder_net.3.bias",
    "decoder_net.5.weight",
    "decoder_net.5.bias",
)


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------


def vposer_rot6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """VPoser's 6D -> rotation matrix: ``(..., 6) -> (..., 3, 3)``.

    The 6 numbers are read row-major as a ``3 x 2`` matrix ``A`` (``A[i, j] = d6[2 i + j]``);
    its two **columns** are orthonormalised (Gram–Schmidt) into the first two columns of the
    result, the third column is their cross product. Equivalent to
    ``rotations.rot6d_to_matrix(d6[..., [0, 2, 4, 1, 3, 5]]).transpose(-1, -2)`` (the pytorch3d
    layout uses rows).
    """
    check_shape(d6, ("*", 6), "rot6d")
    a = d6.reshape(d6.shape[:-1] + (3, 2))
    b1 = F.normalize(a[..., 0], dim=-1)
    b2 = F.normalize(a[..., 1] - (b1 * a[..., 1]).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def body_axis_angle(body_pose, name: str = "body_pose") -> torch.Tensor:
    """Any supported body-pose layout to flat axis-angle of the 21 body joints.

    Flat axis-angle input (63/69/72/156/165) and ``(..., 21, 3)`` are sliced directly (no
    round trip through quaternions, so angles above π are kept as given); quaternions and
    rotation matrices are converted with :func:`skeleton.to_body_quat` and
    :func:`skeleton.quat_to_pose`.

    Args:
        body_pose: see :func:`posendf_plugin.skeleton.to_body_quat`.
    Returns:
        ``(..., 63)`` axis-angle, joint-major.
    """
    x = as_tensor(body_pose, name)
    if x.ndim >= 2 and x.shape[-2:] == (NUM_BODY_JOINTS, 3):
        check_finite(x.reshape(-1, BODY_AA_DIM), name)
        return x.reshape(x.shape[:-2] + (BODY_AA_DIM,))
    if x.ndim >= 1 and x.shape[-1] in POSE_LAYOUTS:
        _, first, n = POSE_LAYOUTS[x.shape[-1]]
        check_finite(x.reshape(-1, x.shape[-1]), name)
        aa = x.reshape(x.shape[:-1] + (n, 3))[..., first:first + NUM_BODY_JOINTS, :]
        return aa.reshape(x.shape[:-1] + (BODY_AA_DIM,))
    return quat_to_pose(to_body_quat(x, name), BODY_AA_DIM)


# ---------------------------------------------------------------------------------------------
# Modules (names and order fixed by the official state dict)
# ---------------------------------------------------------------------------------------------


class _BatchFlatten(nn.Module):
    """``(B, ...) -> (B, prod(...))``; no parameters (index 0 of ``encoder_net``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)  # also for an empty batch, where reshape(0, -1) is ambiguous


class _NormalHead(nn.Module):
    """Features ``(B, H)`` to ``Normal(mu, softplus(logvar))`` over ``(B, Z)``.

    The second layer is called ``logvar`` in the official model, but its softplus is used as
    the **scale** (standard deviation); we keep the name for state-dict compatibility.
    """

    def __init__(self, num_feat_in: int, latent_dim: int) -> None:
        super().__init__()
        self.mu = nn.Linear(num_feat_in, latent_dim)
        self.logvar = nn.Linear(num_feat_in, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.mu(x), F.softplus(self.logvar(x)))


class _Rot6dDecoder(nn.Module):
    """``(B, 21 * 6) -> (B * 21, 3, 3)`` with :func:`vposer_rot6d_to_matrix`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return vposer_rot6d_to_matrix(x.reshape(-1, 6))


# ---------------------------------------------------------------------------------------------
# Config and results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VPoserConfig:
    """Architecture of a VPoser v2 model.

    Attributes:
        num_neurons: hidden width ``H`` (512 in the released V02_05 models).
        latent_dim: latent size ``Z`` (32 in V02_05).
    """

    num_neurons: int = 512
    latent_dim: int = 32

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"VPoserConfig.{f.name} must be a positive integer, got {v!r}")

    @classmethod
    def from_dict(cls, d: Mapping) -> "VPoserConfig":
        """Build from a mapping; unknown keys raise ``KeyError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise KeyError(f"unknown VPoser config key(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(d))


@dataclass
class VPoserOutput:
    """Decoded poses.

    Attributes:
        pose_body: ``(B, 63)`` axis-angle of the 21 body joints. (The official ``decode``
            returns ``(B, 21, 3)``; reshape if you need that.)
        pose_body_matrot: ``(B, 21, 3, 3)`` rotation matrices.

    ``out["pose_body"]`` also works, for code written against VPoser's dict results.
    """

    pose_body: torch.Tensor
    pose_body_matrot: torch.Tensor

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in ("pose_body", "pose_body_matrot"):
            raise KeyError(f"VPoserOutput has no field '{key}'; fields: 'pose_body', 'pose_body_matrot'")
        return getattr(self, key)

    def to_quat(self) -> torch.Tensor:
        """``(B, 21, 4)`` quaternions ``(w, x, y, z)``, ``w >= 0``."""
        return R.matrix_to_quat(self.pose_body_matrot)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class VPoser(PosePrior):
    """VPoser v2 (see the module docstring for the layout).

    Use :meth:`from_pretrained` / :meth:`from_checkpoint` to get a trained model (frozen, in
    eval mode). A freshly constructed model is in train mode with random weights.
    """

    name = "vposer"

    def __init__(self, config: VPoserConfig = VPoserConfig()) -> None:
        super().__init__()
        if not isinstance(config, VPoserConfig):
            raise TypeError(f"config must be a VPoserConfig, got {type(config).__name__}")
        self.config = config
        h, z = config.num_neurons, config.latent_dim
        self.encoder_net = nn.Sequential(
            _BatchFlatten(),
            nn.BatchNorm1d(BODY_AA_DIM),
            nn.Linear(BODY_AA_DIM, h),
            nn.LeakyReLU(),
            nn.BatchNorm1d(h),
            nn.Dropout(0.1),
            nn.Linear(h, h),
            nn.Linear(h, h),
            _NormalHead(h, z),
        )
        self.decoder_net = nn.Sequential(
            nn.Linear(z, h),
            nn.LeakyReLU(),
            nn.Dropout(0.1),
            nn.Linear(h, h),
            nn.LeakyReLU(),
            nn.Linear(h, NUM_BODY_JOINTS * 6),
            _Rot6dDecoder(),
        )

    @property
    def latent_dim(self) -> int:
        """Size ``Z`` of the latent space."""
        return self.config.latent_dim

    def _param(self) -> torch.Tensor:
        return self.decoder_net[0].weight

    # -- VPoser API -----------------------------------------------------------------------

    def encode(self, pose_body: torch.Tensor) -> torch.distributions.Normal:
        """Posterior ``q(z | pose)``.

        Args:
            pose_body: ``(B, 63)`` or ``(B, 21, 3)`` axis-angle of the body joints.
        Returns:
            ``Normal`` with ``mean`` / ``scale`` of shape ``(B, Z)``.
        """
        x = as_tensor(pose_body, "pose_body")
        if not (x.ndim == 2 and x.shape[1] == BODY_AA_DIM) and not (
            x.ndim == 3 and x.shape[1:] == (NUM_BODY_JOINTS, 3)
        ):
            raise ValueError(
                f"pose_body must have shape (B, 63) or (B, 21, 3) (axis-angle of the 21 body "
                f"joints), got {tuple(x.shape)}; use energy() or body_axis_angle() for other layouts"
            )
        return self.encoder_net(x.to(self._param()))

    def decode(self, z: torch.Tensor) -> VPoserOutput:
        """Decode latent codes ``(B, Z)`` to poses (see :class:`VPoserOutput`)."""
        check_shape(z, (None, self.latent_dim), "z")
        b = z.shape[0]
        mats = self.decoder_net(z).reshape(b, NUM_BODY_JOINTS, 3, 3)
        aa = R.matrix_to_axis_angle(mats).reshape(b, BODY_AA_DIM)
        return VPoserOutput(pose_body=aa, pose_body_matrot=mats)

    def decode_to_quat(self, z: torch.Tensor) -> torch.Tensor:
        """Decode latent codes ``(B, Z)`` to quaternions ``(B, 21, 4)`` ``(w, x, y, z)``,
        ``w >= 0``; differentiable, for latent-space fitting."""
        check_shape(z, (None, self.latent_dim), "z")
        mats = self.decoder_net(z).reshape(z.shape[0], NUM_BODY_JOINTS, 3, 3)
        return R.matrix_to_quat(mats)

    def encode_mean(self, body_pose) -> torch.Tensor:
        """Posterior mean ``μ(x)`` ``(..., Z)`` for a body pose in any supported layout (e.g.
        to initialise latent-space fitting)."""
        aa = body_axis_angle(body_pose)
        lead = aa.shape[:-1]
        mu = self.encode(aa.reshape(-1, BODY_AA_DIM)).mean
        return mu.reshape(lead + (self.latent_dim,))

    def sample_poses(self, num_poses: int, seed: Optional[int] = None) -> VPoserOutput:
        """Decode ``num_poses`` draws ``z ~ N(0, I)``; same seed -> same poses. Runs in eval
        mode without gradients (the module's mode is restored afterwards)."""
        if not isinstance(num_poses, int) or num_poses < 0:
            raise ValueError(f"num_poses must be a non-negative integer, got {num_poses!r}")
        gen = torch.Generator(device="cpu")
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        p = self._param()
        z = torch.randn(num_poses, self.latent_dim, generator=gen, dtype=torch.float64).to(p)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.decode(z)
        finally:
            self.train(was_training)

    # -- PosePrior API --------------------------------------------------------------------

    def energy(self, body_pose) -> torch.Tensor:
        """``‖μ(x)‖²`` of the encoder mean; ``(..., *layout) -> (...)``, differentiable.

        ``body_pose`` is any layout :func:`posendf_plugin.skeleton.to_body_quat` accepts.
        Call it on a model in eval mode (as loaded): in train mode BatchNorm uses batch
        statistics and dropout is active.
        """
        return (self.encode_mean(body_pose) ** 2).sum(-1)

    def sample(self, n: int, seed: Optional[int] = None) -> torch.Tensor:
        """``n`` poses as ``(n, 21, 4)`` quaternions ``(w, x, y, z)``, ``w >= 0``."""
        return self.sample_poses(n, seed).to_quat()

    # -- checkpoints ----------------------------------------------------------------------

    def checkpoint_dict(self, **extra) -> Dict:
        """What :meth:`save` writes: format tag, config, state dict, plus ``extra``."""
        sd = {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}
        return {"format": CHECKPOINT_FORMAT, "config": asdict(self.config), "state_dict": sd, **extra}

    def save(self, path: Union[str, Path], **extra) -> Path:
        """Atomically write our checkpoint format (loads with ``weights_only=True``)."""
        from ..io import save_torch

        return save_torch(path, self.checkpoint_dict(**extra))

    @classmethod
    def from_checkpoint(cls, path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> "VPoser":
        """Load a VPoser from our checkpoint, an official V02_05 PyTorch-Lightning ``.ckpt``
        (weights under ``state_dict`` with the ``vp_model.`` prefix) or a plain state dict.

        Returns a frozen model (``requires_grad=False``) in eval mode.

        Raises:
            FileNotFoundError: no such file.
            ValueError: unreadable file, or the weights do not match the VPoser v2 layout (the
                message names the missing / unexpected keys or mismatched shapes).
        """
        sd, cfg = load_vposer_state(path, map_location)
        model = cls(cfg)
        _load_strict(model, sd, path)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    @classmethod
    def from_pretrained(cls, path: Optional[Union[str, Path]] = None, **kw) -> "VPoser":
        """Load the shipped VPoser trained on the default CMU pose set
        (``posendf_plugin/assets/vposer_cmu.pt``), or ``path``."""
        p = Path(path) if path is not None else DEFAULT_CHECKPOINT
        if not p.is_file():
            raise FileNotFoundError(
                f"{p}: no VPoser checkpoint here; train one with '{TRAIN_COMMAND}' or pass the path "
                "of an official V02_05 .ckpt to VPoser.from_checkpoint()"
            )
        return cls.from_checkpoint(p, **kw)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _infer_config(sd: Mapping[str, torch.Tensor], path) -> VPoserConfig:
    try:
        h = int(sd["encoder_net.2.weight"].shape[0])
        z = int(sd["encoder_net.8.mu.weight"].shape[0])
    except KeyError as e:
        raise ValueError(
            f"{path}: not VPoser v2 weights: key {e.args[0]!r} is missing (found {_short(sorted(sd))}); "
            "expected the keys of human_body_prior v2 (e.g. 'encoder_net.2.weight'), optionally "
            f"prefixed by '{LIGHTNING_PREFIX}'"
        ) from None
    return VPoserConfig(num_neurons=h, latent_dim=z)


def _short(keys: List[str], n: int = 8) -> str:
    return "[" + ", ".join(repr(k) for k in keys[:n]) + (f", ... ({len(keys)} in all)]" if len(keys) > n else "]")


def load_vposer_state(
    path: Union[str, Path], map_location: Union[str, torch.device] = "cpu"
) -> Tuple[Dict[str, torch.Tensor], VPoserConfig]:
    """Read VPoser weights and config from any supported checkpoint file.

    Supported: our format (``format == CHECKPOINT_FORMAT``, config inside); a Lightning
    checkpoint (``{"state_dict": {"vp_model.encoder_net.1.weight": ...,
    "bm_train.*": ..., ...}, "epoch": ..., ...}``: the ``vp_model.`` entries are kept with the
    prefix stripped, the body-model buffers and training state are ignored, as the official
    loader does); a plain state dict (with or without the prefix). For files without a config,
    it is inferred from the weight shapes.

    Returns:
        ``(state_dict, config)``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such VPoser checkpoint file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (not a zip/pickle), EOFError...
        from ..io import describe_load_error

        raise ValueError(
            f"{path}: cannot be read as a weights-only torch checkpoint ({describe_load_error(e)}). "
            "Use the official VPoser V02_05 weights or a checkpoint of 'posendf baseline train'"
        ) from e
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    cfg = None
    if obj.get("format") == CHECKPOINT_FORMAT:
        sd = obj["state_dict"]
        cfg = VPoserConfig.from_dict(obj["config"])
    elif "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        sd = obj["state_dict"]
    elif all(isinstance(v, torch.Tensor) for v in obj.values()):
        sd = obj
    else:
        raise ValueError(
            f"{path}: not a VPoser checkpoint: expected our format ('format': {CHECKPOINT_FORMAT!r}), a "
            f"Lightning checkpoint with 'state_dict', or a plain state dict; found keys {_short(sorted(map(str, obj)))}"
        )
    if any(str(k).startswith(LIGHTNING_PREFIX) for k in sd):
        sd = {k[len(LIGHTNING_PREFIX):]: v for k, v in sd.items() if k.startswith(LIGHTNING_PREFIX)}
    sd = dict(sd)
    if cfg is None:
        cfg = _infer_config(sd, path)
    return sd, cfg


def _load_strict(model: VPoser, sd: Mapping[str, torch.Tensor], path) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = sorted(k for k in sd if k not in own)
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not match the VPoser v2 layout: missing keys {_short(missing)}, "
            f"unexpected keys {_short(unexpected)}"
        )
    bad = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}" for k, v in own.items() if sd[k].shape != v.shape]
    if bad:
        raise ValueError(f"{path}: weight shapes do not match the VPoser config {model.config}: " + "; ".join(bad[:5]))
    model.load_state_dict(sd, strict=True)


def _factory(checkpoint: Optional[Union[str, Path]] = None, **kw) -> VPoser:
    """``get_prior("vposer", checkpoint=...)``: shipped model by default."""
    if checkpoint is None:
        return VPoser.from_pretrained(**kw)
    return VPoser.from_checkpoint(checkpoint, **kw)


register_prior("vposer", _factory)
