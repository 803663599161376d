"""The ``posendf`` command line. Each command group lives next to the code it drives and
exposes ``register(subparsers)``; this module only assembles them."""
from __future__ import annotations

import argparse
import importlib
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


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except (ValueError, FileNotFoundError, KeyError, TypeError, CLIError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"posendf {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
