"""The images a training run sees: a dataset's (or a folder's) train and test splits, a
validation split carved from the training images, and CelebA's attribute labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..architecture import Architecture
from ..errors import DataError, InputError
from . import data
from .formats import load_npz


@dataclass
class TrainingData:
    train: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray | None  # (N,) class indexes, where the dataset has them
    test: np.ndarray
    note: str  # what the data is, for logs and model cards
    val: np.ndarray | None = None  # a dataset's own validation split (photos: held-out photos)


def _tile_archive(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(train, test, validation or None) of an .npz with x_train, x_test and optionally x_val."""
    train, test = load_npz(path, "train")[0], load_npz(path, "test")[0]
    try:
        val = load_npz(path, "val")[0]
    except DataError:  # no x_val: validation is carved from the training tiles
        val = None
    return train, test, val


def load_training_data(
    dataset: str, data_dir: str | None, arch: Architecture, limit: int | None = None
) -> TrainingData:
    """A named dataset's splits, or (``dataset="folder"``) the images of ``data_dir`` with a
    seeded tenth kept for testing; ``limit``: the first N training images (smoke runs)."""
    labels, val = None, None
    if dataset == "folder" and data_dir and Path(data_dir).suffix == ".npz":  # tiles made elsewhere
        train, test, val = _tile_archive(Path(data_dir))
    elif dataset == "folder":
        if not data_dir:
            raise InputError("--dataset folder needs --data-dir with your images (or an .npz of tiles)")
        images = data.load_folder(Path(data_dir), arch.size, arch.channels)
        cut = max(1, len(images) // 10)
        order = np.random.default_rng(0).permutation(len(images))
        train, test = images[order[cut:]], images[order[:cut]]
    else:
        train, labels = data.load(dataset, "train", data_dir)
        test = data.load(dataset, "test", data_dir)[0]
    if train.shape[1:] != (arch.size, arch.size, arch.channels):
        raise InputError(
            f"{dataset} images are {train.shape[1:]}, the network needs {(arch.size, arch.size, arch.channels)}"
        )
    if limit:
        train, test = train[:limit], test[: max(1, limit // 5)]
        labels = None if labels is None else labels[:limit]
    if dataset == "photo":
        val = data.load(dataset, "val", data_dir)[0]
    note = f"{dataset} ({data.describe_source(dataset, data_dir)}), {len(train)} train / {len(test)} test images"
    return TrainingData(train, labels, test, note, val)


def split_validation(
    images: np.ndarray, labels: np.ndarray | None, size: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(train, train labels, validation): a seeded random ``size`` images carved from the
    training split (the local CIFAR-10 copy is sorted by class: the last images are all trucks)."""
    if not 0 < size < len(images):
        raise InputError(f"--val-size {size}: must be between 1 and {len(images) - 1}")
    order = np.random.default_rng(seed).permutation(len(images))
    keep, val = np.sort(order[size:]), np.sort(order[:size])
    return images[keep], None if labels is None else labels[keep], images[val]


def celeba_attributes(path: str | None, dataset: str, data_dir: str | None) -> tuple[list[str], np.ndarray] | None:
    """CelebA attribute names and the training images' ±1 attribute matrix, or None."""
    if path is None:
        return None
    if dataset != "celeba":
        raise InputError("--attributes is the CelebA list_attr_celeba.txt; use it with --dataset celeba")
    return data.celeba_attributes(path, "train", data_dir)
