"""``PoseNDFPriorLoss``: the prior as an mmhuman3d / mmengine loss module.

mmhuman3d's prior losses (``mmhuman3d/models/losses/prior_loss.py``: ``ShapePriorLoss``,
``JointPriorLoss``, ``MaxMixturePrior``) take ``reduction`` in none/mean/sum and ``loss_weight``
at construction and are called as ``forward(body_pose, loss_weight_override=None,
reduction_override=None)``; its SMPLify registrant calls
``self.pose_prior_loss(body_pose=body_pose, loss_weight_override=pose_prior_weight,
reduction_override=reduction_override)``. They are built from config dicts through the
``LOSSES`` registry (``mmhuman3d.models.losses.builder``), e.g. ``pose_prior=dict(
type='MaxMixturePrior', ..., loss_weight=4.78**2, reduction='sum')``.

Importing this module registers ``PoseNDFPriorLoss`` in :data:`POSENDF_LOSSES` (an mmengine
``Registry``) and, when mmhuman3d is installed, in mmhuman3d's ``LOSSES`` too.
"""
from __future__ import annotations

import importlib
import importlib.util
import warnings
from typing import Mapping, Optional

import torch
from torch import nn

from ._common import PriorLike, check_layout, prior_energy, resolve_prior

try:
    from mmengine.registry import Registry
except ImportError as e:  # pragma: no cover - exercised only without mmengine
    raise ImportError(
        "posendf_plugin.integrations.mmhuman3d needs mmengine: pip install 'posendf-plugin[mm]' "
        "(or pip install mmengine)"
    ) from e

__all__ = ["POSENDF_LOSSES", "PoseNDFPriorLoss", "register_in", "register_mmhuman3d"]

_REDUCTIONS = (None, "none", "mean", "sum")

#: mmengine registry holding :class:`PoseNDFPriorLoss`
POSENDF_LOSSES = Registry("loss", scope="posendf_plugin")


class PoseNDFPriorLoss(nn.Module):
    """Pose-prior loss with mmhuman3d's conventions.

    Args:
        prior: prior name (``'posendf'``, ``'nrdf'``, ``'vposer'``, ``'gmm'``...) resolved with
            ``get_prior`` or a built :class:`~posendf_plugin.priors.base.PosePrior`.
        reduction: ``'none'`` (``(B,)``), ``'mean'`` or ``'sum'`` over the batch.
        loss_weight: multiplies the per-sample energy.
        prior_kwargs: passed to ``get_prior`` (e.g. ``dict(checkpoint='my_ndf.pt')``).
        expected_width: flat axis-angle width the body model uses (69 SMPL, 63 SMPL-X); the
            default ``None`` accepts 63/69/72 and the other layouts of ``to_body_quat``.
    """

    def __init__(
        self,
        prior: PriorLike = "posendf",
        reduction: Optional[str] = "mean",
        loss_weight: float = 1.0,
        prior_kwargs: Optional[Mapping] = None,
        expected_width: Optional[int] = None,
    ) -> None:
        super().__init__()
        _check_reduction(reduction, "reduction")
        self.prior = resolve_prior(prior, prior_kwargs)
        self.reduction = reduction
        self.loss_weight = float(loss_weight)
        self.expected_width = expected_width

    def forward(
        self,
        body_pose: torch.Tensor,
        loss_weight_override: Optional[float] = None,
        reduction_override: Optional[str] = None,
    ) -> torch.Tensor:
        """``loss_weight * energy(body_pose)`` reduced over the batch.

        Args:
            body_pose: ``(B, 69)`` SMPL or ``(B, 63)`` SMPL-X body pose (axis-angle), or any
                layout ``to_body_quat`` accepts when ``expected_width`` is ``None``.
        Returns:
            ``(B,)`` for reduction ``'none'``/``None``, else a scalar.
        """
        _check_reduction(reduction_override, "reduction_override")
        reduction = reduction_override if reduction_override else self.reduction
        weight = loss_weight_override if loss_weight_override is not None else self.loss_weight
        check_layout(body_pose, self.expected_width, "mmhuman3d")
        loss = weight * prior_energy(self.prior, body_pose)
        if reduction == "mean":
            return loss.mean()
        if reduction == "sum":
            return loss.sum()
        return loss

    def extra_repr(self) -> str:
        return f"prior={self.prior.name}, reduction={self.reduction}, loss_weight={self.loss_weight:g}"


def _check_reduction(value, name: str) -> None:
    if value not in _REDUCTIONS:
        raise ValueError(f"{name} must be one of 'none', 'mean', 'sum' or None, got {value!r}")


def register_in(registry, name: str = "PoseNDFPriorLoss") -> None:
    """Register :class:`PoseNDFPriorLoss` in any mmengine/mmcv ``Registry`` (e.g. a project's
    ``MODELS``). Registering it again in the same registry warns and keeps the entry; another
    class under ``name`` is an error (``KeyError``)."""
    existing = registry.module_dict.get(name)
    if existing is PoseNDFPriorLoss:
        warnings.warn(f"{name} is already registered in registry '{registry.name}'; keeping it", UserWarning, stacklevel=2)
        return
    if existing is not None:
        raise KeyError(
            f"registry '{registry.name}' already has a different '{name}' ({existing!r}); "
            "pass another name to register_in"
        )
    registry.register_module(name=name, module=PoseNDFPriorLoss)


def _mmhuman3d_losses_registry():
    for mod_name in ("mmhuman3d.models.losses.builder", "mmhuman3d.models.builder"):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        if hasattr(mod, "LOSSES"):
            return mod.LOSSES
    return None


def register_mmhuman3d() -> None:
    """Register :class:`PoseNDFPriorLoss` in mmhuman3d's ``LOSSES``.

    Raises:
        ImportError: mmhuman3d (or its ``LOSSES`` registry) is not importable.
    """
    if importlib.util.find_spec("mmhuman3d") is None:
        raise ImportError(
            "mmhuman3d is not installed, so there is no mmhuman3d LOSSES registry to register "
            "PoseNDFPriorLoss in; install mmhuman3d, or build the loss from "
            "posendf_plugin.integrations.mmhuman3d.POSENDF_LOSSES / register_in(your_registry)"
        )
    registry = _mmhuman3d_losses_registry()
    if registry is None:
        raise ImportError(
            "mmhuman3d is installed but neither mmhuman3d.models.losses.builder nor "
            "mmhuman3d.models.builder provides LOSSES (or importing them failed, e.g. mmcv is "
            "missing); use register_in(<registry>) with the registry your version uses"
        )
    register_in(registry)


register_in(POSENDF_LOSSES)
if importlib.util.find_spec("mmhuman3d") is not None:  # pragma: no cover - mmhuman3d not installed here
    try:
        register_mmhuman3d()
    except ImportError as e:
        warnings.warn(f"mmhuman3d found but PoseNDFPriorLoss could not be registered in it: {e}", stacklevel=2)
