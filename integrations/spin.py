"""Pose-NDF in place of the GMM of SPIN-style SMPLify (nkolot/SPIN ``smplify/``).

SPIN's ``SMPLify.__init__`` builds ``self.pose_prior = MaxMixturePrior(prior_folder='data',
num_gaussians=8, dtype=torch.float32).to(device)`` and ``smplify/losses.py:body_fitting_loss``
computes ``pose_prior_loss = (pose_prior_weight ** 2) * pose_prior(body_pose, betas)`` with
``body_pose (B, 69)`` (SMPL body pose, hands included), adds it to other ``(B,)`` terms and sums
over the batch. :class:`SPINPosePrior` has that call signature and returns ``(B,)``;
:func:`swap_pose_prior` puts it into an existing SPIN ``SMPLify`` instance.

``SMPLify.__call__`` does not pass ``pose_prior_weight`` (the default 4.78 tuned for the GMM
is used), so the NDF energy is rescaled inside the module with ``scale``: by default the
calibrated value of the shipped model (:data:`SPIN_CALIBRATED_SCALES`; the README's
"Calibrated weights"); for a model of your own pass it.

The default prior is the density-aware field ``'posendf_density'`` (since 2026-12-06; before, the
distance field ``'posendf'``, which stays available by name): in SPIN's own ``SMPLify.__call__``
on 32 real poses of people no shipped prior was trained on it fitted every one closer in joint
angle (15.1° vs 20.5°, two noise draws) and 13 mm lower in PA-MPJPE (integrations/README.md,
SPIN section).
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import torch
from torch import nn

from ._common import SMPL_BODY_POSE_WIDTH, HostPosePrior, PriorLike, calibrated_scale, resolve_prior

__all__ = ["SPINPosePrior", "swap_pose_prior", "SPIN_POSE_PRIOR_WEIGHT", "SPIN_CALIBRATED_SCALES"]

#: ``body_fitting_loss``'s default ``pose_prior_weight`` (tuned for SPIN's GMM)
SPIN_POSE_PRIOR_WEIGHT = 4.78
#: ``scale`` that keeps SPIN's 4.78 for the shipped models: (calibrated weight / 4.78)², the
#: real-vs-noisy energy gap matched to the GMM's at σ = 0.1 (``python -m
#: posendf_plugin.integrations.vposer --poses posendf_plugin/assets/cmu_val.npz --priors posendf
#: posendf_density nrdf vposer gmm``; integrations/README.md, "Calibrated weights")
SPIN_CALIBRATED_SCALES: Dict[str, float] = {"posendf": 1.00e4, "posendf_density": 1.05e4, "nrdf": 1.97e3}


class SPINPosePrior(HostPosePrior):
    """Drop-in for SPIN's ``MaxMixturePrior``: ``forward(body_pose (B, 69), betas) -> (B,)``.

    Args:
        prior: prior name or built :class:`~posendf_plugin.priors.base.PosePrior`.
        scale: multiplies the energy so SPIN's GMM-tuned ``pose_prior_weight`` can stay;
            ``None``: :data:`SPIN_CALIBRATED_SCALES` for a shipped model, 1.0 for the package's
            GMM (SPIN's kind of prior), else 1.0 with a warning to pass one.
        expected_width: 69 (SPIN's SMPL body pose); ``None`` accepts any layout.
        prior_kwargs: for ``get_prior`` when ``prior`` is a name.
        margin: per-pose energy ``max(E − margin, 0)``; 0 = off.
    """

    def __init__(
        self,
        prior: PriorLike = "posendf_density",
        scale: Optional[float] = None,
        expected_width: Optional[int] = SMPL_BODY_POSE_WIDTH,
        prior_kwargs: Optional[Mapping] = None,
        margin: float = 0.0,
    ) -> None:
        built = resolve_prior(prior, prior_kwargs)
        if scale is None:
            scale = calibrated_scale(built, SPIN_CALIBRATED_SCALES, "SPIN SMPLify", default_for=("gmm", "none"))
        super().__init__(built, expected_width=expected_width, scale=scale, host="SPIN SMPLify", margin=margin)


def swap_pose_prior(
    smplify,
    prior: PriorLike = "posendf_density",
    scale: Optional[float] = None,
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
