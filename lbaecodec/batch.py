"""Many files per call: `lbaecodec encode a.png b.png ... -o OUT` and `decode ... -o OUT`.

Each model is loaded once per process; files go in groups (up to GROUP_FILES files, and images
of up to GROUP_PIXELS pixels held at once) whose tiles share the network's batches and whose
payloads are range-decoded together. Results are byte for byte those of single-file calls: a
tile meets the network in a batch of fixed size (``tiling.in_fixed_batches``), so its result
does not depend on its batch-mates. ``workers`` processes share the groups, each with its share
of the CPU threads. A file that fails is reported and skipped; the others go on. Outputs are
written atomically.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import container, images
from .errors import InputError, LbaeError, printable, value_or_raise
from .files import write_atomic
from .precision import AUTO_PRECISION

if TYPE_CHECKING:
    from .search import Search

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".avif")
LBAE_SUFFIXES = (".lbae",)


@dataclass(frozen=True)
class Task:
    source: Path
    target: Path


@dataclass(frozen=True)
class Outcome:
    task: Task
    error: str | None = None  # one line, None when the file was written
    exit_code: int = 0


def plan(inputs: list[str], out_dir: Path, suffixes: tuple[str, ...], new_suffix: str, recursive: bool) -> list[Task]:
    """Files named in ``inputs`` (folders: their files with ``suffixes``, in subfolders too with
    ``recursive``) → tasks writing OUT_DIR/<path relative to the folder, suffix replaced>."""
    tasks: dict[Path, Task] = {}
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in suffixes)
            pairs = [(p, p.relative_to(path)) for p in found]
        elif path.is_file():
            pairs = [(path, Path(path.name))]
        else:
            raise InputError(f"{name}: no such file or folder")
        for source, relative in pairs:
            target = out_dir / relative.with_suffix(new_suffix)
            if target in tasks and tasks[target].source != source:
                raise InputError(f"{tasks[target].source} and {source} would both write {target}")
            tasks[target] = Task(source, target)
    if not tasks:
        raise InputError(f"no input files found (folders give their {', '.join(suffixes)} files; -r for subfolders)")
    return list(tasks.values())


GROUP_FILES = 256
GROUP_PIXELS = 4_000_000

Convert = Callable[[list[Path]], list]  # sources → each one's output bytes, or the exception it raised


def run(tasks: list[Task], convert: Convert, force: bool, workers: int = 1) -> Iterator[Outcome]:
    """``convert`` the tasks' sources in groups and write their targets; outcomes in the order
    of ``tasks``. ``convert`` must be picklable (a module-level function or a functools.partial
    of one) when ``workers`` > 1."""
    size = max(1, min(GROUP_FILES, -(-len(tasks) // workers)))
    groups = [tasks[i : i + size] for i in range(0, len(tasks), size)]
    if workers <= 1:
        for group in groups:
            yield from _run_group(group, convert, force)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, _pool_context(), _set_threads, (threads,)) as pool:
        for outcomes in pool.map(_run_group, groups, [convert] * len(groups), [force] * len(groups)):
            yield from outcomes


def _run_group(tasks: list[Task], convert: Convert, force: bool) -> list[Outcome]:
    refused = {t: InputError(f"{t.target} exists; use --force to overwrite") for t in tasks if t.target.exists()}
    todo = [t for t in tasks if force or t not in refused]
    results = dict(zip(todo, convert([t.source for t in todo]), strict=True))
    return [_write(t, results.get(t, refused.get(t)), force) for t in tasks]


def _write(task: Task, result: bytes | BaseException | None, force: bool) -> Outcome:
    try:
        data = value_or_raise(result)
        task.target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(task.target, data, overwrite=force)
        return Outcome(task)
    except LbaeError as e:
        return Outcome(task, f"{task.source}: {printable(str(e))}", e.exit_code)
    except OSError as e:
        return Outcome(task, f"{task.source}: {e.strerror or e}", 1)
    except MemoryError:
        return Outcome(task, f"{task.source}: out of memory", 1)


def _pool_context() -> multiprocessing.context.BaseContext:
    """Forked workers start quickest, but a process that has started CUDA cannot fork workers
    that use it: then they are spawned (fresh interpreters)."""
    torch = sys.modules.get("torch")
    cuda_started = torch is not None and torch.cuda.is_initialized()
    return multiprocessing.get_context("spawn" if cuda_started else None)


def _set_threads(threads: int) -> None:
    """A worker's share of the cores: OMP_NUM_THREADS for torch imported from here on and for
    ONNX Runtime (onnx_runtime reads it), and torch's own setting if a fork brought it along."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


FILE_ERRORS = (LbaeError, OSError, MemoryError)


def encode_files(
    loader: Loader,
    model: str | None,
    coding: str,
    version: int,
    quality_level: int,
    stage_count: int,
    rdo_strength: float,
    search: Search | None,
    max_pixels: int | None,
    sources: list[Path],
) -> list:
    """Image files → the bytes of their .lbae files (or each file's error), GROUP_PIXELS at a time."""
    from . import codec
    from .fileinfo import pixel_limit

    m = loader.load(model)
    results: list = [None] * len(sources)
    pending: list = []  # (index, opened image)

    def flush() -> None:
        images = [img for _, img in pending]
        args = (images, m, coding, version, quality_level, stage_count, rdo_strength, search)
        _fill(results, [k for k, _ in pending], codec.encode_many, *args)
        pending.clear()

    def admit(k: int, source: Path) -> int:
        img = codec.open_for_coding(source, pixel_limit(max_pixels), quality_level)
        pending.append((k, img))
        return img.width * img.height

    _in_groups(sources, results, admit, flush)
    return results


def decode_files(
    loader: Loader,
    model: str | None,
    decoder: str,
    fmt: str,
    stage_limit: int | None,
    max_pixels: int | None,
    sources: list[Path],
) -> list:
    """.lbae files → the bytes of their images in ``fmt`` (or each file's error), GROUP_PIXELS at a time."""
    from . import codec

    results: list = [None] * len(sources)
    pending: dict = {}  # model id → (model, [(index, file bytes)])

    def flush() -> None:
        for m, files in pending.values():
            datas = [data for _, data in files]
            _fill(results, [k for k, _ in files], codec.decode_many, datas, m, decoder, max_pixels, stage_limit)
            for k, _ in files:  # held as encoded bytes, not as images
                results[k] = results[k] if isinstance(results[k], BaseException) else _image_bytes(results[k], fmt)
        pending.clear()

    def admit(k: int, source: Path) -> int:
        data = source.read_bytes()
        h = container.read(data)[0]
        m = loader.load(model if model is not None else h)
        pending.setdefault(m.id, (m, []))[1].append((k, data))
        return max(h.width * h.height, h.coded_size[0] * h.coded_size[1])

    _in_groups(sources, results, admit, flush)
    return results


def _in_groups(
    sources: list[Path], results: list, admit: Callable[[int, Path], int], flush: Callable[[], None]
) -> None:
    """admit(index, source) each file (it returns the pixels it now holds; its error becomes the
    file's result), and flush() whenever GROUP_PIXELS are held, and at the end."""
    held = 0
    for k, source in enumerate(sources):
        try:
            held += admit(k, source)
        except FILE_ERRORS as e:
            results[k] = e
        if held >= GROUP_PIXELS:
            flush()
            held = 0
    flush()


def _fill(results: list, indices: list[int], convert: Callable[..., list], *args) -> None:
    """results[indices] = convert(*args); an error of the whole call becomes each file's error."""
    if not indices:
        return
    try:
        outputs = convert(*args)
    except FILE_ERRORS as e:
        outputs = [e] * len(indices)
    for k, output in zip(indices, outputs, strict=True):
        results[k] = output


def _image_bytes(img, fmt: str) -> bytes | InputError:
    try:
        return images.image_bytes(img, fmt)
    except InputError as e:
        return e


@dataclass(frozen=True)
class Loader:
    """How a process gets its models: with torch on ``device``, or with ONNX Runtime from
    `lbaecodec export-onnx` folders (``onnx_dir``, or where export-onnx puts each model's)."""

    device: str = "auto"
    runtime: str = "torch"  # or "onnx"
    onnx_dir: str | None = None
    precision: str = AUTO_PRECISION  # of the torch decoder (precision.PRECISIONS)

    def load(self, spec: str | container.Header | None):
        """A model by --model spec, or the one a file's header names; loaded once per process."""
        named = isinstance(spec, container.Header)
        key = (self, (spec.model_name, spec.model_hash) if named else spec)
        if key not in _loaded:
            _loaded[key] = self._load(spec, named)
        return _loaded[key]

    def _load(self, spec, named: bool):
        if self.runtime == "onnx":
            from . import onnx_runtime

            if self.onnx_dir is not None:
                return onnx_runtime.OnnxModel.load(Path(self.onnx_dir))
            return onnx_runtime.load_for(spec) if named else onnx_runtime.load_installed(spec)
        from . import zoo

        model = zoo.load_for(spec, self.device) if named else zoo.load_model(spec, self.device)
        return model.with_precision(self.precision)


_loaded: dict = {}
