"""Sharded ``data prepare`` (``--shard K/N`` + ``--merge``) and chunk provenance checks."""
from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from posendf_plugin.data.labels import CandidateIndex, SearchConfig
from posendf_plugin.data.posesets import save_pose_set
from posendf_plugin.data.prepare import (
    PrepareConfig,
    load_training_data,
    merge_shards,
    parse_shard,
    prepare_training_data,
    register_cli,
    shard_chunks,
)
from posendf_plugin.rotations import axis_angle_to_quat, quat_canonical

KEYS = ("quat", "dist", "sigma", "origin", "provenance")
#: manifest entries that differ between runs by nature (wall times, how the run was split)
VOLATILE = ("timings", "merged_from_shards", "chunks_written_last_run")


def _poses(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, n)[:, None, None]
    aa = 0.4 * torch.randn(1, 21, 3, generator=g) + 0.5 * torch.randn(1, 21, 3, generator=g) * torch.sin(
        2 * math.pi * 3 * t + torch.rand(1, 21, 3, generator=g) * 6)
    return quat_canonical(axis_angle_to_quat(aa))


CFG = PrepareConfig(n_samples=500, chunk_size=100, recall_queries=40, search=SearchConfig(index="flat", candidates=64))


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    a, b = root / "poses.npz", root / "other.npz"
    save_pose_set(a, _poses(300))
    save_pose_set(b, _poses(300, seed=7))
    full = prepare_training_data(a, root / "full", CFG, seed=3, progress=False)
    return root, a, b, full


def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _shards(poses, out, n, seed=3, cfg=CFG):
    return [prepare_training_data(poses, out, cfg, seed=seed, progress=False, shard=(k, n)) for k in range(n)]


def test_shard_parsing_and_split():
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "-1/3", "a/b", "3", "1/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    parts = [shard_chunks(11, (k, 4)) for k in range(4)]
    assert sorted(sum(parts, [])) == list(range(11)) and parts[1] == [1, 5, 9]


def test_shards_merge_bit_for_bit(sets, tmp_path):
    root, poses, _, full = sets
    out = tmp_path / "sharded"
    res = _shards(poses, out, 3)
    assert [r.n_chunks for r in res] == [2, 2, 1] and sum(r.written for r in res) == 5
    assert res[0].recall == full.recall and res[1].recall is None  # shard 0 measures the recall
    with pytest.raises(ValueError, match="--merge"):  # not merged yet: the loader says what to do
        load_training_data(out)
    merged = merge_shards(out)
    for i in range(5):
        a, b = np.load(root / "full" / f"chunk_{i:05d}.npz"), np.load(out / f"chunk_{i:05d}.npz")
        assert sorted(a.files) == sorted(b.files) == sorted(KEYS)
        for key in KEYS:
            np.testing.assert_array_equal(a[key], b[key])
    m_full = json.loads((root / "full" / "manifest.json").read_text())
    m_merged = json.loads((out / "manifest.json").read_text())
    for m in (m_full, m_merged):
        for k in VOLATILE + ("poses", "reference"):
            m.pop(k, None)
    assert m_full == m_merged and merged.manifest["merged_from_shards"] == 3
    qa, da = load_training_data(root / "full")
    qb, db = load_training_data(out)
    assert torch.equal(qa, qb) and torch.equal(da, db)
    # resumable: a lost chunk is rewritten by its own shard only, identical
    (out / "chunk_00004.npz").unlink()
    again = prepare_training_data(poses, out, CFG, seed=3, progress=False, shard=(1, 3))
    assert (again.written, again.skipped) == (1, 1)
    np.testing.assert_array_equal(np.load(out / "chunk_00004.npz")["dist"], da[400:].numpy())


def test_bad_shards_are_refused_and_nothing_is_lost(sets, tmp_path):
    root, poses, other, _ = sets
    out = tmp_path / "s"
    prepare_training_data(poses, out, CFG, seed=3, progress=False, shard=(0, 2))
    with pytest.raises(ValueError, match=r"missing shard\(s\) 1/2.*--shard 1/2"):
        merge_shards(out)
    before = _snapshot(out)
    with pytest.raises(ValueError, match=r"different settings \(differs in \['seed'\]\)"):
        prepare_training_data(poses, out, CFG, seed=4, progress=False, shard=(1, 2))
    with pytest.raises(ValueError, match="2-way split.*--shard K/2"):
        prepare_training_data(poses, out, CFG, seed=3, progress=False, shard=(1, 3))
    with pytest.raises(ValueError, match=r"poses.sha1"):
        prepare_training_data(other, out, CFG, seed=3, progress=False, shard=(1, 2))
    assert _snapshot(out) == before  # refused before writing anything
    # a shard made elsewhere with another seed, copied in: merge names it
    odd = tmp_path / "odd"
    prepare_training_data(poses, odd, CFG, seed=9, progress=False, shard=(1, 2))
    shutil.copy(odd / "shard_00001-of-00002.json", out / "shard_00001-of-00002.json")
    with pytest.raises(ValueError, match=r"shard_00001-of-00002.json was made with different settings.*seed"):
        merge_shards(out)
    # a duplicated (renamed) shard manifest
    shutil.copy(out / "shard_00000-of-00002.json", out / "shard_00001-of-00002.json")
    with pytest.raises(ValueError, match="says it is shard 0/2"):
        merge_shards(out)
    # the real shard 1, then one of its chunks swapped for a chunk of another data set
    (out / "shard_00001-of-00002.json").unlink()
    prepare_training_data(poses, out, CFG, seed=3, progress=False, shard=(1, 2))
    shutil.copy(odd / "chunk_00001.npz", out / "chunk_00001.npz")
    with pytest.raises(ValueError, match="chunk_00001.npz belongs to another data set; re-run shard 1/2"):
        merge_shards(out)
    # an unfinished shard
    prepare_training_data(poses, out / "x", CFG, seed=3, progress=False, shard=(0, 1))
    m = json.loads((out / "x" / "shard_00000-of-00001.json").read_text())
    m["status"] = "running"
    (out / "x" / "shard_00000-of-00001.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match=r"shard\(s\) 0/1 not complete"):
        merge_shards(out / "x")
    with pytest.raises(ValueError, match="no shard manifests"):
        merge_shards(root / "full")
    assert not (out / "manifest.json").exists()


def test_chunk_provenance_guards_reuse(sets, tmp_path):
    """Issue 17: chunks of another data set next to an unreadable manifest are not reused."""
    root, poses, other, full = sets
    out = tmp_path / "p"
    shutil.copytree(root / "full", out)
    (out / "manifest.json").write_text("{ not json")
    before = _snapshot(out)
    with pytest.raises(ValueError, match="belong.* to another data set.*nothing was changed"):
        prepare_training_data(other, out, CFG, seed=5, progress=False)
    assert _snapshot(out) == before
    # the same settings: the chunks are verified by their provenance and kept
    r = prepare_training_data(poses, out, CFG, seed=3, progress=False)
    assert (r.written, r.skipped) == (0, 5)
    # a chunk without a provenance record and no manifest to vouch for it: refused, kept
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    d = dict(np.load(root / "full" / "chunk_00000.npz"))
    d.pop("provenance")
    np.savez(legacy / "chunk_00000.npz", **d)
    with pytest.raises(ValueError, match="chunk_00000.npz belong"):
        prepare_training_data(poses, legacy, CFG, seed=3, progress=False)
    assert sorted(p.name for p in legacy.iterdir()) == ["chunk_00000.npz"]
    # the loader checks chunk names and provenance against the manifest
    m = json.loads((root / "full" / "manifest.json").read_text())
    bad = tmp_path / "bad"
    shutil.copytree(root / "full", bad)
    (bad / "manifest.json").write_text(json.dumps({**m, "chunks": ["../full/chunk_00000.npz"]}))
    with pytest.raises(ValueError, match="file names inside"):
        load_training_data(bad)
    (bad / "manifest.json").write_text(json.dumps({**m, "settings_sha1": "0" * 40}))
    with pytest.raises(ValueError, match="another data set"):
        load_training_data(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_cuda_without_cuda_is_refused(sets, tmp_path, capsys):
    _, poses, _, _ = sets
    with pytest.raises(ValueError, match="--device cuda: CUDA is not available.*--device cpu"):
        CandidateIndex(_poses(50), SearchConfig(index="flat"), device="cuda")
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    args = parser.parse_args(["prepare", "--poses", str(poses), "--out", str(tmp_path / "o"), "--device", "cuda"])
    with pytest.raises(ValueError, match="CUDA is not available"):
        args.func(args)
    assert not (tmp_path / "o").exists()


def test_cli_shard_and_merge(sets, tmp_path, capsys):
    _, poses, _, _ = sets
    cfg = tmp_path / "c.yaml"
    cfg.write_text("n_samples: 120\nchunk_size: 40\nrecall_queries: 10\nsearch:\n  candidates: 16\n")
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())

    def run(*argv):
        args = parser.parse_args(["prepare", *argv])
        return args.func(args)

    out = tmp_path / "o"
    for k in range(2):
        assert run("--poses", str(poses), "--out", str(out), "--config", str(cfg), "--shard", f"{k}/2", "--quiet") == 0
    assert "--merge" in capsys.readouterr().out
    with pytest.raises(ValueError, match="takes no --poses"):
        run("--merge", str(out), "--poses", str(poses))
    with pytest.raises(ValueError, match="--poses and --out are required"):
        run("--out", str(out))
    assert run("--merge", str(out)) == 0
    assert "merged from 2 shards" in capsys.readouterr().out
    assert load_training_data(out)[0].shape == (120, 21, 4)
