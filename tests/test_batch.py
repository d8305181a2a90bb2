"""Many files per call: `encode INPUTS... -o DIR` and `decode INPUTS... -o DIR`."""

import io

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from lbaecodec import batch, cli
from lbaecodec.errors import InputError

from .conftest import save_image


def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


@pytest.fixture
def images(tmp_path):
    """Five images of several sizes and modes, two of them in a subfolder."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for i, (h, w) in enumerate([(32, 32), (20, 45), (64, 33), (32, 32), (9, 70)]):
        where = folder / "sub" if i >= 3 else folder
        save_image(where, f"im{i}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    save_image(folder, "gray.png", rng.integers(0, 256, (30, 30), dtype=np.uint8), "L")
    return folder


def test_batch_equals_single_calls_byte_for_byte(images, tmp_path):
    r = run("encode", images, "-r", "-o", tmp_path / "coded")
    assert r.exit_code == 0, r.output
    assert "6 of 6 files written" in r.output
    sources = sorted(images.rglob("*.png"))
    for source in sources:
        relative = source.relative_to(images).with_suffix(".lbae")
        assert run("encode", source, tmp_path / "one.lbae", "--force").exit_code == 0
        assert (tmp_path / "coded" / relative).read_bytes() == (tmp_path / "one.lbae").read_bytes()
    assert run("decode", tmp_path / "coded", "-r", "-o", tmp_path / "back").exit_code == 0
    for source in sources:
        coded = tmp_path / "coded" / source.relative_to(images).with_suffix(".lbae")
        assert run("decode", coded, tmp_path / "one.png", "--force").exit_code == 0
        decoded = tmp_path / "back" / source.relative_to(images).with_suffix(".png")
        assert decoded.read_bytes() == (tmp_path / "one.png").read_bytes()


def test_without_recursion_only_the_folder_itself(images, tmp_path):
    assert run("encode", images, images / "sub" / "im3.png", "-o", tmp_path / "out").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "gray.lbae",
        "im0.lbae",
        "im1.lbae",
        "im2.lbae",
        "im3.lbae",
    ]


def test_a_bad_file_among_good_ones(images, tmp_path):
    (images / "broken.png").write_bytes(b"not a png at all")
    r = run("encode", images, "-o", tmp_path / "out")
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert r.exit_code == 2 and len(errors) == 1 and "broken.png" in errors[0] and "Traceback" not in r.output
    assert "4 of 5 files written" in r.output and "1 failed" in r.output
    assert len(list((tmp_path / "out").glob("*.lbae"))) == 4
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left behind
    (tmp_path / "out" / "im0.lbae").write_bytes(b"LBA\x01 truncated")
    r = run("decode", tmp_path / "out", "-o", tmp_path / "back")
    assert r.exit_code == 3 and "3 of 4 files written" in r.output


def test_files_grouped_one_by_one_code_and_fail_as_in_one_group(images, tmp_path, monkeypatch):
    (images / "broken.png").write_bytes(b"not a png at all")
    assert run("encode", images, "-o", tmp_path / "together").exit_code == 2
    monkeypatch.setattr(batch, "GROUP_PIXELS", 1)  # every file its own group
    r = run("encode", images, "-o", tmp_path / "apart")
    assert r.exit_code == 2 and "4 of 5 files written" in r.output and "broken.png" in r.output
    for coded in (tmp_path / "together").glob("*.lbae"):
        assert (tmp_path / "apart" / coded.name).read_bytes() == coded.read_bytes()
    assert run("decode", tmp_path / "apart", "-o", tmp_path / "back").exit_code == 0
    assert len(list((tmp_path / "back").glob("*.png"))) == 4


def test_existing_outputs_need_force(images, tmp_path):
    assert run("encode", images, "-o", tmp_path / "out").exit_code == 0
    r = run("encode", images, "-o", tmp_path / "out")
    assert r.exit_code == 2 and r.output.count("--force") == 4
    assert run("encode", images, "-o", tmp_path / "out", "--force").exit_code == 0


def test_workers_give_the_same_files(images, tmp_path, weights_dir):
    model = weights_dir / "cifar10.safetensors"  # by path: worker processes need no name lookup
    for workers in (1, 2):
        r = run("encode", images, "-r", "-o", tmp_path / f"w{workers}", "--workers", workers, "--model", model)
        assert r.exit_code == 0, r.output
    for one in (tmp_path / "w1").rglob("*.lbae"):
        assert one.read_bytes() == (tmp_path / "w2" / one.relative_to(tmp_path / "w1")).read_bytes()


def test_workers_are_spawned_once_cuda_has_started(images, tmp_path, weights_dir, monkeypatch):
    """A process that has started CUDA cannot fork workers that use it (found on a GPU machine):
    they are spawned instead, and write the same files."""
    model = weights_dir / "cifar10.safetensors"
    run("encode", images, "-r", "-o", tmp_path / "one", "--model", model)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert batch._pool_context().get_start_method() == "spawn"
    r = run("encode", images, "-r", "-o", tmp_path / "spawned", "--workers", 2, "--model", model)
    assert r.exit_code == 0, r.output
    for one in (tmp_path / "one").rglob("*.lbae"):
        assert one.read_bytes() == (tmp_path / "spawned" / one.relative_to(tmp_path / "one")).read_bytes()


def test_usage_errors(images, tmp_path):
    for args, message in [
        ((images / "gray.png",), "give one input and its OUTPUT"),
        ((images / "gray.png", images / "im0.png", tmp_path / "x.lbae"), "several inputs with -o"),
        ((tmp_path / "missing", "-o", tmp_path / "out"), "no such file or folder"),
        ((tmp_path, "-o", tmp_path / "out"), "no input files found"),
        ((images, "-o", tmp_path / "out", "--workers", 0), "--workers must be at least 1"),
    ]:
        r = run("encode", *args)
        assert r.exit_code == 2 and message in r.output, (args, r.output)
    assert run("encode", images, "-o", tmp_path / "coded").exit_code == 0
    r = run("decode", tmp_path / "coded", "-o", tmp_path / "back", "--format", "foo")
    assert r.exit_code == 2 and "cannot write FOO images" in r.output and not (tmp_path / "back").exists()
    (images / "im0.jpg").write_bytes((images / "im0.png").read_bytes())
    r = run("encode", images, "-o", tmp_path / "out")
    assert r.exit_code == 2 and "would both write" in r.output


def test_decoded_png_is_written_with_the_quick_zlib_strategy(rgb_image):
    from lbaecodec.images import PNG_OPTIONS, image_bytes

    data = image_bytes(rgb_image, "png")
    expected = io.BytesIO()
    rgb_image.save(expected, "PNG", **PNG_OPTIONS)
    assert data == expected.getvalue()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(rgb_image))
    with pytest.raises(InputError, match="cannot write FOO images"):
        image_bytes(rgb_image, "foo")
