"""The one image loader (``mar_core.image_io``) on every kind of the generated corpus, and the
parallel decoding of the dataset check (``image_scan``) against the serial one."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFile

from mar_core.annotations.image_scan import scan_files
from mar_core.errors import BadImageError
from mar_core.image_io import check_file, load_rgb, probe
from tests.image_corpus import ACCEPTED, GROUND, KINDS, OBJECT, REFUSED, object_box, write_kind

W, H = 64, 48


@pytest.mark.parametrize("kind", ACCEPTED)
def test_accepted_kinds_read_as_displayed_rgb(tmp_path, kind):
    path = write_kind(tmp_path, kind, W, H)
    rgb, facts = load_rgb(path)
    pixels = np.asarray(rgb)
    assert rgb.mode == "RGB" and pixels.shape == (H, W, 3) and pixels.dtype == np.uint8
    assert (facts.width, facts.height) == (W, H) == (probe(path).width, probe(path).height)
    assert facts.repaired == (KINDS[kind][2] == "repaired") == check_file(path).repaired
    x, y, w, h = object_box(W, H)
    inside = pixels[y + 2 : y + h - 2, x + 2 : x + w - 2].reshape(-1, 3).mean(0)
    outside = pixels[H - 8 :, :8].reshape(-1, 3).mean(0)
    expected_in = np.full(3, np.mean(OBJECT)) if kind == "png16" else np.array(OBJECT)  # greyscale
    expected_out = np.full(3, np.mean(GROUND)) if kind == "png16" else np.array(GROUND)
    assert np.abs(inside - expected_in).max() < 12, (kind, inside)
    assert np.abs(outside - expected_out).max() < 12, (kind, outside)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # set only around one decode, never left on


def test_exif_rotated_file_is_stored_sideways(tmp_path):
    path = write_kind(tmp_path, "exif_rotated_jpeg", W, H)
    with Image.open(path) as im:
        assert im.size == (H, W)  # as stored
    assert (probe(path).width, probe(path).height) == (W, H)  # as shown


def test_png16_scaled_not_clipped(tmp_path):
    path = tmp_path / "g.png"
    levels = [0, 128, 257 * 100, 257 * 100 + 128, 257 * 100 + 129, 65535]
    Image.fromarray(np.array([levels], np.uint16)).save(path)
    expected = np.clip(np.rint(np.array(levels, np.float64) / 257.0), 0, 255).tolist()  # 0 0 100 100 101 255
    assert np.asarray(load_rgb(path)[0])[0, :, 0].tolist() == expected
    assert np.asarray(load_rgb(path)[0])[0, :, 2].tolist() == expected  # grey in all three channels


def test_float_tiff_rounded_and_clipped(tmp_path):
    path = tmp_path / "f.tif"
    Image.fromarray(np.array([[-5.0, 0.4, 0.6, 99.7, 254.6, 300.0]], np.float32)).save(path)
    assert np.asarray(load_rgb(path)[0])[0, :, 1].tolist() == [0, 0, 1, 100, 255, 255]


@pytest.mark.parametrize("kind", REFUSED)
def test_refused_kinds_named(tmp_path, kind):
    path = write_kind(tmp_path, kind, W, H)
    for read in (probe, check_file, load_rgb):
        with pytest.raises(BadImageError, match=f"cannot read image file .*{path.name}"):
            read(path)


def test_other_formats_are_not_opened(tmp_path):
    path = tmp_path / "a.gif"
    Image.new("RGB", (8, 8)).save(path, "GIF")
    with pytest.raises(BadImageError, match="not a JPEG, PNG, WebP, BMP or TIFF image"):
        probe(path)


def test_parallel_scan_matches_serial(tmp_path):
    paths = [write_kind(tmp_path / f"{i}", kind, W, H, seed=i) for i, kind in enumerate(KINDS)]
    done: list[int] = []
    serial = scan_files(paths, workers=1)
    parallel = scan_files(paths, workers=2, parallel_min=1, progress=lambda n, total: done.append(n))
    assert parallel == serial
    assert done == list(range(1, len(paths) + 1))
    outcome = {k: KINDS[k][2] for k in KINDS}
    for kind, result in zip(KINDS, serial):
        assert isinstance(result, str) == (outcome[kind] == "refused"), kind
        if not isinstance(result, str):
            assert result.repaired == (outcome[kind] == "repaired") and len(result.digest) == 32
