"""Datasets as uint8 arrays (N, H, W, C) at the model's tile size.

For real users each named dataset is downloaded from its official address and checked against
the published checksum; offline, ``data_dir`` points at a local copy (the official files, or an
``.npz`` with ``x_train``/``x_test`` arrays). Nothing here unpickles untrusted data: the CIFAR-10
python archive is read with an unpickler that only builds numpy arrays, lists, dicts and bytes.
"""

from __future__ import annotations

import hashlib
import io
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..architecture import DATASETS, PRESETS  # noqa: F401  (DATASETS re-exported: the loaders below serve these)
from ..errors import DataError
from ..files import atomic_path
from ..registry import cache_dir
from ..tiling import square_thumbnail
from .formats import load_cifar_archive, load_npz, read_idx

SPLITS = ("train", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Remote:
    url: str
    md5: str


MNIST_FILES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}


def _idx_remotes(base_url: str, md5s: tuple[str, ...]) -> dict[str, Remote]:
    return {f: Remote(base_url + f, md5) for f, md5 in zip(MNIST_FILES.values(), md5s, strict=True)}


REMOTES: dict[str, dict[str, Remote]] = {
    "mnist": _idx_remotes(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
    ),
    "fashion-mnist": _idx_remotes(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
    ),
    "cifar10": {
        "cifar-10-python.tar.gz": Remote(
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
        )
    },
    # CelebA is served from Google Drive behind a confirmation page, which urllib cannot pass:
    # users download img_align_celeba.zip themselves, into the cache (where this MD5 is
    # checked) or anywhere with --data-dir (taken as is, like every local copy).
    "celeba": {
        "img_align_celeba.zip": Remote(
            "https://drive.google.com/uc?id=0B7EVK8r0v71pZjFTYXZWM3FlRnM",
            "00d2c5bc6d35e252742224ab0c1e8fcb",
        )
    },
}
SYSTEM_COPIES = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}
LABEL_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": [
        "t-shirt",
        "trouser",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "ankle-boot",
    ],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
CELEBA_CROP = 140 / 178  # the usual 140-px centre crop of the 178×218 aligned faces
CELEBA_SIZE = 64
CELEBA_LOCAL_TEST = 1000  # held-out tail of a local subset (the official test split needs all 202,599)
CELEBA_OFFICIAL_TRAIN_END = 162770  # images 000001–162770 are the official train partition


def spread_subset(images: np.ndarray, count: int) -> np.ndarray:
    """``count`` of ``images`` evenly spaced through them (all if fewer): local copies may be
    sorted by class (CIFAR-10's is), so the first ``count`` would not be a fair sample."""
    if count >= len(images):
        return images
    return images[np.linspace(0, len(images) - 1, count).round().astype(int)]


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(dataset: str, filename: str, cache: Path | None = None) -> Path:
    """Download one official file into the cache (if absent) and verify its MD5."""
    remote = REMOTES[dataset][filename]
    target = (cache or cache_dir()) / dataset / filename
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            print(f"downloading {remote.url}", flush=True)
            with atomic_path(target) as tmp:
                urllib.request.urlretrieve(remote.url, tmp)
        except OSError as e:
            raise DataError(f"cannot download {remote.url}: {e}; pass --data-dir with a local copy") from e
    if md5_of(target) != remote.md5:
        raise DataError(f"{target} fails its checksum (expected md5 {remote.md5}); delete it and retry")
    return target


def _locate(dataset: str, filename: str, data_dir: Path | None) -> Path:
    for folder in (data_dir, SYSTEM_COPIES.get(dataset)):
        if folder is None:
            continue
        for candidate in (folder / filename, folder / dataset / filename):
            if candidate.exists():
                return candidate
            if candidate.suffix == ".gz" and candidate.with_suffix("").exists():
                return candidate.with_suffix("")
    if data_dir is not None:
        raise DataError(f"{filename} not found in {data_dir}")
    return fetch(dataset, filename)


def describe_source(dataset: str, data_dir: str | Path | None) -> str:
    """Where ``load`` takes a dataset from, in words for model cards and bench tables."""
    if data_dir is not None:
        return Path(data_dir).name
    if dataset == "photo":
        from . import photos

        names = ", ".join(photos.describe(p) for p in photos.default_photos())
        return f"Debian mate-backgrounds and plasma-workspace-wallpapers photos: {names}"
    system = SYSTEM_COPIES.get(dataset)
    if system is not None and system.is_dir():
        return f"system copy in {system}"
    return "official files"


# --- IDX (MNIST, Fashion-MNIST) -------------------------------------------------------------


def _load_idx_pair(dataset: str, split: str, data_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(_locate(dataset, MNIST_FILES[(split, "images")], data_dir))
    labels = read_idx(_locate(dataset, MNIST_FILES[(split, "labels")], data_dir))
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise DataError(f"{dataset} {split}: images {images.shape} and labels {labels.shape} disagree")
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # 28×28 digits centred on 32×32 tiles
    return padded[..., None], labels.astype(np.int64)


# --- CelebA ---------------------------------------------------------------------------------


def crop_face(img: Image.Image, size: int = CELEBA_SIZE) -> Image.Image:
    """The proportional centre crop of an aligned CelebA face, resized to size×size."""
    w, h = img.size
    side = round(w * CELEBA_CROP)
    left, top = (w - side) // 2, (h - side) // 2
    return (
        img.convert("RGB")
        .crop((left, top, left + side, top + side))
        .resize((size, size), Image.BICUBIC, reducing_gap=None)
    )


def _celeba_names(names: list[str], split: str) -> list[str]:
    names = sorted(n for n in names if n.lower().endswith(".jpg"))
    if len(names) >= 202599:
        return names[:CELEBA_OFFICIAL_TRAIN_END] if split == "train" else names[182637:]
    if len(names) <= CELEBA_LOCAL_TEST:
        raise DataError(f"CelebA copy has only {len(names)} images")
    return names[:-CELEBA_LOCAL_TEST] if split == "train" else names[-CELEBA_LOCAL_TEST:]


def _celeba_listing(path: Path) -> list[str]:
    """File names of the faces in a CelebA folder or zip."""
    try:
        if path.is_dir():
            return [p.name for p in path.iterdir()]
        with zipfile.ZipFile(path) as z:
            return [Path(n).name for n in z.namelist()]
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read CelebA images: {e}") from e


def _load_celeba(path: Path, split: str) -> np.ndarray:
    try:
        names = _celeba_names(_celeba_listing(path), split)
        if path.is_dir():
            faces = [crop_face(Image.open(path / n)) for n in names]
        else:
            with zipfile.ZipFile(path) as z:
                by_name = {Path(n).name: n for n in z.namelist()}
                faces = [crop_face(Image.open(io.BytesIO(z.read(by_name[n])))) for n in names]
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read CelebA images: {e}") from e
    return np.stack([np.asarray(f) for f in faces])


def _celeba_source(data_dir: Path | None) -> Path:
    """The image folder or zip: DIR/img_align_celeba/, DIR/*celeba*.zip, or the official download."""
    folder = data_dir / "img_align_celeba" if data_dir else None
    if folder is not None and folder.is_dir():
        return folder
    zips = sorted(data_dir.glob("*celeba*.zip")) if data_dir else []
    return zips[0] if zips else _locate("celeba", "img_align_celeba.zip", data_dir)


def read_celeba_attributes(text: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """Parse list_attr_celeba.txt: count line, names line, then 'file v1 v2 …' of ±1."""
    lines = [line.split() for line in text.strip().splitlines()]
    if len(lines) < 2:
        raise DataError("attribute file too short")
    names = lines[1]
    rows = {}
    for parts in lines[2:]:
        if len(parts) != len(names) + 1:
            raise DataError(f"attribute row for {parts[:1]} has {len(parts) - 1} values, expected {len(names)}")
        try:
            rows[parts[0]] = np.array([int(v) for v in parts[1:]], np.int8)
        except ValueError:
            raise DataError(f"attribute row for {parts[0]} holds a value that is not an integer") from None
    return names, rows


def celeba_attributes(
    attr_file: str | Path, split: str, data_dir: str | Path | None = None
) -> tuple[list[str], np.ndarray]:
    """Attribute names and a (N, attributes) ±1 matrix in the order ``load("celeba", split)`` returns."""
    attr_file = Path(attr_file)
    try:
        names, rows = read_celeba_attributes(attr_file.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{attr_file}: cannot read attributes: {e}") from e
    source = _celeba_source(Path(data_dir) if data_dir is not None else None)
    files = _celeba_names(_celeba_listing(source), split)
    missing = [f for f in files if f not in rows]
    if missing:
        raise DataError(f"{attr_file}: no attributes for {len(missing)} of {len(files)} images (first: {missing[0]})")
    return names, np.stack([rows[f] for f in files])


# --- Folders of images ----------------------------------------------------------------------


def load_folder(folder: Path, size: int, channels: int) -> np.ndarray:
    """Every image below a folder, centre-cropped to a square and resized to size×size."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images found")
    mode = "L" if channels == 1 else "RGB"
    out = []
    for p in files:
        try:
            img = Image.open(p).convert(mode)
        except OSError as e:
            raise DataError(f"{p}: cannot read image: {e}") from e
        out.append(np.asarray(square_thumbnail(img, size)).reshape(size, size, channels))
    return np.stack(out)


# --- Entry point ----------------------------------------------------------------------------


def _cached(key: str, build) -> tuple[np.ndarray, np.ndarray | None]:
    path = cache_dir() / "arrays" / f"{key}.npz"
    if path.exists():
        return load_npz(path, "data")
    x, y = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, x_data=x, **({"y_data": y} if y is not None else {}))
    return x, y


def load(dataset: str, split: str, data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (N, H, W, C) uint8 and labels (N,) or None, for a named dataset and split.

    ``data_dir`` may hold the official files, or be/contain an ``.npz`` local copy."""
    if dataset == "photo":  # tiles of whole photos, held out by photo: also a "val" split
        from . import photos

        return photos.load_tiles(split, PRESETS["photo"].size, data_dir), None
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    data_dir = Path(data_dir) if data_dir is not None else None
    if data_dir is not None and not data_dir.exists():
        raise DataError(f"data directory {data_dir} does not exist")
    if data_dir is not None and data_dir.suffix == ".npz":
        return load_npz(data_dir, split)
    if dataset in ("mnist", "fashion-mnist"):
        return _load_idx_pair(dataset, split, data_dir)
    if dataset == "cifar10":
        archive = data_dir / "cifar-10-python.tar.gz" if data_dir else None
        if archive is not None and not archive.exists():
            npz = sorted(data_dir.glob("cifar10*.npz"))
            if len(npz) > 1:
                raise DataError(
                    f"{data_dir} holds several CIFAR-10 copies ({', '.join(p.name for p in npz)}); pass the .npz itself"
                )
            if npz:
                return load_npz(npz[0], split)
        return load_cifar_archive(_locate("cifar10", "cifar-10-python.tar.gz", data_dir), split)
    if dataset == "celeba":
        source = _celeba_source(data_dir)
        key = hashlib.sha256(f"{source.resolve()}:{source.stat().st_mtime_ns}:{split}".encode()).hexdigest()[:16]
        return _cached(f"celeba-{key}", lambda: (_load_celeba(source, split), None))
    raise DataError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)} or give a folder")
