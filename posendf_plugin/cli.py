"""The ``posendf`` command line. Each command group lives next to the code it drives and
exposes ``register(subparsers)``; this module only assembles them."""
from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import math
import sys
from typing import List, Optional

__all__ = ["main", "build_parser"]

#: modules providing ``register(subparsers)``, in the order shown by ``posendf --help``.
COMMAND_MODULES = (
    "posendf_plugin.data.commands",
    "posendf_plugin.commands",
    "posendf_plugin.priors.train_baselines",
    "posendf_plugin.fitting.commands",
)


class CLIError(Exception):
    """An error to print as one line (no stack trace) and exit with status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posendf",
        description=(
            "Pose-NDF: a learned distance field over SMPL body poses, used as a pose prior. "
            "Run 'posendf COMMAND --help' for the inputs and outputs of each command."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (an ``OSError`` from the system as ``FILE: reason``)."""
    if isinstance(e, KeyError) and e.args:
        msg = str(e.args[0])
    elif isinstance(e, OSError) and e.strerror and e.filename is not None:
        names = [str(f) for f in (e.filename, e.filename2) if f is not None]
        msg = f"{' -> '.join(names)}: {e.strerror}"
        if not isinstance(e, FileNotFoundError):
            msg += "; check that the path exists as the kind the option expects (file or folder) and is writable"
    elif isinstance(e, OSError) and e.strerror:
        msg = e.strerror
    else:
        msg = str(e) or type(e).__name__
    return " ".join(msg.split())


class _TqdmHandler(logging.Handler):
    """Writes records with ``tqdm.write``: a warning printed while a progress bar runs appears
    on its own line and the bar is redrawn below it, instead of splitting the bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


@contextlib.contextmanager
def _warnings_through_tqdm():
    """While a command runs, warnings of loggers without a configured handler (the package's
    per-person warnings, skips) go through ``tqdm.write``. Only Python's last-resort handler is
    replaced, so a command or application that configures logging keeps its own handlers."""
    old = logging.lastResort
    logging.lastResort = _TqdmHandler(logging.WARNING)
    try:
        yield
    finally:
        logging.lastResort = old


def _is_out_of_memory(e: BaseException) -> bool:
    text = str(e)
    return "out of memory" in text.lower() or "can't allocate memory" in text or "Cannot allocate memory" in text


def _check_numbers(args: argparse.Namespace) -> None:
    """argparse's ``type=float`` accepts ``nan`` and ``inf``, ``type=int`` any size: refuse them for
    every option."""
    for key, value in vars(args).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--{key.replace('_', '-')} must be a finite number, got {value}")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2 ** 63:
            raise ValueError(f"--{key.replace('_', '-')} is out of range (at most 2**63 - 1), got {value}")


def main(argv: Optional[List[str]] = None) -> int:
    """Run the ``posendf`` command line; returns the exit status (2: bad input, one line on stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_numbers(args)
        with _warnings_through_tqdm():
            rc = args.func(args)
    except (ValueError, OSError, KeyError, TypeError, CLIError) as e:
        print(f"posendf {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, MemoryError) and not _is_out_of_memory(e):
            raise
        print(f"posendf {args.command}: error: not enough memory ({_one_line(e)[:200]}); use smaller "
              "inputs or sizes (e.g. --n, --steps, --max-poses)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # every long command writes atomically and resumably: say how to go on, not a traceback
        resumable = hasattr(args, "resume")  # the commands that take --resume
        hint = "; run the same command with --resume to continue from the last checkpoint" if resumable else ""
        print(f"posendf {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
