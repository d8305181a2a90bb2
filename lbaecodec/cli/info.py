"""`lbaecodec info` and `models`: what a file holds and which models are installed, read from
headers and cards alone (no model is loaded, torch is not imported)."""

from __future__ import annotations

import json
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
    for c in cards:
        try:
            click.echo(_model_line(c))
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            warnings.warn(f"{c['path']}: model card has a malformed field ({e!r}); shown by name only")
            click.echo(c["name"])


def _model_line(c: dict) -> str:
    """One line of `lbaecodec models`: the card's measured figures."""
    a = c.get("architecture") or {}
    bits = c.get("code_bits_per_tile", a.get("bits", "?"))  # baselines count their own latent
    kind = "" if c.get("kind", "lbae") == "lbae" else f"  ({c['kind']} baseline, bench only)"
    fid = f"  FID {c['test_fid']['fid']} ({c['test_fid']['images']} images)" if c.get("test_fid") else ""
    if "realism" in c:
        measured = (c.get("test_fid_realism") or {}).get("fid")
        realism_fid = f", FID {measured}" if measured else ""
        width = f"width {c['realism']['width']}, " if "width" in c["realism"] else ""
        width += "resize upsampling, " if c["realism"].get("upsample") == RESIZE else ""
        fid += f"  + realism decoder ({width}{c['realism'].get('test_psnr_db', '?')} dB{realism_fid})"
    if c.get("later_stages"):
        by_stage = " → ".join(f"{f.get('psnr_db')}" for f in c.get("test_tiles_by_stage", []))
        fid += f"  + residual stages: {1 + len(c['later_stages'])} in all (encode --stages"
        fid += f"; photo test tiles {by_stage} dB by stages)" if by_stage else ")"
    coded = (c.get("test_bits_per_tile") or {}).get("context_coded_single_tile", "?")
    if "grouped_prior" in c:
        fid += f"  + grouped prior ({c['grouped_prior']['groups']} runs, {coded} coded bits/tile)"
    if "hidden_prior" in c:
        fid += f"  + hidden-layer prior ({c['hidden_prior']['hidden_units']} units, {coded} coded bits/tile)"
    return (
        f"{c['name']:<14} {bits:>5} bits / {a.get('size', '?')}px tile  "
        f"width {a.get('width', '?'):<3} test PSNR {c.get('test_psnr_db', '?')} dB{fid}  "
        f"epochs {c.get('epochs', '?')}  {c.get('data', '')}{kind}"
    )
