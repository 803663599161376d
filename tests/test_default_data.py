"""Embedded default pose sets: shipped CMU arrays, subject-disjoint splits, deduplication,
and the ``posendf data default`` build on a generated miniature of ../shared/data."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from posendf_plugin import rotations as R
from posendf_plugin.data.default import (
    CMU_ATTRIBUTION,
    CMU_SPLITS,
    SPLITS,
    DefaultConfig,
    assets_dir,
    CROSS_SOURCE_SPLIT,
    build_default,
    cmu_split_of,
    split_of_subject,
    subject_of_label,
    dedup_consecutive,
    default_pose_set,
    register_cli,
)
from posendf_plugin.data.posesets import load_pose_set
from posendf_plugin.data.rerig import write_rig_bvh
from test_convert import BANDAI_NAMES, CC3_NAMES, smpl_rig_bvh


def test_shipped_pose_sets_load_and_are_compact():
    counts = json.loads((assets_dir() / "cmu_summary.json").read_text())["splits"]
    subjects = {}
    total_bytes = 0
    for split in SPLITS:
        path = assets_dir() / f"cmu_{split}.npz"
        total_bytes += path.stat().st_size
        with np.load(path) as z:
            assert z["quat"].dtype == np.float16
            assert "mocap.cs.cmu.edu" in str(z["source"]) and "NSF EIA-0196217" in str(z["source"])
        ps = default_pose_set(split)
        assert ps.quat.shape == (counts[split]["poses"], 21, 4) and ps.quat.dtype == torch.float32
        assert len(ps) > 1000
        assert torch.allclose(ps.quat.norm(dim=-1), torch.ones(1), atol=2e-3)
        assert bool((ps.quat[..., 0] >= 0).all())
        assert all(n.startswith("cmu-") for n in ps.clip_names)  # never Bandai (CC BY-NC-ND)
        subjects[split] = {subject_of_label(n) for n in ps.clip_names}
        assert int(ps.clip_id.max()) == len(ps.clip_names) - 1
        rigs = {n.split("/")[0] for n in ps.clip_names}
        assert len(rigs) >= (3 if split == "train" else 4), (split, rigs)  # held-out subjects on several rigs
    assert total_bytes < 7e6
    # subject-disjoint, as declared; unknown subjects only in train
    assert not (subjects["train"] & subjects["val"]) and not (subjects["train"] & subjects["test"])
    assert not (subjects["val"] & subjects["test"])
    for split, subs in subjects.items():
        assert all(split_of_subject(s) == split for s in subs)
    assert None not in subjects["val"] | subjects["test"]
    assert not any(n.startswith("cmu-amc/") for n in default_pose_set("train").clip_names)  # a rig unseen in training
    card = (assets_dir() / "CMU_POSESETS_CARD.md").read_text()
    assert CMU_ATTRIBUTION in card
    for split in SPLITS:
        assert f"{counts[split]['poses']:,}" in card


def test_default_pose_set_bad_split():
    with pytest.raises(ValueError, match="split must be one of"):
        default_pose_set("validation")


def test_dedup_consecutive_drops_small_moves():
    deg = np.array([0, 1, 2, 3, 4.9, 5.1, 6, 7, 20, 20.5, 30])
    aa = np.zeros((len(deg), 21, 3))
    aa[:, 4, 0] = np.deg2rad(deg)
    q = R.axis_angle_to_quat(torch.from_numpy(aa))
    assert dedup_consecutive(q, 5.0).tolist() == [0, 5, 8, 10]
    assert dedup_consecutive(q, 0.0).tolist() == list(range(len(deg)))
    assert dedup_consecutive(q[:0], 5.0).tolist() == []
    # sign flips (q and -q are the same rotation) are not motion
    q2 = q.clone()
    q2[1::2] *= -1
    assert dedup_consecutive(q2, 5.0).tolist() == [0, 5, 8, 10]


def test_split_rules():
    assert cmu_split_of("002_05") == "test" and cmu_split_of("006_13") == "val" and cmu_split_of("005_01") == "train"
    assert cmu_split_of("099_01") == "train" and cmu_split_of("walk") is None  # unknown subjects train
    for s, split in CMU_SPLITS.items():
        assert split_of_subject(str(s)) == split
    assert split_of_subject("60/61") == "train" and split_of_subject(None) == "train"
    with pytest.raises(ValueError, match="different splits"):
        split_of_subject("2/6")
    assert subject_of_label("cmu-std/test_jumping_1") == "49" and subject_of_label("cmu-std/train_running_2") is None
    assert subject_of_label("cmu-daz/salsa/salsa_03") == "60/61" and subject_of_label("cmu-daz/walks/16_12") == "16"
    assert subject_of_label("cmu-amc/35_07") == "35" and subject_of_label("cmu-cc3/002_01") == "2"


@pytest.fixture(scope="module")
def mini_shared(tmp_path_factory):
    """A miniature ../shared/data: CMU clips of four subjects on two rigs and Bandai-named clips."""
    root = tmp_path_factory.mktemp("shared") / "data"
    ps = default_pose_set("val").quat.double()
    for k, name in enumerate(("001_01", "005_02", "006_01", "002_03")):
        smpl_rig_bvh(root / "cmu-cc3" / f"{name}.bvh.gz", ps[k * 60:(k + 1) * 60], CC3_NAMES, fps=60.0)
    write_rig_bvh(root / "cmu-daz" / "walks" / "16_12.bvh.gz", ps[240:300], "four-spine", roll_seed=1)
    for k, style in enumerate(("active", "angry", "old", "tired", "happy")):
        smpl_rig_bvh(root / "bandai" / "dataset-1" / f"dataset-1_walk_{style}_001.bvh.gz", ps[300 + 20 * k:320 + 20 * k],
                     BANDAI_NAMES, positions_on_all=True)
    (root / "cmu-cc3" / "003_01.bvh.gz").write_bytes(b"\x1f\x8b broken")  # a bad file is skipped
    return root


def test_build_default_on_miniature(mini_shared, tmp_path):
    out = tmp_path / "out"
    s = build_default(mini_shared, out, DefaultConfig(fps=30.0, min_angle_deg=5.0), progress=False)
    assert [Path(f["file"]).name for f in s["failed"]] == ["003_01.bvh.gz"]
    sp = s["splits"]
    assert sp["train"]["clips"] == 2 and sp["val"]["clips"] == 2 and sp["test"]["clips"] == 1
    assert sp["val"]["rigs"]["daz"]["clips"] == 1 and sp["val"]["subjects"] == ["16", "6"]
    assert sp[CROSS_SOURCE_SPLIT]["clips"] == 5  # Bandai: only the cross-source split
    for split in SPLITS + (CROSS_SOURCE_SPLIT,):
        ps = load_pose_set(out / f"{split}.npz")
        assert len(ps) == sp[split]["poses"] <= sp[split]["frames_before_dedup"]
        assert all(n.startswith("bandai/") == (split == CROSS_SOURCE_SPLIT) for n in ps.clip_names)
    assert "mocap.cs.cmu.edu" in load_pose_set(out / "train.npz").source
    assert "CC BY-NC-ND" in load_pose_set(out / f"{CROSS_SOURCE_SPLIT}.npz").source
    # 60 fps clips were resampled to 30 fps before deduplication (the generated walk is 30 fps)
    assert sp["test"]["frames_before_dedup"] == 30
    assert json.loads((out / "summary.json").read_text())["splits"] == sp


def test_cli_default(mini_shared, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    register_cli(sub)
    out = tmp_path / "cli"
    args = parser.parse_args(["default", "--shared", str(mini_shared), "--out", str(out), "--no-bandai"])
    assert args.func(args) == 1  # the broken clip is reported
    text = capsys.readouterr().out
    assert "train:" in text and CROSS_SOURCE_SPLIT not in text
    assert (out / "train.npz").is_file()
    args = parser.parse_args(["default", "--shared", str(tmp_path / "nope"), "--out", str(out)])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        args.func(args)
