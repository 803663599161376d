"""Rendering of image fits (matplotlib, no OpenGL): keypoints and shaded meshes over the
image, plus a side view of each body."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .. import keypoints as KP
from ..io import atomic_path
from .image_fit import ImageFitResult

__all__ = ["render_fit"]

_COLOURS = ((0.36, 0.62, 0.93), (0.95, 0.55, 0.25), (0.45, 0.80, 0.45), (0.85, 0.40, 0.75),
            (0.95, 0.85, 0.30), (0.40, 0.85, 0.85), (0.75, 0.55, 0.40))


def _shaded_polys(verts: np.ndarray, faces: np.ndarray, to2d, view_dir: np.ndarray, colour, max_faces: int):
    """Triangles facing the viewer, with Lambert shading: (polys (F, 3, 2), depth (F,), rgb (F, 3))."""
    tri = verts[faces]  # (F, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-12
    facing = (n @ view_dir) < 0
    if max_faces and facing.sum() > max_faces:
        idx = np.nonzero(facing)[0]
        facing = np.zeros_like(facing)
        facing[idx[:: int(math.ceil(len(idx) / max_faces))]] = True
    tri, n = tri[facing], n[facing]
    shade = np.clip(-(n @ view_dir), 0.0, 1.0) * 0.7 + 0.3
    rgb = np.clip(np.asarray(colour)[None] * shade[:, None], 0, 1)
    depth = tri.mean(1) @ view_dir
    return to2d(tri.reshape(-1, 3)).reshape(-1, 3, 2), depth, rgb


def render_fit(result: ImageFitResult, image: Optional[np.ndarray], path: Union[str, Path],
               max_faces: int = 0, dpi: int = 100) -> Path:
    """Write a PNG with three panels: the keypoints (input: white-edged dots; fitted: coloured
    skeleton) over the image, the fitted meshes over the image, and a side view of each body
    (seen from the camera's right, camera on the left; one body after the other).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    if result.image_size is not None:
        W, H = int(result.image_size[0]), int(result.image_size[1])
    elif image is not None:
        W, H = int(image.shape[1]), int(image.shape[0])
    else:  # a result from before image_size was recorded: the principal point was the centre
        W, H = int(round(float(result.camera_center[0]) * 2)), int(round(float(result.camera_center[1]) * 2))
    f = result.focal_length.numpy()
    c = result.camera_center.numpy()
    verts = result.vertices.numpy()
    faces = np.asarray(result.faces)
    edges = KP.keypoint_edges(result.keypoint_format)
    aspect = H / max(W, 1)
    fig, (ax, axm, side) = plt.subplots(1, 3, figsize=(15, 4.6 * aspect + 0.7), gridspec_kw={"width_ratios": [1, 1, 0.9]})
    for a in (ax, axm):
        if image is not None:
            a.imshow(image, extent=(0, W, H, 0), alpha=1.0 if a is ax else 0.6)
        a.set_xlim(0, W)
        a.set_ylim(H, 0)
        a.axis("off")

    def project(x):
        return f * x[:, :2] / np.clip(x[:, 2:3], 1e-3, None) + c

    def draw(axis, to2d, view, offsets=None):
        polys, depths, cols = [], [], []
        for p in range(verts.shape[0]):
            v = verts[p] if offsets is None else verts[p] - offsets[p]
            pl, d, rgb = _shaded_polys(v, faces, to2d, view, _COLOURS[p % len(_COLOURS)], max_faces)
            polys.append(pl), depths.append(d), cols.append(rgb)
        allp = np.concatenate(polys)
        order = np.argsort(-np.concatenate(depths))
        fc = np.concatenate(cols)[order]
        axis.add_collection(PolyCollection(allp[order], facecolors=fc, edgecolors=fc, linewidths=0.3,
                                           antialiaseds=False))
        return allp

    draw(axm, project, np.array([0.0, 0.0, 1.0]))
    kp = result.keypoints_2d.numpy()
    pr = result.projected_2d.numpy()
    for p in range(kp.shape[0]):
        col = _COLOURS[p % len(_COLOURS)]
        for a, b in edges:
            ax.plot(pr[p, [a, b], 0], pr[p, [a, b], 1], "-", color=col, lw=1.8)
        v = kp[p, :, 2] > 0
        ax.scatter(kp[p, v, 0], kp[p, v, 1], s=14, c=[col], edgecolors="white", linewidths=0.9, zorder=5)
    ax.set_title(f"keypoints: input (dots), fitted (lines); {result.prior} prior", fontsize=9)
    axm.set_title("fitted bodies", fontsize=9)

    # side views: each body centred on itself, placed left to right in the image's x order
    order_p = np.argsort(verts.mean(1)[:, 0])
    centres = verts.mean(1)
    gap = 0.4
    offs = np.zeros_like(centres)
    x = 0.0
    for p in order_p:
        ext = verts[p][:, 2] - centres[p, 2]
        offs[p] = centres[p] - np.array([0.0, 0.0, x - ext.min()]) + np.array([0.0, 0.0, 0.0])
        offs[p, 1] = centres[p, 1]
        x += float(ext.max() - ext.min()) + gap

    def side2d(v):
        return np.stack((v[:, 2], v[:, 1]), -1)

    allp = draw(side, side2d, np.array([-1.0, 0.0, 0.0]), offs)
    lo, hi = allp.reshape(-1, 2).min(0), allp.reshape(-1, 2).max(0)
    pad = 0.08 * float((hi - lo).max())
    side.set_xlim(lo[0] - pad, hi[0] + pad)
    side.set_ylim(hi[1] + pad, lo[1] - pad)
    side.set_aspect("equal")
    side.set_xlabel("depth (m), each body centred on itself", fontsize=8)
    side.set_title("side views (camera on the left)", fontsize=9)
    side.tick_params(labelsize=7)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path

