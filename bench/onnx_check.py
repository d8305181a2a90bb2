"""ONNX export against torch on real test images, and the speed of the two decode paths.

    python bench/onnx_check.py --model cifar10 --data-dir ../shared/datasets/cifar10-jpeg75.npz

Prints JSON: bits that differ between ONNX Runtime's encoder and ours (should be 0), the largest
pixel difference of each decoder (in 8-bit levels), and wall times of `lbaecodec decode` of one
file as a whole process (start-up included), torch runtime against onnx runtime.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import lbaecodec
from lbaecodec.images import to_float, to_pil
from lbaecodec.lab import data
from lbaecodec.lab.onnx_export import export_onnx
from lbaecodec.zoo import load_model


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def agreement(model, folder: Path, images: np.ndarray, batch: int = 500) -> dict:
    encoder = _session(folder / "encoder.onnx")
    decoders = {name: _session(folder / f"decoder-{name}.onnx") for name in model.decoders}
    bit_diffs, level_diffs = 0, dict.fromkeys(decoders, 0.0)
    for i in range(0, len(images), batch):
        x = to_float(images[i : i + batch])
        with torch.inference_mode():
            codes = model.net.encode(x).numpy()
        bit_diffs += int((encoder.run(None, {"pixels": np.ascontiguousarray(x.numpy())})[0] != codes).sum())
        for name, session in decoders.items():
            with torch.inference_mode():
                ours = model.with_decoder(name).decode(torch.from_numpy(codes)).numpy()
            theirs = session.run(None, {"codes": codes})[0]
            level_diffs[name] = max(level_diffs[name], float(np.abs(theirs - ours).max() * 255))
    return {"images": len(images), "bits_differing": bit_diffs, "max_level_difference": level_diffs}


def process_times(model, folder: Path, image: np.ndarray, runs: int = 5) -> dict:
    work = Path(tempfile.mkdtemp())
    (work / "x.lbae").write_bytes(lbaecodec.encode(image, model=model, device="cpu"))
    out = {}
    for runtime in ("torch", "onnx"):
        cmd = [sys.executable, "-m", "lbaecodec", "decode", str(work / "x.lbae"), str(work / "x.png"), "-f"]
        cmd += ["--runtime", "onnx", "--onnx-dir", str(folder)] if runtime == "onnx" else ["--device", "cpu"]
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - t)
        out[runtime] = round(statistics.median(times), 3)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cifar10")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--limit", type=int, default=None)
    a = p.parse_args()
    model = load_model(a.model, "cpu")
    images = data.load(a.dataset, "test", a.data_dir)[0][: a.limit]
    folder = export_onnx(model, Path(tempfile.mkdtemp()) / "onnx")
    result = {
        "model": model.id,
        "data": f"{a.dataset} test split ({data.describe_source(a.dataset, a.data_dir)})",
        **agreement(model, folder, images),
        "decode_one_file_process_s": process_times(model, folder, to_pil(images[0])),
        "machine": f"{torch.get_num_threads()} threads, torch {torch.__version__}, onnxruntime {ort.__version__}",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
