"""SMPLify-style 3D body fitting to 2D keypoints (``posendf fit-image``).

Input: a folder of ``<name>.jpg`` (or ``.jpeg`` / ``.png``) images, each with ``<name>.json``
next to it — OpenPose output (``people[i].pose_keypoints_2d``: 25 x (x, y, confidence) for
BODY_25; 17 x 3 values are read as COCO-17) or a per-image COCO-17 annotation list — or one
COCO keypoint annotation file (``images`` + ``annotations``, visibility ``v > 0`` counts as
confidence 1) given with ``coco_json``.

Fitting, for all people of an image at once (:func:`fit_people`):

1. **Camera.** Pinhole camera with rotation identity: the intrinsics the user knows
   (:class:`~posendf_plugin.fitting.camera.Camera`, ``fit_people(camera=...)``; in a folder
   ``<name>.camera.json`` next to the image), else focal length 5000 px as in SMPLify (or the
   image diagonal, ``focal_length: null``) with the principal point at the image centre.
   Each person's depth is initialised from the torso: ``z = f * L3d / L2d`` with ``L`` the mean
   shoulder-to-hip length of the rest body (3D) and of the keypoints (2D).
2. **Orientation.** Two hypotheses per person (facing the camera, facing away); a camera stage
   fits root orientation and translation to the torso keypoints for both, and the better one is
   kept (SMPLify does the same).
3. **Staged fitting** of body pose, shape, root orientation and translation with Adam, starting
   from the mean pose of the embedded training poses (``init_pose``; SMPLify also starts from
   its prior's mean — from the T-pose, arms and legs land in the wrong depth branch far more
   often): robust (Geman-McClure) reprojection error + ``w_prior * prior`` + ``w_shape * ‖β‖²``
   (+ optional SMPLify elbow/knee angle and L2 pose terms); the weights decrease stage by stage
   (:class:`ImageFitConfig`, ``configs/fit_image.yaml``). Residuals are measured in percent of
   the person's keypoint bounding-box size, so the weights do not depend on image resolution.

The prior is plugged in by name (``none``, ``posendf``, ``nrdf``, ``vposer``, ``gmm``); VPoser is
used in latent space by default (optimise ``z``, decode, penalise ``‖z‖²``). Keypoints with
confidence 0 are ignored, so partly visible people still fit.

Output per image: ``<name>.npz`` (see :data:`NPZ_KEYS`) and ``<name>.png`` (the fitted meshes
over the image, plus a side view), written together; ``summary.json`` lists fitted, skipped and
failed inputs and is rewritten after every image, so an interrupted batch keeps what it wrote
(rules in :mod:`.image_batch`).

This module re-exports the public names of :mod:`.keypoint_files` (readers), :mod:`.camera`,
:mod:`.image_fit` (:func:`fit_people`), :mod:`.render` and :mod:`.image_batch`.
"""
from __future__ import annotations

from .camera import Camera, read_camera_json
from .image_batch import IMAGE_EXTENSIONS, NPZ_KEYS, ImageDirSummary, fit_image_dir
from .image_fit import ImageFitConfig, ImageFitResult, ImageStage, fit_people, load_image_fit_config
from .keypoint_files import PersonKeypoints, read_coco_annotations, read_keypoint_json
from .render import render_fit

__all__ = [
    "Camera",
    "ImageStage",
    "ImageFitConfig",
    "PersonKeypoints",
    "ImageFitResult",
    "ImageDirSummary",
    "NPZ_KEYS",
    "IMAGE_EXTENSIONS",
    "load_image_fit_config",
    "read_keypoint_json",
    "read_coco_annotations",
    "read_camera_json",
    "fit_people",
    "fit_image_dir",
    "render_fit",
]
