from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lbaecodec
from lbaecodec import bits, codec, container, tiling, zoo
from lbaecodec.errors import InputError, LbaeFormatError, ModelError
from lbaecodec.images import to_float

from .conftest import save_image

SHIPPED_CIFAR10 = Path(__file__).resolve().parents[1] / "weights" / "lbae-cifar10-600.safetensors"


@pytest.mark.parametrize("shape", [(1, 1), (33, 31), (375, 500), (33, 31, 3), (375, 500, 3), (1, 1, 3)])
def test_round_trip_keeps_size_and_mode(tmp_path, shape):
    arr = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = save_image(tmp_path, "in.png", arr)
    data = lbaecodec.encode(path, coding="raw")
    out = lbaecodec.decode(data)
    assert len(lbaecodec.encode(path)) <= len(data)
    assert out.size == (shape[1], shape[0]) and out.mode == ("RGB" if len(shape) == 3 else "L")
    i = lbaecodec.info(data)
    payload = bits.packed_size(i.tiles * 600)
    assert (
        len(data)
        == i.header_bytes + payload
        == len(container.header_bytes(container.read(data)[0], payload)) + payload + container.CRC_BYTES
    )


def test_encoding_is_deterministic(rgb_image):
    assert lbaecodec.encode(rgb_image) == lbaecodec.encode(rgb_image.copy())


def test_gray_model_on_rgb_input(rgb_image):
    out = lbaecodec.decode(lbaecodec.encode(rgb_image, model="gray"))
    assert out.mode == "RGB" and out.size == rgb_image.size


def test_decode_refuses_other_weights(rgb_image):
    data = lbaecodec.encode(rgb_image)
    with pytest.raises(ModelError, match=r"cifar10@[0-9a-f]{8}.*other@[0-9a-f]{8}"):
        lbaecodec.decode(data, model="other")


@pytest.mark.parametrize(
    ("version", "message"),
    [(1, "needs model 'other', which is not installed"), (2, "of hash [0-9a-f]{8}, which is not")],
)
def test_decode_reports_missing_model(rgb_image, weights_dir, version, message):
    data = lbaecodec.encode(rgb_image, model=str(weights_dir / "other.safetensors"), version=version)
    (weights_dir / "other.safetensors").rename(weights_dir / "moved.safetensors.bak")
    try:
        with pytest.raises(ModelError, match=message):
            lbaecodec.decode(data)
    finally:
        (weights_dir / "moved.safetensors.bak").rename(weights_dir / "other.safetensors")


def test_reconstruction_matches_network_directly(rgb_image):
    """The codec's tiles go through the same network calls as training/eval do (in fp32)."""
    m = lbaecodec.load_model("cifar10", device="cpu").with_precision("fp32")
    img = rgb_image.crop((0, 0, 32, 32))
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255
    expected = m.net.decode(m.net.encode(x))[0].permute(1, 2, 0).mul(255).round().byte().numpy()
    decoded = lbaecodec.decode(lbaecodec.encode(img, model=m), precision="fp32")
    np.testing.assert_array_equal(np.asarray(decoded), expected)


def test_large_image_is_processed_in_fixed_batches(monkeypatch):
    m = lbaecodec.load_model("cifar10", device="cpu")
    seen = {"encoder": [], "decoder": []}
    for part, seen_by in seen.items():
        module = getattr(m.net, part)
        monkeypatch.setattr(module, "forward", lambda x, f=module.forward, s=seen_by: s.append(len(x)) or f(x))
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (100, 330, 3), dtype=np.uint8))
    # fp32: a bf16 decoder is a folded copy, which the patch would not see
    assert lbaecodec.decode(lbaecodec.encode(img, model=m), model=m, precision="fp32").size == (330, 100)
    tiles = 11 * 4
    assert seen["encoder"] == [tiling.TILE_BATCH] * -(-tiles // tiling.TILE_BATCH)
    assert seen["decoder"] == seen["encoder"]


@pytest.mark.parametrize("shipped", [False, True])
def test_a_tile_meets_the_network_alike_alone_and_among_others(shipped, weights_dir):
    """Fixed-size batches: a tile's float latents and decoded floats are the same whatever
    shares its batch, wherever it sits, and alone (padding), so bits and pixels never depend on
    which files or tiles were coded together."""
    m = zoo.load_model(SHIPPED_CIFAR10 if shipped else weights_dir / "cifar10.safetensors", "cpu")
    tiles = np.random.default_rng(2).integers(0, 256, (45, 32, 32, 3), dtype=np.uint8)

    def latents(batch):
        with torch.inference_mode():
            return m.net.encoder(to_float(batch)).numpy()

    together = np.concatenate(list(tiling.in_fixed_batches([tiles[:20], tiles[20:]], latents)))
    alone = np.concatenate([next(tiling.in_fixed_batches([t[None]], latents)) for t in tiles[::11]])
    np.testing.assert_array_equal(together[::11], alone)
    codes = np.where(together >= 0, 1.0, -1.0).astype(np.float32)
    canvases = codec.decode_codes_many(
        m, [codes[:3], codes[3:]], [tiling.Grid(96, 32, 32), tiling.Grid(32, 32 * 42, 32)]
    )
    single = codec.decode_codes(m, codes[4:5], tiling.Grid(32, 32, 32))
    np.testing.assert_array_equal(canvases[1].pixels[32:64], single.pixels)


def test_bad_inputs():
    with pytest.raises(InputError, match="no such file"):
        lbaecodec.encode("/nonexistent/x.png")
    with pytest.raises(InputError, match="not a readable image"):
        lbaecodec.encode(b"definitely not an image")
    with pytest.raises(LbaeFormatError):
        lbaecodec.decode(b"LBA\x01")


def test_payload_length_mismatch_is_a_format_error(rgb_image):
    h, payload = container.read(lbaecodec.encode(rgb_image, coding="context"))  # whole words
    with pytest.raises(LbaeFormatError, match="payload"):
        lbaecodec.decode(container.write(h, payload[:-1]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_decode_matches_cpu(rgb_image):
    data = lbaecodec.encode(rgb_image, device="cpu")
    gpu = np.asarray(lbaecodec.decode(data, device="cuda")).astype(int)
    cpu = np.asarray(lbaecodec.decode(data, device="cpu")).astype(int)
    assert np.abs(gpu - cpu).max() <= 1


def test_cuda_request_without_gpu_is_clean(rgb_image):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ModelError, match="no CUDA device"):
        lbaecodec.encode(rgb_image, device="cuda")


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "astronaut.png"


@pytest.mark.parametrize("box", [(0, 0, 1, 1), (10, 20, 41, 53), (0, 0, 256, 200)])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_real_photo_crops_round_trip(box, mode):
    img = Image.open(EXAMPLE).convert(mode).crop(box)
    data = lbaecodec.encode(img)
    out = lbaecodec.decode(data)
    assert (out.size, out.mode) == (img.size, mode)
    assert data == lbaecodec.encode(img.copy())


def test_all_format_versions_decode_to_the_same_pixels(rgb_image, tmp_path):
    v1, v2 = (lbaecodec.encode(rgb_image, version=v) for v in (1, 2))
    assert (container.read(v1)[0].version, container.read(v2)[0].version) == (1, 2)
    assert container.read(v1)[1] == container.read(v2)[1]  # the same payload in a smaller frame
    assert len(v1) - len(v2) == lbaecodec.info(v1).header_bytes - lbaecodec.info(v2).header_bytes > 0
    assert np.array_equal(np.asarray(lbaecodec.decode(v1)), np.asarray(lbaecodec.decode(v2)))
    one_tile = lbaecodec.encode(rgb_image.crop((0, 0, 32, 32)))
    assert lbaecodec.info(one_tile).header_bytes == 15 and lbaecodec.info(one_tile).tiles == 1
    v3 = lbaecodec.encode(rgb_image, version=3)  # version 3 at the image's own size: a canvas field more
    assert container.read(v3)[0].coded_size == rgb_image.size and len(v3) == len(v2) + 2
    assert np.array_equal(np.asarray(lbaecodec.decode(v3)), np.asarray(lbaecodec.decode(v2)))
    v4 = lbaecodec.encode(rgb_image, version=4)  # one stage in version 4's stage records
    assert container.read(v4)[0].stages == 1 and container.read(v4)[1] == container.read(v2)[1]
    assert np.array_equal(np.asarray(lbaecodec.decode(v4)), np.asarray(lbaecodec.decode(v2)))
    with pytest.raises(InputError, match="format version 5"):
        lbaecodec.encode(rgb_image, version=5)


def test_version_2_finds_its_model_by_hash_and_checks_an_explicit_one(rgb_image, weights_dir):
    data = lbaecodec.encode(rgb_image, model="other")  # not the default model: found by hash alone
    assert lbaecodec.info(data).model.startswith("other@")
    assert lbaecodec.decode(data).size == rgb_image.size
    assert lbaecodec.decode(data, model=weights_dir / "other.safetensors").size == rgb_image.size
    with pytest.raises(ModelError, match=r"other@[0-9a-f]{8}.*cifar10@"):
        lbaecodec.decode(data, model="cifar10")
