"""VPoser v2: official state-dict layout, checkpoint formats, 6D convention, prior API, trainer."""
from __future__ import annotations

import argparse

import pytest
import torch
import torch.nn.functional as F

from posendf_plugin import rotations as R
from posendf_plugin.data.posesets import save_pose_set
from posendf_plugin.priors import get_prior
from posendf_plugin.priors import vposer as vp
from posendf_plugin.priors.train_baselines import (
    VPoserTrainConfig,
    load_yaml_config,
    matrix_geodesic_angle,
    num_epochs,
    partial_path,
    register,
    train_vposer,
)
from posendf_plugin.priors.vposer import VPoser, VPoserConfig, vposer_rot6d_to_matrix
from posendf_plugin.skeleton import quat_to_pose

# The compatibility contract, written out independently of the module: every key of
# human_body_prior v2's VPoser state dict (V02_05), with its shape for num_neurons=512, latentD=32.
OFFICIAL_V2_SHAPES = {
    "encoder_net.1.weight": (63,),
    "encoder_net.1.bias": (63,),
    "encoder_net.1.running_mean": (63,),
    "encoder_net.1.running_var": (63,),
    "encoder_net.1.num_batches_tracked": (),
    "encoder_net.2.weight": (512, 63),
    "encoder_net.2.bias": (512,),
    "encoder_net.4.weight": (512,),
    "encoder_net.4.bias": (512,),
    "encoder_net.4.running_mean": (512,),
    "encoder_net.4.running_var": (512,),
    "encoder_net.4.num_batches_tracked": (),
    "encoder_net.6.weight": (512, 512),
    "encoder_net.6.bias": (512,),
    "encoder_net.7.weight": (512, 512),
    "encoder_net.7.bias": (512,),
    "encoder_net.8.mu.weight": (32, 512),
    "encoder_net.8.mu.bias": (32,),
    "encoder_net.8.logvar.weight": (32, 512),
    "encoder_net.8.logvar.bias": (32,),
    "decoder_net.0.weight": (512, 32),
    "decoder_net.0.bias": (512,),
    "decoder_net.3.weight": (512, 512),
    "decoder_net.3.bias": (512,),
    "decoder_net.5.weight": (126, 512),
    "decoder_net.5.bias": (126,),
}

SMALL = VPoserConfig(num_neurons=16, latent_dim=4)


def _small_model(seed: int = 0) -> VPoser:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = VPoser(SMALL)
    # non-trivial BatchNorm statistics, so a loader that dropped them would be caught
    m.encoder_net[1].running_mean.uniform_(-0.1, 0.1)
    m.encoder_net[1].running_var.uniform_(0.5, 1.5)
    return m.eval()


def _poses(n: int, seed: int, scale: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 63, generator=g) * scale


# -- layout ---------------------------------------------------------------------------------


def test_state_dict_keys_and_shapes_match_official_v2():
    sd = VPoser().state_dict()
    assert list(sd.keys()) == list(OFFICIAL_V2_SHAPES)
    assert {k: tuple(v.shape) for k, v in sd.items()} == OFFICIAL_V2_SHAPES
    assert tuple(vp.VPOSER_V2_KEYS) == tuple(OFFICIAL_V2_SHAPES)


def test_module_types_at_official_indices():
    m = VPoser(SMALL)
    enc, dec = m.encoder_net, m.decoder_net
    assert [type(enc[i]) for i in (1, 2, 3, 4, 5, 6, 7)] == [
        torch.nn.BatchNorm1d, torch.nn.Linear, torch.nn.LeakyReLU, torch.nn.BatchNorm1d,
        torch.nn.Dropout, torch.nn.Linear, torch.nn.Linear,
    ]
    assert [type(dec[i]) for i in range(6)] == [
        torch.nn.Linear, torch.nn.LeakyReLU, torch.nn.Dropout, torch.nn.Linear, torch.nn.LeakyReLU, torch.nn.Linear,
    ]
    assert enc[5].p == 0.1 and dec[2].p == 0.1


# -- 6D convention --------------------------------------------------------------------------


def test_rot6d_columns_convention_vs_rotations_module():
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m = vposer_rot6d_to_matrix(x)
    # columns layout == pytorch3d rows layout of the de-interleaved input, transposed
    ref = R.rot6d_to_matrix(x[:, [0, 2, 4, 1, 3, 5]]).transpose(-1, -2)
    torch.testing.assert_close(m, ref)
    # first column is the normalised (x0, x2, x4), as in VPoser's view(-1, 3, 2)[:, :, 0]
    torch.testing.assert_close(m[..., :, 0], F.normalize(x[:, [0, 2, 4]], dim=-1))
    eye = torch.eye(3, dtype=x.dtype).expand(50, 3, 3)
    torch.testing.assert_close(m.transpose(-1, -2) @ m, eye)
    torch.testing.assert_close(torch.linalg.det(m), torch.ones(50, dtype=x.dtype))
    # and it is NOT the row layout
    assert (m - R.rot6d_to_matrix(x)).abs().max() > 0.1


def test_rot6d_batch_ranks():
    x = torch.randn(2, 3, 6)
    assert vposer_rot6d_to_matrix(x).shape == (2, 3, 3, 3)
    assert vposer_rot6d_to_matrix(x[0, 0]).shape == (3, 3)
    with pytest.raises(ValueError, match="rot6d"):
        vposer_rot6d_to_matrix(torch.randn(4, 5))


# -- API ------------------------------------------------------------------------------------


def test_encode_decode_shapes():
    m = _small_model()
    q_z = m.encode(_poses(5, 1))
    assert isinstance(q_z, torch.distributions.Normal)
    assert q_z.mean.shape == (5, 4) and bool((q_z.scale > 0).all())
    assert m.encode(_poses(5, 1).reshape(5, 21, 3)).mean.shape == (5, 4)
    out = m.decode(torch.randn(3, 4))
    assert out.pose_body.shape == (3, 63) and out.pose_body_matrot.shape == (3, 21, 3, 3)
    assert out["pose_body"] is out.pose_body and out["pose_body_matrot"] is out.pose_body_matrot
    torch.testing.assert_close(R.axis_angle_to_matrix(out.pose_body.reshape(3, 21, 3)), out.pose_body_matrot, atol=1e-5, rtol=0)
    q = m.decode_to_quat(torch.randn(3, 4))
    assert q.shape == (3, 21, 4)
    assert m.latent_dim == 4
    with pytest.raises(ValueError, match="pose_body"):
        m.encode(torch.randn(5, 69))
    with pytest.raises(ValueError, match="z"):
        m.decode(torch.randn(3, 5))


def test_sampling_is_seeded():
    m = _small_model()
    a, b, c = m.sample_poses(6, seed=3), m.sample_poses(6, seed=3), m.sample_poses(6, seed=4)
    torch.testing.assert_close(a.pose_body, b.pose_body)
    assert (a.pose_body - c.pose_body).abs().max() > 1e-3
    q = m.sample(6, seed=3)
    assert q.shape == (6, 21, 4)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(6, 21))
    torch.testing.assert_close(q, a.to_quat())


def test_energy_layouts_and_gradient():
    m = _small_model()
    aa = _poses(4, 2)
    e = m.energy(aa)
    assert e.shape == (4,)
    torch.testing.assert_close(e, (m.encode(aa).mean ** 2).sum(-1))
    q = R.axis_angle_to_quat(aa.reshape(4, 21, 3))
    torch.testing.assert_close(m.energy(q), e, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(m.energy(quat_to_pose(q, 72)), e, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(m.energy(R.quat_to_matrix(q)), e, atol=1e-4, rtol=1e-4)
    assert m.energy(aa.reshape(2, 2, 63)).shape == (2, 2)
    x = aa.clone().requires_grad_(True)
    m.energy(x).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="layout"):
        m.energy(torch.randn(4, 10))


# -- checkpoints ----------------------------------------------------------------------------


def _assert_same(a: VPoser, b: VPoser):
    x = _poses(7, 5)
    torch.testing.assert_close(a.energy(x), b.energy(x))
    z = torch.randn(3, a.latent_dim)
    torch.testing.assert_close(a.decode(z).pose_body, b.decode(z).pose_body)


def test_lightning_checkpoint_with_vp_model_prefix(tmp_path):
    m = _small_model()
    sd = {f"vp_model.{k}": v.clone() for k, v in m.state_dict().items()}
    sd["bm_train.shapedirs"] = torch.zeros(10, 3, 4)  # body-model buffers the official ckpt carries
    sd["bm_train.f"] = torch.zeros(5, 3, dtype=torch.int32)
    ckpt = {
        "epoch": 12,
        "global_step": 3456,
        "pytorch-lightning_version": "1.1.8",
        "state_dict": sd,
        "lr_schedulers": [],
        "optimizer_states": [],
    }
    p = tmp_path / "V02_05_epoch=12_val_loss=0.03.ckpt"
    torch.save(ckpt, p)
    loaded = VPoser.from_checkpoint(p)
    assert loaded.config == SMALL  # inferred from the weight shapes
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    _assert_same(m, loaded)


def test_plain_state_dict_and_own_format(tmp_path):
    m = _small_model()
    torch.save(m.state_dict(), tmp_path / "plain.pt")
    _assert_same(m, VPoser.from_checkpoint(tmp_path / "plain.pt"))
    m.save(tmp_path / "ours.pt", note="hello")
    obj = torch.load(tmp_path / "ours.pt", weights_only=True)
    assert obj["format"] == vp.CHECKPOINT_FORMAT and obj["config"] == {"num_neurons": 16, "latent_dim": 4}
    _assert_same(m, VPoser.from_checkpoint(tmp_path / "ours.pt"))
    prior = get_prior("vposer", checkpoint=tmp_path / "ours.pt")
    assert isinstance(prior, VPoser) and prior.name == "vposer"
    _assert_same(m, prior)


def test_checkpoint_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no such"):
        VPoser.from_checkpoint(tmp_path / "nope.ckpt")
    sd = _small_model().state_dict()
    bad = dict(sd)
    bad.pop("encoder_net.6.weight")
    bad["encoder_net.9.weight"] = torch.zeros(1)
    torch.save({"state_dict": {f"vp_model.{k}": v for k, v in bad.items()}}, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match=r"missing keys \['encoder_net.6.weight'\].*unexpected keys \['encoder_net.9.weight'\]"):
        VPoser.from_checkpoint(tmp_path / "bad.ckpt")
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not VPoser v2 weights"):
        VPoser.from_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        VPoser.from_checkpoint(tmp_path / "junk.pt")
    shapes = dict(sd)
    shapes["decoder_net.3.bias"] = torch.zeros(17)
    torch.save(shapes, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match="decoder_net.3.bias"):
        VPoser.from_checkpoint(tmp_path / "shape.pt")
    monkeypatch.setattr(vp, "DEFAULT_CHECKPOINT", tmp_path / "vposer_cmu.pt")
    with pytest.raises(FileNotFoundError, match="posendf baseline train vposer"):
        VPoser.from_pretrained()
    with pytest.raises(FileNotFoundError, match="posendf baseline train vposer"):
        get_prior("vposer")


# -- training -------------------------------------------------------------------------------


def _structured_quats(n: int, seed: int) -> torch.Tensor:
    """Full-rank correlated "poses": a fixed mean plus a Gaussian with a decaying spectrum
    (std 0.5 -> 0.008 rad along random orthogonal directions). On data confined to a
    low-dimensional manifold ‖μ‖² cannot see off-manifold deviations, so the test data span
    all 63 dimensions like real poses do."""
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(63, 63, generator=torch.Generator().manual_seed(99)))
    std = 0.5 * torch.exp(-torch.arange(63.0) / 15.0)
    mean = torch.randn(63, generator=torch.Generator().manual_seed(98)) * 0.3
    aa = mean + (torch.randn(n, 63, generator=g) * std) @ basis.T
    return R.axis_angle_to_quat(aa.reshape(n, 21, 3))


TINY = VPoserTrainConfig(num_neurons=64, latent_dim=8, epochs=6, min_steps=0, batch_size=64, lr=3e-3, val_fraction=0.1, seed=1)


def test_tiny_training_separates_data_from_random(tmp_path):
    q = _structured_quats(1500, 0)
    res = train_vposer(q, TINY, out=tmp_path / "vp.pt", progress=False)
    assert res.finished and res.path == tmp_path / "vp.pt" and len(res.history) == 6
    assert res.history[-1]["train_total"] < res.history[0]["train_total"]
    assert not partial_path(tmp_path / "vp.pt").exists()
    m = VPoser.from_checkpoint(tmp_path / "vp.pt")
    held_out = _structured_quats(200, 1)
    rand = R.quat_random(200, 21, generator=torch.Generator().manual_seed(2))
    e_data, e_rand = m.energy(held_out), m.energy(rand)
    assert e_data.median() < 0.2 * e_rand.median()
    assert (e_data < e_rand.median()).float().mean() > 0.9
    info = torch.load(tmp_path / "vp.pt", weights_only=True)["training"]
    assert info["train_config"]["epochs"] == 6 and info["num_poses"] == 1500


def test_training_is_deterministic_and_resume_matches(tmp_path):
    q = _structured_quats(300, 3)
    cfg = VPoserTrainConfig(num_neurons=16, latent_dim=4, epochs=2, min_steps=0, batch_size=32, seed=5)
    a = train_vposer(q, cfg, progress=False).model.state_dict()
    b = train_vposer(q, cfg, progress=False).model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    out = tmp_path / "r.pt"
    first = train_vposer(q, cfg, out=out, stop_after=1, progress=False)
    assert not first.finished and partial_path(out).is_file() and not out.exists()
    with pytest.raises(ValueError, match="interrupted VPoser training run; pass --resume"):
        train_vposer(q, cfg, out=out, progress=False)  # never silently thrown away
    torch.randn(10)  # the caller's RNG use must not matter
    second = train_vposer(q, cfg, out=out, resume=True, progress=False)
    assert second.finished and out.is_file() and not partial_path(out).exists()
    assert [h["epoch"] for h in second.history] == [1, 2]
    c = second.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], c[k], rtol=0, atol=0)
    with pytest.raises(ValueError, match="finished checkpoint"):
        train_vposer(q, cfg, out=out, resume=True, progress=False)
    # a resume state with another config is refused
    train_vposer(q, cfg, out=tmp_path / "s.pt", stop_after=1, progress=False)
    other = VPoserTrainConfig(num_neurons=16, latent_dim=4, epochs=2, min_steps=0, batch_size=32, seed=6)
    with pytest.raises(ValueError, match="seed"):
        train_vposer(q, other, out=tmp_path / "s.pt", resume=True, progress=False)


def test_config_yaml_matches_defaults_and_rejects_unknown(tmp_path):
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "configs" / "vposer.yaml"
    assert load_yaml_config(shipped, VPoserTrainConfig) == VPoserTrainConfig()
    (tmp_path / "bad.yaml").write_text("epochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(KeyError, match="learning_rate"):
        load_yaml_config(tmp_path / "bad.yaml", VPoserTrainConfig)
    with pytest.raises(ValueError, match="batch_size"):
        VPoserTrainConfig(batch_size=0)


def test_cli_train_vposer(tmp_path, capsys):
    save_pose_set(tmp_path / "poses.npz", _structured_quats(200, 4))
    (tmp_path / "c.yaml").write_text("num_neurons: 16\nlatent_dim: 4\nepochs: 1\nmin_steps: 16\nbatch_size: 50\n")
    parser = argparse.ArgumentParser(prog="posendf")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args([
        "baseline", "train", "vposer", "--poses", str(tmp_path / "poses.npz"), "--out", str(tmp_path / "v.pt"),
        "--config", str(tmp_path / "c.yaml"), "--seed", "3",
    ])
    assert args.func(args) == 0
    assert "wrote" in capsys.readouterr().out
    m = get_prior("vposer", checkpoint=tmp_path / "v.pt")
    assert m.config == VPoserConfig(16, 4)
    info = torch.load(tmp_path / "v.pt", weights_only=True)["training"]
    assert info["train_config"]["seed"] == 3
    # 190 training poses + their mirror images / batch 50 = 8 steps per epoch; min_steps 16 raises
    # 1 epoch to 2
    assert info["num_train_poses"] == 380
    assert len(info["history"]) == 2 == num_epochs(VPoserTrainConfig(**info["train_config"]), 380)


def test_matrix_geodesic_angle():
    g = torch.Generator().manual_seed(0)
    a, b = R.quat_random(100, generator=g, dtype=torch.float64), R.quat_random(100, generator=g, dtype=torch.float64)
    ang = matrix_geodesic_angle(R.quat_to_matrix(a), R.quat_to_matrix(b))
    torch.testing.assert_close(ang, R.quat_geodesic_angle(a, b))
    m = R.quat_to_matrix(a).requires_grad_(True)
    matrix_geodesic_angle(m, m.detach()).sum().backward()
    assert bool(torch.isfinite(m.grad).all())


def test_shipped_vposer_separates_test_poses_from_noisy():
    if not vp.DEFAULT_CHECKPOINT.is_file():
        pytest.skip("shipped vposer_cmu.pt not built")
    from posendf_plugin.data.posesets import load_pose_set

    m = get_prior("vposer")
    assert m.config == VPoserConfig(512, 32) and not m.training
    test_set = vp.DEFAULT_CHECKPOINT.parent / "cmu_test.npz"
    if not test_set.is_file():
        pytest.skip("cmu_test.npz not built")
    q = load_pose_set(test_set).quat[::10]
    g = torch.Generator().manual_seed(0)
    noisy = R.quat_mul(q, R.axis_angle_to_quat(0.25 * torch.randn(q.shape[:-1] + (3,), generator=g)))
    with torch.no_grad():
        assert m.energy(q).median() < 0.3 * m.energy(noisy).median()


# -- latent fitting, mirror augmentation, validation / early stopping -------------------------


def test_latent_init_zero_or_encoded():
    from posendf_plugin.fitting.params import BodyPoseVariable

    m = _small_model()
    init = _poses(3, 11)
    enc = BodyPoseVariable(init, m, "auto", latent_init="encode")
    assert enc.mode == "vposer_latent"
    torch.testing.assert_close(enc.value.detach(), m.encode_mean(init))
    zero = BodyPoseVariable(init, m, "auto", latent_init="zero")
    assert zero.value.shape == (3, SMALL.latent_dim) and bool((zero.value == 0).all())
    # z = 0 decodes to the decoder's mean pose whatever the initial pose
    torch.testing.assert_close(zero.pose(), quat_to_pose(m.decode_to_quat(torch.zeros(3, SMALL.latent_dim)), 63))
    with pytest.raises(ValueError, match="latent_init"):
        BodyPoseVariable(init, m, "auto", latent_init="mean")


def test_fit_configs_check_latent_init():
    from posendf_plugin.fitting.denoise import DenoiseConfig
    from posendf_plugin.fitting.image import ImageFitConfig

    assert DenoiseConfig().latent_init == "zero"  # its start pose (T-pose) is no estimate
    assert ImageFitConfig().latent_init == "encode"  # its start pose is the mean pose
    for cls in (DenoiseConfig, ImageFitConfig):
        with pytest.raises(ValueError, match="latent_init"):
            cls(latent_init="random")


def test_mirror_body_quat_is_an_involution_and_mirrors_positions():
    from posendf_plugin.priors.train_baselines import mirror_body_quat
    from posendf_plugin.skeleton import SMPL_JOINT_NAMES, SMPL_REST_JOINTS, body_joint_positions

    q = _structured_quats(5, 7)
    torch.testing.assert_close(mirror_body_quat(mirror_body_quat(q)), q)
    # on a left-right symmetric rest skeleton, FK of the mirrored pose is the mirror image
    swap = [SMPL_JOINT_NAMES.index(n.replace("left", "@").replace("right", "left").replace("@", "right"))
            for n in SMPL_JOINT_NAMES]
    flip = torch.tensor([-1.0, 1.0, 1.0])
    sym = 0.5 * (SMPL_REST_JOINTS + SMPL_REST_JOINTS[swap] * flip)
    pos = body_joint_positions(q, rest_joints=sym)
    mirrored = body_joint_positions(mirror_body_quat(q), rest_joints=sym)
    torch.testing.assert_close(mirrored, pos[:, swap] * flip, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="q"):
        mirror_body_quat(torch.zeros(4, 20, 4))


def test_clip_validation_early_stopping_keeps_best_and_resumes(tmp_path):
    from posendf_plugin.data.posesets import PoseSet
    from posendf_plugin.priors.train_baselines import _split

    q = _structured_quats(400, 8)
    clips = torch.arange(400) // 50  # 8 clips of 50 poses
    ps = PoseSet(quat=q, clip_id=clips, clip_names=[f"c{i}" for i in range(8)])
    cfg = VPoserTrainConfig(num_neurons=16, latent_dim=4, epochs=30, min_steps=0, batch_size=32, lr=3e-2, seed=2,
                            val_fraction=0.2, val_by_clip=True, early_stopping_patience=3, lr_plateau_patience=1,
                            mirror=True)
    i_val, i_train = _split(400, clips, cfg, torch.Generator().manual_seed(2))
    held = set(clips[i_val].tolist())
    assert len(i_val) == 100 and len(held) == 2 and not held & set(clips[i_train].tolist())
    res = train_vposer(ps, cfg, out=tmp_path / "es.pt", progress=False)
    h = res.history
    best = min(h, key=lambda r: r["val_total"])
    assert res.finished and len(h) < 30 and h[-1]["epoch"] - best["epoch"] == 3  # stopped 3 epochs after the best
    assert min(r["lr"] for r in h) < cfg.lr  # the plateau schedule lowered the learning rate
    info = torch.load(tmp_path / "es.pt", weights_only=True)["training"]
    assert info["best_epoch"] == best["epoch"] and info["num_train_poses"] == 2 * 300 and info["num_val_poses"] == 100
    # the saved weights are those of the best epoch: its validation loss is reproduced
    from posendf_plugin.priors.train_baselines import _evaluate, _joints_from_body_mats

    m = VPoser.from_checkpoint(tmp_path / "es.pt")
    qv = q[i_val]
    mats = R.quat_to_matrix(qv)
    val = _evaluate(m, (quat_to_pose(qv, 63), mats, _joints_from_body_mats(mats)), cfg, best["epoch"] - 1)
    assert val["total"] == pytest.approx(best["val_total"], rel=1e-5)
    # an interrupted run resumes to the same result
    first = train_vposer(ps, cfg, out=tmp_path / "r.pt", stop_after=3, progress=False)
    assert not first.finished
    second = train_vposer(ps, cfg, out=tmp_path / "r.pt", resume=True, progress=False)
    assert [r["epoch"] for r in second.history] == [r["epoch"] for r in h]
    for k, v in res.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[k], v, rtol=0, atol=0)
