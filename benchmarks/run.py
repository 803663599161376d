"""Benchmark every pose prior side by side: ``python benchmarks/run.py``.

    python benchmarks/run.py [--task generation|discrimination|interpolation|completion|denoise|image_fit|speed|all]
                             [--priors none,gmm,vposer,posendf,nrdf] [--data PATH] [--body-model DIR]
                             [--device cpu|cuda] [--fit-device cpu|cuda] [--quick | --full] [--out DIR]
                             [--seed S] [--checkpoint NAME=PATH ...] [--threads N]

Without arguments it runs the quick version of every task on the embedded default (shipped
priors, held-out CMU test split, procedural body model) and writes ``runs/benchmarks/``:
``results.json`` (``{task: {setting: {prior: {metric: value}}}}`` plus ``meta`` and
``targets``), ``<task>.md``, ``results.md`` and PNG plots. See ``benchmarks/README.md``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    PRIOR_NAMES, BenchContext, OnceFilter, is_metrics, markdown_task, write_json, write_text,
)
from benchmarks.tasks import TASK_NAMES, load_task  # noqa: E402

__all__ = ["main", "build_parser", "compute_targets", "run_benchmarks"]

log = logging.getLogger("benchmarks")


# ---------------------------------------------------------------------------------------------
# Targets (issue 9): ratios measured in one run
# ---------------------------------------------------------------------------------------------


def _get(results: Dict, task: str, setting_prefix: str, prior: str, metric: str):
    """``results[task][setting][prior][metric]`` for the first setting starting with the prefix;
    ``(value, None)`` or ``(None, reason)``."""
    t = results.get(task)
    if not isinstance(t, dict) or "skipped" in t or "error" in t:
        why = (t or {}).get("skipped") or (t or {}).get("error") if isinstance(t, dict) else None
        return None, f"task {task} not run" + (f" ({why})" if why else "")
    setting = next((s for s in t if s.startswith(setting_prefix)), None)
    if setting is None:
        return None, f"{task}: no setting '{setting_prefix}'"
    e = t[setting].get(prior)
    if e is None:
        return None, f"{task}/{setting}: prior {prior} not benchmarked"
    if not is_metrics(e):
        return None, f"{task}/{setting}/{prior}: {e.get('skipped') or e.get('error')}"
    v = e.get(metric)
    if not isinstance(v, (int, float)):
        return None, f"{task}/{setting}/{prior}: no {metric}"
    return float(v), None


#: (key, description, task, setting prefix, metric, prior, reference prior or None, op, threshold)
TARGETS = (
    ("denoise40_mpjpe_vs_none", "denoise @40 mm: Pose-NDF MPJPE / no-prior MPJPE", "denoise", "noise=40mm", "mpjpe_mm", "posendf", "none", "<=", 0.95),
    ("denoise40_mpjpe_vs_vposer", "denoise @40 mm: Pose-NDF MPJPE / VPoser MPJPE", "denoise", "noise=40mm", "mpjpe_mm", "posendf", "vposer", "<=", 1.0),
    ("image_fit_pa_mpjpe_vs_none", "image fit: Pose-NDF PA-MPJPE / no-prior PA-MPJPE", "image_fit", "synthetic", "pa_mpjpe_mm", "posendf", "none", "<=", 0.6),
    ("image_fit_pa_mpjpe_vs_vposer", "image fit: Pose-NDF PA-MPJPE / VPoser PA-MPJPE", "image_fit", "synthetic", "pa_mpjpe_mm", "posendf", "vposer", "<=", 1.0),
    ("generation_apd_vs_vposer", "generation: Pose-NDF APD / VPoser APD", "generation", "n=", "apd_cm", "posendf", "vposer", ">=", 1.5),
    ("generation_fid_vs_vposer", "generation: Pose-NDF FID / VPoser FID", "generation", "n=", "fid", "posendf", "vposer", "<=", 1.0),
    ("speed_fit_ratio", "speed: image-fit time with Pose-NDF / without a prior (same run)", "speed", "image fit time", "ratio_vs_none", "posendf", None, "<=", 1.15),
)


def compute_targets(results: Dict) -> Dict[str, Dict]:
    """The issue-9 target ratios with pass/fail (``pass: None`` and a ``reason`` when a number
    is missing, e.g. the prior was skipped)."""
    out = {}
    for key, desc, task, setting, metric, prior, ref, op, thr in TARGETS:
        v, why = _get(results, task, setting, prior, metric)
        if v is not None and ref is not None:
            r, why = _get(results, task, setting, ref, metric)
            v = None if r is None else (v / r if r != 0 else float("inf"))
        entry = {"description": desc, "op": op, "threshold": thr, "value": v}
        if v is None:
            entry.update({"pass": None, "reason": why})
        else:
            entry["pass"] = bool(v <= thr) if op == "<=" else bool(v >= thr)
        out[key] = entry
    return out


def _targets_md(targets: Dict[str, Dict]) -> str:
    lines = ["## targets (issue 9)", "", "| target | value | needed | pass |", "|---|---|---|---|"]
    for t in targets.values():
        val = f"{t['value']:.3f}" if isinstance(t["value"], float) else "—"
        ok = {True: "yes", False: "**no**", None: f"n/a ({t.get('reason', '')})"}[t["pass"]]
        lines.append(f"| {t['description']} | {val} | {t['op']} {t['threshold']} | {ok} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha or "unknown") + (" (uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, {torch.get_num_threads()} torch threads"


def _meta(ctx: BenchContext, argv: Sequence[str]) -> Dict:
    return {
        "command": "python benchmarks/run.py " + " ".join(argv),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "device": str(ctx.device), "device_name": _device_name(ctx.device), "fit_device": str(ctx.fit_device),
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "seed": ctx.seed, "quick": ctx.quick, "tiny": ctx.tiny, "data": ctx.data_name, "body_model": ctx.body_model_name(),
        "priors": {p: ctx.prior_source(p) for p in ctx.priors},
        "task_seconds": {},
    }


# ---------------------------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------------------------


def run_benchmarks(ctx: BenchContext, tasks: Sequence[str], argv: Sequence[str] = ()) -> Dict:
    """Run ``tasks`` and write everything under ``ctx.out``; returns the results dict
    (``results.json`` content). Task failures are recorded, not raised."""
    from tqdm.auto import tqdm

    ctx.out.mkdir(parents=True, exist_ok=True)
    results: Dict = {"meta": _meta(ctx, argv)}
    sections: List[str] = []
    t_all = time.perf_counter()
    for name in tqdm(tasks, desc="benchmark tasks", unit="task", disable=not ctx.progress):
        t0 = time.perf_counter()
        module = None
        try:
            module = load_task(name)
            ctx.current_task = name
            res = module.run(ctx)
        except (ImportError, AttributeError) as e:
            log.warning("task %s skipped: %s", name, e)
            res = {"skipped": f"{type(e).__name__}: {e} (the library function it wraps is missing)"}
        except Exception as e:  # one failing task must not lose the others
            log.error("task %s failed:\n%s", name, traceback.format_exc())
            res = {"error": f"{type(e).__name__}: {e}"}
        results["meta"]["task_seconds"][name] = round(time.perf_counter() - t0, 1)
        results[name] = res
        notes = list(getattr(module, "NOTES", [])) if module is not None else []
        plots: List[Path] = []
        if module is not None and is_metrics(res) and hasattr(module, "plot"):
            try:
                plots = [Path(p) for p in module.plot(res, ctx)]
            except Exception:  # a plot must not lose the numbers
                log.error("plot of task %s failed:\n%s", name, traceback.format_exc())
        notes += [f"plot: {p.name}" for p in plots]
        section = markdown_task(name, res, notes)
        write_text(ctx.out / f"{name}.md", section + "\n")
        sections.append(section)
        results["targets"] = compute_targets(results)
        write_json(ctx.out / "results.json", results)
    results["meta"]["total_seconds"] = round(time.perf_counter() - t_all, 1)
    results["meta"]["errors"] = list(ctx.errors)
    results["meta"]["prior_errors"] = dict(ctx.prior_errors)
    for p, why in ctx.prior_errors.items():  # say which priors did not load
        results["meta"]["priors"][p] = f"unavailable ({why.split('. ')[0]})"
    results["targets"] = compute_targets(results)
    write_json(ctx.out / "results.json", results)
    m = results["meta"]
    head = [
        "# Benchmark results", "",
        f"- command: `{m['command']}`", f"- date: {m['date']}", f"- commit: {m['commit']}",
        f"- device: {m['device']} ({m['device_name']}); fitting tasks on {m['fit_device']}",
        f"- data: {m['data']}; body model: {m['body_model']}; seed {m['seed']}; {'tiny (smoke test)' if m.get('tiny') else 'quick' if m['quick'] else 'full'} settings",
        "- priors: " + "; ".join(f"{k}: {v}" for k, v in m["priors"].items()),
        f"- wall time: {m['total_seconds']} s (" + ", ".join(f"{k} {v} s" for k, v in m["task_seconds"].items()) + ")", "",
    ]
    write_text(ctx.out / "results.md", "\n".join(head) + "\n" + _targets_md(results["targets"]) + "\n" + "\n".join(sections) + "\n")
    return results


def _parse_checkpoints(items: Sequence[str], priors: Sequence[str]) -> Dict[str, Path]:
    out: Dict[str, Path] = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"--checkpoint {it!r}: expected NAME=PATH, e.g. --checkpoint posendf=runs/cmu/model.pt")
        name, path = it.split("=", 1)
        if name not in PRIOR_NAMES or name == "none":
            raise ValueError(f"--checkpoint {it!r}: unknown prior {name!r}; use one of {', '.join(p for p in PRIOR_NAMES if p != 'none')}")
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"--checkpoint {it!r}: {p} does not exist")
        out[name] = p
    return out


def _device(name: str, flag: str) -> torch.device:
    d = torch.device(name)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{flag} {name}: CUDA is not available on this machine (torch {torch.__version__}); use {flag} cpu")
    if d.type not in ("cpu", "cuda"):
        raise ValueError(f"{flag} {name}: use cpu or cuda")
    return d


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Benchmark the pose priors side by side (generation, discrimination, interpolation, completion, "
                    "denoising, image fitting, speed). Writes OUT/results.json, OUT/<task>.md, OUT/results.md and PNG plots.",
    )
    p.add_argument("--task", default="all", help=f"one of {', '.join(TASK_NAMES)}, a comma-separated list, or all (default)")
    p.add_argument("--priors", default=",".join(PRIOR_NAMES), help=f"comma-separated prior names (default {','.join(PRIOR_NAMES)})")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="folder (or file) of AMASS-layout .npz motions / a pose set replacing the held-out default test split")
    p.add_argument("--split", default="test", choices=["test", "val"],
                   help="shipped CMU split used without --data: test (default; the reported tables) or val (for choosing weights)")
    p.add_argument("--body-model", default=None, metavar="DIR", help="real SMPL model files (default: embedded procedural stand-in)")
    p.add_argument("--device", default="cpu", help="device of the prior-only tasks: cpu or cuda (default cpu)")
    p.add_argument("--fit-device", default="cpu",
                   help="device of the fitting tasks (denoise, image_fit, completion); default cpu")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="quick", action="store_true", default=True, help="small settings, ~10 min on 2 CPU cores (default)")
    g.add_argument("--full", dest="quick", action="store_false", help="paper-scale settings (use a GPU and --data for AMASS)")
    p.add_argument("--out", default="runs/benchmarks", metavar="DIR", help="output folder (default runs/benchmarks)")
    p.add_argument("--seed", type=int, default=0, help="base random seed (default 0); same seed -> same inputs")
    p.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                   help="weights for a prior instead of the shipped ones, e.g. posendf=runs/cmu/model.pt (repeatable)")
    p.add_argument("--images", default=None, metavar="DIR",
                   help="images with keypoints for the qualitative image-fit run in --full mode (default ../shared/data/images if present)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # smoke-test sizes (tests only)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _shared_images(explicit: Optional[str]) -> Optional[Path]:
    if explicit is not None:
        p = Path(explicit)
        if not p.is_dir():
            raise FileNotFoundError(f"--images {p}: no such folder")
        return p
    from posendf_plugin.data.default import find_shared_data

    shared = find_shared_data()
    return shared / "images" if shared is not None and (shared / "images").is_dir() else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    for h in logging.getLogger().handlers:
        h.addFilter(OnceFilter())  # each skip / warning once, not once per prior
    try:
        tasks = list(TASK_NAMES) if args.task == "all" else [t.strip() for t in args.task.split(",") if t.strip()]
        bad = [t for t in tasks if t not in TASK_NAMES]
        if bad or not tasks:
            raise ValueError(f"--task: unknown task(s) {bad}; choose from {', '.join(TASK_NAMES)} or all")
        priors = tuple(p.strip() for p in args.priors.split(",") if p.strip())
        unknown = [p for p in priors if p not in PRIOR_NAMES]
        if unknown or not priors:
            raise ValueError(f"--priors: unknown prior(s) {unknown}; choose from {', '.join(PRIOR_NAMES)}")
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        data = Path(args.data) if args.data else None
        if data is not None and not data.exists():
            raise FileNotFoundError(f"--data {data}: no such file or folder")
        bm = Path(args.body_model) if args.body_model else None
        if bm is not None and not bm.exists():
            raise FileNotFoundError(f"--body-model {bm}: no such file or folder")
        ctx = BenchContext(priors=priors, device=_device(args.device, "--device"), fit_device=_device(args.fit_device, "--fit-device"),
                           seed=args.seed, quick=args.quick, tiny=args.tiny, out=Path(args.out), data=data, body_model_dir=bm,
                           checkpoints=_parse_checkpoints(args.checkpoint, priors), shared_images=_shared_images(args.images),
                           progress=not args.no_progress, split=args.split)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():  # warnings go through tqdm.write: progress bars stay whole
        results = run_benchmarks(ctx, tasks, argv)
    print(f"\nwrote {ctx.out}/results.json, results.md, " + ", ".join(f"{t}.md" for t in tasks) + " and plots "
          f"({results['meta']['total_seconds']} s)")
    print("targets:")
    for t in results["targets"].values():
        val = f"{t['value']:.3f}" if isinstance(t["value"], float) else "n/a"
        ok = {True: "pass", False: "FAIL", None: f"n/a: {t.get('reason', '')}"}[t["pass"]]
        print(f"  {t['description']}: {val} (needs {t['op']} {t['threshold']}) -> {ok}")
    failed = [t for t in tasks if isinstance(results.get(t), dict) and "error" in results[t]] + list(ctx.errors)
    if failed:
        print(f"failed: {'; '.join(failed)} (see the log above and results.json)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
