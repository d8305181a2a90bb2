"""The `lbaecodec` command line. Each command parses options and calls the library."""
from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import click

from .errors import InputError, LbaeError, printable

EXTENSIONS = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP",
              ".jpg": "JPEG", ".jpeg": "JPEG", ".ppm": "PPM", ".pgm": "PPM", ".gif": "GIF"}
DEVICE = click.option("--device", default="auto", show_default=True,
                      help="auto (CUDA when present), cpu, cuda or cuda:N.")
def decoder_option(default: str) -> Callable:
    """--decoder: which of the model's decoders turns codes into pixels."""
    return click.option(
        "--decoder", default=default, show_default=True, metavar="fidelity|realism|auto",
        help="fidelity: closest to the original (trained on pixel error alone). realism: the same "
             "bits through an adversarially trained decoder, sharper textures, lower PSNR. auto: "
             "realism where the model has one.")


MAX_PIXELS = click.option(
    "--max-pixels", default=None, type=click.IntRange(min=0), metavar="N",
    help="Refuse images (and .lbae headers) of more pixels, before any work. 0: no limit. "
         "[default: Pillow's decompression-bomb limit, 178956970]")


def _pixel_limit(max_pixels: int | None):
    from .fileinfo import PILLOW_LIMIT

    return PILLOW_LIMIT if max_pixels is None else (max_pixels or None)


FORCE = click.option("--force", "-f", is_flag=True, help="Overwrite an existing output file.")
MODEL = click.option("--model", "-m", default=None, metavar="NAME|PATH",
                     help="Shipped model name (see `lbaecodec models`) or a .safetensors file. "
                          "[default: cifar10 for encode; the file's own model for decode]")


def clean_errors(fn):
    """Bad input → one line on stderr and the error's exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.showwarning = lambda msg, *a, **k: click.echo(f"warning: {msg}", err=True)
            try:
                return fn(*args, **kwargs)
            except LbaeError as e:
                click.echo(f"error: {printable(str(e))}", err=True)
                sys.exit(e.exit_code)
            except OSError as e:
                click.echo(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), err=True)
                sys.exit(1)
            except MemoryError:
                click.echo("error: out of memory (image too large for this machine?)", err=True)
                sys.exit(1)
            except KeyboardInterrupt:
                click.echo("interrupted", err=True)
                sys.exit(130)

    return wrapper


def read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None


def write_output(path: str, data: bytes, force: bool) -> None:
    """Atomic write (temp file in the same folder + rename), or stdout for '-'."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    if path.endswith(("/", os.sep)) or target.is_dir():
        raise InputError(f"{path}: is a directory, not a file name")
    refuse_existing(path, force)
    if not target.parent.is_dir():
        raise InputError(f"{target.parent}: no such directory")
    existing_mode = target.stat().st_mode & 0o7777 if target.exists() else None
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, existing_mode if existing_mode is not None else 0o666 & ~_umask())
        if force:
            os.replace(tmp, target)
        else:
            _publish_new(Path(tmp), target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _publish_new(tmp: Path, target: Path) -> None:
    """Put a finished temp file at ``target`` only if nothing is there: of two writers racing
    for a new path exactly one wins (a hard link fails if the name exists)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise InputError(f"{target} exists; use --force to overwrite") from None
    except OSError:  # a file system without hard links: the check above, then rename
        os.replace(tmp, target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def refuse_existing(path: str, force: bool) -> None:
    if path != "-" and Path(path).exists() and not force:
        raise InputError(f"{path} exists; use --force to overwrite")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lbaecodec")
def main() -> None:
    """lbaecodec: tiny-bitrate learned image compression (Latent Bernoulli Autoencoder).

    \b
    Compress and restore:   lbaecodec encode photo.png photo.lbae
                            lbaecodec decode photo.lbae photo.rec.png
    Inspect:                lbaecodec info photo.lbae ; lbaecodec models
    """


@main.command()
@click.argument("image")
@click.argument("output")
@MODEL
@DEVICE
@FORCE
@click.option("--coding", type=click.Choice(["auto", "raw", "factorized", "context"]), default="auto",
              show_default=True,
              help="How the bits are stored: auto = the model's best prior (entropy-coded, "
                   "lossless on the bits), raw when that would not save space.")
@click.option("--raw", is_flag=True, help="Store the raw bits (same as --coding raw).")
@MAX_PIXELS
@clean_errors
def encode(image: str, output: str, model: str | None, device: str, force: bool, coding: str,
           raw: bool, max_pixels: int | None) -> None:
    """Compress IMAGE (any size; gray or RGB) into OUTPUT (.lbae). Use - for stdin/stdout.

    The image is cut into tiles of the model's size (32×32 for cifar10); each tile becomes
    the model's number of bits (600 for cifar10), which are then entropy-coded with the
    model's learned prior (decoded pixels are identical either way). Alpha is dropped with a
    warning.

    \b
    Example:  lbaecodec encode photo.png photo.lbae --model cifar10
    """
    from . import codec

    refuse_existing(output, force)
    source = read_input(image) if image == "-" else image
    write_output(output, codec.encode(source, model=model, device=device, coding="raw" if raw else coding,
                                             max_pixels=_pixel_limit(max_pixels)), force)


@main.command()
@click.argument("lbae_file")
@click.argument("output")
@MODEL
@decoder_option("fidelity")
@DEVICE
@FORCE
@click.option("--format", "fmt", default=None, metavar="FMT",
              help="Image format (PNG, BMP, TIFF, WEBP, JPEG...). [default: from OUTPUT's "
                   "extension; PNG for stdout]")
@MAX_PIXELS
@clean_errors
def decode(lbae_file: str, output: str, model: str | None, decoder: str, device: str, force: bool,
           fmt: str | None, max_pixels: int | None) -> None:
    """Restore LBAE_FILE to the image OUTPUT, at the original size and mode.

    The model named in the file is used unless --model says otherwise; a file made with
    other weights is refused.

    \b
    Example:  lbaecodec decode photo.lbae photo.rec.png
    """
    import io

    from . import codec

    fmt = fmt or ("PNG" if output == "-" else EXTENSIONS.get(Path(output).suffix.lower()))
    if fmt is None:
        raise InputError(
            f"cannot tell the image format from {output!r}; use an extension "
            f"({', '.join(sorted(EXTENSIONS))}) or --format")
    refuse_existing(output, force)
    img = codec.decode(read_input(lbae_file), model=model, device=device, decoder=decoder,
                       max_pixels=_pixel_limit(max_pixels))
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt.upper())
    except (KeyError, ValueError, OSError) as e:
        raise InputError(f"cannot write {fmt} images: {e}") from None
    write_output(output, buf.getvalue(), force)


@main.command()
@click.argument("lbae_file")
@click.option("--json", "as_json", is_flag=True, help="Print the fields as JSON.")
@MAX_PIXELS
@clean_errors
def info(lbae_file: str, as_json: bool, max_pixels: int | None) -> None:
    """Show what LBAE_FILE holds: model, image size, tiles, bits, bytes, compression ratio."""
    from . import fileinfo  # header only: no model, no torch

    i = fileinfo.info(read_input(lbae_file), _pixel_limit(max_pixels))
    fields = {**i.__dict__, "bits_per_pixel": round(i.bits_per_pixel, 4),
              "compression_ratio": round(i.compression_ratio, 2)}
    if as_json:
        click.echo(json.dumps(fields))
        return
    click.echo(f"model:        {printable(i.model)}\n"
               f"image:        {i.width}x{i.height} {i.mode}\n"
               f"tiles:        {i.grid[0]}x{i.grid[1]} = {i.tiles} of {i.tile}x{i.tile} px, "
               f"{i.bits_per_tile} bits each ({i.code_bits} code bits)\n"
               f"coding:       {i.coding}\n"
               f"bytes:        {i.file_bytes} = {i.header_bytes} header+CRC + {i.payload_bytes} payload "
               f"(raw bits: {i.raw_payload_bytes})\n"
               f"bits/pixel:   {i.bits_per_pixel:.4f}\n"
               f"compression:  {i.compression_ratio:.2f}x (8-bit {i.mode} pixels over file bits)")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the model cards as JSON.")
@clean_errors
def models(as_json: bool) -> None:
    """List the installed models and their measured figures."""
    from . import registry  # headers and cards only: no torch

    cards = []
    for name, path in sorted(registry.available().items()):
        card = {"name": name, **registry.read_card(registry.card_path(path))}
        cards.append({**card, "path": str(path)})
    if as_json:
        click.echo(json.dumps(cards, indent=2))
        return
    if not cards:
        click.echo("no models installed")
    for c in cards:
        a = c.get("architecture", {})
        bits = c.get("code_bits_per_tile", a.get("bits", "?"))  # baselines count their own latent
        kind = "" if c.get("kind", "lbae") == "lbae" else f"  ({c['kind']} baseline, bench only)"
        fid = f"  FID {c['test_fid']['fid']} ({c['test_fid']['images']} images)" if "test_fid" in c else ""
        if "realism" in c:
            measured = c.get("test_fid_realism", {}).get("fid")
            fid += f"  + realism decoder ({c['realism'].get('test_psnr_db', '?')} dB{f', FID {measured}' if measured else ''})"
        click.echo(f"{c['name']:<14} {bits:>5} bits / {a.get('size', '?')}px tile  "
                   f"width {a.get('width', '?'):<3} test PSNR {c.get('test_psnr_db', '?')} dB{fid}  "
                   f"epochs {c.get('epochs', '?')}  {c.get('data', '')}{kind}")


from .cli_bench import bench_cmd, evaluate_cmd  # noqa: E402  (registered on main)
from .cli_generate import edit_cmd, interpolate_cmd, sample_cmd  # noqa: E402
from .cli_train import add_decoder_cmd, export_cmd, train_cmd  # noqa: E402

for command in (train_cmd, export_cmd, add_decoder_cmd, evaluate_cmd, bench_cmd, sample_cmd, interpolate_cmd, edit_cmd):
    main.add_command(command)
