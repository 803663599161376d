"""2D/3D keypoint conventions (OpenPose BODY_25, COCO-17) and how to get them from a body model.

Keypoints are taken from the 24 SMPL joints plus a few mesh vertices:

* Body joints (shoulders, elbows, wrists, knees, ankles, hips, neck, mid-hip) are SMPL joints.
* Nose, eyes, ears, big/small toes and heels are mesh vertices, with the vertex ids that
  ``smplx`` (``smplx.vertex_ids.vertex_ids``), SMPLify-X and SPIN use: the ``"smplh"`` table for
  SMPL and SMPL+H (same topology), the ``"smplx"`` table for SMPL-X. The embedded procedural
  body model (:mod:`posendf_plugin.bodygen`) places the same SMPL vertex ids at the matching spots
  of its own mesh (nearest vertex to fixed offsets from the head/foot joints), so it uses the
  ``"smpl"`` table.

Approximate correspondences (:data:`APPROXIMATE_KEYPOINTS`): a detector's keypoint and the body
model's point are not the same anatomical landmark for

* ``MidHip``, ``LHip``, ``RHip`` (BODY_25) / ``left_hip``, ``right_hip`` (COCO): SMPL hip joints are
  the femoral heads, higher and closer together than the hips annotators/detectors mark; SMPLify
  and SPIN down-weight or ignore them for this reason.
* ``Neck`` (BODY_25): OpenPose's neck is near the midpoint of the shoulders; SMPL's neck joint
  (12) sits higher, at the base of the skull.
* On the procedural model, every vertex keypoint (face, toes, heels) is approximate by
  construction.

Arrays are ``(..., K, 3)`` (3D points, or 2D points + confidence in the conversion helpers).
"""
from __future__ import annotations

from typing import Dict, FrozenSet, List, Tuple

import torch

from ._checks import check_shape

__all__ = [
    "OPENPOSE25_NAMES",
    "COCO17_NAMES",
    "OPENPOSE25_EDGES",
    "COCO17_EDGES",
    "KEYPOINT_FORMATS",
    "APPROXIMATE_KEYPOINTS",
    "MODEL_KINDS",
    "COCO17_TO_OPENPOSE25",
    "keypoint_names",
    "keypoint_edges",
    "keypoint_vertex_ids",
    "keypoint_sources",
    "keypoints_from_joints",
    "keypoints_from_output",
    "coco17_to_openpose25",
    "openpose25_to_coco17",
]

OPENPOSE25_NAMES: Tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
    "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)
COCO17_NAMES: Tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
#: Limbs for drawing (pairs of keypoint indices), as in OpenPose's BODY_25 renderer.
OPENPOSE25_EDGES: Tuple[Tuple[int, int], ...] = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12),
    (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20),
    (14, 21), (11, 22), (22, 23), (11, 24),
)
#: Limbs for drawing, the COCO keypoint skeleton (0-based).
COCO17_EDGES: Tuple[Tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
KEYPOINT_FORMATS: Tuple[str, ...] = ("openpose25", "coco17")
#: ``"smpl"`` covers SMPL, SMPL+H and the procedural stand-in (SMPL vertex ids).
MODEL_KINDS: Tuple[str, ...] = ("smpl", "smplh", "smplx")
APPROXIMATE_KEYPOINTS: Dict[str, FrozenSet[str]] = {
    "openpose25": frozenset({"MidHip", "LHip", "RHip", "Neck"}),
    "coco17": frozenset({"left_hip", "right_hip"}),
}
#: For each COCO-17 keypoint, its index in BODY_25.
COCO17_TO_OPENPOSE25: Tuple[int, ...] = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)

# Source of each keypoint: an SMPL joint index (int) or a vertex-keypoint name (str, a key of
# smplx's vertex_ids tables).
_SOURCES: Dict[str, Tuple[object, ...]] = {
    "openpose25": (
        "nose", 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7, "reye", "leye", "rear", "lear",
        "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
    ),
    "coco17": ("nose", "leye", "reye", "lear", "rear", 16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8),
}
_VERTEX_NAMES = ("nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel",
                 "RBigToe", "RSmallToe", "RHeel")


def _check_fmt(fmt: str) -> str:
    if fmt not in KEYPOINT_FORMATS:
        raise ValueError(f"unknown keypoint format {fmt!r}; use one of {list(KEYPOINT_FORMATS)}")
    return fmt


def _check_kind(model_kind: str) -> str:
    kind = str(model_kind).lower()
    if kind not in MODEL_KINDS:
        raise ValueError(
            f"unknown body model kind {model_kind!r}; use one of {list(MODEL_KINDS)} "
            "('smpl' also covers the embedded procedural model)"
        )
    return kind


def keypoint_names(fmt: str) -> Tuple[str, ...]:
    """Names of the keypoints of ``fmt`` (``"openpose25"`` or ``"coco17"``), in order."""
    return OPENPOSE25_NAMES if _check_fmt(fmt) == "openpose25" else COCO17_NAMES


def keypoint_edges(fmt: str) -> Tuple[Tuple[int, int], ...]:
    """Skeleton edges (index pairs) for drawing keypoints of ``fmt``."""
    return OPENPOSE25_EDGES if _check_fmt(fmt) == "openpose25" else COCO17_EDGES


def keypoint_vertex_ids(model_kind: str) -> Dict[str, int]:
    """Vertex ids of the nose, eyes, ears, toes and heels for ``model_kind``.

    The values are those of ``smplx.vertex_ids.vertex_ids`` (``"smplh"`` for SMPL / SMPL+H /
    the procedural model, ``"smplx"`` for SMPL-X), as used by SMPLify-X and SPIN.
    """
    from smplx.vertex_ids import vertex_ids as _ids

    table = _ids["smplx" if _check_kind(model_kind) == "smplx" else "smplh"]
    return {name: int(table[name]) for name in _VERTEX_NAMES}


def keypoint_sources(fmt: str, model_kind: str = "smpl") -> List[Tuple[str, int]]:
    """Where each keypoint comes from: ``("joint", smpl_joint_index)`` or ``("vertex", vertex_id)``."""
    ids = keypoint_vertex_ids(model_kind)
    return [("joint", s) if isinstance(s, int) else ("vertex", ids[s]) for s in _SOURCES[_check_fmt(fmt)]]


def keypoints_from_joints(
    joints: torch.Tensor, vertices: torch.Tensor, fmt: str = "openpose25", model_kind: str = "smpl"
) -> torch.Tensor:
    """Keypoints from SMPL joints and mesh vertices.

    Args:
        joints: ``(..., 24, 3)`` SMPL joints (posed).
        vertices: ``(..., V, 3)`` posed mesh vertices, same leading dims.
        fmt: ``"openpose25"`` or ``"coco17"``.
        model_kind: ``"smpl"`` (SMPL, SMPL+H, procedural), ``"smplh"`` or ``"smplx"``.
    Returns:
        ``(..., K, 3)`` keypoints, K = 25 or 17.
    """
    check_shape(joints, ("*", 24, 3), "joints")
    check_shape(vertices, ("*", None, 3), "vertices")
    sources = keypoint_sources(fmt, model_kind)
    vids = [i for kind, i in sources if kind == "vertex"]
    if vids and max(vids) >= vertices.shape[-2]:
        raise ValueError(
            f"vertices has {vertices.shape[-2]} vertices but the {model_kind!r} keypoint vertex ids "
            f"go up to {max(vids)}; pass the matching model_kind ('smplx' for SMPL-X meshes)"
        )
    if joints.shape[:-2] != vertices.shape[:-2]:
        raise ValueError(
            f"joints {tuple(joints.shape)} and vertices {tuple(vertices.shape)} must have the same "
            "leading (batch) dimensions"
        )
    pool = torch.cat((joints, vertices[..., vids, :]), dim=-2)
    index, vpos = [], 0
    for kind, i in sources:
        if kind == "joint":
            index.append(i)
        else:
            index.append(24 + vpos)
            vpos += 1
    return pool[..., torch.as_tensor(index, device=pool.device), :]


def keypoints_from_output(output, fmt: str = "openpose25", model_kind: str | None = None) -> torch.Tensor:
    """Keypoints ``(..., K, 3)`` from a body-model output.

    ``output`` needs ``joints`` ``(..., 24, 3)`` and ``vertices`` ``(..., V, 3)`` (as
    :class:`posendf_plugin.body_model.BodyOutput` has); ``model_kind`` defaults to
    ``output.model_kind``.
    """
    if model_kind is None:
        model_kind = getattr(output, "model_kind", None)
        if model_kind is None:
            raise ValueError("model_kind is required when the output does not carry one "
                             f"(one of {list(MODEL_KINDS)})")
    for attr in ("joints", "vertices"):
        if getattr(output, attr, None) is None:
            raise ValueError(f"output has no {attr}; keypoints need the 24 SMPL joints and the vertices")
    return keypoints_from_joints(output.joints, output.vertices, fmt, model_kind)


def coco17_to_openpose25(kp: torch.Tensor) -> torch.Tensor:
    """COCO-17 keypoints ``(..., 17, C)`` to BODY_25 ``(..., 25, C)``.

    ``Neck`` and ``MidHip`` are the midpoints of the shoulders / hips; if ``C`` is 3 (x, y,
    confidence) their confidence is the smaller of the two, and 0 when either is missing. Feet
    keypoints (toes, heels), which COCO lacks, are all zeros (confidence 0).
    """
    check_shape(kp, ("*", 17, None), "COCO-17 keypoints")
    out = kp.new_zeros(kp.shape[:-2] + (25, kp.shape[-1]))
    out[..., list(COCO17_TO_OPENPOSE25), :] = kp
    for target, (a, b) in ((1, (5, 6)), (8, (11, 12))):
        mid = 0.5 * (kp[..., a, :] + kp[..., b, :])
        if kp.shape[-1] == 3:
            conf = torch.minimum(kp[..., a, 2], kp[..., b, 2])
            mid = torch.cat((mid[..., :2], conf.unsqueeze(-1)), dim=-1)
            mid = torch.where(conf.unsqueeze(-1) > 0, mid, torch.zeros_like(mid))
        out[..., target, :] = mid
    return out


def openpose25_to_coco17(kp: torch.Tensor) -> torch.Tensor:
    """BODY_25 keypoints ``(..., 25, C)`` to COCO-17 ``(..., 17, C)`` (a re-indexing)."""
    check_shape(kp, ("*", 25, None), "BODY_25 keypoints")
    return kp[..., list(COCO17_TO_OPENPOSE25), :]
