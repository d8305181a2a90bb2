"""`lbaecodec bench`: LBAE against classic codecs and the paper's numbers, on the same images.

Every measured row reconstructs the same test images and reports bits per image, compression
ratio, FID (Inception-v3, see metrics/fid.py), PSNR and SSIM. Rows from the paper are marked
"reported". Outputs: results.json, results.md, rate_fid.png, grid.png.
"""

from __future__ import annotations

import io
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import codec, container, packing, tiling
from ..architecture import BASELINES, SAMPLE_METHODS
from ..container import Coding
from ..errors import ModelError
from ..images import to_float, to_pil, to_uint8
from ..precision import decodes_in_bf16
from ..search import Search
from ..zoo import FIDELITY, Model, available, load_model, update_card
from . import data
from .export import command_line
from .metrics import fid as fidlib
from .metrics.quality import psnr, ssim
from .report import Row, round_figure, write_outputs

# (dataset) → (image bits as the paper counts them, reported rows)
PAPER_IMAGE_BITS = {
    "mnist": 32 * 32 * 1,
    "fashion-mnist": 32 * 32 * 1,
    "cifar10": 32 * 32 * 3 * 8,
    "celeba": 64 * 64 * 3 * 8,
}
REPORTED = {  # Fajtl et al. 2020, supplementary Table 1: (method, latent bits, FID)
    "mnist": [("LBAE (paper)", 200, 8.11), ("VAE (paper)", 512, 8.77)],
    "cifar10": [("LBAE (paper)", 600, 19.37), ("VAE (paper)", 4096, 37.9), ("VQ-VAE (paper)", 5760, None)],
    "celeba": [("LBAE (paper)", 1500, 7.71), ("VAE (paper)", 2048, 34.96)],
}
CLASSIC = {"WEBP": [0], "JPEG": [1], "AVIF": [0]}  # Pillow format → qualities (lowest ≈ LBAE bytes)
GRID_IMAGES = 10


def lbae_reconstruct(
    m: Model,
    images: np.ndarray,
    coding: str = "auto",
    decoder: str = FIDELITY,
    rdo_strength: float = 0.0,
    search: Search | None = None,
) -> tuple[np.ndarray, dict]:
    """Each image as its own .lbae file (its codes optimised with ``rdo_strength`` > 0 or
    chosen by ``search``): reconstructions (through ``decoder``) and size/speed figures."""
    n, size, _, channels = images.shape
    column = images.reshape(n * size, size, channels)  # one tile per image, stacked top to bottom
    t0 = time.perf_counter()
    codes = codec.codes_to_store(m, [column], coding=coding, rdo_strength=rdo_strength, search=search)[0][0]
    payloads = [packing.pack_codes(m, codes[i : i + 1], coding) for i in range(n)]
    t1 = time.perf_counter()
    mode = tiling.MODES[int(channels == 3)]
    files = [container.write(codec.file_header(m, size, size, mode, method), p) for method, p in payloads]
    t2 = time.perf_counter()
    headers = [container.read(f) for f in files]
    unpacked = np.concatenate([packing.unpack_codes(codec.check_model(h, m), p, m) for h, p in headers])
    recs = codec.decode_codes(m, unpacked, tiling.Grid(size, n * size, size), decoder).pixels.reshape(images.shape)
    t3 = time.perf_counter()
    if not np.array_equal(unpacked, codes):
        raise RuntimeError("entropy coding changed the bits")
    return recs, {
        "file_bytes": float(np.mean([len(f) for f in files])),
        "payload_bits": float(np.mean([8 * len(p) for _, p in payloads])),
        "encode_img_s": n / (t1 - t0),
        "decode_img_s": n / (t3 - t2),
        "codings": sorted({k.label for k, _ in payloads}),
    }


def evaluate_codings(
    m: Model,
    images: np.ndarray,
    image_bits: int,
    codings: Sequence[str] = (),
    rdo_strength: float = 0.0,
    search: Search | None = None,
) -> dict:
    """Test PSNR/SSIM and, per coding method (``codings``, or every one the model ships), payload
    bits, file bytes, compression ratio (image_bits over file bits), encode/decode speed and
    PSNR (which differs between codings only with ``rdo_strength`` or ``search``), each image as
    its own file."""
    table = {}
    recs = None
    chosen = rdo_strength or search
    for coding in codings or [c.label for c in Coding if not (chosen and c == Coding.RAW)]:
        try:
            recs, figures = lbae_reconstruct(m, images, coding, rdo_strength=rdo_strength, search=search)
        except ModelError:
            if codings:
                raise
            continue  # the model ships no such prior
        table[coding] = {k: round(v, 2) for k, v in figures.items() if k != "codings"}
        table[coding]["ratio_file"] = round(image_bits / (8 * figures["file_bytes"]), 2)
        table[coding]["psnr_db"] = round(psnr(images, recs), 3)
    return {
        "model": m.id,
        "images": len(images),
        **({"rdo_strength": rdo_strength} if rdo_strength else {}),
        **({"search": asdict(search)} if search else {}),
        "psnr_db": round(psnr(images, recs), 3),
        "ssim": round(ssim(images, recs), 4),
        "codings": table,
    }


@torch.inference_mode()
def baseline_reconstruct(m: Model, images: np.ndarray, batch: int = 250) -> np.ndarray:
    """A VAE / VQ-VAE baseline's reconstructions (uint8), decoded from its latent code."""
    out = [
        torch.sigmoid(m.net.reconstruct(to_float(images[i : i + batch]).to(m.device)))
        for i in range(0, len(images), batch)
    ]
    return to_uint8(torch.cat(out))


def classic_reconstruct(fmt: str, quality: int, images: np.ndarray) -> tuple[np.ndarray, dict]:
    recs, sizes = [], []
    t0 = time.perf_counter()
    for img in images:
        buf = io.BytesIO()
        to_pil(img).save(buf, fmt, quality=quality)
        sizes.append(buf.tell())
        rec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L" if img.shape[2] == 1 else "RGB"))
        recs.append(rec.reshape(img.shape))
    elapsed = time.perf_counter() - t0
    return np.stack(recs), {"file_bytes": float(np.mean(sizes)), "roundtrip_img_s": len(images) / elapsed}


def row_name(m: Model) -> str:
    """The table's method name for a measured model, e.g. 'VQ-VAE (vqvae-cifar10@1a2b3c4d)'."""
    return f"{m.net.kind.label} ({m.id})"


def decoder_row_name(m: Model, decoder: str) -> str:
    """The row of one of an LBAE model's decoders, e.g. 'LBAE (cifar10-w64-r@…), realism decoder'."""
    return row_name(m) + ("" if decoder == FIDELITY else f", {decoder} decoder")


def run(
    model: Model,
    dataset: str,
    images: np.ndarray,
    out: Path,
    extractor: fidlib.FeatureExtractor,
    cache: Path | None,
    classic: dict[str, list[int]] | None = None,
    data_note: str = "",
    samples: Sequence[str] = SAMPLE_METHODS,
    sample_refine: Sequence[int] = (0,),
    baselines: list[Model] = (),
    paper_protocol: bool = False,
    reconstructions: bool = True,
    decoders: Sequence[str] = (),
    rdo_strength: float = 0.0,
    search: Search | None = None,
) -> list[Row]:
    """Measure every row on ``images`` (N, S, S, C uint8, one model tile each) and write outputs.

    One LBAE row per decoder of the model, or per one of ``decoders`` (none without
    ``reconstructions``: e.g. for a model that differs from a benched one only in its prior), its
    codes optimised with ``rdo_strength`` > 0 (``rdo``) or chosen by ``search``, a generation row per method in
    ``samples`` and number of refining rounds in ``sample_refine``. ``paper_protocol`` adds rows
    measured as the paper's code did: reconstructions and references both saved as JPEG (Pillow's
    default quality 75) before Inception."""
    image_bits = PAPER_IMAGE_BITS.get(dataset, images[0].size * 8)
    ref = fidlib.cached_statistics(images, extractor, cache)
    rows, grids = [], {"original": images[:GRID_IMAGES]}

    def measured(name, recs, code_bits, figures, note=""):
        fbytes = figures["file_bytes"]
        rows.append(
            Row(
                method=name,
                source="measured",
                code_bits=code_bits,
                file_bytes=round(fbytes, 2),
                ratio_code=round(image_bits / code_bits, 2) if code_bits else None,
                ratio_file=round(image_bits / (8 * fbytes), 2),
                fid=round(fidlib.frechet_distance(*ref, *fidlib.cached_statistics(recs, extractor, cache, "set")), 3),
                psnr=round(psnr(images, recs), 3),
                ssim=round(ssim(images, recs), 4),
                encode_img_s=round_figure(figures.get("encode_img_s")),
                decode_img_s=round_figure(figures.get("decode_img_s")),
                note=note,
            )
        )
        grids[name] = recs[:GRID_IMAGES]

    for decoder in (decoders or model.decoders) if reconstructions else ():
        recs, figures = lbae_reconstruct(model, images, decoder=decoder, rdo_strength=rdo_strength, search=search)
        name = decoder_row_name(model, decoder)
        name += f", rdo {rdo_strength}" if rdo_strength else ""
        name += f", search {search.rounds} λ {search.lam} for {search.decoder}" if search else ""
        measured(
            name,
            recs,
            model.arch.bits,
            figures,
            note=f"coding: {', '.join(figures['codings'])}; file = header + payload + CRC",
        )
        if paper_protocol:
            rows.append(_paper_protocol_row(name, images, recs, extractor, cache))
    for b in baselines:
        bits = b.net.code_bits
        measured(
            row_name(b),
            baseline_reconstruct(b, images),
            bits,
            {"file_bytes": bits / 8},
            note=f"trained here ({b.card.get('epochs', '?')} epochs, {b.card.get('cpu_hours', '?')} "
            "CPU-h); bytes = latent bits / 8, no container",
        )
    for fmt, qualities in (CLASSIC if classic is None else classic).items():
        for q in qualities:
            recs, figures = classic_reconstruct(fmt, q, images)
            measured(
                f"{fmt} q={q}",
                recs,
                None,
                figures,
                note=f"Pillow, {figures['roundtrip_img_s']:.0f} img/s encode+decode",
            )
    _sample_rows(model, samples, sample_refine, len(images), ref, extractor, cache, rows, grids)
    for name, bits, fid in REPORTED.get(dataset, []):
        rows.append(
            Row(
                name,
                "reported, not measured",
                bits,
                None,
                round(image_bits / bits, 2),
                None,
                fid,
                note="Fajtl et al. 2020, supplementary Table 1",
            )
        )
    meta = {
        "dataset": dataset,
        "data": data_note,
        "images": len(images),
        "fid_features": " via ".join(
            filter(None, (getattr(extractor, "name", type(extractor).__name__), getattr(extractor, "backend", None)))
        ),
        "machine": f"{platform.machine()}, torch {torch.__version__}, device {model.device}, decoder in "
        f"{decoder_arithmetic(model)}",
        "image_bits": image_bits,
    }
    write_outputs(out, rows, meta, grids)
    return rows


def jpeg_roundtrip(images: np.ndarray, quality: int = 75) -> np.ndarray:
    """Each image saved as JPEG (Pillow's default quality) and read back, as the paper's FID code did."""
    return classic_reconstruct("JPEG", quality, images)[0]


def paper_protocol_name(row_name: str) -> str:
    return f"{row_name}, paper-like protocol"


def _paper_protocol_row(name: str, images: np.ndarray, recs: np.ndarray, extractor, cache: Path | None) -> Row:
    ref = fidlib.cached_statistics(jpeg_roundtrip(images), extractor, cache, "set")
    fid = fidlib.frechet_distance(*ref, *fidlib.cached_statistics(jpeg_roundtrip(recs), extractor, cache, "set"))
    note = "both sides saved as JPEG q75 before Inception (the paper's code); same bits as above"
    return Row(paper_protocol_name(name), "measured", fid=round(fid, 3), note=note)


def _sample_rows(
    model: Model,
    methods: Sequence[str],
    refine: Sequence[int],
    n: int,
    ref,
    extractor,
    cache: Path | None,
    rows: list[Row],
    grids: dict,
) -> None:
    """Generation FID: n decoded samples of each method, refined each number of rounds (the codes
    drawn once per method, each number of rounds continuing from the one before), against the
    same test statistics."""
    from . import generate

    decoder = "" if model.decoders[-1] == FIDELITY else f", {model.decoders[-1]} decoder"
    note = f"generation FID, {n} samples vs the test images"
    for method in methods:
        try:
            drawn = generate.drawn_codes(model, n, method, seed=0)
        except ModelError:
            continue  # a model without code statistics (or a context prior) cannot sample this way
        for rounds, codes in generate.refined_by_rounds(model, drawn, refine):
            images = generate.decode(model, codes)
            fid = fidlib.frechet_distance(*ref, *fidlib.cached_statistics(images, extractor, cache, "set"))
            how = method + (f", refined {rounds}" if rounds else "")
            rows.append(Row(f"LBAE samples ({how}{decoder})", "measured", fid=round(fid, 3), note=note))
            grids[f"samples ({how})"] = images[:GRID_IMAGES]


def load_images(dataset: str, data_dir: str | None, limit: int | None) -> tuple[np.ndarray, str]:
    """Test images; with ``limit``, that many evenly spaced ones (local copies may be sorted
    by class, so the first N would not be a fair sample)."""
    images, _ = data.load(dataset, "test", data_dir)
    source = data.describe_source(dataset, data_dir)
    if limit and limit < len(images):
        picked = data.spread_subset(images, limit)
        return picked, f"{dataset} test split ({source}), {limit} evenly spaced of {len(images)}"
    return images, f"{dataset} test split ({source}), all {len(images)}"


def load_baselines(spec: str, dataset: str, device: str) -> list[Model]:
    """``auto``: the installed vae-DATASET and vqvae-DATASET; ``none``; or names/paths, comma-separated."""
    if spec.strip().lower() == "none":
        return []
    if spec.strip().lower() == "auto":
        names = [f"{k}-{dataset}" for k in BASELINES if f"{k}-{dataset}" in available()]
    else:
        names = [n.strip() for n in spec.split(",") if n.strip()]
    return [load_model(n, device, kinds=BASELINES) for n in names]


def record_rows_in_cards(
    m: Model,
    baselines: Sequence[Model],
    rows: list[Row],
    decoders: Sequence[str],
    note: str,
    count: int,
    card_dir: Path | None = None,
) -> list[Path]:
    """``bench --update-card``: each measured decoder's row into ``m``'s card (``test_fid``,
    ``test_fid_realism``, with the paper-like protocol's FID where it was measured), in one write,
    and each baseline's row into its own card."""
    by_name = {r.method: r for r in rows}
    entries = {}
    for decoder in decoders:
        name = decoder_row_name(m, decoder)
        key = "test_fid" if decoder == FIDELITY else f"test_fid_{decoder}"
        entries[key] = card_entry(m, by_name[name], note, count, by_name.get(paper_protocol_name(name)))
    written = [update_card(m, entries, card_dir)]
    return written + [record_in_card(b, by_name[row_name(b)], note, count, card_dir) for b in baselines]


def record_in_card(m: Model, row: Row, note: str, count: int, card_dir: Path | None = None) -> Path:
    """Write a bench row's figures into ``m``'s card as its ``test_fid``."""
    return update_card(m, {"test_fid": card_entry(m, row, note, count)}, card_dir)


def card_entry(m: Model, row: Row, note: str, count: int, paper_protocol: Row | None = None) -> dict:
    """A bench row's FID, PSNR and SSIM (and its paper-like protocol FID), with the data and
    this command, as a card entry."""
    paper = {"fid_paper_protocol": paper_protocol.fid} if paper_protocol else {}
    return {
        "fid": row.fid,
        **paper,
        "psnr_db": row.psnr,
        "ssim": row.ssim,
        "images": count,
        "data": note,
        "decoder_arithmetic": decoder_arithmetic(m),
        "command": command_line(),
    }


def decoder_arithmetic(m: Model) -> str:
    """What the codec's decoder computed in on this machine: "bf16" or "fp32" (precision.py)."""
    return "bf16" if decodes_in_bf16(m.precision, m.device) else "fp32"
