"""mmhuman3d / mmengine adapter, through the real mmengine Registry (mmengine is installed;
mmhuman3d is not, so its ``LOSSES`` registry is reproduced by a fake package holding an
mmengine ``Registry`` at mmhuman3d/models/losses/builder.py, where mmhuman3d keeps it)."""
from __future__ import annotations

import sys

import pytest
import torch

pytest.importorskip("mmengine", reason="the mmhuman3d adapter needs mmengine: pip install -e '.[mm]'")
from mmengine.registry import Registry  # noqa: E402

from test_integrations_common import TinyPrior, random_poses

from posendf_plugin.integrations import mmhuman3d as mm


def test_build_from_config_dict_and_reductions():
    loss = mm.POSENDF_LOSSES.build(dict(type="PoseNDFPriorLoss", prior="tiny_test", loss_weight=2.0, reduction="sum"))
    assert isinstance(loss, mm.PoseNDFPriorLoss)
    body_pose = random_poses(4, 69).requires_grad_(True)
    e = TinyPrior().energy(body_pose)
    out = loss(body_pose)
    assert out.ndim == 0 and torch.allclose(out, 2.0 * e.sum(), atol=1e-5)
    # mmhuman3d's SMPLify calls it with keywords
    per = loss(body_pose=body_pose, loss_weight_override=3.0, reduction_override="none")
    assert per.shape == (4,) and torch.allclose(per, 3.0 * e, atol=1e-5)
    assert torch.allclose(loss(body_pose, reduction_override="mean"), 2.0 * e.mean(), atol=1e-5)
    assert torch.allclose(loss(body_pose, loss_weight_override=0.0), torch.tensor(0.0))
    out.backward()
    assert body_pose.grad.abs().sum() > 0
    # SMPL-X body pose (63) works too by default
    assert loss(random_poses(2, 63)).ndim == 0


def test_bad_reduction_and_layout():
    with pytest.raises(ValueError, match="reduction must be one of"):
        mm.PoseNDFPriorLoss(TinyPrior(), reduction="max")
    loss = mm.PoseNDFPriorLoss(TinyPrior(), expected_width=69)
    with pytest.raises(ValueError, match="reduction_override"):
        loss(random_poses(2, 69), reduction_override="avg")
    with pytest.raises(ValueError, match=r"\(2, 63\).*\(B, 69\)"):
        loss(random_poses(2, 63))


def test_register_in_twice_and_name_clash():
    reg = Registry("test_losses")
    mm.register_in(reg)
    with pytest.warns(UserWarning, match="already registered"):
        mm.register_in(reg)
    other = Registry("other")
    other.register_module(name="PoseNDFPriorLoss", module=torch.nn.L1Loss)
    with pytest.raises(KeyError, match="different"):
        mm.register_in(other)


def test_mmhuman3d_absent_is_an_error(monkeypatch):
    monkeypatch.delitem(sys.modules, "mmhuman3d", raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "fake_mmh" not in p])
    with pytest.raises(ImportError, match="mmhuman3d is not installed"):
        mm.register_mmhuman3d()


def test_register_in_mmhuman3d_losses(tmp_path, monkeypatch):
    root = tmp_path / "fake_mmh"
    pkg = root / "mmhuman3d" / "models" / "losses"
    pkg.mkdir(parents=True)
    for d in (root / "mmhuman3d", root / "mmhuman3d" / "models", pkg):
        (d / "__init__.py").write_text("")
    (pkg / "builder.py").write_text(
        "from mmengine.registry import Registry\nLOSSES = Registry('losses')\n"
        "def build_loss(cfg):\n    return None if cfg is None else LOSSES.build(cfg)\n"
    )
    monkeypatch.syspath_prepend(str(root))
    for k in [k for k in sys.modules if k.startswith("mmhuman3d")]:
        monkeypatch.delitem(sys.modules, k)
    mm.register_mmhuman3d()
    from mmhuman3d.models.losses.builder import build_loss

    loss = build_loss(dict(type="PoseNDFPriorLoss", prior="tiny_test", loss_weight=4.78 ** 2, reduction="sum"))
    assert isinstance(loss, mm.PoseNDFPriorLoss) and loss.loss_weight == pytest.approx(4.78 ** 2)
    with pytest.warns(UserWarning, match="already registered"):
        mm.register_mmhuman3d()
    for k in [k for k in sys.modules if k.startswith("mmhuman3d")]:
        del sys.modules[k]
