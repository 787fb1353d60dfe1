"""``mar bench image-decode`` at a tiny size: every row measured at every side, the result in
the report's dataset-check section."""

from __future__ import annotations

import json

from benchmarks import image_decode
from benchmarks.dataset_check import dataset_check_section
from mar_cli.main import main


def test_image_decode_measures_every_row_and_reports(tmp_path, monkeypatch):
    monkeypatch.setattr(image_decode, "SIDES", {32: 6, 96: 6})
    results = tmp_path / "results"
    args = ["bench", "image-decode", "--results", str(results), "--cache", str(tmp_path / "cache")]
    assert main([*args, "--no-report"]) == 0
    [path] = results.glob("image-decode-*.json")
    rows = json.loads(path.read_text())["images_per_second"]
    assert {"check_file", "load_rgb", "torchvision.io.decode_image"} <= set(rows)
    assert all(set(r) == {"32", "96"} and min(r.values()) > 0 for r in rows.values())
    section = "\n".join(dataset_check_section(results))
    assert "Image decoding in the dataset check" in section and "images/s at 96 px" in section
