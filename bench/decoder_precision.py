"""The decoder in bf16 against float32: PSNR, largest pixel change and tiles/s, per shipped model.

    python bench/decoder_precision.py --data-dir ../shared/datasets/cifar10-jpeg75.npz

Decodes the codes of the first N test images (the encoder in float32, as always) through the
codec's own decoder step (``zoo.Model.tile_decoder``) in fp32 and in bf16, in the codec's batches
(tiling.TILE_BATCH) and in those of versions before 0.7 (8 tiles), best of 3 passes.
Issue 13 allows a lower-precision decoder that moves PSNR by < 0.05 dB. Time it on a quiet
machine; bf16 is only quick where the CPU has it natively (``precision.native_bf16``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from speed import machine, write_results

from lbaecodec import precision, stages, tiling
from lbaecodec.lab import data
from lbaecodec.lab.metrics import quality
from lbaecodec.zoo import load_model

PRECISIONS = ("fp32", "bf16")
OLD_BATCH = 8  # tiling.TILE_BATCH before version 0.7


def decoded(model, codes: np.ndarray, batch: int) -> tuple[np.ndarray, float]:
    """Codes → (uint8 tiles, best-of-3 tiles per second) through the codec's decoder step."""
    run, best, tiles = model.tile_decoder(), float("inf"), None
    for _ in range(3):
        start = time.perf_counter()
        tiles = np.concatenate(list(tiling.in_fixed_batches([codes], run, batch)))
        best = min(best, time.perf_counter() - start)
    return tiles, round(len(codes) / best)


def decoder_bench_arguments(description: str) -> argparse.ArgumentParser:
    """The options this bench shares with bench/int8_decoder.py."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", default="cifar10")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    return p


def main() -> None:
    p = decoder_bench_arguments(__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench/results/precision"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = load_model(a.model, "cpu")
    test = data.load(a.dataset, "test", a.data_dir)[0][: a.limit]
    codes = stages.encoded_tiles(model, [test])  # as the codec encodes them
    rows, pixels = [], {}
    for name in PRECISIONS:
        m = model.with_precision(name)
        pixels[name], fast = decoded(m, codes, tiling.TILE_BATCH)
        small = decoded(m, codes, OLD_BATCH)[1]
        change = np.abs(pixels[name].astype(int) - pixels["fp32"]).max()
        rows.append(
            {
                "decoder": name,
                "psnr_db": round(quality.psnr(test, pixels[name]), 4),
                "max_change_levels": int(change),
                f"tiles_per_s_batch_{tiling.TILE_BATCH}": fast,
                f"tiles_per_s_batch_{OLD_BATCH}": small,
            }
        )
    meta = {
        "command": f"python bench/decoder_precision.py --data-dir {a.data_dir} --model {a.model} --limit {a.limit} "
        f"--threads {a.threads}",
        "model": model.id,
        "data": f"first {len(test)} of the {a.dataset} test split ({data.describe_source(a.dataset, a.data_dir)})",
        "native_bf16": precision.native_bf16(),
        "machine": f"{machine()}; {a.threads} threads, torch {torch.__version__}",
    }
    write_results(a.out / a.model, meta, rows)


if __name__ == "__main__":
    main()
