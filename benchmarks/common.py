"""Shared pieces of the benchmark runner (``benchmarks/run.py``): the run context (priors by
name, data, body model, seeds), the prior-independent metrics (joint positions, APD, FID,
nearest-training-pose distance, AUROC; defined in :mod:`posendf_plugin.metrics`) and the
writers (results.json, Markdown, PNG plots).

Results follow one schema (documented in ``benchmarks/README.md``)::

    {task: {setting: {prior: {metric: value}}}}

A prior that cannot run a setting gets ``{"skipped": "<reason>"}`` instead of metrics; a task
that cannot run at all is ``{task: {"skipped": "<reason>"}}`` (or ``{"error": ...}`` when it
failed). Prior keys starting with ``_`` are reference rows (e.g. ``_heldout`` = the held-out
poses themselves), not priors.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the package is used from the checkout (not necessarily installed)
    sys.path.insert(0, str(REPO))

from posendf_plugin.io import atomic_path, save_json  # noqa: E402
# the metrics live in the package (posendf_plugin.metrics); re-exported here for the tasks
from posendf_plugin.metrics import apd_cm, auroc, fid, joint_positions, nearest_geodesic, paired_ratio_ci, rms_deg  # noqa: E402,F401
from posendf_plugin.priors.base import PosePrior, get_prior  # noqa: E402
from posendf_plugin.skeleton import SMPL_PARENTS  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from .sources import Source

__all__ = [
    "PRIOR_NAMES",
    "PriorUnavailable",
    "BenchContext",
    "skipped",
    "PER_ITEM",
    "OnceFilter",
    "is_metrics",
    "joint_positions",
    "nearest_geodesic",
    "rms_deg",
    "apd_cm",
    "fid",
    "auroc",
    "paired_ratio_ci",
    "timed",
    "markdown_task",
    "write_json",
    "write_text",
    "save_figure",
    "draw_skeleton",
    "mpl",
    "guarded",
    "prior_rows",
]

log = logging.getLogger("benchmarks")

#: priors the runner knows, in table order
PRIOR_NAMES: Tuple[str, ...] = ("none", "gmm", "vposer", "posendf", "nrdf")


class PriorUnavailable(Exception):
    """A prior cannot be built (missing weights, unreadable checkpoint); the message says why."""


class OnceFilter(logging.Filter):
    """A logging filter that lets each distinct warning through once: a skip that every prior's
    run of the same step reports (e.g. an image without keypoints) is shown once."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.getMessage())
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


#: key of a metrics entry holding per-item values (``{metric: [one number per image, window or
#: pose]}``, the items every prior shares) for paired intervals; left out of the Markdown tables
PER_ITEM = "_per_item"


def skipped(reason: str) -> Dict[str, str]:
    """The entry recorded instead of metrics when a prior/setting cannot run."""
    return {"skipped": str(reason)}


def is_metrics(entry: Any) -> bool:
    """True for a ``{metric: value}`` entry (not a skipped/error marker)."""
    return isinstance(entry, dict) and "skipped" not in entry and "error" not in entry


# ---------------------------------------------------------------------------------------------
# Run context
# ---------------------------------------------------------------------------------------------


@dataclass
class BenchContext:
    """Everything a task needs; built once by the runner.

    Attributes:
        priors: prior names to benchmark, in table order.
        device: device of the prior-only tasks (generation, discrimination, interpolation,
            speed). fit_device: device of the fitting tasks (denoise, image_fit, completion).
        seed: base seed; every random draw derives from it (see :meth:`generator`).
        quick: small settings (default run); False = paper-scale settings.
        tiny: smoke-test settings (a few poses and optimiser steps; for tests only, the numbers
            mean nothing).
        out: output folder (tasks may write extra files under it).
        data: folder / file of AMASS-layout ``.npz`` motions or a pose set replacing the held-out
            default test split; None = the shipped CMU test split.
        body_model_dir: real SMPL files; None = the embedded procedural stand-in (not SMPL).
        checkpoints: prior name -> checkpoint path overriding the shipped weights.
        preloaded: prior name -> the prior already read from its ``checkpoints`` file (the
            runner reads each one up front to check it); used once, by the first :meth:`prior`.
        shared_images: folder of images + keypoints for the qualitative image run, or None.
        split: the shipped CMU split used without ``data``: ``test`` (the reported tables) or
            ``val`` (choosing weights, so the test subject stays unseen).
        source: the data source the tasks run on (:mod:`benchmarks.sources`; set by the
            runner for each source in turn, see :meth:`use_source`); None = built from
            ``data`` / ``split`` on first use.
        primary_source: True while the run's first source is active.
        progress: show tqdm bars.
    """

    priors: Tuple[str, ...] = PRIOR_NAMES
    device: torch.device = torch.device("cpu")
    fit_device: torch.device = torch.device("cpu")
    seed: int = 0
    quick: bool = True
    tiny: bool = False
    out: Path = Path("runs/benchmarks")
    data: Optional[Path] = None
    body_model_dir: Optional[Path] = None
    checkpoints: Dict[str, Path] = field(default_factory=dict)
    preloaded: Dict[str, PosePrior] = field(default_factory=dict, repr=False)
    shared_images: Optional[Path] = None
    split: str = "test"
    source: Optional["Source"] = None
    primary_source: bool = True
    progress: bool = True
    current_task: str = ""
    errors: List[str] = field(default_factory=list)
    prior_errors: Dict[str, str] = field(default_factory=dict)
    _cache: Dict[Any, Any] = field(default_factory=dict, repr=False)

    def pick(self, tiny: Any, quick: Any, full: Any) -> Any:
        """The setting for the current size: ``tiny`` / ``quick`` / ``full``."""
        return tiny if self.tiny else (quick if self.quick else full)

    # -- randomness -------------------------------------------------------------------------
    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU ``torch.Generator`` seeded with ``seed * 100003 + offset`` (one per use)."""
        return torch.Generator().manual_seed(int(self.seed) * 100003 + int(offset))

    def rng(self, offset: int = 0) -> np.random.Generator:
        """A numpy generator seeded like :meth:`generator`."""
        return np.random.default_rng(int(self.seed) * 100003 + int(offset))

    # -- priors -----------------------------------------------------------------------------
    def prior(self, name: str, device: Optional[torch.device] = None, shipped: Optional[str] = None) -> PosePrior:
        """The prior ``name`` on ``device`` (default :attr:`device`), frozen, eval mode; without a
        ``--checkpoint`` for it, the shipped model ``shipped`` if given (e.g. ``posendf_density``,
        ``ImageFitConfig.shipped_weights``), else the prior's default one.

        Raises:
            PriorUnavailable: its weights are missing or unreadable (the message says which
                file and how to get it); cached, so the reason is reported once per prior.
        """
        device = torch.device(device if device is not None else self.device)
        ck = self.checkpoints.get(name)
        shipped = None if ck is not None else shipped
        key = ("prior", name, str(device), shipped)
        if key not in self._cache:
            try:
                kw = {"checkpoint": str(ck)} if ck is not None else ({"pretrained": shipped} if shipped else {})
                prior = self.preloaded.pop(name) if ck is not None and name in self.preloaded else get_prior(name, **kw)
            except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
                full = f"{type(e).__name__}: {e}"
                self.prior_errors[name] = full
                short = full.split(". ")[0]
                self._cache[key] = PriorUnavailable(short if len(short) <= 240 else short[:237] + "...")
            else:
                prior = prior.to(device).eval()
                for p in prior.parameters():
                    p.requires_grad_(False)
                self._cache[key] = prior
        val = self._cache[key]
        if isinstance(val, PriorUnavailable):
            raise val
        return val

    def prior_source(self, name: str) -> str:
        """Where the prior's weights come from (for the run's metadata)."""
        if name == "none":
            return "no prior (zero energy)"
        if name in self.checkpoints:
            return str(self.checkpoints[name])
        return "shipped weights (posendf_plugin/assets)"

    # -- data -------------------------------------------------------------------------------
    @property
    def active_source(self) -> "Source":
        """The data source the tasks run on now (:mod:`benchmarks.sources`); without one set by
        the runner: ``data`` when given, else the shipped CMU ``split``."""
        if self.source is None:
            from .sources import CmuSource, DataSource

            self.source = DataSource(self.data) if self.data is not None else CmuSource(self.split)
        return self.source

    def use_source(self, source: "Source", primary: bool = True) -> None:
        """Run the next tasks on ``source``; ``primary``: the run's first source (where the
        source-independent measurements — speed, the qualitative image fits — are made)."""
        self.source = source
        self.primary_source = primary
        for k in [k for k in self._cache if isinstance(k, str) and k.startswith("source:")]:
            del self._cache[k]

    @property
    def source_name(self) -> str:
        """Short name of the active source (``cmu``, ``bandai``, the ``--data`` folder's name)."""
        return self.active_source.name

    def source_path(self, stem: str, suffix: str = ".png") -> Path:
        """``out/<stem>_<source><suffix>``: a per-source output file (plots, tables)."""
        return self.out / f"{stem}_{self.source_name}{suffix}"

    def source_title(self, title: str) -> str:
        """A plot title naming the source."""
        return f"{title} [{self.source_name}]"

    @property
    def data_name(self) -> str:
        """One line describing the active source's data (for tables and ``_settings``)."""
        return self.active_source.description

    def test_poses(self) -> torch.Tensor:
        """Held-out poses ``(N, 21, 4)`` (CPU float32) of the active source."""
        return self.active_source.poses()

    def train_poses(self) -> torch.Tensor:
        """The shipped CMU training split ``(N, 21, 4)`` — what the shipped priors were trained
        on; the reference of the nearest-training-pose distance (dNN)."""
        if "train" not in self._cache:
            from posendf_plugin.data.default import default_pose_set

            self._cache["train"] = default_pose_set("train").quat.float()
        return self._cache["train"]

    def motions(self) -> List[Tuple[str, Any]]:
        """Clean motions for denoising of the active source: ``[(name, Motion)]``.

        ``--data``: the AMASS-layout ``.npz`` files of the folder (or the one file), read with
        :func:`posendf_plugin.data.motion.load_motion`; ``bandai``: the converted clips at
        30 fps; ``cmu``: each clip of the shipped pose set as a pseudo-motion (its kept poses
        in time order — 30 fps poses after dropping near-duplicates, so consecutive frames are
        >= 5 degrees apart on some joint; root orientation and translation zero, mean shape).
        """
        return self.active_source.motions()

    def body_model(self, device: Optional[torch.device] = None):
        """The body model on ``device`` (default :attr:`fit_device`): ``--body-model`` or the
        embedded stand-in."""
        from posendf_plugin.body_model import get_body_model

        device = torch.device(device if device is not None else self.fit_device)
        key = ("body_model", str(device))
        if key not in self._cache:
            self._cache[key] = get_body_model(None if self.body_model_dir is None else str(self.body_model_dir), device=device)
        return self._cache[key]

    def body_model_name(self) -> str:
        return str(self.body_model_dir) if self.body_model_dir is not None else "embedded procedural stand-in (SMPL layout, not SMPL)"


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], device: torch.device, min_seconds: float, warmup: int = 2, min_calls: int = 3) -> Tuple[int, float]:
    """Call ``fn`` repeatedly for at least ``min_seconds`` (and ``min_calls`` calls) after
    ``warmup`` calls; returns ``(calls, seconds)``. Synchronises CUDA around the timing."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if n >= min_calls:
            sync()
            dt = time.perf_counter() - t0
            if dt >= min_seconds:
                return n, dt


# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        a = abs(v)
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 100:
            return f"{v:.1f}"
        if a >= 1:
            return f"{v:.2f}"
        if a == 0:
            return "0"
        return f"{v:.3g}"
    return str(v)


def markdown_task(task: str, res: Mapping[str, Any], notes: Sequence[str] = ()) -> str:
    """A Markdown section for one task: one table per setting (rows = priors, columns = the
    union of metric names; skipped priors show their reason)."""
    lines = [f"## {task}", ""]
    if not isinstance(res, Mapping) or "skipped" in res or "error" in res:
        why = res.get("skipped") or res.get("error") if isinstance(res, Mapping) else res
        lines += [f"**{'skipped' if 'skipped' in res else 'failed'}**: {why}", ""]
        return "\n".join(lines)
    for setting, per_prior in res.items():
        if setting.startswith("_"):  # task-level extras (e.g. "_settings")
            continue
        lines += [f"### {setting}", ""]
        if not isinstance(per_prior, Mapping):
            lines += [str(per_prior), ""]
            continue
        cols: List[str] = []
        for entry in per_prior.values():
            if is_metrics(entry):
                cols += [k for k in entry if k not in cols and not k.startswith("_")]
        header = cols or ["status"]
        lines.append("| prior | " + " | ".join(header) + " |")
        lines.append("|---|" + "---|" * len(header))
        for prior, entry in per_prior.items():
            if is_metrics(entry):
                lines.append(f"| {prior} | " + " | ".join(_fmt(entry.get(c, "")) for c in cols) + " |")
            else:
                kind = "skipped" if isinstance(entry, Mapping) and "skipped" in entry else "error"
                why = entry.get(kind, "") if isinstance(entry, Mapping) else entry
                lines.append(f"| {prior} | {kind}: {why} |" + " |" * (len(header) - 1))
        lines.append("")
    settings = res.get("_settings")
    if settings:
        lines += ["Settings: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in settings.items()), ""]
    lines += [f"- {n}" for n in notes]
    if notes:
        lines.append("")
    return "\n".join(lines)


def write_json(path: Path, obj: Mapping[str, Any]) -> Path:
    """Atomic strict JSON (NaN/inf become ``null``: undefined)."""
    def clean(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, Mapping):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    return save_json(path, clean(obj))


def write_text(path: Path, text: str) -> Path:
    """Atomically write a text file."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)


def save_figure(fig, path: Path, dpi: int = 90) -> Path:
    """Atomically save a matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return Path(path)


def draw_skeleton(ax, pos: np.ndarray, colour="tab:blue") -> None:
    """Front view (x, y) stick figure of ``(24, 3)`` joint positions on a matplotlib axis."""
    for j in range(1, len(SMPL_PARENTS)):
        p = SMPL_PARENTS[j]
        ax.plot([pos[p, 0], pos[j, 0]], [pos[p, 1], pos[j, 1]], "-", color=colour, lw=1.3)
    ax.plot(pos[:, 0], pos[:, 1], ".", color="k", ms=2)
    ax.set_aspect("equal")
    ax.set_xlim(-1.0, 1.0)
    ax.set_ylim(-1.2, 0.9)
    ax.axis("off")


def script_error(script: str, error: BaseException) -> int:
    """Report bad input to a benchmark script as one line on stderr, ``<script>: error: <message>``
    (a KeyError's message without its quotes); returns the exit status 2."""
    msg = error.args[0] if isinstance(error, KeyError) and error.args else error
    print(f"{script}: error: {msg}", file=sys.stderr)
    return 2


def mpl():
    """Import matplotlib with the non-interactive backend; returns ``pyplot``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def parse_checkpoints(items: Sequence[str], priors: Sequence[str], loaded: Optional[Dict[str, PosePrior]] = None) -> Dict[str, Path]:
    """``--checkpoint NAME=PATH`` items -> ``{name: path}``, each file read now (bad input is one
    line before any task runs); the priors read are put in ``loaded`` for the run to use
    (:attr:`BenchContext.preloaded`). Shared by ``run.py`` and ``calibrate.py``."""
    out: Dict[str, Path] = {}
    for it in items:
        if "=" not in it or not it.split("=", 1)[1].strip():
            raise ValueError(f"--checkpoint {it!r}: expected NAME=PATH, e.g. --checkpoint posendf=runs/cmu/model.pt")
        name, path = it.split("=", 1)
        if name not in PRIOR_NAMES or name == "none":
            raise ValueError(f"--checkpoint {it!r}: unknown prior {name!r}; use one of {', '.join(p for p in PRIOR_NAMES if p != 'none')}")
        p = Path(path)
        if p.is_dir():
            raise ValueError(f"--checkpoint {it!r}: {p} is a folder; pass the checkpoint file in it (e.g. model.pt)")
        if not p.is_file():
            raise FileNotFoundError(f"--checkpoint {it!r}: {p} does not exist")
        try:  # read it now: a file the user named that cannot be read is bad input, not a skipped row
            prior = get_prior(name, checkpoint=str(p))
        except (ValueError, KeyError, RuntimeError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else e
            raise ValueError(f"--checkpoint {it!r}: {msg}") from None
        trained_as = getattr(getattr(getattr(prior, "config", None), "experiment", None), "prior", None)
        if name in ("posendf", "nrdf") and trained_as in ("posendf", "nrdf") and trained_as != name:
            raise ValueError(f"--checkpoint {it!r}: {p} is a {trained_as} field (experiment.prior: {trained_as}); "
                             f"pass it as --checkpoint {trained_as}={p}")
        if name not in priors:
            raise ValueError(f"--checkpoint {it!r}: {name} is not among --priors ({', '.join(priors)}); add it there "
                             "or drop the checkpoint")
        out[name] = p
        if loaded is not None:
            loaded[name] = prior
    return out


def guarded(ctx: BenchContext, prior: str, fn: Callable[[], Dict]) -> Dict:
    """``fn()`` — one prior's metrics — with failures recorded instead of raised:
    ``NotImplementedError`` (the prior lacks the ability) becomes ``{"skipped": ...}``, any
    other exception ``{"error": ...}`` (logged with its traceback and added to ``ctx.errors``),
    so one failing prior does not lose the others' numbers."""
    import traceback

    try:
        return fn()
    except NotImplementedError as e:
        return skipped(str(e))
    except Exception as e:  # noqa: BLE001 - recorded, logged, and turned into exit status 1
        msg = f"{type(e).__name__}: {e}"
        log.error("%s / %s failed:\n%s", ctx.current_task, prior, traceback.format_exc())
        ctx.errors.append(f"{ctx.current_task}/{prior}: {msg}")
        return {"error": msg}


def prior_rows(ctx: BenchContext, device: Optional[torch.device] = None,
               setting: str = "", shipped: Optional[Dict[str, str]] = None) -> Iterable[Tuple[str, Optional[PosePrior], Optional[str]]]:
    """``(name, prior or None, skip reason or None)`` for each benchmarked prior, with a
    progress bar named after the current task and, when a task runs several, the setting;
    ``shipped``: the shipped model per prior name (``ImageFitConfig.shipped_weights``)."""
    from tqdm.auto import tqdm

    desc = f"{ctx.current_task or 'priors'}" + (f" [{setting}]" if setting else "")
    for name in tqdm(ctx.priors, desc=desc, unit="prior", leave=False, disable=not ctx.progress):
        try:
            yield name, ctx.prior(name, device, (shipped or {}).get(name)), None
        except PriorUnavailable as e:
            yield name, None, str(e)
