"""The arithmetic of the codec's decoder: float32, or bfloat16 where the CPU has it natively.

The encoder always runs in float32, so a file's bits never depend on the machine. The decoder
may run in bf16 (a copy with its batch norms folded into the layers before them, weights in
bf16; the sigmoid in float32): on session 17's AVX-512 BF16 CPU that decoded 1.9x more tiles
per second than float32 (batches of 64), while pixels moved by at most 2 levels and PSNR by
under 0.001 dB (``python bench/decoder_precision.py``; issue 13 allows a lower-precision
decoder that moves PSNR by < 0.05 dB). Float32 stays the reference: unfolded, it decodes every
file to the pixels it always has. Where bf16 is emulated it is slower than float32, so ``auto``
uses it only where it is native.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

AUTO_PRECISION = "auto"
PRECISIONS = (AUTO_PRECISION, "fp32", "bf16")


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX-512 BF16 or AMX)."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private: absent means no
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def decodes_in_bf16(precision: str, device: torch.device) -> bool:
    """Whether the decoder runs in bf16: asked for, or ``auto`` on a CPU with
    native bf16 (on CUDA ``auto`` keeps float32)."""
    if precision == AUTO_PRECISION:
        return device.type == "cpu" and native_bf16()
    return precision == "bf16"
