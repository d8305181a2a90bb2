"""`lbaecodec info` and `models`: what a file holds and which models are installed, read from
headers and cards alone (no model is loaded, torch is not imported)."""

from __future__ import annotations

import json
import re
import warnings

import click

from ..architecture import RESIZE
from ..errors import printable
from .common import MAX_PIXELS, clean_errors, pixel_limit, read_input


@click.command()
@click.argument("lbae_file")
@click.option("--json", "as_json", is_flag=True, help="Print the fields as JSON.")
@MAX_PIXELS
@clean_errors
def info(lbae_file: str, as_json: bool, max_pixels: int | None) -> None:
    """Show what LBAE_FILE holds: model, image size, tiles, bits, bytes, compression ratio."""
    from .. import fileinfo  # header only: no model, no torch

    i = fileinfo.info(read_input(lbae_file), pixel_limit(max_pixels))
    fields = {
        **i.__dict__,
        "bits_per_pixel": round(i.bits_per_pixel, 4),
        "compression_ratio": round(i.compression_ratio, 2),
    }
    if as_json:
        click.echo(json.dumps(fields))
        return
    grid = f"{i.grid[0]}x{i.grid[1]} = {i.tiles} of {i.tile}x{i.tile} px"
    tiles = (
        f"{grid}, {i.bits_per_tile} bits each ({i.code_bits} code bits)"
        if i.tile
        else "unknown: the file names its model by hash, and that model is not installed"
    )
    click.echo(
        f"model:        {printable(i.model)}\n"
        f"image:        {i.width}x{i.height} {i.mode}\n"
        f"quality:      {_quality_line(i)}\n"
        f"stages:       {_stages_line(i)}\n"
        f"tiles:        {tiles}\n"
        f"coding:       {i.coding}, format version {i.version}\n"
        f"bytes:        {i.file_bytes} = {i.header_bytes} header+CRC + {i.payload_bytes} payload"
        + (f" (raw bits: {i.raw_payload_bytes})\n" if i.tile else "\n")
        + f"bits/pixel:   {i.bits_per_pixel:.4f}\n"
        f"compression:  {i.compression_ratio:.2f}x (8-bit {i.mode} pixels over file bits)"
    )


def _stages_line(i) -> str:
    sizes = " + ".join(map(str, i.stage_payload_bytes))
    held = f"{i.stages_present} (payload {sizes} bytes)" if i.stages_present > 1 else "1"
    if i.stages_present < i.stages:
        return f"{held} of {i.stages}: the file was cut after stage {i.stages_present}; decoders stop there"
    return held if i.stages > 1 else "1 (no residual stages)"


def _quality_line(i) -> str:
    canvas = f"{i.coded_size[0]}x{i.coded_size[1]}"
    if i.coded_size == (i.width, i.height):
        return f"{i.quality} (coded at its own size)"
    level = i.quality if i.quality is not None else "custom"
    return f"{level} (coded on a {canvas} canvas, resampled to {i.width}x{i.height} when decoded)"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the model cards as JSON.")
@clean_errors
def models(as_json: bool) -> None:
    """List the installed models and their measured figures."""
    from .. import registry  # headers and cards only: no torch

    cards = []
    for name, path in sorted(registry.available().items()):
        card = {"name": name, **registry.read_card(registry.card_path(path))}
        cards.append({**card, "path": str(path)})
    if as_json:
        click.echo(json.dumps(cards, indent=2))
        return
    if not cards:
        click.echo("no models installed")
        return
    name_width = max(len(c["name"]) for c in cards)
    click.echo(f"{'model':<{name_width}}  {MODEL_COLUMNS}")
    for c in cards:
        try:
            click.echo(_model_line(c, name_width, default=c["name"] == registry.DEFAULT_MODEL))
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            warnings.warn(f"{c['path']}: model card has a malformed field ({e!r}); shown by name only")
            click.echo(c["name"])
    click.echo("Figures on each card's test images (data: dataset train/test); the cards in full: --json.")


MODEL_COLUMNS = (
    f"{'bits':>5} {'tile':>4} {'width':>5}  {'data':<25} {'epochs':>6}  {'test PSNR':>10}  {'FID (images)':<16}  also"
)


def _model_line(c: dict, name_width: int = 14, default: bool = False) -> str:
    """One row of `lbaecodec models`: the card's measured figures, aligned under MODEL_COLUMNS."""
    a = c.get("architecture") or {}
    bits = c.get("code_bits_per_tile", a.get("bits", "?"))  # baselines count their own latent
    data = f"{str(c.get('data', '?')).split(' ', 1)[0]} {c.get('train_images', '?')}/{c.get('test_images', '?')}"
    fid = f"{c['test_fid']['fid']} ({c['test_fid']['images']})" if c.get("test_fid") else "—"
    psnr = f"{c['test_psnr_db']} dB" if "test_psnr_db" in c else "?"
    extras = (["the default model"] if default else []) + _extras(c)
    return (
        f"{c['name']:<{name_width}}  {bits:>5} {a.get('size', '?'):>4} {a.get('width', '?'):>5}  {data:<25} "
        f"{c.get('epochs', '?'):>6}  {psnr:>10}  {fid:<16}  {'; '.join(extras)}"
    ).rstrip()


def _extras(c: dict) -> list[str]:
    """What a model adds to its base network: a realism decoder, residual stages, another prior."""
    extras = [] if c.get("kind", "lbae") == "lbae" else [f"{c['kind']} baseline, bench only"]
    if "realism" in c:
        measured = (c.get("test_fid_realism") or {}).get("fid")
        shape = [f"width {c['realism']['width']}"] if "width" in c["realism"] else []
        shape += ["resize upsampling"] if c["realism"].get("upsample") == RESIZE else []
        figures = [f"{c['realism'].get('test_psnr_db', '?')} dB"] + ([f"FID {measured}"] if measured else [])
        extras.append(f"realism decoder ({', '.join(shape + figures)})")
    if c.get("later_stages"):
        by_stage = " → ".join(f"{f.get('psnr_db')}" for f in c.get("test_tiles_by_stage", []))
        tiles = f": photo test tiles {by_stage} dB" if by_stage else ""
        extras.append(f"{1 + len(c['later_stages'])} residual stages (encode --stages{tiles})")
    filters = sum(1 for key in c if key == "postfilter" or re.fullmatch(r"stage\d+_postfilter", key))
    if filters:
        extras.append(f"{filters} seam filters" if filters > 1 else "seam filter")
    coded = (c.get("test_bits_per_tile") or {}).get("context_coded_single_tile", "?")
    if "grouped_prior" in c:
        extras.append(f"grouped prior ({c['grouped_prior']['groups']} runs, {coded} coded bits/tile)")
    if "hidden_prior" in c:
        extras.append(f"hidden-layer prior ({c['hidden_prior']['hidden_units']} units, {coded} coded bits/tile)")
    if "dense_prior" in c:
        extras.append(f"prior refitted ({coded} coded bits/tile)")
    return extras
