"""The trainer: losses, checkpoints, bit-identical resume (also after SIGKILL), outputs."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from posendf_plugin.config import load_config
from posendf_plugin.model import PoseNDFNet
from posendf_plugin.training import CHECKPOINT_FORMAT, train, training_losses

from _ndf_fixtures import REPO, clean_poses, labelled, tiny_config, write_training_dir

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

CURVES = ("epoch", "lr", "train_loss", "train_dist", "train_manifold", "train_eikonal", "val_dist", "val_mae")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_training_dir(tmp_path_factory.mktemp("ndf") / "data", n=1500, chunk=500)


@pytest.fixture
def one_thread():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


def _cfg(epochs=4, **training):
    return tiny_config(training={"epochs": epochs, "num_threads": 1, **training})


def _same(a, b):
    for k in CURVES:
        assert a[k] == b[k], k  # exact equality: bit-identical curves


def _weights(run):
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model_state_dict"]


def test_losses_terms_and_switches():
    cfg = _cfg()
    net = PoseNDFNet(cfg.model)
    clean = clean_poses(50)
    q, d, _ = labelled(clean, 64)
    t = training_losses(net, q, d, clean, cfg)
    assert set(t) == {"loss", "dist", "manifold", "eikonal"}
    assert all(float(v.detach()) > 0 for v in t.values())
    w = cfg.training
    torch.testing.assert_close(t["loss"].detach(), w.w_dist * t["dist"] + w.w_manifold * t["manifold"] + w.w_eikonal * t["eikonal"])
    t["loss"].backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in net.parameters())
    off = training_losses(net, q, d, clean, _cfg(w_eikonal=0.0, w_manifold=0.0))
    assert float(off["eikonal"]) == 0 and float(off["manifold"]) == 0
    l2 = training_losses(net, q, d, clean, _cfg(loss="l2"))
    torch.testing.assert_close(l2["dist"], ((net(q) - d) ** 2).mean().detach())


def test_train_outputs_and_checkpoint(data, tmp_path, one_thread):
    res = train(_cfg(epochs=3), out_dir=tmp_path / "run", data_dir=data, progress=False)
    run = res.out_dir
    assert res.epochs_run == 3 and res.model_path == run / "model.pt"
    for f in ("checkpoints/last.pt", "checkpoints/best.pt", "model.pt", "config.yaml", "history.json", "loss_curves.png"):
        assert (run / f).is_file(), f
    assert (run / "loss_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tb").iterdir())
    ck = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ck["format"] == CHECKPOINT_FORMAT and ck["epoch"] == 3
    assert {"model_state_dict", "optimizer_state_dict", "scheduler_state_dict", "rng", "config", "history"} <= set(ck)
    assert ck["config"] == _cfg(epochs=3).to_dict()
    assert len(ck["history"]["val_mae"]) == 3  # validated every epoch
    assert load_config(run / "config.yaml") == _cfg(epochs=3)
    h = res.history
    assert h["train_dist"][-1] < h["train_dist"][0]
    # an existing run is not overwritten without --resume
    with pytest.raises(ValueError, match="pass --resume"):
        train(_cfg(epochs=3), out_dir=run, data_dir=data, progress=False, tensorboard=False)
    # resuming with a different config names the key
    with pytest.raises(ValueError, match=r"training.lr \(checkpoint: 0.005, config: 0.001\)"):
        train(_cfg(epochs=3, lr=0.001), out_dir=run, data_dir=data, resume=True, progress=False, tensorboard=False)
    # a complete run resumes to a no-op
    again = train(_cfg(epochs=3), out_dir=run, data_dir=data, resume=True, progress=False, tensorboard=False)
    assert again.epochs_run == 0


def test_cli_seed_overrides_the_config(data, tmp_path, one_thread, capsys):
    from posendf_plugin.cli import main

    runs = {}
    for seed in (0, 1):
        out = tmp_path / f"s{seed}"
        assert main(["train", "--config", "configs/tiny.yaml", "--data", str(data), "--out", str(out), "--seed",
                     str(seed), "--no-progress"]) == 0
        ck = torch.load(out / "model.pt", weights_only=True)
        assert ck["config"]["experiment"]["seed"] == seed
        runs[seed] = ck["model_state_dict"]
    assert not torch.equal(runs[0]["layers.0.weight"], runs[1]["layers.0.weight"])
    # resuming under another seed is refused, naming the key
    assert main(["train", "--config", "configs/tiny.yaml", "--data", str(data), "--out", str(tmp_path / "s1"),
                 "--seed", "2", "--resume", "--no-progress"]) == 2
    assert "experiment.seed" in capsys.readouterr().err


def test_resume_is_bit_identical(data, tmp_path, one_thread):
    full = train(_cfg(epochs=4), out_dir=tmp_path / "full", data_dir=data, progress=False, tensorboard=False)
    part = train(_cfg(epochs=4), out_dir=tmp_path / "split", data_dir=data, progress=False, tensorboard=False, stop_after=2)
    assert part.epochs_run == 2 and part.model_path is None
    rest = train(_cfg(epochs=4), out_dir=tmp_path / "split", data_dir=data, progress=False, tensorboard=False, resume=True)
    assert rest.epochs_run == 2
    _same(full.history, rest.history)
    for (k, a), b in zip(_weights(full.out_dir).items(), _weights(rest.out_dir).values()):
        assert torch.equal(a, b), k


def test_resume_after_sigkill(data, tmp_path, one_thread):
    epochs = 8
    out = tmp_path / "killed"
    code = (
        "import sys; sys.path.insert(0, {tests!r}); sys.path.insert(0, {repo!r})\n"
        "from _ndf_fixtures import tiny_config\n"
        "from posendf_plugin.training import train\n"
        "cfg = tiny_config(training={{'epochs': {epochs}, 'num_threads': 1}})\n"
        "train(cfg, out_dir={out!r}, data_dir={data!r}, progress=False, tensorboard=False)\n"
    ).format(tests=str(REPO / "tests"), repo=str(REPO), epochs=epochs, out=str(out), data=str(data))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = out / "checkpoints" / "last.pt"
    deadline = time.time() + 60
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    killed_at = torch.load(last, weights_only=True)["epoch"] if last.exists() else None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed_at is not None and killed_at < epochs, proc.stderr.read().decode()[-2000:]
    rest = train(_cfg(epochs=epochs), out_dir=out, data_dir=data, resume=True, progress=False, tensorboard=False)
    full = train(_cfg(epochs=epochs), out_dir=tmp_path / "ref", data_dir=data, progress=False, tensorboard=False)
    _same(full.history, rest.history)
    for (k, a), b in zip(_weights(full.out_dir).items(), _weights(out).values()):
        assert torch.equal(a, b), k


def test_bad_data_and_truncated_checkpoint(data, tmp_path, one_thread):
    with pytest.raises(FileNotFoundError, match="posendf data prepare"):
        train(_cfg(), out_dir=tmp_path / "x", data_dir=tmp_path / "nothing", progress=False, tensorboard=False)
    with pytest.raises(ValueError, match="no training data"):
        train(_cfg(), out_dir=tmp_path / "x", progress=False, tensorboard=False)
    run = tmp_path / "trunc"
    train(_cfg(epochs=2), out_dir=run, data_dir=data, progress=False, tensorboard=False, stop_after=1)
    raw = (run / "checkpoints" / "last.pt").read_bytes()
    (run / "checkpoints" / "last.pt").write_bytes(raw[:100])
    with pytest.raises(ValueError, match="cannot read the checkpoint"):
        train(_cfg(epochs=2), out_dir=run, data_dir=data, resume=True, progress=False, tensorboard=False)


def test_resume_on_other_data_and_divergence_are_refused(data, tmp_path, one_thread):
    """--resume with another data folder would continue one model over two data sets: refused.
    A run whose loss turns non-finite stops with a message and writes no model; non-finite
    numbers in the config are refused before anything runs."""
    from posendf_plugin.config import Config

    run = tmp_path / "r"
    train(_cfg(epochs=3), out_dir=run, data_dir=data, progress=False, tensorboard=False, stop_after=1)
    other = write_training_dir(tmp_path / "other", n=900, chunk=300, seed=5)
    with pytest.raises(ValueError, match="trained on other data"):
        train(_cfg(epochs=3), out_dir=run, data_dir=other, resume=True, progress=False, tensorboard=False)
    assert train(_cfg(epochs=3), out_dir=run, data_dir=data, resume=True, progress=False, tensorboard=False).epochs_run == 2
    with pytest.raises(ValueError, match=r"training diverged in epoch 1 .*lower training.lr.*no model was written"):
        train(_cfg(epochs=2, lr=1e30), out_dir=tmp_path / "d", data_dir=data, progress=False, tensorboard=False)
    assert not (tmp_path / "d" / "model.pt").exists() and not (tmp_path / "d" / "checkpoints" / "last.pt").exists()
    d = _cfg().to_dict()
    for sec, key, value, match in (("training", "w_dist", float("nan"), "finite"), ("training", "lr", float("inf"), "finite"),
                                   ("model", "beta", float("inf"), "finite"), ("training", "lr", "5e-3", "write 5.0e-3"),
                                   ("training", "lr_min_factor", 2.0, r"in \[0, 1\]"), ("experiment", "device", 1, "a text"),
                                   ("experiment", "name", 123, "a text"), ("data", "pose_set", 7, "a text"),
                                   ("training", "val_fraction", "0.1", "must be a number"),
                                   ("experiment", "seed", 2 ** 70, "2\\*\\*63")):
        bad = {k: dict(v) for k, v in d.items()}
        bad[sec][key] = value
        with pytest.raises(ValueError, match=f"cfg.yaml: config {sec}.{key} .*{match}"):
            Config.from_dict(bad, source="cfg.yaml")


@pytest.mark.parametrize("metric,k", [("posendf", 5), ("posendf", 1), ("nrdf", 1)])
def test_online_labels_match_brute_force(metric, k):
    from posendf_plugin.data.labels import brute_force_knn
    from posendf_plugin.rotations import quat_random
    from posendf_plugin.training import online_labels

    ref = clean_poses(120)
    q = quat_random(9, 21, generator=torch.Generator().manual_seed(4))
    got = online_labels(q, ref, metric, k, chunk=50)  # several chunks
    d, _ = brute_force_knn(q, ref, metric, k)
    torch.testing.assert_close(got.double(), d.mean(1) if metric == "posendf" else d[:, 0], atol=2e-3, rtol=1e-4)


def test_uniform_samples_are_learned_and_resumable(data, tmp_path, one_thread):
    cfg = _cfg(epochs=6, uniform_batch_size=64)
    full = train(cfg, out_dir=tmp_path / "u", data_dir=data, progress=False, tensorboard=False)
    part = train(cfg, out_dir=tmp_path / "v", data_dir=data, progress=False, tensorboard=False, stop_after=3)
    rest = train(cfg, out_dir=tmp_path / "v", data_dir=data, progress=False, tensorboard=False, resume=True)
    assert part.epochs_run == rest.epochs_run == 3
    _same(full.history, rest.history)
    # far from the data the field now follows the true distance much better than without
    from posendf_plugin.prior import PoseNDF
    from posendf_plugin.rotations import quat_random
    from posendf_plugin.training import online_labels

    plain = train(_cfg(epochs=6), out_dir=tmp_path / "w", data_dir=data, progress=False, tensorboard=False)
    q = quat_random(200, 21, generator=torch.Generator().manual_seed(9))
    truth = online_labels(q, clean_poses(), "posendf", 5)
    err_u = (PoseNDF.from_checkpoint(full.model_path).distance(q) - truth).abs().mean()
    err_p = (PoseNDF.from_checkpoint(plain.model_path).distance(q) - truth).abs().mean()
    assert float(err_u) < 0.5 * float(err_p), (float(err_u), float(err_p))


def test_projected_hard_negatives_and_fine_tuning(data, tmp_path, one_thread):
    """Projected hard negatives remove spurious zeros: random poses the field projects end far
    nearer the data; the run resumes bit-identically; init_from starts from given weights
    (same network shape only)."""
    from posendf_plugin.prior import PoseNDF
    from posendf_plugin.rotations import quat_random
    from posendf_plugin.training import online_labels

    plain = train(_cfg(epochs=8), out_dir=tmp_path / "plain", data_dir=data, progress=False, tensorboard=False)
    cfg = _cfg(epochs=8, projected_batch_size=64, projected_steps=3)
    mined = train(cfg, out_dir=tmp_path / "mined", data_dir=data, progress=False, tensorboard=False)
    start = quat_random(300, 21, generator=torch.Generator().manual_seed(4))
    ref = clean_poses()
    d_plain = online_labels(PoseNDF.from_checkpoint(plain.model_path).project(start).poses, ref, "posendf", 5).mean()
    d_mined = online_labels(PoseNDF.from_checkpoint(mined.model_path).project(start).poses, ref, "posendf", 5).mean()
    assert float(d_mined) < 0.5 * float(d_plain), (float(d_mined), float(d_plain))
    part = train(cfg, out_dir=tmp_path / "p", data_dir=data, progress=False, tensorboard=False, stop_after=4)
    rest = train(cfg, out_dir=tmp_path / "p", data_dir=data, progress=False, tensorboard=False, resume=True)
    assert part.epochs_run == rest.epochs_run == 4
    _same(mined.history, rest.history)
    # fine-tuning: the first epoch starts from the trained weights, a fresh network does not
    tune = _cfg(epochs=1, lr=1e-4).replace(experiment={"init_from": str(plain.model_path)})
    tuned = train(tune, out_dir=tmp_path / "tuned", data_dir=data, progress=False, tensorboard=False)
    fresh = train(_cfg(epochs=1, lr=1e-4), out_dir=tmp_path / "fresh", data_dir=data, progress=False, tensorboard=False)
    assert tuned.history["val_mae"][0] < 1.5 * plain.history["val_mae"][-1] < fresh.history["val_mae"][0]
    with pytest.raises(ValueError, match="another network shape.*model.hidden"):
        train(tune.replace(model={"hidden": [8]}), out_dir=tmp_path / "bad", data_dir=data, progress=False, tensorboard=False)
    with pytest.raises(FileNotFoundError, match="init_from"):
        train(tune.replace(experiment={"init_from": str(tmp_path / "none.pt")}), out_dir=tmp_path / "bad2", data_dir=data,
              progress=False, tensorboard=False)


def test_manifest_k_mismatch_warns_only_for_online_labels(tmp_path):
    """Hard negatives are labelled with data.k: a data folder made with another k is flagged."""
    import json
    import warnings

    from posendf_plugin.training import _check_manifest

    (tmp_path / "manifest.json").write_text(json.dumps({"config": {"metric": "posendf", "k": 50}}))
    mined = _cfg(epochs=1, projected_batch_size=8)
    with pytest.warns(UserWarning, match="average the 50 nearest.*data.k = 5"):
        _check_manifest(tmp_path, mined)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check_manifest(tmp_path, _cfg(epochs=1))  # no online labels: k does not matter
        _check_manifest(tmp_path, mined.replace(data={"k": 50}))


def test_knn_clean_labels_warn_with_manifold_term(tmp_path):
    """Data whose data poses carry k-nearest labels (clean_labels: knn) contradicts the manifold
    term (f = 0 on them): the trainer says to switch it off."""
    import json
    import warnings

    from posendf_plugin.training import _check_manifest

    (tmp_path / "manifest.json").write_text(json.dumps({"config": {"metric": "posendf", "k": 5, "clean_labels": "knn"}}))
    with pytest.warns(UserWarning, match="clean_labels: knn.*w_manifold: 0"):
        _check_manifest(tmp_path, _cfg(epochs=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check_manifest(tmp_path, _cfg(epochs=1, w_manifold=0.0))
