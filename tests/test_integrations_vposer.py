"""VPoser users: the human_body_prior-v2-style loader (official experiment folder layout,
Lightning ``vp_model.`` keys, generated here with random weights) and the comparison helper."""
from __future__ import annotations

import pytest
import torch

from test_integrations_common import TinyPrior, random_poses

vpmod = pytest.importorskip("posendf_plugin.priors.vposer")
from posendf_plugin.integrations import vposer as iv  # noqa: E402


@pytest.fixture
def expr_dir(tmp_path):
    """V02_05/ with snapshots/*.ckpt in the official PyTorch-Lightning layout."""
    torch.manual_seed(0)
    model = vpmod.VPoser()
    sd = {"vp_model." + k: v for k, v in model.state_dict().items()}
    sd["bm_train.v_template"] = torch.zeros(10, 3)  # body-model buffers the official ckpt carries
    d = tmp_path / "V02_05"
    (d / "snapshots").mkdir(parents=True)
    torch.save({"state_dict": sd, "epoch": 3}, d / "snapshots" / "V02_05_epoch=03_val_loss=0.20.ckpt")
    torch.save({"state_dict": sd, "epoch": 8}, d / "snapshots" / "V02_05_epoch=08_val_loss=0.10.ckpt")
    return d, model


def test_load_model_like_human_body_prior(expr_dir):
    d, ref = expr_dir
    vp, ps = iv.load_model(d, model_code=vpmod.VPoser, remove_words_in_model_weights="vp_model.", disable_grad=True)
    assert ps["checkpoint"].endswith("epoch=08_val_loss=0.10.ckpt")  # last snapshot by name
    assert not vp.training and not any(p.requires_grad for p in vp.parameters())
    for k, v in ref.state_dict().items():
        assert torch.equal(vp.state_dict()[k], v)
    z = torch.zeros(2, vp.latent_dim)
    assert vp.decode(z)["pose_body"].shape == (2, 63)  # v2: decode(z)['pose_body']
    assert isinstance(iv.load_vposer(d / "snapshots" / "V02_05_epoch=03_val_loss=0.20.ckpt"), vpmod.VPoser)
    assert iv.load_model(d, load_only_ps=True)["config"].latent_dim == 32


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such"):
        iv.load_vposer(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="snapshots"):
        iv.load_vposer(tmp_path / "empty")
    with pytest.raises(TypeError, match="model_code"):
        iv.load_model(tmp_path, model_code=object)


def test_compare_priors(expr_dir):
    d, _ = expr_dir
    poses = random_poses(150, 63, scale=0.15, seed=2)
    res = iv.compare_priors({"tiny": TinyPrior(), "vposer": iv.load_vposer(d)}, poses, sigmas=(0.1, 0.5), seed=0)
    assert res.num_poses == 150 and set(res.stats) == {"tiny", "vposer"}
    tiny = res.stats["tiny"]
    assert tiny.auroc[0.5] > 0.95 and tiny.noisy_mean[0.5] > tiny.real_mean
    assert set(res.spearman) == {("tiny", "vposer")} and -1.0 <= res.spearman[("tiny", "vposer")] <= 1.0
    same = iv.compare_priors({"a": TinyPrior(), "b": "tiny_test"}, poses, sigmas=(0.25,))
    assert same.spearman[("a", "b")] == pytest.approx(1.0)
    assert "AUROC σ=0.25" in same.table()
    with pytest.raises(ValueError, match="empty"):
        iv.compare_priors({}, poses)


def test_cli_prints_table_and_weights(expr_dir, tmp_path, capsys):
    import numpy as np

    from posendf_plugin.skeleton import to_body_quat

    d, _ = expr_dir
    f = tmp_path / "val.npz"
    np.savez(f, quat=to_body_quat(random_poses(60, 63, scale=0.15, seed=4)).numpy())  # pose-set layout
    res = iv.main(["--poses", str(f), "--priors", "tiny_test", "vposer", "--vposer", str(d), "--sigmas", "0.25",
                   "--calibration-sigmas", "0.25"])
    out = capsys.readouterr().out
    assert "60 real poses" in out and "AUROC σ=0.25" in out
    w = iv.host_weights(res, "tiny_test", sigma=0.25)
    gap_ratio = res.stats["vposer"].gap(0.25) / res.stats["tiny_test"].gap(0.25)
    key = "HuMoR --pose-prior-weight, RGB (vs VPoser ‖z‖²)"
    assert w[key][0] == pytest.approx(0.04 * gap_ratio)
    assert w["SMPLify-X body_pose_prior_weights (vs VPoser ‖z‖²)"][3] == pytest.approx(4.78 * gap_ratio ** 0.5)
    assert not any("GMM" in k for k in w)  # no gmm in this comparison
    with pytest.raises(KeyError, match="not in the comparison"):
        iv.host_weights(res, "posendf")
    with pytest.raises(ValueError, match="calibration-sigmas"):
        iv.main(["--poses", str(f), "--priors", "tiny_test", "--sigmas", "0.25"])
