"""Images ↔ batches of square tiles.

An image is cut into a grid of size×size tiles, the right and bottom edges padded by
repeating the last row/column (edge padding keeps the padded area cheap to code and free of
false edges). Decode writes tiles back into the grid and crops to the original size.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from .container import MODES, Grid  # noqa: F401  (image modes and the tile grid are part of the file format)
from .images import to_pil


def normalise_mode(img: Image.Image) -> Image.Image:
    """Any Pillow image → 'L' or 'RGB'; alpha is dropped with a warning, 16-bit scaled to 8."""
    if img.mode in MODES:
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        warnings.warn(f"{img.mode} image: the alpha channel is dropped", stacklevel=3)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        return Image.fromarray(np.clip(np.round(a / top * 255), 0, 255).astype(np.uint8), "L")
    if img.mode in ("1", "LA"):
        return img.convert("L")
    if img.mode == "P":
        return img.convert("RGBA").convert("RGB") if "transparency" in img.info else img.convert("RGB")
    return img.convert("RGB")


def square_thumbnail(img: Image.Image, size: int) -> Image.Image:
    """The largest centred square of an image, resized to size×size (bicubic)."""
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)


def as_model_array(img: Image.Image, channels: int) -> np.ndarray:
    """'L'/'RGB' image → (H, W, channels) uint8 in the colour space the model expects."""
    mode = "L" if channels == 1 else "RGB"
    img = img if img.mode == mode else img.convert(mode)  # convert() copies even to its own mode
    return np.asarray(img).reshape(img.height, img.width, channels)


# Tiles per network call on CPU. 64 since version 0.7 (8 before): 1.6x the tiles/s of 8 for
# the encoder and for the float32 decoder, 2x for the bf16 one (session 16, AVX-512), for ~15 ms
# more on a one-tile file; the encoder's bits for 2,048 CIFAR-10 test images were the same at 8.
TILE_BATCH = 64
CUDA_TILE_BATCH = 256  # a GPU needs larger batches to be busy


def tile_batch(device_type: str) -> int:
    """The fixed number of tiles per network call on a device ("cpu", "cuda")."""
    return CUDA_TILE_BATCH if device_type == "cuda" else TILE_BATCH


def in_fixed_batches(
    batches: Iterable[np.ndarray], run: Callable[[np.ndarray], np.ndarray], size: int | None = None
) -> Iterator[np.ndarray]:
    """``run`` over the rows of ``batches`` re-cut into batches of exactly ``size`` rows (the last
    one padded with zeros, whose outputs are dropped). A network's float result for a tile
    depends on the batch size it runs in (convolution kernels are chosen by shape), but at a
    fixed size not on its batch-mates, its position or the thread count (measured on CPU for
    every shipped model): so a tile codes and decodes the same alone, in a large image or among
    many files, and memory stays bounded. ``size``: TILE_BATCH by default."""
    size = size or TILE_BATCH
    carry: np.ndarray | None = None  # fewer than ``size`` rows left over from earlier batches
    for batch in batches:
        if carry is not None:
            batch = np.concatenate([carry, batch])
        whole = len(batch) - len(batch) % size
        for start in range(0, whole, size):  # slices, not copies: a huge batch stays linear
            yield run(batch[start : start + size])
        carry = batch[whole:] if whole < len(batch) else None
    if carry is not None:
        padding = np.zeros((size - len(carry), *carry.shape[1:]), carry.dtype)
        yield run(np.concatenate([carry, padding]))[: len(carry)]


def iter_tile_batches(pixels: np.ndarray, tile: int, batch: int) -> Iterator[np.ndarray]:
    """(H, W, C) uint8 → batches (n, tile, tile, C) in row-major grid order, edge-padded."""
    grid = Grid(pixels.shape[1], pixels.shape[0], tile)
    for start in range(0, grid.count, batch):
        idx = range(start, min(start + batch, grid.count))
        yield np.stack([_tile_at(pixels, grid, i) for i in idx])


def _tile_at(pixels: np.ndarray, grid: Grid, index: int) -> np.ndarray:
    r, c = divmod(index, grid.cols)
    y, x = r * grid.tile, c * grid.tile
    block = pixels[y : y + grid.tile, x : x + grid.tile]
    pad_y, pad_x = grid.tile - block.shape[0], grid.tile - block.shape[1]
    if pad_y or pad_x:
        block = np.pad(block, ((0, pad_y), (0, pad_x), (0, 0)), mode="edge")
    return block


class Canvas:
    """Receives decoded tiles in grid order and assembles the cropped image."""

    def __init__(self, grid: Grid, channels: int) -> None:
        self.grid = grid
        self.pixels = np.zeros((grid.rows * grid.tile, grid.cols * grid.tile, channels), np.uint8)
        self.filled = 0

    @property
    def missing(self) -> int:
        return self.grid.count - self.filled

    def add(self, tiles: np.ndarray) -> None:
        t = self.grid.tile
        for tile_pixels in tiles:
            r, c = divmod(self.filled, self.grid.cols)
            self.pixels[r * t : (r + 1) * t, c * t : (c + 1) * t] = tile_pixels
            self.filled += 1

    def cropped(self) -> np.ndarray:
        """(height, width, channels) uint8: the decoded tiles without the edge padding."""
        if self.filled != self.grid.count:
            raise ValueError(f"{self.filled} of {self.grid.count} tiles decoded")
        return self.pixels[: self.grid.height, : self.grid.width]

    def image(self, mode: str) -> Image.Image:
        return to_pil(self.cropped()).convert(mode)
