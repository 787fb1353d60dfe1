"""``mar_core.file_lock``: one exclusive holder across processes; waiting or failing fast."""

import multiprocessing as mp
import threading
import time

import pytest

from benchmarks.quality import RunBusy, _locked
from mar_core.file_lock import LockHeld, file_lock


def _hold(path, held, release):
    with file_lock(path):
        held.set()
        release.wait(30)


@pytest.fixture
def held_by_another_process(tmp_path):
    """A child process holding ``tmp_path/work/.lock`` until the test lets it go."""
    ctx = mp.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(tmp_path / "work" / ".lock", held, release))
    proc.start()
    assert held.wait(30), "the holder process never took the lock"
    yield release
    release.set()
    proc.join(30)


def test_not_waiting_raises_while_another_process_holds_it(tmp_path, held_by_another_process):
    with pytest.raises(LockHeld):
        with file_lock(tmp_path / "work" / ".lock", wait=False):
            pass
    with pytest.raises(RunBusy):  # the benchmark's run folders say "busy", not a lock error
        with _locked(tmp_path / "work"):
            pass


def test_waiting_blocks_until_the_holder_lets_go(tmp_path, held_by_another_process):
    got = threading.Event()

    def take():
        with file_lock(tmp_path / "work" / ".lock"):
            got.set()

    waiter = threading.Thread(target=take)
    waiter.start()
    time.sleep(0.5)
    assert not got.is_set()
    held_by_another_process.set()
    waiter.join(30)
    assert got.is_set()


def test_an_error_inside_the_block_is_not_taken_for_a_busy_lock(tmp_path):
    with pytest.raises(LockHeld, match="inner"):  # raised by the body, passes through unchanged
        with _locked(tmp_path / "work"):
            raise LockHeld("inner")
    with file_lock(tmp_path / "work" / ".lock", wait=False):  # and the lock was let go
        pass
