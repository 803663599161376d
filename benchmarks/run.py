"""Benchmark every pose prior side by side, on every data source: ``python benchmarks/run.py``.

    python benchmarks/run.py [--task generation|discrimination|interpolation|completion|denoise|image_fit|speed|all]
                             [--priors none,gmm,vposer,posendf,nrdf] [--sources cmu,bandai] [--data PATH]
                             [--split test|val] [--shared DIR] [--cache DIR] [--body-model DIR]
                             [--device cpu|cuda] [--fit-device cpu|cuda] [--quick | --full] [--out DIR]
                             [--seed S] [--checkpoint NAME=PATH ...] [--threads N]

Without arguments it runs the quick version of every task on every available source — the
held-out CMU test split shipped with the package and, when ``../shared/data/bandai`` exists, the
Bandai-Namco cross-source clips (:mod:`benchmarks.sources`) — with the shipped priors and the
procedural body model, and writes ``runs/benchmarks/``: ``results.json``
(``{"meta", "sources": {source: {task: {setting: {prior: {metric: value}}}}}, "targets":
{source: ...}}``), ``<task>_<source>.md``, ``results.md`` and PNG plots named after the source.
See ``benchmarks/README.md``.
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
from typing import Any, Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    PER_ITEM, PRIOR_NAMES, BenchContext, OnceFilter, is_metrics, markdown_task, paired_ratio_ci, parse_checkpoints, write_json,
    write_text,
)
from benchmarks.sources import SOURCE_NAMES, DataSource, Source, parse_sources, resolve_sources  # noqa: E402
from benchmarks.tasks import TASK_NAMES, load_task  # noqa: E402
from posendf_plugin._checks import check_device  # noqa: E402
from posendf_plugin.io import check_output_dir  # noqa: E402

__all__ = ["main", "build_parser", "compute_targets", "run_benchmarks"]

log = logging.getLogger("benchmarks")


# ---------------------------------------------------------------------------------------------
# Targets (issue 15; the speed ratio from issue 9): ratios measured in one run, per source
# ---------------------------------------------------------------------------------------------

#: the baselines Pose-NDF must match or beat ("<= every baseline")
BASELINES: Tuple[str, ...] = ("gmm", "vposer", "nrdf")


def _setting(task_results: Any, setting_prefix: str) -> Optional[str]:
    """The first setting of a task's results starting with the prefix (None: none, or no results)."""
    return next((s for s in task_results if s.startswith(setting_prefix)), None) if isinstance(task_results, dict) else None


def _get(results: Dict, task: str, setting_prefix: str, prior: str, metric: str):
    """``results[task][setting][prior][metric]`` for the first setting starting with the prefix;
    ``(value, None)`` or ``(None, reason)``."""
    t = results.get(task)
    if not isinstance(t, dict) or "skipped" in t or "error" in t:
        why = (t or {}).get("skipped") or (t or {}).get("error") if isinstance(t, dict) else None
        return None, f"task {task} not run" + (f" ({why})" if why else "")
    setting = _setting(t, setting_prefix)
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


def _best_baseline(results: Dict, task: str, setting_prefix: str, metric: str):
    """``(value, name, None)`` of the lowest ``metric`` among the baselines benchmarked in the
    setting, or ``(None, None, reason)`` when none was or one of them has no number (a
    comparison with "every baseline" is only made when all of them ran)."""
    t = results.get(task)
    setting = _setting(t, setting_prefix)
    present = [b for b in BASELINES if setting is not None and b in t[setting]]
    if not present:
        return None, None, f"no baseline ({', '.join(BASELINES)}) benchmarked in {task}"
    vals = {}
    for b in present:
        v, why = _get(results, task, setting_prefix, b, metric)
        if v is None:
            return None, None, why
        vals[b] = v
    best = min(vals, key=vals.get)
    return vals[best], best, None


#: (key, description, task, setting prefix, metric, prior, reference, op, threshold); the value is
#: prior's metric divided by the reference: another prior's metric in the same setting
#: (a prior name), the lowest of the baselines (``"baselines"``), another metric of the same
#: prior and setting (``"metric:<name>"``), or nothing (None: the metric itself)
TARGETS = (
    ("image_fit_pa_mpjpe_vs_none", "image fit: Pose-NDF PA-MPJPE / no-prior PA-MPJPE", "image_fit", "synthetic", "pa_mpjpe_mm", "posendf", "none", "<=", 0.9),
    ("image_fit_pa_mpjpe_vs_baselines", "image fit: Pose-NDF PA-MPJPE / best baseline's", "image_fit", "synthetic", "pa_mpjpe_mm", "posendf", "baselines", "<=", 1.0),
    ("denoise40_mpjpe_vs_none", "denoise @40 mm: Pose-NDF MPJPE / no-prior MPJPE", "denoise", "noise=40mm", "mpjpe_mm", "posendf", "none", "<=", 0.9),
    ("denoise40_mpjpe_vs_baselines", "denoise @40 mm: Pose-NDF MPJPE / best baseline's", "denoise", "noise=40mm", "mpjpe_mm", "posendf", "baselines", "<=", 1.0),
    ("completion25_vs_init", "completion 25 %: Pose-NDF hidden-joint error / identity start's", "completion", "masked=25%", "angle_deg", "posendf", "metric:identity_angle_deg", "<", 1.0),
    ("completion25_vs_baselines", "completion 25 %: Pose-NDF hidden-joint error / best baseline's", "completion", "masked=25%", "angle_deg", "posendf", "baselines", "<=", 1.0),
    ("completion50_vs_init", "completion 50 %: Pose-NDF hidden-joint error / identity start's", "completion", "masked=50%", "angle_deg", "posendf", "metric:identity_angle_deg", "<", 1.0),
    ("completion50_vs_baselines", "completion 50 %: Pose-NDF hidden-joint error / best baseline's", "completion", "masked=50%", "angle_deg", "posendf", "baselines", "<=", 1.0),
    ("heldout_f_vs_noise01", "held-out real poses: Pose-NDF mean f / mean f at sigma=0.1 noise", "discrimination", "sigma=0.1", "energy_real", "posendf", "metric:energy_noisy", "<=", 0.15),
    ("generation_apd_vs_vposer", "generation: Pose-NDF APD / VPoser APD", "generation", "n=", "apd_cm", "posendf", "vposer", ">=", 1.5),
    ("generation_fid_vs_vposer", "generation: Pose-NDF FID / VPoser FID (vs this source's poses)", "generation", "n=", "fid", "posendf", "vposer", "<=", 1.0),
    ("speed_fit_ratio", "speed: image-fit time with Pose-NDF / without a prior (same run)", "speed", "image fit time", "ratio_vs_none", "posendf", None, "<=", 1.15),
)
#: targets left out of a source's table when their task was measured on another source
_ONCE_PER_RUN = {"speed"}
_OPS = {"<=": lambda v, t: v <= t, "<": lambda v, t: v < t, ">=": lambda v, t: v >= t}
#: coverage and draws of the targets' paired bootstrap intervals
CI_LEVEL, CI_RESAMPLES = 0.95, 2000


def _per_item(results: Dict, task: str, setting_prefix: str, prior: str, metric: str) -> Optional[List[float]]:
    """The per-item values of ``metric`` behind a mean (``PER_ITEM``), or None."""
    t = results.get(task)
    setting = _setting(t, setting_prefix)
    e = t[setting].get(prior) if setting is not None and isinstance(t[setting], dict) else None
    v = e.get(PER_ITEM, {}).get(metric) if is_metrics(e) and isinstance(e.get(PER_ITEM), dict) else None
    return v if isinstance(v, list) else None


def _ratio_ci(results: Dict, task: str, setting: str, metric: str, prior: str, ref_prior: str,
              ref_metric: str, seed: int) -> Optional[List[float]]:
    """95 % paired bootstrap interval of a ratio target (:func:`posendf_plugin.metrics.paired_ratio_ci`)
    when both sides kept their per-item values on the same items; None otherwise."""
    a = _per_item(results, task, setting, prior, metric)
    b = _per_item(results, task, setting, ref_prior, ref_metric)
    if a is None or b is None or len(a) != len(b) or len(a) < 2:
        return None
    try:
        return list(paired_ratio_ci(a, b, level=CI_LEVEL, resamples=CI_RESAMPLES, seed=seed))
    except ValueError:  # non-finite or all-zero per-item errors: no interval
        return None


def compute_targets(results: Dict, seed: int = 0) -> Dict[str, Dict]:
    """The targets with pass/fail for the results of one source (``{task: ...}``);
    ``pass: None`` and a ``reason`` when a number is missing (e.g. a prior was skipped).
    Entries comparing with a baseline or another prior name it in ``reference``. Ratios of two
    means over the same items (images, windows, poses) whose per-item values were kept also get
    ``ci95``: the 95 % paired bootstrap interval (``seed`` seeds the draws)."""
    out = {}
    for key, desc, task, setting, metric, prior, ref, op, thr in TARGETS:
        t = results.get(task)
        if task in _ONCE_PER_RUN and isinstance(t, dict) and t.get("measured_on"):
            continue
        v, why = _get(results, task, setting, prior, metric)
        reference, ci = None, None
        if v is not None and ref is not None:
            ref_prior, ref_metric = ref, metric
            if ref == "baselines":
                r, reference, why = _best_baseline(results, task, setting, metric)
                ref_prior = reference
            elif ref.startswith("metric:"):
                ref_prior, ref_metric = prior, ref.split(":", 1)[1]
                r, why = _get(results, task, setting, prior, ref_metric)
                reference = f"{prior} {ref_metric}"
            else:
                r, why = _get(results, task, setting, ref, metric)
                reference = ref
            v = None if r is None else (v / r if r != 0 else float("inf"))
            if v is not None:
                ci = _ratio_ci(results, task, setting, metric, prior, ref_prior, ref_metric, seed)
        entry = {"description": desc, "op": op, "threshold": thr, "value": v}
        if reference is not None:
            entry["reference"] = reference
        if ci is not None:
            entry["ci95"] = ci
        if v is None:
            entry.update({"pass": None, "reason": why})
        else:
            entry["pass"] = bool(_OPS[op](v, thr))
        out[key] = entry
    return out


def _targets_md(targets: Dict[str, Dict], source: str) -> str:
    lines = [f"## targets [{source}]", "", "| target | value | 95 % interval | needed | pass |", "|---|---|---|---|---|"]
    for t in targets.values():
        val = f"{t['value']:.3f}" if isinstance(t["value"], float) else "—"
        if t.get("reference") and "baseline" in t["description"]:
            val += f" (vs {t['reference']})"
        ci = t.get("ci95")
        interval = "—" if ci is None else f"{ci[0]:.3f}–{ci[1]:.3f}"
        if ci is not None and t["pass"] is not None and _OPS[t["op"]](ci[0], t["threshold"]) != _OPS[t["op"]](ci[1], t["threshold"]):
            interval += " (either side)"
        ok = {True: "yes", False: "**no**", None: f"n/a ({t.get('reason', '')})"}[t["pass"]]
        lines.append(f"| {t['description']} | {val} | {interval} | {t['op']} {t['threshold']} | {ok} |")
    lines += ["", f"95 % interval: paired bootstrap of the ratio over the items both sides share (the same images, "
              f"denoising windows or poses, the same noise; {CI_RESAMPLES:,} draws); \"(either side)\": these items "
              "cannot tell passing from failing. Ratios of sample statistics (generation, discrimination, speed) have none."]
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
        "seed": ctx.seed, "quick": ctx.quick, "tiny": ctx.tiny, "split": ctx.split, "body_model": ctx.body_model_name(),
        "priors": {p: ctx.prior_source(p) for p in ctx.priors},
        "sources": {},
        "task_seconds": {},
    }


def _run_task(ctx: BenchContext, name: str, first_source: str) -> Tuple[Dict, str]:
    """Run one task on the active source; returns ``(result, markdown section)``."""
    module = None
    if name in _ONCE_PER_RUN and not ctx.primary_source:
        res = {"skipped": f"measured once per run, on source '{first_source}' (it does not depend on the data)",
               "measured_on": first_source}
        return res, markdown_task(f"{name} [{ctx.source_name}]", res)
    try:
        module = load_task(name)
        ctx.current_task = name
        res = module.run(ctx)
    except (ImportError, AttributeError) as e:
        log.warning("task %s skipped: %s", name, e)
        res = {"skipped": f"{type(e).__name__}: {e} (the library function it wraps is missing)"}
    except Exception as e:  # one failing task must not lose the others
        log.error("task %s [%s] failed:\n%s", name, ctx.source_name, traceback.format_exc())
        res = {"error": f"{type(e).__name__}: {e}"}
    notes = list(getattr(module, "NOTES", [])) if module is not None else []
    plots: List[Path] = []
    if module is not None and is_metrics(res) and hasattr(module, "plot"):
        try:
            plots = [Path(p) for p in module.plot(res, ctx)]
        except Exception:  # a plot must not lose the numbers
            log.error("plot of task %s failed:\n%s", name, traceback.format_exc())
    notes += [f"plot: {p.name}" for p in plots]
    return res, markdown_task(f"{name} [{ctx.source_name}]", res, notes)


def run_benchmarks(ctx: BenchContext, tasks: Sequence[str], argv: Sequence[str] = (),
                   sources: Optional[Sequence[Source]] = None, skipped_sources: Optional[Dict[str, str]] = None) -> Dict:
    """Run ``tasks`` on each of ``sources`` (default: the context's own source) and write
    everything under ``ctx.out``; returns the results dict (``results.json`` content:
    ``{"meta", "sources": {source: {task: ...}}, "targets": {source: ...}}``). Task failures are
    recorded, not raised; ``skipped_sources`` (name -> note) are recorded as skipped."""
    from tqdm.auto import tqdm

    sources = list(sources) if sources is not None else [ctx.active_source]
    ctx.out.mkdir(parents=True, exist_ok=True)
    results: Dict = {"meta": _meta(ctx, argv), "sources": {}, "targets": {}}
    for name, note in (skipped_sources or {}).items():
        results["meta"]["sources"][name] = results["sources"][name] = {"skipped": note}
    body: List[str] = []
    t_all = time.perf_counter()
    for i, src in enumerate(sources):
        ctx.use_source(src, primary=i == 0)
        per: Dict = {}
        results["sources"][src.name] = per
        t0 = time.perf_counter()
        try:
            results["meta"]["sources"][src.name] = src.summary()
        except (ValueError, KeyError, OSError) as e:  # unreadable data: record it, run the other sources
            log.error("source %s: %s", src.name, e)
            results["meta"]["sources"][src.name] = {"error": str(e)}
            per["error"] = f"{type(e).__name__}: {e}"
            ctx.errors.append(f"source {src.name}: {e}")
            body.append(f"# source {src.name}\n\n**failed**: {e}\n")
            continue
        results["meta"]["sources"][src.name]["load_seconds"] = round(time.perf_counter() - t0, 1)
        sections: List[str] = []
        for name in tqdm(tasks, desc=f"benchmark tasks [{src.name}]", unit="task", disable=not ctx.progress):
            t0 = time.perf_counter()
            res, section = _run_task(ctx, name, sources[0].name)
            results["meta"]["task_seconds"][f"{name} [{src.name}]"] = round(time.perf_counter() - t0, 1)
            per[name] = res
            write_text(ctx.source_path(name, ".md"), section + "\n")
            sections.append(section)
            results["targets"][src.name] = compute_targets(per, seed=ctx.seed)
            write_json(ctx.out / "results.json", results)
        body.append(f"# source {src.name}\n\n{src.description}\n\n" + _targets_md(results["targets"][src.name], src.name)
                    + "\n" + "\n".join(sections))
    rank = {n: i for i, n in enumerate(SOURCE_NAMES)}
    for d in (results["meta"]["sources"], results["sources"]):  # built-in sources in their order, skipped ones included
        items = sorted(d.items(), key=lambda kv: rank.get(kv[0], len(rank)))
        d.clear()
        d.update(items)
    results["meta"]["total_seconds"] = round(time.perf_counter() - t_all, 1)
    results["meta"]["errors"] = list(ctx.errors)
    results["meta"]["prior_errors"] = dict(ctx.prior_errors)
    for p, why in ctx.prior_errors.items():  # say which priors did not load
        results["meta"]["priors"][p] = f"unavailable ({why.split('. ')[0]})"
    write_json(ctx.out / "results.json", results)
    m = results["meta"]
    head = [
        "# Benchmark results", "",
        f"- command: `{m['command']}`", f"- date: {m['date']}", f"- commit: {m['commit']}",
        f"- device: {m['device']} ({m['device_name']}); fitting tasks on {m['fit_device']}",
        f"- body model: {m['body_model']}; seed {m['seed']}; {'tiny (smoke test)' if m.get('tiny') else 'quick' if m['quick'] else 'full'} settings",
        "- sources: " + "; ".join(f"**{k}**: " + (v.get("description") or v.get("skipped") or f"failed ({v.get('error')})")
                                  for k, v in m["sources"].items()),
        "- priors: " + "; ".join(f"{k}: {v}" for k, v in m["priors"].items()),
        f"- wall time: {m['total_seconds']} s (" + ", ".join(f"{k} {v} s" for k, v in m["task_seconds"].items()) + ")", "",
    ]
    write_text(ctx.out / "results.md", "\n".join(head) + "\n" + "\n".join(body) + "\n")
    return results


def _device(name: str, flag: str) -> torch.device:
    d = check_device(name, flag)
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
    p.add_argument("--sources", default=None, metavar="A,B",
                   help=f"data sources, comma-separated: {', '.join(SOURCE_NAMES)} (default: every available one; "
                        "only --data when --data is given). cmu = shipped CMU test split, bandai = Bandai-Namco clips of "
                        "../shared/data (skipped with a note when absent)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="folder (or file) of AMASS-layout .npz motions or a pose set: an extra source named after its folder "
                        "(alone unless --sources is given)")
    p.add_argument("--split", default="test", choices=["test", "val"],
                   help="shipped CMU split: test (default; the reported tables) or val (for choosing weights; "
                        "the test-only bandai source is then skipped)")
    p.add_argument("--shared", default=None, metavar="DIR",
                   help="shared data folder holding bandai/ (default: $POSENDF_SHARED_DATA or ../shared/data when present)")
    p.add_argument("--cache", default="runs/cache", metavar="DIR",
                   help="where converted Bandai-Namco clips are cached (default runs/cache; keep it out of folders you share: "
                        "the clips are CC BY-NC-ND)")
    p.add_argument("--body-model", default=None, metavar="DIR", help="real SMPL model files (default: embedded procedural stand-in)")
    p.add_argument("--device", default="cpu", help="device of the prior-only tasks: cpu or cuda (default cpu)")
    p.add_argument("--fit-device", default="cpu",
                   help="device of the fitting tasks (denoise, image_fit, completion); default cpu")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="quick", action="store_true", default=True, help="small settings, ~5 min on 2 CPU cores for the cmu and bandai sources (default)")
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


def _shared_data(explicit: Optional[str]) -> Optional[Path]:
    """``--shared`` (must exist) or the shared data folder found next to the checkout; None on a
    fresh clone."""
    from posendf_plugin.data.default import find_shared_data

    if explicit is not None and not Path(explicit).is_dir():
        raise FileNotFoundError(f"--shared {explicit}: no such folder")
    return find_shared_data(explicit)


def _shared_images(explicit: Optional[str], shared: Optional[Path]) -> Optional[Path]:
    if explicit is not None:
        p = Path(explicit)
        if not p.is_dir():
            raise FileNotFoundError(f"--images {p}: no such folder")
        return p
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
        if args.seed < 0:
            raise ValueError(f"--seed must be an integer >= 0, got {args.seed}")
        if not args.out.strip():
            raise ValueError("--out is empty; give an output folder (default runs/benchmarks)")
        if Path(args.cache).exists() and not Path(args.cache).is_dir():
            raise ValueError(f"--cache {args.cache}: exists and is not a folder; give a folder for the converted clips")
        data = Path(args.data) if args.data else None
        if data is not None and not data.exists():
            raise FileNotFoundError(f"--data {data}: no such file or folder")
        if data is not None and data.is_dir() and ((data / "manifest.json").is_file() or any(data.glob("chunk_*.npz"))):
            raise ValueError(f"--data {data}: a 'posendf data prepare' folder of noisy labelled samples, not held-out poses; "
                             "give motions or a pose set (e.g. a split written by 'posendf data default' / 'data amass')")
        shared = _shared_data(args.shared)
        size = "tiny" if args.tiny else "quick" if args.quick else "full"
        sources, skipped_sources = resolve_sources(parse_sources(args.sources), data, args.split, size, shared,
                                                   Path(args.cache), progress=not args.no_progress)
        for src in sources:  # the user's own data: read now, so a bad file is one line before any task runs
            if isinstance(src, DataSource):
                try:
                    src.poses()
                except (KeyError, ValueError, OSError) as e:
                    raise ValueError(f"--data {src.path}: {e.args[0] if isinstance(e, KeyError) and e.args else e}") from None
        check_output_dir(args.out, "--out")
        bm = Path(args.body_model) if args.body_model else None
        if bm is not None and not bm.exists():
            raise FileNotFoundError(f"--body-model {bm}: no such file or folder")
        if bm is not None:
            from posendf_plugin.body_model import find_body_model_file

            try:
                find_body_model_file(bm)
            except (FileNotFoundError, ValueError) as e:
                raise ValueError(f"--body-model {bm}: {str(e).splitlines()[0]}") from None
        loaded: Dict[str, Any] = {}
        ctx = BenchContext(priors=priors, device=_device(args.device, "--device"), fit_device=_device(args.fit_device, "--fit-device"),
                           seed=args.seed, quick=args.quick, tiny=args.tiny, out=Path(args.out), data=data, body_model_dir=bm,
                           checkpoints=parse_checkpoints(args.checkpoint, priors, loaded), preloaded=loaded, shared_images=_shared_images(args.images, shared),
                           progress=not args.no_progress, split=args.split)
    except (ValueError, OSError) as e:  # FileNotFoundError, an --out that cannot be written, ...
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():  # warnings go through tqdm.write: progress bars stay whole
        results = run_benchmarks(ctx, tasks, argv, sources, skipped_sources)
    names = [s.name for s in sources]
    print(f"\nwrote {ctx.out}/results.json, results.md, " + ", ".join(f"{t}_<source>.md" for t in tasks)
          + f" and plots for source(s) {', '.join(names)} ({results['meta']['total_seconds']} s)")
    for name, note in skipped_sources.items():
        print(f"source {name}: {note}")
    for name, targets in results["targets"].items():
        print(f"targets [{name}]:")
        for t in targets.values():
            val = f"{t['value']:.3f}" if isinstance(t["value"], float) else "n/a"
            if t.get("ci95"):
                val += f" [95 % {t['ci95'][0]:.3f}–{t['ci95'][1]:.3f}]"
            ok = {True: "pass", False: "FAIL", None: f"n/a: {t.get('reason', '')}"}[t["pass"]]
            print(f"  {t['description']}: {val} (needs {t['op']} {t['threshold']}) -> {ok}")
    failed = [f"{t} [{n}]" for n in names for t in tasks
              if isinstance(results["sources"].get(n, {}).get(t), dict) and "error" in results["sources"][n][t]] + list(ctx.errors)
    if failed:
        print(f"failed: {'; '.join(failed)} (see the log above and results.json)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
