"""``mar bench data-pipeline`` at a tiny size: both decoders and the loader at every worker count,
measured at every side, the result in the report's section."""

from __future__ import annotations

import json

from benchmarks import data_pipeline
from benchmarks.data_pipeline import data_pipeline_section
from mar_cli.main import main


def test_data_pipeline_measures_every_row_and_reports(tmp_path, monkeypatch):
    monkeypatch.setattr(data_pipeline, "SIDES", {32: 24, 64: 24})
    results = tmp_path / "results"
    args = ["bench", "data-pipeline", "--results", str(results), "--cache", str(tmp_path / "cache")]
    assert main([*args, "--no-report"]) == 0
    [path] = results.glob("data-pipeline-*.json")
    rows = json.loads(path.read_text())["images_per_second"]
    assert len(rows) == 2 + len(data_pipeline.WORKERS)
    assert all(set(r) == {"32", "64"} and min(r.values()) > 0 for r in rows.values())
    section = "\n".join(data_pipeline_section(results))
    assert "## Data pipeline" in section and "training loader, 2 worker processes" in section
