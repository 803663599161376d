"""Pose-NDF in place of the GMM of SPIN-style SMPLify (nkolot/SPIN ``smplify/``).

SPIN's ``SMPLify.__init__`` builds ``self.pose_prior = MaxMixturePrior(prior_folder='data',
num_gaussians=8, dtype=torch.float32).to(device)`` and ``smplify/losses.py:body_fitting_loss``
computes ``pose_prior_loss = (pose_prior_weight ** 2) * pose_prior(body_pose, betas)`` with
``body_pose (B, 69)`` (SMPL body pose, hands included), adds it to other ``(B,)`` terms and sums
over the batch. :class:`SPINPosePrior` has that call signature and returns ``(B,)``;
:func:`swap_pose_prior` puts it into an existing SPIN ``SMPLify`` instance.

``SMPLify.__call__`` does not pass ``pose_prior_weight`` (the default 4.78 tuned for the GMM
is used), so the NDF energy is rescaled inside the module with ``scale`` (see the README for
the calibrated value).
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import nn

from ._common import SMPL_BODY_POSE_WIDTH, HostPosePrior, PriorLike, resolve_prior

__all__ = ["SPINPosePrior", "swap_pose_prior", "SPIN_POSE_PRIOR_WEIGHT"]

#: ``body_fitting_loss``'s default ``pose_prior_weight`` (tuned for SPIN's GMM)
SPIN_POSE_PRIOR_WEIGHT = 4.78


class SPINPosePrior(HostPosePrior):
    """Drop-in for SPIN's ``MaxMixturePrior``: ``forward(body_pose (B, 69), betas) -> (B,)``.

    Args:
        prior: prior name or built :class:`~posendf_plugin.priors.base.PosePrior`.
        scale: multiplies the energy so SPIN's GMM-tuned ``pose_prior_weight`` can stay.
        expected_width: 69 (SPIN's SMPL body pose); ``None`` accepts any layout.
        prior_kwargs: for ``get_prior`` when ``prior`` is a name.
        margin: per-pose energy ``max(E − margin, 0)``; 0 = off.
    """

    def __init__(
        self,
        prior: PriorLike = "posendf",
        scale: float = 1.0,
        expected_width: Optional[int] = SMPL_BODY_POSE_WIDTH,
        prior_kwargs: Optional[Mapping] = None,
        margin: float = 0.0,
    ) -> None:
        super().__init__(resolve_prior(prior, prior_kwargs), expected_width=expected_width, scale=scale, host="SPIN SMPLify",
                         margin=margin)


def swap_pose_prior(
    smplify,
    prior: PriorLike = "posendf",
    scale: float = 1.0,
    prior_kwargs: Optional[Mapping] = None,
    margin: float = 0.0,
) -> nn.Module:
    """Replace ``smplify.pose_prior`` (SPIN's GMM) by a :class:`SPINPosePrior`.

    Args:
        smplify: a SPIN ``smplify.SMPLify`` instance (anything with a ``pose_prior``
            attribute and, optionally, ``device``).
        prior, scale, prior_kwargs, margin: as :class:`SPINPosePrior`.
    Returns:
        The previous ``pose_prior`` (to swap back).
    Raises:
        TypeError: ``smplify`` has no ``pose_prior`` attribute.
    """
    if not hasattr(smplify, "pose_prior"):
        raise TypeError(
            f"{type(smplify).__name__} has no 'pose_prior' attribute: pass a SPIN "
            "smplify.SMPLify instance (it sets self.pose_prior = MaxMixturePrior(...))"
        )
    previous = smplify.pose_prior
    if isinstance(previous, SPINPosePrior):
        raise ValueError(
            "this SMPLify already uses a posendf_plugin prior; swap back the returned original "
            "first or set smplify.pose_prior directly"
        )
    new = SPINPosePrior(prior, scale=scale, prior_kwargs=prior_kwargs, margin=margin)
    device = getattr(smplify, "device", None)
    if device is not None:
        new = new.to(torch.device(device))
    smplify.pose_prior = new
    return previous
