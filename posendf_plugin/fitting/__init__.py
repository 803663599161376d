"""Fitting with a pose prior: SMPLify-style image fitting, HuMoR-style motion denoising and
partial-pose completion. Commands: ``posendf fit-image``, ``posendf denoise``, ``posendf complete``.

Submodules: :mod:`.losses` (pure loss terms and metrics), :mod:`.image` (re-exports of
:mod:`.keypoint_files`, :mod:`.camera`, :mod:`.image_fit`, :mod:`.render`, :mod:`.image_batch`), :mod:`.denoise`,
:mod:`.completion`, :mod:`.knn` (the kNN start of completion), :mod:`.params` (prior loading, body-pose variables, configs).
"""
from .completion import CompletionEvaluation, CompletionResult, complete_poses, evaluate_completion, parse_mask
from .denoise import DenoiseConfig, DenoiseResult, DenoiseStage, denoise_motion, denoise_window, load_denoise_config
from .knn import knn_fill
from .image import Camera, ImageFitConfig, ImageFitResult, ImageStage, fit_image_dir, fit_people, load_image_fit_config
from .params import BodyPoseVariable, load_prior

__all__ = [
    "CompletionEvaluation",
    "CompletionResult",
    "complete_poses",
    "evaluate_completion",
    "parse_mask",
    "knn_fill",
    "DenoiseConfig",
    "DenoiseResult",
    "DenoiseStage",
    "denoise_motion",
    "denoise_window",
    "load_denoise_config",
    "Camera",
    "ImageFitConfig",
    "ImageFitResult",
    "ImageStage",
    "fit_image_dir",
    "fit_people",
    "load_image_fit_config",
    "BodyPoseVariable",
    "load_prior",
]
