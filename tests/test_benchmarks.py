"""End-to-end smoke test of the benchmark runner (``benchmarks/run.py``) at tiny sizes: the
``none`` prior, a tiny randomly initialised Pose-NDF given with ``--checkpoint`` and an
unreadable NRDF checkpoint (must be recorded as skipped, not crash the run), on every available
source (the shipped CMU test split; the Bandai-Namco clips when ``../shared/data`` is present)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import run as bench_run  # noqa: E402
from benchmarks.common import PER_ITEM  # noqa: E402
from benchmarks.tasks import TASK_NAMES  # noqa: E402
from posendf_plugin.config import load_config  # noqa: E402
from posendf_plugin.priors import get_prior  # noqa: E402
from posendf_plugin.io import save_torch  # noqa: E402
from posendf_plugin.model import PoseNDFNet  # noqa: E402

PNGS = ("generation_samples", "discrimination_auroc", "denoise_error_vs_noise")
SHARED = REPO.parent / "shared" / "data"
HAS_BANDAI = (SHARED / "bandai").is_dir()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("bench")
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    torch.manual_seed(0)  # only the random initial weights of the test network
    net = PoseNDFNet(cfg.model)
    ck = save_torch(tmp / "tiny_ndf.pt", {"model_state_dict": net.state_dict(), "config": cfg.to_dict()})
    out = tmp / "out"
    # a prior whose weights are unavailable (e.g. a deleted asset) is skipped with its reason, the
    # others run: the shipped NRDF made unreadable for this run
    from benchmarks import common

    def without_nrdf(name, **kw):
        if name == "nrdf":
            raise FileNotFoundError("nrdf_default.pt: no such checkpoint file (removed for this test)")
        return get_prior(name, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(common, "get_prior", without_nrdf)
        rc = bench_run.main(["--tiny", "--no-progress", "--priors", "none,posendf,nrdf", "--checkpoint", f"posendf={ck}",
                             "--out", str(out), "--seed", "3", "--threads", "1", "--cache", str(tmp / "cache")])
    return rc, out, json.loads((out / "results.json").read_text())


def test_a_checkpoint_the_user_names_must_be_readable(tmp_path, capsys):
    """--checkpoint NAME=FILE with a corrupt file, a folder or another prior's file is bad input:
    one line, exit status 2, before any task runs (not an 'unavailable' row in a run that exits 0)."""
    bad = tmp_path / "broken_nrdf.pt"
    bad.write_bytes(b"not a checkpoint")
    cases = ((f"nrdf={bad}", "cannot read the checkpoint"), (f"nrdf={tmp_path}", "is a folder"),
             (f"gmm={REPO / 'posendf_plugin' / 'assets' / 'posendf_default.pt'}", "a PyTorch checkpoint"))
    for item, why in cases:
        assert bench_run.main(["--tiny", "--task", "speed", "--priors", "none", "--checkpoint", item,
                               "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert why in err and "\n" not in err, err
    assert not (tmp_path / "o").exists()
    (tmp_path / "file").write_text("")
    assert bench_run.main(["--tiny", "--task", "speed", "--priors", "none", "--out", str(tmp_path / "file")]) == 2
    assert "is an existing file, not a folder" in capsys.readouterr().err


def test_run_options_are_checked_before_any_task(tmp_path, capsys):
    """Bad --seed / --out / --cache / --data / --body-model and a --checkpoint that does not fit
    --priors are one line and exit status 2 before any task runs; nothing is written."""
    ps = tmp_path / "prep"
    ps.mkdir()
    (ps / "manifest.json").write_text("{}")
    bad = tmp_path / "bad"
    bad.mkdir()
    np.savez(bad / "clip.npz", pose_body=np.full((10, 63), np.nan, "f4"))
    (tmp_path / "afile").write_text("")
    models = tmp_path / "models"
    models.mkdir()
    ndf = REPO / "posendf_plugin" / "assets" / "posendf_default.pt"
    cases = ((["--seed", "-1"], "--seed"), (["--out", ""], "--out is empty"),
             (["--cache", str(tmp_path / "afile"), "--sources", "cmu"], "--cache"),
             (["--data", str(ps)], "'posendf data prepare' folder"), (["--data", str(bad)], "--data"),
             (["--body-model", str(models)], "--body-model"),
             (["--priors", "none", "--checkpoint", f"posendf={ndf}"], "not among --priors"),
             (["--priors", "nrdf", "--checkpoint", f"nrdf={ndf}"], "is a posendf field"),
             (["--out", str(tmp_path / "afile" / "sub")], "--out"))
    for extra, why in cases:
        capsys.readouterr()
        assert bench_run.main(["--tiny", "--task", "discrimination", "--no-progress", "--out", str(tmp_path / "o"), *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0] and "Traceback" not in err[0], (extra, err)
    assert not (tmp_path / "o").exists()


def test_a_named_checkpoint_is_read_once(tmp_path):
    """run.py reads a --checkpoint file up front to check it and hands that prior to the run:
    the file is not read a second time."""
    from benchmarks import common

    cfg = load_config(REPO / "configs" / "tiny.yaml")
    torch.manual_seed(0)
    ck = save_torch(tmp_path / "tiny_ndf.pt", {"model_state_dict": PoseNDFNet(cfg.model).state_dict(), "config": cfg.to_dict()})
    reads = []

    def counting(name, **kw):
        reads.append((name, kw.get("checkpoint")))
        return get_prior(name, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(common, "get_prior", counting)
        assert bench_run.main(["--tiny", "--no-progress", "--task", "speed", "--priors", "none,posendf", "--checkpoint",
                               f"posendf={ck}", "--out", str(tmp_path / "o"), "--threads", "1",
                               "--cache", str(tmp_path / "cache")]) == 0
    assert reads.count(("posendf", str(ck))) == 1, reads
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert str(ck) in json.dumps(res)


def _ran(res):
    """Names of the sources that ran (not skipped)."""
    return [k for k, v in res["sources"].items() if "skipped" not in v]


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def test_runner_writes_all_files(tiny_run):
    rc, out, res = tiny_run
    assert rc == 0
    sources = _ran(res)
    assert sources[0] == "cmu" and ("bandai" in sources) == HAS_BANDAI
    files = ["results.json", "results.md", "speed_throughput_cmu.png"]
    files += [f"{t}_{s}.md" for s in sources for t in TASK_NAMES] + [f"{p}_{s}.png" for s in sources for p in PNGS]
    for name in files:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    md = (out / "results.md").read_text()
    assert "# source cmu" in md and "## targets [cmu]" in md and "## denoise [cmu]" in md and "| posendf |" in md
    assert "| none | skipped: prior 'none' has no projection" in (out / "interpolation_cmu.md").read_text()


def test_results_name_sources(tiny_run):
    """Every source gets its own results, targets, tables and plots; a source-independent task
    (speed) is measured once, on the first source; a missing Bandai folder is a note, not an error."""
    _, out, res = tiny_run
    assert {"meta", "sources", "targets"} <= set(res)
    assert res["meta"]["sources"]["cmu"]["poses"] > 0 and "cmu_test" in res["meta"]["sources"]["cmu"]["description"]
    assert set(res["targets"]) == set(_ran(res))
    if HAS_BANDAI:
        b = res["meta"]["sources"]["bandai"]
        assert b["clips"] == 3 and b["poses"] > 0 and not b["failed"] and "Bandai-Namco" in b["description"]
        assert "measured once per run, on source 'cmu'" in res["sources"]["bandai"]["speed"]["skipped"]
        assert "speed_fit_ratio" in res["targets"]["cmu"] and "speed_fit_ratio" not in res["targets"]["bandai"]
        assert "# source bandai" in (out / "results.md").read_text()
        assert "## denoise [bandai]" in (out / "denoise_bandai.md").read_text()
        # the samples are drawn once per run; only the reference poses differ between sources
        g_cmu, g_ban = res["sources"]["cmu"]["generation"]["n=20"], res["sources"]["bandai"]["generation"]["n=20"]
        assert g_cmu["posendf"]["apd_cm"] == g_ban["posendf"]["apd_cm"] and g_cmu["posendf"]["fid"] != g_ban["posendf"]["fid"]
    else:
        assert "skipped" in res["sources"]["bandai"]


def test_results_schema(tiny_run):
    _, _, all_res = tiny_run
    assert all_res["meta"]["seed"] == 3 and all_res["meta"]["tiny"] is True
    res = all_res["sources"]["cmu"]
    assert set(TASK_NAMES) <= set(res)
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
                assert entry and all(_is_number(v) for k, v in entry.items() if k != PER_ITEM), (task, setting, prior, entry)
                if PER_ITEM in entry:  # per-item values behind the means of the fitting tasks (paired intervals)
                    assert task in ("image_fit", "denoise", "completion"), task
                    for metric, values in entry[PER_ITEM].items():
                        assert all(_is_number(v) for v in values) and np.mean(values) == pytest.approx(entry[metric], rel=1e-4)


def test_metric_sanity(tiny_run):
    _, _, all_res = tiny_run
    res = all_res["sources"]["cmu"]
    gen = res["generation"]["n=20"]
    assert gen["posendf"]["n"] == 20 and gen["posendf"]["apd_cm"] > 0 and 0 <= gen["posendf"]["plausible_share"] <= 1
    # the 'none' prior has zero energy: chance-level discrimination
    assert res["discrimination"]["sigma=0.5"]["none"]["auroc"] == pytest.approx(0.5)
    # 5 optimiser steps: only plausible ranges
    d = res["denoise"]["noise=40mm"]["none"]
    assert d["mpjpe_mm"] > 0 and d["noisy_mpjpe_mm"] > 10
    assert res["speed"]["forward B=64"]["posendf"]["poses_per_s"] > 0
    t = all_res["targets"]["cmu"]
    assert set(t) == {k for k, *_ in bench_run.TARGETS}
    assert t["speed_fit_ratio"]["pass"] in (True, False) and _is_number(t["speed_fit_ratio"]["value"])
    assert t["denoise40_mpjpe_vs_none"]["pass"] in (True, False) and t["denoise40_mpjpe_vs_none"]["reference"] == "none"
    # the NRDF checkpoint is unreadable: "<= every baseline" cannot be decided
    assert t["denoise40_mpjpe_vs_baselines"]["pass"] is None and "nrdf" in t["denoise40_mpjpe_vs_baselines"]["reason"]
    assert t["generation_apd_vs_vposer"]["pass"] is None and "vposer" in t["generation_apd_vs_vposer"]["reason"]
    c = res["completion"]["masked=50% (10 joints)"]["posendf"]
    assert t["completion50_vs_init"]["value"] == pytest.approx(c["angle_deg"] / c["identity_angle_deg"])
    d = res["discrimination"]["sigma=0.1"]["posendf"]
    assert t["heldout_f_vs_noise01"]["value"] == pytest.approx(d["energy_real"] / d["energy_noisy"])


def test_same_seed_same_numbers(tiny_run, tmp_path):
    _, out, res = tiny_run
    rc = bench_run.main(["--tiny", "--no-progress", "--task", "generation,discrimination", "--priors", "none,gmm",
                         "--out", str(tmp_path), "--seed", "3", "--sources", "cmu"])
    again = json.loads((tmp_path / "results.json").read_text())["sources"]["cmu"]
    res = res["sources"]["cmu"]
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
    assert bench_run.main(["--sources", "cmu,amass"]) == 2
    assert "--sources: unknown source(s) ['amass']" in capsys.readouterr().err
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
    all_res = json.loads((out / "results.json").read_text())
    assert rc == 0
    assert list(all_res["sources"]) == ["amass"]  # --data alone: only the user's source, named by its folder
    assert all_res["meta"]["sources"]["amass"]["description"] == str(tmp_path / "amass")
    res = all_res["sources"]["amass"]
    assert res["denoise"]["_settings"]["clips"] == 2
    assert res["denoise"]["noise=40mm"]["none"]["windows"] == 2
    assert res["generation"]["n=20"]["_heldout"]["n"] == 20
    assert res["generation"]["n=20"]["_train"]["dnn_rad"] < 0.01  # training poses are their own nearest neighbours
    assert (out / "denoise_amass.md").is_file() and (out / "denoise_error_vs_noise_amass.png").is_file()


def test_val_split_and_calibration_script(tmp_path, capsys):
    """--split val swaps the held-out poses and clips for the validation subject; the
    calibration script runs a grid on it and writes one row per (prior, scale)."""
    from benchmarks import calibrate
    from benchmarks.common import BenchContext
    from posendf_plugin.data.default import default_pose_set

    ctx = BenchContext(split="val", progress=False)
    assert torch.equal(ctx.test_poses(), default_pose_set("val").quat.float())
    assert "val" in ctx.data_name and ctx.motions() and {n for n, _ in ctx.motions()} == set(default_pose_set("val").clip_names)
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
    for bad, option in ((["--scales", "gmm=x"], "--scales"), (["--scales", "=1"], "--scales"),
                        (["--checkpoint", "model.pt"], "--checkpoint"), (["--checkpoint", "posendf="], "--checkpoint"),
                        (["--task", "denoise", "--prior-margin", "posendf"], "--prior-margin"),
                        (["--prior-anneal", "gmm=maybe"], "--prior-anneal"), (["--prior-anneal", "=true"], "--prior-anneal"),
                        (["--task", "denoise", "--noise-exponent", "9"], "noise_exponent"),
                        (["--priors", "foo"], "--priors"), (["--checkpoint", "posendf=nope.pt"], "--checkpoint"),
                        (["--priors", "none", "--scales", "gmm=1"], "--scales"), (["--images", "0"], "--images"),
                        (["--task", "completion", "--projection-steps", "x"], "--projection-steps"),
                        (["--priors", "none", "--out", str(tmp_path)], "--out")):
        capsys.readouterr()
        assert calibrate.main(bad) == 2  # one line naming the option, no traceback
        err = capsys.readouterr().err.strip()
        assert err.startswith("calibrate.py: error: ") and option in err and "\n" not in err, err
    with pytest.raises(SystemExit):  # the test split is not a choice
        calibrate.main(["--split", "test"])
    # nor a folder holding it, or a renamed copy of it
    import shutil

    (tmp_path / "vals").mkdir()
    shutil.copy(REPO / "posendf_plugin" / "assets" / "cmu_test.npz", tmp_path / "vals" / "cmu_test.npz")
    shutil.copy(REPO / "posendf_plugin" / "assets" / "cmu_test.npz", tmp_path / "myval.npz")
    for data, why in ((tmp_path / "vals", "it holds cmu_test.npz"), (tmp_path / "myval.npz", "are poses of the shipped CMU test split")):
        capsys.readouterr()
        assert calibrate.main(["--task", "completion", "--priors", "none", "--poses", "2", "--data", str(data)]) == 2
        assert why in capsys.readouterr().err


def test_denoise_variants_script(capsys):
    """benchmarks/denoise_variants.py on one val window: a margin above every energy is the
    no-prior fit exactly, the plain term is not; the squared, noise-adaptive data term measures
    the input noise (40 mm); bad variants exit with a message."""
    from benchmarks import denoise_variants as V

    variants = ["none", "margin:1000:1e-5", "lin:1e-5", "sat:1000:0.3:1e-5", "sat:0.05:0.3:1e-5", "cap:1000:0.3:1e-5",
                "margin:0.05:1e-5", "cap:0.05:1000:1e-5"]
    assert V.main(["--windows", "1", "--by-true-f"] + [a for v in variants for a in ("--variant", v)]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = {ln.split()[0]: ln.split() for ln in out[1:] if ln.split() and ln.split()[0] in variants}
    mpjpe = {k: float(v[v.index("mpjpe_mm") + 1]) for k, v in lines.items()}
    assert mpjpe["none"] == mpjpe["margin:1000:1e-5"] == mpjpe["sat:1000:0.3:1e-5"] == mpjpe["cap:1000:0.3:1e-5"]
    assert mpjpe["cap:0.05:1000:1e-5"] == mpjpe["margin:0.05:1e-5"] != mpjpe["none"]  # a cap no fit reaches: the margin term
    worst = {k: float(v[v.index("worst") + 1]) for k, v in lines.items()}  # worst window vs the first variant's (none)
    assert worst["none"] == 0.0 and worst["margin:1000:1e-5"] == 0.0 and worst["lin:1e-5"] == pytest.approx(mpjpe["lin:1e-5"] - mpjpe["none"], abs=0.01)
    assert mpjpe["lin:1e-5"] != mpjpe["none"] and mpjpe["sat:0.05:0.3:1e-5"] != mpjpe["none"]
    # --by-true-f: every frame of the window in one bin of the true pose's f; a margin above every
    # energy is the no-prior fit frame by frame (+0.00), and the bins' frame-weighted mean is the MPJPE
    rows = [ln.split("|")[1:-1] for ln in out if ln.startswith("| [")]
    assert rows and sum(int(r[1]) for r in rows) == 60
    assert all(r[3].strip().endswith("(+0.00)") for r in rows)
    lin = sum(int(r[1]) * float(r[4].split()[0]) for r in rows) / 60
    assert lin == pytest.approx(mpjpe["lin:1e-5"], abs=0.01)
    assert V.main(["--windows", "1", "--noise-exponent", "2", "--variant", "none"]) == 0
    out = capsys.readouterr().out.split()
    assert 36 < float(out[out.index("noise_estimate_mm") + 1]) < 44
    for bad in ("hinge:0.1", "margin:0.05", "lin:x", "margin:-1:1e-5", "sat:0.05:0:1e-5", "sat:0.05:1e-5", "cap:0.05:0:1e-5",
                "cap:-1:1:1e-5"):
        with pytest.raises(SystemExit, match="--variant"):
            V.main(["--windows", "1", "--variant", bad])
    with pytest.raises(SystemExit, match="noise_exponent"):
        V.main(["--windows", "1", "--noise-exponent", "-1", "--variant", "none"])


def test_bandai_source_skipped_cleanly_without_shared_data(tmp_path, monkeypatch, capsys):
    """A fresh clone has no ../shared/data: the bandai source is a one-line note in the results,
    the other sources run, and the exit status is 0; asking only for bandai then is a clear error."""
    from benchmarks import sources as S

    srcs, notes = S.resolve_sources(None, None, "test", "quick", None, None)
    assert [s.name for s in srcs] == ["cmu"] and "fresh clone" in notes["bandai"]
    monkeypatch.setattr("posendf_plugin.data.default.find_shared_data", lambda explicit=None: None)
    out = tmp_path / "out"
    rc = bench_run.main(["--tiny", "--no-progress", "--task", "discrimination", "--priors", "none", "--out", str(out)])
    res = json.loads((out / "results.json").read_text())
    assert rc == 0 and list(res["targets"]) == ["cmu"] and list(res["sources"]) == ["cmu", "bandai"]
    assert res["sources"]["bandai"] == {"skipped": notes["bandai"]} and res["meta"]["sources"]["bandai"] == res["sources"]["bandai"]
    assert notes["bandai"] in (out / "results.md").read_text() and not (out / "discrimination_bandai.md").exists()
    assert f"source bandai: {notes['bandai']}" in capsys.readouterr().out
    assert bench_run.main(["--tiny", "--sources", "bandai", "--out", str(out)]) == 2
    assert "no data source to benchmark: bandai: skipped: no ../shared/data folder" in capsys.readouterr().err
    empty = tmp_path / "shared"
    empty.mkdir()
    _, notes = S.resolve_sources(["cmu", "bandai"], None, "test", "quick", empty, None)
    assert notes["bandai"].startswith(f"skipped: no bandai/ folder in {empty}")
    # the cross-source clips are test-only: never used with --split val (choosing weights)
    srcs, notes = S.resolve_sources(None, None, "val", "quick", SHARED, None)
    assert [(s.name, s.description) for s in srcs] == [("cmu-val", "default CMU val split (posendf_plugin/assets/cmu_val.npz)")]
    assert "test-only" in notes["bandai"]


def test_bandai_subset_spreads_over_contents(tmp_path):
    from benchmarks.sources import bandai_files, bandai_subset

    for ds, contents, styles, takes in (("dataset-1", ["bow", "walk-back", "kick"], ["angry", "old", "sad"], 1),
                                        ("dataset-2", ["run", "wave-left-hand"], ["active", "elderly"], 3)):
        for c in contents:
            for s in styles:
                for t in range(1, takes + 1):
                    (tmp_path / ds).mkdir(exist_ok=True)
                    (tmp_path / ds / f"{ds}_{c}_{s}_{t:03d}.bvh.gz").write_bytes(b"")
    files = bandai_files(tmp_path)
    assert len(files) == 9 + 12
    pick = bandai_subset(files, 5)
    assert pick == bandai_subset(list(reversed(files)), 5)  # deterministic, order-independent
    contents = [f.name.split("_")[0] + "_" + f.name.split("_")[1] for f in pick]
    assert len(set(contents)) == 5  # one clip of every content first
    assert len({f.name.split("_")[2] for f in pick}) >= 3  # with varied styles
    assert {f.name.split("_")[3] for f in pick} == {"001.bvh.gz"}
    assert bandai_subset(files, None) == files and len(bandai_subset(files, 12)) == 12


@pytest.mark.skipif(not HAS_BANDAI, reason="needs ../shared/data/bandai")
def test_bandai_conversion_cache(tmp_path):
    """Converted clips are cached atomically under a key of the file list (and package/converter
    version); a second load reads the cache, another file list or a corrupt cache converts again."""
    import numpy as np

    from benchmarks.sources import BandaiSource, bandai_files, bandai_subset, load_bandai

    root = SHARED / "bandai"
    files = bandai_subset(bandai_files(root), 2)
    first = load_bandai(files, root, tmp_path)
    assert not first.from_cache and first.cache.is_file() and len(first.names) == 2 and not first.failed
    again = load_bandai(files, root, tmp_path)
    assert again.from_cache and again.cache == first.cache and again.names == first.names
    assert np.array_equal(again.pose_body, first.pose_body) and np.array_equal(again.kept, first.kept)
    other = load_bandai(files[:1], root, tmp_path)
    assert not other.from_cache and other.cache != first.cache
    first.cache.write_bytes(b"truncated")
    assert not load_bandai(files, root, tmp_path).from_cache
    src = BandaiSource(root, files, tmp_path, total=len(files))
    (name, m), = src.motions()[:1]
    n0 = int(first.offsets[1])
    assert name == first.names[0] and m.fps == 30.0 and len(m) == n0
    assert len(src.poses()) == int(first.kept.sum()) < len(first.pose_body)  # near-duplicates dropped for the pose tasks


def test_targets_per_source_issue15():
    """The issue-15 targets: ratios against no prior, the best baseline, the identity start and
    the noisy poses' f; a baseline without a number leaves '<= every baseline' undecided."""
    m = lambda **kw: dict(kw)  # noqa: E731
    res = {
        "image_fit": {"synthetic (8 images)": {"none": m(pa_mpjpe_mm=60.0), "gmm": m(pa_mpjpe_mm=55.0), "vposer": m(pa_mpjpe_mm=58.0),
                                               "posendf": m(pa_mpjpe_mm=50.0), "nrdf": m(pa_mpjpe_mm=52.0)}},
        "completion": {"masked=25% (5 joints)": {"none": m(angle_deg=20.0, identity_angle_deg=20.0),
                                                  "posendf": m(angle_deg=18.0, identity_angle_deg=20.0),
                                                  "nrdf": m(angle_deg=17.0, identity_angle_deg=20.0)},
                       "masked=50% (10 joints)": {"posendf": m(angle_deg=21.0, identity_angle_deg=20.0),
                                                   "nrdf": {"skipped": "no weights"}}},
        "discrimination": {"sigma=0.1": {"posendf": m(energy_real=0.1, energy_noisy=0.8)}},
        "speed": {"skipped": "measured once per run, on source 'cmu'", "measured_on": "cmu"},
    }
    t = bench_run.compute_targets(res)
    assert "speed_fit_ratio" not in t
    assert t["image_fit_pa_mpjpe_vs_none"]["value"] == pytest.approx(50 / 60) and t["image_fit_pa_mpjpe_vs_none"]["pass"]
    assert t["image_fit_pa_mpjpe_vs_baselines"]["reference"] == "nrdf" and t["image_fit_pa_mpjpe_vs_baselines"]["value"] == pytest.approx(50 / 52)
    assert t["completion25_vs_init"]["pass"] is True and t["completion25_vs_baselines"]["pass"] is False
    assert t["completion50_vs_init"]["pass"] is False  # not below the identity start
    assert t["completion50_vs_baselines"]["pass"] is None and "no weights" in t["completion50_vs_baselines"]["reason"]
    assert t["heldout_f_vs_noise01"]["value"] == pytest.approx(0.125) and t["heldout_f_vs_noise01"]["pass"] is True
    assert t["denoise40_mpjpe_vs_none"]["pass"] is None and "task denoise not run" in t["denoise40_mpjpe_vs_none"]["reason"]
    assert all("ci95" not in e for e in t.values())  # no per-item values kept: no interval


def test_targets_paired_intervals_per_item():
    """Ratio targets over the same items get a 95 % paired bootstrap interval around the ratio of
    the means, against the best baseline's own items; the table says when the interval straddles
    the threshold, and per-item lists stay out of the Markdown task tables."""
    from benchmarks.common import markdown_task

    rng = np.random.default_rng(0)
    base = rng.uniform(30.0, 90.0, 50)
    items = {"none": base * 1.3, "gmm": base * 1.05, "vposer": base + rng.normal(0.0, 8.0, 50), "nrdf": base * 1.2,
             "posendf": base + rng.normal(0.0, 8.0, 50)}
    fit = {p: {"pa_mpjpe_mm": float(v.mean()), PER_ITEM: {"pa_mpjpe_mm": v.tolist()}} for p, v in items.items()}
    hid = {"angle_deg": (base / 3).tolist(), "identity_angle_deg": (base / 2).tolist()}
    res = {"image_fit": {"synthetic (50 images)": fit},
           "completion": {"masked=25% (5 joints)": {"posendf": {"angle_deg": float(np.mean(hid["angle_deg"])),
                                                               "identity_angle_deg": float(np.mean(hid["identity_angle_deg"])),
                                                               PER_ITEM: hid}}}}
    t = bench_run.compute_targets(res)
    none, vs = t["image_fit_pa_mpjpe_vs_none"], t["image_fit_pa_mpjpe_vs_baselines"]
    assert none["ci95"][0] < none["value"] < none["ci95"][1]
    best = min(("gmm", "vposer", "nrdf"), key=lambda b: items[b].mean())
    assert vs["reference"] == best and vs["ci95"][0] < vs["value"] < vs["ci95"][1]
    assert t["completion25_vs_init"]["ci95"] == pytest.approx([2 / 3, 2 / 3])  # the same ratio on every pose
    assert bench_run.compute_targets(res, seed=1)["image_fit_pa_mpjpe_vs_none"]["ci95"] != none["ci95"]
    md = bench_run._targets_md(t, "x")
    assert "95 % interval" in md and f"{none['ci95'][0]:.3f}–{none['ci95'][1]:.3f}" in md
    assert vs["ci95"][0] < 1.0 < vs["ci95"][1]  # two fits of equal quality: a tie, whichever mean is lower
    rows = {line.split(" | ")[0]: line for line in md.splitlines() if line.startswith("| image fit")}
    assert "(either side)" in rows["| image fit: Pose-NDF PA-MPJPE / best baseline's"]
    assert "(either side)" not in rows["| image fit: Pose-NDF PA-MPJPE / no-prior PA-MPJPE"]
    table = markdown_task("image_fit", res["image_fit"])
    assert "pa_mpjpe_mm" in table and PER_ITEM not in table and "[" not in table


def test_calibration_on_another_validation_set(tmp_path, capsys, monkeypatch):
    """calibrate.py --data: any validation pose set (e.g. one with a rig and subjects not in
    training); a test split or the Bandai-Namco clips are refused with one line."""
    from benchmarks import calibrate
    from posendf_plugin.data.default import default_pose_set
    from posendf_plugin.data.posesets import save_pose_set
    from posendf_plugin.fitting.image import ImageFitConfig, ImageStage

    # a few optimiser steps: this checks which poses the grid is run on, not the schedule
    monkeypatch.setattr(calibrate.T, "fit_config", lambda ctx: ImageFitConfig(focal_length=calibrate.T.FOCAL, camera_iterations=3,
                                                                               stages=(ImageStage(3),)))

    val = default_pose_set("val")
    path = save_pose_set(tmp_path / "val_other_rig.npz", val.quat[:40], clip_names=["x"])
    out = tmp_path / "grid.json"
    assert calibrate.main(["--priors", "none", "--images", "1", "--data", str(path), "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["data"] == str(path) and got["rows"][0]["pa_mpjpe_mm"] > 0
    test_file = save_pose_set(tmp_path / "test_bandai.npz", val.quat[:5])
    assert calibrate.main(["--priors", "none", "--images", "1", "--data", str(test_file)]) == 2
    assert "looks like a test set" in capsys.readouterr().err


def test_hold_out_style_splits_the_training_clips(tmp_path, capsys):
    """benchmarks/hold_out_style.py: the training set without the matched clips (exactly the
    others, as stored), the held-out clips' raw files found by name, one-line errors otherwise."""
    import numpy as np

    from benchmarks import hold_out_style as H
    from posendf_plugin.data.default import assets_dir

    shared = tmp_path / "shared"
    (shared / "cmu-cc3").mkdir(parents=True)
    assert H.main(["--clips", "no-such-clip", "--shared", str(shared), "--out", str(tmp_path / "o")]) == 2
    assert "matches 0 of the" in capsys.readouterr().err
    # the raw file of a held-out clip is missing: named, nothing converted
    assert H.main(["--clips", "cmu-cc3/005_01", "--shared", str(shared), "--out", str(tmp_path / "o")]) == 2
    assert "no mocap file for clip 'cmu-cc3/005_01'" in capsys.readouterr().err
    (shared / "cmu-cc3" / "005_01.bvh.gz").write_bytes(b"")
    assert H.raw_clip_files(shared, ["cmu-cc3/005_01"]) == [shared / "cmu-cc3" / "005_01.bvh.gz"]
    # an unreadable raw file: the split is still written, the conversion failure reported (exit 1)
    assert H.main(["--clips", "cmu-cc3/005_01", "--shared", str(shared), "--out", str(tmp_path / "o")]) == 1
    with np.load(assets_dir() / "cmu_train.npz") as z, np.load(tmp_path / "o" / "train.npz") as o:
        names = list(z["clip_names"])
        held = names.index("cmu-cc3/005_01")
        keep = z["clip_id"] != held
        np.testing.assert_array_equal(o["quat"], z["quat"][keep])
        assert list(o["clip_names"]) == [n for n in names if n != "cmu-cc3/005_01"]
        np.testing.assert_array_equal(np.asarray(o["clip_names"])[o["clip_id"]], np.asarray(names)[z["clip_id"][keep]])
    assert "init_from: " + (tmp_path / "o" / "stage1" / "model.pt").as_posix() in (tmp_path / "o" / "stage2.yaml").read_text()


def test_completion_reference_script(capsys):
    """benchmarks/completion_reference.py: k = 1 over the training split copies a training
    pose's hidden joints (an error > 0 on val poses); the chordal-mean completion keeps the
    visible joints; bad --k is one line."""
    from benchmarks import completion_reference as CR
    from posendf_plugin import rotations as R
    from posendf_plugin.fitting.knn import knn_fill

    assert CR.main(["--method", "train-knn", "--k", "1", "--poses", "4"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("train-knn k=1:") and all(float(v) > 0 for v in line.split(":")[1].split("/"))
    q = R.quat_canonical(R.axis_angle_to_quat(0.3 * torch.randn(3, 21, 3, generator=torch.Generator().manual_seed(0))))
    m = torch.zeros(3, 21, dtype=torch.bool)
    m[:, :4] = True
    out = knn_fill(q, m, q, 1)  # the script's fill: each pose is its own nearest, the hidden joints come back
    torch.testing.assert_close(R.quat_canonical(out), R.quat_canonical(q), atol=1e-5, rtol=0)
    with pytest.raises(SystemExit, match="--k"):
        CR.main(["--method", "train-knn", "--k", "x"])


def test_split_distance_script(tmp_path, capsys):
    """benchmarks/split_distance.py: dNN of val / test / a user set to their training poses; a set
    measured against itself is at distance 0; bad arguments are one line, exit 2."""
    from benchmarks import split_distance as SD
    from posendf_plugin.data.default import default_pose_set
    from posendf_plugin.data.posesets import save_pose_set

    f, g, h = tmp_path / "set.npz", tmp_path / "superset.npz", tmp_path / "copy.npz"
    save_pose_set(f, default_pose_set("test").quat[:20])
    save_pose_set(g, default_pose_set("test").quat[:25])  # holds f's poses: f is at distance 0 from it
    save_pose_set(h, default_pose_set("test").quat[:20])
    assert SD.main(["--poses", "5", "--data", str(f), "--reference", str(f)]) == 2  # the same file: refused
    assert SD.main(["--poses", "5", "--data", str(f), "--reference", str(h)]) == 2  # the same poses: refused
    assert "hold the same poses" in capsys.readouterr().err
    assert SD.main(["--poses", "5", "--data", str(f), "--reference", str(g)]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ") and "pose set" not in r]
    assert [r.split(" | ")[0] for r in rows] == ["| CMU val split", "| CMU test split", f"| {f}"]
    vals = [[float(v) for v in r.strip(" |").split(" | ")[1:]] for r in rows]
    assert all(v[0] > 0 for v in vals[:2]) and max(vals[2]) < 1e-3
    assert SD.main(["--data", str(f)]) == 2
    assert "--data and --reference go together" in capsys.readouterr().err


def test_interpolation_steps_script(capsys):
    """benchmarks/interpolation_steps.py: one row per step limit after the slerp row; bad limits exit 2."""
    from benchmarks import interpolation_steps as IS

    assert IS.main(["--pairs", "3", "--steps", "5", "--max-step", "1,0.02"]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ") and "mean f" not in r]
    assert [r.split(" | ")[0] for r in rows] == ["| slerp", "| projected, max_step 1", "| projected, max_step 0.02"]
    assert IS.main(["--max-step", "0"]) == 2
    assert "--max-step" in capsys.readouterr().err


def test_generation_frontier_script(tmp_path, capsys):
    """benchmarks/generation_frontier.py: APD / FID of the priors' samples, the held-out and training
    poses and the stretched training poses, as ratios to VPoser's; stretching raises the spread;
    a Markdown table and a PNG; bad options give one line."""
    from benchmarks import generation_frontier as GF
    from posendf_plugin.data.default import default_pose_set

    test, train = default_pose_set("test").quat[:300].float(), default_pose_set("train").quat[:400].float()
    rows = GF.frontier_rows(test, train, {"vposer": train[:40]}, n=40, seed=0)
    names = [r[1] for r in rows]
    assert names[0] == "vposer samples" and "training poses" in names
    apd = {name: a for _, name, a, _ in rows}
    stretched = [apd[f"training poses, slerp from the mean pose t = {t:g}"] for t in GF.STRETCH]
    assert apd["training poses"] < stretched[0] and stretched == sorted(stretched)  # farther from the mean: more spread
    assert all(np.isfinite(f) and f >= 0 for *_, f in rows)
    out = tmp_path / "fr"
    assert GF.main(["--sources", "cmu", "--samples", "30", "--threads", "1", "--out", str(out)]) == 0
    text = (out / "generation_frontier.md").read_text()
    assert "| vposer samples | " in text and "| posendf samples | " in text and "× VPoser" in text
    assert (out / "generation_frontier.png").stat().st_size > 1000
    capsys.readouterr()
    assert GF.main(["--sources", "cmu", "--priors", "posendf", "--out", str(out)]) == 2
    assert "must include vposer" in capsys.readouterr().err
    assert GF.main(["--sources", "cmu", "--checkpoint", "gmm=x.pt", "--out", str(out)]) == 2
    assert "--checkpoint 'gmm=x.pt'" in capsys.readouterr().err
