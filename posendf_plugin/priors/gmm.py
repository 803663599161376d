"""SMPLify's Gaussian-mixture pose prior.

A mixture of ``K`` full-covariance Gaussians over flat axis-angle body poses, evaluated as in
SMPLify-X's ``MaxMixturePrior`` (vchoutas/smplify-x, ``smplifyx/prior.py``, the default
``use_merged=True`` path): the energy is the **minimum over components** of the component's
negative log-likelihood,

    E(x) = min_k [ 0.5 (x - μ_k)ᵀ Σ_k⁻¹ (x - μ_k) - log w_k + (D/2) log 2π
                   + 0.5 log det Σ_k - 0.5 min_j log det Σ_j ]

i.e. SMPLify-X's ``0.5·quadratic - log(nll_weights)`` with ``nll_weights = w / ((2π)^(D/2) ·
sqrt(det Σ_k) / min_j sqrt(det Σ_j))``. SMPLify-X hard-codes ``D = 69``; we use the mixture's
own dimension, which is the same for its 69-D ``gmm_08.pkl`` (for a 63-D mixture the constant
shifts by ``3 log 2π``, which changes no gradient). Precisions and constants are precomputed
in float64.

**Pose spaces** (stored with the mixture as ``dim``):

* ``69`` — SMPL ``body_pose``: 21 body joints then the 2 hand joints (SMPLify's
  ``gmm_08.pkl``). The prior models only the 21 body joints, so the hand entries of the input
  are always **set to zero**.
* ``63`` — the 21 body joints (AMASS ``pose_body`` / SMPL-X ``body_pose``); the default when
  fitting on our pose sets, which carry no hand rotations.

Quaternions are ``(w, x, y, z)`` (see :mod:`posendf_plugin.rotations`).
"""
from __future__ import annotations

import io
import math
import pickle
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np
import torch

from ..io import load_npz, save_npz
from ..skeleton import NUM_BODY_JOINTS, pose_to_quat, to_body_quat, with_mirror_images
from .base import PosePrior, register_prior
from .vposer import body_axis_angle

__all__ = [
    "GMMFitConfig",
    "GaussianMixturePrior",
    "fit_gmm",
    "gmm_energy",
    "load_smplify_pkl",
    "GMM_DIMS",
    "DEFAULT_GMM",
]

BODY_AA_DIM = NUM_BODY_JOINTS * 3  # 63
SMPL_BODY_POSE_DIM = 69
#: Supported mixture dimensions -> description of the pose space.
GMM_DIMS = {
    BODY_AA_DIM: "body_pose_63: axis-angle of the 21 body joints (SMPL joints 1..21)",
    SMPL_BODY_POSE_DIM: "smpl_body_pose_69: SMPL body_pose, 21 body joints + 2 hands (hands set to zero)",
}
#: The shipped mixture, fitted on the default CMU pose set.
DEFAULT_GMM = Path(__file__).resolve().parents[1] / "assets" / "gmm_cmu.npz"
FIT_COMMAND = (
    "posendf baseline train gmm --poses posendf_plugin/assets/cmu_train.npz "
    "--out posendf_plugin/assets/gmm_cmu.npz"
)
_FORMAT = "posendf_plugin.gmm/1"


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------


def gmm_energy(
    x: torch.Tensor, means: torch.Tensor, precisions: torch.Tensor, nll_consts: torch.Tensor
) -> torch.Tensor:
    """Min-component negative log-likelihood (SMPLify-X ``merged_log_likelihood``).

    Args:
        x: ``(B, D)`` poses.
        means: ``(K, D)``.
        precisions: ``(K, D, D)`` inverse covariances.
        nll_consts: ``(K,)`` per-component constant ``-log(nll_weight_k)``.
    Returns:
        ``(B,)`` ``min_k 0.5 (x-μ_k)ᵀ P_k (x-μ_k) + nll_consts_k``.
    """
    diff = x.unsqueeze(1) - means  # (B, K, D)
    quad = torch.einsum("bki,kij,bkj->bk", diff, precisions, diff)
    return (0.5 * quad + nll_consts).min(dim=1).values


def _nll_consts(weights: np.ndarray, covars: np.ndarray) -> np.ndarray:
    """``-log(nll_weights)`` of SMPLify-X in float64 (log-space, no under/overflow)."""
    d = covars.shape[-1]
    sign, logdet = np.linalg.slogdet(covars.astype(np.float64))
    if np.any(sign <= 0):
        raise ValueError("GMM covariances must be symmetric positive definite; got a non-positive determinant")
    log_w = np.log(weights.astype(np.float64))
    return -(log_w - 0.5 * d * math.log(2.0 * math.pi) - 0.5 * (logdet - logdet.min()))


def _check_layout(means, covars, weights, where: str) -> None:
    means, covars, weights = np.asarray(means), np.asarray(covars), np.asarray(weights)
    if means.ndim != 2 or means.shape[1] not in GMM_DIMS:
        raise ValueError(
            f"{where}: 'means' must have shape (K, 63) or (K, 69), got {means.shape}; "
            "SMPLify's gmm_08.pkl has means (8, 69)"
        )
    k, d = means.shape
    if covars.shape != (k, d, d):
        raise ValueError(f"{where}: 'covars' must have shape ({k}, {d}, {d}) to match 'means', got {covars.shape}")
    if weights.reshape(-1).shape != (k,):
        raise ValueError(f"{where}: 'weights' must have shape ({k},), got {weights.shape}")
    if not (np.all(np.isfinite(means)) and np.all(np.isfinite(covars)) and np.all(np.isfinite(weights))):
        raise ValueError(f"{where}: GMM parameters contain NaN or Inf")
    if np.any(weights <= 0):
        raise ValueError(f"{where}: GMM 'weights' must be positive, got {weights.reshape(-1).tolist()}")


# ---------------------------------------------------------------------------------------------
# Reading SMPLify's pickle safely
# ---------------------------------------------------------------------------------------------


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays (SMPLify's pickles hold a dict of arrays);
    anything else is refused instead of being executed."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes array bytes in protocol-2 pickles
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only dicts of numpy arrays are accepted"
        )


def load_smplify_pkl(path: Union[str, Path]) -> dict:
    """Read SMPLify's ``gmm_08.pkl`` layout: a pickled dict with ``means (K, 69)``,
    ``covars (K, 69, 69)``, ``weights (K,)`` (Python-2 pickles are read with latin1).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a pickle of numpy arrays, or wrong shapes.
        KeyError: a required key is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such GMM file")
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except Exception as e:
        raise ValueError(
            f"{path}: not a readable SMPLify GMM pickle ({type(e).__name__}: {e}); expected a dict "
            "with 'means', 'covars', 'weights' numpy arrays (sklearn GMM objects are not supported)"
        ) from e
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a pickled dict with 'means', 'covars', 'weights', got {type(obj).__name__}")
    missing = [k for k in ("means", "covars", "weights") if k not in obj]
    if missing:
        raise KeyError(f"{path}: missing key(s) {missing}; found {sorted(map(str, obj))}")
    out = {k: np.asarray(obj[k], np.float64) for k in ("means", "covars", "weights")}
    out["weights"] = out["weights"].reshape(-1)
    _check_layout(out["means"], out["covars"], out["weights"], str(path))
    return out


# ---------------------------------------------------------------------------------------------
# The prior
# ---------------------------------------------------------------------------------------------


class GaussianMixturePrior(PosePrior):
    """SMPLify's max-mixture pose prior (see the module docstring).

    Args:
        means: ``(K, D)``, D = 63 or 69.
        covars: ``(K, D, D)`` full covariances.
        weights: ``(K,)`` mixture weights.
        source: provenance note, saved with the mixture.
    """

    name = "gmm"

    def __init__(self, means, covars, weights, source: str = "") -> None:
        super().__init__()
        # Parameters are stored in float32 (as SMPLify-X does before inverting); the derived
        # precisions and constants are computed in float64 from those rounded values, so a saved
        # and reloaded mixture gives bit-identical energies.
        means = np.asarray(means, np.float32).astype(np.float64)
        covars = np.asarray(covars, np.float32).astype(np.float64)
        weights = np.asarray(weights, np.float32).astype(np.float64).reshape(-1)
        _check_layout(means, covars, weights, "GaussianMixturePrior")
        self.source = str(source)
        self.register_buffer("means", torch.from_numpy(means).float())
        self.register_buffer("covars", torch.from_numpy(covars).float())
        self.register_buffer("weights", torch.from_numpy(weights).float())
        if not np.allclose(covars, covars.transpose(0, 2, 1), rtol=1e-5, atol=1e-8):
            raise ValueError("GMM 'covars' must be symmetric (K, D, D) covariance matrices")
        self.register_buffer("precisions", torch.from_numpy(np.linalg.inv(covars)).float())
        self.register_buffer("nll_consts", torch.from_numpy(_nll_consts(weights, covars)).float())
        try:  # Cholesky factors, for sampling; also rejects non-positive-definite covariances
            chol = np.linalg.cholesky(covars)
        except np.linalg.LinAlgError as e:
            raise ValueError(f"GMM 'covars' must be symmetric positive definite ({e})") from e
        self.register_buffer("chol", torch.from_numpy(chol).float())

    @property
    def dim(self) -> int:
        """Pose dimension D (63 or 69; see :data:`GMM_DIMS`)."""
        return int(self.means.shape[1])

    @property
    def num_components(self) -> int:
        return int(self.means.shape[0])

    def to_gmm_input(self, body_pose) -> torch.Tensor:
        """Any supported body-pose layout to the mixture's space ``(..., D)`` (hands zero for
        D = 69)."""
        aa = body_axis_angle(body_pose).to(self.means)
        if self.dim == SMPL_BODY_POSE_DIM:
            aa = torch.cat((aa, aa.new_zeros(aa.shape[:-1] + (SMPL_BODY_POSE_DIM - BODY_AA_DIM,))), -1)
        return aa

    def energy(self, body_pose) -> torch.Tensor:
        """Min-component negative log-likelihood, ``(..., *layout) -> (...)``; differentiable."""
        x = self.to_gmm_input(body_pose)
        lead = x.shape[:-1]
        e = gmm_energy(x.reshape(-1, self.dim), self.means, self.precisions, self.nll_consts)
        return e.reshape(lead)

    def sample(self, n: int, seed: Optional[int] = None) -> torch.Tensor:
        """``n`` draws from the mixture as ``(n, 21, 4)`` quaternions ``(w, x, y, z)``
        (hand entries of a 69-D mixture are dropped)."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        gen = torch.Generator(device="cpu")
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        comp = torch.multinomial(self.weights.cpu().double(), n, replacement=True, generator=gen)
        eps = torch.randn(n, self.dim, generator=gen, dtype=torch.float64)
        chol, means = self.chol.cpu().double(), self.means.cpu().double()
        x = means[comp] + (chol[comp] @ eps.unsqueeze(-1)).squeeze(-1)
        return pose_to_quat(x[:, :BODY_AA_DIM].float()).to(self.means.device)

    # -- files ----------------------------------------------------------------------------

    def save(self, path: Union[str, Path]) -> Path:
        """Atomically write ``.npz``: means, covars, weights, ``dim``, ``space`` (text),
        ``source``, ``format``."""
        return save_npz(
            path,
            means=self.means.double().cpu().numpy(),
            covars=self.covars.double().cpu().numpy(),
            weights=self.weights.double().cpu().numpy(),
            dim=np.asarray(self.dim),
            space=np.asarray(GMM_DIMS[self.dim]),
            source=np.asarray(self.source),
            format=np.asarray(_FORMAT),
        )

    @classmethod
    def from_checkpoint(cls, path: Union[str, Path]) -> "GaussianMixturePrior":
        """Load our ``.npz`` (from :meth:`save`) or SMPLify's ``gmm_08.pkl`` layout (``.pkl``).
        Returns the prior in eval mode."""
        path = Path(path)
        if path.suffix == ".pkl":
            d = load_smplify_pkl(path)
            prior = cls(d["means"], d["covars"], d["weights"], source=f"SMPLify pickle {path.name}")
        else:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such GMM file")
            d = load_npz(path)
            if not all(k in d for k in ("means", "covars", "weights")):
                what = ("a PyTorch checkpoint (a network's weights), not a GMM" if any(k.endswith("data.pkl") for k in d)
                        else f"not a GMM (found keys {sorted(d)[:8]})")
                raise ValueError(f"{path}: {what}; a GMM is an .npz with 'means', 'covars' and 'weights' "
                                 f"('{FIT_COMMAND}' writes one) or SMPLify's gmm_08.pkl")
            _check_layout(d["means"], d["covars"], d["weights"], str(path))
            if "dim" in d and int(d["dim"]) != d["means"].shape[1]:
                raise ValueError(f"{path}: stored dim {int(d['dim'])} does not match means {d['means'].shape}")
            prior = cls(d["means"], d["covars"], d["weights"], source=str(d.get("source", "")))
        return prior.eval()

    @classmethod
    def from_pretrained(cls, path: Optional[Union[str, Path]] = None) -> "GaussianMixturePrior":
        """Load the shipped mixture fitted on the default CMU pose set
        (``posendf_plugin/assets/gmm_cmu.npz``), or ``path``."""
        p = Path(path) if path is not None else DEFAULT_GMM
        if not p.is_file():
            raise FileNotFoundError(
                f"{p}: no GMM here; fit one with '{FIT_COMMAND}', or pass SMPLify's gmm_08.pkl to "
                "GaussianMixturePrior.from_checkpoint()"
            )
        return cls.from_checkpoint(p)


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GMMFitConfig:
    """How :func:`fit_gmm` fits the mixture (scikit-learn ``GaussianMixture``, full covariance).

    Attributes:
        num_components: K (8 as in SMPLify's ``gmm_08.pkl``).
        dim: pose space, 63 (body joints) or 69 (SMPL body_pose, hands zero).
        reg_covar: added to covariance diagonals (keeps the zero hand dims of D = 69 invertible).
        max_iter: EM iterations.
        n_init: EM restarts (best kept).
        max_poses: fit on at most this many poses (random subset); ``None`` = all.
        seed: random seed (k-means init, subset).
        mirror: add the left/right mirror image of every pose
            (:func:`~posendf_plugin.skeleton.mirror_body_quat`), as the shipped Pose-NDF, NRDF and
            VPoser are trained.
    """

    num_components: int = 8
    dim: int = 63
    reg_covar: float = 1e-4
    max_iter: int = 200
    n_init: int = 1
    max_poses: Optional[int] = None
    seed: int = 0
    mirror: bool = True

    def __post_init__(self) -> None:
        if self.dim not in GMM_DIMS:
            raise ValueError(f"GMMFitConfig.dim must be 63 or 69, got {self.dim!r}")
        for k in ("num_components", "max_iter", "n_init"):
            if not isinstance(getattr(self, k), int) or getattr(self, k) < 1:
                raise ValueError(f"GMMFitConfig.{k} must be a positive integer, got {getattr(self, k)!r}")
        if not (self.reg_covar > 0):
            raise ValueError(f"GMMFitConfig.reg_covar must be > 0, got {self.reg_covar!r}")
        if self.max_poses is not None and (not isinstance(self.max_poses, int) or self.max_poses < 1):
            raise ValueError(f"GMMFitConfig.max_poses must be a positive integer or null, got {self.max_poses!r}")

    @classmethod
    def from_dict(cls, d: Mapping) -> "GMMFitConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise KeyError(f"unknown GMM config key(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(d))

    def to_dict(self) -> dict:
        return asdict(self)


def fit_gmm(poses, config: GMMFitConfig = GMMFitConfig(), source: str = "") -> GaussianMixturePrior:
    """Fit SMPLify's mixture on poses with scikit-learn.

    Args:
        poses: ``(N, ...)`` body poses in any supported layout (``(N, 21, 4)`` quaternions
            from a pose set, flat axis-angle...).
        config: see :class:`GMMFitConfig`.
    Returns:
        The fitted :class:`GaussianMixturePrior` (eval mode).
    Raises:
        ValueError: fewer poses than ``2 * num_components``.
    """
    from sklearn.mixture import GaussianMixture

    q = to_body_quat(poses, "poses").reshape(-1, NUM_BODY_JOINTS, 4)
    if config.mirror:
        q = with_mirror_images(q)
    aa = body_axis_angle(q).double().cpu().numpy()
    n = len(aa)
    if n < 2 * config.num_components:
        given = f"{n // 2} poses ({n} with their mirror images)" if config.mirror else f"{n} poses"
        raise ValueError(
            f"need at least {2 * config.num_components} poses to fit {config.num_components} components "
            f"(mirror images count), got {given}; give more poses or fewer num_components"
        )
    rng = np.random.default_rng(config.seed)
    if config.max_poses is not None and n > config.max_poses:
        aa = aa[np.sort(rng.choice(n, config.max_poses, replace=False))]
    if config.dim == SMPL_BODY_POSE_DIM:
        aa = np.concatenate((aa, np.zeros((len(aa), SMPL_BODY_POSE_DIM - BODY_AA_DIM))), axis=1)
    gm = GaussianMixture(
        n_components=config.num_components,
        covariance_type="full",
        reg_covar=config.reg_covar,
        max_iter=config.max_iter,
        n_init=config.n_init,
        random_state=config.seed,
    )
    gm.fit(aa)
    return GaussianMixturePrior(gm.means_, gm.covariances_, gm.weights_, source=source).eval()


def _factory(checkpoint: Optional[Union[str, Path]] = None, **kw) -> GaussianMixturePrior:
    """``get_prior("gmm", checkpoint=...)``: shipped mixture by default; ``.pkl`` = SMPLify."""
    if checkpoint is None:
        return GaussianMixturePrior.from_pretrained(**kw)
    return GaussianMixturePrior.from_checkpoint(checkpoint, **kw)


register_prior("gmm", _factory)
