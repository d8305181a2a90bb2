"""Speed of lbaecodec against Pillow's WebP, AVIF and JPEG, in one run.

    python bench/speed.py --data-dir ../shared/datasets/cifar10-jpeg75.npz --files 1000

For N 32×32 test images written as PNG files, measures
- in-process throughput (the model or codec already loaded): images/s and MB/s of pixels, for
  one call per image and for one `encode_many` / `decode_many` call over all of them;
- whole processes, start-up included: one file, and all N files in one call (lbaecodec's
  `-o DIR` form, with one and with two workers; for Pillow a Python process that loops over
  the files);
- lbaecodec twice: with torch, and with ONNX Runtime (`--runtime onnx`, from an export-onnx folder);
- peak memory (max RSS) of those processes.
Whole-process times are the median of --repeats runs (each into its own output folder).
Writes bench/results/speed/results.{json,md} and prints the table.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

import lbaecodec
from lbaecodec import codec
from lbaecodec.lab import data
from lbaecodec.lab.report import dict_table, save_results
from lbaecodec.onnx_runtime import OnnxModel
from lbaecodec.zoo import load_model

PILLOW = {"WEBP": ("webp", 0), "AVIF": ("avif", 0), "JPEG": ("jpg", 1)}  # lowest quality: LBAE's byte range
PILLOW_LOOP = """
import sys, io
from pathlib import Path
from PIL import Image
fmt, q, src, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
out.mkdir(exist_ok=True)
for p in sorted(src.glob("*.png")) if src.is_dir() else [src]:
    buf = io.BytesIO()
    Image.open(p).save(buf, fmt, quality=q)
    Image.open(io.BytesIO(buf.getvalue())).convert("RGB").save(out / (p.stem + ".png"))
"""


def machine() -> str:
    """The CPU (model, cores, widest vector units) and the software the figures depend on."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    vectors = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    cpu = f"{model or platform.processor()}, {os.cpu_count()} cores, {vectors}"
    return f"{cpu}; {platform.machine()}, Python {platform.python_version()}, lbaecodec {lbaecodec.__version__}"


def process(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a whole process (GNU time reports the RSS)."""
    t = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t
    return round(wall, 2), round(int(done.stderr.strip().splitlines()[-1]) / 1024, 1)


def repeated(command: Callable[[int], list[str]], repeats: int) -> tuple[float, float]:
    """Median wall seconds and largest peak RSS of ``command(i)`` for i < ``repeats``."""
    runs = [process(command(i)) for i in range(repeats)]
    return statistics.median(wall for wall, _ in runs), max(peak for _, peak in runs)


def in_process_lbae(images: list[Image.Image], model, together: bool) -> dict:
    """One call per image, or (``together``) one encode_many / decode_many call for all."""
    t = time.perf_counter()
    files = codec.encode_many(images, model) if together else [codec.encode(img, model=model) for img in images]
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    if together:
        codec.decode_many(files, model)
    else:
        for f in files:
            codec.decode(f, model=model)
    t_dec = time.perf_counter() - t
    return {"encode_s": t_enc, "decode_s": t_dec, "bytes": float(np.mean([len(f) for f in files]))}


def lbae_rows(
    lbae: list[str], runtime: str, model, images: list[Image.Image], work: Path, mb: float, repeats: int
) -> list[dict]:
    """The two rows of one runtime: one call per image and one call for all, in process and as
    whole processes (one file; the N files with one and with two workers)."""
    figures = in_process_lbae(images, model, together=False)
    together = in_process_lbae(images, model, together=True)
    runtime_args = ["--runtime", runtime] + (["--onnx-dir", str(work / "onnx")] if runtime == "onnx" else [])
    if runtime == "torch":
        runtime_args += ["--device", "cpu"]
    one, out = work / "png" / "00000.png", work / runtime
    enc_one = repeated(lambda i: [*lbae, "encode", str(one), f"{out}-one{i}.lbae", *runtime_args], repeats)
    dec_one = repeated(lambda i: [*lbae, "decode", f"{out}-one0.lbae", f"{out}-one{i}.png", *runtime_args], repeats)
    enc_all = repeated(
        lambda i: [*lbae, "encode", str(work / "png"), "-o", str(out / f"lbae{i}"), *runtime_args], repeats
    )
    dec_all = repeated(
        lambda i: [*lbae, "decode", str(out / "lbae0"), "-o", str(out / f"back{i}"), *runtime_args], repeats
    )
    two = [*runtime_args, "--workers", "2"]
    enc_two = repeated(lambda i: [*lbae, "encode", str(work / "png"), "-o", str(out / f"two{i}"), *two], repeats)
    dec_two = repeated(lambda i: [*lbae, "decode", str(out / "two0"), "-o", str(out / f"back-two{i}"), *two], repeats)
    name = f"LBAE {model.id} ({runtime})"
    return [
        row(
            name,
            figures,
            len(images),
            mb,
            f"{enc_one[0]} + {dec_one[0]}",
            f"{enc_all[0]} + {dec_all[0]}",
            max(enc_one[1], dec_one[1], enc_all[1], dec_all[1]),
        ),
        row(
            f"{name}, all files in one call",
            together,
            len(images),
            mb,
            "",
            f"{enc_two[0]} + {dec_two[0]} (--workers 2)",
            max(enc_two[1], dec_two[1]),
        ),
    ]


def in_process_pillow(images: list[Image.Image], fmt: str, quality: int) -> dict:
    import io

    t = time.perf_counter()
    files = []
    for img in images:
        buf = io.BytesIO()
        img.save(buf, fmt, quality=quality)
        files.append(buf.getvalue())
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    for f in files:
        Image.open(io.BytesIO(f)).load()
    t_dec = time.perf_counter() - t
    return {"encode_s": t_enc, "decode_s": t_dec, "bytes": float(np.mean([len(f) for f in files]))}


def pillow_row(fmt: str, images: list[Image.Image], work: Path, mb: float, repeats: int) -> dict:
    ext, quality = PILLOW[fmt]
    figures = in_process_pillow(images, fmt, quality)
    loop = [sys.executable, "-c", PILLOW_LOOP, fmt, str(quality)]
    single = repeated(lambda i: [*loop, str(work / "png" / "00000.png"), str(work / f"{ext}-one{i}")], repeats)
    many = repeated(lambda i: [*loop, str(work / "png"), str(work / f"{ext}-all{i}")], repeats)
    one_file, all_files = f"{single[0]} (encode+decode)", f"{many[0]}"
    return row(f"Pillow {fmt} q={quality}", figures, len(images), mb, one_file, all_files, max(single[1], many[1]))


def row(codec: str, figures: dict, count: int, mb: float, one_file: str, all_files: str, peak_mb: float) -> dict:
    """One line of the table: in-process rates from ``figures``, then the whole-process figures."""
    return {
        "codec": codec,
        "bytes_per_image": round(figures["bytes"], 1),
        "encode_img_s": round(count / figures["encode_s"], 1),
        "decode_img_s": round(count / figures["decode_s"], 1),
        "encode_MB_s": round(mb / figures["encode_s"], 3),
        "decode_MB_s": round(mb / figures["decode_s"], 3),
        "process_1_file_s": one_file,
        "process_all_files_s": all_files,
        "peak_MB": peak_mb,
    }


def write_results(out: Path, meta: dict, rows: list[dict]) -> None:
    """results.json (meta and rows) and results.md (the rows as a table, None as blank) in ``out``."""
    table = dict_table(rows)
    save_results(out, {"meta": meta, "rows": rows}, "\n".join(table) + "\n")
    print(json.dumps(meta), *table, sep="\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="CIFAR-10 local copy")
    p.add_argument("--files", type=int, default=1000)
    p.add_argument("--model", default="cifar10")
    p.add_argument("--out", default="bench/results/speed")
    p.add_argument("--repeats", type=int, default=3, help="runs of each whole-process timing (median)")
    a = p.parse_args()
    pixels = data.load("cifar10", "test", a.data_dir)[0][: a.files]
    images = [Image.fromarray(x) for x in pixels]
    work = Path(tempfile.mkdtemp())
    (work / "png").mkdir()
    for i, img in enumerate(images):
        img.save(work / "png" / f"{i:05d}.png")
    mb = pixels.nbytes / 1e6
    lbae = [sys.executable, "-m", "lbaecodec"]
    subprocess.run([*lbae, "export-onnx", a.model, str(work / "onnx")], check=True, capture_output=True)
    models = {"torch": load_model(a.model, "cpu"), "onnx": OnnxModel.load(work / "onnx")}
    rows = []
    for runtime, model in models.items():
        rows += lbae_rows(lbae, runtime, model, images, work, mb, a.repeats)
    rows += [pillow_row(fmt, images, work, mb, a.repeats) for fmt in PILLOW]
    meta = {
        "images": len(images),
        "data": "CIFAR-10 test images 0..N-1 as 32x32 PNG files",
        "machine": machine(),
        "command": " ".join(sys.argv),
    }
    write_results(Path(a.out), meta, rows)


if __name__ == "__main__":
    main()
