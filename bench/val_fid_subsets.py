"""How far apart are two realism decoders, and how much does FID on 1,000 images move? Validation only.

    python bench/val_fid_subsets.py --data-dir ../shared/datasets/cifar10-jpeg75.npz \
        --decoder cifar10-w64-r --decoder cifar10-w64-r2 --decoder cifar10-w64:runs/w64-vgg-full

Each --decoder is a shipped model (its realism decoder) or MODEL:RUN (the best checkpoint of a
realism run trained on MODEL's frozen encoder). Every decoder reconstructs the same validation
images (the split `train` holds out: --val-size, seed 0; never the test split), as the training
log's validation FID does; FID is reported on each block of --block images and on all of them
pooled, so the spread between blocks shows what one block's FID can tell apart (session 43).
Writes bench/results/val-fid-subsets-DATASET/results.{json,md}.
"""

import argparse
from pathlib import Path

import numpy as np

from lbaecodec.architecture import REALISM
from lbaecodec.lab.export import realism_decoder
from lbaecodec.lab.metrics import fid as fidlib
from lbaecodec.lab.report import save_results
from lbaecodec.lab.train import reconstruct
from lbaecodec.lab.trainset import load_training_data, split_validation
from lbaecodec.zoo import load_model


def decoder_network(spec: str):
    """A shipped model's realism network, or MODEL:RUN's (the run's best checkpoint)."""
    name, _, run = spec.partition(":")
    model = load_model(name, "cpu")
    net = model.with_decoder(REALISM) if not run else model.net.with_decoder(realism_decoder(model.net, Path(run)))
    return model, net.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decoder", action="append", required=True)
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("--block", type=int, default=1000)
    args = ap.parse_args()
    extractor = fidlib.InceptionFeatures("cpu", progress=False)
    networks = {spec: decoder_network(spec) for spec in args.decoder}
    arch = next(iter(networks.values()))[0].arch
    val = split_validation(load_training_data(args.dataset, args.data_dir, arch).train, None, args.val_size)[2]
    reference = extractor(val)
    blocks = range(0, len(val) - args.block + 1, args.block)
    rows = []
    for spec, (_, net) in networks.items():
        features = extractor(reconstruct(net, val))
        fids = [fid_between(reference[i : i + args.block], features[i : i + args.block]) for i in blocks]
        rows.append({"decoder": spec, "block_fids": fids, "pooled_fid": fid_between(reference, features)})
        print(rows[-1], flush=True)
    command = "python bench/val_fid_subsets.py " + " ".join(
        [f"--dataset {args.dataset} --data-dir {args.data_dir} --val-size {args.val_size} --block {args.block}"]
        + [f"--decoder {s}" for s in args.decoder]
    )
    lines = [
        f"Validation FID of realism decoders on the {len(val)} validation images carved from the "
        f"{args.dataset} training split (seed 0), per block of {args.block} and pooled.",
        f"Command: `{command}`",
        "",
        "| decoder | " + " | ".join(f"images {i}–{i + args.block - 1}" for i in blocks) + " | all, pooled |",
        "|---|" + "---|" * (len(blocks) + 1),
        *(f"| {r['decoder']} | " + " | ".join(map(str, r["block_fids"])) + f" | {r['pooled_fid']} |" for r in rows),
    ]
    out = Path("bench/results") / f"val-fid-subsets-{args.dataset}"
    save_results(out, {"command": command, "rows": rows}, "\n".join(lines) + "\n")
    print("\n".join(lines))


def fid_between(reference: np.ndarray, features: np.ndarray) -> float:
    return round(fidlib.frechet_distance(*fidlib.statistics(reference), *fidlib.statistics(features)), 3)


if __name__ == "__main__":
    main()
