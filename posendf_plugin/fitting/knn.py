"""Nearest-neighbour completion: the start that :func:`~posendf_plugin.fitting.completion.complete_poses`
uses by default (``init="knn"``).

Each pose's unknown joints are set to the chordal mean (:func:`posendf_plugin.rotations.quat_mean`)
of those joints over the ``k`` reference poses nearest in the pose's *known* joints (distance: the
sum over known joints of the geodesic angle). With the embedded training poses as the reference this
is a nonparametric estimate of the conditional mean of the unknown joints given the known ones —
on the CMU validation split 8.62° / 9.19° hidden-joint error at 25 % / 50 % hidden against 13.27° /
13.39° for the mean-pose start, and on a motion style left out of the reference (the modern dance,
reference = the training poses without it) 22.33° / 23.87° against 25.11° / 26.02°
(benchmarks/RESULTS.md, *Completion*).
"""
from __future__ import annotations

from typing import Optional

import torch

from .. import rotations as R
from .._checks import check_shape, is_count
from ..skeleton import NUM_BODY_JOINTS

__all__ = ["DEFAULT_KNN_K", "knn_fill"]

#: neighbours averaged by :func:`knn_fill`; chosen on the CMU validation split and the held-out
#: dance (``python benchmarks/completion_reference.py --method train-knn --k 5,20,50,200``:
#: 50 and 200 tie, 20 is 0.2-0.3° worse, 5 over 1°)
DEFAULT_KNN_K = 50


def knn_fill(poses: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor, k: int = DEFAULT_KNN_K,
             chunk: int = 16, progress: bool = False) -> torch.Tensor:
    """Unknown joints of ``poses`` filled from their ``k`` nearest reference poses.

    Args:
        poses: ``(N, 21, 4)`` unit quaternions ``(w, x, y, z)``; the values of unknown joints are
            ignored (they may be NaN).
        mask: ``(N, 21)`` bool, True = unknown.
        reference: ``(M, 21, 4)`` unit quaternions, ``M >= 1`` (e.g. the embedded training poses).
        k: neighbours averaged (``min(k, M)`` are used: a ``k`` beyond the reference averages all of it).
        chunk: poses compared with the whole reference at once (memory ``chunk × M × 21`` float32).
        progress: show a progress bar.
    Returns:
        ``(N, 21, 4)``: known joints as given, unknown ones the chordal mean of the neighbours' joints
        (``w >= 0``).
        A pose with no known joint gets the mean of the whole reference.
    """
    check_shape(poses, (None, NUM_BODY_JOINTS, 4), "poses")
    check_shape(mask, (None, NUM_BODY_JOINTS), "mask")
    check_shape(reference, (None, NUM_BODY_JOINTS, 4), "reference")
    if len(mask) != len(poses):
        raise ValueError(f"mask has {len(mask)} rows for {len(poses)} poses")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = unknown), got {mask.dtype}")
    if len(reference) == 0:
        raise ValueError("the reference pose set is empty")
    if not is_count(k, 1):
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    ref = reference.to(poses.device, torch.float32)
    ref_t = ref.permute(1, 2, 0).contiguous()  # (21, 4, M)
    kk = min(int(k), len(ref))
    out = poses.clone()
    whole: Optional[torch.Tensor] = None
    from tqdm.auto import tqdm

    for a in tqdm(range(0, len(poses), chunk), desc="nearest poses", disable=not progress):
        # unknown joints take no part in the distance: any value there (even NaN) is replaced
        q = torch.where(mask[a:a + chunk, :, None], poses.new_tensor([1.0, 0.0, 0.0, 0.0]),
                        poses[a:a + chunk]).to(torch.float32)
        known = (~mask[a:a + chunk]).to(torch.float32)  # (B, 21)
        # per-joint angle 2·acos|⟨q, r⟩| (float32: ranks neighbours to ~0.05°), summed over known joints
        ang = torch.einsum("bjc,jcm->bjm", q, ref_t).abs_().clamp_(max=1.0).acos_()  # (B, 21, M)
        dist = torch.einsum("bjm,bj->bm", ang, known)  # (B, M); the factor 2 does not change the ranking
        idx = dist.topk(kk, dim=1, largest=False).indices  # (B, kk)
        # w >= 0, as every pose read (to_body_quat): a start's axis-angle is then the short way round
        filled = R.quat_canonical(R.quat_mean(ref[idx], dim=1)).to(poses.dtype)  # (B, 21, 4)
        out[a:a + chunk] = torch.where(mask[a:a + chunk, :, None], filled, out[a:a + chunk])
        blind = ~known.bool().any(-1)
        if bool(blind.any()):
            if whole is None:
                whole = R.quat_canonical(R.quat_mean(ref, dim=0)).to(poses.dtype)
            out[a:a + chunk][blind] = whole
    return out
