"""Fixtures of the benchmark tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared CI machine two threads stall each other (OpenMP barriers)
    and a 2-step run takes tens of seconds instead of a few."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
