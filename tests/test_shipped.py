"""The shipped weights folder: version-2 files name their model by a 4-byte hash, found through
the cards, so every card must name its file's hash and no two shipped models may share one."""

import hashlib
import json
from pathlib import Path

import pytest

from lbaecodec.registry import DEFAULT_MODEL, META_BASE, META_NAME, model_hash, read_metadata

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
SHIPPED = sorted(WEIGHTS.glob("*.safetensors"))


def test_every_card_names_its_files_hash():
    assert len(SHIPPED) >= 21
    for path in SHIPPED:
        name = read_metadata(path)[META_NAME]
        card = json.loads(path.with_suffix(".json").read_text())
        assert (card["name"], card["model_id"]) == (name, f"{name}@{model_hash(path.read_bytes()).hex()}"), path


def test_no_two_shipped_models_share_a_name_or_a_hash():
    names = [read_metadata(p)[META_NAME] for p in SHIPPED]
    hashes = [model_hash(p.read_bytes()) for p in SHIPPED]
    assert len(set(names)) == len(names) and len(set(hashes)) == len(hashes)


def test_the_default_model_is_shipped():
    assert DEFAULT_MODEL in {read_metadata(p)[META_NAME] for p in SHIPPED}  # bound at import, not the test zoo's


def test_shipped_extensions_extend_whole_shipped_files():
    """A shipped model stored as an extension (only what it adds) names a shipped whole file."""
    extensions = [p for p in SHIPPED if META_BASE in read_metadata(p)]
    whole = {hashlib.sha256(p.read_bytes()).hexdigest() for p in SHIPPED if p not in extensions}
    assert WEIGHTS / "lbae-cifar10-w64-r-600.safetensors" in extensions
    assert all(read_metadata(p)[META_BASE] in whole for p in extensions)


@pytest.mark.parametrize(
    ("base_name", "name"),
    [
        ("cifar10-600", "cifar10-r-600"),
        ("cifar10-w64-600", "cifar10-w64-r-600"),
        ("cifar10-w64-600", "cifar10-w64-r2-600"),
        ("celeba-1500", "celeba-r-1500"),
        ("celeba-1500", "celeba-r2-1500"),
    ],
)
def test_a_realism_model_codes_as_its_base_and_decodes_with_both_decoders(base_name, name):
    """`cifar10-r` is `cifar10` plus a realism decoder (`cifar10-w64-r` and `celeba-r` the same,
    stored as extensions of their base's file; `celeba-r2`'s decoder is twice as wide as
    `celeba`'s): the same payload, its own model id."""
    import numpy as np

    import lbaecodec
    from lbaecodec import container

    photo = WEIGHTS.parent / "examples" / "astronaut.png"
    files = (WEIGHTS / f"lbae-{stem}.safetensors" for stem in (base_name, name))
    base, with_realism = (lbaecodec.load_model(path, "cpu") for path in files)
    plain, realism_file = (lbaecodec.encode(photo, model=m) for m in (base, with_realism))
    assert container.read(plain)[1] == container.read(realism_file)[1] and plain != realism_file
    fidelity, realism = (lbaecodec.decode(realism_file, with_realism, decoder=d) for d in ("fidelity", "realism"))
    assert np.array_equal(np.asarray(fidelity), np.asarray(lbaecodec.decode(plain, base)))
    assert not np.array_equal(np.asarray(fidelity), np.asarray(realism))


@pytest.mark.parametrize(
    ("base_name", "name"),
    [
        ("cifar10-600", "cifar10-h-600"),
        ("cifar10-w64-r-600", "cifar10-w64-rh-600"),
        ("mnist-w32-200", "mnist-w32-h-200"),
        ("fashion-mnist-r2-200", "fashion-mnist-r2h-200"),
    ],
)
def test_a_hidden_prior_model_decodes_as_its_base_from_fewer_bytes(base_name, name):
    """`cifar10-h` is `cifar10` plus a hidden-layer prior: method-3 files, smaller, that decode to
    the base's pixels with every decoder; `--coding context` writes the base's payload."""
    import numpy as np

    import lbaecodec
    from lbaecodec import container

    gray = {"mnist": "mnist", "fashi": "fashion"}.get(name[:5])
    photo = _gray_canvas(gray) if gray else WEIGHTS.parent / "examples" / "astronaut.png"
    base, hidden = (lbaecodec.load_model(WEIGHTS / f"lbae-{n}.safetensors", "cpu") for n in (base_name, name))
    plain, smaller = lbaecodec.encode(photo, model=base), lbaecodec.encode(photo, model=hidden)
    assert lbaecodec.info(smaller).coding == "hidden-tight" and len(smaller) < 0.96 * len(plain)
    assert container.read(lbaecodec.encode(photo, model=hidden, coding="context-tight"))[1] == container.read(plain)[1]
    for decoder in base.decoders:
        expected = np.asarray(lbaecodec.decode(plain, base, decoder=decoder))
        assert np.array_equal(np.asarray(lbaecodec.decode(smaller, hidden, decoder=decoder)), expected)


def _gray_canvas(prefix: str):
    """A 4×4 canvas of two example test images (MNIST digits, Fashion-MNIST clothes): what such a
    model's priors are for."""
    from PIL import Image

    a, b = (Image.open(WEIGHTS.parent / "examples" / f"{prefix}_test_000{i}.png") for i in (0, 1))
    canvas = Image.new("L", (4 * a.width, 4 * a.height))
    for i in range(16):
        canvas.paste(a if (i + i // 4) % 2 else b, (i % 4 * a.width, i // 4 * a.height))
    return canvas


@pytest.mark.parametrize("name", ["cifar10", "cifar10-h"])
def test_tight_files_of_0_10_decode_to_the_same_pixels(name):
    """Files written by lbaecodec 0.10 with tight ends (methods 6 and 7) and their fp32 decoding:
    every later version must decode them the same."""
    import numpy as np
    from PIL import Image

    import lbaecodec

    data = (WEIGHTS.parent / "tests" / "data" / f"v2-{name}-tight-70x45.lbae").read_bytes()
    golden = np.asarray(Image.open(WEIGHTS.parent / "tests" / "data" / "v2-cifar10-tight-70x45.decoded.png"))
    assert lbaecodec.info(data).coding == {"cifar10": "context-tight", "cifar10-h": "hidden-tight"}[name]
    img = lbaecodec.decode(data, model=WEIGHTS / f"lbae-{name}-600.safetensors", device="cpu", precision="fp32")
    assert np.array_equal(np.asarray(img), golden)
