"""posendf_plugin.metrics: APD, FID, dNN (nearest geodesic), AUROC and joint positions, against
hand-computed values and independent reference implementations; the benchmarks use the same
functions."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from posendf_plugin import metrics as M
from posendf_plugin.rotations import axis_angle_to_quat, nrdf_pose_distance, quat_random
from posendf_plugin.skeleton import SMPL_REST_JOINTS


def identity(n: int) -> torch.Tensor:
    q = torch.zeros(n, 21, 4)
    q[..., 0] = 1.0
    return q


def test_joint_positions_rest_pose_and_batch_dims():
    pos = M.joint_positions(identity(2))
    assert pos.shape == (2, 24, 3)
    torch.testing.assert_close(pos[0] - pos[0, :1], SMPL_REST_JOINTS - SMPL_REST_JOINTS[:1])
    assert M.joint_positions(identity(6).reshape(2, 3, 21, 4)).shape == (2, 3, 24, 3)
    with pytest.raises(ValueError, match=r"shape \(2, 23, 4\), which is not a supported body-pose layout"):
        M.joint_positions(torch.zeros(2, 23, 4))


def test_nearest_geodesic_known_angles_sign_and_brute_force():
    g = torch.Generator().manual_seed(0)
    ref = quat_random(7, 21, generator=g, dtype=torch.float64)
    # each reference pose is its own nearest pose, also with flipped quaternion signs (float64:
    # acos near 1 turns float32 rounding of unit norms into ~1e-3 rad)
    torch.testing.assert_close(M.nearest_geodesic(-ref, ref), torch.zeros(7), atol=1e-5, rtol=0)
    # one joint turned by 0.3 rad: distance 0.3; rms_deg spreads it over 21 joints
    q = identity(1)
    q[0, 5] = axis_angle_to_quat(torch.tensor([0.0, 0.3, 0.0]))
    d = M.nearest_geodesic(q, identity(1))
    torch.testing.assert_close(d, torch.tensor([0.3]), atol=1e-5, rtol=0)
    torch.testing.assert_close(M.rms_deg(d), torch.tensor([math.degrees(0.3) / math.sqrt(21)]))
    # against the pairwise NRDF distance, chunks smaller than the query set
    qs = quat_random(10, 21, generator=g, dtype=torch.float64)
    want = nrdf_pose_distance(qs[:, None].double(), ref[None].double()).min(1).values.float()
    torch.testing.assert_close(M.nearest_geodesic(qs, ref, chunk=3), want, atol=1e-4, rtol=0)
    assert M.nearest_geodesic(qs[:0], ref).shape == (0,)
    # scaled or float16-rounded quaternions are the same rotations: normalised, not misread
    torch.testing.assert_close(M.nearest_geodesic(2 * qs, 0.5 * ref), want, atol=1e-4, rtol=0)
    torch.testing.assert_close(M.nearest_geodesic(ref.half().float(), ref), torch.zeros(7), atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="zero-length"):
        M.nearest_geodesic(torch.zeros(1, 21, 4), ref)
    with pytest.raises(ValueError, match="reference"):
        M.nearest_geodesic(qs, ref[:0])
    with pytest.raises(ValueError, match="chunk"):
        M.nearest_geodesic(qs, ref, chunk=0)


def test_apd_known_value_chunking_and_errors():
    pos = torch.zeros(3, 2, 3)
    pos[1, :, 0] = 0.1  # 10 cm from sample 0
    pos[2, :, 0] = 0.3  # 30 cm from sample 0, 20 cm from sample 1
    assert M.apd_cm(pos) == pytest.approx((10 + 30 + 20) * 2 / 6)
    x = torch.randn(9, 24, 3, generator=torch.Generator().manual_seed(1))
    assert M.apd_cm(x, chunk=2) == pytest.approx(M.apd_cm(x, chunk=64), rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        M.apd_cm(pos[:1])
    with pytest.raises(ValueError, match="pos"):
        M.apd_cm(torch.zeros(3, 2))


def test_fid_shift_reference_and_errors():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    a = torch.as_tensor(rng.normal(size=(400, 5)))
    assert M.fid(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = torch.tensor([1.0, -2.0, 0.0, 0.5, 0.0], dtype=torch.float64)
    assert M.fid(a + shift, a) == pytest.approx(float((shift ** 2).sum()), rel=1e-9)
    b = torch.as_tensor(rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5)))
    x, y = a.numpy(), b.numpy()
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    ref = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    assert M.fid(a, b) == pytest.approx(ref, rel=1e-6)
    # one feature and singular covariances stay finite
    assert M.fid(a[:, :1], b[:, :1]) >= 0
    assert math.isfinite(M.fid(torch.zeros(10, 3), b[:, :3]))
    with pytest.raises(ValueError, match="at least 2"):
        M.fid(a[:1], b)
    with pytest.raises(ValueError, match="b must have shape"):
        M.fid(a, b[:, :4])


def test_auroc_separation_ties_and_rank_formula():
    assert M.auroc(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0])) == 1.0
    assert M.auroc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 0.0
    assert M.auroc(torch.ones(4), torch.ones(3)) == 0.5
    g = torch.Generator().manual_seed(2)
    neg, pos = torch.randn(50, generator=g), torch.randn(40, generator=g) + 0.7
    pairs = (pos[:, None] > neg[None]).double() + 0.5 * (pos[:, None] == neg[None]).double()
    assert M.auroc(neg, pos) == pytest.approx(float(pairs.mean()))
    # a NaN energy ranks as the highest score (a broken prior is not rewarded with a low one)
    assert M.auroc(torch.tensor([0.0, float("nan")]), torch.tensor([1.0])) == 0.5
    assert M.auroc(torch.tensor([float("-inf")]), torch.tensor([float("inf"), float("nan")])) == 1.0
    with pytest.raises(ValueError, match="both sets"):
        M.auroc(torch.zeros(0), pos)


def test_benchmarks_use_the_package_metrics(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from benchmarks import common

    for name in M.__all__:
        assert getattr(common, name) is getattr(M, name)


def test_metrics_take_any_pose_layout():
    """joint_positions / nearest_geodesic read every layout to_body_quat reads (numpy axis-angle
    here) the same as quaternions; an empty query gives a float32 (0,)."""
    from posendf_plugin.data.default import default_pose_set
    from posendf_plugin.skeleton import quat_to_pose

    q = default_pose_set("val").quat[:12]
    aa = quat_to_pose(q, 63).numpy()
    torch.testing.assert_close(M.joint_positions(aa), M.joint_positions(q), atol=1e-4, rtol=0)
    assert float(M.nearest_geodesic(aa, q).max()) < 5e-3  # (float16 set vs its axis-angle round trip)
    empty = M.nearest_geodesic(q[:0], q)
    assert empty.shape == (0,) and empty.dtype == torch.float32


def test_numpy_inputs_chunk_and_non_finite_values():
    """apd_cm / fid / auroc take numpy arrays like the other metrics (same values as tensors);
    a chunk that is not a positive integer and NaN / Inf features are refused, naming them."""
    g = np.random.default_rng(0)
    pos, a, b = g.normal(size=(7, 4, 3)), g.normal(size=(9, 5)), g.normal(size=(8, 5)) + 1.0
    assert M.apd_cm(pos) == pytest.approx(M.apd_cm(torch.as_tensor(pos)))
    assert M.fid(a, b) == pytest.approx(M.fid(torch.as_tensor(a), torch.as_tensor(b)))
    assert M.auroc(a[:, 0], b[:, 0]) == M.auroc(torch.as_tensor(a[:, 0]), torch.as_tensor(b[:, 0]))
    for chunk in (0, -1, 2.5):
        with pytest.raises(ValueError, match="chunk must be a positive integer"):
            M.apd_cm(pos, chunk=chunk)
    bad = a.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"a contains NaN or Inf values in 1 row\(s\): \[3\]"):
        M.fid(bad, b)
    with pytest.raises(ValueError, match="pos contains NaN"):
        M.apd_cm(np.where(np.arange(7)[:, None, None] == 2, np.inf, pos))


def test_paired_ratio_ci_brackets_the_ratio_pairs_items_and_checks_input():
    """The paired bootstrap interval contains the ratio of means, is tight when the two methods
    differ by the same amount on every item (pairing cancels the items' spread), wide when they
    differ at random, deterministic for a seed, and refuses inputs that have no ratio."""
    rng = np.random.default_rng(1)
    ref = rng.uniform(20.0, 80.0, 100)  # per-image errors spread over a factor of 4
    lo, hi = M.paired_ratio_ci(ref * 0.9, ref)
    assert lo == pytest.approx(0.9) and hi == pytest.approx(0.9)  # a constant ratio on every item
    shifted = ref - 1.0
    lo, hi = M.paired_ratio_ci(shifted, ref)
    r = shifted.mean() / ref.mean()
    assert lo < r < hi and hi - lo < 0.01  # the same 1 mm lead on every image: a firm one
    noisy = ref + rng.normal(0.0, 15.0, 100)
    lo2, hi2 = M.paired_ratio_ci(noisy, ref)
    assert lo2 < noisy.mean() / ref.mean() < hi2 and hi2 - lo2 > 0.05
    assert M.paired_ratio_ci(noisy, ref, seed=3) == M.paired_ratio_ci(noisy, ref, seed=3)
    lo90, hi90 = M.paired_ratio_ci(noisy, ref, level=0.9)
    assert lo2 <= lo90 and hi90 <= hi2  # a lower level, a narrower interval (same draws)
    assert M.paired_ratio_ci(list(noisy), torch.as_tensor(ref)) == (lo2, hi2)  # lists, arrays, tensors
    for a, b, msg in (([1.0, 2.0], [1.0], "same items"), ([1.0], [1.0], "at least 2"),
                      ([1.0, float("nan")], [1.0, 2.0], "finite"), ([1.0, 2.0], [0.0, 0.0], "at least one above 0"),
                      ([1.0, 2.0], [-1.0, 2.0], ">= 0")):
        with pytest.raises(ValueError, match=msg):
            M.paired_ratio_ci(a, b)
    with pytest.raises(ValueError, match="level"):
        M.paired_ratio_ci(ref, ref, level=1.0)
    with pytest.raises(ValueError, match="resamples"):
        M.paired_ratio_ci(ref, ref, resamples=10)
