"""The adapters around a real (tiny, randomly initialised) PoseNDF built from configs/tiny.yaml:
every host term has the documented shape and passes gradients to the host's pose."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from test_integrations_common import random_poses

prior_mod = pytest.importorskip("posendf_plugin.prior")
TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def ndf():
    if not TINY.is_file() or not hasattr(prior_mod, "PoseNDF"):
        pytest.skip("configs/tiny.yaml or posendf_plugin.prior.PoseNDF not available")
    from posendf_plugin.config import load_config
    from posendf_plugin.model import PoseNDFNet

    cfg = load_config(TINY)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = PoseNDFNet(cfg.model)
    return prior_mod.PoseNDF(net, cfg)


def test_all_hosts_with_tiny_posendf(ndf):
    from posendf_plugin.integrations.easymocap import PoseNDFPrior
    from posendf_plugin.integrations.humor import PoseNDFPosePriorLoss
    from posendf_plugin.integrations.mmhuman3d import PoseNDFPriorLoss
    from posendf_plugin.integrations.smplifyx import build_smplifyx_prior
    from posendf_plugin.integrations.spin import SPINPosePrior

    pose69 = random_poses(3, 69).double().requires_grad_(True)
    sx = build_smplifyx_prior(ndf, model_type="smpl", dtype=torch.float64)
    e = sx(pose69, None)
    assert e.shape == (3,) and e.dtype == torch.float64 and (e >= 0).all()
    assert torch.allclose(SPINPosePrior(ndf)(pose69, None), e)
    (torch.sum(e) * 4.78 ** 2).backward()
    assert torch.isfinite(pose69.grad).all() and pose69.grad.abs().sum() > 0

    pose63 = random_poses(4, 63).requires_grad_(True)
    mm = PoseNDFPriorLoss(ndf, reduction="sum", loss_weight=2.0)
    assert torch.allclose(mm(pose63), 2.0 * ndf.energy(pose63).sum(), atol=1e-5)
    assert torch.allclose(PoseNDFPrior(prior=ndf)(poses=pose63), ndf.energy(pose63).mean(), atol=1e-6)
    hl = PoseNDFPosePriorLoss(ndf)(pose63.reshape(2, 2, 63))
    hl.backward()
    assert pose63.grad.abs().sum() > 0


def test_smplifyx_runner_with_posendf_checkpoint(ndf, tmp_path, monkeypatch):
    import sys
    import textwrap

    from posendf_plugin.integrations import smplifyx as sx

    ck = tmp_path / "tiny_ndf.pt"
    torch.save({"model_state_dict": ndf.net.state_dict(), "config": ndf.config.to_dict()}, ck)
    pkg = tmp_path / "smplifyx"
    pkg.mkdir()
    (pkg / "prior.py").write_text(textwrap.dedent("""
        def create_prior(prior_type, **kwargs):
            raise ValueError('Prior {} is not implemented'.format(prior_type))
        class MaxMixturePrior:
            pass
    """))
    (pkg / "main.py").write_text(textwrap.dedent("""
        import sys, torch
        from prior import create_prior
        if __name__ == '__main__':
            args = dict(body_prior_type=sys.argv[1], model_type='smplx', prior_folder='prior')
            body_pose_prior = create_prior(prior_type=args.get('body_prior_type'), dtype=torch.float32, **args)
    """))
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        g = sx.main([str(pkg / "main.py"), "--posendf-checkpoint", str(ck), "--posendf-scale", "2", "posendf"])
        p = g["body_pose_prior"]
        x = random_poses(2, 63)
        assert p.expected_width == 63 and torch.allclose(p(x, None), 2.0 * ndf.energy(x), atol=1e-5)
    finally:
        for k in ("prior", "__main__posendf"):
            sys.modules.pop(k, None)
