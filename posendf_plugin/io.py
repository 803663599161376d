"""Atomic file writing: every output is written to a temporary file in the target folder and
renamed into place, so an interrupted run never leaves a truncated file behind."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Union

import numpy as np

__all__ = ["atomic_path", "save_npz", "save_json", "save_torch", "load_npz", "load_yaml"]

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the result the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def save_npz(path: PathLike, compressed: bool = True, **arrays: Any) -> Path:
    """Atomically write ``arrays`` to ``path`` (``.npz``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compressed else np.savez)(f, **arrays)
    return path


def save_json(path: PathLike, obj: Mapping[str, Any]) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    return path


def save_torch(path: PathLike, obj: Any) -> Path:
    """Atomically ``torch.save`` ``obj`` (use plain tensors/dicts so it loads with
    ``weights_only=True``)."""
    import torch

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def load_npz(path: PathLike, required: tuple = ()) -> dict:
    """Load an ``.npz`` into a dict, with clear errors for a missing file, a corrupt file or
    missing keys.

    Entries holding pickled Python objects (e.g. HuMoR's ``pose_hand=None``) are never
    unpickled (that could run code); they are left out, and named if a required key is one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data, objects = {}, []
    try:
        with np.load(path, allow_pickle=False) as z:
            for k in z.files:
                try:
                    data[k] = z[k]
                except ValueError as e:
                    if "allow_pickle" not in str(e):
                        raise
                    objects.append(k)
    except Exception as e:  # zipfile.BadZipFile, ValueError, EOFError, OSError...
        raise ValueError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from e
    missing = [k for k in required if k not in data]
    if missing:
        hint = f" ({sorted(set(missing) & set(objects))} hold pickled objects, which are not loaded)" if set(missing) & set(objects) else ""
        raise KeyError(f"{path}: missing key(s) {missing}{hint}; found {sorted(data)}")
    return data


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_yaml(path: PathLike, what: str = "config file") -> Any:
    """Read a YAML file with clear errors: ``FileNotFoundError`` naming ``what`` for a missing
    file, ``ValueError`` for invalid YAML. An empty file gives ``None``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from e
