"""`lbaecodec bench`: the measured comparison table."""

from __future__ import annotations

from pathlib import Path

import click

from ..architecture import MAX_REFINE, SAMPLE_METHODS, SAMPLE_REFINE, pick_decoder
from ..errors import InputError
from .common import DATA_DIR, DATASET, DEVICE, RDO, clean_errors, model_option, search_of, search_options


def parse_classic(spec: str) -> dict[str, list[int]]:
    """'WEBP:0,10;JPEG:1' → {'WEBP': [0, 10], 'JPEG': [1]}; '' or 'none' → {}."""
    if spec.strip().lower() in ("", "none"):
        return {}
    out: dict[str, list[int]] = {}
    try:
        for part in spec.split(";"):
            fmt, qualities = part.split(":")
            out[fmt.strip().upper()] = [int(q) for q in qualities.split(",")]
    except ValueError:
        raise InputError(f"--classic {spec!r}: expected FORMAT:Q[,Q...][;FORMAT:Q...]") from None
    return out


def parse_rounds(spec: str) -> tuple[int, ...]:
    """'0,2' → (0, 2): the refining rounds of `sample --refine` that get a generation row."""
    try:
        rounds = tuple(dict.fromkeys(int(r) for r in spec.split(",")))
    except ValueError:
        raise InputError(f"--sample-refine {spec!r}: expected whole numbers, e.g. 0,{SAMPLE_REFINE}") from None
    if not all(0 <= r <= MAX_REFINE for r in rounds):
        raise InputError(f"--sample-refine {spec!r}: rounds go from 0 to {MAX_REFINE}")
    return rounds


def parse_methods(spec: str) -> tuple[str, ...]:
    """'cov,prior' → ('cov', 'prior'); 'none' → ()."""
    if spec.strip().lower() == "none":
        return ()
    methods = tuple(m.strip() for m in spec.split(",") if m.strip())
    unknown = [m for m in methods if m not in SAMPLE_METHODS]
    if unknown:
        raise InputError(f"--samples {spec!r}: unknown method {unknown[0]!r}; choose from {', '.join(SAMPLE_METHODS)}")
    return methods


@click.command("bench")
@DATASET
@DATA_DIR
@model_option(default_help="[default: the dataset's shipped model]")
@click.option(
    "--limit",
    default=None,
    type=int,
    help="Use N evenly spaced test images (quick runs; FID with few images is biased upward).",
)
@click.option(
    "--classic",
    default="WEBP:0;JPEG:1;AVIF:0",
    show_default=True,
    help="Pillow codecs and qualities to compare, or 'none'.",
)
@click.option("--out", default=None, metavar="DIR", help="[default: bench/results/DATASET]")
@click.option(
    "--cache",
    default=None,
    metavar="DIR",
    help="Where FID statistics are cached, keyed by image content (the test set and every "
    "measured set: a rerun only extracts what changed). [default: ~/.cache/lbaecodec/fid]",
)
@click.option("--no-samples", is_flag=True, help="Skip the generation-FID rows (same as --samples none).")
@click.option(
    "--samples",
    "sample_methods",
    default=",".join(SAMPLE_METHODS),
    show_default=True,
    metavar="METHOD,...|none",
    help="Sampling methods (as `lbaecodec sample --method`) that get a generation-FID row.",
)
@click.option(
    "--sample-refine",
    default=f"0,{SAMPLE_REFINE}",
    show_default=True,
    metavar="N,...",
    help="Refining rounds (as `lbaecodec sample --refine`) each sampling method gets a row for.",
)
@click.option(
    "--no-reconstructions",
    is_flag=True,
    help="Skip the model's reconstruction rows: for a model that decodes to the same pixels as "
    "one already benched (e.g. it differs only in its prior), when only its samples are new.",
)
@click.option(
    "--baselines",
    default="auto",
    show_default=True,
    metavar="auto|none|NAME,...",
    help="VAE / VQ-VAE baselines to measure: auto = the shipped ones for the dataset "
    "(vae-DATASET, vqvae-DATASET), none, or model names/paths.",
)
@click.option(
    "--paper-protocol",
    is_flag=True,
    help="Add rows measured as the paper's code did: both sides saved as JPEG q75 before "
    "Inception (its FIDs are not comparable with ours otherwise).",
)
@click.option(
    "--decoders",
    default=None,
    metavar="NAME,...",
    help="The model's decoders that get a reconstruction row. [default: all it has]",
)
@RDO
@search_options
@click.option(
    "--update-card",
    is_flag=True,
    help="Write each measured model's FID, PSNR and this command into its JSON card "
    "(one entry per measured decoder; with --paper-protocol, that FID too).",
)
@click.option(
    "--card-dir",
    default=None,
    metavar="DIR",
    help="Where --update-card writes the cards, e.g. weights/ of a source checkout "
    "(the models may have been loaded from an installed copy). "
    "[default: beside each model file]",
)
@DEVICE
@clean_errors
def bench_cmd(
    dataset,
    data_dir,
    model,
    limit,
    classic,
    out,
    cache,
    no_samples,
    sample_methods,
    sample_refine,
    no_reconstructions,
    baselines,
    paper_protocol,
    decoders,
    rdo_strength,
    search_rounds,
    search_lambda,
    search_decoder,
    update_card,
    card_dir,
    device,
) -> None:
    """Measure LBAE against classic codecs and the paper's numbers on the same test images.

    Writes results.json, results.md, rate_fid.png and grid.png, and prints the table.
    FID uses Inception-v3 from the optional extra: pip install 'lbaecodec[bench]'.

    \b
    Example:  lbaecodec bench --dataset cifar10 --data-dir cifar10.npz --limit 1000
    """
    from ..lab import bench
    from ..lab.metrics.fid import InceptionFeatures
    from ..registry import cache_dir
    from ..zoo import load_model, pick_device

    if limit is not None and limit < 2:
        raise InputError("--limit must be at least 2 (FID needs a covariance)")
    methods = () if no_samples else parse_methods(sample_methods)
    rounds = parse_rounds(sample_refine)
    search = search_of(search_rounds, search_lambda, search_decoder)
    if update_card and (no_reconstructions or rdo_strength or search):
        raise InputError(
            "--update-card records reconstruction FIDs from the encoder's own codes: "
            "it cannot go with --no-reconstructions, --rdo or --search"
        )
    if card_dir is not None and not (update_card and Path(card_dir).is_dir()):
        raise InputError(f"--card-dir {card_dir}: needs --update-card and an existing folder")
    m = load_model(model or dataset, device)
    decoders = [pick_decoder(d, m.decoders, m.id) for d in decoders.split(",")] if decoders else []
    images, note = bench.load_images(dataset, data_dir, limit)
    if images.shape[1:] != (m.arch.size, m.arch.size, m.arch.channels):
        raise InputError(
            f"{dataset} images are {images.shape[1:]}, model {m.id} takes "
            f"{m.arch.size}x{m.arch.size}x{m.arch.channels} tiles"
        )
    others = bench.load_baselines(baselines, dataset, device)
    target = Path(out or f"bench/results/{dataset}")
    extractor = InceptionFeatures(pick_device(device))
    rows = bench.run(
        m,
        dataset,
        images,
        target,
        extractor,
        Path(cache) if cache else cache_dir() / "fid",
        parse_classic(classic),
        note,
        samples=methods,
        sample_refine=rounds,
        reconstructions=not no_reconstructions,
        baselines=others,
        paper_protocol=paper_protocol,
        decoders=decoders,
        rdo_strength=rdo_strength,
        search=search,
    )
    click.echo((target / "results.md").read_text())
    click.echo(f"wrote {target}/results.json, results.md, rate_fid.png, grid.png ({len(rows)} rows)")
    if update_card:
        cards = Path(card_dir) if card_dir else None
        for card in bench.record_rows_in_cards(m, others, rows, decoders or m.decoders, note, len(images), cards):
            click.echo(f"updated {card}")


@click.command("evaluate")
@model_option(default_help="[default: the dataset's shipped model]")
@DATASET
@DATA_DIR
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Use N evenly spaced test images.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--codings",
    default=None,
    metavar="LABEL,...",
    help="Codings to measure (as `encode --coding`). [default: every one the model ships]",
)
@RDO
@search_options
@DEVICE
@clean_errors
def evaluate_cmd(model, dataset, data_dir, limit, as_json, codings, rdo_strength, device, **search_options) -> None:
    """Test-set PSNR/SSIM of a model and its bits per image under each coding (no FID).

    Each test image is coded as its own .lbae file; sizes include header and CRC. This is
    the command behind the test PSNR and coded bits in the model cards and bench/ tables.

    \b
    Example:  lbaecodec evaluate --model cifar10 --data-dir cifar10.npz
    """
    import json

    from ..lab import bench
    from ..zoo import load_model

    m = load_model(model or dataset, device)
    images, note = bench.load_images(dataset, data_dir, limit)
    result = {
        "data": note,
        **bench.evaluate_codings(
            m,
            images,
            bench.PAPER_IMAGE_BITS.get(dataset, images[0].size * 8),
            codings.split(",") if codings else (),
            rdo_strength,
            search_of(**search_options),
        ),
    }
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(
        f"{result['model']} on {result['images']} images of {note}: PSNR {result['psnr_db']} dB, SSIM {result['ssim']}"
    )
    click.echo("| coding | payload bits/img | file bytes/img | ratio (file) | encode img/s | decode img/s | PSNR dB |")
    click.echo("|---|---|---|---|---|---|---|")
    for coding, f in result["codings"].items():
        click.echo(
            f"| {coding} | {f['payload_bits']} | {f['file_bytes']} | {f['ratio_file']} | "
            f"{f['encode_img_s']} | {f['decode_img_s']} | {f['psnr_db']} |"
        )
