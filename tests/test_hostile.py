"""Hostile inputs (issue 14, items 2 and 5–7): names read from files are never paths and never
reach the terminal raw; importing lbaecodec leaves Pillow's decompression-bomb guard alone;
outputs keep their mode, refuse folders and race safely; one number, one encoding."""
import subprocess
import sys
import zlib
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import lbaecodec
from lbaecodec import cli, container, zoo
from lbaecodec.errors import InputError, LbaeFormatError, ModelError, printable

from .conftest import make_model, save_image


def _renamed(data: bytes, name: str) -> bytes:
    """The same file claiming another model name (valid CRC)."""
    h, payload = container.read(data)
    return container.write(replace(h, model_name=name), payload)


@pytest.fixture
def data(rgb_image):
    return lbaecodec.encode(rgb_image, coding="raw")


@pytest.fixture
def png_file(tmp_path, rgb_image):
    rgb_image.save(tmp_path / "in.png")
    return tmp_path / "in.png"


@pytest.mark.parametrize("name", ["../weights/cifar10.safetensors", "x.safetensors", "/etc/passwd", "a/b", "UPPER"])
def test_a_name_from_a_file_is_never_opened_as_a_path(data, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    make_model(tmp_path, "x", "cifar10")  # a model file in the current folder, named as the header says
    with pytest.raises(LbaeFormatError, match="not a model name"):
        lbaecodec.decode(_renamed(data, name))


def test_a_name_not_installed_is_a_model_error(data):
    with pytest.raises(ModelError, match="not installed.*--model PATH"):
        lbaecodec.decode(_renamed(data, "elsewhere"))


def test_an_explicit_model_path_still_works(data, weights_dir):
    assert lbaecodec.decode(data, model=weights_dir / "cifar10.safetensors").size == (31, 33)


def test_control_characters_never_reach_the_terminal(data, tmp_path):
    evil = "cifar\x1b]0;owned\x07\x1b[2J"
    path = tmp_path / "evil.lbae"
    path.write_bytes(_renamed(data, evil))
    for args in (["info", path], ["decode", path, tmp_path / "o.png"]):
        r = CliRunner().invoke(cli.main, [str(a) for a in args])
        assert "\x1b" not in r.output and "\x07" not in r.output
        assert "\\x1b" in r.output
    assert printable("a\nb\x00") == "a\\nb\\x00"


def test_model_names_are_checked_when_exporting(tmp_path):
    from lbaecodec.network import LBAE, PRESETS

    with pytest.raises(ValueError, match="model name"):
        zoo.export(LBAE(PRESETS["mnist"]), "../evil", tmp_path / "m.safetensors")


def test_importing_leaves_pillows_bomb_guard_alone():
    code = "import PIL.Image as I; before = I.MAX_IMAGE_PIXELS; import lbaecodec.codec, lbaecodec.cli; print(I.MAX_IMAGE_PIXELS == before)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "True"


def test_a_decompression_bomb_is_a_one_line_input_error(tmp_path, monkeypatch):
    path = save_image(tmp_path, "big.png", np.zeros((40, 40, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # as a process that set a low guard
    r = CliRunner().invoke(cli.main, ["encode", str(path), str(tmp_path / "o.lbae")])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "decompression bomb" in r.output


def test_outputs_keep_their_mode_refuse_folders_and_race_safely(tmp_path, png_file):
    out = tmp_path / "o.lbae"
    out.write_bytes(b"old")
    out.chmod(0o600)
    assert CliRunner().invoke(cli.main, ["encode", str(png_file), str(out), "--force"]).exit_code == 0
    assert out.stat().st_mode & 0o777 == 0o600 and out.read_bytes()[:3] == b"LBA"
    r = CliRunner().invoke(cli.main, ["encode", str(png_file), str(tmp_path / "newdir") + "/"])
    assert r.exit_code == 2 and "is a directory" in r.output and not (tmp_path / "newdir").exists()
    tmp = tmp_path / "finished.part"
    tmp.write_bytes(b"mine")
    (tmp_path / "won.lbae").write_bytes(b"theirs")  # another writer got there between check and rename
    with pytest.raises(InputError, match="exists"):
        cli._publish_new(tmp, tmp_path / "won.lbae")
    assert (tmp_path / "won.lbae").read_bytes() == b"theirs"


def test_header_numbers_must_be_minimal(data):
    h, payload = container.read(data)
    body = bytearray(container.header_bytes(h, len(payload)))
    at = len(container.MAGIC) + 2 + len(h.model_name) + 4  # the width varint
    assert body[at] == h.width < 128
    body[at: at + 1] = bytes([h.width | 0x80, 0x00])  # the same width in two bytes
    forged = bytes(body) + payload
    forged += zlib.crc32(forged).to_bytes(4, "big")
    with pytest.raises(LbaeFormatError, match="non-minimal"):
        container.read(forged)


def test_info_refuses_a_raw_payload_that_cannot_fit_the_grid(data):
    h, payload = container.read(data)
    with pytest.raises(LbaeFormatError, match="tile grid"):
        lbaecodec.info(container.write(h, payload[:-1]))
