"""Fixtures of the library tests that need torch."""

from __future__ import annotations

import pytest
import torch

from tests.core.torchvision_files import BuilderFiles


@pytest.fixture(scope="session")
def builder_files(tmp_path_factory) -> BuilderFiles:
    """State_dict files of torchvision's builders, written once per session."""
    return BuilderFiles(tmp_path_factory.mktemp("builders"))


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for the module: 64 px images give each op too little work to split,
    and with anything else on the 2 cores a second thread spins (a 2-step R50 job: 20 s wall
    with 2 threads against 6 s with one, measured beside another test process)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
