"""mmhuman3d (mmcv 1.x) and OpenMMLab 2.x (mmengine) registration of ``PoseNDFPriorLoss``.

mmhuman3d itself does not install from the package index, so the harness reproduces what its
SMPLify path uses, on the real registry libraries:

* ``mmhuman3d/models/losses/builder.py``: ``from mmcv.utils import Registry``, ``LOSSES =
  Registry('losses')``, ``build_loss(cfg) -> LOSSES.build(cfg)`` (real mmcv 1.x ``Registry``);
* ``mmhuman3d/models/registrants/builder.py``: ``REGISTRANTS`` holding ``SMPLify`` with the real
  ``SMPLify.__init__`` keyword list (so an unknown config key such as ``custom_imports`` is the
  same ``TypeError``), building ``pose_prior_loss`` with ``build_loss`` and calling it as
  ``_compute_loss`` does;
* ``tools/smplify.py``: ``mmcv.Config.fromfile(config)`` then ``build_registrant(dict(cfg))``,
  with a base config holding ``configs/smplify/smplify.py``'s ``type`` and GMM
  ``pose_prior_loss`` (``prior_folder``, ``num_gaussians``, ``loss_weight=4.78**2``,
  ``reduction='sum'``).

mmcv 1.x is not in the ``test`` extra: its setup.py needs ``pkg_resources``, so ``pip install
mmcv==1.7.2`` fails under pip's build isolation with current setuptools; those tests skip with
the install command when mmcv 1.x is absent. The mmengine tests use the real mmengine-lite.
"""
from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
import torch

from test_integrations_common import TinyPrior, random_poses

from posendf_plugin.integrations import mmhuman3d as mm

MMCV1_HINT = (
    "needs mmcv 1.x (mmhuman3d's registry library): pip install 'setuptools<70' wheel && "
    "pip install --no-build-isolation mmcv==1.7.2"
)


def _mmcv1():
    try:
        import mmcv
        from mmcv.utils import Registry  # noqa: F401 - mmcv 2.x has no mmcv.utils.Registry
    except ImportError:
        pytest.skip(MMCV1_HINT)
    return mmcv


# -- the loss itself --------------------------------------------------------------------------

def test_loss_conventions_and_reductions():
    loss = mm.PoseNDFPriorLoss(prior="tiny_test", loss_weight=2.0, reduction="sum")
    body_pose = random_poses(4, 69).requires_grad_(True)
    e = TinyPrior().energy(body_pose)
    out = loss(body_pose)
    assert out.ndim == 0 and torch.allclose(out, 2.0 * e.sum(), atol=1e-5)
    # mmhuman3d's SMPLify._compute_loss calls it with keywords
    per = loss(body_pose=body_pose, loss_weight_override=3.0, reduction_override="none")
    assert per.shape == (4,) and torch.allclose(per, 3.0 * e, atol=1e-5)
    assert torch.allclose(loss(body_pose, reduction_override="mean"), 2.0 * e.mean(), atol=1e-5)
    assert torch.allclose(loss(body_pose, loss_weight_override=0.0), torch.tensor(0.0))
    out.backward()
    assert body_pose.grad.abs().sum() > 0
    assert loss(random_poses(2, 63)).ndim == 0  # SMPL-X body pose by default too


def test_bad_reduction_and_layout():
    with pytest.raises(ValueError, match="reduction must be one of"):
        mm.PoseNDFPriorLoss(TinyPrior(), reduction="max")
    loss = mm.PoseNDFPriorLoss(TinyPrior(), expected_width=69)
    with pytest.raises(ValueError, match="reduction_override"):
        loss(random_poses(2, 69), reduction_override="avg")
    with pytest.raises(ValueError, match=r"\(2, 63\).*\(B, 69\)"):
        loss(random_poses(2, 63))
    with pytest.raises(ValueError, match=r"\(2, 72\).*\(B, 69\)"):
        loss(random_poses(2, 72))


# -- registries ------------------------------------------------------------------------------

def test_absent_hosts_are_errors_naming_the_fix(monkeypatch):
    monkeypatch.delitem(sys.modules, "mmhuman3d", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ImportError, match="mmhuman3d is not installed.*register_mmengine"):
        mm.register_mmhuman3d()
    monkeypatch.setitem(sys.modules, "mmengine", None)
    monkeypatch.setitem(sys.modules, "mmengine.registry", None)
    with pytest.raises(ImportError, match=r"mmengine is not installed.*posendf-plugin\[mm\]"):
        mm.register_mmengine()
    with pytest.raises(TypeError, match="must be an mmcv 1.x or mmengine Registry"):
        mm.register_in(object())


def test_mmhuman3d_without_mmcv1_names_the_install(tmp_path, monkeypatch):
    root = tmp_path / "fake_mmh_nommcv"
    pkg = root / "mmhuman3d" / "models" / "losses"
    pkg.mkdir(parents=True)
    for d in (root / "mmhuman3d", root / "mmhuman3d" / "models", pkg):
        (d / "__init__.py").write_text("")
    (pkg / "builder.py").write_text("from mmcv_is_missing_here.utils import Registry\n")
    monkeypatch.syspath_prepend(str(root))
    for k in [k for k in sys.modules if k.startswith("mmhuman3d")]:
        monkeypatch.delitem(sys.modules, k)
    with pytest.raises(ImportError, match=r"mmcv 1.x .*--no-build-isolation mmcv==1.7.2"):
        mm.register_mmhuman3d()
    for k in [k for k in sys.modules if k.startswith("mmhuman3d")]:
        del sys.modules[k]


def test_mmengine_root_models_and_child_registry():
    pytest.importorskip("mmengine", reason="pip install -e '.[test]' (mmengine-lite)")
    from mmengine.registry import MODELS, Registry

    assert "mmengine.registry.MODELS" in mm.REGISTERED_IN  # done at import
    assert MODELS.get("PoseNDFPriorLoss") is mm.PoseNDFPriorLoss
    with pytest.warns(UserWarning, match="already registered.*nothing to do"):
        mm.register_mmengine()
    # an OpenMMLab 2.x project's MODELS (child of mmengine's root) finds it
    child = Registry("model", parent=MODELS, scope="someproject")
    loss = child.build(dict(type="PoseNDFPriorLoss", prior="tiny_test", loss_weight=22.8, reduction="sum"))
    assert isinstance(loss, mm.PoseNDFPriorLoss) and loss.loss_weight == pytest.approx(22.8)
    other = Registry("other")
    other.register_module(name="PoseNDFPriorLoss", module=torch.nn.L1Loss)
    with pytest.raises(KeyError, match="different.*another name"):
        mm.register_in(other)
    mm.register_in(other, name="PoseNDFPriorLoss2")
    assert other.get("PoseNDFPriorLoss2") is mm.PoseNDFPriorLoss


def test_mmengine_config_with_custom_imports(tmp_path):
    pytest.importorskip("mmengine", reason="pip install -e '.[test]' (mmengine-lite)")
    from mmengine.config import Config
    from mmengine.registry import MODELS

    cfg_file = tmp_path / "loss_cfg.py"
    cfg_file.write_text(textwrap.dedent("""
        custom_imports = dict(imports=['posendf_plugin.integrations.mmhuman3d'], allow_failed_imports=False)
        pose_prior_loss = dict(type='PoseNDFPriorLoss', prior='tiny_test', loss_weight=2.00e5, reduction='sum')
    """))
    cfg = Config.fromfile(str(cfg_file))
    loss = MODELS.build(cfg.pose_prior_loss)
    assert isinstance(loss, mm.PoseNDFPriorLoss) and loss.reduction == "sum"


# -- mmhuman3d (mmcv 1.x) through tools/smplify.py's path ------------------------------------------

LOSSES_BUILDER = '''
from mmcv.utils import Registry
LOSSES = Registry('losses')
def build_loss(cfg):
    """Build loss."""
    if cfg is None:
        return None
    return LOSSES.build(cfg)
'''

# SMPLify.__init__'s real keyword list (mmhuman3d/models/registrants/smplify.py); the losses are
# built with build_loss and the pose prior is called as _compute_loss calls it
REGISTRANTS_BUILDER = '''
import torch
from mmcv.utils import Registry
from mmhuman3d.models.losses.builder import build_loss

class SMPLify(object):
    def __init__(self, body_model, num_epochs=20, camera=None, img_res=224, stages=None,
                 optimizer=None, keypoints2d_loss=None, keypoints3d_loss=None,
                 shape_prior_loss=None, joint_prior_loss=None, smooth_loss=None,
                 pose_prior_loss=None, pose_reg_loss=None, limb_length_loss=None,
                 use_one_betas_per_video=False, ignore_keypoints=None,
                 device=torch.device('cpu'), verbose=False):
        self.pose_prior_loss = build_loss(pose_prior_loss)

    def pose_prior_term(self, body_pose, pose_prior_weight=None, reduction_override=None):
        return self.pose_prior_loss(body_pose=body_pose, loss_weight_override=pose_prior_weight,
                                    reduction_override=reduction_override)

REGISTRANTS = Registry('registrants')
REGISTRANTS.register_module(name='SMPLify', module=SMPLify)

def build_registrant(cfg):
    """Build registrant."""
    if cfg is None:
        return None
    return REGISTRANTS.build(cfg)
'''

# the keys of configs/smplify/smplify.py that matter here
BASE_CONFIG = '''
type = 'SMPLify'
body_model = dict(type='SMPL', gender='neutral', num_betas=10, keypoint_src='smpl_45',
                  keypoint_dst='smpl_45', model_path='data/body_models/smpl', batch_size=1)
pose_prior_loss = dict(type='MaxMixturePrior', prior_folder='data', num_gaussians=8,
                       loss_weight=4.78**2, reduction='sum')
'''

# what integrations/README.md tells mmhuman3d users to write
POSENDF_CONFIG = '''
_base_ = ['smplify.py']

import posendf_plugin.integrations.mmhuman3d  # noqa: F401 -- registers PoseNDFPriorLoss

pose_prior_loss = dict(
    _delete_=True, type='PoseNDFPriorLoss', prior='tiny_test', loss_weight=2.00e5, reduction='sum')
'''


@pytest.fixture
def fake_mmhuman3d(tmp_path, monkeypatch):
    _mmcv1()
    root = tmp_path / "fake_mmh"
    losses = root / "mmhuman3d" / "models" / "losses"
    registrants = root / "mmhuman3d" / "models" / "registrants"
    for d in (losses, registrants):
        d.mkdir(parents=True)
    for d in (root / "mmhuman3d", root / "mmhuman3d" / "models", losses, registrants):
        (d / "__init__.py").write_text("")
    (losses / "builder.py").write_text(LOSSES_BUILDER)
    (registrants / "builder.py").write_text(REGISTRANTS_BUILDER)
    cfg_dir = tmp_path / "configs" / "smplify"
    cfg_dir.mkdir(parents=True)
    (cfg_dir / "smplify.py").write_text(BASE_CONFIG)
    (cfg_dir / "smplify_posendf.py").write_text(POSENDF_CONFIG)
    monkeypatch.syspath_prepend(str(root))
    for k in [k for k in sys.modules if k.startswith("mmhuman3d")]:
        monkeypatch.delitem(sys.modules, k)
    # as in a fresh tools/smplify.py process, the config's import line runs this module
    import posendf_plugin.integrations as pkg

    monkeypatch.delitem(sys.modules, mm.__name__)
    monkeypatch.delattr(pkg, "mmhuman3d")
    yield cfg_dir
    for k in [k for k in sys.modules if k.startswith("mmhuman3d")]:
        del sys.modules[k]
    try:  # the re-run module took mmengine's MODELS entry; give it back to the original class
        from mmengine.registry import MODELS
    except ImportError:
        return
    MODELS.register_module(name="PoseNDFPriorLoss", module=mm.PoseNDFPriorLoss, force=True)


def _loaded():
    return sys.modules[mm.__name__]  # the module the config's import line ran


def test_tools_smplify_builds_the_readme_config(fake_mmhuman3d):
    mmcv = _mmcv1()
    from mmhuman3d.models.registrants.builder import build_registrant  # tools/smplify.py's import

    # tools/smplify.py: Config.fromfile, update, build_registrant(dict(cfg)); the import line in
    # the config registers the loss in mmhuman3d's LOSSES (an mmcv 1.x Registry)
    smplify_config = mmcv.Config.fromfile(str(fake_mmhuman3d / "smplify_posendf.py"))
    assert smplify_config.pose_prior_loss.to_dict() == dict(
        type="PoseNDFPriorLoss", prior="tiny_test", loss_weight=2.00e5, reduction="sum")
    smplify_config.update(dict(use_one_betas_per_video=False, num_epochs=1))
    smplify = build_registrant(dict(smplify_config))
    assert isinstance(smplify.pose_prior_loss, _loaded().PoseNDFPriorLoss)
    body_pose = random_poses(3, 69)
    e = TinyPrior().energy(body_pose)
    assert torch.allclose(smplify.pose_prior_term(body_pose), 2.00e5 * e.sum(), rtol=1e-5)
    per = smplify.pose_prior_term(body_pose, pose_prior_weight=2.0, reduction_override="none")
    assert per.shape == (3,) and torch.allclose(per, 2.0 * e, rtol=1e-5)
    assert _loaded().REGISTERED_IN[0] == "mmhuman3d.models.losses.builder.LOSSES"
    with pytest.warns(UserWarning, match="already registered in registry 'losses'"):
        _loaded().register_mmhuman3d()


def test_the_mistakes_the_readme_avoids(fake_mmhuman3d):
    mmcv = _mmcv1()
    from mmhuman3d.models.registrants.builder import build_registrant

    # custom_imports in the config is passed on to SMPLify.__init__ by build_registrant(dict(cfg))
    bad = fake_mmhuman3d / "with_custom_imports.py"
    bad.write_text(POSENDF_CONFIG + "\ncustom_imports = dict(imports=['posendf_plugin.integrations.mmhuman3d'])\n")
    with pytest.raises(TypeError, match="custom_imports"):
        build_registrant(dict(mmcv.Config.fromfile(str(bad))))
    # without _delete_=True the GMM's keys are merged in and reach PoseNDFPriorLoss
    merged = fake_mmhuman3d / "no_delete.py"
    merged.write_text(POSENDF_CONFIG.replace("_delete_=True, ", ""))
    with pytest.raises(TypeError, match="prior_folder"):
        build_registrant(dict(mmcv.Config.fromfile(str(merged))))


def test_building_the_loss_guards_torchs_lbfgs_line_search(monkeypatch):
    """mmhuman3d's SMPLify runs torch.optim.LBFGS with the strong-Wolfe search; in the real run
    with the session-14 distance field at its calibrated weight (integrations/README.md) a trial
    step overflowed the loss and the cubic step came out NaN, so did the body pose."""
    import math

    import torch.optim.lbfgs as lbfgs

    original = getattr(lbfgs._cubic_interpolate, "_posendf_unguarded", lbfgs._cubic_interpolate)
    monkeypatch.setattr(lbfgs, "_cubic_interpolate", original)  # unguarded for this test, restored after
    # the failing call's values, measured in that run (t = 0 and t = 0.0025; float32 slopes)
    g1, g2 = torch.tensor(-2.1635564e10), torch.tensor(1.3954221e29)
    seen = (0.0, 1818.54, g1, 0.0025, 3.4534167e24, g2)
    assert math.isnan(float(original(*seen)))
    mm.PoseNDFPriorLoss(prior=TinyPrior())
    assert lbfgs._cubic_interpolate(*seen) == pytest.approx(0.0025 / 2)
    ok = (0.0, 1.0, torch.tensor(-1.0), 1.0, 0.5, torch.tensor(0.5))  # a finite cubic step: unchanged
    assert lbfgs._cubic_interpolate(*ok) == original(*ok)
    mm.PoseNDFPriorLoss(prior=TinyPrior())  # a second loss does not wrap it twice
    assert lbfgs._cubic_interpolate._posendf_unguarded is original


def test_a_folder_named_mmhuman3d_is_not_taken_for_the_package(tmp_path, monkeypatch):
    """Running from the parent of a clone puts a folder ``mmhuman3d/`` (no ``__init__.py`` at
    that level) on the path: the error says so, instead of blaming mmcv."""
    import posendf_plugin.integrations.mmhuman3d as mm

    (tmp_path / "mmhuman3d").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mmhuman3d", raising=False)
    import importlib as _il
    _il.invalidate_caches()
    if _il.util.find_spec("mmhuman3d").origin not in (None, "namespace"):
        pytest.skip("a real mmhuman3d package is installed ahead of the folder")
    with pytest.raises(ImportError, match=r"folder without __init__.py .*not the mmhuman3d package"):
        mm.register_mmhuman3d()
