"""posendf-plugin: Pose-NDF, a learned distance field over SMPL body poses, as a pose prior.

Quaternions are ``(w, x, y, z)`` everywhere (see :mod:`posendf_plugin.rotations`).

``from posendf_plugin import PoseNDF, get_prior`` works; both are imported on first use, so
``import posendf_plugin`` (and ``python -m posendf_plugin --help``) stays light.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["PoseNDF", "PosePrior", "get_prior", "available_priors", "__version__"]

#: public name -> module that defines it (imported lazily, PEP 562)
_LAZY = {
    "PoseNDF": "posendf_plugin.prior",
    "PosePrior": "posendf_plugin.priors",
    "get_prior": "posendf_plugin.priors",
    "available_priors": "posendf_plugin.priors",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .prior import PoseNDF
    from .priors import PosePrior, available_priors, get_prior


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'posendf_plugin' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(__all__))
