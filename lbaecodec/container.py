"""The .lbae container: a compact header, the payload, and a CRC-32 over both.

The layout is specified in docs/FORMAT.md; this module is its only implementation. It knows
nothing about torch or images: it moves numbers and bytes. Version 2 (written by default)
names the model by its hash alone and leaves tile size, bits and payload length to the model
and the file's length: 15 bytes around the payload of a 32×32 image. Version 3 is version 2
plus the size of the coded canvas, for images coded at another size than they are shown (the
quality knob). Version 4 is version 3 plus residual stages: the payload of each stage, each
followed by a CRC-32 of the file up to there, so a file cut after any stage still reads (progressive
decoding). Version 1 is still read (and written on request).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from enum import IntEnum

from .errors import LbaeFormatError

MAGIC = b"LBA"
VERSION = 2  # written by default
RESAMPLED_VERSION = 3  # written for an image coded at another size
STAGED_VERSION = 4  # written for an image coded in more than one stage
VERSIONS = (1, 2, 3, 4)  # read
MAX_NAME = 64
MAX_STAGES = 16


TIGHT = 0b100  # the coding field's bit for a range code whose end is cut to whole bytes


class Coding(IntEnum):
    """How the payload stores the code bits; the value is the header's 3-bit coding field."""

    RAW = 0  # the bits packed, 8 to a byte
    FACTORIZED = 1  # range-coded under an independent Bernoulli per bit position
    CONTEXT = 2  # range-coded under a prior conditioned on the tile's earlier bits
    HIDDEN = 3  # as CONTEXT, the prior with a hidden layer (since lbaecodec 0.9; earlier readers refuse it)
    # 1–3 with the range code's last word cut to whole bytes (since lbaecodec 0.10; earlier readers refuse them)
    FACTORIZED_TIGHT = FACTORIZED | TIGHT
    CONTEXT_TIGHT = CONTEXT | TIGHT
    HIDDEN_TIGHT = HIDDEN | TIGHT

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @classmethod
    def from_label(cls, label: str) -> Coding:
        return cls[label.upper().replace("-", "_")]

    @property
    def tight(self) -> bool:
        return bool(self & TIGHT)

    @property
    def prior_method(self) -> Coding:
        """The method whose prior this one codes under (itself, for a word-ended method)."""
        return Coding(self & ~TIGHT)

    def tightened(self) -> Coding:
        """The same prior with a byte-cut end (RAW has no range code to cut)."""
        return self if self == Coding.RAW else Coding(self | TIGHT)


CRC_BYTES = 4
MODE_BITS = 0b11
CODING_SHIFT = 2
RESERVED_FLAGS = 0b11100000


@dataclass(frozen=True)
class Header:
    model_name: str  # "" where the file names its model by hash alone (version 2)
    model_hash: bytes  # 4 bytes
    width: int
    height: int
    mode: int  # 0 = L (gray), 1 = RGB
    coding: Coding
    tile: int  # tile side in pixels; 0 until the model is known (version 2)
    bits: int  # latent bits per tile; 0 until the model is known (version 2)
    version: int = VERSION
    coded_width: int = 0  # the canvas the tiles cover, when it differs from the image (version 3)
    coded_height: int = 0
    stages: int = 1  # stages the file was written with (version 4); a cut file holds fewer

    @property
    def model_id(self) -> str:
        return f"{self.model_name}@{self.model_hash.hex()}"

    @property
    def coded_size(self) -> tuple[int, int]:
        """(width, height) of the canvas of decoded tiles, resampled to the image's size after."""
        return (self.coded_width or self.width, self.coded_height or self.height)

    @property
    def resampled(self) -> bool:
        return self.coded_size != (self.width, self.height)

    @property
    def grid(self) -> Grid:
        return Grid(*self.coded_size, self.tile)


MODES = ("L", "RGB")  # index = the mode code stored in the header


@dataclass(frozen=True)
class Grid:
    width: int
    height: int
    tile: int

    @property
    def cols(self) -> int:
        return math.ceil(self.width / self.tile)

    @property
    def rows(self) -> int:
        return math.ceil(self.height / self.tile)

    @property
    def count(self) -> int:
        return self.rows * self.cols


def packed_size(n_bits: int) -> int:
    """Bytes of a raw payload of ``n_bits`` code bits (method 0)."""
    return (n_bits + 7) // 8


def _varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise LbaeFormatError("truncated .lbae file")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if byte == 0 and shift:  # a trailing zero group: one number, one encoding
                    raise LbaeFormatError("corrupted .lbae header (non-minimal number)")
                return value
            shift += 7
            if shift > 63:
                raise LbaeFormatError("corrupted .lbae header (overlong number)")


def header_bytes(h: Header, payload_len: int) -> bytes:
    if len(h.model_hash) != 4 or h.version not in VERSIONS:
        raise ValueError("the model hash is 4 bytes and the version 1, 2, 3 or 4")
    if h.resampled and h.version < RESAMPLED_VERSION:
        raise ValueError(f"an image coded at another size needs format version {RESAMPLED_VERSION}")
    if not 1 <= h.stages <= MAX_STAGES or (h.stages > 1 and h.version < STAGED_VERSION):
        raise ValueError(f"1 to {MAX_STAGES} stages; more than one needs format version {STAGED_VERSION}")
    flags = bytes([(h.mode & MODE_BITS) | (h.coding << CODING_SHIFT)])
    size = _varint(h.width) + _varint(h.height)
    canvas = _varint(h.coded_size[0]) + _varint(h.coded_size[1])
    if h.version == 4:
        return MAGIC + b"\x04" + h.model_hash + size + flags + canvas + _varint(h.stages)
    if h.version == 3:
        return MAGIC + b"\x03" + h.model_hash + size + flags + canvas
    if h.version == 2:
        return MAGIC + b"\x02" + h.model_hash + size + flags
    name = h.model_name.encode("ascii")
    if not 1 <= len(name) <= MAX_NAME:
        raise ValueError("model name must be 1–64 ASCII characters")
    tail = _varint(h.tile) + _varint(h.bits) + _varint(payload_len)
    return MAGIC + bytes([1, len(name)]) + name + h.model_hash + size + flags + tail


def write(h: Header, payload: bytes | list[bytes]) -> bytes:
    """Header + payload + CRC-32 (big-endian) of everything before it. Version 4: header, then
    per stage its payload's length, the payload and a CRC-32 of everything before it."""
    payloads = [payload] if isinstance(payload, bytes) else list(payload)
    if len(payloads) != h.stages:
        raise ValueError(f"{len(payloads)} payloads for a header of {h.stages} stages")
    if h.version < STAGED_VERSION:
        body = header_bytes(h, len(payloads[0])) + payloads[0]
        return body + _crc(body)
    out = bytearray(header_bytes(h, 0))
    for p in payloads:
        out += _varint(len(p)) + p
        out += _crc(out)
    return bytes(out)


def _crc(body: bytes | bytearray) -> bytes:
    return zlib.crc32(body).to_bytes(CRC_BYTES, "big")


def read(data: bytes) -> tuple[Header, bytes]:
    """Parse and verify a .lbae file → (header, the payload of its first stage); raises
    LbaeFormatError on anything malformed. ``read_stages`` gives every stage's payload."""
    h, payloads = read_stages(data)
    return h, payloads[0]


def read_stages(data: bytes) -> tuple[Header, list[bytes]]:
    """Parse and verify a .lbae file → (header, the payload of each stage it holds: one before
    version 4; in version 4 from 1 to ``header.stages``, fewer where the file was cut after a stage)."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise LbaeFormatError("not a .lbae file (wrong magic)")
    r = _Reader(data)
    r.take(len(MAGIC))
    version = r.take(1)[0]
    if version not in VERSIONS:
        raise LbaeFormatError(f".lbae format version {version} is not supported (this build reads 1 to 4)")
    if version == 4:
        fields = _read_v4(r)
    else:
        fields = _read_v1(r) if version == 1 else _read_v2(r, coded_size=version == 3)
        if _crc(data[:-CRC_BYTES]) != data[-CRC_BYTES:]:
            raise LbaeFormatError("corrupted .lbae file (CRC mismatch)")
    # Past the CRC only a writer bug could trip these; they still get a clean error.
    name_raw, model_hash, width, height, flags, tile, bits, coded, payloads, stages = fields
    coding = flags >> CODING_SHIFT & 0b111
    if version == 1 and (not 1 <= len(name_raw) <= MAX_NAME or not name_raw.isascii()):
        raise LbaeFormatError("corrupted .lbae header (model name)")
    if flags & RESERVED_FLAGS or flags & MODE_BITS > 1:
        raise LbaeFormatError(f"unsupported .lbae flags 0x{flags:02x}")
    if coding not in set(Coding):
        known = ", ".join(str(int(c)) for c in Coding)
        raise LbaeFormatError(f"unknown coding method {coding} (this build reads {known}: a newer lbaecodec?)")
    if min(width, height, *coded) < 1 or (version == 1 and min(tile, bits) < 1):
        raise LbaeFormatError("corrupted .lbae header (zero dimension)")
    if not 1 <= stages <= MAX_STAGES:
        raise LbaeFormatError(f"corrupted .lbae header ({stages} stages; at most {MAX_STAGES})")
    mode = flags & MODE_BITS
    name = name_raw.decode("ascii")
    h = Header(name, model_hash, width, height, mode, Coding(coding), tile, bits, version, *coded, stages=stages)
    return h, payloads


def _read_v1(r: _Reader) -> tuple:
    name_raw = r.take(r.take(1)[0])
    model_hash = r.take(4)
    width, height = r.varint(), r.varint()
    flags = r.take(1)[0]
    tile, bits, payload_len = r.varint(), r.varint(), r.varint()
    payload = r.take(payload_len)
    r.take(CRC_BYTES)
    if r.pos != len(r.data):
        raise LbaeFormatError(f"{len(r.data) - r.pos} unexpected bytes after the end of the .lbae data")
    return name_raw, model_hash, width, height, flags, tile, bits, (), [payload], 1


def _read_v2(r: _Reader, coded_size: bool) -> tuple:
    model_hash = r.take(4)
    width, height = r.varint(), r.varint()
    flags = r.take(1)[0]
    coded = (r.varint(), r.varint()) if coded_size else ()
    if r.pos + CRC_BYTES > len(r.data):
        raise LbaeFormatError("truncated .lbae file")
    payload = r.data[r.pos : len(r.data) - CRC_BYTES]
    return b"", model_hash, width, height, flags, 0, 0, coded, [payload], 1


def _read_v4(r: _Reader) -> tuple:
    """The header, then stage records (length, payload, CRC of the file so far) up to the end;
    each CRC is checked before the next record is parsed."""
    model_hash = r.take(4)
    width, height = r.varint(), r.varint()
    flags = r.take(1)[0]
    coded = (r.varint(), r.varint())
    stages = r.varint()
    payloads = []
    while r.pos < len(r.data) or not payloads:
        payload = r.take(r.varint())
        if _crc(r.data[: r.pos]) != r.take(CRC_BYTES):
            raise LbaeFormatError(f"corrupted .lbae file (CRC mismatch in stage {len(payloads) + 1})")
        payloads.append(payload)
        if len(payloads) > stages:
            raise LbaeFormatError(f"corrupted .lbae file (more stages than the {stages} its header names)")
    return b"", model_hash, width, height, flags, 0, 0, coded, payloads, stages
