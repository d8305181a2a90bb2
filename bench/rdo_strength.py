"""Which `encode --rdo` strength: coded bits against PSNR, measured on validation images.

    python bench/rdo_strength.py --model cifar10-w64-rh --dataset cifar10 \\
        --data-dir ../shared/datasets/cifar10-jpeg75.npz --strengths 0,0.04,0.05,0.067,0.1

`--rdo S` flips the code bits the encoder was least sure of where the model's prior makes them
expensive (``lbaecodec.rdo``). The shipped prior was fitted on the codes of every training image,
so on training images it would promise too few bits: this script fits a prior of the same kind
(MADE, 256 hidden units, 4,000 steps, as `add-prior --hidden 256`) on all but a seeded random
5,000 training images (``trainset.split_validation``) and measures on those 5,000 (never the test
split), for each strength: the bits of one-image files' payloads (tight ends, as `auto` writes
them), the bits flipped, and the PSNR of each decoder of the model. Writes
bench/results/rdo-strength-MODEL/results.{json,md}.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from lbaecodec import entropy, rdo
from lbaecodec.images import to_float
from lbaecodec.lab import data, made, trainset
from lbaecodec.lab.export import encode_all
from lbaecodec.lab.metrics.quality import psnr
from lbaecodec.lab.report import dict_table, save_results
from lbaecodec.zoo import load_model

VAL = 5000


@torch.inference_mode()
def encoder_values(model, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """The encoder's values before the sign, (images, bits)."""
    return np.concatenate(
        [model.net.encoder(to_float(images[i : i + batch])).numpy() for i in range(0, len(images), batch)]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cifar10-w64-rh")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--strengths", default="0,0.04,0.05,0.067,0.1")
    args = ap.parse_args()
    model = load_model(args.model, "cpu")
    train = data.load(args.dataset, "train", args.data_dir)[0]
    fit_on = trainset.split_validation(encode_all(model.net, train), None, VAL)[0]
    prior = made.fit(fit_on, 256, 4000).to_prior()
    val_images = trainset.split_validation(train, None, VAL)[2]
    z = encoder_values(model, val_images)
    rows = []
    for strength in (float(s) for s in args.strengths.split(",")):
        codes = rdo.optimised_codes(z, prior, strength)
        row = {
            "strength": strength,
            "payload_bits": round(
                float(np.mean([8 * len(entropy.encode(c[None], prior, tight=True)) for c in codes])), 2
            ),
            "ideal_bits": round(prior.cost_bits(codes) / len(codes), 2),
            "bits_flipped": round(float((codes != np.where(z >= 0, 1, -1)).sum(1).mean()), 2),
        }
        row |= {f"psnr_db_{d}": round(psnr(val_images, model.tile_decoder(d)(codes)), 3) for d in model.decoders}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = Path("bench/results") / f"rdo-strength-{args.model}"
    meta = {
        "model": model.id,
        "dataset": args.dataset,
        "validation_images": VAL,
        "prior": "MADE 256 units, 4000 steps, fitted without them",
    }
    lines = [
        f"{model.id}, {VAL} validation images of {args.dataset} (prior fitted without them; tight payloads)",
        "",
        *dict_table(rows),
    ]
    save_results(out, {**meta, "rows": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
