"""EasyMocap adapter, against a harness reproducing EasyMocap's documented calls.

EasyMocap is not on PyPI. The harness reproduces ``config/baseconfig.py:load_object`` (import
the dotted module path, call the last name with the YAML ``args``) and both fitting frameworks:

* ``easymocap/multistage/base.py:make_lossfuncs`` / the closure (``module.to(device)``, weight
  from ``weight``, call with ``kpts_est=..., **body_params, **infos``, ``poses_full`` only for
  keys starting with ``pf-``, ``loss * weight`` summed);
* ``myeasymocap/operations/optimizer.py:make_closure`` (``load_object(val['module'],
  val['args'])``, ``.to(device)``, ``output_ = {k: output[k] for k in key_from_output}``,
  ``infos_`` likewise, ``loss_now = func(output_, infos_)`` positionally, weight from
  ``loss[key].weight``), with the ``prior:`` entry of ``config/mv1p/detect_triangulate_fitSMPL.yml``
  (``weight: 0.1``, ``key_from_output: [poses]``, ``args: {start: 0, end: 69}``) and only the
  module swapped.
"""
from __future__ import annotations

import importlib

import pytest
import torch
import yaml

from test_integrations_common import TinyPrior, random_poses

YAML = """
loss:
  pose_ndf:
    weight: 0.1
    module: posendf_plugin.integrations.easymocap.PoseNDFPrior
    args:
      key: poses
      prior: tiny_test
  pf-pose_ndf:
    weight: 2.0
    module: posendf_plugin.integrations.easymocap.PoseNDFPrior
    args:
      key: poses_full
      prior: tiny_test
      reduce: sum
"""


def load_object(module_name, module_args):
    module_path = ".".join(module_name.split(".")[:-1])
    module = importlib.import_module(module_path)
    name = module_name.split(".")[-1]
    return getattr(module, name)(**module_args)


def make_lossfuncs(stage, device="cpu"):
    loss_funcs, weights = {}, {}
    for key, val in stage["loss"].items():
        module = load_object(val["module"], dict(val["args"]))
        module.to(device)
        weights[key] = val["weight"]
        loss_funcs[key] = module
    return loss_funcs, weights


def closure_loss(loss_funcs, weights, body_params, infos, poses_full):
    loss_dict = {}
    for key, f in loss_funcs.items():
        if key.startswith("pf-"):
            loss_dict[key] = f(poses_full=poses_full, **body_params, **infos)
        else:
            loss_dict[key] = f(kpts_est=torch.zeros(len(body_params["poses"]), 25, 3), **body_params, **infos)
    return sum(loss_dict[k] * weights[k] for k in loss_dict), loss_dict


def test_yaml_config_through_load_object():
    funcs, weights = make_lossfuncs(yaml.safe_load(YAML))
    poses = random_poses(6, 69).requires_grad_(True)  # SMPL, use_root_rot=False
    body_params = dict(poses=poses, shapes=torch.zeros(1, 10), Rh=torch.zeros(6, 3), Th=torch.zeros(6, 3))
    poses_full = torch.cat([torch.zeros(6, 3), poses], dim=1)  # body_model.extend_poses
    infos = dict(keypoints2d=torch.zeros(6, 25, 3), init_poses=torch.zeros(6, 69))
    total, parts = closure_loss(funcs, weights, body_params, infos, poses_full)
    e = TinyPrior().energy(poses)
    assert parts["pose_ndf"].ndim == 0 and torch.allclose(parts["pose_ndf"], e.mean(), atol=1e-5)
    assert torch.allclose(parts["pf-pose_ndf"], e.sum(), atol=1e-5)
    assert torch.allclose(total, 0.1 * e.mean() + 2.0 * e.sum(), atol=1e-4)
    total.backward()
    assert poses.grad.abs().sum() > 0
    f = funcs["pose_ndf"]
    assert f.check_at_start(kpts_est=None, **body_params) is None and "tiny_test" in str(f)


def test_multi_person_and_start_offset():
    from posendf_plugin.integrations.easymocap import PoseNDFPrior

    f = PoseNDFPrior(prior="tiny_test")
    poses = random_poses(8, 69).reshape(4, 2, 69)  # (nFrames, nPerson, D)
    assert torch.allclose(f(poses=poses), TinyPrior().energy(poses.reshape(8, 69)).mean(), atol=1e-5)
    # SMPL-X-style poses with hand PCA appended: 63 body + 12 -> autodetect fails clearly
    wide = torch.cat([random_poses(3, 63), torch.zeros(3, 12)], dim=1)
    with pytest.raises(ValueError, match="75 dims.*args.start"):
        f(poses=wide)
    g = PoseNDFPrior(prior="tiny_test", start=0)
    assert torch.allclose(g(poses=wide), TinyPrior().energy(wide[:, :63]).mean(), atol=1e-5)


def test_missing_key_and_bad_args():
    from posendf_plugin.integrations.easymocap import PoseNDFPrior

    with pytest.raises(KeyError, match="poses_full.*pf-"):
        PoseNDFPrior(key="poses_full", prior="tiny_test")(poses=random_poses(2, 69))
    with pytest.raises(TypeError):
        load_object("posendf_plugin.integrations.easymocap.PoseNDFPrior", {"prior": "tiny_test", "typo_arg": 1})
    with pytest.raises(ValueError, match="reduce"):
        PoseNDFPrior(prior="tiny_test", reduce="max")


# config/mv1p/detect_triangulate_fitSMPL.yml, refine_poses.args.loss (the same `prior:` entry is in
# config/1v1p/hrnet_pare_finetune.yml and config/mvmp/meta_fit_SMPL.yml); only `module` and the
# `prior:` arg differ from EasyMocap's GMMPrior entry
MYEASYMOCAP_YAML = """
loss:
  regshape:
    weight: 0.1
    module: test_integrations_easymocap.RegShape
    key_from_output: [shapes]
    key_from_infos: []
    args: {}
  prior:
    weight: 0.1
    module: posendf_plugin.integrations.easymocap.PoseNDFPrior
    key_from_output: [poses]
    key_from_infos: []
    args:
      start: 0
      end: 69
      prior: tiny_test
"""


class AttrDict(dict):
    """EasyMocap's configs are yacs CfgNodes: keys read as attributes (``loss[key].weight``)."""

    def __getattr__(self, k):
        return self[k]


class RegShape(torch.nn.Module):
    """Stand-in for myeasymocap.operations.loss.RegLoss (another loss in the same closure)."""

    def forward(self, pred, target):
        return (pred["shapes"] ** 2).sum()


def make_closure(model, params, infos, loss, device="cpu"):
    """myeasymocap/operations/optimizer.py:make_closure, the loss part (no optimizer step)."""
    loss_func = {}
    for key, val in loss.items():
        loss_func[key] = load_object(val["module"], val["args"])
        if isinstance(loss_func[key], torch.nn.Module):
            loss_func[key].to(device)

    def closure():
        output = model(params.copy())
        loss_dict = {}
        loss_weight = {key: loss[key].weight for key in loss_func.keys()}
        for key, func in loss_func.items():
            output_ = {k: output[k] for k in loss[key].key_from_output}
            infos_ = {k: infos[k] for k in loss[key].key_from_infos}
            loss_dict[key] = func(output_, infos_)
        return sum(loss_dict[key] * loss_weight[key] for key in loss_dict.keys()), loss_dict

    return closure


def smpl_loader_forward(params):
    """myeasymocap/io/model.py:SMPLLoader.forward: keypoints plus the params themselves."""
    ret = {"keypoints": torch.zeros(params["poses"].shape[0], 25, 3)}
    ret.update(params)
    return ret


def test_myeasymocap_optimizer_positional_call():
    cfg = yaml.safe_load(MYEASYMOCAP_YAML)
    loss = {k: AttrDict(v) for k, v in cfg["loss"].items()}
    poses = random_poses(5, 69).requires_grad_(True)  # InitParams: num_poses=69
    params = {"poses": poses, "shapes": torch.zeros(1, 10), "Rh": torch.zeros(5, 3), "Th": torch.zeros(5, 3)}
    total, parts = make_closure(smpl_loader_forward, params, {"keypoints3d": torch.zeros(5, 25, 4)}, loss)()
    e = TinyPrior().energy(poses)
    assert torch.allclose(parts["prior"], e.mean(), atol=1e-5)
    assert torch.allclose(total, 0.1 * e.mean(), atol=1e-5)
    total.backward()
    assert poses.grad.abs().sum() > 0
    # mvmp: (nFrames, nPerson, 69)
    f = load_object(loss["prior"]["module"], loss["prior"]["args"])
    multi = random_poses(6, 69).reshape(3, 2, 69)
    assert torch.allclose(f({"poses": multi}, {}), TinyPrior().energy(multi.reshape(6, 69)).mean(), atol=1e-5)


def test_myeasymocap_bad_layouts_and_missing_key():
    from posendf_plugin.integrations.easymocap import PoseNDFPrior

    f = PoseNDFPrior(prior="tiny_test", start=0, end=69)
    with pytest.raises(ValueError, match=r"63 dims.*end: 63"):
        f({"poses": random_poses(2, 63)}, {})
    with pytest.raises(ValueError, match=r"72 dims.*root.*start: 3, end: 72"):
        f({"poses": random_poses(2, 72)}, {})
    g = PoseNDFPrior(prior="tiny_test", start=3, end=72)
    full = random_poses(2, 72)
    assert torch.allclose(g({"poses": full}, {}), TinyPrior().energy(full[:, 3:]).mean(), atol=1e-5)
    # a 72-dim slice read as root + 23 joints only where it starts with the root: from dim 3 of
    # an SMPL-H pose it would read hand joints as body joints
    smplh = random_poses(2, 156)
    with pytest.raises(ValueError, match=r"start=3, end=75 give 72 dims.*start: 3, end: 66"):
        PoseNDFPrior(prior="tiny_test", start=3, end=75)({"poses": smplh}, {})
    h = PoseNDFPrior(prior="tiny_test", start=0, end=72)
    assert torch.allclose(h({"poses": smplh}, {}), TinyPrior().energy(smplh[:, 3:66]).mean(), atol=1e-5)
    with pytest.raises(KeyError, match=r"key_from_output: \[poses\]"):
        f({"keypoints": torch.zeros(2, 25, 3)}, {})
    with pytest.raises(TypeError, match="loss\\(output, infos\\)"):
        f(random_poses(2, 69))
    with pytest.raises(ValueError, match="end=10 must be larger"):
        PoseNDFPrior(prior="tiny_test", start=20, end=10)


FAKE_LBFGS = '''"""Stand-in for easymocap/pyfitting/lbfgs.py: a module-level copy of torch's strong-Wolfe
cubic step, as EasyMocap's file holds one (ported from the same Lua code)."""
from torch.optim import lbfgs as _torch_lbfgs

_cubic_interpolate = getattr(_torch_lbfgs._cubic_interpolate, "_posendf_unguarded", _torch_lbfgs._cubic_interpolate)
'''


def test_building_the_loss_guards_easymocaps_own_lbfgs(tmp_path, monkeypatch):
    """Both EasyMocap frameworks fit with easymocap.pyfitting.lbfgs.LBFGS (strong Wolfe), a copy
    of torch's: the loss guards that copy's cubic step once EasyMocap is importable; without
    EasyMocap building the loss works as before."""
    import math
    import sys

    from posendf_plugin.integrations import easymocap as em

    for name in [m for m in sys.modules if m == "easymocap" or m.startswith("easymocap.")]:
        monkeypatch.delitem(sys.modules, name)
    assert em.guard_easymocap_line_search() is False  # not installed here
    em.PoseNDFPrior(prior=TinyPrior())

    pkg = tmp_path / "easymocap" / "pyfitting"
    pkg.mkdir(parents=True)
    (tmp_path / "easymocap" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "lbfgs.py").write_text(FAKE_LBFGS)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        lbfgs = importlib.import_module("easymocap.pyfitting.lbfgs")
        original = lbfgs._cubic_interpolate
        # an overflowing trial point (the values measured in the real mmhuman3d run, torch's copy)
        seen = (0.0, 1818.54, torch.tensor(-2.1635564e10), 0.0025, 3.4534167e24, torch.tensor(1.3954221e29))
        assert math.isnan(float(original(*seen)))
        em.PoseNDFPrior(prior=TinyPrior())
        assert lbfgs._cubic_interpolate(*seen) == pytest.approx(0.0025 / 2)
        ok = (0.0, 1.0, torch.tensor(-1.0), 1.0, 0.5, torch.tensor(0.5))
        assert lbfgs._cubic_interpolate(*ok) == original(*ok)
        em.PoseNDFPrior(prior=TinyPrior())  # a second loss does not wrap it twice
        assert lbfgs._cubic_interpolate._posendf_unguarded is original
    finally:
        for name in [m for m in sys.modules if m == "easymocap" or m.startswith("easymocap.")]:
            del sys.modules[name]
