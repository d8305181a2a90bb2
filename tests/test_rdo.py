import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import lbaecodec
from lbaecodec import cli, entropy, rdo, zoo
from lbaecodec.lab import made
from lbaecodec.lab.onnx_export import export_onnx

from .test_entropy import correlated_codes


@pytest.fixture(scope="module")
def prior():
    return made.fit(correlated_codes(3000), hidden=32, steps=300).to_prior()


def noisy_values(n, seed=0):
    """Encoder-like values in (−1, 1): correlated signs, some of them barely chosen."""
    rng = np.random.default_rng(seed)
    return correlated_codes(n, seed=seed) * rng.uniform(0.01, 1, (n, 120))


def test_strength_zero_keeps_the_encoders_code(prior):
    z = noisy_values(20)
    np.testing.assert_array_equal(rdo.optimised_codes(z, prior, 0.0), np.where(z >= 0, 1, -1))


def test_stronger_optimisation_codes_fewer_bits_by_flipping_unsure_bits(prior):
    z = noisy_values(300, seed=1)
    costs, flips = [], []
    for strength in (0.0, 0.05, 0.2):
        codes = rdo.optimised_codes(z, prior, strength)
        flipped = codes != np.where(z >= 0, 1, -1)
        max_saving = -np.log2(1 / entropy.P_STEPS)  # no flip saves more than the coder's widest odds
        assert not flipped[np.abs(z) >= strength * max_saving].any()
        costs.append(prior.cost_bits(codes) / len(z))
        flips.append(flipped.sum())
    assert flips[0] == 0 < flips[1] < flips[2]
    assert costs[0] > costs[1] > costs[2]


def test_an_optimised_file_decodes_with_any_reader_to_its_codes(rgb_image):
    plain = lbaecodec.encode(rgb_image, model="hidden")
    smaller = lbaecodec.encode(rgb_image, model="hidden", rdo_strength=0.3)
    assert lbaecodec.info(smaller).coding == "hidden-tight"
    assert np.asarray(lbaecodec.decode(smaller)).shape == np.asarray(lbaecodec.decode(plain)).shape
    assert lbaecodec.encode(rgb_image, model="hidden", rdo_strength=0.3) == smaller  # deterministic


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--coding", "raw"], "--rdo needs a coded file"),
        (["--model", "other"], "--rdo needs a coded file"),  # ships no prior: auto stores raw bits
        (["--runtime", "onnx"], "re-export"),  # an export from before --rdo
    ],
)
def test_rdo_without_what_it_needs_is_a_one_line_error(tmp_path, rgb_image, args, message):
    rgb_image.save(tmp_path / "a.png")
    if "onnx" in args:
        pytest.importorskip("onnxruntime")
        _codes_only(export_onnx(zoo.load_model("cifar10", "cpu"), tmp_path / "x") / "encoder.onnx")  # before 0.10
        args = [*args, "--onnx-dir", str(tmp_path / "x")]
    r = CliRunner().invoke(
        cli.main, ["encode", str(tmp_path / "a.png"), str(tmp_path / "a.lbae"), "--rdo", "0.1", *args]
    )
    assert r.exit_code != 0 and r.output.count("\n") == 1 and message in r.output
    assert not (tmp_path / "a.lbae").exists()


def test_onnx_runtime_writes_the_same_optimised_files_as_torch(tmp_path, rgb_image):
    pytest.importorskip("onnxruntime")
    from lbaecodec.onnx_runtime import OnnxModel

    torch_model = zoo.load_model("cifar10", "cpu")
    onnx_model = OnnxModel.load(export_onnx(torch_model, tmp_path / "x"))
    for strength in (0.0, 0.1):
        expected = lbaecodec.encode(rgb_image, torch_model, rdo_strength=strength)
        assert lbaecodec.encode(rgb_image, onnx_model, rdo_strength=strength) == expected
    assert not (tmp_path / "x" / "encoder-values.onnx").exists()  # one encoder graph, two outputs


def test_onnx_exports_of_0_10_with_two_encoder_graphs_still_optimise(tmp_path, rgb_image):
    pytest.importorskip("onnxruntime")
    from lbaecodec.lab.onnx_export import _write_onnx
    from lbaecodec.onnx_runtime import OnnxModel

    torch_model = zoo.load_model("cifar10", "cpu")
    folder = export_onnx(torch_model, tmp_path / "x")
    _codes_only(folder / "encoder.onnx")
    _write_onnx(
        torch_model.net.encoder, torch.rand(2, 3, 32, 32), folder / "encoder-values.onnx", "pixels", ("values",)
    )
    manifest = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**manifest, "encoder_values": "encoder-values.onnx"}))
    expected = lbaecodec.encode(rgb_image, torch_model, rdo_strength=0.1)
    assert lbaecodec.encode(rgb_image, OnnxModel.load(folder), rdo_strength=0.1) == expected


def _codes_only(encoder: Path) -> None:
    """Make an export's encoder graph as lbaecodec wrote it before 0.11: the codes alone."""
    import onnx

    graph = onnx.load(encoder)
    del graph.graph.output[1]
    onnx.save(graph, encoder)
