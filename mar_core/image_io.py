"""Read an image file as every part of the service sees it: the dataset check (upload, submit by
path, ``mar data check``), training, evaluation, ``mar predict`` and the drawn samples.
Pillow only: no torch, no numpy (the API image's check uses it). ``mar_core.data.image_tensor``
turns what ``load_rgb`` returns into the tensor training and ``mar predict`` read.

- The format comes from the content, never the suffix (a ``.jpg`` holding a PNG is a PNG). Only
  JPEG (and MPO, the JPEG of phone cameras), PNG, WebP, BMP and TIFF are opened: no other Pillow
  plugin runs on uploaded bytes.
- EXIF orientation is applied (``ImageOps.exif_transpose``), as OpenCV, Ultralytics and the
  labelling tools show the image; sizes are reported after it (``probe`` reads the header only).
- Every mode becomes 8-bit RGB: greyscale, palette, RGBA and LA (alpha dropped, as OpenCV does),
  CMYK, 16-bit and 32-bit integer greyscale (scaled from 0..65535 and rounded, not clipped),
  float greyscale (rounded, clipped to 0..255).
- A truncated file that decodes with Pillow's truncated-image option (the missing part grey) is
  *repaired* (``ImageFacts.repaired``). The option is a Pillow module global: it is set only around
  that second decode, under a lock, never for the whole process.
- An empty, unidentifiable, too large or undecodable file raises ``BadImageError`` naming it.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from mar_core.errors import BadImageError

log = logging.getLogger(__name__)

FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")  # a JPEG that is an MPO opens as MPO
FORMAT_NAMES = "JPEG, PNG, WebP, BMP or TIFF"
_SWAPS_SIDES = frozenset({5, 6, 7, 8})  # EXIF orientations that turn the image by 90 degrees
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_TRUNCATED_LOCK = threading.Lock()
for _plugin in ("Bmp", "Jpeg", "Png", "Tiff", "WebP"):  # registers exactly FORMATS' plugins
    importlib.import_module(f"PIL.{_plugin}ImagePlugin")


@dataclass(frozen=True)
class ImageFacts:
    """What reading a file found: the size as displayed (after EXIF orientation), Pillow's format
    name, whether it had to be repaired (truncated), and (full check only) a digest of its bytes."""

    width: int
    height: int
    format: str
    repaired: bool = False
    digest: str = ""


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(ExifTags.Base.Orientation, 1) or 1)
    except Exception:  # noqa: BLE001  a broken EXIF block (any parser error): shown as stored
        return 1


def _oriented_size(im: Image.Image) -> tuple[int, int]:
    w, h = im.size
    return (h, w) if _orientation(im) in _SWAPS_SIDES else (w, h)


def _read_bytes(path: Path) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BadImageError(f"cannot read image file {path}: {e.strerror or e}") from None
    if not data:
        raise BadImageError(f"cannot read image file {path}: the file is empty")
    return data


def _open(source: Path | bytes, path: Path) -> Image.Image:
    """The image, identified (header read, nothing decoded); ``BadImageError`` naming ``path``."""
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp, formats=FORMATS)
    except UnidentifiedImageError:
        raise BadImageError(f"cannot read image file {path}: not a {FORMAT_NAMES} image") from None
    except Exception as e:  # noqa: BLE001  a plugin's parser on hostile bytes may raise anything
        raise BadImageError(f"cannot read image file {path}: {e}") from None


@contextmanager
def _truncated_images_allowed() -> Iterator[None]:
    with _TRUNCATED_LOCK:
        before = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = before


def _decoded(data: bytes, path: Path) -> tuple[Image.Image, bool]:
    """``(image fully decoded, repaired)``: decoded as it is, else with the truncated-image option."""
    im = _open(data, path)
    try:
        im.load()
        return im, False
    except Exception as first:  # noqa: BLE001  (a decoder on broken bytes: any error)
        im.close()
        im = _open(data, path)
        try:
            with _truncated_images_allowed():
                im.load()
        except Exception:  # noqa: BLE001
            raise BadImageError(f"cannot read image file {path}: {first}") from None
        log.debug("%s: decoded with the truncated-image option (%s)", path, first)
        return im, True


def probe(path: Path) -> ImageFacts:
    """Size (after EXIF orientation) and format from the header alone; ``BadImageError`` when the
    file is empty or not a supported image."""
    path = Path(path)
    try:
        empty = path.stat().st_size == 0
    except OSError as e:
        raise BadImageError(f"cannot read image file {path}: {e.strerror or e}") from None
    if empty:
        raise BadImageError(f"cannot read image file {path}: the file is empty")
    with _open(path, path) as im:
        width, height = _oriented_size(im)
        return ImageFacts(width, height, str(im.format))


def check_file(path: Path) -> ImageFacts:
    """Decode the whole file as training will (``BadImageError`` when it cannot be); its size,
    format, whether it was repaired and a digest of its bytes (duplicates)."""
    path = Path(path)
    data = _read_bytes(path)
    im, repaired = _decoded(data, path)
    with im:
        width, height = _oriented_size(im)
        return ImageFacts(
            width, height, str(im.format), repaired, hashlib.blake2b(data, digest_size=16).hexdigest()
        )


def facts_or_reason(path: Path) -> ImageFacts | str:
    """``check_file(path)``, or the message of its ``BadImageError`` (picklable either way: what
    a worker process of the check returns)."""
    try:
        return check_file(path)
    except BadImageError as e:
        return e.message


def to_rgb(im: Image.Image) -> Image.Image:
    """An RGB image of a decoded image of any mode (16-bit scaled, alpha dropped)."""
    if im.mode in _SIXTEEN_BIT_MODES:  # v / 257, rounded: Pillow's point keeps I's integers
        return im.convert("I").point(lambda v: v * (1 / 257) + 0.5).convert("L").convert("RGB")
    if im.mode == "F":  # F -> L truncates and clips: + 0.5 rounds
        return im.point(lambda v: v + 0.5).convert("L").convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def load_rgb(path: Path, data: bytes | None = None) -> tuple[Image.Image, ImageFacts]:
    """The image as displayed: an RGB image (``W x H`` as ``.size``), EXIF orientation applied, and
    its facts (``repaired`` when it was truncated). ``data``: the file's bytes, when read already.
    ``BadImageError`` naming the file when it cannot be read."""
    path = Path(path)
    im, repaired = _decoded(data if data else _read_bytes(path), path)
    with im:
        fmt = str(im.format)
        try:
            shown = ImageOps.exif_transpose(im) if _orientation(im) != 1 else im
            rgb = to_rgb(shown)
            rgb = rgb.copy() if rgb is im else rgb  # closing ``im`` must not close what is returned
        except Exception as e:  # noqa: BLE001  (a mode Pillow cannot turn into RGB)
            raise BadImageError(f"cannot read image file {path}: {e}") from None
    return rgb, ImageFacts(rgb.width, rgb.height, fmt, repaired)
