"""posendf data prepare: noise models, labels vs brute force, determinism, resume, config errors."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from posendf_plugin.data.labels import (
    CandidateIndex,
    SearchConfig,
    brute_force_knn,
    knn_labels,
    measure_recall,
    pairwise_pose_distance,
    pose_distance,
    search_features,
)
from posendf_plugin.data.noise import gaussian_quat_noise, heavy_tailed_rotation_noise
from posendf_plugin.data.posesets import save_pose_set
from posendf_plugin.data.prepare import (
    DistanceDataset,
    PrepareConfig,
    load_prepare_config,
    load_training_data,
    prepare_training_data,
    register_cli,
)
from posendf_plugin.rotations import axis_angle_to_quat, quat_canonical, quat_geodesic_angle

REPO = Path(__file__).resolve().parents[1]


def _poses(n: int, seed: int = 0) -> torch.Tensor:
    """Motion-like poses: smooth joint trajectories around random offsets."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, n)[:, None, None]
    off = 0.4 * torch.randn(1, 21, 3, generator=g)
    amp = 0.5 * torch.randn(1, 21, 3, generator=g)
    aa = off + amp * torch.sin(2 * math.pi * 3 * t + torch.rand(1, 21, 3, generator=g) * 6)
    return quat_canonical(axis_angle_to_quat(aa))


@pytest.fixture
def pose_file(tmp_path):
    p = tmp_path / "poses.npz"
    save_pose_set(p, _poses(400))
    return p


def _cfg(**kw):
    base = dict(n_samples=600, chunk_size=200, recall_queries=50,
                search=SearchConfig(index="flat", candidates=512))
    base.update(kw)
    return PrepareConfig(**base)


@pytest.mark.parametrize("metric,k", [("posendf", 5), ("nrdf", 1)])
@pytest.mark.parametrize("index,features", [("torch", "poly"), ("flat", "poly"), ("ivf", "poly"),
                                            ("hnsw", "poly"), ("flat", "canonical")])
def test_labels_match_brute_force(metric, k, index, features):
    ref = _poses(300, 1)
    rng = np.random.default_rng(0)
    q = torch.cat((gaussian_quat_noise(ref[:60], 0.05, rng), gaussian_quat_noise(ref[100:130], 0.5, rng)))
    idx = CandidateIndex(ref, SearchConfig(index=index, features=features, candidates=64, nlist=8, nprobe=8),
                         metric)
    res = knn_labels(q, idx, metric, k)
    true_d, _ = brute_force_knn(q, ref, metric, k)
    err = (res.dist.double() - true_d.mean(1)).abs()
    # near the data every index and feature set is exact
    assert float(err[:60].max()) < 1e-4
    rec = measure_recall(q, idx, metric, k)
    assert 0.9 <= rec.recall <= 1.0 and rec.n_queries == 90 and rec.k == k
    if index in ("torch", "flat"):  # exact search over every pose: exact labels
        full = CandidateIndex(ref, SearchConfig(index=index, features=features, candidates=300), metric)
        rec = measure_recall(q, full, metric, k)
        assert rec.recall == 1.0 and rec.label_abs_err_max < 1e-4


def test_distances_agree_and_search_features_sign_invariant():
    a, b = _poses(5, 2), _poses(7, 3)
    for metric in ("posendf", "nrdf"):
        dense = pairwise_pose_distance(a.double(), b.double(), metric)
        direct = pose_distance(a.double()[:, None], b.double()[None], metric)
        torch.testing.assert_close(dense, direct, atol=1e-6, rtol=0)
        flip = a.clone()
        flip[:, 3] *= -1  # q and -q: the same rotation
        np.testing.assert_allclose(search_features(flip, "poly", metric, True),
                                   search_features(a, "poly", metric, True), atol=1e-6)


def test_noise_models():
    q = _poses(500, 4)
    rng = np.random.default_rng(0)
    means = []
    for s in (0.01, 0.05, 0.1, 0.25, 0.5):
        n = gaussian_quat_noise(q, s, rng)
        assert torch.allclose(n.norm(dim=-1), torch.ones(()), atol=1e-5) and bool((n[..., 0] >= 0).all())
        means.append(float(quat_geodesic_angle(n, q).mean()))
    assert means == sorted(means)
    torch.testing.assert_close(gaussian_quat_noise(q, 0.0, rng), q)
    h = heavy_tailed_rotation_noise(q, 0.2, rng, tail="cauchy")
    ang = quat_geodesic_angle(h, q)
    assert float(ang.max()) <= math.pi + 1e-4
    assert abs(float(ang.median()) - 0.2) < 0.02  # half-Cauchy: median = scale
    assert float((ang > 1.0).float().mean()) > 0.05  # heavy tail
    ht = heavy_tailed_rotation_noise(q, 0.2, rng, tail="t", df=3.0, max_angle=1.0)
    assert float(quat_geodesic_angle(ht, q).max()) <= 1.0 + 1e-4
    with pytest.raises(ValueError, match="one per pose"):
        gaussian_quat_noise(q, np.ones(3), rng)


def test_prepare_end_to_end_determinism_and_loader(pose_file, tmp_path):
    cfg = _cfg()
    r1 = prepare_training_data(pose_file, tmp_path / "a", cfg, seed=3, progress=False)
    assert (r1.n_chunks, r1.written, r1.skipped) == (3, 3, 0)
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert man["status"] == "complete" and man["seed"] == 3 and man["counts"]["samples"] == 600
    assert man["recall"]["recall"] == 1.0 and man["config"]["k"] == 5
    # noise statistics: the mean label grows with sigma
    means = [man["label_stats"]["mean_dist_by_scale"][f"{s:g}"] for s in cfg.sigmas]
    assert means == sorted(means) and means[0] > 0
    assert man["label_stats"]["mean_dist_by_scale"]["0"] == 0.0
    c0 = np.load(tmp_path / "a" / "chunk_00000.npz")
    assert c0["quat"].shape == (200, 21, 4) and c0["quat"].dtype == np.float32
    assert c0["dist"].dtype == np.float32 and c0["sigma"].dtype == np.float32
    assert (c0["quat"][..., 0] >= 0).all() and (c0["dist"][c0["sigma"] == 0] == 0).all()
    # labels agree with brute force
    from posendf_plugin.data.posesets import load_pose_set

    ref = load_pose_set(pose_file).quat
    q = torch.from_numpy(c0["quat"][c0["sigma"] > 0])
    true_d, _ = brute_force_knn(q, ref, "posendf", 5)
    np.testing.assert_allclose(c0["dist"][c0["sigma"] > 0], true_d.mean(1).numpy(), atol=1e-4)
    # same seed -> identical files; another seed -> different
    prepare_training_data(pose_file, tmp_path / "b", cfg, seed=3, progress=False)
    prepare_training_data(pose_file, tmp_path / "c", cfg, seed=4, progress=False)
    for i in range(3):
        a, b = np.load(tmp_path / "a" / f"chunk_{i:05d}.npz"), np.load(tmp_path / "b" / f"chunk_{i:05d}.npz")
        for key in ("quat", "dist", "sigma", "origin"):
            np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(c0["quat"], np.load(tmp_path / "c" / "chunk_00000.npz")["quat"])
    quat, dist = load_training_data(tmp_path / "a")
    assert quat.shape == (600, 21, 4) and dist.shape == (600,) and quat.dtype == dist.dtype == torch.float32
    ds = DistanceDataset(tmp_path / "a")
    assert len(ds) == 600 and ds[5][0].shape == (21, 4)
    qf, df = load_training_data(tmp_path / "a" / "chunk_00001.npz")
    assert qf.shape == (200, 21, 4)


def test_resume_after_interruption(pose_file, tmp_path):
    cfg = _cfg()
    out = tmp_path / "r"
    prepare_training_data(pose_file, out, cfg, seed=1, progress=False)
    before = {i: dict(np.load(out / f"chunk_{i:05d}.npz")) for i in range(3)}
    # simulate a kill: one chunk missing, a stale temp file, manifest still "running"
    (out / "chunk_00001.npz").unlink()
    (out / ".chunk_00001.npz.abc123.tmp").write_bytes(b"partial")
    man = json.loads((out / "manifest.json").read_text())
    man["status"] = "running"
    (out / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="incomplete"):
        load_training_data(out)
    r = prepare_training_data(pose_file, out, cfg, seed=1, progress=False)
    assert (r.written, r.skipped) == (1, 2)
    assert not list(out.glob("*.tmp"))
    for i in range(3):
        after = np.load(out / f"chunk_{i:05d}.npz")
        for key in before[i]:
            np.testing.assert_array_equal(before[i][key], after[key])
    # nothing left to do: no chunk is rewritten
    assert prepare_training_data(pose_file, out, cfg, seed=1, progress=False).written == 0
    # other settings into the same folder: refused
    with pytest.raises(ValueError, match="different settings.*seed"):
        prepare_training_data(pose_file, out, cfg, seed=2, progress=False)
    with pytest.raises(ValueError, match="config.sigmas"):
        prepare_training_data(pose_file, out, dataclasses.replace(cfg, sigmas=(0.1,)), seed=1, progress=False)


def test_nrdf_config_and_separate_reference(pose_file, tmp_path):
    cfg = load_prepare_config(REPO / "configs" / "prepare_nrdf.yaml")
    assert (cfg.noise, cfg.metric, cfg.k) == ("nrdf", "nrdf", 1)
    cfg = dataclasses.replace(cfg, n_samples=300, chunk_size=300, recall_queries=30,
                              search=SearchConfig(index="auto", candidates=300))
    ref = tmp_path / "ref.npz"
    save_pose_set(ref, _poses(300, 9))
    r = prepare_training_data(pose_file, tmp_path / "n", cfg, seed=0, reference=ref, progress=False)
    c = np.load(tmp_path / "n" / "chunk_00000.npz")
    clean = c["sigma"] == 0
    assert clean.any() and (c["dist"][clean] > 0).all()  # clean poses are not in the reference set
    assert np.isin(np.unique(c["sigma"][~clean]), np.float32([0.05, 0.1, 0.2, 0.4, 0.8])).all()
    assert r.recall["recall"] == 1.0 and r.manifest["reference"]["n"] == 300 * (2 if cfg.mirror else 1)  # + mirror images


def test_config_errors(pose_file, tmp_path):
    # the shipped recipe: the defaults (the paper's k = 5) with 500 k samples, mirror images and the
    # mean over the 20 nearest, searched wider for recall 0.99 (assets/NDF_CARD.md)
    shipped = PrepareConfig(n_samples=500_000, mirror=True, k=20)
    shipped = dataclasses.replace(shipped, search=dataclasses.replace(shipped.search, candidates=128, nprobe=128))
    assert load_prepare_config(REPO / "configs" / "prepare_posendf.yaml") == shipped
    # the density-aware field's data: the same samples over the 50 nearest, the data poses keep
    # their k-nearest labels
    dens = load_prepare_config(REPO / "configs" / "prepare_posendf_density.yaml")
    assert dens == dataclasses.replace(shipped, k=50, clean_labels="knn")
    bad = tmp_path / "bad.yaml"
    bad.write_text("noise: posendf\nsigmaz: [0.1]\n")
    with pytest.raises(ValueError, match="sigmaz"):
        load_prepare_config(bad)
    bad.write_text("search:\n  nprobes: 3\n")
    with pytest.raises(ValueError, match="nprobes"):
        load_prepare_config(bad)
    bad.write_text("noise: gauss\n")
    with pytest.raises(ValueError, match="noise must be one of"):
        load_prepare_config(bad)
    bad.write_text("sigmas: [0.1, 0.2]\nsigma_shares: [1.0]\n")
    with pytest.raises(ValueError, match="sigma_shares"):
        load_prepare_config(bad)
    bad.write_text("experiment:\n  name: x\ntraining:\n  epochs: 3\n")  # a trainer config is not a preparation one
    with pytest.raises(ValueError, match="this is a trainer config"):
        load_prepare_config(bad)
    for text, match in (("recall_queries: true\n", "recall_queries must be an integer"),
                        ("mirror: 'false'\n", "mirror must be true or false"),
                        ("clean_share: '0.1'\n", "clean_share must be a finite number"),
                        ("df: .nan\n", "df must be a finite number")):
        bad.write_text(text)
        with pytest.raises(ValueError, match=match) as e:
            load_prepare_config(bad)
        assert str(bad) in str(e.value)
    with pytest.raises(FileNotFoundError):
        load_prepare_config(tmp_path / "nope.yaml")
    with pytest.raises(FileNotFoundError, match="--poses"):
        prepare_training_data(tmp_path / "missing.npz", tmp_path / "o", _cfg(), progress=False)
    empty = tmp_path / "empty.npz"
    np.savez(empty, quat=np.zeros((0, 21, 4), np.float32))
    with pytest.raises(ValueError, match="empty"):
        prepare_training_data(empty, tmp_path / "o", _cfg(), progress=False)
    with pytest.raises(ValueError, match="lower k"):
        tiny = tmp_path / "tiny.npz"
        save_pose_set(tiny, _poses(3))
        prepare_training_data(tiny, tmp_path / "o2", _cfg(), progress=False)
    with pytest.raises(FileNotFoundError):
        load_training_data(tmp_path / "nothing")


def test_cli(pose_file, tmp_path, capsys):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("n_samples: 100\nchunk_size: 50\nrecall_queries: 20\nsearch:\n  candidates: 16\n")
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    args = parser.parse_args(["prepare", "--poses", str(pose_file), "--out", str(tmp_path / "o"),
                              "--config", str(cfg_file), "--seed", "2", "--quiet"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "100 samples in 2 chunk(s)" in out and "recall" in out
    assert load_training_data(tmp_path / "o")[0].shape == (100, 21, 4)


def test_clean_labels_knn(pose_file, tmp_path):
    """``clean_labels: knn`` labels the unperturbed data poses with their own k-nearest mean
    (brute force agrees); the default keeps them at 0 and keeps the settings hash of data made
    before the option existed; the clean mask comes back from the chunks' sigma."""
    ref = _poses(400)
    knn = prepare_training_data(pose_file, tmp_path / "k", _cfg(clean_labels="knn"), seed=0, progress=False)
    zero = prepare_training_data(pose_file, tmp_path / "z", _cfg(), seed=0, progress=False)
    qk, dk, ck = load_training_data(tmp_path / "k", clean_mask=True)
    qz, dz, cz = load_training_data(tmp_path / "z", clean_mask=True)
    assert torch.equal(qk, qz) and torch.equal(ck, cz) and 0 < int(ck.sum()) < len(ck)
    assert float(dz[cz].abs().max()) == 0.0 and torch.equal(dk[~ck], dz[~cz])
    true_d, _ = brute_force_knn(qk[ck], ref, "posendf", 5)
    assert torch.allclose(dk[ck].double(), true_d.mean(1), atol=1e-5) and float(dk[ck].min()) > 0
    assert knn.manifest["config"]["clean_labels"] == "knn" and "clean_labels" not in zero.manifest["config"]
    assert knn.manifest["settings_sha1"] != zero.manifest["settings_sha1"]
    with pytest.raises(ValueError, match="clean_labels must be one of"):
        _cfg(clean_labels="mean")


def test_original_posendf_training_data_layout(tmp_path):
    """The original Pose-NDF's training data (data/prepare_traindata.py: <dataset>/<seq>.npz with
    pose (M, 21, 4), dist (M, 5) and nn_pose (M, 5, 21, 4)) reads as samples labelled with the
    mean of each dist row (what its loader trains on), and trains."""
    from posendf_plugin.config import Config
    from posendf_plugin.training import train

    rng = np.random.default_rng(0)
    parts = []
    for ds, m in (("CMU", 40), ("BMLmovi", 30)):
        q = quat_canonical(axis_angle_to_quat(torch.as_tensor(rng.normal(0, 0.4, (m, 21, 3)), dtype=torch.float32))).numpy()
        dist = np.sort(rng.uniform(0, 0.3, (m, 5)), axis=1).astype(np.float32)
        (tmp_path / "orig" / ds).mkdir(parents=True)
        np.savez(tmp_path / "orig" / ds / "seq.npz", pose=q, dist=dist, nn_pose=np.repeat(q[:, None], 5, 1))
        parts.append((q, dist.mean(1)))
    quat, dist = load_training_data(tmp_path / "orig")
    np.testing.assert_allclose(quat.numpy(), np.concatenate([parts[1][0], parts[0][0]]))  # sorted: BMLmovi, CMU
    np.testing.assert_allclose(dist.numpy(), np.concatenate([parts[1][1], parts[0][1]]), rtol=1e-6)
    cfg = Config.from_dict({"model": {"hidden": [16, 16]}, "training": {"epochs": 1, "batch_size": 32, "w_manifold": 0.0,
                                                                       "num_threads": 1}})
    res = train(cfg, out_dir=tmp_path / "run", data_dir=tmp_path / "orig", progress=False, tensorboard=False)
    assert res.model_path is not None and res.model_path.is_file()
    np.savez(tmp_path / "orig" / "CMU" / "seq.npz", pose=parts[0][0], dist=np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"seq.npz: the original Pose-NDF layout has pose \(M, 21, 4\) and dist"):
        load_training_data(tmp_path / "orig")
