"""SPIN-style SMPLify adapter, against a harness reproducing nkolot/SPIN's documented calls.

SPIN is not on PyPI. The harness copies the two places the GMM is used: ``SMPLify.__init__``
sets ``self.pose_prior`` (moved ``.to(device)``), and ``smplify/losses.py:body_fitting_loss``
computes ``(pose_prior_weight ** 2) * pose_prior(body_pose, betas)`` with ``body_pose (B, 69)``,
adds it to the other ``(B,)`` terms and sums over the batch.
"""
from __future__ import annotations

import pytest
import torch

from test_integrations_common import TinyPrior, random_poses

from posendf_plugin.integrations.spin import SPIN_CALIBRATED_SCALES, SPIN_POSE_PRIOR_WEIGHT, SPINPosePrior, swap_pose_prior


class GMMStandIn(torch.nn.Module):
    def forward(self, pose, betas):
        return (pose ** 2).sum(-1)


class HarnessSMPLify:
    """SPIN's SMPLify, reduced to what touches the prior."""

    def __init__(self, device=torch.device("cpu")):
        self.device = device
        self.pose_prior = GMMStandIn().to(device)

    def body_loss(self, body_pose, betas, pose_prior_weight=SPIN_POSE_PRIOR_WEIGHT, angle_prior_weight=15.2):
        # losses.body_fitting_loss without the reprojection term
        pose_prior_loss = (pose_prior_weight ** 2) * self.pose_prior(body_pose, betas)
        angle = torch.exp(body_pose[:, [52, 55, 9, 12]] * torch.tensor([1., -1., -1, -1.])) ** 2
        angle_prior_loss = (angle_prior_weight ** 2) * angle.sum(dim=-1)
        shape_prior_loss = (5 ** 2) * (betas ** 2).sum(dim=-1)
        total_loss = pose_prior_loss + angle_prior_loss + shape_prior_loss
        return total_loss.sum(), pose_prior_loss


def test_swap_and_call_like_spin():
    smplify = HarnessSMPLify()
    old = swap_pose_prior(smplify, TinyPrior(), scale=0.5)
    assert isinstance(old, GMMStandIn) and isinstance(smplify.pose_prior, SPINPosePrior)
    body_pose = random_poses(5, 69).requires_grad_(True)
    betas = torch.zeros(5, 10, requires_grad=True)
    total, pose_term = smplify.body_loss(body_pose, betas)
    assert pose_term.shape == (5,)
    expected = SPIN_POSE_PRIOR_WEIGHT ** 2 * 0.5 * TinyPrior().energy(body_pose)
    assert torch.allclose(pose_term, expected, atol=1e-5)
    total.backward()
    assert body_pose.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="already uses a posendf_plugin prior"):
        swap_pose_prior(smplify, TinyPrior())
    smplify.pose_prior = old  # swapping back is plain assignment


def test_wrong_layout_names_both():
    prior = SPINPosePrior(TinyPrior(), scale=1.0)
    with pytest.raises(ValueError, match=r"\(3, 63\).*SMPL-X body_pose.*\(B, 69\).*SMPL body_pose"):
        prior(random_poses(3, 63), torch.zeros(3, 10))


def test_bad_host_object():
    with pytest.raises(TypeError, match="no 'pose_prior' attribute"):
        swap_pose_prior(object(), TinyPrior())


def test_default_scale_is_the_calibrated_one_for_shipped_models(recwarn):
    """``swap_pose_prior(smplify)`` with no scale keeps SPIN's GMM-tuned 4.78 *and* works: the
    shipped fields get their calibrated scale (integrations/README.md, 'Calibrated weights'),
    not 1.0 (which left the prior ~100 × too weak in SPIN's squared weight)."""
    assert SPINPosePrior("posendf").scale == SPIN_CALIBRATED_SCALES["posendf"] == 1.00e4
    assert SPINPosePrior("posendf_density").scale == SPIN_CALIBRATED_SCALES["posendf_density"] == 1.05e4
    assert SPINPosePrior("nrdf").scale == SPIN_CALIBRATED_SCALES["nrdf"]
    assert SPINPosePrior("gmm").scale == 1.0  # SPIN's own kind of prior: its weight already fits
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    smplify = HarnessSMPLify()
    swap_pose_prior(smplify, "posendf_density")
    assert smplify.pose_prior.scale == 1.05e4
    # a model of the user's own: 1.0, and a warning that says to pass the scale
    with pytest.warns(UserWarning, match=r"SPIN SMPLify: no calibrated scale for this 'tiny_test' model.*pass scale="):
        assert SPINPosePrior(TinyPrior()).scale == 1.0
    assert SPINPosePrior(TinyPrior(), scale=3.0).scale == 3.0
