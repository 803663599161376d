"""Projection onto the zero level set (pure functions + a tiny trained model)."""
import pytest
import torch

from posendf_plugin import rotations as R
from posendf_plugin.priors.base import ProjectionResult
from posendf_plugin.projection import project, projection_step, tangent_gradient

from _ndf_fixtures import clean_poses, labelled, trained_tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _sphere_field(target):
    """A known field: Pose-NDF distance to one target pose (|∇| = 1 per joint)."""
    return lambda q: R.posendf_pose_distance(q, target.expand_as(q))


def _q(n, seed=0):
    return R.quat_random(n, 21, generator=torch.Generator().manual_seed(seed))


def test_tangent_gradient_is_orthogonal():
    q, g = _q(3), torch.randn(3, 21, 4)
    t = tangent_gradient(q, g)
    torch.testing.assert_close((t * q).sum(-1), torch.zeros(3, 21), atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", ["posendf", "riemannian"])
def test_step_keeps_unit_canonical_quats(method):
    q = _q(4)
    f = torch.rand(4)
    out = projection_step(q, f, torch.randn(4, 21, 4), method=method)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(4, 21))
    assert bool((out[..., 0] >= 0).all())


@pytest.mark.parametrize("method", ["posendf", "riemannian"])
def test_converges_on_known_field(method):
    target = R.axis_angle_to_quat(torch.full((1, 21, 3), 0.2))
    start = R.quat_canonical(R.quat_mul(target, R.axis_angle_to_quat(torch.randn(8, 21, 3) * 0.3)))
    fn = _sphere_field(target)
    res = project(fn, start, method=method, max_iter=200, tol=1e-3)
    assert isinstance(res, ProjectionResult)
    assert res.poses.shape == (8, 21, 4) and res.distance.shape == (8,)
    assert bool(res.converged.all()) and bool((res.distance <= 1e-3).all())
    assert bool((res.iterations > 0).all()) and bool((res.iterations <= 200).all())
    assert float(fn(res.poses).max()) <= 1e-3 + 1e-6


def test_converged_poses_do_not_move_and_cap_is_respected():
    target = R.quat_identity(1, 21)
    fn = _sphere_field(target)
    start = torch.cat([target, _q(3)])
    res = project(fn, start, max_iter=2, tol=1e-4)
    assert int(res.iterations[0]) == 0 and bool(res.converged[0])
    torch.testing.assert_close(res.poses[0], target[0])
    assert bool((res.iterations <= 2).all())
    with pytest.raises(ValueError, match="unknown projection method"):
        project(fn, start, method="newton")


@pytest.mark.parametrize("method", ["posendf", "riemannian"])
def test_projection_reduces_f_on_tiny_trained_model(method):
    from posendf_plugin.prior import PoseNDF

    prior = PoseNDF.from_checkpoint(trained_tiny())
    clean = clean_poses()
    noisy, true_d, _ = labelled(clean, 200, seed=7)
    before = prior.distance(noisy)
    res = prior.project(noisy, method=method, max_iter=50, tol=1e-3)
    assert float(res.distance.mean()) < 0.2 * float(before.mean())
    assert float(res.converged.float().mean()) > 0.9
    # and the projected poses really are closer to the clean data
    after_true = R.posendf_pose_distance(res.poses[:, None], clean[None]).min(dim=1).values
    assert float(after_true.mean()) < float(true_d.mean())


@pytest.mark.parametrize("method", ["posendf", "riemannian"])
def test_masked_projection_moves_only_the_free_joints(method):
    target = R.axis_angle_to_quat(torch.full((1, 21, 3), 0.2))
    start = R.quat_canonical(R.quat_mul(target, R.axis_angle_to_quat(torch.randn(4, 21, 3, generator=torch.Generator().manual_seed(1)) * 0.3)))
    free = torch.zeros(4, 21, dtype=torch.bool)
    free[:, [15, 17, 19]] = True  # left arm
    start = torch.where(free[..., None], start, target)  # the known joints agree with the field's zero set
    fn = _sphere_field(target)
    res = project(fn, start, method=method, max_iter=100, tol=0.0, free=free)
    torch.testing.assert_close(res.poses[~free], start[~free])  # fixed joints exactly kept
    ang = R.quat_geodesic_angle(res.poses[free], target.expand(4, -1, -1)[free])
    assert float(ang.max()) < 1e-2  # free joints reach the target's rotations
    with pytest.raises(ValueError, match="free"):
        project(fn, start, free=torch.ones(4, 20, dtype=torch.bool))


@pytest.mark.parametrize("method", ["posendf", "riemannian"])
def test_monotone_projection_never_raises_f_when_the_zero_set_is_out_of_reach(method):
    # the known joints are off the field's zero set, so f cannot reach 0 by moving the free ones:
    # the plain Newton step (aimed at f = 0) overshoots; the monotone one only takes steps that lower f
    target = R.axis_angle_to_quat(torch.full((1, 21, 3), 0.2))
    g = torch.Generator().manual_seed(2)
    start = R.quat_canonical(R.quat_mul(target, R.axis_angle_to_quat(torch.randn(6, 21, 3, generator=g) * 0.4)))
    free = torch.zeros(6, 21, dtype=torch.bool)
    free[:, [15, 17, 19]] = True
    fn = _sphere_field(target)
    f0 = fn(start)
    prev = f0
    for steps in (1, 2, 5, 20):
        res = project(fn, start, method=method, step_size=1.0, max_iter=steps, tol=0.0, free=free, monotone=True)
        torch.testing.assert_close(res.poses[~free], start[~free])
        torch.testing.assert_close(res.distance, fn(res.poses))  # reported f is the f of the poses
        assert bool((res.distance <= prev + 1e-6).all())  # more steps never raise f
        assert bool((res.iterations <= steps).all())
        prev = res.distance
    assert float(prev.mean()) < float(f0.mean())
    # the reachable minimum: the free joints at the target's rotations
    best = fn(torch.where(free[..., None], target.expand_as(start), start))
    torch.testing.assert_close(prev, best, atol=1e-3, rtol=0)
