"""BVH reading: hierarchy, any channel order, position channels, FK, resampling, bad input."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from posendf_plugin.data.bvh import euler_to_matrix, matrix_to_euler, read_bvh, read_bvh_text, write_bvh

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Yrotation Xrotation Zrotation
    JOINT Arm
    {
      OFFSET 5 0 0
      CHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation Zrotation
      End Site
      {
        OFFSET 4 0 0
      }
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.5
1 2 3 0 0 0   0 0 0   5 0 0 0 0 0
1 2 3 90 0 0  0 0 0   5 0 0 0 0 0
1 2 3 0 0 0   90 0 0  5 0 0 0 0 90
"""


def test_parse_hierarchy_and_channels():
    clip = read_bvh_text(TINY, "tiny")
    assert clip.names == ["Hips", "Chest", "Arm", "Arm_End"]
    assert clip.parents == [-1, 0, 1, 2]
    assert clip.is_end == [False, False, False, True]
    assert clip.channels[1] == ["yrotation", "xrotation", "zrotation"]
    assert clip.num_frames == 3 and clip.fps == pytest.approx(2.0)
    np.testing.assert_allclose(clip.offsets[2], [5, 0, 0])


def test_fk_known_rotations():
    clip = read_bvh_text(TINY, "tiny")
    pos, rot = clip.global_transforms()
    # frame 0: rest, root translated by (1, 2, 3)
    np.testing.assert_allclose(pos[0, 1], [1, 12, 3], atol=1e-9)
    np.testing.assert_allclose(pos[0, 3], [10, 12, 3], atol=1e-9)
    # frame 1: root Z rotation 90°: the chest offset (0, 10, 0) turns to (-10, 0, 0)
    np.testing.assert_allclose(pos[1, 1], [1 - 10, 2, 3], atol=1e-9)
    # frame 2: chest Y rotation 90° turns the arm (5,0,0) to (0,0,-5); the arm's own Z 90°
    # turns its end (4,0,0) to (0,4,0) in the arm frame, i.e. (0,4,0) in the world
    np.testing.assert_allclose(pos[2, 2], [1, 12, 3 - 5], atol=1e-9)
    np.testing.assert_allclose(pos[2, 3], [1, 16, -2], atol=1e-9)
    np.testing.assert_allclose(rot[2, 2] @ rot[2, 2].T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("order", ["zyx", "xyz", "yzx", "zxy"])
def test_euler_matches_scipy_intrinsic(order):
    rng = np.random.default_rng(0)
    ang = rng.uniform(-170, 170, size=(5, 3))
    m = euler_to_matrix(ang, order)
    ref = Rotation.from_euler(order.upper(), ang, degrees=True).as_matrix()
    np.testing.assert_allclose(m, ref, atol=1e-12)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(m, order), order), m, atol=1e-9)


def test_position_channels_replace_or_add():
    # non-root joints whose position channels equal their offset -> "replace" convention
    clip = read_bvh_text(TINY, "tiny")
    np.testing.assert_allclose(clip.local_trans[:, 2], np.tile([5, 0, 0], (3, 1)))
    # root-only positions far from a large offset -> added to it (iClone / CC3 style)
    text = (
        "HIERARCHY\nROOT Hips\n{\n OFFSET 0 100 0\n CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation\n"
        " JOINT Chest\n {\n  OFFSET 0 10 0\n  CHANNELS 3 Zrotation Yrotation Xrotation\n"
        "  End Site\n  {\n   OFFSET 0 5 0\n  }\n }\n}\nMOTION\nFrames: 2\nFrame Time: 0.1\n"
        "1 2 3 0 0 0 0 0 0\n1 2 3 0 0 0 0 0 0\n"
    )
    clip2 = read_bvh_text(text, "add")
    np.testing.assert_allclose(clip2.local_trans[0, 0], [1, 102, 3])


def test_write_read_roundtrip_gz(tmp_path):
    rng = np.random.default_rng(1)
    rot = Rotation.random(4 * 3, random_state=2).as_matrix().reshape(4, 3, 3, 3)
    offsets = np.array([[0, 0, 0], [0, 10, 0], [3, 0, 0.5]])
    root = rng.normal(size=(4, 3))
    p = write_bvh(tmp_path / "c.bvh.gz", ["A", "B", "C"], [-1, 0, 1], offsets, rot, root, order="yxz",
                  end_sites={2: (1, 0, 0)})
    assert p.read_bytes()[:2] == b"\x1f\x8b"
    clip = read_bvh(p)
    np.testing.assert_allclose(clip.local_rot[:, :3], rot, atol=1e-5)
    np.testing.assert_allclose(clip.local_trans[:, 0], root, atol=1e-5)
    assert clip.names == ["A", "B", "C", "C_End"]


def test_resample_slerp_and_linear():
    clip = read_bvh_text(TINY, "tiny")  # 2 fps, 3 frames = 1 s
    r = clip.resampled(4.0)
    assert r.num_frames == 5 and r.fps == pytest.approx(4.0)
    # halfway between frame 0 (0°) and frame 1 (90° about Z) on the root: 45°
    np.testing.assert_allclose(r.local_rot[1, 0], euler_to_matrix(np.array([45.0, 0, 0]), "zxy"), atol=1e-6)
    np.testing.assert_allclose(r.local_trans[1, 0], [1, 2, 3])


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda t: t.replace("MOTION", "MOTON"), "no MOTION section"),
        (lambda t: t.replace("HIERARCHY", ""), "not a BVH file"),
        (lambda t: t[: t.index("Frame Time")].replace("Frames: 3", "Frames: 3"), "Frame Time"),
        (lambda t: t.rsplit("\n", 2)[0] + "\n", "declares 3 frames but holds only 2"),
        (lambda t: t.replace("1 2 3 90 0 0  0 0 0", "1 2 3 90 0 0  0 0"), "frame 1 has 14 values"),
        (lambda t: t.replace("CHANNELS 3 Yrotation Xrotation Zrotation", "CHANNELS 2 Yrotation Xrotation Zrotation"), "more channel names than its CHANNELS count"),
        (lambda t: t.replace("CHANNELS 3 Yrotation Xrotation Zrotation", "CHANNELS 4 Yrotation Xrotation Zrotation"), "unknown channel"),
        (lambda t: t.replace("1 2 3 90 0 0", "1 2 3 nan 0 0"), "NaN/Inf value in frame 1, joint 'Hips'"),
        (lambda t: t.replace("1 2 3 90 0 0", "1 2 3 abc 0 0"), "frame 1: non-numeric"),
        (lambda t: t.replace("OFFSET 5 0 0", "OFFSET 5 0"), "expected a number"),
        (lambda t: t[: t.index("End Site")], "hierarchy ends early|no MOTION"),
    ],
)
def test_bad_text_names_file_and_problem(mutate, match):
    with pytest.raises(ValueError, match=match) as e:
        read_bvh_text(mutate(TINY), "broken.bvh")
    assert "broken.bvh" in str(e.value)


def test_corrupt_and_truncated_gzip(tmp_path):
    good = gzip.compress(TINY.encode())
    (tmp_path / "trunc.bvh.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="trunc.bvh.gz: corrupt or truncated gzip"):
        read_bvh(tmp_path / "trunc.bvh.gz")
    (tmp_path / "garbage.bvh.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    with pytest.raises(ValueError, match="garbage.bvh.gz"):
        read_bvh(tmp_path / "garbage.bvh.gz")
    with pytest.raises(FileNotFoundError, match="missing.bvh"):
        read_bvh(tmp_path / "missing.bvh")
    # a plain text BVH cut in the middle of the motion
    (tmp_path / "cut.bvh").write_text(TINY[: TINY.index("1 2 3 90")])
    with pytest.raises(ValueError, match="cut.bvh: declares 3 frames but holds only 1"):
        read_bvh(tmp_path / "cut.bvh")


# --- real files ------------------------------------------------------------------------------


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_real_rigs_parse():
    cmu = read_bvh(SHARED / "cmu-std" / "01_01.bvh.gz")
    assert cmu.num_frames == 2752 and cmu.fps == pytest.approx(120, rel=1e-3)
    assert "LeftUpLeg" in cmu.names and "Head_End" in cmu.names
    bandai = read_bvh(sorted((SHARED / "bandai" / "dataset-1").glob("*.bvh.gz"))[0])
    assert all(len(c) == 6 for c in bandai.channels if c)
    pos, _ = bandai.global_transforms([bandai.index("Hips"), bandai.index("Head")])
    # 6 channels per joint use the "replace" convention: the head is ~50 cm above the hips
    h = pos[:, bandai.index("Head"), 1] - pos[:, bandai.index("Hips"), 1]
    assert 30 < np.median(h) < 70
