"""``resources.gpus: 2`` on the CPU (gloo): two processes train like one on the same global batch,
stop together, resume, and only rank 0 (this process) writes; a dead rank fails the job at once.

Children are watched by an audit hook (a ``sitecustomize`` on their ``PYTHONPATH``) that logs every
file they open, rename, remove or create under the test's folder: rank 1 must only ever read.

Equivalence runs in float64 (fixture ``float64``: this process's default dtype; ``launch`` hands
it to the ranks it starts, the dataset loads images in it). RetinaNet's losses and the relation
loss are means over images, so the mean over two ranks of the means over their two images is the
mean over the four images of one process, and DDP's averaged gradient is the one process's
gradient: only rounding differs (another summation order, which the CPU's kernels also choose by
batch size, so it depends on the CPU). In float32 that rounding is too large to compare on any
CPU: on an Intel Xeon, 4e-8 relative at step 1, and with gradient clipping 4.5e-5 at step 3 and
4e-3 at step 4 (training amplified a last-bit difference by up to 1e5; the suite was written on
AMD EPYC, where it stayed below 6e-7). Float64's unit roundoff is 1.1e-16, so the same
amplification gives at most ~1e-11; measured here: <= 6e-16 at every step, with or without
clipping. ``rel=1e-9`` leaves that bound a 100x margin and is 1e4x below the smallest real
difference measured, each made by breaking the job on purpose (and each failed this test):
every rank fed rank 0's shard 3e-2 (step 1); no gradient synchronisation 4e-5 (step 2); gradients
summed rather than averaged 2e-5 (step 2), 6e-2 (step 3). Per-rank normalisations (MAR's fg/bg
terms) or flips drawn differently move the losses by 1e-3 to 1e-1.

No gradient clipping (``grad_clip: None``): at these first steps the gradient norm (11 to 18)
exceeds the default clip of 10, which rescales every update to the same norm and so hides a wrong gradient
scale (gradients summed over ranks moved the losses by only 4e-9 with clipping). Flips are off
(``hflip: 0``): torchvision draws a resize size per local image, so from the second step the
ranks' RNG streams differ from one process's (``engine/distributed.py``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import textwrap
import time

import pytest
import torch

from mar_core.data import build_train_loader, random_hflip
from mar_core.engine.distributed import RankFailedError, RankInfo, cpu_slots
from mar_core.engine.trainer import Trainer
from mar_core.errors import JobCancelled, NonFiniteLossError, SpecError
from mar_core.models.checkpoint_io import safe_load
from mar_core.run import run_job
from mar_core.spec import JobSpec
from tests.conftest import tiny_spec
from tests.core.test_distill_run import teacher_run

REL = 1e-9  # float64: see the module docstring

AUDIT_HOOK = textwrap.dedent('''
    """Test helper: log what this process does to files under MAR_TEST_AUDIT_ROOT."""
    import json, os, sys
    _ROOT = os.environ["MAR_TEST_AUDIT_ROOT"]
    _LOG = os.environ["MAR_TEST_AUDIT_LOG"]
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    _CHANGES = {"os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.truncate", "os.link", "os.symlink",
                "os.chmod", "os.utime", "shutil.copyfile", "shutil.rmtree", "shutil.move"}
    _busy = False

    def _path(p):
        try:
            return os.path.abspath(os.fsdecode(os.fspath(p)))
        except TypeError:
            return None

    def _note(kind, path):
        global _busy
        _busy = True
        try:
            with open(_LOG, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), "kind": kind, "path": path, "argv": sys.argv[:1]}) + "\\n")
        finally:
            _busy = False

    def _hook(event, args):
        if _busy or not (event == "open" or event in _CHANGES):
            return
        paths = [_path(a) for a in args[:2 if event in ("os.rename", "os.link", "shutil.move") else 1]]
        paths = [p for p in paths if p and p.startswith(_ROOT)]
        if not paths:
            return
        if event == "open":
            mode, flags = args[1], args[2]
            write = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
            _note("write" if write else "read", paths[0])
        else:
            _note(event, paths[0])

    _note("start", _ROOT)
    sys.addaudithook(_hook)
''')


@pytest.fixture
def one_thread(monkeypatch):
    """Every process (this one and the spawned ranks) on one thread: two cores here."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def float64():
    """This process computes in float64, and so does every rank ``launch`` starts (it hands them
    rank 0's default dtype); the dataset loads images in the default dtype."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.fixture
def audited_children(tmp_path, monkeypatch, one_thread):
    """Path of the audit log of every Python process started from now on (this one excluded)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(AUDIT_HOOK)
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MAR_TEST_AUDIT_ROOT", str(tmp_path / "runs"))
    monkeypatch.setenv("MAR_TEST_AUDIT_LOG", str(log))
    return log


def _spec(data, gpus: int, **train) -> JobSpec:
    return tiny_spec(
        data,
        train={"iterations": 4, "batch_size": 4, "hflip": 0.0, "grad_clip": None, "log_every": 1, **train},
        resources={"gpus": gpus, "device": "cpu"},
    )


def _rows(workdir) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _losses(workdir) -> dict[int, dict[str, float]]:
    return {
        r["step"]: {k: v for k, v in r.items() if k.startswith("loss/")}
        for r in _rows(workdir)
        if "loss/total" in r
    }


def _listing(workdir) -> list[str]:
    """The run's files; TensorBoard event files by folder only (named by time and host, and a
    resumed run starts one more)."""
    names = (str(p.relative_to(workdir)) for p in workdir.rglob("*"))
    return sorted(
        {n.rsplit("/events.out.tfevents.", 1)[0] + "/<events>" if "tfevents" in n else n for n in names}
    )


def _assert_same_losses(one: dict, two: dict) -> None:
    assert one.keys() == two.keys()
    for step, values in one.items():
        assert values.keys() == two[step].keys(), step
        for name, value in values.items():
            assert two[step][name] == pytest.approx(value, rel=REL), (step, name)


def test_two_processes_train_like_one_stop_together_resume_and_only_rank0_writes(
    tiny_synth, tmp_path, float64, audited_children, caplog
):
    runs = tmp_path / "runs"
    run_job(_spec(tiny_synth, 1), runs / "one")

    two, events = runs / "two", []

    def stop_after_two_steps() -> bool:  # polled while ranks start too: count steps, not polls
        return any(e["type"] == "progress" and e["step"] >= 2 for e in events)

    with pytest.raises(JobCancelled):
        run_job(_spec(tiny_synth, 2), two, progress=events.append, should_stop=stop_after_two_steps)
    assert safe_load(two / "checkpoints" / "last.pt")["iteration"] == 2  # rank 1 stopped there too
    report = run_job(_spec(tiny_synth, 2), two, progress=events.append)
    assert report["resumed_from_step"] == 2 and report["world_size"] == 2

    _assert_same_losses(_losses(runs / "one"), _losses(two))
    assert [r["step"] for r in _rows(two) if "loss/total" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in _rows(two) if "eval/AP" in r] == [4]
    assert _listing(two) == _listing(runs / "one")  # one checkpoint, one set of outputs
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [2, 4]
    # rank 1 stopped after the same step and exited cleanly both times (else rank 0 warns)
    assert not [r for r in caplog.records if r.name == "mar_core.engine.distributed" and r.levelno >= 30]

    audit = [json.loads(line) for line in audited_children.read_text().splitlines()]
    children = {a["pid"] for a in audit if a["kind"] == "start"}
    assert len(children) >= 2, "the audit hook did not load in the spawned ranks"
    assert [a for a in audit if a["kind"] not in ("start", "read")] == [], "a non-main rank wrote"
    assert any(a["kind"] == "read" and a["path"].endswith("two/checkpoints/last.pt") for a in audit), (
        "rank 1 did not resume from the checkpoint"
    )


def test_mar_distillation_on_two_processes_matches_one(tiny_synth, tmp_path, one_thread, float64):
    """The relation-only MAR ablation: every term is a mean over images, and its unused adapters
    need DDP's ``find_unused_parameters`` (an error at the second step otherwise)."""
    teacher = teacher_run(tiny_synth, tmp_path, "retinanet")

    def spec(gpus: int) -> JobSpec:
        base = _spec(tiny_synth, gpus, iterations=2, eval_max_images=2).to_json_dict()
        base.update(
            kind="distill",
            teacher={"checkpoint": str(teacher)},
            distill={"kd_warmup_iters": 0, "feature_loss": False, "gamma": "auto"},
        )
        return JobSpec.model_validate(base)

    report_one = run_job(spec(1), tmp_path / "one")
    report_two = run_job(spec(2), tmp_path / "two")
    # gamma is "auto": rank 0 sizes it on the global batch and broadcasts it, as one process does
    assert report_two["kd_weights"] == report_one["kd_weights"]
    assert report_two["kd_weights"]["source"]["gamma"] == "auto"
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert all(two[s]["loss/kd/relation"] > 0 for s in two)
    _assert_same_losses(one, two)


def test_a_dead_rank_fails_the_job_at_once(tiny_synth, tmp_path, one_thread):
    def kill_rank1(event: dict) -> None:
        if event == {"type": "progress", "step": 1, "total": 4}:
            rank1 = next(p for p in multiprocessing.active_children() if p.name == "mar-rank1")
            os.kill(rank1.pid, signal.SIGKILL)

    t0 = time.monotonic()
    with pytest.raises(RankFailedError, match=r"rank 1 died \(signal SIGKILL\)"):
        run_job(_spec(tiny_synth, 2), tmp_path / "w", progress=kill_rank1)
    assert time.monotonic() - t0 < 120
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("mar-rank")]
    assert not (tmp_path / "w" / "checkpoints").exists()  # a failure is no graceful stop


def test_global_batch_must_divide_among_the_processes(tiny_synth, tmp_path):
    with pytest.raises(SpecError) as err:
        run_job(_spec(tiny_synth, 2, batch_size=3), tmp_path / "w")
    assert err.value.param == "train.batch_size"


def _ranks_alive() -> list:
    return [p for p in multiprocessing.active_children() if p.name.startswith("mar-rank")]


def test_more_cpu_processes_than_cores_are_refused_before_any_starts(tiny_synth, tmp_path):
    world = cpu_slots() + 1 if (cpu_slots() + 1) % 2 == 0 else cpu_slots() + 2
    with pytest.raises(SpecError) as err:
        run_job(_spec(tiny_synth, world, batch_size=world), tmp_path / "w")
    assert err.value.param == "resources.gpus" and "cores" in err.value.message
    assert not _ranks_alive()


def test_a_cancel_while_the_ranks_start_kills_what_was_started(tiny_synth, tmp_path):
    calls = iter([False])  # the first rank starts, then the cancel arrives

    t0 = time.monotonic()
    with pytest.raises(JobCancelled):
        run_job(_spec(tiny_synth, 2), tmp_path / "w", should_stop=lambda: next(calls, True))
    assert time.monotonic() - t0 < 30
    assert not _ranks_alive()


def test_rank_shares_partition_the_global_batch_and_its_flips(tiny_synth):
    from mar_core.data import load_dataset

    ds = load_dataset(_spec(tiny_synth, 1).dataset, "train")
    one = build_train_loader(ds, 4, 7, 0, 3).batch_sampler
    shares = [build_train_loader(ds, 4, 7, 0, 3, rank=r, world_size=2).batch_sampler for r in (0, 1)]
    for batch, b0, b1 in zip(one, *shares):
        assert b0 == batch[0::2] and b1 == batch[1::2]

    images = [torch.rand(3, 4, 6) for _ in range(4)]
    targets = [{"boxes": torch.tensor([[0.0, 0.0, float(i + 1), 2.0]])} for i in range(4)]
    torch.manual_seed(0)
    flipped, _ = random_hflip(images, targets, 0.5)
    assert 0 < sum(not torch.equal(a, b) for a, b in zip(images, flipped)) < 4  # the seed flips some
    for r in (0, 1):
        torch.manual_seed(0)  # ranks share the RNG stream
        mine, _ = RankInfo(r, 2).random_hflip(images[r::2], targets[r::2], 0.5)
        assert all(torch.equal(a, b) for a, b in zip(mine, flipped[r::2]))


class _OtherRankGotNaN(RankInfo):
    """Rank 0 of 2 whose peer's first loss term is NaN (what the all-reduce then hands back)."""

    def mean_over_ranks(self, values: list[float]) -> list[float]:
        return [float("nan"), *values[1:]]


def test_a_non_finite_loss_on_another_rank_stops_this_one_before_its_update():
    w = torch.nn.Parameter(torch.ones(1))
    model = torch.nn.Module()
    model.w = w
    model.forward = lambda images, targets: {"classification": w.sum(), "kd/relation": 2 * w.sum()}

    def batches(start):
        return iter([([torch.zeros(3, 4, 4)], [{"boxes": torch.zeros(0, 4)}])] * 2)

    trainer = Trainer(
        model,
        torch.optim.SGD([w], lr=0.1),
        batches,
        2,
        torch.device("cpu"),
        ranks=_OtherRankGotNaN(0, 2, torch.device("cpu")),
    )
    with pytest.raises(NonFiniteLossError, match="loss/det/classification"):
        trainer.train()
    assert w.item() == 1.0
