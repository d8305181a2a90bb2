"""Pixel conversions, one place for each: uint8 arrays (N, H, W, C) ↔ network tensors
(N, C, H, W) in [0, 1], (H, W, 1|3) arrays → gray or RGB PIL images, and PIL images → the bytes
of an image file."""

from __future__ import annotations

import io
import zlib
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .errors import InputError

# Written PNGs use zlib's run-length strategy (as libpng advises for photographic data): a decoded
# 6000×4000 image took 7.4 s to write with Pillow's default strategy and 1.7 s with this one, in
# 5 % fewer bytes (3 % more on a smooth 3000×2000 image).
PNG_OPTIONS = {"compress_type": zlib.Z_RLE}

if TYPE_CHECKING:  # imported by the conversions that need it: tiling stays torch-free
    import torch


def to_float(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C) → float (N, C, H, W) in [0, 1], channels_last memory."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    return t.permute(0, 3, 1, 2).float().div_(255).contiguous(memory_format=torch.channels_last)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [0, 1] → uint8 (N, H, W, C), rounded to nearest."""
    return x.mul(255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()


def to_pil(array: np.ndarray) -> Image.Image:
    """uint8 (H, W, 1) → an "L" image, (H, W, 3) → an "RGB" image."""
    return Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)


def image_bytes(img: Image.Image, fmt: str) -> bytes:
    """``img`` as a ``fmt`` file ("PNG", "JPEG", "WEBP", …); InputError if Pillow cannot write it."""
    buf = io.BytesIO()
    options = PNG_OPTIONS if fmt.upper() == "PNG" else {}
    try:
        img.save(buf, format=fmt.upper(), **options)
    except (KeyError, ValueError, OSError) as e:
        raise InputError(f"cannot write {fmt.upper()} images: {e}") from None
    return buf.getvalue()
