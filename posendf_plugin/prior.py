"""The public Pose-NDF prior: load a trained field, score, project, sample and interpolate poses.

>>> prior = PoseNDF.from_pretrained()            # the model shipped in posendf_plugin/assets
>>> f = prior.distance(body_pose)                 # (B,) any layout: 63/69/72 axis-angle, ...
>>> loss = prior.energy(body_pose).mean()         # differentiable, for fitting loops
>>> res = prior.project(body_pose)                # ProjectionResult (poses on the manifold)

Accepted pose layouts (autodetected by :func:`posendf_plugin.skeleton.to_body_quat`): flat
axis-angle ``(..., 63 | 69 | 72 | 156 | 165)``, ``(..., 21, 3)`` axis-angle, ``(..., 21, 4)``
quaternions ``(w, x, y, z)`` (non-unit ones are normalised with a warning; zero ones are an
error), ``(..., 21, 3, 3)`` rotation matrices (or SMPL's 23 / 24 of them). NaN/Inf is an error naming the rows.

Two variants are registered with :func:`posendf_plugin.priors.get_prior`:

* ``"posendf"`` — :class:`PoseNDF`, Pose-NDF's Euclidean gradient projection;
* ``"nrdf"`` — :class:`NRDF`, the NRDF-style model (geodesic labels, no eikonal term) with the
  Riemannian projection (per-joint tangent-space gradient).

Checkpoints: :meth:`PoseNDF.from_checkpoint` reads this package's files (config stored inside,
``torch.load(weights_only=True)``, strict loading; a mismatch names the key);
:meth:`PoseNDF.from_original_checkpoint` reads the authors' released Pose-NDF ``.tar`` files.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch

from ._checks import is_count
from .config import Config, ModelConfig
from .model import PoseNDFEnsemble, PoseNDFNet, load_field
from .priors.base import PosePrior, ProjectionResult, register_prior
from .projection import PROJECTION_METHODS, method_for_prior, project as _project
from .rotations import axis_angle_to_quat, quat_canonical, quat_mul, quat_random, quat_slerp
from .skeleton import NUM_BODY_JOINTS, to_body_quat, warn_pose_units

__all__ = ["PoseNDF", "NRDF", "ASSETS_DIR", "DEFAULT_WEIGHTS", "INTERPOLATION_PROJECTION", "INTERPOLATION_SMOOTHNESS",
           "smooth_path", "save_ensemble"]

PathLike = Union[str, Path]
ASSETS_DIR = Path(__file__).resolve().parent / "assets"
#: file names of the shipped models in :data:`ASSETS_DIR`, and the configs that train them
#: (``posendf_density``: the density-aware Pose-NDF that image fitting loads by default,
#: ``ImageFitConfig.shipped_weights``; ``PoseNDF.from_pretrained("posendf_density")``)
DEFAULT_WEIGHTS: Dict[str, str] = {"posendf": "posendf_default.pt", "posendf_density": "posendf_density.pt",
                                   "nrdf": "nrdf_default.pt"}
#: projection settings of :meth:`PoseNDF.interpolate`: steps of at most 0.02 (quaternion norm over
#: all joints), up to 400 of them. Chosen on the CMU val split (``python
#: benchmarks/interpolation_steps.py``, 40 pairs, 11 poses each): with the default steps (at most
#: 1.0) 16 of 40 Pose-NDF paths had a step over twice the largest slerp step (max 18.0° RMS per
#: joint vs 4.2°), with these none (max 5.0°), the paths' f as low (0.00035 vs 0.00034) and at
#: most 5 steps per pose.
INTERPOLATION_PROJECTION: Dict[str, float] = {"max_step": 0.02, "max_iter": 400}
#: ``smoothness`` of :meth:`PoseNDF.interpolate`'s path optimisation (its default and ``posendf
#: interpolate``'s; the weight at 11 poses, :func:`smooth_path` scales it with the count), chosen for
#: Pose-NDF on the CMU val split and two motion styles held out of training (``python
#: benchmarks/interpolation_steps.py --smoothness 3,5,10``, 40 pairs of 11 poses each, the held-out
#: sets with fields that never saw them; benchmarks/RESULTS.md, *Calibration*): at 5, 0 / 1 / 3 of
#: 40 paths (val / dance / playground) have a step over twice their slerp's largest (per-pose
#: projection: 0 / 26 / 14; at 41 poses on val 0 vs 23), and the mean f along the paths is 79 % /
#: 82 % / 88 % below slerp's (per-pose projection: 89 % / 99.8 % / 99.5 %). Not calibrated for
#: NRDF, whose f (radians) is larger: pass a larger ``smoothness`` when its paths jump.
INTERPOLATION_SMOOTHNESS = 5.0
#: Adam steps (learning rate 0.01) of the path optimisation
INTERPOLATION_PATH_ITERATIONS = 300


def smooth_path(distance, path: torch.Tensor, smoothness: float, iterations: int = INTERPOLATION_PATH_ITERATIONS,
                lr: float = 0.01) -> torch.Tensor:
    """Optimise the interior poses of ``path (..., T, 21, 4)`` (ends fixed; leading dimensions: several
    paths at once) for ``Σ distance(pose) + w · Σ_i Σ_joints (1 − ⟨q_i, q_{i+1}⟩²)`` per path, with
    ``w = smoothness · (T − 1)(T − 2) / 90``: the same balance of f and smoothness at any ``T`` (the
    sum of f grows with the poses, a step's term shrinks with the step² — ``smoothness`` is the
    weight at ``T = 11``). Adam with a learning rate falling linearly from ``lr`` to 0, so the
    poses settle instead of jittering. Returns ``(..., T − 2, 21, 4)`` unit quaternions, ``w >= 0``.
    ``distance``: ``(B, 21, 4) -> (B,)``, differentiable."""
    path = path.detach()
    T = path.shape[-3]
    weight = smoothness * (T - 1) * (T - 2) / 90.0
    x = path[..., 1:-1, :, :].clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 - i / iterations)
    for _ in range(iterations):
        q = x / x.norm(dim=-1, keepdim=True)
        full = torch.cat([path[..., :1, :, :], q, path[..., -1:, :, :]], dim=-3)
        smooth = (1.0 - (full[..., 1:, :, :] * full[..., :-1, :, :]).sum(-1) ** 2).sum()
        loss = distance(q.reshape(-1, NUM_BODY_JOINTS, 4)).sum() + weight * smooth
        (grad,) = torch.autograd.grad(loss, x)  # the field's weights stay untouched
        x.grad = grad
        opt.step()
        sched.step()
    with torch.no_grad():
        return quat_canonical(x / x.norm(dim=-1, keepdim=True)).detach()


_TRAIN_CONFIG = {"posendf": "configs/cmu.yaml", "posendf_density": "configs/cmu_density.yaml", "nrdf": "configs/nrdf.yaml"}


def _read_checkpoint(path: Path) -> Any:
    from .io import load_torch_weights

    return load_torch_weights(path, "checkpoint")


class PoseNDF(PosePrior):
    """Pose-NDF prior around a trained :class:`PoseNDFNet` (frozen, eval mode).

    Args:
        net: the network, or a :class:`PoseNDFEnsemble` of networks (their mean or minimum).
            config: the config it was trained with (kept for the record).
        method: default projection, ``"posendf"`` or ``"riemannian"`` (default: from
            ``config.experiment.prior``: ``nrdf`` → riemannian).
        step_size, max_iter, tol: default projection settings (see :mod:`posendf_plugin.projection`).
    """

    name = "posendf"

    def __init__(
        self,
        net: Union[PoseNDFNet, PoseNDFEnsemble],
        config: Optional[Config] = None,
        method: Optional[str] = None,
        step_size: float = 1.0,
        max_iter: int = 100,
        tol: float = 1e-3,
    ) -> None:
        super().__init__()
        if not isinstance(net, (PoseNDFNet, PoseNDFEnsemble)):
            raise TypeError(f"net must be a PoseNDFNet or a PoseNDFEnsemble, got {type(net).__name__}")
        self.config = config if config is not None else Config(model=net.config)
        if method is None:
            method = method_for_prior(self.config.experiment.prior)
        if method not in PROJECTION_METHODS:
            raise ValueError(f"method must be one of {PROJECTION_METHODS}, got {method!r}")
        self.method, self.step_size, self.max_iter, self.tol = method, step_size, max_iter, tol
        #: where the weights came from (shown in ``repr``, so host logs tell the shipped fields apart)
        self.weights: str = "a network passed in"
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    # -- loading --------------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path: PathLike, device: Union[str, torch.device] = "cpu", **kwargs) -> "PoseNDF":
        """Load a checkpoint written by ``posendf train`` (``model.pt`` or a training checkpoint).

        The network is rebuilt from the config stored inside and loaded strictly.

        Raises:
            FileNotFoundError: no such file.
            ValueError: truncated/corrupt file; not this package's format (the authors' files are
                recognised and pointed to :meth:`from_original_checkpoint`); a stored config with
                an unknown key; weights that do not fit the stored config (names the key).
        """
        from ._checks import check_device

        device = check_device(device, "device")
        path = Path(path)
        net, config = load_field(path)
        prior = cls(net.to(device), config, **kwargs)
        prior.weights = str(path) if isinstance(net, PoseNDFNet) else f"{path} ({net.extra_repr()})"
        return prior

    @classmethod
    def from_pretrained(cls, name: Optional[str] = None, device: Union[str, torch.device] = "cpu", **kwargs) -> "PoseNDF":
        """Load the model shipped with the package (``posendf_plugin/assets``).

        Args:
            name: ``"posendf"``, ``"posendf_density"`` or ``"nrdf"`` (default: this class's
                variant).
        Raises:
            FileNotFoundError: the weights are not in the package (the message names the
                command that trains them).
        """
        name = name or cls.name
        if name not in DEFAULT_WEIGHTS:
            raise ValueError(f"unknown pretrained model {name!r}; available: {list(DEFAULT_WEIGHTS)}")
        family = "nrdf" if name == "nrdf" else "posendf"
        if family != cls.name:
            raise ValueError(f"the pretrained '{name}' model is a {family} field; load it with "
                             f"{'NRDF' if family == 'nrdf' else 'PoseNDF'}.from_pretrained({name!r}) or "
                             f"get_prior({family!r}{'' if name == family else f', pretrained={name!r}'})")
        path = ASSETS_DIR / DEFAULT_WEIGHTS[name]
        if not path.is_file():
            raise FileNotFoundError(
                f"the pretrained '{name}' model is not shipped in this build ({path} is missing). Train it with "
                f"'posendf train --config {_TRAIN_CONFIG[name]} --out runs/{name}' and copy runs/{name}/model.pt to "
                f"{path}, or load your own weights with PoseNDF.from_checkpoint(path)"
            )
        prior = cls.from_checkpoint(path, device=device, **kwargs)
        prior.weights = f"shipped '{name}' ({DEFAULT_WEIGHTS[name]})"
        return prior

    @classmethod
    def from_original_checkpoint(
        cls,
        path: PathLike,
        config_yaml: Optional[PathLike] = None,
        activation: Optional[str] = None,
        beta: Optional[float] = None,
        parents: str = "posendf_original",
        device: Union[str, torch.device] = "cpu",
        **kwargs,
    ) -> "PoseNDF":
        """Load a checkpoint of the authors' code (github.com/garvita-tiwari/PoseNDF): a dict
        with ``model_state_dict`` holding ``enc.net.{j}.net.{0,2}.{weight,bias}`` (21 per-joint
        MLPs) and ``dfnet.lin{l}.{weight,bias}`` (distance MLP).

        Sizes are read from the weights. The activation is not stored in their files: pass their
        YAML (``model.DFNet.act`` / ``beta``, ``model.StrEnc.act``) as ``config_yaml`` or give
        ``activation`` (``lrelu`` — their configs/amass.yaml — or ``softplus``, ``relu``). Their
        output activation is ReLU for (leaky-)ReLU nets and softplus for softplus nets.
        ``parents="posendf_original"`` reproduces their (off-by-one) parent table, which their
        weights were trained with.
        """
        path = Path(path)
        ck = _read_checkpoint(path)
        state = ck.get("model_state_dict") if isinstance(ck, dict) else None
        if not isinstance(state, dict):
            raise ValueError(f"{path}: not an original Pose-NDF checkpoint (no 'model_state_dict' dict)")
        enc_act = act = activation
        if config_yaml is not None:
            import yaml

            y = yaml.safe_load(Path(config_yaml).read_text()) or {}
            try:
                df, se = y["model"]["DFNet"], y["model"]["StrEnc"]
                act, enc_act = act or df["act"], activation or se["act"]
                beta = beta if beta is not None else float(df.get("beta", 100.0))
            except (KeyError, TypeError) as e:
                raise ValueError(f"{config_yaml}: expected model.DFNet.act and model.StrEnc.act as in the original configs") from e
        if act is None:
            warnings.warn(
                "the original checkpoint does not store its activation; assuming 'lrelu' (their configs/amass.yaml). "
                "Pass config_yaml=<their yaml> or activation=... to be sure", stacklevel=2,
            )
            act = enc_act = "lrelu"
        beta = 100.0 if beta is None else float(beta)
        try:
            lins = sorted(int(k[len("dfnet.lin"):].split(".")[0]) for k in state if k.startswith("dfnet.lin") and k.endswith(".weight"))
            w0 = state["enc.net.0.net.0.weight"]
            w2 = state["enc.net.0.net.2.weight"]
            hidden = tuple(int(state[f"dfnet.lin{i}.weight"].shape[0]) for i in lins[:-1])
        except KeyError as e:
            raise ValueError(f"{path}: missing key {e} expected in an original Pose-NDF checkpoint") from e
        if not lins or lins != list(range(len(lins))):
            raise ValueError(f"{path}: no consecutive 'dfnet.lin<i>.weight' keys; not an original Pose-NDF checkpoint")
        mcfg = ModelConfig(
            parents=parents, enc_feature=int(w2.shape[0]), enc_hidden=int(w0.shape[0]), enc_activation=enc_act,
            hidden=hidden, activation=act, beta=beta, output="softplus" if act == "softplus" else "relu",
        )
        net = PoseNDFNet(mcfg)
        ours = {k: v.clone() for k, v in net.state_dict().items()}
        ours["enc_w1"].zero_()
        used = set()
        for j in range(NUM_BODY_JOINTS):
            pre = f"enc.net.{j}.net."
            try:
                a_w, a_b, b_w, b_b = (state[pre + s] for s in ("0.weight", "0.bias", "2.weight", "2.bias"))
            except KeyError as e:
                raise ValueError(f"{path}: missing key {e} for joint {j} of the structure encoder") from e
            n_in = a_w.shape[1]
            expected = 4 if net.parents[j] == -1 else 4 + mcfg.enc_feature
            if n_in != expected:
                raise ValueError(
                    f"{path}: key '{pre}0.weight' has {n_in} inputs but joint {j} with parent table {parents!r} "
                    f"needs {expected}"
                )
            ours["enc_w1"][j, :n_in] = a_w.t()
            ours["enc_b1"][j] = a_b
            ours["enc_w2"][j] = b_w.t()
            ours["enc_b2"][j] = b_b
            used.update(pre + s for s in ("0.weight", "0.bias", "2.weight", "2.bias"))
        for i in lins:
            for s in ("weight", "bias"):
                key = f"dfnet.lin{i}.{s}"
                if key not in state:
                    raise ValueError(f"{path}: missing key '{key}'")
                if tuple(state[key].shape) != tuple(ours[f"layers.{i}.{s}"].shape):
                    raise ValueError(f"{path}: key '{key}' has shape {tuple(state[key].shape)}, expected {tuple(ours[f'layers.{i}.{s}'].shape)}")
                ours[f"layers.{i}.{s}"] = state[key]
                used.add(key)
        extra = [k for k in state if k not in used]
        if extra:
            raise ValueError(f"{path}: unexpected key '{extra[0]}' in the original checkpoint (+{len(extra) - 1} more)")
        net.load_state_dict({k: v.float() for k, v in ours.items()}, strict=True)
        prior = cls(net.to(device), Config(model=mcfg), **kwargs)
        prior.weights = f"{path} (the authors' format)"
        return prior

    # -- evaluation ------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.net.enc_w1.device

    def _quat(self, poses, name: str = "poses") -> torch.Tensor:
        q = to_body_quat(poses, name)
        return q.to(device=self.device, dtype=self.net.enc_w1.dtype)

    def energy(self, body_pose) -> torch.Tensor:
        """Differentiable distance ``(...)`` of poses of any supported layout; gradients flow to
        the input (the network's weights are frozen). Use as a loss term."""
        return self.net(self._quat(body_pose, "body_pose"))

    def distance(self, poses) -> torch.Tensor:
        """Distance to the pose manifold ``(...)`` (detached, no gradient)."""
        with torch.no_grad():
            return self.net(self._quat(poses))

    def project(
        self,
        body_pose,
        method: Optional[str] = None,
        step_size: Optional[float] = None,
        max_iter: Optional[int] = None,
        tol: Optional[float] = None,
        batch_size: int = 65536,
        free=None,
        monotone: bool = False,
        max_step: float = 1.0,
    ) -> ProjectionResult:
        """Project poses onto the manifold (zero level set).

        Args:
            body_pose: any supported layout, leading batch dims are flattened to ``B``.
            method: ``"posendf"`` or ``"riemannian"``; the other settings default to the
                prior's (see :mod:`posendf_plugin.projection`).
            free: optional ``(B, 21)`` (or ``(21,)``) bool: only these joints move, the others
                keep their rotation (masked projection, used by pose completion).
            monotone: a step that would raise f is not taken; that pose's step size halves
                (:func:`posendf_plugin.projection.project`).
            max_step: longest step (quaternion norm over all joints; a long Newton step where the
                field is flat can turn a joint by tens of degrees at once).
        Returns:
            :class:`ProjectionResult` with ``poses (B, 21, 4)``.
        """
        warn_pose_units(body_pose, "body_pose")
        q = self._quat(body_pose, "body_pose").reshape(-1, NUM_BODY_JOINTS, 4)
        if free is None and self.is_density_aware:
            warnings.warn(
                f"{self.weights}: this field is density-aware (trained without the manifold term, so it is not 0 on "
                "real poses): projecting moves every pose towards its most common ones and samples collapse; project "
                "and sample with the distance field (PoseNDF.from_pretrained())", UserWarning, stacklevel=2)
        kw = dict(
            method=method or self.method,
            step_size=self.step_size if step_size is None else step_size,
            max_iter=self.max_iter if max_iter is None else max_iter,
            tol=self.tol if tol is None else tol,
            monotone=monotone,
            max_step=max_step,
        )
        if not is_count(batch_size, 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if free is not None:
            free = torch.as_tensor(free, dtype=torch.bool, device=q.device)
            if tuple(free.shape) not in ((NUM_BODY_JOINTS,), (len(q), NUM_BODY_JOINTS)):
                raise ValueError(f"free must have shape ({NUM_BODY_JOINTS},) or ({len(q)}, {NUM_BODY_JOINTS}) "
                                 f"(True = the joint may move), got {tuple(free.shape)}")
            free = free.expand(len(q), NUM_BODY_JOINTS) if free.ndim == 1 else free
        parts = [_project(self.net, q[i:i + batch_size], **kw, free=None if free is None else free[i:i + batch_size])
                 for i in range(0, max(len(q), 1), batch_size)]
        if len(parts) == 1:
            return parts[0]
        return ProjectionResult(*(torch.cat([getattr(p, f) for p in parts]) for f in ("poses", "distance", "converged", "iterations")))

    @property
    def is_density_aware(self) -> bool:
        """Whether this field was trained without the manifold term (``training.w_manifold: 0``,
        e.g. ``posendf_density.pt``): it ranks poses by how common they are and is not 0 on real
        poses, so it is for fitting (image fit, completion), not for projection or sampling."""
        return float(getattr(self.config.training, "w_manifold", 1.0)) == 0.0

    def sample(self, n: int, seed: Optional[int] = None, around=None, sigma: float = 0.5, **project_kwargs) -> torch.Tensor:
        """``n`` poses ``(n, 21, 4)`` from the manifold: uniform random quaternions (or, with
        ``around``, random poses of that set with axis-angle noise of std ``sigma`` rad per
        axis) projected onto it. Deterministic for a given ``seed``."""
        return self.sample_with_result(n, seed, around, sigma, **project_kwargs)[1].poses

    def sample_with_result(self, n: int, seed: Optional[int] = None, around=None, sigma: float = 0.5, **project_kwargs):
        """Like :meth:`sample`, returning ``(initial poses (n, 21, 4), ProjectionResult)``."""
        if not is_count(n, 1):
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if seed is not None and not is_count(seed, 0):
            raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")
        if not 0 < sigma < float("inf"):
            raise ValueError(f"sigma must be a finite number > 0 (radians), got {sigma!r}")
        n = int(n)
        g = torch.Generator()
        if seed is None:
            g.seed()
        else:
            g.manual_seed(int(seed))
        if around is None:
            init = quat_random(n, NUM_BODY_JOINTS, generator=g)
        else:
            warn_pose_units(around, "around")
            base = to_body_quat(around, "around").reshape(-1, NUM_BODY_JOINTS, 4)
            if len(base) == 0:
                raise ValueError("around holds no poses; pass at least one pose to sample around")
            pick = base[torch.randint(len(base), (n,), generator=g)]
            noise = axis_angle_to_quat(torch.randn(n, NUM_BODY_JOINTS, 3, generator=g) * sigma)
            init = quat_canonical(quat_mul(pick, noise))
        init = init.to(self.device)
        return init, self.project(init, **project_kwargs)

    def interpolate(self, a, b, steps: int, project: bool = True, smoothness: Optional[float] = INTERPOLATION_SMOOTHNESS,
                    **project_kwargs) -> torch.Tensor:
        """A path of ``steps`` poses ``(steps, 21, 4)`` from pose ``a`` to pose ``b`` (any layout, one
        pose each; the end points are kept as given), starting from per-joint slerp.

        * ``project=False``: the slerp path itself.
        * ``smoothness=λ`` (default :data:`INTERPOLATION_SMOOTHNESS`): the intermediate poses
          optimised together, ``Σ f(pose) + λ Σ (1 − ⟨q_i, q_{i+1}⟩²)`` over consecutive poses and
          joints (:func:`smooth_path`): a smooth path, lower in f than slerp, not on the zero set.
        * ``smoothness=None`` (the paper's way): every intermediate pose projected onto the
          manifold on its own, in short steps (:data:`INTERPOLATION_PROJECTION`, overridable through
          ``project_kwargs``). Where the slerp poses are far from the manifold (poses unlike the
          training data) neighbouring poses can land on different sides and the path jumps.
        """
        if not is_count(steps, 2):
            raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
        if smoothness is not None and not 0 < smoothness < float("inf"):
            raise ValueError(f"smoothness must be a finite number > 0 or None, got {smoothness!r}")
        if smoothness is not None and project_kwargs:
            raise ValueError(f"projection settings ({', '.join(sorted(project_kwargs))}) apply to the per-pose projection; "
                             "pass smoothness=None with them")
        steps = int(steps)
        warn_pose_units(a, "a")
        warn_pose_units(b, "b")
        qa = self._quat(a, "a").reshape(-1, NUM_BODY_JOINTS, 4)
        qb = self._quat(b, "b").reshape(-1, NUM_BODY_JOINTS, 4)
        if len(qa) != 1 or len(qb) != 1:
            raise ValueError(f"a and b must be one pose each, got {len(qa)} and {len(qb)} poses")
        t = torch.linspace(0.0, 1.0, steps, dtype=qa.dtype, device=qa.device)[:, None]
        path = quat_canonical(quat_slerp(qa.expand(steps, -1, -1), qb.expand(steps, -1, -1), t.expand(steps, NUM_BODY_JOINTS)))
        if not project or steps <= 2:
            return path
        path = path.clone()
        if smoothness is None:
            path[1:-1] = self.project(path[1:-1], **{**INTERPOLATION_PROJECTION, **project_kwargs}).poses
        else:
            path[1:-1] = smooth_path(self.net, path, float(smoothness))
        return path

    def extra_repr(self) -> str:
        return (f"name={self.name}, weights={self.weights}, method={self.method}, step_size={self.step_size}, "
                f"max_iter={self.max_iter}, tol={self.tol}")


class NRDF(PoseNDF):
    """The NRDF-style variant (geodesic labels, heavy-tailed noise, no eikonal term; see
    ``configs/nrdf.yaml``) with the Riemannian projection by default."""

    name = "nrdf"

    def __init__(self, net: PoseNDFNet, config: Optional[Config] = None, method: Optional[str] = "riemannian", **kwargs) -> None:
        super().__init__(net, config, method=method, **kwargs)


def save_ensemble(models: Sequence[PathLike], out: PathLike, reduce: str = "mean") -> Path:
    """Write one model file whose field is the mean (or ``reduce="min"``: the minimum) of the
    fields in ``models`` (``model.pt`` files of ``posendf train``, e.g. the same config trained
    with several ``experiment.seed``; :class:`posendf_plugin.model.PoseNDFEnsemble`); load it
    like any model (:meth:`PoseNDF.from_checkpoint`, ``--checkpoint``). Stores the first model's
    config and every member's weights and source.

    Raises:
        ValueError: fewer than two models, a model that is itself an ensemble, models whose
            networks differ (``model`` sections), or an unknown ``reduce``.
    """
    if len(models) < 2:
        raise ValueError(f"an ensemble needs at least two models, got {len(models)}")
    priors = [PoseNDF.from_checkpoint(m) for m in models]
    for m, p in zip(models, priors):
        if isinstance(p.net, PoseNDFEnsemble):
            raise ValueError(f"{m}: is already an ensemble; pass its member models instead")
        if p.net.config != priors[0].net.config or p.config.experiment.prior != priors[0].config.experiment.prior:
            raise ValueError(f"{m}: its network (model section) or kind of field (experiment.prior) differs from "
                             f"{models[0]}'s; an ensemble combines fields of one architecture and kind")
    ensemble = PoseNDFEnsemble([p.net for p in priors], reduce)  # checks reduce
    from .io import save_torch

    return save_torch(out, {
        "config": priors[0].config.to_dict(),
        "members": [m.state_dict() for m in ensemble.members],
        "reduce": ensemble.reduce,
        "member_sources": [str(m) for m in models],
    })


def _factory(cls):
    def make(checkpoint: Optional[PathLike] = None, device: Union[str, torch.device] = "cpu",
             pretrained: Optional[str] = None, **kwargs) -> PoseNDF:
        if checkpoint is not None:
            return cls.from_checkpoint(checkpoint, device=device, **kwargs)
        return cls.from_pretrained(pretrained, device=device, **kwargs)

    make.__doc__ = (f"Build the '{cls.name}' prior: from ``checkpoint`` if given, else the shipped model "
                    f"``pretrained`` (a key of :data:`DEFAULT_WEIGHTS`; default: '{cls.name}').")
    return make


register_prior("posendf", _factory(PoseNDF))
register_prior("nrdf", _factory(NRDF))
