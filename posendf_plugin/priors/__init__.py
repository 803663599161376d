"""Pose priors behind one interface (:class:`PosePrior`), selectable by name with
:func:`get_prior`: ``none``, ``posendf``, ``nrdf``, ``vposer``, ``gmm``."""
from .base import PosePrior, ProjectionResult, available_priors, get_prior, register_prior

__all__ = ["PosePrior", "ProjectionResult", "available_priors", "get_prior", "register_prior"]
