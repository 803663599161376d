"""Validation on a motion style the prior never saw: hold some training clips out.

The validation split (CMU subjects 6, 16, 35) is mostly walking, running and basketball — styles
the training set also holds — so a weight chosen on it alone can suit common motion and hurt
rare motion (it did: ``configs/denoise.yaml``). This script makes a second validation set whose
*style* is new to the prior: it removes the training clips whose names contain ``--clips``
(default ``cmu-cc3/005_``: CMU subject 5, modern dance, 20 clips) from the shipped training
poses, and converts those clips' raw mocap from ``../shared/data`` to 30 fps motions. A field
retrained on the rest (same recipe as the shipped one, the printed commands) is then scored on
the held-out motions with ``calibrate.py --data``; the test splits stay untouched.

Writes ``OUT/train.npz`` (the training pose set without the clips), ``OUT/motions/*.npz``
(AMASS-layout motions of the held-out clips), ``OUT/stage2.yaml`` (``configs/cmu_mined.yaml``
starting from ``OUT/stage1/model.pt``) and prints the commands that follow::

    python benchmarks/hold_out_style.py [--clips cmu-cc3/005_] [--out runs/heldout_style] [--shared DIR]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from posendf_plugin.data.default import assets_dir, cmu_clip_sources, find_shared_data  # noqa: E402
from posendf_plugin.data.mocap_batch import run_mocap  # noqa: E402
from posendf_plugin.io import atomic_path, save_npz  # noqa: E402


def raw_clip_files(shared: Path, names: List[str]) -> List[Path]:
    """The raw mocap file of each pose-set clip name (``cmu-cc3/005_01`` ->
    ``shared/cmu-cc3/005_01.bvh.gz``), by the default build's own clip list
    (:func:`posendf_plugin.data.default.cmu_clip_sources`)."""
    by_label = {c.label: c.path for c in cmu_clip_sources(shared)}
    for name in names:
        if name not in by_label:
            raise FileNotFoundError(f"{shared}: no mocap file for clip {name!r} (the default build reads it from there)")
    return [by_label[n] for n in names]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", default="cmu-cc3/005_", help="hold out the training clips whose names contain this (comma-separated for several)")
    ap.add_argument("--out", default="runs/heldout_style")
    ap.add_argument("--shared", default=None, help="shared data folder with the raw mocap (default: $POSENDF_SHARED_DATA or ../shared/data)")
    args = ap.parse_args(argv)
    shared = find_shared_data(args.shared)
    if shared is None:
        print("error: no shared data folder with the raw CMU mocap; pass --shared DIR", file=sys.stderr)
        return 2
    patterns = [p for p in args.clips.split(",") if p]
    with np.load(assets_dir() / "cmu_train.npz") as z:  # the shipped arrays as stored (float16), no re-rounding
        train = {k: z[k] for k in z.files}
    names = [str(n) for n in train["clip_names"]]
    held = [i for i, n in enumerate(names) if any(p in n for p in patterns)]
    if not held or len(held) == len(names):
        print(f"error: --clips {args.clips!r} matches {len(held)} of the {len(names)} training clips; it must match some, not all",
              file=sys.stderr)
        return 2
    try:
        files = raw_clip_files(Path(shared), [names[i] for i in held])
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cid = train["clip_id"]
    keep_clip = np.ones(len(names), bool)
    keep_clip[held] = False
    keep = keep_clip[cid]
    new_id = np.cumsum(keep_clip) - 1
    save_npz(out / "train.npz", quat=train["quat"][keep], clip_id=new_id[cid[keep]].astype(np.int32),
             clip_names=train["clip_names"][keep_clip],
             source=np.asarray(f"{train['source']} -- without the clips matching {args.clips!r} (benchmarks/hold_out_style.py)"))
    summary = run_mocap(files, out / "motions", fps=30.0, progress=True)
    stage2 = (ROOT / "configs" / "cmu_mined.yaml").read_text()
    stage2 = re.sub(r"(?m)^(\s*init_from:\s*)\S+", lambda m: m.group(1) + (out / "stage1" / "model.pt").as_posix(), stage2, count=1)
    with atomic_path(out / "stage2.yaml") as tmp:
        Path(tmp).write_text(stage2)
    print(f"{int(keep.sum())} training poses kept, {int((~keep).sum())} held out ({len(held)} clips); "
          f"{len(files) - len(summary.failed)} clips converted to {out / 'motions'}\nnext:")
    for cmd in (f"posendf data prepare --poses {out}/train.npz --config configs/prepare_posendf.yaml --out {out}/data",
                f"posendf train --config configs/cmu.yaml --data {out}/data --out {out}/stage1",
                f"posendf train --config {out}/stage2.yaml --data {out}/data --out {out}/stage2",
                f"python benchmarks/calibrate.py --task denoise --data {out}/motions --priors none,posendf "
                f"--scales posendf=1e-6,3e-6,1e-5 --checkpoint posendf={out}/stage2/model.pt"):
        print("  " + cmd)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
