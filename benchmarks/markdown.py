"""Markdown pieces shared by the benchmark's report sections."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table's lines: the header, the separator, one line per row (cells via ``str``)."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def newest_result_section(
    results: Path, command: str, title: str, format_result: Callable[[dict[str, Any]], list[str]]
) -> list[str]:
    """BENCHMARKS.md's section of ``mar bench <command>``: the newest ``<command>-*.json`` in
    ``results``, where and how it was measured, then ``format_result``'s lines; "not measured
    yet" when there is none."""
    files = sorted(Path(results).glob(f"{command}-*.json"))
    lines = [f"## {title} (`mar bench {command}`)", ""]
    if not files:
        return [*lines, f"Not measured yet (`mar bench {command}`).", ""]
    result = json.loads(files[-1].read_text())
    m = result.get("machine", {})
    return [
        *lines,
        f"From `{files[-1].name}`: `{result.get('command')}`, {result.get('started_at')}, on "
        f"{m.get('cpu_model')}, {m.get('cores')} cores; 1-minute load average {m.get('load_avg_1m')} "
        "at the start.",
        "",
        *format_result(result),
        "",
    ]
