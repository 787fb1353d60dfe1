"""Messy image files as phones, scanners and labelling tools export them, generated (nothing is
downloaded; torch-free: the API tests use them too).

``KINDS`` maps a kind to its writer and the outcome every reader of the service must give it:
``ok`` (decoded as is), ``repaired`` (truncated, decoded with the missing part grey, named in the
report's warnings) or ``refused`` (422 at upload and submit, exit 2 in ``mar data check``, left out
and counted under ``on_bad_image: "skip"``). Each writer takes the file to write and the size as
displayed, and draws the same scene: a dark ground with one bright object at ``object_box``.

``rotated_jpeg`` stores the scene turned a quarter (EXIF orientation 6, as a phone held upright
stores it): the labelling tools, OpenCV and Ultralytics show it upright, and the box is drawn on
that displayed image.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

GROUND, OBJECT = (20, 30, 40), (240, 220, 200)
ORIENTATION_TAG = 0x0112


def object_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The object's ``x, y, w, h`` in the displayed image: in the right half, upper part, so a
    wrong rotation moves it elsewhere."""
    return width * 5 // 8, height // 8, width // 4, height // 3


def scene(width: int, height: int, seed: int = 0) -> Image.Image:
    """The displayed image: a dark noisy ground, one bright object (noise keeps files distinct)."""
    rng = np.random.default_rng(seed)
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = GROUND
    pixels += rng.integers(0, 8, pixels.shape, dtype=np.uint8)
    x, y, w, h = object_box(width, height)
    pixels[y : y + h, x : x + w] = OBJECT
    return Image.fromarray(pixels)


def _jpeg_bytes(im: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95, **options)
    return buf.getvalue()


def rgb_jpeg(path: Path, width: int, height: int, seed: int = 0) -> None:
    path.write_bytes(_jpeg_bytes(scene(width, height, seed)))


def truncated_jpeg(path: Path, width: int, height: int, seed: int = 0) -> None:
    """A JPEG missing its last bytes (a download cut short): viewers show it, grey at the bottom."""
    data = _jpeg_bytes(scene(width, height, seed))
    path.write_bytes(data[: len(data) - 40])


def rotated_jpeg(path: Path, width: int, height: int, seed: int = 0) -> None:
    """Stored turned a quarter (``height x width`` on disk) with EXIF orientation 6."""
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    stored = scene(width, height, seed).transpose(Image.Transpose.ROTATE_90)
    path.write_bytes(_jpeg_bytes(stored, exif=exif))


def cmyk_jpeg(path: Path, width: int, height: int, seed: int = 0) -> None:
    path.write_bytes(_jpeg_bytes(scene(width, height, seed).convert("CMYK")))


def png16(path: Path, width: int, height: int, seed: int = 0) -> None:
    """16-bit greyscale PNG (mode I;16): the object at 60000 of 65535."""
    grey = np.asarray(scene(width, height, seed).convert("L"), np.uint16) * 257
    Image.fromarray(grey).save(path, "PNG")


def palette_png(path: Path, width: int, height: int, seed: int = 0) -> None:
    scene(width, height, seed).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(path, "PNG")


def rgba_png(path: Path, width: int, height: int, seed: int = 0) -> None:
    im = scene(width, height, seed).convert("RGBA")
    im.putalpha(128)
    im.save(path, "PNG")


def png_named_jpg(path: Path, width: int, height: int, seed: int = 0) -> None:
    """A PNG whose suffix lies (``.jpg``): read by its content."""
    scene(width, height, seed).save(path, "PNG")


def _saver(fmt: str) -> Callable[[Path, int, int, int], None]:
    def write(path: Path, width: int, height: int, seed: int = 0) -> None:
        scene(width, height, seed).save(path, fmt)

    return write


def empty_file(path: Path, width: int, height: int, seed: int = 0) -> None:
    path.write_bytes(b"")


def garbage_file(path: Path, width: int, height: int, seed: int = 0) -> None:
    """Not an image at all (an HTML error page saved under the image's name)."""
    path.write_bytes(b"<html><body>404 Not Found</body></html>\n" * (seed + 1))


# kind -> (writer, suffix of the file written, expected outcome)
KINDS: dict[str, tuple[Callable[..., None], str, str]] = {
    "jpeg": (rgb_jpeg, ".jpg", "ok"),
    "truncated_jpeg": (truncated_jpeg, ".jpg", "repaired"),
    "exif_rotated_jpeg": (rotated_jpeg, ".jpg", "ok"),
    "cmyk_jpeg": (cmyk_jpeg, ".jpg", "ok"),
    "png16": (png16, ".png", "ok"),
    "palette_png": (palette_png, ".png", "ok"),
    "rgba_png": (rgba_png, ".png", "ok"),
    "png_named_jpg": (png_named_jpg, ".jpg", "ok"),
    "webp": (_saver("WEBP"), ".webp", "ok"),
    "bmp": (_saver("BMP"), ".bmp", "ok"),
    "tiff": (_saver("TIFF"), ".tiff", "ok"),
    "empty": (empty_file, ".jpg", "refused"),
    "garbage": (garbage_file, ".png", "refused"),
}
ACCEPTED = [k for k, (_, _, outcome) in KINDS.items() if outcome != "refused"]
REFUSED = [k for k, (_, _, outcome) in KINDS.items() if outcome == "refused"]


def write_kind(folder: Path, kind: str, width: int = 64, height: int = 48, seed: int = 0) -> Path:
    """The file of ``kind`` in ``folder``, named after the kind; returns its path."""
    writer, suffix, _ = KINDS[kind]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}{suffix}"
    writer(path, width, height, seed)
    return path


def write_yolo_corpus(root: Path, kinds: list[str], width: int = 64, height: int = 48) -> Path:
    """A YOLO dataset (class ``thing``): train holds one image of each of ``kinds`` with its object
    labelled (box drawn on the displayed image), named ``{i}_{kind}{suffix}``; val two plain
    JPEGs. Returns ``root``."""
    x, y, w, h = object_box(width, height)
    line = f"0 {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}\n"
    for split, names in (("train", kinds), ("val", ["jpeg", "jpeg"])):
        images, labels = root / "images" / split, root / "labels" / split
        labels.mkdir(parents=True, exist_ok=True)
        for i, kind in enumerate(names):
            path = write_kind(images, kind, width, height, seed=i + (100 if split == "val" else 0))
            path = path.rename(images / (f"val_{i}.jpg" if split == "val" else f"{i}_{path.name}"))
            (labels / f"{path.stem}.txt").write_text(line)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [thing]\n")
    return root
