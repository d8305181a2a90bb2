"""Would a context prior with a hidden layer pay? Ideal code lengths, measured on validation codes.

    python bench/hidden_prior.py --model cifar10-w64 --dataset cifar10 \\
        --data-dir ../shared/datasets/cifar10-jpeg75.npz --hidden 256,512

The shipped context prior gives each bit a logit linear in the tile's earlier bits. This probe
adds one hidden layer in MADE's way (Germain et al. 2015): hidden unit k sees only bits before
its degree d_k, and bit i's logit adds ReLU units with d_k ≤ i, so the model stays
autoregressive and a decoder can still go bit by bit (`lbaecodec add-prior --hidden` ships
one). Ideal bits (−log2 of the probabilities) of the float model and of the integer prior it
rounds to, not a range coder's output.

Encodes the training split with the model, fits on all but a seeded random 5,000 training
images (``trainset.split_validation``, as training carves its validation split; the local CIFAR-10
copy is sorted by class, so "the last 5,000" would be trucks alone) with Adam, batch 512, cosine
learning rate, and measures on those 5,000 (never the test split): a
linear prior refitted the way `entropy.fit` fits the shipped one, then MADE for each hidden
size. ``--l2`` fits the linear prior with each of several L2 weights (``--hidden ""`` fits no
MADE). Writes bench/results/hidden-prior-MODEL/results.{json,md} (or ``--out``).
"""

import argparse
import json
import time
from pathlib import Path

from lbaecodec import entropy
from lbaecodec.lab import data, made, trainset
from lbaecodec.lab.export import encode_all
from lbaecodec.lab.report import save_results
from lbaecodec.zoo import load_model

VAL = 5000  # validation images by default (--val)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cifar10-w64")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--hidden", default="256,512", help='MADE sizes, comma-separated ("": linear priors only)')
    ap.add_argument(
        "--l2", default=str(entropy.FIT_L2), help="the linear prior's L2 weights, comma-separated (entropy.fit's l2)"
    )
    ap.add_argument("--out", default=None, help="results folder [default: bench/results/hidden-prior-MODEL]")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--val", type=int, default=VAL, help="validation images (CelebA has 9,000 training faces)")
    args = ap.parse_args()
    model = load_model(args.model, "cpu")
    codes = encode_all(model.net, data.load(args.dataset, "train", args.data_dir)[0])
    fit_on, _, val = trainset.split_validation(codes, None, args.val)
    rows = []
    for l2 in (float(v) for v in args.l2.split(",")):
        start = time.process_time()
        linear = entropy.fit(fit_on, l2=l2)
        rows.append(
            {
                "prior": f"linear (entropy.fit, l2 {l2:g}, integer)",
                "val_ideal_bits": round(linear.cost_bits(val) / len(val), 1),
                "cpu_seconds": round(time.process_time() - start),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    for hidden in (int(h) for h in args.hidden.split(",") if h):
        start = time.process_time()
        fitted = made.fit(fit_on, hidden, args.steps)
        rows.append(
            {
                "prior": f"MADE, {hidden} hidden units (float)",
                "val_ideal_bits": round(made.ideal_bits(fitted, val), 1),
                "integer_val_ideal_bits": round(fitted.to_prior().cost_bits(val) / len(val), 1),
                "cpu_seconds": round(time.process_time() - start),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    meta = {
        "model": model.id,
        "fitted_on": len(fit_on),
        "validation": len(val),
        "steps": args.steps,
        "data": args.data_dir,
    }
    lines = [
        f"Context priors for {model.id}'s codes: fitted on {len(fit_on)} training images, ideal bits per "
        f"image on {len(val)} others (validation: a seeded random draw from the training split)."
        + (f" MADE: {args.steps} Adam steps of {made.BATCH}." if args.hidden else ""),
        f"Command: `python bench/hidden_prior.py --model {args.model} --dataset {args.dataset} "
        f"--data-dir {args.data_dir} --hidden '{args.hidden}' --steps {args.steps} --val {len(val)} --l2 {args.l2}`",
        "",
        "| prior | ideal bits/image (validation) | CPU seconds to fit |",
        "|---|---|---|",
        *(f"| {r['prior']} | {r['val_ideal_bits']} | {r.get('cpu_seconds', '')} |" for r in rows),
    ]
    out = Path(args.out or f"bench/results/hidden-prior-{args.model}")
    save_results(out, {**meta, "rows": rows}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
