"""Would choosing residual stage 2 tile by tile pay? A rate–distortion probe on held-out photos.

    python bench/stage_skip.py [--model photo-s2] [--split val]

Each photo (512 px long side) is coded at qualities 1–5 with two stages; per tile, stage 2 is
kept only where it removes more squared error than λ × its bits (its ideal code length under
the stage-2 context prior), for a sweep of λ, and one flag bit per tile is counted for the
choice. The points of all λ and qualities are compared with the plain 1- and 2-stage curves
by BD-rate against WebP. No container supports per-tile stages: this measures whether one should.
Writes bench/results/stage-skip-MODEL-SPLIT/results.{json,md}.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from rd_photos import held_out_photos, pillow_point

from lbaecodec import codec
from lbaecodec import quality as knob
from lbaecodec.container import Coding, Grid
from lbaecodec.lab.metrics import quality
from lbaecodec.lab.report import save_results
from lbaecodec.zoo import load_model

LAMBDAS = (1e3, 3e3, 1e4)  # squared-error units (0–255 pixels) per bit
WEBP_QUALITIES = (0, 5, 10, 20, 35, 50, 70, 90)


def tile_errors(decoded: np.ndarray, original: np.ndarray, grid: Grid) -> np.ndarray:
    t = grid.tile
    sq = np.zeros((grid.rows * t, grid.cols * t, original.shape[2]))
    sq[: grid.height, : grid.width] = (decoded.astype(np.float64) - original) ** 2
    return sq.reshape(grid.rows, t, grid.cols, t, -1).sum((1, 3, 4)).ravel()


def photo_points(model, img: np.ndarray, level: int) -> dict:
    """{choice: (bits per pixel, PSNR, share of tiles with stage 2)} for one photo at one quality:
    stage 1 alone, both stages everywhere, and stage 2 per tile for each λ."""
    height, width = img.shape[:2]
    size = knob.coded_size(width, height, level)
    canvas = np.asarray(knob.resample(Image.fromarray(img), size))
    codes = codec.encode_codes_many(model, [canvas], 2)[0]
    grid = Grid(size[0], size[1], model.arch.size)
    one = codec.decode_codes_many(model, [codes[0]], [grid])[0].cropped().copy()
    two = codec.decode_codes_many(model, [codes[0]], [grid], later=[[codes[1]]])[0].cropped().copy()
    priors = model.prior(Coding.CONTEXT), model.stage(2).prior(Coding.CONTEXT)
    bits = [np.array([p.cost_bits(c[i : i + 1]) for i in range(len(c))]) for p, c in zip(priors, codes, strict=True)]
    gain = tile_errors(one, canvas, grid) - tile_errors(two, canvas, grid)
    t = model.arch.size
    points = {}
    for label, keep, flags in [
        ("1 stage", np.zeros(grid.count, bool), 0),
        ("2 stages", np.ones(grid.count, bool), 0),
    ] + [(f"per tile, λ={lam:g}", gain > lam * bits[1], grid.count) for lam in LAMBDAS]:
        mask = np.repeat(np.repeat(keep.reshape(grid.rows, grid.cols), t, 0), t, 1)[: size[1], : size[0], None]
        shown = np.asarray(knob.resample(Image.fromarray(np.where(mask, two, one)), (width, height)))
        total = bits[0].sum() + bits[1][keep].sum() + flags
        points[label] = (total / (width * height), quality.psnr(img[None], shown[None]), float(keep.mean()))
    return points


def upper_envelope(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for p in sorted(points):
        if not out or p[1] > out[-1][1]:
            out.append(p)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="photo-s2")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    args = ap.parse_args()
    model = load_model(args.model, "cpu")
    photos = held_out_photos(None, 512, args.split)
    curves: dict[str, list] = {}
    for level in range(1, 6):
        per_photo = [photo_points(model, img, level) for _, img in photos]
        for label in per_photo[0]:
            mean = np.mean([p[label] for p in per_photo], axis=0)
            curves.setdefault(label, []).append([level, *(round(float(v), 4) for v in mean)])
    webp = [
        np.mean([[(p := pillow_point(img, "WEBP", q, 32))["bpp"], p["psnr"]] for _, img in photos], 0)
        for q in WEBP_QUALITIES
    ]
    webp = [tuple(map(float, w)) for w in webp]
    bd = {label: quality.bd_rate(webp, [(b, p) for _, b, p, _ in pts]) for label, pts in curves.items()}
    everything = [(b, p) for pts in curves.values() for _, b, p, _ in pts]
    bd["envelope of all points"] = quality.bd_rate(webp, upper_envelope(everything))
    lines = [
        f"Per-tile choice of stage 2, {model.id}, {len(photos)} {args.split} photos at 512 px "
        f"(`python bench/stage_skip.py --model {args.model} --split {args.split}`); ideal bits.",
        "",
        "| choice | quality | bpp | PSNR | tiles with stage 2 |",
        "|---|---|---|---|---|",
        *(f"| {label} | {q} | {b} | {p} | {k} |" for label, pts in curves.items() for q, b, p, k in pts),
        "",
        "| curve | BD-rate against WebP |",
        "|---|---|",
        *(f"| {label} | {'—' if v is None else f'{v:+.1f} %'} |" for label, v in bd.items()),
    ]
    record = {"model": model.id, "photos": [n for n, _ in photos], "curves": curves, "webp": webp, "bd_rate": bd}
    save_results(Path("bench/results") / f"stage-skip-{args.model}-{args.split}", record, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
