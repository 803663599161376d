"""Body-part recombination (``posendf_plugin.data.augment``) and ``PrepareConfig.part_mix``."""
from __future__ import annotations

import math

import pytest
import torch

from posendf_plugin.data.augment import BODY_PARTS, mix_body_parts, with_part_mixes
from posendf_plugin.data.labels import SearchConfig, brute_force_knn
from posendf_plugin.data.posesets import load_pose_set, save_pose_set
from posendf_plugin.data.prepare import PrepareConfig, load_training_data, prepare_training_data
from posendf_plugin.rotations import axis_angle_to_quat, quat_canonical
from posendf_plugin.skeleton import BODY_JOINT_NAMES


def _poses(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return quat_canonical(axis_angle_to_quat(0.5 * torch.randn(n, 21, 3, generator=g)))


def test_each_mix_takes_whole_parts_from_two_different_poses():
    q = _poses(50)
    mixed = mix_body_parts(q, 400, torch.Generator().manual_seed(0))
    assert mixed.shape == (400, 21, 4) and mixed.dtype == q.dtype
    index = {n: i for i, n in enumerate(BODY_JOINT_NAMES)}
    parts = [[index[n] for n in names] for names in BODY_PARTS.values()]
    seen_subsets = set()
    for m in mixed:
        # every part is one data pose's part, and the pose is not a data pose itself
        sources = []
        for joints in parts:
            hits = [i for i in range(len(q)) if torch.equal(m[joints], q[i][joints])]
            assert hits, "a part that no data pose has"
            sources.append(set(hits))
        assert not any(torch.equal(m, x) for x in q)
        first = sources[0]
        seen_subsets.add(tuple(bool(s & first) for s in sources))
    assert len(seen_subsets) == 2 ** (len(parts) - 1) - 1  # every split of the parts into two poses occurs
    # deterministic with the seed, different with another
    assert torch.equal(mixed, mix_body_parts(q, 400, torch.Generator().manual_seed(0)))
    assert not torch.equal(mixed, mix_body_parts(q, 400, torch.Generator().manual_seed(1)))


def test_with_part_mixes_and_bad_arguments():
    q = _poses(10)
    assert with_part_mixes(q, 0.0) is q
    out = with_part_mixes(q, 0.5, seed=3)
    assert out.shape == (15, 21, 4) and torch.equal(out[:10], q)
    with pytest.raises(ValueError, match="at least 2 poses"):
        mix_body_parts(q[:1], 3, torch.Generator())
    with pytest.raises(ValueError, match="unknown body joint 'tail'"):
        mix_body_parts(q, 3, torch.Generator(), parts={"a": ("tail",), "b": BODY_JOINT_NAMES})
    with pytest.raises(ValueError, match="exactly once"):
        mix_body_parts(q, 3, torch.Generator(), parts={"a": BODY_JOINT_NAMES[:3], "b": BODY_JOINT_NAMES[:10]})
    for bad in (-0.1, 11, True, "half"):
        with pytest.raises(ValueError, match="part_mix must be"):
            PrepareConfig(part_mix=bad)


def test_prepare_labels_against_the_mixed_reference(tmp_path):
    """``part_mix`` adds the mixed poses to the pose set and the reference set (before the mirror
    images): labels are brute-force k-nearest means over that set; 0 keeps old data's hash."""
    q = _poses(300)
    path = tmp_path / "poses.npz"
    save_pose_set(path, q)
    base = dict(n_samples=400, chunk_size=200, recall_queries=20, k=3, search=SearchConfig(index="flat", candidates=64))
    mixed = prepare_training_data(path, tmp_path / "m", PrepareConfig(part_mix=0.5, **base), seed=2, progress=False)
    plain = prepare_training_data(path, tmp_path / "p", PrepareConfig(**base), seed=2, progress=False)
    assert mixed.manifest["poses"]["n"] == 450 and plain.manifest["poses"]["n"] == 300
    assert mixed.manifest["config"]["part_mix"] == 0.5 and "part_mix" not in plain.manifest["config"]
    ref = with_part_mixes(load_pose_set(path).quat.to(torch.float32), 0.5, seed=2)
    quat, dist, clean = load_training_data(tmp_path / "m", clean_mask=True)
    true_d, _ = brute_force_knn(quat[~clean], ref, "posendf", 3)
    assert torch.allclose(dist[~clean].double(), true_d.mean(1), atol=1e-4)
    assert math.isclose(mixed.manifest["recall"]["recall"], 1.0)
