"""Image fitting on real photos: per-person 2D reprojection error, prior by prior, next to the
PNG overlays.

    python benchmarks/coco_reprojection.py [--images ../shared/data/images/coco] [--priors none,posendf]
        [--out runs/coco_reprojection] [--body-model DIR] [--config YAML]

Runs ``posendf fit-image`` (:func:`posendf_plugin.fitting.image_batch.fit_image_dir`, the
library's default schedule and camera: 5000 px at the image centre, as COCO has no intrinsics)
on every image of ``--images`` with the COCO annotation file found there (``test_coco.json``:
4 COCO val images, 14 people with ground-truth COCO-17 keypoints), once per prior, into
``OUT/<prior>/``; then writes ``OUT/reprojection.md`` (table: image, person, visible keypoints,
error per prior in pixels, links to the overlays) and ``OUT/reprojection.json``. The error is the
mean pixel distance over the person's labelled keypoints (agreement with the 2D evidence, not
3D accuracy). Without ``--body-model`` the embedded procedural stand-in body is used (not SMPL).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the package is used from the checkout (not necessarily installed)
    sys.path.insert(0, str(REPO))

from posendf_plugin.body_model import get_body_model  # noqa: E402
from posendf_plugin.fitting.image_batch import IMAGE_EXTENSIONS, fit_image_dir  # noqa: E402
from posendf_plugin.fitting.image_fit import ImageFitConfig, load_image_fit_config  # noqa: E402
from posendf_plugin.fitting.image_report import compare_reprojection, reprojection_markdown  # noqa: E402
from posendf_plugin.io import atomic_path, save_json  # noqa: E402

DEFAULT_IMAGES = REPO.parent / "shared" / "data" / "images" / "coco"


def _coco_file(folder: Path) -> Optional[Path]:
    """The COCO annotation file of ``folder``: a ``.json`` that is not an image's keypoint or camera file."""
    for j in sorted(folder.glob("*.json")):
        if j.name.endswith(".camera.json") or any(j.with_suffix(e).exists() for e in IMAGE_EXTENSIONS):
            continue
        return j
    return None


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=Path, default=DEFAULT_IMAGES, metavar="DIR")
    ap.add_argument("--coco-json", type=Path, default=None, metavar="FILE",
                    help="COCO annotation file (default: the one .json in --images that belongs to no image)")
    ap.add_argument("--priors", default="none,posendf", help="comma-separated priors (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=Path("runs/coco_reprojection"), metavar="DIR")
    ap.add_argument("--body-model", type=Path, default=None, metavar="DIR")
    ap.add_argument("--config", type=Path, default=None, metavar="YAML", help="fitting schedule (default: the library's)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        if not args.images.is_dir():
            raise FileNotFoundError(f"{args.images}: image folder not found (the shared data is not here?)")
        coco = args.coco_json or _coco_file(args.images)
        cfg = load_image_fit_config(args.config) if args.config else ImageFitConfig()
        priors = [p.strip() for p in args.priors.split(",") if p.strip()]
        if not priors:
            raise ValueError("--priors: give at least one prior")
        bm = get_body_model(args.body_model, num_betas=max(cfg.num_betas, 1))
        summaries, dirs, seconds = {}, {}, {}
        for prior in priors:
            dirs[prior] = args.out / prior
            t0 = time.perf_counter()
            summaries[prior] = fit_image_dir(args.images, dirs[prior], prior=prior, body_model=bm, coco_json=coco,
                                             config=cfg, progress=not args.quiet)
            seconds[prior] = time.perf_counter() - t0
    except (ValueError, OSError) as e:
        print(f"coco_reprojection: error: {e}", file=sys.stderr)
        return 2
    rows = compare_reprojection(summaries, dirs)
    table = reprojection_markdown(rows, priors, relative_to=args.out)
    cmd = "python benchmarks/coco_reprojection.py " + " ".join(sys.argv[1:] if argv is None else argv)
    body_model = str(args.body_model) if args.body_model else "embedded procedural stand-in (not SMPL)"
    text = (f"# Reprojection error on real photos\n\nCommand: `{cmd.strip()}`\n\nImages: {args.images.name} "
            f"({len({r.image for r in rows})} images, {len(rows)} people); body model: {body_model}; camera: "
            f"{cfg.focal_length} px at the image centre; seconds per prior: "
            + ", ".join(f"{p} {s:.0f}" for p, s in seconds.items()) + "\n\nMean pixel distance between the labelled "
            "COCO keypoints and the fitted body's projected keypoints (2D agreement, not 3D accuracy).\n\n" + table)
    with atomic_path(args.out / "reprojection.md") as tmp:
        tmp.write_text(text)
    save_json(args.out / "reprojection.json", {
        "priors": priors, "seconds": seconds, "body_model": body_model,
        "people": [{"image": r.image, "person": r.person, "visible_keypoints": r.visible_keypoints,
                    "reprojection_error_px": r.error_px} for r in rows],
        "failed": {p: [n for n, _ in s.failed] for p, s in summaries.items()},
        "skipped": {p: [n for n, _ in s.skipped] for p, s in summaries.items()},
    })
    print(table, end="")
    print(f"wrote {args.out / 'reprojection.md'} and the overlays in {args.out}/<prior>/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
