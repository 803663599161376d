"""Fitting every image of a folder (``posendf fit-image``): keypoints and camera per image,
:func:`~posendf_plugin.fitting.image_fit.fit_people`, ``<name>.npz`` + ``<name>.png`` per image
and ``summary.json``.

Reliability rules: outputs never overwrite an input (``--out`` may not be the image folder);
images that share a stem (``a.jpg``, ``a.png``) get distinct output names; each image is
all-or-nothing (its ``.npz`` and ``.png`` appear together, then its summary entry) and an error
on one image is reported and the batch goes on; outputs of an image that is skipped or fails are
removed, so nothing left in ``--out`` contradicts ``summary.json``."""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import rotations as R
from ..body_model import BodyModel, get_body_model
from ..io import atomic_path, save_json, save_npz
from ..priors.base import PosePrior
from .camera import Camera, camera_file_for, read_camera_json
from .image_fit import ImageFitConfig, fit_people
from .keypoint_files import (NoPeopleError, keypoint_candidates, keypoint_file_for, keypoint_folders, read_coco_annotations,
                             read_keypoint_json)
from .params import load_prior
from .render import render_fit

__all__ = ["ImageDirSummary", "NPZ_KEYS", "IMAGE_EXTENSIONS", "SUMMARY_NAME", "output_stems", "fit_image_dir"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: Tuple[str, ...] = (".jpg", ".jpeg", ".png")
SUMMARY_NAME = "summary.json"
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
        fitted: per image: ``{"image", "npz", "png", "keypoints" (the file read), "people",
            "person_ids", "visible_keypoints",
            "skipped_people", "reprojection_error_px", "camera", "seconds"}``
            (``reprojection_error_px``: per fitted person, mean over its keypoints with
            confidence > 0; ``null`` if not finite).
        skipped: ``(image name, reason)`` for images not fitted because of their input
            (no keypoints, unreadable files, nobody with enough keypoints).
        failed: ``(image name, reason)`` for images whose fit or output failed; nothing of
            theirs is left in the output folder.
    """

    fitted: List[dict] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"fitted": self.fitted, "skipped": [{"image": n, "reason": r} for n, r in self.skipped],
                "failed": [{"image": n, "reason": r} for n, r in self.failed]}


def _read_image(path: Path) -> np.ndarray:
    """The image's pixels ``(H, W, 3 or 4)`` uint8 as displayed: turned by its EXIF orientation, as
    OpenPose and OpenCV read it (a phone photo is stored sideways with a tag saying so)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return np.asarray(im if im.mode in ("RGB", "RGBA") else im.convert("RGB"))  # grey, palette, 16-bit
    except Exception as e:  # PIL.UnidentifiedImageError, OSError, ...
        raise ValueError(f"{path}: cannot read the image ({type(e).__name__}: {e})") from e


def _check_against_image(people, camera: Optional[Camera], size: Tuple[int, int], kp_source: str, cam_source: str) -> None:
    """Refuse keypoints or a camera that cannot belong to this ``size = (W, H)`` image: most
    visible keypoints outside it (another resolution, a turned image), all within [0, 1]
    (OpenPose's normalised ``--keypoint_scale``), or a principal point far outside it."""
    W, H = size
    kp = np.asarray(people.keypoints, np.float64)
    vis = kp[..., 2] > 0
    if vis.any():
        x, y = kp[..., 0][vis], kp[..., 1][vis]
        if W > 4 and H > 4 and x.max() <= 1.5 and y.max() <= 1.5 and x.min() >= -0.5 and y.min() >= -0.5:
            raise ValueError(f"{kp_source}: every keypoint lies within [0, 1] of a {W}x{H} image: normalised "
                             "coordinates (OpenPose --keypoint_scale 3/4)? give them in pixels (--keypoint_scale 0)")
        out = (x < -0.1 * W) | (x > 1.1 * W) | (y < -0.1 * H) | (y > 1.1 * H)
        if out.mean() > 0.5:
            raise ValueError(f"{kp_source}: {int(out.sum())} of {len(x)} visible keypoints lie outside the {W}x{H} image "
                             f"(x {x.min():.0f}..{x.max():.0f}, y {y.min():.0f}..{y.max():.0f}): keypoints of another "
                             "resolution or of a turned image? give keypoints in this image's pixels")
    if camera is not None and camera.principal_point is not None:
        cx, cy = camera.principal_point
        if not (-W <= cx <= 2 * W and -H <= cy <= 2 * H):
            raise ValueError(f"{cam_source}: principal point ({cx:g}, {cy:g}) lies far outside the {W}x{H} image; give "
                             "(cx, cy) in this image's pixels (usually near its centre)")


def output_stems(images: Sequence[Path]) -> Dict[Path, str]:
    """A distinct output stem per image: its stem (``a.jpg`` -> ``a``), or its whole file name
    when several images share the stem (``a.jpg`` -> ``a.jpg``, ``a.png`` -> ``a.png``).
    Names are compared case-insensitively (case-insensitive file systems); a remaining clash
    gets ``-2``, ``-3``, ... appended."""
    counts: Dict[str, int] = {}
    for p in images:
        counts[p.stem.lower()] = counts.get(p.stem.lower(), 0) + 1
    out: Dict[Path, str] = {}
    used: set = set()
    for p in images:
        base = p.stem if counts[p.stem.lower()] == 1 else p.name
        stem, k = base, 1
        while stem.lower() in used:
            k += 1
            stem = f"{base}-{k}"
        used.add(stem.lower())
        out[p] = stem
    return out


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _check_outputs(image_dir: Path, out_dir: Path, inputs: Sequence[Path], outputs: Sequence[Path]) -> None:
    """Refuse an output folder whose outputs could overwrite or mix with the inputs."""
    if _same_path(out_dir, image_dir) or out_dir.resolve() == image_dir.resolve():
        raise ValueError(
            f"--out {out_dir} is the image folder: the overlays and .npz files would mix with (and could "
            "overwrite) the input images and keypoints; choose another output folder"
        )
    resolved = {p.resolve() for p in inputs}
    for o in outputs:
        if o.resolve() in resolved or any(_same_path(o, p) for p in inputs if p.name == o.name):
            raise ValueError(f"--out {out_dir}: writing {o.name} would overwrite the input {o}; choose another output folder")


def _check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` and check that files can be written in it (before any work)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir}: exists and is not a folder; give a folder for the outputs")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"--out {out_dir}: cannot write there ({e.strerror or e}); choose a writable folder") from e


def _remove_outputs(paths: Sequence[Path]) -> None:
    """Remove outputs of an earlier run of an image that is now skipped or failed."""
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _finite_or_none(x: float, digits: int = 2) -> Optional[float]:
    return round(float(x), digits) if math.isfinite(float(x)) else None


class BadImageInput(ValueError):
    """An input of one image that cannot be read (image, keypoint or camera file): the batch
    lists the image as failed — the user has a file to fix — and goes on."""


def _image_inputs(img_path: Path, coco: dict, coco_json, camera: Optional[Camera], folders: Sequence[Path]):
    """Keypoints, camera (+ where it came from) and pixels of one image. Raises ValueError when
    there is nothing to fit (no keypoint file, nobody detected: the image is skipped) and
    :class:`BadImageInput` when a file is unreadable (the image failed)."""
    js = keypoint_file_for(img_path, folders)
    in_coco = img_path.name in coco  # a COCO file the user named wins over a keypoint file found beside the image
    if not in_coco and not js.is_file():
        hint = "" if coco_json is not None else " (pass --coco-json FILE for a COCO annotation file)"
        tried = ", ".join(str(p) for p in keypoint_candidates(img_path, folders))
        raise ValueError(f"no keypoint file (tried {tried}){hint}")
    try:
        people = coco[img_path.name] if in_coco else read_keypoint_json(js, img_path.name)
        kp_source = f"{coco_json} ({img_path.name})" if in_coco else str(js)
        cam_file = camera_file_for(img_path)
        if cam_file.is_file():
            camera, source = read_camera_json(cam_file), cam_file.name
        else:
            source = "given" if camera is not None else "default"
        image = _read_image(img_path)
        _check_against_image(people, camera, (image.shape[1], image.shape[0]), kp_source,
                             str(cam_file) if source == cam_file.name else "the camera given")
        return people, camera, source, image, kp_source
    except (NoPeopleError, FileNotFoundError):
        raise
    except ValueError as e:
        raise BadImageInput(str(e)) from e


def fit_image_dir(
    image_dir: Union[str, Path],
    out_dir: Union[str, Path],
    prior: Union[str, PosePrior] = "posendf",
    prior_checkpoint: Optional[Union[str, Path]] = None,
    body_model: Optional[Union[str, Path, BodyModel]] = None,
    coco_json: Optional[Union[str, Path]] = None,
    config: ImageFitConfig = ImageFitConfig(),
    progress: bool = True,
    render: bool = True,
    camera: Optional[Camera] = None,
    keypoint_dir: Optional[Union[str, Path]] = None,
) -> ImageDirSummary:
    """Fit every image of ``image_dir`` that has keypoints; write ``<name>.npz`` / ``.png``.

    Keypoints: ``<stem>.json`` or OpenPose's ``<stem>_keypoints.json`` in ``keypoint_dir``, by
    default next to the image or in a ``keypoints`` folder beside ``image_dir`` (SMPLify-X's
    ``DATA/images`` + ``DATA/keypoints``; :func:`~.keypoint_files.keypoint_folders`), or the
    image's entry in ``coco_json``, which wins where both exist. Keypoints that cannot be this
    image's (mostly outside it, or normalised to [0, 1]) and a principal point far outside it
    fail the image with a message saying so. Images are read as displayed (EXIF orientation).
    Images without keypoints or with nobody to fit are skipped with a logged message and listed
    in ``summary.json``; an image whose image, keypoint or
    camera file cannot be read, or whose fit or rendering fails, is listed as failed and the
    batch goes on. Each image's outputs are
    written together (all-or-nothing) as soon as it is done; ``<name>`` is the image's stem, or
    its file name when images share a stem (:func:`output_stems`).

    Camera per image: ``<image stem>.camera.json`` next to it (:mod:`.camera`), else ``camera``,
    else ``config.focal_length`` and the image centre.

    Raises:
        FileNotFoundError: ``image_dir`` / ``coco_json`` / the body model path does not exist.
        ValueError: no images in ``image_dir``; ``out_dir`` is the image folder, not writable,
            or an output would overwrite an input.
    """
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    image_dir, out_dir = Path(image_dir), Path(out_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: image folder not found")
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not images:
        raise ValueError(f"{image_dir}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    stems = output_stems(images)
    outputs = {p: (out_dir / f"{stems[p]}.npz", out_dir / f"{stems[p]}.png") for p in images}
    inputs = [q for p in images for q in (p, camera_file_for(p))]
    if keypoint_dir is not None and not Path(keypoint_dir).is_dir():
        raise FileNotFoundError(f"{keypoint_dir}: keypoint folder not found")
    folders = keypoint_folders(image_dir, keypoint_dir)
    inputs += [q for p in images for q in keypoint_candidates(p, folders)]
    inputs += [Path(coco_json)] if coco_json is not None else []
    _check_outputs(image_dir, out_dir, inputs, [o for pair in outputs.values() for o in pair] + [out_dir / SUMMARY_NAME])
    coco = read_coco_annotations(coco_json) if coco_json is not None else {}
    if coco_json is not None and not any(p.name in coco for p in images):
        raise ValueError(f"{coco_json}: none of its annotated images is in {image_dir}")
    bm = body_model if isinstance(body_model, BodyModel) else get_body_model(body_model, num_betas=max(config.num_betas, 1))
    prior_m = load_prior(prior, prior_checkpoint, shipped=config.shipped_weights.get(prior) if isinstance(prior, str) else None)
    _check_writable(out_dir)
    summary = ImageDirSummary()

    def give_up(img_path: Path, msg: str, failed: bool) -> None:
        _remove_outputs(outputs[img_path])
        if failed:
            log.error("failed on %s: %s", img_path.name, msg)
            summary.failed.append((img_path.name, msg))
        else:
            log.warning("skipping %s: %s", img_path.name, msg)
            summary.skipped.append((img_path.name, msg))
        save_json(out_dir / SUMMARY_NAME, summary.to_dict())

    # log records (skipped images and people) go through tqdm.write, above the progress bar
    redirect = logging_redirect_tqdm() if progress else contextlib.nullcontext()
    with redirect:
        for img_path in tqdm(images, desc="images", disable=not progress):
            npz_path, png_path = outputs[img_path]
            try:
                people, cam, cam_source, image, kp_source = _image_inputs(img_path, coco, coco_json, camera, folders)
                t0 = time.time()
                res = fit_people(people, (image.shape[1], image.shape[0]), bm, prior_m, config, camera=cam)
            except BadImageInput as e:
                give_up(img_path, str(e), failed=True)
                continue
            except ValueError as e:
                give_up(img_path, str(e), failed=False)
                continue
            except Exception as e:  # noqa: BLE001 — one image's crash must not stop the batch
                log.debug("fit of %s failed", img_path.name, exc_info=True)
                give_up(img_path, f"fitting failed ({type(e).__name__}: {e})", failed=True)
                continue
            try:
                with atomic_path(npz_path) as npz_tmp, (atomic_path(png_path) if render else contextlib.nullcontext()) as png_tmp:
                    save_npz(
                        npz_tmp,
                        body_pose=res.body_pose.numpy(), body_quat=R.axis_angle_to_quat(res.body_pose.reshape(-1, 21, 3)).numpy(),
                        global_orient=res.global_orient.numpy(), betas=res.betas.numpy(), transl=res.transl.numpy(),
                        focal_length=res.focal_length.numpy(), camera_center=res.camera_center.numpy(),
                        camera_rotation=np.eye(3, dtype=np.float32), keypoints_2d=res.keypoints_2d.numpy(),
                        projected_2d=res.projected_2d.numpy(), reprojection_error_px=res.reprojection_error_px.numpy(),
                        person_index=res.person_index.numpy(),
                        person_id=np.asarray([people.ids[i] for i in res.person_index.tolist()]),
                        keypoint_format=np.asarray(res.keypoint_format), model_kind=np.asarray(res.model_kind),
                        prior=np.asarray(res.prior), image_size=np.asarray([image.shape[1], image.shape[0]]),
                        config=np.asarray(json.dumps(config.to_dict())),
                    )
                    if render:
                        render_fit(res, image, png_tmp)
            except Exception as e:  # noqa: BLE001 — e.g. a rendering error: this image only
                log.debug("writing the outputs of %s failed", img_path.name, exc_info=True)
                give_up(img_path, f"writing the outputs failed ({type(e).__name__}: {e})", failed=True)
                continue
            if not render:
                _remove_outputs([png_path])  # an overlay of an earlier run would not match this fit
            for p, why in res.skipped:
                log.warning("%s: person %s not fitted: %s", img_path.name, people.ids[p], why)
            ids = [people.ids[i] for i in res.person_index.tolist()]
            summary.fitted.append({
                "image": img_path.name, "npz": npz_path.name, "png": png_path.name if render else None,
                "keypoints": kp_source, "people": len(ids), "person_ids": ids,
                "visible_keypoints": [int(v) for v in (res.keypoints_2d[..., 2] > 0).sum(-1)],
                "skipped_people": [{"person": people.ids[p], "visible_keypoints": int((people.keypoints[p, :, 2] > 0).sum()),
                                    "reason": why} for p, why in res.skipped],
                "reprojection_error_px": [_finite_or_none(e) for e in res.reprojection_error_px],
                "camera": {"focal_length": [round(float(v), 3) for v in res.focal_length],
                           "principal_point": [round(float(v), 3) for v in res.camera_center], "source": cam_source},
                "seconds": round(time.time() - t0, 2),
            })
            save_json(out_dir / SUMMARY_NAME, summary.to_dict())
    ours = {o.name for pair in outputs.values() for o in pair} | {SUMMARY_NAME}
    stale = sorted(p.name for p in out_dir.iterdir() if p.suffix in (".npz", ".png") and p.name not in ours)
    if stale:  # outputs of an earlier run's images that are not in this folder now: not ours to delete
        log.warning("%s holds %d fit output(s) of images not in this run (%s%s); summary.json lists this run only: "
                    "remove them or use a fresh --out", out_dir, len(stale), ", ".join(stale[:5]), " ..." if len(stale) > 5 else "")
    return summary
