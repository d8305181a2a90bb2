"""Would a context prior with a hidden layer also sample better? Generation FID on validation images.

    python bench/hidden_prior_samples.py --model cifar10-w64-r --dataset cifar10 \\
        --data-dir ../shared/datasets/cifar10-jpeg75.npz --hidden 256

Fits a MADE (`lbaecodec.lab.made`, rounded to the integer prior a model would ship) on the
codes of the training split less the seeded random
5,000 validation images, draws n codes from it bit by bit (seed 0), decodes them with the
model's decoder (its realism decoder where it has one) and measures FID against those 5,000
validation images, beside the model's own "cov" and "prior" samples (`lbaecodec sample --refine 0`, seed 0)
against the same images. Never the test split: this chooses what to build.
Writes bench/results/hidden-prior-samples-MODEL/results.{json,md}.
"""

import argparse
from pathlib import Path

import numpy as np
from hidden_prior import VAL

from lbaecodec.lab import data, generate, made, trainset
from lbaecodec.lab.export import encode_all
from lbaecodec.lab.metrics import fid as fidlib
from lbaecodec.lab.report import save_results
from lbaecodec.registry import cache_dir
from lbaecodec.zoo import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cifar10-w64-r")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("-n", type=int, default=10_000)
    args = ap.parse_args()
    model = load_model(args.model, "cpu")
    images = data.load(args.dataset, "train", args.data_dir)[0]
    fit_on, _, val_codes = trainset.split_validation(encode_all(model.net, images), None, VAL)
    prior = made.fit(fit_on, args.hidden, args.steps).to_prior()  # the integer prior a model would ship
    bits = prior.cost_bits(val_codes) / len(val_codes)
    extractor, cache = fidlib.InceptionFeatures(), cache_dir() / "fid"
    ref = fidlib.cached_statistics(trainset.split_validation(images, None, VAL)[2], extractor, cache)
    sets = {f"MADE, {args.hidden} hidden units": generate.decode(model, prior.sample(args.n, np.random.default_rng(0)))}
    sets.update(
        {f"{m} (lbaecodec sample)": generate.sample(model, args.n, m, seed=0, refine=0) for m in ("cov", "prior")}
    )
    rows = [
        {
            "codes": k,
            "fid": round(fidlib.frechet_distance(*ref, *fidlib.cached_statistics(v, extractor, cache, "set")), 2),
        }
        for k, v in sets.items()
    ]
    meta = {"model": model.id, "samples": args.n, "validation": VAL, "made_val_ideal_bits": round(bits, 1)}
    lines = [
        f"Generation FID of {args.n} samples decoded by {model.id} against {VAL} validation images "
        f"(a seeded random draw from the training split). MADE fitted on the other training codes "
        f"({args.steps} steps; {bits:.1f} ideal bits per validation code).",
        f"Command: `python bench/hidden_prior_samples.py --model {args.model} --dataset {args.dataset} "
        f"--data-dir {args.data_dir} --hidden {args.hidden} --steps {args.steps} -n {args.n}`",
        "",
        "| codes drawn from | FID vs validation images |",
        "|---|---|",
        *(f"| {r['codes']} | {r['fid']} |" for r in rows),
    ]
    out = Path("bench/results") / f"hidden-prior-samples-{args.model}"
    save_results(out, {**meta, "rows": rows}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
