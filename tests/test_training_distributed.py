"""Training with several processes (torchrun, DDP over gloo on the CPU): the same loss curve as
one process with the same global batch, rank-0-only outputs, resume rules."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from posendf_plugin.config import save_config
from posendf_plugin.training import train

from _ndf_fixtures import REPO, tiny_config, write_training_dir

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed"),
]

CURVES = ("train_loss", "train_dist", "train_manifold", "train_eikonal", "val_dist", "val_mae")
EPOCHS = 3


def _torchrun(args, cwd, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 1125 training samples: the last batch of 128 (101) splits 50/51 between two processes
    return write_training_dir(tmp_path_factory.mktemp("ddp") / "data", n=1250, chunk=625)


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """Two torchrun launches with 2 gloo processes each: the user's command (``posendf train`` joining
    the process group from torchrun's environment), then, in a process group of its own, an
    uninterrupted run and a stopped + resumed run."""
    root = tmp_path_factory.mktemp("ddp_runs")
    cfg_file = root / "tiny.yaml"
    save_config(cfg_file, _cfg_extra(data))
    # two launches: re-initialising a process group on torchrun's store inside one launch hung
    # once in a full test run
    cli = root / "cli.py"
    cli.write_text(textwrap.dedent(f"""
        import torch.distributed as dist
        from posendf_plugin.cli import main
        assert main(["train", "--config", {str(cfg_file)!r}, "--data", {str(data)!r}, "--out", {str(root / "two")!r},
                     "--no-progress"]) == 0
        assert not dist.is_initialized()  # train() ended the group it started
    """))
    own = root / "own_group.py"
    own.write_text(textwrap.dedent(f"""
        import torch.distributed as dist
        from _ndf_fixtures import tiny_config
        from posendf_plugin.training import train
        dist.init_process_group("gloo")
        cfg = tiny_config(training={{"epochs": {EPOCHS}, "num_threads": 1}})
        kw = dict(data_dir={str(data)!r}, progress=False, tensorboard=False)
        train(cfg, out_dir={str(root / 'full')!r}, **kw)
        train(cfg, out_dir={str(root / 'split')!r}, stop_after=1, **kw)
        rest = train(cfg, out_dir={str(root / 'split')!r}, resume=True, **kw)
        assert rest.epochs_run == {EPOCHS - 1}
        dist.destroy_process_group()
    """))
    _torchrun([str(cli)], cwd=root)
    _torchrun([str(own)], cwd=root)
    return root


def _cfg_extra(data):
    # with online-labelled extra samples: each process takes its share of those too
    return tiny_config(training={"epochs": EPOCHS, "num_threads": 1, "uniform_batch_size": 16},
                       data={"pose_set": str(data.parent / "data_clean.npz")})


def test_two_processes_match_one(data, runs, tmp_path):
    cfg = _cfg_extra(data)
    run2 = runs / "two"
    one = train(cfg, out_dir=tmp_path / "one", data_dir=data, progress=False, tensorboard=False)
    h2 = json.loads((run2 / "history.json").read_text())
    assert h2["epoch"] == one.history["epoch"] == list(range(1, EPOCHS + 1))
    for k in CURVES:
        torch.testing.assert_close(torch.tensor(h2[k]), torch.tensor(one.history[k]), rtol=1e-5, atol=1e-7, msg=k)
    w1 = torch.load(one.out_dir / "model.pt", weights_only=True)["model_state_dict"]
    w2 = torch.load(run2 / "model.pt", weights_only=True)["model_state_dict"]
    assert w1.keys() == w2.keys()  # plain keys (no DDP "module." prefix)
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-3, atol=1e-5, msg=k)
    ck = torch.load(run2 / "checkpoints" / "last.pt", weights_only=True)
    assert ck["world_size"] == 2
    # rank 0 alone writes: one TensorBoard event file, no temp files left
    assert len(list((run2 / "tb").iterdir())) == 1
    assert not [p for p in run2.rglob("*") if p.name.endswith(".tmp")]
    # a changed process count on resume: a clear error naming the fix, nothing touched
    before = (run2 / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(ValueError, match=r"trained with 2 process\(es\) but this run has 1.*--nproc_per_node=2"):
        train(cfg, out_dir=run2, data_dir=data, resume=True, progress=False, tensorboard=False)
    assert (run2 / "checkpoints" / "last.pt").read_bytes() == before


def test_two_process_resume_is_bit_identical(runs):
    """With a fixed process count, stop + resume gives exactly the uninterrupted curve."""
    a = json.loads((runs / "full" / "history.json").read_text())
    b = json.loads((runs / "split" / "history.json").read_text())
    for k in CURVES:
        assert a[k] == b[k], k
    wa = torch.load(runs / "full" / "model.pt", weights_only=True)["model_state_dict"]
    wb = torch.load(runs / "split" / "model.pt", weights_only=True)["model_state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_cuda_without_cuda_is_refused(data, tmp_path):
    cfg = tiny_config(training={"epochs": 1, "num_threads": 1})
    with pytest.raises(ValueError, match="--device cuda: CUDA is not available .*; use cpu"):
        train(cfg, out_dir=tmp_path / "c", data_dir=data, device="cuda", progress=False, tensorboard=False)
    with pytest.raises(ValueError, match="--device 'gpu' is not a device; use cpu or cuda"):
        train(cfg, out_dir=tmp_path / "c", data_dir=data, device="gpu", progress=False, tensorboard=False)
    assert not (tmp_path / "c").exists()
