"""End-to-end smoke test of the benchmark runner (``benchmarks/run.py``) at tiny sizes: the
``none`` prior, a tiny randomly initialised Pose-NDF given with ``--checkpoint`` and an
unreadable NRDF checkpoint (must be recorded as skipped, not crash the run)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import run as bench_run  # noqa: E402
from benchmarks.tasks import TASK_NAMES  # noqa: E402
from posendf_plugin.config import load_config  # noqa: E402
from posendf_plugin.io import save_torch  # noqa: E402
from posendf_plugin.model import PoseNDFNet  # noqa: E402

PNGS = ("generation_samples.png", "discrimination_auroc.png", "denoise_error_vs_noise.png", "speed_throughput.png")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("bench")
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    torch.manual_seed(0)  # only the random initial weights of the test network
    net = PoseNDFNet(cfg.model)
    ck = save_torch(tmp / "tiny_ndf.pt", {"model_state_dict": net.state_dict(), "config": cfg.to_dict()})
    bad = tmp / "broken_nrdf.pt"
    bad.write_bytes(b"not a checkpoint")
    out = tmp / "out"
    rc = bench_run.main(["--tiny", "--no-progress", "--priors", "none,posendf,nrdf", "--checkpoint", f"posendf={ck}",
                         "--checkpoint", f"nrdf={bad}", "--out", str(out), "--seed", "3", "--threads", "1"])
    return rc, out, json.loads((out / "results.json").read_text())


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def test_runner_writes_all_files(tiny_run):
    rc, out, _ = tiny_run
    assert rc == 0
    for name in ("results.json", "results.md", *(f"{t}.md" for t in TASK_NAMES), *PNGS):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    md = (out / "results.md").read_text()
    assert "## targets" in md and "## denoise" in md and "| posendf |" in md
    assert "| none | skipped: prior 'none' has no projection" in (out / "interpolation.md").read_text()


def test_results_schema(tiny_run):
    _, _, res = tiny_run
    assert set(TASK_NAMES) <= set(res) and {"meta", "targets"} <= set(res)
    assert res["meta"]["seed"] == 3 and res["meta"]["tiny"] is True
    for task in TASK_NAMES:
        settings = {k: v for k, v in res[task].items() if not k.startswith("_")}
        assert settings, f"{task}: no settings (got {res[task]})"
        for setting, per_prior in settings.items():
            assert {"none", "posendf", "nrdf"} <= set(per_prior), (task, setting)
            assert "skipped" in per_prior["nrdf"], (task, setting, per_prior["nrdf"])
            for prior in ("none", "posendf"):
                entry = per_prior[prior]
                if "skipped" in entry:  # allowed only where the prior cannot do the setting
                    assert task == "interpolation" and prior == "none", (task, setting, entry)
                    continue
                assert entry and all(_is_number(v) for v in entry.values()), (task, setting, prior, entry)


def test_metric_sanity(tiny_run):
    _, _, res = tiny_run
    gen = res["generation"]["n=20"]
    assert gen["posendf"]["n"] == 20 and gen["posendf"]["apd_cm"] > 0 and 0 <= gen["posendf"]["plausible_share"] <= 1
    # the 'none' prior has zero energy: chance-level discrimination
    assert res["discrimination"]["sigma=0.5"]["none"]["auroc"] == pytest.approx(0.5)
    # 5 optimiser steps: only plausible ranges
    d = res["denoise"]["noise=40mm"]["none"]
    assert d["mpjpe_mm"] > 0 and d["noisy_mpjpe_mm"] > 10
    assert res["speed"]["forward B=64"]["posendf"]["poses_per_s"] > 0
    t = res["targets"]
    assert set(t) == {k for k, *_ in bench_run.TARGETS}
    assert t["speed_fit_ratio"]["pass"] in (True, False) and _is_number(t["speed_fit_ratio"]["value"])
    assert t["denoise40_mpjpe_vs_vposer"]["pass"] is None and "vposer" in t["denoise40_mpjpe_vs_vposer"]["reason"]


def test_same_seed_same_numbers(tiny_run, tmp_path):
    _, out, res = tiny_run
    rc = bench_run.main(["--tiny", "--no-progress", "--task", "generation,discrimination", "--priors", "none,gmm",
                         "--out", str(tmp_path), "--seed", "3"])
    again = json.loads((tmp_path / "results.json").read_text())
    assert rc == 0
    untimed = lambda d: {k: v for k, v in d.items() if "seconds" not in k}  # noqa: E731
    assert untimed(again["generation"]["n=20"]["none"]) == untimed(res["generation"]["n=20"]["none"])
    assert again["discrimination"]["sigma=0.1"]["none"] == res["discrimination"]["sigma=0.1"]["none"]


def test_bad_arguments(capsys):
    assert bench_run.main(["--priors", "none,foo"]) == 2
    assert bench_run.main(["--task", "nope"]) == 2
    assert bench_run.main(["--checkpoint", "posendf=/no/such/file.pt"]) == 2
    assert bench_run.main(["--fit-device", "xpu"]) == 2
    assert "--fit-device xpu: use cpu or cuda" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert bench_run.main(["--device", "cuda"]) == 2
        assert "CUDA is not available on this machine" in capsys.readouterr().err


def test_guarded_records_failures_without_raising():
    from benchmarks.common import BenchContext, guarded

    ctx = BenchContext(priors=("none",), current_task="demo")
    assert guarded(ctx, "none", lambda: {"x": 1.0}) == {"x": 1.0}

    def cannot():
        raise NotImplementedError("prior 'none' cannot generate samples")

    assert guarded(ctx, "none", cannot) == {"skipped": "prior 'none' cannot generate samples"}
    assert ctx.errors == []
    out = guarded(ctx, "none", lambda: 1 / 0)
    assert out["error"].startswith("ZeroDivisionError") and ctx.errors == [f"demo/none: {out['error']}"]


def test_data_folder_of_amass_motions(tmp_path):
    """--data: a folder of AMASS-layout motions (plus a shape-only file, as AMASS has) replaces
    the default test split for the pose tasks and gives the denoising windows."""
    import numpy as np

    from posendf_plugin.data.default import default_pose_set
    from posendf_plugin.data.motion import Motion, save_motion
    from posendf_plugin.skeleton import quat_to_pose

    q = default_pose_set("test").quat[:60]
    data = tmp_path / "amass" / "subject1"
    for i in range(2):
        body = quat_to_pose(q[30 * i:30 * i + 30], 63).numpy()
        save_motion(data / f"clip{i}_poses.npz", Motion(pose_body=body, root_orient=np.zeros((30, 3), np.float32),
                                                        trans=np.zeros((30, 3), np.float32), fps=30.0))
    np.savez(data / "shape.npz", betas=np.zeros(16, np.float32), gender="neutral")
    out = tmp_path / "out"
    rc = bench_run.main(["--tiny", "--no-progress", "--task", "generation,denoise", "--priors", "none",
                         "--data", str(tmp_path / "amass"), "--out", str(out)])
    res = json.loads((out / "results.json").read_text())
    assert rc == 0
    assert res["meta"]["data"] == str(tmp_path / "amass")
    assert res["denoise"]["_settings"]["clips"] == 2
    assert res["denoise"]["noise=40mm"]["none"]["windows"] == 2
    assert res["generation"]["n=20"]["_heldout"]["n"] == 20
    assert res["generation"]["n=20"]["_train"]["dnn_rad"] < 0.01  # training poses are their own nearest neighbours


def test_val_split_and_calibration_script(tmp_path, capsys):
    """--split val swaps the held-out poses and clips for the validation subject; the
    calibration script runs a grid on it and writes one row per (prior, scale)."""
    from benchmarks import calibrate
    from benchmarks.common import BenchContext
    from posendf_plugin.data.default import default_pose_set

    ctx = BenchContext(split="val", progress=False)
    assert torch.equal(ctx.test_poses(), default_pose_set("val").quat.float())
    assert "val" in ctx.data_name and ctx.motions() and all(n.startswith("cmu/006_") for n, _ in ctx.motions())
    out = tmp_path / "grid.json"
    assert calibrate.main(["--priors", "none,gmm", "--scales", "gmm=0.5,5", "--images", "1", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["prior"], r["prior_scale"]) for r in rows] == [("none", 0.0), ("gmm", 0.5), ("gmm", 5.0)]
    assert all(math.isfinite(r["pa_mpjpe_mm"]) and r["pa_mpjpe_mm"] > 0 for r in rows)
    assert "| gmm | 5 |" in capsys.readouterr().out
    oracle = tmp_path / "oracle.json"  # an oracle start (the true pose) ends nearer the truth
    assert calibrate.main(["--priors", "none", "--images", "1", "--init", "truth", "--out", str(oracle)]) == 0
    assert json.loads(oracle.read_text())["rows"][0]["pa_mpjpe_mm"] < rows[0]["pa_mpjpe_mm"]
    den = tmp_path / "den.json"
    assert calibrate.main(["--task", "denoise", "--priors", "none", "--windows", "1", "--out", str(den)]) == 0
    d = json.loads(den.read_text())
    assert d["windows"] == 1 and d["rows"][0]["mpjpe_mm"] > 0
