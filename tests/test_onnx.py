"""ONNX export: ONNX Runtime gives our encoder's bits exactly and our decoders' pixels within
1/255, and `decode --runtime onnx` works without torch."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import lbaecodec
from lbaecodec import cli, tiling, zoo
from lbaecodec.images import to_float
from lbaecodec.lab.onnx_export import export_onnx
from lbaecodec.network import Decoder

ort = pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "weights" / "lbae-cifar10-600.safetensors"


@pytest.fixture(scope="module")
def shipped_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx-cifar10")
    return zoo.load_model(SHIPPED, "cpu"), export_onnx(zoo.load_model(SHIPPED, "cpu"), folder)


def _tiles() -> np.ndarray:
    """The example photo's 64 tiles and 64 of noise: uint8 (128, 32, 32, 3)."""
    photo = tiling.as_model_array(Image.open(ROOT / "examples" / "astronaut.png"), 3)
    tiles = np.concatenate(list(tiling.iter_tile_batches(photo, 32, 256)))
    noise = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    return np.concatenate([tiles, noise])


def _run(folder: Path, name: str, feed: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(feed, np.float32)})[0]


def test_encoder_bits_are_exact(shipped_export):
    model, folder = shipped_export
    x = to_float(_tiles())
    with torch.inference_mode():
        expected = model.net.encode(x).numpy()
    assert np.array_equal(_run(folder, "encoder.onnx", x.numpy()), expected)


def test_decoders_within_one_level(shipped_export, tmp_path):
    model, folder = shipped_export
    codes = np.where(np.random.default_rng(1).random((64, 600)) < 0.5, -1.0, 1.0).astype(np.float32)
    with torch.inference_mode():
        expected = model.net.decode(torch.from_numpy(codes)).numpy()
    assert np.abs(_run(folder, "decoder-fidelity.onnx", codes) - expected).max() * 255 < 1
    dual = zoo.load_model("dual", "cpu")  # a test model with a realism decoder
    dual_folder = export_onnx(dual, tmp_path / "dual")
    assert set(json.loads((dual_folder / "model.json").read_text())["decoders"]) == {"fidelity", "realism"}
    with torch.inference_mode():
        expected = dual.with_decoder("realism").decode(torch.from_numpy(codes)).numpy()
    assert np.abs(_run(dual_folder, "decoder-realism.onnx", codes) - expected).max() * 255 < 1


def test_a_resize_realism_decoder_exports_within_one_level(tmp_path):
    dual = zoo.load_model("dual", "cpu")
    resized = Decoder(dual.arch.with_decoder(8, "resize").decoder_arch).eval()
    model = dataclasses.replace(dual, realism=resized)
    folder = export_onnx(model, tmp_path / "resized")
    codes = np.where(np.random.default_rng(2).random((16, dual.arch.bits)) < 0.5, -1.0, 1.0).astype(np.float32)
    with torch.inference_mode():
        expected = model.with_decoder("realism").decode(torch.from_numpy(codes)).numpy()
    assert np.abs(_run(folder, "decoder-realism.onnx", codes) - expected).max() * 255 < 1


def test_manifest_says_what_a_foreign_decoder_needs(shipped_export):
    model, folder = shipped_export
    manifest = json.loads((folder / "model.json").read_text())
    assert (manifest["model_id"], manifest["tile"], manifest["channels"], manifest["bits"]) == (model.id, 32, 3, 600)
    weight = manifest["priors"]["context"]["weight"]
    assert weight["shape"] == [600, 600] and (folder / weight["file"]).stat().st_size == 600 * 600 * 2
    assert (folder / manifest["probabilities"]["file"]).read_bytes() == (
        ROOT / "lbaecodec" / "probabilities.u32"
    ).read_bytes()


def test_cli_decode_with_onnx_runtime(shipped_export, tmp_path):
    model, folder = shipped_export
    data = lbaecodec.encode(ROOT / "examples" / "astronaut.png", model=model, device="cpu")
    (tmp_path / "a.lbae").write_bytes(data)
    args = ["decode", str(tmp_path / "a.lbae"), str(tmp_path / "a.png"), "--runtime", "onnx", "--onnx-dir", str(folder)]
    assert CliRunner().invoke(cli.main, args).exit_code == 0
    onnx_pixels = np.asarray(Image.open(tmp_path / "a.png")).astype(int)
    torch_pixels = np.asarray(lbaecodec.decode(data, model=model, device="cpu", precision="fp32")).astype(int)
    assert np.abs(onnx_pixels - torch_pixels).max() <= 1
    code = (
        "import sys; from lbaecodec import onnx_runtime\n"
        f"onnx_runtime.decode(open({str(tmp_path / 'a.lbae')!r}, 'rb').read(), {str(folder)!r})\n"
        "print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split() == ["False"], r.stderr[-800:]
    from lbaecodec import onnx_runtime

    small = lbaecodec.encode(ROOT / "examples" / "astronaut.png", model=model, device="cpu", quality_level=2)
    resampled = np.asarray(onnx_runtime.decode(small, folder)).astype(int)  # a version-3 file: canvas resized back
    assert resampled.shape == torch_pixels.shape
    torch_resampled = lbaecodec.decode(small, model=model, device="cpu", precision="fp32")
    assert np.abs(resampled - np.asarray(torch_resampled).astype(int)).max() <= 2


def test_missing_export_is_one_line(tmp_path, rgb_image):
    (tmp_path / "a.lbae").write_bytes(lbaecodec.encode(rgb_image, model="cifar10", device="cpu"))
    args = [
        "decode",
        str(tmp_path / "a.lbae"),
        str(tmp_path / "a.png"),
        "--runtime",
        "onnx",
        "--onnx-dir",
        str(tmp_path),
    ]
    r = CliRunner().invoke(cli.main, args)
    assert r.exit_code == 4 and r.output.count("\n") == 1 and "no ONNX export here" in r.output


def test_many_files_with_onnx_runtime(shipped_export, tmp_path):
    """encode/decode -o --runtime onnx: the torch runtime's files byte for byte, its pixels within
    one level, and torch never imported."""
    model, folder = shipped_export
    sources = sorted((ROOT / "examples").glob("*.png"))
    code = (
        "import sys\nfrom lbaecodec.cli import main\n"
        "for args in sys.argv[1:]:\n"
        "    try:\n        main(args.split('|'))\n    except SystemExit as e:\n        assert not e.code, e.code\n"
        "print('torch' in sys.modules)"
    )
    onnx = ["--runtime", "onnx", "--onnx-dir", str(folder)]
    encode = ["encode", *map(str, sources), "-o", str(tmp_path / "coded"), *onnx]
    decode = ["decode", str(tmp_path / "coded"), "-o", str(tmp_path / "back"), *onnx]
    r = subprocess.run([sys.executable, "-c", code, "|".join(encode), "|".join(decode)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split() == ["False"], r.stderr[-800:]
    for source in sources:
        data = (tmp_path / "coded" / source.name).with_suffix(".lbae").read_bytes()
        assert data == lbaecodec.encode(source, model=model, device="cpu")
        onnx_pixels = np.asarray(Image.open(tmp_path / "back" / source.name)).astype(int)
        torch_pixels = lbaecodec.decode(data, model=model, device="cpu", precision="fp32")
        assert np.abs(onnx_pixels - np.asarray(torch_pixels)).max() <= 1


def test_onnx_dir_names_the_model(shipped_export, tmp_path, rgb_image):
    _, folder = shipped_export
    rgb_image.save(tmp_path / "a.png")
    args = ["encode", str(tmp_path / "a.png"), str(tmp_path / "a.lbae"), "--onnx-dir", str(folder)]
    for extra in ([], ["--runtime", "onnx", "--model", "cifar10"]):
        r = CliRunner().invoke(cli.main, args + extra)
        assert r.exit_code == 2 and r.output.count("\n") == 1 and "drop --model" in r.output


def test_encode_without_an_export_says_how_to_make_one(tmp_path, rgb_image, monkeypatch):
    monkeypatch.setenv("LBAECODEC_CACHE", str(tmp_path / "cache"))
    rgb_image.save(tmp_path / "a.png")
    r = CliRunner().invoke(cli.main, ["encode", str(tmp_path / "a.png"), str(tmp_path / "a.lbae"), "--runtime", "onnx"])
    assert r.exit_code == 4 and r.output.count("\n") == 1 and "lbaecodec export-onnx cifar10" in r.output
    assert not (tmp_path / "a.lbae").exists()


def test_a_hidden_prior_travels_with_the_export(tmp_path, rgb_image):
    """The hidden prior's arrays go in the manifest beside the others: method-3 files encode to
    the same bytes and decode to the same pixels (within a level) as with torch."""
    from lbaecodec import onnx_runtime

    model = zoo.load_model("hidden", "cpu")
    folder = export_onnx(model, tmp_path / "hidden")
    manifest = json.loads((folder / "model.json").read_text())
    assert set(manifest["priors"]["hidden"]) == {"bias", "weight", "degree", "inner", "inner_bias", "outer"}
    data = lbaecodec.encode(rgb_image, model=model)
    assert lbaecodec.info(data).coding == "hidden-tight"
    onnx_pixels = np.asarray(onnx_runtime.decode(data, folder)).astype(int)
    torch_pixels = np.asarray(lbaecodec.decode(data, model=model, precision="fp32")).astype(int)
    assert np.abs(onnx_pixels - torch_pixels).max() <= 1
    assert lbaecodec.encode(rgb_image, model=onnx_runtime.OnnxModel.load(folder)) == data
