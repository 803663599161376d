import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy.spatial.transform import Rotation

from posendf_plugin import rotations as R

DTYPES = [torch.float32, torch.float64]


def rand_aa(*shape, dtype=torch.float64, seed=0, max_angle=math.pi):
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(*shape, 3, generator=g, dtype=dtype), dim=-1)
    ang = torch.rand(*shape, 1, generator=g, dtype=dtype) * max_angle
    return axis * ang


@pytest.mark.parametrize("shape", [(), (5,), (3, 4)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trips_batch_ranks(shape, dtype):
    aa = rand_aa(*shape, dtype=dtype, max_angle=3.1)
    q = R.axis_angle_to_quat(aa)
    assert q.shape == shape + (4,)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(R.quat_to_axis_angle(q), aa, atol=tol * 10, rtol=0)
    m = R.quat_to_matrix(q)
    assert m.shape == shape + (3, 3)
    torch.testing.assert_close(R.matrix_to_quat(m), R.quat_canonical(q), atol=tol * 10, rtol=0)
    torch.testing.assert_close(R.rot6d_to_matrix(R.matrix_to_rot6d(m)), m, atol=tol * 10, rtol=0)
    torch.testing.assert_close(R.matrix_to_axis_angle(R.axis_angle_to_matrix(aa)), aa, atol=tol * 50, rtol=0)


def test_against_scipy():
    aa = rand_aa(200, seed=1)
    ref = Rotation.from_rotvec(aa.numpy())
    q = R.axis_angle_to_quat(aa)
    q_ref = R.quat_xyzw_to_wxyz(torch.from_numpy(ref.as_quat()))
    assert float(R.posendf_joint_distance(q, q_ref).abs().max()) < 1e-10
    np.testing.assert_allclose(R.quat_to_matrix(q).numpy(), ref.as_matrix(), atol=1e-10)
    np.testing.assert_allclose(R.quat_to_matrix(q.float()).numpy(), ref.as_matrix(), atol=1e-5)
    # composition order: (a*b) applies b first
    q2 = R.axis_angle_to_quat(rand_aa(200, seed=2))
    ref2 = Rotation.from_quat(R.quat_wxyz_to_xyzw(q2).numpy())
    prod = R.quat_mul(q, q2)
    np.testing.assert_allclose(R.quat_to_matrix(prod).numpy(), (ref * ref2).as_matrix(), atol=1e-10)
    v = torch.randn(200, 3, dtype=torch.float64)
    np.testing.assert_allclose(R.quat_apply(q, v).numpy(), ref.apply(v.numpy()), atol=1e-10)
    ang = R.quat_geodesic_angle(q, q2).numpy()
    np.testing.assert_allclose(ang, (ref.inv() * ref2).magnitude(), atol=1e-8)


def test_against_roma_xyzw():
    roma = pytest.importorskip("roma")
    aa = rand_aa(100, seed=3, dtype=torch.float32)
    q_roma = roma.rotvec_to_unitquat(aa)  # xyzw
    q = R.axis_angle_to_quat(aa)
    assert float(R.posendf_joint_distance(q, R.quat_xyzw_to_wxyz(q_roma)).abs().max()) < 1e-5
    m = roma.special_procrustes(torch.randn(100, 3, 3))
    q_m = R.quat_xyzw_to_wxyz(roma.rotmat_to_unitquat(m))
    assert float(R.posendf_joint_distance(R.matrix_to_quat(m), q_m).abs().max()) < 1e-5
    torch.testing.assert_close(R.quat_to_matrix(q_m), m, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_finite_at_identity_and_pi(dtype):
    aa = torch.zeros(4, 3, dtype=dtype, requires_grad=True)
    R.axis_angle_to_quat(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()
    q = R.quat_identity(4, dtype=dtype).requires_grad_(True)
    R.quat_to_axis_angle(q).sum().backward()
    assert torch.isfinite(q.grad).all()
    a = R.quat_identity(3, dtype=dtype).requires_grad_(True)
    b = R.quat_identity(3, dtype=dtype)
    d = R.quat_geodesic_angle(a, b) + R.nrdf_pose_distance(a[None], b[None]).sum()
    d.sum().backward()
    assert torch.isfinite(a.grad).all()
    assert float(R.quat_geodesic_angle(a, b).detach().max()) < 1e-6
    # near pi
    aa = torch.tensor([[math.pi - 1e-6, 0.0, 0.0], [0.0, 0.0, math.pi]], dtype=dtype, requires_grad=True)
    q = R.axis_angle_to_quat(aa)
    R.quat_to_axis_angle(q).sum().backward()
    assert torch.isfinite(aa.grad).all()
    m = R.axis_angle_to_matrix(aa.detach())
    back = R.matrix_to_axis_angle(m)
    assert torch.allclose(back.norm(dim=-1), aa.detach().norm(dim=-1), atol=1e-3 if dtype == torch.float32 else 1e-6)


def test_small_angle_values_match_exact():
    aa = torch.tensor([[1e-4, -2e-4, 3e-4]], dtype=torch.float64)
    ref = Rotation.from_rotvec(aa.numpy()).as_quat()
    q = R.axis_angle_to_quat(aa)
    np.testing.assert_allclose(R.quat_wxyz_to_xyzw(q).numpy(), ref, atol=1e-14)
    np.testing.assert_allclose(R.quat_to_axis_angle(q).numpy(), aa.numpy(), atol=1e-14)


def test_distances():
    a = R.quat_random(10, 21, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float(R.posendf_pose_distance(a, -a).abs().max()) < 1e-12  # sign invariant
    b = R.quat_random(10, 21, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    dot = (a * b).sum(-1).abs()
    torch.testing.assert_close(R.nrdf_joint_distance(a, b), 2 * torch.acos(dot.clamp(max=1)))
    torch.testing.assert_close(R.posendf_pose_distance(a, b), (1 - dot).sum(-1))
    torch.testing.assert_close(R.nrdf_pose_distance(a, b), (2 * torch.acos(dot)).pow(2).sum(-1).sqrt())


def test_slerp_endpoints_and_midpoint():
    a = R.axis_angle_to_quat(torch.tensor([0.0, 0.0, 0.0]))
    b = R.axis_angle_to_quat(torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(R.quat_slerp(a, b, 0.0), a)
    torch.testing.assert_close(R.quat_slerp(a, -b, 1.0).abs(), b.abs(), atol=1e-6, rtol=0)
    mid = R.quat_slerp(a, b, 0.5)
    torch.testing.assert_close(R.quat_to_axis_angle(mid), torch.tensor([0.0, 0.5, 0.0]), atol=1e-6, rtol=0)


def test_shape_errors_name_the_shape():
    with pytest.raises(ValueError, match=r"must have shape \(\.\.\., 3\), got \(2, 4\)"):
        R.axis_angle_to_quat(torch.zeros(2, 4))
    with pytest.raises(TypeError):
        R.quat_to_matrix(np.zeros((2, 4)))


unit_quats = st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
    lambda v: sum(x * x for x in v) > 1e-2
)


@settings(max_examples=200, deadline=None)
@given(unit_quats, unit_quats)
def test_property_mul_matches_matrix_product(v1, v2):
    a = R.quat_normalize(torch.tensor(v1, dtype=torch.float64))
    b = R.quat_normalize(torch.tensor(v2, dtype=torch.float64))
    torch.testing.assert_close(R.quat_to_matrix(R.quat_mul(a, b)), R.quat_to_matrix(a) @ R.quat_to_matrix(b))
    back = R.matrix_to_quat(R.quat_to_matrix(a))
    assert float(R.posendf_joint_distance(back, a)) < 1e-10
    aa = R.quat_to_axis_angle(a)
    assert float(aa.norm()) <= math.pi + 1e-9
    assert float(R.posendf_joint_distance(R.axis_angle_to_quat(aa), a)) < 1e-10
    assert float(R.quat_geodesic_angle(a, b)) <= math.pi + 1e-9


def test_quat_mean_is_sign_invariant_and_matches_scipy():
    g = torch.Generator().manual_seed(0)
    base = R.quat_random(3, generator=g, dtype=torch.float64)  # 3 joints
    noise = R.axis_angle_to_quat(torch.randn(50, 3, 3, generator=g, dtype=torch.float64) * 0.2)
    q = R.quat_mul(base, noise)  # (50, 3, 4)
    flipped = torch.where(torch.rand(50, 3, 1, generator=g) < 0.5, -q, q)
    m = R.quat_mean(flipped, dim=0)
    assert m.shape == (3, 4) and (m[:, 0] >= 0).all()
    torch.testing.assert_close(m, R.quat_mean(q, dim=0))
    for j in range(3):
        ref = Rotation.from_quat(R.quat_wxyz_to_xyzw(q[:, j]).numpy()).mean().as_quat()  # chordal L2 mean
        ref = R.quat_canonical(R.quat_xyzw_to_wxyz(torch.as_tensor(ref)))
        torch.testing.assert_close(m[j], ref, atol=1e-6, rtol=0)
    assert R.quat_geodesic_angle(m, base).max() < 0.15  # near the centre of the noise
    with pytest.raises(ValueError, match="quaternion dimension"):
        R.quat_mean(q, dim=-1)
    with pytest.raises(ValueError, match="empty"):
        R.quat_mean(q[:0], dim=0)
