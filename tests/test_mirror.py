"""Left/right mirroring of body poses (skeleton.mirror_body_quat): an involution whose forward
kinematics is the mirror image of the original's."""
from __future__ import annotations

import torch

from posendf_plugin import rotations as R
from posendf_plugin.skeleton import SMPL_JOINT_NAMES, body_joint_positions, mirror_body_quat


def test_mirror_is_the_mirror_image():
    g = torch.Generator().manual_seed(0)
    q = R.axis_angle_to_quat(torch.randn(16, 21, 3, generator=g, dtype=torch.float64) * 0.5)
    m = mirror_body_quat(q)
    torch.testing.assert_close(mirror_body_quat(m), q)
    swap = [SMPL_JOINT_NAMES.index(n.replace("left_", "#").replace("right_", "left_").replace("#", "right_"))
            for n in SMPL_JOINT_NAMES]
    p, pm = body_joint_positions(q), body_joint_positions(m)
    flip = torch.tensor([-1.0, 1.0, 1.0], dtype=p.dtype)
    torch.testing.assert_close(pm, (p * flip)[:, swap], atol=1e-6, rtol=0)
    assert mirror_body_quat(q[0]).shape == (21, 4)
