"""Shared helpers for the integration tests (imported by the other test_integrations_* files),
and tests of integrations/_common.py.

The helpers: ``load_integrations()`` makes ``posendf_plugin.integrations`` importable from a
source checkout exactly as setup.cfg's ``package_dir`` installs it, and ``TinyPrior`` is a fixed
differentiable function of the quaternions, so no test depends on shipped weights.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from posendf_plugin.priors.base import PosePrior, register_prior

REPO = Path(__file__).resolve().parents[1]


def load_integrations():
    """``posendf_plugin.integrations`` from the installed package or, in a source checkout,
    from ``integrations/`` (the mapping setup.cfg's package_dir declares)."""
    try:
        return importlib.import_module("posendf_plugin.integrations")
    except ImportError:
        pass
    spec = importlib.util.spec_from_file_location(
        "posendf_plugin.integrations", REPO / "integrations" / "__init__.py",
        submodule_search_locations=[str(REPO / "integrations")],
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


load_integrations()


class TinyPrior(PosePrior):
    """Energy = sum over joints of ``1 - w**2`` (0 at the rest pose, grows with every joint's
    rotation angle): fixed, differentiable, float32 buffer so dtype casting is exercised."""

    name = "tiny_test"

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("gain", torch.tensor(1.0))

    def energy(self, body_pose) -> torch.Tensor:
        q = self.to_quat(body_pose)
        return self.gain * (1.0 - q[..., 0] ** 2).sum(-1)

    @classmethod
    def from_pretrained(cls, **_) -> "TinyPrior":
        return cls()


register_prior("tiny_test", TinyPrior.from_pretrained, overwrite=True)


def random_poses(n: int, width: int = 63, scale: float = 0.3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, width, generator=g) * scale


def record_posendf_factory(monkeypatch) -> list:
    """Replace ``get_prior('posendf', ...)`` by a recorder that returns a :class:`TinyPrior`;
    returns the list the keyword arguments of every call are appended to (no shipped weights
    are read, so aliases such as ``'posendf_density'`` are tested by what they ask for)."""
    from posendf_plugin.priors import base

    calls: list = []

    def factory(**kwargs) -> TinyPrior:
        calls.append(kwargs)
        return TinyPrior()

    monkeypatch.setitem(base._FACTORIES, "posendf", factory)
    return calls


# ----------------------------------------------------------------------------- tests of _common

from posendf_plugin.integrations._common import (  # noqa: E402
    SHIPPED_PRIOR_ALIASES,
    HostPosePrior,
    add_quat_noise,
    check_layout,
    prior_energy,
    resolve_prior,
    separation_stats,
)


def test_resolve_prior_by_name_and_instance():
    p = TinyPrior()
    assert resolve_prior(p) is p
    assert isinstance(resolve_prior("tiny_test"), TinyPrior)
    with pytest.raises(TypeError, match="prior name"):
        resolve_prior(3)
    with pytest.raises(ValueError, match="unknown pose prior"):
        resolve_prior("no_such_prior")
    with pytest.raises(ValueError, match="together with an already built prior"):
        resolve_prior(p, {"checkpoint": "x"})


def test_resolve_prior_shipped_alias_posendf_density(monkeypatch):
    calls = record_posendf_factory(monkeypatch)
    assert "posendf_density" in SHIPPED_PRIOR_ALIASES
    assert isinstance(resolve_prior("posendf_density"), TinyPrior)
    assert isinstance(resolve_prior("posendf_density", {"checkpoint": "my.pt"}), TinyPrior)
    assert isinstance(resolve_prior("posendf"), TinyPrior)
    assert calls == [{"pretrained": "posendf_density"}, {"pretrained": "posendf_density", "checkpoint": "my.pt"}, {}]
    with pytest.raises(ValueError, match=r"'posendf_density' already sets \['pretrained'\]"):
        resolve_prior("posendf_density", {"pretrained": "nrdf"})
    # an unknown name lists get_prior's names and the aliases
    with pytest.raises(ValueError, match=r"unknown pose prior 'posendf_dens'; available: .*posendf.*posendf_density"):
        resolve_prior("posendf_dens")


def test_check_layout_names_both_layouts():
    with pytest.raises(ValueError) as e:
        check_layout(torch.zeros(2, 63), 69, "SMPLify-X")
    msg = str(e.value)
    assert "63" in msg and "69" in msg and "SMPL-X body_pose" in msg and "SMPL body_pose" in msg
    check_layout(torch.zeros(2, 69), 69, "host")
    check_layout(torch.zeros(2, 72), None, "host")


def test_host_prior_shape_dtype_and_gradient():
    m = HostPosePrior(TinyPrior(), expected_width=69, scale=2.0)
    x = random_poses(4, 69).double().requires_grad_(True)
    e = m(x, torch.zeros(4, 10))
    assert e.shape == (4,) and e.dtype == torch.float64
    assert torch.allclose(e, 2.0 * TinyPrior().energy(x.float()).double(), atol=1e-5)
    e.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert m.get_mean().shape == (1, 69) and not m.get_mean().any()
    with pytest.raises(ValueError, match="scale"):
        HostPosePrior(TinyPrior(), scale=0.0)


def test_noise_and_separation_stats():
    q = TinyPrior.to_quat(random_poses(200, 63, scale=0.1))
    g = torch.Generator().manual_seed(1)
    noisy = add_quat_noise(q, 0.25, g)
    assert torch.allclose(noisy.norm(dim=-1), torch.ones(200, 21), atol=1e-5)
    assert (noisy[..., 0] >= 0).all()
    s = separation_stats(TinyPrior(), q, sigmas=(0.1, 0.5), seed=0)
    assert s.noisy_mean[0.5] > s.noisy_mean[0.1] > s.real_mean
    assert s.auroc[0.5] > 0.95 and 0.0 <= s.auroc[0.1] <= 1.0
    assert s.gap(0.5) > 0
    assert np.isclose(prior_energy(TinyPrior(), q).mean().item(), s.real_mean, atol=1e-6)


def test_top_level_imports_are_lazy():
    """``from posendf_plugin import PoseNDF, get_prior`` works; ``import posendf_plugin`` alone
    does not import torch (keeps ``python -m posendf_plugin --help`` light)."""
    import subprocess
    import sys

    code = (
        "import sys, posendf_plugin; assert 'torch' not in sys.modules, 'torch imported eagerly'\n"
        "from posendf_plugin import PoseNDF, get_prior\n"
        "from posendf_plugin.prior import PoseNDF as P2\n"
        "from posendf_plugin.priors import get_prior as g2\n"
        "assert PoseNDF is P2 and get_prior is g2\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    import posendf_plugin

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        posendf_plugin.Nope  # noqa: B018


def test_host_prior_refuses_a_diverged_pose_naming_the_fix():
    from posendf_plugin.integrations._common import HostPosePrior

    prior = HostPosePrior(TinyPrior(), expected_width=69, host="SMPLify-X")
    pose = random_poses(3, 69)
    pose[1, 5] = float("nan")
    with pytest.raises(ValueError, match=r"SMPLify-X passed a body_pose with NaN/Inf values in row\(s\) \[1\].*float64"):
        prior(pose)


def test_host_modules_name_the_weights_file():
    """The modules a host logs (SMPLify-X / SPIN / EasyMocap's HostPosePrior, mmhuman3d's loss)
    repeat the prior's ``weights`` (Pose-NDF: the file loaded), so the two shipped fields differ
    in a log; priors without it print as before."""
    from posendf_plugin.integrations.mmhuman3d import PoseNDFPriorLoss

    p = TinyPrior()
    assert "weights" not in repr(HostPosePrior(p))
    p.weights = "shipped 'posendf_density' (posendf_density.pt)"
    assert "(weights: shipped 'posendf_density' (posendf_density.pt))" in repr(HostPosePrior(p))
    assert "posendf_density.pt" in repr(PoseNDFPriorLoss(prior=p))


def test_margin_leaves_plausible_poses_to_the_data_in_every_adapter():
    """margin m: each pose's energy is max(E - m, 0) in every adapter (the setting chosen on
    real unseen poses in EasyMocap's optimiser, integrations/README.md); 0 keeps the energy;
    a bad margin is refused naming the option."""
    import posendf_plugin.integrations.easymocap as em
    import posendf_plugin.integrations.humor as hm
    import posendf_plugin.integrations.mmhuman3d as mm
    import posendf_plugin.integrations.smplifyx as sx
    import posendf_plugin.integrations.spin as sp

    x = torch.cat([random_poses(3, 69, scale=0.05), random_poses(3, 69, scale=0.6, seed=1)])
    e = TinyPrior().energy(x)
    m = float(e.min() + e.max()) / 2  # the small rotations fall below it, the large ones not
    want = torch.relu(e - m)
    assert (want == 0).any() and (want > 0).any()
    assert torch.allclose(HostPosePrior(TinyPrior(), margin=m)(x), want)
    assert torch.allclose(HostPosePrior(TinyPrior(), margin=0.0)(x), e)
    assert torch.allclose(sx.build_smplifyx_prior(TinyPrior(), model_type="smpl", margin=m)(x), want)
    assert torch.allclose(sp.SPINPosePrior(TinyPrior(), margin=m)(x, None), want)
    assert torch.allclose(em.PoseNDFPrior(prior=TinyPrior(), margin=m)(poses=x), want.mean())
    assert torch.allclose(mm.PoseNDFPriorLoss(prior=TinyPrior(), reduction="none", margin=m)(x), want)
    latent = x[:, :63].reshape(2, 3, 63)
    assert torch.allclose(hm.PoseNDFPosePriorLoss(TinyPrior(), margin=m)(latent), want.sum(), rtol=1e-3)  # via rotation matrices
    # the gradient vanishes exactly on the poses below the margin
    xg = x.clone().requires_grad_(True)
    HostPosePrior(TinyPrior(), margin=m)(xg).sum().backward()
    below = want == 0
    assert not xg.grad[below].any() and xg.grad[~below].abs().sum() > 0
    for bad in (-0.1, float("nan"), float("inf"), "0.05", True):
        with pytest.raises(ValueError, match="margin"):
            HostPosePrior(TinyPrior(), margin=bad)
        with pytest.raises(ValueError, match="margin"):
            em.PoseNDFPrior(prior=TinyPrior(), margin=bad)
    with pytest.raises(ValueError, match="margin"):
        sx.register(priors={"posendf": "tiny_test"}, margin=-1.0)
