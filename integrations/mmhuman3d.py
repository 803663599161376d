"""``PoseNDFPriorLoss``: the prior as an mmhuman3d loss (mmcv 1.x registry), or as a loss of any
OpenMMLab 2.x project (mmengine registry).

mmhuman3d is built on **mmcv 1.x** (``mmhuman3d/__init__.py`` requires 1.3.17 <= mmcv < 1.8.0):
``mmhuman3d/models/losses/builder.py`` does ``from mmcv.utils import Registry``, ``LOSSES =
Registry('losses')`` and ``build_loss(cfg) -> LOSSES.build(cfg)``. Its SMPLify registrant
(``mmhuman3d/models/registrants/smplify.py:SMPLify.__init__``) builds ``self.pose_prior_loss =
build_loss(pose_prior_loss)`` and, in ``_compute_loss``, calls ``self.pose_prior_loss(
body_pose=body_pose, loss_weight_override=pose_prior_weight, reduction_override=
reduction_override)`` after ``_skip_loss`` has read ``loss.loss_weight``. mmhuman3d's own prior
losses (``prior_loss.py``) take ``reduction`` in none/mean/sum and ``loss_weight``; so does
:class:`PoseNDFPriorLoss`.

Importing this module registers ``PoseNDFPriorLoss`` in every registry it finds: mmhuman3d's
``LOSSES`` when mmhuman3d imports, and mmengine's root ``MODELS`` (which every OpenMMLab 2.x
project's ``MODELS`` falls back to) when mmengine is installed. Neither is needed to use the
class directly. :func:`register_mmhuman3d`, :func:`register_mmengine` and :func:`register_in`
do it explicitly and say what is missing.

``tools/smplify.py`` passes its whole config to the registrant (``build_registrant(dict(
smplify_config))``), so a config for it must not carry ``custom_imports`` (``SMPLify.__init__``
has no such argument); import this module at the top of the config file instead (mmcv 1.x runs
the file and drops module names from the resulting config)::

    _base_ = ['smplify3d.py']       # mmhuman3d's config for 3D keypoints
    import posendf_plugin.integrations.mmhuman3d  # noqa: F401 -- registers PoseNDFPriorLoss
    pose_prior_loss = dict(type='PoseNDFPriorLoss', prior='posendf_density',
                           loss_weight=1e-3, reduction='sum')

The weight depends on the base config's data term: 1e-3 with ``smplify3d.py`` (measured on real
unseen poses in the real tool, integrations/README.md: better than no prior in MPJPE and 3.7°
in joint angle; 1 or more over-regularises); the GMM-equivalent 2.29e5 / 2.40e5 of the
README's "Calibrated weights" only reproduces the strength of a base config's GMM
(``_delete_=True`` then drops its ``prior_folder``/``num_gaussians``).
"""
from __future__ import annotations

import importlib
import importlib.util
import warnings
from typing import List, Mapping, Optional

import torch
from torch import nn

from ._common import PriorLike, _weights_note, check_layout, check_margin, guard_line_search, prior_energy, resolve_prior

__all__ = ["PoseNDFPriorLoss", "register_in", "register_mmhuman3d", "register_mmengine", "REGISTERED_IN"]

_REDUCTIONS = (None, "none", "mean", "sum")
_NAME = "PoseNDFPriorLoss"
_MMCV_HINT = (
    "mmhuman3d needs mmcv 1.x (1.3.17 <= mmcv < 1.8.0); with torch installed: pip install "
    "'setuptools<70' wheel && pip install --no-build-isolation mmcv==1.7.2 (its setup.py imports "
    "pkg_resources, which current setuptools no longer has)"
)

#: descriptions of the registries this module registered ``PoseNDFPriorLoss`` in at import
REGISTERED_IN: List[str] = []


class PoseNDFPriorLoss(nn.Module):
    """Pose-prior loss with mmhuman3d's conventions.

    Args:
        prior: prior name (``'posendf'``, ``'posendf_density'``, ``'nrdf'``, ``'vposer'``,
            ``'gmm'``...) resolved with ``get_prior`` or a built :class:`~posendf_plugin.priors.base.PosePrior`.
        reduction: ``'none'`` (``(B,)``), ``'mean'`` or ``'sum'`` over the batch.
        loss_weight: multiplies the per-sample energy.
        prior_kwargs: passed to ``get_prior`` (e.g. ``dict(checkpoint='my_ndf.pt')``).
        expected_width: flat axis-angle width the body model uses (69 SMPL, 63 SMPL-X); the
            default ``None`` accepts 63/69/72 and the other layouts of ``to_body_quat``.
        margin: per-sample energy ``max(E − margin, 0)`` (0 = off): poses the prior finds
            plausible are left to the data term.

    Building it guards ``torch.optim.lbfgs``'s line search, which mmhuman3d's SMPLify uses
    (:func:`~._common.guard_line_search`: a trial step that overflows the loss no longer turns
    the fit into NaN; finite steps unchanged), for the rest of the process.
    """

    def __init__(
        self,
        prior: PriorLike = "posendf",
        reduction: Optional[str] = "mean",
        loss_weight: float = 1.0,
        prior_kwargs: Optional[Mapping] = None,
        expected_width: Optional[int] = None,
        margin: float = 0.0,
    ) -> None:
        super().__init__()
        _check_reduction(reduction, "reduction")
        self.margin = check_margin(margin)
        self.prior = resolve_prior(prior, prior_kwargs)
        guard_line_search("torch.optim.lbfgs")
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
        loss = weight * prior_energy(self.prior, body_pose, self.margin)
        if reduction == "mean":
            return loss.mean()
        if reduction == "sum":
            return loss.sum()
        return loss

    def extra_repr(self) -> str:
        margin = f", margin={self.margin:g}" if self.margin else ""
        return f"prior={self.prior.name}{_weights_note(self.prior)}, reduction={self.reduction}, loss_weight={self.loss_weight:g}{margin}"


def _check_reduction(value, name: str) -> None:
    if value not in _REDUCTIONS:
        raise ValueError(f"{name} must be one of 'none', 'mean', 'sum' or None, got {value!r}")


def _is_registry(obj) -> bool:
    return isinstance(getattr(obj, "module_dict", None), Mapping) and callable(getattr(obj, "register_module", None))


def _register(registry, name: str, quiet: bool) -> bool:
    """Register; ``False`` when it was already there (warns unless ``quiet``)."""
    if not _is_registry(registry):
        raise TypeError(
            f"registry must be an mmcv 1.x or mmengine Registry (with module_dict and "
            f"register_module), got {type(registry).__name__}"
        )
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    existing = registry.module_dict.get(name)
    if existing is PoseNDFPriorLoss:
        if not quiet:
            warnings.warn(
                f"{name} is already registered in registry '{registry.name}' (importing "
                "posendf_plugin.integrations.mmhuman3d registers it); nothing to do",
                UserWarning,
                stacklevel=3,
            )
        return False
    if existing is not None and (existing.__module__, existing.__qualname__) == (
        PoseNDFPriorLoss.__module__, PoseNDFPriorLoss.__qualname__
    ):  # this module imported again (importlib.reload, or removed from sys.modules): take its place
        registry.register_module(name=name, module=PoseNDFPriorLoss, force=True)
        return True
    if existing is not None:
        raise KeyError(
            f"registry '{registry.name}' already has a different '{name}' ({existing!r}); "
            "pass another name, e.g. register_in(registry, name='PoseNDFPriorLoss2'), and use it as type="
        )
    registry.register_module(name=name, module=PoseNDFPriorLoss)
    return True


def register_in(registry, name: str = _NAME) -> None:
    """Register :class:`PoseNDFPriorLoss` in ``registry``: an mmcv 1.x ``Registry`` (e.g.
    mmhuman3d's ``LOSSES``) or an mmengine one (e.g. a project's ``MODELS``).

    Registering the same class again warns and keeps the entry; another class under ``name`` is
    a ``KeyError``; something that is not a registry is a ``TypeError``.
    """
    _register(registry, name, quiet=False)


def _namespace_only(spec) -> bool:
    """``find_spec`` found a folder without ``__init__.py`` (a namespace package), e.g. the
    parent of a clone on the path, not the installed mmhuman3d package."""
    return spec is not None and spec.origin in (None, "namespace")


def _mmhuman3d_losses():
    spec = importlib.util.find_spec("mmhuman3d")
    if _namespace_only(spec):
        where = ", ".join(str(p) for p in (spec.submodule_search_locations or []))
        raise ImportError(
            f"the 'mmhuman3d' on the path is a folder without __init__.py ({where}), not the "
            "mmhuman3d package: run from another folder (e.g. inside the clone) or put the clone's "
            "root, not its parent, on sys.path / PYTHONPATH"
        )
    if spec is None:
        raise ImportError(
            "mmhuman3d is not installed, so there is no mmhuman3d LOSSES registry to register "
            "PoseNDFPriorLoss in; install mmhuman3d (with mmcv 1.x), or for an OpenMMLab 2.x project "
            "use register_mmengine() / register_in(<your registry>)"
        )
    try:
        builder = importlib.import_module("mmhuman3d.models.losses.builder")
    except ImportError as e:
        raise ImportError(
            f"mmhuman3d is installed but mmhuman3d.models.losses.builder does not import "
            f"({type(e).__name__}: {e}); {_MMCV_HINT}"
        ) from e
    registry = getattr(builder, "LOSSES", None)
    if not _is_registry(registry):
        raise ImportError(
            "mmhuman3d.models.losses.builder has no LOSSES registry (a different mmhuman3d "
            "version?); use register_in(<the registry its build_loss uses>)"
        )
    return registry


def register_mmhuman3d() -> None:
    """Register :class:`PoseNDFPriorLoss` in mmhuman3d's ``LOSSES`` (mmcv 1.x).

    Raises:
        ImportError: mmhuman3d, or the mmcv 1.x it needs, is not importable (the message says
            what to install).
    """
    _register(_mmhuman3d_losses(), _NAME, quiet=False)


def _mmengine_models(registry):
    if registry is not None:
        return registry
    try:
        from mmengine.registry import MODELS
    except ImportError as e:
        raise ImportError(
            "mmengine is not installed, so there is no OpenMMLab 2.x MODELS registry; pip install "
            "'posendf-plugin[mm]' (or pip install mmengine-lite). For mmhuman3d (mmcv 1.x) use "
            "register_mmhuman3d()"
        ) from e
    return MODELS


def register_mmengine(registry=None) -> None:
    """Register :class:`PoseNDFPriorLoss` in mmengine's root ``MODELS`` (``registry=None``; every
    OpenMMLab 2.x project's ``MODELS`` finds it there) or in the mmengine ``registry`` given.

    Raises:
        ImportError: mmengine is not installed (with ``registry=None``).
    """
    _register(_mmengine_models(registry), _NAME, quiet=False)


def _register_at_import() -> None:
    if importlib.util.find_spec("mmhuman3d") is not None:
        try:
            _register(_mmhuman3d_losses(), _NAME, quiet=True)
            REGISTERED_IN.append("mmhuman3d.models.losses.builder.LOSSES")
        except ImportError as e:
            warnings.warn(f"mmhuman3d found but PoseNDFPriorLoss could not be registered in it: {e}", stacklevel=3)
    if importlib.util.find_spec("mmengine") is not None:
        try:
            _register(_mmengine_models(None), _NAME, quiet=True)
            REGISTERED_IN.append("mmengine.registry.MODELS")
        except ImportError:  # pragma: no cover - a broken mmengine install
            pass


_register_at_import()
