"""Pose-set augmentation by recombining body parts of different data poses.

A training set holds the arm, leg and trunk postures its people made, but mostly in the
combinations their motions made them. A new person or motion style (a dance, a playground)
combines postures the set knows in new ways, and a distance field trained on the set scores
those real poses as far from the data. :func:`mix_body_parts` adds poses made of the parts of
two data poses — the legs of one and the arms of another, say — so the field learns each part's
postures rather than only the set's combinations of them.

Joint rotations are local (relative to the parent joint), so a part keeps its shape when moved
to another pose: an arm group from pose B hangs from pose A's chest as it hung from B's.
Quaternions are (w, x, y, z) (:mod:`posendf_plugin.rotations`).
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch

from .._checks import check_shape
from ..skeleton import BODY_JOINT_NAMES, NUM_BODY_JOINTS

__all__ = ["BODY_PARTS", "mix_body_parts", "with_part_mixes"]

#: the parts :func:`mix_body_parts` exchanges (names of :data:`posendf_plugin.skeleton.BODY_JOINT_NAMES`);
#: each side's limb stays with the other side's (a stance, a two-handed gesture), and the
#: trunk carries the neck and head
BODY_PARTS: Dict[str, Tuple[str, ...]] = {
    "legs": ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot", "right_foot"),
    "arms": ("left_collar", "right_collar", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
             "left_wrist", "right_wrist"),
    "trunk": ("spine1", "spine2", "spine3", "neck", "head"),
}


def _part_masks(parts: Mapping[str, Sequence[str]]) -> torch.Tensor:
    """``(P, 21)`` bool: which body joints each part holds; every joint in exactly one part."""
    index = {n: i for i, n in enumerate(BODY_JOINT_NAMES)}
    masks = torch.zeros(len(parts), NUM_BODY_JOINTS, dtype=torch.bool)
    for p, names in enumerate(parts.values()):
        for n in names:
            if n not in index:
                raise ValueError(f"unknown body joint {n!r} in part {list(parts)[p]!r}; joints: {', '.join(BODY_JOINT_NAMES)}")
            masks[p, index[n]] = True
    if not bool((masks.sum(0) == 1).all()):
        raise ValueError("the parts must hold every body joint exactly once")
    return masks


def mix_body_parts(
    q: torch.Tensor, n: int, generator: torch.Generator, parts: Optional[Mapping[str, Sequence[str]]] = None
) -> torch.Tensor:
    """``n`` new poses, each made of two different poses of ``q``: the joints of a random
    non-empty proper subset of ``parts`` (default :data:`BODY_PARTS`) from the second, the rest
    from the first.

    Args:
        q: ``(N, 21, 4)`` data poses (N ≥ 2).
        n: number of poses to make.
        generator: seeded torch generator (the same seed gives the same poses).
        parts: part name -> body joint names; every joint in exactly one part, ≥ 2 parts.
    Returns:
        ``(n, 21, 4)`` poses, dtype of ``q``.
    """
    check_shape(q, (None, NUM_BODY_JOINTS, 4), "poses")
    if q.shape[0] < 2:
        raise ValueError(f"mixing body parts needs at least 2 poses, got {q.shape[0]}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    masks = _part_masks(BODY_PARTS if parts is None else parts)
    p = masks.shape[0]
    if p < 2:
        raise ValueError("mixing needs at least 2 parts")
    a = torch.randint(q.shape[0], (n,), generator=generator)
    b = (a + torch.randint(1, q.shape[0], (n,), generator=generator)) % q.shape[0]  # b != a
    # a random non-empty proper subset of the parts: a code in 1 .. 2^P - 2
    code = torch.randint(1, 2 ** p - 1, (n,), generator=generator)
    take = ((code[:, None] >> torch.arange(p)) & 1).bool()  # (n, P)
    from_b = (take.float() @ masks.float()).bool()  # (n, 21)
    return torch.where(from_b[..., None], q[b], q[a])


def with_part_mixes(q: torch.Tensor, ratio: float, seed: int = 0) -> torch.Tensor:
    """``q`` followed by ``round(ratio · N)`` :func:`mix_body_parts` poses of it
    (``PrepareConfig.part_mix``; seeded, so a prepared data set can be remade exactly)."""
    if not ratio >= 0:
        raise ValueError(f"part_mix must be >= 0, got {ratio}")
    n = int(round(ratio * q.shape[0]))
    if n == 0:
        return q
    return torch.cat((q, mix_body_parts(q, n, torch.Generator().manual_seed(seed))))
