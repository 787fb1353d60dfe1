"""The soak's fair-share figure: each project's share of worker time while every project had a
job waiting. Pure functions of what the soak records (status events per job, run segments), so
the figure can be recomputed from a result file and tested on made-up records.

A project "has work queued" from a ``queued`` status event of one of its jobs to that job's next
status event; the window is where every project has work queued at once; a run segment (a job on
a worker, ``api.db.models.RunSegment``) counts for its project where it overlaps the window.
"""

from __future__ import annotations

from typing import Any

from benchmarks.soak_checks import ts

Interval = tuple[float, float]


def _union(intervals: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif b > a:
            out.append((a, b))
    return out


def _intersect(x: list[Interval], y: list[Interval]) -> list[Interval]:
    out, i, j = [], 0, 0
    while i < len(x) and j < len(y):
        a, b = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        if b > a:
            out.append((a, b))
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return out


def queued_intervals(events: list[dict[str, Any]], end: float) -> list[Interval]:
    """When a job was ``queued``, from its status events (a queued stretch still open ends at ``end``)."""
    out, since = [], None
    for e in sorted(
        (e for e in events if e["type"] == "status"), key=lambda e: (ts(e["created_at"]), e["id"])
    ):
        t = ts(e["created_at"])
        if since is not None:
            out.append((since, t))
            since = None
        if e["data"]["status"] == "queued":
            since = t
    if since is not None:
        out.append((since, end))
    return out


def fair_share(jobs: list[dict[str, Any]], segments: list[dict[str, Any]]) -> dict[str, Any]:
    """``jobs``: ``{"project", "events"}``; ``segments``: ``{"project", "started_at", "ended_at"}``.
    Returns the window's length, each project's worker seconds in it and its share."""
    end = max([ts(s["ended_at"]) for s in segments if s["ended_at"]] + [0.0])
    projects = sorted({j["project"] for j in jobs})
    queued = {
        p: _union([i for j in jobs if j["project"] == p for i in queued_intervals(j["events"], end)])
        for p in projects
    }
    window = queued[projects[0]] if projects else []
    for p in projects[1:]:
        window = _intersect(window, queued[p])
    used = dict.fromkeys(projects, 0.0)
    for s in segments:
        seg = [(ts(s["started_at"]), ts(s["ended_at"]) if s["ended_at"] else end)]
        used[s["project"]] = used.get(s["project"], 0.0) + sum(b - a for a, b in _intersect(seg, window))
    total = sum(used.values())
    return {
        "window_seconds": round(sum(b - a for a, b in window), 1),
        "worker_seconds": {p: round(v, 1) for p, v in used.items()},
        "share": {p: (round(v / total, 3) if total else None) for p, v in used.items()},
    }
