"""Motion denoising (HuMoR protocol) and masked pose completion: small synthetic motions and
poses, tiny iteration counts, bad input, determinism, outputs and the CLI."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from posendf_plugin import rotations as R
from posendf_plugin.cli import main as cli_main
from posendf_plugin.data.motion import Motion, save_motion
from posendf_plugin.data.posesets import save_pose_set
from posendf_plugin.fitting import completion as C
from posendf_plugin.fitting import denoise as D
from posendf_plugin.fitting.params import load_prior
from posendf_plugin.priors.base import PosePrior
from posendf_plugin.skeleton import BODY_JOINT_NAMES, SMPL_JOINT_NAMES

REPO = Path(__file__).resolve().parents[1]
FAST = D.DenoiseConfig(window=12, stages=(D.DenoiseStage(40, data_weight=1000.0, temporal_weight=10.0, lr=0.05),))


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def walking_motion(n=24, seed=0) -> Motion:
    """A smooth synthetic motion: swinging legs/arms, rotating root, moving forward."""
    t = np.arange(n) / 30.0
    pose = np.zeros((n, 21, 3), np.float32)
    s = np.sin(2 * math.pi * 1.2 * t)
    pose[:, BODY_JOINT_NAMES.index("left_hip"), 0] = 0.5 * s
    pose[:, BODY_JOINT_NAMES.index("right_hip"), 0] = -0.5 * s
    pose[:, BODY_JOINT_NAMES.index("left_knee"), 0] = 0.6 * (1 + s)
    pose[:, BODY_JOINT_NAMES.index("left_elbow"), 1] = -0.8
    pose[:, BODY_JOINT_NAMES.index("left_shoulder"), 2] = -1.0
    root = np.stack([np.full(n, math.pi / 2), 0.2 * np.sin(t), np.zeros(n)], -1).astype(np.float32)
    trans = np.stack([0.8 * t, np.zeros(n), np.full(n, 0.95)], -1).astype(np.float32)
    return Motion(pose_body=pose.reshape(n, 63), root_orient=root, trans=trans, fps=30.0)


def test_root_init_recovers_orientation(bm):
    g = torch.Generator().manual_seed(0)
    aa = (torch.rand(5, 3, generator=g) - 0.5) * 4
    tr = torch.randn(5, 3, generator=g)
    with torch.no_grad():
        j = bm(global_orient=aa, transl=tr).joints
        root, trans = D.init_root_from_joints(j, bm.rest_joints().reshape(24, 3))
    assert torch.rad2deg(R.quat_geodesic_angle(R.axis_angle_to_quat(root), R.axis_angle_to_quat(aa))).max() < 0.1
    assert torch.allclose(trans, tr, atol=1e-4)


def test_fk_joints_equal_body_model_joints(bm):
    m = walking_motion(6)
    b = torch.randn(1, 10, generator=torch.Generator().manual_seed(1)) * 0.5
    args = [torch.as_tensor(x) for x in (m.pose_body, m.root_orient, m.trans)]
    j = D._fk_joints(bm, *args, b)
    out = bm(body_pose=args[0], global_orient=args[1], transl=args[2], betas=b.expand(6, -1))
    assert torch.allclose(j, out.joints, atol=1e-5)


def test_denoise_window_reduces_error_and_is_deterministic(bm):
    m = walking_motion(12)
    prior = load_prior("none")
    a1, m1 = D.denoise_window(m, bm, prior, FAST, torch.Generator().manual_seed(3))
    a2, m2 = D.denoise_window(m, bm, prior, FAST, torch.Generator().manual_seed(3))
    assert m1 == m2 and torch.equal(a1["pose_body"], a2["pose_body"])
    assert m1["noisy_mpjpe_mm"] > 50  # 40 mm per coordinate
    assert m1["mpjpe_mm"] < m1["noisy_mpjpe_mm"] and m1["accel_mm"] < m1["noisy_accel_mm"]
    assert a1["joints"].shape == (12, D.NUM_EVAL_JOINTS, 3) and np.isfinite(m1["v2v_mm"])
    _, m3 = D.denoise_window(m, bm, prior, FAST, torch.Generator().manual_seed(4))
    assert m3["noisy_mpjpe_mm"] != m1["noisy_mpjpe_mm"]


def test_denoise_motion_outputs_and_bad_input(tmp_path, bm):
    f = tmp_path / "walk.npz"
    save_motion(f, walking_motion(30))
    r = D.denoise_motion(f, tmp_path / "out", prior="none", body_model=bm, config=FAST, seed=0, progress=False)
    # 30 frames -> 2 windows of 12, then frames 24-29 from a third window over frames 18-29
    assert r.metrics["windows"] == 3 and r.metrics["frames"] == 30
    for suffix in ("_denoised.npz", "_denoise.npz", "_metrics.json", "_trajectories.png"):
        assert (tmp_path / "out" / f"walk{suffix}").is_file(), suffix
    z = np.load(tmp_path / "out" / "walk_denoised.npz")
    assert z["pose_body"].shape == (30, 63)
    met = json.loads((tmp_path / "out" / "walk_metrics.json").read_text())
    assert len(met["windows"]) == 3 and met["metrics"]["mpjpe_mm"] == pytest.approx(r.metrics["mpjpe_mm"])
    assert met["windows"][2]["start_frame"] == 18 and met["windows"][2]["frames_kept"] == 6
    assert met["metrics"]["mpjpe_mm"] == pytest.approx(np.average([w["mpjpe_mm"] for w in met["windows"]], weights=[12, 12, 6]))
    # the kept tail frames are the clip's last frames: their ground truth equals the clip's
    full = D.denoise_motion(f, None, prior="none", body_model=bm, config=replace(FAST, window=30), seed=0, progress=False)
    assert np.allclose(r.gt_joints, full.gt_joints, atol=1e-5)
    capped = D.denoise_motion(f, None, prior="none", body_model=bm, config=FAST, seed=0, max_windows=2, progress=False)
    assert capped.metrics["windows"] == 2 and capped.metrics["frames"] == 24  # max_windows: full windows only
    with pytest.raises(ValueError, match=r"fewer than one window.*--window 30"):
        D.denoise_motion(f, None, body_model=bm, config=replace(FAST, window=60), progress=False)
    bad = tmp_path / "bad.npz"
    np.savez(bad, foo=np.zeros(3))
    with pytest.raises(KeyError, match="pose_body"):
        D.denoise_motion(bad, None, body_model=bm, config=FAST, progress=False)
    np.savez(bad, pose_body=np.zeros((20, 63)), trans=np.zeros((19, 3)))
    with pytest.raises(ValueError, match="frame counts"):
        D.denoise_motion(bad, None, body_model=bm, config=FAST, progress=False)
    with pytest.raises(FileNotFoundError):
        D.denoise_motion(tmp_path / "missing.npz", None, body_model=bm, config=FAST, progress=False)


def test_denoise_keeps_hands_uses_the_gender_and_resamples(tmp_path, bm, caplog):
    """The hands are not fitted but come back as given (from --start on); with a model folder the
    motion's gender picks the model (neutral, said in the output, when the folder has none of it);
    fps= resamples first; the default prior is Pose-NDF's (CLI and API)."""
    import inspect
    import shutil

    from posendf_plugin.body_model import default_body_model_dir
    from posendf_plugin.data.motion import load_motion

    m = walking_motion(30)
    m.pose_hand[:] = np.linspace(0, 0.3, 90, dtype=np.float32)[None] + np.arange(30, dtype=np.float32)[:, None] * 0.01
    m.gender = "male"
    f = tmp_path / "walk.npz"
    save_motion(f, m)
    r = D.denoise_motion(f, tmp_path / "o1", prior="none", body_model=bm, config=FAST, seed=0, start=5, progress=False, plot=False)
    out = load_motion(tmp_path / "o1" / "walk_denoised.npz")
    np.testing.assert_array_equal(out.pose_hand, m.pose_hand[5:])
    np.testing.assert_array_equal(np.load(tmp_path / "o1" / "walk_denoised.npz")["poses"][:, 66:], m.pose_hand[5:])
    assert int(np.load(tmp_path / "o1" / "walk_denoised.npz")["start_frame"]) == 5  # the offset travels with it
    assert out.gender == r.motion.gender == "neutral"  # the BodyModel passed in is the neutral stand-in
    models = tmp_path / "models" / "smpl"
    models.mkdir(parents=True)
    shutil.copy(default_body_model_dir() / "smpl" / "SMPL_NEUTRAL.pkl", models / "SMPL_NEUTRAL.pkl")
    with caplog.at_level("WARNING"):
        r = D.denoise_motion(f, None, prior="none", body_model=models.parent, config=FAST, max_windows=1, progress=False)
    assert r.motion.gender == "neutral" and "no male body model" in caplog.text
    shutil.copy(default_body_model_dir() / "smpl" / "SMPL_NEUTRAL.pkl", models / "SMPL_MALE.pkl")
    r = D.denoise_motion(f, None, prior="none", body_model=models.parent, config=FAST, max_windows=1, progress=False)
    assert r.motion.gender == "male"
    fast = D.denoise_motion(f, None, prior="none", body_model=bm, config=FAST, fps=15, progress=False)
    assert fast.motion.fps == 15 and fast.metrics["frames"] == 15
    with pytest.raises(ValueError, match="fps must be a positive"):
        D.denoise_motion(f, None, prior="none", body_model=bm, config=FAST, fps=float("nan"), progress=False)
    assert inspect.signature(D.denoise_motion).parameters["prior"].default == "posendf"
    from posendf_plugin.cli import build_parser

    args = build_parser().parse_args(["denoise", "--motion", str(f), "--out", str(tmp_path / "o2")])
    assert args.prior == "posendf"


def test_denoise_with_tiny_posendf_prior(bm):
    from posendf_plugin.config import load_config
    from posendf_plugin.model import PoseNDFNet
    from posendf_plugin.prior import PoseNDF

    with torch.random.fork_rng():
        torch.manual_seed(0)
        ndf = PoseNDF(PoseNDFNet(load_config(REPO / "configs" / "tiny.yaml").model))
    cfg = replace(FAST, stages=(D.DenoiseStage(5, prior_weight=1e3),))
    a, m = D.denoise_window(walking_motion(12), bm, load_prior(ndf), cfg, torch.Generator().manual_seed(0))
    assert np.isfinite(m["mpjpe_mm"]) and torch.isfinite(a["pose_body"]).all()


class _ConstantSlopePrior(PosePrior):
    """E(θ) = 0.05 + ‖θ‖ (mean over joints): a linear term pulls every pose towards zero."""

    name = "slope"

    def energy(self, body_pose):
        return 0.05 + body_pose.reshape(body_pose.shape[0], -1).norm(dim=-1) / 21


def test_denoise_prior_margin_leaves_poses_below_it_to_the_data(bm):
    """A pose's prior term is max(E − margin, 0): with the margin above every energy the fit is
    the no-prior fit exactly; with margin 0 the same weight changes it."""
    m = walking_motion(12)
    cfg = replace(FAST, stages=(D.DenoiseStage(20, data_weight=100.0, temporal_weight=10.0, prior_weight=10.0, lr=0.05),),
                  prior_scale={"slope": 1.0, "none": 0.0})
    none, _ = D.denoise_window(m, bm, load_prior("none"), cfg, torch.Generator().manual_seed(3))
    plain, _ = D.denoise_window(m, bm, _ConstantSlopePrior(), cfg, torch.Generator().manual_seed(3))
    above, _ = D.denoise_window(m, bm, _ConstantSlopePrior(), replace(cfg, prior_margin={"slope": 1e3}),
                                torch.Generator().manual_seed(3))
    assert torch.equal(above["pose_body"], none["pose_body"])
    assert not torch.allclose(plain["pose_body"], none["pose_body"], atol=1e-3)
    # the plain term pulls towards zero: smaller poses than with the margin
    assert plain["pose_body"].norm() < above["pose_body"].norm()
    assert cfg.margin_for("slope") == 0.0 and replace(cfg, prior_margin={"slope": 0.2}).margin_for("slope") == 0.2


def test_denoise_prior_cap_leaves_poses_beyond_it_to_the_data(bm):
    """A pose's prior term is min(max(E − margin, 0), cap): frames the prior scores beyond the cap
    get no pull (a cap below every energy is the no-prior fit exactly); a cap no fit reaches is
    the uncapped term."""
    m = walking_motion(12)
    cfg = replace(FAST, stages=(D.DenoiseStage(20, data_weight=100.0, temporal_weight=10.0, prior_weight=10.0, lr=0.05),),
                  prior_scale={"slope": 1.0, "none": 0.0})
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    none, _ = D.denoise_window(m, bm, load_prior("none"), cfg, g())
    plain, _ = D.denoise_window(m, bm, _ConstantSlopePrior(), cfg, g())
    below, _ = D.denoise_window(m, bm, _ConstantSlopePrior(), replace(cfg, prior_cap={"slope": 0.01}), g())  # E >= 0.05
    high, _ = D.denoise_window(m, bm, _ConstantSlopePrior(), replace(cfg, prior_cap={"slope": 1e3}), g())
    assert torch.equal(below["pose_body"], none["pose_body"])
    assert torch.equal(high["pose_body"], plain["pose_body"]) and not torch.allclose(plain["pose_body"], none["pose_body"], atol=1e-3)
    assert cfg.cap_for("slope") == float("inf") and replace(cfg, prior_cap={"slope": 1.0}).cap_for("slope") == 1.0


def test_denoise_cap_follows_the_measured_noise(bm):
    """The cap is prior_cap × min((σ̂ / reference_noise_mm)^cap_noise_exponent, cap_noise_max), σ̂ the
    input's measured noise floored at MIN_NOISE_MM; exponent 0 keeps it fixed; priors without a cap
    stay uncapped."""
    cfg = D.DenoiseConfig()
    assert cfg.cap_noise_exponent == 1.0  # the shipped rule (configs/denoise.yaml)
    assert cfg.cap_factor(0.020) == pytest.approx(0.5) and cfg.cap_factor(0.100) == 1.0  # never above the cap
    assert replace(cfg, cap_noise_max=float("inf")).cap_factor(0.100) == pytest.approx(2.5)
    assert cfg.cap_factor(0.0) == pytest.approx(D.MIN_NOISE_MM / 40.0)
    assert replace(cfg, cap_noise_exponent=0.0).cap_factor(0.1) == 1.0
    assert replace(cfg, cap_noise_exponent=2.0).cap_factor(0.020) == pytest.approx(0.25)
    m = walking_motion(12)
    run = replace(FAST, noise_mm=20.0, stages=(D.DenoiseStage(2, prior_weight=10.0),), prior_scale={"slope": 1.0},
                  prior_cap={"slope": 1.0})
    _, scaled = D.denoise_window(m, bm, _ConstantSlopePrior(), run, torch.Generator().manual_seed(3))
    assert scaled["prior_cap"] == pytest.approx(run.cap_factor(scaled["noise_estimate_mm"] / 1000.0))
    assert 0.3 < scaled["prior_cap"] < 0.7  # ≈ 20 / 40
    _, fixed = D.denoise_window(m, bm, _ConstantSlopePrior(), replace(run, cap_noise_exponent=0.0), torch.Generator().manual_seed(3))
    assert fixed["prior_cap"] == 1.0
    _, uncapped = D.denoise_window(m, bm, _ConstantSlopePrior(), replace(run, prior_cap={}), torch.Generator().manual_seed(3))
    assert "prior_cap" not in uncapped  # uncapped: no ceiling to report
    for bad in (-0.5, 5, True, "1"):
        with pytest.raises(ValueError, match="cap_noise_exponent"):
            D.DenoiseConfig(cap_noise_exponent=bad)
    for bad in (0.5, True, "2", float("nan")):
        with pytest.raises(ValueError, match="cap_noise_max"):
            D.DenoiseConfig(cap_noise_max=bad)


@pytest.mark.parametrize("cap", [{"posendf": 0}, {"posendf": -1.0}, {"posendf": "x"}, {"posendf": True},
                                 {"posendf": float("inf")}, [1.0]])
def test_denoise_prior_cap_checked(cap):
    with pytest.raises(ValueError, match="prior_cap"):
        D.DenoiseConfig(prior_cap=cap)


@pytest.mark.parametrize("margin", [{"posendf": -0.1}, {"posendf": "x"}, {"posendf": True}, [0.1]])
def test_denoise_prior_margin_checked(margin):
    with pytest.raises(ValueError, match="prior_margin"):
        D.DenoiseConfig(prior_margin=margin)


def test_denoise_data_term(bm):
    """The squared data term is the mean squared joint distance: a different fit from the same
    noise, still deterministic and still reducing the error; unknown names are refused."""
    m = walking_motion(12)
    sq = replace(FAST, data_term="squared", stages=(D.DenoiseStage(40, data_weight=1000.0, temporal_weight=10.0, lr=0.05),))
    a1, m1 = D.denoise_window(m, bm, load_prior("none"), sq, torch.Generator().manual_seed(3))
    a2, _ = D.denoise_window(m, bm, load_prior("none"), sq, torch.Generator().manual_seed(3))
    a0, _ = D.denoise_window(m, bm, load_prior("none"), replace(sq, data_term="distance"), torch.Generator().manual_seed(3))
    assert torch.equal(a1["pose_body"], a2["pose_body"]) and not torch.allclose(a1["pose_body"], a0["pose_body"])
    assert m1["mpjpe_mm"] < m1["noisy_mpjpe_mm"]
    with pytest.raises(ValueError, match="data_term"):
        D.DenoiseConfig(data_term="l1")


def test_denoise_data_weight_follows_measured_noise(bm):
    """The data weight is multiplied by (40 mm / σ̂)^P, σ̂ measured in the window's input: about
    2 at 20 mm, 0.4 at 100 mm (P = 1), squared at P = 2, 1 at P = 0; clean input is floored at
    MIN_NOISE_MM instead of an unbounded weight; bad exponents and references are refused."""
    m = walking_motion(24)
    factors = {}
    for noise in (20.0, 100.0):
        cfg = replace(FAST, window=24, noise_mm=noise, stages=(D.DenoiseStage(2, lr=0.05),))
        for p in (0.0, 1.0, 2.0):
            _, met = D.denoise_window(m, bm, load_prior("none"), replace(cfg, noise_exponent=p), torch.Generator().manual_seed(1))
            factors[noise, p] = met["data_factor"]
            assert met["noise_estimate_mm"] == pytest.approx(noise, rel=0.25)  # reported whatever P
    assert factors[20.0, 0.0] == factors[100.0, 0.0] == 1.0
    assert 1.6 < factors[20.0, 1.0] < 2.5 and 0.3 < factors[100.0, 1.0] < 0.5
    assert factors[20.0, 2.0] == pytest.approx(factors[20.0, 1.0] ** 2)
    assert D.DenoiseConfig().data_factor(0.0) == pytest.approx(40.0 / D.MIN_NOISE_MM)
    assert D.DenoiseConfig(noise_exponent=2).data_factor(0.02) == pytest.approx(4.0)
    # a lower weight where the input is noisier: the fit stays smoother than the input
    _, lo = D.denoise_window(m, bm, load_prior("none"), replace(FAST, window=24, noise_mm=100.0), torch.Generator().manual_seed(1))
    _, fixed = D.denoise_window(m, bm, load_prior("none"), replace(FAST, window=24, noise_mm=100.0, noise_exponent=0),
                                torch.Generator().manual_seed(1))
    assert lo["accel_mm"] < fixed["accel_mm"]
    for bad in ({"noise_exponent": -1}, {"noise_exponent": "1"}, {"reference_noise_mm": 0}, {"reference_noise_mm": None}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            D.DenoiseConfig(**bad)


def test_denoise_config_yaml(tmp_path):
    assert D.load_denoise_config(REPO / "configs" / "denoise.yaml") == D.DenoiseConfig()
    cfg = D.DenoiseConfig()
    assert [s.data_weight for s in cfg.stages] == pytest.approx([1000 / (1 + s * s) for s in range(5)])
    assert (cfg.data_term, cfg.noise_exponent, cfg.reference_noise_mm) == ("squared", 1.0, 40.0)
    assert all(a.prior_weight < b.prior_weight for a, b in zip(cfg.stages, cfg.stages[1:]))
    bad = tmp_path / "b.yaml"
    bad.write_text("windw: 3\n")
    with pytest.raises(ValueError, match="windw"):
        D.load_denoise_config(bad)


def test_denoise_cli(tmp_path, capsys):
    f = tmp_path / "m.npz"
    save_motion(f, walking_motion(12))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("window: 12\nstages:\n  - {iterations: 5}\n")
    assert cli_main(["denoise", "--motion", str(f), "--out", str(tmp_path / "o"), "--config", str(cfg),
                     "--noise-mm", "20", "--quiet"]) == 0
    assert "MPJPE" in capsys.readouterr().out
    # --noise-mm 0: the motion's own joints as they are (a capture's noise); the data weight
    # follows the noise measured in them, floored at MIN_NOISE_MM for a clean clip
    assert cli_main(["denoise", "--motion", str(f), "--out", str(tmp_path / "o0"), "--config", str(cfg),
                     "--noise-mm", "0", "--quiet"]) == 0
    w = json.loads(str(np.load(tmp_path / "o0" / "m_denoise.npz")["window_metrics"]))
    assert w[0]["noisy_mpjpe_mm"] == 0.0 and w[0]["data_factor"] <= 40.0 / D.MIN_NOISE_MM
    assert cli_main(["denoise", "--motion", str(tmp_path / "x.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# completion
# ---------------------------------------------------------------------------------------------


class QuadPrior(PosePrior):
    """A prior with a known minimum: squared geodesic distance to a fixed pose."""

    name = "quad"

    def __init__(self, target):
        super().__init__()
        self.register_buffer("target", target)

    def energy(self, body_pose):
        q = self.to_quat(body_pose)
        d = 1 - (q * self.target).sum(-1) ** 2
        return d.sum(-1)


def test_parse_mask():
    m = C.parse_mask("left_arm, head,0")
    names = {BODY_JOINT_NAMES[i] for i in torch.nonzero(m).flatten().tolist()}
    assert names == {"left_shoulder", "left_elbow", "left_wrist", "neck", "head", "left_hip"}
    assert C.parse_mask([3, "right_wrist"]).sum() == 2
    for bad in ("left_tail", "21", ""):
        with pytest.raises(ValueError):
            C.parse_mask(bad)


def test_completion_keeps_known_joints_and_reaches_the_prior_minimum():
    g = torch.Generator().manual_seed(0)
    target = R.quat_canonical(R.axis_angle_to_quat((torch.rand(21, 3, generator=g) - 0.5)))
    prior = QuadPrior(target)
    poses = R.quat_canonical(R.axis_angle_to_quat((torch.rand(6, 21, 3, generator=g) - 0.5)))
    mask = C.parse_mask("right_arm")
    res = C.complete_poses(poses, mask, prior, iterations=150, lr=0.05)
    known = ~mask
    assert torch.allclose(res.quat[:, known], poses[:, known], atol=1e-6)
    ang = R.quat_geodesic_angle(res.quat[:, mask], target[mask].expand(6, -1, -1))
    assert torch.rad2deg(ang).max() < 2.0
    assert (res.energy < res.energy_init).all()
    # the 'none' prior leaves the initial guess
    none = C.complete_poses(poses, mask, "none", iterations=5, init="identity")
    assert torch.allclose(none.quat[:, mask], torch.tensor([1.0, 0, 0, 0]).expand(6, 3, 4), atol=1e-3)


def test_parse_mask_takes_boolean_lists_as_masks_and_refuses_ambiguous_ones():
    """A Python list of 21 True/False is a mask (not the indices 0 and 1); a 21-long 0/1 array is
    refused as ambiguous; integer index tensors work like numpy index arrays."""
    left_arm = [BODY_JOINT_NAMES[i] in C.JOINT_GROUPS["left_arm"] for i in range(21)]
    want = C.parse_mask("left_arm")
    assert torch.equal(C.parse_mask(left_arm), want)
    assert torch.equal(C.parse_mask(tuple(left_arm)), want)
    assert torch.equal(C.parse_mask(torch.tensor(left_arm)), want)
    idx = [BODY_JOINT_NAMES.index(n) for n in C.JOINT_GROUPS["left_arm"]]
    assert torch.equal(C.parse_mask(torch.tensor(idx)), want) and torch.equal(C.parse_mask(np.array(idx)), want)
    with pytest.raises(ValueError, match="ambiguous"):
        C.parse_mask(np.array(left_arm, dtype=np.uint8))
    with pytest.raises(ValueError, match="mixes"):
        C.parse_mask([True, 3])
    q = default_pose_set_val()[:3]
    assert torch.equal(C.complete_poses(q, left_arm, "none", iterations=0).mask[0], want)


def default_pose_set_val():
    from posendf_plugin.data.default import default_pose_set

    return default_pose_set("val").quat


def test_completion_arguments_are_checked():
    q = default_pose_set_val()[:4]
    with pytest.raises(ValueError, match="reference is the pose set"):
        C.complete_poses(q, "arms", "none", init="mean", reference=q)
    with pytest.raises(ValueError, match="lr"):
        C.complete_poses(q, "arms", "none", lr=-1.0)
    # numpy integers count as integers
    a = C.complete_poses(q, "arms", "none", iterations=np.int64(0), knn_k=np.int64(5)).quat
    torch.testing.assert_close(a, C.complete_poses(q, "arms", "none", iterations=0, knn_k=5).quat)
    # one mask given as a string is one mask, not a sequence of one-letter masks
    ev = C.evaluate_completion("none", poses=q, masks="left_arm", n_poses=4)
    assert list(ev.per_mask) == ["left_arm"]
    for bad in (0, -5):
        with pytest.raises(ValueError, match="n_poses"):
            C.evaluate_completion("none", poses=q, masks="left_arm", n_poses=bad)
    with pytest.raises(ValueError, match="at least one pose"):
        C.evaluate_completion("none", poses=q[:0], masks="left_arm")


def test_moved_joints_are_descendants():
    mv = C.moved_joints(C.parse_mask("left_elbow"))
    assert {SMPL_JOINT_NAMES[i] for i in torch.nonzero(mv).flatten().tolist()} == {"left_wrist", "left_hand"}


def test_evaluate_completion_on_the_shipped_test_split():
    target = R.quat_canonical(R.axis_angle_to_quat(torch.zeros(21, 3)))
    ev = C.evaluate_completion(QuadPrior(target), masks=("left_arm", "spine"), n_poses=40, iterations=20, init="identity")
    assert ev.n_poses == 40 and set(ev.per_mask) == {"left_arm", "spine"}
    for v in ev.per_mask.values():
        assert v["angle_deg"] > 0 and v["position_mm"] > 0 and v["energy"] <= v["init_energy"] + 1e-2
    # the identity prior's completion is the identity init: same errors
    assert ev.per_mask["spine"]["angle_deg"] == pytest.approx(ev.per_mask["spine"]["init_angle_deg"], abs=0.5)
    # per-pose errors (for paired intervals): one per pose, averaging to the reported means
    for name, per in ev.per_pose.items():
        for key in ("angle_deg", "init_angle_deg", "identity_angle_deg"):
            assert len(per[key]) == 40 and np.mean(per[key]) == pytest.approx(ev.per_mask[name][key], rel=1e-5)


def test_complete_cli(tmp_path, capsys):
    q = R.quat_canonical(R.axis_angle_to_quat(torch.randn(5, 21, 3, generator=torch.Generator().manual_seed(0)) * 0.3))
    f = tmp_path / "p.npz"
    save_pose_set(f, q)
    out = tmp_path / "c.npz"
    assert cli_main(["complete", "--poses", str(f), "--mask", "left_leg", "--out", str(out), "--prior", "none",
                     "--iterations", "3", "--quiet"]) == 0
    z = np.load(out)
    assert z["quat"].shape == (5, 21, 4) and z["mask"].sum() == 4
    assert "completed 4 joint(s) of 5 pose(s)" in capsys.readouterr().out
    assert cli_main(["complete", "--poses", str(f), "--mask", "tail", "--out", str(out), "--prior", "none"]) == 2
    assert "unknown joint" in capsys.readouterr().err
    assert cli_main(["complete", "--poses", str(f), "--mask", "left_leg", "--out", str(out), "--prior", "none",
                     "--projection-steps", "-1"]) == 2
    assert "projection_steps must be an integer >= 0" in capsys.readouterr().err


def _knn_by_loop(poses, mask, reference, k):
    """The kNN fill written plainly, one pose at a time (the reference for knn_fill's batched version)."""
    out = poses.clone()
    for i in range(len(poses)):
        vis = ~mask[i]
        d = R.quat_geodesic_angle(reference[:, vis], poses[i, vis].expand_as(reference[:, vis])).sum(-1)
        idx = d.topk(min(k, len(reference)), largest=False).indices
        out[i, mask[i]] = R.quat_canonical(R.quat_mean(reference[idx][:, mask[i]], dim=0))
    return out


def test_knn_fill_takes_the_hidden_joints_from_the_nearest_poses():
    from posendf_plugin.fitting.knn import knn_fill

    g = torch.Generator().manual_seed(5)
    ref = R.quat_canonical(R.axis_angle_to_quat(torch.randn(300, 21, 3, generator=g) * 0.5))
    truth = ref[[3, 77, 150]]
    poses = R.quat_canonical(R.axis_angle_to_quat(torch.randn(3, 21, 3, generator=g)))
    poses[:, :12] = truth[:, :12]  # the known joints are the truth's; the unknown ones are noise
    mask = torch.zeros(3, 21, dtype=torch.bool)
    mask[:, 12:] = True
    mask[1, 5] = True  # masks differ per pose
    filled = knn_fill(poses, mask, ref, k=1)
    torch.testing.assert_close(filled[:, ~mask[0]], poses[:, ~mask[0]])  # known joints as given
    ang = R.quat_geodesic_angle(filled, truth)  # the nearest reference pose is the truth itself
    assert float(ang[mask].max()) < 1e-3
    # k > 1: the chordal mean over the k nearest, as the plain loop computes it; chunking does not matter
    mask2 = torch.rand(40, 21, generator=g) < 0.4
    q2 = R.quat_canonical(R.axis_angle_to_quat(torch.randn(40, 21, 3, generator=g) * 0.5))
    torch.testing.assert_close(knn_fill(q2, mask2, ref, k=7, chunk=3), _knn_by_loop(q2, mask2, ref, 7), atol=1e-5, rtol=0)
    # no known joint: the mean of the whole reference; k beyond the reference: all of it
    blind = knn_fill(poses[:1], torch.ones(1, 21, dtype=torch.bool), ref)
    torch.testing.assert_close(blind[0], R.quat_canonical(R.quat_mean(ref, dim=0)), atol=1e-5, rtol=0)
    # filled joints come as every pose read does, w >= 0 (a start's axis-angle the short way round)
    assert bool((knn_fill(q2, mask2, -ref, k=7)[mask2][:, 0] >= 0).all())
    torch.testing.assert_close(knn_fill(poses, mask, ref[:4], k=50), knn_fill(poses, mask, ref[:4], k=4))
    # the values of unknown joints take no part, even NaN
    nan = torch.where(mask2[..., None], torch.full_like(q2, float("nan")), q2)
    torch.testing.assert_close(knn_fill(nan, mask2, ref, k=7), knn_fill(q2, mask2, ref, k=7))
    with pytest.raises(ValueError, match="bool"):
        knn_fill(poses, mask.int(), ref)
    with pytest.raises(ValueError, match="empty"):
        knn_fill(poses, mask, ref[:0])
    with pytest.raises(ValueError, match="k must be"):
        knn_fill(poses, mask, ref, k=0)
    with pytest.raises(ValueError, match="mask"):
        knn_fill(poses, mask[:2], ref)


def test_completion_starts_from_the_knn_fill_by_default(tmp_path, capsys):
    """complete_poses / evaluate_completion / ``posendf complete`` start from the kNN fill; the distance
    fields take no projection step from it; a reference holding the truth gives it back with k = 1."""
    from posendf_plugin.data.default import default_pose_set
    from posendf_plugin.fitting.knn import knn_fill
    from posendf_plugin.prior import PoseNDF

    from _ndf_fixtures import trained_tiny

    q = default_pose_set("val").quat[:6]
    mask = C.parse_mask("right_arm,head")
    train = default_pose_set("train").quat
    want = knn_fill(q, mask.expand(6, -1), train)
    torch.testing.assert_close(C.complete_poses(q, mask, "none").quat, want, atol=2e-4, rtol=0)  # (axis-angle round trip)
    field = PoseNDF.from_checkpoint(trained_tiny())
    res = C.complete_poses(q, mask, field)  # KNN_PROJECTION_STEPS = 0: the fill, scored by the field
    torch.testing.assert_close(res.quat, want)
    torch.testing.assert_close(res.energy, res.energy_init)
    moved = C.complete_poses(q, mask, field, projection_steps=3)
    assert not torch.allclose(moved.quat, want)
    # a fill computed once and handed in gives the same result as computing it inside, also for a
    # prior fitted in axis-angle (whose start depends on the quaternions' sign)
    again = C.complete_poses(q, mask, field, knn_start=want)
    torch.testing.assert_close(again.quat, res.quat)
    gmm_in = C.complete_poses(q, mask, "gmm", iterations=5)
    torch.testing.assert_close(C.complete_poses(q, mask, "gmm", iterations=5, knn_start=want).quat, gmm_in.quat)
    with pytest.raises(ValueError, match="knn_start"):
        C.complete_poses(q, mask, field, init="mean", knn_start=want)
    ev = C.evaluate_completion("none", poses=q, masks=["right_arm,head"], n_poses=6)
    ev2 = C.evaluate_completion("none", poses=q, masks=["right_arm,head"], n_poses=6, knn_starts=[want])
    assert ev2.per_mask["right_arm,head"]["init_angle_deg"] == pytest.approx(ev.per_mask["right_arm,head"]["init_angle_deg"])
    m = ev.per_mask["right_arm,head"]
    assert m["angle_deg"] == pytest.approx(m["init_angle_deg"], abs=0.05) and m["init_angle_deg"] < m["mean_angle_deg"]
    # the CLI with the truth in --reference and --knn 1 gives the hidden joints back
    f, ref, out = tmp_path / "p.npz", tmp_path / "ref.npz", tmp_path / "c.npz"
    noisy = q.clone()
    noisy[:, mask] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    save_pose_set(f, noisy)
    save_pose_set(ref, torch.cat([q, train[:500]]))
    assert cli_main(["complete", "--poses", str(f), "--mask", "right_arm,head", "--reference", str(ref), "--knn", "1",
                     "--prior", "none", "--out", str(out), "--quiet"]) == 0
    got = torch.as_tensor(np.load(out)["quat"])
    assert float(torch.rad2deg(R.quat_geodesic_angle(got, q)).max()) < 0.5  # (files hold float16)
    capsys.readouterr()


def test_vposer_completion_fits_the_latent_code_to_the_known_joints():
    from posendf_plugin.priors.vposer import VPoser, VPoserConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        vp = VPoser(VPoserConfig(num_neurons=32, latent_dim=4)).eval()
    g = torch.Generator().manual_seed(1)
    truth = vp.decode_to_quat(torch.randn(5, 4, generator=g)).detach()  # poses on the decoder's manifold
    mask = C.parse_mask("left_arm,right_leg")
    res = C.complete_poses(truth, mask, vp, iterations=300, lr=0.05, latent_weight=0.0)  # auto = latent for VPoser
    assert torch.allclose(res.quat[:, ~mask], truth[:, ~mask], atol=1e-6)  # known joints as given
    err = torch.rad2deg(R.quat_geodesic_angle(res.quat[:, mask], truth[:, mask]))
    energy_mode = C.complete_poses(truth, mask, vp, iterations=300, lr=0.05, parameterisation="axis_angle")
    err_energy = torch.rad2deg(R.quat_geodesic_angle(energy_mode.quat[:, mask], truth[:, mask]))
    assert err.median() < 1.0 and err.mean() < err_energy.mean()  # (a local minimum may catch a pose)
    # a huge weight on ‖z‖² keeps z at 0: the unknown joints are the decoded z = 0
    stiff = C.complete_poses(truth, mask, vp, iterations=20, latent_weight=1e6, init="identity")  # z from 0
    mean_pose = vp.decode_to_quat(torch.zeros(1, 4)).detach().expand(5, -1, -1)
    assert torch.rad2deg(R.quat_geodesic_angle(stiff.quat[:, mask], mean_pose[:, mask])).max() < 2.0
    with pytest.raises(ValueError, match="VPoser"):
        C.complete_poses(truth, mask, QuadPrior(truth[0]), parameterisation="vposer_latent")
    with pytest.raises(ValueError, match="parameterisation"):
        C.complete_poses(truth, mask, vp, parameterisation="latent")


def test_distance_field_completion_is_a_masked_projection():
    """Pose-NDF / NRDF complete by projecting the unknown joints only (auto), from the start guess."""
    from posendf_plugin.prior import PoseNDF

    from _ndf_fixtures import trained_tiny

    prior = PoseNDF.from_checkpoint(trained_tiny())
    g = torch.Generator().manual_seed(3)
    poses = R.quat_canonical(R.axis_angle_to_quat(torch.randn(8, 21, 3, generator=g) * 0.4))
    mask = C.parse_mask("left_leg,head")
    res = C.complete_poses(poses, mask, prior, init="mean")
    torch.testing.assert_close(res.quat[:, ~mask], poses[:, ~mask])  # known joints kept
    # the known joints are far off the manifold here (random poses): a step never raises the distance
    assert bool((res.energy <= res.energy_init).all()) and bool((res.energy < res.energy_init).any())
    start = C._start_guess(poses, mask.expand(8, -1), "mean")
    # zero steps: the start guess itself; Adam on the energy stays available
    torch.testing.assert_close(C.complete_poses(poses, mask, prior, init="mean", projection_steps=0).quat, start)
    adam = C.complete_poses(poses, mask, prior, init="mean", parameterisation="axis_angle", iterations=5)
    assert not torch.equal(adam.quat, res.quat)
    with pytest.raises(ValueError, match="distance-field"):
        C.complete_poses(poses, mask, "none", parameterisation="projection")


def test_complete_cli_loads_the_density_aware_posendf(tmp_path):
    """``posendf complete --prior posendf`` (and complete_poses / evaluate_completion by name) complete with the
    shipped density-aware field (``SHIPPED_WEIGHTS``), not the default distance field."""
    from posendf_plugin.fitting.params import load_prior

    q = R.quat_canonical(R.axis_angle_to_quat(torch.randn(3, 21, 3, generator=torch.Generator().manual_seed(1)) * 0.3))
    f, out = tmp_path / "p.npz", tmp_path / "c.npz"
    save_pose_set(f, q)
    assert cli_main(["complete", "--poses", str(f), "--mask", "left_arm", "--out", str(out), "--prior", "posendf",
                     "--projection-steps", "0", "--init", "input", "--quiet"]) == 0
    energy = torch.as_tensor(np.load(out)["energy"])
    dens = load_prior("posendf", shipped=C.SHIPPED_WEIGHTS["posendf"])
    default = load_prior("posendf")
    with torch.no_grad():
        torch.testing.assert_close(energy, dens.energy(q).float(), atol=1e-5, rtol=1e-4)
        assert not torch.allclose(energy, default.energy(q).float(), atol=1e-3)
    # the Python API by name follows the CLI
    res = C.complete_poses(q, "left_arm", "posendf", projection_steps=0, init="input")
    torch.testing.assert_close(res.energy.float(), energy, atol=1e-5, rtol=1e-4)


def test_estimate_joint_noise_recovers_white_noise():
    """σ̂ from second differences: within 10 % of the true std on a smooth motion, ≈ 0 without
    noise; too few frames is an error."""
    t = torch.linspace(0, 2, 60)[:, None, None]
    clean = 0.3 * torch.sin(3 * t) + torch.zeros(60, 22, 3)
    g = torch.Generator().manual_seed(0)
    for sigma in (0.02, 0.04, 0.1):
        assert D.estimate_joint_noise(clean + sigma * torch.randn(clean.shape, generator=g)) == pytest.approx(sigma, rel=0.1)
    assert D.estimate_joint_noise(clean) < 0.002
    with pytest.raises(ValueError, match="T >= 3"):
        D.estimate_joint_noise(clean[:2])
