"""The latency targets of issue 17 are judged from the measured runs, on the best server config."""

from __future__ import annotations

from benchmarks.perf_format import api_target_verdicts, format_api


def _run(server: str, endpoint: str, clients: int, p99: float, rps: float = 100.0) -> dict:
    return {
        "server": server,
        "endpoint": endpoint,
        "clients": clients,
        "p99_ms": p99,
        "errors": 0,
        "throughput_rps": rps,
    }


def test_each_target_takes_the_best_config_and_says_by_how_much_it_is_missed():
    pg = [
        _run("1 process", "GET metrics (10000 points)", 8, 240.0),
        _run("2 processes", "GET metrics (10000 points, format=columns)", 8, 80.0),
        _run(
            "2 processes", "GET metrics, unchanged (If-None-Match: 304)", 8, 5.0
        ),  # no points: not the target
        _run("1 process", "POST /jobs", 50, 400.0, rps=125.0),
        _run("2 processes", "POST /jobs", 50, 260.0, rps=200.0),
        _run("2 processes", "POST /jobs, paced (50 clients, 25.0 req/s offered)", 50, 30.0),
    ]
    sqlite = [_run("1 process", "GET metrics (10000 points)", 8, 150.0)]
    text = "\n".join(api_target_verdicts({"sqlite": {"runs": sqlite}, "postgresql": {"runs": pg}}))
    assert (
        "SQLite: GET metrics, every point, 8 clients (target p99 <= 100 ms): **not met**: 150.0 ms, 50 ms over"
        in text
    )
    assert "PostgreSQL: GET metrics, every point, 8 clients (target p99 <= 100 ms): **met** (80.0 ms)" in text
    assert (
        "closed loop (target p99 <= 50 ms): **not met**: 260.0 ms, 210 ms over; best of: 2 processes" in text
    )
    assert "50 / throughput = 250 ms" in text
    assert "paced (target p99 <= 50 ms): **met** (30.0 ms)" in text


def test_a_paced_row_gives_its_connections_apart():
    paced = {
        **_run("1 process", "POST /jobs, paced (50 clients, 25.0 req/s offered)", 50, 30.0),
        "requests": 200, "p50_ms": 9.0, "p95_ms": 20.0, "connect": {"p50_ms": 60.0, "max_ms": 250.0},
    }  # fmt: skip
    closed = {**_run("1 process", "POST /jobs", 8, 40.0), "requests": 200, "p50_ms": 9.0, "p95_ms": 20.0}
    rows = [line for line in format_api({"sqlite": {"runs": [paced, closed]}}) if "POST /jobs" in line]
    assert rows[0].endswith("| 100.0 req/s, 0 errors; connect p50 60.0 / max 250.0 ms |")
    assert rows[1].endswith("| 100.0 req/s, 0 errors |")


def test_step_ratio_targets_read_cpu_time_and_set_bf16_against_the_bf16_student():
    from benchmarks.report_glance import _step_ratio_lines

    result = {
        "student_model": {"arch": "retinanet"},
        "median_s": {"student_step": 9.0, "mar_step": 9.0},  # wall: not used when CPU time is there
        "median_cpu_s": {
            "student_step": 1.0, "mar_step": 1.69, "mar_step_cached_teacher": 1.04,
            "student_step_bf16": 0.6, "mar_step_cached_teacher_bf16": 0.63,
        },
    }  # fmt: skip
    lines = _step_ratio_lines("steps", result)
    assert lines == [
        "- MAR step, live teacher, retinanet (`steps`): **1.69x** a student step (CPU time); target at most "
        "1.3x: **NOT met**.",
        "- MAR step, teacher outputs from the cache, retinanet (`steps`): **1.04x** a student step (CPU time); "
        "target at most 1.1x: **met**.",
        "- MAR step in bf16 from the cache, over the bf16 student step, retinanet (`steps`): **1.05x** a "
        "student step (CPU time); target at most 1.1x: **met**.",
    ]
    assert _step_ratio_lines("steps", {"skipped": "no CUDA"}) == []
