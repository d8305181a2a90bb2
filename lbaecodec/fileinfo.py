"""What a .lbae file holds, and whether it may be decoded, read from its header alone: no model,
no torch (the command line's `info` imports only this). ``decode`` makes the same checks first."""

from __future__ import annotations

from dataclasses import dataclass, replace

from PIL import Image

from . import container, quality
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


def bind_model(h: container.Header, name: str, model_hash: bytes, tile: int, bits: int) -> container.Header:
    """The header completed with its model's name, tile side and bits; ModelError unless the
    model (name, hash, tile side, bits) is the one the file names: by hash (and in version 1 by
    name, tile and bits too)."""
    model_id = f"{name}@{model_hash.hex()}"
    if h.model_hash != model_hash or (h.version == 1 and h.model_name != name):
        raise ModelError(
            f"file was encoded with model {with_installed_model(h).model_id}, but the model given is {model_id}; "
            "decode with the same model"
        )
    if h.version == 1 and (h.tile, h.bits) != (tile, bits):
        raise ModelError(f"file has {h.bits}-bit {h.tile}px tiles, model {model_id} does not")
    return replace(h, model_name=name, tile=tile, bits=bits)


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
    version: int = container.VERSION
    coded_size: tuple[int, int] = (0, 0)  # the canvas the tiles cover (the image's size unless resampled)
    quality: int | None = quality.NATIVE  # the --quality that codes this size on this canvas; None: none
    stages: int = 1  # the stages the file was written with
    stages_present: int = 1  # the stages it holds (fewer: the file was cut after a stage)
    stage_payload_bytes: tuple[int, ...] = ()

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
    check_pixels(*h.coded_size, max_pixels)
    if h.tile:  # known from a version-1 header, or once the model is bound
        check_payload_length(h, payload)


def check_payload_length(h: container.Header, payload: bytes) -> None:
    needed = container.packed_size(h.grid.count * h.bits)
    if h.coding == container.Coding.RAW and len(payload) != needed:
        raise LbaeFormatError(
            f"corrupted .lbae payload: {len(payload)} bytes of raw bits, the tile grid needs {needed}"
        )


def info(data: bytes, max_pixels: int | None = PILLOW_LIMIT) -> FileInfo:
    """What a .lbae file holds, read from its header, with every check ``decode`` makes before
    decoding the payload (the CRC, the size limit, a raw payload's length). A version-2 file's
    tile size and bits come from its installed model (zero when that is not installed)."""
    h, payloads = container.read_stages(data)
    check_header(h, payloads[0], pixel_limit(max_pixels))
    if h.version > 1:
        h = with_installed_model(h)
        if h.tile:
            for payload in payloads:
                check_payload_length(h, payload)
    grid = container.Grid(*h.coded_size, h.tile or 1)
    tiles = grid.count if h.tile else 0
    payload_bytes = sum(map(len, payloads))
    return FileInfo(
        model=h.model_id,
        width=h.width,
        height=h.height,
        mode=container.MODES[h.mode],
        coding=h.coding.label,
        tile=h.tile,
        grid=(grid.cols, grid.rows) if h.tile else (0, 0),
        tiles=tiles,
        bits_per_tile=h.bits,
        code_bits=tiles * h.bits * len(payloads),
        header_bytes=len(data) - payload_bytes,
        payload_bytes=payload_bytes,
        raw_payload_bytes=container.packed_size(tiles * h.bits) * len(payloads),
        file_bytes=len(data),
        version=h.version,
        coded_size=h.coded_size,
        quality=quality.quality_of(h.width, h.height, h.coded_size),
        stages=h.stages,
        stages_present=len(payloads),
        stage_payload_bytes=tuple(map(len, payloads)),
    )


def with_installed_model(h: container.Header) -> container.Header:
    """A version-2 header with name, tile and bits of the installed model of its hash; unchanged
    when none is installed (or the header is of version 1)."""
    import json

    from . import registry
    from .architecture import Architecture

    path = registry.find_by_hash(h.model_hash) if not h.model_name else None
    if path is None:
        return h
    try:  # a broken model file is reported when it is loaded, not here
        meta = registry.read_metadata(path)
        arch = Architecture.from_dict(json.loads(meta[registry.META_ARCH]))
        return replace(h, model_name=meta[registry.META_NAME], tile=arch.size, bits=arch.bits)
    except (ModelError, KeyError, ValueError, TypeError):
        return h
