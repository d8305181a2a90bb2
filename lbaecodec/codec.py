"""The codec pipeline. Encode: image → tiles → network → bits → container.
Decode walks the same steps backwards."""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import container, packing, quality, rdo, stages, tiling
from .architecture import FIDELITY, REALISM, pick_decoder
from .container import Coding
from .errors import InputError, LbaeError, ModelError, value_or_raise
from .fileinfo import PILLOW_LIMIT, bind_model, check_header, check_payload_length, check_pixels, pixel_limit
from .images import to_pil
from .stages import TileNetwork

if TYPE_CHECKING:
    from .deblock import PostFilter
    from .entropy import Prior
    from .search import Search


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


def open_for_coding(
    source: str | Path | bytes | Image.Image, max_pixels: int | None, quality_level: int = quality.NATIVE
) -> Image.Image:
    """``open_image``, with the canvas the quality codes it on checked against ``max_pixels`` too."""
    img = open_image(source, max_pixels)
    check_pixels(*quality.coded_size(img.width, img.height, quality_level), max_pixels)
    return img


def _as_model(model: TileNetwork | str | Path | None, device: str) -> TileNetwork:
    """A model object as given, else the installed model or file named (loaded with torch)."""
    if model is not None and not isinstance(model, (str, Path)):
        return model
    from .zoo import load_model

    return load_model(model, device)


def encode_codes(model: TileNetwork, pixels: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 → (tiles, bits) array of ±1 in grid order."""
    return encode_codes_many(model, [pixels])[0][0]


def encode_codes_many(
    model: TileNetwork, images: Sequence[np.ndarray], stage_count: int = 1, soft: bool = False
) -> list[list[np.ndarray]]:
    """Many (H, W, C) uint8 images → for each, the (tiles, bits) codes of its stages 1 to
    ``stage_count``; all tiles go through the network together, each with the result it would
    get alone (``tiling.in_fixed_batches``). Stage k codes what stages < k left of each tile.
    ``soft`` (one stage): the encoder's values before the sign instead of codes."""
    if not images:
        return []
    batch = model.tile_batch
    tiles = itertools.chain.from_iterable(tiling.iter_tile_batches(a, model.arch.size, batch) for a in images)
    counts = [tiling.Grid(a.shape[1], a.shape[0], model.arch.size).count for a in images]
    split = np.cumsum(counts)[:-1]
    if stage_count == 1:  # streamed: no image's tiles are all held at once
        return [[c] for c in np.split(stages.encoded_tiles(model, tiles, soft), split)]
    codes = stages.code_tiles(model, np.concatenate(list(tiles)), stage_count)[0]
    return [list(per_image) for per_image in zip(*(np.split(c, split) for c in codes), strict=True)]


def decode_codes(model: TileNetwork, codes: np.ndarray, grid: tiling.Grid, decoder: str = FIDELITY) -> tiling.Canvas:
    return decode_codes_many(model, [codes], [grid], decoder)[0]


_REALISM_STAGES = "residual stages refine the fidelity decoder's tiles: decode with --decoder fidelity"


def decode_codes_many(
    model: TileNetwork,
    codes: Sequence[np.ndarray],
    grids: Sequence[tiling.Grid],
    decoder: str = FIDELITY,
    later: Sequence[Sequence[np.ndarray]] = (),
) -> list[tiling.Canvas]:
    """Each image's (tiles, bits) codes → its canvas of decoded tiles; all tiles through the
    network together, each decoding as it would alone. ``later``: for each image, the codes of
    its stages 2, 3, … (residual stages, fidelity decoder only), each refining the tiles."""
    later = list(later) or [()] * len(codes)
    decoder = pick_decoder(decoder, model.decoders, model.id)  # "auto" may mean realism
    if decoder == REALISM and any(later):
        raise InputError(_REALISM_STAGES)
    tiles = stages.decoded_tiles(model, codes, decoder)
    starts = np.cumsum([0, *(len(c) for c in codes)])
    for k in range(2, 2 + max(map(len, later), default=0)):
        images = [i for i, stage_codes in enumerate(later) if len(stage_codes) >= k - 1]
        rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in images])
        residuals = stages.decoded_tiles(model.stage(k), [later[i][k - 2] for i in images])
        tiles[rows] = stages.add_residual(tiles[rows], residuals)
    canvases = [tiling.Canvas(g, model.arch.channels) for g in grids]
    for canvas, start in zip(canvases, starts, strict=False):
        canvas.add(tiles[start : start + canvas.grid.count])
    return canvases


def encode(
    image: str | Path | bytes | Image.Image,
    model: TileNetwork | str | Path | None = None,
    device: str = "auto",
    coding: str = "auto",
    max_pixels: int | None = PILLOW_LIMIT,
    version: int = container.VERSION,
    quality_level: int = quality.NATIVE,
    stage_count: int = 1,
    rdo_strength: float = 0.0,
    search: Search | None = None,
) -> bytes:
    """Compress an image (path, bytes or PIL image) to the bytes of a .lbae file.

    ``coding``: auto (the model's best prior with a tight end, raw when that saves nothing), or
    a method's label (``packing.CODINGS``: the word-ended ones, e.g. context, for readers before 0.10).
    ``max_pixels``: refuse larger images (PILLOW_LIMIT: Pillow's guard as the process set it;
    None: no limit of ours). ``version``: the container format (2, the default, names the model
    by hash in a 15-byte frame; 1 for older readers; a resampled file is always version 3).
    ``quality_level``: 1–5 (``quality.SCALES``), 3 codes the image at its own size.
    ``stage_count``: residual stages, up to the model's (more than one writes version 4; a
    reader may stop after any stage). ``rdo_strength``: > 0 trades fidelity for bits (``rdo``;
    one stage, a coded file). ``search``: codes chosen with the decoder in the loop instead
    (``search.Search``; slower, more PSNR per bit; one stage, a coded file, the torch runtime)."""
    img = open_for_coding(image, pixel_limit(max_pixels), quality_level)
    model = _as_model(model, device)
    return encode_many([img], model, coding, version, quality_level, stage_count, rdo_strength, search)[0]


def encode_many(
    images: Sequence[Image.Image],
    model: TileNetwork,
    coding: str = "auto",
    version: int = container.VERSION,
    quality_level: int = quality.NATIVE,
    stage_count: int = 1,
    rdo_strength: float = 0.0,
    search: Search | None = None,
) -> list[bytes]:
    """Opened images (``open_image``) → the bytes of their .lbae files, each the same as
    ``encode`` gives for it alone; their tiles share the network's batches."""
    if version not in container.VERSIONS:
        raise InputError(f"format version {version}: this build writes {', '.join(map(str, container.VERSIONS))}")
    check_stage_count(model, stage_count)
    if version == 1 and stage_count > 1:
        raise InputError(f"{stage_count} stages need format version {container.STAGED_VERSION} (not 1)")
    canvases = [quality.resample(img, quality.coded_size(img.width, img.height, quality_level)) for img in images]
    if version == 1 and any(c.size != img.size for c, img in zip(canvases, images, strict=True)):
        raise InputError(f"quality {quality_level} needs format version {container.RESAMPLED_VERSION} (not 1)")
    arrays = [tiling.as_model_array(c, model.arch.channels) for c in canvases]
    files = []
    for img, canvas, codes in zip(
        images, canvases, codes_to_store(model, arrays, stage_count, coding, rdo_strength, search), strict=True
    ):
        method, payloads = packing.pack_stages(model, codes, coding)
        header = file_header(model, img.width, img.height, img.mode, method, version, canvas.size, stage_count)
        files.append(container.write(header, payloads))
    return files


def codes_to_store(
    model: TileNetwork,
    arrays: list[np.ndarray],
    stage_count: int = 1,
    coding: str = packing.AUTO_CODING,
    rdo_strength: float = 0.0,
    search: Search | None = None,
) -> list[list[np.ndarray]]:
    """Each image's codes per stage: the encoder's, those ``rdo`` makes of its values with
    ``rdo_strength`` > 0, or those ``search`` settles on, under the prior the file is coded with."""
    if rdo_strength <= 0 and search is None:
        return encode_codes_many(model, arrays, stage_count)
    prior = check_code_choice(model, stage_count, coding, rdo_strength, search)
    if search is not None:
        return searched_codes_many(model, arrays, prior, search)
    return [[rdo.optimised_codes(z, prior, rdo_strength)] for (z,) in encode_codes_many(model, arrays, soft=True)]


def searched_codes_many(
    model: TileNetwork, arrays: list[np.ndarray], prior: Prior, search: Search
) -> list[list[np.ndarray]]:
    """Each image's one-stage codes as ``search`` finds them under ``prior``, tile by tile in the
    network's fixed batches (so a tile gets the same code alone or among many)."""
    import torch

    from .images import to_float
    from .search import searched_codes

    size, device, decoder = model.arch.size, model.device, model.with_decoder(search.decoder).decoder
    tiles = np.concatenate([t for a in arrays for t in tiling.iter_tile_batches(a, size, model.tile_batch)])
    codes = stages.encoded_tiles(model, [tiles])

    def search_rows(rows: np.ndarray) -> np.ndarray:
        start = torch.from_numpy(codes[rows]).to(device)
        return searched_codes(decoder, prior, to_float(tiles[rows]).to(device), start, search).cpu().numpy()

    found = np.concatenate(list(tiling.in_fixed_batches([np.arange(len(tiles))], search_rows, model.tile_batch)))
    counts = [tiling.Grid(a.shape[1], a.shape[0], size).count for a in arrays]
    return [[c] for c in np.split(found, np.cumsum(counts)[:-1])]


def check_code_choice(
    model: TileNetwork, stage_count: int, coding: str, rdo_strength: float, search: Search | None
) -> Prior:
    """The prior ``--rdo`` or ``--search`` optimises codes under (a one-stage file's, coded under
    a prior); InputError where they cannot run."""
    option = "--rdo" if search is None else "--search"
    if search is not None and rdo_strength > 0:
        raise InputError("--search and --rdo each choose the codes: give one of them")
    if search is not None and not hasattr(model, "net"):
        raise InputError("--search runs the decoder's gradients: it needs the torch runtime (drop --runtime onnx)")
    if stage_count > 1:
        raise InputError(f"{option} codes one stage: drop --stages")
    prior = packing.coding_prior(model, coding)[1]
    if prior is None:
        raise InputError(f"{option} needs a coded file: model {model.id} with --coding {coding} stores raw bits")
    return prior


def check_stage_count(model: TileNetwork, stage_count: int) -> None:
    if not 1 <= stage_count <= model.stage_count:
        raise InputError(f"{stage_count} stages: model {model.id} has {_stages_of(model)}")


def _stages_of(model: TileNetwork) -> str:
    return f"{model.stage_count} stages" if model.stage_count > 1 else "one stage (no residual stages)"


def file_header(
    m: TileNetwork,
    width: int,
    height: int,
    mode: str,
    coding: Coding,
    version: int = container.VERSION,
    canvas: tuple[int, int] | None = None,
    stage_count: int = 1,
) -> container.Header:
    """The header of a file this model writes for an image of this size and mode ("L", "RGB"),
    coded on ``canvas`` (default: the image's size; another size makes it version 3) in
    ``stage_count`` stages (more than one: version 4)."""
    canvas = canvas or (width, height)
    if canvas != (width, height):
        version = max(version, container.RESAMPLED_VERSION)
    if stage_count > 1:
        version = max(version, container.STAGED_VERSION)
    return container.Header(
        model_name=m.name,
        model_hash=m.hash,
        width=width,
        height=height,
        mode=tiling.MODES.index(mode),
        coding=coding,
        tile=m.arch.size,
        bits=m.arch.bits,
        version=version,
        coded_width=canvas[0] if version >= container.RESAMPLED_VERSION else 0,
        coded_height=canvas[1] if version >= container.RESAMPLED_VERSION else 0,
        stages=stage_count,
    )


def check_model(h: container.Header, m: TileNetwork) -> container.Header:
    """The header bound to ``m`` (name, tile, bits filled in); ModelError if the file needs another."""
    return bind_model(h, m.name, m.hash, m.arch.size, m.arch.bits)


def decode(
    data: bytes,
    model: TileNetwork | str | Path | None = None,
    device: str = "auto",
    decoder: str = FIDELITY,
    max_pixels: int | None = PILLOW_LIMIT,
    stage_limit: int | None = None,
    precision: str | None = None,
) -> Image.Image:
    """Decompress the bytes of a .lbae file to a PIL image of the original size and mode.

    Without ``model`` the model named in the file is loaded. ``decoder``: fidelity (closest
    to the original in PSNR) or realism (sharper textures from the same bits, where the model
    has one). ``max_pixels`` as for ``encode``: a header claiming more is refused before any
    model is loaded or memory allocated. ``stage_limit``: decode at most this many of the
    file's stages (None: every stage it holds). ``precision``: the torch decoder's arithmetic
    (``precision.PRECISIONS``; None: the model's own, ``auto`` for a model loaded here: bf16
    where the CPU has it natively)."""
    h, payload = container.read(data)
    check_header(h, payload, pixel_limit(max_pixels))
    if model is None:
        from .zoo import load_for

        m = load_for(h, device)
    else:
        m = _as_model(model, device)
    if precision is not None:
        m = m.with_precision(precision)
    return value_or_raise(decode_many([data], m, decoder, max_pixels, stage_limit)[0])


def decode_many(
    files: Sequence[bytes],
    model: TileNetwork,
    decoder: str = FIDELITY,
    max_pixels: int | None = PILLOW_LIMIT,
    stage_limit: int | None = None,
) -> list[Image.Image | LbaeError]:
    """Many .lbae files made with ``model`` → their images, or for a file that cannot be decoded
    the error it alone raises. Each image is the one ``decode`` gives for its file alone."""
    chosen = pick_decoder(decoder, model.decoders, model.id)  # an unknown or missing one fails before any work
    if stage_limit is not None and stage_limit < 1:
        raise InputError(f"--stages {stage_limit}: decode at least one stage")
    results: list = [None] * len(files)
    parsed = []
    for k, data in enumerate(files):
        try:
            parsed.append((k, *_parse(data, model, max_pixels, stage_limit, chosen)))
        except LbaeError as e:
            results[k] = e
    decoded = []
    for k, h, codes in _unpack_stages(model, parsed):
        if isinstance(codes, LbaeError):
            results[k] = codes
        else:
            decoded.append((k, h, codes))
    stage_one, grids = [c[0] for _, _, c in decoded], [h.grid for _, h, _ in decoded]
    canvases = decode_codes_many(model, stage_one, grids, chosen, [c[1:] for _, _, c in decoded])
    for (k, h, codes), canvas in zip(decoded, canvases, strict=True):
        # the seam filter follows the fidelity decoder, one per number of stages decoded
        post = model.stage(len(codes)).postfilter if chosen == FIDELITY else None
        results[k] = _finish_canvas(model, canvas, h, post)
    return results


def _parse(data: bytes, model: TileNetwork, max_pixels: int | None, stage_limit: int | None, decoder: str) -> tuple:
    """A file's (header bound to ``model``, the payloads of the stages to decode), checked."""
    h, payloads = container.read_stages(data)
    check_header(h, payloads[0], pixel_limit(max_pixels))
    h = check_model(h, model)
    if h.stages > model.stage_count:
        raise ModelError(f"the file has {h.stages} stages; model {model.id} has {_stages_of(model)}")
    payloads = payloads[:stage_limit]
    if decoder == REALISM and len(payloads) > 1:
        raise InputError(f"{_REALISM_STAGES}, or decode stage 1 only (--stages 1)")
    for payload in payloads:
        check_payload_length(h, payload)
    return h, payloads


def _unpack_stages(model: TileNetwork, parsed: list) -> list[tuple]:
    """Files (index, header, payloads) → (index, header, codes of each stage, or the file's error),
    the files of one coding and stage range-decoded together."""
    codes = {k: [] for k, _, _ in parsed}
    for stage in range(1, 1 + max((len(p) for _, _, p in parsed), default=0)):
        for coding in Coding:
            group = [(k, h, p[stage - 1]) for k, h, p in parsed if h.coding == coding and len(p) >= stage]
            group = [g for g in group if not isinstance(codes[g[0]], LbaeError)]
            for (k, _, _), c in zip(group, packing.unpack_many(model.stage(stage), coding, group), strict=True):
                codes[k] = c if isinstance(c, LbaeError) else [*codes[k], c]
    return [(k, h, codes[k]) for k, h, _ in parsed]


def _finish_canvas(
    model: TileNetwork, canvas: tiling.Canvas, h: container.Header, post: PostFilter | None
) -> Image.Image:
    """Decoded tiles → the image: the seam filter ``post`` if any, the file's mode, the image's
    size (a resampled file's canvas is resized back)."""
    pixels = canvas.cropped()
    if post is not None:
        from . import deblock  # torch: only a torch model carries a seam filter

        pixels = deblock.apply(post, pixels, model.arch.size, model.device)
    return quality.resample(to_pil(pixels).convert(tiling.MODES[h.mode]), (h.width, h.height))
