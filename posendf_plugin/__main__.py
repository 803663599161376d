"""``python -m posendf_plugin ...`` = the ``posendf`` command (useful without the console script)."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
