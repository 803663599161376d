"""HuMoR adapter: its processed-AMASS .npz layout, and the pose-prior term in its test-time
optimisation, against a harness reproducing HuMoR's documented calls.

HuMoR is not on PyPI. The harness copies ``MotionOptimizer.latent2pose`` / ``pose2latent``
(``pose_prior.decode(z, output_type='matrot')`` reshaped to ``(B*T*21, 3, 3)`` and back to axis
angle; ``pose_prior.encode(pose).mean``) and ``FittingLoss.smpl_fit``'s pose-prior lines
(``if 'latent_pose' in pred_data and loss_weights['pose_prior'] > 0: cur_loss =
self.pose_prior_loss(pred_data['latent_pose']); loss += w * cur_loss; stats_dict['pose_prior']
= cur_loss``), with HuMoR's own ``pose_prior_loss`` (``sum(latent ** 2)``).
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from test_integrations_common import TinyPrior, random_poses

from posendf_plugin import rotations as R
from posendf_plugin.data.motion import Motion
from posendf_plugin.integrations import humor as hm

J_BODY = 21


class FittingLoss(torch.nn.Module):
    """HuMoR's FittingLoss, reduced to the pose-prior part of smpl_fit."""

    def __init__(self, loss_weights):
        super().__init__()
        self.loss_weights = loss_weights

    def smpl_fit(self, pred_data):
        loss, stats_dict = 0.0, {}
        if "latent_pose" in pred_data and self.loss_weights["pose_prior"] > 0.0:
            cur_loss = self.pose_prior_loss(pred_data["latent_pose"])
            loss += self.loss_weights["pose_prior"] * cur_loss
            stats_dict["pose_prior"] = cur_loss
        return loss, stats_dict

    def pose_prior_loss(self, latent_pose_pred):
        loss = latent_pose_pred ** 2
        return torch.sum(loss)


def latent2pose(pose_prior, latent_pose):
    B, T, _ = latent_pose.size()
    latent_pose = latent_pose.reshape((-1, pose_prior.latentD))
    body_pose = pose_prior.decode(latent_pose, output_type="matrot")
    return R.matrix_to_axis_angle(body_pose.reshape((B * T * J_BODY, 3, 3))).reshape((B, T, J_BODY * 3))


def pose2latent(pose_prior, body_pose):
    B, T, _ = body_pose.size()
    dist = pose_prior.encode(body_pose.reshape((-1, J_BODY * 3)))
    return dist.mean.reshape((B, T, pose_prior.latentD))


def test_vposer_v1_surface_round_trip():
    prior, extra = hm.load_vposer_compatible("./body_models/vposer_v1_0", vp_model="snapshot")
    assert extra is None and prior.latentD == 63
    pose = random_poses(2 * 5, 63, scale=0.5).reshape(2, 5, 63)
    z = pose2latent(prior, pose)
    assert z.shape == (2, 5, 63)
    assert prior.decode(z.reshape(-1, 63), output_type="matrot").shape == (10, 1, 21, 9)
    assert prior.decode(z.reshape(-1, 63), output_type="aa").shape == (10, 1, 21, 3)
    assert torch.allclose(latent2pose(prior, z), pose, atol=1e-5)
    with pytest.raises(ValueError, match="output_type"):
        prior.decode(z.reshape(-1, 63), output_type="rot6d")
    prior.to("cpu").eval()  # what HuMoR does after load_vposer


def ceres_matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """``(N, 3, 3)`` -> ``(N, 3)`` the way HuMoR's ``rotation_matrix_to_angle_axis`` goes (via a
    quaternion, ``sin θ = sqrt(|v|²)``, ceres' formula): its gradient is NaN at the identity."""
    q = R.matrix_to_quat(m)
    w, v = q[:, :1], q[:, 1:]
    sin_t = torch.sqrt((v * v).sum(-1, keepdim=True))
    k = torch.where(sin_t > 0, 2 * torch.atan2(sin_t, w) / sin_t, 2 * torch.ones_like(sin_t))
    return v * k


def test_zero_latent_start_has_finite_gradients():
    """HuMoR starts the latent at zeros and converts the decoded matrices with ceres' formula;
    the zero latent decodes to LATENT_OFFSET_RAD, not the identity, so the fit's gradients are
    finite from the first step (at the exact identity they are NaN)."""
    prior, _ = hm.load_vposer_compatible()
    z = torch.zeros(4, 63, requires_grad=True)
    mats = prior.decode(z, output_type="matrot").reshape(-1, 3, 3)
    aa = ceres_matrix_to_axis_angle(mats)
    (aa ** 2).sum().backward()
    assert torch.isfinite(z.grad).all()
    torch.testing.assert_close(aa, hm.latent_to_body_pose(z.detach()).reshape(-1, 3), atol=1e-6, rtol=0)
    assert float(aa.detach().norm(dim=-1).max()) == pytest.approx(hm.LATENT_OFFSET_RAD, rel=1e-3)
    eye = torch.eye(3).expand(2, 3, 3).clone().requires_grad_(True)
    ceres_matrix_to_axis_angle(eye).sum().backward()
    assert torch.isnan(eye.grad).any()  # what the offset avoids
    term = hm.PoseNDFPosePriorLoss(TinyPrior())
    z2 = torch.zeros(1, 2, 63, requires_grad=True)
    term(z2).backward()
    assert torch.isfinite(z2.grad).all()


def test_register_on_class_replaces_latent_l2():
    term = hm.register(FittingLoss, prior=TinyPrior(), scale=2.0)
    try:
        fl = FittingLoss({"pose_prior": 0.5})
        pose_prior, _ = hm.load_vposer_compatible()
        latent = pose2latent(pose_prior, random_poses(6, 63).reshape(2, 3, 63)).requires_grad_(True)
        loss, stats = fl.smpl_fit({"latent_pose": latent})
        e = TinyPrior().energy(hm.latent_to_body_pose(latent.reshape(-1, 63))).sum() * 2.0
        assert torch.allclose(stats["pose_prior"], e, atol=1e-5) and torch.allclose(loss, 0.5 * e, atol=1e-5)
        loss.backward()
        assert latent.grad.abs().sum() > 0
        assert FittingLoss.pose_prior_loss.posendf_term is term
        # VPoser's 32-D latent is not a pose: clear error
        with pytest.raises(ValueError, match="32.*IdentityLatentPosePrior|IdentityLatentPosePrior.*32"):
            fl.pose_prior_loss(torch.zeros(1, 2, 32))
        with pytest.warns(UserWarning, match="already registered"):
            hm.register(FittingLoss, prior=TinyPrior())
    finally:
        hm.unregister(FittingLoss)
    fl = FittingLoss({"pose_prior": 1.0})
    assert fl.pose_prior_loss(torch.ones(1, 1, 4)).item() == 4.0  # HuMoR's own ‖z‖² again
    with pytest.raises(RuntimeError, match="not registered"):
        hm.unregister(FittingLoss)


def test_register_guards_torchs_lbfgs_line_search(monkeypatch):
    """HuMoR fits with torch.optim.LBFGS (strong Wolfe); register() guards its line search as
    the mmhuman3d loss does (tests/test_integrations_mmhuman3d.py has the measured failing call)."""
    import torch.optim.lbfgs as lbfgs

    original = getattr(lbfgs._cubic_interpolate, "_posendf_unguarded", lbfgs._cubic_interpolate)
    monkeypatch.setattr(lbfgs, "_cubic_interpolate", original)
    hm.register(FittingLoss, prior=TinyPrior())
    try:
        assert lbfgs._cubic_interpolate._posendf_unguarded is original
        # an overflowing trial point: NaN from the original, the bracket's middle when guarded
        seen = (0.0, 1818.54, torch.tensor(-2.1635564e10), 0.0025, 3.4534167e24, torch.tensor(1.3954221e29))
        assert lbfgs._cubic_interpolate(*seen) == pytest.approx(0.00125)
    finally:
        hm.unregister(FittingLoss)


def test_register_on_instance_only():
    a, b = FittingLoss({"pose_prior": 1.0}), FittingLoss({"pose_prior": 1.0})
    hm.register(a, prior=TinyPrior())
    x = random_poses(2, 63).reshape(1, 2, 63)
    assert torch.allclose(a.pose_prior_loss(x), TinyPrior().energy(hm.latent_to_body_pose(x.reshape(2, 63))).sum())
    assert torch.allclose(b.pose_prior_loss(x), (x ** 2).sum())
    hm.unregister(a)
    assert torch.allclose(a.pose_prior_loss(x), (x ** 2).sum())


def test_absent_host(monkeypatch):
    for k in ("fitting", "fitting.fitting_loss", "humor", "humor.fitting", "humor.fitting.fitting_loss"):
        monkeypatch.delitem(sys.modules, k, raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "humor" not in p])
    with pytest.raises(ImportError, match="HuMoR is not importable.*PYTHONPATH"):
        hm.register(prior=TinyPrior())


def _humor_file(path, n=12, pose_hand_none=True):
    """A file with exactly the keys/shapes HuMoR's process_amass_data.py writes."""
    rng = np.random.default_rng(0)
    arrays = dict(
        fps=30, gender="female", floor_height=0.013, contacts=np.zeros((n, 22)),
        trans=rng.normal(size=(n, 3)), root_orient=rng.normal(size=(n, 3)) * 0.3,
        pose_body=rng.normal(size=(n, 63)) * 0.2, betas=rng.normal(size=16),
        joints=rng.normal(size=(n, 22, 3)), mojo_verts=rng.normal(size=(n, 43, 3)),
        joints_vel=rng.normal(size=(n, 22, 3)), mojo_verts_vel=rng.normal(size=(n, 43, 3)),
        trans_vel=rng.normal(size=(n, 3)), root_orient_vel=rng.normal(size=(n, 3)),
        joint_orient_vel_seq=rng.normal(size=n), pose_body_vel=rng.normal(size=(n, 21, 3)),
        world2aligned_rot=np.tile(np.eye(3), (n, 1, 1)),
    )
    if pose_hand_none:
        arrays["pose_hand"] = None  # stored by numpy as a pickled object array, as in HuMoR
    np.savez(path, **arrays)
    return arrays


def test_load_real_layout_without_unpickling(tmp_path):
    p = tmp_path / hm.humor_filename("01_01_poses", 12, 30)
    assert p.name == "01_01_poses_12_frames_30_fps.npz"
    ref = _humor_file(p)
    h = hm.load_humor(p)
    assert len(h.motion) == 12 and h.motion.fps == 30 and h.motion.gender == "female"
    np.testing.assert_allclose(h.motion.pose_body, ref["pose_body"], atol=1e-6)
    assert h.floor_height == pytest.approx(0.013)
    assert set(h.extras) == {"contacts", "joints", "joints_vel", "trans_vel", "root_orient_vel", "pose_body_vel",
                             "joint_orient_vel_seq", "world2aligned_rot", "mojo_verts", "mojo_verts_vel"}
    assert not h.motion.pose_hand.any()


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    n = 20
    t = np.linspace(0, 1, n)[:, None]
    # root: Rz(t rad) @ Rx(90°), i.e. turning about the world z axis at 1 rad per clip
    rz = R.axis_angle_to_matrix(torch.from_numpy(np.c_[0 * t, 0 * t, t]).double())
    rx = R.axis_angle_to_matrix(torch.tensor([np.pi / 2, 0.0, 0.0], dtype=torch.float64))
    root = R.matrix_to_axis_angle(rz @ rx).numpy()
    m = Motion(pose_body=(0.3 * np.sin(3 * t) * np.ones((1, 63))).astype(np.float32),
               root_orient=root.astype(np.float32),
               trans=np.c_[t, 0 * t, 0.9 + 0 * t].astype(np.float32), betas=rng.normal(size=10).astype(np.float32), fps=30.0)
    p = hm.save_humor(tmp_path / "clip.npz", m, floor_height=0.02)
    h = hm.load_humor(p)
    np.testing.assert_allclose(h.motion.pose_body, m.pose_body, atol=1e-6)
    np.testing.assert_allclose(h.motion.trans, m.trans, atol=1e-6)
    assert h.motion.betas.shape == (16,) and h.floor_height == pytest.approx(0.02)
    assert h.extras["joints"].shape == (n, 22, 3) and h.extras["pose_body_vel"].shape == (n, 21, 3)
    # translation velocity is dtrans/dt = (1 m / (n-1) frames) * 30 fps along x
    np.testing.assert_allclose(h.extras["trans_vel"][:, 0], 30.0 / (n - 1), rtol=1e-4)
    # angular velocity of the root: (0, 0, 30/(n-1)) rad/s in the world frame
    np.testing.assert_allclose(h.extras["root_orient_vel"][1:-1], [[0, 0, 30.0 / (n - 1)]] * (n - 2), atol=2e-3)
    with np.load(p, allow_pickle=False) as z:  # nothing pickled, HuMoR's key names
        assert {"fps", "gender", "floor_height", "contacts", "trans", "root_orient", "pose_body", "betas", "joints"} <= set(z.files)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        hm.load_humor(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        hm.load_humor(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", trans=np.zeros((3, 3)))
    with pytest.raises(KeyError, match="pose_body"):
        hm.load_humor(tmp_path / "partial.npz")
    np.savez(tmp_path / "badlen.npz", trans=np.zeros((3, 3)), root_orient=np.zeros((3, 3)),
             pose_body=np.zeros((3, 63)), joints=np.zeros((3, 24, 3)))
    with pytest.raises(ValueError, match="joints.*\\(N, 22, 3\\)"):
        hm.load_humor(tmp_path / "badlen.npz")
    np.savez(tmp_path / "degrees.npz", trans=np.zeros((3, 3)), root_orient=np.zeros((3, 3)),
             pose_body=np.full((3, 63), 30.0))
    with pytest.raises(ValueError, match="degrees.npz: 'pose_body': .*look like degrees"):
        hm.load_humor(tmp_path / "degrees.npz")


def test_vposer_weight_left_in_the_config_is_a_warning():
    """A HuMoR user who swaps the prior but keeps the config's ``--pose-prior-weight`` (VPoser's
    2e-4 for 3D joints, 0.04 for RGB) gets a prior ~350 × too weak: one warning naming the
    calibrated weight, then silence; a calibrated weight or an explicit scale does not warn."""
    shipped = TinyPrior()
    shipped.weights = "shipped 'posendf_density' (posendf_density.pt)"
    hm.register(FittingLoss, prior=shipped)
    try:
        x = random_poses(2, 63).reshape(1, 2, 63)
        fl = FittingLoss({"pose_prior": 2e-4})
        with pytest.warns(UserWarning, match=r"HuMoR: the 'pose_prior' loss weight = 0.0002 is the value tuned for VPoser.*3D joints.*--pose-prior-weight 0.074 .*'posendf_density'") as rec:
            fl.smpl_fit({"latent_pose": x})
        assert [w.filename for w in rec if "tuned for VPoser" in str(w.message)] == [__file__]  # HuMoR's line, not ours
        import warnings as _w
        with _w.catch_warnings():
            _w.simplefilter("error")
            fl.smpl_fit({"latent_pose": x})  # once only
    finally:
        hm.unregister(FittingLoss)
    rgb = FittingLoss({"pose_prior": 0.04})
    term = hm.register(rgb, prior=TinyPrior())
    with pytest.warns(UserWarning, match=r"0.04 is the value tuned for VPoser.*RGB.*a weight calibrated for your model"):
        rgb.pose_prior_loss(x)
    hm.unregister(rgb)
    assert term.check_host_weights({"pose_prior": 0.074}) is False
    assert hm.PoseNDFPosePriorLoss(TinyPrior(), scale=350.0).check_host_weights({"pose_prior": 2e-4}) is False
