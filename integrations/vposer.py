"""For VPoser users: a VPoser-compatible loader and a side-by-side comparison with Pose-NDF.

* :func:`load_model` mirrors ``human_body_prior.tools.model_loader.load_model`` (v2):
  ``vp, ps = load_model(expr_dir, model_code=VPoser, remove_words_in_model_weights='vp_model.',
  disable_grad=True)`` -> the package's own VPoser v2
  (:class:`posendf_plugin.priors.vposer.VPoser`, state-dict compatible with the official
  ``V02_05`` checkpoints), frozen, in eval mode. ``expr_dir`` is the experiment folder
  (``V02_05/`` with ``snapshots/*.ckpt``; the last snapshot by name is used, as
  human_body_prior does) or a ``.ckpt`` / ``.pt`` file. :func:`load_vposer` returns just the
  model.
* :func:`compare_priors` scores the same poses with several priors: energy on real poses and on
  noisy copies, AUROC of telling them apart, and the Spearman rank correlation between priors.
  ``python -m posendf_plugin.integrations.vposer --poses FILE`` prints that table and the host
  weights calibrated from it (:func:`host_weights`).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from posendf_plugin._checks import as_tensor
from posendf_plugin.skeleton import to_body_quat

from ._common import PriorLike, SeparationStats, add_quat_noise, energies_on, resolve_prior, separation_stats

__all__ = [
    "find_vposer_checkpoint",
    "load_vposer",
    "load_model",
    "PriorComparison",
    "compare_priors",
    "HOST_REFERENCE_WEIGHTS",
    "host_weights",
    "main",
]


def _vposer_module():
    try:
        from posendf_plugin.priors import vposer as vp
    except ImportError as e:
        raise ImportError(
            "posendf_plugin.priors.vposer is not available in this install, so there is no VPoser "
            "implementation to load checkpoints into"
        ) from e
    return vp


def find_vposer_checkpoint(path: Union[str, Path]) -> Path:
    """The checkpoint file for ``path``: the file itself, or the last ``snapshots/*.ckpt`` (by
    name) of a VPoser experiment folder (``*.ckpt`` directly inside the folder also counts).

    Raises:
        FileNotFoundError: nothing there, or a folder without ``.ckpt`` files.
    """
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such VPoser checkpoint file or experiment folder")
    ckpts = sorted((p / "snapshots").glob("*.ckpt")) or sorted(p.glob("*.ckpt"))
    if not ckpts:
        raise FileNotFoundError(
            f"{p}: no VPoser snapshot found; expected an experiment folder like V02_05/ holding "
            "snapshots/*.ckpt (as released with human_body_prior v2), or pass the .ckpt file"
        )
    return ckpts[-1]


def load_vposer(path: Optional[Union[str, Path]] = None, map_location: Union[str, torch.device] = "cpu"):
    """VPoser v2 from an official experiment folder / ``.ckpt`` or our ``.pt``; ``None`` -> the
    shipped model. Frozen, eval mode."""
    vp = _vposer_module()
    if path is None:
        return vp.VPoser.from_pretrained(map_location=map_location)
    return vp.VPoser.from_checkpoint(find_vposer_checkpoint(path), map_location=map_location)


def load_model(
    expr_dir: Union[str, Path],
    model_code=None,
    remove_words_in_model_weights: Optional[str] = "vp_model.",
    load_only_ps: bool = False,
    disable_grad: bool = True,
    comp_device: Union[str, torch.device] = "cpu",
):
    """Drop-in for human_body_prior v2's ``load_model``: returns ``(model, info)``.

    ``model_code`` is accepted for signature compatibility and must be ``None`` or the package's
    ``VPoser``; ``remove_words_in_model_weights`` must be ``'vp_model.'`` or ``None`` (the prefix
    is always stripped). ``info`` holds ``checkpoint`` (the file used) and ``config``.
    """
    vp = _vposer_module()
    if model_code is not None and model_code is not vp.VPoser:
        raise TypeError(
            f"model_code={model_code!r}: this loader builds posendf_plugin's VPoser v2; pass "
            "model_code=None (or posendf_plugin.priors.vposer.VPoser)"
        )
    if remove_words_in_model_weights not in (None, vp.LIGHTNING_PREFIX):
        raise ValueError(
            f"remove_words_in_model_weights={remove_words_in_model_weights!r}: only the official "
            f"'{vp.LIGHTNING_PREFIX}' prefix is supported"
        )
    ckpt = find_vposer_checkpoint(expr_dir)
    if load_only_ps:
        _, cfg = vp.load_vposer_state(ckpt)
        return {"checkpoint": str(ckpt), "config": cfg}
    model = vp.VPoser.from_checkpoint(ckpt, map_location=comp_device)
    for p in model.parameters():
        p.requires_grad_(not disable_grad)
    return model, {"checkpoint": str(ckpt), "config": model.config}


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
    ap.add_argument("--priors", nargs="+", default=["posendf", "nrdf", "vposer", "gmm"], help="prior names")
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
        sys.exit(f"error: {e}")
