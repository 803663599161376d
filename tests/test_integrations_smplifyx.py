"""SMPLify-X adapter, tested against a harness that reproduces SMPLify-X's documented calls.

SMPLify-X is not on PyPI, so a fake checkout is written to a tmp dir: ``smplifyx/prior.py``
with a ``create_prior`` mirroring the real factory (gmm / l2 / angle / none, ValueError
otherwise), and ``smplifyx/main.py`` doing ``from prior import create_prior`` and calling it as
the real main.py does (``create_prior(prior_type=args.get('body_prior_type'), dtype=dtype,
**args)``), plus ``SMPLifyLoss``'s pose-prior term (``torch.sum(prior(body_pose, betas)) *
body_pose_weight ** 2``). The body model is the real ``smplx.SMPL`` (installed here) built from
a synthetic model struct, so ``body_model_output.body_pose`` is what smplx really returns.
"""
from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch

from test_integrations_common import TinyPrior, random_poses, record_posendf_factory

from posendf_plugin.integrations import smplifyx as sx

PRIOR_PY = textwrap.dedent(
    '''
    import torch
    import torch.nn as nn

    def create_prior(prior_type, **kwargs):
        if prior_type == 'gmm':
            prior = MaxMixturePrior(**kwargs)
        elif prior_type == 'l2':
            return L2Prior(**kwargs)
        elif prior_type == 'angle':
            return SMPLifyAnglePrior(**kwargs)
        elif prior_type == 'none' or prior_type is None:
            def no_prior(*args, **kwargs):
                return 0.0
            prior = no_prior
        else:
            raise ValueError('Prior {}'.format(prior_type) + ' is not implemented')
        return prior

    class SMPLifyAnglePrior(nn.Module):
        def __init__(self, dtype=torch.float32, **kwargs):
            super().__init__()

    class L2Prior(nn.Module):
        def __init__(self, dtype=torch.float32, reduction='sum', **kwargs):
            super().__init__()
        def forward(self, module_input, *args):
            return torch.sum(module_input.pow(2))

    class MaxMixturePrior(nn.Module):
        def __init__(self, prior_folder='prior', num_gaussians=6, dtype=torch.float32, **kwargs):
            super().__init__()
    '''
)

MAIN_PY = textwrap.dedent(
    '''
    import torch
    from prior import create_prior

    def build_body_pose_prior(**args):
        float_dtype = args.get('float_dtype', 'float32')
        dtype = torch.float64 if float_dtype == 'float64' else torch.float32
        return create_prior(prior_type=args.get('body_prior_type'), dtype=dtype, **args)

    def pose_prior_loss(body_pose_prior, body_model_output, body_pose_weight):
        # fitting.SMPLifyLoss.forward with use_vposer=False
        return torch.sum(body_pose_prior(body_model_output.body_pose,
                                         body_model_output.betas)) * body_pose_weight ** 2

    if __name__ == "__main__":
        import sys
        body_pose_prior = build_body_pose_prior(body_prior_type=sys.argv[1], model_type="smpl")
    '''
)

# smplifyx/optimizers/lbfgs_ls.py: the strong-Wolfe line search's interpolation step, the
# textbook cubic minimiser of two points with values and slopes (Nocedal & Wright, eq. 3.59), as
# SMPLify-X computes it; an overflowing trial point makes it NaN
LBFGS_LS_PY = textwrap.dedent(
    '''
    def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
        lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
        d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        d2_square = d1 ** 2 - g1 * g2
        if d2_square >= 0:
            d2 = d2_square ** 0.5
            if x1 <= x2:
                t = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
            else:
                t = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
            return min(max(t, lo), hi)
        return (lo + hi) / 2.

    def _strong_Wolfe(obj_func, x, t, d, f, g, gtd, **kwargs):
        return _cubic_interpolate(0.0, f, gtd, t, *obj_func(x, t, d))
    '''
)

# what SMPLify-X's parser hands to create_prior besides prior_type (a subset of cmd_parser's keys)
SMPLIFYX_ARGS = dict(
    prior_folder="prior", num_gaussians=8, use_vposer=False, float_dtype="float32",
    model_type="smpl", use_hands=False, use_face=False, left_hand_prior_type="mog",
)


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A fake smplify-x checkout; sys.path / sys.modules restored afterwards."""
    pkg = tmp_path / "smplify-x" / "smplifyx"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "prior.py").write_text(PRIOR_PY)
    (pkg / "main.py").write_text(MAIN_PY)
    (pkg / "fit_harness.py").write_text("from smplifyx.prior import create_prior\n")
    (pkg / "optimizers").mkdir()
    (pkg / "optimizers" / "__init__.py").write_text("")
    (pkg / "optimizers" / "lbfgs_ls.py").write_text(LBFGS_LS_PY)
    monkeypatch.setattr(sys, "path", list(sys.path))
    saved = {k: sys.modules[k] for k in ("prior", "main", "smplifyx", "optimizers", "optimizers.lbfgs_ls") if k in sys.modules}
    yield pkg
    for k in [k for k in sys.modules if k in ("prior", "main") or k.startswith(("smplifyx", "optimizers"))]:
        del sys.modules[k]
    sys.modules.update(saved)


def fake_smpl(batch_size=1, dtype=torch.float32):
    """The real smplx.SMPL on a synthetic model struct (the licensed model files are absent)."""
    import smplx
    from smplx.utils import Struct

    from posendf_plugin.skeleton import SMPL_PARENTS, SMPL_REST_JOINTS

    n_vert, per = 6890, 6890 // 24 + 1
    rng = np.random.default_rng(0)
    vt = np.repeat(SMPL_REST_JOINTS.numpy(), per, axis=0)[:n_vert] + rng.normal(0, 0.01, (n_vert, 3))
    jreg = np.zeros((24, n_vert), np.float32)
    jreg[np.arange(24), np.arange(24) * per] = 1
    weights = np.zeros((n_vert, 24), np.float32)
    weights[np.arange(n_vert), np.arange(n_vert) // per] = 1
    kin = np.stack([np.array(SMPL_PARENTS) % 2**32, np.arange(24)]).astype(np.int64)
    ds = Struct(
        v_template=vt.astype(np.float32), shapedirs=np.zeros((n_vert, 3, 10), np.float32),
        posedirs=np.zeros((n_vert, 3, 207), np.float32), J_regressor=jreg, weights=weights,
        kintree_table=kin, f=np.zeros((1, 3), np.int64),
    )
    return smplx.SMPL(model_path="", data_struct=ds, batch_size=batch_size, dtype=dtype)


def test_absent_host_is_a_clear_import_error(monkeypatch):
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "smplify" not in p])
    for k in ("prior", "smplifyx", "smplifyx.prior"):
        monkeypatch.delitem(sys.modules, k, raising=False)
    with pytest.raises(ImportError, match="SMPLify-X is not importable.*PYTHONPATH"):
        sx.register()


def test_script_mode_register_then_fit_with_real_smplx(checkout):
    sys.path.insert(0, str(checkout))  # `python smplifyx/main.py` runs with smplifyx/ on the path
    import main as smplifyx_main  # did `from prior import create_prior` before register()

    patched = sx.register(priors={"posendf": "tiny_test", "nrdf": TinyPrior()})
    assert {"prior", "main"} <= set(patched)
    assert sx.is_registered()

    prior = smplifyx_main.build_body_pose_prior(body_prior_type="posendf", **SMPLIFYX_ARGS)
    assert isinstance(prior, torch.nn.Module) and prior.expected_width == 69
    nrdf = smplifyx_main.build_body_pose_prior(body_prior_type="nrdf", **SMPLIFYX_ARGS)
    assert isinstance(nrdf.prior, TinyPrior)
    # SMPLify-X's own prior types still come from its factory
    assert type(smplifyx_main.build_body_pose_prior(body_prior_type="l2", **SMPLIFYX_ARGS)).__name__ == "L2Prior"
    with pytest.raises(ValueError, match="not implemented"):
        smplifyx_main.build_body_pose_prior(body_prior_type="bogus", **SMPLIFYX_ARGS)

    body_model = fake_smpl()
    # fit_single_frame: body_model.reset_params(body_pose=body_pose_prior.get_mean())
    body_model.reset_params(body_pose=prior.get_mean().detach().cpu())
    with torch.no_grad():
        body_model.body_pose[:] = random_poses(1, 69, scale=0.5, seed=3)
    out = body_model(return_full_pose=True)
    assert out.body_pose.shape == (1, 69)
    per_sample = prior(out.body_pose, out.betas)
    assert per_sample.shape == (1,)
    w = 4.78
    loss = smplifyx_main.pose_prior_loss(prior, out, torch.tensor(w))
    assert torch.allclose(loss, TinyPrior().energy(out.body_pose).sum() * w**2)
    loss.backward()
    assert body_model.body_pose.grad is not None and body_model.body_pose.grad.abs().sum() > 0

    # a few optimiser steps on the prior term alone lower it (the prior pulls the pose)
    opt = torch.optim.Adam([body_model.body_pose], lr=0.05)
    first = loss.item()
    for _ in range(20):
        opt.zero_grad()
        out = body_model(return_full_pose=True)
        term = smplifyx_main.pose_prior_loss(prior, out, torch.tensor(w))
        term.backward()
        opt.step()
    assert term.item() < 0.7 * first


def test_float64_and_smplx_layout(checkout):
    sys.path.insert(0, str(checkout))
    import main as smplifyx_main

    sx.register(priors={"posendf": "tiny_test"})
    args = dict(SMPLIFYX_ARGS, model_type="smplx", float_dtype="float64")
    prior = smplifyx_main.build_body_pose_prior(body_prior_type="posendf", **args)
    assert prior.get_mean().shape == (1, 63)
    bp = random_poses(2, 63).double().requires_grad_(True)
    e = prior(bp, torch.zeros(2, 10, dtype=torch.float64))
    assert e.shape == (2,) and e.dtype == torch.float64
    # SMPL body pose (69) into a prior built for SMPL-X (63): clear message naming both
    with pytest.raises(ValueError, match=r"shape \(2, 69\).*SMPL body_pose.*\(B, 63\)"):
        prior(random_poses(2, 69), None)


def test_package_mode_double_registration_and_unregister(checkout):
    sys.path.insert(0, str(checkout.parent))  # `import smplifyx`
    import smplifyx.fit_harness as harness
    import smplifyx.prior as sp

    original = sp.create_prior
    sx.register(priors={"posendf": "tiny_test"})
    assert sp.create_prior is not original and harness.create_prior is sp.create_prior
    with pytest.warns(UserWarning, match="already registered.*replacing"):
        sx.register(priors={"posendf": "tiny_test", "mine": TinyPrior()}, scale=3.0)
    # never wrapped twice: the stored original is SMPLify-X's own function
    assert sp.create_prior._posendf_patch.original is original
    p = sp.create_prior("mine", dtype=torch.float32, model_type="smpl")
    assert p.scale == 3.0
    restored = sx.unregister()
    assert "smplifyx.prior" in restored and sp.create_prior is original and harness.create_prior is original
    with pytest.raises(RuntimeError, match="not registered"):
        sx.unregister()
    with pytest.raises(ValueError, match="SMPLify-X's own prior types"):
        sx.register(priors={"gmm": "tiny_test"})


@pytest.mark.parametrize("mode", ["script", "package"])
def test_register_guards_the_line_search_against_an_overflowing_trial_step(checkout, mode):
    """The real SMPLify-X run of the density field (integrations/README.md) ended in NaN when a
    trial step overflowed the loss; register() makes that step the middle of the bracket."""
    import importlib
    import math

    sys.path.insert(0, str(checkout if mode == "script" else checkout.parent))
    ls = importlib.import_module("optimizers.lbfgs_ls" if mode == "script" else "smplifyx.optimizers.lbfgs_ls")
    original = ls._cubic_interpolate
    # the values of the failing call, measured in the real run (t = 0 and t = 2^-10; losses are
    # floats, slopes float64 tensors, as SMPLify-X passes them)
    g1, g2 = torch.tensor(-1.470e12, dtype=torch.float64), torch.tensor(7.108e199, dtype=torch.float64)
    seen = (0.0, 86414.32, g1, 0.0009765625, 1.584e194, g2)
    assert math.isnan(original(*seen))  # the harness reproduces the failure
    sx.register(priors={"posendf": "tiny_test"})
    assert ls._cubic_interpolate(*seen) == pytest.approx(0.0009765625 / 2)
    assert ls._strong_Wolfe(lambda x, t, d: (1.584e194, g2), None, 0.0009765625, None, 86414.32, None, g1) \
        == pytest.approx(0.0009765625 / 2)  # the line search looks the step up at call time
    assert ls._cubic_interpolate(0.0, 1.0, -1.0, 1.0, 0.5, 0.5) == original(0.0, 1.0, -1.0, 1.0, 0.5, 0.5)  # finite: unchanged
    sx.register(priors={"posendf": "tiny_test"})  # registering again does not wrap it twice
    assert ls._cubic_interpolate._posendf_unguarded is original
    sx.unregister()
    assert ls._cubic_interpolate is original


class _ScaledTiny(TinyPrior):
    def __init__(self, gain):
        super().__init__()
        self.gain.fill_(gain)


def test_calibration_matches_contrast():
    poses = random_poses(300, 63, scale=0.15, seed=5)
    cal = sx.calibrate_weights(_ScaledTiny(4.0), TinyPrior(), poses, reference_weights=(404.0, 4.78), sigma=0.25)
    # 4x the energy contrast -> half the weight (SMPLify-X squares the weight)
    assert cal.factor == pytest.approx(0.5, rel=1e-4)
    assert cal.weights == pytest.approx((202.0, 2.39), rel=1e-4)
    assert cal.scale == pytest.approx(0.25, rel=1e-4)


def test_runner_runs_unmodified_main(checkout):
    g = sx.main([str(checkout / "main.py"), "l2"])
    assert type(g["body_pose_prior"]).__name__ == "L2Prior"  # SMPLify-X's own type, via the patch
    assert getattr(g["create_prior"], "_posendf_patch", None) is not None
    with pytest.raises(FileNotFoundError, match="main.py"):
        sx.main([str(checkout / "nope.py")])
    g = sx.main([str(checkout / "main.py"), "--posendf-margin", "0.05", "l2"])
    assert g["create_prior"]._posendf_patch.margin == 0.05  # the runner's margin reaches the patch
    with pytest.raises(ValueError, match="margin"):
        sx.main([str(checkout / "main.py"), "--posendf-margin", "-1", "l2"])


# Per-stage lists of SMPLify-X's shipped configs, as in the real files: the number of stages is
# len(data_weights); cfg_files/fit_smpl.yaml sets 4 data weights, fit_smplx.yaml and fit_smplh.yaml
# set none, so cmd_parser's default [1] * 5 applies (their body_pose_prior_weights have 5 entries).
HOST_CONFIGS = {
    "fit_smpl.yaml": dict(data_weights=[1.0] * 4, body_pose_prior_weights=[404.0, 404.0, 57.4, 4.78],
                          shape_weights=[100.0, 50.0, 10.0, 5.0], model_type="smpl"),
    "fit_smplx.yaml": dict(data_weights=[1.0] * 5, body_pose_prior_weights=[404.0, 404.0, 57.4, 4.78, 4.78],
                           shape_weights=[100.0, 50.0, 10.0, 5.0, 5.0], model_type="smplx"),
    "fit_smplh.yaml": dict(data_weights=[1.0] * 5, body_pose_prior_weights=[404.0, 404.0, 57.4, 4.78, 4.78],
                           shape_weights=[100.0, 50.0, 10.0, 5.0, 5.0], model_type="smplh"),
}


def fit_single_frame_weight_checks(data_weights=None, body_pose_prior_weights=None, shape_weights=None, **kw):
    """fit_single_frame.py:fit_single_frame, its stage-count assertions (defaults included)."""
    if data_weights is None:
        data_weights = [1, ] * 5
    if body_pose_prior_weights is None:
        body_pose_prior_weights = [4.04 * 1e2, 4.04 * 1e2, 57.4, 4.78]
    assert len(data_weights) == len(body_pose_prior_weights), (
        f"Number of Body pose prior weights {len(body_pose_prior_weights)} does not match the number "
        f"of data term weights {len(data_weights)}")
    assert len(shape_weights) == len(body_pose_prior_weights)
    return len(data_weights)


@pytest.mark.parametrize("config", sorted(HOST_CONFIGS))
def test_calibrated_weights_match_each_host_config(checkout, config):
    sys.path.insert(0, str(checkout))
    import main as smplifyx_main

    sx.register(priors={"posendf": "tiny_test", "posendf_density": "tiny_test", "nrdf": TinyPrior()})
    host = dict(SMPLIFYX_ARGS, **HOST_CONFIGS[config])
    stages = len(host["data_weights"])
    for prior_type in ("posendf", "posendf_density", "nrdf"):
        weights = list(sx.calibrated_body_pose_prior_weights(prior_type, config))
        assert len(weights) == stages
        args = dict(host, body_pose_prior_weights=weights)
        # main.py builds the prior first, then fit_single_frame checks the lists
        smplifyx_main.build_body_pose_prior(body_prior_type=prior_type, **args)
        assert fit_single_frame_weight_checks(**args) == stages
    assert sx.calibrated_body_pose_prior_weights("posendf", config)[:4] == (7584.0, 7584.0, 1078.0, 89.73)
    # the density-aware field has its own list (a smaller real-vs-noisy gap: larger weights)
    density = sx.calibrated_body_pose_prior_weights("posendf_density", config)
    assert density[:4] == (7775.0, 7775.0, 1105.0, 91.99) and density[4:] == (91.99,) * (stages - 4)
    assert all(d > w for d, w in zip(density, sx.calibrated_body_pose_prior_weights("posendf", config)))


def test_density_field_from_the_host_config(checkout, monkeypatch):
    """``body_prior_type: 'posendf_density'`` with the default registration builds
    ``get_prior('posendf', pretrained='posendf_density')`` and checks its own calibrated list."""
    calls = record_posendf_factory(monkeypatch)
    sys.path.insert(0, str(checkout))
    import main as smplifyx_main

    sx.register()
    cfg = dict(SMPLIFYX_ARGS, **HOST_CONFIGS["fit_smplx.yaml"])
    cfg["body_pose_prior_weights"] = list(sx.calibrated_body_pose_prior_weights("posendf_density", "fit_smplx.yaml"))
    prior = smplifyx_main.build_body_pose_prior(body_prior_type="posendf_density", **cfg)
    assert isinstance(prior.prior, TinyPrior) and prior.expected_width == 63
    assert calls == [{"pretrained": "posendf_density"}]
    smplifyx_main.build_body_pose_prior(body_prior_type="posendf", **cfg)
    assert calls[-1] == {}  # 'posendf' stays the distance field
    cfg["body_pose_prior_weights"] = cfg["body_pose_prior_weights"][:4]
    with pytest.raises(ValueError, match=r"shipped 'posendf_density' model.*\[7775, 7775, 1105, 91\.99, 91\.99\]"):
        smplifyx_main.build_body_pose_prior(body_prior_type="posendf_density", **cfg)


def test_wrong_stage_count_is_one_clear_error_before_the_fit(checkout):
    sys.path.insert(0, str(checkout))
    import main as smplifyx_main

    sx.register(priors={"posendf": "tiny_test"})
    four = [7584.0, 7584.0, 1078.0, 89.73]
    smplx_cfg = dict(SMPLIFYX_ARGS, **HOST_CONFIGS["fit_smplx.yaml"])
    smplx_cfg["body_pose_prior_weights"] = four
    # SMPLify-X itself would stop later, in fit_single_frame, with an AssertionError
    with pytest.raises(AssertionError, match="4 does not match the number of data term weights 5"):
        fit_single_frame_weight_checks(**smplx_cfg)
    with pytest.raises(ValueError, match=r"4 entries.*but the fit has 5 stages \(data_weights = \[1.0, 1.0, 1.0, 1.0, 1.0\]; cmd_parser's default is \[1\] \* 5") as e:
        smplifyx_main.build_body_pose_prior(body_prior_type="posendf", **smplx_cfg)
    assert "[7584, 7584, 1078, 89.73, 89.73]" in str(e.value)
    # no data_weights key at all (cmd_parser default [1] * 5 applies)
    no_dw = {k: v for k, v in smplx_cfg.items() if k != "data_weights"}
    with pytest.raises(ValueError, match=r"sets no data_weights.*\[1\] \* 5"):
        smplifyx_main.build_body_pose_prior(body_prior_type="posendf", **no_dw)
    five_on_smpl = dict(SMPLIFYX_ARGS, **HOST_CONFIGS["fit_smpl.yaml"])
    five_on_smpl["body_pose_prior_weights"] = four + [89.73]
    with pytest.raises(ValueError, match=r"5 entries.*4 stages.*\[7584, 7584, 1078, 89\.73\]"):
        smplifyx_main.build_body_pose_prior(body_prior_type="posendf", **five_on_smpl)
    known = r"known \['nrdf', 'posendf', 'posendf_density'\]"
    with pytest.raises(ValueError, match=r"no calibrated weights for prior 'vposer': " + known):
        sx.calibrated_body_pose_prior_weights("vposer")
    with pytest.raises(ValueError, match="config must be one of"):
        sx.calibrated_body_pose_prior_weights("posendf_density", "fit_smplx_posendf.yaml")


def test_vposer_weights_left_in_the_config_are_a_warning(checkout, recwarn):
    """SMPLify-X's shipped ``body_pose_prior_weights`` are tuned for VPoser's ‖z‖² / the GMM; kept
    with a Pose-NDF ``body_prior_type`` the prior is ~19 × too weak per stage: one warning with
    the calibrated list. The calibrated list, or ``register(scale=...)``, does not warn."""
    sys.path.insert(0, str(checkout))
    import main as smplifyx_main

    sx.register(priors={"posendf": "tiny_test", "posendf_density": "tiny_test"})
    cfg = dict(SMPLIFYX_ARGS, **HOST_CONFIGS["fit_smplx.yaml"])
    cfg["body_pose_prior_weights"] = [404.0, 404.0, 57.4, 4.78, 4.78]
    with pytest.warns(UserWarning, match=r"SMPLify-X: body_pose_prior_weights = \[404.0, 404.0, 57.4, 4.78, 4.78\] is the value tuned for VPoser.*\[7775, 7775, 1105, 91.99, 91.99\] for body_prior_type 'posendf_density'") as rec:
        smplifyx_main.build_body_pose_prior(body_prior_type="posendf_density", **cfg)
    assert [w.filename for w in rec if "tuned for VPoser" in str(w.message)] == [str(checkout / "main.py")]  # SMPLify-X's line
    recwarn.clear()
    cfg["body_pose_prior_weights"] = list(sx.calibrated_body_pose_prior_weights("posendf", "fit_smplx.yaml"))
    smplifyx_main.build_body_pose_prior(body_prior_type="posendf", **cfg)
    assert not [w for w in recwarn if "tuned for VPoser" in str(w.message)]
    sx.unregister()
    sx.register(priors={"posendf": "tiny_test"}, scale=350.0)
    cfg["body_pose_prior_weights"] = [404.0, 404.0, 57.4, 4.78, 4.78]
    smplifyx_main.build_body_pose_prior(body_prior_type="posendf", **cfg)
    assert not [w for w in recwarn if "tuned for VPoser" in str(w.message)]


def test_runner_says_which_model_smplifyx_got(checkout, capsys):
    """SMPLify-X logs its settings by print, not the prior it built: the runner prints one line
    naming the model and its file, so a log tells 'posendf' and 'posendf_density' apart."""
    sx.main([str(checkout / "main.py"), "posendf_density"])
    out = capsys.readouterr().out
    assert "posendf_plugin: body_prior_type 'posendf_density' -> prior=posendf (weights: shipped 'posendf_density' (posendf_density.pt))" in out
    sx.main([str(checkout / "main.py"), "l2"])
    assert "posendf_plugin" not in capsys.readouterr().out  # SMPLify-X's own types: nothing added


def test_runner_checkpoint_applies_to_both_posendf_types(checkout, capsys):
    """--posendf-checkpoint replaces the Pose-NDF field the YAML selects, 'posendf' or
    'posendf_density' (it used to reach 'posendf' only: the density type silently kept the
    shipped field); a missing file is refused before SMPLify-X starts."""
    from _ndf_fixtures import trained_tiny

    ck = str(trained_tiny())
    for kind in ("posendf", "posendf_density"):
        sx.main([str(checkout / "main.py"), "--posendf-checkpoint", ck, kind])
        out = capsys.readouterr().out
        assert f"body_prior_type '{kind}' -> prior=posendf (weights: {ck}" in out, out
    with pytest.raises(FileNotFoundError, match="--posendf-checkpoint .*nope.pt: no such file"):
        sx.main([str(checkout / "main.py"), "--posendf-checkpoint", str(checkout / "nope.pt"), "posendf_density"])
