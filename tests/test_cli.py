import json
import random
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from lbaecodec import cli, files, registry

from .conftest import save_image


def run(*args, input=None):
    return CliRunner().invoke(cli.main, [str(a) for a in args], input=input)


@pytest.fixture
def png(tmp_path):
    return save_image(tmp_path, "in.png", np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))


def test_encode_decode_info(tmp_path, png):
    out, rec = tmp_path / "a.lbae", tmp_path / "rec.png"
    assert run("encode", png, out).exit_code == 0
    r = run("info", out, "--json")
    assert r.exit_code == 0
    fields = json.loads(r.output)
    assert fields["tiles"] == 4 and fields["code_bits"] == 2400 and fields["raw_payload_bytes"] == 300
    assert fields["coding"] == "context-tight" and fields["payload_bytes"] < 300
    assert fields["file_bytes"] == out.stat().st_size
    assert run("encode", png, out, "--raw", "--force").exit_code == 0
    assert json.loads(run("info", out, "--json").output)["payload_bytes"] == 300
    assert "header+CRC" in run("info", out).output
    assert run("decode", out, rec).exit_code == 0
    assert rec.stat().st_size > 0


def test_stdin_stdout(png):
    r = run("encode", png, "-")
    assert r.exit_code == 0 and r.stdout_bytes[:3] == b"LBA"
    d = run("decode", "-", "-", input=r.stdout_bytes)
    assert d.exit_code == 0 and d.stdout_bytes[:8] == b"\x89PNG\r\n\x1a\n"


def test_refuses_overwrite_without_force(tmp_path, png):
    out = tmp_path / "a.lbae"
    out.write_bytes(b"keep")
    r = run("encode", png, out)
    assert r.exit_code == 2 and "--force" in r.output and out.read_bytes() == b"keep"
    assert run("encode", png, out, "--force").exit_code == 0


def one_line_error(result, code):
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output


def test_error_exit_codes(tmp_path, png):
    lbae = tmp_path / "a.lbae"
    run("encode", png, lbae)
    data = lbae.read_bytes()
    bad = tmp_path / "bad.lbae"
    one_line_error(run("encode", tmp_path / "missing.png", tmp_path / "x.lbae"), 2)
    one_line_error(run("encode", lbae, tmp_path / "x.lbae"), 2)  # not an image
    one_line_error(run("decode", tmp_path / "missing.lbae", tmp_path / "x.png"), 2)
    bad.write_bytes(data[:-5])
    one_line_error(run("decode", bad, tmp_path / "x.png"), 3)
    bad.write_bytes(b"XYZ" + data[3:])
    one_line_error(run("decode", bad, tmp_path / "x.png"), 3)
    bad.write_bytes(data[:3] + b"\x07" + data[4:])
    one_line_error(run("decode", bad, tmp_path / "x.png"), 3)
    one_line_error(run("decode", lbae, tmp_path / "x.png", "--model", "other"), 4)
    one_line_error(run("encode", png, tmp_path / "y.lbae", "--model", "nope"), 4)
    one_line_error(run("decode", lbae, tmp_path / "x.unknownext"), 2)
    one_line_error(run("encode", png, tmp_path / "no" / "dir.lbae"), 2)
    one_line_error(run("info", bad), 3)
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.lbae").exists()


def test_fuzzed_files_give_one_line_errors(tmp_path, png):
    lbae = tmp_path / "a.lbae"
    run("encode", png, lbae)
    data = lbae.read_bytes()
    rng = random.Random(1)
    for i in range(40):
        b = bytearray(data)
        if i % 2:
            b = b[: rng.randrange(len(b))]
        else:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        (tmp_path / "f.lbae").write_bytes(bytes(b))
        one_line_error(run("decode", tmp_path / "f.lbae", tmp_path / "f.png"), 3)
        assert not (tmp_path / "f.png").exists()


def test_failed_write_leaves_no_partial_file(tmp_path, png, monkeypatch):
    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", broken)
    monkeypatch.setattr(files.os, "link", broken)
    r = run("encode", png, tmp_path / "a.lbae")
    assert r.exit_code == 1 and "No space left" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_models_lists_test_models():
    r = run("models")
    assert r.exit_code == 0 and "cifar10" in r.output and "gray" in r.output
    header, *rows, footer = r.output.splitlines()
    assert header.split()[:4] == ["model", "bits", "tile", "width"] and "--json" in footer
    assert len({row.index(" 600 ") for row in rows if " 600 " in row}) == 1  # the bits column lines up
    assert [row.split()[0] for row in rows if "the default model" in row] == ["cifar10"]  # the test zoo's default
    cards = json.loads(run("models", "--json").output)
    assert {c["name"] for c in cards} == {"cifar10", "gray", "other", "dual", "hidden"}


MALFORMED_CARD_FIELDS = [{"test_fid_realism": None, "realism": {}}, {"test_fid": "high"}, {"architecture": 3}]


@pytest.mark.parametrize("field", MALFORMED_CARD_FIELDS)
def test_models_survives_a_malformed_card(tmp_path, weights_dir, monkeypatch, field):
    for path in weights_dir.glob("cifar10.*"):
        shutil.copy(path, tmp_path)
    card = next(tmp_path.glob("*.json"))
    card.write_text(json.dumps({**json.loads(card.read_text()), **field}))
    monkeypatch.setattr(registry, "weights_dirs", lambda: [tmp_path])
    r = run("models")
    assert r.exit_code == 0 and "cifar10" in r.output and "Traceback" not in r.output


def test_help_teaches():
    out = run("encode", "--help").output
    for word in ("--model", "--device", "--force", "Example"):
        assert word in out


@pytest.mark.parametrize("args", [["--help"], ["info", "FILE"], ["models"], ["encode", "--help"]])
def test_quick_commands_do_not_load_torch(tmp_path, png, args):
    """`--help`, `info` and `models` start fast: neither they nor `import lbaecodec` load torch."""
    import subprocess
    import sys

    assert run("encode", png, tmp_path / "a.lbae").exit_code == 0
    args = [str(tmp_path / "a.lbae") if a == "FILE" else a for a in args]
    code = (
        "import sys, lbaecodec; from lbaecodec.cli import main; sys.argv = ['lbaecodec', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "False", r.stderr[-500:]


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--threads", "-2"],
        ["train", "--batch", "0"],
        ["train", "--lr", "-1"],
        ["train", "--epochs", "-1"],
        ["add-prior", "cifar10", "--groups", "0", "--name", "x", "--out", "x.safetensors"],
        ["evaluate", "--limit", "0"],
    ],
)
def test_numeric_options_are_checked_before_any_data_is_read(args, monkeypatch):
    from lbaecodec.lab import data

    monkeypatch.setattr(data, "load", lambda *a, **k: pytest.fail("data read before the options were checked"))
    r = run(*args)
    assert r.exit_code == 2 and "is not in the range" in r.output and "Traceback" not in r.output
