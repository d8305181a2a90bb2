"""Decoded canvas → the same canvas without tile seams.

Tiles are decoded independently, so their borders can show as a grid. A model may ship a small
fully convolutional post-filter (tensors ``postfilter.*`` in its file, covered by its id) that
is run over the whole decoded canvas before it is resampled or returned. Besides the pixels it
is told where the tile borders are (two mask channels), so it learns to smooth across seams and
to leave the inside of tiles nearly alone. By default three 3×3 layers of 16 channels: on the
validation photos a five-layer dilated filter that sees 10 pixels each way gained no PSNR and
removed less of the grid, at 2.3× the cost. A model file's filter may be wider or deeper
(3×3 layers, no dilation): ``from_shapes`` reads its size from its tensors. It runs in strips
of rows, each with the rows its reach needs, so memory stays bounded on large images and the
result is that of one pass over the canvas.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .architecture import FILTER_LAYERS, FILTER_WIDTH, MAX_FILTER_LAYERS, MAX_FILTER_WIDTH
from .images import to_float, to_uint8

DILATIONS = (1,) * FILTER_LAYERS  # of its 3×3 convolutions
STRIP_ROWS = 256


class PostFilter(nn.Module):
    """(N, C, H, W) decoded pixels in [0, 1] + where the tile borders are → filtered pixels."""

    def __init__(self, channels: int, width: int = FILTER_WIDTH, dilations: tuple[int, ...] = DILATIONS) -> None:
        super().__init__()
        self.reach = sum(dilations)  # pixels an output pixel sees on every side
        sizes = [channels + 2, *[width] * (len(dilations) - 1), channels]
        layers: list[nn.Module] = []
        for c_in, c_out, d in zip(sizes[:-1], sizes[1:], dilations, strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=d, dilation=d, padding_mode="replicate"), nn.LeakyReLU(0.2)]
        self.layers = nn.Sequential(*layers[:-1])
        nn.init.zeros_(self.layers[-1].weight)  # starts as the identity
        nn.init.zeros_(self.layers[-1].bias)

    def forward(self, x: torch.Tensor, tile: int, top: int = 0, left: int = 0) -> torch.Tensor:
        """``x`` cut from a canvas at (``top``, ``left``); the canvas's tiles start at its origin."""
        masks = seam_masks(x.shape[2], x.shape[3], tile, top, left).to(x)
        masks = masks.expand(x.shape[0], -1, -1, -1)
        return x + self.layers(torch.cat([x, masks], 1))


def from_shapes(channels: int, shapes: dict[str, list[int]]) -> PostFilter:
    """An (untrained) filter of the size that a file's ``layers.*`` tensor shapes describe: as
    many undilated 3×3 layers as it has weights, as wide as its first layer's output."""
    depth = sum(1 for k in shapes if k.startswith("layers.") and k.endswith(".weight"))
    first = shapes.get("layers.0.weight") or [FILTER_WIDTH]
    width = first[0] if depth > 1 and 1 <= first[0] <= MAX_FILTER_WIDTH else FILTER_WIDTH
    # out-of-range sizes build a filter whose shapes then fail the file's check (layout.check_table)
    return PostFilter(channels, width, (1,) * min(max(depth, 1), MAX_FILTER_LAYERS))


def seam_masks(height: int, width: int, tile: int, top: int = 0, left: int = 0) -> torch.Tensor:
    """(1, 2, height, width): 1 on the pixel rows/columns that touch a tile border, else 0."""
    rows = torch.arange(top, top + height) % tile
    cols = torch.arange(left, left + width) % tile
    on_row = ((rows == 0) | (rows == tile - 1)).float()
    on_col = ((cols == 0) | (cols == tile - 1)).float()
    return torch.stack([on_row[:, None].expand(height, width), on_col[None, :].expand(height, width)])[None]


@torch.inference_mode()
def apply(post: PostFilter, pixels: np.ndarray, tile: int, device: torch.device) -> np.ndarray:
    """(H, W, C) uint8 decoded canvas → the filtered canvas, STRIP_ROWS rows at a time."""
    out = np.empty_like(pixels)
    height = pixels.shape[0]
    for top in range(0, height, STRIP_ROWS):
        lo, hi = max(0, top - post.reach), min(height, top + STRIP_ROWS + post.reach)
        x = to_float(pixels[None, lo:hi]).to(device)
        y = to_uint8(post(x, tile, top=lo).clamp(0, 1))[0]
        out[top : top + STRIP_ROWS] = y[top - lo : top - lo + STRIP_ROWS]
    return out
