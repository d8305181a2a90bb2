"""Rate–distortion on held-out photos: LBAE models against Pillow's WebP, AVIF and JPEG.

    python bench/rd_photos.py                      # the test photos of lbaecodec.lab.photos
    python bench/rd_photos.py --data-dir PHOTOS --long-side 512 --models cifar10 photo
    python bench/rd_photos.py --split val --out runs/rd-val --models A B   # choose between models

Each test photo (whole photos held out of the `photo` model's training) is downscaled to
--long-side pixels and coded by every codec at every quality: bits per pixel of the whole file,
PSNR (RGB), MS-SSIM, and blockiness at the LBAE tile grid (1.0: no visible grid). Curves are
averaged over the photos at each quality (LBAE: `--quality` 1–5, and for a model with residual
stages one curve per `--stages` count, plus the upper envelope of all its operating points). Writes
bench/results/photos-rd/{results.json, results.md, rd.png}: per codec and quality the mean
figures; for each LBAE model, WebP's PSNR at the bits per pixel of its native quality
(interpolated on WebP's curve) and the BD-rate against WebP over its qualities.
"""

import argparse
import io
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

import lbaecodec
from lbaecodec import codec
from lbaecodec import quality as knob
from lbaecodec.lab import photos
from lbaecodec.lab.metrics import quality
from lbaecodec.lab.report import save_results
from lbaecodec.zoo import Model, load_model

QUALITIES = {
    "WEBP": (0, 5, 10, 20, 35, 50, 70, 90),
    "AVIF": (0, 10, 25, 40, 55, 70, 85),
    "JPEG": (2, 5, 10, 20, 35, 50, 70, 90),
}


def held_out_photos(data_dir: str | None, long_side: int, split: str = "test") -> list[tuple[str, np.ndarray]]:
    found = photos.folder_photos(Path(data_dir)) if data_dir else photos.default_photos()
    chosen = photos.split_photos(found, split)
    return [(photos.describe(p), photos.downscales(p, (long_side,))[0]) for p in chosen]


def measure(original: np.ndarray, data: bytes, decoded: np.ndarray, tile: int) -> dict:
    h, w = original.shape[:2]
    return {
        "bpp": 8 * len(data) / (w * h),
        "psnr": quality.psnr(original[None], decoded[None]),
        "ms_ssim": quality.ms_ssim(original[None], decoded[None]),
        "blockiness": quality.blockiness(decoded, tile),
    }


def pillow_point(original: np.ndarray, fmt: str, q: int, tile: int) -> dict:
    buf = io.BytesIO()
    Image.fromarray(original).save(buf, fmt, quality=q)
    decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return measure(original, buf.getvalue(), decoded, tile)


def lbae_point(original: np.ndarray, model, level: int, stage_count: int = 1) -> dict:
    data = lbaecodec.encode(Image.fromarray(original), model=model, quality_level=level, stage_count=stage_count)
    decoded = np.asarray(codec.decode(data, model=model).convert("RGB"))
    point = measure(original, data, decoded, model.arch.size)
    if level != knob.NATIVE:  # the canvas was resampled: its tile grid is not on whole pixels
        point["blockiness"] = None
    return point


def mean_point(points: list[dict]) -> dict:
    def mean(values):
        return None if None in values else round(float(np.mean(values)), 4)

    return {k: mean([p[k] for p in points]) for k in points[0]}


def envelope(points: list[dict]) -> list[dict]:
    """The operating points no other beats in PSNR at fewer or equal bits per pixel."""
    best, out = -np.inf, []
    for pt in sorted(points, key=lambda p: (p["bpp"], -p["psnr"])):
        if pt["psnr"] > best:
            best = pt["psnr"]
            out.append(pt)
    return out


def lbae_curves(model, images, label: str) -> dict[str, list[dict]]:
    """One curve over the qualities per stage count (one for a model without stages), and for a
    staged model the envelope of all of them."""
    curves = {}
    for stage_count in range(1, model.stage_count + 1):
        name = label if model.stage_count == 1 else f"{label}, {stage_count} stage{'s' * (stage_count > 1)}"
        curves[name] = [
            {
                "quality": q,
                "stages": stage_count,
                **mean_point([lbae_point(img, model, q, stage_count) for _, img in images]),
            }
            for q in knob.SCALES
        ]
    if model.stage_count > 1:
        curves[f"{label}, best of qualities × stages"] = envelope([p for c in curves.values() for p in c])
    return curves


def webp_psnr_at(bpp: float, webp: list[dict]) -> float | None:
    curve = sorted((p["bpp"], p["psnr"]) for p in webp)
    rates, psnrs = zip(*curve, strict=True)
    if not rates[0] <= bpp <= rates[-1]:
        return None
    return round(float(np.interp(np.log(bpp), np.log(rates), psnrs)), 3)


def plot(path: Path, curves: dict[str, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, points in curves.items():
        pts = sorted(points, key=lambda p: p["bpp"])
        style = "o-" if len(pts) > 1 else "*"
        for ax, key in zip(axes, ("psnr", "ms_ssim"), strict=True):
            ax.plot(
                [p["bpp"] for p in pts], [p[key] for p in pts], style, label=name, markersize=9 if len(pts) == 1 else 4
            )
    for ax, label in zip(axes, ("PSNR (dB)", "MS-SSIM"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def has_filters(m: Model) -> bool:
    return any(m.stage(k).postfilter is not None for k in range(1, m.stage_count + 1))


def without_filters(m: Model) -> Model:
    """``m`` without its seam filters (one per number of stages decoded)."""
    later = tuple(replace(stage, postfilter=None) for stage in m.later_stages)
    return replace(m, postfilter=None, later_stages=later)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="a folder of photos [default: the Debian photos]")
    p.add_argument("--long-side", type=int, default=512)
    p.add_argument("--split", default="test", choices=["val", "test"], help="val: for choosing among models")
    p.add_argument("--models", nargs="+", default=["cifar10", "cifar10-w64"])
    p.add_argument("--out", default="bench/results/photos-rd")
    p.add_argument("--without-filter", action="store_true", help="also each model with its seam filter left out")
    a = p.parse_args()
    images = held_out_photos(a.data_dir, a.long_side, a.split)
    models = [(f"LBAE {m.id}", m) for m in (load_model(name, "cpu") for name in a.models)]
    if a.without_filter:
        models += [(f"{label}, no filter", without_filters(m)) for label, m in models if has_filters(m)]
    tile = models[0][1].arch.size
    curves: dict[str, list[dict]] = {}
    for fmt, qualities in QUALITIES.items():
        curves[f"{fmt} (Pillow)"] = [
            {"quality": q, **mean_point([pillow_point(img, fmt, q, tile) for _, img in images])} for q in qualities
        ]
    webp = curves["WEBP (Pillow)"]
    summary = []
    for label, m in models:
        for name, curve in lbae_curves(m, images, label).items():
            curves[name] = curve
            point = next((p for p in curve if p["quality"] == knob.NATIVE), curve[0])
            at = webp_psnr_at(point["bpp"], webp)
            bd = quality.bd_rate([(w["bpp"], w["psnr"]) for w in webp], [(p["bpp"], p["psnr"]) for p in curve])
            summary.append(
                {"model": name.removeprefix("LBAE "), **point, "webp_psnr_same_bpp": at, "bd_rate_vs_webp_pct": bd}
            )
    meta = {
        "photos": [name for name, _ in images],
        "split": a.split,
        "long_side": a.long_side,
        "sizes": [list(img.shape[:2]) for _, img in images],
        "command": "python " + " ".join(sys.argv),
        "lbaecodec": lbaecodec.__version__,
    }
    lines = ["| codec | quality | bpp | PSNR | MS-SSIM | blockiness |", "|---|---|---|---|---|---|"]
    for name, points in curves.items():
        for pt in points:
            q, blocks = pt.get("quality", ""), pt["blockiness"] if pt["blockiness"] is not None else "—"
            q = f"{q}, {pt['stages']} stages" if pt.get("stages", 1) > 1 else q
            lines.append(f"| {name} | {q} | {pt['bpp']} | {pt['psnr']} | {pt['ms_ssim']} | {blocks} |")
    lines += [
        "",
        "| LBAE curve | point: quality, stages | bpp | PSNR | WebP PSNR at the same bpp | BD-rate vs WebP |",
        "|---|---|---|---|---|---|",
    ]
    for s in summary:
        bd = "n/a (one point)" if s["bd_rate_vs_webp_pct"] is None else f"{s['bd_rate_vs_webp_pct']:.1f} %"
        at = f"{s['quality']}, {s['stages']}"
        lines.append(f"| {s['model']} | {at} | {s['bpp']} | {s['psnr']} | {s['webp_psnr_same_bpp']} | {bd} |")
    out = Path(a.out)
    save_results(out, {"meta": meta, "curves": curves, "lbae": summary}, "\n".join(lines) + "\n")
    plot(out / "rd.png", curves)
    print(json.dumps(meta), *lines, sep="\n")


if __name__ == "__main__":
    main()
