"""Body models: real SMPL / SMPL+H / SMPL-X files through ``smplx``, or the embedded stand-in.

* :func:`load_body_model` builds a ``smplx`` module from the official files. No model file can
  run code: every ``.pkl`` (SMPL, SMPL+H, SMPL-X; they hold ``chumpy`` arrays, and ``chumpy``
  does not import on current Python) is read by :func:`load_smpl_pkl`, a restricted unpickler
  that maps the chumpy and scipy.sparse classes to plain numpy and refuses any other class;
  every ``.npz`` is read without unpickling. ``smplx`` only ever receives the plain arrays.
* :func:`get_body_model` wraps the result in :class:`BodyModel`, a thin ``nn.Module`` whose
  :meth:`BodyModel.forward` takes a body pose in any layout of :mod:`posendf_plugin.skeleton`
  and returns a :class:`BodyOutput` dataclass. ``path=None`` gives the embedded procedural model
  (:mod:`posendf_plugin.bodygen`) — a stand-in with the SMPL interface, **not SMPL**.

Expected file layouts (what ``smplx.create`` expects)::

    DIR/smpl/SMPL_NEUTRAL.pkl   (or SMPL_MALE.pkl / SMPL_FEMALE.pkl; or the official
                                 basicModel_neutral_lbs_10_207_0_v1.0.0.pkl names)
    DIR/smplh/SMPLH_NEUTRAL.npz (or .pkl; or AMASS's DIR/smplh/neutral/model.npz)
    DIR/smplx/SMPLX_NEUTRAL.npz (or .pkl)

``DIR`` may also be the ``smpl``/``smplh``/``smplx`` folder itself, or the path of one file.

Pose layouts: SMPL's ``body_pose`` has 23 joints (69 values: 21 body joints + 2 hands), SMPL+H
and SMPL-X have 21 (63). :class:`BodyModel` accepts either and sets the hands to zero for SMPL
when a 21-joint pose is given.
"""
from __future__ import annotations

import codecs
import contextlib
import copyreg
import io as _io
import logging
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from . import keypoints as _kp
from ._checks import as_tensor, check_shape
from .skeleton import NUM_SMPL_JOINTS, POSE_LAYOUTS, body_axis_angle, is_axis_angle, quat_to_pose, to_body_quat

__all__ = [
    "MODEL_TYPES",
    "NATIVE_BODY_POSE_WIDTH",
    "BodyOutput",
    "BodyModel",
    "load_smpl_pkl",
    "find_body_model_file",
    "load_body_model",
    "default_body_model_dir",
    "get_body_model",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
MODEL_TYPES: Tuple[str, ...] = ("smpl", "smplh", "smplx")
#: Width of each model type's own ``body_pose`` (axis-angle): SMPL 23 joints, others 21.
NATIVE_BODY_POSE_WIDTH: Dict[str, int] = {"smpl": 69, "smplh": 63, "smplx": 63}
_GENDERS = ("neutral", "male", "female")
# SMPL's hand joints (22, 23) for SMPL+H / SMPL-X: the middle-finger base joint (approximate).
_HAND_JOINT = {"smplh": (25, 40), "smplx": (28, 43)}
_ASSET_DIR = Path(__file__).resolve().parent / "assets" / "body_model"


# ---------------------------------------------------------------------------------------------
# Reading SMPL .pkl files without chumpy
# ---------------------------------------------------------------------------------------------


class _Stand(object):
    """Placeholder for a pickled chumpy / scipy.sparse object: keeps its pickled state."""

    source: str = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.__dict__["_args"] = args
        return obj

    def __setstate__(self, state):
        self.__dict__["_state"] = state


_STANDINS: Dict[Tuple[str, str], type] = {}


def _standin(kind: str, module: str, name: str) -> type:
    key = (module, name)
    if key not in _STANDINS:
        _STANDINS[key] = type(f"_{kind}_{name}", (_Stand,), {"source": f"{module}.{name}", "kind": kind, "cname": name})
    return _STANDINS[key]


def _numpy_core(name: str):
    try:
        from numpy._core import multiarray as m  # numpy >= 2 (and 1.26's forward-compat alias)
    except ImportError:  # pragma: no cover - numpy < 1.26
        from numpy.core import multiarray as m
    return getattr(m, name)


_NUMPY_FUNCS = frozenset({"ndarray", "dtype", "array", "asarray", "zeros", "ones", "reshape",
                          "bincount", "frombuffer"})
_BUILTINS = {("copyreg", "_reconstructor"): copyreg._reconstructor,
             ("builtins", "object"): object, ("builtins", "set"): set,
             ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
             ("builtins", "complex"): complex, ("_codecs", "encode"): codecs.encode,
             ("collections", "OrderedDict"): dict}


# Python 2 module names found in pickles written by Python 2 (or by Python 3 with protocol < 3).
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _SMPLUnpickler(pickle.Unpickler):
    """Only numpy arrays, builtins and placeholders for chumpy / scipy.sparse objects."""

    def find_class(self, module: str, name: str):
        module = _PY2_MODULES.get(module, module)
        if module == "chumpy" or module.startswith("chumpy."):
            return _standin("chumpy", module, name)
        if module.startswith("scipy.sparse"):
            return _standin("sparse", module, name)
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
            return _numpy_core(name)
        if module == "numpy" and name in _NUMPY_FUNCS:
            return getattr(np, name)
        if (module, name) in _BUILTINS:
            return _BUILTINS[(module, name)]
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: an SMPL model file holds only numpy, chumpy and "
            "scipy.sparse arrays"
        )


def _resolve(obj: Any) -> Any:
    """Turn placeholders (recursively) into numpy arrays."""
    if isinstance(obj, _Stand):
        return _from_chumpy(obj) if obj.kind == "chumpy" else _from_sparse(obj)
    if isinstance(obj, dict):
        return {k: _resolve(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v) for v in obj)
    return obj


def _state(obj: _Stand) -> dict:
    st = obj.__dict__.get("_state", {})
    if isinstance(st, tuple) and len(st) == 2 and isinstance(st[1], dict):  # (dict, slots)
        st = {**(st[0] or {}), **st[1]}
    if not isinstance(st, dict):
        raise ValueError(f"cannot read the pickled {obj.source} object (unexpected state {type(st).__name__})")
    return st


def _from_chumpy(obj: _Stand) -> np.ndarray:
    st = _state(obj)
    name = obj.cname

    def get(key):
        if key not in st:
            raise ValueError(f"pickled {obj.source} has no '{key}'; found {sorted(st)}")
        return np.asarray(_resolve(st[key]))

    if "x" in st and name == "Ch":
        return np.asarray(_resolve(st["x"]))
    if name == "Select":
        out = get("a").ravel()[np.asarray(_resolve(st["idxs"])).ravel()]
        shape = _resolve(st.get("preferred_shape"))
        return out.reshape(shape) if shape is not None else out
    if name == "transpose":
        return np.transpose(get("a"), _resolve(st.get("axes")))
    if name == "reshape":
        return np.reshape(get("a"), _resolve(st["newshape"]))
    ops = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide}
    if name in ops:
        return ops[name](get("a"), get("b"))
    if "x" in st:
        return np.asarray(_resolve(st["x"]))
    raise ValueError(
        f"unsupported chumpy object {obj.source} in the model file; supported: Ch, Select, "
        "transpose, reshape, add/subtract/multiply/divide. Convert the file to .npz with chumpy "
        "installed (Python <= 3.10) if it uses others"
    )


def _from_sparse(obj: _Stand) -> np.ndarray:
    import scipy.sparse as sp

    st = _state(obj)
    shape = st.get("_shape", st.get("shape"))
    fmt = obj.cname.split("_")[0]
    try:
        if fmt in ("csc", "csr"):
            cls = sp.csc_matrix if fmt == "csc" else sp.csr_matrix
            m = cls((np.asarray(st["data"]), np.asarray(st["indices"]), np.asarray(st["indptr"])), shape=shape)
        elif fmt == "coo":
            row = st.get("row", st.get("coords", (None, None))[0])
            col = st.get("col", st.get("coords", (None, None))[1])
            m = sp.coo_matrix((np.asarray(st["data"]), (np.asarray(row), np.asarray(col))), shape=shape)
        else:
            raise KeyError(fmt)
    except KeyError as e:
        raise ValueError(f"cannot read the pickled sparse matrix {obj.source} (missing {e})") from e
    return np.asarray(m.toarray())


def load_smpl_pkl(path: PathLike) -> Dict[str, Any]:
    """Read an SMPL-layout ``.pkl`` into plain numpy arrays, without chumpy.

    Official SMPL files store ``v_template``, ``shapedirs``, ``posedirs`` and ``weights`` as
    ``chumpy.ch.Ch`` objects and ``J_regressor`` as a ``scipy.sparse`` matrix, pickled with
    Python 2 (read here with ``encoding="latin1"``). They come back as dense numpy arrays.
    Only numpy/chumpy/scipy.sparse classes are accepted: any other class in the file is refused
    instead of executed.

    Raises:
        FileNotFoundError: no such file. ValueError: not a readable SMPL pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such SMPL model file")
    try:
        with open(path, "rb") as f:
            data = _SMPLUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError,
            KeyError, MemoryError, OverflowError, RecursionError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable SMPL .pkl file ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a pickled dict of arrays, got {type(data).__name__}")
    data = _resolve(data)
    missing = [k for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
                           "kintree_table", "f") if k not in data]
    if missing:
        raise KeyError(f"{path}: missing SMPL key(s) {missing}; found {sorted(data)}")
    return data


def _load_npz_plain(path: Path) -> Dict[str, Any]:
    """Load an ``.npz`` model without unpickling: object-dtype entries (metadata such as SMPL-X's
    ``joint2num``) are skipped.

    Raises:
        ValueError: not a readable ``.npz`` (the message never suggests unpickling it).
    """
    from .io import load_npz

    data = load_npz(path)
    for k in data.objects:
        logger.debug("%s: skipping object entry %r", path, k)
    return dict(data)


#: arrays every model file must hold (``smplx`` reads them all); SMPL-X adds its landmarks.
_REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
_REQUIRED_EXTRA = {"smplx": ("lmk_faces_idx", "lmk_bary_coords")}


def _load_model_arrays(path: Path, mtype: str) -> Dict[str, Any]:
    """The arrays of a model file (``.pkl`` through the restricted unpickler, ``.npz`` without
    unpickling), checked for the keys ``smplx`` needs.

    Raises:
        ValueError: unreadable file or wrong content. KeyError: missing arrays.
    """
    if path.suffix not in (".pkl", ".npz"):
        raise ValueError(f"{path}: a body model file must be .pkl or .npz, got '{path.suffix}'")
    data = _load_npz_plain(path) if path.suffix == ".npz" else load_smpl_pkl(path)
    need = _REQUIRED_KEYS + _REQUIRED_EXTRA.get(mtype, ())
    missing = [k for k in need if k not in data]
    if missing:
        raise KeyError(f"{path}: not a complete {mtype.upper()} model file: missing array(s) {missing}; "
                       f"found {sorted(data)}. Use the official model files (see --help)")
    for k in need:
        v = data[k]
        if not hasattr(v, "shape") or getattr(v, "dtype", np.dtype(object)).kind not in "biuf":
            raise ValueError(f"{path}: model array '{k}' must be numeric, got {type(v).__name__} "
                             f"{getattr(v, 'dtype', '')}".rstrip())
    return data


# ---------------------------------------------------------------------------------------------
# Finding and loading model files
# ---------------------------------------------------------------------------------------------


def _candidates(folder: Path, model_type: str, gender: str) -> List[Path]:
    T, G = model_type.upper(), gender.upper()
    names = [f"{T}_{G}.pkl", f"{T}_{G}.npz"] if model_type != "smplx" else [f"{T}_{G}.npz", f"{T}_{G}.pkl"]
    if model_type == "smpl":
        short = {"neutral": "neutral", "male": "m", "female": "f"}[gender]
        names += [f"basicModel_{short}_lbs_10_207_0_v1.0.0.pkl", f"basicmodel_{short}_lbs_10_207_0_v1.1.0.pkl",
                  f"basicModel_{gender}_lbs_10_207_0_v1.0.0.pkl", f"basicmodel_{gender}_lbs_10_207_0_v1.1.0.pkl"]
    names = list(dict.fromkeys(names))  # neutral: the short and the long gender name are the same
    out = []
    for base in (folder / model_type, folder):
        out += [base / n for n in names]
        if model_type == "smplh":
            out.append(base / gender / "model.npz")
    return out


def _type_from_name(path: Path) -> Optional[str]:
    stem = path.name.lower()
    for t in ("smplx", "smplh", "smpl"):
        if stem.startswith(t + "_") or stem.startswith(t + "."):
            return t
    if stem.startswith("basicmodel_"):
        return "smpl"
    parent = path.parent.name.lower() if path.name == "model.npz" else ""
    return "smplh" if parent in _GENDERS and path.parent.parent.name.lower() == "smplh" else None


def find_body_model_file(path: PathLike, model_type: Optional[str] = None, gender: str = "neutral") -> Tuple[Path, str]:
    """Resolve ``path`` (a file or a model folder) to ``(file, model_type)``.

    Raises:
        FileNotFoundError: nothing found; the message lists every path tried and the layout.
        ValueError: unknown ``model_type`` / ``gender``.
    """
    if model_type is not None and model_type.lower() not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {list(MODEL_TYPES)}, got {model_type!r}")
    gender = gender.lower()
    if gender not in _GENDERS:
        raise ValueError(f"gender must be one of {list(_GENDERS)}, got {gender!r}")
    p = Path(path).expanduser()
    if p.is_file():
        t = model_type.lower() if model_type else _type_from_name(p)
        if t is None:
            raise ValueError(
                f"{p}: cannot tell the model type from the file name; pass model_type= one of "
                f"{list(MODEL_TYPES)}"
            )
        return p, t
    types = [model_type.lower()] if model_type else list(MODEL_TYPES)
    tried: List[Path] = []
    if p.is_dir():
        for t in types:
            if p.name.lower() in MODEL_TYPES and p.name.lower() != t:
                continue
            for c in _candidates(p, t, gender):
                tried.append(c)
                if c.is_file():
                    return c, t
    want = types[0] if len(types) == 1 else "smpl"
    T, G = want.upper(), gender.upper()
    ext = "npz" if want == "smplx" else "pkl"
    shown = "\n  ".join(str(t) for t in tried[:12]) or "(the folder does not exist)"
    raise FileNotFoundError(
        f"no {'/'.join(t.upper() for t in types)} model found at {p}. Expected the layout smplx uses, "
        f"e.g. {p}/{want}/{T}_{G}.{ext} (SMPL: smpl/SMPL_NEUTRAL.pkl, SMPL+H: smplh/SMPLH_NEUTRAL.npz, "
        f"SMPL-X: smplx/SMPLX_NEUTRAL.npz), or the path of one model file. Tried:\n  {shown}\n"
        "Without real model files, use the embedded stand-in (leave --body-model unset / path=None)."
    )


@contextlib.contextmanager
def _quiet_smplx():
    """smplx prints warnings to stdout (e.g. 'You are using a SMPL model, with only 10 shape
    coefficients', which is expected: the package uses 10); log them at debug level instead."""
    buf = _io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        for line in buf.getvalue().splitlines():
            if line.strip():
                logger.debug("smplx: %s", line.strip())


def load_body_model(
    model_dir_or_file: PathLike,
    model_type: Optional[str] = None,
    gender: str = "neutral",
    num_betas: int = 10,
    dtype: torch.dtype = torch.float32,
    flat_hand_mean: bool = True,
    num_expression_coeffs: int = 10,
) -> nn.Module:
    """Build the ``smplx`` module (``smplx.SMPL`` / ``SMPLH`` / ``SMPLX``) for a model file.

    The module is created without its own pose/shape parameters (``create_*=False``): pass every
    input to its ``forward`` (as :class:`BodyModel` does). SMPL+H / SMPL-X hands use full
    axis-angle (no PCA); ``flat_hand_mean=True`` makes a zero hand pose a flat hand.

    Args:
        model_dir_or_file: a model file or a folder in the layout of the module docstring.
        model_type: ``"smpl"``, ``"smplh"``, ``"smplx"``; ``None`` infers it from the file name
            (or tries the three in order in a folder).
        gender: ``"neutral"``, ``"male"`` or ``"female"``.
    Raises:
        FileNotFoundError: no model file (the message names the expected files).
    """
    path, mtype = find_body_model_file(model_dir_or_file, model_type, gender)
    return _build_smplx(path, mtype, gender, num_betas, dtype, flat_hand_mean, num_expression_coeffs)[0]


def _build_smplx(path: Path, mtype: str, gender: str, num_betas: int, dtype: torch.dtype,
                 flat_hand_mean: bool, num_expression_coeffs: int = 10) -> Tuple[nn.Module, bool]:
    """(smplx module, whether the file is the procedural stand-in)."""
    import smplx
    from smplx.utils import Struct

    from .bodygen import STANDIN_MARKER_KEY

    common = dict(gender=gender, num_betas=num_betas, dtype=dtype, batch_size=1,
                  create_betas=False, create_global_orient=False, create_body_pose=False,
                  create_transl=False)
    hands = dict(use_pca=False, flat_hand_mean=flat_hand_mean,
                 create_left_hand_pose=False, create_right_hand_pose=False)
    # Every file is read here (restricted unpickler / no unpickling) and handed to smplx as a
    # data_struct, so smplx never calls pickle.load or np.load(allow_pickle=True) on a user file.
    data = _load_model_arrays(path, mtype)
    try:
        with _quiet_smplx():
            if mtype == "smpl":
                module = smplx.SMPL(str(path), data_struct=Struct(**data), **common)
                return module, STANDIN_MARKER_KEY in data
            if mtype == "smplh":
                n_hand = 3 * 15
                for side in ("l", "r"):
                    data.setdefault(f"hands_components{side}", np.eye(n_hand))
                    data.setdefault(f"hands_mean{side}", np.zeros(n_hand))
                module = smplx.SMPLH(str(path), data_struct=Struct(**data), ext=path.suffix[1:], **common, **hands)
                return module, False
            for side in ("l", "r"):
                data.setdefault(f"hands_components{side}", np.eye(45))
                data.setdefault(f"hands_mean{side}", np.zeros(45))
            module = _smplx_from_arrays(smplx, data, path, num_expression_coeffs=num_expression_coeffs,
                                        create_expression=False, create_jaw_pose=False, create_leye_pose=False,
                                        create_reye_pose=False, **common, **hands)
            return module, False
    except (AttributeError, IndexError, KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: not a usable {mtype.upper()} model file ({type(e).__name__}: {e}); "
                         "use the official model files") from e


def _smplx_from_arrays(smplx, data: Dict[str, Any], path: Path, **kwargs) -> nn.Module:
    """``smplx.SMPLX`` built from arrays already read safely.

    ``smplx.SMPLX`` has no ``data_struct`` argument and unpickles its file itself; it is given
    a plain-array copy of the model (``np.savez`` of numeric arrays only, so its
    ``np.load(allow_pickle=True)`` finds nothing to unpickle) in a temporary folder instead.
    """
    import tempfile

    plain = {k: np.asarray(v) for k, v in data.items()
             if isinstance(v, np.ndarray) or np.isscalar(v)}
    plain = {k: v for k, v in plain.items() if not v.dtype.hasobject}
    with tempfile.TemporaryDirectory(prefix="posendf-smplx-") as tmp:
        f = Path(tmp) / "model.npz"
        np.savez(f, **plain)
        module = smplx.SMPLX(str(f), ext="npz", **kwargs)
    return module


# ---------------------------------------------------------------------------------------------
# The embedded default
# ---------------------------------------------------------------------------------------------


def default_body_model_dir() -> Path:
    """Folder holding the embedded stand-in model (``smpl/SMPL_NEUTRAL.pkl``).

    The packaged copy in ``posendf_plugin/assets/body_model`` if present; otherwise it is
    generated (deterministically, about 2 s) into ``$POSENDF_CACHE/body_model_v<N>`` (default
    cache ``~/.cache/posendf_plugin``) on first use.
    """
    from . import bodygen

    if (_ASSET_DIR / "smpl" / "SMPL_NEUTRAL.pkl").is_file():
        return _ASSET_DIR
    cache = Path(os.environ.get("POSENDF_CACHE", Path.home() / ".cache" / "posendf_plugin")).expanduser()
    out = cache / f"body_model_v{bodygen.GENERATOR_VERSION}"
    if not (out / "smpl" / "SMPL_NEUTRAL.pkl").is_file():
        logger.info("generating the procedural body model into %s", out)
        bodygen.write_body_model(out)
    return out


# ---------------------------------------------------------------------------------------------
# BodyModel: a typed, layout-aware wrapper
# ---------------------------------------------------------------------------------------------


@dataclass
class BodyOutput:
    """Result of :meth:`BodyModel.forward` (leading dims ``...`` as in the input).

    Attributes:
        vertices: ``(..., V, 3)`` posed mesh vertices (metres).
        joints: ``(..., 24, 3)`` the 24 SMPL joints. For SMPL+H / SMPL-X, joints 22/23 (hands)
            are the middle-finger base joints (approximately where SMPL's hand joints are).
        model_joints: ``(..., J, 3)`` all joints ``smplx`` returns for this model (its own joints
            followed by its vertex keypoints).
        keypoints: ``(..., K, 3)`` 3D keypoints in ``keypoint_format`` if requested, else None.
        keypoint_format: ``"openpose25"`` / ``"coco17"`` or None.
        model_kind: ``"smpl"``, ``"smplh"`` or ``"smplx"`` (the stand-in is ``"smpl"``).
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    model_joints: torch.Tensor
    keypoints: Optional[torch.Tensor] = None
    keypoint_format: Optional[str] = None
    model_kind: str = "smpl"


class BodyModel(nn.Module):
    """Thin wrapper around a ``smplx`` body model (SMPL, SMPL+H, SMPL-X or the stand-in).

    Holds no pose/shape parameters: optimisers own them and pass them to :meth:`forward`.
    """

    def __init__(self, smplx_model: nn.Module, model_type: str, source: Optional[Path] = None,
                 is_standin: bool = False):
        super().__init__()
        if model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {list(MODEL_TYPES)}, got {model_type!r}")
        self.model = smplx_model
        self.model_type = model_type
        self.source = source
        self.is_standin = is_standin

    # -- properties -------------------------------------------------------------------------
    @property
    def num_betas(self) -> int:
        return int(self.model.num_betas)

    @property
    def num_vertices(self) -> int:
        return int(self.model.v_template.shape[0])

    @property
    def faces(self) -> np.ndarray:
        """``(F, 3)`` int64 triangle vertex indices."""
        return self.model.faces_tensor.cpu().numpy()

    @property
    def faces_tensor(self) -> torch.Tensor:
        return self.model.faces_tensor

    @property
    def dtype(self) -> torch.dtype:
        return self.model.v_template.dtype

    @property
    def device(self) -> torch.device:
        return self.model.v_template.device

    def extra_repr(self) -> str:
        what = "procedural stand-in (not SMPL)" if self.is_standin else str(self.source)
        return f"model_type={self.model_type}, num_betas={self.num_betas}, source={what}"

    # -- inputs -----------------------------------------------------------------------------
    def _body_pose(self, body_pose, global_orient):
        """Return (native flat body pose (..., W), root axis-angle or None, batch shape)."""
        native = NATIVE_BODY_POSE_WIDTH[self.model_type]
        x = as_tensor(body_pose, "body_pose").to(self.device, self.dtype)
        root = None
        if x.ndim >= 1 and x.shape[-1] == native:
            return x, root, x.shape[:-1]
        if x.ndim >= 1 and x.shape[-1] in POSE_LAYOUTS and POSE_LAYOUTS[x.shape[-1]][1] == 1:
            root = x[..., :3]
            if global_orient is not None:
                raise ValueError(
                    f"body_pose has the full-pose layout {x.shape[-1]} (root first) and global_orient "
                    "was given too; pass only one of them for the root orientation"
                )
        if x.ndim >= 1 and x.shape[-1] == 69 and self.model_type != "smpl":
            warnings.warn("body_pose has SMPL's 69 values; its 2 hand joints are dropped for "
                          f"{self.model_type}", stacklevel=3)
        if is_axis_angle(x):
            # axis-angle already: keep the 21 body joints as they are (no round trip through
            # quaternions — a fitting loop calls this every step)
            aa = body_axis_angle(x, "body_pose").flatten(-2)
            batch = aa.shape[:-1]
        else:
            q = to_body_quat(x, "body_pose")
            aa, batch = quat_to_pose(q, 63), q.shape[:-2]
        if native == 69:
            aa = torch.cat((aa, aa.new_zeros(aa.shape[:-1] + (6,))), dim=-1)
        return aa, root, batch

    def forward(
        self,
        body_pose=None,
        global_orient=None,
        betas=None,
        transl=None,
        keypoints: Optional[str] = None,
    ) -> BodyOutput:
        """Pose the model.

        Args:
            body_pose: any layout :func:`posendf_plugin.skeleton.to_body_quat` accepts —
                ``(..., 21, 4)`` quaternions ``(w, x, y, z)``, ``(..., 21, 3, 3)``,
                ``(..., 21, 3)``, flat axis-angle 63/69/72/156/165 — or None (rest pose). The
                model's own width (69 for SMPL, 63 otherwise) is passed through unchanged (keeps
                SMPL's hand rotations); other layouts keep the 21 body joints. A full-pose layout
                (72/156/165) also supplies the root orientation.
            global_orient: ``(..., 3)`` axis-angle root orientation (convert rotation matrices
                with :func:`posendf_plugin.rotations.matrix_to_axis_angle`; a ``(3, 3)`` input
                is read as three axis-angle rows, never as a matrix).
            betas: ``(..., n)`` or ``(n,)`` shape coefficients, ``n <= num_betas`` (zero-padded).
            transl: ``(..., 3)`` translation (metres).
            keypoints: ``"openpose25"`` or ``"coco17"`` to also return 3D keypoints.
        Returns:
            :class:`BodyOutput`.
        """
        batch = None
        pose = root = None
        if body_pose is not None:
            pose, root, batch = self._body_pose(body_pose, global_orient)
        if global_orient is not None:
            go = as_tensor(global_orient, "global_orient").to(self.device, self.dtype)
            check_shape(go, ("*", 3), "global_orient")
            root = go
        for t in (root, transl):
            if batch is None and t is not None:
                batch = t.shape[:-1] if isinstance(t, torch.Tensor) else as_tensor(t).shape[:-1]
        if batch is None and betas is not None:
            b = as_tensor(betas, "betas")
            batch = b.shape[:-1]
        batch = torch.Size(batch if batch is not None else ())
        B = int(np.prod(batch)) if len(batch) else 1
        dev, dt = self.device, self.dtype

        def flat(t, width, name):
            if t is None:
                return torch.zeros(B, width, device=dev, dtype=dt)
            t = as_tensor(t, name).to(dev, dt)
            check_shape(t, ("*", width), name)
            return t.expand(batch + (width,)).reshape(B, width)

        pose_flat = flat(pose, NATIVE_BODY_POSE_WIDTH[self.model_type], "body_pose")
        root_flat = flat(root, 3, "global_orient")
        transl_flat = flat(transl, 3, "transl")
        if betas is None:
            betas_flat = torch.zeros(B, self.num_betas, device=dev, dtype=dt)
        else:
            b = as_tensor(betas, "betas").to(dev, dt)
            if b.ndim == 0 or b.shape[-1] > self.num_betas:
                raise ValueError(f"betas must have shape (..., n) with n <= {self.num_betas}, got {tuple(b.shape)}")
            if b.shape[-1] < self.num_betas:
                b = torch.cat((b, b.new_zeros(b.shape[:-1] + (self.num_betas - b.shape[-1],))), dim=-1)
            betas_flat = b.expand(batch + (self.num_betas,)).reshape(B, self.num_betas)

        kwargs = dict(betas=betas_flat, body_pose=pose_flat, global_orient=root_flat, transl=transl_flat)
        if self.model_type in ("smplh", "smplx"):
            kwargs.update(left_hand_pose=torch.zeros(B, 45, device=dev, dtype=dt),
                          right_hand_pose=torch.zeros(B, 45, device=dev, dtype=dt))
        if self.model_type == "smplx":
            zeros3 = torch.zeros(B, 3, device=dev, dtype=dt)
            kwargs.update(jaw_pose=zeros3, leye_pose=zeros3, reye_pose=zeros3,
                          expression=torch.zeros(B, self.model.num_expression_coeffs, device=dev, dtype=dt))
        out = self.model(**kwargs)
        mj = out.joints
        if self.model_type == "smpl":
            joints = mj[:, :NUM_SMPL_JOINTS]
        else:
            lh, rh = _HAND_JOINT[self.model_type]
            joints = torch.cat((mj[:, :22], mj[:, [lh, rh]]), dim=1)
        res = BodyOutput(
            vertices=out.vertices.reshape(batch + out.vertices.shape[1:]),
            joints=joints.reshape(batch + joints.shape[1:]),
            model_joints=mj.reshape(batch + mj.shape[1:]),
            model_kind=self.model_type,
        )
        if keypoints is not None:
            res.keypoints = _kp.keypoints_from_output(res, keypoints)
            res.keypoint_format = keypoints
        return res

    def rest_joints(self, betas=None) -> torch.Tensor:
        """``(..., 24, 3)`` joints of the unposed, shaped body (``betas`` as in :meth:`forward`)."""
        return self.forward(betas=betas).joints


def get_body_model(
    path: Optional[PathLike] = None,
    model_type: Optional[str] = None,
    gender: str = "neutral",
    num_betas: int = 10,
    dtype: torch.dtype = torch.float32,
    device: Optional[Union[str, torch.device]] = None,
    flat_hand_mean: bool = True,
) -> BodyModel:
    """A :class:`BodyModel`: the real model at ``path``, or the embedded stand-in if ``path`` is None.

    The stand-in is an SMPL-layout procedural model (see :mod:`posendf_plugin.bodygen`), not SMPL;
    it has only a neutral gender (other genders warn and fall back to it).
    """
    if path is None:
        if model_type not in (None, "smpl"):
            raise ValueError(
                f"the embedded stand-in is an SMPL-layout model; model_type={model_type!r} needs real "
                "model files: pass path=<folder with smplh/ or smplx/>"
            )
        if gender.lower() != "neutral":
            warnings.warn(f"the embedded stand-in body model has no {gender!r} variant; using neutral",
                          stacklevel=2)
            gender = "neutral"
        path, model_type = default_body_model_dir(), "smpl"
    file, mtype = find_body_model_file(path, model_type, gender)
    module, is_standin = _build_smplx(file, mtype, gender.lower(), num_betas, dtype, flat_hand_mean)
    bm = BodyModel(module, mtype, source=file, is_standin=is_standin)
    if device is not None:
        bm = bm.to(device)
    return bm.eval()

