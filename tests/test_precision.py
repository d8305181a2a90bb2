"""The decoder's precision: bf16 where the CPU has it natively, fp32 otherwise or when asked."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import lbaecodec
from lbaecodec import cli, precision, zoo
from lbaecodec.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "astronaut.png"
SHIPPED = ROOT / "weights" / "lbae-cifar10-600.safetensors"


@pytest.mark.parametrize("native", [False, True])
def test_auto_is_bf16_only_on_a_cpu_that_has_it(monkeypatch, native):
    monkeypatch.setattr(precision, "native_bf16", lambda: native)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert precision.decodes_in_bf16("auto", cpu) is native
    assert not precision.decodes_in_bf16("auto", cuda)
    assert not precision.decodes_in_bf16("fp32", cpu) and precision.decodes_in_bf16("bf16", cpu)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / mse)


def test_bf16_decoder_moves_pixels_by_two_levels_at_most_and_psnr_by_little():
    """The shipped model on the example photo (64 tiles): issue 13 allows < 0.05 dB."""
    original = np.asarray(Image.open(PHOTO).convert("RGB"))
    data = lbaecodec.encode(PHOTO, model=SHIPPED, device="cpu")
    fp32, bf16 = (np.asarray(lbaecodec.decode(data, SHIPPED, "cpu", precision=p)) for p in ("fp32", "bf16"))
    assert 0 < np.abs(fp32.astype(int) - bf16.astype(int)).max() <= 2
    assert abs(_psnr(original, fp32) - _psnr(original, bf16)) < 0.05


def test_precision_is_checked(tmp_path):
    model = lbaecodec.load_model("cifar10", device="cpu")
    with pytest.raises(InputError, match="unknown precision 'fp8'"):
        model.with_precision("fp8")
    assert model.with_precision("bf16").precision == "bf16" and model.precision == "auto"
    (tmp_path / "a.lbae").write_bytes(lbaecodec.encode(PHOTO, model=model))
    args = ["decode", str(tmp_path / "a.lbae"), str(tmp_path / "a.png")]
    r = CliRunner().invoke(cli.main, [*args, "--precision", "bf16", "--runtime", "onnx"])
    assert r.exit_code != 0 and r.output.count("\n") == 1 and "precision bf16" in r.output
    assert not (tmp_path / "a.png").exists()
    assert CliRunner().invoke(cli.main, [*args, "--precision", "fp32"]).exit_code == 0
    expected = lbaecodec.decode((tmp_path / "a.lbae").read_bytes(), precision="fp32")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(expected))


def test_the_folded_bf16_decoder_is_built_once_per_model(monkeypatch):
    """One-image decode loops would otherwise fold the batch norms again on every call."""
    calls = []
    monkeypatch.setattr(zoo, "fold_batch_norms", lambda net: calls.append(net) or copy.deepcopy(net))
    model = lbaecodec.load_model("cifar10", device="cpu").with_precision("bf16")
    codes = np.ones((2, model.arch.bits), np.float32)
    first = model.tile_decoder()(codes)
    assert np.array_equal(model.tile_decoder()(codes), first) and len(calls) == 1
    model.with_precision("bf16").tile_decoder()
    assert len(calls) == 1
