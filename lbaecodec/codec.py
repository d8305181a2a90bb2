"""The codec pipeline. Encode: image → tiles → network → bits → container.
Decode walks the same steps backwards."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from . import bits, container, entropy, tiling
from .container import Coding
from .errors import InputError, ModelError
from .fileinfo import PILLOW_LIMIT, check_header, check_model_fits, check_pixels, pixel_limit
from .images import to_float, to_uint8
from .zoo import FIDELITY, Model, load_model, load_named


def open_image(source: str | Path | bytes | Image.Image, max_pixels: int | None = None) -> Image.Image:
    """A path, encoded bytes or a PIL image → a loaded 'L' or 'RGB' image; its size is checked
    against ``max_pixels`` before its pixels are decoded."""
    if isinstance(source, Image.Image):
        img = source
        check_pixels(img.width, img.height, max_pixels)
    else:
        try:
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            if img.format == "LBAE":  # opened through our Pillow plugin, if it is registered
                raise UnidentifiedImageError("a .lbae file: decode it first")
            check_pixels(img.width, img.height, max_pixels)
            img.load()
        except FileNotFoundError as e:
            raise InputError(f"{source}: no such file") from e
        except Image.DecompressionBombError as e:  # Pillow's guard, left as the process set it
            raise InputError(f"{source if not isinstance(source, bytes) else 'input'}: {e}") from e
        except (UnidentifiedImageError, OSError, ValueError) as e:
            name = "input" if isinstance(source, bytes) else source
            raise InputError(f"{name}: not a readable image ({e})") from e
    if img.width < 1 or img.height < 1:
        raise InputError("empty image")
    return tiling.normalise_mode(img)


def _as_model(model: Model | str | Path | None, device: str) -> Model:
    return model if isinstance(model, Model) else load_model(model, device)


def encode_codes(model: Model, pixels: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 → (tiles, bits) array of ±1 in grid order."""
    out = []
    for batch in tiling.iter_tile_batches(pixels, model.arch.size, tiling.TILE_BATCH):
        x = to_float(batch).to(model.device)
        out.append(model.net.encode(x).cpu().numpy())
    return np.concatenate(out)


def decode_codes(model: Model, codes: np.ndarray, grid: tiling.Grid, decoder: str = FIDELITY) -> tiling.Canvas:
    net = model.with_decoder(decoder)
    canvas = tiling.Canvas(grid, model.arch.channels)
    for start in range(0, len(codes), tiling.TILE_BATCH):
        c = torch.from_numpy(np.ascontiguousarray(codes[start : start + tiling.TILE_BATCH])).to(model.device)
        canvas.add(to_uint8(net.decode(c)))
    return canvas


AUTO_CODING = "auto"
CODINGS = (AUTO_CODING, *(c.label for c in Coding))  # what encode's ``coding`` accepts


def _prior(m: Model, coding: Coding, required: bool = True) -> entropy.Prior | None:
    prior = entropy.from_tensors(m.extras, coding)
    if prior is None:
        if not required:
            return None
        raise ModelError(f"model {m.id} ships no {coding.label} prior")
    if prior.bits != m.arch.bits:
        raise ModelError(f"model {m.id}: prior has {prior.bits} bits, network {m.arch.bits}")
    return prior


def pack_codes(m: Model, codes: np.ndarray, coding: str = AUTO_CODING) -> tuple[Coding, bytes]:
    """Codes → (coding method, payload). ``auto`` takes the model's best prior and falls
    back to raw bits when coding would not save space."""
    if coding not in CODINGS:
        raise InputError(f"unknown coding {coding!r}; choose from {', '.join(CODINGS)}")
    raw = Coding.RAW, bits.pack(codes)
    if coding == Coding.RAW.label:
        return raw
    if coding == AUTO_CODING:
        best = ((c, p) for c in (Coding.CONTEXT, Coding.FACTORIZED) if (p := _prior(m, c, required=False)) is not None)
        method, prior = next(best, (None, None))
        if prior is None:
            return raw
    else:
        method = Coding.from_label(coding)
        prior = _prior(m, method)
    coded = entropy.encode(codes, prior)
    return (method, coded) if coding != AUTO_CODING or len(coded) < len(raw[1]) else raw


def unpack_codes(h: container.Header, payload: bytes, m: Model) -> np.ndarray:
    """Payload → (tiles, bits) codes; coded payloads need the model's prior."""
    return entropy.payload_codes(h, payload, None if h.coding == Coding.RAW else _prior(m, h.coding))


def encode(
    image: str | Path | bytes | Image.Image,
    model: Model | str | Path | None = None,
    device: str = "auto",
    coding: str = "auto",
    max_pixels: int | None = PILLOW_LIMIT,
) -> bytes:
    """Compress an image (path, bytes or PIL image) to the bytes of a .lbae file.

    ``coding``: auto (the model's best prior, raw when that saves nothing), raw,
    factorized or context. ``max_pixels``: refuse larger images (PILLOW_LIMIT: Pillow's
    guard as the process set it; None: no limit of ours)."""
    img = open_image(image, pixel_limit(max_pixels))
    m = _as_model(model, device)
    codes = encode_codes(m, tiling.as_model_array(img, m.arch.channels))
    method, payload = pack_codes(m, codes, coding)
    return container.write(file_header(m, img.width, img.height, img.mode, method), payload)


def file_header(m: Model, width: int, height: int, mode: str, coding: Coding) -> container.Header:
    """The header of a file this model writes for an image of this size and mode ("L", "RGB")."""
    return container.Header(
        model_name=m.name,
        model_hash=m.hash,
        width=width,
        height=height,
        mode=tiling.MODES.index(mode),
        coding=coding,
        tile=m.arch.size,
        bits=m.arch.bits,
    )


def check_model(h: container.Header, m: Model) -> None:
    check_model_fits(h, m.name, m.hash, m.arch.size, m.arch.bits)


def decode(
    data: bytes,
    model: Model | str | Path | None = None,
    device: str = "auto",
    decoder: str = FIDELITY,
    max_pixels: int | None = PILLOW_LIMIT,
) -> Image.Image:
    """Decompress the bytes of a .lbae file to a PIL image of the original size and mode.

    Without ``model`` the model named in the file is loaded. ``decoder``: fidelity (closest
    to the original in PSNR) or realism (sharper textures from the same bits, where the model
    has one). ``max_pixels`` as for ``encode``: a header claiming more is refused before any
    model is loaded or memory allocated."""
    h, payload = container.read(data)
    check_header(h, payload, pixel_limit(max_pixels))
    m = _as_model(model, device) if model is not None else load_named(h.model_name, device)
    check_model(h, m)
    m.with_decoder(decoder)  # an unknown or missing decoder fails before any work
    codes = unpack_codes(h, payload, m)
    canvas = decode_codes(m, codes, tiling.Grid(h.width, h.height, h.tile), decoder)
    return canvas.image(tiling.MODES[h.mode])
