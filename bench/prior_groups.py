"""How many groups for a grouped context prior: rate against decoding speed, chosen on validation.

    python bench/prior_groups.py --model cifar10 --dataset cifar10 \\
        --data-dir ../shared/datasets/cifar10-jpeg75.npz --groups 8,16,32,64

Encodes the training split with the model, fits a prior for each group count (and a dense one,
one group per bit) on all but 5,000 training images, a seeded random validation split
(`trainset.split_validation`: the local CIFAR-10 copy is sorted by class), and measures on those
5,000 (never the test split): range-coded bits of one image per file, how many one-image payloads
per second `entropy.decode_many` turns back into codes (1,000 at once), and the seconds it takes
to range-decode one large image (examples/astronaut.png resized to 1280×960); the network is not
timed. Writes bench/results/prior-groups-MODEL/results.{json,md}.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lbaecodec import codec, entropy, tiling
from lbaecodec.lab import data, trainset
from lbaecodec.lab.export import coded_bits, encode_all
from lbaecodec.lab.report import save_results
from lbaecodec.zoo import load_model

VAL = 5000


LARGE_IMAGE, LARGE_SIZE = Path(__file__).parents[1] / "examples" / "astronaut.png", (1280, 960)


def decode_seconds(prior: entropy.Prior, tiles_of_each: list) -> float:
    """Seconds for one decode_many call over these payloads' codes (best of 3)."""
    payloads = [entropy.encode(codes, prior) for codes in tiles_of_each]
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        entropy.decode_many(payloads, [len(codes) for codes in tiles_of_each], prior)
        best = min(best, time.perf_counter() - t)
    return best


def large_image_codes(model) -> np.ndarray:
    img = Image.open(LARGE_IMAGE).resize(LARGE_SIZE, Image.BICUBIC)
    return codec.encode_codes(model, tiling.as_model_array(img, model.arch.channels))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cifar10")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--groups", default="8,16,32,64")
    args = ap.parse_args()
    model = load_model(args.model, "cpu")
    fit_images, _, val_images = trainset.split_validation(data.load(args.dataset, "train", args.data_dir)[0], None, VAL)
    fit_on, val = encode_all(model.net, fit_images), encode_all(model.net, val_images)
    large = large_image_codes(model)
    rows = []
    for groups in [0] + [int(g) for g in args.groups.split(",")]:
        prior = entropy.fit(fit_on, groups=groups)
        row = {
            "groups_asked": groups or "dense",
            "decode_steps": len(prior.groups),
            "val_ideal_bits": round(prior.cost_bits(val) / len(val), 1),
            "val_coded_bits": round(coded_bits(prior, val), 1),
            "payloads_per_s": round(1000 / decode_seconds(prior, [c[None] for c in val[:1000]])),
            "large_image_s": round(decode_seconds(prior, [large]), 3),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    meta = {"model": model.id, "fitted_on": len(fit_on), "validation": len(val), "data": args.data_dir}
    lines = [
        f"Grouped context priors for {model.id}: fitted on the codes of {len(fit_on)} training images, "
        f"measured on {len(val)} others (a seeded random validation split). Decoding: 1,000 of them, "
        "one image per payload, in one `entropy.decode_many` call; and one large image, examples/astronaut.png at "
        f"{LARGE_SIZE[0]}×{LARGE_SIZE[1]} ({len(large)} tiles) (best of 3; the network not included).",
        "Command: `python bench/prior_groups.py " + f"--model {args.model} --dataset {args.dataset} "
        f"--data-dir {args.data_dir} --groups {args.groups}`",
        "",
        "| groups | coder calls per tile | ideal bits/image | coded bits/image (one per file) | payloads decoded/s "
        "| large image, s |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['groups_asked']} | {r['decode_steps']} | {r['val_ideal_bits']} | {r['val_coded_bits']} | "
            f"{r['payloads_per_s']} | {r['large_image_s']} |"
            for r in rows
        ),
    ]
    save_results(Path("bench/results") / f"prior-groups-{args.model}", {**meta, "rows": rows}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
