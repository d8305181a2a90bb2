from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lbaecodec
from lbaecodec import bits, container, tiling
from lbaecodec.errors import InputError, LbaeFormatError, ModelError

from .conftest import save_image


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


def test_decode_reports_missing_model(rgb_image, weights_dir):
    data = lbaecodec.encode(rgb_image, model=str(weights_dir / "other.safetensors"))
    (weights_dir / "other.safetensors").rename(weights_dir / "moved.safetensors.bak")
    try:
        with pytest.raises(ModelError, match="needs model 'other', which is not installed"):
            lbaecodec.decode(data)
    finally:
        (weights_dir / "moved.safetensors.bak").rename(weights_dir / "other.safetensors")


def test_reconstruction_matches_network_directly(rgb_image):
    """The codec's tiles go through the same network calls as training/eval do."""
    m = lbaecodec.load_model("cifar10", device="cpu")
    img = rgb_image.crop((0, 0, 32, 32))
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255
    expected = m.net.decode(m.net.encode(x))[0].permute(1, 2, 0).mul(255).round().byte().numpy()
    np.testing.assert_array_equal(np.asarray(lbaecodec.decode(lbaecodec.encode(img, model=m))), expected)


def test_large_image_is_processed_in_batches(monkeypatch):
    monkeypatch.setattr(tiling, "TILE_BATCH", 7)
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (100, 330, 3), dtype=np.uint8))
    data = lbaecodec.encode(img)
    monkeypatch.setattr(tiling, "TILE_BATCH", 256)
    assert data == lbaecodec.encode(img)
    assert lbaecodec.decode(data).size == (330, 100)


def test_bad_inputs():
    with pytest.raises(InputError, match="no such file"):
        lbaecodec.encode("/nonexistent/x.png")
    with pytest.raises(InputError, match="not a readable image"):
        lbaecodec.encode(b"definitely not an image")
    with pytest.raises(LbaeFormatError):
        lbaecodec.decode(b"LBA\x01")


def test_payload_length_mismatch_is_a_format_error(rgb_image):
    h, payload = container.read(lbaecodec.encode(rgb_image))
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
