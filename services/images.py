"""Images among uploads (PNG, JPEG, GIF, WebP): their size as shown and a thumbnail, decoded by Pillow off
the event loop; a decompression bomb or a damaged image is a validation error."""

import io
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import ExifTags, Image, ImageOps

from utils.errors import ValidationFailed
from utils.offload import off_the_loop

# Detected content type -> the one Pillow decoder allowed to read it (no other format's parser runs).
FORMATS = {"image/png": "PNG", "image/apng": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
THUMBNAIL_SIDE = 320
# An image above this many pixels is refused before it is decoded: decoding costs about 4 bytes a
# pixel (200 MB here), whatever the size of the file (a 10 KB PNG can declare 30000 x 30000).
MAX_PIXELS = 50_000_000
# Decodes running at once off the event loop (each may hold up to MAX_PIXELS * 4 bytes).
DECODES_AT_ONCE = 2
# Orientations (EXIF) that show the image turned a quarter: width and height swap.
_QUARTER_TURNS = {5, 6, 7, 8}

# Pillow warns between MAX_IMAGE_PIXELS and twice that and raises above; here both refuse.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.simplefilter("error", Image.DecompressionBombWarning)


@dataclass
class Picture:
    """What an upload's image decodes to: its size as shown, and its thumbnail's bytes and type."""

    width: int
    height: int
    thumbnail: bytes
    thumbnail_type: str


def is_image(content_type: str) -> bool:
    """Whether files of this (detected) type get a size and a thumbnail."""
    return content_type in FORMATS


def picture(source: BinaryIO, content_type: str) -> Picture:
    """Decode an uploaded image; ValidationFailed when it is too large to decode, damaged, or not that image."""
    return off_the_loop("images", DECODES_AT_ONCE, _decode, source, FORMATS[content_type])


def _decode(source, image_format):
    try:
        with Image.open(source, formats=[image_format]) as image:
            turned = image.getexif().get(ExifTags.Base.Orientation) in _QUARTER_TURNS
            width, height = image.size[::-1] if turned else image.size
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # decodes: a truncated image fails here
            thumbnail, thumbnail_type = _encode(ImageOps.exif_transpose(image), image_format)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationFailed(
            "image too large", {"file": [f"More than {MAX_PIXELS} pixels: not decoded (a decompression bomb?)."]}
        ) from None
    except Exception:  # Pillow's decoders fail on hostile input in many ways: OSError, SyntaxError, ValueError...
        raise ValidationFailed("damaged image", {"file": ["Not a readable image: damaged or truncated."]}) from None
    return Picture(width, height, thumbnail, thumbnail_type)


def _encode(thumbnail, image_format):
    """A JPEG's thumbnail is a JPEG; any other image's a PNG (transparency and palettes kept)."""
    out = io.BytesIO()
    if image_format == "JPEG":
        thumbnail.convert("RGB").save(out, "JPEG", quality=85)
        return out.getvalue(), "image/jpeg"
    if thumbnail.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
        thumbnail = thumbnail.convert("RGBA")
    thumbnail.save(out, "PNG", optimize=True)
    return out.getvalue(), "image/png"
