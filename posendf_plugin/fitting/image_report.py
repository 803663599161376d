"""Per-person 2D reprojection errors of image fits, side by side for several priors: a table of
``image, person, visible keypoints, error per prior`` with links to each prior's PNG overlay.

The error of a person is the mean pixel distance between its input keypoints with confidence
> 0 and the fitted body's projected keypoints (``ImageFitResult.reprojection_error_px``, as
``summary.json`` of ``posendf fit-image`` records it). It measures agreement with the 2D
evidence only: a lower error is not a more plausible 3D pose.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

from .image_batch import ImageDirSummary

__all__ = ["PersonReprojection", "compare_reprojection", "reprojection_markdown"]


@dataclass
class PersonReprojection:
    """One person's errors.

    Attributes:
        image / person: the image file name and the person's id (COCO annotation id, or the
            OpenPose index).
        visible_keypoints: input keypoints with confidence > 0.
        error_px: per prior, mean reprojection error in pixels (``None``: not fitted or not finite).
        png: per prior, the overlay's path (``None`` when not rendered).
    """

    image: str
    person: str
    visible_keypoints: int
    error_px: Dict[str, Optional[float]] = field(default_factory=dict)
    png: Dict[str, Optional[Path]] = field(default_factory=dict)


def _entries(summary: Union[ImageDirSummary, Mapping]) -> List[dict]:
    if isinstance(summary, ImageDirSummary):
        return summary.fitted
    if isinstance(summary, Mapping) and isinstance(summary.get("fitted"), list):
        return summary["fitted"]
    raise TypeError(f"expected an ImageDirSummary or a summary.json dict, got {type(summary).__name__}")


def compare_reprojection(
    summaries: Mapping[str, Union[ImageDirSummary, Mapping]],
    out_dirs: Optional[Mapping[str, Union[str, Path]]] = None,
) -> List[PersonReprojection]:
    """Rows, one per (image, person) of the fitted images (people too sparse to fit included,
    with no error), in image then person order.

    Args:
        summaries: per prior name, what :func:`~posendf_plugin.fitting.image_batch.fit_image_dir`
            returned (or its ``summary.json`` as a dict).
        out_dirs: per prior, the output folder (to locate the PNGs); optional.
    """
    rows: Dict[tuple, PersonReprojection] = {}
    for prior, summary in summaries.items():
        for entry in _entries(summary):
            ids = entry.get("person_ids") or [str(i) for i in range(entry.get("people", 0))]
            vis = entry.get("visible_keypoints") or [0] * len(ids)
            png = entry.get("png")
            for pid, nv, err in zip(ids, vis, entry["reprojection_error_px"]):
                row = rows.setdefault((entry["image"], pid), PersonReprojection(entry["image"], pid, int(nv)))
                row.error_px[prior] = None if err is None or not math.isfinite(err) else float(err)
                row.png[prior] = Path(out_dirs[prior]) / png if (out_dirs and png) else None
            for sk in entry.get("skipped_people", []):  # too few keypoints: listed, not fitted
                row = rows.setdefault((entry["image"], str(sk["person"])),
                                      PersonReprojection(entry["image"], str(sk["person"]), int(sk.get("visible_keypoints", 0))))
                row.error_px.setdefault(prior, None)
    priors = list(summaries)
    for row in rows.values():
        for p in priors:
            row.error_px.setdefault(p, None)
            row.png.setdefault(p, None)
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], _id_key(k[1])))]


def _id_key(pid: str):
    return (0, int(pid), "") if pid.lstrip("-").isdigit() else (1, 0, pid)


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    v = [x for x in values if x is not None]
    return sum(v) / len(v) if v else None


def reprojection_markdown(rows: Sequence[PersonReprojection], priors: Sequence[str],
                          relative_to: Optional[Union[str, Path]] = None) -> str:
    """A Markdown table of ``rows`` with a column per prior (pixels, 1 decimal; ``—`` = not
    fitted), a mean row over the people every prior fitted, and links to the overlays (paths
    relative to ``relative_to`` when given; ``—`` when none was rendered)."""
    def link(path: Optional[Path], text: str) -> str:
        if path is None:
            return text
        shown = os.path.relpath(path, relative_to) if relative_to is not None else str(path)
        return f"[{text}]({Path(shown).as_posix()})"

    def fmt(x: Optional[float]) -> str:
        return "—" if x is None else f"{x:.1f}"

    head = ["image", "person", "visible keypoints"] + [f"{p} (px)" for p in priors] + ["overlays"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        links = ", ".join(link(r.png.get(p), p) for p in priors if r.png.get(p) is not None) or "—"
        lines.append("| " + " | ".join([r.image, r.person, str(r.visible_keypoints)]
                                       + [fmt(r.error_px.get(p)) for p in priors] + [links]) + " |")
    both = [r for r in rows if all(r.error_px.get(p) is not None for p in priors)]
    lines.append("| " + " | ".join([f"**mean** ({len(both)} people)", "", ""]
                                   + [f"**{fmt(_mean([r.error_px[p] for r in both]))}**" for p in priors] + [""]) + " |")
    return "\n".join(lines) + "\n"
