"""Loss terms and metrics of posendf_plugin.fitting.losses: values against hand computations,
gradients, and the properties the fitting relies on."""
from __future__ import annotations

import math

import pytest
import torch

from posendf_plugin import rotations as R
from posendf_plugin.fitting import losses as L


def test_perspective_projection_pinhole_and_batch():
    pts = torch.tensor([[[0.0, 0.0, 10.0], [1.0, -2.0, 5.0]]])
    uv = L.perspective_projection(pts, torch.tensor([1000.0]), torch.tensor([[320.0, 240.0]]))
    assert torch.allclose(uv, torch.tensor([[[320.0, 240.0], [520.0, -160.0]]]))
    # translation and per-axis focal lengths; leading batch dims
    uv2 = L.perspective_projection(pts.expand(2, 3, 2, 3), torch.tensor([1000.0, 500.0]),
                                   torch.tensor([0.0, 0.0]), translation=torch.tensor([0.0, 0.0, 5.0]))
    assert uv2.shape == (2, 3, 2, 2)
    assert torch.allclose(uv2[0, 0, 1], torch.tensor([100.0, -100.0]))
    # rotation is applied before translation
    rot = R.axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0]))
    uv3 = L.perspective_projection(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor(100.0), torch.zeros(2),
                                   translation=torch.tensor([0.0, 0.0, 2.0]), rotation=rot)
    assert torch.allclose(uv3, torch.tensor([[0.0, -50.0]]), atol=1e-4)  # model up -> image up (y < 0)


def test_projection_bad_shape_is_value_error():
    with pytest.raises(ValueError, match="points"):
        L.perspective_projection(torch.zeros(4, 2), torch.tensor(1.0), torch.zeros(2))


def test_gmof_quadratic_then_saturating():
    r = torch.tensor([0.0, 0.01, 1e4])
    g = L.gmof(r, 10.0)
    assert g[0] == 0 and torch.isclose(g[1], torch.tensor(1e-4), rtol=1e-3)
    assert torch.isclose(g[2], torch.tensor(100.0), rtol=1e-3)
    with pytest.raises(ValueError):
        L.gmof(r, 0.0)


def test_reprojection_ignores_zero_confidence_and_scales():
    proj = torch.zeros(2, 3, 2)
    kp = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [100.0, 100.0]]]).expand(2, 3, 2)
    conf = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    loss = L.reprojection_loss(proj, kp, conf, sigma=1000.0)
    assert torch.isclose(loss[0], torch.tensor(1.0), rtol=1e-3)  # the outlier has confidence 0
    assert loss[1] > loss[0]
    scaled = L.reprojection_loss(proj, kp, conf, sigma=1000.0, scale=torch.tensor([2.0, 2.0]))
    assert torch.isclose(scaled[0], torch.tensor(0.25), rtol=1e-3)


def test_bend_penalty_grows_only_for_the_wrong_direction():
    pose = torch.zeros(3, 63)
    pose[1, 52] = -1.0  # left elbow, natural direction
    pose[2, 52] = 1.0  # left elbow bent backwards
    b = L.bend_penalty(pose)
    assert torch.isclose(b[0], torch.tensor(4.0))
    assert b[1] < b[0] < b[2]
    # knees: positive x rotation is the natural bend (shin goes backwards)
    k = torch.zeros(2, 69)
    k[0, 9], k[1, 9] = 1.0, -1.0
    kb = L.bend_penalty(k)
    assert kb[0] < kb[1]
    with pytest.raises(ValueError, match="63 or 69"):
        L.bend_penalty(torch.zeros(72))


def test_temporal_terms():
    x = torch.arange(5.0)[:, None, None].expand(5, 2, 3).clone()  # constant velocity
    assert torch.isclose(L.velocity_loss(x), torch.tensor(math.sqrt(3.0)), rtol=1e-4)
    assert L.acceleration_loss(x) < 1e-10
    x[2] += 1.0
    assert L.acceleration_loss(x) > 0
    assert L.velocity_loss(x[:1]) == 0


def test_metrics_and_procrustes():
    g = torch.Generator().manual_seed(0)
    gt = torch.randn(4, 10, 3, generator=g)
    assert torch.allclose(L.mpjpe(gt + torch.tensor([0.0, 0.0, 1.0]), gt), torch.ones(4))
    rot = R.axis_angle_to_matrix(torch.tensor([0.3, -0.5, 1.0]))
    moved = 2.5 * gt @ rot.T + torch.tensor([1.0, 2.0, 3.0])
    assert L.pa_mpjpe(moved, gt).max() < 1e-4
    assert L.mpjpe(moved, gt).min() > 0.1
    # a reflection is not a rotation: PA-MPJPE stays > 0
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0])
    assert L.pa_mpjpe(mirrored, gt).min() > 1e-3
    traj = torch.cumsum(torch.randn(20, 5, 3, generator=g), 0)
    assert L.acceleration_error(traj, traj) == 0
    assert L.acceleration_error(traj + torch.linspace(0, 1, 20)[:, None, None], traj) < 1e-5  # linear drift
    with pytest.raises(ValueError, match="3 frames"):
        L.acceleration_error(traj[:2], traj[:2])
    with pytest.raises(ValueError, match="same shape"):
        L.mpjpe(gt, gt[:2])
