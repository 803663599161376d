"""VPoser users: human_body_prior v2's API (``load_model`` with v2's signature on the official
experiment-folder layout -- V02_05.yaml, Lightning ``vp_model.`` keys, newest snapshot by
modification time -- and ``VPoser.decode``/``forward``/``sample_poses`` shapes), checked by
running a v2-style script with only its imports changed; plus the comparison helper."""
from __future__ import annotations

import os
import runpy
import sys

import numpy as np

import pytest
import torch

from test_integrations_common import TinyPrior, random_poses, record_posendf_factory

vpmod = pytest.importorskip("posendf_plugin.priors.vposer")
from posendf_plugin.integrations import vposer as iv  # noqa: E402


V2_YAML = """\
general:
  expr_id: V02_05
model_params:
  latentD: 16
  num_neurons: 32
train_parms:
  batch_size: 128
"""

# A script written for human_body_prior v2 (its tutorials/vposer.ipynb and tests/test_vposer.py),
# with only the two imports changed:
#   from human_body_prior.tools.model_loader import load_model
#   from human_body_prior.models.vposer_model import VPoser
V2_SCRIPT = """\
import sys
from types import SimpleNamespace
import numpy as np
import torch
from posendf_plugin.integrations.vposer import load_model
from posendf_plugin.integrations.vposer import VPoser

expr_dir, sample_amass_fname = sys.argv[1], sys.argv[2]
vp, ps = load_model(expr_dir, model_code=VPoser,
                    remove_words_in_model_weights='vp_model.',
                    disable_grad=True)
vp = vp.to('cuda' if torch.cuda.is_available() else 'cpu')
device = next(vp.parameters()).device
amass_body_pose = np.load(sample_amass_fname)['poses'][:, 3:66]
amass_body_pose = torch.from_numpy(amass_body_pose).type(torch.float).to(device)
amass_body_poZ = vp.encode(amass_body_pose).mean
amass_body_pose_rec = vp.decode(amass_body_poZ)['pose_body'].contiguous().view(-1, 63)
poZ_body_sample = torch.from_numpy(np.random.randn(1, ps.model_params.latentD).astype(np.float32)).to(device)
pose_body = vp.decode(poZ_body_sample)['pose_body'].contiguous().view(-1, 63)
drec = vp(amass_body_pose)
matrot = drec['pose_body_matrot'].view(-1, 3, 3)
vposer = VPoser(SimpleNamespace(model_params=SimpleNamespace(num_neurons=32, latentD=16)))
out_a = vposer.sample_poses(num_poses=2, seed=123)
out_b = vposer.sample_poses(num_poses=2, seed=123)
assert out_a['pose_body'].shape == (2, vposer.num_joints, 3)
np.testing.assert_allclose(out_a['pose_body'].numpy(), out_b['pose_body'].numpy(), atol=1e-6)
print(tuple(amass_body_poZ.shape), tuple(amass_body_pose_rec.shape), tuple(pose_body.shape),
      tuple(drec['pose_body'].shape), tuple(matrot.shape), tuple(drec['poZ_body_std'].shape), vp.latentD)
"""


def _snapshot(model, path, mtime):
    sd = {"vp_model." + k: v for k, v in model.state_dict().items()}
    sd["bm_train.v_template"] = torch.zeros(10, 3)  # body-model buffers the official ckpt carries
    torch.save({"state_dict": sd, "epoch": 3}, path)
    os.utime(path, (mtime, mtime))


@pytest.fixture
def expr_dir(tmp_path):
    """V02_05/ with V02_05.yaml and snapshots/*.ckpt in the official PyTorch-Lightning layout;
    the newest snapshot (by modification time) is not the last by name."""
    torch.manual_seed(0)
    model = iv.VPoser(iv.VPoserCfg({"model_params": {"num_neurons": 32, "latentD": 16}}))
    older = iv.VPoser(model.config)
    d = tmp_path / "V02_05"
    (d / "snapshots").mkdir(parents=True)
    (d / "V02_05.yaml").write_text(V2_YAML)
    _snapshot(model, d / "snapshots" / "V02_05_epoch=08_val_loss=0.10.ckpt", 2_000_000_000)
    _snapshot(older, d / "snapshots" / "V02_05_epoch=09_val_loss=0.30.ckpt", 1_000_000_000)
    return d, model


def test_load_model_like_human_body_prior(expr_dir):
    d, ref = expr_dir
    vp, ps = iv.load_model(d, model_code=iv.VPoser, remove_words_in_model_weights="vp_model.", disable_grad=True)
    assert iv.find_vposer_checkpoint(d).name == "V02_05_epoch=08_val_loss=0.10.ckpt"  # newest by mtime
    assert isinstance(vp, iv.VPoser) and not vp.training and not any(p.requires_grad for p in vp.parameters())
    for k, v in ref.state_dict().items():
        assert torch.equal(vp.state_dict()[k], v)
    assert ps.model_params.latentD == 16 and ps["general"]["expr_id"] == "V02_05" and vp.latentD == 16
    z = torch.zeros(2, vp.latentD)
    out = vp.decode(z)
    assert out["pose_body"].shape == (2, 21, 3) and out["pose_body_matrot"].shape == (2, 21, 9)
    base = vpmod.VPoser.decode(vp, z)  # the same numbers as the package's own layout
    assert torch.equal(out["pose_body"].reshape(2, 63), base.pose_body.reshape(2, 63))
    assert iv.load_model(d, load_only_cfg=True).model_params.num_neurons == 32
    grads, _ = iv.load_model(d, disable_grad=False, comp_device="cpu")
    assert all(p.requires_grad for p in grads.parameters())
    assert isinstance(iv.load_vposer(d / "snapshots" / "V02_05_epoch=09_val_loss=0.30.ckpt"), iv.VPoser)
    # still a PosePrior: energy and quaternion samples
    assert vp.energy(torch.zeros(3, 63)).shape == (3,) and vp.sample(4, seed=0).shape == (4, 21, 4)


def test_v2_script_runs_unchanged(expr_dir, tmp_path, capsys, monkeypatch):
    d, _ = expr_dir
    rng = np.random.default_rng(0)
    amass = tmp_path / "amass_sample.npz"
    np.savez(amass, poses=(rng.normal(0, 0.2, (7, 156))).astype(np.float64))
    script = tmp_path / "v2_script.py"
    script.write_text(V2_SCRIPT)
    monkeypatch.setattr(sys, "argv", [str(script), str(d), str(amass)])
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out.strip() == "(7, 16) (7, 63) (1, 63) (7, 21, 3) (147, 3, 3) (7, 16) 16"


def test_loader_errors(tmp_path, expr_dir):
    d, _ = expr_dir
    with pytest.raises(FileNotFoundError, match="no such"):
        iv.load_vposer(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="snapshots"):
        iv.load_vposer(tmp_path / "empty")
    with pytest.raises(TypeError, match="model_code"):
        iv.load_model(d, model_code=object)
    with pytest.raises(ValueError, match="remove_words"):
        iv.load_model(d, remove_words_in_model_weights="model.")
    with pytest.raises(ValueError, match=r"latentD=16, but the config asks for .*latentD=32.*model_cfg_override"):
        iv.load_model(d, model_cfg_override={"model_params.latentD": 32})
    with pytest.raises(TypeError, match="model_params"):
        iv.VPoser({"latentD": 32})


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


def test_cli_names_the_density_field(tmp_path, capsys, monkeypatch):
    """``--priors posendf posendf_density`` calibrates both shipped Pose-NDF fields in one run,
    each under its own name; ``--checkpoint posendf_density=PATH`` reaches the same builder."""
    from posendf_plugin.skeleton import to_body_quat

    calls = record_posendf_factory(monkeypatch)
    f = tmp_path / "val.npz"
    np.savez(f, quat=to_body_quat(random_poses(40, 63, scale=0.15, seed=6)).numpy())
    common = ["--poses", str(f), "--sigmas", "0.25", "--calibration-sigmas", "0.25"]
    res = iv.main(common + ["--priors", "posendf", "posendf_density", "tiny_test"])
    out = capsys.readouterr().out
    assert set(res.stats) == {"posendf", "posendf_density", "tiny_test"}
    assert "| posendf_density |" in out and "Calibrated host weights for 'posendf_density'" in out
    assert calls == [{}, {"pretrained": "posendf_density"}]
    iv.main(common + ["--priors", "posendf_density", "--checkpoint", "posendf_density=my_density.pt"])
    assert calls[-1] == {"pretrained": "posendf_density", "checkpoint": "my_density.pt"}
