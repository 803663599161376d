"""Fitting every image of a folder (``posendf fit-image``): keypoints and camera per image,
:func:`~posendf_plugin.fitting.image_fit.fit_people`, ``<name>.npz`` + ``<name>.png`` per image
and ``summary.json``."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from .. import rotations as R
from ..body_model import BodyModel, get_body_model
from ..io import save_json, save_npz
from ..priors.base import PosePrior
from .image_fit import ImageFitConfig, fit_people
from .keypoint_files import read_coco_annotations, read_keypoint_json
from .params import load_prior
from .render import render_fit

__all__ = ["ImageDirSummary", "NPZ_KEYS", "IMAGE_EXTENSIONS", "fit_image_dir"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: Tuple[str, ...] = (".jpg", ".jpeg", ".png")
#: keys of the per-image ``.npz``
NPZ_KEYS: Tuple[str, ...] = (
    "body_pose", "body_quat", "global_orient", "betas", "transl", "focal_length", "camera_center",
    "camera_rotation", "keypoints_2d", "projected_2d", "reprojection_error_px", "person_index",
    "keypoint_format", "model_kind", "prior", "image_size", "config",
)


@dataclass
class ImageDirSummary:
    """What :func:`fit_image_dir` did.

    Attributes:
        fitted: per image: ``{"image", "npz", "png", "people", "skipped_people",
            "reprojection_error_px", "seconds"}``.
        skipped: ``(image name, reason)`` for images not fitted.
    """

    fitted: List[dict] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"fitted": self.fitted, "skipped": [{"image": n, "reason": r} for n, r in self.skipped]}


def _read_image(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    try:
        return mpimg.imread(str(path))
    except Exception as e:  # PIL.UnidentifiedImageError, OSError, ...
        raise ValueError(f"{path}: cannot read the image ({type(e).__name__}: {e})") from e


def fit_image_dir(
    image_dir: Union[str, Path],
    out_dir: Union[str, Path],
    prior: Union[str, PosePrior] = "none",
    prior_checkpoint: Optional[Union[str, Path]] = None,
    body_model: Optional[Union[str, Path, BodyModel]] = None,
    coco_json: Optional[Union[str, Path]] = None,
    config: ImageFitConfig = ImageFitConfig(),
    progress: bool = True,
    render: bool = True,
) -> ImageDirSummary:
    """Fit every image of ``image_dir`` that has keypoints; write ``<name>.npz`` / ``.png``.

    Images without a keypoint file (and not in ``coco_json``), with unreadable keypoints or with
    nobody to fit are skipped with a logged message and listed in ``summary.json``. Each image's
    outputs are written atomically as soon as it is done.

    Raises:
        FileNotFoundError: ``image_dir`` / ``coco_json`` / the body model path does not exist.
        ValueError: no images in ``image_dir``.
    """
    from tqdm.auto import tqdm

    image_dir, out_dir = Path(image_dir), Path(out_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: image folder not found")
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not images:
        raise ValueError(f"{image_dir}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    coco = read_coco_annotations(coco_json) if coco_json is not None else {}
    if coco_json is not None and not any(p.name in coco for p in images):
        raise ValueError(f"{coco_json}: none of its annotated images is in {image_dir}")
    bm = body_model if isinstance(body_model, BodyModel) else get_body_model(body_model, num_betas=max(config.num_betas, 1))
    prior_m = load_prior(prior, prior_checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = ImageDirSummary()
    for img_path in tqdm(images, desc="images", disable=not progress):
        name = img_path.stem
        js = img_path.with_suffix(".json")
        try:
            if js.is_file():
                people = read_keypoint_json(js, img_path.name)
            elif img_path.name in coco:
                people = coco[img_path.name]
            else:
                hint = "" if coco_json is not None else " (pass --coco-json FILE for a COCO annotation file)"
                raise ValueError(f"no keypoint file {js.name} next to the image{hint}")
            image = _read_image(img_path)
            t0 = time.time()
            res = fit_people(people, (image.shape[1], image.shape[0]), bm, prior_m, config)
        except ValueError as e:
            msg = str(e)
            log.warning("skipping %s: %s", img_path.name, msg)
            summary.skipped.append((img_path.name, msg))
            save_json(out_dir / "summary.json", summary.to_dict())
            continue
        npz = save_npz(
            out_dir / f"{name}.npz",
            body_pose=res.body_pose.numpy(), body_quat=R.axis_angle_to_quat(res.body_pose.reshape(-1, 21, 3)).numpy(),
            global_orient=res.global_orient.numpy(), betas=res.betas.numpy(), transl=res.transl.numpy(),
            focal_length=res.focal_length.numpy(), camera_center=res.camera_center.numpy(),
            camera_rotation=np.eye(3, dtype=np.float32), keypoints_2d=res.keypoints_2d.numpy(),
            projected_2d=res.projected_2d.numpy(), reprojection_error_px=res.reprojection_error_px.numpy(),
            person_index=res.person_index.numpy(), person_id=np.asarray([people.ids[i] for i in res.person_index.tolist()]),
            keypoint_format=np.asarray(res.keypoint_format), model_kind=np.asarray(res.model_kind),
            prior=np.asarray(res.prior), image_size=np.asarray([image.shape[1], image.shape[0]]),
            config=np.asarray(json.dumps(config.to_dict())),
        )
        png = render_fit(res, image, out_dir / f"{name}.png") if render else None
        for p, why in res.skipped:
            log.warning("%s: person %s not fitted: %s", img_path.name, people.ids[p], why)
        summary.fitted.append({
            "image": img_path.name, "npz": npz.name, "png": png.name if png else None,
            "people": len(res.person_index),
            "skipped_people": [{"person": people.ids[p], "reason": why} for p, why in res.skipped],
            "reprojection_error_px": [round(float(e), 2) for e in res.reprojection_error_px],
            "seconds": round(time.time() - t0, 2),
        })
        save_json(out_dir / "summary.json", summary.to_dict())
    return summary
