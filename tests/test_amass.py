"""posendf data amass: VPoser splits, downsampling, dedup, bad files, on a fake AMASS tree in the
exact release layouts (SMPL+H ``*_poses.npz`` and SMPL-X ``*_stageii.npz``)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from posendf_plugin.data.amass import (
    AmassConfig,
    drop_near_duplicates,
    downsample_step,
    read_amass_clip,
    register_cli,
    sample_amass,
    split_of,
)
from posendf_plugin.data.motion import load_motion
from posendf_plugin.data.posesets import load_pose_set
from posendf_plugin.rotations import quat_geodesic_angle
from posendf_plugin.skeleton import pose_to_quat


def _smplh(path: Path, n: int, fps: float, rng, static: bool = False) -> np.ndarray:
    poses = rng.normal(0, 0.3, (n, 156)).astype(np.float64)
    if static:
        poses[:] = poses[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, trans=rng.normal(size=(n, 3)), gender=np.array("male"), mocap_framerate=np.array(fps),
             betas=rng.normal(size=16), dmpls=rng.normal(size=(n, 8)), poses=poses)
    return poses


def _smplx(path: Path, n: int, fps: float, rng) -> np.ndarray:
    poses = rng.normal(0, 0.3, (n, 165)).astype(np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    # AMASS SMPL-X stage-ii files also hold pickled marker metadata (a dict): never read it.
    vids = np.empty((), dtype=object)
    vids[()] = {"C7": 3470}
    np.savez(path, gender=np.array("female"), surface_model_type=np.array("smplx"),
             mocap_frame_rate=np.array(fps), mocap_time_length=np.array(n / fps),
             markers_latent=rng.normal(size=(n, 5, 3)), latent_labels=np.array(["a"] * 5),
             markers_latent_vids=vids, trans=rng.normal(size=(n, 3)), poses=poses,
             betas=rng.normal(size=16), num_betas=np.array(16), root_orient=poses[:, :3],
             pose_body=poses[:, 3:66], pose_hand=poses[:, 75:], pose_jaw=poses[:, 66:69],
             pose_eye=poses[:, 69:75])
    return poses


@pytest.fixture
def amass_tree(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "amass"
    clips = {
        "cmu": _smplh(root / "CMU" / "01" / "01_01_poses.npz", 120, 120.0, rng),
        "cmu2": _smplh(root / "CMU" / "02" / "02_01_poses.npz", 60, 60.0, rng),
        "static": _smplh(root / "BMLmovi" / "S1" / "still_poses.npz", 30, 30.0, rng, static=True),
        "humaneva": _smplh(root / "HumanEva" / "S1" / "walk_poses.npz", 40, 60.0, rng),
        "ssm": _smplx(root / "SSM" / "20160330" / "punch_stageii.npz", 45, 60.0, rng),
        "trans": _smplh(root / "Transitions_mocap" / "m1" / "jump_poses.npz", 30, 120.0, rng),
    }
    np.savez(root / "CMU" / "01" / "shape.npz", gender=np.array("male"), betas=np.zeros(16))
    np.savez(root / "SSM" / "20160330" / "female_stagei.npz", betas=np.zeros(16))
    # bad files
    good = (root / "CMU" / "01" / "01_01_poses.npz").read_bytes()
    (root / "CMU" / "01" / "01_02_poses.npz").write_bytes(good[: len(good) // 2])  # truncated
    np.savez(root / "CMU" / "01" / "01_03_poses.npz", poses=np.zeros((10, 156)))  # no frame rate
    nan = rng.normal(size=(10, 156))
    nan[4, 7] = np.nan
    (root / "SFU" / "x").mkdir(parents=True)
    np.savez(root / "SFU" / "x" / "nan_poses.npz", poses=nan, mocap_framerate=np.array(30.0))
    return root, clips


def test_split_of_vposer_and_smplx_names():
    assert split_of("HumanEva") == split_of("MPI_HDM05") == split_of("SFU") == split_of("MPI_mosh") == "vald"
    assert split_of("HDM05") == split_of("MoSh") == split_of("humaneva") == "vald"
    assert split_of("Transitions_mocap") == split_of("SSM_synced") == split_of("SSM") == "test"
    assert split_of("CMU") == split_of("BMLrub") == split_of("ACCAD") == "train"


def test_read_smplh_and_smplx(amass_tree):
    root, clips = amass_tree
    c = read_amass_clip(root / "CMU" / "01" / "01_01_poses.npz")
    assert c.fps == 120.0 and c.quat.shape == (120, 21, 4)
    torch.testing.assert_close(c.quat, pose_to_quat(torch.from_numpy(clips["cmu"].astype(np.float32))))
    x = read_amass_clip(root / "SSM" / "20160330" / "punch_stageii.npz")  # pickled keys not touched
    assert x.fps == 60.0 and x.quat.shape == (45, 21, 4) and x.layout.startswith("pose_body")
    torch.testing.assert_close(x.quat, pose_to_quat(torch.from_numpy(clips["ssm"][:, 3:66].astype(np.float32))))


def test_load_motion_reads_smplx_frame_rate_spelling(tmp_path):
    rng = np.random.default_rng(1)
    p = tmp_path / "a.npz"
    poses = rng.normal(0, 0.3, (5, 165))
    np.savez(p, poses=poses, pose_body=poses[:, 3:66], root_orient=poses[:, :3],
             trans=np.zeros((5, 3)), mocap_frame_rate=np.array(120.0))
    assert load_motion(p).fps == 120.0


def test_sample_amass_splits_counts_and_bad_files(amass_tree, tmp_path):
    root, clips = amass_tree
    out = tmp_path / "out"
    summary = sample_amass(root, out, AmassConfig(fps=30.0, dedup_deg=1.0), progress=False)
    # CMU 120 fps x 120 frames -> step 4 -> 30; CMU 60 fps x 60 -> step 2 -> 30; static clip -> 1
    assert summary.counts["CMU"] == {"split": "train", "files": 2, "frames": 180, "kept": 60}
    assert summary.counts["BMLmovi"]["kept"] == 1
    assert summary.counts["HumanEva"] == {"split": "vald", "files": 1, "frames": 40, "kept": 20}
    assert summary.counts["SSM"]["split"] == "test" and summary.counts["SSM"]["kept"] == 23
    assert summary.counts["Transitions_mocap"]["kept"] == 8  # 30 frames, step 4 -> 8
    assert summary.shape_files == 2
    skipped = {s["file"]: s["reason"] for s in summary.skipped}
    assert set(skipped) == {"CMU/01/01_02_poses.npz", "CMU/01/01_03_poses.npz", "SFU/x/nan_poses.npz"}
    assert "not a readable" in skipped["CMU/01/01_02_poses.npz"]
    assert "mocap_framerate" in skipped["CMU/01/01_03_poses.npz"]
    assert "NaN" in skipped["SFU/x/nan_poses.npz"]

    train = load_pose_set(out / "train.npz")
    assert len(train) == 61
    # the first CMU clip, every 4th frame, in order
    exp = pose_to_quat(torch.from_numpy(clips["cmu"][::4].astype(np.float32)))
    first = train.clip_names.index("CMU/01/01_01_poses.npz")
    torch.testing.assert_close(train.quat[train.clip_id == first], exp)
    assert len(load_pose_set(out / "vald.npz")) == 20
    assert len(load_pose_set(out / "test.npz")) == 31
    js = json.loads((out / "summary.json").read_text())
    assert js["splits"]["train"]["kept"] == 61 and js["splits"]["vald"]["path"] == "vald.npz"
    assert len(js["skipped"]) == 3


def test_empty_split_not_written(tmp_path):
    rng = np.random.default_rng(2)
    _smplh(tmp_path / "a" / "CMU" / "01" / "x_poses.npz", 10, 30.0, rng)
    s = sample_amass(tmp_path / "a", tmp_path / "o", progress=False)
    assert (tmp_path / "o" / "train.npz").is_file()
    assert not (tmp_path / "o" / "vald.npz").exists() and s.splits["vald"]["path"] is None
    # an earlier run's split is not left behind as this run's
    _smplh(tmp_path / "b" / "HumanEva" / "S1" / "y_poses.npz", 10, 30.0, rng)
    sample_amass(tmp_path / "b", tmp_path / "o", progress=False)
    assert (tmp_path / "o" / "vald.npz").is_file()
    s = sample_amass(tmp_path / "a", tmp_path / "o", progress=False)
    assert not (tmp_path / "o" / "vald.npz").exists() and s.splits["vald"]["path"] is None


def test_one_dataset_folder_and_output_inside_the_tree(amass_tree, tmp_path):
    """--amass-dir pointing at one dataset's folder files its clips under that dataset (HumanEva is
    vald, not a train dataset called 'S1'); an --out inside the tree is not read as input."""
    root, _ = amass_tree
    s = sample_amass(root / "HumanEva", tmp_path / "he", progress=False)
    assert s.counts["HumanEva"]["split"] == "vald" and (tmp_path / "he" / "vald.npz").is_file()
    inside = root / "sampled"
    first = sample_amass(root, inside, AmassConfig(fps=30.0), progress=False)
    again = sample_amass(root, inside, AmassConfig(fps=30.0), progress=False)
    assert again.counts == first.counts and len(again.skipped) == len(first.skipped) == 3


def test_a_file_in_degrees_is_skipped_with_the_reason(tmp_path):
    rng = np.random.default_rng(3)
    _smplh(tmp_path / "a" / "CMU" / "01" / "ok_poses.npz", 10, 30.0, rng)
    p = tmp_path / "a" / "CMU" / "01" / "deg_poses.npz"
    _smplh(p, 10, 30.0, rng)
    z = dict(np.load(p))
    np.savez(p, **dict(z, poses=np.rad2deg(z["poses"])))
    s = sample_amass(tmp_path / "a", tmp_path / "o", progress=False)
    assert [x["file"] for x in s.skipped] == ["CMU/01/deg_poses.npz"] and "look like degrees" in s.skipped[0]["reason"]
    assert s.splits["train"]["kept"] > 0


def test_fps_none_keeps_all_frames_and_step():
    assert downsample_step(120, 30) == 4 and downsample_step(100, 30) == 3 and downsample_step(24, 30) == 1
    assert downsample_step(120, None) == 1


def test_drop_near_duplicates_keeps_slow_drift():
    # joint 0 turns 0.4 deg per frame: with a 1 deg threshold every 3rd pose is kept
    ang = torch.deg2rad(torch.arange(30) * 0.4)
    q = torch.zeros(30, 21, 4)
    q[..., 0] = 1.0
    q[:, 0, 0] = torch.cos(ang / 2)
    q[:, 0, 3] = torch.sin(ang / 2)
    keep = drop_near_duplicates(q, 1.0)
    assert keep[0] == 0 and keep.tolist() == list(range(0, 30, 3))
    steps = quat_geodesic_angle(q[keep[1:]], q[keep[:-1]]).amax(-1)
    assert bool((torch.rad2deg(steps) >= 1.0 - 1e-4).all())
    assert drop_near_duplicates(q, 0.0).tolist() == list(range(30))
    # sign flips are the same rotation: -q is a duplicate
    q2 = torch.cat((q[:1], -q[:1]))
    assert drop_near_duplicates(q2, 1.0).tolist() == [0]


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        sample_amass(tmp_path / "missing", tmp_path / "o", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .npz files"):
        sample_amass(tmp_path / "empty", tmp_path / "o", progress=False)
    (tmp_path / "bad" / "CMU").mkdir(parents=True)
    np.savez(tmp_path / "bad" / "CMU" / "a_poses.npz", trans=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="none of the 1 .npz files"):
        sample_amass(tmp_path / "bad", tmp_path / "o", progress=False)
    with pytest.raises(KeyError, match="no body poses"):
        read_amass_clip(tmp_path / "bad" / "CMU" / "a_poses.npz")
    with pytest.raises(ValueError, match="fps"):
        AmassConfig(fps=-1)


def test_cli(amass_tree, tmp_path, capsys):
    root, _ = amass_tree
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    args = parser.parse_args(["amass", "--amass-dir", str(root), "--out", str(tmp_path / "o"), "--fps", "0",
                              "--quiet"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "train" in out and "skipped 3 bad file(s)" in out
    js = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert js["counts"]["CMU"]["kept"] == 180  # fps 0 = keep every frame (random poses: no duplicates)


def test_an_amass_folder_is_a_pose_source_as_it_is(amass_tree):
    """Commands that take a folder of motions (data prepare --poses, baseline train, benchmarks'
    --data) read an AMASS subject folder as shipped: its body-shape files are skipped."""
    root, clips = amass_tree
    np.savez(root / "HumanEva" / "S1" / "shape.npz", gender=np.array("male"), betas=np.zeros(16))
    ps = load_pose_set(root / "HumanEva")
    assert len(ps) == len(clips["humaneva"]) and ps.clip_names == ["S1/walk_poses.npz"]
    ps = load_pose_set(root / "SSM")
    assert len(ps) == len(clips["ssm"])
