"""Distillation (``posendf relabel``): prepared samples relabelled by a trained field, a student
trained on them, resuming, and the trainer's warning about labels it would add itself."""
import json
import os
import warnings

import numpy as np
import pytest
import torch

from posendf_plugin.cli import main
from posendf_plugin.model import PoseNDFNet
from posendf_plugin.prior import PoseNDF, save_ensemble

from _ndf_fixtures import tiny_config, trained_tiny, write_training_dir

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def test_relabel_gives_the_teachers_field_and_a_student_learns_it(tmp_path, capsys):
    data = write_training_dir(tmp_path / "data", n=1200, chunk=400)
    other = tmp_path / "other.pt"
    cfg = tiny_config()
    torch.save({"config": cfg.to_dict(), "model_state_dict": PoseNDFNet(cfg.model, seed=5).state_dict()}, other)
    teacher = save_ensemble([trained_tiny(), other], tmp_path / "teacher.pt")
    out = tmp_path / "relabelled"
    assert main(["relabel", "--teacher", str(teacher), "--data", str(data), "--out", str(out), "--no-progress"]) == 0
    assert "relabelled 1200 samples in 3 chunk(s)" in capsys.readouterr().out
    field = PoseNDF.from_checkpoint(teacher)
    for name in ("chunk_00000.npz", "chunk_00002.npz"):
        src, new = np.load(data / name), np.load(out / name)
        np.testing.assert_array_equal(new["quat"], src["quat"])  # same samples, noise scales
        np.testing.assert_array_equal(new["sigma"], src["sigma"])
        want = field.net(torch.from_numpy(new["quat"])).detach().numpy()
        np.testing.assert_allclose(new["dist"], want, rtol=1e-5, atol=1e-6)
        assert np.abs(new["dist"] - src["dist"]).mean() > 1e-3  # the labels did change
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete" and man["relabel"]["teacher"]["kind"] == "mean of 2 fields"
    assert man["config"] == json.loads((data / "manifest.json").read_text())["config"]  # what the trainer checks
    # a second run keeps the finished chunks
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("chunk_*.npz")}
    os.remove(out / "chunk_00001.npz")
    assert main(["relabel", "--teacher", str(teacher), "--data", str(data), "--out", str(out), "--no-progress"]) == 0
    assert "(1 written, 2 already complete" in capsys.readouterr().out
    assert all((out / n).stat().st_mtime_ns == t for n, t in stamps.items() if n != "chunk_00001.npz")
    # another teacher into the same folder: refused, nothing changed
    assert main(["relabel", "--teacher", str(other), "--data", str(data), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "already holds other training data" in err and len(err.strip().splitlines()) == 1
    # the student: trained on the relabelled folder it is closer to the teacher than the same
    # training on the source labels gets
    from posendf_plugin.training import train

    student_cfg = tiny_config(training={"epochs": 10, "w_manifold": 0.0, "num_threads": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no online labels in this config: no warning
        res = train(student_cfg, out_dir=tmp_path / "student", data_dir=out, progress=False, tensorboard=False)
    plain = train(student_cfg, out_dir=tmp_path / "plain", data_dir=data, progress=False, tensorboard=False)
    q = torch.from_numpy(np.load(data / "chunk_00001.npz")["quat"])
    gaps = [(PoseNDF.from_checkpoint(r.model_path).distance(q) - field.distance(q)).abs().mean() for r in (res, plain)]
    assert gaps[0] < 0.75 * gaps[1]  # measured: 0.073 vs 0.147
    # online nearest-neighbour labels would mix with the teacher's: the trainer says so
    from posendf_plugin.training import _check_manifest

    with pytest.warns(UserWarning, match="projected_batch_size = 8 adds poses labelled by nearest neighbours"):
        _check_manifest(out, student_cfg.replace(training={"projected_batch_size": 8}))


def test_online_samples_are_labelled_by_the_teacher_when_one_is_set(tmp_path):
    """``training.teacher``: the uniform / projected poses a batch adds get the teacher's field,
    not the nearest-neighbour label, and the trainer no longer warns about relabelled data."""
    from posendf_plugin.training import _check_manifest, _online_labeller, online_labels, train

    data = write_training_dir(tmp_path / "data", n=600, chunk=300)
    other = tmp_path / "other.pt"
    torch.save({"config": tiny_config().to_dict(), "model_state_dict": PoseNDFNet(tiny_config().model, seed=5).state_dict()}, other)
    teacher = save_ensemble([trained_tiny(), other], tmp_path / "teacher.pt", reduce="min")
    out = tmp_path / "relabelled"
    assert main(["relabel", "--teacher", str(teacher), "--data", str(data), "--out", str(out), "--no-progress"]) == 0
    cfg = tiny_config(training={"epochs": 1, "projected_batch_size": 8, "num_threads": 1, "teacher": str(teacher)})
    q = torch.nn.functional.normalize(torch.randn(16, 21, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    reference = torch.from_numpy(np.load(data / "chunk_00000.npz")["quat"][:50]).float()
    got = _online_labeller(cfg, reference, torch.device("cpu"))(q)
    np.testing.assert_allclose(got.numpy(), PoseNDF.from_checkpoint(teacher).net(q).numpy(), rtol=1e-6)
    plain = _online_labeller(cfg.replace(training={"teacher": ""}), reference, torch.device("cpu"))(q)
    np.testing.assert_allclose(plain.numpy(), online_labels(q, reference, "posendf", cfg.data.k).numpy(), rtol=1e-6)
    assert (got - plain).abs().mean() > 1e-3  # the two labels differ: the test can tell them apart
    assert _online_labeller(cfg.replace(training={"projected_batch_size": 0}), None, torch.device("cpu")) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the online poses follow the teacher: nothing to warn about
        _check_manifest(out, cfg)
        res = train(cfg, out_dir=tmp_path / "student", data_dir=out, progress=False, tensorboard=False)
    assert res.model_path.is_file()
