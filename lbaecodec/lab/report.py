"""The bench's outputs: its rows, as a markdown table, results.json, a grid of reconstructions and
a rate–FID plot."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import require
from ..files import write_atomic
from ..images import to_pil


@dataclass
class Row:
    method: str
    source: str  # "measured" or "reported, not measured"
    code_bits: float | None = None  # latent/code bits per image (raw, as the paper counts)
    file_bytes: float | None = None  # actual bytes per image on disk (container/format included)
    ratio_code: float | None = None  # image bits / code bits
    ratio_file: float | None = None  # image bits / file bits
    fid: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    encode_img_s: float | None = None
    decode_img_s: float | None = None
    note: str = ""


def round_figure(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def markdown(rows: list[Row], meta: dict) -> str:
    head = (
        "| method | source | code bits/img | file bytes/img | ratio (code) | ratio (file) "
        "| FID | PSNR dB | SSIM | enc img/s | dec img/s | note |"
    )
    lines = [
        f"Dataset: {meta['dataset']} — {meta['data']}; {meta['images']} test images; "
        f"FID features: {meta['fid_features']}; {meta['machine']}.",
        f"Compression ratio = image bits ({meta['image_bits']}) / code or file bits.",
        "",
        head,
        "|" + "---|" * 12,
    ]

    def cell(v):
        return "" if v is None else str(v)

    for r in rows:
        lines.append(
            "| "
            + " | ".join(
                cell(v)
                for v in (
                    r.method,
                    r.source,
                    r.code_bits,
                    r.file_bytes,
                    r.ratio_code,
                    r.ratio_file,
                    r.fid,
                    r.psnr,
                    r.ssim,
                    r.encode_img_s,
                    r.decode_img_s,
                    r.note,
                )
            )
            + " |"
        )
    if meta["images"] < 10000:
        lines += ["", f"FID on {meta['images']} images is biased upward against the usual 10,000-image FID."]
    return "\n".join(lines) + "\n"


def dict_table(rows: list[dict]) -> list[str]:
    """Markdown table lines of rows that share their keys (the header); None as a blank cell."""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join("" if r[k] is None else str(r[k]) for k in header) + " |" for r in rows]


def save_results(out: Path, record: dict, markdown_text: str) -> None:
    """``out``/results.json (the record) and ``out``/results.md: what every bench script leaves."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "results.json", json.dumps(record, indent=2) + "\n")
    write_atomic(out / "results.md", markdown_text)


def write_outputs(out: Path, rows: list[Row], meta: dict, grids: dict[str, np.ndarray]) -> None:
    save_results(out, {"meta": meta, "rows": [asdict(r) for r in rows]}, markdown(rows, meta))
    save_grid(out / "grid.png", grids)
    plot_rate_fid(out / "rate_fid.png", rows, meta)


def save_grid(path: Path, grids: dict[str, np.ndarray], scale: int = 3) -> None:
    """Originals in the top row, each method's reconstructions below, upscaled (nearest)."""
    strip = [np.concatenate(list(g), axis=1) for g in grids.values()]
    grid = np.concatenate(strip, axis=0)
    img = to_pil(grid)
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)


def plot_rate_fid(path: Path, rows: list[Row], meta: dict) -> None:
    matplotlib = require("matplotlib", "bench", "The bench's rate-FID plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for r in rows:
        bits = r.code_bits if r.file_bytes is None else 8 * r.file_bytes
        if r.fid is None or bits is None:
            continue
        hollow = r.source != "measured"
        ax.scatter(bits, r.fid, facecolors="none" if hollow else None, edgecolors="C0" if hollow else None)
        ax.annotate(r.method, (bits, r.fid), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("bits per image (file bits measured; code bits for reported rows)")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title(f"{meta['dataset']}: rate vs FID, {meta['images']} test images")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
