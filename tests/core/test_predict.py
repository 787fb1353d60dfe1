"""``mar predict`` and ``mar_core.predict``: detections above a score, drawn images that decode, and a
COCO results JSON that pycocotools loads and evaluates against a ground truth built for its images."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mar_cli.main import main
from mar_core.data import load_dataset
from mar_core.errors import SpecError
from mar_core.models.checkpoint_io import MODEL_WEIGHTS, write_model_output
from mar_core.models.loading import load_detector
from mar_core.models.registry import build_detector
from mar_core.models.thresholds import score_threshold_of
from mar_core.predict import IMAGES_FILE, RESULTS_FILE, coco_results, find_images, load_image, predict
from tests.conftest import tiny_spec


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run as fast on one thread; on a shared, busy machine more threads spin (10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def val(tiny_synth):
    return load_dataset(tiny_spec(tiny_synth).dataset, "val")


@pytest.fixture(scope="module")
def run_dir(tiny_synth, val, tmp_path_factory) -> Path:
    """A RetinaNet run folder with random (seeded) weights and the set's class names."""
    spec = tiny_spec(tiny_synth, model={"arch": "retinanet"}).model
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("predict") / "run"
    write_model_output(out, build_detector(spec, len(val.class_names) + 1), spec, val.class_names)
    return out


@pytest.fixture(scope="module")
def threshold(run_dir, val) -> float:
    """Between the 10th and 11th best scores on the first val image (clear of float noise either way):
    untrained, RetinaNet scores sit near its prior 0.01, under the model's own 0.05, so a threshold
    from the model itself keeps a few boxes."""
    scores = predict(load_detector(run_dir).model, [val.load_image(0)], score_threshold=0.005)[0]["scores"]
    return float(scores[9] + scores[10]) / 2


def test_predict_keeps_detections_at_or_above_the_threshold(run_dir, val, threshold):
    model = load_detector(run_dir).model.train()
    images = [val.load_image(i) for i in range(3)]
    more = predict(model, images, score_threshold=threshold * 0.9, batch_size=2)
    kept = predict(model, images, score_threshold=threshold, batch_size=2)  # batches of 2 and 1
    assert len(kept) == 3 and len(kept[0]["scores"]) == 10
    assert threshold < score_threshold_of(model) == 0.05  # the model's own threshold was lowered...
    assert model.training  # ...and the model put back as it was
    for more_dets, dets in zip(more, kept):
        assert set(dets) == {"boxes", "labels", "scores"}
        assert bool((dets["scores"] >= threshold).all()) and bool((dets["labels"] > 0).all())
        above = more_dets["scores"] >= threshold
        assert len(dets["scores"]) < len(more_dets["scores"])
        torch.testing.assert_close(dets["boxes"], more_dets["boxes"][above])
    with pytest.raises(SpecError, match=r"score threshold must be in \[0, 1\], got 1.5"):
        predict(model, images, score_threshold=1.5)


def test_coco_results_are_xywh_with_the_labels_as_category_ids():
    det = {
        "boxes": torch.tensor([[1.0, 2.0, 11.0, 32.0]]),
        "labels": torch.tensor([3]),
        "scores": torch.tensor([0.987654]),
    }
    rows = coco_results([{k: v[:0] for k, v in det.items()}, det])
    assert rows == [{"image_id": 2, "category_id": 3, "bbox": [1.0, 2.0, 10.0, 30.0], "score": 0.98765}]


def test_mar_predict_on_a_file_and_a_folder(run_dir, val, threshold, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in (2, 1):  # the folder's images are taken sorted by name
        shutil.copy(val.image_path(i), folder / f"val{i}.png")
    Image.open(val.image_path(3)).convert("RGB").save(folder / "val3.jpg", quality=98)
    (folder / "notes.txt").write_text("not an image")  # skipped in a folder
    single = val.image_path(0)
    out = tmp_path / "out"

    argv = ["predict", str(run_dir), str(single), str(folder), "--out", str(out)]
    assert main([*argv, "--score-threshold", str(threshold), "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out)
    inputs = [single, folder / "val1.png", folder / "val2.png", folder / "val3.jpg"]
    assert printed["images"] == 4 and printed["detections"] >= 10

    # The drawn images: one per input, decodable, the input's size, with boxes drawn on them.
    drawn = [out / "000000.png", out / "val1.png", out / "val2.png", out / "val3.jpg"]
    for src, path in zip(inputs, drawn):
        with Image.open(path) as im:
            im.load()
            assert im.format == ("JPEG" if path.suffix == ".jpg" else "PNG")
            pixels = np.asarray(im.convert("RGB"))
        assert pixels.shape == np.asarray(Image.open(src).convert("RGB")).shape
    first = np.asarray(Image.open(drawn[0]).convert("RGB"))
    assert (first != np.asarray(Image.open(single).convert("RGB"))).any()

    # The results refer to images.json: ids in input order, the model card's class names.
    listed = json.loads((out / IMAGES_FILE).read_text())
    assert [(im["id"], im["file_name"]) for im in listed["images"]] == [
        (i + 1, str(p)) for i, p in enumerate(inputs)
    ]
    assert [c["name"] for c in listed["categories"]] == val.class_names
    assert [c["id"] for c in listed["categories"]] == list(range(1, len(val.class_names) + 1))
    results = json.loads((out / RESULTS_FILE).read_text())
    assert len(results) == printed["detections"]
    ids = {c["id"] for c in listed["categories"]}
    assert all(r["category_id"] in ids and r["score"] >= round(threshold, 5) - 1e-5 for r in results)

    # The rows are the library's detections, boxes as x, y, w, h (one batch of 4, as the CLI ran).
    model = load_detector(run_dir).model
    dets = predict(model, [load_image(p) for p in inputs], score_threshold=threshold, batch_size=4)
    assert results == coco_results(dets)

    with contextlib.redirect_stdout(io.StringIO()):
        # pycocotools loads the results against images.json itself...
        assert len(COCO(str(out / IMAGES_FILE)).loadRes(str(out / RESULTS_FILE)).getAnnIds()) == len(results)
        # ...and against a ground truth built for these images (the val annotations, under the
        # image ids of the inputs), where COCOeval runs.
        gt = COCO()
        gt.dataset = _ground_truth(val, inputs, listed)
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(str(out / RESULTS_FILE)), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert 0.0 <= ev.stats[0] <= 1.0


def _ground_truth(val, inputs: list[Path], listed: dict) -> dict:
    by_name = {Path(val.image_path(i)).name: i for i in range(len(val))}
    source = {"val1.png": "000001.png", "val2.png": "000002.png", "val3.jpg": "000003.png"}
    annotations = []
    for image_id, path in enumerate(inputs, start=1):
        target = val.get_target(by_name[source.get(path.name, path.name)])
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            x1, y1, x2, y2 = box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    return {"images": listed["images"], "categories": listed["categories"], "annotations": annotations}


def test_bad_input_is_an_error_naming_it(run_dir, val, tmp_path, capsys):
    image = str(val.image_path(0))
    out = str(tmp_path / "out")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "bare").mkdir()
    shutil.copy(run_dir / MODEL_WEIGHTS, tmp_path / "bare" / MODEL_WEIGHTS)
    cases = [
        ([str(tmp_path / "nope"), image], "weights or run folder not found"),
        ([str(tmp_path / "bare" / MODEL_WEIGHTS), image], "no model.json in"),
        ([str(run_dir), str(tmp_path / "missing.png")], "image or folder not found"),
        ([str(run_dir), str(tmp_path / "empty")], "no images"),
        ([str(run_dir), str(tmp_path / "notes.txt")], "not an image file"),
        ([str(run_dir), image, "--score-threshold", "1.5"], "score threshold must be in [0, 1]"),
    ]
    for args, message in cases:
        assert main(["predict", *args, "--out", out]) == 2, args
        err = capsys.readouterr().err
        assert message in err, (args, err)
    folder = Path(val.image_path(0)).parent
    assert main(["predict", str(run_dir), str(folder), "--out", str(folder)]) == 2
    assert "would overwrite the input image" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SpecError, match="no images given"):
        find_images([])
