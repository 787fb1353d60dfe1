"""``mar distill`` refuses bad input with exit code 2 and a message naming the option, before it
starts or reaches any service (the end-to-end run: tests/integration/test_mar_distill.py)."""

from __future__ import annotations

import pytest

from mar_cli.main import main


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("MAR_API_URL", "http://127.0.0.1:9")  # nothing may be contacted
    (tmp_path / "data").mkdir()
    (tmp_path / "teacher.pth").write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    return tmp_path


CASES = {
    "data": (["--data", "missing/"], "--data: missing/ not found"),
    "student": (["--student", "yolov8n"], "--student: unknown builder or preset 'yolov8n'"),
    "teacher_model": (
        ["--teacher-model", "resnet50"],
        "--teacher-model: a weights file needs its torchvision builder",
    ),
    "teacher": (["--teacher", "gone.pth"], "--teacher: gone.pth is not a weights file"),
    "teacher_classes": (["--teacher-classes", "classes.txt"], "--teacher-classes: classes.txt not found"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_naming_the_option(files, capsys, case):
    argv = {
        "--data": "data",
        "--teacher": "teacher.pth",
        "--teacher-model": "fasterrcnn_resnet50_fpn",
        "--student": "fasterrcnn_mobilenet_v3_large_320_fpn",
        "--out": "out",
    }
    override, message = CASES[case]
    argv.update(dict(zip(override[::2], override[1::2])))
    assert main(["distill", *[x for kv in argv.items() for x in kv]]) == 2
    assert message in capsys.readouterr().err
    assert not (files / "out").exists()
