"""bench/calibrate.py: matching the JPEG copy to the exact images, and the train-vs-test part."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from lbaecodec.lab.metrics import fid as fidlib

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "calibrate.py"


def load_calibrate():
    spec = importlib.util.spec_from_file_location("calibrate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_match_copies_finds_each_exact_image_in_a_shuffled_noisy_copy():
    calibrate = load_calibrate()
    rng = np.random.default_rng(0)
    exact = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, 40)
    order = rng.permutation(40)
    noise = rng.integers(-3, 4, exact.shape)
    copy = np.clip(exact[order].astype(int) + noise, 0, 255).astype(np.uint8)
    pick = calibrate.match_copies(exact, labels, copy, labels[order])
    assert np.array_equal(order[pick], np.arange(40))


class CountingFeatures:
    """Stub extractor: the mean pixel and the first seven pixel values; remembers what it saw."""

    name = fidlib.InceptionFeatures.name

    def __init__(self, *args, **kwargs):
        self.calls = []

    def __call__(self, images):
        self.calls.append(len(images))
        flat = images.reshape(len(images), -1).astype(np.float64)
        return np.concatenate([flat.mean(1, keepdims=True), flat[:, :7]], axis=1)


def test_train_vs_test_part_keeps_the_exact_part_and_reuses_cached_test_statistics(tmp_path, monkeypatch):
    calibrate = load_calibrate()
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (60, 4, 4, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (30, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "cifar10-jpeg75.npz", x_train=train, x_test=test)
    out, cache = tmp_path / "results", tmp_path / "cache"
    out.mkdir()
    earlier = {
        "model": "cifar10@00000000",
        "images": 1000,
        "fid_exact_vs_itself": 0.0,
        "match": {"unique_matches": 1000, "psnr_exact_vs_jpeg_copy_db": 30.5},
        "fid_jpeg_copy_vs_exact": 50.0,
        "lbae_fid_vs_exact": 118.6,
        "lbae_psnr_vs_exact_db": 22.8,
        "lbae_fid_on_jpeg_copy": 95.4,
        "lbae_psnr_on_jpeg_copy_db": 23.1,
    }
    (out / "cifar10-calibration.json").write_text(json.dumps(earlier))
    fidlib.cached_statistics(test, CountingFeatures(), cache)  # what a 10,000-image bench leaves behind

    stub = CountingFeatures()
    monkeypatch.setattr(calibrate.fidlib, "InceptionFeatures", lambda *a, **k: stub)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "calibrate.py",
            "--data-dir",
            str(tmp_path),
            "--out",
            str(out),
            "--cache",
            str(cache),
            "--part",
            "train-vs-test",
        ],
    )
    calibrate.main()

    result = json.loads((out / "cifar10-calibration.json").read_text())
    assert {k: result[k] for k in earlier} == earlier
    part = result["fid_jpeg_copy_train_vs_test"]
    assert (part["train_images"], part["test_images"]) == (60, 30) and part["fid"] > 0
    assert stub.calls == [60]  # only the train images: the test statistics came from the cache
    table = (out / "cifar10-calibration.md").read_text()
    assert "| JPEG-75 copies vs the exact originals | 50.0 |" in table and "60 train, 30 test" in table


def test_celeba_part_measures_disjoint_sets_of_real_faces_in_its_own_files(tmp_path, monkeypatch):
    calibrate = load_calibrate()
    rng = np.random.default_rng(2)
    train, test = (rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8) for n in (3500, 40))
    faces = {"train": train, "test": test}
    monkeypatch.setattr(calibrate.data, "load", lambda dataset, split, root: (faces[split], None))
    stub = CountingFeatures()
    monkeypatch.setattr(calibrate.fidlib, "InceptionFeatures", lambda *a, **k: stub)
    out = tmp_path / "results"
    argv = ["calibrate.py", "--out", str(out), "--cache", str(tmp_path / "cache"), "--part", "celeba-real1000"]
    monkeypatch.setattr(sys, "argv", argv)
    calibrate.main()

    part = json.loads((out / "celeba-calibration.json").read_text())["celeba_real_vs_test"]
    assert stub.calls == [40, 1000, 1000, 1000] and len(set(part["fids"])) == 3 and min(part["fids"]) > 0
    assert (part["faces_per_set"], part["test_faces"]) == (1000, 40) and not (out / "cifar10-calibration.json").exists()
    assert "faces 2,000–2,999" in (out / "celeba-calibration.md").read_text()
