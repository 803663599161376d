"""The rig-independent definition of SMPL joints (data/anatomy.py, convert.solve_smpl): the same
motion on rigs with other joint placements, spine counts, bone rolls and rest poses converts to
the same SMPL pose; a motion with upright frames comes back; the real CMU two-rig pair agrees."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from posendf_plugin import rotations as R
from posendf_plugin.data.anatomy import calibrate_offset, rotation_power, standing_weights, swing
from posendf_plugin.data.convert import convert_bvh, quality_report
from posendf_plugin.data.default import default_pose_set
from posendf_plugin.data.rerig import RIG_VARIANTS, rig_variant, variant_profile, write_rig_bvh
from posendf_plugin.skeleton import BODY_JOINT_NAMES, to_body_quat

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPINE = [BODY_JOINT_NAMES.index(n) for n in ("spine1", "spine2", "spine3")]
NECK = [BODY_JOINT_NAMES.index(n) for n in ("neck", "head")]


def _quat(res) -> torch.Tensor:
    return to_body_quat(torch.from_numpy(res.motion.pose_body).double())


@pytest.fixture(scope="module")
def motion() -> torch.Tensor:
    """120 held-out poses after 20 frames of the upright zero pose (a neutral stance)."""
    q = default_pose_set("val").quat[:120].double()
    z = torch.zeros(20, 21, 4, dtype=q.dtype)
    z[..., 0] = 1.0
    return torch.cat([z, q])


def test_rotation_power_and_swing():
    rots = Rotation.random(50, random_state=0).as_matrix()
    third = rotation_power(rots, 1.0 / 3.0)
    np.testing.assert_allclose(third @ third @ third, rots, atol=1e-9)
    near_pi = Rotation.from_rotvec(np.array([[0.0, np.pi - 1e-9, 0.0], [np.pi, 0.0, 0.0]])).as_matrix()
    half = rotation_power(near_pi, 0.5)
    np.testing.assert_allclose(half @ half, near_pi, atol=1e-6)
    v = Rotation.random(20, random_state=1).apply([0.0, 1.0, 0.0])
    w = Rotation.random(20, random_state=2).apply([0.0, 1.0, 0.0])
    w[0] = -v[0]  # antiparallel
    S = swing(v, w)
    np.testing.assert_allclose(np.einsum("fij,fj->fi", S, v), w, atol=1e-9)
    np.testing.assert_allclose(S @ np.swapaxes(S, -1, -2), np.broadcast_to(np.eye(3), S.shape), atol=1e-9)


def test_calibrate_offset_recovers_a_constant():
    O = Rotation.random(40, random_state=1).as_matrix()
    C = Rotation.random(random_state=2).as_matrix()
    noise = Rotation.from_rotvec(np.random.default_rng(0).normal(0, 0.01, (40, 3))).as_matrix()
    got = calibrate_offset(O, O @ C @ noise, np.ones(40))
    assert np.degrees(np.arccos((np.trace(got.T @ C) - 1) / 2)) < 1.0


def test_standing_weights_see_an_upright_stance():
    pos = {"left_hip": [0.1, 1.0, 0], "right_hip": [-0.1, 1.0, 0], "left_knee": [0.1, 0.55, 0],
           "right_knee": [-0.1, 0.55, 0], "left_ankle": [0.1, 0.1, 0], "right_ankle": [-0.1, 0.1, 0],
           "neck": [0, 1.5, 0], "left_shoulder": [0.2, 1.45, 0], "right_shoulder": [-0.2, 1.45, 0],
           "left_elbow": [0.2, 1.15, 0], "right_elbow": [-0.2, 1.15, 0], "left_wrist": [0.2, 0.9, 0],
           "right_wrist": [-0.2, 0.9, 0]}
    upright = {k: np.array([v], float) for k, v in pos.items()}
    w = standing_weights(upright)
    assert all(float(v[0]) == 1.0 for v in w.values()), w
    bent = dict(upright, neck=np.array([[0.0, 1.3, 0.35]]))  # trunk leaning 40° forward
    assert all(float(v[0]) == 0.0 for v in standing_weights(bent).values())


def test_generated_rigs_have_distinct_geometry():
    names = {v: [j.name for j in rig_variant(v)] for v in RIG_VARIANTS}
    assert len(names["cmu-like"]) != len(names["four-spine"])  # other spine counts
    with pytest.raises(ValueError, match="unknown rig variant"):
        rig_variant("nope")


def test_same_motion_on_other_rigs_converts_to_the_same_pose(tmp_path, motion):
    """Other joint placements (pelvis 4 cm low, collars from the neck base, chest above SMPL's),
    2 / 3 / 4 spine bones, every joint frame rolled (another rest pose): same SMPL pose."""
    out = {}
    for i, v in enumerate(RIG_VARIANTS):
        res = convert_bvh(write_rig_bvh(tmp_path / f"{v}.bvh", motion, v, roll_seed=None if i == 0 else 10 + i),
                          rig=variant_profile(v))
        q = quality_report(res)
        assert q.mean_deg < 2.0 and q.p95_deg < 8.0, (v, q)
        out[v] = _quat(res)
    for v in RIG_VARIANTS[1:]:
        d = np.degrees(R.quat_geodesic_angle(out[RIG_VARIANTS[0]], out[v]).numpy())
        assert d.mean() < 0.5 and np.percentile(d, 95) < 2.0, (v, d.mean(), np.percentile(d, 95))


def test_motion_with_upright_frames_comes_back(tmp_path, motion):
    """On SMPL's own skeleton the limbs, feet, wrists and collars come back; the spine and the
    neck come back as a whole (the definition shares their bend equally among the joints)."""
    res = convert_bvh(write_rig_bvh(tmp_path / "smpl.bvh", motion, "smpl", roll_seed=4), rig=variant_profile("smpl"))
    got = _quat(res)
    d = np.degrees(R.quat_geodesic_angle(got, motion).numpy())
    others = [j for j in range(21) if j not in SPINE + NECK]
    assert np.median(d[:, others]) < 1.0 and np.percentile(d[:, others], 95) < 6.0, (np.median(d[:, others]),
                                                                                      np.percentile(d[:, others], 95))

    def chain(q: torch.Tensor, joints) -> torch.Tensor:
        out = q[:, joints[0]]
        for j in joints[1:]:
            out = R.quat_mul(out, q[:, j])
        return out

    for joints in (SPINE, NECK):
        dc = np.degrees(R.quat_geodesic_angle(chain(got, joints), chain(motion, joints)).numpy())
        assert np.median(dc) < 2.0, (joints, np.median(dc))
    # the equal share: spine1 = spine2 = spine3
    np.testing.assert_allclose(got[:, SPINE[0]].numpy(), got[:, SPINE[2]].numpy(), atol=1e-6)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_real_trial_on_two_rigs_agrees():
    """CMU 01_01 on the standard CMU rig and on the CC3 rig: within the issue's 3° / 8°."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_rigs import real_pair

    r = real_pair(SHARED)
    assert r["mean_deg"] <= 3.0 and r["p95_deg"] <= 8.0, r
