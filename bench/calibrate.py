"""Calibrate our FID numbers on the local CIFAR-10 and CelebA copies.

Usage: python bench/calibrate.py [--data-dir ../shared/datasets] [--model cifar10]
                                [--part exact1000|train-vs-test|celeba-real1000]

--part exact1000 (default): on the 1,000 pixel-exact test images (cifar10-exact-subset.npz,
official test images 0–999) and the same 1,000 images found in the JPEG-75 copy
(cifar10-jpeg75.npz, class-sorted, so each exact image is matched to its nearest JPEG image of
the same class), it measures:
  - FID of the exact images against a second feature extraction of themselves (must be ~0);
  - FID of the JPEG copies against the exact originals (how far the copy moves the reference);
  - LBAE's reconstruction FID against the exact originals and, next to it, the same measured
    entirely on the JPEG copy (as the 10,000-image bench does).
--part train-vs-test: FID(50,000 train, 10,000 test) of the JPEG copy (the published value for
the exact CIFAR-10 is about 3.15); 60,000 Inception passes (~55 min at ~18 img/s here), fewer when
the FID cache already holds the test set's statistics (any 10,000-image cifar10 bench run).
--part celeba-real1000: FID of three disjoint sets of 1,000 real training faces against the 1,000
test faces the bench uses: what a generator of perfect faces would score on the bench's CelebA
sample rows, and how much FID on 1,000 faces moves from one set of faces to another (~3 min).
Each part updates its own entries and keeps the other parts'.
Writes bench/results/cifar10-calibration.{json,md} (CelebA: celeba-calibration.{json,md}).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lbaecodec.lab import data, formats
from lbaecodec.lab.bench import lbae_reconstruct
from lbaecodec.lab.metrics import fid as fidlib
from lbaecodec.lab.metrics.quality import psnr
from lbaecodec.registry import cache_dir
from lbaecodec.zoo import load_model


def match_copies(exact: np.ndarray, exact_labels: np.ndarray, copy: np.ndarray, copy_labels: np.ndarray) -> np.ndarray:
    """Index into ``copy`` of the nearest (squared pixel distance) same-class image of each exact image."""
    out = np.empty(len(exact), int)
    for c in np.unique(exact_labels):
        mine, theirs = np.flatnonzero(exact_labels == c), np.flatnonzero(copy_labels == c)
        a = exact[mine].reshape(len(mine), -1).astype(np.float32)
        b = copy[theirs].reshape(len(theirs), -1).astype(np.float32)
        d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
        out[mine] = theirs[d.argmin(1)]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--model", default="cifar10")
    p.add_argument("--cache", default=None, help="FID statistics cache [default: ~/.cache/lbaecodec/fid]")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--part", choices=["exact1000", "train-vs-test", "celeba-real1000"], default="exact1000")
    a = p.parse_args()
    root = Path(a.data_dir)
    cache = Path(a.cache) if a.cache else cache_dir() / "fid"
    extract = fidlib.InceptionFeatures()
    dataset = "celeba" if a.part.startswith("celeba") else "cifar10"
    path = Path(a.out) / f"{dataset}-calibration.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    if a.part == "exact1000":
        result.update(exact_subset(root, a.model, extract, cache))
    elif a.part == "train-vs-test":
        result.update(train_vs_test(root, extract, cache))
    else:
        result.update(celeba_real(root, extract, cache))
    text = markdown(result) if dataset == "cifar10" else celeba_markdown(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    path.with_suffix(".md").write_text(text)
    print(text)


def exact_subset(root: Path, model: str, extract, cache: Path) -> dict:
    exact, exact_y = formats.load_npz(root / "cifar10-exact-subset.npz", "test")
    copy, copy_y = formats.load_npz(root / "cifar10-jpeg75.npz", "test")
    pick = match_copies(exact, exact_y, copy, copy_y)
    matched = copy[pick]
    m = load_model(model, "cpu")

    ref_exact = fidlib.cached_statistics(exact, extract, cache)
    ref_copy = fidlib.cached_statistics(matched, extract, cache)
    rec_exact, rec_copy = lbae_reconstruct(m, exact)[0], lbae_reconstruct(m, matched)[0]

    def fd(ref, images):  # + 0.0 prints a rounded -0.0 as 0.0
        return round(fidlib.frechet_distance(*ref, *fidlib.statistics(extract(images))), 3) + 0.0

    return {
        "model": m.id,
        "images": len(exact),
        "match": {
            "unique_matches": int(len(set(pick.tolist()))),
            "psnr_exact_vs_jpeg_copy_db": round(psnr(exact, matched), 3),
        },
        "fid_exact_vs_itself": fd(ref_exact, exact),
        "fid_jpeg_copy_vs_exact": round(fidlib.frechet_distance(*ref_exact, *ref_copy), 3),
        "lbae_fid_vs_exact": fd(ref_exact, rec_exact),
        "lbae_psnr_vs_exact_db": round(psnr(exact, rec_exact), 3),
        "lbae_fid_on_jpeg_copy": fd(ref_copy, rec_copy),
        "lbae_psnr_on_jpeg_copy_db": round(psnr(matched, rec_copy), 3),
    }


def train_vs_test(root: Path, extract, cache: Path) -> dict:
    """FID(all train, all test) of the JPEG copy; the test statistics are the bench's cached reference."""
    train = formats.load_npz(root / "cifar10-jpeg75.npz", "train")[0]
    test = formats.load_npz(root / "cifar10-jpeg75.npz", "test")[0]
    fd = fidlib.frechet_distance(
        *fidlib.cached_statistics(train, extract, cache, "train"), *fidlib.cached_statistics(test, extract, cache)
    )
    return {"fid_jpeg_copy_train_vs_test": {"fid": round(fd, 3), "train_images": len(train), "test_images": len(test)}}


def celeba_real(root: Path, extract, cache: Path, sets: int = 3, n: int = 1000) -> dict:
    """FID of ``sets`` disjoint runs of ``n`` real training faces against the test faces."""
    train = data.load("celeba", "train", root)[0]
    test = data.load("celeba", "test", root)[0]
    ref = fidlib.cached_statistics(test, extract, cache)
    fids = [
        round(fidlib.frechet_distance(*ref, *fidlib.statistics(extract(train[k * n : (k + 1) * n]))), 3)
        for k in range(sets)
    ]
    return {"celeba_real_vs_test": {"fids": fids, "faces_per_set": n, "test_faces": len(test)}}


def celeba_markdown(r: dict) -> str:
    t = r["celeba_real_vs_test"]
    n = t["faces_per_set"]
    sets = ", ".join(f"faces {k * n:,}–{(k + 1) * n - 1:,}" for k in range(len(t["fids"])))
    return (
        f"CelebA FID calibration: {len(t['fids'])} disjoint sets of {n:,} real training faces "
        f"({sets} of the local copy's training split) against the {t['test_faces']:,} test faces the bench uses.\n"
        "Command: `python bench/calibrate.py --data-dir ../shared/datasets --part celeba-real1000`\n\n"
        f"FID: {', '.join(str(f) for f in t['fids'])} (mean {np.mean(t['fids']):.2f}, spread "
        f"{max(t['fids']) - min(t['fids']):.2f}): what perfect samples would score on the bench's CelebA sample rows.\n"
    )


def markdown(r: dict) -> str:
    lines = []
    if "fid_exact_vs_itself" in r:
        rows = [
            ("exact test images vs a second extraction of themselves", r["fid_exact_vs_itself"], ""),
            (
                "JPEG-75 copies vs the exact originals",
                r["fid_jpeg_copy_vs_exact"],
                f"{r['match']['psnr_exact_vs_jpeg_copy_db']} dB apart",
            ),
            (
                "LBAE reconstructions of the exact images vs the exact images",
                r["lbae_fid_vs_exact"],
                f"{r['lbae_psnr_vs_exact_db']} dB",
            ),
            (
                "LBAE reconstructions of the JPEG copies vs the JPEG copies",
                r["lbae_fid_on_jpeg_copy"],
                f"{r['lbae_psnr_on_jpeg_copy_db']} dB",
            ),
        ]
        lines += [
            f"CIFAR-10 FID calibration, model {r['model']}, {r['images']} test images (official "
            f"0–999; each matched to its JPEG-75 copy, {r['match']['unique_matches']} distinct matches).",
            "Command: `python bench/calibrate.py --data-dir ../shared/datasets`",
            "",
            "| comparison | FID | PSNR |",
            "|---|---|---|",
        ]
        lines += [f"| {name} | {value} | {note} |" for name, value, note in rows]
    if "fid_jpeg_copy_train_vs_test" in r:
        t = r["fid_jpeg_copy_train_vs_test"]
        lines += [
            "",
            f"Train against test, the whole JPEG-75 copy ({t['train_images']:,} train, "
            f"{t['test_images']:,} test images): FID **{t['fid']}** (published for the exact "
            "CIFAR-10: ≈3.15).",
            "Command: `python bench/calibrate.py --data-dir ../shared/datasets --part train-vs-test`",
        ]
    return "\n".join(lines).lstrip("\n") + "\n"


if __name__ == "__main__":
    main()
