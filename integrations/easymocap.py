"""The prior as an EasyMocap multistage loss, loaded by dotted path from its YAML.

EasyMocap (zju3dv/EasyMocap, ``easymocap/multistage/base.py:make_lossfuncs``) builds every
entry of a stage's ``loss:`` block with ``load_object(val.module, dict(val.args))`` (import the
module part of the dotted path, call the last part with ``**args``; names listed in
``infos:`` are added to ``args``), moves it with ``.to(device)`` and weights it with
``weight`` (or ``weights[irepeat]``). In the closure each loss is called with keywords only:
``loss(kpts_est=..., **body_params, **infos)`` — ``body_params`` holds ``poses`` (SMPL:
``(nFrames, 69)``, or 72 with ``use_root_rot``), ``shapes``, ``Rh``, ``Th`` — and a key starting
with ``pf-`` also gets ``poses_full`` (SMPL: ``(nFrames, 72)``). The loss returns a scalar that
EasyMocap multiplies by the weight; with ``monitor.check`` it also calls ``check_at_start`` /
``check_at_end`` (EasyMocap's ``LossBase`` gives no-op versions), and prints ``str(loss)``.

YAML (inside a stage's ``loss:`` block)::

    pose_ndf:
      weight: 0.1
      module: posendf_plugin.integrations.easymocap.PoseNDFPrior
      args:
        key: poses
        prior: posendf
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from posendf_plugin.skeleton import NUM_BODY_JOINTS, POSE_LAYOUTS

from ._common import PriorLike, prior_energy, resolve_prior

__all__ = ["PoseNDFPrior"]

_BODY_WIDTH = NUM_BODY_JOINTS * 3


class PoseNDFPrior(nn.Module):
    """EasyMocap loss: mean (or sum) over frames of the prior's energy of ``kwargs[key]``.

    Args (the YAML ``args:`` block):
        key: which body parameter to read: ``poses`` (default) or ``poses_full`` (then the
            loss's YAML name must start with ``pf-``, EasyMocap passes ``poses_full`` only then).
        prior: prior name for ``get_prior`` (``posendf``, ``nrdf``, ``vposer``, ``gmm``); from
            Python also a built :class:`~posendf_plugin.priors.base.PosePrior`.
        checkpoint: optional checkpoint path of the prior (passed as ``get_prior(prior,
            checkpoint=...)``); omitted -> the shipped default.
        start: first axis-angle dimension of the 21 body joints in ``kwargs[key]`` (like
            EasyMocap's ``MaxMixturePrior`` ``start``); ``null`` autodetects the widths
            63/69/72/156/165. Needed for SMPL-H/SMPL-X ``poses`` with hand PCA (e.g.
            ``start: 0`` when the first 63 dims are the body).
        reduce: ``mean`` (default, like EasyMocap's GMM prior) or ``sum`` over frames.
    """

    def __init__(
        self,
        key: str = "poses",
        prior: PriorLike = "posendf",
        checkpoint: Optional[str] = None,
        start: Optional[int] = None,
        reduce: str = "mean",
    ) -> None:
        super().__init__()
        if reduce not in ("mean", "sum"):
            raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
        if start is not None and (int(start) != start or start < 0):
            raise ValueError(f"start must be a non-negative integer or null, got {start!r}")
        self.key = key
        self.start = None if start is None else int(start)
        self.reduce = reduce
        self.prior = resolve_prior(prior, {"checkpoint": checkpoint} if checkpoint else None)

    def _body_pose(self, value: torch.Tensor) -> torch.Tensor:
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"EasyMocap passed '{self.key}' of type {type(value).__name__}; expected a torch.Tensor")
        flat = value.reshape(-1, value.shape[-1]) if value.ndim >= 2 else value.reshape(1, -1)
        width = flat.shape[-1]
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
                f"({', '.join(f'{w} = {n}' for w, (n, _, _) in POSE_LAYOUTS.items())}). Set "
                "args.start to the index of the first body-joint dimension (e.g. start: 0 when "
                "the first 63 dims are the 21 body joints, start: 3 when a root comes first)"
            )
        return flat

    def forward(self, **kwargs) -> torch.Tensor:
        """Scalar loss from ``kwargs[self.key]`` of shape ``(nFrames, D)`` or
        ``(nFrames, nPerson, D)``."""
        if self.key not in kwargs:
            hint = " (EasyMocap passes poses_full only to losses whose name starts with 'pf-')" if self.key == "poses_full" else ""
            raise KeyError(f"PoseNDFPrior needs '{self.key}' but EasyMocap passed {sorted(kwargs)}{hint}")
        energy = prior_energy(self.prior, self._body_pose(kwargs[self.key]))
        return energy.mean() if self.reduce == "mean" else energy.sum()

    def check_at_start(self, **kwargs) -> None:
        """EasyMocap ``monitor.check`` hook (nothing to report)."""

    def check_at_end(self, **kwargs) -> None:
        """EasyMocap ``monitor.check`` hook (nothing to report)."""

    def __str__(self) -> str:
        return f"pose prior '{self.prior.name}' on {self.key} ({self.reduce} over frames)"
