"""Residual stages: coding in stages, version-4 files cut after any stage, shipping a stage."""

import json
import random
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file, save_file

import lbaecodec
from lbaecodec import cli, codec, container, entropy, prior_tensors, stages, zoo
from lbaecodec.architecture import PRESETS
from lbaecodec.errors import InputError, LbaeError, LbaeFormatError, ModelError
from lbaecodec.lab import photos
from lbaecodec.lab.export import encode_all
from lbaecodec.lab.postfilter import PostFilterRecipe, add_postfilter, evaluate_postfilter, train_postfilter
from lbaecodec.lab.stages import add_stage, write_residual_set
from lbaecodec.lab.train import Recipe, train
from lbaecodec.network import LBAE

from .conftest import TEST_WIDTH


def _priors(net: LBAE) -> dict:
    images = np.random.default_rng(0).integers(0, 256, (256, 32, 32, 3), np.uint8)
    codes = encode_all(net, images)
    return prior_tensors.to_tensors(entropy.fit(codes, context=False), entropy.fit(codes, steps=30))


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """A tiny random three-stage model, and the one-stage model of its first stage."""
    folder = tmp_path_factory.mktemp("staged")
    torch.manual_seed(5)
    arch = replace(PRESETS["cifar10"], width=TEST_WIDTH)
    nets = [LBAE(arch).eval() for _ in range(3)]
    for k, net in enumerate(nets[1:]):  # random decoders give ~mid-grey: make the stages change pixels
        torch.nn.init.normal_(net.decoder.from_latent[0].weight, std=0.5)
        torch.nn.init.constant_(net.decoder.pixels[-1].bias, 0.4 - 0.6 * k)
    later = [(net, _priors(net)) for net in nets[1:]]
    plain = zoo.export(nets[0], "plain", folder / "plain.safetensors", extras=_priors(nets[0]))
    three = zoo.export(nets[0], "three", folder / "three.safetensors", extras=_priors(nets[0]), later_stages=later)
    return zoo.load_model(three, "cpu"), zoo.load_model(plain, "cpu")


@pytest.fixture
def photo_like():
    rng = np.random.default_rng(2)
    return Image.fromarray(np.repeat(rng.integers(0, 256, (12, 20, 3), np.uint8), 4, axis=0).repeat(4, axis=1))


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(int)


def _cut(data: bytes, keep: int) -> bytes:
    """The file up to the end of stage ``keep``'s record (length varint + payload + CRC)."""
    _, payloads = container.read_stages(data)
    for p in reversed(payloads[keep:]):
        data = data[: -(len(container._varint(len(p))) + len(p) + container.CRC_BYTES)]
    return data


def _forge(h: container.Header, payloads: list[bytes]) -> bytes:
    """Version-4 records under valid CRCs, whatever the header says."""
    header = container.header_bytes(replace(h, stages=1), 0)[:-1] + container._varint(h.stages)  # any count
    out = bytearray(header)
    for p in payloads:
        out += container._varint(len(p)) + p
        out += zlib.crc32(out).to_bytes(4, "big")
    return bytes(out)


def test_residual_maps_invert_each_other_within_range():
    rng = np.random.default_rng(0)
    decoded = rng.integers(60, 196, (50, 8, 8, 3), np.uint8)
    original = np.clip(decoded.astype(int) + rng.integers(-63, 64, decoded.shape), 0, 255).astype(np.uint8)
    refined = stages.add_residual(decoded, stages.residual_image(original, decoded))
    assert np.abs(refined.astype(int) - original).max() <= 1
    assert (stages.residual_image(decoded, decoded) == 128).all()  # nothing left: mid-grey


def test_the_model_file_holds_its_stages(staged):
    three, plain = staged
    assert three.stage_count == 3 and plain.stage_count == 1
    assert three.stage(1) is three and three.stage(3).id == three.id
    assert set(three.extras) == set(plain.extras)  # stage tensors are not stage 1's extras
    assert set(three.stage(2).extras) == set(plain.extras)  # each stage has its own priors


def test_stage_one_is_the_file_a_one_stage_model_writes(staged, photo_like):
    three, plain = staged
    one = codec.encode(photo_like, three)
    assert container.read(one)[0].version == 2 and one[8:-4] == codec.encode(photo_like, plain)[8:-4]
    two = codec.encode(photo_like, three, stage_count=2)
    h, payloads = container.read_stages(two)
    assert (h.version, h.stages, len(payloads)) == (4, 2, 2) and payloads[0] == container.read(one)[1]


def test_more_stages_refine_and_a_file_cut_after_a_stage_decodes(staged, photo_like):
    three, _ = staged
    files = [codec.encode(photo_like, three, stage_count=k) for k in (1, 2, 3)]
    assert len(files[0]) < len(files[1]) < len(files[2])
    pixels = [_pixels(codec.decode(f, three)) for f in files]
    assert not np.array_equal(pixels[0], pixels[1]) and not np.array_equal(pixels[1], pixels[2])
    for k in (1, 2):
        cut = _cut(files[2], k)
        assert np.array_equal(_pixels(codec.decode(cut, three)), pixels[k - 1])
        assert np.array_equal(_pixels(codec.decode(files[2], three, stage_limit=k)), pixels[k - 1])
        assert lbaecodec.info(cut).stages_present == k and lbaecodec.info(cut).stages == 3
    assert codec.decode(files[2], three).size == photo_like.size


def test_damage_inside_a_stage_is_refused_not_cut(staged, photo_like):
    three, _ = staged
    data = codec.encode(photo_like, three, stage_count=3)
    with pytest.raises(LbaeFormatError, match="truncated"):
        codec.decode(data[:-3], three)
    damaged = bytearray(data)
    damaged[-10] ^= 0x10  # inside stage 3's payload
    with pytest.raises(LbaeFormatError, match="CRC mismatch in stage 3"):
        codec.decode(bytes(damaged), three)
    with pytest.raises(LbaeFormatError, match="truncated"):
        container.read_stages(data[: len(container.header_bytes(container.read(data)[0], 0))])


def test_many_files_decode_as_each_alone(staged, photo_like, rgb_image):
    three, _ = staged
    files = [
        codec.encode(photo_like, three, stage_count=3),
        _cut(codec.encode(rgb_image, three, stage_count=3), 2),
        codec.encode(rgb_image, three),
        codec.encode(photo_like, three, stage_count=2, quality_level=4),
        b"LBA\x04garbage",
    ]
    together = codec.decode_many(files, three)
    assert isinstance(together[-1], LbaeFormatError)
    for data, image in zip(files[:-1], together, strict=False):
        assert np.array_equal(_pixels(image), _pixels(codec.decode(data, three)))
    assert codec.encode_many([photo_like, rgb_image], three, stage_count=3) == [
        codec.encode(img, three, stage_count=3) for img in (photo_like, rgb_image)
    ]


def test_stage_errors_are_clear(staged, photo_like, weights_dir):
    three, plain = staged
    with pytest.raises(InputError, match="has 3 stages"):
        codec.encode(photo_like, three, stage_count=4)
    with pytest.raises(InputError, match="one stage"):
        codec.encode(photo_like, plain, stage_count=2)
    with pytest.raises(InputError, match="version 4"):
        codec.encode(photo_like, three, stage_count=2, version=1)
    two = codec.encode(photo_like, three, stage_count=2)
    fake = zoo.Model(**{**three.__dict__, "later_stages": three.later_stages[:0]})  # the hash, no stages
    assert isinstance(codec.decode_many([two], fake)[0], ModelError)
    dual = zoo.load_model(weights_dir / "dual.safetensors", "cpu")
    for decoder in ("realism", "auto"):  # auto: the realism decoder, where the model has one
        with pytest.raises(InputError, match="fidelity"):
            codec.decode_codes_many(
                dual, [np.ones((1, 600))], [container.Grid(32, 32, 32)], decoder, [[np.ones((1, 600))]]
            )


def test_a_file_with_a_gap_in_its_stages_is_not_a_model(staged, tmp_path):
    tensors = load_file(str(staged[0].path))
    gap = {k.replace("stage3.", "stage4."): v for k, v in tensors.items()}
    save_file(gap, tmp_path / "gap.safetensors", metadata={"lbaecodec.arch": json.dumps(staged[0].arch.to_dict())})
    with pytest.raises(ModelError, match="stages"):
        zoo.load_model(tmp_path / "gap.safetensors", "cpu")
    broken = {k: (v[:1] if k == "stage2.model.decoder.from_latent.0.weight" else v) for k, v in tensors.items()}
    save_file(
        broken, tmp_path / "broken.safetensors", metadata={"lbaecodec.arch": json.dumps(staged[0].arch.to_dict())}
    )
    with pytest.raises(ModelError, match="stage2.model.decoder.from_latent.0.weight"):
        zoo.load_model(tmp_path / "broken.safetensors", "cpu")


def test_cli_stages(staged, photo_like, tmp_path):
    three, _ = staged
    src, out, rec = tmp_path / "in.png", tmp_path / "out.lbae", tmp_path / "rec.png"
    photo_like.save(src)
    runner = CliRunner()
    r = runner.invoke(cli.main, ["encode", str(src), str(out), "--model", str(three.path), "--stages", "3"])
    assert r.exit_code == 0, r.output
    out.with_name("cut.lbae").write_bytes(_cut(out.read_bytes(), 1))
    r = runner.invoke(cli.main, ["info", str(out.with_name("cut.lbae"))])
    assert r.exit_code == 0 and "1 of 3: the file was cut after stage 1" in r.output
    r = runner.invoke(cli.main, ["info", str(out)])
    assert "stages:       3 (payload" in r.output
    args = ["decode", str(out.with_name("cut.lbae")), str(rec), "--model", str(three.path)]
    r = runner.invoke(cli.main, args)
    assert r.exit_code == 0 and "holds 1 of its 3 stages" in r.output
    r = runner.invoke(cli.main, ["decode", str(out), str(rec), "--model", str(three.path), "--stages", "1", "--force"])
    assert r.exit_code == 0 and np.array_equal(
        _pixels(Image.open(rec)), _pixels(codec.decode(out.read_bytes(), three, stage_limit=1))
    )
    r = runner.invoke(
        cli.main, ["encode", str(src), str(tmp_path / "x.lbae"), "--model", str(three.path), "--stages", "4"]
    )
    assert r.exit_code != 0 and r.output.count("\n") == 1 and "has 3 stages" in r.output
    r = runner.invoke(
        cli.main, ["encode", str(src), "-o", str(tmp_path / "many"), "--model", str(three.path), "--stages", "9"]
    )
    assert r.exit_code != 0 and "has 3 stages" in r.output and not (tmp_path / "many").exists()


def test_stage_data_and_add_stage(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(photos, "TRAIN_TILES", 64)
    monkeypatch.setattr(photos, "HELD_OUT_TILES", 16)
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for k in range(3):
        Image.fromarray(np.repeat(rng.integers(0, 256, (30, 40, 3), np.uint8), 4, axis=0).repeat(4, axis=1)).save(
            folder / f"p{k}.png"
        )
    base = zoo.load_model(weights_dir / "cifar10.safetensors", "cpu")
    counts = write_residual_set(base, tmp_path / "res.npz", folder)
    assert counts == {"x_train": 64, "x_val": 16, "x_test": 16}
    with np.load(tmp_path / "res.npz") as z:
        train_tiles, val_tiles = z["x_train"], z["x_val"]
    run = tmp_path / "run"
    train(base.arch, train_tiles, val_tiles, run, Recipe(epochs=1, batch=16), show_progress=False)
    path = add_stage(base, run, tmp_path / "res.npz", "cifar10-s2", tmp_path / "s2.safetensors", folder, "test")
    m = zoo.load_model(path, "cpu")
    assert m.stage_count == 2 and m.id != base.id
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["base_model"] == base.id and [f["stages"] for f in card["test_tiles_by_stage"]] == [1, 2]
    assert card["later_stages"][0]["stage"] == 2
    with pytest.raises(InputError, match="not after"):
        add_stage(m, run, tmp_path / "res.npz", "x", tmp_path / "x.safetensors", folder, "test")
    img = Image.open(folder / "p0.png")
    assert codec.encode(img, m)[8:-4] == codec.encode(img, base)[8:-4]  # stage 1 unchanged
    assert codec.decode(codec.encode(img, m, stage_count=2), m).size == img.size


def test_mutated_staged_files_give_only_clean_errors(staged, rgb_image):
    """2,000 mutated version-4 files (bit flips, cuts, header fields and stage counts rewritten
    under valid CRCs): each decodes or is refused with an LbaeError, nothing else."""
    three, _ = staged
    tile = Image.fromarray(np.asarray(rgb_image)[:20, :20])
    seeds = [codec.encode(tile, three, coding=c, stage_count=k) for c in ("raw", "context") for k in (2, 3)]
    rng = random.Random(11)
    refused = 0
    for i in range(2_000):
        data = bytearray(rng.choice(seeds))
        if i % 3 == 0:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif i % 3 == 1:
            data = data[: rng.randrange(len(data))]
        else:
            h, payloads = container.read_stages(bytes(data))
            field = rng.choice(["width", "height", "coded_width", "coded_height", "stages"])
            value = rng.choice([0, 1, 2, 3, 16, 17, 31, 2**16, 2**31])
            data = _forge(replace(h, **{field: value}), payloads)
        try:
            codec.decode(bytes(data), three)
        except LbaeError:
            refused += 1
    assert refused > 1_000


def test_each_stage_count_has_its_own_seam_filter(staged, photo_like, tmp_path):
    three, _ = staged
    photo = np.asarray(photo_like.resize((96, 96)))
    post, _ = train_postfilter(three, [photo], PostFilterRecipe(steps=3, batch=2, crop=64), 2, log=lambda _: None)
    figures = evaluate_postfilter(three, post, [photo], 2)
    assert figures["stages"] == 2 and set(figures) >= {"with", "without"}
    torch.nn.init.constant_(post.layers[-1].bias, 0.1)  # a filter that visibly changes pixels
    path = add_postfilter(three, post, "three-pf2", tmp_path / "pf2.safetensors", {"note": "test"}, 2)
    with_filter = zoo.load_model(path, "cpu")
    assert with_filter.postfilter is None and with_filter.stage(2).postfilter is not None
    assert with_filter.stage(3).postfilter is None
    assert "stage2_postfilter" in json.loads(path.with_suffix(".json").read_text())
    plain = codec.encode(photo_like, three, stage_count=3)
    filtered = codec.encode(photo_like, with_filter, stage_count=3)
    for k in (1, 2, 3):
        before = _pixels(codec.decode(plain, three, stage_limit=k))
        after = _pixels(codec.decode(filtered, with_filter, stage_limit=k))
        assert np.array_equal(before, after) == (k != 2)
    with pytest.raises(ValueError, match="after stage 4"):
        add_postfilter(three, post, "three-pf4", tmp_path / "pf4.safetensors", {}, 4)
    args = ["add-postfilter", str(path), "--stages", "2", "--name", "x", "--out", str(tmp_path / "x.safetensors")]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code != 0 and "after 2 stage(s) already" in result.output


def test_a_stage_filter_of_the_wrong_shape_is_not_a_model(staged, tmp_path):
    three, _ = staged
    tensors = load_file(str(three.path))
    tensors["stage3.postfilter.layers.0.weight"] = torch.zeros(16, 5, 3, 3)
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=zoo.read_metadata(three.path))
    with pytest.raises(ModelError, match="stage3.postfilter"):
        zoo.load_model(tmp_path / "bad.safetensors", "cpu")


def test_a_tile_archive_trains_with_its_own_validation_split(tmp_path):
    from lbaecodec.lab.trainset import load_training_data

    rng = np.random.default_rng(0)
    tiles = {
        f"x_{s}": rng.integers(0, 256, (n, 32, 32, 3), np.uint8) for s, n in (("train", 20), ("val", 5), ("test", 4))
    }
    np.savez(tmp_path / "with.npz", **tiles)
    data = load_training_data("folder", str(tmp_path / "with.npz"), PRESETS["cifar10"])
    assert (len(data.train), len(data.val), len(data.test)) == (20, 5, 4)
    np.savez(tmp_path / "without.npz", x_train=tiles["x_train"], x_test=tiles["x_test"])
    assert load_training_data("folder", str(tmp_path / "without.npz"), PRESETS["cifar10"]).val is None


def test_the_onnx_path_refuses_stages_it_cannot_decode(staged, photo_like, tmp_path):
    from lbaecodec import onnx_runtime

    three, _ = staged
    with pytest.raises(InputError, match="ONNX runtime decodes one"):
        onnx_runtime.decode(codec.encode(photo_like, three, stage_count=2), tmp_path)
    pytest.importorskip("onnx")
    from lbaecodec.lab.onnx_export import export_onnx

    with pytest.raises(ModelError, match="residual stages"):
        export_onnx(three, tmp_path / "onnx")


SHIPPED_PHOTO_S2 = Path(__file__).resolve().parents[1] / "weights" / "lbae-photo-s2-600.safetensors"


def test_the_shipped_second_stage_lowers_the_error_at_every_quality():
    """`photo-s2` on a real photograph: two stages cost more bytes and give a smaller error than
    one, at every quality; stage 1 is `cifar10`'s own code."""
    m = zoo.load_model(SHIPPED_PHOTO_S2, "cpu")
    original = Image.open(SHIPPED_PHOTO_S2.parents[1] / "examples" / "astronaut.png").convert("RGB")
    for level in (1, 3, 5):
        one, two = (codec.encode(original, m, quality_level=level, stage_count=k) for k in (1, 2))
        errors = [np.mean((_pixels(codec.decode(f, m)) - _pixels(original)) ** 2) for f in (one, two)]
        assert len(two) > len(one) and errors[1] < errors[0], (level, errors)
    cifar10 = zoo.load_model(SHIPPED_PHOTO_S2.with_name("lbae-cifar10-600.safetensors"), "cpu")
    assert container.read(one)[1] == container.read(codec.encode(original, cifar10, quality_level=5))[1]


def test_the_shipped_filters_per_stage_count_refine_photo_s2():
    """`photo-s2f` is `photo-s2` plus a seam filter per number of stages: the same payloads, and
    after two stages a smaller error on a real photograph at low and native qualities."""
    plain = zoo.load_model(SHIPPED_PHOTO_S2, "cpu")
    filtered = zoo.load_model(SHIPPED_PHOTO_S2.with_name("lbae-photo-s2f-600.safetensors"), "cpu")
    assert [s.postfilter is not None for s in (filtered.stage(1), filtered.stage(2))] == [True, True]
    original = Image.open(SHIPPED_PHOTO_S2.parents[1] / "examples" / "astronaut.png").convert("RGB")
    for level in (1, 3):
        files = [codec.encode(original, m, quality_level=level, stage_count=2) for m in (plain, filtered)]
        assert container.read_stages(files[0])[1] == container.read_stages(files[1])[1]
        decoded = [codec.decode(f, m) for f, m in zip(files, (plain, filtered), strict=True)]
        errors = [np.mean((_pixels(img) - _pixels(original)) ** 2) for img in decoded]
        assert errors[1] < errors[0], (level, errors)


def test_photo_s2f2_adds_filters_against_the_grid_to_photo_s2():
    """`photo-s2f2` is stored as an extension of `photo-s2` (its two filters only): the same
    payloads as `photo-s2f`, and after two stages less of the tile grid on a real photograph."""
    from lbaecodec.lab.metrics import quality
    from lbaecodec.registry import META_BASE, read_metadata

    path = SHIPPED_PHOTO_S2.with_name("lbae-photo-s2f2-600.safetensors")
    assert META_BASE in read_metadata(path) and path.stat().st_size < 100_000
    models = [
        zoo.load_model(SHIPPED_PHOTO_S2.with_name(f"lbae-{n}-600.safetensors"), "cpu")
        for n in ("photo-s2f", "photo-s2f2")
    ]
    original = Image.open(SHIPPED_PHOTO_S2.parents[1] / "examples" / "astronaut.png").convert("RGB")
    files = [codec.encode(original, m, stage_count=2) for m in models]
    assert container.read_stages(files[0])[1] == container.read_stages(files[1])[1]
    grids = [quality.blockiness(_pixels(codec.decode(f, m)), 32) for f, m in zip(files, models, strict=True)]
    assert grids[1] < grids[0], grids
