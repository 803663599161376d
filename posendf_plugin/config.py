"""The configuration schema of a Pose-NDF experiment: frozen dataclasses, checked on creation.

A config has four sections, as in the original Pose-NDF YAML files:

* ``experiment`` — name, output folder, seed, device, which prior variant it trains.
* ``model``      — every size and activation of the network (:mod:`posendf_plugin.model`).
* ``training``   — losses and their weights, optimiser, learning-rate schedule, epochs.
* ``data``       — where the labelled training data and the clean poses come from, and how the
  labelled data was made (for the record and for ``posendf data prepare``).

YAML only serialises the schema: :func:`load_config` reads a YAML file, rejects an unknown
section or key with a ``ValueError`` naming it (and listing the valid ones), and fills missing
keys with their defaults. :func:`save_config` writes one. :meth:`Config.to_dict` /
:meth:`Config.from_dict` give the plain-dict form stored inside every checkpoint, so a model is
always rebuilt with the exact configuration it was trained with.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union

import yaml

from .io import atomic_path, load_yaml

__all__ = [
    "ExperimentConfig",
    "ModelConfig",
    "TrainingConfig",
    "DataConfig",
    "Config",
    "load_config",
    "save_config",
    "ACTIVATIONS",
    "OUTPUTS",
    "PARENT_TABLES",
]

#: hidden-layer activations understood by :mod:`posendf_plugin.model`
ACTIVATIONS = ("softplus", "relu", "lrelu")
#: how the last layer's value is made non-negative: ``abs`` = |x| (an unsigned distance whose
#: zero level set is reachable), ``softplus`` = softplus with ``beta`` (the original's choice for
#: softplus nets), ``relu`` (the original's choice for (leaky-)ReLU nets).
OUTPUTS = ("abs", "softplus", "relu")
#: ``smpl``: the correct SMPL parents of the 21 body joints (:data:`skeleton.BODY_PARENTS`);
#: ``posendf_original``: the off-by-one table of the authors' code, only for their checkpoints.
PARENT_TABLES = ("smpl", "posendf_original")


def _choice(section: str, key: str, value: Any, allowed: Tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"config {section}.{key} = {value!r} is not one of {list(allowed)}")


def _number(section: str, key: str, value: Any) -> None:
    """A finite number (YAML 1.1 reads ``5e-3`` as a string: say how to write it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = ""
        if isinstance(value, str):
            try:
                float(value)
                hint = " (YAML reads an exponent without a '.' as text: write 5.0e-3 or 0.005)"
            except ValueError:
                pass
        raise ValueError(f"config {section}.{key} must be a number, got {value!r}{hint}")
    if not math.isfinite(value):
        raise ValueError(f"config {section}.{key} must be a finite number, got {value!r}")


def _positive(section: str, key: str, value: Any, strict: bool = True) -> None:
    _number(section, key, value)
    if value < 0 or (strict and value == 0):
        raise ValueError(f"config {section}.{key} must be {'> 0' if strict else '>= 0'}, got {value!r}")


def _text(section: str, key: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ValueError(f"config {section}.{key} must be a text (a name or a path), got {value!r}")


@dataclass(frozen=True)
class ExperimentConfig:
    """``experiment`` section.

    Attributes:
        name: run name (used for the output folder and the TensorBoard run).
        out_dir: folder for checkpoints, TensorBoard logs and plots (relative to the cwd).
        seed: seeds the network initialisation, the data split and the batch order.
        device: ``cpu`` or ``cuda`` (``posendf train --device`` overrides it).
        prior: ``posendf`` (Euclidean gradient projection) or ``nrdf`` (Riemannian projection,
            per-joint tangent space); the projection a loaded model uses by default.
        init_from: optional model file (``model.pt`` or a training checkpoint of this package)
            whose weights start a fresh run (fine-tuning); its ``model`` section must equal
            this config's. Ignored when resuming (the run's own checkpoint is used).
    """

    name: str = "posendf"
    out_dir: str = "runs"
    seed: int = 0
    device: str = "cpu"
    prior: str = "posendf"
    init_from: str = ""

    def __post_init__(self) -> None:
        for key in ("name", "out_dir", "device", "init_from"):
            _text("experiment", key, getattr(self, key))
        if not self.name or "/" in self.name:
            raise ValueError(f"config experiment.name must be a non-empty name without '/', got {self.name!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2 ** 63:
            raise ValueError(f"config experiment.seed must be an integer from 0 to 2**63 - 1, got {self.seed!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"config experiment.device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        _choice("experiment", "prior", self.prior, ("posendf", "nrdf"))


@dataclass(frozen=True)
class ModelConfig:
    """``model`` section: the network of :class:`posendf_plugin.model.PoseNDFNet`.

    Attributes:
        parents: parent table of the structure encoder (see :data:`PARENT_TABLES`).
        enc_feature: feature size per joint (paper: 6, so the distance MLP sees 21·6 = 126).
        enc_hidden: hidden width of each per-joint MLP (original: 4 + 6 = 10).
        enc_activation: activation of the per-joint MLPs (applied after both layers).
        hidden: hidden widths of the distance MLP (paper: 256, 512, 1024, 512, 256, 64).
        activation: activation between the distance MLP's layers.
        beta: softplus sharpness (paper: 100), used wherever ``softplus`` is chosen.
        output: how the output is made ``>= 0`` (see :data:`OUTPUTS`).
    """

    parents: str = "smpl"
    enc_feature: int = 6
    enc_hidden: int = 10
    enc_activation: str = "softplus"
    hidden: Tuple[int, ...] = (256, 512, 1024, 512, 256, 64)
    activation: str = "softplus"
    beta: float = 100.0
    output: str = "abs"

    def __post_init__(self) -> None:
        if isinstance(self.hidden, (str, bytes)) or not isinstance(self.hidden, (list, tuple)):
            raise ValueError(f"config model.hidden must be a list of positive integers (e.g. [256, 512, 256]), "
                             f"got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        _choice("model", "parents", self.parents, PARENT_TABLES)
        _choice("model", "enc_activation", self.enc_activation, ACTIVATIONS)
        _choice("model", "activation", self.activation, ACTIVATIONS)
        _choice("model", "output", self.output, OUTPUTS)
        for key in ("enc_feature", "enc_hidden"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"config model.{key} must be a positive integer, got {v!r}")
        if not self.hidden or any(isinstance(h, bool) or not isinstance(h, int) or h <= 0 for h in self.hidden):
            raise ValueError(f"config model.hidden must be a non-empty list of positive integers, got {list(self.hidden)}")
        _positive("model", "beta", self.beta)


@dataclass(frozen=True)
class TrainingConfig:
    """``training`` section.

    Attributes:
        epochs: passes over the labelled training data.
        batch_size: labelled samples per step.
        manifold_batch_size: clean poses per step for the manifold term (0 = same as batch_size).
        lr, weight_decay: Adam settings (the original: 1e-5 .. 1e-4 and weight decay 1e-4).
        lr_schedule: ``none``, ``step`` (×``lr_gamma`` every ``lr_step`` epochs) or ``cosine``
            (half a cosine over ``epochs`` from ``lr`` towards ``lr * lr_min_factor``, which it
            reaches after the last epoch); stepped once per epoch.
        loss: distance regression ``l1`` or ``l2``.
        w_dist, w_manifold, w_eikonal: loss weights. The manifold term is mean f(clean pose);
            the eikonal term is mean (‖∇_q f‖ − 1)²; 0 switches a term off (and its cost).
        eikonal_norm: ``joint`` — one gradient norm per joint (the original; consistent with
            Pose-NDF labels Σ_k (1 − |⟨q_k, p_k⟩|), whose gradient has norm 1 at every joint) or
            ``pose`` — the norm of the whole (21·4) gradient (consistent with a geodesic
            distance on the product manifold).
        eikonal_tangent: take the gradient's component in the tangent space of each joint's
            S³ (``g − ⟨g, q⟩q``) before the norm; ``False`` = plain gradient in R⁴ (original).
        uniform_batch_size: poses between the data and uniformly random poses added to every
            batch (per-joint slerp from a clean pose to a uniform random one by t ~ U(0, 1)),
            labelled on the fly by brute force against the clean poses (``data.label_metric``,
            ``data.k``). They teach the field away from the data, where the noisy-data samples
            never reach, for projecting random poses (``posendf sample``). 0 = off.
        projected_batch_size: hard negatives added to every batch: uniformly random poses
            moved ``projected_steps`` projection steps by the *current* network (where it
            believes the manifold is), labelled on the fly like ``uniform_batch_size``. They
            remove spurious zeros of the field far from the data, where projected samples
            would otherwise end. 0 = off.
        projected_steps: projection steps for those poses.
        teacher: optional model file (``posendf train`` or ``posendf ensemble``) whose field
            labels the ``uniform_batch_size`` / ``projected_batch_size`` poses instead of the
            nearest training poses — for a student trained on ``posendf relabel`` data, whose
            labels are that field's. Empty: nearest-neighbour labels.
        grad_clip: clip the parameter-gradient norm (0 = off).
        val_fraction: share of the labelled data held out for validation every epoch.
        num_threads: torch CPU threads while training (0 = leave torch's default).
    """

    epochs: int = 20
    batch_size: int = 1024
    manifold_batch_size: int = 0
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    lr_step: int = 10
    lr_gamma: float = 0.5
    lr_min_factor: float = 0.05
    loss: str = "l1"
    w_dist: float = 10.0
    w_manifold: float = 1.0
    w_eikonal: float = 0.1
    eikonal_norm: str = "joint"
    eikonal_tangent: bool = False
    uniform_batch_size: int = 0
    projected_batch_size: int = 0
    projected_steps: int = 5
    teacher: str = ""
    grad_clip: float = 0.0
    val_fraction: float = 0.05
    num_threads: int = 0

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "lr_step"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"config training.{key} must be a positive integer, got {v!r}")
        for key in ("manifold_batch_size", "num_threads", "uniform_batch_size", "projected_batch_size", "projected_steps"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"config training.{key} must be an integer >= 0, got {v!r}")
        _positive("training", "lr", self.lr)
        for key in ("weight_decay", "w_dist", "w_manifold", "w_eikonal", "grad_clip"):
            _positive("training", key, getattr(self, key), strict=False)
        _positive("training", "lr_gamma", self.lr_gamma)
        _positive("training", "lr_min_factor", self.lr_min_factor, strict=False)
        if self.lr_min_factor > 1:
            raise ValueError(f"config training.lr_min_factor must be in [0, 1] (the cosine schedule's floor as a "
                             f"share of lr), got {self.lr_min_factor!r}")
        _choice("training", "lr_schedule", self.lr_schedule, ("none", "step", "cosine"))
        _choice("training", "loss", self.loss, ("l1", "l2"))
        _choice("training", "eikonal_norm", self.eikonal_norm, ("joint", "pose"))
        if not isinstance(self.teacher, str):
            raise ValueError(f"config training.teacher must be a model file path (or empty), got {self.teacher!r}")
        if not isinstance(self.eikonal_tangent, bool):
            raise ValueError(f"config training.eikonal_tangent must be true or false, got {self.eikonal_tangent!r}")
        _number("training", "val_fraction", self.val_fraction)
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"config training.val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if self.w_dist == 0 and self.w_manifold == 0 and self.w_eikonal == 0:
            raise ValueError("config training: w_dist, w_manifold and w_eikonal are all 0; nothing to train")


@dataclass(frozen=True)
class DataConfig:
    """``data`` section.

    Attributes:
        train_dir: folder of labelled training data (``chunk_XXXXX.npz`` + ``manifest.json``,
            as written by ``posendf data prepare``); ``posendf train --data`` overrides it.
        pose_set: clean poses for the manifold term (a pose-set ``.npz`` or folder). Empty: use
            the labelled samples whose distance is 0.
        label_metric: how the labels were computed (the metric names of
            :mod:`posendf_plugin.data.labels`): ``posendf`` (mean over the k nearest poses of
            Σ_k 1 − |⟨q_k, p_k⟩|) or ``nrdf`` (geodesic distance on SO(3)^21 to the nearest
            pose). Recorded with the model.
        noise: noise the labelled poses were drawn with, in the names of
            :mod:`posendf_plugin.data.prepare`: ``posendf`` (Gaussian quaternion noise) or
            ``nrdf`` (heavy-tailed per-joint rotations). Recorded with the model. The data itself
            is made by ``posendf data prepare --config configs/prepare_<posendf|nrdf>.yaml``.
        sigmas: noise scales used when the data was prepared (for the record).
        k: neighbours a label averages (Pose-NDF: 5; NRDF: 1, the nearest), as used by
            ``posendf data prepare``; the trainer uses it for the labels it computes itself
            (``training.uniform_batch_size``).
        max_samples: use at most this many labelled samples (0 = all).
    """

    train_dir: str = ""
    pose_set: str = ""
    label_metric: str = "posendf"
    noise: str = "posendf"
    sigmas: Tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5)
    k: int = 5
    max_samples: int = 0

    def __post_init__(self) -> None:
        _text("data", "train_dir", self.train_dir)
        _text("data", "pose_set", self.pose_set)
        if (isinstance(self.sigmas, (str, bytes)) or not isinstance(self.sigmas, (list, tuple))
                or any(isinstance(s, bool) or not isinstance(s, (int, float)) for s in self.sigmas)):
            raise ValueError(f"config data.sigmas must be a list of numbers (e.g. [0.01, 0.1, 0.5]), got {self.sigmas!r}")
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        _choice("data", "label_metric", self.label_metric, ("posendf", "nrdf"))
        _choice("data", "noise", self.noise, ("posendf", "nrdf"))
        if any(not (0 <= s < float("inf")) for s in self.sigmas):
            raise ValueError(f"config data.sigmas must be >= 0, got {list(self.sigmas)}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"config data.k must be a positive integer, got {self.k!r}")
        if isinstance(self.max_samples, bool) or not isinstance(self.max_samples, int) or self.max_samples < 0:
            raise ValueError(f"config data.max_samples must be an integer >= 0, got {self.max_samples!r}")


_SECTIONS = {
    "experiment": ExperimentConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "data": DataConfig,
}


@dataclass(frozen=True)
class Config:
    """A full experiment configuration (see the module docstring)."""

    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        for name, cls in _SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"Config.{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")

    def to_dict(self) -> Dict[str, Dict[str, Any]]:
        """Plain nested dict of builtins (tuples as lists): YAML- and checkpoint-safe."""
        out: Dict[str, Dict[str, Any]] = {}
        for name in _SECTIONS:
            sec = dataclasses.asdict(getattr(self, name))
            out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in sec.items()}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "config") -> "Config":
        """Build from a nested dict; missing keys take their defaults.

        Raises:
            ValueError: an unknown section or key (named, with the valid ones listed), or an
                invalid value.
        """
        if d is None:
            d = {}
        if not isinstance(d, Mapping):
            raise ValueError(f"{source}: expected a mapping with sections {list(_SECTIONS)}, got {type(d).__name__}")
        unknown = [k for k in d if k not in _SECTIONS]
        if unknown:
            raise ValueError(f"{source}: unknown section '{unknown[0]}'; valid sections: {list(_SECTIONS)}")
        sections = {}
        for name, sec_cls in _SECTIONS.items():
            values = d.get(name) or {}
            if not isinstance(values, Mapping):
                raise ValueError(f"{source}: section '{name}' must be a mapping, got {type(values).__name__}")
            valid = [f.name for f in dataclasses.fields(sec_cls)]
            bad = [k for k in values if k not in valid]
            if bad:
                raise ValueError(f"{source}: unknown key '{bad[0]}' in section '{name}'; valid keys: {valid}")
            try:
                sections[name] = sec_cls(**dict(values))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{source}: {e}") from e
        return cls(**sections)

    def replace(self, **sections: Mapping[str, Any]) -> "Config":
        """A copy with some keys changed, e.g. ``cfg.replace(training={"epochs": 2})``."""
        d = self.to_dict()
        for name, values in sections.items():
            if name not in _SECTIONS:
                raise ValueError(f"unknown section '{name}'; valid sections: {list(_SECTIONS)}")
            d[name].update(values)
        return Config.from_dict(d)


def load_config(path: Union[str, Path]) -> Config:
    """Read a YAML config file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not valid YAML, an unknown section/key, or an invalid value.
    """
    d = load_yaml(path, "config file (see configs/*.yaml for examples)")
    return Config.from_dict(d, source=str(path))


def save_config(path: Union[str, Path], config: Config) -> Path:
    """Atomically write ``config`` as YAML (loadable with :func:`load_config`)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path
