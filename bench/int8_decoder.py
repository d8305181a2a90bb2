"""Would an int8 decoder pay? ONNX Runtime's static quantisation of a model's decoder, measured.

    python bench/int8_decoder.py --model cifar10 --data-dir ../shared/datasets/cifar10-jpeg75.npz

Quantises the exported float32 decoder (QDQ, int8 weights per channel, uint8 activations
calibrated on the codes of the first 1,024 *training* images), then prints JSON: PSNR of both
decoders on the first N test images (8-bit output, as `decode` writes; the mean over images, as
the bench's), the largest pixel change, and decoded tiles per second of each at the codec's
batch of 8 (best of 3 passes). Issue 13 asks
for < 0.05 dB of change from a lower-precision decoder; the encoder stays float32 (its bits must
not change). Time it on a quiet machine.
"""

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from decoder_precision import decoder_bench_arguments
from onnxruntime import quantization as q

from lbaecodec.images import to_uint8
from lbaecodec.lab import data
from lbaecodec.lab.metrics import quality
from lbaecodec.lab.onnx_export import export_onnx
from lbaecodec.tiling import TILE_BATCH
from lbaecodec.zoo import load_model

CALIBRATION_IMAGES = 1024


class Codes(q.CalibrationDataReader):
    def __init__(self, codes: np.ndarray, batch: int = 64) -> None:
        self.batches = iter([{"codes": codes[i : i + batch]} for i in range(0, len(codes), batch)])

    def get_next(self):
        return next(self.batches, None)


def encode(model, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.tile_encoder()(images).astype(np.float32)


def quantise(decoder: Path, calibration: np.ndarray, out: Path) -> Path:
    prepared = out.with_suffix(".pre.onnx")
    q.quant_pre_process(str(decoder), str(prepared))
    q.quantize_static(
        str(prepared),
        str(out),
        Codes(calibration),
        quant_format=q.QuantFormat.QDQ,
        per_channel=True,
        activation_type=q.QuantType.QUInt8,
        weight_type=q.QuantType.QInt8,
    )
    return out


def decode_all(session: ort.InferenceSession, codes: np.ndarray) -> np.ndarray:
    """Codes → uint8 tiles (N, H, W, C), as `decode` writes them."""
    batches = [session.run(None, {"codes": codes[i : i + TILE_BATCH]})[0] for i in range(0, len(codes), TILE_BATCH)]
    return to_uint8(torch.from_numpy(np.concatenate(batches)))


def tiles_per_s(session: ort.InferenceSession, codes: np.ndarray) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        decode_all(session, codes)
        best = min(best, time.perf_counter() - start)
    return round(len(codes) / best, 1)


def main() -> None:
    a = decoder_bench_arguments(__doc__.splitlines()[0]).parse_args()
    model = load_model(a.model, "cpu")
    train = data.load(a.dataset, "train", a.data_dir)[0][:CALIBRATION_IMAGES]
    test = data.load(a.dataset, "test", a.data_dir)[0][: a.limit]
    folder = export_onnx(model, Path(tempfile.mkdtemp()) / "onnx")
    int8 = quantise(folder / "decoder-fidelity.onnx", encode(model, train), folder / "decoder-int8.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    sessions = {
        name: ort.InferenceSession(str(path), options)
        for name, path in (("float32", folder / "decoder-fidelity.onnx"), ("int8", int8))
    }
    codes = encode(model, test)
    pixels = {name: decode_all(s, codes) for name, s in sessions.items()}
    result = {
        "model": model.id,
        "data": f"first {len(test)} of the {a.dataset} test split ({data.describe_source(a.dataset, a.data_dir)})",
        "psnr_db": {name: round(quality.psnr(test, p), 3) for name, p in pixels.items()},
        "max_change_levels": int(np.abs(pixels["int8"].astype(int) - pixels["float32"]).max()),
        "tiles_per_s": {name: tiles_per_s(s, codes) for name, s in sessions.items()},
        "machine": f"{a.threads} threads, onnxruntime {ort.__version__}",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
