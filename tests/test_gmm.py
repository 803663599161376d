"""SMPLify GMM prior: energy vs a NumPy transcription of SMPLify-X, gmm_08.pkl layout, fitting,
sampling, files and errors."""
from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from posendf_plugin import rotations as R
from posendf_plugin.data.posesets import save_pose_set
from posendf_plugin.priors import get_prior
from posendf_plugin.priors import gmm as gm
from posendf_plugin.priors.gmm import GaussianMixturePrior, GMMFitConfig, fit_gmm
from posendf_plugin.priors.train_baselines import load_yaml_config, register


def _random_gmm(k: int = 8, d: int = 69, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 0.2, (k, d))
    a = rng.normal(0, 1, (k, d, d)) / np.sqrt(d)
    covars = 0.02 * (a @ a.transpose(0, 2, 1)) + 0.01 * np.eye(d)
    weights = rng.uniform(0.5, 1.5, k)
    return means, covars, weights / weights.sum()


def _write_smplify_pkl(path: Path, means, covars, weights) -> Path:
    # SMPLify's gmm_08.pkl: a plain pickled dict of numpy arrays (protocol 2, written by Python 2)
    with open(path, "wb") as f:
        pickle.dump({"means": means, "covars": covars, "weights": weights}, f, protocol=2)
    return path


def _smplifyx_reference(pose: np.ndarray, means, covars, weights) -> np.ndarray:
    """NumPy transcription of SMPLify-X MaxMixturePrior.merged_log_likelihood (float64)."""
    precisions = np.stack([np.linalg.inv(c) for c in covars])
    sqrdets = np.array([np.sqrt(np.linalg.det(c)) for c in covars])
    const = (2 * np.pi) ** (69 / 2.0)
    nll_weights = weights / (const * (sqrdets / sqrdets.min()))
    diff = pose[:, None, :] - means[None]
    quad = np.einsum("mij,bmj->bmi", precisions, diff)
    quad = (quad * diff).sum(-1)
    return (0.5 * quad - np.log(nll_weights)[None]).min(axis=1)


def test_energy_matches_smplifyx_reference_on_pkl_layout(tmp_path):
    means, covars, weights = _random_gmm()
    p = _write_smplify_pkl(tmp_path / "gmm_08.pkl", means, covars, weights)
    prior = GaussianMixturePrior.from_checkpoint(p)
    assert prior.dim == 69 and prior.num_components == 8 and not prior.training
    rng = np.random.default_rng(1)
    body = rng.normal(0, 0.3, (16, 63))
    ref = _smplifyx_reference(np.concatenate([body, np.zeros((16, 6))], 1), means, covars, weights)
    got = prior.energy(torch.tensor(body, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(got, ref, rtol=2e-4)
    # via the registry, and from other layouts of the same poses
    prior2 = get_prior("gmm", checkpoint=p)
    q = R.axis_angle_to_quat(torch.tensor(body, dtype=torch.float64).reshape(16, 21, 3))
    np.testing.assert_allclose(prior2.energy(q.float()).double().numpy(), ref, rtol=2e-4)
    assert prior.energy(torch.tensor(body, dtype=torch.float32).reshape(4, 4, 63)).shape == (4, 4)


def test_smpl_69_input_hands_are_zeroed(tmp_path):
    means, covars, weights = _random_gmm(seed=3)
    prior = GaussianMixturePrior(means, covars, weights)
    x = torch.randn(5, 69) * 0.3
    x0 = x.clone()
    x0[:, 63:] = 0
    torch.testing.assert_close(prior.energy(x), prior.energy(x0))
    torch.testing.assert_close(prior.energy(x), prior.energy(x[:, :63]))


def test_63d_energy_matches_min_component_nll():
    means, covars, weights = _random_gmm(k=3, d=63, seed=4)
    prior = GaussianMixturePrior(means, covars, weights)
    x = np.random.default_rng(2).normal(0, 0.3, (6, 63))
    from scipy.stats import multivariate_normal

    logpdf = np.stack([multivariate_normal(means[k], covars[k]).logpdf(x) for k in range(3)], 1)
    logdets = np.linalg.slogdet(covars)[1]
    ref = (-(logpdf + np.log(weights)) - 0.5 * logdets.min()).min(1)  # SMPLify shift by min log det
    np.testing.assert_allclose(prior.energy(torch.tensor(x, dtype=torch.float32)).double().numpy(), ref, rtol=2e-4)


def test_energy_gradient_finite():
    means, covars, weights = _random_gmm(k=2, d=63)
    prior = GaussianMixturePrior(means, covars, weights)
    x = (torch.randn(3, 21, 3) * 0.2).requires_grad_(True)
    prior.energy(x).sum().backward()
    assert bool(torch.isfinite(x.grad).all()) and x.grad.abs().sum() > 0


def _data_quats(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(63, 63, generator=torch.Generator().manual_seed(99)))
    std = 0.5 * torch.exp(-torch.arange(63.0) / 15.0)
    aa = (torch.randn(n, 63, generator=g) * std) @ basis.T
    return R.axis_angle_to_quat(aa.reshape(n, 21, 3))


@pytest.mark.parametrize("dim", [63, 69])
def test_fit_save_load_and_separation(tmp_path, dim):
    q = _data_quats(500, 0)
    prior = fit_gmm(q, GMMFitConfig(num_components=4, dim=dim, max_iter=30, seed=0), source="synthetic")
    assert prior.dim == dim
    held = _data_quats(100, 1)
    rand = R.quat_random(100, 21, generator=torch.Generator().manual_seed(2))
    assert prior.energy(held).max() < prior.energy(rand).min()
    prior.save(tmp_path / "g.npz")
    with np.load(tmp_path / "g.npz") as z:
        assert int(z["dim"]) == dim and str(z["space"]).startswith({63: "body_pose_63", 69: "smpl_body_pose_69"}[dim])
    back = GaussianMixturePrior.from_checkpoint(tmp_path / "g.npz")
    torch.testing.assert_close(back.energy(held), prior.energy(held))
    assert back.source == "synthetic"
    again = fit_gmm(q, GMMFitConfig(num_components=4, dim=dim, max_iter=30, seed=0))
    torch.testing.assert_close(again.means, prior.means)


def test_sampling_seeded_and_matches_mixture():
    means, covars, weights = _random_gmm(k=2, d=63, seed=5)
    covars = covars * 0.1
    prior = GaussianMixturePrior(means, covars, weights)
    a, b, c = prior.sample(2000, seed=1), prior.sample(2000, seed=1), prior.sample(2000, seed=2)
    assert a.shape == (2000, 21, 4)
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 1e-3
    aa = R.quat_to_axis_angle(a.double()).reshape(2000, 63).numpy()
    mix_mean = (weights[:, None] * means).sum(0)
    np.testing.assert_allclose(aa.mean(0), mix_mean, atol=0.03)


def test_layout_and_file_errors(tmp_path, monkeypatch):
    means, covars, weights = _random_gmm(k=2, d=69)
    with pytest.raises(ValueError, match=r"'means' must have shape \(K, 63\) or \(K, 69\), got \(2, 72\)"):
        GaussianMixturePrior(np.zeros((2, 72)), np.zeros((2, 72, 72)), weights)
    with pytest.raises(ValueError, match="'covars' must have shape"):
        GaussianMixturePrior(means, covars[:, :63, :63], weights)
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixturePrior(means, -covars, weights)
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixturePrior(means, covars + np.triu(np.ones((69, 69)), 1), weights)
    with pytest.raises(ValueError, match="'weights' must have shape"):
        GaussianMixturePrior(means, covars, np.ones(3) / 3)
    with open(tmp_path / "nocov.pkl", "wb") as f:
        pickle.dump({"means": means, "weights": weights}, f, protocol=2)
    with pytest.raises(KeyError, match="covars"):
        GaussianMixturePrior.from_checkpoint(tmp_path / "nocov.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable SMPLify GMM pickle"):
        GaussianMixturePrior.from_checkpoint(tmp_path / "junk.pkl")

    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"means": Evil()}, f)
    with pytest.raises(ValueError, match="refusing to load"):
        GaussianMixturePrior.from_checkpoint(tmp_path / "evil.pkl")
    with pytest.raises(FileNotFoundError, match="no such"):
        GaussianMixturePrior.from_checkpoint(tmp_path / "gmm_08.pkl")
    with pytest.raises(FileNotFoundError, match="no such"):
        GaussianMixturePrior.from_checkpoint(tmp_path / "gmm.npz")
    monkeypatch.setattr(gm, "DEFAULT_GMM", tmp_path / "gmm_cmu.npz")
    with pytest.raises(FileNotFoundError, match="posendf baseline train gmm"):
        get_prior("gmm")
    with pytest.raises(ValueError, match="dim must be 63 or 69"):
        GMMFitConfig(dim=72)
    with pytest.raises(ValueError, match="at least"):
        fit_gmm(_data_quats(5, 0), GMMFitConfig())


def test_config_yaml_and_cli(tmp_path, capsys):
    shipped = Path(__file__).resolve().parents[1] / "configs" / "gmm.yaml"
    assert load_yaml_config(shipped, GMMFitConfig) == GMMFitConfig()
    save_pose_set(tmp_path / "poses.npz", _data_quats(300, 3))
    (tmp_path / "c.yaml").write_text("num_components: 3\nmax_iter: 30\n")
    parser = argparse.ArgumentParser(prog="posendf")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args([
        "baseline", "train", "gmm", "--poses", str(tmp_path / "poses.npz"), "--out", str(tmp_path / "g.npz"),
        "--config", str(tmp_path / "c.yaml"),
    ])
    assert args.func(args) == 0
    assert "3 components over 63-D" in capsys.readouterr().out
    prior = get_prior("gmm", checkpoint=tmp_path / "g.npz")
    assert prior.num_components == 3
    (tmp_path / "bad.yaml").write_text("components: 3\n")
    with pytest.raises(KeyError, match="components"):
        load_yaml_config(tmp_path / "bad.yaml", GMMFitConfig)


def test_shipped_gmm_separates_test_poses_from_noisy():
    if not gm.DEFAULT_GMM.is_file():
        pytest.skip("shipped gmm_cmu.npz not built")
    from posendf_plugin.data.posesets import load_pose_set

    prior = get_prior("gmm")
    assert prior.num_components == 8 and prior.dim == 63
    test_set = gm.DEFAULT_GMM.parent / "cmu_test.npz"
    if not test_set.is_file():
        pytest.skip("cmu_test.npz not built")
    q = load_pose_set(test_set).quat[::10]
    g = torch.Generator().manual_seed(0)
    noisy = R.quat_mul(q, R.axis_angle_to_quat(0.25 * torch.randn(q.shape[:-1] + (3,), generator=g)))
    assert prior.energy(q).median() < 0.2 * prior.energy(noisy).median()
