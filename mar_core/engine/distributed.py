"""One job on ``resources.gpus = N > 1`` torch.distributed processes (NCCL on CUDA, gloo on CPU).

``launch(entry, spec, workdir, ...)`` turns the *calling* process into rank 0 (so the caller's
``progress`` and ``should_stop`` callbacks stay in-process) and spawns ranks ``1 .. N-1`` with
the ``spawn`` start method. Rendezvous: a ``TCPStore`` hosted by rank 0 on a free port of
127.0.0.1. Rank ``r`` runs on ``cuda:r`` (of the visible devices) or on the CPU, and calls
``entry(spec, workdir, ranks=RankInfo(r, N, device), ...)`` in rank 0's default dtype (a caller
that set ``torch.set_default_dtype(torch.float64)`` runs every rank in float64): the same job
body as one process, which asks ``RankInfo`` what to do:

- ``wrap(module)``: ``DistributedDataParallel`` (gradients averaged over ranks).
- the loader yields ``batch[r::N]`` of the global batch of ``train.batch_size`` indices of
  iteration ``it`` (unchanged, so resume stays exact); the batch size must divide by ``N``.
- ``mean_over_ranks``: the loss terms of the global batch (one all-reduce per step); a NaN or
  inf on any rank reaches every rank, so all of them raise ``NonFiniteLossError`` at once.
- ``any_rank``: a stop request seen by rank 0 stops every rank after the same step.
- ``from_main``: a value rank 0 computed alone (e.g. the ``"auto"`` KD weights), on every rank.
- only rank 0 (``is_main``) evaluates, writes metrics, checkpoints and outputs.

Randomness: every rank is seeded identically, so the models start equal and the ranks' global
RNG streams agree while they draw alike. Flips are drawn for the whole global batch in its order
and each rank keeps its share: the ranks' flips are independent (image ``j`` of every rank is not
flipped alike) and, at the first step, equal to one process's. Draws made per local image or
batch elsewhere take the same numbers on every rank and move the stream away from one process's:
torchvision's transform draws a resize size per image (even for one ``min_size``), Faster R-CNN
samples, MGD masks. So runs are not bit-identical to one process (summation orders differ too),
hence a tolerance in the tests, which compare in float64.
Losses that normalise over a batch (FCOS's foreground count, MAR's fg/bg mask mass) are
normalised per rank; means over images (RetinaNet's losses, the relation loss) average to the
one-process value. BatchNorm (``model.norm: batch``) keeps per-rank statistics (no
SyncBatchNorm). Checkpoints hold rank 0's RNG state; every rank restores it on resume.

Failures: a dead peer makes gloo raise at the next collective ("Connection closed by peer");
NCCL waits for the process group timeout (``MAR_DIST_TIMEOUT_S``, default 1800 s: it must
exceed rank 0's evaluation, during which the others wait). Rank 0 watches its children while
they start, raises naming the rank that died, and always destroys the process group and joins
(then kills) its children. Children ignore SIGINT/SIGTERM (the stop reaches them through rank 0)
and exit when rank 0 disappears.
"""

from __future__ import annotations

import datetime
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mar_core.data.transforms import hflip_where
from mar_core.errors import JobCancelled, MarError, NonFiniteLossError, SpecError
from mar_core.parent_watch import on_parent_gone
from mar_core.spec import JobSpec

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
TIMEOUT_ENV = "MAR_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800.0
KEY = "mar"  # store keys: mar/ready/<rank>, mar/error/<rank>
JOIN_GRACE_S = 30.0  # how long rank 0 waits for its children once it is done


@dataclass(frozen=True)
class RankInfo:
    """Where this process stands: ``rank`` of ``world_size``, on ``device`` (None: one process)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def wrap(self, module: nn.Module) -> nn.Module:
        """``DistributedDataParallel(module)`` when distributed, else ``module``. Unused
        parameters are searched only where the module says it has some (``has_unused_parameters``,
        e.g. the MAR ablation without the feature loss)."""
        if not self.distributed:
            return module

        find_unused = bool(getattr(module, "has_unused_parameters", False))
        ids = [self.device] if self.device is not None and self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)

    def mean_over_ranks(self, values: list[float]) -> list[float]:
        """Mean over ranks of each value (float64 all-reduce; NaN/inf anywhere stays NaN/inf)."""
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.world_size).tolist()

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank (a collective: call it on all)."""
        if not self.distributed:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t)
        return bool(t.item() > 0)

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a collective: call it on all; picklable values)."""
        if not self.distributed:
            return value
        box = [value if self.is_main else None]
        cuda = self.device is not None and self.device.type == "cuda"
        dist.broadcast_object_list(box, src=0, device=self.device if cuda else None)
        return box[0]

    def random_hflip(
        self, images: list[torch.Tensor], targets: list[dict[str, Any]], p: float
    ) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
        """``data.transforms.random_hflip`` of the global batch, restricted to this rank's share:
        draws ``len(images) * world_size`` numbers (one per global image, in global order, like
        one process does) and uses ``draws[rank::world_size]``. Images: ``3 x H x W``."""
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        draws = torch.rand(len(images) * self.world_size)[self.rank :: self.world_size]
        return hflip_where(images, targets, draws < p)


SINGLE = RankInfo()


class RankFailedError(RuntimeError):
    """Another rank died or failed; the message says which, and of what."""


def dist_timeout() -> datetime.timedelta:
    return datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))


def cpu_slots() -> int:
    """How many CPU processes a job may start: the cores this process may run on (at least 2,
    so that the gloo path runs on a small host too)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(2, cores)


def check_world(world_size: int, batch_size: int, device_type: str) -> None:
    """Refuse what N processes cannot run, naming the field, before any process starts: N CUDA
    devices visible (or N CPU slots, ``cpu_slots``), a global batch that divides among them."""
    if device_type != "cuda" and world_size > cpu_slots():
        raise SpecError(
            f"resources.gpus: {world_size} CPU processes, but this worker has {cpu_slots()} cores",
            "resources.gpus",
        )
    if batch_size % world_size:
        raise SpecError(
            f"train.batch_size: {batch_size} does not divide among resources.gpus = {world_size} "
            "processes (it is the global batch)",
            "train.batch_size",
        )
    if device_type == "cuda" and torch.cuda.device_count() < world_size:
        raise SpecError(
            f"resources.gpus: {world_size} processes need {world_size} CUDA devices, "
            f"{torch.cuda.device_count()} visible",
            "resources.gpus",
        )


def _threads_per_rank(world_size: int) -> int:
    env = os.environ.get("OMP_NUM_THREADS")
    return int(env) if env and env.isdigit() and int(env) > 0 else max(1, (os.cpu_count() or 1) // world_size)


@contextmanager
def _cpu_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _init_rank(
    rank: int, world_size: int, device_type: str, store: dist.Store, timeout: datetime.timedelta
) -> RankInfo:
    """Join the process group: NCCL on ``cuda:rank``, gloo on the CPU."""
    if device_type == "cuda":
        device = torch.device("cuda", rank)
        torch.cuda.set_device(device)
        dist.init_process_group(
            "nccl", store=store, rank=rank, world_size=world_size, timeout=timeout, device_id=device
        )
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size, timeout=timeout)
    return RankInfo(rank, world_size, device)


def _exit_with_parent(parent_pid: int) -> None:
    """A child must not outlive rank 0 (it would wait on a collective until the timeout)."""

    def gone() -> None:
        log.error("rank 0 (pid %d) is gone; exiting", parent_pid)
        os._exit(1)

    on_parent_gone(parent_pid, gone, "rank0-watch")


def _child(
    rank: int,
    world_size: int,
    device_type: str,
    port: int,
    timeout_s: float,
    parent_pid: int,
    log_level: int,
    default_dtype: torch.dtype,
    entry: Callable[..., Any],
    args: tuple,
    kwargs: dict,
) -> None:
    """Body of rank ``rank >= 1`` (a spawned process)."""
    logging.basicConfig(level=log_level, format=f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # rank 0 decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _exit_with_parent(parent_pid)
    torch.set_num_threads(_threads_per_rank(world_size))
    torch.set_default_dtype(default_dtype)  # rank 0's: the models' parameters and images match
    timeout = datetime.timedelta(seconds=timeout_s)
    store = dist.TCPStore(HOST, port, world_size, is_master=False, timeout=timeout)
    try:
        store.set(f"{KEY}/ready/{rank}", "1")
        ranks = _init_rank(rank, world_size, device_type, store, timeout)
        entry(*args, ranks=ranks, **kwargs)
    except (JobCancelled, NonFiniteLossError) as e:  # agreed by all ranks: rank 0 raises it
        log.info("stopped with every rank: %s", e)
    except BaseException as e:
        try:
            store.set(f"{KEY}/error/{rank}", f"{type(e).__name__}: {e}"[:2000])
        except Exception:  # rank 0 may be gone already
            log.debug("could not report the error to rank 0", exc_info=True)
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    # Done or stopped with every rank: leave without interpreter teardown, where destructors of
    # gloo's and the store's native threads can abort the process ("terminate called without an
    # active exception", SIGABRT). A child rank writes no file, so nothing is lost.
    logging.shutdown()
    os._exit(0)


def _child_error(store: dist.Store, rank: int, proc) -> str:
    """What rank ``rank`` died of, for the error message."""
    detail = ""
    try:
        if store.check([f"{KEY}/error/{rank}"]):
            detail = ": " + store.get(f"{KEY}/error/{rank}").decode(errors="replace")
    except Exception:  # the store may be gone with a dead child's connection
        log.debug("no error text from rank %d", rank, exc_info=True)
    code = proc.exitcode
    if code is not None and code < 0:
        return f"rank {rank} died (signal {signal.Signals(-code).name}){detail}"
    return f"rank {rank} failed (exit code {code}){detail}"


def _start_children(
    store: dist.Store, procs: list, timeout: datetime.timedelta, should_stop: Callable[[], bool]
) -> None:
    """Start the children and wait until every one has connected to the store; raise as soon as
    one has died. A stop request (cancel) kills the children started so far and raises
    ``JobCancelled``: a cancel is obeyed while ranks spawn, too."""
    try:
        for p in procs:
            if should_stop():
                raise JobCancelled("cancelled while the ranks were starting")
            p.start()
        _wait_for_children(store, procs, timeout, should_stop)
    except JobCancelled:
        for p in procs:
            if p.pid is not None and p.is_alive():
                p.kill()
        raise


def _wait_for_children(
    store: dist.Store, procs: list, timeout: datetime.timedelta, should_stop: Callable[[], bool]
) -> None:
    """Until every child has connected to the store; raise as soon as one has died."""
    deadline = time.monotonic() + timeout.total_seconds()
    keys = [f"{KEY}/ready/{r}" for r in range(1, len(procs) + 1)]
    while not store.check(keys):
        if should_stop():
            raise JobCancelled("cancelled while the ranks were starting")
        for r, p in enumerate(procs, start=1):
            if not p.is_alive():
                raise RankFailedError("while starting: " + _child_error(store, r, p))
        if time.monotonic() > deadline:
            raise TimeoutError(f"the child processes did not start within {timeout}")
        time.sleep(0.05)


def _shutdown(store: dist.Store, procs: list, error: BaseException | None) -> None:
    """Join the children, destroy the process group, kill a child that is stuck; explain a dead child.

    Children leave first: destroying rank 0's gloo group while a child is still tearing down its
    own can abort that child ("terminate called without an active exception"). Only a child
    still inside a collective after the grace period makes rank 0 destroy the group under it,
    which fails that collective at once.
    """
    started = [(r, p) for r, p in enumerate(procs, start=1) if p.pid is not None]
    agreed = error is None or isinstance(error, MarError)  # every rank stops at the same step
    deadline = time.monotonic() + (JOIN_GRACE_S if agreed else 5.0)
    for _, p in started:
        p.join(max(0.0, deadline - time.monotonic()))
    if dist.is_initialized():
        dist.destroy_process_group()
    for _, p in started:
        p.join(5.0)
    killed = set()
    for r, p in started:
        if p.is_alive():
            log.warning("rank %d (pid %d) did not exit; killing it", r, p.pid)
            p.kill()
            p.join()
            killed.add(r)
    failed = [_child_error(store, r, p) for r, p in started if p.exitcode != 0 and r not in killed]
    if not failed:
        return
    if error is None:  # rank 0 finished, so its outputs are complete: a child failing after that is logged
        log.warning("after rank 0 finished: %s", "; ".join(failed))
    elif isinstance(error, (MarError, RankFailedError)):  # an agreed stop (cancel, NaN), or known
        log.warning("with rank 0's %s: %s", type(error).__name__, "; ".join(failed))
    else:  # typically gloo's "Connection closed by peer": say which rank died of what
        raise RankFailedError(f"{'; '.join(failed)} (rank 0: {type(error).__name__}: {error})") from error


def launch(
    entry: Callable[..., Any],
    spec: JobSpec,
    workdir: Path,
    device_type: str,
    *,
    progress: Callable,
    should_stop: Callable[[], bool],
    **kwargs: Any,
) -> Any:
    """Run ``entry(spec, workdir, ranks=..., **kwargs)`` on ``spec.resources.gpus`` processes;
    this process is rank 0 and alone gets ``progress`` and ``should_stop``; return its result.

    ``entry`` must be a module-level function (it is pickled by name for the spawned ranks).
    """
    world = spec.resources.gpus
    check_world(world, spec.train.batch_size, device_type)
    timeout = dist_timeout()
    store = dist.TCPStore(HOST, 0, world, is_master=True, wait_for_workers=False, timeout=timeout)
    ctx = torch.multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    procs = [
        ctx.Process(
            target=_child,
            name=f"mar-rank{r}",
            args=(
                r,
                world,
                device_type,
                store.port,
                timeout.total_seconds(),
                os.getpid(),
                level,
                torch.get_default_dtype(),
                entry,
                (spec, workdir),
                kwargs,
            ),
        )
        for r in range(1, world)
    ]
    log.info(
        "running on %d processes (%s, port %d)",
        world,
        "nccl" if device_type == "cuda" else "gloo",
        store.port,
    )
    error: BaseException | None = None
    try:
        _start_children(store, procs, timeout, should_stop)
        with _cpu_threads(_threads_per_rank(world)):
            ranks = _init_rank(0, world, device_type, store, timeout)
            return entry(spec, workdir, ranks=ranks, progress=progress, should_stop=should_stop, **kwargs)
    except BaseException as e:
        error = e
        raise
    finally:
        _shutdown(store, procs, error)
