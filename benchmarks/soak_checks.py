"""The soak's checks, on what it recorded: jobs, their status events, metric steps and the
training processes seen alive. Pure functions of plain data (the JSON the soak stores), so the
verdict can be recomputed from a result file and tested on made-up records.

- every job ``succeeded``;
- every metric series holds exactly one value per logged step: steps ``1..iterations`` for the
  training series, the last step for ``eval/*`` (evaluated once at the end);
- no job ran twice at once: the status events give each attempt's interval (``starting`` with
  its attempt number and worker id, to the next status that is not ``starting``/``running`` or
  ``pausing``/``cancelling``, in which the worker still holds the job: a preempted or paused
  job's process checkpoints and exits after ``pausing``); no
  attempt may start while another is open, each ``process`` event (the training process of an
  attempt) lies inside its attempt, and every training process the soak saw alive lies inside
  its attempt's interval and never beside another process of the same job. A process whose
  result file (``.worker/result-<attempt>.json``, written once its work is done) already
  existed is not running the job any more: its interpreter is exiting (seconds with torch on a
  loaded machine, when the parent watch, a daemon thread, no longer runs). Such a process alive
  past its attempt is counted apart (``lingering``), not as a second run.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ACTIVE = ("starting", "running")
# states in which the attempt's worker still holds the job (its process checkpoints and exits)
HELD = ("pausing", "cancelling")
# a process seen alive this long after its attempt ended still counts as inside (the sampler's
# clock and the database's are the same host's; this only absorbs timestamp rounding)
SLACK_S = 0.05


def ts(value: str | float) -> float:
    """Epoch seconds of an ISO time (the API's ``created_at``) or of a number."""
    return float(value) if isinstance(value, (int, float)) else datetime.fromisoformat(value).timestamp()


@dataclass
class Attempt:
    number: int
    worker_id: str | None
    start: float
    end: float | None = None  # None: still open when the events end
    end_status: str | None = None
    end_reason: str | None = None


def attempts_of(events: list[dict[str, Any]]) -> tuple[list[Attempt], list[str]]:
    """The attempts the status events describe, and what in them is inconsistent."""
    attempts: list[Attempt] = []
    problems: list[str] = []
    open_: Attempt | None = None
    for e in sorted(
        (e for e in events if e["type"] == "status"), key=lambda e: (ts(e["created_at"]), e["id"])
    ):
        d, t = e["data"], ts(e["created_at"])
        if d["status"] == "starting":
            if open_ is not None:
                problems.append(f"attempt {d.get('attempt')} started while attempt {open_.number} was open")
            open_ = Attempt(int(d.get("attempt") or 0), d.get("worker_id"), t)
            attempts.append(open_)
        elif d["status"] == "running":
            if open_ is None:
                problems.append("running without a starting attempt")
            elif d.get("worker_id") != open_.worker_id:
                problems.append(
                    f"attempt {open_.number}: running by {d.get('worker_id')}, claimed by {open_.worker_id}"
                )
        elif d["status"] in HELD:
            pass  # still the attempt's: its worker holds the job until paused / cancelled
        elif open_ is not None:
            open_.end, open_.end_status, open_.end_reason = t, d["status"], d.get("reason")
            open_ = None
    numbers = [a.number for a in attempts]
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"attempt numbers {numbers}, not 1..{len(numbers)}")
    return attempts, problems


def _inside(a: Attempt, first: float, last: float) -> bool:
    return a.start - SLACK_S <= first and (a.end is None or last <= a.end + SLACK_S)


def check_no_overlap(
    events: list[dict[str, Any]],
    seen: list[dict[str, Any]],
    together: list[dict[str, Any]],
    results: dict[str, float] | None = None,
    lingering: list[float] | None = None,
) -> list[str]:
    """Problems with "no job ran twice at once" for one job: ``seen`` are its training processes
    observed alive (``pid``, ``first``, ``last``), ``together`` the samples (``pids``, ``at``)
    that saw more than one alive, ``results`` when each attempt's result file was written
    (attempt number as a string -> epoch seconds). How long each process that had written its
    result outlived its attempt is appended to ``lingering``."""
    results = results or {}
    lingering = lingering if lingering is not None else []
    attempts, problems = attempts_of(events)
    by_number = {a.number: a for a in attempts}
    pid_attempt: dict[int, int] = {}
    for e in events:
        if e["type"] != "process":
            continue
        d = e["data"]
        pid_attempt[int(d["pid"])] = int(d["attempt"])
        a = by_number.get(int(d["attempt"]))
        t = ts(e["created_at"])
        if a is None:
            problems.append(f"process {d['pid']} of attempt {d['attempt']}, which has no starting event")
        elif not _inside(a, t, t) or d.get("worker_id") != a.worker_id:
            problems.append(f"process {d['pid']} started outside attempt {a.number} or by another worker")
    for p in seen:
        number = pid_attempt.get(int(p["pid"]))
        a = by_number.get(number) if number is not None else None
        if a is None:
            problems.append(f"process {p['pid']} seen alive belongs to no recorded attempt")
        elif not _inside(a, p["first"], p["last"]):
            over = p["last"] - a.end if a.end is not None else 0.0
            done = results.get(str(a.number))
            if a.start - SLACK_S <= p["first"] and done is not None and a.end is not None and done <= a.end:
                lingering.append(over)
                continue
            problems.append(
                f"process {p['pid']} of attempt {a.number} alive outside it "
                f"({max(over, a.start - p['first']):.2f} s beyond)"
            )
    for t in together:
        running = [pid for pid in t["pids"] if not _done_by(results, pid_attempt.get(pid), t["at"])]
        if len(running) > 1:
            problems.append(f"processes {sorted(running)} of the job alive and running at the same time")
    return problems


def _done_by(results: dict[str, float], attempt: int | None, at: float) -> bool:
    done = results.get(str(attempt)) if attempt is not None else None
    return done is not None and done <= at


def expected_steps(name: str, iterations: int, log_every: int = 1) -> list[int]:
    """The steps a series of a job of ``iterations`` logs: ``eval/*`` once at the end."""
    if name.startswith("eval/"):
        return [iterations]
    steps = list(range(log_every, iterations + 1, log_every))
    return steps if steps and steps[-1] == iterations else [*steps, iterations]


def check_metrics(series: dict[str, list[int]], names: set[str], iterations: int) -> list[str]:
    """Problems with "one value per step" for one job: ``series`` maps a name to its steps as the
    API returned them, ``names`` the series every job must have."""
    problems = [f"series {n} missing" for n in sorted(names - set(series))]
    for name, steps in sorted(series.items()):
        want = expected_steps(name, iterations)
        if sorted(steps) != want:
            dup = sorted({s for s in steps if steps.count(s) > 1})
            gone = sorted(set(want) - set(steps))
            extra = sorted(set(steps) - set(want))
            problems.append(f"{name}: duplicate steps {dup}, missing {gone}, unexpected {extra}")
    return problems


def verify(record: dict[str, Any]) -> dict[str, Any]:
    """The checks and figures of a soak record (``run_soak``'s ``jobs`` / ``processes`` / ...)."""
    jobs = record["jobs"]
    iterations = record["spec"]["train"]["iterations"]
    names = set(record["required_series"])
    seen_by_job: dict[str, list[dict[str, Any]]] = {}
    for p in record["processes"]["seen"]:
        seen_by_job.setdefault(p["job_id"], []).append(p)
    together_by_job: dict[str, list[dict[str, Any]]] = {}
    for t in record["processes"]["together"]:
        together_by_job.setdefault(t["job_id"], []).append(t)
    lingering: list[float] = []
    failures: dict[str, list[str]] = {"succeeded": [], "one_value_per_step": [], "no_overlap": []}
    for job in jobs:
        jid = job["id"]
        if job["status"] != "succeeded":
            failures["succeeded"].append(f"{jid}: {job['status']} {job.get('error') or ''}".strip())
        for p in check_metrics(job["series"], names, iterations):
            failures["one_value_per_step"].append(f"{jid}: {p}")
        overlap = check_no_overlap(
            job["events"],
            seen_by_job.get(jid, []),
            together_by_job.get(jid, []),
            job.get("results"),
            lingering,
        )
        for p in overlap:
            failures["no_overlap"].append(f"{jid}: {p}")
    if len(jobs) != record["jobs_submitted"]:
        failures["succeeded"].append(f"{len(jobs)} jobs read back, {record['jobs_submitted']} submitted")
    attempts = [j["attempt"] for j in jobs] or [0]
    return {
        "checks": {name: not problems for name, problems in failures.items()},
        "failures": {name: problems[:50] for name, problems in failures.items() if problems},
        "failure_counts": {name: len(problems) for name, problems in failures.items()},
        "succeeded": sum(j["status"] == "succeeded" for j in jobs),
        "attempts": {
            "max": max(attempts),
            "mean": round(statistics.fmean(attempts), 3),
            "jobs_retried": sum(a > 1 for a in attempts),
        },
        "processes_seen": len(record["processes"]["seen"]),
        "lingering": {"processes": len(lingering), "max_s": round(max(lingering, default=0.0), 2)},
    }
