"""Fixtures shared by the whole test suite."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for tests of tiny tensors, restored afterwards.

    On a busy 2-core machine, OpenMP spinning of two threads made tiny convolutions
    up to ~150x slower; modules that train or run small networks opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
