"""How spread (APD) and how realistic (FID) pose sets can be at once — the check behind the
generation target "APD ≥ 1.5 × VPoser's and FID ≤ VPoser's" in ``benchmarks/RESULTS.md``.

Per source (the CMU test subjects; Bandai-Namco when ``../shared/data/bandai`` exists), against
that source's held-out poses, with the generation task's metrics
(:func:`posendf_plugin.metrics.apd_cm`, :func:`posendf_plugin.metrics.fid` of 23 joint positions
in cm): the priors' samples (``prior.sample(n, seed)``, as ``benchmarks/run.py --task
generation``), the held-out poses themselves (their spread), the training poses (what a perfect
model of the training data would sample) and the training poses made more spread in the two
cheapest ways — each joint extrapolated away from the mean training pose (slerp ``t > 1``), or a
share of the joints replaced by uniformly random rotations. Ratios are to VPoser's samples.
Writes a Markdown table per source and ``generation_frontier.png`` (APD vs FID, the target's
corner shaded) into ``--out``.

Examples::

    python benchmarks/generation_frontier.py
    python benchmarks/generation_frontier.py --sources cmu --samples 250 --out runs/frontier
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import script_error  # noqa: E402

#: slerp factors from the mean training pose (1 = the training poses as they are)
STRETCH = (1.1, 1.2, 1.3, 1.4, 1.5, 1.7)
#: shares of joints replaced by uniformly random rotations
RANDOM_SHARES = (0.1, 0.2, 0.3)
#: the target (issue 15): APD ≥ this × VPoser's, FID ≤ VPoser's
APD_TARGET = 1.5


def frontier_rows(test: torch.Tensor, train: torch.Tensor, samples: Dict[str, torch.Tensor], n: int,
                  seed: int = 0) -> List[Tuple[str, str, float, float]]:
    """Rows ``(kind, name, APD cm, FID)`` for one source.

    Args:
        test: ``(M, 21, 4)`` held-out poses (the FID reference).
        train: ``(K, 21, 4)`` training poses.
        samples: prior name -> ``(n, 21, 4)`` samples.
        n: poses per constructed set.
        seed: picks the poses and the random joints.
    """
    from benchmarks.tasks.generation import fid_features
    from posendf_plugin import rotations as R
    from posendf_plugin.metrics import apd_cm, fid, joint_positions

    ref = fid_features(joint_positions(test))
    rng = np.random.default_rng(seed)
    rows: List[Tuple[str, str, float, float]] = []

    def add(kind: str, name: str, q: torch.Tensor) -> None:
        pos = joint_positions(q)
        rows.append((kind, name, apd_cm(pos), fid(fid_features(pos), ref)))

    for name, q in samples.items():
        add("prior", f"{name} samples", q)
    held = test[torch.as_tensor(np.sort(rng.choice(len(test), min(n, len(test)), replace=False)))]
    add("real", "held-out poses themselves (their FID is against a set holding them)", held)
    tr = train[torch.as_tensor(np.sort(rng.choice(len(train), min(n, len(train)), replace=False)))]
    add("real", "training poses", tr)
    mean = R.quat_mean(train, dim=0).expand_as(tr)
    for t in STRETCH:
        add("stretched", f"training poses, slerp from the mean pose t = {t:g}", R.quat_slerp(mean, tr, t))
    g = torch.Generator().manual_seed(seed)
    for share in RANDOM_SHARES:
        m = torch.rand(len(tr), 21, generator=g) < share
        rnd = R.quat_random(len(tr), 21, generator=g)
        add("random", f"training poses, {share:.0%} of joints uniformly random", torch.where(m[..., None], rnd, tr))
    return rows


def _table(source: str, rows, base: Tuple[float, float], n: int) -> str:
    va, vf = base
    out = [f"#### {source} ({n} poses per set; ratios to VPoser's samples)", "",
           "| pose set | APD cm | × VPoser | FID | × VPoser | both targets |", "|---|---|---|---|---|---|"]
    for _, name, a, f in rows:
        ok = "yes" if a >= APD_TARGET * va and f <= vf else "no"
        out.append(f"| {name} | {a:.2f} | {a / va:.2f} | {f:.1f} | {f / vf:.2f} | {ok} |")
    return "\n".join(out)


def _plot(per_source: Dict[str, Tuple[list, Tuple[float, float]]], path: Path) -> Path:
    from benchmarks.common import mpl, save_figure

    plt = mpl()
    fig, axes = plt.subplots(1, len(per_source), figsize=(5.6 * len(per_source), 4.6), squeeze=False)
    colours = {"prior": "tab:red", "real": "k", "stretched": "tab:blue", "random": "tab:orange"}
    for ax, (source, (rows, (va, vf))) in zip(axes[0], per_source.items()):
        pts = [(name, a / va, f / vf, kind) for kind, name, a, f in rows if not name.startswith("held-out")]
        for name, x, y, kind in pts:
            ax.scatter([x], [y], color=colours[kind], s=22)
            ax.annotate(name.replace("training poses, ", "").replace(" samples", ""), (x, y), fontsize=6,
                        xytext=(3, 2), textcoords="offset points")
        held = next(a / va for _, name, a, _ in rows if name.startswith("held-out"))
        ax.axvline(held, color="k", ls=":", lw=1)
        ax.text(held, 0.55, " held-out poses' APD", rotation=90, fontsize=7, transform=ax.get_xaxis_transform())
        xmax = max(APD_TARGET + 0.4, max(x for _, x, _, _ in pts) + 0.1)
        ax.fill_between([APD_TARGET, xmax], 0, 1.0, color="tab:green", alpha=0.15, label="target: APD ≥ 1.5×, FID ≤ 1×")
        ax.set_yscale("log")
        ax.set_xlim(0.9, xmax)
        ax.set_ylim(0.5, 1.3 * max(y for _, _, y, _ in pts))
        ax.set_xlabel("APD / VPoser's")
        ax.set_ylabel("FID / VPoser's (log)")
        ax.set_title(f"{source}: spread vs realism", fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", default=None, help="cmu,bandai (default: every source available)")
    ap.add_argument("--samples", type=int, default=500, help="poses per set (default 500, the --full generation size)")
    ap.add_argument("--priors", default="vposer,posendf", help="priors sampled (vposer must be one: the ratios' base)")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="PRIOR=FILE")
    ap.add_argument("--shared", default=None, metavar="DIR", help="the shared data folder (default ../shared/data when present)")
    ap.add_argument("--cache", default="runs/cache", metavar="DIR", help="converted Bandai-Namco clips (default runs/cache, as run.py)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="runs/generation_frontier", metavar="DIR")
    args = ap.parse_args(argv)
    try:
        from benchmarks.sources import parse_sources, resolve_sources
        from posendf_plugin.data.default import default_pose_set, find_shared_data
        from posendf_plugin.fitting.params import load_prior

        if args.samples < 2 or args.threads < 1 or args.seed < 0:
            raise ValueError(f"--samples must be >= 2, --threads >= 1, --seed >= 0; got {args.samples}, {args.threads}, {args.seed}")
        priors = [p.strip() for p in args.priors.split(",") if p.strip()]
        if "vposer" not in priors:
            raise ValueError("--priors must include vposer: every ratio is to VPoser's samples")
        ck = {}
        for item in args.checkpoint:
            name, sep, path = item.partition("=")
            if not sep or name not in priors:
                raise ValueError(f"--checkpoint {item!r}: give PRIOR=FILE for one of --priors ({', '.join(priors)})")
            ck[name] = path
        torch.set_num_threads(args.threads)
        shared = find_shared_data(args.shared)
        sources, notes = resolve_sources(parse_sources(args.sources), None, "test", "quick", shared, Path(args.cache))
        for name, why in notes.items():
            print(f"[{name}] skipped: {why}")
        train = default_pose_set("train").quat.float()
        t0 = time.perf_counter()
        samples = {p: load_prior(p, ck.get(p)).sample(args.samples, seed=args.seed).detach().float().reshape(-1, 21, 4)
                   for p in priors}
        print(f"sampled {', '.join(priors)} ({args.samples} each) in {time.perf_counter() - t0:.1f} s", flush=True)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        per_source = {}
        text = []
        for src in sources:
            rows = frontier_rows(src.poses().float(), train, samples, args.samples, args.seed)
            base = next((a, f) for _, name, a, f in rows if name == "vposer samples")
            per_source[src.name] = (rows, base)
            text.append(_table(src.name, rows, base, args.samples))
            print(text[-1] + "\n", flush=True)
        from posendf_plugin.io import atomic_path

        with atomic_path(out / "generation_frontier.md") as tmp:
            Path(tmp).write_text("\n\n".join(text) + "\n", encoding="utf-8")
        png = _plot(per_source, out / "generation_frontier.png")
        print(f"wrote {out / 'generation_frontier.md'} and {png}")
    except (ValueError, FileNotFoundError, KeyError) as e:
        return script_error("generation_frontier.py", e)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
