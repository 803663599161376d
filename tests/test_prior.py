"""The public PoseNDF / NRDF prior: loading, layouts, bad input, sampling, interpolation."""
import numpy as np
import pytest
import torch

from posendf_plugin import prior as P
from posendf_plugin import rotations as R
from posendf_plugin import skeleton as S
from posendf_plugin.model import POSENDF_ORIGINAL_PARENTS
from posendf_plugin.priors import get_prior

from _ndf_fixtures import clean_poses, labelled, tiny_config, trained_tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def prior():
    return P.PoseNDF.from_checkpoint(trained_tiny())


@pytest.fixture(scope="module")
def ckpt():
    return torch.load(trained_tiny(), weights_only=True)


def _q(n, seed=0):
    return R.quat_random(n, 21, generator=torch.Generator().manual_seed(seed))


def test_layout_autodetection(prior):
    q = labelled(clean_poses(), 6, seed=3)[0]
    ref = prior.distance(q)
    aa = R.quat_to_axis_angle(q)
    for layout in (63, 69, 72):
        torch.testing.assert_close(prior.distance(S.quat_to_pose(q, layout)), ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(prior.distance(aa), ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(prior.distance(R.quat_to_matrix(q)), ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(prior.distance((-q).numpy()), ref, atol=1e-5, rtol=0)  # sign-invariant
    assert prior.distance(q.reshape(2, 3, 21, 4)).shape == (2, 3)
    with pytest.raises(ValueError, match="not a supported body-pose layout|last dimension must be one of"):
        prior.distance(torch.zeros(4, 66))


def test_bad_input(prior):
    q = _q(5)
    bad = q.clone()
    bad[3, 2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or Inf values in 1 row\(s\): \[3\]"):
        prior.distance(bad)
    with pytest.warns(UserWarning, match="not unit length"):
        out = prior.distance(q * 3.0)
    torch.testing.assert_close(out, prior.distance(q))
    zero = q.clone()
    zero[1, 4] = 0.0
    with pytest.raises(ValueError, match=r"zero-length quaternions in row\(s\) \[1\]"):
        prior.project(zero)


def test_energy_is_differentiable_and_weights_frozen(prior):
    aa = (R.quat_to_axis_angle(_q(3)) * 0.5).reshape(3, 63).requires_grad_(True)
    e = prior.energy(aa)
    assert e.shape == (3,) and bool((e >= 0).all())
    e.sum().backward()
    assert aa.grad is not None and bool(torch.isfinite(aa.grad).all()) and float(aa.grad.abs().sum()) > 0
    assert all(not p.requires_grad for p in prior.parameters())
    torch.testing.assert_close(prior(aa).detach(), e.detach())


def test_sample_is_seeded_and_on_manifold(prior):
    a, b, c = prior.sample(16, seed=1), prior.sample(16, seed=1), prior.sample(16, seed=2)
    assert a.shape == (16, 21, 4) and torch.equal(a, b) and not torch.equal(a, c)
    init, res = prior.sample_with_result(16, seed=1)
    assert float(res.distance.mean()) < 0.25 * float(prior.distance(init).mean())
    near = prior.sample(8, seed=0, around=clean_poses(), sigma=0.3)
    assert near.shape == (8, 21, 4)
    with pytest.raises(ValueError, match="positive integer"):
        prior.sample(0)


def test_interpolate_projects_intermediates(prior):
    clean = clean_poses()
    a, b = clean[0], clean[-1]
    path = prior.interpolate(S.quat_to_pose(a[None], 63), b, steps=7)
    plain = prior.interpolate(a, b, steps=7, project=False)
    assert path.shape == plain.shape == (7, 21, 4)
    torch.testing.assert_close(path[0], a, atol=1e-5, rtol=0)
    torch.testing.assert_close(path[-1], b, atol=1e-5, rtol=0)
    torch.testing.assert_close(plain[3], R.quat_canonical(R.quat_slerp(a, b, 0.5)), atol=1e-5, rtol=0)
    assert float(prior.distance(path[1:-1]).mean()) <= float(prior.distance(plain[1:-1]).mean()) + 1e-6
    with pytest.raises(ValueError, match="steps"):
        prior.interpolate(a, b, steps=1)


def test_registry_and_nrdf_variant(ckpt, tmp_path):
    path = trained_tiny()
    p = get_prior("posendf", checkpoint=path)
    assert isinstance(p, P.PoseNDF) and p.method == "posendf"
    n = get_prior("nrdf", checkpoint=path)
    assert isinstance(n, P.NRDF) and n.method == "riemannian" and n.name == "nrdf"
    torch.testing.assert_close(n.distance(_q(3)), p.distance(_q(3)))


def test_from_pretrained_missing_names_training_command(monkeypatch, tmp_path):
    monkeypatch.setattr(P, "ASSETS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"posendf train --config configs/cmu.yaml"):
        P.PoseNDF.from_pretrained()
    with pytest.raises(FileNotFoundError, match=r"configs/nrdf.yaml"):
        P.NRDF.from_pretrained()
    with pytest.raises(FileNotFoundError, match=r"configs/cmu_density.yaml"):
        P.PoseNDF.from_pretrained("posendf_density")
    (tmp_path / P.DEFAULT_WEIGHTS["posendf"]).write_bytes(trained_tiny().read_bytes())
    assert isinstance(P.PoseNDF.from_pretrained(), P.PoseNDF)


def test_weights_named_in_repr(monkeypatch, tmp_path):
    """Both shipped fields are prior 'posendf' (one scale table); ``weights`` and ``repr`` say
    which file was loaded, so a host's log tells them apart."""
    monkeypatch.setattr(P, "ASSETS_DIR", tmp_path)
    for name in ("posendf", "posendf_density"):
        (tmp_path / P.DEFAULT_WEIGHTS[name]).write_bytes(trained_tiny().read_bytes())
    dens = get_prior("posendf", pretrained="posendf_density")
    plain = get_prior("posendf")
    assert dens.name == plain.name == "posendf"
    assert "'posendf_density'" in dens.weights and "'posendf_density'" in repr(dens)
    assert "'posendf'" in plain.weights and "posendf_density" not in repr(plain)
    assert get_prior("posendf", checkpoint=trained_tiny()).weights == str(trained_tiny())


def test_checkpoint_errors(ckpt, tmp_path):
    # config and weights out of sync: names the offending key
    bad = dict(ckpt, config={**ckpt["config"], "model": {**ckpt["config"]["model"], "hidden": [64, 32]}})
    torch.save(bad, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match=r"key 'layers.0.weight' has shape \(32, 84\).*builds \(64, 84\)"):
        P.PoseNDF.from_checkpoint(tmp_path / "mismatch.pt")
    # unknown key in the stored config
    bad = dict(ckpt, config={**ckpt["config"], "model": {**ckpt["config"]["model"], "width": 3}})
    torch.save(bad, tmp_path / "unknown.pt")
    with pytest.raises(ValueError, match=r"unknown key 'width' in section 'model'"):
        P.PoseNDF.from_checkpoint(tmp_path / "unknown.pt")
    # missing weight
    sd = dict(ckpt["model_state_dict"])
    sd.pop("layers.1.bias")
    torch.save(dict(ckpt, model_state_dict=sd), tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"missing key 'layers.1.bias'"):
        P.PoseNDF.from_checkpoint(tmp_path / "missing.pt")
    # truncated file
    raw = trained_tiny().read_bytes()
    (tmp_path / "trunc.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated, corrupt"):
        P.PoseNDF.from_checkpoint(tmp_path / "trunc.pt")
    with pytest.raises(FileNotFoundError):
        P.PoseNDF.from_checkpoint(tmp_path / "nope.pt")


def _original_layout(seed=0, hidden=(16, 8), feat=6, act="softplus"):
    """A dummy checkpoint in the authors' layout (model/posendf.py: enc = StructureEncoder,
    dfnet = DFNet; BoneMLP = Linear(in, 4+F), act, Linear(4+F, F), act)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for j, p in enumerate(POSENDF_ORIGINAL_PARENTS):
        n_in = 4 if p == -1 else 4 + feat
        sd[f"enc.net.{j}.net.0.weight"] = torch.randn(4 + feat, n_in, generator=g) * 0.5
        sd[f"enc.net.{j}.net.0.bias"] = torch.randn(4 + feat, generator=g) * 0.1
        sd[f"enc.net.{j}.net.2.weight"] = torch.randn(feat, 4 + feat, generator=g) * 0.5
        sd[f"enc.net.{j}.net.2.bias"] = torch.randn(feat, generator=g) * 0.1
    dims = (21 * feat,) + hidden + (1,)
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        sd[f"dfnet.lin{i}.weight"] = torch.randn(b, a, generator=g) / a ** 0.5
        sd[f"dfnet.lin{i}.bias"] = torch.randn(b, generator=g) * 0.1
    return sd


def _original_forward(sd, q, act):
    """Re-implementation of the authors' forward pass, joint by joint."""
    a = {"softplus": lambda x: torch.nn.functional.softplus(x, beta=100), "lrelu": torch.nn.functional.leaky_relu}[act]
    out_a = {"softplus": a, "lrelu": torch.relu}[act]
    feats = [None] * 21
    for j, p in enumerate(POSENDF_ORIGINAL_PARENTS):
        x = q[:, j] if p == -1 else torch.cat([q[:, j], feats[p]], -1)
        h = a(x @ sd[f"enc.net.{j}.net.0.weight"].T + sd[f"enc.net.{j}.net.0.bias"])
        feats[j] = a(h @ sd[f"enc.net.{j}.net.2.weight"].T + sd[f"enc.net.{j}.net.2.bias"])
    x = torch.cat(feats, -1)
    n = len([k for k in sd if k.startswith("dfnet.lin") and k.endswith("weight")])
    for i in range(n):
        x = x @ sd[f"dfnet.lin{i}.weight"].T + sd[f"dfnet.lin{i}.bias"]
        x = a(x) if i < n - 1 else out_a(x)
    return x[:, 0]


@pytest.mark.parametrize("act", ["softplus", "lrelu"])
def test_authors_checkpoint_layout(tmp_path, act):
    sd = _original_layout()
    path = tmp_path / "checkpoint_epoch_best.tar"
    torch.save({"epoch": 3, "model_state_dict": sd, "optimizer_state_dict": {"state": {}, "param_groups": []}},
               path, _use_new_zipfile_serialization=False)
    yml = tmp_path / "config.yaml"
    yml.write_text(f"model:\n  DFNet:\n    act: {act}\n    beta: 100\n  StrEnc:\n    act: {act}\n    beta: 100\n")
    prior = P.PoseNDF.from_original_checkpoint(path, config_yaml=yml)
    q = _q(6)
    torch.testing.assert_close(prior.distance(q), _original_forward(sd, q, act), atol=1e-5, rtol=1e-5)
    # our own loader points to the right one
    with pytest.raises(ValueError, match="from_original_checkpoint"):
        P.PoseNDF.from_checkpoint(path)
    sd.pop("enc.net.5.net.2.bias")
    torch.save({"model_state_dict": sd}, path)
    with pytest.raises(ValueError, match=r"enc.net.5.net.2.bias"):
        P.PoseNDF.from_original_checkpoint(path, activation=act)


def _untrained_model(path, seed, **model):
    """A ``model.pt`` of ``posendf train``'s layout around an untrained tiny network."""
    from posendf_plugin.model import PoseNDFNet

    cfg = tiny_config(model=model) if model else tiny_config()
    torch.save({"config": cfg.to_dict(), "model_state_dict": PoseNDFNet(cfg.model, seed=seed).state_dict()}, path)
    return path


def test_ensemble_is_the_mean_or_min_of_its_fields(tmp_path, capsys):
    from posendf_plugin.cli import main

    a = _untrained_model(tmp_path / "a.pt", 1)
    b = _untrained_model(tmp_path / "b.pt", 2)
    assert main(["ensemble", str(a), str(b), "--out", str(tmp_path / "e.pt")]) == 0
    assert "mean of 2 fields" in capsys.readouterr().out
    e = get_prior("posendf", checkpoint=tmp_path / "e.pt")
    fa, fb = P.PoseNDF.from_checkpoint(a), P.PoseNDF.from_checkpoint(b)
    q = _q(6)
    assert not torch.allclose(fa.distance(q), fb.distance(q))  # two different fields
    torch.testing.assert_close(e.distance(q), (fa.distance(q) + fb.distance(q)) / 2)
    x = q.clone().requires_grad_(True)
    e.energy(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in e.parameters())
    assert "mean of 2 fields" in repr(e)
    assert e.project(q, max_iter=5).poses.shape == q.shape
    # the minimum: zero wherever any member is
    assert main(["ensemble", str(a), str(b), "--reduce", "min", "--out", str(tmp_path / "m.pt")]) == 0
    assert "min of 2 fields" in capsys.readouterr().out
    m = P.PoseNDF.from_checkpoint(tmp_path / "m.pt")
    torch.testing.assert_close(m.distance(q), torch.minimum(fa.distance(q), fb.distance(q)))
    assert "min of 2 fields" in repr(m)
    # errors: one model, an ensemble as a member, networks that differ -- one line, exit 2
    c = _untrained_model(tmp_path / "c.pt", 3, hidden=[16, 8])
    ck = torch.load(a, weights_only=True)
    torch.save(dict(ck, config={**ck["config"], "experiment": {**ck["config"]["experiment"], "prior": "nrdf"}}),
               tmp_path / "nrdf.pt")
    for args, msg in (([a], "at least two models"), ([str(tmp_path / "e.pt"), a], "already an ensemble"),
                      ([a, c], "differs from"), ([a, tmp_path / "nrdf.pt"], "differs from")):
        assert main(["ensemble", *map(str, args), "--out", str(tmp_path / "x.pt")]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "x.pt").exists()
    # a corrupt member list names the file
    ck = torch.load(tmp_path / "e.pt", weights_only=True)
    torch.save(dict(ck, members=[ck["members"][0], "junk"]), tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad.pt: member 1 is not a set of weights"):
        P.PoseNDF.from_checkpoint(tmp_path / "bad.pt")
    torch.save(dict(ck, reduce="max"), tmp_path / "bad_reduce.pt")
    with pytest.raises(ValueError, match=r"bad_reduce.pt: unknown 'reduce' 'max'"):
        P.PoseNDF.from_checkpoint(tmp_path / "bad_reduce.pt")


def test_cli_sample_project_interpolate(tmp_path, capsys):
    from posendf_plugin.cli import main
    from posendf_plugin.data.motion import load_motion
    from posendf_plugin.data.posesets import load_pose_set, save_pose_set

    model = str(trained_tiny())
    ref = tmp_path / "clean.npz"
    save_pose_set(ref, clean_poses())
    out = tmp_path / "s"
    assert main(["sample", "--n", "12", "--out", str(out), "--checkpoint", model, "--reference", str(ref),
                 "--around", str(ref), "--sigma", "0.3", "--seed", "3"]) == 0
    msg = capsys.readouterr().out
    assert "APD" in msg and "within 30 deg" in msg
    assert (out / "samples.png").read_bytes()[:4] == b"\x89PNG"
    m = load_motion(out / "samples.npz")
    assert m.pose_body.shape == (12, 63)
    assert main(["project", "--poses", str(out / "initial.npz"), "--out", str(tmp_path / "p.npz"), "--checkpoint", model]) == 0
    assert load_motion(tmp_path / "p.npz").pose_body.shape == (12, 63)
    assert main(["project", "--poses", str(ref), "--out", str(tmp_path / "p_set.npz"), "--checkpoint", model,
                 "--prior", "nrdf", "--max-iter", "5"]) == 0
    assert len(load_pose_set(tmp_path / "p_set.npz")) == len(clean_poses())
    assert main(["interpolate", "--start", f"{ref}:0", "--end", f"{ref}:-1", "--steps", "5", "--out",
                 str(tmp_path / "i"), "--checkpoint", model]) == 0
    assert "vs plain slerp" in capsys.readouterr().out
    assert load_motion(tmp_path / "i" / "interpolation.npz").pose_body.shape == (5, 63)
    # user errors are one line, exit code 2
    assert main(["interpolate", "--start", f"{ref}:999", "--end", str(ref), "--out", str(tmp_path / "j"),
                 "--checkpoint", model]) == 2
    assert "out of range" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["smplx", "smpl72", "amass", "posendf_quat"])
def test_cli_project_writes_the_input_layout_back(tmp_path, capsys, layout):
    """``posendf project`` gives the same file back: each pose key in its own layout with only the
    21 body joints replaced; root, hands, translation, shape and other keys untouched."""
    from posendf_plugin.cli import main
    from posendf_plugin.skeleton import quat_to_pose, set_body_pose, to_body_quat

    q = clean_poses()[:6]
    n = len(q)
    g = np.random.default_rng(0)
    extra = {"global_orient": g.normal(size=(n, 3)).astype(np.float32), "transl": g.normal(size=(n, 3)).astype(np.float32),
             "betas": g.normal(size=(n, 10)).astype(np.float32)}
    if layout == "smplx":
        arrays = dict(extra, body_pose=quat_to_pose(q, 63).numpy())
    elif layout == "smpl72":
        full = g.normal(size=(n, 72)).astype(np.float32) * 0.2
        arrays = dict(extra, poses=set_body_pose(torch.from_numpy(full), q).numpy())
    elif layout == "amass":
        arrays = {"pose_body": quat_to_pose(q, 63).numpy(), "poses": quat_to_pose(q, 156).numpy() + 0.1,
                  "root_orient": extra["global_orient"], "trans": extra["transl"], "mocap_framerate": np.array(60.0)}
    else:
        arrays = dict(extra, body_pose=q.numpy().astype(np.float64))
    src = tmp_path / "in.npz"
    np.savez(src, **arrays)
    assert main(["project", "--poses", str(src), "--out", str(tmp_path / "out.npz"), "--checkpoint", str(trained_tiny())]) == 0
    assert "every other key as in the input" in capsys.readouterr().out
    out = np.load(tmp_path / "out.npz")
    assert sorted(out.files) == sorted(arrays)
    pose_keys = [k for k in arrays if k in ("pose_body", "poses", "body_pose")]
    for k in arrays:
        assert out[k].shape == arrays[k].shape and out[k].dtype == arrays[k].dtype, k
        if k not in pose_keys:
            np.testing.assert_array_equal(out[k], arrays[k])
    projected = [to_body_quat(torch.from_numpy(out[k])) for k in pose_keys]
    for p in projected[1:]:
        assert torch.allclose(p, projected[0], atol=1e-5)
    for k in pose_keys:
        if arrays[k].ndim == 2 and arrays[k].shape[1] in (72, 156):  # root and hand columns kept
            np.testing.assert_array_equal(out[k][:, :3], arrays[k][:, :3])
            np.testing.assert_array_equal(out[k][:, 66:], arrays[k][:, 66:])


def test_pose_files_in_degrees_or_xyzw_order_are_refused(tmp_path):
    """A pose file in degrees, or with (x, y, z, w) quaternions, is refused with one line naming
    the file, the key and the fix — not read as a wrong pose."""
    from posendf_plugin.data.motion import load_motion
    from posendf_plugin.data.posesets import load_pose_set
    from posendf_plugin.skeleton import pose_units_problem, quat_to_pose

    q = clean_poses()
    aa = quat_to_pose(q, 63).numpy()
    assert pose_units_problem(aa) is None and pose_units_problem(q) is None
    uniform = torch.nn.functional.normalize(torch.randn(500, 21, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert pose_units_problem(uniform) is None  # random rotations are not mistaken for x,y,z,w
    np.savez(tmp_path / "deg.npz", pose_body=np.rad2deg(aa), trans=np.zeros((len(aa), 3)))
    for load in (load_motion, load_pose_set):
        with pytest.raises(ValueError, match=r"deg.npz: 'pose_body': .*look like degrees.*numpy.deg2rad"):
            load(tmp_path / "deg.npz")
    np.savez(tmp_path / "xyzw.npz", body_pose=q.numpy()[..., [1, 2, 3, 0]])
    for load in (load_motion, load_pose_set):
        with pytest.raises(ValueError, match=r"xyzw.npz: 'body_pose': .*\(x, y, z, w\) order.*\[3, 0, 1, 2\]"):
            load(tmp_path / "xyzw.npz")


def test_shipped_density_field_ranks_data_poses_by_how_common_they_are():
    """The density-aware Pose-NDF (image fitting's default, ``posendf_density``) follows the mean
    distance to the 50 nearest training poses on the data poses themselves, where the default
    field is pulled towards 0 (label 0 and the manifold term); image fitting loads it for
    ``posendf`` by default."""
    from posendf_plugin.data.labels import brute_force_knn
    from posendf_plugin.data.posesets import load_pose_set
    from posendf_plugin.fitting.image_fit import ImageFitConfig
    from posendf_plugin.fitting.params import load_prior
    from posendf_plugin.skeleton import with_mirror_images

    dens = load_prior("posendf", shipped=ImageFitConfig().shipped_weights["posendf"])
    default = load_prior("posendf")
    train = load_pose_set(P.ASSETS_DIR / "cmu_train.npz").quat.float()
    q = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:300]]
    label = brute_force_knn(q, with_mirror_images(train), "posendf", 50)[0].mean(1).float()
    with torch.no_grad():
        f_dens, f_default = dens.distance(q), default.distance(q)
    corr = torch.corrcoef(torch.stack((f_dens, label)))[0, 1]
    assert float(corr) > 0.9, float(corr)  # measured 0.947 on these 300 poses (the seed-0 field before: 0.950)
    assert float((f_dens - label).abs().mean()) < 0.35 * float(label.mean())  # measured 0.240 x (before: 0.236 x)
    assert float(f_default.mean()) < 0.7 * float(label.mean())  # measured 0.32 x (the k = 50 field before: 0.52 x)


def test_an_empty_batch_gives_empty_results_everywhere():
    """A batch of 0 poses (e.g. a frame range with nobody in it) gives empty energies, an empty
    completion and a zero loss in the adapters — not a reshape error."""
    from posendf_plugin.fitting.completion import complete_poses
    from posendf_plugin.integrations.easymocap import PoseNDFPrior
    from posendf_plugin.integrations.smplifyx import build_smplifyx_prior

    for name in ("posendf", "nrdf", "vposer", "gmm", "none"):
        p = get_prior(name)
        x = torch.zeros(0, 63, requires_grad=True)
        e = p.energy(x)
        e.sum().backward()
        assert e.shape == (0,) and x.grad.shape == (0, 63), name
        assert p.energy(torch.zeros(0, 21, 4)).shape == (0,), name
        r = complete_poses(torch.zeros(0, 21, 4), "arms", name)
        assert r.quat.shape == (0, 21, 4) and r.energy.shape == (0,), name
    assert float(PoseNDFPrior(prior="posendf")(poses=torch.zeros(0, 69))) == 0.0
    assert build_smplifyx_prior("posendf", model_type="smplx")(torch.zeros(0, 63), torch.zeros(0, 10)).numel() == 0


def test_get_prior_moves_every_prior_to_the_device_and_refuses_a_missing_one():
    for name in ("posendf", "nrdf", "vposer", "gmm", "none"):
        p = get_prior(name, device="cpu")
        assert all(t.device.type == "cpu" for t in p.parameters()), name
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device cuda: CUDA is not available"):
            get_prior("gmm", device="cuda")
    with pytest.raises(ValueError, match="device 'gpu' is not a device"):
        get_prior("vposer", device="gpu")


def test_project_argument_errors_are_one_clear_line():
    p = P.PoseNDF.from_pretrained()
    q = clean_poses()[:5]
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        p.project(q, batch_size=0)
    with pytest.raises(ValueError, match=r"free must have shape \(21,\) or \(5, 21\)"):
        p.project(q, free=torch.ones(5, dtype=torch.bool))
    assert p.project(q, free=torch.ones(21, dtype=torch.bool), max_iter=1).poses.shape == (5, 21, 4)


def test_ctrl_c_is_one_line_with_the_way_to_go_on(monkeypatch, capsys):
    """An interrupted command prints one line (no traceback), exit status 130; commands that can
    resume say how."""
    from posendf_plugin import cli

    def interrupted(args):
        raise KeyboardInterrupt

    real = cli.build_parser

    def parser():
        p = real()
        for act in p._subparsers._group_actions:  # noqa: SLF001 - test hook: every command interrupted
            for sub in act.choices.values():
                sub.set_defaults(func=interrupted)
        return p

    monkeypatch.setattr(cli, "build_parser", parser)
    assert cli.main(["train", "--config", "configs/tiny.yaml"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "posendf train: interrupted; run the same command with --resume to continue from the last checkpoint"
    assert cli.main(["sample", "--n", "2", "--out", "x"]) == 130
    assert capsys.readouterr().err.strip() == "posendf sample: interrupted"


def test_interpolation_paths_have_no_jumps():
    """``interpolate`` by per-pose projection (``smoothness=None``) projects in short steps
    (INTERPOLATION_PROJECTION): between real poses no step of the path is more than twice the plain
    slerp's largest step; the default path optimisation (smoothness) keeps the ends, lowers f below
    slerp's and has no jumps either; the projection settings can be overridden."""
    from posendf_plugin.data.default import default_pose_set
    from posendf_plugin.prior import INTERPOLATION_PROJECTION, PoseNDF
    from posendf_plugin.rotations import nrdf_pose_distance

    prior = PoseNDF.from_pretrained()
    q = default_pose_set("val").quat
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(len(q), (8, 2), generator=g)
    for i, j in idx.tolist():
        plain = prior.interpolate(q[i], q[j], 11, project=False)
        limit = max(2 * float(nrdf_pose_distance(plain[1:], plain[:-1]).max()), 0.2)  # 0.2 rad: 2.5° RMS per joint
        f_plain = prior.distance(plain[1:-1])
        for path in (prior.interpolate(q[i], q[j], 11, smoothness=None), prior.interpolate(q[i], q[j], 11)):
            torch.testing.assert_close(path[[0, -1]], plain[[0, -1]])
            assert float(nrdf_pose_distance(path[1:], path[:-1]).max()) <= limit
            assert float(prior.distance(path[1:-1]).mean()) <= float(f_plain.mean()) + 1e-6
    assert INTERPOLATION_PROJECTION["max_step"] < 1.0
    seen = {}
    real = prior.project

    def spy(x, **kw):
        seen.update(kw)
        return real(x, **kw)

    prior.project = spy
    prior.interpolate(q[0], q[1], 5, smoothness=None, max_step=0.5)
    assert seen["max_step"] == 0.5 and seen["max_iter"] == INTERPOLATION_PROJECTION["max_iter"]
    with pytest.raises(ValueError, match="smoothness"):
        prior.interpolate(q[0], q[1], 5, smoothness=0.0)
    with pytest.raises(ValueError, match="smoothness=None"):
        prior.interpolate(q[0], q[1], 5, max_step=0.5)  # a projection setting with the path optimisation


def test_one_off_calls_warn_about_degrees_and_xyzw():
    """project / interpolate / sample(around=) / complete_poses warn when in-memory poses look like
    degrees or (x, y, z, w) quaternions; real poses in radians and (w, x, y, z) do not warn."""
    import warnings

    from posendf_plugin.data.default import default_pose_set
    from posendf_plugin.fitting import complete_poses
    from posendf_plugin.prior import PoseNDF
    from posendf_plugin.skeleton import quat_to_pose

    prior = PoseNDF.from_pretrained()
    q = default_pose_set("val").quat[:40]
    aa = quat_to_pose(q, 63)
    with pytest.warns(UserWarning, match="degrees"):
        prior.project(torch.rad2deg(aa))
    with pytest.warns(UserWarning, match=r"\(x, y, z, w\)"):
        prior.project(q[..., [1, 2, 3, 0]])
    with pytest.warns(UserWarning, match="degrees"):
        prior.sample(2, seed=0, around=torch.rad2deg(aa))
    with pytest.warns(UserWarning, match="degrees"):
        complete_poses(torch.rad2deg(aa), "arms", "none", iterations=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prior.project(aa, max_iter=1)
        prior.interpolate(q[0], q[1], 3, smoothness=None)


def test_the_none_prior_refuses_weights():
    """get_prior('none', checkpoint=...) used to ignore the file silently; NoPrior has no weights."""
    from posendf_plugin.priors import get_prior
    from posendf_plugin.priors.base import NoPrior

    assert isinstance(get_prior("none"), NoPrior)
    with pytest.raises(ValueError, match="the 'none' prior has no weights to load \\(checkpoint given\\)"):
        get_prior("none", checkpoint="model.pt")
    with pytest.raises(ValueError, match="model.pt: the 'none' prior has no weights"):
        NoPrior.from_checkpoint("model.pt")
