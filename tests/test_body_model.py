"""Body models: chumpy-free SMPL .pkl reading, smplx loading of SMPL / SMPL+H / SMPL-X files in
their official layouts (tiny random fixtures), and the embedded procedural stand-in."""
from __future__ import annotations

import math
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from posendf_plugin import body_model as BM
from posendf_plugin import bodygen
from posendf_plugin import rotations as R
from posendf_plugin import skeleton as S
from posendf_plugin.body_model import (
    BodyModel, find_body_model_file, get_body_model, load_body_model, load_smpl_pkl,
)

torch.set_num_threads(1)

V_SMPL = 6890      # smplx's extra keypoints index SMPL vertices up to 6787
V_SMPLX = 9930     # ... and SMPL-X vertices up to 9929
REST = (S.SMPL_REST_JOINTS.double() + torch.as_tensor(bodygen.PELVIS_OFFSET)).double()


# ---------------------------------------------------------------------------------------------
# Fixtures: tiny models in the official file layouts
# ---------------------------------------------------------------------------------------------


def _fake_chumpy(monkeypatch):
    """Install modules ``chumpy``, ``chumpy.ch`` and ``chumpy.reordering`` whose classes pickle
    like chumpy's (state dict from ``__getstate__``)."""
    ch_mod = types.ModuleType("chumpy.ch")
    re_mod = types.ModuleType("chumpy.reordering")

    class Ch:
        def __init__(self, x):
            self.x = x
            self._dirty_vars = set()
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense = False
            self._make_sparse = False

        def __getstate__(self):
            return dict(self.__dict__)

    class Select(Ch):
        def __init__(self, a, idxs, preferred_shape):
            self.a, self.idxs, self.preferred_shape = a, idxs, preferred_shape
            self._dirty_vars = set()

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    Select.__module__, Select.__qualname__ = "chumpy.reordering", "Select"
    ch_mod.Ch, re_mod.Select = Ch, Select
    root = types.ModuleType("chumpy")
    root.ch, root.reordering = ch_mod, re_mod
    for name, mod in (("chumpy", root), ("chumpy.ch", ch_mod), ("chumpy.reordering", re_mod)):
        monkeypatch.setitem(sys.modules, name, mod)
    return Ch, Select


def _smpl_arrays(rng, V=V_SMPL, J=24, parents=S.SMPL_PARENTS, n_pose=207, F=200):
    joints = rng.normal(scale=0.3, size=(J, 3))
    J_reg = np.zeros((J, V))
    for j in range(J):  # each joint = mean of 4 vertices placed around it
        idx = rng.choice(V, 4, replace=False)
        J_reg[j, idx] = 0.25
    v = rng.normal(scale=0.3, size=(V, 3))
    for j in range(J):
        idx = np.flatnonzero(J_reg[j])
        v[idx] = joints[j] + np.array([[0.01, 0, 0], [-0.01, 0, 0], [0, 0.01, 0], [0, -0.01, 0]])
    w = rng.random((V, J)) ** 8
    w /= w.sum(1, keepdims=True)
    kin = np.zeros((2, J), dtype=np.int64)
    kin[0] = [4294967295 if p < 0 else p for p in parents]
    kin[1] = np.arange(J)
    return dict(
        v_template=v, shapedirs=rng.normal(scale=0.01, size=(V, 3, 10)),
        posedirs=(rng.normal(scale=1e-3, size=(V, 3, n_pose))).astype(np.float32),
        J_regressor=J_reg, weights=w, kintree_table=kin,
        f=rng.integers(0, V, size=(F, 3)).astype(np.uint32),
    )


@pytest.fixture(scope="module")
def smpl_pkl(tmp_path_factory):
    """An SMPL .pkl like the official ones: chumpy Ch arrays, scipy sparse J_regressor (with the
    old ``scipy.sparse.csc`` class path), pickled by protocol 2, read back with latin1."""
    mp = pytest.MonkeyPatch()
    try:
        Ch, Select = _fake_chumpy(mp)
        rng = np.random.default_rng(0)
        a = _smpl_arrays(rng)
        payload = {
            "v_template": Ch(a["v_template"]),
            "shapedirs": Ch(a["shapedirs"]),
            "posedirs": a["posedirs"],
            "weights": Select(Ch(a["weights"].ravel()), np.arange(a["weights"].size), a["weights"].shape),
            "J_regressor": sp.csc_matrix(a["J_regressor"]),
            "J_regressor_prior": sp.csc_matrix(a["J_regressor"]),
            "kintree_table": a["kintree_table"],
            "f": a["f"],
            "J": Ch(a["J_regressor"] @ a["v_template"]),
            "bs_style": "lbs",
            "bs_type": "lrotmin",
        }
        raw = pickle.dumps(payload, protocol=2)
    finally:
        mp.undo()
    raw = raw.replace(b"scipy.sparse._csc\ncsc_matrix", b"scipy.sparse.csc\ncsc_matrix")
    d = tmp_path_factory.mktemp("smpl_models")
    (d / "smpl").mkdir()
    path = d / "smpl" / "SMPL_NEUTRAL.pkl"
    path.write_bytes(raw)
    return d, path, a


def _smplx_parents():
    parents = list(S.SMPL_PARENTS[:22]) + [15, 15, 15]
    for wrist in (20, 21):
        for _ in range(5):
            parents += [wrist, len(parents), len(parents) + 1]
    return parents


@pytest.fixture(scope="module")
def smplx_dir(tmp_path_factory):
    """A tiny SMPL-X model: ``smplx/SMPLX_NEUTRAL.npz`` with the keys smplx reads."""
    rng = np.random.default_rng(1)
    parents = _smplx_parents()
    a = _smpl_arrays(rng, V=V_SMPLX, J=55, parents=parents, n_pose=54 * 9)
    a["posedirs"] = np.zeros((V_SMPLX, 3, 54 * 9), dtype=np.float32)
    a["shapedirs"] = rng.normal(scale=0.01, size=(V_SMPLX, 3, 20))
    a.update(
        hands_componentsl=np.eye(45), hands_componentsr=np.eye(45),
        hands_meanl=np.zeros(45), hands_meanr=np.zeros(45),
        lmk_faces_idx=rng.integers(0, 200, size=51), lmk_bary_coords=np.full((51, 3), 1 / 3),
    )
    d = tmp_path_factory.mktemp("smplx_models")
    (d / "smplx").mkdir()
    np.savez_compressed(d / "smplx" / "SMPLX_NEUTRAL.npz", **a)
    return d, a


@pytest.fixture(scope="module")
def standin64():
    return get_body_model(dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# Real-model loading
# ---------------------------------------------------------------------------------------------


def test_plain_pickle_needs_chumpy_but_load_smpl_pkl_does_not(smpl_pkl):
    _, path, a = smpl_pkl
    with pytest.raises(ModuleNotFoundError, match="chumpy"):
        with open(path, "rb") as f:
            pickle.load(f, encoding="latin1")
    data = load_smpl_pkl(path)
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f"):
        assert isinstance(data[key], np.ndarray), key
        np.testing.assert_allclose(data[key], a[key], err_msg=key)
    assert data["bs_style"] == "lbs"


def test_smpl_pkl_through_smplx(smpl_pkl):
    d, path, a = smpl_pkl
    for where in (d, d / "smpl", path):
        module = load_body_model(where, gender="neutral", dtype=torch.float64)
        assert module.name() == "SMPL"
    bm = get_body_model(d, dtype=torch.float64)
    assert bm.model_type == "smpl" and not bm.is_standin and bm.num_vertices == V_SMPL
    rest = torch.as_tensor(a["J_regressor"] @ a["v_template"])
    g = torch.Generator().manual_seed(3)
    q = R.quat_random(4, 21, generator=g, dtype=torch.float64)
    out = bm(q)
    ref = S.body_joint_positions(q, rest_joints=rest)
    torch.testing.assert_close(out.joints, ref, atol=1e-6, rtol=0)
    # the pose correctives were read: a posed mesh differs from LBS without them
    no_pd = get_body_model(d, dtype=torch.float64)
    no_pd.model.posedirs.zero_()
    assert (no_pd(q).vertices - out.vertices).abs().max() > 1e-4


def test_load_smpl_pkl_refuses_foreign_code(tmp_path):
    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo unsafe",))

    p = tmp_path / "SMPL_NEUTRAL.pkl"
    p.write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load"):
        load_smpl_pkl(p)
    with pytest.raises(FileNotFoundError):
        load_smpl_pkl(tmp_path / "missing.pkl")


def test_missing_model_names_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_body_model(tmp_path, model_type="smpl")
    msg = str(e.value)
    assert "SMPL_NEUTRAL.pkl" in msg and "smplx" in msg and str(tmp_path) in msg
    with pytest.raises(FileNotFoundError, match="SMPLX_NEUTRAL.npz"):
        get_body_model(tmp_path / "nowhere", model_type="smplx")
    with pytest.raises(ValueError, match="model_type"):
        find_body_model_file(tmp_path, model_type="mano")
    with pytest.raises(ValueError, match="gender"):
        find_body_model_file(tmp_path, gender="robot")


def test_smplx_npz_and_63_wide_pose(smplx_dir):
    d, a = smplx_dir
    bm = get_body_model(d, model_type="smplx", dtype=torch.float64)
    assert bm.model_type == "smplx" and bm.num_betas == 10
    g = torch.Generator().manual_seed(4)
    q = R.quat_random(3, 21, generator=g, dtype=torch.float64)
    root = 0.3 * torch.randn(3, 3, generator=g, dtype=torch.float64)
    out = bm(S.quat_to_pose(q, 63), global_orient=root, keypoints="coco17")
    rest = torch.as_tensor(a["J_regressor"] @ a["v_template"])[:22]
    rot = torch.cat((R.axis_angle_to_matrix(root)[:, None], R.quat_to_matrix(q)), dim=1)
    ref, _ = S.forward_kinematics(rot, rest, parents=S.SMPL_PARENTS[:22])
    torch.testing.assert_close(out.joints[:, :22], ref, atol=1e-6, rtol=0)
    # SMPL's hand joints come from the middle-finger base joints
    torch.testing.assert_close(out.joints[:, 22:], out.model_joints[:, [28, 43]])
    assert out.keypoints.shape == (3, 17, 3) and out.model_kind == "smplx"
    assert out.vertices.shape == (3, V_SMPLX, 3)


def test_smplx_pkl_and_npz_never_reach_smplx_unpickling(smplx_dir, tmp_path, monkeypatch):
    """SMPL-X files are read by the package (restricted unpickler / no unpickling) and smplx is
    handed plain arrays: its own pickle.load / np.load(allow_pickle=True) never see a user file."""
    import pickle

    import smplx.body_models as sb

    d, a = smplx_dir
    (tmp_path / "smplx").mkdir()
    (tmp_path / "smplx" / "SMPLX_NEUTRAL.pkl").write_bytes(pickle.dumps({k: np.asarray(v) for k, v in a.items()}, protocol=2))
    seen = []
    real_load = np.load

    def spy(path, *args, **kwargs):
        seen.append((str(path), kwargs.get("allow_pickle")))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(sb.np, "load", spy)
    monkeypatch.setattr(sb.pickle, "load", lambda *a_, **k: pytest.fail("smplx unpickled a file"))
    pose = torch.full((2, 63), 0.1, dtype=torch.float64)
    v_npz = get_body_model(d, model_type="smplx", dtype=torch.float64)(pose).vertices
    v_pkl = get_body_model(tmp_path, model_type="smplx", dtype=torch.float64)(pose).vertices
    torch.testing.assert_close(v_pkl, v_npz)
    user_files = {str(d / "smplx" / "SMPLX_NEUTRAL.npz"), str(tmp_path / "smplx" / "SMPLX_NEUTRAL.pkl")}
    assert not [p for p, allow in seen if p in user_files and allow]


def test_smplh_amass_layout_without_hand_pca(tmp_path):
    rng = np.random.default_rng(2)
    parents = list(S.SMPL_PARENTS[:22])
    for wrist in (20, 21):
        for _ in range(5):
            parents += [wrist, len(parents), len(parents) + 1]
    a = _smpl_arrays(rng, J=52, parents=parents, n_pose=51 * 9)
    (tmp_path / "smplh" / "neutral").mkdir(parents=True)
    np.savez(tmp_path / "smplh" / "neutral" / "model.npz", **a)
    bm = get_body_model(tmp_path, model_type="smplh", dtype=torch.float64)
    assert bm.model_type == "smplh"
    aa = torch.zeros(2, 156, dtype=torch.float64)
    aa[:, :3] = torch.tensor([0.0, 0.5, 0.0])
    out = bm(aa)  # 156 = root + body + hands: the root is taken from the full pose
    rest = torch.as_tensor(a["J_regressor"] @ a["v_template"])[:22]
    rot = R.axis_angle_to_matrix(aa[:, :66].reshape(2, 22, 3))
    ref, _ = S.forward_kinematics(rot, rest, parents=S.SMPL_PARENTS[:22])
    torch.testing.assert_close(out.joints[:, :22], ref, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------
# The embedded stand-in
# ---------------------------------------------------------------------------------------------


def test_standin_loads_with_plain_smplx_create():
    import smplx

    d = BM.default_body_model_dir()
    m = smplx.create(str(d), model_type="smpl", gender="neutral")
    out = m(body_pose=torch.zeros(1, 69))
    assert out.vertices.shape == (1, bodygen.NUM_VERTICES, 3)
    assert out.joints.shape == (1, 45, 3)  # 24 joints + smplx's 21 vertex keypoints
    # plain pickle gives plain numpy arrays, marked as the stand-in
    with open(d / "smpl" / "SMPL_NEUTRAL.pkl", "rb") as f:
        data = pickle.load(f, encoding="latin1")
    assert isinstance(data["posedirs"], np.ndarray) and data["posedirs"].shape == (6890, 3, 207)
    assert not data["posedirs"].any()
    assert "NOT the SMPL model" in data[bodygen.STANDIN_MARKER_KEY]
    assert "NOT SMPL" in (d / "MODEL_CARD.md").read_text()


def test_standin_rest_joints_match_skeleton(standin64):
    assert standin64.is_standin
    torch.testing.assert_close(standin64.rest_joints(), REST, atol=1e-6, rtol=0)


def test_standin_posing_matches_forward_kinematics(standin64):
    g = torch.Generator().manual_seed(0)
    q = R.quat_random(6, 21, generator=g, dtype=torch.float64)
    root = torch.randn(6, 3, generator=g, dtype=torch.float64)
    transl = torch.randn(6, 3, generator=g, dtype=torch.float64)
    out = standin64(q, global_orient=root, transl=transl)
    ref = S.body_joint_positions(q, root, REST) + transl[:, None]
    torch.testing.assert_close(out.joints, ref, atol=1e-6, rtol=0)
    # SMPL's 69-wide body_pose passes through unchanged, hand rotations included
    aa = 0.4 * torch.randn(2, 23, 3, generator=g, dtype=torch.float64)
    rot = R.axis_angle_to_matrix(torch.cat((torch.zeros(2, 1, 3, dtype=torch.float64), aa), dim=1))
    ref2, _ = S.forward_kinematics(rot, REST)
    torch.testing.assert_close(standin64(aa.reshape(2, 69)).joints, ref2, atol=1e-6, rtol=0)


def test_standin_mesh_is_closed_and_adult_sized():
    trimesh = pytest.importorskip("trimesh")
    bm = get_body_model()
    v = bm().vertices.numpy()
    mesh = trimesh.Trimesh(v, bm.faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert all(part.volume > 0 for part in mesh.split(only_watertight=False))
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.6 < height < 1.9, height
    assert 0.05 < mesh.volume < 0.1  # parts overlap a little; a 70 kg adult is ~0.07 m^3
    assert len(v) == 6890 and len(bm.faces) < 20000


def test_standin_arrays_are_consistent():
    data = load_smpl_pkl(BM.default_body_model_dir() / "smpl" / "SMPL_NEUTRAL.pkl")
    w, jr = data["weights"], data["J_regressor"]
    assert w.shape == (6890, 24) and (w >= 0).all()
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
    assert (jr >= 0).all()
    np.testing.assert_allclose(jr.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(jr @ data["v_template"], REST.numpy(), atol=1e-5)
    assert data["shapedirs"].shape == (6890, 3, 10)
    assert np.abs(data["shapedirs"][..., :7]).max(axis=(0, 1)).min() > 1e-3  # 7 live directions
    assert not data["shapedirs"][..., 7:].any()
    np.testing.assert_array_equal(data["kintree_table"][0, 1:], S.SMPL_PARENTS[1:])


def test_standin_shape_directions(standin64):
    base = standin64()
    height = lambda o: float(o.vertices[..., 1].max() - o.vertices[..., 1].min())  # noqa: E731
    tall = standin64(betas=torch.tensor([1.0], dtype=torch.float64))
    assert height(tall) > height(base) + 0.05
    # girth moves no joint; leg length moves the knees but not the shoulders
    girth = standin64(betas=torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(girth.joints, base.joints)
    assert (girth.vertices - base.vertices).norm(dim=-1).mean() > 0.005
    legs = standin64(betas=torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    assert (legs.joints[4] - base.joints[4]).norm() > 0.01
    torch.testing.assert_close(legs.joints[16], base.joints[16])


def test_standin_keypoint_vertices_are_anatomical():
    v = load_smpl_pkl(BM.default_body_model_dir() / "smpl" / "SMPL_NEUTRAL.pkl")["v_template"]
    ids = bodygen.SMPLH_KEYPOINT_VERTEX_IDS
    J = REST.numpy()
    head, lank, rank = J[15], J[7], J[8]
    assert v[ids["nose"], 2] > head[2] + 0.07 and abs(v[ids["nose"], 0]) < 0.01
    assert v[ids["leye"], 0] > 0.01 > -0.01 > v[ids["reye"], 0]
    assert v[ids["lear"], 0] > 0.06 and v[ids["rear"], 0] < -0.06
    assert v[ids["LBigToe"], 2] > lank[2] + 0.12 and v[ids["LHeel"], 2] < lank[2] - 0.03
    assert v[ids["RBigToe"], 2] > rank[2] + 0.12 and v[ids["RHeel"], 1] < rank[1] - 0.05
    assert v[ids["lmiddle"], 0] > J[22, 0] + 0.08 and v[ids["rmiddle"], 0] < J[23, 0] - 0.08


def test_generator_is_deterministic_and_matches_packaged_file(tmp_path, monkeypatch):
    packaged = load_smpl_pkl(BM.default_body_model_dir() / "smpl" / "SMPL_NEUTRAL.pkl")
    # with no packaged copy, the model is generated into $POSENDF_CACHE
    monkeypatch.setattr(BM, "_ASSET_DIR", tmp_path / "no_assets")
    monkeypatch.setenv("POSENDF_CACHE", str(tmp_path / "cache"))
    assert not (tmp_path / "cache").exists()
    d = BM.default_body_model_dir()
    assert d.is_relative_to(tmp_path / "cache")
    fresh = load_smpl_pkl(d / "smpl" / "SMPL_NEUTRAL.pkl")
    for key in ("f", "kintree_table"):
        np.testing.assert_array_equal(fresh[key], packaged[key], err_msg=key)
    for key in ("v_template", "shapedirs", "J_regressor", "weights"):  # float: allow BLAS noise
        np.testing.assert_allclose(fresh[key], packaged[key], atol=1e-6, rtol=0, err_msg=key)


# ---------------------------------------------------------------------------------------------
# BodyModel inputs
# ---------------------------------------------------------------------------------------------


def test_body_pose_layouts_agree(standin64):
    g = torch.Generator().manual_seed(5)
    q = R.quat_random(2, 21, generator=g, dtype=torch.float64)
    ref = standin64(q).vertices
    for x in (R.quat_to_matrix(q), R.quat_to_axis_angle(q), S.quat_to_pose(q, 63), S.quat_to_pose(q, 69),
              S.quat_to_pose(q, 72), S.quat_to_pose(q, 156), S.quat_to_pose(q, 165)):
        torch.testing.assert_close(standin64(x).vertices, ref, atol=1e-9, rtol=0)
    # axis-angle goes to the model as given: an angle above pi is the same rotation
    aa = R.quat_to_axis_angle(q)
    long_way = aa - 2 * math.pi * aa / aa.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(standin64(long_way).vertices, ref, atol=1e-6, rtol=0)  # smplx adds 1e-8 to angles
    # leading dims and broadcast betas / transl
    out = standin64(q.reshape(1, 2, 21, 4), betas=torch.zeros(3, dtype=torch.float64),
                    transl=torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    assert out.vertices.shape == (1, 2, 6890, 3) and out.joints.shape == (1, 2, 24, 3)
    torch.testing.assert_close(out.vertices[0], ref + torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    # a (2, 3) root is two axis-angle rows (one per pose)
    root = torch.tensor([[0.2, -0.4, 0.1], [0.0, 0.0, 0.0]], dtype=torch.float64)
    both = standin64(q, global_orient=root).joints
    torch.testing.assert_close(both[1], standin64(q[1]).joints)
    torch.testing.assert_close(both[0], standin64(q[0], global_orient=root[0]).joints)


def test_body_model_input_errors(standin64):
    with pytest.raises(ValueError, match="global_orient"):
        standin64(torch.zeros(1, 72, dtype=torch.float64), global_orient=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="betas"):
        standin64(betas=torch.zeros(1, 11))
    with pytest.raises(ValueError, match="layout"):
        standin64(torch.zeros(1, 50))
    with pytest.raises(ValueError, match=r"body_pose contains NaN.*\[1\]"):
        standin64(torch.tensor([[0.0] * 63, [float("nan")] * 63], dtype=torch.float64))
    with pytest.raises(ValueError, match="keypoint format"):
        standin64(keypoints="h36m")
    with pytest.raises(ValueError, match="stand-in"):
        get_body_model(model_type="smplx")


def test_gradients_reach_pose_shape_and_translation():
    bm = get_body_model()
    pose = torch.zeros(2, 63, requires_grad=True)
    betas = torch.zeros(2, 10, requires_grad=True)
    transl = torch.zeros(2, 3, requires_grad=True)
    out = bm(pose + 0.1, betas=betas, transl=transl, keypoints="openpose25")
    out.keypoints.square().sum().backward()
    for t in (pose, betas, transl):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    assert isinstance(bm, BodyModel) and not any(True for _ in bm.parameters())
