"""Shared pieces of the fitting loops: building a prior by name, and the body-pose variables.

:class:`BodyPoseVariable` holds what the optimiser changes for the 21 body joints:

* ``"axis_angle"`` (default): a ``(B, 63)`` axis-angle tensor; the prior term is
  ``prior.energy(pose)`` (Pose-NDF, NRDF, GMM, VPoser's ``‖μ(x)‖²``, or zero for ``none``).
* ``"vposer_latent"``: a ``(B, Z)`` VPoser latent code, decoded to the pose with
  :meth:`~posendf_plugin.priors.vposer.VPoser.decode_to_quat`; the prior term is ``‖z‖²``
  (SMPLify-X's default way of using VPoser). The code starts either at ``z = 0`` (SMPLify-X:
  the pose embedding is initialised with zeros, which decodes to VPoser's mean pose) or at the
  posterior mean of the initial pose (human_body_prior's IK engine: ``encode(pose).mean``);
  see :data:`LATENT_INITS`.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Mapping, Optional, Union

import torch
from torch import nn

from ..io import load_yaml
from ..priors.base import PosePrior, get_prior
from ..skeleton import quat_to_pose

__all__ = [
    "POSE_PARAMETERISATIONS",
    "LATENT_INITS",
    "load_prior",
    "BodyPoseVariable",
    "config_from_dict",
    "load_yaml_config",
    "config_to_dict",
]

POSE_PARAMETERISATIONS = ("axis_angle", "vposer_latent", "auto")
#: how a VPoser latent code starts: ``"zero"`` (``z = 0``, SMPLify-X) or ``"encode"`` (the
#: posterior mean ``μ(init)`` of the initial pose, human_body_prior's IK engine)
LATENT_INITS = ("zero", "encode")
BODY_AA = 63


def load_prior(name: Union[str, PosePrior], checkpoint: Optional[Union[str, Path]] = None,
               shipped: Optional[str] = None) -> PosePrior:
    """Build a prior for fitting: ``get_prior(name)``, or from ``checkpoint``; ``shipped`` names
    which of the package's models to load when no checkpoint is given (e.g. ``"posendf_density"``
    for ``posendf``, :data:`posendf_plugin.prior.DEFAULT_WEIGHTS`).

    A built :class:`PosePrior` is returned unchanged. The prior is put in eval mode with
    frozen weights.

    Raises:
        ValueError: unknown name, or ``checkpoint`` given for ``none``.
        FileNotFoundError: no shipped weights for ``name`` and no ``checkpoint`` (the message
            names the command that trains them / the option that loads your own file).
    """
    if isinstance(name, PosePrior):
        prior = name
    else:
        if name == "none":
            if checkpoint is not None:
                raise ValueError("--prior-checkpoint was given with --prior none; pick a prior name too")
            prior = get_prior("none")
        else:
            kw = {"checkpoint": checkpoint} if checkpoint is not None else ({"pretrained": shipped} if shipped else {})
            if checkpoint is not None and not Path(checkpoint).is_file():
                raise FileNotFoundError(f"{checkpoint}: prior checkpoint not found")
            try:
                prior = get_prior(name, **kw)
            except FileNotFoundError as e:
                raise FileNotFoundError(
                    f"{e}. Pass --prior-checkpoint PATH (or checkpoint=...) with weights for '{name}', "
                    "or use --prior none"
                ) from e
    prior.eval()
    for p in prior.parameters():
        p.requires_grad_(False)
    return prior


class BodyPoseVariable(nn.Module):
    """Optimisable body pose of ``B`` bodies (see the module docstring).

    Args:
        init: ``(B, 63)`` initial axis-angle pose.
        prior: the prior; decides the latent mode when ``mode="auto"``.
        mode: ``"axis_angle"``, ``"vposer_latent"`` or ``"auto"`` (latent for VPoser,
            axis-angle otherwise).
        latent_init: latent mode only: ``"encode"`` starts at ``μ(init)``; ``"zero"`` starts
            at ``z = 0`` and ignores ``init`` (use it when ``init`` is no estimate of the pose,
            e.g. the T-pose: a VPoser trained without T-poses encodes it far from the origin,
            to a code that decodes to a distorted pose).
    """

    def __init__(self, init: torch.Tensor, prior: PosePrior, mode: str = "auto", latent_init: str = "encode") -> None:
        super().__init__()
        if mode not in POSE_PARAMETERISATIONS:
            raise ValueError(f"pose parameterisation must be one of {POSE_PARAMETERISATIONS}, got {mode!r}")
        if latent_init not in LATENT_INITS:
            raise ValueError(f"latent_init must be one of {LATENT_INITS}, got {latent_init!r}")
        if mode == "auto":
            mode = "vposer_latent" if getattr(prior, "name", "") == "vposer" else "axis_angle"
        if mode == "vposer_latent" and not hasattr(prior, "decode_to_quat"):
            raise ValueError(
                f"pose parameterisation 'vposer_latent' needs a VPoser prior (decode_to_quat), got "
                f"'{getattr(prior, 'name', type(prior).__name__)}'; use 'axis_angle'"
            )
        if init.ndim != 2 or init.shape[-1] != BODY_AA:
            raise ValueError(f"init must have shape (B, 63), got {tuple(init.shape)}")
        self.mode = mode
        self.prior = prior
        if mode == "vposer_latent":
            with torch.no_grad():
                z = prior.encode_mean(init.detach()).to(init)
                if latent_init == "zero":
                    z = torch.zeros_like(z)
            self.value = nn.Parameter(z.clone())
        else:
            self.value = nn.Parameter(init.detach().clone())

    def pose(self) -> torch.Tensor:
        """``(B, 63)`` axis-angle body pose."""
        if self.mode == "vposer_latent":
            return quat_to_pose(self.prior.decode_to_quat(self.value), BODY_AA)
        return self.value

    def prior_energy(self, pose: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(B,)`` prior term: ``‖z‖²`` in latent mode, else ``prior.energy(pose)``."""
        if self.mode == "vposer_latent":
            return (self.value ** 2).sum(-1)
        pose = self.pose() if pose is None else pose
        return self.prior.energy(pose).reshape(pose.shape[0])


# ---------------------------------------------------------------------------------------------
# Configs: frozen dataclasses; YAML only overrides them
# ---------------------------------------------------------------------------------------------


def config_from_dict(cls, d, source: str = "config", nested=None):
    """Build the frozen dataclass ``cls`` from a mapping; an unknown key is a ``ValueError``.

    ``nested`` maps a field name to the dataclass of its items (a list of mappings in ``d``
    becomes a tuple of those dataclasses).
    """
    import dataclasses

    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ValueError(f"{source}: expected a mapping of {cls.__name__} settings, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown} for {cls.__name__}; valid keys: {sorted(names)}")
    kw = dict(d)
    for key, item_cls in (nested or {}).items():
        if key in kw:
            items = kw[key]
            if not isinstance(items, (list, tuple)) or not items:
                raise ValueError(f"{source}: '{key}' must be a non-empty list of {item_cls.__name__} mappings")
            kw[key] = tuple(
                it if isinstance(it, item_cls) else config_from_dict(item_cls, it, f"{source}: {key}[{i}]")
                for i, it in enumerate(items)
            )
    for key, val in list(kw.items()):
        if isinstance(val, list):
            kw[key] = tuple(val)
    try:
        return cls(**kw)
    except TypeError as e:
        raise ValueError(f"{source}: {e}") from e


def load_yaml_config(cls, path, nested=None):
    """Read a YAML file into ``cls`` with :func:`config_from_dict`.

    Raises:
        FileNotFoundError: no such file. ValueError: not YAML / unknown keys / bad values.
    """
    path = Path(path)
    data = load_yaml(path, "config file")
    return config_from_dict(cls, data or {}, str(path), nested)


def config_to_dict(cfg) -> dict:
    """Plain-dict form of a (nested) config dataclass, for YAML / ``.npz`` metadata."""
    import dataclasses

    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(cfg)


def check_stage(stage, weights: tuple) -> None:
    """Validate an optimisation stage dataclass: integer ``iterations >= 0``, the named
    ``weights`` >= 0 and ``lr > 0``; ``ValueError`` naming the field otherwise."""
    if not (isinstance(stage.iterations, int) and stage.iterations >= 0):
        raise ValueError(f"stage iterations must be an integer >= 0, got {stage.iterations!r}")
    for k in weights:
        if not getattr(stage, k) >= 0:
            raise ValueError(f"stage {k} must be >= 0, got {getattr(stage, k)}")
    if not stage.lr > 0:
        raise ValueError(f"stage lr must be positive, got {stage.lr}")


POSE_PARAMETERISATIONS = ("auto", "axis_angle", "vposer_latent")


class StagedFitConfig:
    """Behaviour shared by the staged fitting configs (:class:`DenoiseConfig`,
    :class:`ImageFitConfig`): the per-prior weight scale, the checks on ``stages`` and
    ``pose_parameterisation``, and the dict / YAML round trip. Subclasses are frozen dataclasses
    that set ``STAGE`` (a class attribute, not a field) to their stage dataclass."""

    STAGE: ClassVar[type]

    def check_staging(self) -> None:
        if not self.stages:
            raise ValueError("stages must list at least one stage")
        if self.pose_parameterisation not in POSE_PARAMETERISATIONS:
            raise ValueError(
                f"pose_parameterisation must be 'auto', 'axis_angle' or 'vposer_latent', got {self.pose_parameterisation!r}"
            )
        if self.latent_init not in LATENT_INITS:
            raise ValueError(f"latent_init must be one of {LATENT_INITS}, got {self.latent_init!r}")

    def scale_for(self, prior_name: str) -> float:
        return float(dict(self.prior_scale).get(prior_name, 1.0))

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "config"):
        return config_from_dict(cls, dict(d), source, nested={"stages": cls.STAGE})

    @classmethod
    def load(cls, path: Union[str, Path]):
        """Read YAML (unknown keys are an error)."""
        return load_yaml_config(cls, path, nested={"stages": cls.STAGE})

    def to_dict(self) -> dict:
        return config_to_dict(self)
