"""Atomic file writing: every output is written to a temporary file in the target folder and
renamed into place, so an interrupted run never leaves a truncated file behind."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "atomic_path", "save_npz", "save_json", "save_torch", "load_npz", "load_yaml", "load_json", "NpzData",
    "read_array", "finite_or_none", "json_text", "check_output_dir", "check_output_file", "load_torch_weights",
    "describe_load_error", "describe_npz_error",
]

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
    """Atomically write ``obj`` as indented, strict JSON (RFC 8259, readable by any parser).

    NaN and Inf are not JSON. Every float that is not finite — an undefined metric, such as the
    pairwise distance of a single sample or an angle of a clip without hinge joints — is
    written as ``null``: in every JSON file of this package, ``null`` means "undefined".
    """
    path = Path(path)
    text = json_text(obj, indent=2) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def json_text(obj: Any, indent: Optional[int] = None) -> str:
    """``obj`` as strict JSON text (non-finite floats as ``null``, numpy values as numbers), for
    JSON stored inside other files (e.g. the metrics string of an ``.npz``)."""
    return json.dumps(_finite(obj), indent=indent, sort_keys=False, default=_json_default, allow_nan=False)


def finite_or_none(x: Any) -> Any:
    """``float(x)`` if it is finite, else ``None`` (JSON ``null``: an undefined metric)."""
    if x is None:
        return None
    v = float(x)
    return v if np.isfinite(v) else None


def _finite(o: Any) -> Any:
    """A copy of a JSON-like object with every non-finite float (NaN, ±Inf) replaced by None."""
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, np.ndarray) and o.dtype.kind == "f":
        return _finite(o.tolist())
    if isinstance(o, Mapping):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def save_torch(path: PathLike, obj: Any) -> Path:
    """Atomically ``torch.save`` ``obj`` (use plain tensors/dicts so it loads with
    ``weights_only=True``)."""
    import torch

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


class NpzData(dict):
    """The arrays of an ``.npz`` (a dict), plus ``objects``: the keys that held pickled Python
    objects and were left out (never unpickled)."""

    objects: Tuple[str, ...] = ()

    def describe(self) -> str:
        """``found keys [...]`` and, if any, the keys skipped as pickled objects."""
        msg = f"found keys {sorted(self)}"
        if self.objects:
            msg += (f"; {sorted(self.objects)} hold pickled objects, which are never loaded "
                    "(save them as numeric arrays)")
        return msg


def _npz_error(path: Path, e: BaseException) -> ValueError:
    return ValueError(f"{path}: not a readable .npz file ({describe_npz_error(e)}); write it with numpy.savez")


def describe_npz_error(e: BaseException) -> str:
    """Why ``np.load`` failed, in words that never suggest unpickling the file."""
    text = str(e)
    if isinstance(e, ValueError) and "Object arrays" in text:
        why = "an array holds pickled Python objects, which are never loaded"
    elif isinstance(e, ValueError) and ("pickle" in text or "allow_pickle" in text):
        why = "it is neither a zip archive of arrays nor a .npy array"
    elif isinstance(e, EOFError) or "truncated" in text.lower() or "No data left" in text:
        why = "the file is empty or truncated"
    elif isinstance(e, TypeError) and ".npy array" in text:
        why = text
    elif isinstance(e, MemoryError):
        why = "an array header claims more data than fits in memory; the file is corrupt"
    else:
        why = f"{type(e).__name__}: {text}" if "pickle" not in text else type(e).__name__
    return why


def load_torch_weights(path: PathLike, what: str = "checkpoint", map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one clear ``ValueError`` for any file it
    cannot read (truncated, random bytes, a file holding arbitrary Python objects). The message
    never suggests loading the file unsafely.

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; expected a {what} file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what} file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (not a zip), EOFError, ...
        why = describe_load_error(e)
        if why == _NPZ_NOT_TORCH:
            raise ValueError(f"{path}: cannot read the {what}: {why}; pass the model's .pt file") from e
        raise ValueError(f"{path}: cannot read the {what}; the file is truncated, corrupt or not a PyTorch "
                         f"checkpoint ({why}); copy or download it again") from e


_NPZ_NOT_TORCH = "it is a numpy .npz archive of arrays, not a PyTorch checkpoint (.pt)"


def describe_load_error(e: BaseException) -> str:
    """A short reason for a failed ``torch.load`` / ``np.load``, without the libraries' advice to
    unpickle the file (which could run code from it)."""
    import pickle

    text = str(e).splitlines()[0] if str(e) else ""
    if isinstance(e, EOFError) or "EOF" in text:
        return "the file is empty or truncated"
    if isinstance(e, pickle.UnpicklingError) or "weights_only" in str(e) or "pickle" in str(e).lower():
        return "it is not a weights-only PyTorch file: it is corrupt or holds Python objects other than tensors"
    if "not in a subdirectory" in text and ".npy" in text:  # np.savez's zip of arrays
        return _NPZ_NOT_TORCH
    if "zip" in text.lower() or "PytorchStreamReader" in text:
        return "not a complete PyTorch zip archive"
    return f"{type(e).__name__}: {text[:200]}"


def load_npz(path: PathLike, required: tuple = ()) -> NpzData:
    """Load an ``.npz`` into a dict (:class:`NpzData`), with clear errors for a missing file, a
    corrupt file or missing keys.

    Entries holding pickled Python objects (e.g. HuMoR's ``pose_hand=None``) are never
    unpickled (that could run code); they are left out (listed in ``.objects``), and named if a
    required key is one.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; expected an .npz file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data, objects = NpzData(), []
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):  # a bare .npy array
            raise TypeError("a single .npy array, not an archive of named arrays")
        with z:
            for k in z.files:
                try:
                    data[k] = z[k]
                except ValueError as e:
                    if "allow_pickle" not in str(e):
                        raise
                    objects.append(k)
    except Exception as e:  # zipfile.BadZipFile, ValueError, EOFError, OSError...
        raise _npz_error(path, e) from e
    data.objects = tuple(objects)
    missing = [k for k in required if k not in data]
    if missing:
        raise KeyError(f"{path}: missing key(s) {missing}; {data.describe()}")
    return data


def read_array(
    data: Mapping[str, Any],
    key: str,
    path: PathLike,
    ndim: Optional[Tuple[int, ...]] = None,
    width: Optional[int] = None,
    finite: bool = True,
    nonempty: bool = True,
    dtype: Any = np.float32,
) -> np.ndarray:
    """``data[key]`` as a numeric array, checked; every error names the file and the key.

    Args:
        ndim: allowed numbers of dimensions (None: any).
        width: required size of the last dimension (None: any).
        finite: refuse NaN / Inf. nonempty: refuse an array without elements.
    Raises:
        KeyError: no such key. ValueError: not numeric, wrong shape, empty, NaN/Inf.
    """
    if key not in data:
        extra = data.describe() if isinstance(data, NpzData) else f"found keys {sorted(data)}"
        raise KeyError(f"{path}: no '{key}' array; {extra}")
    raw = np.asarray(data[key])
    if raw.dtype.kind not in "biuf":
        raise ValueError(f"{path}: '{key}' must be a numeric array, got dtype {raw.dtype} "
                         f"(shape {raw.shape})")
    a = raw.astype(dtype, copy=False)
    if ndim is not None and a.ndim not in ndim:
        want = " or ".join(f"{d}-D" for d in ndim) if len(ndim) < 3 else f"{ndim[0]}-D to {ndim[-1]}-D"
        raise ValueError(f"{path}: '{key}' must be a {want} array, got shape {a.shape}")
    if width is not None and (a.ndim == 0 or a.shape[-1] != width):
        raise ValueError(f"{path}: '{key}' must have {width} values per row, got shape {a.shape}")
    if nonempty and a.size == 0:
        raise ValueError(f"{path}: '{key}' is empty (shape {a.shape}); nothing to process")
    if finite and a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = ~np.isfinite(a)
        where = np.argwhere(bad)[0].tolist() if a.ndim else []
        raise ValueError(f"{path}: '{key}' holds {int(bad.sum())} NaN/Inf value(s) (first at index "
                         f"{where}); clean or drop them")
    return a


def _nearest_existing(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_write(folder: Path, what: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".posendf-write-test.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OSError(e.errno, f"{what} {folder} is not writable ({e.strerror})") from e


def check_output_dir(path: PathLike, what: str = "output folder") -> Path:
    """Check, before any work, that files can be written in ``path`` (created later, by the
    first write, if it does not exist yet): nothing is left behind by the check, so a run that
    then fails on its inputs creates no folder.

    Raises:
        ValueError: ``path`` (or a parent of it) is an existing file.
        OSError: the folder (or its nearest existing parent) is not writable (one-line message
            naming it).
    """
    path = Path(path)
    anc = _nearest_existing(path)
    if not anc.is_dir():
        raise ValueError(f"{what} {path}: {anc} is an existing file, not a folder; choose another path")
    _probe_write(anc, what if anc == path.absolute() else f"{what} {path}: its parent")
    return path


def check_output_file(path: PathLike, inputs: Sequence[PathLike] = (), what: str = "output file",
                      suffix: str = ".npz") -> Path:
    """Check, before any work, that ``path`` can be written: not a folder, not one of
    ``inputs``, its folder creatable and writable. ``suffix``: the kind of file written (for the
    example name in the message).

    Raises:
        ValueError: ``path`` is a folder or an input. OSError: its folder cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; give a file name, e.g. {path / ('out' + suffix)}")
    for i in inputs:
        if Path(i).exists() and path.exists() and os.path.samefile(i, path):
            raise ValueError(f"{what} {path} is the input {i}; write to another file so the input is kept")
    anc = _nearest_existing(path.parent)
    if not anc.is_dir():
        raise ValueError(f"{what} {path}: {anc} is an existing file, not a folder; choose another path")
    check_output_dir(path.parent, f"folder for the {what}")
    return path


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


def _existing_file(path: PathLike, what: str) -> Path:
    """``path`` as a Path; ``ValueError`` for a folder, ``FileNotFoundError`` naming ``what``."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; expected a {what}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    return path


def load_json(path: PathLike, what: str = "JSON file") -> Any:
    """Read a JSON file with clear errors, as :func:`load_yaml`: ``FileNotFoundError`` naming
    ``what`` for a missing file, ``ValueError`` for a folder or invalid JSON."""
    path = _existing_file(path, what)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


def load_yaml(path: PathLike, what: str = "config file") -> Any:
    """Read a YAML file with clear errors: ``FileNotFoundError`` naming ``what`` for a missing
    file, ``ValueError`` for invalid YAML. An empty file gives ``None``."""
    import yaml

    path = _existing_file(path, what)
    try:
        return yaml.safe_load(path.read_text())
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text file; expected a {what}") from e
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from e
