"""README "Bring your own teacher", run as written: its spec and its four commands, on the tiny
synthetic set (only the dataset, the image sizes and the schedule are shrunk to test size)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn_v2

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("### Bring your own teacher")
    return text[start : text.index("\n## ", start)]


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def _commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments dropped."""
    joined = block.replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def test_the_readme_pair_distils_exports_predicts_and_loads_in_stock_torchvision(tiny_synth, tmp_path):
    section = _section()
    spec = json.loads(_blocks(section, "json")[0])
    commands = _commands(_blocks(section, "bash")[0])
    assert [c.split()[0] for c in commands] == ["mar", "mar", "mar", "python"]

    # The teacher: the builder's state_dict as torch.save writes it (classes of the tiny set + background).
    classes = json.loads((tiny_synth / "annotations" / "instances_train.json").read_text())["categories"]
    teacher_file = tmp_path / spec["teacher"]["checkpoint"]
    teacher_file.parent.mkdir(parents=True)
    torch.manual_seed(0)
    teacher = fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=len(classes) + 1)
    torch.save(teacher.state_dict(), teacher_file)

    spec["dataset"] = {"format": "coco", "path": str(tiny_synth)}
    for model in (spec["student"], spec["teacher"]["model"]):
        model.update(min_size=64, max_size=64)
    spec["train"].update(iterations=2, batch_size=2, eval_max_images=2, log_every=1)
    (tmp_path / "byo_teacher.json").write_text(json.dumps(spec))
    (tmp_path / "images").mkdir()
    for image in sorted((tiny_synth / "val").iterdir())[:2]:
        (tmp_path / "images" / image.name).write_bytes(image.read_bytes())

    for command in commands:
        argv = shlex.split(command)
        argv = (
            [sys.executable, "-m", "mar_cli.main", *argv[1:]]
            if argv[0] == "mar"
            else [sys.executable, *argv[1:]]
        )
        r = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
        assert r.returncode == 0, f"{command}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"

    run = tmp_path / "runs" / "byo"
    assert (run / "model.onnx").stat().st_size > 0
    predictions = tmp_path / "preds"
    assert len(list(predictions.glob("*.png"))) == 2 and (predictions / "detections.json").is_file()
