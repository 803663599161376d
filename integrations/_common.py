"""Shared pieces of the host adapters: resolving a prior, checking the host's pose layout,
the per-sample penalty module the SMPLify family calls, and the real-vs-noisy statistics used
to calibrate weights and compare priors.

Nothing here imports a host; every host module builds on these helpers.
Quaternions are ``(w, x, y, z)`` (see :mod:`posendf_plugin.rotations`).
"""
from __future__ import annotations

import importlib
import math
import re
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from posendf_plugin._checks import as_tensor
from posendf_plugin.priors.base import PosePrior, available_priors, get_prior
from posendf_plugin.skeleton import NUM_BODY_JOINTS, POSE_LAYOUTS, to_body_quat

__all__ = [
    "PriorLike",
    "SHIPPED_PRIOR_ALIASES",
    "resolve_prior",
    "check_layout",
    "check_margin",
    "prior_energy",
    "shipped_model_name",
    "calibrated_scale",
    "warn_host_weight",
    "HostPosePrior",
    "add_quat_noise",
    "SeparationStats",
    "energies_on",
    "separation_stats",
]

#: a prior name for :func:`get_prior` or a built prior
PriorLike = Union[str, PosePrior]

SMPL_BODY_POSE_WIDTH = 69
SMPLX_BODY_POSE_WIDTH = 63

#: names the adapters accept on top of :func:`get_prior`'s, for shipped models that ``get_prior``
#: reaches through keyword arguments: name -> (``get_prior`` name, those keyword arguments).
#: ``'posendf_density'`` is the density-aware Pose-NDF (``posendf_density.pt``), i.e.
#: ``get_prior('posendf', pretrained='posendf_density')``.
SHIPPED_PRIOR_ALIASES: Dict[str, Tuple[str, Dict[str, str]]] = {
    "posendf_density": ("posendf", {"pretrained": "posendf_density"}),
}


def resolve_prior(prior: PriorLike, prior_kwargs: Optional[Mapping] = None) -> PosePrior:
    """Return ``prior`` itself, or build it by name with ``get_prior(name, **prior_kwargs)``.

    A name in :data:`SHIPPED_PRIOR_ALIASES` (that ``get_prior`` does not know itself) is built
    as its ``get_prior`` name with the alias's keyword arguments; ``prior_kwargs`` are added to
    them (a ``checkpoint`` replaces the shipped file, as for ``'posendf'``).

    Raises:
        TypeError: ``prior`` is neither a name nor a :class:`PosePrior`.
        ValueError: unknown prior name (the message lists :func:`get_prior`'s names and the
            aliases); ``prior_kwargs`` repeating a keyword an alias sets.
    """
    if isinstance(prior, PosePrior):
        if prior_kwargs:
            raise ValueError(
                f"prior_kwargs {sorted(prior_kwargs)} given together with an already built prior "
                f"'{prior.name}'; pass either a prior name plus prior_kwargs, or a built prior alone"
            )
        return prior
    if isinstance(prior, str):
        kwargs = dict(prior_kwargs or {})
        known = available_priors()
        if prior in SHIPPED_PRIOR_ALIASES and prior not in known:
            name, fixed = SHIPPED_PRIOR_ALIASES[prior]
            clash = sorted(set(fixed) & set(kwargs))
            if clash:
                raise ValueError(
                    f"prior '{prior}' already sets {clash} (it is get_prior('{name}', {fixed})); "
                    f"drop {clash} from prior_kwargs, or use prior '{name}' with your own"
                )
            return get_prior(name, **fixed, **kwargs)
        if prior not in known:
            raise ValueError(
                f"unknown pose prior '{prior}'; available: {', '.join(known)}; and, in "
                f"the adapters, {', '.join(sorted(SHIPPED_PRIOR_ALIASES))}"
            )
        return get_prior(prior, **kwargs)
    raise TypeError(
        f"prior must be a prior name (e.g. 'posendf') or a posendf_plugin PosePrior, got "
        f"{type(prior).__name__}"
    )


def shipped_model_name(prior: PosePrior) -> Optional[str]:
    """``'posendf'``, ``'posendf_density'`` or ``'nrdf'`` when ``prior`` is that shipped model
    (its ``weights`` reads ``shipped '<name>' (<file>)``), else ``None`` (a model loaded from
    the user's own checkpoint, or a prior without a shipped network)."""
    w = getattr(prior, "weights", None)
    m = re.match(r"shipped '(\w+)'", w) if isinstance(w, str) else None
    return m.group(1) if m else None


def calibrated_scale(prior: PosePrior, table: Mapping[str, float], host: str, default_for: Sequence[str] = ()) -> float:
    """The energy scale that lets ``host`` keep the weights tuned for its own prior: the
    ``table`` entry of the shipped model ``prior`` is, else 1.0 — with a warning, unless the
    prior's name is in ``default_for`` (a prior of the host's own kind, e.g. the GMM, whose
    energy is on the host's scale already). Tables: each adapter's calibrated scales,
    integrations/README.md "Calibrated weights"."""
    name = shipped_model_name(prior)
    if name in table:
        return float(table[name])
    if prior.name not in default_for:
        warnings.warn(
            f"{host}: no calibrated scale for this '{prior.name}' model ({getattr(prior, 'weights', None) or 'not a shipped file'}); "
            "using scale=1.0, which leaves the host's weights tuned for its own prior — pass scale= "
            "(integrations/README.md, 'Calibrated weights': python -m posendf_plugin.integrations.vposer "
            "--poses POSES --priors ... measures it for your model)",
            UserWarning, stacklevel=3,
        )
    return 1.0


def warn_host_weight(host: str, setting: str, value, tuned_for: str, use: str, stacklevel: int = 4) -> None:
    """Warn that ``setting`` still holds the host's value for its own prior (``tuned_for``),
    which leaves a Pose-NDF term far too weak or strong to matter as intended; ``use`` says
    what to set instead. Python's warning filter shows it once per place. ``stacklevel`` 4
    points at the host's line when the adapter's check is called from the patched host
    function (host → patched function → check → here)."""
    warnings.warn(
        f"{host}: {setting} = {value} is the value tuned for {tuned_for}; with this prior use {use} "
        "(integrations/README.md, 'Calibrated weights')",
        UserWarning, stacklevel=stacklevel,
    )


def _weights_note(prior: PosePrior) -> str:
    """`` (weights: ...)`` for a prior that says where its weights came from (Pose-NDF's
    ``weights``), so a host's log tells the two shipped fields apart; else empty."""
    w = getattr(prior, "weights", None)
    return f" (weights: {w})" if isinstance(w, str) else ""


def _layout_name(width: int) -> str:
    return POSE_LAYOUTS[width][0] if width in POSE_LAYOUTS else "not a known pose layout"


def check_layout(body_pose: torch.Tensor, expected_width: Optional[int], host: str) -> None:
    """Check that a host passed the flat axis-angle layout it declared.

    Args:
        body_pose: ``(B, W)`` tensor from the host.
        expected_width: the width the host's body model uses (63 SMPL-X/SMPL+H, 69 SMPL), or
            ``None`` to accept every layout :func:`to_body_quat` knows.
        host: host name for the message.
    Raises:
        TypeError: not a tensor.
        ValueError: wrong width or rank; the message names both layouts.
    """
    if not isinstance(body_pose, torch.Tensor):
        raise TypeError(f"{host} passed body_pose of type {type(body_pose).__name__}; expected a torch.Tensor")
    if expected_width is None:
        return
    if body_pose.ndim != 2 or body_pose.shape[-1] != expected_width:
        got = body_pose.shape[-1] if body_pose.ndim >= 1 else None
        raise ValueError(
            f"{host} passed body_pose of shape {tuple(body_pose.shape)} "
            f"({_layout_name(got) if got is not None else 'a scalar'}), but this prior was set up "
            f"for (B, {expected_width}) = {_layout_name(expected_width)}. Build the prior for the "
            "body model you fit (model_type='smplx'/'smplh' -> 63, 'smpl' -> 69) or pass "
            "expected_width=None to accept any layout"
        )


def _module_dtype(module: nn.Module) -> Optional[torch.dtype]:
    for t in list(module.parameters()) + list(module.buffers()):
        if t.is_floating_point():
            return t.dtype
    return None


def check_margin(margin: float) -> float:
    """``margin`` as a float; ValueError unless it is a finite number >= 0."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not (np.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite number >= 0 (0 = off; 0.05 for the distance field), got {margin!r}")
    return float(margin)


def prior_energy(prior: PosePrior, body_pose: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """``prior.energy(body_pose)`` computed in the prior's own dtype, returned in the input's.

    Hosts run in float64 (SMPLify-X ``float_dtype: float64``) with priors in float32; the cast
    keeps the graph differentiable in both directions. With ``margin > 0`` each pose's energy
    is ``max(E − margin, 0)``: poses the prior already finds plausible (a distance field below
    the margin) feel no pull, so the host's data term alone places them; the term of
    ``posendf denoise`` (``prior_margin``) and the adapters' option of the same name.

    Returns:
        ``(B,)`` per-sample energies, dtype of ``body_pose``.
    """
    dtype = _module_dtype(prior)
    x = body_pose if dtype is None or body_pose.dtype == dtype else body_pose.to(dtype)
    e = prior.energy(x)
    if margin > 0:
        e = torch.relu(e - margin)
    return e.to(body_pose.dtype) if e.dtype != body_pose.dtype else e


_UNGUARDED = "_posendf_unguarded"


def _guarded_cubic_interpolate(original: Callable) -> Callable:
    """An L-BFGS strong-Wolfe line search's ``_cubic_interpolate`` (the step it tries next)
    that returns the middle of the bracket when the cubic step is not finite — what it already
    returns when the cubic has no minimum. Finite steps are unchanged."""

    def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
        t = original(x1, f1, g1, x2, f2, g2, bounds)
        if math.isfinite(float(t)):
            return t
        lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
        return (lo + hi) / 2.0

    setattr(_cubic_interpolate, _UNGUARDED, original)
    return _cubic_interpolate


def guard_line_search(module: Union[ModuleType, str]) -> bool:
    """Guard the strong-Wolfe line search of an L-BFGS module (``torch.optim.lbfgs``, or a
    host's copy of it such as SMPLify-X's ``optimizers/lbfgs_ls.py``; a dotted name is imported,
    and one that does not import is left alone: ``False``) against trial steps that
    overflow the loss. Its ``_cubic_interpolate`` turns such a step (measured in real SMPLify-X
    and mmhuman3d fits with the distance fields at their calibrated weights: loss 1.6e194 and
    3.5e24 at the trial point) into a NaN step, and the fit's parameters into NaN; guarded, the
    step becomes the middle of the bracket and the search shrinks it as usual. Idempotent;
    returns whether the module has such a function. :func:`unguard_line_search` undoes it."""
    if isinstance(module, str):
        try:
            module = importlib.import_module(module)
        except ImportError:
            return False
    fn = getattr(module, "__dict__", {}).get("_cubic_interpolate")
    if not callable(fn):
        return False
    if getattr(fn, _UNGUARDED, None) is None:
        module._cubic_interpolate = _guarded_cubic_interpolate(fn)
    return True


def unguard_line_search(module: ModuleType) -> bool:
    """Restore a line search guarded by :func:`guard_line_search`; returns whether it was."""
    original = getattr(getattr(module, "__dict__", {}).get("_cubic_interpolate"), _UNGUARDED, None)
    if original is None:
        return False
    module._cubic_interpolate = original
    return True


class HostPosePrior(nn.Module):
    """The per-sample penalty module the SMPLify family calls as ``prior(body_pose, betas)``.

    Args:
        prior: the wrapped :class:`PosePrior`.
        expected_width: flat axis-angle width the host's body model uses (63 or 69), or ``None``.
        scale: multiplies the energy (lets a host keep weights tuned for another prior).
        host: host name used in error messages.
        margin: per-pose energy ``max(E − margin, 0)`` (:func:`prior_energy`); 0 = off.

    ``forward(body_pose (B, W), betas=None) -> (B,)``: ``scale * prior.energy(body_pose)``;
    ``betas`` is accepted for the host's signature and unused (the prior is shape-independent).
    ``get_mean() -> (1, W)``: the SMPL rest pose (zeros), where SMPLify-X starts the fit.
    """

    def __init__(
        self,
        prior: PosePrior,
        expected_width: Optional[int] = None,
        scale: float = 1.0,
        host: str = "host",
        margin: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(prior, PosePrior):
            raise TypeError(f"prior must be a PosePrior, got {type(prior).__name__}")
        if expected_width is not None and expected_width not in POSE_LAYOUTS:
            raise ValueError(f"expected_width must be one of {sorted(POSE_LAYOUTS)} or None, got {expected_width}")
        if not (float(scale) > 0 and np.isfinite(scale)):
            raise ValueError(f"scale must be a positive finite number, got {scale}")
        self.prior = prior
        self.expected_width = expected_width
        self.scale = float(scale)
        self.host = host
        self.margin = check_margin(margin)

    def forward(self, body_pose: torch.Tensor, betas: Optional[torch.Tensor] = None) -> torch.Tensor:
        check_layout(body_pose, self.expected_width, self.host)
        rows = body_pose.detach()
        bad = ~torch.isfinite(rows.flatten(1) if rows.ndim > 1 else rows[None]).all(-1)
        if bad.any():
            raise ValueError(
                f"{self.host} passed a body_pose with NaN/Inf values in row(s) "
                f"{bad.nonzero().flatten().tolist()[:8]}: its optimiser diverged before calling the prior. "
                "With a distance-field prior under L-BFGS, run the fit in float64 (SMPLify-X: "
                "float_dtype: \"float64\", and posendf_plugin.integrations.smplifyx.register() or its runner, "
                "which guard SMPLify-X's line search); a float32 line search can break down on its large, "
                "non-smooth energy"
            )
        return prior_energy(self.prior, body_pose, self.margin) * self.scale

    def get_mean(self) -> torch.Tensor:
        """``(1, W)`` zeros: the rest pose (W = expected width, 63 when unknown)."""
        width = self.expected_width or NUM_BODY_JOINTS * 3
        dtype = _module_dtype(self.prior) or torch.float32
        return torch.zeros(1, width, dtype=dtype)

    def extra_repr(self) -> str:
        margin = f", margin={self.margin:g}" if self.margin else ""
        return f"prior={self.prior.name}{_weights_note(self.prior)}, expected_width={self.expected_width}, scale={self.scale:g}{margin}"


def add_quat_noise(q: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Pose-NDF's noise model: add ``N(0, sigma^2)`` to each quaternion component, renormalise.

    Args:
        q: ``(..., 21, 4)`` unit quaternions ``(w, x, y, z)``.
    Returns:
        ``(..., 21, 4)`` noisy unit quaternions with ``w >= 0``.
    """
    noise = torch.randn(q.shape, generator=generator, dtype=q.dtype) * sigma
    out = q + noise.to(q.device)
    out = out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.where(out[..., :1] < 0, -out, out)


@dataclass
class SeparationStats:
    """How a prior's energy separates real poses from noisy copies of them.

    Attributes:
        real_mean / real_median: energy statistics on the real poses.
        noisy_mean / noisy_median: same on the noisy copies (one entry per sigma).
        auroc: area under the ROC curve of "energy says noisy" (one per sigma; 1.0 = perfect).
        sigmas: the noise levels.
    """

    real_mean: float
    real_median: float
    noisy_mean: Dict[float, float]
    noisy_median: Dict[float, float]
    auroc: Dict[float, float]
    sigmas: Sequence[float]

    def gap(self, sigma: float) -> float:
        """``noisy_mean[sigma] - real_mean``: the energy contrast a fit sees."""
        return self.noisy_mean[sigma] - self.real_mean


@torch.no_grad()
def energies_on(prior: PosePrior, q: torch.Tensor, batch: int = 4096) -> np.ndarray:
    """Energies ``(N,)`` of ``(N, 21, 4)`` quaternions, in batches, as float64 numpy."""
    out = [prior_energy(prior, q[i:i + batch]).double().cpu().numpy() for i in range(0, len(q), batch)]
    return np.concatenate(out) if out else np.zeros(0)


def separation_stats(
    prior: PosePrior,
    poses,
    sigmas: Sequence[float] = (0.1, 0.25, 0.5),
    seed: int = 0,
) -> SeparationStats:
    """Energy of real poses vs. noisy copies, for each noise level.

    Args:
        prior: the prior to measure.
        poses: real poses in any layout :func:`to_body_quat` accepts.
        sigmas: quaternion noise levels (Pose-NDF's Gaussian noise).
        seed: seed of the noise (same seed -> same noisy poses for every prior).
    """
    from sklearn.metrics import roc_auc_score

    q = to_body_quat(as_tensor(poses, "poses"), "poses").float()
    e_real = energies_on(prior, q)
    noisy_mean, noisy_median, auroc = {}, {}, {}
    for i, s in enumerate(sigmas):
        g = torch.Generator().manual_seed(seed + i)
        e_noisy = energies_on(prior, add_quat_noise(q, float(s), g))
        noisy_mean[float(s)] = float(e_noisy.mean())
        noisy_median[float(s)] = float(np.median(e_noisy))
        labels = np.r_[np.zeros(len(e_real)), np.ones(len(e_noisy))]
        auroc[float(s)] = float(roc_auc_score(labels, np.r_[e_real, e_noisy]))
    return SeparationStats(
        real_mean=float(e_real.mean()), real_median=float(np.median(e_real)),
        noisy_mean=noisy_mean, noisy_median=noisy_median, auroc=auroc,
        sigmas=tuple(float(s) for s in sigmas),
    )
