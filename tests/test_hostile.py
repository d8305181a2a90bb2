"""Hostile inputs (issue 14): bounded work before trust; names read from files are never paths and never
reach the terminal raw; importing lbaecodec leaves Pillow's decompression-bomb guard alone;
outputs keep their mode, refuse folders and race safely; one number, one encoding; model
files, cards and priors are checked (items 3 and 4) before anything is allocated."""

import json
import random
import subprocess
import sys
import zlib
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file, save_file

import lbaecodec
from lbaecodec import cli, codec, container, entropy, files, packing, registry, zoo
from lbaecodec.errors import InputError, LbaeError, LbaeFormatError, ModelError, printable

from .conftest import make_model, save_image


def _renamed(data: bytes, name: str) -> bytes:
    """The same file claiming another model name (valid CRC)."""
    h, payload = container.read(data)
    return container.write(replace(h, model_name=name), payload)


@pytest.fixture
def data(rgb_image):
    """A version-1 file: it names its model (version 2 names it by hash alone)."""
    return lbaecodec.encode(rgb_image, coding="raw", version=1)


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
    from lbaecodec.architecture import PRESETS
    from lbaecodec.network import LBAE

    with pytest.raises(InputError, match="model name"):
        zoo.export(LBAE(PRESETS["mnist"]), "../evil", tmp_path / "m.safetensors")
    r = CliRunner().invoke(cli.main, ["export", str(tmp_path), "--preset", "mnist", "--name", "Bad/Name"])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "model name" in r.output


def test_importing_leaves_pillows_bomb_guard_alone():
    code = (
        "import PIL.Image as I; before = I.MAX_IMAGE_PIXELS; import lbaecodec.codec, lbaecodec.cli; "
        "print(I.MAX_IMAGE_PIXELS == before)"
    )
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
        files._publish_new(tmp, tmp_path / "won.lbae")
    assert (tmp_path / "won.lbae").read_bytes() == b"theirs"


@pytest.mark.parametrize("version", [1, 2])
def test_header_numbers_must_be_minimal(rgb_image, version):
    h, payload = container.read(lbaecodec.encode(rgb_image, coding="raw", version=version))
    body = bytearray(container.header_bytes(h, len(payload)))
    at = len(container.MAGIC) + 1 + (1 + len(h.model_name) if version == 1 else 0) + 4  # the width varint
    assert body[at] == h.width < 128
    body[at : at + 1] = bytes([h.width | 0x80, 0x00])  # the same width in two bytes
    forged = bytes(body) + payload
    forged += zlib.crc32(forged).to_bytes(4, "big")
    with pytest.raises(LbaeFormatError, match="non-minimal"):
        container.read(forged)


def test_info_refuses_a_raw_payload_that_cannot_fit_the_grid(data):
    h, payload = container.read(data)
    with pytest.raises(LbaeFormatError, match="tile grid"):
        lbaecodec.info(container.write(h, payload[:-1]))


def _raw_safetensors(path, header) -> None:
    body = json.dumps(header).encode()
    path.write_bytes(len(body).to_bytes(8, "little") + body)


@pytest.mark.parametrize(
    "header, message",
    [
        ([1, 2], "not a JSON object"),
        ({"__metadata__": ["a"]}, "__metadata__"),
        ({"__metadata__": "text"}, "__metadata__"),
        (
            {
                "__metadata__": {
                    zoo.META_ARCH: json.dumps({"channels": 3, "size": 32, "bits": 600, "width": 400, "loss": "mse"})
                }
            },
            "width=400 outside",
        ),
        (
            {
                "__metadata__": {
                    zoo.META_ARCH: json.dumps(
                        {"channels": 3, "size": 32, "bits": 600, "width": 24, "loss": "mse", "upsample": ["resize"]}
                    )
                }
            },
            "upsample=\\['resize'\\]",
        ),
        (
            {
                "__metadata__": {
                    zoo.META_ARCH: json.dumps({"channels": 3, "size": 32, "bits": 600, "width": 200, "loss": "mse"})
                }
            },
            "missing",
        ),
        ({"__metadata__": {zoo.META_ARCH: "[]"}}, "architecture"),
    ],
)
def test_model_files_are_checked_before_anything_is_allocated(tmp_path, header, message):
    path = tmp_path / "m.safetensors"
    _raw_safetensors(path, header)
    with pytest.raises(ModelError, match=message):
        zoo.load_model(path, "cpu")
    r = CliRunner().invoke(cli.main, ["encode", str(path), str(tmp_path / "o.lbae"), "--model", str(path)])
    assert r.exit_code in (2, 4) and r.output.count("\n") == 1


@pytest.mark.parametrize("change", ["bf16", "missing", "shape"])
def test_bad_prior_tensors_are_one_line_model_errors(tmp_path, weights_dir, rgb_image, change):
    tensors = load_file(str(weights_dir / "cifar10.safetensors"))
    meta = zoo.read_metadata(weights_dir / "cifar10.safetensors")
    key = "prior.context_weight"
    if change == "bf16":
        tensors[key] = tensors[key].to(torch.bfloat16)
    elif change == "missing":
        del tensors["prior.context_bias"]
    else:
        tensors[key] = tensors[key][:5]
    path = tmp_path / "p.safetensors"
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ModelError, match="prior"):
        lbaecodec.encode(rgb_image, model=path)


def test_broken_cards_and_files_in_the_weights_folder_break_nothing(tmp_path, weights_dir, monkeypatch):
    folder = tmp_path / "w"
    folder.mkdir()
    for p in weights_dir.glob("cifar10.*"):
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "cifar10.json").write_bytes(b"\xff\xfe{not json")
    (folder / "empty.safetensors").write_bytes(b"")
    monkeypatch.setattr(registry, "weights_dirs", lambda: [folder])
    with pytest.warns(UserWarning):
        assert lbaecodec.load_model(device="cpu").card == {}
    r = CliRunner().invoke(cli.main, ["models"])
    assert r.exit_code == 0 and "cifar10" in r.output and "warning:" in r.output


def _claiming(data: bytes, width: int, height: int, payload: bytes | None = None) -> bytes:
    h, real = container.read(data)
    return container.write(replace(h, width=width, height=height), real if payload is None else payload)


def _no_work(monkeypatch):
    """Decoding work or a canvas would fail the test: refusals must come before them."""

    def forbidden(*a, **k):
        raise AssertionError("work started before the file was trusted")

    monkeypatch.setattr(entropy.constriction.stream.queue, "RangeDecoder", forbidden)
    monkeypatch.setattr(codec.tiling, "Canvas", forbidden)


def test_a_huge_grid_with_a_tiny_coded_payload_is_refused_before_any_work(rgb_image, monkeypatch):
    data = lbaecodec.encode(rgb_image, coding="context")
    _no_work(monkeypatch)
    forged = _claiming(data, 8000, 8000)  # ~300 bytes of payload for 62,500 tiles
    with pytest.raises(LbaeFormatError, match="cannot hold"):
        lbaecodec.decode(forged)
    assert lbaecodec.info(forged).tiles == 250 * 250  # info decodes no payload: it may describe it


def test_headers_over_the_pixel_limit_are_refused_before_the_model_loads(rgb_image, monkeypatch, tmp_path):
    data = lbaecodec.encode(rgb_image, coding="context")
    _no_work(monkeypatch)
    monkeypatch.setattr(zoo, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    forged = _claiming(data, 65535, 65535)
    for call in (lambda: lbaecodec.decode(forged), lambda: lbaecodec.info(forged)):
        with pytest.raises(InputError, match="over the limit"):
            call()
    (tmp_path / "f.lbae").write_bytes(_claiming(data, 100, 100))
    r = CliRunner().invoke(cli.main, ["info", str(tmp_path / "f.lbae"), "--max-pixels", "5000"])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "--max-pixels" in r.output
    assert CliRunner().invoke(cli.main, ["info", str(tmp_path / "f.lbae"), "--max-pixels", "0"]).exit_code == 0


def test_a_giant_coded_canvas_is_refused_before_the_model_loads(rgb_image, monkeypatch):
    """Version 3: the canvas of tiles is checked against the limit as well as the image."""
    h, payload = container.read(lbaecodec.encode(rgb_image, coding="context", quality_level=1))
    _no_work(monkeypatch)
    monkeypatch.setattr(zoo, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    forged = container.write(replace(h, coded_width=65535, coded_height=65535), payload)
    for call in (lambda: lbaecodec.decode(forged), lambda: lbaecodec.info(forged)):
        with pytest.raises(InputError, match="over the limit"):
            call()


def test_encode_checks_the_size_before_decoding_the_pixels(png_file, tmp_path):
    r = CliRunner().invoke(cli.main, ["encode", str(png_file), str(tmp_path / "o.lbae"), "--max-pixels", "100"])
    assert r.exit_code == 2 and "over the limit of 100" in r.output and not (tmp_path / "o.lbae").exists()


def test_mutation_fuzz_gives_only_clean_errors(rgb_image):
    """10,000 mutated files (bit flips, truncations, flips under a recomputed CRC, extreme header
    fields): each decodes or is refused with an LbaeError, nothing else."""
    m = lbaecodec.load_model(device="cpu")
    tile = Image.fromarray(np.asarray(rgb_image)[:20, :20])
    seeds = [
        lbaecodec.encode(tile, m, coding=c, version=v) for c in ("raw", "context", "context-tight") for v in (1, 2)
    ]
    seeds += [lbaecodec.encode(tile, m, coding="context", quality_level=q) for q in (1, 5)]  # version 3
    rng = random.Random(7)
    outcomes = {"decoded": 0, "refused": 0}
    for i in range(10_000):
        data = bytearray(rng.choice(seeds))
        if i % 4 == 0:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif i % 4 == 1:
            data = data[: rng.randrange(len(data))]
        elif i % 4 == 2:  # a flip the CRC does not catch
            data[rng.randrange(len(data) - 4)] ^= 1 << rng.randrange(8)
            data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "big")
        else:
            h, payload = container.read(bytes(data))
            canvas = ("coded_width", "coded_height") if h.version == 3 else ()
            field = rng.choice(["width", "height", "tile", "bits", *canvas])
            data = container.write(replace(h, **{field: rng.choice([1, 2, 31, 33, 2**16, 2**31, 2**62])}), payload)
        try:
            lbaecodec.decode(bytes(data), model=m)
            outcomes["decoded"] += 1
        except LbaeError:
            outcomes["refused"] += 1
    assert sum(outcomes.values()) == 10_000 and outcomes["refused"] > 7_000


def test_a_forged_giant_stays_within_a_memory_and_cpu_limit(rgb_image, weights_dir, tmp_path):
    """65535×65535 pixels claimed with no pixel limit: refused within 1.5 GB of address space
    beyond what torch maps when imported (a CUDA build maps far more than a CPU build) and a
    minute of CPU (the canvas alone would be 12 GB)."""
    model = weights_dir / "cifar10.safetensors"
    forged = tmp_path / "giant.lbae"
    forged.write_bytes(_claiming(lbaecodec.encode(rgb_image, model=model, coding="context"), 65535, 65535))
    code = (
        "import resource, sys, lbaecodec.codec; "
        "mapped = int(next(line for line in open('/proc/self/status') if line.startswith('VmSize:')).split()[1]); "
        "resource.setrlimit(resource.RLIMIT_AS, (mapped * 1024 + 1_500_000_000,) * 2); "
        "resource.setrlimit(resource.RLIMIT_CPU, (60, 60)); from lbaecodec.cli import main; "
        f"sys.argv = ['lbaecodec', 'decode', {str(forged)!r}, {str(tmp_path / 'o.png')!r}, "
        f"'--max-pixels', '0', '--model', {str(model)!r}, '--device', 'cpu']; main()"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 3 and "cannot hold" in r.stderr, r.stderr[-500:]


def test_the_range_decoder_stops_when_it_runs_past_its_words(weights_dir):
    """A payload long enough for the length check but cut short stops where its words run out,
    not after all bits of all tiles."""
    m = zoo.load_model(weights_dir / "cifar10.safetensors", "cpu")
    prior = packing.model_prior(m, container.Coding.CONTEXT)
    codes = np.where(np.random.default_rng(3).random((40, prior.bits)) < 0.5, 1.0, -1.0)
    payload = entropy.encode(codes, prior)
    cut = payload[: 4 * int(40 * prior.min_tile_bits / 32 + 8)]  # just over the length bound
    assert len(cut) < len(payload)
    with pytest.raises(ValueError, match=r"ends at bit (\d+)") as e:
        entropy.decode(cut, 40, prior)
    assert int(e.value.args[0].split("bit ")[1].split(" ")[0]) < prior.bits
    assert np.array_equal(entropy.decode(payload, 40, prior), codes)  # the whole payload still decodes
