"""The shipped weights folder: version-2 files name their model by a 4-byte hash, found through
the cards, so every card must name its file's hash and no two shipped models may share one."""

import json
from pathlib import Path

from lbaecodec.registry import META_NAME, model_hash, read_metadata

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
SHIPPED = sorted(WEIGHTS.glob("*.safetensors"))


def test_every_card_names_its_files_hash():
    assert len(SHIPPED) >= 20
    for path in SHIPPED:
        name = read_metadata(path)[META_NAME]
        card = json.loads(path.with_suffix(".json").read_text())
        assert (card["name"], card["model_id"]) == (name, f"{name}@{model_hash(path.read_bytes()).hex()}"), path


def test_no_two_shipped_models_share_a_name_or_a_hash():
    names = [read_metadata(p)[META_NAME] for p in SHIPPED]
    hashes = [model_hash(p.read_bytes()) for p in SHIPPED]
    assert len(set(names)) == len(names) and len(set(hashes)) == len(hashes)


def test_cifar10_r_codes_as_cifar10_and_decodes_with_both_decoders():
    """`cifar10-r` is `cifar10` plus a realism decoder: the same payload, its own model id."""
    import numpy as np

    import lbaecodec
    from lbaecodec import container

    photo = WEIGHTS.parent / "examples" / "astronaut.png"
    files = (WEIGHTS / f"lbae-{name}-600.safetensors" for name in ("cifar10", "cifar10-r"))
    base, with_realism = (lbaecodec.load_model(path, "cpu") for path in files)
    plain, realism_file = (lbaecodec.encode(photo, model=m) for m in (base, with_realism))
    assert container.read(plain)[1] == container.read(realism_file)[1] and plain != realism_file
    fidelity, realism = (lbaecodec.decode(realism_file, with_realism, decoder=d) for d in ("fidelity", "realism"))
    assert np.array_equal(np.asarray(fidelity), np.asarray(lbaecodec.decode(plain, base)))
    assert not np.array_equal(np.asarray(fidelity), np.asarray(realism))
