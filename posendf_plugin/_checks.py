"""Input validation shared by the whole package.

Every public function that takes tensors validates them here, so the error a user sees names
the argument, the shape it got and the shape it expected. Errors are ``ValueError`` /
``TypeError`` (never ``assert``, which ``python -O`` removes).
"""
from __future__ import annotations

import numbers
from typing import Sequence, Union

import numpy as np
import torch

__all__ = ["check_shape", "check_finite", "as_tensor", "check_device"]

Dim = Union[int, str, None]


def _fmt(spec: Sequence[Dim]) -> str:
    return "(" + ", ".join("..." if d == "*" else ("?" if d is None else str(d)) for d in spec) + ")"


def check_shape(x: torch.Tensor, spec: Sequence[Dim], name: str = "input") -> None:
    """Check ``x.shape`` against ``spec``.

    ``spec`` is a sequence of ints (exact size), ``None`` (any size) or a leading ``"*"`` (any
    number of leading batch dimensions, including none). Example: ``("*", 21, 4)``.

    Raises:
        TypeError: ``x`` is not a tensor.
        ValueError: the shape does not match; the message shows expected and actual shapes.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    spec = list(spec)
    leading = bool(spec) and spec[0] == "*"
    tail = spec[1:] if leading else spec
    shape = tuple(x.shape)
    ok = len(shape) >= len(tail) if leading else len(shape) == len(tail)
    if ok:
        for want, got in zip(tail, shape[len(shape) - len(tail):]):
            if want is not None and want != got:
                ok = False
                break
    if not ok:
        raise ValueError(f"{name} must have shape {_fmt(spec)}, got {shape}")


def check_finite(x: torch.Tensor, name: str = "input") -> None:
    """Raise ``ValueError`` naming the first offending batch rows if ``x`` has NaN or Inf."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        flat = bad.reshape(bad.shape[0], -1).any(-1) if bad.ndim > 1 else bad
        rows = torch.nonzero(flat).flatten().tolist()
        shown = ", ".join(map(str, rows[:10])) + (" ..." if len(rows) > 10 else "")
        raise ValueError(
            f"{name} contains NaN or Inf values in {len(rows)} row(s): [{shown}]; "
            "clean or drop these rows before passing them in"
        )


def as_tensor(x, name: str = "input", dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert numpy arrays / lists to a tensor (float32 by default for non-float input)."""
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, (list, tuple)):
        t = torch.as_tensor(np.asarray(x))
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.float()
    elif t.dtype == torch.float16:
        t = t.float()
    return t


def is_count(value, least: int = 0) -> bool:
    """Whether ``value`` is an integer (Python or numpy; not ``bool``) ``>= least``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least


def check_device(device: Union[str, torch.device, None], name: str = "--device") -> torch.device:
    """``device`` as a ``torch.device`` that can be used on this machine (``None`` = cpu).

    Raises:
        ValueError: not a device name (``gpu``), or ``cuda`` without CUDA — one line naming
            ``name`` and what to pass instead.
    """
    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name} {device!r} is not a device; use cpu or cuda (cuda:N for one GPU of several)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name} {device}: CUDA is not available on this machine (torch.cuda.is_available() is False); "
                         "use cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{name} {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev
