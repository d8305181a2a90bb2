"""Photographs as training data: random tiles cut from whole photos at several downscales.

The default photos are the photographic wallpapers two Debian packages install
(`apt-get install mate-backgrounds plasma-workspace-wallpapers`); any folder of photos works
too (`--data-dir`). Whole photos, not tiles, are held out: a seeded 15 % (at least one) for
validation and another for testing, so no tile of a held-out photo is ever trained on.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from ..batch import IMAGE_SUFFIXES
from ..errors import DataError

MATE = Path("/usr/share/backgrounds/mate/nature")
PLASMA = Path("/usr/share/wallpapers")
# The photographs among the two packages' wallpapers (the others are drawn or rendered).
PLASMA_PHOTOS = (
    "BytheWater",
    "ColdRipple",
    "ColorfulCups",
    "DarkestHour",
    "EveningGlow",
    "FallenLeaf",
    "Grey",
    "Kite",
    "OneStandsOut",
    "Path",
    "summer_1am",
)
LONG_SIDES = (256, 512, 1024, 2048)  # each photo is cut at these sizes of its long side
TRAIN_TILES, HELD_OUT_TILES = 60_000, 2_000
SPLITS = ("train", "val", "test")
HELD_OUT_FRACTION = 0.15  # of the photos, for validation and again for testing


def default_photos() -> list[Path]:
    """The Debian photos: every MATE nature photo, the photographic Plasma wallpapers (largest file)."""
    found = sorted(MATE.glob("*.jpg")) if MATE.is_dir() else []
    for name in PLASMA_PHOTOS:
        images = sorted((PLASMA / name / "contents" / "images").glob("*.*"), key=lambda p: p.stat().st_size)
        found += images[-1:]
    if not found:
        raise DataError(
            "no photos: apt-get install mate-backgrounds plasma-workspace-wallpapers, or give --data-dir FOLDER"
        )
    return found


def folder_photos(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(found) < 3:
        raise DataError(f"{folder}: {len(found)} photos; a train/validation/test split needs at least 3")
    return found


def split_photos(photos: list[Path], split: str) -> list[Path]:
    """A seeded split of whole photos: HELD_OUT_FRACTION (at least one) each for validation and test."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    order = np.random.default_rng(0).permutation(len(photos))
    held = max(1, round(len(photos) * HELD_OUT_FRACTION))
    parts = {"val": order[:held], "test": order[held : 2 * held], "train": order[2 * held :]}
    return [photos[i] for i in sorted(parts[split])]


def downscales(photo: Path, long_sides: Iterable[int] = LONG_SIDES) -> list[np.ndarray]:
    """The photo as RGB arrays whose long side is each of ``long_sides`` (never enlarged)."""
    try:
        with Image.open(photo) as img:
            img = img.convert("RGB")
            img.load()
    except OSError as e:
        raise DataError(f"{photo}: cannot read image: {e}") from e
    out = []
    for side in long_sides:
        scale = min(1.0, side / max(img.size))
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        out.append(np.asarray(img.resize(size, Image.LANCZOS) if scale < 1 else img))
    return out


def random_tiles(photos: list[Path], count: int, size: int, seed: int) -> np.ndarray:
    """``count`` size×size RGB tiles, each from a random photo, downscale and position."""
    rng = np.random.default_rng(seed)
    scaled = [a for p in photos for a in downscales(p) if min(a.shape[:2]) >= size]
    if not scaled:
        raise DataError(f"no photo is at least {size} pixels on its short side")
    tiles = np.empty((count, size, size, 3), np.uint8)
    for k, which in enumerate(rng.integers(len(scaled), size=count)):
        a = scaled[which]
        y, x = rng.integers(a.shape[0] - size + 1), rng.integers(a.shape[1] - size + 1)
        tiles[k] = a[y : y + size, x : x + size]
    return tiles


def load_tiles(split: str, size: int, data_dir: str | Path | None = None) -> np.ndarray:
    """Tiles of a split's photos: TRAIN_TILES for training, HELD_OUT_TILES for validation/test."""
    photos = folder_photos(Path(data_dir)) if data_dir is not None else default_photos()
    chosen = split_photos(photos, split)
    count = TRAIN_TILES if split == "train" else HELD_OUT_TILES
    return random_tiles(chosen, count, size, seed=SPLITS.index(split))


def describe(photo: Path) -> str:
    """A photo's short name, with its split: "mate/Dune.jpg (test)"."""
    package = "mate" if photo.is_relative_to(MATE) else photo.parts[-4] if photo.is_relative_to(PLASMA) else ""
    name = f"{package}/{photo.name}" if package else photo.name
    photos = default_photos() if package else [photo]
    split = next((s for s in SPLITS if photo in split_photos(photos, s)), "train") if package else "?"
    return f"{name} ({split})"
