"""The Pose-NDF network and its config schema."""
import dataclasses

import pytest
import torch

from posendf_plugin import rotations as R
from posendf_plugin import skeleton as S
from posendf_plugin.config import Config, ModelConfig, load_config, save_config
from posendf_plugin.model import POSENDF_ORIGINAL_PARENTS, PoseNDFNet, parent_table, tree_levels

from _ndf_fixtures import REPO, TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

SMALL = ModelConfig(enc_feature=4, enc_hidden=8, hidden=(16, 16))


def _q(*shape, seed=0, dtype=torch.float32):
    return R.quat_random(*shape, 21, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("batch", [(), (3,), (2, 5)])
@pytest.mark.parametrize("output", ["abs", "softplus", "relu"])
def test_shapes_and_nonnegative(batch, output):
    net = PoseNDFNet(dataclasses.replace(SMALL, output=output))
    f = net(_q(*batch))
    assert f.shape == batch
    assert bool((f >= 0).all()) and bool(torch.isfinite(f).all())


def test_paper_sizes():
    net = PoseNDFNet(ModelConfig())
    assert [l.in_features for l in net.layers] == [126, 256, 512, 1024, 512, 256, 64]
    assert net.layers[-1].out_features == 1
    assert net.encode(_q(2)).shape == (2, 126)


def test_wrong_shape_names_expected():
    with pytest.raises(ValueError, match=r"q must have shape \(\.\.\., 21, 4\), got \(2, 20, 4\)"):
        PoseNDFNet(SMALL)(torch.zeros(2, 20, 4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_finite_including_identity(dtype):
    net = PoseNDFNet(SMALL).to(dtype)
    q = torch.cat([_q(4, dtype=dtype), R.quat_identity(1, 21, dtype=dtype)]).requires_grad_(True)
    (g,) = torch.autograd.grad(net(q).sum(), q)
    assert bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0


def test_parent_order_matches_skeleton():
    assert parent_table("smpl") == S.BODY_PARENTS
    names = S.BODY_JOINT_NAMES
    net = PoseNDFNet(SMALL)
    assert names[net.parents[names.index("left_knee")]] == "left_hip"
    assert names[net.parents[names.index("right_wrist")]] == "right_elbow"
    # the authors' table is off by one: their left knee reads the right hip
    assert names[POSENDF_ORIGINAL_PARENTS[names.index("left_knee")]] == "right_hip"
    levels = tree_levels(S.BODY_PARENTS)
    assert sorted(j for lv in levels for j in lv) == list(range(21))
    assert len(levels) == 7  # 21 per-joint MLPs in 7 batched calls


def test_batched_encoder_equals_per_joint_loop():
    """The depth-batched encoder equals the naive per-joint recursion."""
    net = PoseNDFNet(SMALL, seed=3)
    q = _q(5)
    act = lambda x: torch.nn.functional.softplus(x, beta=SMALL.beta)
    feats = [None] * 21
    for j, p in enumerate(net.parents):
        parent = torch.zeros(5, SMALL.enc_feature) if p == -1 else feats[p]
        x = torch.cat([q[:, j], parent], -1)
        h = act(x @ net.enc_w1[j] + net.enc_b1[j])
        feats[j] = act(h @ net.enc_w2[j] + net.enc_b2[j])
    torch.testing.assert_close(net.encode(q), torch.cat(feats, -1))


def test_parent_feature_reaches_children_only():
    """Changing the left hip changes the left knee feature, not the right knee's."""
    net = PoseNDFNet(SMALL, seed=1)
    q = _q(1)
    q2 = q.clone()
    q2[0, 0] = R.quat_normalize(q2[0, 0] + 0.3)
    a, b = net.encode(q).reshape(21, -1), net.encode(q2).reshape(21, -1)
    changed = (a - b).abs().sum(-1) > 1e-7
    names = S.BODY_JOINT_NAMES
    assert changed[names.index("left_knee")] and changed[names.index("left_foot")]
    assert not changed[names.index("right_knee")] and not changed[names.index("spine1")]


def test_seeded_init_is_deterministic():
    a, b, c = PoseNDFNet(SMALL, seed=0), PoseNDFNet(SMALL, seed=0), PoseNDFNet(SMALL, seed=1)
    for (k, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)


# --- config -----------------------------------------------------------------------------------


def test_config_yaml_and_dict_round_trip(tmp_path):
    cfg = load_config(TINY)
    assert Config.from_dict(cfg.to_dict()) == cfg
    save_config(tmp_path / "c.yaml", cfg)
    assert load_config(tmp_path / "c.yaml") == cfg
    assert isinstance(cfg.model.hidden, tuple)


@pytest.mark.parametrize("name", ["amass", "cmu", "cmu_density", "cmu_mined", "nrdf", "tiny"])
def test_shipped_configs_load(name):
    cfg = load_config(REPO / "configs" / f"{name}.yaml")
    PoseNDFNet(cfg.model)
    if name == "amass":
        assert cfg.model.hidden == (256, 512, 1024, 512, 256, 64) and cfg.model.enc_feature == 6
        assert cfg.model.beta == 100
    if name == "cmu_mined":  # stage 2 fine-tunes stage 1: same network, hard negatives on
        assert cfg.model == load_config(REPO / "configs" / "cmu.yaml").model
        assert cfg.experiment.init_from and cfg.training.projected_batch_size > 0
    if name == "cmu_density":  # the density-aware field: same network, labels that do not vanish on the data
        assert cfg.model == load_config(REPO / "configs" / "cmu.yaml").model and cfg.training.w_manifold == 0
    if name == "nrdf":
        assert cfg.training.w_eikonal == 0 and cfg.data.label_metric == "nrdf"
        assert cfg.data.noise == "nrdf" and cfg.experiment.prior == "nrdf"


def test_unknown_key_names_key_and_section(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  hiden: [3]\n")
    with pytest.raises(ValueError, match=r"unknown key 'hiden' in section 'model'.*'hidden'"):
        load_config(p)
    p.write_text("trainer:\n  epochs: 3\n")
    with pytest.raises(ValueError, match=r"unknown section 'trainer'"):
        load_config(p)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("section,values,match", [
    ("model", {"activation": "tanh"}, "model.activation"),
    ("model", {"hidden": [0]}, "model.hidden"),
    ("training", {"loss": "huber"}, "training.loss"),
    ("training", {"val_fraction": 1.5}, "training.val_fraction"),
    ("training", {"w_dist": 0, "w_manifold": 0, "w_eikonal": 0}, "nothing to train"),
    ("data", {"label_metric": "l2"}, "data.label_metric"),
])
def test_invalid_values(section, values, match):
    with pytest.raises(ValueError, match=match):
        Config().replace(**{section: values})


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().model.beta = 3.0


def test_frozen_encoder_cache_follows_weight_changes():
    """Frozen weights reuse the block-diagonal level matrices; any change of the weights
    (in-place update, load_state_dict, unfreezing) gives the same output as a fresh network."""
    net = PoseNDFNet(SMALL, seed=3).requires_grad_(False)
    q = _q(4, seed=1)
    first = net(q)
    assert net(q).equal(first)  # cached path, same numbers
    with torch.no_grad():
        net.enc_w1.mul_(1.5)
    fresh = PoseNDFNet(SMALL, seed=3).requires_grad_(False)
    with torch.no_grad():
        fresh.enc_w1.mul_(1.5)
    torch.testing.assert_close(net(q), fresh(q))
    net.load_state_dict(PoseNDFNet(SMALL, seed=5).state_dict())
    torch.testing.assert_close(net(q), PoseNDFNet(SMALL, seed=5)(q))
    # gradients still reach the input through cached weights, and the weights when trainable
    x = q.clone().requires_grad_(True)
    net(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    net.requires_grad_(True)
    net(q).sum().backward()
    assert net.enc_w1.grad is not None and net.enc_w1.grad.abs().sum() > 0
    with torch.inference_mode():
        net.requires_grad_(False)
        net(q)
    y = q.clone().requires_grad_(True)
    net(y).sum().backward()  # nothing built in inference mode was cached
    assert y.grad is not None
