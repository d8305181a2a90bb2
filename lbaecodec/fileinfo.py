"""What a .lbae file holds, and whether it may be decoded, read from its header alone: no model,
no torch (the command line's `info` imports only this). ``decode`` makes the same checks first."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from . import container
from .errors import InputError, LbaeFormatError, ModelError

PILLOW_LIMIT = -1  # max_pixels: Pillow's refusal threshold as this process set it


def pixel_limit(max_pixels: int | None) -> int | None:
    """``max_pixels`` with PILLOW_LIMIT resolved (twice ``Image.MAX_IMAGE_PIXELS``); None: none."""
    if max_pixels != PILLOW_LIMIT:
        return max_pixels
    return None if Image.MAX_IMAGE_PIXELS is None else 2 * Image.MAX_IMAGE_PIXELS


def check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise InputError(f"{width}x{height} = {width * height} pixels is over the limit of {max_pixels} (--max-pixels)")


def check_model_fits(h: container.Header, name: str, model_hash: bytes, tile: int, bits: int) -> None:
    """ModelError unless the model (name, hash, tile side, bits) is the one the file names."""
    model_id = f"{name}@{model_hash.hex()}"
    if (h.model_name, h.model_hash) != (name, model_hash):
        raise ModelError(
            f"file was encoded with model {h.model_name}@{h.model_hash.hex()}, "
            f"but the model given is {model_id}; decode with the same model"
        )
    if (h.tile, h.bits) != (tile, bits):
        raise ModelError(f"file has {h.bits}-bit {h.tile}px tiles, model {model_id} does not")


@dataclass(frozen=True)
class FileInfo:
    model: str
    width: int
    height: int
    mode: str
    coding: str
    tile: int
    grid: tuple[int, int]
    tiles: int
    bits_per_tile: int
    code_bits: int
    header_bytes: int
    payload_bytes: int
    raw_payload_bytes: int
    file_bytes: int

    @property
    def bits_per_pixel(self) -> float:
        return 8 * self.file_bytes / (self.width * self.height)

    @property
    def compression_ratio(self) -> float:
        """Image bits (8 per channel sample) over file bits."""
        channels = len(self.mode)
        return self.width * self.height * channels * 8 / (8 * self.file_bytes)


def check_header(h: container.Header, payload: bytes, max_pixels: int | None) -> None:
    """What can be checked of a file without its model: its size against ``max_pixels`` and a
    raw payload's length against the tile grid. (A coded payload's length is checked against
    the model's prior before decoding: ``entropy.decode``.)"""
    check_pixels(h.width, h.height, max_pixels)
    needed = container.packed_size(container.Grid(h.width, h.height, h.tile).count * h.bits)
    if h.coding == container.Coding.RAW and len(payload) != needed:
        raise LbaeFormatError(
            f"corrupted .lbae payload: {len(payload)} bytes of raw bits, the tile grid needs {needed}"
        )


def info(data: bytes, max_pixels: int | None = PILLOW_LIMIT) -> FileInfo:
    """What a .lbae file holds, read from its header, with every check ``decode`` makes before
    decoding the payload (the CRC, the size limit, a raw payload's length)."""
    h, payload = container.read(data)
    check_header(h, payload, pixel_limit(max_pixels))
    grid = container.Grid(h.width, h.height, h.tile)
    return FileInfo(
        model=f"{h.model_name}@{h.model_hash.hex()}",
        width=h.width,
        height=h.height,
        mode=container.MODES[h.mode],
        coding=h.coding.label,
        tile=h.tile,
        grid=(grid.cols, grid.rows),
        tiles=grid.count,
        bits_per_tile=h.bits,
        code_bits=grid.count * h.bits,
        header_bytes=len(data) - len(payload),
        payload_bytes=len(payload),
        raw_payload_bytes=container.packed_size(grid.count * h.bits),
        file_bytes=len(data),
    )
