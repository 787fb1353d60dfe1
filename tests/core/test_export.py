"""ONNX and TorchScript export (``mar_core.export``, ``mar export``): the exported files give the torch
model's detections. ONNX runs in onnxruntime (CPU) on the tiny synthetic set's val images and on
one image of another, non-square size (the graph's image size is dynamic); TorchScript loads in a
fresh interpreter that never imports ``mar_core``."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from mar_cli.main import main
from mar_core.data import load_dataset
from mar_core.errors import SpecError
from mar_core.export import EXPORT_FILES, ONNX_OUTPUTS, export_detector
from mar_core.models.checkpoint_io import write_model_output
from mar_core.models.loading import load_detector
from mar_core.models.registry import build_detector
from mar_core.models.thresholds import detector_settings
from mar_core.onnx_parity import NONE, compare_detections
from tests.conftest import tiny_spec

ARCHS = ("retinanet", "fcos", "fasterrcnn")
# Post-processing without a cut other than the score: no top-k and no per-image limit, so a near-tie
# at a cut-off cannot put a different box into one of the two lists. The score thresholds keep about
# the best tenth of the seeded, untrained models' detections (60 to 100 an image): untrained, RetinaNet
# scores sit near its prior 0.01, so its default 0.05 would leave nothing to compare, and a threshold
# of ~0 would leave ~1000 an image (slow, and no better a test).
NO_CUTS = {"detections_per_img": 100_000, "topk_candidates": 100_000}
SCORE_THRESH = {"retinanet": 0.0125, "fcos": 0.075, "fasterrcnn": 0.18}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run as fast on one thread; on a shared, busy machine more threads spin (10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _val(tiny_synth):
    return load_dataset(tiny_spec(tiny_synth).dataset, "val")


@pytest.fixture(scope="module")
def images(tiny_synth) -> list[torch.Tensor]:
    """The val images (64 px), and the first one resized to 80 x 96, which the model resizes by its
    max_size (64) to 53 x 64. Not a size like 76 x 100: scripted, torchvision computes the resize
    scale in float32 (0.64 -> 0.6399999857), so the scripted model makes that one 48 x 63 where eager
    torch and ONNX make it 48 x 64 (see mar_core.export)."""
    val = _val(tiny_synth)
    imgs = [val.load_image(i) for i in range(len(val))]
    odd = F.interpolate(imgs[0][None], size=(80, 96), mode="bilinear", align_corners=False)[0]
    return imgs + [odd.clamp(0, 1)]


@dataclass
class Family:
    run_dir: Path  # model.json + model.pt, random weights (seeded)
    model: torch.nn.Module  # as loaded from run_dir (the parity settings are set around each use)
    files: dict[str, Path]  # both exports
    refs: list[dict[str, torch.Tensor]]  # the eager model's detections on `images`


class Families:
    """Each detector family built, exported and run in torch on first use (so each test pays for its own)."""

    def __init__(self, root: Path, synth: Path, images: list[torch.Tensor]):
        self.root, self.synth, self.images = root, synth, images
        self.class_names = _val(synth).class_names
        self.built: dict[str, Family] = {}

    def __getitem__(self, arch: str) -> Family:
        if arch not in self.built:
            spec = tiny_spec(self.synth, model={"arch": arch}).model
            torch.manual_seed(0)
            run_dir = self.root / arch
            write_model_output(
                run_dir, build_detector(spec, len(self.class_names) + 1), spec, self.class_names
            )
            model = load_detector(run_dir).model.eval()
            with detector_settings(model, score_thresh=SCORE_THRESH[arch], **NO_CUTS):
                files = export_detector(model, run_dir / "export", class_names=self.class_names)
                with torch.no_grad():  # a batch of the 64 px images (no padding: one size), the other alone
                    refs = model(self.images[:-1]) + model(self.images[-1:])
            assert all(len(r["boxes"]) > 0 for r in refs), f"{arch}: no detection to compare"
            self.built[arch] = Family(run_dir, model, files, refs)
        return self.built[arch]


@pytest.fixture(scope="module")
def families(tiny_synth, images, tmp_path_factory) -> Families:
    return Families(tmp_path_factory.mktemp("export"), tiny_synth, images)


@pytest.mark.parametrize("arch", ARCHS)
def test_onnx_gives_the_torch_detections_at_any_image_size(families, images, arch):
    family = families[arch]
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(family.files["onnx"]), options, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == list(ONNX_OUTPUTS)
    assert session.get_inputs()[0].shape[1:] == ["height", "width"]
    assert images[-1].shape[-2:] != images[0].shape[-2:]
    total = NONE
    for image, ref in zip(images, family.refs):
        got = dict(zip(ONNX_OUTPUTS, session.run(None, {"image": image.numpy()})))
        assert got["labels"].dtype == np.int64
        parity = compare_detections({k: v.numpy() for k, v in ref.items()}, got, SCORE_THRESH[arch])
        assert parity.compared > 0 and parity.ok, parity
        total = total + parity
    print(
        f"\nONNX parity {arch}: {total.compared} detections on {total.images} images, max |d box| "
        f"{total.max_box_px:.3g} px, max rel {total.max_box_rel:.3g}, max |d score| {total.max_score:.3g}"
    )


def test_onnx_metadata_holds_the_model_card(families):
    graph = onnx.load(str(families["fcos"].files["onnx"]))
    meta = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(meta["class_names"]) == families.class_names


FRESH = """
import json, sys
import torch, torchvision  # torchvision registers the nms / roi_align operators the files call
torch.set_num_threads(1)  # tiny models: one thread is as fast, and never spins on a busy machine
inputs = torch.load(sys.argv[1])
outputs = {}
for arch, path in json.loads(sys.argv[2]).items():
    extra = {"model.json": ""}
    model = torch.jit.load(path, _extra_files=extra)
    dets = [d for batch in inputs for d in model(batch)]
    outputs[arch] = {"dets": dets, "class_names": json.loads(extra["model.json"])["class_names"]}
assert not any(m == "mar_core" or m.startswith(("mar_core.", "tests")) for m in sys.modules), "mar_core imported"
torch.save(outputs, sys.argv[3])
"""


def test_torchscript_loads_without_mar_core_and_gives_the_same_detections(families, images, tmp_path):
    batches = [images[:2], images[-1:]]  # two 64 px images, and the other size
    torch.save(batches, tmp_path / "inputs.pt")
    paths = {arch: str(families[arch].files["torchscript"]) for arch in ARCHS}
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH,
            str(tmp_path / "inputs.pt"),
            json.dumps(paths),
            str(tmp_path / "outputs.pt"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    outputs = torch.load(tmp_path / "outputs.pt")
    for arch in ARCHS:
        model = families[arch].model
        with torch.no_grad(), detector_settings(model, score_thresh=SCORE_THRESH[arch], **NO_CUTS):
            refs = [d for batch in batches for d in model(batch)]
        assert outputs[arch]["class_names"] == families.class_names
        assert len(outputs[arch]["dets"]) == 3
        for want, got in zip(refs, outputs[arch]["dets"]):
            assert set(got) == {"boxes", "labels", "scores"}
            torch.testing.assert_close(got["labels"], want["labels"], rtol=0, atol=0)
            torch.testing.assert_close(got["boxes"], want["boxes"], rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(got["scores"], want["scores"], rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_mar_export_writes_the_files_of_a_run(families, tmp_path, capsys):
    run_dir = families["fcos"].run_dir
    assert main(["export", str(run_dir), "--format", "torchscript", "--out", str(tmp_path / "out")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"torchscript": str(tmp_path / "out" / EXPORT_FILES["torchscript"])}
    extra = {"model.json": ""}
    torch.jit.load(printed["torchscript"], _extra_files=extra)
    card = json.loads(extra["model.json"])
    assert card["model"]["arch"] == "fcos" and card["class_names"] == families.class_names
    assert card["num_classes"] == len(families.class_names) + 1


def test_bad_input_is_an_error_naming_it(families, tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), "--format", "onnx"]) == 2
    assert "run folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty")]) == 2
    assert "holds no model.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["export", str(tmp_path), "--format", "tflite"])
    assert done.value.code == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
    model = families["fcos"].model
    with pytest.raises(SpecError, match="unknown export format 'tflite'"):
        export_detector(model, tmp_path / "x", formats=["onnx", "tflite"])
    with pytest.raises(SpecError, match=r"score threshold must be in \[0, 1\]"):
        export_detector(model, tmp_path / "x", score_threshold=2.0)
    assert not (tmp_path / "x").exists()
