"""How many refining rounds should `lbaecodec sample --refine` default to? Generation FID on validation images.

    python bench/refine_samples.py --model cifar10-w64-r --data-dir ../shared/datasets/cifar10-jpeg75.npz

Draws n "cov" codes (seed 0) from the copula of the frozen encoder's codes of the training split
less its validation images (the split `train` holds out: --val-size), as `train --sample-adv`
does, then refines them round after round (`generate.refined`: decode with the fidelity decoder,
encode the 8-bit pictures again). After each number of rounds in --rounds the codes are decoded
with the model's decoder (realism where it has one) and scored by FID against n
validation images spread through them (the first n before 0.11.1). Never the test split: this
chose the default (session 37).
Writes bench/results/refine-samples-MODEL/results.{json,md}.
"""

import argparse
from pathlib import Path

import numpy as np

from lbaecodec.architecture import AUTO
from lbaecodec.lab import generate
from lbaecodec.lab.report import save_results
from lbaecodec.lab.train import copula_of, validation_fid_probe
from lbaecodec.lab.trainset import load_training_data, split_validation
from lbaecodec.zoo import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cifar10-w64-r")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, nargs="+", default=[0, 1, 2, 3, 5, 10])
    args = ap.parse_args()
    model = load_model(args.model, "cpu")
    data = load_training_data(args.dataset, args.data_dir, model.arch)
    fit, _, val = split_validation(data.train, data.labels, args.val_size)
    probe = validation_fid_probe(val, args.n)
    drawn = copula_of(model.net, fit, seed=0)(args.n, "cpu", np.random.default_rng(0)).numpy()
    rows, before = [], drawn
    for rounds, codes in generate.refined_by_rounds(model, drawn, args.rounds):
        changed, before = float((codes != before).mean()), codes
        fid = probe.score(generate.decode(model, codes, AUTO))
        rows.append({"rounds": rounds, "bits_changed_since_previous_row": round(changed, 4), "fid": fid})
        print(rows[-1], flush=True)
    command = (
        f"python bench/refine_samples.py --model {args.model} --dataset {args.dataset} --data-dir {args.data_dir} "
        f"--val-size {args.val_size} -n {args.n} --rounds {' '.join(map(str, args.rounds))}"
    )
    lines = [
        f'Generation FID of {args.n} "cov" samples (seed 0) decoded by {model.id}\'s {model.decoders[-1]} decoder '
        f"after each number of refining rounds, against {args.n} spread through the {args.val_size} validation "
        f"images carved from the training split (the copula fitted on the other training images' codes).",
        f"Command: `{command}`",
        "",
        "| refining rounds | bits changed since the row above | FID vs validation images |",
        "|---|---|---|",
        *(f"| {r['rounds']} | {r['bits_changed_since_previous_row']} | {r['fid']} |" for r in rows),
    ]
    meta = {"model": model.id, "samples": args.n, "validation": args.val_size, "command": command}
    out = Path("bench/results") / f"refine-samples-{args.model}"
    save_results(out, {**meta, "rows": rows}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
