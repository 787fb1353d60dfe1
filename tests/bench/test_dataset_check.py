"""``mar bench dataset-check`` at a tiny size: the file is deterministic and valid COCO, both
checks agree, the result lands in the report."""

from __future__ import annotations

import json

from benchmarks.coco_gen import write_coco_file
from benchmarks.dataset_check import dataset_check_section
from mar_cli.main import main


def test_generated_file_is_deterministic_coco(tmp_path):
    a = write_coco_file(tmp_path / "a.json", images=50, boxes=400, seed=1)
    b = write_coco_file(tmp_path / "b.json", images=50, boxes=400, seed=1)
    assert a.read_bytes() == b.read_bytes()
    data = json.loads(a.read_text())
    assert (len(data["images"]), len(data["annotations"]), len(data["categories"])) == (50, 400, 80)


def test_dataset_check_records_both_modes_and_reports(tmp_path, capsys):
    results, out = tmp_path / "results", tmp_path / "B.md"
    args = ["bench", "dataset-check", "--images", "200", "--boxes", "3000", "--results", str(results)]
    assert main([*args, "--cache", str(tmp_path / "cache"), "--out", str(out)]) == 0
    [path] = results.glob("dataset-check-*.json")
    result = json.loads(path.read_text())
    assert set(result["modes"]) == {"baseline", "stream", "json"}
    assert result["report"]["boxes"] + result["report"]["crowd"] + result["report"]["dropped"] == 3000
    assert all(r["max_rss_mib"] > 0 for r in result["modes"].values())
    section = "\n".join(dataset_check_section(results))
    assert "3,000 boxes" in section and "streamed" in section
    assert "Dataset check at COCO scale" in out.read_text()
