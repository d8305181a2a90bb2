"""Which `encode --search-lambda`: coded bits against PSNR, measured on validation images.

    python bench/search_lambda.py --model cifar10-p2 --dataset cifar10 \\
        --data-dir ../shared/datasets/cifar10-jpeg75.npz --lambdas 0,0.01,0.02,0.03,0.04,0.05

`--search R` chooses each tile's code with the decoder in the loop (``lbaecodec.search``): bit
flips that lower 10·log10(MSE) + λ·bits. For each λ this measures, on a spread subset of the
seeded 5,000 validation images carved from the training split (``trainset.split_validation``, as
`train` carves them; never the test split), each image as its own file (as `evaluate` does): the
payload bits, PSNR and the encoding speed, beside the encoder's own codes.
The bits are coded under the model's shipped prior, which was fitted on the codes of every
training image (these included), so they are a little lower than on unseen images, alike for
every λ. Writes bench/results/search-lambda-MODEL/results.{json,md}.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from lbaecodec.lab import data, trainset
from lbaecodec.lab.bench import lbae_reconstruct
from lbaecodec.lab.metrics.quality import psnr
from lbaecodec.lab.report import dict_table, save_results
from lbaecodec.search import Search
from lbaecodec.zoo import load_model

VAL = 5000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cifar10-p2")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--lambdas", default="0,0.01,0.02,0.03,0.04,0.05")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--images", type=int, default=500, help="of the 5,000 validation images")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, "cpu")
    train = data.load(args.dataset, "train", args.data_dir)[0]
    images = data.spread_subset(trainset.split_validation(train, None, VAL)[2], args.images)
    rows = [measured(model, images, None)]
    for lam in (float(x) for x in args.lambdas.split(",")):
        rows.append(measured(model, images, Search(lam, args.rounds)))
        print(rows[-1], flush=True)
    command = "python bench/search_lambda.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())
    lines = [
        f"{model.id}, {len(images)} of the {VAL} validation images of {args.dataset} (seed 0), each its own file; "
        f"payload bits under the shipped prior; {args.threads} torch threads",
        "",
        *dict_table(rows),
        "",
        f"`{command}`",
    ]
    record = {"model": model.id, "dataset": args.dataset, "images": len(images), "command": command, "rows": rows}
    save_results(Path("bench/results") / f"search-lambda-{args.model}", record, "\n".join(lines) + "\n")


def measured(model, images: np.ndarray, search: Search | None) -> dict:
    """One row: λ, payload bits, PSNR and images encoded per second."""
    recs, figures = lbae_reconstruct(model, images, search=search)
    return {
        "search_lambda": "none (the encoder's codes)" if search is None else search.lam,
        "payload_bits": round(figures["payload_bits"], 1),
        "psnr_db": round(psnr(images, recs), 3),
        "encode_img_s": round(figures["encode_img_s"], 1),
    }


if __name__ == "__main__":
    main()
