"""The prior as an EasyMocap loss, loaded by dotted path from its YAML, in both of EasyMocap's
fitting frameworks.

Both build a loss with ``easymocap/config/baseconfig.py:load_object(module, args)`` (import the
module part of the dotted path, call the last part with ``**args``) and weight its scalar result
by the YAML ``weight``; they differ in how they call it:

* ``easymocap.multistage`` (``config/fit/*.yml``; ``multistage/base.py:make_lossfuncs`` and the
  closure of ``MultiStage.fit_stage``): keywords only, ``loss(kpts_est=..., **new_params,
  **infos)`` -- ``new_params`` holds ``poses`` (SMPL: ``(nFrames, 69)``, 72 with
  ``use_root_rot``), ``shapes``, ``Rh``, ``Th`` -- and ``loss(poses_full=..., **new_params,
  **infos)`` for a YAML key starting with ``pf-``. With ``monitor.check`` it also calls
  ``check_at_start`` / ``check_at_end`` and prints ``str(loss)``.
* ``myeasymocap.operations.optimizer`` (``config/mv1p/detect_triangulate_fitSMPL.yml``,
  ``config/1v1p/hrnet_pare_finetune.yml``, ``config/mvmp/meta_fit_SMPL.yml``;
  ``make_closure``): two positional dicts, ``loss(output_, infos_)`` with ``output_ = {k:
  output[k] for k in key_from_output}`` (``poses`` ``(nFrames, 69)``, or ``(nFrames, nPerson,
  69)``) and ``infos_`` from ``key_from_infos``. EasyMocap's own GMM prior is configured there
  with ``weight: 0.1`` and ``args: {start: 0, end: 69}``.

YAML, ``easymocap.multistage`` (inside a stage's ``loss:`` block)::

    pose_ndf:
      weight: 30.
      module: posendf_plugin.integrations.easymocap.PoseNDFPrior
      args: {key: poses, prior: posendf, margin: 0.05}

YAML, ``myeasymocap`` (inside an ``Optimizer``'s ``loss:`` block, in place of ``prior``)::

    prior:
      weight: 30.
      module: posendf_plugin.integrations.easymocap.PoseNDFPrior
      key_from_output: [poses]
      key_from_infos: []
      args: {start: 0, end: 69, prior: posendf, margin: 0.05}
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import nn

from posendf_plugin.skeleton import NUM_BODY_JOINTS, POSE_LAYOUTS

from ._common import PriorLike, check_margin, guard_line_search, prior_energy, resolve_prior

__all__ = ["PoseNDFPrior", "guard_easymocap_line_search"]

_BODY_WIDTH = NUM_BODY_JOINTS * 3
_SMPL_FULL_WIDTH = 72  # root + 23 joints


class PoseNDFPrior(nn.Module):
    """EasyMocap loss: mean (or sum) over frames of the prior's energy of ``kwargs[key]``.

    Args (the YAML ``args:`` block):
        key: which body parameter to read: ``poses`` (default) or ``poses_full`` (then the
            loss's YAML name must start with ``pf-``, EasyMocap passes ``poses_full`` only then).
        prior: prior name for ``get_prior`` (``posendf``, ``nrdf``, ``vposer``, ``gmm``; also
            ``posendf_density``, the density-aware Pose-NDF); from Python also a built
            :class:`~posendf_plugin.priors.base.PosePrior`.
        checkpoint: optional checkpoint path of the prior (passed as ``get_prior(prior,
            checkpoint=...)``); omitted -> the shipped default.
        start, end: the slice ``poses[..., start:end]`` the prior sees, as EasyMocap's
            ``MaxMixturePrior`` / ``GMMPrior`` ``start``/``end`` (its configs: ``start: 0, end:
            69``). The slice must be a layout the prior knows (63 = 21 body joints, 69 = SMPL
            body pose, 72 = SMPL pose with root); ``end: null`` with a ``start`` takes the 63
            body dims from ``start``; both ``null`` (default) autodetects the widths
            63/69/72/156/165. SMPL-H/SMPL-X ``poses`` with hand PCA need ``start: 0`` (body first).
        reduce: ``mean`` (default, like EasyMocap's GMM prior) or ``sum`` over frames.
        margin: each frame's energy is ``max(E − margin, 0)``, so frames the prior finds
            plausible are left to the keypoints (0 = off). With the distance field
            (``prior: posendf``) ``margin: 0.05`` at ``weight: 30`` is the setting chosen on real
            unseen poses in EasyMocap's own optimiser (``integrations/README.md``).

    Building it guards the line search of EasyMocap's own L-BFGS copy
    (``easymocap/pyfitting/lbfgs.py``, which both frameworks use with ``strong_wolfe``) when
    EasyMocap is importable, for the rest of the process: a trial step that overflows the loss
    no longer turns the fit into NaN; finite steps unchanged (:func:`~._common.guard_line_search`).

    Called either way EasyMocap calls a loss (see the module docstring): with keywords
    (``easymocap.multistage``) or with two positional dicts ``(output, infos)``
    (``myeasymocap.operations.optimizer``); the pose is ``[key]`` of the keywords / of ``output``.
    """

    def __init__(
        self,
        key: str = "poses",
        prior: PriorLike = "posendf",
        checkpoint: Optional[str] = None,
        start: Optional[int] = None,
        end: Optional[int] = None,
        reduce: str = "mean",
        margin: float = 0.0,
    ) -> None:
        super().__init__()
        if reduce not in ("mean", "sum"):
            raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
        for name, v in (("start", start), ("end", end)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValueError(f"{name} must be a non-negative integer or null, got {v!r}")
        if end is not None and (start or 0) >= end:
            raise ValueError(f"end={end} must be larger than start={start or 0}")
        self.key = key
        self.start = start
        self.end = end
        self.reduce = reduce
        self.margin = check_margin(margin)
        self.prior = resolve_prior(prior, {"checkpoint": checkpoint} if checkpoint else None)
        guard_easymocap_line_search()

    def _body_pose(self, value: torch.Tensor) -> torch.Tensor:
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"EasyMocap passed '{self.key}' of type {type(value).__name__}; expected a torch.Tensor")
        flat = value.reshape(-1, value.shape[-1]) if value.ndim >= 2 else value.reshape(1, -1)
        width = flat.shape[-1]
        if self.end is not None:
            if self.end > width:
                raise ValueError(
                    f"'{self.key}' has {width} dims per frame ({_layout(width)}), fewer than "
                    f"args.end={self.end}; set end: {width} for this body model (start: 0, end: 69 "
                    "is for SMPL's 69-dim poses)"
                )
            if width == _SMPL_FULL_WIDTH and (self.start or 0) < 3:
                raise ValueError(
                    f"'{self.key}' has 72 dims per frame (SMPL pose with the root rotation first) but "
                    f"args start={self.start or 0}, end={self.end} would read the root as a body joint; "
                    "use start: 3, end: 72"
                )
            flat = flat[:, self.start or 0:self.end]
            if flat.shape[-1] not in POSE_LAYOUTS:
                raise ValueError(
                    f"args start={self.start or 0}, end={self.end} give {flat.shape[-1]} dims, not a pose "
                    f"layout ({_known_layouts()}); use end - start = 63 (21 body joints) or 69 (SMPL body pose)"
                )
            if POSE_LAYOUTS[flat.shape[-1]][1] > 0 and (self.start or 0) != 0:
                raise ValueError(
                    f"args start={self.start}, end={self.end} give {flat.shape[-1]} dims, read as "
                    f"{POSE_LAYOUTS[flat.shape[-1]][0]} (a root rotation first), but the slice does not start at "
                    f"'{self.key}''s first dim; use start: {self.start}, end: {self.start + _BODY_WIDTH} for 21 body "
                    "joints there, or start: 0 for a slice that begins with the root"
                )
            return flat
        if self.start is not None:
            if self.start + _BODY_WIDTH > width:
                raise ValueError(
                    f"'{self.key}' has {width} dims, too few for 21 body joints from start={self.start} "
                    f"(needs {self.start + _BODY_WIDTH})"
                )
            return flat[:, self.start:self.start + _BODY_WIDTH]
        if width not in POSE_LAYOUTS:
            raise ValueError(
                f"'{self.key}' has {width} dims per frame, not a layout the prior can autodetect "
                f"({_known_layouts()}). Set args.start (and args.end) to the body-joint dimensions "
                "(e.g. start: 0 when the first 63 dims are the 21 body joints, start: 3 when a root "
                "comes first)"
            )
        return flat

    def forward(self, *args, **kwargs) -> torch.Tensor:
        """Scalar loss from the pose ``(nFrames, D)`` or ``(nFrames, nPerson, D)``.

        ``forward(**params)`` (``easymocap.multistage``) reads ``params[key]``;
        ``forward(output, infos)`` (``myeasymocap``) reads ``output[key]``.
        """
        if args:
            if kwargs or len(args) > 2 or not isinstance(args[0], Mapping):
                raise TypeError(
                    "PoseNDFPrior is called as loss(output, infos) with dicts (myeasymocap "
                    "Optimizer) or with keywords loss(poses=..., ...) (easymocap.multistage); got "
                    f"{len(args)} positional argument(s) of type(s) "
                    f"{[type(a).__name__ for a in args]} and keywords {sorted(kwargs)}"
                )
            params, source = args[0], "key_from_output"
        else:
            params, source = kwargs, "keywords"
        if self.key not in params:
            if source == "key_from_output":
                hint = f" (add {self.key} to the loss's key_from_output: [{self.key}])"
            elif self.key == "poses_full":
                hint = " (EasyMocap passes poses_full only to losses whose name starts with 'pf-')"
            else:
                hint = ""
            raise KeyError(f"PoseNDFPrior needs '{self.key}' but EasyMocap passed {sorted(params)} as {source}{hint}")
        energy = prior_energy(self.prior, self._body_pose(params[self.key]), self.margin)
        if self.reduce == "mean" and energy.numel() == 0:
            return energy.sum()  # no frames: 0, not the NaN of an empty mean
        return energy.mean() if self.reduce == "mean" else energy.sum()

    def check_at_start(self, **kwargs) -> None:
        """EasyMocap ``monitor.check`` hook (nothing to report)."""

    def check_at_end(self, **kwargs) -> None:
        """EasyMocap ``monitor.check`` hook (nothing to report)."""

    def __str__(self) -> str:
        dims = "" if self.start is None and self.end is None else f"[{self.start or 0}:{self.end if self.end is not None else ''}]"
        margin = f", margin {self.margin:g}" if self.margin else ""
        return f"pose prior '{self.prior.name}' on {self.key}{dims} ({self.reduce} over frames{margin})"


def guard_easymocap_line_search() -> bool:
    """Guard ``easymocap.pyfitting.lbfgs``'s strong-Wolfe line search (a copy of torch's, so
    the same overflowing trial step turns into a NaN step there); returns whether EasyMocap's
    L-BFGS was found. Without EasyMocap installed nothing happens."""
    return guard_line_search("easymocap.pyfitting.lbfgs")


def _layout(width: int) -> str:
    return POSE_LAYOUTS[width][0] if width in POSE_LAYOUTS else "not a known pose layout"


def _known_layouts() -> str:
    return ", ".join(f"{w} = {n}" for w, (n, _, _) in POSE_LAYOUTS.items())
