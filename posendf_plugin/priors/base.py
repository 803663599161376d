"""The interface every pose prior implements, and the name registry.

A prior is a thin ``nn.Module`` with:

* ``name`` — the registry name (``"posendf"``, ``"vposer"``...).
* ``energy(body_pose) -> (B,)`` — differentiable penalty, low for plausible poses. ``body_pose``
  is any layout :func:`posendf_plugin.skeleton.to_body_quat` accepts (flat axis-angle 63/69/72,
  ``(B, 21, 3)`` axis-angle, ``(B, 21, 4)`` quaternions ``(w, x, y, z)``, ``(B, 21, 3, 3)``).
* ``sample(n, seed) -> (n, 21, 4)`` — plausible poses as quaternions.
* ``project(body_pose, ...) -> ProjectionResult`` — optional: move poses onto the prior's
  manifold; priors without one raise ``NotImplementedError``.
* ``from_pretrained()`` / ``from_checkpoint(path)`` class methods.

Priors register a factory with :func:`register_prior`; :func:`get_prior` builds one by name.
The registry imports the modules of the built-in priors lazily, so importing this module is
cheap and the core never imports an integration.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch
from torch import nn

from .._checks import check_device
from ..skeleton import to_body_quat

__all__ = ["PosePrior", "ProjectionResult", "register_prior", "get_prior", "available_priors"]


@dataclass
class ProjectionResult:
    """Result of projecting poses onto a prior's manifold.

    Attributes:
        poses: ``(B, 21, 4)`` projected quaternions ``(w, x, y, z)``.
        distance: ``(B,)`` the prior's value after projection.
        converged: ``(B,)`` bool, distance below the tolerance.
        iterations: ``(B,)`` iterations each pose used.
    """

    poses: torch.Tensor
    distance: torch.Tensor
    converged: torch.Tensor
    iterations: torch.Tensor


class PosePrior(nn.Module):
    """Base class of all pose priors (see the module docstring for the contract)."""

    name: str = "base"

    def energy(self, body_pose) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, n: int, seed: Optional[int] = None) -> torch.Tensor:
        raise NotImplementedError(f"prior '{self.name}' cannot generate samples")

    def project(self, body_pose, **kwargs) -> ProjectionResult:
        raise NotImplementedError(f"prior '{self.name}' has no projection onto a manifold")

    def forward(self, body_pose) -> torch.Tensor:
        return self.energy(body_pose)

    @staticmethod
    def to_quat(body_pose) -> torch.Tensor:
        """Convert any supported body-pose layout to ``(B, 21, 4)``; see :mod:`skeleton`."""
        return to_body_quat(body_pose, "body_pose")


class NoPrior(PosePrior):
    """The "no prior" baseline: zero energy (keeps the gradient graph connected)."""

    name = "none"

    def energy(self, body_pose) -> torch.Tensor:
        q = self.to_quat(body_pose)
        return (q * 0.0).sum(dim=(-1, -2))

    @classmethod
    def from_pretrained(cls, **kwargs) -> "NoPrior":
        """The prior itself; it has no weights, so a ``checkpoint`` or ``pretrained`` model is refused."""
        given = {k: v for k, v in kwargs.items()
                 if k in ("checkpoint", "pretrained") and v is not None and not (k == "pretrained" and v == "none")}
        if given:
            raise ValueError(f"the 'none' prior has no weights to load ({', '.join(sorted(given))} given); "
                             "pick a prior name, e.g. get_prior('posendf', checkpoint=...)")
        return cls()

    @classmethod
    def from_checkpoint(cls, path, **_) -> "NoPrior":
        raise ValueError(f"{path}: the 'none' prior has no weights to load; use PoseNDF.from_checkpoint / "
                         "get_prior(NAME, checkpoint=...) with the prior the file belongs to")


_FACTORIES: Dict[str, Callable[..., PosePrior]] = {"none": NoPrior.from_pretrained}
#: built-in priors: name -> module that calls register_prior(name, ...) on import
_BUILTIN_MODULES: Dict[str, str] = {
    "posendf": "posendf_plugin.prior",
    "nrdf": "posendf_plugin.prior",
    "vposer": "posendf_plugin.priors.vposer",
    "gmm": "posendf_plugin.priors.gmm",
}


def register_prior(name: str, factory: Callable[..., PosePrior], overwrite: bool = False) -> None:
    """Make ``get_prior(name, **kw)`` call ``factory(**kw)``.

    Raises:
        ValueError: ``name`` is already registered (pass ``overwrite=True`` to replace it).
    """
    if name in _FACTORIES and not overwrite and _FACTORIES[name] is not factory:
        raise ValueError(f"a pose prior named '{name}' is already registered; pass overwrite=True to replace it")
    _FACTORIES[name] = factory


def available_priors() -> list:
    """Names accepted by :func:`get_prior`."""
    return sorted(set(_FACTORIES) | set(_BUILTIN_MODULES))


def get_prior(name: str, **kwargs) -> PosePrior:
    """Build a prior by name, e.g. ``get_prior("posendf")`` or
    ``get_prior("vposer", checkpoint="path.pt")``; ``device=`` (every prior) moves it there.
    ``"posendf_density"`` (the integrations' name) is ``get_prior("posendf", pretrained="posendf_density")``.

    Raises:
        ValueError: unknown name (the message lists the available ones), or a device this
            machine does not have.
    """
    if name == "posendf_density" and "posendf_density" not in _FACTORIES:  # the adapters' name for it
        name, kwargs = "posendf", {"pretrained": "posendf_density", **kwargs}
    if name not in _FACTORIES and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    if name not in _FACTORIES:
        raise ValueError(f"unknown pose prior '{name}'; available: {', '.join(available_priors())}")
    device = kwargs.pop("device", None)
    dev = check_device(device, "device") if device is not None else None
    prior = _FACTORIES[name](**kwargs)
    return prior.to(dev) if dev is not None else prior
