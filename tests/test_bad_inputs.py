"""The bad-input suite: every CLI command against a generated corpus of bad inputs.

Each case runs ``posendf_plugin.cli.main`` in-process and asserts what the project guide asks of
bad input: exit status 2, exactly one line on stderr that names the offending file (or option),
no traceback, no code run from a file (a malicious pickle would create a marker file), nothing
written outside ``--out``, and outputs of an earlier run left intact.

The corpus (built once per module): truncated, garbled, empty and oversized ``.npz`` / ``.pt``
files; NaN / Inf / string / object / scalar / empty arrays; malicious pickles for every loader
(pose files, checkpoints, SMPL / SMPL+H / SMPL-X model files, GMM / VPoser weights, YAML tags);
bad configs and manifests; and output paths that are files, folders, inputs or unwritable.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Sequence

import numpy as np
import pytest
import torch

from posendf_plugin.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MARKER = "pwned.txt"  # what a malicious pickle in the corpus would create in the corpus folder


class _Evil:
    """Pickles to ``open(<marker>, "w")``: unpickling it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ---------------------------------------------------------------------------------------------
# the corpus
# ---------------------------------------------------------------------------------------------


def _motion(n: int = 64, seed: int = 0, **over) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = dict(pose_body=rng.normal(0, 0.2, (n, 63)).astype("f4"), root_orient=np.zeros((n, 3), "f4"),
             trans=np.zeros((n, 3), "f4"), betas=np.zeros(16, "f4"), mocap_framerate=np.array(30.0))
    d.update(over)
    return d


def _huge_npz(path: Path, key: str) -> None:
    """An .npz whose array header claims 10^13 x 63 floats (2.5 PB, beyond any address space)
    over 64 bytes of data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**13, 63)})
    buf.write(b"\0" * 64)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{key}.npy", buf.getvalue())


def _model_arrays(V: int = 30, J: int = 24) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return dict(v_template=rng.normal(size=(V, 3)), shapedirs=np.zeros((V, 3, 10)),
                posedirs=np.zeros((V, 3, (J - 1) * 9)), J_regressor=np.full((J, V), 1.0 / V),
                weights=np.full((V, J), 1.0 / J), kintree_table=np.stack([np.arange(J) - 1, np.arange(J)]),
                f=np.zeros((10, 3), np.int64))


def _build_corpus(c: Path) -> None:
    marker = c / MARKER
    evil = _Evil(marker)
    rng = np.random.default_rng(0)
    np.savez(c / "motion.npz", **_motion())
    np.savez(c / "poses.npz", quat=np.tile(np.array([1.0, 0, 0, 0], "f4"), (4, 21, 1)))
    good = (c / "motion.npz").read_bytes()
    (c / "truncated.npz").write_bytes(good[: len(good) // 2])
    (c / "garbled.npz").write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    (c / "empty.npz").write_bytes(b"")
    (c / "text.npz").write_text("pose_body: 1 2 3\n")
    np.save(c / "bare.npy", np.zeros((4, 63), "f4"))
    os.replace(c / "bare.npy", c / "bare.npz")
    _huge_npz(c / "huge.npz", "pose_body")
    np.savez(c / "nan_pose.npz", **_motion(pose_body=np.full((64, 63), np.nan, "f4")))
    np.savez(c / "inf_trans.npz", **_motion(trans=np.full((64, 3), np.inf, "f4")))
    np.savez(c / "nan_betas.npz", **_motion(betas=np.full(16, np.nan, "f4")))
    np.savez(c / "nan_fps.npz", **_motion(mocap_framerate=np.array(np.nan)))
    np.savez(c / "str_fps.npz", **_motion(mocap_framerate=np.array("thirty")))
    np.savez(c / "neg_fps.npz", **_motion(mocap_framerate=np.array(-30.0)))
    np.savez(c / "scalar_pose.npz", pose_body=np.float32(1.0))
    np.savez(c / "str_pose.npz", pose_body=np.array(["a", "b"]))
    np.savez(c / "object_pose.npz", pose_body=np.array([evil, 1], dtype=object))
    np.savez(c / "empty_set.npz", quat=np.zeros((0, 21, 4), "f4"))
    np.savez(c / "empty_motion.npz", **_motion(n=0))
    np.savez(c / "wrong_width.npz", pose_body=np.zeros((5, 50), "f4"))
    np.savez(c / "no_keys.npz", foo=np.zeros(3))
    np.savez(c / "frames_differ.npz", **_motion(trans=np.zeros((10, 3), "f4")))
    np.savez(c / "nan_quat.npz", quat=np.full((3, 21, 4), np.nan, "f4"))
    np.savez(c / "huge_angle.npz", **_motion(pose_body=np.full((64, 63), 1e20, "f4")))  # finite, no rotation
    np.savez(c / "short_motion.npz", **_motion(n=5))
    # readable poses in the wrong units / order: degrees, and (x, y, z, w) quaternions
    np.savez(c / "degrees.npz", **_motion(pose_body=np.rad2deg(rng.normal(0, 0.4, (64, 63))).astype("f4")))
    small = np.concatenate([np.ones((64, 21, 1)), rng.normal(0, 0.1, (64, 21, 3))], -1)
    np.savez(c / "xyzw.npz", quat=(small / np.linalg.norm(small, axis=-1, keepdims=True))[..., [1, 2, 3, 0]].astype("f4"))
    # checkpoints
    torch.save({"model_state_dict": evil, "config": {}}, c / "evil.pt")
    (c / "garbled.pt").write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    torch.save({"a": torch.zeros(1000)}, c / "full.pt")
    full = (c / "full.pt").read_bytes()
    (c / "truncated.pt").write_bytes(full[: len(full) // 2])
    (c / "empty.pt").write_bytes(b"")
    np.savez(c / "evil_gmm.npz", means=np.array([evil], dtype=object))
    # body-model folders: malicious pickles for SMPL, SMPL+H and SMPL-X (.pkl and .npz), and
    # malformed files
    arrays = _model_arrays()
    for kind, fname, how in (("smpl", "SMPL_NEUTRAL.pkl", "pkl"), ("smplh", "SMPLH_NEUTRAL.pkl", "pkl"),
                             ("smplh", "SMPLH_NEUTRAL.npz", "npz"), ("smplx", "SMPLX_NEUTRAL.pkl", "pkl"),
                             ("smplx", "SMPLX_NEUTRAL.npz", "npz")):
        d = c / f"bm_evil_{kind}_{how}" / kind
        d.mkdir(parents=True)
        if how == "pkl":
            (d / fname).write_bytes(pickle.dumps(dict(arrays, v_template=evil), protocol=2))
        else:
            np.savez(d / fname, **dict(arrays, v_template=np.array([evil], dtype=object)))
    d = c / "bm_smplh_missing" / "smplh"
    d.mkdir(parents=True)
    np.savez(d / "SMPLH_NEUTRAL.npz", v_template=np.zeros((5, 3)))
    d = c / "bm_smplh_badshape" / "smplh"
    d.mkdir(parents=True)
    np.savez(d / "SMPLH_NEUTRAL.npz", **dict(arrays, J_regressor=np.zeros(3), kintree_table=np.zeros(2)))
    d = c / "bm_smplx_garbled" / "smplx"
    d.mkdir(parents=True)
    (d / "SMPLX_NEUTRAL.npz").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    # configs
    (c / "evil.yaml").write_text(f"model: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
    (c / "garbled.yaml").write_text("model: [unclosed\n  hidden: {\n")
    (c / "hidden_int.yaml").write_text("model:\n  hidden: 32\n")
    (c / "unknown_key.yaml").write_text("training:\n  epochz: 3\n")
    (c / "list.yaml").write_text("- 1\n- 2\n")
    # prepared training data with manifests pointing outside their folder
    for name, chunk in (("data_dotdot", "../motion.npz"), ("data_abs", str(c / "poses.npz"))):
        d = c / name
        d.mkdir()
        (d / "manifest.json").write_text(json.dumps({"status": "complete", "chunks": [chunk]}))
    d = c / "data_garbled"
    d.mkdir()
    (d / "chunk_00000.npz").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    (c / "a_file").write_text("not a folder\n")
    (c / "alias.npz").symlink_to(c / "poses.npz")  # an output path that is the input under another name
    # resumable runs whose saved state is a malicious pickle, and a config fine-tuning from one
    d = c / "data_ok"
    d.mkdir()
    q = rng.normal(size=(64, 21, 4)).astype("f4")
    np.savez(d / "chunk_00000.npz", quat=q / np.linalg.norm(q, axis=-1, keepdims=True), dist=np.r_[np.zeros(16), np.abs(rng.normal(size=48))].astype("f4"))
    from posendf_plugin.config import load_config
    from posendf_plugin.model import PoseNDFNet

    tiny_cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml")
    torch.save({"config": tiny_cfg.to_dict(), "model_state_dict": PoseNDFNet(tiny_cfg.model).state_dict()}, c / "model_ok.pt")
    (c / "run_evil" / "checkpoints").mkdir(parents=True)
    torch.save({"format": 1, "optimizer_state_dict": evil}, c / "run_evil" / "checkpoints" / "last.pt")
    torch.save({"state_dict": evil}, c / "vposer.pt.partial")
    tiny = (Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml").read_text()
    (c / "init_evil.yaml").write_text(tiny.replace("  prior: posendf\n", f"  prior: posendf\n  init_from: '{c / 'evil.pt'}'\n", 1))
    for f in ("evil.pt", "missing.pt"):  # online hard negatives labelled by a teacher file that must not run code
        (c / f"teacher_{f[:-3]}.yaml").write_text(tiny.replace(
            "  grad_clip: 0.0\n", f"  grad_clip: 0.0\n  projected_batch_size: 4\n  teacher: '{c / f}'\n", 1))
    (c / "garbled.json").write_text('{"images": [')
    (c / "list.json").write_text("[1, 2, 3]")
    (c / "coco_bad.json").write_text('{"images": [1, "a"], "annotations": [3, null]}')
    (c / "garbled.bvh").write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    (c / "empty.bvh").write_bytes(b"")
    (c / "still.bvh").write_text("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0 0\n  CHANNELS 3 Zrotation Xrotation Yrotation\n"
                                 "  End Site\n  {\n    OFFSET 0 10 0\n  }\n}\nMOTION\nFrames: 2\nFrame Time: 0.033\n0 0 0\n0 0 0\n")
    (c / "images").mkdir()
    from PIL import Image
    Image.new("RGB", (64, 48)).save(c / "images" / "a.png")
    (c / "empty_dir").mkdir()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    c = tmp_path_factory.mktemp("corpus")
    _build_corpus(c)
    return c


# ---------------------------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------------------------


class Case(NamedTuple):
    id: str
    argv: Callable[[Path, Path], List[str]]  # (corpus folder, run folder) -> argv
    names: Sequence[str]  # the error line names one of these (file or option)


def _c(id_: str, argv: Callable[[Path, Path], List[str]], *names: str) -> Case:
    return Case(id_, argv, names)


_BAD_POSE_FILES = ("truncated", "garbled", "empty", "text", "bare", "huge", "nan_pose", "inf_trans",
                   "nan_betas", "nan_fps", "str_fps", "neg_fps", "scalar_pose", "str_pose",
                   "object_pose", "empty_set", "empty_motion", "wrong_width", "no_keys",
                   "frames_differ", "nan_quat", "huge_angle", "degrees", "xyzw", "missing")
_BAD_SET_FILES = ("truncated", "garbled", "empty", "huge", "nan_pose", "scalar_pose", "str_pose",
                  "object_pose", "empty_set", "wrong_width", "no_keys", "nan_quat", "huge_angle", "degrees", "xyzw")
_BAD_CHECKPOINTS = ("evil.pt", "garbled.pt", "truncated.pt", "empty.pt", "garbled.npz", "no_keys.npz", "missing.pt")
_BAD_BODY_MODELS = ("bm_evil_smpl_pkl", "bm_evil_smplh_pkl", "bm_evil_smplh_npz", "bm_evil_smplx_pkl",
                    "bm_evil_smplx_npz", "bm_smplh_missing", "bm_smplh_badshape", "bm_smplx_garbled",
                    "empty_dir")
_QUIET = ["--quiet"]

CASES: List[Case] = []
for f in _BAD_POSE_FILES:
    CASES.append(_c(f"project-poses-{f}", lambda c, r, f=f: ["project", "--poses", str(c / f"{f}.npz"), "--out", str(r / "out.npz")], f"{f}.npz"))
for f in _BAD_SET_FILES:
    CASES.append(_c(f"data-prepare-poses-{f}", lambda c, r, f=f: ["data", "prepare", "--poses", str(c / f"{f}.npz"), "--out", str(r / "outdir"), "--quiet"], f"{f}.npz"))
    CASES.append(_c(f"complete-poses-{f}", lambda c, r, f=f: ["complete", "--poses", str(c / f"{f}.npz"), "--mask", "arms", "--out", str(r / "out.npz"), *_QUIET], f"{f}.npz"))
    CASES.append(_c(f"complete-reference-{f}", lambda c, r, f=f: ["complete", "--poses", str(c / "poses.npz"), "--mask", "arms", "--reference", str(c / f"{f}.npz"), "--out", str(r / "out.npz"), *_QUIET], f"{f}.npz"))
    CASES.append(_c(f"sample-around-{f}", lambda c, r, f=f: ["sample", "--n", "2", "--around", str(c / f"{f}.npz"), "--out", str(r / "outdir")], f"{f}.npz"))
    CASES.append(_c(f"sample-reference-{f}", lambda c, r, f=f: ["sample", "--n", "2", "--reference", str(c / f"{f}.npz"), "--out", str(r / "outdir")], f"{f}.npz"))
    CASES.append(_c(f"interpolate-start-{f}", lambda c, r, f=f: ["interpolate", "--start", str(c / f"{f}.npz"), "--end", str(c / "poses.npz"), "--out", str(r / "outdir")], f"{f}.npz"))
    CASES.append(_c(f"baseline-gmm-poses-{f}", lambda c, r, f=f: ["baseline", "train", "gmm", "--poses", str(c / f"{f}.npz"), "--out", str(r / "out.npz")], f"{f}.npz"))
for f in ("nan_pose", "inf_trans", "nan_betas", "nan_fps", "str_fps", "neg_fps", "scalar_pose", "object_pose",
          "empty_motion", "frames_differ", "short_motion", "garbled", "huge", "huge_angle", "degrees"):
    CASES.append(_c(f"denoise-motion-{f}", lambda c, r, f=f: ["denoise", "--motion", str(c / f"{f}.npz"), "--out", str(r / "outdir"), *_QUIET], f"{f}.npz"))
for f in _BAD_CHECKPOINTS:
    CASES.append(_c(f"project-checkpoint-{f}", lambda c, r, f=f: ["project", "--poses", str(c / "poses.npz"), "--checkpoint", str(c / f), "--out", str(r / "out.npz")], f))
    CASES.append(_c(f"sample-checkpoint-{f}", lambda c, r, f=f: ["sample", "--n", "2", "--checkpoint", str(c / f), "--out", str(r / "outdir")], f))
    CASES.append(_c(f"ensemble-{f}", lambda c, r, f=f: ["ensemble", str(c / f), str(c / f), "--out", str(r / "out.pt")], f))
    CASES.append(_c(f"complete-vposer-{f}", lambda c, r, f=f: ["complete", "--poses", str(c / "poses.npz"), "--mask", "arms", "--prior", "vposer", "--prior-checkpoint", str(c / f), "--out", str(r / "out.npz"), *_QUIET], f))
for f in ("evil_gmm.npz", "garbled.npz", "truncated.npz", "no_keys.npz"):
    CASES.append(_c(f"complete-gmm-{f}", lambda c, r, f=f: ["complete", "--poses", str(c / "poses.npz"), "--mask", "arms", "--prior", "gmm", "--prior-checkpoint", str(c / f), "--out", str(r / "out.npz"), *_QUIET], f))
for d in _BAD_BODY_MODELS:
    CASES.append(_c(f"denoise-body-model-{d}", lambda c, r, d=d: ["denoise", "--motion", str(c / "motion.npz"), "--body-model", str(c / d), "--out", str(r / "outdir"), *_QUIET], d))
for f in ("evil", "garbled", "hidden_int", "unknown_key", "list", "missing"):
    CASES.append(_c(f"train-config-{f}", lambda c, r, f=f: ["train", "--config", str(c / f"{f}.yaml"), "--out", str(r / "outdir"), "--no-progress"], f"{f}.yaml"))
    CASES.append(_c(f"denoise-config-{f}", lambda c, r, f=f: ["denoise", "--motion", str(c / "motion.npz"), "--config", str(c / f"{f}.yaml"), "--out", str(r / "outdir"), *_QUIET], f"{f}.yaml"))
    CASES.append(_c(f"baseline-config-{f}", lambda c, r, f=f: ["baseline", "train", "gmm", "--poses", str(c / "poses.npz"), "--config", str(c / f"{f}.yaml"), "--out", str(r / "out.npz")], f"{f}.yaml"))
CASES += [
    _c("train-resume-evil-checkpoint", lambda c, r: ["train", "--config", "configs/tiny.yaml", "--data", str(c / "data_ok"), "--out", str(c / "run_evil"), "--resume", "--no-progress"], "last.pt"),
    _c("train-teacher-evil", lambda c, r: ["train", "--config", str(c / "teacher_evil.yaml"), "--data", str(c / "data_ok"), "--out", str(r / "outdir"), "--no-progress"], "evil.pt"),
    _c("train-teacher-missing", lambda c, r: ["train", "--config", str(c / "teacher_missing.yaml"), "--data", str(c / "data_ok"), "--out", str(r / "outdir"), "--no-progress"], "missing.pt"),
    _c("train-init-from-evil", lambda c, r: ["train", "--config", str(c / "init_evil.yaml"), "--data", str(c / "data_ok"), "--out", str(r / "outdir"), "--no-progress"], "evil.pt"),
    _c("baseline-vposer-resume-evil", lambda c, r: ["baseline", "train", "vposer", "--poses", str(c / "motion.npz"), "--out", str(c / "vposer.pt"), "--resume"], "vposer.pt.partial"),
]
for f in _BAD_CHECKPOINTS:
    CASES.append(_c(f"relabel-teacher-{f}", lambda c, r, f=f: ["relabel", "--teacher", str(c / f), "--data", str(c / "data_ok"), "--out", str(r / "outdir"), "--no-progress"], f))
for d in ("data_dotdot", "data_abs", "data_garbled", "empty_dir", "a_file"):
    CASES.append(_c(f"relabel-data-{d}", lambda c, r, d=d: ["relabel", "--teacher", str(c / "model_ok.pt"), "--data", str(c / d), "--out", str(r / "outdir"), "--no-progress"], d))
CASES.append(_c("relabel-out-holds-chunks", lambda c, r: ["relabel", "--teacher", str(c / "model_ok.pt"), "--data", str(c / "data_ok"), "--out", str(c / "data_garbled"), "--no-progress"], "data_garbled"))
CASES.append(_c("relabel-out-is-data", lambda c, r: ["relabel", "--teacher", str(c / "model_ok.pt"), "--data", str(c / "data_ok"), "--out", str(c / "data_ok"), "--no-progress"], "data_ok"))
for d in ("data_dotdot", "data_abs", "data_garbled", "empty_dir"):
    CASES.append(_c(f"train-data-{d}", lambda c, r, d=d: ["train", "--config", "configs/tiny.yaml", "--data", str(c / d), "--out", str(r / "outdir"), "--no-progress"], d))
# a folder where a file is expected, a binary file where text is expected
CASES += [
    _c("project-poses-folder", lambda c, r: ["project", "--poses", str(c / "empty_dir"), "--out", str(r / "out.npz")], "empty_dir"),
    _c("project-checkpoint-folder", lambda c, r: ["project", "--poses", str(c / "poses.npz"), "--checkpoint", str(c / "empty_dir"), "--out", str(r / "out.npz")], "empty_dir"),
    _c("train-config-folder", lambda c, r: ["train", "--config", str(c / "empty_dir"), "--out", str(r / "outdir"), "--no-progress"], "empty_dir"),
    _c("train-config-binary", lambda c, r: ["train", "--config", str(c / "garbled.pt"), "--out", str(r / "outdir"), "--no-progress"], "garbled.pt"),
    _c("denoise-config-folder", lambda c, r: ["denoise", "--motion", str(c / "motion.npz"), "--config", str(c / "empty_dir"), "--out", str(r / "outdir"), *_QUIET], "empty_dir"),
    _c("complete-poses-folder-without-npz", lambda c, r: ["complete", "--poses", str(c / "empty_dir"), "--mask", "arms", "--out", str(r / "out.npz"), *_QUIET], "empty_dir"),
    _c("interpolate-end-object_pose", lambda c, r: ["interpolate", "--start", str(c / "poses.npz"), "--end", str(c / "object_pose.npz"), "--out", str(r / "outdir")], "object_pose.npz"),
]
# a bad input with an --out that does not exist yet: the failed run must not create it
CASES += [
    _c("project-new-out", lambda c, r: ["project", "--poses", str(c / "garbled.npz"), "--out", str(r / "new" / "x.npz")], "garbled.npz"),
    _c("complete-new-out", lambda c, r: ["complete", "--poses", str(c / "garbled.npz"), "--mask", "arms", "--out", str(r / "new" / "x.npz"), *_QUIET], "garbled.npz"),
    _c("sample-new-out", lambda c, r: ["sample", "--n", "2", "--around", str(c / "garbled.npz"), "--out", str(r / "new" / "s")], "garbled.npz"),
    _c("interpolate-new-out", lambda c, r: ["interpolate", "--start", str(c / "garbled.npz"), "--end", str(c / "poses.npz"), "--out", str(r / "new" / "i")], "garbled.npz"),
    _c("denoise-new-out", lambda c, r: ["denoise", "--motion", str(c / "garbled.npz"), "--out", str(r / "new" / "d"), *_QUIET], "garbled.npz"),
    _c("train-new-out", lambda c, r: ["train", "--config", str(c / "hidden_int.yaml"), "--out", str(r / "new" / "t"), "--no-progress"], "hidden_int.yaml"),
    _c("baseline-new-out", lambda c, r: ["baseline", "train", "gmm", "--poses", str(c / "garbled.npz"), "--out", str(r / "new" / "g.npz")], "garbled.npz"),
    _c("data-amass-new-out", lambda c, r: ["data", "amass", "--amass-dir", str(c / "empty_dir"), "--out", str(r / "new" / "a"), "--quiet"], "empty_dir"),
    _c("data-prepare-new-out", lambda c, r: ["data", "prepare", "--poses", str(c / "garbled.npz"), "--out", str(r / "new" / "p"), "--quiet"], "garbled.npz"),
]
# numbers: NaN / Inf / out of range / more than fits in memory
CASES += [
    _c("sample-sigma-without-around", lambda c, r: ["sample", "--n", "2", "--sigma", "0.3", "--out", str(r / "outdir")], "--sigma"),
    _c("sample-near-deg-negative", lambda c, r: ["sample", "--n", "2", "--near-deg", "-5", "--out", str(r / "outdir")], "--near-deg"),
    _c("sample-seed-too-large", lambda c, r: ["sample", "--n", "2", "--seed", "99999999999999999999", "--out", str(r / "outdir")], "--seed"),
    _c("interpolate-steps-too-many", lambda c, r: ["interpolate", "--start", str(c / "poses.npz"), "--end", str(c / "poses.npz"), "--steps", "100000", "--out", str(r / "outdir")], "--steps"),
    _c("sample-sigma-nan", lambda c, r: ["sample", "--n", "2", "--around", str(c / "poses.npz"), "--sigma", "nan", "--out", str(r / "outdir")], "--sigma"),
    _c("sample-near-deg-inf", lambda c, r: ["sample", "--n", "2", "--near-deg", "inf", "--out", str(r / "outdir")], "--near-deg"),
    # 10^12 samples need 336 TB: more than any 64-bit address space, so the allocation fails
    # at once everywhere (a smaller "huge" could succeed lazily under memory overcommit)
    _c("sample-n-huge", lambda c, r: ["sample", "--n", str(10**12), "--out", str(r / "outdir")], "not enough memory"),
    _c("project-device-cuda-without-cuda", lambda c, r: ["project", "--poses", str(c / "poses.npz"), "--device", "cuda" if not torch.cuda.is_available() else "cuda:99", "--out", str(r / "out.npz")], "--device"),
    _c("sample-device-gpu", lambda c, r: ["sample", "--n", "2", "--device", "gpu", "--out", str(r / "outdir")], "--device"),
    _c("interpolate-device-gpu", lambda c, r: ["interpolate", "--start", str(c / "poses.npz"), "--end", str(c / "poses.npz"), "--device", "gpu", "--out", str(r / "outdir")], "--device"),
    _c("project-step-size-nan", lambda c, r: ["project", "--poses", str(c / "poses.npz"), "--step-size", "nan", "--out", str(r / "out.npz")], "--step-size"),
    _c("complete-lr-inf", lambda c, r: ["complete", "--poses", str(c / "poses.npz"), "--mask", "arms", "--lr", "inf", "--out", str(r / "out.npz"), *_QUIET], "--lr"),
    _c("complete-knn-zero", lambda c, r: ["complete", "--poses", str(c / "poses.npz"), "--mask", "arms", "--knn", "0", "--out", str(r / "out.npz"), *_QUIET], "--knn"),
    _c("complete-out-is-reference", lambda c, r: ["complete", "--poses", str(c / "poses.npz"), "--mask", "arms", "--reference", str(r / "out.npz"), "--out", str(r / "out.npz"), *_QUIET], "out.npz"),
    _c("complete-knn-without-knn-init", lambda c, r: ["complete", "--poses", str(c / "poses.npz"), "--mask", "arms", "--init", "mean", "--knn", "5", "--out", str(r / "out.npz"), *_QUIET], "--knn"),
    _c("complete-reference-without-knn", lambda c, r: ["complete", "--poses", str(c / "poses.npz"), "--mask", "arms", "--init", "mean", "--reference", str(c / "poses.npz"), "--out", str(r / "out.npz"), *_QUIET], "--reference"),
    _c("complete-max-poses-negative", lambda c, r: ["complete", "--poses", str(c / "poses.npz"), "--mask", "arms", "--max-poses", "-3", "--out", str(r / "out.npz"), *_QUIET], "--max-poses"),
    _c("denoise-noise-nan", lambda c, r: ["denoise", "--motion", str(c / "motion.npz"), "--noise-mm", "nan", "--out", str(r / "outdir"), *_QUIET], "--noise-mm"),
]
# outputs: an existing file where a folder is expected, a folder where a file is expected,
# a path under a file, the input itself
CASES += [
    _c("project-out-is-folder", lambda c, r: ["project", "--poses", str(c / "poses.npz"), "--out", str(r / "outdir")], "outdir"),
    _c("project-out-under-file", lambda c, r: ["project", "--poses", str(c / "poses.npz"), "--out", str(r / "out.npz" / "x.npz")], "out.npz"),
    _c("project-out-is-input", lambda c, r: ["project", "--poses", str(r / "out.npz"), "--out", str(r / "out.npz")], "out.npz"),
    _c("project-out-is-symlink-to-input", lambda c, r: ["project", "--poses", str(c / "poses.npz"), "--out", str(c / "alias.npz")], "alias.npz"),
    _c("complete-out-is-symlink-to-input", lambda c, r: ["complete", "--poses", str(c / "poses.npz"), "--mask", "arms", "--out", str(c / "alias.npz"), *_QUIET], "alias.npz"),
    _c("complete-out-is-folder", lambda c, r: ["complete", "--poses", str(c / "poses.npz"), "--mask", "arms", "--out", str(r / "outdir"), *_QUIET], "outdir"),
    _c("complete-out-is-input", lambda c, r: ["complete", "--poses", str(r / "out.npz"), "--mask", "arms", "--out", str(r / "out.npz"), *_QUIET], "out.npz"),
    _c("complete-bad-mask", lambda c, r: ["complete", "--poses", str(c / "poses.npz"), "--mask", "tail", "--out", str(r / "out.npz"), *_QUIET], "tail"),
    _c("sample-out-is-file", lambda c, r: ["sample", "--n", "2", "--out", str(r / "out.npz")], "out.npz"),
    _c("sample-n-zero", lambda c, r: ["sample", "--n", "0", "--out", str(r / "outdir")], "--n"),
    _c("interpolate-projection-option-without-smoothness-0", lambda c, r: ["interpolate", "--start", str(c / "poses.npz"), "--end", str(c / "poses.npz"), "--tol", "0.01", "--out", str(r / "outdir")], "--tol"),
    _c("interpolate-out-is-file", lambda c, r: ["interpolate", "--start", str(c / "poses.npz"), "--end", str(c / "poses.npz"), "--out", str(r / "out.npz")], "out.npz"),
    _c("interpolate-index-out-of-range", lambda c, r: ["interpolate", "--start", f"{c / 'poses.npz'}:99", "--end", str(c / "poses.npz"), "--out", str(r / "outdir")], "poses.npz"),
    _c("interpolate-index-not-int", lambda c, r: ["interpolate", "--start", f"{c / 'poses.npz'}:x", "--end", str(c / "poses.npz"), "--out", str(r / "outdir")], "poses.npz"),
    _c("denoise-out-is-file", lambda c, r: ["denoise", "--motion", str(c / "motion.npz"), "--out", str(r / "out.npz"), *_QUIET], "out.npz"),
    _c("denoise-motion-is-folder", lambda c, r: ["denoise", "--motion", str(c / "empty_dir"), "--out", str(r / "outdir"), *_QUIET], "empty_dir"),
    _c("train-out-is-file", lambda c, r: ["train", "--config", "configs/tiny.yaml", "--out", str(r / "out.npz"), "--no-progress"], "out.npz"),
    _c("baseline-out-is-folder", lambda c, r: ["baseline", "train", "gmm", "--poses", str(c / "motion.npz"), "--out", str(r / "outdir")], "outdir"),
    _c("baseline-out-is-input", lambda c, r: ["baseline", "train", "gmm", "--poses", str(r / "out.npz"), "--out", str(r / "out.npz")], "out.npz"),
    _c("fit-image-no-dir", lambda c, r: ["fit-image", "--image-dir", str(c / "nowhere"), "--out", str(r / "outdir"), "--quiet"], "nowhere"),
    _c("data-amass-out-is-file", lambda c, r: ["data", "amass", "--amass-dir", str(c / "empty_dir"), "--out", str(r / "out.npz"), "--quiet"], "out.npz"),
    _c("data-prepare-out-is-file", lambda c, r: ["data", "prepare", "--poses", str(c / "poses.npz"), "--out", str(r / "out.npz"), "--quiet"], "out.npz"),
    _c("fit-image-coco-garbled", lambda c, r: ["fit-image", "--image-dir", str(c / "images"), "--coco-json", str(c / "garbled.json"), "--out", str(r / "outdir"), "--quiet"], "garbled.json"),
    _c("fit-image-coco-list", lambda c, r: ["fit-image", "--image-dir", str(c / "images"), "--coco-json", str(c / "list.json"), "--out", str(r / "outdir"), "--quiet"], "list.json"),
    _c("fit-image-coco-not-objects", lambda c, r: ["fit-image", "--image-dir", str(c / "images"), "--coco-json", str(c / "coco_bad.json"), "--out", str(r / "outdir"), "--quiet"], "coco_bad.json"),
    _c("data-bvh-garbled", lambda c, r: ["data", "bvh", str(c / "garbled.bvh"), "--out", str(r / "outdir")], "garbled.bvh"),
    _c("data-bvh-empty", lambda c, r: ["data", "bvh", str(c / "empty.bvh"), "--out", str(r / "outdir")], "empty.bvh"),
    _c("data-mocap-still", lambda c, r: ["data", "mocap", str(c / "still.bvh"), "--out", str(r / "outdir")], "still.bvh"),
    _c("data-bvh-out-is-file", lambda c, r: ["data", "bvh", str(c / "empty.bvh"), "--out", str(r / "out.npz")], "out.npz"),
    _c("data-mocap-bad-source-fps", lambda c, r: ["data", "mocap", str(c / "empty.bvh"), "--source-fps", "0", "--out", str(r / "outdir")], "--source-fps"),
    _c("data-amass-empty", lambda c, r: ["data", "amass", "--amass-dir", str(c / "empty_dir"), "--out", str(r / "outdir"), "--quiet"], "empty_dir"),
]


def _snapshot(root: Path) -> Dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "folder"
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, corpus: Path, tmp_path: Path, capsys, monkeypatch):
    repo = Path(__file__).resolve().parents[1]
    run = tmp_path / "run"
    run.mkdir()
    # the outputs of an earlier run, which a failing run must leave intact
    np.savez(run / "out.npz", quat=np.tile(np.array([1.0, 0, 0, 0], "f4"), (2, 21, 1)))
    (run / "outdir").mkdir()
    (run / "outdir" / "summary.json").write_text('{"earlier": true}\n')
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # anything written relative to the working folder would land here
    argv = [a.replace("configs/tiny.yaml", str(repo / "configs" / "tiny.yaml")) for a in case.argv(corpus, run)]
    before_corpus, before_run = _snapshot(corpus), _snapshot(run)

    rc = main(argv)
    out, err = capsys.readouterr()

    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, f"exit status {rc}; stderr: {err[-2000:]}"
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err[-2000:]}"
    assert "Traceback" not in err and "Traceback" not in out
    assert lines[0].startswith(f"posendf {argv[0]}: error: "), lines[0]
    assert any(n in lines[0] for n in case.names), f"the message names none of {case.names}: {lines[0]}"
    assert "allow_pickle" not in err and "weights_only" not in err
    assert not (corpus / MARKER).exists(), "a malicious pickle ran"
    assert _snapshot(corpus) == before_corpus, "an input file changed"
    after = _snapshot(run)
    assert {k: v for k, v in after.items() if k in before_run} == before_run, "an earlier output changed"
    new = sorted(set(after) - set(before_run))
    assert new == [], f"files or folders written by a failing run: {new}"
    assert list(cwd.iterdir()) == [], "files written to the working folder"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write to read-only folders")
@pytest.mark.parametrize("command", ["project", "sample", "complete", "denoise"])
def test_unwritable_output_folder(command, corpus, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        argv = {
            "project": ["project", "--poses", str(corpus / "poses.npz"), "--out", str(ro / "x.npz")],
            "sample": ["sample", "--n", "2", "--out", str(ro / "out")],
            "complete": ["complete", "--poses", str(corpus / "poses.npz"), "--mask", "arms", "--out", str(ro / "x.npz"), "--quiet"],
            "denoise": ["denoise", "--motion", str(corpus / "motion.npz"), "--out", str(ro / "out"), "--quiet"],
        }[command]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "ro" in err and "Traceback" not in err
    finally:
        ro.chmod(0o700)


def test_case_count():
    """The reliability figure: the number of bad-input cases tried (see benchmarks/RESULTS.md)."""
    assert len(CASES) >= 100


def test_corpus_pickles_are_live(tmp_path):
    """The malicious files are real: the unsafe loaders (which the package never uses) run them."""
    import smplx

    _build_corpus(tmp_path)
    marker = tmp_path / MARKER
    loaders = [
        lambda: np.load(tmp_path / "object_pose.npz", allow_pickle=True)["pose_body"],
        lambda: torch.load(tmp_path / "evil.pt", weights_only=False),
        lambda: pickle.loads((tmp_path / "bm_evil_smplx_pkl" / "smplx" / "SMPLX_NEUTRAL.pkl").read_bytes()),
        # what body_model.py used to do for SMPL-X: let smplx read the file itself
        lambda: smplx.SMPLX(str(tmp_path / "bm_evil_smplx_npz" / "smplx" / "SMPLX_NEUTRAL.npz"), ext="npz"),
    ]
    for load in loaders:
        try:
            load()
        except Exception:  # noqa: BLE001 - the payload runs before the load fails
            pass
        assert marker.exists()
        marker.unlink()


def test_sample_of_one_writes_strict_json(tmp_path, capsys):
    assert main(["sample", "--n", "1", "--grid", "1", "--max-iter", "2", "--out", str(tmp_path / "s")]) == 0
    text = (tmp_path / "s" / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert summary["apd_cm"] is None and summary["apd_cm_initial"] is None
    assert "APD undefined" in capsys.readouterr().out


def test_warnings_do_not_break_progress_bars(capsys, monkeypatch):
    """Per-item warnings logged while a CLI bar runs get lines of their own (tqdm.write)."""
    import logging

    from tqdm import tqdm

    from posendf_plugin.cli import _warnings_through_tqdm

    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in a plain `posendf` run (no pytest handlers)
    log = logging.getLogger("posendf_plugin.test_bars")
    with _warnings_through_tqdm():
        for i in tqdm(range(3), desc="people", file=None, mininterval=0):
            log.warning("person %d not fitted: test", i)
    err = capsys.readouterr().err
    shown = [line.rsplit("\r", 1)[-1] for line in err.split("\n")]
    assert [s for s in shown if "not fitted" in s] == [f"person {i} not fitted: test" for i in range(3)]
