"""The quality knob: images coded on a smaller or larger canvas, format version 3."""

import json
import zlib
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import lbaecodec
from lbaecodec import cli, codec, container, quality
from lbaecodec.errors import InputError, LbaeFormatError

from .test_codec import SHIPPED_CIFAR10

ASTRONAUT = SHIPPED_CIFAR10.parents[1] / "examples" / "astronaut.png"


@pytest.fixture
def png_file(tmp_path, rgb_image):
    rgb_image.save(tmp_path / "in.png")
    return tmp_path / "in.png"


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("level", sorted(quality.SCALES))
def test_each_quality_round_trips_size_and_mode(rgb_image, mode, level):
    img = rgb_image.convert(mode)
    data = lbaecodec.encode(img, quality_level=level)
    h, _ = container.read(data)
    assert h.coded_size == quality.coded_size(img.width, img.height, level)
    assert h.version == (2 if level == quality.NATIVE else 3)
    out = lbaecodec.decode(data)
    assert (out.size, out.mode) == (img.size, mode)
    assert lbaecodec.info(data).quality == level


def test_the_native_quality_writes_what_files_without_a_quality_always_were(rgb_image):
    assert lbaecodec.encode(rgb_image, quality_level=quality.NATIVE) == lbaecodec.encode(rgb_image)


def test_version_3_header_round_trips_and_checks_the_canvas(rgb_image):
    h, payload = container.read(lbaecodec.encode(rgb_image, coding="raw", quality_level=1))
    assert container.read(container.write(h, payload)) == (h, payload)
    data = bytearray(container.write(h, payload))
    data[len(container.MAGIC) + 1 + 4 + 1 + 1 + 1] = 0  # the canvas width, after hash, size and flags
    data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "big")
    with pytest.raises(LbaeFormatError, match="zero dimension"):
        container.read(bytes(data))
    with pytest.raises(ValueError, match="version 3"):
        container.write(replace(h, version=2), payload)
    with pytest.raises(InputError, match="needs format version 3"):
        lbaecodec.encode(rgb_image, quality_level=1, version=1)
    assert len(lbaecodec.encode(rgb_image, coding="raw", quality_level=1)) - len(payload) == 15 + 2  # two varints


def test_higher_quality_never_gives_a_larger_error_on_a_photo():
    """The shipped cifar10 model on a real photograph: more bits, smaller error, at every step."""
    original = np.asarray(Image.open(ASTRONAUT).convert("RGB"), np.float64)
    m = lbaecodec.load_model(SHIPPED_CIFAR10, "cpu")
    sizes, errors = [], []
    for level in sorted(quality.SCALES):
        data = lbaecodec.encode(Image.fromarray(original.astype(np.uint8)), m, quality_level=level)
        sizes.append(len(data))
        errors.append(np.mean((np.asarray(codec.decode(data, m), np.float64) - original) ** 2))
    assert sizes == sorted(sizes) and errors == sorted(errors, reverse=True), (sizes, errors)


def test_cli_quality_info_and_errors(png_file, tmp_path):
    run = CliRunner().invoke
    out = tmp_path / "q.lbae"
    assert run(cli.main, ["encode", str(png_file), str(out), "--quality", "5"]).exit_code == 0
    r = run(cli.main, ["info", str(out)])
    assert "quality:      5 (coded on a" in r.output and "format version 3" in r.output
    assert json.loads(run(cli.main, ["info", str(out), "--json"]).output)["quality"] == 5
    r = run(cli.main, ["decode", str(out), str(tmp_path / "q.png")])
    assert r.exit_code == 0 and Image.open(tmp_path / "q.png").size == Image.open(png_file).size
    r = run(cli.main, ["encode", str(png_file), str(tmp_path / "x.lbae"), "--quality", "9"])
    assert r.exit_code == 2 and "--quality" in r.output
    r = run(cli.main, ["encode", str(png_file), str(tmp_path / "x.lbae"), "--quality", "1", "--format-version", "1"])
    assert r.exit_code == 2 and r.output.strip().endswith("needs format version 3 (not 1)")
    assert not (tmp_path / "x.lbae").exists()


def test_many_files_take_the_quality_too(png_file, tmp_path):
    r = CliRunner().invoke(cli.main, ["encode", str(png_file), "-o", str(tmp_path / "o"), "--quality", "2"])
    assert r.exit_code == 0, r.output
    data = (tmp_path / "o" / png_file.with_suffix(".lbae").name).read_bytes()
    assert data == lbaecodec.encode(Image.open(png_file), quality_level=2)


def test_pillow_saves_with_a_quality(rgb_image, tmp_path):
    from lbaecodec.pillow import register_lbae_opener

    register_lbae_opener()
    rgb_image.save(tmp_path / "p.lbae", quality=1)
    assert lbaecodec.info((tmp_path / "p.lbae").read_bytes()).quality == 1
    assert Image.open(tmp_path / "p.lbae").size == rgb_image.size
