"""`lbaecodec sample`, `interpolate` and `edit`: the bit space as a generative model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..architecture import MAX_REFINE, SAMPLE_METHODS, SAMPLE_REFINE
from ..errors import InputError
from .common import DEVICE, FORCE, clean_errors, decoder_option, model_option, read_input, refuse_existing, write_output

if TYPE_CHECKING:
    import numpy as np

MODEL = model_option("cifar10", "Its bit space is the one explored.")
SCALE = click.option(
    "--scale", default=2, show_default=True, type=click.IntRange(1, 64), help="Upscale the grid (nearest neighbour)."
)


def _check_grid(m, count: int, cols: int, scale: int) -> None:
    """Refuse, before any work, a grid over the pixel limit that decoding images obeys."""
    from ..fileinfo import PILLOW_LIMIT, pixel_limit
    from ..lab.generate import mosaic_shape

    height, width = (scale * side for side in mosaic_shape(count, cols, m.arch.size, m.arch.size))
    limit = pixel_limit(PILLOW_LIMIT)
    if limit is not None and width * height > limit:
        raise InputError(f"a {width}x{height} grid is over the limit of {limit} pixels: fewer images, smaller --scale")


def _png(array: np.ndarray, scale: int = 1) -> bytes:
    from PIL import Image

    from ..images import image_bytes, to_pil

    img = to_pil(array)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return image_bytes(img, "PNG")


def _tiles_and_latents(source: str, m):
    """An image (cropped and resized to one tile) or a .lbae file → (codes, latents or None)."""
    from .. import codec, container, packing, tiling
    from ..lab import generate

    raw = read_input(source)
    if raw[:3] == container.MAGIC:
        h, payload = container.read(raw)
        h = codec.check_model(h, m)
        codes = packing.unpack_codes(h, payload, m)
        if len(codes) != 1:
            raise InputError(f"{source}: holds {len(codes)} tiles; interpolate takes single-tile images")
        return codes[0], None
    img = tiling.square_thumbnail(codec.open_image(raw), m.arch.size)
    z = generate.latents(m, tiling.as_model_array(img, m.arch.channels)[None])[0]
    import numpy as np

    return np.where(z >= 0, 1.0, -1.0).astype(np.float32), z


@click.command("sample")
@click.argument("output")
@MODEL
@click.option("-n", "count", default=64, show_default=True, help="Number of samples.")
@click.option(
    "--method",
    type=click.Choice(SAMPLE_METHODS),
    default="cov",
    show_default=True,
    help="cov: Gaussian copula fitted to the training codes (the paper's method); "
    "prior: bit by bit from the context prior that codes the model's files; "
    "random: uniform bits (the weak baseline).",
)
@click.option(
    "--refine",
    default=SAMPLE_REFINE,
    show_default=True,
    type=click.IntRange(0, MAX_REFINE),
    help="Rounds of decoding the drawn codes with the fidelity decoder and encoding the pictures again, "
    "which moves them towards the codes of real images (0: the codes as drawn, the paper's samples).",
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@SCALE
@click.option("--out-dir", default=None, metavar="DIR", help="Also write each sample as DIR/sample_NNNN.png.")
@decoder_option("auto")
@DEVICE
@FORCE
@clean_errors
def sample_cmd(output, model, count, method, refine, seed, scale, out_dir, decoder, device, force) -> None:
    """Draw COUNT new images from the model's bit space and save them as a grid to OUTPUT (PNG).

    \b
    Example:  lbaecodec sample samples.png --model cifar10 -n 64 --seed 1
              lbaecodec sample paper.png --refine 0   # the paper's "cov" samples, as drawn
    """
    from ..lab import generate
    from ..zoo import load_model

    if count < 1:
        raise InputError("-n must be at least 1")
    refuse_existing(output, force)
    m = load_model(model, device)
    m.with_decoder(decoder)  # a missing decoder fails before any work
    cols = math.ceil(math.sqrt(count))
    _check_grid(m, count, cols, scale)
    images = generate.sample(m, count, method, seed, decoder, refine)
    write_output(output, _png(generate.mosaic(images, cols), scale), force)
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(images):
            write_output(str(Path(out_dir) / f"sample_{i:04d}.png"), _png(img), force)


@click.command("interpolate")
@click.argument("image_a")
@click.argument("image_b")
@click.argument("output")
@MODEL
@click.option("--steps", default=10, show_default=True, help="Images in the strip, endpoints included.")
@SCALE
@decoder_option("auto")
@DEVICE
@FORCE
@clean_errors
def interpolate_cmd(image_a, image_b, output, model, steps, scale, decoder, device, force) -> None:
    """Walk the bit space from IMAGE_A to IMAGE_B and save the decoded strip to OUTPUT (PNG).

    Inputs are images (centre-cropped and resized to one tile) or single-tile .lbae files.
    Differing bits flip in the order in which the straight line between the two encoder
    latents crosses zero, so the least certain bits change first.
    """
    from ..lab import generate
    from ..zoo import load_model

    if steps < 2:
        raise InputError("--steps must be at least 2")
    refuse_existing(output, force)
    m = load_model(model, device)
    m.with_decoder(decoder)
    _check_grid(m, steps, steps, scale)
    (a, za), (b, zb) = _tiles_and_latents(image_a, m), _tiles_and_latents(image_b, m)
    import numpy as np

    rng = np.random.default_rng(0)  # without latents (.lbae input), a random flip order
    za = za if za is not None else a * rng.uniform(0.1, 1, a.shape)
    zb = zb if zb is not None else b * rng.uniform(0.1, 1, b.shape)
    codes = generate.interpolation_path(za, zb, steps)
    write_output(output, _png(generate.mosaic(generate.decode(m, codes, decoder), steps), scale), force)


@click.command("edit")
@click.argument("image")
@click.argument("output")
@MODEL
@click.option(
    "--towards",
    required=True,
    metavar="LABEL",
    help="Label name or index from the model card (cat, 7), or an attribute "
    "(Smiling) of a model exported with --attributes.",
)
@click.option(
    "--strength",
    default=1.0,
    show_default=True,
    help="Multiple of the label direction added to the latent; several values with --steps make a strip.",
)
@click.option(
    "--steps",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Strip of edits from strength 0 to --strength (1 = the edited image only).",
)
@SCALE
@decoder_option("auto")
@DEVICE
@FORCE
@clean_errors
def edit_cmd(image, output, model, towards, strength, steps, scale, decoder, device, force) -> None:
    """Move IMAGE towards a label in bit space (mean code with the label minus without).

    \b
    Example:  lbaecodec edit ship.png ship-to-plane.png --towards airplane --strength 2 --steps 5
    """
    from ..lab import generate
    from ..zoo import load_model

    refuse_existing(output, force)
    m = load_model(model, device)
    m.with_decoder(decoder)
    _check_grid(m, steps, steps, scale)
    _, z = _tiles_and_latents(image, m)
    if z is None:
        raise InputError("edit needs an image, not a .lbae file")
    direction = generate.direction(m, towards)
    import numpy as np

    strengths = np.linspace(0, strength, steps) if steps > 1 else [strength]
    codes = np.stack([generate.edit_latent(z, direction, s) for s in strengths])
    write_output(output, _png(generate.mosaic(generate.decode(m, codes, decoder), len(codes)), scale), force)
