"""`lbaecodec encode` and `decode`: the codec itself."""

from __future__ import annotations

from pathlib import Path

import click

from ..container import Coding
from ..errors import InputError
from ..precision import AUTO_PRECISION, PRECISIONS
from .common import (
    DEVICE,
    FORCE,
    MAX_PIXELS,
    RDO,
    clean_errors,
    decoder_option,
    model_option,
    pixel_limit,
    read_input,
    refuse_existing,
    search_of,
    search_options,
    write_output,
)

EXTENSIONS = {
    ".png": "PNG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".ppm": "PPM",
    ".pgm": "PPM",
    ".gif": "GIF",
}


def _many_files(inputs: tuple[str, ...], out_dir: str, suffixes, new_suffix, recursive, convert, force, workers):
    """Run ``convert`` over the files of ``inputs`` into ``out_dir``: a progress bar, one line per
    failure, a summary; exits with the first failure's code if any failed."""
    import functools
    import sys

    from tqdm import tqdm

    from .. import batch

    if "-" in inputs:
        raise InputError("stdin (-) takes one input and an OUTPUT, not -o")
    if workers < 1:
        raise InputError("--workers must be at least 1")
    tasks = batch.plan(list(inputs), Path(out_dir), suffixes, new_suffix, recursive)
    failed = []
    outcomes = batch.run(tasks, functools.partial(*convert), force, workers)
    for outcome in tqdm(outcomes, total=len(tasks), unit="file", file=sys.stderr, disable=None, leave=False):
        if outcome.error:
            failed.append(outcome)
            tqdm.write(f"error: {outcome.error}", file=sys.stderr)
    click.echo(
        f"{len(tasks) - len(failed)} of {len(tasks)} files written to {out_dir}"
        + (f"; {len(failed)} failed" if failed else ""),
        err=True,
    )
    if failed:
        sys.exit(failed[0].exit_code)


def _image_and_output(paths: tuple[str, ...]) -> tuple[str, str]:
    if len(paths) != 2:
        raise InputError(f"got {len(paths)} paths: give one input and its OUTPUT, or several inputs with -o DIR")
    return paths[0], paths[1]


OUT_DIR = click.option(
    "-o",
    "--out-dir",
    default=None,
    metavar="DIR",
    help="Many inputs (files, folders) → DIR, names from the inputs (a.png → DIR/a.lbae; a folder's "
    "subfolders are kept). Without it: exactly one input and its OUTPUT.",
)
RECURSIVE = click.option("-r", "--recursive", is_flag=True, help="With -o: folders' subfolders too.")
WORKERS = click.option(
    "--workers",
    default=1,
    show_default=True,
    metavar="N",
    help="With -o: N processes share the files, each with cores/N threads (one process uses them all).",
)


RUNTIME = click.option(
    "--runtime",
    type=click.Choice(["torch", "onnx"]),
    default="torch",
    show_default=True,
    help="onnx: run the network with ONNX Runtime from an `lbaecodec export-onnx MODEL` folder, without "
    "loading torch (pip install 'lbaecodec[onnx]'): quicker to start and ~1.3x faster on CPU. Torch's "
    "bits (but for latents within ~1e-6 of zero), pixels within 1/255. One-stage models without a seam "
    "filter.",
)
ONNX_DIR = click.option(
    "--onnx-dir",
    default=None,
    metavar="DIR",
    help="With --runtime onnx: the export to use. [default: where export-onnx puts the model's, "
    "~/.cache/lbaecodec/onnx/NAME@HASH]",
)


def many_files(command):
    """-o, -r and --workers: the options of the many-files form."""
    return OUT_DIR(RECURSIVE(WORKERS(command)))


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="IMAGE OUTPUT | INPUTS... -o DIR")
@many_files
@model_option(default_help="[default: cifar10]")
@DEVICE
@FORCE
@click.option(
    "--coding",
    type=click.Choice(["auto", *(c.label for c in Coding)]),
    default="auto",
    show_default=True,
    help="How the bits are stored: auto = the model's best prior (entropy-coded, "
    "lossless on the bits) with a tight end, raw when that would not save space. "
    "factorized/context/hidden: range codes ended on a 32-bit word, which readers before 0.10 "
    "(0.9 for hidden) read; their -tight forms end on a byte (~14 bits less per file).",
)
@click.option("--raw", is_flag=True, help="Store the raw bits (same as --coding raw).")
@click.option(
    "--format-version",
    type=click.IntRange(1, 2),
    default=2,
    show_default=True,
    help="Container version: 2 names the model by hash (15 bytes around a 32×32 image's payload); "
    "1 (27 bytes) for lbaecodec 0.1 readers. A --quality other than 3 always writes version 3.",
)
@click.option(
    "--quality",
    type=click.IntRange(1, 5),
    default=3,
    show_default=True,
    help="1 (smallest) to 5 (best): the image is coded on a canvas 0.5, 0.7, 1, 1.4 or 2 times "
    "its size and resampled back when decoded, for about 1/4, 1/2, 1, 2 or 4 times the bits.",
)
@click.option(
    "--stages",
    "stage_count",
    type=click.IntRange(1, None),
    default=1,
    show_default=True,
    help="Residual stages, up to the model's (`lbaecodec models`; e.g. photo-s2f has 2): each stage "
    "codes what the ones before left, for about as many bits again and a sharper picture. More "
    "than one writes format version 4, which a reader may cut after any stage.",
)
@RDO
@search_options
@RUNTIME
@ONNX_DIR
@MAX_PIXELS
@clean_errors
def encode(
    paths: tuple[str, ...],
    out_dir: str | None,
    recursive: bool,
    workers: int,
    model: str | None,
    device: str,
    force: bool,
    coding: str,
    raw: bool,
    format_version: int,
    quality: int,
    stage_count: int,
    rdo_strength: float,
    search_rounds: int,
    search_lambda: float,
    search_decoder: str,
    runtime: str,
    onnx_dir: str | None,
    max_pixels: int | None,
) -> None:
    """Compress IMAGE (any size; gray or RGB) into OUTPUT (.lbae). Use - for stdin/stdout.
    With -o DIR: every image among INPUTS (files, folders) into DIR.

    The image is cut into tiles of the model's size (32×32 for cifar10); each tile becomes
    the model's number of bits (600 for cifar10), which are then entropy-coded with the
    model's learned prior (decoded pixels are identical either way). Alpha is dropped with a
    warning.

    \b
    Example:  lbaecodec encode photo.png photo.lbae --model cifar10
    Smaller:  lbaecodec encode photo.png small.lbae --quality 1
    Better:   lbaecodec encode photo.jpg best.lbae --model photo-s2f --stages 2 --quality 4
    Fewer bits:  lbaecodec encode photo.png photo.lbae --model cifar10-w64-rh --rdo 0.05
    Best per bit:  lbaecodec encode thumb.png thumb.lbae --search 20
    Many:     lbaecodec encode thumbs/ extra.png -o coded/ --workers 2
    Without torch:  lbaecodec export-onnx cifar10-p2 ; lbaecodec encode thumbs/ -o coded/ --runtime onnx
    """
    from .. import batch, codec

    coding = "raw" if raw else coding
    if onnx_dir is not None and (runtime != "onnx" or model is not None):
        raise InputError("--onnx-dir goes with --runtime onnx and names the model itself: drop --model")
    loader = batch.Loader(device, runtime, onnx_dir)
    search = search_of(search_rounds, search_lambda, search_decoder)
    if out_dir is not None:
        codec.check_stage_count(loader.load(model), stage_count)  # one error, not one per file
        if rdo_strength or search:
            codec.check_code_choice(loader.load(model), stage_count, coding, rdo_strength, search)
        convert = (batch.encode_files, loader, model, coding, format_version, quality, stage_count, rdo_strength)
        convert += (search, pixel_limit(max_pixels))
        _many_files(paths, out_dir, batch.IMAGE_SUFFIXES, ".lbae", recursive, convert, force, workers)
        return
    image, output = _image_and_output(paths)
    refuse_existing(output, force)
    source = read_input(image) if image == "-" else image
    write_output(
        output,
        codec.encode(
            source,
            model=loader.load(model) if runtime == "onnx" else model,
            device=device,
            coding=coding,
            max_pixels=pixel_limit(max_pixels),
            version=format_version,
            quality_level=quality,
            stage_count=stage_count,
            rdo_strength=rdo_strength,
            search=search,
        ),
        force,
    )


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="LBAE_FILE OUTPUT | INPUTS... -o DIR")
@many_files
@model_option(default_help="[default: the model the file names]")
@decoder_option("fidelity")
@DEVICE
@FORCE
@click.option(
    "--format",
    "fmt",
    default=None,
    metavar="FMT",
    help="Image format (PNG, BMP, TIFF, WEBP, JPEG...). [default: from OUTPUT's extension; PNG for stdout]",
)
@RUNTIME
@ONNX_DIR
@click.option(
    "--stages",
    "stage_limit",
    type=click.IntRange(1, None),
    default=None,
    help="Decode at most this many of the file's residual stages (a quicker, softer preview). "
    "[default: every stage the file holds]",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=AUTO_PRECISION,
    show_default=True,
    help="The torch decoder's arithmetic. auto: bf16 on CPUs that have it natively (AVX-512 BF16, "
    "AMX; ~1.6x the tiles/s, pixels within 2 levels of fp32), else fp32. The encoder is always fp32.",
)
@MAX_PIXELS
@clean_errors
def decode(
    paths: tuple[str, ...],
    out_dir: str | None,
    recursive: bool,
    workers: int,
    model: str | None,
    decoder: str,
    device: str,
    force: bool,
    fmt: str | None,
    runtime: str,
    onnx_dir: str | None,
    stage_limit: int | None,
    precision: str,
    max_pixels: int | None,
) -> None:
    """Restore LBAE_FILE to the image OUTPUT, at the original size and mode. With -o DIR:
    every .lbae file among INPUTS (files, folders) into DIR, as PNG unless --format says otherwise.

    The model named in the file is used unless --model says otherwise; a file made with
    other weights is refused.

    \b
    Example:  lbaecodec decode photo.lbae photo.rec.png
    Without torch:  lbaecodec export-onnx cifar10-p2 ; lbaecodec decode photo.lbae out.png --runtime onnx
    Many:     lbaecodec decode coded/ -o restored/ --format webp
    """
    if runtime == "onnx" and model is not None:
        raise InputError("--model is for the torch runtime; give an ONNX export with --onnx-dir")
    if runtime == "onnx":
        from ..onnx_runtime import check_precision

        check_precision(precision)
    if out_dir is not None:
        from .. import batch

        loader = batch.Loader(device, runtime, onnx_dir, precision)
        if model is not None:
            loader.load(model)
        fmt = (fmt or "PNG").upper()
        from PIL import Image

        Image.init()
        if fmt not in Image.SAVE:
            raise InputError(f"cannot write {fmt} images; e.g. {', '.join(sorted(set(EXTENSIONS.values())))}")
        suffix = next((ext for ext, name in EXTENSIONS.items() if name == fmt), f".{fmt.lower()}")
        convert = (batch.decode_files, loader, model, decoder, fmt, stage_limit, pixel_limit(max_pixels))
        _many_files(paths, out_dir, batch.LBAE_SUFFIXES, suffix, recursive, convert, force, workers)
        return
    lbae_file, output = _image_and_output(paths)
    fmt = fmt or ("PNG" if output == "-" else EXTENSIONS.get(Path(output).suffix.lower()))
    if fmt is None:
        raise InputError(
            f"cannot tell the image format from {output!r}; use an extension "
            f"({', '.join(sorted(EXTENSIONS))}) or --format"
        )
    refuse_existing(output, force)
    if runtime == "onnx":
        from .. import onnx_runtime

        folder = Path(onnx_dir) if onnx_dir else None
        img = onnx_runtime.decode(read_input(lbae_file), folder, decoder, pixel_limit(max_pixels))
    else:
        from .. import codec

        data = read_input(lbae_file)
        img = codec.decode(data, model, device, decoder, pixel_limit(max_pixels), stage_limit, precision)
        _note_cut(lbae_file, data)
    from ..images import image_bytes

    write_output(output, image_bytes(img, fmt), force)


def _note_cut(name: str, data: bytes) -> None:
    """A line on stderr when a file holds fewer stages than it was written with."""
    from .. import container

    h, payloads = container.read_stages(data)
    if len(payloads) < h.stages:
        click.echo(
            f"note: {name} holds {len(payloads)} of its {h.stages} stages (cut after stage "
            f"{len(payloads)}); decoded those",
            err=True,
        )
