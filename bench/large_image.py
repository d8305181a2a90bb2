"""One large photograph through lbaecodec and Pillow's WebP, as whole processes.

    python bench/large_image.py --size 6000x4000

The image is `examples/astronaut.png` resized (Lanczos) to the size asked, plus seeded noise of
±6 levels so that it is not unnaturally smooth. lbaecodec encodes it to a .lbae file and decodes
it back to PNG, with torch and with ONNX Runtime (an `export-onnx` folder made first); Pillow's
WebP (quality 0) does the same for comparison. Each figure is the median of --repeats runs;
peak memory (max RSS) is the largest of them. Writes bench/results/large-image/results.{json,md}.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from speed import PILLOW_LOOP, machine, repeated, write_results

from lbaecodec.codec import open_image
from lbaecodec.lab.metrics import quality

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "astronaut.png"


def test_image(width: int, height: int) -> np.ndarray:
    big = Image.open(EXAMPLE).convert("RGB").resize((width, height), Image.LANCZOS)
    noise = np.random.default_rng(0).integers(-6, 7, (height, width, 3))
    return np.clip(np.asarray(big).astype(np.int16) + noise, 0, 255).astype(np.uint8)


def lbae_row(runtime: str, model: str, source: Path, work: Path, repeats: int) -> dict:
    lbae = [sys.executable, "-m", "lbaecodec"]
    args = ["--model", model] if runtime == "torch" else ["--onnx-dir", str(work / "onnx")]
    args += ["--runtime", runtime]
    coded, back = work / f"{runtime}.lbae", work / f"{runtime}.png"
    encode = repeated(lambda i: [*lbae, "encode", str(source), str(coded), "--force", *args], repeats)
    decode = repeated(lambda i: [*lbae, "decode", str(coded), str(back), "--force", *args], repeats)
    return _row(f"LBAE {model} ({runtime})", source, coded, back, encode, decode)


def webp_row(source: Path, work: Path, repeats: int) -> dict:
    out = work / "webp"
    both = repeated(lambda i: [sys.executable, "-c", PILLOW_LOOP, "WEBP", "0", str(source), str(out)], repeats)
    return _row("Pillow WEBP q=0 (encode+decode in one process)", source, None, out / source.name, both, None)


def _row(name: str, source: Path, coded: Path | None, back: Path, encode: tuple, decode: tuple | None) -> dict:
    original, restored = np.asarray(open_image(source)), np.asarray(open_image(back))
    return {
        "codec": name,
        "bytes": coded.stat().st_size if coded else None,
        "psnr_db": round(float(quality.psnr(original[None], restored[None])), 2),
        "encode_s": encode[0],
        "decode_s": decode[0] if decode else None,
        "total_s": round(encode[0] + (decode[0] if decode else 0), 2),
        "peak_MB": max(encode[1], decode[1] if decode else 0),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="6000x4000", help="WIDTHxHEIGHT")
    p.add_argument("--model", default="cifar10")
    p.add_argument("--repeats", type=int, default=3, help="runs of each timing (median)")
    p.add_argument("--out", default="bench/results/large-image")
    a = p.parse_args()
    width, height = (int(v) for v in a.size.lower().split("x"))
    work = Path(tempfile.mkdtemp())
    source = work / "large.png"
    Image.fromarray(test_image(width, height)).save(source, compress_level=1)
    subprocess.run([sys.executable, "-m", "lbaecodec", "export-onnx", a.model, str(work / "onnx")], check=True)
    rows = [lbae_row(runtime, a.model, source, work, a.repeats) for runtime in ("torch", "onnx")]
    rows.append(webp_row(source, work, a.repeats))
    meta = {
        "image": f"examples/astronaut.png resized to {width}x{height} + noise ±6 (seed 0)",
        "machine": machine(),
        "command": " ".join(sys.argv),
    }
    write_results(Path(a.out), meta, rows)


if __name__ == "__main__":
    main()
