"""ASF/AMC reading, the ``data mocap`` batch (source fps, output names, bad input), reference
frames, and rig mapping from joint-name conventions or the joint tree alone."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from posendf_plugin.data.asf import amc_clip_name, find_asf_for, read_amc, read_amc_text, read_asf, read_asf_text
from posendf_plugin.data.bvh import read_bvh, write_bvh
from posendf_plugin.data.convert import convert_clip, quality_report
from posendf_plugin.data.mocap_batch import find_mocap_files, run_mocap
from posendf_plugin.data.refpose import detect_reference_frame, shared_first_frames
from posendf_plugin.data.rigs import detect_rig, generic_profile, resolve_rig
from posendf_plugin.skeleton import SMPL_JOINT_NAMES, SMPL_PARENTS, SMPL_REST_JOINTS

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
AMC_DIR = SHARED / "cmu-amc" / "original-120fps"

# --- ASF/AMC ------------------------------------------------------------------------------

TINY_ASF = """# a two-bone skeleton
:version 1.10
:name tiny
:units
  mass 1.0
  length 0.45
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name upper
     direction 0 1 0
     length 1
     axis 0 0 0 XYZ
    dof rz
    limits (-180.0 180.0)
  end
  begin
     id 2
     name lower
     direction 1 0 0
     length 2
     axis 0 0 90 XYZ
    dof rx ry rz
    limits (-180.0 180.0)
           (-180.0 180.0)
           (-inf inf)
  end
:hierarchy
  begin
    root upper
    upper lower
  end
"""


def _amc(frames, header=":FULLY-SPECIFIED\n:DEGREES\n"):
    out = [header.rstrip("\n")]
    for i, (root, up, low) in enumerate(frames, 1):
        out += [str(i), "root " + " ".join(map(str, root)), f"upper {up}", "lower " + " ".join(map(str, low))]
    return "\n".join(out) + "\n"


def test_asf_amc_forward_kinematics_and_conventions():
    skel = read_asf_text(TINY_ASF, "tiny.asf")
    assert skel.metres_per_unit == pytest.approx(0.056444, abs=1e-6)
    assert skel.bones["lower"].limits[2] == (-np.inf, np.inf)
    clip = read_amc_text(_amc([((1, 2, 3, 0, 0, 0), 90, (90, 0, 0)), ((0, 0, 0, 10, 20, 30), 0, (10, 20, 30))]),
                         skel, "tiny.amc", fps=60)
    assert clip.names == ["root", "upper", "lower", "lower_End"] and clip.parents == [-1, 0, 1, 2]
    assert clip.fps == pytest.approx(60.0) and clip.is_end == [False, False, False, True]
    pos, _ = clip.global_transforms()
    # frame 0: the upper bone turns 90° about z: its tip (0,1,0) goes to (-1,0,0); the lower
    # bone's frame C = Rz(90) makes its rx a rotation about world y: (2,0,0) -> (0,0,-2)
    np.testing.assert_allclose(pos[0, 1], [1, 2, 3], atol=1e-9)
    np.testing.assert_allclose(pos[0, 2], [0, 2, 3], atol=1e-9)
    np.testing.assert_allclose(pos[0, 3], [0, 2, 1], atol=1e-9)
    # 'rx ry rz' rotate about fixed axes in that order: M = Rz Ry Rx (scipy lower-case = extrinsic)
    m = Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_matrix()
    np.testing.assert_allclose(clip.local_rot[1, 0], m, atol=1e-12)
    C = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    np.testing.assert_allclose(clip.local_rot[1, 2], C @ m @ C.T, atol=1e-12)
    # :RADIANS gives the same motion
    rad = read_amc_text(_amc([((1, 2, 3, 0, 0, 0), np.pi / 2, (np.pi / 2, 0, 0))], ":RADIANS\n"), skel, "r.amc")
    np.testing.assert_allclose(rad.local_rot[0], clip.local_rot[0], atol=1e-12)
    # the root 'order' sets both the AMC value order and the rotation sequence; a bone's 'tx'
    # moves its start (in its axis frame), 'l' is read and ignored
    odd = read_asf_text(TINY_ASF.replace("order TX TY TZ RX RY RZ", "order RZ TX RY TY RX TZ")
                        .replace("    dof rz\n", "    dof rz tx l\n"), "odd.asf")
    text = ":DEGREES\n1\nroot 30 1 20 2 10 3\nupper 90 0.5 7\nlower 90 0 0\n"
    o = read_amc_text(text, odd, "odd.amc")
    np.testing.assert_allclose(o.local_rot[0, 0], Rotation.from_euler("zyx", [30, 20, 10], degrees=True).as_matrix(),
                               atol=1e-12)  # z first, then y, then x (fixed axes): Rx Ry Rz
    np.testing.assert_allclose(o.local_trans[0, 0], [1, 2, 3])
    np.testing.assert_allclose(o.local_trans[0, 1], [0.5, 0, 0], atol=1e-12)
    np.testing.assert_allclose(o.offsets[2], [0, 1, 0])  # ASF length kept


def test_asf_amc_bad_input_names_the_file(tmp_path):
    skel = read_asf_text(TINY_ASF, "tiny.asf")
    good = _amc([((0, 0, 0, 0, 0, 0), 5, (1, 2, 3))] * 3)
    cases = {
        "unknown bone": (good.replace("upper 5", "elbow 5", 1), r"bone 'elbow' is not in the skeleton tiny.asf"),
        "dof count": (good.replace("lower 1 2 3", "lower 1 2", 1), r"has 2 value\(s\) but tiny.asf gives it 3 dof"),
        "missing bone": (good.replace("upper 5\n", "", 1), r"frame 1 .* lacks bone\(s\) \['upper'\]"),
        "truncated": (good[: good.rindex("lower")], r"lacks bone\(s\) \['lower'\] \(truncated file\?\)"),
        "truncated line": (good[: good.rindex("2 3")], r"truncated file\?"),
        "truncated name": (good[: good.rindex("lower") + 3], r"ends inside bone name 'low' \(truncated file\?\)"),
        "nan": (good.replace("upper 5", "upper nan", 1), r"NaN/Inf"),
        "empty": (":DEGREES\n", r"no motion frames"),
    }
    for what, (text, pattern) in cases.items():
        with pytest.raises(ValueError, match=pattern) as e:
            read_amc_text(text, skel, "m.amc")
        assert str(e.value).startswith("m.amc: "), what
    with pytest.raises(ValueError, match=r"hierarchy names an unknown bone 'foot'"):
        read_asf_text(TINY_ASF.replace("upper lower", "upper foot"), "t.asf")
    with pytest.raises(ValueError, match=r"not in the :hierarchy"):
        read_asf_text(TINY_ASF.replace("    upper lower\n", ""), "t.asf")
    # an AMC without its skeleton: the message says how to pass one
    (tmp_path / "07_01.amc").write_text(good)
    with pytest.raises(FileNotFoundError, match=r"07_01.amc: no ASF skeleton .*07.asf.*--asf FILE"):
        find_asf_for(tmp_path / "07_01.amc")
    (tmp_path / "07.asf.gz").write_bytes(gzip.compress(TINY_ASF.encode()))
    assert find_asf_for(tmp_path / "07_01.amc") == tmp_path / "07.asf.gz"
    assert amc_clip_name("a/35_01.amc.gz") == "35_01"


@pytest.mark.skipif(not AMC_DIR.is_dir(), reason="../shared/data not present")
def test_real_cmu_amc_is_plausible_and_converts():
    skel = read_asf(AMC_DIR / "35.asf.gz")
    clip = read_amc(AMC_DIR / "35_01.amc.gz", skel)
    assert clip.num_frames == 358 and clip.fps == 120.0
    pos = clip.global_transforms()[0] * skel.metres_per_unit
    ix = {n: i for i, n in enumerate(clip.names)}
    thigh = np.linalg.norm(pos[:, ix["ltibia"]] - pos[:, ix["lfemur"]], axis=1)
    assert np.ptp(thigh) < 1e-9 and 0.35 < thigh[0] < 0.5
    assert np.percentile(pos[:, ix["ltoes"], 1], 1) > 0.0 and np.percentile(pos[:, ix["ltoes"], 1], 50) < 0.1  # Y up, feet down
    assert 1.4 < np.median(pos[:, ix["head"], 1]) < 1.8
    toe = pos[:, ix["ltoes"]] - pos[:, ix["lfoot"]]
    fwd = toe / np.linalg.norm(toe, axis=1, keepdims=True)
    mid = (pos[:, ix["lfemur"]] + pos[:, ix["lfoot"]]) / 2
    assert np.percentile(np.sum((pos[:, ix["ltibia"]] - mid) * fwd, 1), 5) > 0  # knees bend forward
    # the every-4th-frame copy of the same trial is exactly frames 0, 4, 8, ...
    sub = read_amc(SHARED / "cmu-amc" / "subject35-every4th-30fps" / "35_01_every4th.amc.gz",
                   SHARED / "cmu-amc" / "subject35-every4th-30fps" / "35.asf.gz", fps=30)
    np.testing.assert_allclose(sub.local_rot, clip.local_rot[::4][: sub.num_frames], atol=1e-6)
    m = detect_rig(clip.names, parents=clip.parents, offsets=clip.offsets)
    assert m.profile.name == "cmu-asf" and not m.missing_required
    import dataclasses

    res = convert_clip(clip, rig=dataclasses.replace(m.profile, scale=skel.metres_per_unit), fps=30)
    q = quality_report(res)
    assert q.mean_deg < 2 and q.p95_deg < 10 and q.hinge_offaxis_deg < 6, q
    np.testing.assert_allclose(np.median(res.motion.trans[:, 2]), 1.0, atol=0.1)  # pelvis ~1 m up (Z-up)


# --- batch: formats, frame rates, names, bad input -----------------------------------------


def _smpl_clip(path, n=12, seed=0, names=None, ref_frame=None, fps=30.0):
    """A small generated clip on the SMPL tree with Mixamo-style names."""
    rng = np.random.default_rng(seed)
    J = len(SMPL_JOINT_NAMES)
    rest = SMPL_REST_JOINTS.double().numpy() * 100
    off = np.stack([rest[0] * 0] + [rest[j] - rest[p] for j, p in enumerate(SMPL_PARENTS) if j > 0])
    rv = np.cumsum(rng.normal(0, 0.03, (n, J, 3)), axis=0) + rng.normal(0, 0.2, (1, J, 3))
    rv[:, 10:] *= 0.2
    local = Rotation.from_rotvec(rv.reshape(-1, 3)).as_matrix().reshape(n, J, 3, 3)
    root = np.stack([np.zeros(n), np.full(n, 95.0), np.linspace(0, 50, n)], 1)
    if ref_frame is not None:
        local = np.concatenate([ref_frame[None], local])
        root = np.concatenate([root[:1], root])
    names = names or [f"mixamorig:{n}" for n in _MIXAMO]
    ends = {SMPL_JOINT_NAMES.index("head"): np.array([0, 10.0, 0]),
            SMPL_JOINT_NAMES.index("left_foot"): np.array([0, 0, 5.0]),
            SMPL_JOINT_NAMES.index("right_foot"): np.array([0, 0, 5.0])}
    return write_bvh(path, names, list(SMPL_PARENTS), off, local, root, 1.0 / fps, "zyx", end_sites=ends)


_MIXAMO = ["Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1", "LeftFoot", "RightFoot",
           "Spine2", "LeftToeBase", "RightToeBase", "Neck", "LeftShoulder", "RightShoulder", "Head", "LeftArm",
           "RightArm", "LeftForeArm", "RightForeArm", "LeftHand", "RightHand", "LeftHandMiddle1", "RightHandMiddle1"]


def _cli(argv):
    from posendf_plugin.cli import main

    return main(argv)


def test_mocap_command_formats_fps_and_output_names(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    _smpl_clip(a / "walk.bvh.gz", seed=1)
    _smpl_clip(b / "walk.bvh.gz", seed=2)
    (tmp_path / "skel").mkdir()
    (tmp_path / "skel" / "07.asf").write_text(TINY_ASF)
    (tmp_path / "skel" / "07_01.amc").write_text(_amc([((0, 0, 0, 0, 0, 0), k, (1, 2, 3)) for k in range(5)]))
    out = tmp_path / "out"
    # same-named clips from two folders keep their folder names; --source-fps overrides Frame Time
    assert _cli(["data", "mocap", str(a / "walk.bvh.gz"), str(b / "walk.bvh.gz"), "--out", str(out),
                 "--source-fps", "60"]) == 0
    for sub in ("a", "b"):
        d = np.load(out / sub / "walk.npz")
        assert float(d["mocap_framerate"]) == 60.0 and d["pose_body"].shape == (12, 63)
    assert not (out / "walk.npz").exists()
    # 'data bvh' is the same command; the AMC finds its 07.asf; a non-humanoid skeleton is reported
    rc = _cli(["data", "bvh", str(a), str(tmp_path / "skel"), "--out", str(tmp_path / "o2"), "--report"])
    assert rc == 1
    rep = json.loads((tmp_path / "o2" / "bvh_report.json").read_text())
    assert [Path(c["file"]).name for c in rep["clips"]] == ["walk.bvh.gz"]
    assert "07_01.amc" in rep["failed"][0]["error"] and "cannot map this rig" in rep["failed"][0]["error"]
    # two files of one clip in one folder are refused, naming both
    _smpl_clip(a / "walk.bvh", seed=3)
    with pytest.raises(ValueError, match=r"walk.bvh and .*walk.bvh.gz would both be written"):
        find_mocap_files([a])
    with pytest.raises(ValueError, match=r"07.asf: an ASF file is a skeleton, not a motion"):
        find_mocap_files([tmp_path / "skel" / "07.asf"])
    capsys.readouterr()
    assert _cli(["data", "mocap", str(b), "--out", str(out), "--source-fps", "0"]) == 2
    err = capsys.readouterr().err
    assert "--source-fps must be positive" in err and "Traceback" not in err


def test_frame_time_in_milliseconds_is_refused(tmp_path, capsys):
    """A BVH whose Frame Time is in milliseconds (8.3333 for 120 fps) would be read as 0.12 fps:
    refused naming --source-fps, which converts it."""
    _smpl_clip(tmp_path / "ms.bvh.gz", fps=1 / 8.3333)
    assert _cli(["data", "mocap", str(tmp_path / "ms.bvh.gz"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Frame Time 8.3333 s" in err and "--source-fps" in err and "Traceback" not in err
    assert _cli(["data", "mocap", str(tmp_path / "ms.bvh.gz"), "--out", str(tmp_path / "o"), "--source-fps", "120"]) == 0
    assert float(np.load(tmp_path / "o" / "ms.npz")["mocap_framerate"]) == 120.0


def test_batch_reports_bad_files_and_keeps_good_ones(tmp_path):
    src = tmp_path / "in"
    _smpl_clip(src / "good.bvh", seed=4)
    # every frame identical
    J = len(SMPL_JOINT_NAMES)
    write_bvh(src / "still.bvh", [f"mixamorig:{n}" for n in _MIXAMO], list(SMPL_PARENTS),
              np.stack([SMPL_REST_JOINTS[0].numpy() * 0] + [(SMPL_REST_JOINTS[j] - SMPL_REST_JOINTS[p]).numpy()
                                                             for j, p in enumerate(SMPL_PARENTS) if j > 0]),
              np.tile(np.eye(3), (4, J, 1, 1)), np.zeros((4, 3)))
    # a 5,000-deep hierarchy
    depth = 5000
    text = "HIERARCHY\n" + "".join(f"{'ROOT' if i == 0 else 'JOINT'} j{i}\n{{\nOFFSET 0 1 0\nCHANNELS 3 Zrotation Xrotation Yrotation\n"
                                   for i in range(depth)) + "}\n" * depth + "MOTION\nFrames: 1\nFrame Time: 0.1\n" + "0 " * 3 * depth + "\n"
    (src / "deep.bvh").write_text(text)
    # an AMC with the wrong skeleton next to it, and a truncated one
    (src / "07.asf").write_text(TINY_ASF)
    (src / "07_01.amc").write_text(_amc([((0, 0, 0, 0, 0, 0), 1, (1, 2, 3))]).replace("upper", "thorax"))
    full = _amc([((0, 0, 0, 0, 0, 0), k, (1, 2, 3)) for k in range(4)])
    (src / "07_02.amc").write_text(full[: full.rindex("lower") + 8])
    s = run_mocap([src], tmp_path / "out", progress=False)
    assert [Path(c["file"]).name for c in s.converted] == ["good.bvh"]
    errors = {Path(f["file"]).name: f["error"] for f in s.failed}
    assert set(errors) == {"still.bvh", "deep.bvh", "07_01.amc", "07_02.amc"}
    assert "frames are identical" in errors["still.bvh"]
    assert "nests joints more than" in errors["deep.bvh"]
    assert "'thorax' is not in the skeleton" in errors["07_01.amc"]
    assert "truncated" in errors["07_02.amc"]
    for f, e in errors.items():
        assert f in e and "\n" not in e


# --- reference frames ---------------------------------------------------------------------


def test_reference_frames_dropped_and_reported(tmp_path):
    J = len(SMPL_JOINT_NAMES)
    rest = np.tile(np.eye(3), (J, 1, 1))
    bind = Rotation.from_rotvec(np.random.default_rng(9).normal(0, 0.5, (J, 3))).as_matrix()
    plain = read_bvh(_smpl_clip(tmp_path / "plain.bvh", n=40, seed=5))
    tpose = read_bvh(_smpl_clip(tmp_path / "tpose.bvh", n=40, seed=5, ref_frame=rest))
    assert detect_reference_frame(plain) is None
    ref = detect_reference_frame(tpose)
    assert ref is not None and ref.reason == "rest" and ref.jump_deg > 15
    # a shared (non-rest) bind pose at the start of two clips of the rig
    clips = {k: read_bvh(_smpl_clip(tmp_path / f"{k}.bvh", n=40, seed=s, ref_frame=bind)) for k, s in (("x", 6), ("y", 7))}
    clips["plain"] = plain
    shared = shared_first_frames(clips)
    assert shared == {"x": 2, "y": 2}
    assert detect_reference_frame(clips["x"], shared=True).reason == "shared"
    s = run_mocap([tmp_path], tmp_path / "out", progress=False, report=True)
    got = {Path(c["file"]).stem: c.get("reference_frame", {}).get("reason") for c in s.converted}
    assert got == {"plain": None, "tpose": "rest", "x": "shared", "y": "shared"}
    assert {Path(c["file"]).stem: c["frames"] for c in s.converted} == {"plain": 40, "tpose": 40, "x": 40, "y": 40}
    rep = json.loads((tmp_path / "out" / "mocap_report.json").read_text())
    assert rep["overall"]["reference_frames_dropped"] == 3
    kept = run_mocap([tmp_path / "tpose.bvh"], tmp_path / "out2", progress=False, keep_reference_frames=True)
    assert kept.converted[0]["frames"] == 41 and "reference_frame" not in kept.converted[0]


def test_a_clip_read_at_the_wrong_frame_rate_is_questioned(tmp_path, caplog):
    """A root faster than a sprint (here: a 30 fps walk read as 240 fps) gets a warning naming the
    clip and --source-fps; the same clip at its own rate does not."""
    from posendf_plugin.data.mocap_batch import IMPLAUSIBLE_ROOT_SPEED, root_speed
    from posendf_plugin.data.motion import load_motion

    clip = _smpl_clip(tmp_path / "walk.bvh", n=12)
    ok = run_mocap([clip], tmp_path / "ok", progress=False)
    assert "median_root_speed_m_s" not in ok.converted[0] and "faster than a sprint" not in caplog.text
    assert root_speed(load_motion(ok.converted[0]["out"])) == pytest.approx(0.5 / 11 * 30, rel=0.05)
    fast = run_mocap([clip], tmp_path / "fast", progress=False, source_fps=240)
    assert fast.converted[0]["median_root_speed_m_s"] > IMPLAUSIBLE_ROOT_SPEED
    assert "walk.bvh: the root moves at a median" in caplog.text and "--source-fps" in caplog.text


# --- rig mapping from name conventions or the tree alone --------------------------------------

_PARTS = {"hip": ("Thigh", "thigh"), "knee": ("Shin", "shin"), "ankle": ("Foot", "foot"), "foot": ("Toe", "toe"),
          "collar": ("Collar", "collar"), "shoulder": ("UpperArm", "upperarm"), "elbow": ("ForeArm", "forearm"),
          "wrist": ("Hand", "hand"), "hand": ("Mid1", "mid1")}
_CENTRE = {"pelvis": "Hips", "spine1": "Spine", "spine2": "Spine1", "spine3": "Chest", "neck": "Neck", "head": "Head"}
_STYLES = {
    "Left words": lambda s, P, p: f"{s.title()}{P}",
    "words after": lambda s, P, p: f"{P}{s.title()}",
    "L_ prefix": lambda s, P, p: f"{s[0].upper()}_{P}",
    "L prefix": lambda s, P, p: f"{s[0].upper()}{P}",
    "l prefix (Poser)": lambda s, P, p: f"{s[0]}{P}",
    "_L suffix": lambda s, P, p: f"{P}_{s[0].upper()}",
    ".L suffix": lambda s, P, p: f"{p}.{s[0].upper()}",
    ".l suffix": lambda s, P, p: f"{p}.{s[0]}",
    "lower case": lambda s, P, p: f"{s}{p}",
    "lower l prefix": lambda s, P, p: f"{s[0]}{p}",
    "3ds Max biped": lambda s, P, p: f"Bip01 {s[0].upper()} {P}",
}
_POSER = {"hip": "Thigh", "knee": "Shin", "ankle": "Foot", "foot": "Toe", "collar": "Collar", "shoulder": "Shldr",
          "elbow": "ForeArm", "wrist": "Hand", "hand": "Mid1"}
_CMU_LOWER = {"hip": "hip", "knee": "knee", "ankle": "ankle", "foot": "toe", "collar": "collar",
              "shoulder": "shoulder", "elbow": "elbow", "wrist": "wrist", "hand": "hand"}
_CMU_ASF = {"hip": "femur", "knee": "tibia", "ankle": "foot", "foot": "toes", "collar": "clavicle",
            "shoulder": "humerus", "elbow": "radius", "wrist": "wrist", "hand": "hand"}


def _smpl_tree(namer):
    """Names, parents, offsets of the SMPL rest skeleton plus end sites (head top, toe tips)."""
    names = []
    for s in SMPL_JOINT_NAMES:
        if s.startswith(("left_", "right_")):
            side, part = s.split("_", 1)
            names.append(namer(side, part))
        else:
            names.append(_CENTRE[s])
    rest = SMPL_REST_JOINTS.double().numpy()
    off = [rest[0] * 0] + [rest[j] - rest[p] for j, p in enumerate(SMPL_PARENTS) if j > 0]
    parents = list(SMPL_PARENTS)
    for leaf, o in (("head", (0, 0.1, 0)), ("left_foot", (0, 0, 0.05)), ("right_foot", (0, 0, 0.05))):
        parents.append(SMPL_JOINT_NAMES.index(leaf))
        names.append(names[SMPL_JOINT_NAMES.index(leaf)] + "_End")
        off.append(np.array(o, float))
    return names, parents, np.stack(off)


def _mapping(names, parents, offsets):
    g = generic_profile(names, parents, offsets)
    assert g is not None
    m = resolve_rig(names, g)
    assert not m.missing_required
    return m.source, {SMPL_JOINT_NAMES[k]: names[v] for k, v in m.ends.items()}


@pytest.mark.parametrize("style", list(_STYLES) + ["Poser/DAZ", "CMU lower case", "CMU ASF"])
def test_name_conventions_map_identically(style):
    if style == "Poser/DAZ":
        namer = lambda s, p: f"{s[0]}{_POSER[p]}"  # noqa: E731
    elif style == "CMU lower case":
        namer = lambda s, p: f"{s[0]}{_CMU_LOWER[p]}"  # noqa: E731
    elif style == "CMU ASF":
        namer = lambda s, p: f"{s[0]}{_CMU_ASF[p]}"  # noqa: E731
    else:
        namer = lambda s, p: _STYLES[style](s, *_PARTS[p])  # noqa: E731
    names, parents, off = _smpl_tree(namer)
    source, ends = _mapping(names, parents, off)
    assert source == list(range(24))  # every SMPL joint found, left and right not swapped
    assert set(ends) == {"head", "left_foot", "right_foot"}
    # a mirrored rest pose would swap left and right by geometry; the side names still decide
    src_m, _ = _mapping(names, parents, off * np.array([-1.0, 1.0, 1.0]))
    assert src_m == list(range(24)), "side names must win over a mirrored rest pose"


def test_meaningless_names_mapped_from_the_tree(tmp_path):
    names, parents, off = _smpl_tree(lambda s, p: "x")
    names = [f"bone{i:02d}" if not n.endswith("_End") else f"bone{parents[i]:02d}_End" for i, n in enumerate(names)]
    source, _ = _mapping(names, parents, off)
    assert source == list(range(24))
    # mirrored rest geometry (no side names): left and right follow the geometry
    src_m, _ = _mapping(names, parents, off * np.array([-1.0, 1.0, 1.0]))
    swap = [SMPL_JOINT_NAMES.index(n.replace("left", "@").replace("right", "left").replace("@", "right"))
            for n in SMPL_JOINT_NAMES]
    assert src_m == swap
    # end to end: a scrambled-name clip converts without a profile
    p = _smpl_clip(tmp_path / "scrambled.bvh", n=30, names=[f"bone{i:02d}" for i in range(24)])
    res = convert_clip(read_bvh(p))
    assert res.mapping.profile.name == "generic"
    q = quality_report(res)
    assert q.mean_deg < 2 and q.p95_deg < 12  # 30 random poses: no standing frame anchors the offsets


@pytest.mark.skipif(not (SHARED / "cmu-daz").is_dir(), reason="../shared/data not present")
def test_daz_rig_maps_and_converts():
    clip = read_bvh(SHARED / "cmu-daz" / "walks" / "46_01.bvh.gz")
    m = detect_rig(clip.names, parents=clip.parents, offsets=clip.offsets)
    assert m.profile.name == "daz"
    got = {SMPL_JOINT_NAMES[j]: clip.names[s] for j, s in enumerate(m.source) if s is not None}
    assert got["left_hip"] == "lThigh" and got["left_knee"] == "lShin" and got["left_ankle"] == "lFoot"
    assert got["right_shoulder"] == "rShldr" and got["pelvis"] == "hip" and got["spine3"] == "chest"
    g = generic_profile(clip.names, clip.parents, clip.offsets)  # the tree alone agrees
    assert resolve_rig(clip.names, g).source == m.source
    ref = detect_reference_frame(clip)
    assert ref is not None and ref.reason == "jump"
    res = convert_clip(clip, fps=30)
    q = quality_report(res)
    assert q.mean_deg < 2 and q.p95_deg < 10 and q.hinge_offaxis_deg < 8, q
