"""Inception-v3 feature extraction speed on this machine, as the bench runs it.

Usage: python bench/inception_speed.py [N] [--backend auto|openvino|torch]
Times N random 32×32 images (default 400) after a one-batch warm-up, in one process using
torch's default thread count; prints images per second and the backend used.
"""

import argparse
import time

import numpy as np
import torch

from lbaecodec.lab.metrics import fid as fidlib


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n", nargs="?", type=int, default=400)
    p.add_argument("--backend", default="auto", choices=["auto", "openvino", "torch"])
    a = p.parse_args()
    images = np.random.default_rng(0).integers(0, 256, (a.n, 32, 32, 3), dtype=np.uint8)
    extract = fidlib.InceptionFeatures(progress=False, backend=a.backend)
    extract(images[: extract.batch])
    t0 = time.perf_counter()
    extract(images)
    speed = a.n / (time.perf_counter() - t0)
    print(f"{extract.backend}, {torch.get_num_threads()} threads: {speed:.1f} images/s ({a.n} images)")


if __name__ == "__main__":
    main()
