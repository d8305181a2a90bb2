"""Pack an image dataset (.npz with x_train/x_test) into JPEG mosaics small enough to send to a
lent GPU machine, and unpack it there into an .npz that `lbaecodec train --data-dir` reads.

A mosaic holds up to 32×32 tiles of the same size; JPEG works on 8×8 blocks (4:4:4, no chroma
subsampling), so no block straddles two images. At quality 75 the CIFAR-10 JPEG-75 copy
re-encodes to ~300 bytes per image and decodes back within ~43.6 dB PSNR of it (printed):
a training copy, not a test copy.

    python bench/pack_dataset.py pack ../shared/datasets/cifar10-jpeg75.npz .gpu/cifar10
    python bench/pack_dataset.py unpack .gpu/cifar10 /tmp/cifar10.npz
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 32  # tiles per mosaic side
QUALITY = 75


def mosaic(tiles: np.ndarray) -> np.ndarray:
    n, h, w, c = tiles.shape
    padded = np.zeros((SIDE * SIDE, h, w, c), np.uint8)
    padded[:n] = tiles
    return padded.reshape(SIDE, SIDE, h, w, c).transpose(0, 2, 1, 3, 4).reshape(SIDE * h, SIDE * w, c)


def tiles_of(image: np.ndarray, h: int, w: int, n: int) -> np.ndarray:
    c = image.shape[2]
    return image.reshape(SIDE, h, SIDE, w, c).transpose(0, 2, 1, 3, 4).reshape(SIDE * SIDE, h, w, c)[:n]


def pack(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    index = {}
    with np.load(source, allow_pickle=False) as z:
        for split in ("train", "test"):
            x = z[f"x_{split}"]
            x = x[..., None] if x.ndim == 3 else x
            se, chunks = 0.0, []
            for i in range(0, len(x), SIDE * SIDE):
                part = x[i : i + SIDE * SIDE]
                buf = io.BytesIO()
                m = mosaic(part)
                Image.fromarray(m[..., 0] if m.shape[2] == 1 else m).save(buf, "JPEG", quality=QUALITY, subsampling=0)
                back = tiles_of(_read(buf.getvalue()), *x.shape[1:3], len(part))
                se += ((back.astype(np.float64) - part) ** 2).sum()
                chunks.append(buf.getvalue())
            (target / f"{split}.bin").write_bytes(b"".join(chunks))
            index[split] = {"shape": list(x.shape), "sizes": [len(c) for c in chunks]}
            if f"y_{split}" in z:
                np.save(target / f"y_{split}.npy", z[f"y_{split}"].astype(np.int64))
            psnr = 10 * np.log10(255**2 / (se / x.size))
            print(
                f"{split}: {len(x)} images, {sum(index[split]['sizes']) / len(x):.0f} B/image, "
                f"{psnr:.2f} dB from the source"
            )
    (target / "index.json").write_text(json.dumps(index))


def _read(data: bytes) -> np.ndarray:
    a = np.asarray(Image.open(io.BytesIO(data)))
    return a[..., None] if a.ndim == 2 else a


def unpack(source: Path, target: Path) -> None:
    index = json.loads((source / "index.json").read_text())
    arrays = {}
    for split, entry in index.items():
        blob, shape, offset, parts = (source / f"{split}.bin").read_bytes(), entry["shape"], 0, []
        for size in entry["sizes"]:
            parts.append(tiles_of(_read(blob[offset : offset + size]), shape[1], shape[2], SIDE * SIDE))
            offset += size
        arrays[f"x_{split}"] = np.concatenate(parts)[: shape[0]]
        if (source / f"y_{split}.npy").exists():
            arrays[f"y_{split}"] = np.load(source / f"y_{split}.npy")
    np.savez(target, **arrays)


if __name__ == "__main__":
    {"pack": pack, "unpack": unpack}[sys.argv[1]](Path(sys.argv[2]), Path(sys.argv[3]))
