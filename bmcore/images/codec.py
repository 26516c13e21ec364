"""One image: decoded safely (the pixel caps checked from the header first, EXIF rotation applied, every mode made
"RGB" or "L"), hashed by its pixels, written as PNG, scaled for a grid; and a source's images decoded into the rows
of an image frame: ``image`` (PNG bytes), ``label``, ``sha256`` and ``path`` (:data:`FRAME_COLUMNS`).
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import threading
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from typing import IO, Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import BmcoreError
from ..limits import check_image_pixels, check_total_pixels, current

FRAME_COLUMNS = ("image", "label", "sha256", "path")
MODE_NOTICES = {"CMYK": "CMYK images converted to RGB", "P": "palette images converted to RGB",
                "PA": "palette images with transparency converted to RGB (transparent areas white)",
                "RGBA": "RGBA images converted to RGB (transparent areas white)",
                "LA": "grayscale images with transparency converted to grayscale (transparent areas white)",
                "1": "1-bit images converted to 8-bit grayscale", "I;16": "16-bit grayscale images converted to 8-bit",
                "I": "32-bit integer images converted to 8-bit grayscale", "F": "floating-point images converted to 8-bit grayscale",
                "YCbCr": "YCbCr images converted to RGB", "LAB": "Lab images converted to RGB", "HSV": "HSV images converted to RGB"}


def _open(data: bytes | IO[bytes], name: str) -> Image.Image:
    """Open (header only: ``data`` is the file's bytes, or a binary file object) with the pixel cap checked before
    anything is decoded."""
    if isinstance(data, (bytes, bytearray)):
        empty = not data
    else:  # a zip member or file: peek at one byte, then back to the start
        empty = not data.read(1)
        data.seek(0)
    if empty:
        raise BmcoreError(f"{name} is empty (0 bytes), not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: our own cap is checked below; odd EXIF
            img = Image.open(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data)
    except Image.DecompressionBombError as exc:  # PIL's hard stop, at twice its Image.MAX_IMAGE_PIXELS
        size = re.search(r"\((\d+) pixels\)", str(exc))
        raise BmcoreError(f"{name} has {int(size.group(1)) if size else 0:,} pixels, more than the limit of "
                          f"{min(current().max_image_pixels, 2 * (Image.MAX_IMAGE_PIXELS or 0)):,} pixels "
                          "(a decompression bomb?); resize it first") from exc
    except UnidentifiedImageError as exc:
        raise BmcoreError(f"{name} is not an image (PNG, JPEG, BMP, GIF, WebP or TIFF)") from exc
    except (OSError, ValueError, SyntaxError, struct.error) as exc:
        raise BmcoreError(f"{name} is not a readable image ({exc.__class__.__name__})") from exc
    check_image_pixels(name, *img.size)
    return img


def _flatten(img: Image.Image) -> Image.Image:
    """An image with an alpha channel composited on white, as it is usually seen."""
    rgba = img.convert("LA" if img.mode == "LA" else "RGBA")
    white = Image.new(rgba.mode, rgba.size, (255, 255) if rgba.mode == "LA" else (255, 255, 255, 255))
    return Image.alpha_composite(white.convert("RGBA"), rgba.convert("RGBA")).convert("L" if img.mode == "LA" else "RGB")


def _to_standard(img: Image.Image) -> tuple[Image.Image, str | None]:
    """The image as "RGB" or "L", and the kind of conversion made (a key of :data:`MODE_NOTICES`), if any."""
    mode = img.mode
    if mode in ("RGB", "L"):
        return img, None
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(np.round(arr * 255.0 / top), 0, 255).astype(np.uint8), "L"), \
            "I;16" if mode.startswith("I;16") else mode
    if mode == "P":
        if "transparency" in img.info:
            return _flatten(img.convert("RGBA")), "PA"
        return img.convert("RGB"), "P"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        key = "LA" if mode in ("LA", "La") else "PA" if mode == "PA" else "RGBA"
        return _flatten(img.convert("LA" if key == "LA" else "RGBA")), key
    if mode == "1":
        return img.convert("L"), "1"
    return img.convert("RGB"), mode


def _orientation(img: Image.Image) -> int | None:
    """The EXIF orientation tag (1: upright); None when the EXIF block is missing or unreadable (no reason to refuse
    a readable picture)."""
    try:
        return img.getexif().get(0x0112)
    except Exception:  # PIL raises many kinds for a damaged EXIF block
        return None


def total_pixels(name: str, members: Iterable[tuple[str, Callable[[], IO[bytes]]]]) -> int:
    """The pixels of all of a source's images (``members``: each image's name and how to open it as a binary file),
    read from their headers alone; refused as soon as they pass ``BMCORE_MAX_TOTAL_PIXELS`` (and one image over
    ``BMCORE_MAX_IMAGE_PIXELS``, or a file that is no image, is refused naming it): nothing of a source that is too
    big is decoded."""
    total = 0
    for member, open_member in members:
        with open_member() as fh:
            width, height = _open(fh, member).size
        total += width * height
        check_total_pixels(name, total)
    return total


def decode_one(data: bytes, name: str = "image", min_side: int | None = None) -> tuple[Image.Image, str | None, bool]:
    """Decode ``data`` as :func:`decode_image` does; also return the conversion made (a :data:`MODE_NOTICES`
    key or None) and whether an EXIF orientation was applied. With ``min_side`` a large image is reduced on load
    by a whole factor that keeps its shorter side at least ``min_side`` (JPEG in the decoder, others by a box
    filter): a 5000x5000 photo for a 224-pixel model (``min_side`` 448) is held at 454x454."""
    img = _open(data, name)
    factor = min(img.size) // min_side if min_side else 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about odd EXIF or palette transparency: not our user's problem
            if factor >= 2:
                img.draft(img.mode, (max(1, img.width // factor), max(1, img.height // factor)))  # JPEG: scaled decode
            img.load()
            turned = _orientation(img) not in (None, 1)
            img = ImageOps.exif_transpose(img) if turned else img
            img, conversion = _to_standard(img)
            if min_side and min(img.size) // min_side >= 2:  # what the JPEG decoder did not reduce already
                img = img.reduce(min(img.size) // min_side)
    except BmcoreError:
        raise
    except (OSError, ValueError, SyntaxError, struct.error, zlib.error, EOFError) as exc:
        what = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise BmcoreError(f"{name} is {what}: not a readable image ({exc.__class__.__name__})") from exc
    return img, conversion, turned


def decode_image(data: bytes, name: str = "image", min_side: int | None = None) -> Image.Image:
    """Decode an image file's bytes into a PIL image in "RGB" or "L" mode, EXIF rotation applied.

    Refuses with a one-line :class:`BmcoreError` naming ``name``: an empty, non-image, corrupt or truncated file, and
    one over the pixel cap (``BMCORE_MAX_IMAGE_PIXELS``), checked from the header before the pixels are decoded.
    CMYK, palette, 16-bit, 1-bit and alpha images are converted (transparent areas become white); the first frame of
    an animation is used. ``min_side``: reduce a large image on load (:func:`decode_one`).
    """
    return decode_one(data, name, min_side)[0]


def pixel_hash(img: Image.Image) -> str:
    """The SHA-256 of an image's mode, size and pixels: equal for the same picture saved in different files."""
    return hashlib.sha256(f"{img.mode}:{img.width}x{img.height}:".encode() + img.tobytes()).hexdigest()


def encode_png(img: Image.Image) -> bytes:
    """The image as PNG bytes (lossless, fast compression)."""
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def gray_png(pixels: np.ndarray) -> bytes:
    """A 2-D uint8 array as a grayscale PNG, written directly (three times faster than PIL for small images)."""
    h, w = pixels.shape
    rows = np.zeros((h, w + 1), np.uint8)  # each row starts with filter type 0
    rows[:, 1:] = pixels
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _png_chunk(b"IEND", b""))


def png_header(png: bytes) -> tuple[int, int, str]:
    """Width, height and mode ("L" or "RGB") of a PNG this module wrote, from its header alone."""
    w, h, _, colour = struct.unpack(">IIBB", png[16:26])
    return w, h, "L" if colour == 0 else "RGB"


class Decoder:
    """Decodes a source's images into rows, counting conversions for one notice per kind."""

    def __init__(self) -> None:
        self.conversions: Counter[str] = Counter()
        self.rotated = 0
        self.lock = threading.Lock()  # rows are decoded in threads (bmcore.images.sources)

    def row(self, data: bytes, name: str, label: Any) -> dict[str, Any]:
        img, conversion, turned = decode_one(data, name)
        with self.lock:
            if conversion:
                self.conversions[conversion] += 1
            self.rotated += turned
        return {"image": encode_png(img), "label": label, "sha256": pixel_hash(img), "path": name}

    def notes(self) -> list[str]:
        out = [f"{n:,} {MODE_NOTICES.get(k, f'{k} images converted to RGB')}" for k, n in sorted(self.conversions.items())]
        if self.rotated:
            out.append(f"{self.rotated:,} images turned upright from their EXIF orientation")
        return out


def image_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows of decoded images as an image frame (:data:`FRAME_COLUMNS`)."""
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


# The one thumbnail size, in pixels of the longer side: Fashion-MNIST's 28 px at four times their size (an integer
# scale keeps nearest-neighbour pixels sharp), wide enough for a caption line under it; larger images are reduced.
THUMB_PX = 112


def thumbnail(png: bytes, size: int = THUMB_PX) -> bytes:
    """A PNG scaled so its longer side is ``size`` pixels, for a grid: small images are enlarged with sharp pixels
    (nearest neighbour), large ones reduced smoothly, so each cell shows what the model sees at a readable size."""
    img = Image.open(io.BytesIO(png))
    scale = size / max(img.size)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return encode_png(img.resize(new, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS))
