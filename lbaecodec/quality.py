"""The quality knob: an image is coded on a canvas of another size and resampled back to its
own size after decoding.

A model spends a fixed number of bits per tile. Coding a smaller canvas (qualities 1–2) takes
fewer tiles, so fewer bits, for a softer picture; a larger one (4–5) spends more tiles on the
same picture, each tile holding less detail, which the model reproduces better. Quality 3 codes
the image at its own size, as every file without a quality does. A resampled file records its
canvas size (format version 3), so decoding needs no table: the table only maps what users type.
"""

from __future__ import annotations

from PIL import Image

from .errors import InputError

SCALES = {1: 0.5, 2: 0.7, 3: 1.0, 4: 1.4, 5: 2.0}  # quality → canvas side / image side
NATIVE = 3
RESAMPLING = Image.LANCZOS  # both ways; docs/FORMAT.md names it for decoders


def coded_size(width: int, height: int, quality: int) -> tuple[int, int]:
    """The canvas (width, height) an image of this size is coded on at this quality."""
    if quality not in SCALES:
        raise InputError(f"quality {quality}: choose from {', '.join(map(str, SCALES))}")
    scale = SCALES[quality]
    return max(1, round(width * scale)), max(1, round(height * scale))


def quality_of(width: int, height: int, canvas: tuple[int, int]) -> int | None:
    """The quality that codes an image of this size on this canvas; None if none does."""
    if canvas == (width, height):
        return NATIVE
    return next((q for q in SCALES if coded_size(width, height, q) == canvas), None)


def resample(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``img`` at ``size`` (itself when it has that size already)."""
    return img if img.size == tuple(size) else img.resize(size, RESAMPLING)
