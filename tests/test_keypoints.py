"""Keypoint conventions and their extraction from body-model outputs."""
from __future__ import annotations

import pytest
import torch

from posendf_plugin import keypoints as K
from posendf_plugin import rotations as R
from posendf_plugin.body_model import get_body_model

torch.set_num_threads(1)

# SMPLify-X's BODY_25 mapping for SMPL, as indices into smplx's SMPL output joints
# (24 joints, then nose, reye, leye, rear, lear, LBigToe, LSmallToe, LHeel, RBigToe, RSmallToe, RHeel).
SMPLIFYX_SMPL_OPENPOSE25 = [24, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7,
                            25, 26, 27, 28, 29, 30, 31, 32, 33, 34]


@pytest.fixture(scope="module")
def posed():
    bm = get_body_model()
    g = torch.Generator().manual_seed(0)
    q = R.quat_random(3, 21, generator=g)
    return bm(q, keypoints="openpose25")


def test_names_edges_and_mapping_tables():
    assert len(K.OPENPOSE25_NAMES) == 25 and len(K.COCO17_NAMES) == 17
    for fmt in K.KEYPOINT_FORMATS:
        n = len(K.keypoint_names(fmt))
        assert all(0 <= a < n and 0 <= b < n and a != b for a, b in K.keypoint_edges(fmt))
        assert K.APPROXIMATE_KEYPOINTS[fmt] <= set(K.keypoint_names(fmt))
    # COCO -> BODY_25 pairs name the same body part
    for ci, oi in enumerate(K.COCO17_TO_OPENPOSE25):
        coco, op = K.COCO17_NAMES[ci], K.OPENPOSE25_NAMES[oi]
        side = {"left": "L", "right": "R"}.get(coco.split("_")[0], "")
        part = coco.split("_")[-1]
        assert op.startswith(side) and op.lower().endswith(part), (coco, op)


def test_openpose25_matches_smplx_vertex_joints(posed):
    """Our BODY_25 keypoints equal the joints smplx itself selects (SMPLify-X's mapping)."""
    assert posed.keypoints.shape == (3, 25, 3) and posed.keypoint_format == "openpose25"
    torch.testing.assert_close(posed.keypoints, posed.model_joints[:, SMPLIFYX_SMPL_OPENPOSE25])


def test_coco17_is_a_reindexing_of_openpose25(posed):
    coco = K.keypoints_from_output(posed, "coco17")
    assert coco.shape == (3, 17, 3)
    torch.testing.assert_close(coco, K.openpose25_to_coco17(posed.keypoints))
    torch.testing.assert_close(coco[:, 5], posed.joints[:, 16])  # left shoulder = SMPL joint 16


def test_vertex_ids_follow_smplx_tables():
    from smplx.vertex_ids import vertex_ids

    for kind, table in (("smpl", "smplh"), ("smplh", "smplh"), ("smplx", "smplx")):
        ids = K.keypoint_vertex_ids(kind)
        assert ids == {k: vertex_ids[table][k] for k in ids}
    src = K.keypoint_sources("openpose25", "smplx")
    assert src[0] == ("vertex", vertex_ids["smplx"]["nose"]) and src[1] == ("joint", 12)


def test_coco_to_openpose_conversion_with_confidence():
    g = torch.Generator().manual_seed(1)
    coco = torch.rand(4, 17, 3, generator=g) + 0.1
    coco[1, 6, 2] = 0.0  # right shoulder missing in sample 1
    op = K.coco17_to_openpose25(coco)
    assert op.shape == (4, 25, 3)
    torch.testing.assert_close(K.openpose25_to_coco17(op), coco)
    torch.testing.assert_close(op[0, 1, :2], 0.5 * (coco[0, 5, :2] + coco[0, 6, :2]))
    assert op[0, 1, 2] == torch.minimum(coco[0, 5, 2], coco[0, 6, 2])
    assert (op[1, 1] == 0).all()  # neck unknown when a shoulder is
    assert (op[:, 19:] == 0).all()  # COCO has no feet keypoints
    torch.testing.assert_close(op[2, 8, :2], 0.5 * (coco[2, 11, :2] + coco[2, 12, :2]))
    # 2-channel input (no confidence) also works, unbatched
    assert K.coco17_to_openpose25(coco[0, :, :2]).shape == (25, 2)


def test_keypoint_errors(posed):
    with pytest.raises(ValueError, match="keypoint format"):
        K.keypoint_names("h36m")
    with pytest.raises(ValueError, match="body model kind"):
        K.keypoints_from_output(posed, "coco17", model_kind="mano")
    with pytest.raises(ValueError, match="smplx"):
        K.keypoints_from_joints(posed.joints, posed.vertices, "coco17", model_kind="smplx")
    with pytest.raises(ValueError, match="shape"):
        K.coco17_to_openpose25(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="model_kind"):
        K.keypoints_from_output(object(), "coco17")
