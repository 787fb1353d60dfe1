"""``mar run`` and ``mar data synth`` as a user calls them: exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys


def mar(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "mar_cli.main", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_bad_spec_exits_2_naming_the_field(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"kind": "train", "dataset": {"path": "x"}, "train": {"batch_size": 0}}))
    out = mar("run", str(spec), "--workdir", str(tmp_path / "w"))
    assert out.returncode == 2
    assert "train.batch_size" in out.stderr


def test_missing_dataset_exits_2_before_training(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"kind": "train", "dataset": {"path": str(tmp_path / "nope")}}))
    out = mar("run", str(spec), "--workdir", str(tmp_path / "w"))
    assert out.returncode == 2, out.stderr
    assert "dataset.path" in out.stderr or "nope" in out.stderr
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_unsafe_teacher_exits_2_and_never_runs_the_pickle(tiny_synth, tmp_path):
    marker = tmp_path / "pwned"
    payload = tmp_path / "teacher.pt"
    code = (
        "import pickle, sys\n"
        "class E:\n"
        "    def __reduce__(self):\n"
        f"        return (open, ({str(marker)!r}, 'w'))\n"
        f"pickle.dump({{'model': E()}}, open({str(payload)!r}, 'wb'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "kind": "distill",
                "dataset": {"path": str(tiny_synth)},
                "student": {"fpn_channels": 32, "min_size": 64, "max_size": 64},
                "teacher": {"checkpoint": str(payload), "model": {"fpn_channels": 32}},
                "train": {"iterations": 1, "batch_size": 2},
            }
        )
    )
    out = mar("run", str(spec), "--workdir", str(tmp_path / "w"), "--no-progress")
    assert out.returncode == 2, out.stderr
    assert "refused" in out.stderr
    assert not marker.exists()


def test_synth_then_run_one_step(tmp_path):
    assert (
        mar(
            "data",
            "synth",
            "--out",
            str(tmp_path / "d"),
            "--seed",
            "1",
            "--num-train",
            "8",
            "--num-val",
            "4",
            "--image-size",
            "64",
        ).returncode
        == 0
    )
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "kind": "train",
                "dataset": {"path": str(tmp_path / "d")},
                "model": {"fpn_channels": 32, "min_size": 64, "max_size": 64},
                "train": {"iterations": 2, "batch_size": 2, "warmup_iters": 1},
            }
        )
    )
    out = mar("run", str(spec), "--workdir", str(tmp_path / "w"), "--no-progress")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert 0.0 <= summary["AP"] <= 1.0 and (tmp_path / "w" / "model.pt").exists()
