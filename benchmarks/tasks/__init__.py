"""Benchmark tasks: one small module per task, each a thin wrapper over the library.

Every module exposes ``NAME``, ``NOTES`` (lines for the Markdown), ``run(ctx) -> dict``
(``{setting: {prior: {metric: value}}}``, plus an optional ``"_settings"`` entry) and
``plot(result, ctx) -> list of written PNG paths``.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Tuple

__all__ = ["TASK_NAMES", "load_task"]

#: task names in run order
TASK_NAMES: Tuple[str, ...] = ("generation", "discrimination", "interpolation", "completion", "denoise", "image_fit", "speed")


def load_task(name: str) -> ModuleType:
    """The module of task ``name``.

    Raises:
        ValueError: unknown task name (the message lists the known ones).
    """
    if name not in TASK_NAMES:
        raise ValueError(f"unknown benchmark task {name!r}; choose from {', '.join(TASK_NAMES)} or all")
    return importlib.import_module(f"{__name__}.{name}")
