"""Photographs as training data: whole photos held out, tiles cut at several downscales."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lbaecodec import cli
from lbaecodec.errors import DataError
from lbaecodec.lab import data, photos
from lbaecodec.lab import train as training


@pytest.fixture
def photo_dir(tmp_path):
    """Seven 'photos', each a distinct flat colour (so a tile tells which photo it came from)."""
    for k in range(7):
        colour = (30 * k, 255 - 30 * k, 100)
        Image.new("RGB", (300 + 40 * k, 200), colour).save(tmp_path / f"p{k}.png")
    (tmp_path / "notes.txt").write_text("not a photo")
    return tmp_path


def colours(tiles):
    return {tuple(t[0, 0]) for t in tiles}


def test_whole_photos_are_held_out(photo_dir):
    split = {s: photos.split_photos(photos.folder_photos(photo_dir), s) for s in photos.SPLITS}
    assert sum(len(v) for v in split.values()) == 7 and all(split.values())
    assert not set(split["train"]) & (set(split["val"]) | set(split["test"]))
    tiles = {s: data.load("photo", s, photo_dir)[0] for s in photos.SPLITS}
    assert tiles["train"].shape == (photos.TRAIN_TILES, 32, 32, 3) and tiles["test"].shape[0] == photos.HELD_OUT_TILES
    assert not colours(tiles["train"]) & (colours(tiles["val"]) | colours(tiles["test"]))  # no tile of a held-out photo
    assert len(colours(tiles["train"])) == len(split["train"])  # every training photo is used
    assert np.array_equal(tiles["test"], data.load("photo", "test", photo_dir)[0])  # seeded


def test_downscales_never_enlarge(photo_dir):
    sizes = [a.shape[:2] for a in photos.downscales(photo_dir / "p0.png", (64, 256, 4096))]
    assert sizes == [(43, 64), (171, 256), (200, 300)]


def test_too_few_photos_is_a_clean_error(tmp_path):
    Image.new("RGB", (64, 64)).save(tmp_path / "one.png")
    with pytest.raises(DataError, match="at least 3"):
        data.load("photo", "train", tmp_path)
    with pytest.raises(DataError, match="unknown split"):
        photos.split_photos([tmp_path / "one.png"] * 3, "holdout")


def test_photo_training_validates_on_held_out_photos(photo_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(photos, "TRAIN_TILES", 64)
    monkeypatch.setattr(photos, "HELD_OUT_TILES", 16)
    seen = {}
    original = training.train
    monkeypatch.setattr(
        training, "train", lambda arch, fit, val, *a, **k: seen.update(val=val) or original(arch, fit, val, *a, **k)
    )
    out = tmp_path / "run"
    args = ["train", "--preset", "photo", "--data-dir", photo_dir, "--out", out, "--width", "4", "--epochs", "1"]
    r = CliRunner().invoke(cli.main, [str(a) for a in [*args, "--batch", "16", "--no-export"]])
    assert r.exit_code == 0, r.output
    assert (out / "best.json").is_file()
    assert colours(seen["val"]) == colours(data.load("photo", "val", photo_dir)[0])
