"""SMPLify-style image fitting: synthetic people projected from the procedural body model in
OpenPose / COCO files, bad input, partial keypoints, priors (none, tiny PoseNDF, tiny VPoser in
latent space), batch outputs and the CLI. Iteration counts are tiny to keep the tests fast."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from posendf_plugin.cli import main as cli_main
from posendf_plugin.fitting import image as I
from posendf_plugin.fitting import image_batch
from posendf_plugin.fitting.losses import perspective_projection
from posendf_plugin.fitting.params import BodyPoseVariable, load_prior
from posendf_plugin.rotations import axis_angle_to_matrix

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
W, H, F = 320, 240, 500.0
FAST = I.ImageFitConfig(
    focal_length=F, camera_iterations=10,
    stages=(I.ImageStage(20, prior_weight=1.0, shape_weight=5.0, bend_weight=1.0, pose_l2_weight=0.1, lr=0.06),),
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def synthetic_people(bm, fmt="openpose25", n=2, seed=0):
    """Keypoints ``(n, K, 3)`` of bodies with small random poses, facing the camera."""
    g = torch.Generator().manual_seed(seed)
    pose = (torch.rand(n, 63, generator=g) - 0.5) * 0.4
    go = torch.tensor([math.pi, 0.0, 0.0]) + (torch.rand(n, 3, generator=g) - 0.5) * 0.3
    transl = torch.stack([torch.tensor([-0.5 + i, 0.2, 6.0]) for i in range(n)])
    with torch.no_grad():
        out = bm(body_pose=pose, global_orient=go, transl=transl, keypoints=fmt)
    uv = perspective_projection(out.keypoints, torch.tensor(F), torch.tensor([W / 2, H / 2]))
    kp = torch.cat((uv, torch.ones(uv.shape[:-1] + (1,))), -1).numpy()
    return kp.astype(np.float32)


def write_openpose(path: Path, kp: np.ndarray) -> None:
    path.write_text(json.dumps({"version": 1.3, "people": [
        {"person_id": [-1], "pose_keypoints_2d": [float(v) for v in p.reshape(-1)]} for p in kp]}))


def write_image(path: Path) -> None:
    import matplotlib.image as mpimg

    mpimg.imsave(path, np.full((H, W, 3), 0.5))


def test_fit_synthetic_openpose_people(bm):
    kp = synthetic_people(bm)
    res = I.fit_people(I.PersonKeypoints(kp, "openpose25", ["0", "1"]), (W, H), bm, load_prior("none"), FAST)
    assert res.body_pose.shape == (2, 63) and res.transl.shape == (2, 3) and res.betas.shape == (2, 10)
    assert res.vertices.shape[0] == 2
    # keypoints are matched to a few pixels (people are ~120 px tall here)
    assert res.reprojection_error_px.max() < 6.0, res.reprojection_error_px
    # the people stand in front of the camera, left one on the left
    assert (res.transl[:, 2] > 1).all() and res.transl[0, 0] < res.transl[1, 0]


def test_missing_keypoints_still_fit_and_empty_person_is_skipped(bm):
    kp = synthetic_people(bm, n=3, seed=1)
    kp[0, ::2, 2] = 0.0  # half the keypoints of person 0 missing
    kp[0, ::2, :2] = 0.0
    kp[2, :, 2] = 0.0  # person 2 not detected at all
    res = I.fit_people(I.PersonKeypoints(kp, "openpose25", ["a", "b", "c"]), (W, H), bm, load_prior("none"), FAST)
    assert res.person_index.tolist() == [0, 1]
    assert res.skipped and res.skipped[0][0] == 2 and "keypoints" in res.skipped[0][1]
    assert torch.isfinite(res.body_pose).all() and res.reprojection_error_px[0] < 8.0
    kp[:, :, 2] = 0
    with pytest.raises(ValueError, match="no person"):
        I.fit_people(I.PersonKeypoints(kp, "openpose25", ["a", "b", "c"]), (W, H), bm, load_prior("none"), FAST)


def test_facing_away_person_gets_the_flipped_orientation(bm):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        out = bm(body_pose=(torch.rand(1, 63, generator=g) - 0.5) * 0.2, global_orient=torch.tensor([[0.0, 0.0, math.pi]]),
                 transl=torch.tensor([[0.0, 0.2, 6.0]]), keypoints="coco17")
    uv = perspective_projection(out.keypoints, torch.tensor(F), torch.tensor([W / 2, H / 2]))
    kp = torch.cat((uv, torch.ones(1, 17, 1)), -1).numpy()
    res = I.fit_people(I.PersonKeypoints(kp, "coco17", ["0"]), (W, H), bm, load_prior("none"), FAST)
    # the body's forward axis (+Z in the model) must point away from the camera (+z)
    fwd = axis_angle_to_matrix(res.global_orient[0])[:, 2]
    assert fwd[2] > 0.5, fwd
    assert res.reprojection_error_px[0] < 6.0


def test_keypoint_json_layouts_and_errors(tmp_path, bm):
    kp = synthetic_people(bm, "coco17", n=1)
    coco_vis = kp.copy()
    coco_vis[..., 2] = 2
    coco_vis[0, 3, 2] = 0  # not labelled
    p = tmp_path / "a.json"
    p.write_text(json.dumps([{"id": 7, "keypoints": coco_vis[0].reshape(-1).tolist()}]))
    pk = I.read_keypoint_json(p)
    assert pk.fmt == "coco17" and pk.ids == ["7"] and pk.keypoints[0, 3, 2] == 0 and pk.keypoints[0, 0, 2] == 1
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": kp[0].reshape(-1).tolist()}]}))
    assert I.read_keypoint_json(p).fmt == "coco17"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        I.read_keypoint_json(p)
    p.write_text(json.dumps({"people": []}))
    with pytest.raises(ValueError, match="no people"):
        I.read_keypoint_json(p)
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 54}]}))
    with pytest.raises(ValueError, match="75"):
        I.read_keypoint_json(p)
    p.write_text(json.dumps({"people": [{"face_keypoints_2d": []}]}))
    with pytest.raises(ValueError, match="pose_keypoints_2d"):
        I.read_keypoint_json(p)
    with pytest.raises(FileNotFoundError):
        I.read_keypoint_json(tmp_path / "missing.json")


def test_batch_folder_outputs_skips_and_keeps_written_results(tmp_path, bm, monkeypatch):
    d = tmp_path / "imgs"
    d.mkdir()
    for name in ("a", "b", "c", "d", "e"):
        write_image(d / f"{name}.jpg")
    write_openpose(d / "a.json", synthetic_people(bm, n=1))
    (d / "b.json").write_text("{broken")  # malformed
    (d / "c.json").write_text(json.dumps({"people": []}))  # nobody detected
    # d.jpg has no keypoint file; e.jpg has keypoints but its fit fails below
    write_openpose(d / "e.json", synthetic_people(bm, n=1))
    real = I.fit_people

    def flaky(people, size, *a, **k):
        if people.keypoints.shape[0] == 1 and flaky.calls == 1:
            raise RuntimeError("simulated crash")
        flaky.calls += 1
        return real(people, size, *a, **k)

    flaky.calls = 0
    monkeypatch.setattr(image_batch, "fit_people", flaky)
    out = tmp_path / "out"
    I.fit_image_dir(d, out, body_model=bm, config=FAST, progress=False, render=False)
    # the crash on e.jpg is reported and leaves nothing of e; a.jpg's outputs are there
    assert (out / "a.npz").is_file() and not (out / "e.npz").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert [f["image"] for f in summary["fitted"]] == ["a.jpg"]
    failed = {f["image"]: f["reason"] for f in summary["failed"]}
    assert sorted(failed) == ["b.jpg", "e.jpg"] and "simulated crash" in failed["e.jpg"]
    assert "not valid JSON" in failed["b.jpg"]  # an unreadable input is a failure the user fixes, not a skip
    reasons = {s["image"]: s["reason"] for s in summary["skipped"]}
    assert sorted(reasons) == ["c.jpg", "d.jpg"] and "no people" in reasons["c.jpg"] and "no keypoint file" in reasons["d.jpg"]
    monkeypatch.setattr(image_batch, "fit_people", real)
    s = I.fit_image_dir(d, out, body_model=bm, config=FAST, progress=False, render=True)
    assert sorted(f["image"] for f in s.fitted) == ["a.jpg", "e.jpg"]
    z = np.load(out / "a.npz")
    assert set(I.NPZ_KEYS) <= set(z.files)
    assert z["body_pose"].shape == (1, 63) and z["body_quat"].shape == (1, 21, 4)
    assert str(z["keypoint_format"]) == "openpose25" and z["focal_length"].tolist() == [F, F]
    import matplotlib.image as mpimg

    png = mpimg.imread(out / "a.png")
    assert png.ndim == 3 and png.shape[1] > png.shape[0]


def test_coco_annotation_file(tmp_path, bm):
    kp = synthetic_people(bm, "coco17", n=2)
    kp[..., 2] = 2
    write_image(tmp_path / "x.jpg")
    coco = {"images": [{"id": 1, "file_name": "x.jpg", "width": W, "height": H}],
            "annotations": [{"id": 10 + i, "image_id": 1, "iscrowd": 0, "keypoints": kp[i].reshape(-1).tolist()}
                            for i in range(2)],
            "categories": [{"id": 1, "name": "person"}]}
    cj = tmp_path / "ann.json"
    cj.write_text(json.dumps(coco))
    people = I.read_coco_annotations(cj)
    assert list(people) == ["x.jpg"] and people["x.jpg"].ids == ["10", "11"]
    s = I.fit_image_dir(tmp_path, tmp_path / "out", body_model=bm, coco_json=cj, config=FAST, progress=False, render=False)
    assert s.fitted[0]["people"] == 2 and max(s.fitted[0]["reprojection_error_px"]) < 8.0
    other = tmp_path / "other"
    other.mkdir()
    write_image(other / "y.jpg")
    with pytest.raises(ValueError, match="none of its annotated images"):
        I.fit_image_dir(other, tmp_path / "o2", body_model=bm, coco_json=cj, config=FAST, progress=False)


def test_priors_plug_in_including_vposer_latent(bm):
    from posendf_plugin.config import load_config
    from posendf_plugin.model import PoseNDFNet
    from posendf_plugin.prior import PoseNDF
    from posendf_plugin.priors.vposer import VPoser, VPoserConfig

    with torch.random.fork_rng():
        torch.manual_seed(0)
        ndf = PoseNDF(PoseNDFNet(load_config(REPO / "configs" / "tiny.yaml").model))
        vp = VPoser(VPoserConfig(num_neurons=16, latent_dim=4)).eval()
    kp = synthetic_people(bm, n=1)
    pk = I.PersonKeypoints(kp, "openpose25", ["0"])
    cfg = replace(FAST, camera_iterations=5, stages=(I.ImageStage(5),))
    for prior in (ndf, vp):
        res = I.fit_people(pk, (W, H), bm, load_prior(prior), cfg)
        assert torch.isfinite(res.body_pose).all() and res.losses["prior"] >= 0
    var = BodyPoseVariable(torch.zeros(2, 63), vp)
    assert var.mode == "vposer_latent" and var.value.shape == (2, 4)
    assert var.pose().shape == (2, 63) and torch.allclose(var.prior_energy(), (var.value ** 2).sum(-1))
    with pytest.raises(ValueError, match="VPoser"):
        BodyPoseVariable(torch.zeros(1, 63), ndf, "vposer_latent")


def test_config_yaml_matches_defaults_and_rejects_unknown_keys(tmp_path):
    assert I.load_image_fit_config(REPO / "configs" / "fit_image.yaml") == I.ImageFitConfig()
    bad = tmp_path / "bad.yaml"
    bad.write_text("focal_lenght: 100\n")
    with pytest.raises(ValueError, match="focal_lenght"):
        I.load_image_fit_config(bad)
    bad.write_text("stages:\n  - {iterations: 5, lr: -1}\n")
    with pytest.raises(ValueError, match="lr"):
        I.load_image_fit_config(bad)
    bad.write_text("prior_anneal: {posendf: 0.5}\n")
    with pytest.raises(ValueError, match="prior_anneal"):
        I.load_image_fit_config(bad)


def test_prior_anneal_keeps_the_first_stage_weight():
    """A prior with ``prior_anneal: false`` keeps the first stage's weight in every stage; the
    others follow the stages' decreasing weights, all times their ``prior_scale``."""
    stages = (I.ImageStage(1, prior_weight=4.0), I.ImageStage(1, prior_weight=1.0), I.ImageStage(1, prior_weight=0.25))
    cfg = I.ImageFitConfig(stages=stages, prior_scale={"posendf": 100.0, "gmm": 10.0}, prior_anneal={"posendf": False})
    assert [cfg.stage_prior_weight("posendf", i) for i in range(3)] == [400.0, 400.0, 400.0]
    assert [cfg.stage_prior_weight("gmm", i) for i in range(3)] == [40.0, 10.0, 2.5]
    assert cfg.stage_prior_weight("other", 1) == 1.0  # unknown priors: scale 1, annealed
    assert I.ImageFitConfig.from_dict(cfg.to_dict()) == cfg


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli_main(["fit-image", "--image-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "image folder not found" in capsys.readouterr().err
    assert cli_main(["fit-image", "--image-dir", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--body-model", str(tmp_path / "no_model")]) == 2
    assert "--body-model" in capsys.readouterr().err
    write_image(tmp_path / "a.jpg")
    assert cli_main(["fit-image", "--image-dir", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--prior", "posendf", "--prior-checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "not found" in capsys.readouterr().err


def test_real_coco_photos_fit(tmp_path, bm):
    coco = SHARED / "images" / "coco"
    if not (coco / "test_coco.json").is_file():
        pytest.skip("../shared/data/images/coco not available")
    people = I.read_coco_annotations(coco / "test_coco.json")
    assert sum(len(p.ids) for p in people.values()) == 14
    pk = people["000000000785.jpg"]
    cfg = replace(I.ImageFitConfig(), camera_iterations=20, stages=(I.ImageStage(30, lr=0.05),))
    res = I.fit_people(pk, (640, 425), bm, load_prior("none"), cfg)
    assert res.reprojection_error_px[0] < 12.0  # person ~350 px tall


def test_start_pose_mean_zero_and_given(bm):
    """init_pose: 'mean' starts from the embedded mean pose (arms down), 'zero' from the T-pose,
    and fit_people(init_body_pose=...) from the given poses; zero iterations keep the start."""
    from posendf_plugin.data.default import default_mean_pose
    from posendf_plugin.skeleton import quat_to_pose

    kp = synthetic_people(bm, n=2)
    people = I.PersonKeypoints(kp, "openpose25", ["0", "1"])
    still = replace(FAST, camera_iterations=0, stages=(I.ImageStage(0),))
    mean = I.fit_people(people, (W, H), bm, load_prior("none"), still)
    torch.testing.assert_close(mean.body_pose, quat_to_pose(default_mean_pose()[None], 63).expand(2, 63), atol=1e-5, rtol=0)
    zero = I.fit_people(people, (W, H), bm, load_prior("none"), replace(still, init_pose="zero"))
    assert zero.body_pose.abs().max() == 0
    # a prior given by name is loaded as fit-image loads it ("posendf": the density-aware field)
    named = I.fit_people(people, (W, H), bm, "posendf", still)
    assert named.prior == "posendf" and torch.equal(named.body_pose, mean.body_pose)
    given = torch.randn(2, 63) * 0.2
    res = I.fit_people(people, (W, H), bm, load_prior("none"), still, init_body_pose=given)
    torch.testing.assert_close(res.body_pose, given, atol=1e-5, rtol=0)
    # the mean pose has its arms lowered: wrists below the shoulders (the T-pose: level)
    j = bm(body_pose=mean.body_pose[:1]).joints[0]
    assert (j[20:22, 1] < j[16:18, 1] - 0.1).all()
    with pytest.raises(ValueError, match="one pose per person"):
        I.fit_people(people, (W, H), bm, load_prior("none"), still, init_body_pose=given[:1])
    with pytest.raises(ValueError, match="init_pose"):
        replace(FAST, init_pose="tpose")
