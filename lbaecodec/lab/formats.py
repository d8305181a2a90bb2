"""Parsers of the official dataset files: IDX (MNIST, Fashion-MNIST), the CIFAR-10 archive of
pickled batches (unpickled so that nothing but arrays can be built), and .npz local copies."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped) of unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read IDX file: {e}") from e
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(f"{path}: IDX size does not match its header {shape}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Builds numpy arrays and plain containers; refuses every other global."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def safe_unpickle(data: bytes) -> object:
    try:
        return _ArraysOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # any malformed pickle is a data error, never code execution
        raise DataError(f"cannot parse pickled batch: {e}") from e


def parse_cifar_batch(data: bytes, name: str = "batch") -> tuple[np.ndarray, np.ndarray]:
    batch = safe_unpickle(data)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{name}: not a CIFAR-10 batch")
    x = np.asarray(batch[b"data"], dtype=np.uint8)
    y = np.asarray(batch[b"labels"], dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != 3072 or len(y) != len(x):
        raise DataError(f"{name}: unexpected CIFAR-10 batch shape {x.shape}")
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y


def load_cifar_archive(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            for name in names:
                if name not in members:
                    raise DataError(f"{path}: {name} missing from the archive")
                x, y = parse_cifar_batch(tar.extractfile(members[name]).read(), name)
                xs.append(x)
                ys.append(y)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read CIFAR-10 archive: {e}") from e
    return np.concatenate(xs), np.concatenate(ys)


def load_npz(path: Path, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A local copy as .npz with x_<split> (N, H, W[, C]) uint8 and optional y_<split>."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if f"x_{split}" not in z:
                raise DataError(f"{path}: no array x_{split}")
            x = z[f"x_{split}"]
            y = z[f"y_{split}"].astype(np.int64) if f"y_{split}" in z else None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read .npz: {e}") from e
    if x.dtype != np.uint8 or x.ndim not in (3, 4):
        raise DataError(f"{path}: x_{split} must be uint8 (N, H, W[, C]), got {x.dtype} {x.shape}")
    return (x[..., None] if x.ndim == 3 else x), y
