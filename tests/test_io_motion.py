import numpy as np
import pytest

from posendf_plugin.data.motion import Motion, load_motion, save_motion
from posendf_plugin.io import load_npz, save_npz


def test_humor_file_with_pickled_none_loads(tmp_path):
    # HuMoR writes pose_hand=None, which numpy stores as a pickled object array
    p = tmp_path / "humor.npz"
    np.savez(p, pose_body=np.full((4, 63), 0.1, "f4"), root_orient=np.zeros((4, 3), "f4"),
             trans=np.zeros((4, 3), "f4"), betas=np.zeros(16), pose_hand=np.array(None, dtype=object))
    m = load_motion(p)
    assert len(m) == 4 and m.pose_hand.shape == (4, 90)
    np.testing.assert_allclose(m.pose_body, 0.1, atol=1e-6)
    with pytest.raises(KeyError, match="hold pickled objects"):
        load_npz(p, required=("pose_hand",))


def test_motion_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    m = Motion(rng.normal(0, 0.3, (6, 63)).astype("f4"), np.zeros((6, 3), "f4"), rng.normal(size=(6, 3)).astype("f4"), fps=60.0)
    save_motion(tmp_path / "m.npz", m)
    z = load_npz(tmp_path / "m.npz", required=("poses", "pose_body", "root_orient", "trans", "betas", "mocap_framerate"))
    assert z["poses"].shape == (6, 156)
    back = load_motion(tmp_path / "m.npz")
    np.testing.assert_allclose(back.pose_body, m.pose_body, atol=1e-6)
    assert back.fps == 60.0
    save_motion(tmp_path / "e.npz", m, extra={"start_frame": np.asarray(7)})  # extra arrays ride along
    assert int(np.load(tmp_path / "e.npz")["start_frame"]) == 7
    np.testing.assert_allclose(load_motion(tmp_path / "e.npz").pose_body, m.pose_body, atol=1e-6)
    with pytest.raises(ValueError, match="may not replace the AMASS keys"):
        save_motion(tmp_path / "x.npz", m, extra={"trans": np.zeros((6, 3))})
    with pytest.raises(ValueError, match=r"pose_body must have shape \(6, 63\)"):
        Motion(np.zeros((6, 69), "f4"), np.zeros((6, 3), "f4"), np.zeros((6, 3), "f4"))
    bad = np.zeros((3, 63), "f4"); bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN/Inf in frame\(s\) \[1\]"):
        Motion(bad, np.zeros((3, 3), "f4"), np.zeros((3, 3), "f4"))
    save_npz(tmp_path / "nokeys.npz", foo=np.zeros(3))
    with pytest.raises(KeyError, match="no body pose found"):
        load_motion(tmp_path / "nokeys.npz")
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "m.npz").read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_motion(tmp_path / "trunc.npz")
    with pytest.raises(FileNotFoundError):
        load_motion(tmp_path / "missing.npz")


def test_save_json_is_strict(tmp_path):
    from posendf_plugin.io import finite_or_none, save_json

    import json

    assert finite_or_none(float("nan")) is None and finite_or_none(np.float32(2.5)) == 2.5
    save_json(tmp_path / "a.json", {"m": {"fps": float("nan"), "ok": 1.5}, "x": [1.0, np.float32("inf")],
                                    "arr": np.array([np.nan, 2.0])})
    text = (tmp_path / "a.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert back == {"m": {"fps": None, "ok": 1.5}, "x": [1.0, None], "arr": [None, 2.0]}


def test_motion_arrays_are_checked(tmp_path):
    n = 4
    base = dict(pose_body=np.zeros((n, 63), "f4"), root_orient=np.zeros((n, 3), "f4"), trans=np.zeros((n, 3), "f4"))
    for name, extra, msg in (
        ("nan_betas", dict(betas=np.full(16, np.nan)), r"'betas' holds 16 NaN"),
        ("str_fps", dict(mocap_framerate=np.array("x")), r"'mocap_framerate' must be a numeric array"),
        ("zero_fps", dict(mocap_framerate=np.array(0.0)), r"'mocap_framerate' must be one positive number"),
        ("scalar", dict(pose_body=np.float32(1)), r"'pose_body' must be a 2-D or 3-D array, got shape \(\)"),
        ("hand", dict(pose_hand=np.zeros((n, 12))), r"'pose_hand' must have 90 values per row"),
    ):
        save_npz(tmp_path / f"{name}.npz", **{**base, **extra})
        with pytest.raises(ValueError, match=msg):
            load_motion(tmp_path / f"{name}.npz")
    with pytest.raises(ValueError, match="betas has NaN"):
        Motion(base["pose_body"], base["root_orient"], base["trans"], betas=np.full(16, np.nan))


def test_gender_is_read_as_a_word(tmp_path):
    """AMASS releases store gender as a str or bytes scalar (some as a one-element array); any of
    them reads as the word, and an unknown value is refused naming the file."""
    n = 4
    base = dict(pose_body=np.zeros((n, 63), "f4"), trans=np.zeros((n, 3), "f4"))
    for value, want in ((np.array("male"), "male"), (np.array(b"female"), "female"), (np.array(["Male"]), "male"),
                        (np.array([b"neutral "]), "neutral")):
        np.savez(tmp_path / "g.npz", gender=value, **base)
        assert load_motion(tmp_path / "g.npz").gender == want, value
    np.savez(tmp_path / "g.npz", gender=np.array("robot"), **base)
    with pytest.raises(ValueError, match=r"g\.npz: 'gender' must be one of neutral, male, female, got \['robot'\]"):
        load_motion(tmp_path / "g.npz")
    np.savez(tmp_path / "g.npz", gender=np.zeros(3), **base)
    with pytest.raises(ValueError, match="'gender' must be one of"):
        load_motion(tmp_path / "g.npz")


def test_motion_resampled_keeps_the_motion():
    """120 -> 30 fps keeps every 4th frame; 30 -> 60 fps puts the slerp midpoint (the same rotation
    as halfway along the geodesic) and the mean translation between frames; hands too."""
    from posendf_plugin import rotations as R
    import torch

    rng = np.random.default_rng(0)
    n = 13
    m = Motion(pose_body=rng.normal(0, 0.3, (n, 63)).astype("f4"), root_orient=rng.normal(0, 0.3, (n, 3)).astype("f4"),
               trans=rng.normal(0, 1, (n, 3)).astype("f4"), fps=120.0, gender="female",
               pose_hand=rng.normal(0, 0.2, (n, 90)).astype("f4"))
    down = m.resampled(30)
    assert len(down) == 4 and down.fps == 30.0 and down.gender == "female"
    for k in ("pose_body", "root_orient", "trans", "pose_hand"):
        np.testing.assert_allclose(getattr(down, k), getattr(m, k)[::4], atol=1e-5)
    up = m.resampled(240)
    assert len(up) == 2 * n - 1
    np.testing.assert_allclose(up.pose_body[::2], m.pose_body, atol=1e-5)
    np.testing.assert_allclose(up.trans[1], (m.trans[0] + m.trans[1]) / 2, atol=1e-6)
    q = lambda a: R.axis_angle_to_quat(torch.as_tensor(a, dtype=torch.float64).reshape(-1, 3))  # noqa: E731
    half = R.quat_slerp(q(m.pose_body[0]), q(m.pose_body[1]), 0.5)
    assert float(R.quat_geodesic_angle(q(up.pose_body[1]), half).max()) < 1e-4
    assert m.resampled(120) is m
    with pytest.raises(ValueError, match="fps must be a positive"):
        m.resampled(0)
