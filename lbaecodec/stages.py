"""The network step: tiles ↔ codes through a model's networks, stage by stage.

Stage 1 codes the tiles. Stage k > 1 (a model's residual stages) codes the difference between
each tile and what stages 1..k-1 decode to, mapped to an image (``residual_image``) so that the
same network, bits and priors work on it; a decoder adds each stage's decoded residual back
(``add_residual``). A reader may stop after any stage: every stage only refines the tiles of the
ones before. Every network call runs on a fixed number of tiles (``tiling.in_fixed_batches``),
so a tile codes and decodes the same alone, in a large image or among many files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from . import tiling
from .architecture import FIDELITY

if TYPE_CHECKING:
    from .entropy import Prior


class TileNetwork(Protocol):
    """What the codec pipeline needs of a model: ``zoo.Model`` runs it with torch,
    ``onnx_runtime.OnnxModel`` with ONNX Runtime (one stage, no seam filter)."""

    name: str
    hash: bytes
    arch: Any  # its size (tile side), channels and bits
    postfilter: Any  # the seam filter after this stage (a deblock.PostFilter), or None
    derived: dict  # built once per model, e.g. priors

    @property
    def id(self) -> str: ...
    @property
    def decoders(self) -> tuple[str, ...]: ...
    @property
    def stage_count(self) -> int: ...
    def stage(self, k: int) -> TileNetwork: ...
    @property
    def tile_batch(self) -> int: ...  # tiles per network call (tiling.in_fixed_batches)
    def tile_encoder(self, soft: bool = False) -> Callable[[np.ndarray], np.ndarray]: ...
    def tile_decoder(self, decoder: str = FIDELITY) -> Callable[[np.ndarray], np.ndarray]: ...
    def prior(self, coding: Any) -> Prior | None: ...
    def with_precision(self, precision: str) -> TileNetwork: ...  # of the decoder (precision.PRECISIONS)


GAIN = 2.0  # residual pixels are scaled by this around mid-grey: ±64 levels fill the 0..255 range
MID = 127.5


def residual_image(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """uint8 tiles (original, decoded so far) → the uint8 image the next stage codes."""
    difference = original.astype(np.float32) - decoded.astype(np.float32)
    return np.clip(np.rint(MID + GAIN * difference), 0, 255).astype(np.uint8)


def add_residual(decoded: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """uint8 tiles decoded so far + a stage's decoded residual image → the refined uint8 tiles."""
    refined = decoded.astype(np.float32) + (residual.astype(np.float32) - MID) / GAIN
    return np.clip(np.rint(refined), 0, 255).astype(np.uint8)


def encoded_tiles(model: TileNetwork, tiles: Iterable[np.ndarray], soft: bool = False) -> np.ndarray:
    """Batches of uint8 tiles (n, S, S, C) → their codes (tiles, bits) of ±1 (with ``soft``: the
    encoder's values before the sign)."""
    out = tiling.in_fixed_batches(tiles, model.tile_encoder(soft), model.tile_batch)
    return np.concatenate([np.zeros((0, model.arch.bits), np.float32), *out])


def decoded_tiles(model: TileNetwork, codes: Sequence[np.ndarray], decoder: str = FIDELITY) -> np.ndarray:
    """Codes (tiles, bits) of many images → their decoded uint8 tiles, concatenated."""
    size, channels = model.arch.size, model.arch.channels
    batches = (np.asarray(c, np.float32) for c in codes)
    out = tiling.in_fixed_batches(batches, model.tile_decoder(decoder), model.tile_batch)
    return np.concatenate([np.zeros((0, size, size, channels), np.uint8), *out])


def code_tiles(
    model: TileNetwork, tiles: np.ndarray, stage_count: int, decoded: bool = False
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """uint8 tiles → (the codes of stages 1..``stage_count``, and with ``decoded`` the tiles those
    stages decode to, exactly as a decoder gets them; else None)."""
    codes: list[np.ndarray] = []
    current = None
    for k in range(1, stage_count + 1):
        target = tiles if current is None else residual_image(tiles, current)
        codes.append(encoded_tiles(model.stage(k), [target]))
        if k < stage_count or decoded:
            refinement = decoded_tiles(model.stage(k), codes[-1:])
            current = refinement if current is None else add_residual(current, refinement)
    return codes, current
