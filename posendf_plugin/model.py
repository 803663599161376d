"""The Pose-NDF network: a structure encoder over the SMPL body tree, then a distance MLP.

``f(q) >= 0`` estimates how far the pose ``q`` (21 body-joint unit quaternions ``(w, x, y, z)``)
is from the manifold of plausible poses.

* **Structure encoder** (LEAP-style, as in Pose-NDF): joint ``k`` has its own two-layer MLP
  ``[q_k, φ_parent(k)] -> φ_k`` (sizes ``4 + F -> H -> F``, activation after both layers).
  Joints whose parent is the pelvis (``-1``) get zeros in place of the parent feature.
* **Distance MLP**: ``[φ_1 .. φ_21]`` (21·F = 126 with the paper's F = 6) through the hidden
  layers of ``config.hidden`` to one value, made non-negative by ``config.output``
  (``abs``: |x|; ``softplus``: softplus with ``beta``; ``relu``).

Speed: the 21 per-joint MLPs are not 21 sequential small ``Linear`` calls. Their weights are
stacked (``enc_w1 (21, 4+F, H)`` ...) and the joints are processed one tree depth at a time
(7 levels for SMPL), each layer of a level as one matmul with the level's weights arranged as a
block-diagonal matrix (measured on CPU: ~2x faster than ``torch.bmm`` over the joints with one
thread, ~40x with two busy threads, where bmm of tiny matrices stalls). The joint reordering and
the parent lookups are folded into those matrices (and into the distance MLP's first weight), so
a forward pass is matmuls and activations only — at batch 1, inside a fitting loop, the number
of operations is what costs.

The parent table is :data:`posendf_plugin.skeleton.BODY_PARENTS` (``model.parents = "smpl"``).
The authors' code used an off-by-one table (e.g. the left knee reads the *right* hip's
feature); ``model.parents = "posendf_original"`` reproduces it, only so that their released
checkpoints evaluate as they were trained.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_shape
from .config import Config, ModelConfig
from .skeleton import BODY_PARENTS, NUM_BODY_JOINTS

__all__ = ["PoseNDFNet", "PoseNDFEnsemble", "ENSEMBLE_REDUCTIONS", "load_field", "POSENDF_ORIGINAL_PARENTS", "parent_table", "tree_levels", "activation"]

#: Parent table of the authors' code (model/network/net_utils.py:get_parent_mapping): SMPL
#: indices used as body-joint indices, i.e. off by one. Kept only to evaluate their checkpoints.
POSENDF_ORIGINAL_PARENTS: Tuple[int, ...] = (
    -1, -1, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,
)
QUAT_DIM = 4


def parent_table(name: str) -> Tuple[int, ...]:
    """The 21 body-joint parents for ``model.parents`` (``-1`` = the pelvis, no feature)."""
    if name == "smpl":
        return tuple(BODY_PARENTS)
    if name == "posendf_original":
        return POSENDF_ORIGINAL_PARENTS
    raise ValueError(f"unknown parent table {name!r}; use 'smpl' or 'posendf_original'")


def tree_levels(parents: Tuple[int, ...]) -> List[List[int]]:
    """Group joints by depth in the tree (roots = depth 0). The parent of every joint at depth
    ``d`` is at depth ``d - 1``, so each level can be computed in one batched call.

    Raises:
        ValueError: a parent index that does not precede its child.
    """
    depth: List[int] = []
    for j, p in enumerate(parents):
        if p >= j or p < -1:
            raise ValueError(f"parent table must list parents before children; joint {j} has parent {p}")
        depth.append(0 if p == -1 else depth[p] + 1)
    return [[j for j, d in enumerate(depth) if d == level] for level in range(max(depth) + 1)]


def activation(name: str, x: torch.Tensor, beta: float) -> torch.Tensor:
    """Apply a hidden activation by name: ``softplus`` (with ``beta``), ``relu``, ``lrelu``
    (negative slope 0.01, PyTorch's default as in the original)."""
    if name == "softplus":
        return F.softplus(x, beta=beta)
    if name == "relu":
        return F.relu(x)
    if name == "lrelu":
        return F.leaky_relu(x, 0.01)
    raise ValueError(f"unknown activation {name!r}; use 'softplus', 'relu' or 'lrelu'")


class PoseNDFNet(nn.Module):
    """Pose-NDF network. ``forward(q (..., 21, 4)) -> (...)`` distances ``>= 0``.

    Inputs are used as given (no normalisation, no sign flip): callers that take user data go
    through :class:`posendf_plugin.prior.PoseNDF`, which validates and canonicalises.

    Args:
        config: the ``model`` section; every size and activation comes from it.
        seed: seeds the weight initialisation (PyTorch's ``nn.Linear`` scheme,
            U(±1/√fan_in) for weights and biases) through a private ``torch.Generator``.
    """

    def __init__(self, config: ModelConfig, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = config
        self.parents = parent_table(config.parents)
        levels = tree_levels(self.parents)
        J, Fe, H = NUM_BODY_JOINTS, config.enc_feature, config.enc_hidden
        self.enc_w1 = nn.Parameter(torch.empty(J, QUAT_DIM + Fe, H))
        self.enc_b1 = nn.Parameter(torch.empty(J, H))
        self.enc_w2 = nn.Parameter(torch.empty(J, H, Fe))
        self.enc_b2 = nn.Parameter(torch.empty(J, Fe))
        dims = (J * Fe,) + tuple(config.hidden) + (1,)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

        # Level bookkeeping (non-persistent buffers: they follow .to(device), not state_dict).
        self._n_levels = len(levels)
        pos = {}
        for lv in levels:
            for i, j in enumerate(lv):
                pos[j] = i
        order = [j for lv in levels for j in lv]
        for i, lv in enumerate(levels):
            self.register_buffer(f"_joints{i}", torch.tensor(lv, dtype=torch.long), persistent=False)
            if i > 0:  # picks each joint's parent feature (F values) out of the previous level's
                sel = torch.zeros(len(levels[i - 1]), len(lv))
                for k, j in enumerate(lv):
                    sel[pos[self.parents[j]], k] = 1.0
                self.register_buffer(f"_parent_select{i}", torch.kron(sel, torch.eye(config.enc_feature)), persistent=False)
        # features are produced level by level; this permutation restores joint order
        self.register_buffer("_level_order", torch.tensor(order), persistent=False)
        self.register_buffer("_to_joint_order", torch.tensor(order).argsort(), persistent=False)
        self.reset_parameters(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        """Initialise every weight from a private generator seeded with ``seed``."""
        g = torch.Generator().manual_seed(int(seed))
        Fe = self.config.enc_feature
        fan_in = torch.full((NUM_BODY_JOINTS,), float(QUAT_DIM + Fe))
        fan_in[torch.tensor([p == -1 for p in self.parents])] = float(QUAT_DIM)
        b1 = (1.0 / fan_in.sqrt())
        w1 = (torch.rand(self.enc_w1.shape, generator=g) * 2 - 1) * b1[:, None, None]
        for j, p in enumerate(self.parents):
            if p == -1:  # no parent feature: those input weights never see data; keep them 0
                w1[j, QUAT_DIM:] = 0.0
        self.enc_w1.copy_(w1)
        self.enc_b1.copy_((torch.rand(self.enc_b1.shape, generator=g) * 2 - 1) * b1[:, None])
        b2 = 1.0 / math.sqrt(self.config.enc_hidden)
        self.enc_w2.copy_((torch.rand(self.enc_w2.shape, generator=g) * 2 - 1) * b2)
        self.enc_b2.copy_((torch.rand(self.enc_b2.shape, generator=g) * 2 - 1) * b2)
        for lin in self.layers:
            bound = 1.0 / math.sqrt(lin.in_features)
            lin.weight.copy_((torch.rand(lin.weight.shape, generator=g) * 2 - 1) * bound)
            lin.bias.copy_((torch.rand(lin.bias.shape, generator=g) * 2 - 1) * bound)

    def _encoder_weights(self) -> Tuple[torch.Tensor, torch.Tensor, List[Tuple[Optional[torch.Tensor], torch.Tensor, torch.Tensor]], torch.Tensor]:
        """The weights arranged for few, large matrix products (no gathers or permutations left
        for the forward pass to do).

        Returns ``(Wq, b1, levels, W0)``: ``Wq (21·4, 21·H)`` maps every joint's quaternion (joint
        order) to its first hidden layer at once (joints in tree-level order), ``b1 (21·H,)`` its
        bias; per tree level ``(Wp, W2, b2)``: the parent-feature part of the first layer as a map
        from the previous level's features (``(n_prev·F, n·H)``, it also picks each joint's
        parent; ``None`` for the roots) and the second layer, block-diagonal over the level's
        joints; ``W0 (hidden[0], 21·F)``: the distance MLP's first weight with its columns in
        tree-level order. Frozen weights (``requires_grad=False``, e.g. a prior used for fitting)
        are arranged once and cached until a weight changes; trainable ones every call, so
        gradients reach them.
        """
        params = (self.enc_w1, self.enc_b1, self.enc_w2, self.enc_b2, self.layers[0].weight)
        frozen = not any(t.requires_grad for t in params) and not torch.is_inference_mode_enabled()
        key = tuple(t._version for t in params) + tuple(t.data_ptr() for t in params) + (self.enc_w1.device, self.enc_w1.dtype)
        cache = self.__dict__.get("_enc_cache")
        if frozen and cache is not None and cache[0] == key:
            return cache[1]
        J, Fe, H = NUM_BODY_JOINTS, self.config.enc_feature, self.config.enc_hidden
        order = self._level_order
        wq = torch.block_diag(*self.enc_w1[order, :QUAT_DIM].unbind(0))  # rows in level order
        wq = wq.reshape(J, QUAT_DIM, J * H)[self._to_joint_order].reshape(J * QUAT_DIM, J * H)
        b1 = self.enc_b1[order].reshape(-1)
        levels = []
        for i in range(self._n_levels):
            joints = getattr(self, f"_joints{i}")
            wp = None
            if i > 0:  # (n_prev·F, n·F) parent selection times the block-diagonal parent weights
                wp = getattr(self, f"_parent_select{i}") @ torch.block_diag(*self.enc_w1[joints, QUAT_DIM:].unbind(0))
            levels.append((wp, torch.block_diag(*self.enc_w2[joints].unbind(0)), self.enc_b2[joints].reshape(-1)))
        w0 = self.layers[0].weight
        w0 = w0.reshape(w0.shape[0], J, Fe)[:, order].reshape(w0.shape[0], J * Fe)
        out = (wq, b1, levels, w0)
        self.__dict__["_enc_cache"] = (key, out) if frozen else None
        return out

    def _encode_levels(self, q: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(B, 21, 4) -> (B, 21·F)`` joint features in tree-level order, and ``W0``."""
        act, beta = self.config.enc_activation, self.config.beta
        wq, b1, levels, w0 = self._encoder_weights()
        B, H = q.shape[0], self.config.enc_hidden
        hq = torch.addmm(b1, q.reshape(B, NUM_BODY_JOINTS * QUAT_DIM), wq)  # (B, 21·H), level order
        feats: List[torch.Tensor] = []
        prev = None
        start = 0
        for wp, w2, b2 in levels:
            n = w2.shape[0] // H
            h = hq[:, start * H:(start + n) * H]
            if wp is not None:
                h = torch.addmm(h, prev, wp)
            prev = activation(act, torch.addmm(b2, activation(act, h, beta), w2), beta)  # (B, n·F)
            feats.append(prev)
            start += n
        return torch.cat(feats, dim=1), w0

    def encode(self, q: torch.Tensor) -> torch.Tensor:
        """Structure encoder: ``(B, 21, 4) -> (B, 21·F)`` joint features in joint order.

        Joint ``j`` gets ``f_j = MLP_j([q_j, f_parent(j)])`` (roots: ``MLP_j(q_j)``); computed
        level by level down the tree, one matrix product per level and layer."""
        B, Fe = q.shape[0], self.config.enc_feature
        x, _ = self._encode_levels(q)
        return x.reshape(B, NUM_BODY_JOINTS, Fe)[:, self._to_joint_order].reshape(B, NUM_BODY_JOINTS * Fe)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """Distances ``(...)`` of poses ``q (..., 21, 4)`` (``(w, x, y, z)``), all ``>= 0``."""
        check_shape(q, ("*", NUM_BODY_JOINTS, QUAT_DIM), "q")
        batch = q.shape[:-2]
        x, w0 = self._encode_levels(q.reshape(-1, NUM_BODY_JOINTS, QUAT_DIM))
        act, beta = self.config.activation, self.config.beta
        x = activation(act, F.linear(x, w0, self.layers[0].bias), beta)  # W0's columns follow the level order
        for lin in self.layers[1:-1]:
            x = activation(act, lin(x), beta)
        x = self.layers[-1](x).squeeze(-1)
        out = self.config.output
        if out == "abs":
            x = x.abs()
        elif out == "softplus":
            x = F.softplus(x, beta=beta)
        elif out == "relu":
            x = F.relu(x)
        else:  # guarded by ModelConfig; never fall through silently
            raise ValueError(f"unknown model.output {out!r}")
        return x.reshape(batch)

    def extra_repr(self) -> str:
        c = self.config
        return (f"parents={c.parents}, encoder=21x[{4 + c.enc_feature}->{c.enc_hidden}->{c.enc_feature}] "
                f"{c.enc_activation}, hidden={list(c.hidden)} {c.activation}, beta={c.beta}, output={c.output}")


#: how :class:`PoseNDFEnsemble` combines its members' distances
ENSEMBLE_REDUCTIONS = ("mean", "min")


class PoseNDFEnsemble(nn.Module):
    """Several fields of one architecture as one: ``f(q) = (1/M) Σ_m f_m(q)`` (``reduce="mean"``)
    or ``min_m f_m(q)`` (``"min"``).

    Fields trained the same way from different seeds agree on the data and near it (where the
    labels pin them down) and differ elsewhere. The mean averages those differences out but is
    zero only where *every* member is (the intersection of their zero sets); the minimum is zero
    where *any* member is (the union). Built by ``posendf ensemble`` from ``model.pt`` files;
    evaluated like a :class:`PoseNDFNet` (``forward(q (..., 21, 4)) -> (...)``, ``>= 0``), at M
    times the cost.

    Args:
        members: the fields (at least one), all built from the same ``model`` config.
        reduce: one of :data:`ENSEMBLE_REDUCTIONS`.
    """

    def __init__(self, members: List[PoseNDFNet], reduce: str = "mean") -> None:
        super().__init__()
        members = list(members)
        if not members or not all(isinstance(m, PoseNDFNet) for m in members):
            raise TypeError("members must be a non-empty list of PoseNDFNet")
        if any(m.config != members[0].config for m in members[1:]):
            raise ValueError("every member of an ensemble must have the same model config")
        if reduce not in ENSEMBLE_REDUCTIONS:
            raise ValueError(f"reduce must be one of {ENSEMBLE_REDUCTIONS}, got {reduce!r}")
        self.members = nn.ModuleList(members)
        self.reduce = reduce

    @property
    def config(self) -> ModelConfig:
        return self.members[0].config

    @property
    def enc_w1(self) -> torch.Tensor:
        """The first member's first encoder weight (where callers read device and dtype)."""
        return self.members[0].enc_w1

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """Distance ``(...)`` of poses ``q (..., 21, 4)``: the members' mean or minimum."""
        out = self.members[0](q)
        for m in self.members[1:]:
            out = out + m(q) if self.reduce == "mean" else torch.minimum(out, m(q))
        return out / len(self.members) if self.reduce == "mean" else out

    def extra_repr(self) -> str:
        return f"{self.reduce} of {len(self.members)} fields"


def _check_state_dict(net: nn.Module, state: Dict[str, torch.Tensor], source: str) -> None:
    """Strict key/shape comparison with a message naming the first offending key."""
    want = net.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    if missing or unexpected:
        raise ValueError(
            f"{source}: the weights do not match the network built from the stored config: "
            + (f"missing key '{missing[0]}'" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else "") if missing else "")
            + ("; " if missing and unexpected else "")
            + (f"unexpected key '{unexpected[0]}'" + (f" (+{len(unexpected) - 1} more)" if len(unexpected) > 1 else "") if unexpected else "")
        )
    for k, v in want.items():
        got = state[k]
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(v.shape):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise ValueError(
                f"{source}: key '{k}' has shape {shape} in the checkpoint but the stored config builds "
                f"{tuple(v.shape)}; the checkpoint and its config are out of sync (retrain or fix the config)"
            )


def _load_net(config: Config, state: Any, source: str) -> PoseNDFNet:
    """The network of ``config.model`` with the weights ``state``, checked strictly."""
    net = PoseNDFNet(config.model)
    _check_state_dict(net, state, source)
    net.load_state_dict(state, strict=True)
    return net


def load_field(path: Union[str, Path]) -> Tuple[Union[PoseNDFNet, PoseNDFEnsemble], Config]:
    """The field stored in a model file of this package and the config stored with it: a
    :class:`PoseNDFNet` (``model.pt`` or a training checkpoint of ``posendf train``) or a
    :class:`PoseNDFEnsemble` (a file of ``posendf ensemble``), rebuilt from the stored config and
    loaded strictly (``torch.load(weights_only=True)``; CPU, train mode).

    Raises:
        FileNotFoundError: no such file.
        ValueError: truncated/corrupt file; not this package's format (the authors' files are
            recognised and pointed to ``PoseNDF.from_original_checkpoint``); a stored config
            with an unknown key; weights that do not fit the stored config (names the key).
    """
    from .io import load_torch_weights

    path = Path(path)
    ck = load_torch_weights(path, "checkpoint")
    if isinstance(ck, dict) and "members" in ck and "config" in ck:  # written by `posendf ensemble`
        members = ck["members"]
        if not isinstance(members, (list, tuple)) or not members:
            raise ValueError(f"{path}: 'members' must be a non-empty list of weights; rebuild it with posendf ensemble")
        config = Config.from_dict(ck["config"], source=f"{path} (stored config)")
        nets = []
        for i, state in enumerate(members):
            if not isinstance(state, dict):
                raise ValueError(f"{path}: member {i} is not a set of weights; rebuild it with posendf ensemble")
            nets.append(_load_net(config, state, f"{path} (member {i})"))
        reduce = ck.get("reduce", "mean")
        if reduce not in ENSEMBLE_REDUCTIONS:
            raise ValueError(f"{path}: unknown 'reduce' {reduce!r} (one of {', '.join(ENSEMBLE_REDUCTIONS)}); "
                             "rebuild it with posendf ensemble")
        return PoseNDFEnsemble(nets, reduce), config
    if not isinstance(ck, dict) or "model_state_dict" not in ck:
        raise ValueError(f"{path}: not a Pose-NDF checkpoint (no 'model_state_dict' entry)")
    if "config" not in ck:
        if any(k.startswith(("enc.net.", "dfnet.lin")) for k in ck["model_state_dict"]):
            raise ValueError(
                f"{path}: this is a checkpoint of the authors' Pose-NDF code (no config inside); load it "
                "with PoseNDF.from_original_checkpoint(path, config_yaml=<their config .yaml>)"
            )
        raise ValueError(f"{path}: the checkpoint has no 'config' entry; it was not written by posendf train")
    config = Config.from_dict(ck["config"], source=f"{path} (stored config)")
    return _load_net(config, ck["model_state_dict"], str(path)), config
