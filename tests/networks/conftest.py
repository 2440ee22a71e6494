"""Run the network tests single-threaded: tiny tensors gain nothing from threads, and on a
busy machine intra-op thread contention makes a millisecond forward pass take seconds."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
