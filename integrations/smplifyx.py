"""Pose-NDF (and NRDF) as ``body_prior_type`` of an unmodified SMPLify-X checkout.

SMPLify-X (vchoutas/smplify-x) builds its body-pose prior with
``create_prior(prior_type=args['body_prior_type'], dtype=dtype, **args)`` (``smplifyx/main.py``)
and, in ``fitting.SMPLifyLoss.forward`` with ``use_vposer: false``, adds
``torch.sum(body_pose_prior(body_model_output.body_pose, body_model_output.betas)) *
body_pose_weight ** 2``; ``fit_single_frame`` starts from ``body_pose_prior.get_mean()``.
:func:`register` wraps ``create_prior`` so that ``prior_type='posendf'`` / ``'posendf_density'``
/ ``'nrdf'`` return a :class:`~._common.HostPosePrior` with exactly that surface:
``forward(body_pose, betas) -> (B,)`` and ``get_mean() -> (1, W)``.

SMPLify-X is run as ``python smplifyx/main.py`` (its modules import each other as top-level
``prior``, ``fitting`` ...) or imported as the ``smplifyx`` package; :func:`register` patches
whichever of ``smplifyx.prior`` / ``prior`` is SMPLify-X's, plus every already-imported module
that did ``from prior import create_prior`` (``main``, ``__main__``, ``smplifyx.main``).

With ``use_vposer: true`` SMPLify-X never calls the body-pose prior (it penalises ‖z‖² of the
VPoser latent instead), so the prior only takes effect with ``use_vposer: false``.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from posendf_plugin.priors.base import PosePrior

from ._common import (
    SMPL_BODY_POSE_WIDTH,
    SMPLX_BODY_POSE_WIDTH,
    HostPosePrior,
    PriorLike,
    SeparationStats,
    check_margin,
    guard_line_search,
    resolve_prior,
    separation_stats,
    unguard_line_search,
    warn_host_weight,
)

__all__ = [
    "DEFAULT_PRIORS",
    "SMPLIFYX_DEFAULT_BODY_POSE_PRIOR_WEIGHTS",
    "SMPLIFYX_CONFIG_BODY_POSE_PRIOR_WEIGHTS",
    "SMPLIFYX_DEFAULT_NUM_STAGES",
    "CALIBRATED_STAGE_WEIGHTS",
    "calibrated_body_pose_prior_weights",
    "check_stage_weights",
    "register",
    "unregister",
    "is_registered",
    "build_smplifyx_prior",
    "Calibration",
    "calibrate_weights",
    "check_host_weights",
    "main",
]

#: ``body_prior_type`` value -> prior name resolved with ``get_prior`` when SMPLify-X asks
#: (``'posendf_density'``: the density-aware Pose-NDF, ``get_prior('posendf',
#: pretrained='posendf_density')``, see :data:`~._common.SHIPPED_PRIOR_ALIASES`)
DEFAULT_PRIORS: Dict[str, PriorLike] = {"posendf": "posendf", "posendf_density": "posendf_density", "nrdf": "nrdf"}
#: ``body_pose_prior_weights`` of SMPLify-X's shipped configs (one weight per optimisation
#: stage). The number of stages is ``len(data_weights)``: fit_smpl.yaml sets 4 data weights;
#: fit_smplx.yaml and fit_smplh.yaml set none, so cmd_parser's default ``[1] * 5`` applies.
SMPLIFYX_CONFIG_BODY_POSE_PRIOR_WEIGHTS: Dict[str, Tuple[float, ...]] = {
    "fit_smplx.yaml": (404.0, 404.0, 57.4, 4.78, 4.78),
    "fit_smplh.yaml": (404.0, 404.0, 57.4, 4.78, 4.78),
    "fit_smpl.yaml": (404.0, 404.0, 57.4, 4.78),
}
#: the 5-stage list of cfg_files/fit_smplx.yaml (the config SMPLify-X's README runs)
SMPLIFYX_DEFAULT_BODY_POSE_PRIOR_WEIGHTS: Tuple[float, ...] = SMPLIFYX_CONFIG_BODY_POSE_PRIOR_WEIGHTS["fit_smplx.yaml"]
#: stages when a config sets no ``data_weights`` (cmd_parser.py and fit_single_frame: ``[1] * 5``)
SMPLIFYX_DEFAULT_NUM_STAGES = 5
#: calibrated ``body_pose_prior_weights`` for the shipped models, stage by stage for VPoser's
#: (404, 404, 57.4, 4.78): the ‖z‖² contrast matched at sigma = 0.1 (``python -m
#: posendf_plugin.integrations.vposer --poses posendf_plugin/assets/cmu_val.npz --priors posendf
#: posendf_density nrdf vposer gmm``; see integrations/README.md). ``posendf`` is the distance
#: field (posendf_default.pt), ``posendf_density`` the density-aware field (posendf_density.pt).
#: A 5-stage config repeats the last weight, as fit_smplx.yaml repeats 4.78.
CALIBRATED_STAGE_WEIGHTS: Dict[str, Tuple[float, ...]] = {
    "posendf": (7584.0, 7584.0, 1078.0, 89.73),
    "posendf_density": (7775.0, 7775.0, 1105.0, 91.99),
    "nrdf": (3360.0, 3360.0, 477.4, 39.76),
}

_PRIOR_MODULE_CANDIDATES = ("smplifyx.prior", "prior")
_PATCH_ATTR = "_posendf_patch"
_MODEL_WIDTHS = {"smpl": SMPL_BODY_POSE_WIDTH, "smplh": SMPLX_BODY_POSE_WIDTH, "smplx": SMPLX_BODY_POSE_WIDTH}

_NOT_IMPORTABLE = (
    "SMPLify-X is not importable: found neither `smplifyx.prior` nor a top-level `prior` module "
    "with SMPLify-X's create_prior/MaxMixturePrior. Put the smplify-x checkout root on the path "
    "(PYTHONPATH=/path/to/smplify-x, for `import smplifyx`) or its smplifyx/ folder (the "
    "folder `python smplifyx/main.py` runs from, where main.py does `from prior import "
    "create_prior`), e.g. sys.path.insert(0, '/path/to/smplify-x/smplifyx'), then call "
    "register() again"
)


def build_smplifyx_prior(
    prior: PriorLike,
    model_type: Optional[str] = "smplx",
    dtype: torch.dtype = torch.float32,
    scale: float = 1.0,
    prior_kwargs: Optional[Mapping] = None,
    margin: float = 0.0,
) -> HostPosePrior:
    """The module SMPLify-X gets from ``create_prior('posendf', ...)``.

    Args:
        prior: prior name (resolved with ``get_prior``) or a built :class:`PosePrior`.
        model_type: SMPLify-X ``model_type``: ``'smplx'``/``'smplh'`` (body_pose (B, 63)) or
            ``'smpl'`` (body_pose (B, 69)); ``None`` accepts any layout.
        dtype: SMPLify-X's float dtype. The prior keeps its own dtype (a shared prior is never
            cast in place); inputs are cast to it and energies back to the input dtype.
        scale: multiplies the energy (see :func:`calibrate_weights`).
        margin: per-pose energy ``max(E − margin, 0)`` (:func:`._common.prior_energy`); 0 = off.
    """
    if model_type is not None and model_type not in _MODEL_WIDTHS:
        raise ValueError(f"model_type must be one of {sorted(_MODEL_WIDTHS)} or None, got {model_type!r}")
    width = _MODEL_WIDTHS.get(model_type) if model_type is not None else None
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    return HostPosePrior(resolve_prior(prior, prior_kwargs), expected_width=width, scale=scale, host="SMPLify-X", margin=margin)


@dataclass
class _Patch:
    original: Callable
    priors: Dict[str, PriorLike]
    prior_kwargs: Dict[str, dict]
    scale: float
    margin: float = 0.0
    announce: bool = False


def _looks_like_smplifyx_prior(mod: ModuleType) -> bool:
    return callable(getattr(mod, "create_prior", None)) and hasattr(mod, "MaxMixturePrior")


def _find_prior_modules() -> List[ModuleType]:
    found = []
    for name in _PRIOR_MODULE_CANDIDATES:
        mod = sys.modules.get(name)
        if mod is None:
            try:
                if importlib.util.find_spec(name.split(".")[0]) is None:
                    continue
                mod = importlib.import_module(name)
            except ImportError:
                continue
        if _looks_like_smplifyx_prior(mod) and mod not in found:
            found.append(mod)
    return found


def calibrated_body_pose_prior_weights(prior: str = "posendf_density", config: str = "fit_smplx.yaml") -> Tuple[float, ...]:
    """``body_pose_prior_weights`` for ``prior`` (a key of :data:`CALIBRATED_STAGE_WEIGHTS`:
    'posendf', 'posendf_density' or 'nrdf', the shipped models) in a copy of SMPLify-X's
    ``cfg_files/<config>``: one entry per stage of that config (5 for fit_smplx.yaml /
    fit_smplh.yaml, 4 for fit_smpl.yaml).

    Raises:
        ValueError: unknown prior or config name.
    """
    if prior not in CALIBRATED_STAGE_WEIGHTS:
        raise ValueError(
            f"no calibrated weights for prior {prior!r}: known {sorted(CALIBRATED_STAGE_WEIGHTS)}; "
            "for your own model run calibrate_weights()"
        )
    if config not in SMPLIFYX_CONFIG_BODY_POSE_PRIOR_WEIGHTS:
        raise ValueError(f"config must be one of {sorted(SMPLIFYX_CONFIG_BODY_POSE_PRIOR_WEIGHTS)}, got {config!r}")
    base = CALIBRATED_STAGE_WEIGHTS[prior]
    n = len(SMPLIFYX_CONFIG_BODY_POSE_PRIOR_WEIGHTS[config])
    return base + (base[-1],) * (n - len(base))


def check_stage_weights(prior_type: str, args: Mapping) -> None:
    """Check ``body_pose_prior_weights`` has one entry per SMPLify-X stage, before the fit.

    SMPLify-X runs ``len(data_weights)`` stages (``[1] * 5`` when the config sets none) and
    ``fit_single_frame`` asserts that every per-stage list has that length; this gives the same
    check earlier, as one ``ValueError`` that says which list to use.

    Args:
        prior_type: the ``body_prior_type`` being built (for the message).
        args: SMPLify-X's parsed arguments (what ``main.py`` passes to ``create_prior``).
    Raises:
        ValueError: the lengths differ.
    """
    weights = args.get("body_pose_prior_weights")
    if weights is None:
        return
    data_weights = args.get("data_weights")
    stages = SMPLIFYX_DEFAULT_NUM_STAGES if data_weights is None else len(data_weights)
    if len(weights) == stages:
        return
    where = (
        f"data_weights = {list(data_weights)}; cmd_parser's default is [1] * 5, which fit_smplx.yaml "
        "and fit_smplh.yaml keep, fit_smpl.yaml sets 4" if data_weights is not None
        else f"the config sets no data_weights, so SMPLify-X uses [1] * {stages}"
    )
    suggestion = ""
    if prior_type in CALIBRATED_STAGE_WEIGHTS and stages in (4, 5):
        cfg = "fit_smplx.yaml" if stages == 5 else "fit_smpl.yaml"
        suggestion = (
            f" (for the shipped '{prior_type}' model with a copy of cfg_files/{cfg}: "
            f"[{', '.join(f'{w:g}' for w in calibrated_body_pose_prior_weights(prior_type, cfg))}])"
        )
    raise ValueError(
        f"SMPLify-X config: body_pose_prior_weights has {len(weights)} entries {list(weights)} but the "
        f"fit has {stages} stages ({where}); give one weight per stage{suggestion}, or set data_weights "
        f"to {len(weights)} entries"
    )


def check_host_weights(prior_type: str, args: Mapping) -> bool:
    """Warn when ``body_pose_prior_weights`` is still the list SMPLify-X's shipped configs tune
    for VPoser's ‖z‖² and the GMM (:data:`SMPLIFYX_CONFIG_BODY_POSE_PRIOR_WEIGHTS`): with a
    Pose-NDF field that is ~19 × too weak per stage (its energy gap between real and noisy poses
    is ~350 × smaller than ‖z‖²'s), i.e. nearly a fit without a prior. The warning gives the
    calibrated list for a shipped model. Returns whether it warned."""
    weights = args.get("body_pose_prior_weights")
    if weights is None:
        return False
    stock = tuple(float(w) for w in weights)
    if not any(len(stock) == len(ref) and all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(stock, ref))
               for ref in SMPLIFYX_CONFIG_BODY_POSE_PRIOR_WEIGHTS.values()):
        return False
    cfg = "fit_smplx.yaml" if len(stock) == 5 else "fit_smpl.yaml"
    use = (
        f"[{', '.join(f'{w:g}' for w in calibrated_body_pose_prior_weights(prior_type, cfg))}]"
        if prior_type in CALIBRATED_STAGE_WEIGHTS else "weights calibrated for your model (calibrate_weights())"
    )
    warn_host_weight(
        "SMPLify-X", "body_pose_prior_weights", list(weights),
        "VPoser / the GMM (SMPLify-X's cfg_files)", f"{use} for body_prior_type '{prior_type}', or register(scale=...)",
    )
    return True


def _make_create_prior(patch: _Patch) -> Callable:
    def create_prior(prior_type, **kwargs):
        if prior_type in patch.priors:
            check_stage_weights(prior_type, kwargs)
            if patch.scale == 1.0:
                check_host_weights(prior_type, kwargs)
            module = build_smplifyx_prior(
                patch.priors[prior_type],
                model_type=kwargs.get("model_type", "smplx"),
                dtype=kwargs.get("dtype", torch.float32),
                scale=patch.scale,
                prior_kwargs=patch.prior_kwargs.get(prior_type) or None,
                margin=patch.margin,
            )
            if patch.announce:  # SMPLify-X logs its settings by print; say which model it got
                print(f"posendf_plugin: body_prior_type '{prior_type}' -> {module.extra_repr()}", flush=True)
            return module
        return patch.original(prior_type, **kwargs)

    setattr(create_prior, _PATCH_ATTR, patch)
    create_prior.__doc__ = (
        f"SMPLify-X create_prior, extended by posendf_plugin with prior_type in {sorted(patch.priors)}."
    )
    return create_prior


def _module_attr(mod, name: str):
    """``mod.name`` read from the module's ``__dict__`` (no ``__getattr__`` hooks: some
    modules, e.g. torch's class namespaces, raise on unknown attributes)."""
    d = getattr(mod, "__dict__", None) if isinstance(mod, ModuleType) else None
    return d.get(name) if isinstance(d, dict) else None


def _replace_everywhere(old: Callable, new: Callable) -> List[str]:
    patched = []
    for name, mod in list(sys.modules.items()):
        if _module_attr(mod, "create_prior") is old:
            setattr(mod, "create_prior", new)
            patched.append(name)
    return patched


def _line_search_modules(prior_modules: Sequence[ModuleType]) -> List[ModuleType]:
    """SMPLify-X's ``optimizers.lbfgs_ls`` next to each of its prior modules (``smplifyx.prior``
    -> ``smplifyx.optimizers.lbfgs_ls``, ``prior`` -> ``optimizers.lbfgs_ls``), imported if
    needed; only a module in the same folder, with ``_strong_Wolfe`` and ``_cubic_interpolate``."""
    from pathlib import Path

    found = []
    for pm in prior_modules:
        name = pm.__name__.rsplit(".", 1)[0] + ".optimizers.lbfgs_ls" if "." in pm.__name__ else "optimizers.lbfgs_ls"
        try:
            mod = sys.modules.get(name) or importlib.import_module(name)
        except ImportError:
            continue
        here = Path(getattr(pm, "__file__", "") or "").resolve().parent
        there = Path(getattr(mod, "__file__", "") or "").resolve().parent.parent
        if here == there and callable(_module_attr(mod, "_cubic_interpolate")) and callable(_module_attr(mod, "_strong_Wolfe")) \
                and mod not in found:
            found.append(mod)
    return found


def register(
    priors: Optional[Mapping[str, PriorLike]] = None,
    scale: float = 1.0,
    prior_kwargs_by_type: Optional[Mapping[str, Mapping]] = None,
    margin: float = 0.0,
    announce: bool = False,
    **prior_kwargs,
) -> List[str]:
    """Make ``body_prior_type: posendf`` (and ``posendf_density``, ``nrdf``) work in an
    unmodified SMPLify-X.

    Args:
        priors: ``{body_prior_type: prior name or built PosePrior}``; defaults to
            :data:`DEFAULT_PRIORS` (``body_prior_type: 'posendf_density'`` selects the
            density-aware field). Names are resolved lazily, when SMPLify-X calls
            ``create_prior``.
        scale: multiplies the energy; keep 1.0 and use the calibrated
            ``body_pose_prior_weights`` from the README, or set it to reuse weights tuned
            for another prior. At 1.0 a config that still holds SMPLify-X's own list (tuned
            for VPoser / the GMM) gets a warning with the calibrated one
            (:func:`check_host_weights`).
        **prior_kwargs: passed to ``get_prior(name, **prior_kwargs)`` for every name-based
            entry (e.g. ``checkpoint='my_ndf.pt'``). SMPLify-X's YAML cannot carry them
            (its parser rejects unknown keys), hence here.
        prior_kwargs_by_type: ``{body_prior_type: kwargs}`` for one entry only (e.g. a
            checkpoint for ``posendf`` but not for ``nrdf``); merged over ``prior_kwargs``.
        margin: per-pose energy ``max(E − margin, 0)`` of every registered prior (0 = off).
        announce: print one line naming the model (and file) each time SMPLify-X builds one of
            these priors, as SMPLify-X prints its own settings (the runner sets it).
    Returns:
        Names of the modules whose ``create_prior`` now points to the extended factory.
    Raises:
        ImportError: SMPLify-X is not importable (the message says how to fix the path).

    It also guards SMPLify-X's L-BFGS line search (``optim_type: lbfgsls``, its configs'
    default) against trial steps that overflow the loss: their cubic step, NaN in the original,
    becomes the middle of the bracket (:func:`~._common.guard_line_search`; measured on the
    real SMPLify-X, integrations/README.md). :func:`unregister` restores it.

    Registering again replaces the settings of the earlier registration (the original
    ``create_prior`` is kept; it is never wrapped twice) and warns.
    """
    margin = check_margin(margin)
    mapping = dict(DEFAULT_PRIORS if priors is None else priors)
    if not mapping:
        raise ValueError("priors is empty: give at least one {body_prior_type: prior} entry")
    for key, value in mapping.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"body_prior_type keys must be non-empty strings, got {key!r}")
        if key in ("gmm", "l2", "angle", "none"):
            raise ValueError(f"'{key}' is one of SMPLify-X's own prior types; choose another name")
        if not isinstance(value, (str, PosePrior)):
            raise TypeError(f"priors['{key}'] must be a prior name or a PosePrior, got {type(value).__name__}")
    per_prior_kwargs = {k: (dict(prior_kwargs) if isinstance(v, str) else {}) for k, v in mapping.items()}
    for k, kw in (prior_kwargs_by_type or {}).items():
        if k not in mapping or not isinstance(mapping[k], str):
            raise ValueError(f"prior_kwargs_by_type['{k}'] needs a name-based entry '{k}' in priors")
        per_prior_kwargs[k].update(kw)
    if prior_kwargs and not any(isinstance(v, str) for v in mapping.values()):
        raise ValueError(f"prior_kwargs {sorted(prior_kwargs)} given but every prior is already built")

    modules = _find_prior_modules()
    if not modules:
        raise ImportError(_NOT_IMPORTABLE)
    patched: List[str] = []
    for mod in modules:
        current = mod.create_prior
        previous: Optional[_Patch] = getattr(current, _PATCH_ATTR, None)
        if previous is not None:
            warnings.warn(
                f"posendf_plugin is already registered in SMPLify-X's {mod.__name__}.create_prior "
                f"(prior types {sorted(previous.priors)}); replacing that registration with "
                f"{sorted(mapping)}",
                UserWarning,
                stacklevel=2,
            )
        original = previous.original if previous is not None else current
        new = _make_create_prior(_Patch(original, mapping, per_prior_kwargs, float(scale), margin, bool(announce)))
        patched += [n for n in _replace_everywhere(current, new) if n not in patched]
        if previous is not None:  # modules that still hold the unpatched original
            patched += [n for n in _replace_everywhere(original, new) if n not in patched]
    for mod in _line_search_modules(modules):
        guard_line_search(mod)
    return patched


def unregister() -> List[str]:
    """Restore SMPLify-X's original ``create_prior`` (and line search) everywhere they were replaced.

    Returns the restored module names; raises ``RuntimeError`` if nothing was registered.
    """
    restored: List[str] = []
    for name, mod in list(sys.modules.items()):
        fn = _module_attr(mod, "create_prior")
        patch: Optional[_Patch] = getattr(fn, _PATCH_ATTR, None)
        if patch is not None:
            setattr(mod, "create_prior", patch.original)
            restored.append(name)
        if name.endswith("optimizers.lbfgs_ls"):
            unguard_line_search(mod)
    if not restored:
        raise RuntimeError("posendf_plugin is not registered in SMPLify-X; nothing to unregister")
    return restored


def is_registered() -> bool:
    """Whether an imported SMPLify-X ``create_prior`` currently carries the extension."""
    return any(
        getattr(_module_attr(m, "create_prior"), _PATCH_ATTR, None) is not None
        for m in list(sys.modules.values())
    )


@dataclass
class Calibration:
    """Weights for a new prior that reproduce a reference prior's real-vs-noisy contrast.

    SMPLify-X weighs the prior by ``w**2``; matching ``w_new**2 * gap_new = w_ref**2 * gap_ref``
    (gap = mean energy on noisy poses minus mean energy on real poses, at ``sigma``) gives
    ``w_new = w_ref * sqrt(gap_ref / gap_new)`` (``gap_ref / gap_new`` for linear weights).

    Attributes:
        factor: ``sqrt(gap_ref / gap_new)`` (squared weights) or ``gap_ref / gap_new``.
        weights: calibrated ``body_pose_prior_weights`` (one per SMPLify-X stage).
        scale: the equivalent energy ``scale`` that keeps the reference weights
            (``gap_ref / gap_new``).
        new / reference: the measured statistics.
    """

    factor: float
    weights: Tuple[float, ...]
    scale: float
    sigma: float
    new: SeparationStats
    reference: SeparationStats


def calibrate_weights(
    prior: PriorLike,
    reference: PriorLike,
    poses,
    reference_weights: Sequence[float] = SMPLIFYX_DEFAULT_BODY_POSE_PRIOR_WEIGHTS,
    sigma: float = 0.1,
    seed: int = 0,
    squared: bool = True,
) -> Calibration:
    """Calibrate SMPLify-X ``body_pose_prior_weights`` for ``prior`` against ``reference``.

    Args:
        prior: the new prior (e.g. ``'posendf'``).
        reference: the prior the weights were tuned for (e.g. ``'gmm'`` for SMPLify's
            MaxMixturePrior, or ``'vposer'`` whose energy is ‖z‖² as in SMPLify-X).
        poses: real poses (any layout), e.g. the shipped validation pose set.
        reference_weights: the weights tuned for ``reference``.
        sigma: quaternion noise level of the "implausible" poses.
        squared: the host multiplies the prior by ``w**2`` (SMPLify-X, SPIN); ``False`` for
            hosts with linear weights (HuMoR's ``--pose-prior-weight``, mmhuman3d's
            ``loss_weight``), where ``w_new = w_ref * gap_ref / gap_new``.
    Raises:
        ValueError: a prior does not separate real from noisy poses (gap <= 0).
    """
    p_new, p_ref = resolve_prior(prior), resolve_prior(reference)
    s_new = separation_stats(p_new, poses, sigmas=(sigma,), seed=seed)
    s_ref = separation_stats(p_ref, poses, sigmas=(sigma,), seed=seed)
    g_new, g_ref = s_new.gap(sigma), s_ref.gap(sigma)
    if not (g_new > 0 and g_ref > 0):
        raise ValueError(
            f"cannot calibrate: the energy gap noisy-minus-real at sigma={sigma} is {g_new:.4g} "
            f"for '{p_new.name}' and {g_ref:.4g} for '{p_ref.name}'; both must be positive"
        )
    ratio = g_ref / g_new
    factor = ratio ** 0.5 if squared else ratio
    return Calibration(
        factor=factor, weights=tuple(float(w) * factor for w in reference_weights), scale=ratio,
        sigma=float(sigma), new=s_new, reference=s_ref,
    )


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """``python -m posendf_plugin.integrations.smplifyx /path/to/smplify-x/smplifyx/main.py
    [--posendf-checkpoint PATH] [--posendf-scale S] [--posendf-margin M] <SMPLify-X arguments>``.

    Runs an unmodified SMPLify-X ``main.py`` as ``__main__`` after :func:`register` (its folder
    goes first on ``sys.path``, as when it is run directly); every argument after the script
    path except the ``--posendf-*`` options is passed to SMPLify-X.

    Returns:
        The globals of the finished script (as ``runpy.run_path`` returns them).
    """
    import argparse
    import runpy
    from pathlib import Path

    parser = argparse.ArgumentParser(
        prog="python -m posendf_plugin.integrations.smplifyx",
        description="Run SMPLify-X's main.py with body_prior_type 'posendf'/'posendf_density'/'nrdf' available.",
    )
    parser.add_argument("script", help="path to smplify-x/smplifyx/main.py")
    parser.add_argument(
        "--posendf-checkpoint", default=None,
        help="a Pose-NDF checkpoint of your own for body_prior_type posendf and posendf_density (default: the "
             "shipped distance field and density-aware field)",
    )
    parser.add_argument("--posendf-scale", type=float, default=1.0, help="multiplies the prior energy (default 1)")
    parser.add_argument("--posendf-margin", type=float, default=0.0,
                        help="per-pose energy max(E - margin, 0) (default 0 = off; see register)")
    args, rest = parser.parse_known_args(argv)
    script = Path(args.script).resolve()
    if not script.is_file():
        raise FileNotFoundError(f"{script}: no such file; pass the path of smplify-x/smplifyx/main.py")
    sys.path.insert(0, str(script.parent))
    by_type = None
    if args.posendf_checkpoint:
        if not Path(args.posendf_checkpoint).is_file():
            raise FileNotFoundError(f"--posendf-checkpoint {args.posendf_checkpoint}: no such file")
        by_type = {k: {"checkpoint": args.posendf_checkpoint} for k in ("posendf", "posendf_density")}
    register(scale=args.posendf_scale, prior_kwargs_by_type=by_type, margin=args.posendf_margin, announce=True)
    saved_argv = sys.argv
    sys.argv = [str(script), *rest]
    try:
        return runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = saved_argv


if __name__ == "__main__":  # pragma: no cover - exercised through main() in the tests
    try:
        main()
    except (ValueError, FileNotFoundError, ImportError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"python -m posendf_plugin.integrations.smplifyx: error: {msg}", file=sys.stderr)
        sys.exit(2)  # bad input, as the posendf CLI
