"""fit-image: known cameras (Camera, camera JSON, --focal-length / --camera) and the batch's
reliability rules (no input overwritten, distinct names for a.jpg / a.png, one image's failure
does not stop the batch, no stale outputs, default prior, warnings under a progress bar).
Synthetic people from the procedural body model; tiny iteration counts."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from posendf_plugin.cli import build_parser
from posendf_plugin.cli import main as cli_main
from posendf_plugin.fitting import image_batch
from posendf_plugin.fitting.camera import Camera, camera_file_for, read_camera_json
from posendf_plugin.fitting.image_batch import fit_image_dir, output_stems
from posendf_plugin.fitting.image_fit import ImageFitConfig, ImageStage, fit_people
from posendf_plugin.fitting.keypoint_files import PersonKeypoints
from posendf_plugin.fitting.losses import perspective_projection
from posendf_plugin.fitting.params import load_prior

W, H = 320, 240
FAST = ImageFitConfig(focal_length=500.0, camera_iterations=10, stages=(ImageStage(15, lr=0.06),))
TINY = replace(FAST, camera_iterations=2, stages=(ImageStage(2),))

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def people_seen_by(bm, focal, centre, n=1, seed=0, joints=False):
    """Keypoints ``(n, 25, 3)`` of posed bodies 6 m away, seen by the camera ``focal (2,)``,
    ``centre (2,)``; with ``joints``, also their camera-frame joints ``(n, 24, 3)``."""
    g = torch.Generator().manual_seed(seed)
    pose = (torch.rand(n, 63, generator=g) - 0.5) * 0.3
    go = torch.tensor([math.pi, 0.0, 0.0]).expand(n, 3)
    transl = torch.stack([torch.tensor([-0.4 + 0.8 * i, 0.1, 6.0]) for i in range(n)])
    with torch.no_grad():
        out = bm(body_pose=pose, global_orient=go, transl=transl, keypoints="openpose25")
    uv = perspective_projection(out.keypoints, torch.tensor(focal, dtype=torch.float32),
                                torch.tensor(centre, dtype=torch.float32))
    kp = torch.cat((uv, torch.ones(uv.shape[:-1] + (1,))), -1).numpy().astype(np.float32)
    return (kp, out.joints) if joints else kp


def write_image(path: Path) -> None:
    import matplotlib.image as mpimg

    mpimg.imsave(path, np.full((H, W, 3), 0.5))


def write_openpose(path: Path, kp: np.ndarray) -> None:
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": p.reshape(-1).tolist()} for p in kp]}))


# --- camera ----------------------------------------------------------------------------------------


def test_camera_values_and_files(tmp_path):
    assert Camera(800).focal_length == (800.0, 800.0) and Camera(800).centre((640, 480)) == (320.0, 240.0)
    c = Camera.from_matrix([[1000, 0, 300], [0, 1100, 200], [0, 0, 1]])
    assert c.focal_length == (1000.0, 1100.0) and c.principal_point == (300.0, 200.0)
    p = tmp_path / "cam.json"
    p.write_text(json.dumps({"focal_length": [1000, 1100], "principal_point": [300, 200]}))
    assert read_camera_json(p) == c
    p.write_text(json.dumps({"K": [[1000, 0, 300], [0, 1100, 200], [0, 0, 1]]}))
    assert read_camera_json(p) == c
    p.write_text(json.dumps({"focal_length": 900}))
    assert read_camera_json(p) == Camera(900.0)
    bad = {
        "{oops": "not valid JSON",
        json.dumps([1, 2]): "JSON object",
        json.dumps({"focal": 1}): "unknown camera key",
        json.dumps({"principal_point": [1, 2]}): "no focal_length",
        json.dumps({"focal_length": -5}): "positive",
        json.dumps({"focal_length": [1, "a"]}): "pair of numbers",
        json.dumps({"focal_length": 1e400}): "finite",
        json.dumps({"K": [[1, 0, 0], [0, 1, 0]]}): "3 x 3",
        json.dumps({"K": [[1, 0.5, 0], [0, 1, 0], [0, 0, 1]]}): "skew",
        json.dumps({"K": [[1, 0, 0], [0, 1, 0], [0, 0, 2]]}): "form",
        json.dumps({"K": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "focal_length": 3}): "either K",
    }
    for text, match in bad.items():
        p.write_text(text)
        with pytest.raises(ValueError, match=match) as e:
            read_camera_json(p)
        assert str(p) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError, match="no such camera file"):
        read_camera_json(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="is a folder"):
        read_camera_json(tmp_path)
    assert camera_file_for(tmp_path / "a.jpg").name == "a.camera.json"


def test_known_camera_is_used_and_fits_better_than_the_default(bm):
    """People seen by an off-centre camera with fx != fy: given that camera, the fit reproduces
    the keypoints and finds the people where they are in 3D; with the config's camera (500 px at
    the image centre) the depth is off."""
    focal, centre = (700.0, 560.0), (130.0, 140.0)
    kp, gt = people_seen_by(bm, focal, centre, n=2, joints=True)
    people = PersonKeypoints(kp, "openpose25", ["0", "1"])
    none = load_prior("none")
    known = fit_people(people, (W, H), bm, none, FAST, camera=Camera(focal, centre))
    assert known.focal_length.tolist() == list(focal) and known.camera_center.tolist() == list(centre)
    assert known.image_size == (W, H)
    default = fit_people(people, (W, H), bm, none, FAST)
    assert float(known.reprojection_error_px.max()) < 5.0, known.reprojection_error_px

    def pelvis_error(res):  # (P, 3) metres, camera frame
        with torch.no_grad():
            j = bm(body_pose=res.body_pose, global_orient=res.global_orient, betas=res.betas, transl=res.transl).joints
        return (j[:, 0] - gt[:, 0]).abs()

    e_known, e_default = pelvis_error(known), pelvis_error(default)
    assert float(e_known[:, :2].max()) < 0.1, e_known  # sideways: right where they are
    assert float(e_known.norm(dim=-1).max()) < 0.75 * float(e_default.norm(dim=-1).min()), (e_known, e_default)
    with pytest.raises(TypeError, match="Camera"):
        fit_people(people, (W, H), bm, none, TINY, camera=(700.0, 560.0))


def test_per_image_camera_file_flag_and_bad_file_in_batch(tmp_path, bm, capsys):
    d = tmp_path / "imgs"
    d.mkdir()
    for name in ("a", "b", "c"):
        write_image(d / f"{name}.jpg")
        write_openpose(d / f"{name}.json", people_seen_by(bm, (600.0, 600.0), (W / 2, H / 2)))
    (d / "a.camera.json").write_text(json.dumps({"K": [[600, 0, 150], [0, 620, 110], [0, 0, 1]]}))
    (d / "c.camera.json").write_text(json.dumps({"focal_length": [600, 0]}))  # bad: named, c skipped
    s = fit_image_dir(d, tmp_path / "o", prior="none", body_model=bm, config=TINY, progress=False, render=False,
                      camera=Camera(450.0))
    cams = {f["image"]: f["camera"] for f in s.fitted}
    assert cams["a.jpg"] == {"focal_length": [600.0, 620.0], "principal_point": [150.0, 110.0], "source": "a.camera.json"}
    assert cams["b.jpg"] == {"focal_length": [450.0, 450.0], "principal_point": [W / 2, H / 2], "source": "given"}
    assert [n for n, _ in s.failed] == ["c.jpg"] and "c.camera.json" in s.failed[0][1] and not s.skipped
    assert np.load(tmp_path / "o" / "a.npz")["focal_length"].tolist() == [600.0, 620.0]
    # CLI: --focal-length, --camera FILE, and their errors name the flag / the file
    for f in ("c.jpg", "c.json", "c.camera.json"):
        (d / f).unlink()
    cam = tmp_path / "cam.json"
    cam.write_text(json.dumps({"focal_length": 480}))
    base = ["fit-image", "--image-dir", str(d), "--prior", "none", "--no-render", "--quiet"]
    assert cli_main(base + ["--out", str(tmp_path / "c1"), "--camera", str(cam)]) == 0
    summary = json.loads((tmp_path / "c1" / "summary.json").read_text())
    assert {f["image"]: f["camera"]["focal_length"] for f in summary["fitted"]} == {
        "a.jpg": [600.0, 620.0], "b.jpg": [480.0, 480.0]}
    capsys.readouterr()
    assert cli_main(base + ["--out", str(tmp_path / "c2"), "--focal-length", "-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--focal-length" in err and "positive" in err and "\n" not in err
    cam.write_text("[1]")
    assert cli_main(base + ["--out", str(tmp_path / "c3"), "--camera", str(cam)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(cam) in err and "\n" not in err


def test_openpose_keypoints_name_is_found_and_an_unreadable_image_fails_the_run(tmp_path, bm, capsys):
    """OpenPose's --write_json name ``<stem>_keypoints.json`` (what SMPLify-X reads) is found next
    to the image; an image that cannot be read is a failure (exit status 1), not a skip."""
    d = tmp_path / "imgs"
    d.mkdir()
    kp = people_seen_by(bm, (500.0, 500.0), (W / 2, H / 2))
    write_image(d / "a.jpg")
    write_openpose(d / "a_keypoints.json", kp)
    (d / "b.jpg").write_text("not an image")
    write_openpose(d / "b.json", kp)
    s = fit_image_dir(d, tmp_path / "o", prior="none", body_model=bm, config=TINY, progress=False, render=False)
    assert [f["image"] for f in s.fitted] == ["a.jpg"] and not s.skipped
    assert [n for n, _ in s.failed] == ["b.jpg"] and "cannot read the image" in s.failed[0][1]
    capsys.readouterr()
    assert cli_main(["fit-image", "--image-dir", str(d), "--out", str(tmp_path / "c"), "--prior", "none",
                     "--no-render", "--quiet"]) == 1
    assert "failed on 1 image(s)" in capsys.readouterr().out
    (d / "b.jpg").unlink()
    (d / "b.json").unlink()
    write_image(d / "c.jpg")
    s = fit_image_dir(d, tmp_path / "o", prior="none", body_model=bm, config=TINY, progress=False, render=False)
    assert [n for n, _ in s.skipped] == ["c.jpg"] and "c_keypoints.json" in s.skipped[0][1]


def test_smplifyx_data_layout_and_keypoint_dir(tmp_path, bm, capsys):
    """SMPLify-X's layout (DATA/images, DATA/keypoints/<stem>_keypoints.json) works as it is, and
    --keypoint-dir names any other folder."""
    data = tmp_path / "DATA"
    (data / "images").mkdir(parents=True)
    (data / "keypoints").mkdir()
    write_image(data / "images" / "a.jpg")
    write_openpose(data / "keypoints" / "a_keypoints.json", people_seen_by(bm, (500.0, 500.0), (W / 2, H / 2)))
    s = fit_image_dir(data / "images", tmp_path / "o1", prior="none", body_model=bm, config=TINY, progress=False, render=False)
    assert [f["image"] for f in s.fitted] == ["a.jpg"]
    other = tmp_path / "kp"
    (data / "keypoints").rename(other)
    s = fit_image_dir(data / "images", tmp_path / "o2", prior="none", body_model=bm, config=TINY, progress=False, render=False)
    assert not s.fitted and "a_keypoints.json" in s.skipped[0][1]
    s = fit_image_dir(data / "images", tmp_path / "o3", prior="none", body_model=bm, config=TINY, progress=False,
                      render=False, keypoint_dir=other)
    assert [f["image"] for f in s.fitted] == ["a.jpg"]
    capsys.readouterr()
    assert cli_main(["fit-image", "--image-dir", str(data / "images"), "--out", str(tmp_path / "o4"), "--prior", "none",
                     "--keypoint-dir", str(tmp_path / "nope"), "--no-render", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope" in err and "keypoint folder not found" in err and "\n" not in err


# --- reliability -----------------------------------------------------------------------------------


def test_outputs_never_overwrite_inputs_and_shared_stems_get_distinct_names(tmp_path, bm):
    d = tmp_path / "imgs"
    d.mkdir()
    write_image(d / "a.png")
    write_image(d / "a.jpg")
    write_image(d / "b.jpg")
    kp = people_seen_by(bm, (500.0, 500.0), (W / 2, H / 2))
    write_openpose(d / "a.json", kp)
    write_openpose(d / "b.json", kp)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    for out in (d, d / "." , tmp_path / "imgs" / ".." / "imgs"):
        with pytest.raises(ValueError, match="image folder"):
            fit_image_dir(d, out, prior="none", body_model=bm, config=TINY, progress=False)
    # an input placed where an output goes (here: the COCO file called summary.json in --out)
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(ValueError, match="overwrite the input"):
        fit_image_dir(d, out, prior="none", body_model=bm, coco_json=out / "summary.json", config=TINY, progress=False)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    assert output_stems([d / "A.JPEG", d / "a.jpg", d / "a.jpg.png", d / "b.jpg"]) == {
        d / "A.JPEG": "A.JPEG", d / "a.jpg": "a.jpg", d / "a.jpg.png": "a.jpg-2", d / "b.jpg": "b"}
    s = fit_image_dir(d, tmp_path / "o2", prior="none", body_model=bm, config=TINY, progress=False, render=True)
    assert sorted((f["image"], f["npz"], f["png"]) for f in s.fitted) == [
        ("a.jpg", "a.jpg.npz", "a.jpg.png"), ("a.png", "a.png.npz", "a.png.png"), ("b.jpg", "b.npz", "b.png")]
    assert all((tmp_path / "o2" / f["png"]).is_file() for f in s.fitted)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def test_a_failing_image_is_all_or_nothing_and_the_batch_goes_on(tmp_path, bm, monkeypatch):
    d = tmp_path / "imgs"
    d.mkdir()
    kp = people_seen_by(bm, (500.0, 500.0), (W / 2, H / 2))
    for name in ("a", "b", "c"):
        write_image(d / f"{name}.jpg")
        write_openpose(d / f"{name}.json", kp)
    out = tmp_path / "out"
    s = fit_image_dir(d, out, prior="none", body_model=bm, config=TINY, progress=False)
    assert [f["image"] for f in s.fitted] == ["a.jpg", "b.jpg", "c.jpg"]
    a_png = (out / "a.png").read_bytes()
    # re-run where rendering b crashes and c's keypoints became unreadable
    real = image_batch.render_fit

    def render(res, image, path, **kw):
        if render.calls == 1:
            raise OverflowError("simulated rendering error")
        render.calls += 1
        return real(res, image, path, **kw)

    render.calls = 0
    monkeypatch.setattr(image_batch, "render_fit", render)
    (d / "c.json").write_text("{broken")
    s = fit_image_dir(d, out, prior="none", body_model=bm, config=TINY, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    assert [f["image"] for f in summary["fitted"]] == ["a.jpg"]
    assert [f["image"] for f in summary["failed"]] == ["b.jpg", "c.jpg"] and "simulated rendering error" in summary["failed"][0]["reason"]
    assert "not valid JSON" in summary["failed"][1]["reason"] and summary["skipped"] == []
    # nothing of b or c is left (not even the first run's files); no temporary files either
    assert sorted(p.name for p in out.iterdir()) == ["a.npz", "a.png", "summary.json"]
    assert (out / "a.png").read_bytes() != b"" and a_png  # a was rewritten, whole
    # a --no-render run removes the now unmatched overlay of the earlier run
    fit_image_dir(d, out, prior="none", body_model=bm, config=TINY, progress=False, render=False)
    assert sorted(p.name for p in out.iterdir()) == ["a.npz", "b.npz", "summary.json"]


def test_cli_defaults_and_exit_status(tmp_path, bm, monkeypatch, capsys, caplog):
    args = build_parser().parse_args(["fit-image", "--image-dir", "x", "--out", "y"])
    assert args.prior == "posendf" and args.focal_length is None and args.camera is None
    d = tmp_path / "imgs"
    d.mkdir()
    write_image(d / "a.jpg")
    write_openpose(d / "a.json", people_seen_by(bm, (500.0, 500.0), (W / 2, H / 2)))
    monkeypatch.setattr(image_batch, "fit_people", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    rc = cli_main(["fit-image", "--image-dir", str(d), "--out", str(tmp_path / "o"), "--prior", "none", "--quiet"])
    cap = capsys.readouterr()
    # the failure is reported once, as it happens (stderr), and counted in the summary line
    assert rc == 1 and "failed on a.jpg: fitting failed (RuntimeError: boom)" in caplog.text + cap.err
    assert "failed on 1 image" in cap.out
    assert "boom" not in cap.out
    (tmp_path / "file").write_text("x")
    assert cli_main(["fit-image", "--image-dir", str(d), "--out", str(tmp_path / "file"), "--prior", "none"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_person_warnings_do_not_break_the_progress_bar(tmp_path, bm, capsys):
    d = tmp_path / "imgs"
    d.mkdir()
    kp = people_seen_by(bm, (500.0, 500.0), (W / 2, H / 2), n=2)
    kp[1, :, 2] = 0  # person 1 not detected: a per-person warning
    for name in ("a", "b"):
        write_image(d / f"{name}.jpg")
        write_openpose(d / f"{name}.json", kp)
    fit_image_dir(d, tmp_path / "o", prior="none", body_model=bm, config=TINY, progress=True, render=False)
    err = capsys.readouterr().err
    lines = [ln for ln in err.split("\n") if "not fitted" in ln]
    assert len(lines) == 2
    # each warning starts its own line: nothing of the bar before it on the terminal line
    assert all(ln.split("\r")[-1].startswith(("a.jpg", "b.jpg")) for ln in lines), lines


# --- per-person reprojection table (benchmarks/coco_reprojection.py) ----------------------------


def test_reprojection_table_compares_priors_per_person(tmp_path):
    from posendf_plugin.fitting.image_report import compare_reprojection, reprojection_markdown

    def summary(errs):
        return {"fitted": [{"image": "x.jpg", "png": "x.png", "person_ids": ["10", "2"], "visible_keypoints": [17, 9],
                            "reprojection_error_px": errs,
                            "skipped_people": [{"person": "5", "visible_keypoints": 0, "reason": "only 0 keypoints"}]}],
                "skipped": [], "failed": []}

    rows = compare_reprojection({"none": summary([2.0, 4.0]), "posendf": summary([3.0, None])},
                                {"none": tmp_path / "none", "posendf": tmp_path / "posendf"})
    assert [(r.person, r.visible_keypoints) for r in rows] == [("2", 9), ("5", 0), ("10", 17)]
    assert rows[0].error_px == {"none": 4.0, "posendf": None} and rows[2].error_px == {"none": 2.0, "posendf": 3.0}
    assert rows[1].error_px == {"none": None, "posendf": None}
    md = reprojection_markdown(rows, ["none", "posendf"], relative_to=tmp_path)
    assert "| x.jpg | 10 | 17 | 2.0 | 3.0 | [none](none/x.png), [posendf](posendf/x.png) |" in md
    assert "| x.jpg | 5 | 0 | — | — | — |" in md
    assert "| **mean** (1 people) |  |  | **2.0** | **3.0** |  |" in md  # only people every prior fitted
    with pytest.raises(TypeError, match="summary"):
        compare_reprojection({"none": [1, 2]})


def test_coco_reprojection_script_on_a_tiny_coco_folder(tmp_path, bm, capsys, monkeypatch):

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from benchmarks import coco_reprojection

    monkeypatch.setattr(coco_reprojection, "get_body_model", lambda *a, **k: bm)  # the session's, built once
    d = tmp_path / "coco"
    d.mkdir()
    write_image(d / "x.jpg")
    kp = people_seen_by(bm, (500.0, 500.0), (W / 2, H / 2), n=2)
    kp = kp[:, [0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11]]  # BODY_25 -> COCO-17 order
    kp[..., 2] = 2
    kp[1, :, 2] = 0  # nobody labelled: listed, not fitted
    (d / "ann.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "x.jpg"}],
        "annotations": [{"id": 7 + i, "image_id": 1, "keypoints": kp[i].reshape(-1).tolist()} for i in range(2)]}))
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("camera_iterations: 2\nstages:\n  - {iterations: 2}\n")
    out = tmp_path / "out"
    assert coco_reprojection.main(["--images", str(d), "--out", str(out), "--priors", "none", "--config", str(cfg), "--quiet"]) == 0
    md = (out / "reprojection.md").read_text()
    assert "| x.jpg | 7 | 17 |" in md and "| x.jpg | 8 | 0 | — |" in md and "[none](none/x.png)" in md
    assert (out / "none" / "x.png").is_file()
    people = json.loads((out / "reprojection.json").read_text())["people"]
    assert [p["person"] for p in people] == ["7", "8"] and people[0]["reprojection_error_px"]["none"] > 0
    assert coco_reprojection.main(["--images", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "image folder not found" in capsys.readouterr().err


# --- keypoints and cameras that cannot belong to the image (session-19 audit) ----------------------


def test_keypoints_that_are_not_the_images_fail_it(tmp_path, bm, caplog):
    """Keypoints mostly outside the image (another resolution), normalised to [0, 1] (OpenPose
    --keypoint_scale 3) or a principal point far outside it fail that image with a message saying
    so; the batch goes on with the others."""
    d = tmp_path / "imgs"
    d.mkdir()
    kp = people_seen_by(bm, (500.0, 500.0), (W / 2, H / 2))
    for name in ("ok", "wrongres", "normalised", "farcentre"):
        write_image(d / f"{name}.jpg")
    write_openpose(d / "ok.json", kp)
    big = kp.copy(); big[..., :2] *= 3.0
    write_openpose(d / "wrongres.json", big)
    norm = kp.copy(); norm[..., 0] /= W; norm[..., 1] /= H
    write_openpose(d / "normalised.json", norm)
    write_openpose(d / "farcentre.json", kp)
    (d / "farcentre.camera.json").write_text(json.dumps({"focal_length": 500, "principal_point": [-100, 1e9]}))
    s = fit_image_dir(d, tmp_path / "o", prior="none", body_model=bm, config=TINY, progress=False, render=False)
    assert [f["image"] for f in s.fitted] == ["ok.jpg"]
    why = dict(s.failed)
    assert "visible keypoints lie outside the 320x240 image" in why["wrongres.jpg"] and "wrongres.json" in why["wrongres.jpg"]
    assert "within [0, 1]" in why["normalised.jpg"] and "--keypoint_scale 0" in why["normalised.jpg"]
    assert "principal point (-100, 1e+09) lies far outside" in why["farcentre.jpg"] and "farcentre.camera.json" in why["farcentre.jpg"]
    assert not (tmp_path / "o" / "wrongres.npz").exists()
    # an image gone from the folder: its earlier outputs stay (not ours to delete) and are named
    (d / "ok.jpg").rename(tmp_path / "ok.jpg")
    write_image(d / "ok2.jpg")
    write_openpose(d / "ok2.json", kp)
    import logging

    with caplog.at_level(logging.WARNING, logger="posendf_plugin.fitting.image_batch"):
        fit_image_dir(d, tmp_path / "o", prior="none", body_model=bm, config=TINY, progress=False, render=False)
    assert "holds 1 fit output(s) of images not in this run (ok.npz)" in caplog.text


def test_exif_orientation_coco_wins_and_ids(tmp_path, bm):
    """A JPEG stored sideways with an EXIF orientation tag is read as displayed; a --coco-json the
    user names wins over a keypoint file beside the image (and summary.json says which file was
    read); COCO file names with a folder match by base name; OpenPose tracking ids are kept."""
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    stored = Image.fromarray(np.zeros((W, H, 3), np.uint8))  # W x H displayed, stored turned (H wide)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    stored.save(d / "phone.jpg", exif=exif.tobytes())
    assert image_batch._read_image(d / "phone.jpg").shape[:2] == (H, W)
    kp = people_seen_by(bm, (500.0, 500.0), (W / 2, H / 2), n=2)
    (d / "phone.json").write_text(json.dumps({"people": [
        {"person_id": [7], "pose_keypoints_2d": kp[0].reshape(-1).tolist()},
        {"person_id": [-1], "pose_keypoints_2d": kp[1].reshape(-1).tolist()}]}))
    s = fit_image_dir(d, tmp_path / "o1", prior="none", body_model=bm, config=TINY, progress=False, render=False)
    assert s.fitted[0]["person_ids"] == ["7", "1"] and s.fitted[0]["keypoints"].endswith("phone.json")
    # a COCO file naming the image with a folder prefix, one person, COCO-17 keypoints
    from posendf_plugin.keypoints import openpose25_to_coco17

    coco17 = openpose25_to_coco17(torch.as_tensor(kp[:1])).numpy()
    ann = {"images": [{"id": 1, "file_name": "val2017/phone.jpg"}],
           "annotations": [{"id": 42, "image_id": 1, "keypoints": np.concatenate(
               [coco17[0, :, :2], np.full((17, 1), 2.0)], -1).reshape(-1).tolist()}]}
    cj = tmp_path / "coco.json"
    cj.write_text(json.dumps(ann))
    s = fit_image_dir(d, tmp_path / "o2", prior="none", body_model=bm, coco_json=cj, config=TINY, progress=False, render=False)
    assert s.fitted[0]["person_ids"] == ["42"] and s.fitted[0]["keypoints"] == f"{cj} (phone.jpg)"
    assert str(np.load(tmp_path / "o2" / "phone.npz")["keypoint_format"]) == "coco17"
    ann["images"].append({"id": 2, "file_name": "train2017/phone.jpg"})
    cj.write_text(json.dumps(ann))
    with pytest.raises(ValueError, match="share the file name 'phone.jpg'"):
        fit_image_dir(d, tmp_path / "o3", prior="none", body_model=bm, coco_json=cj, config=TINY, progress=False)
