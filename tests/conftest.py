"""Fixtures shared by several test modules (pytest finds them here without imports).

* ``one_torch_thread`` — run a module on one torch thread (restored afterwards): the tiny
  matmuls of these tests are faster on one thread and do not stall when other processes share
  the CPU. Use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
* ``bm`` — the embedded procedural body model (float32), built once per session.
"""
from __future__ import annotations

import pytest
import torch

from posendf_plugin.body_model import get_body_model


@pytest.fixture(scope="module")
def one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def bm():
    return get_body_model()
