"""The Pillow plugin: .lbae files open and save where every other format does."""

import io

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import lbaecodec
import lbaecodec.pillow as plugin
from lbaecodec.errors import LbaeFormatError


@pytest.fixture(autouse=True)
def default_options():
    plugin.register_lbae_opener()
    yield
    plugin.register_lbae_opener()


def test_registered_extension_and_mime():
    assert Image.registered_extensions()[".lbae"] == "LBAE"
    assert Image.MIME["LBAE"] == "image/x-lbae"


def test_save_and_open_match_the_library(rgb_image, tmp_path):
    path = tmp_path / "x.lbae"
    rgb_image.save(path, model="cifar10")  # format from the extension
    assert path.read_bytes() == lbaecodec.encode(rgb_image, model="cifar10", device="cpu")
    with Image.open(path) as img:
        assert (img.format, img.size, img.mode) == ("LBAE", rgb_image.size, "RGB")
        assert img.info["lbae_model"].startswith("cifar10@") and img.info["lbae_coding"] == "context-tight"
        pixels = np.asarray(img)
    assert np.array_equal(pixels, np.asarray(lbaecodec.decode(path.read_bytes(), device="cpu")))


def test_gray_and_save_options(tmp_path):
    buf = io.BytesIO()
    Image.new("L", (20, 10), 90).save(buf, format="LBAE", model="gray", coding="raw")
    info = lbaecodec.info(buf.getvalue())
    assert (info.model.split("@")[0], info.coding, info.mode) == ("gray", "raw", "L")
    assert Image.open(io.BytesIO(buf.getvalue())).convert("L").size == (20, 10)
    with pytest.raises(ValueError, match="unknown .lbae save options: modle"):
        Image.new("L", (8, 8)).save(io.BytesIO(), format="LBAE", modle="gray")


def test_decoder_option(tmp_path, rgb_image):
    data = lbaecodec.encode(rgb_image, model="dual", device="cpu")
    plugin.register_lbae_opener(decoder="realism")
    realism = np.asarray(Image.open(io.BytesIO(data)))
    assert np.array_equal(realism, np.asarray(lbaecodec.decode(data, device="cpu", decoder="realism")))
    assert not np.array_equal(realism, np.asarray(lbaecodec.decode(data, device="cpu")))


def test_other_files_untouched(rgb_image):
    buf = io.BytesIO()
    rgb_image.save(buf, format="PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).format == "PNG"
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(b"LB not quite a header, nor any image"))


def test_corrupt_file_raises_our_error(rgb_image):
    data = bytearray(lbaecodec.encode(rgb_image, model="cifar10", device="cpu"))
    data[-6] ^= 0x10
    with pytest.raises(LbaeFormatError, match="CRC"):
        Image.open(io.BytesIO(bytes(data)))


def test_pixel_limit_before_any_work(rgb_image):
    data = lbaecodec.encode(rgb_image, model="cifar10", device="cpu")
    plugin.register_lbae_opener(max_pixels=100)
    with pytest.raises(lbaecodec.InputError, match="over the limit of 100"):
        Image.open(io.BytesIO(data))


def test_encode_still_refuses_an_lbae_file(rgb_image, tmp_path):
    """With the plugin registered Pillow can open .lbae files, but encoding one stays an error
    (re-encoding decoded pixels is a lossy detour a user should ask for explicitly)."""
    path = tmp_path / "x.lbae"
    path.write_bytes(lbaecodec.encode(rgb_image, model="cifar10", device="cpu"))
    with pytest.raises(lbaecodec.InputError, match="decode it first"):
        lbaecodec.encode(path, model="cifar10", device="cpu")
