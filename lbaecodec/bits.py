"""±1 codes ↔ packed bytes. Bit k of the stream is +1 when set; most significant bit first."""

from __future__ import annotations

import numpy as np

from .container import packed_size


def pack(codes: np.ndarray) -> bytes:
    """Codes of ±1 (any shape, read in C order) → ceil(n/8) bytes; trailing pad bits are 0."""
    return np.packbits(np.asarray(codes).reshape(-1) > 0).tobytes()


def unpack(data: bytes, n_tiles: int, bits: int) -> np.ndarray:
    """Inverse of pack: bytes → (n_tiles, bits) float32 array of ±1."""
    n = n_tiles * bits
    if len(data) != packed_size(n):
        raise ValueError(f"expected {packed_size(n)} bytes for {n} bits, got {len(data)}")
    flat = np.unpackbits(np.frombuffer(data, np.uint8), count=n)
    return (flat.astype(np.float32) * 2 - 1).reshape(n_tiles, bits)
