"""Many files per call: `lbaecodec encode a.png b.png ... -o OUT` and `decode ... -o OUT`.

Each model is loaded once per process; ``workers`` processes share the files, each with its
share of the CPU threads. Every file goes through the network on its own, exactly as a call for
that file alone would: results are byte for byte those of single-file calls (batching tiles of
different files together changes the encoder's float rounding, up to 2.6e-5 on a latent as
measured, enough to flip a bit that sits at zero). A file that fails is reported and skipped;
the others go on. Outputs are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, LbaeError, printable
from .files import write_atomic

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


def run(tasks: list[Task], convert: Callable[[Path], bytes], force: bool, workers: int = 1) -> Iterator[Outcome]:
    """``convert`` each task's source and write its target; outcomes in the order of ``tasks``.
    ``convert`` must be picklable (a module-level function or a functools.partial of one) when
    ``workers`` > 1."""
    if workers <= 1:
        yield from (_one(task, convert, force) for task in tasks)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, initializer=_set_threads, initargs=(threads,)) as pool:
        chunk = max(1, min(64, len(tasks) // (4 * workers)))
        yield from pool.map(_one, tasks, [convert] * len(tasks), [force] * len(tasks), chunksize=chunk)


def _one(task: Task, convert: Callable[[Path], bytes], force: bool) -> Outcome:
    try:
        if task.target.exists() and not force:
            raise InputError(f"{task.target} exists; use --force to overwrite")
        data = convert(task.source)
        task.target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(task.target, data, overwrite=force)
        return Outcome(task)
    except LbaeError as e:
        return Outcome(task, f"{task.source}: {printable(str(e))}", e.exit_code)
    except OSError as e:
        return Outcome(task, f"{task.source}: {e.strerror or e}", 1)
    except MemoryError:
        return Outcome(task, f"{task.source}: out of memory", 1)


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def encode_file(model: str | None, device: str, coding: str, max_pixels: int | None, source: Path) -> bytes:
    """One image file → the bytes of its .lbae file (the model loaded once per process)."""
    from . import codec

    return codec.encode(source, model=load_model(model, device), coding=coding, max_pixels=max_pixels)


def decode_file(model: str | None, device: str, decoder: str, fmt: str, max_pixels: int | None, source: Path) -> bytes:
    """One .lbae file → the bytes of its image in ``fmt`` (each model loaded once per process)."""
    import io

    from . import codec, container

    data = source.read_bytes()
    named = model if model is not None else ("named", container.read(data)[0].model_name)
    img = codec.decode(data, model=load_model(named, device), decoder=decoder, max_pixels=max_pixels)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


_loaded: dict = {}


def load_model(spec: str | tuple | None, device: str):
    """A model by --model spec, or ("named", name) for the one a file names; loaded once per process."""
    from . import zoo

    if (spec, device) not in _loaded:
        named = isinstance(spec, tuple)
        _loaded[spec, device] = zoo.load_named(spec[1], device) if named else zoo.load_model(spec, device)
    return _loaded[spec, device]
