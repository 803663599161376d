"""For VPoser users: human_body_prior v2's VPoser API on the package's model, and a side-by-side
comparison with Pose-NDF.

* :class:`VPoser` has the surface of ``human_body_prior.models.vposer_model.VPoser`` (v2):
  ``VPoser(model_ps)`` with ``model_ps.model_params.{num_neurons, latentD}``, ``latentD``,
  ``num_joints``, ``encode(pose_body) -> Normal``, ``decode(z) -> {'pose_body': (B, 21, 3),
  'pose_body_matrot': (B, 21, 9)}``, ``forward`` (adds ``poZ_body_mean``/``poZ_body_std``/``q_z``)
  and ``sample_poses(num_poses, seed)``; it is the package's VPoser v2
  (:class:`posendf_plugin.priors.vposer.VPoser`, state-dict compatible with the official
  ``V02_05`` checkpoints), so it is also a ``PosePrior`` (``energy``).
* :func:`load_model` has ``human_body_prior.tools.model_loader.load_model``'s signature
  (``expr_dir, model_code=None, remove_words_in_model_weights=None, load_only_cfg=False,
  disable_grad=True, model_cfg_override=None, comp_device='gpu'``): experiment folder in (last
  ``snapshots/*.ckpt`` by modification time, config from ``expr_dir/*.yaml``), ``(model,
  model_cfg)`` out, the model frozen in eval mode on the CPU (as v2 returns it). A script
  written for human_body_prior v2 runs with only its two imports changed::

      from posendf_plugin.integrations.vposer import load_model, VPoser
      vp, ps = load_model(expr_dir, model_code=VPoser, remove_words_in_model_weights='vp_model.',
                          disable_grad=True)

  Unlike v2 the weights load strictly: a file that does not hold a VPoser v2 of the
  configured size is an error, never a silently half-random model.
* :func:`compare_priors` scores the same poses with several priors: energy on real poses and on
  noisy copies, AUROC of telling them apart, and the Spearman rank correlation between priors.
  ``python -m posendf_plugin.integrations.vposer --poses FILE`` prints that table and the host
  weights calibrated from it (:func:`host_weights`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from posendf_plugin import rotations as R
from posendf_plugin._checks import as_tensor
from posendf_plugin.priors import vposer as _vp
from posendf_plugin.skeleton import NUM_BODY_JOINTS, to_body_quat

from ._common import PriorLike, SeparationStats, add_quat_noise, energies_on, resolve_prior, separation_stats

__all__ = [
    "VPoser",
    "VPoserCfg",
    "find_vposer_checkpoint",
    "load_vposer",
    "load_model",
    "PriorComparison",
    "compare_priors",
    "HOST_REFERENCE_WEIGHTS",
    "host_weights",
    "main",
]


class VPoserCfg(dict):
    """A config read from ``expr_dir/*.yaml``: a dict whose keys also read as attributes, at every
    level (``ps.model_params.latentD``), as human_body_prior's OmegaConf config does."""

    def __init__(self, data: Optional[Mapping] = None) -> None:
        super().__init__()
        for k, v in dict(data or {}).items():
            self[k] = VPoserCfg(v) if isinstance(v, Mapping) else v

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key '{key}'; keys: {sorted(self)}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = VPoserCfg(value) if isinstance(value, Mapping) and not isinstance(value, VPoserCfg) else value


def _field(obj, key: str, what: str):
    if isinstance(obj, Mapping):
        if key in obj:
            return obj[key]
    elif hasattr(obj, key):
        return getattr(obj, key)
    raise TypeError(
        f"{what} has no '{key}'; VPoser(model_ps) needs model_ps.model_params.num_neurons and "
        "model_ps.model_params.latentD (as in human_body_prior's V02_05.yaml), or a VPoserConfig"
    )


def _config_of(model_ps) -> "_vp.VPoserConfig":
    if model_ps is None:
        return _vp.VPoserConfig()
    if isinstance(model_ps, _vp.VPoserConfig):
        return model_ps
    mp = _field(model_ps, "model_params", "model_ps")
    return _vp.VPoserConfig(
        num_neurons=int(_field(mp, "num_neurons", "model_ps.model_params")),
        latent_dim=int(_field(mp, "latentD", "model_ps.model_params")),
    )


class VPoser(_vp.VPoser):
    """The package's VPoser v2 with human_body_prior v2's API (see the module docstring).

    Args:
        model_ps: human_body_prior's model config (anything with ``model_params.num_neurons`` and
            ``model_params.latentD``: the loaded ``V02_05.yaml``, a ``SimpleNamespace``, a
            dict), a :class:`~posendf_plugin.priors.vposer.VPoserConfig`, or ``None`` (512, 32).
    """

    num_joints = NUM_BODY_JOINTS

    def __init__(self, model_ps=None) -> None:
        super().__init__(_config_of(model_ps))

    @property
    def latentD(self) -> int:  # noqa: N802 - human_body_prior's name
        """Size of the latent space (human_body_prior's name for :attr:`latent_dim`)."""
        return self.latent_dim

    def decode(self, Zin: torch.Tensor) -> Dict[str, torch.Tensor]:  # noqa: N803 - v2's name
        """``{'pose_body': (B, 21, 3) axis-angle, 'pose_body_matrot': (B, 21, 9)}`` for latent
        codes ``(B, latentD)``, as human_body_prior v2 returns them."""
        out = super().decode(Zin)
        b = Zin.shape[0]
        return {
            "pose_body": out.pose_body.reshape(b, NUM_BODY_JOINTS, 3),
            "pose_body_matrot": out.pose_body_matrot.reshape(b, NUM_BODY_JOINTS, 9),
        }

    def forward(self, pose_body: torch.Tensor) -> Dict[str, Any]:
        """v2's ``forward``: encode, sample ``z`` with ``rsample``, decode; adds
        ``poZ_body_mean``, ``poZ_body_std`` ``(B, latentD)`` and the posterior ``q_z``."""
        q_z = self.encode(pose_body)
        out: Dict[str, Any] = self.decode(q_z.rsample())
        out.update({"poZ_body_mean": q_z.mean, "poZ_body_std": q_z.scale, "q_z": q_z})
        return out

    def sample(self, n: int, seed: Optional[int] = None) -> torch.Tensor:
        """``n`` poses as ``(n, 21, 4)`` quaternions ``(w, x, y, z)``, ``w >= 0``."""
        mats = self.sample_poses(n, seed)["pose_body_matrot"]
        return R.matrix_to_quat(mats.reshape(n, NUM_BODY_JOINTS, 3, 3))


def _snapshot_key(p: Path):
    return (os.path.getmtime(p), p.name)


def find_vposer_checkpoint(path: Union[str, Path]) -> Path:
    """The checkpoint file for ``path``: the file itself, or the last ``snapshots/*.ckpt`` by
    modification time (as human_body_prior's ``exprdir2model`` picks it; ties by name) of a
    VPoser experiment folder (``*.ckpt`` directly inside the folder also counts).

    Raises:
        FileNotFoundError: nothing there, or a folder without ``.ckpt`` files.
    """
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such VPoser checkpoint file or experiment folder")
    ckpts = list((p / "snapshots").glob("*.ckpt")) or list(p.glob("*.ckpt"))
    if not ckpts:
        raise FileNotFoundError(
            f"{p}: no VPoser snapshot found; expected an experiment folder like V02_05/ holding "
            "snapshots/*.ckpt (as released with human_body_prior v2), or pass the .ckpt file"
        )
    return max(ckpts, key=_snapshot_key)


def load_vposer(path: Optional[Union[str, Path]] = None, map_location: Union[str, torch.device] = "cpu") -> VPoser:
    """:class:`VPoser` from an official experiment folder / ``.ckpt`` or our ``.pt``; ``None`` ->
    the shipped model. Frozen, eval mode."""
    if path is None:
        return VPoser.from_pretrained(map_location=map_location)
    return VPoser.from_checkpoint(find_vposer_checkpoint(path), map_location=map_location)


def _read_expr_cfg(expr_dir: Path, ckpt: Path) -> Optional[VPoserCfg]:
    """``expr_dir/*.yaml`` (first by name), read with ``yaml.safe_load``; ``None`` for a file or a
    folder without one (the config is then taken from the weight shapes)."""
    import yaml

    if not expr_dir.is_dir():  # a checkpoint file was passed: no experiment folder to read
        return None
    found = sorted(expr_dir.glob("*.yaml"))
    if not found:
        return None
    try:
        data = yaml.safe_load(found[0].read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{found[0]}: not a readable YAML config ({type(e).__name__}: {e})") from e
    if not isinstance(data, Mapping):
        raise ValueError(f"{found[0]}: expected a mapping at the top level, got {type(data).__name__}")
    return VPoserCfg(data)


def _apply_override(cfg: VPoserCfg, override: Mapping) -> None:
    if not isinstance(override, Mapping):
        raise TypeError(f"model_cfg_override must be a dict of dotted keys, got {type(override).__name__}")
    for dotted, value in override.items():
        node = cfg
        parts = str(dotted).split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), Mapping):
                node[part] = VPoserCfg()
            node = node[part]
        node[parts[-1]] = value


def load_model(
    expr_dir: Union[str, Path],
    model_code=None,
    remove_words_in_model_weights: Optional[str] = None,
    load_only_cfg: bool = False,
    disable_grad: bool = True,
    model_cfg_override: Optional[Mapping] = None,
    comp_device: Union[str, torch.device] = "gpu",
):
    """Drop-in for human_body_prior v2's ``tools/model_loader.py:load_model``.

    Args:
        expr_dir: experiment folder (``V02_05/`` with ``V02_05.yaml`` and ``snapshots/*.ckpt``;
            the last snapshot by modification time is used), or a ``.ckpt`` / ``.pt`` file.
        model_code: the model class: :class:`VPoser` (this module's), ``None`` (same), or
            :class:`posendf_plugin.priors.vposer.VPoser`.
        remove_words_in_model_weights: ``'vp_model.'`` or ``None``; the official Lightning
            prefix is stripped either way (v2 with ``None`` would drop every weight).
        load_only_cfg: return only the config.
        disable_grad: freeze the parameters.
        model_cfg_override: ``{dotted key: value}`` merged into the config (as v2's OmegaConf
            dotlist), e.g. ``{'model_params.latentD': 32}``; the weights must fit the result.
        comp_device: accepted as in v2, which only uses it to read the file; the model is
            returned on the CPU either way (v2 builds it there), move it with ``.to(device)``.
    Returns:
        ``(model, model_cfg)``, or ``model_cfg`` alone with ``load_only_cfg``. ``model_cfg`` is
        the experiment YAML (attribute access) or, without one, ``{'model_params':
        {'num_neurons': H, 'latentD': Z}}`` from the weight shapes.
    Raises:
        FileNotFoundError: no experiment folder / snapshot.
        TypeError: ``model_code`` is another class.
        ValueError: unsupported prefix, unreadable file, or weights that do not fit the config.
    """
    if model_code is not None and not (isinstance(model_code, type) and issubclass(model_code, _vp.VPoser)):
        raise TypeError(
            f"model_code={model_code!r}: this loader builds posendf_plugin's VPoser v2; pass "
            "model_code=posendf_plugin.integrations.vposer.VPoser (or None)"
        )
    if remove_words_in_model_weights not in (None, _vp.LIGHTNING_PREFIX):
        raise ValueError(
            f"remove_words_in_model_weights={remove_words_in_model_weights!r}: only the official "
            f"'{_vp.LIGHTNING_PREFIX}' prefix (or None) is supported"
        )
    if not isinstance(comp_device, (str, torch.device)):
        raise TypeError(f"comp_device must be 'gpu', 'cpu' or a torch.device, got {type(comp_device).__name__}")
    expr = Path(expr_dir)
    ckpt = find_vposer_checkpoint(expr)
    sd, inferred = _vp.load_vposer_state(ckpt)
    cfg = _read_expr_cfg(expr, ckpt)
    if cfg is None:
        cfg = VPoserCfg({"model_params": {"num_neurons": inferred.num_neurons, "latentD": inferred.latent_dim}})
    if model_cfg_override:
        _apply_override(cfg, model_cfg_override)
    wanted = _config_of(cfg)
    if wanted != inferred:
        raise ValueError(
            f"{ckpt}: the weights hold a VPoser with num_neurons={inferred.num_neurons}, "
            f"latentD={inferred.latent_dim}, but the config asks for num_neurons={wanted.num_neurons}, "
            f"latentD={wanted.latent_dim}; fix model_params in the experiment YAML or model_cfg_override"
        )
    if load_only_cfg:
        return cfg
    cls = model_code or VPoser
    model = cls.from_checkpoint(ckpt, map_location="cpu")
    for p in model.parameters():
        p.requires_grad_(not disable_grad)
    return model, cfg


@dataclass
class PriorComparison:
    """Side-by-side scores of several priors on the same poses.

    Attributes:
        stats: prior label -> :class:`SeparationStats` (real vs noisy, AUROC per sigma).
        spearman: ``(label_a, label_b)`` -> Spearman rank correlation of their energies over
            the real poses and all their noisy copies (1 = same ranking).
        num_poses: number of real poses.
    """

    stats: Dict[str, SeparationStats]
    spearman: Dict[Tuple[str, str], float]
    num_poses: int

    def table(self) -> str:
        """A Markdown table (one row per prior)."""
        sigmas = next(iter(self.stats.values())).sigmas if self.stats else ()
        head = "| prior | mean E real | " + " | ".join(f"mean E σ={s:g} | AUROC σ={s:g}" for s in sigmas) + " |"
        sep = "|" + "---|" * (2 + 2 * len(sigmas))
        rows = [
            f"| {k} | {v.real_mean:.4g} | " + " | ".join(f"{v.noisy_mean[s]:.4g} | {v.auroc[s]:.3f}" for s in sigmas) + " |"
            for k, v in self.stats.items()
        ]
        corr = [f"Spearman({a}, {b}) = {r:.3f}" for (a, b), r in self.spearman.items()]
        return "\n".join([head, sep, *rows, "", *corr])


def compare_priors(
    priors: Mapping[str, PriorLike],
    poses,
    sigmas: Sequence[float] = (0.1, 0.25, 0.5),
    seed: int = 0,
) -> PriorComparison:
    """Score the same real poses and noisy copies (Pose-NDF's Gaussian quaternion noise, same
    seed for every prior) with each prior.

    Args:
        priors: label -> prior name or built prior, e.g. ``{'vposer': load_vposer(dir),
            'posendf': 'posendf'}``.
        poses: real poses, any layout ``to_body_quat`` accepts (e.g. ``(N, 63)``).
    Raises:
        ValueError: fewer than one prior or fewer than two poses.
    """
    from scipy.stats import spearmanr

    if not priors:
        raise ValueError("priors is empty: give at least one {label: prior}")
    q = to_body_quat(as_tensor(poses, "poses"), "poses").float()
    if q.ndim != 3 or len(q) < 2:
        raise ValueError(f"poses must hold at least 2 poses, got shape {tuple(q.shape)}")
    built = {k: resolve_prior(v) for k, v in priors.items()}
    stats = {k: separation_stats(p, q, sigmas=sigmas, seed=seed) for k, p in built.items()}
    pool = [q] + [add_quat_noise(q, float(s), torch.Generator().manual_seed(seed + i)) for i, s in enumerate(sigmas)]
    allq = torch.cat(pool)
    energies = {k: energies_on(p, allq) for k, p in built.items()}
    spearman = {}
    for a, b in combinations(energies, 2):
        r = spearmanr(energies[a], energies[b]).statistic
        spearman[(a, b)] = float(r) if np.isfinite(r) else float("nan")
    return PriorComparison(stats=stats, spearman=spearman, num_poses=len(q))


#: host setting -> (reference prior, weights tuned for it, squared?) — the hosts' own defaults
HOST_REFERENCE_WEIGHTS: Dict[str, Tuple[str, Tuple[float, ...], bool]] = {
    # smplify-x cfg_files/fit_smpl.yaml (4 stages; fit_smplx.yaml / fit_smplh.yaml have 5 stages
    # and repeat 4.78 in the 5th) -- VPoser: ‖z‖² weighted by w²
    "SMPLify-X body_pose_prior_weights (vs VPoser ‖z‖²)": ("vposer", (404.0, 404.0, 57.4, 4.78), True),
    # the same list, as SMPLify's GMM prior uses it (use_vposer: false, body_prior_type: gmm)
    "SMPLify-X body_pose_prior_weights (vs GMM)": ("gmm", (404.0, 404.0, 57.4, 4.78), True),
    # SPIN smplify/losses.py body_fitting_loss: pose_prior_weight=4.78 on the GMM, squared
    "SPIN pose_prior_weight (vs GMM)": ("gmm", (4.78,), True),
    # mmhuman3d SMPLify configs: MaxMixturePrior loss_weight=4.78**2 (linear)
    "mmhuman3d loss_weight (vs GMM)": ("gmm", (4.78 ** 2,), False),
    # HuMoR configs/fit_amass_joints.cfg and fit_rgb_demo_no_split.cfg --pose-prior-weight
    "HuMoR --pose-prior-weight, AMASS joints (vs VPoser ‖z‖²)": ("vposer", (2e-4, 2e-4, 0.0), False),
    "HuMoR --pose-prior-weight, RGB (vs VPoser ‖z‖²)": ("vposer", (0.04, 0.04, 0.0), False),
}


def host_weights(comparison: PriorComparison, prior: str, sigma: float = 0.1) -> Dict[str, Tuple[float, ...]]:
    """Host weights for ``prior`` that reproduce each reference prior's real-vs-noisy energy gap
    at ``sigma`` (``w * sqrt(gap_ref / gap)`` for squared weights, ``w * gap_ref / gap`` for
    linear ones); only references present in ``comparison`` are used."""
    if prior not in comparison.stats:
        raise KeyError(f"'{prior}' is not in the comparison; it has {sorted(comparison.stats)}")
    gap = comparison.stats[prior].gap(sigma)
    out = {}
    for label, (ref, weights, squared) in HOST_REFERENCE_WEIGHTS.items():
        if ref not in comparison.stats or gap <= 0:
            continue
        ratio = comparison.stats[ref].gap(sigma) / gap
        factor = ratio ** 0.5 if squared else ratio
        out[label] = tuple(w * factor for w in weights)
    return out


def main(argv: Optional[Sequence[str]] = None) -> PriorComparison:
    """``python -m posendf_plugin.integrations.vposer --poses FILE [--priors ...]``: print the
    side-by-side comparison and the calibrated host weights."""
    import argparse

    from posendf_plugin.data.posesets import load_pose_set

    ap = argparse.ArgumentParser(
        prog="python -m posendf_plugin.integrations.vposer",
        description="Compare pose priors on real vs noisy poses and calibrate host weights.",
    )
    ap.add_argument("--poses", required=True, help="pose-set .npz (or folder) of real held-out poses")
    ap.add_argument(
        "--priors", nargs="+", default=["posendf", "nrdf", "vposer", "gmm"],
        help="prior names (get_prior's, or posendf_density: the shipped density-aware Pose-NDF)",
    )
    ap.add_argument("--vposer", default=None, help="VPoser experiment folder / .ckpt instead of the shipped one")
    ap.add_argument(
        "--checkpoint", action="append", default=[], metavar="NAME=PATH",
        help="checkpoint for a prior instead of its shipped default, e.g. posendf=run/model.pt (repeatable)",
    )
    ap.add_argument("--sigmas", nargs="+", type=float, default=[0.1, 0.25, 0.5])
    ap.add_argument("--max-poses", type=int, default=2000, help="evenly spaced subset size (0 = all)")
    ap.add_argument(
        "--calibration-sigmas", nargs="+", type=float, default=[0.1, 0.25],
        help="noise levels (among --sigmas) at which the energy gaps are matched (default 0.1 0.25)",
    )
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    q = load_pose_set(a.poses).quat
    if a.max_poses and len(q) > a.max_poses:
        q = q[torch.linspace(0, len(q) - 1, a.max_poses).long()]
    ckpts = {}
    for item in a.checkpoint:
        name, sep, path = item.partition("=")
        if not sep or name not in a.priors:
            raise ValueError(f"--checkpoint {item!r}: expected NAME=PATH with NAME one of --priors {a.priors}")
        ckpts[name] = path
    priors = {
        name: (load_vposer(a.vposer) if name == "vposer" and a.vposer
               else resolve_prior(name, {"checkpoint": ckpts[name]}) if name in ckpts else name)
        for name in a.priors
    }
    res = compare_priors(priors, q, sigmas=a.sigmas, seed=a.seed)
    print(f"{res.num_poses} real poses from {a.poses}; noise sigmas {a.sigmas}; seed {a.seed}\n")
    print(res.table())
    missing = [s for s in a.calibration_sigmas if s not in a.sigmas]
    if missing:
        raise ValueError(f"--calibration-sigmas {missing} are not among --sigmas {a.sigmas}")
    for name in a.priors:
        if name in ("vposer", "gmm"):
            continue
        for sigma in a.calibration_sigmas:
            print(f"\nCalibrated host weights for '{name}' (energy gap matched at sigma={sigma:g}):")
            for label, w in host_weights(res, name, sigma).items():
                print(f"  {label}: [{', '.join(f'{x:.4g}' for x in w)}]")
    return res


if __name__ == "__main__":  # pragma: no cover
    import sys

    try:
        main()
    except (ValueError, FileNotFoundError, KeyError, ImportError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"python -m posendf_plugin.integrations.vposer: error: {msg}", file=sys.stderr)
        sys.exit(2)  # bad input, as the posendf CLI
