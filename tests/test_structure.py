"""The package's shape: the runtime codec stands apart from the lab and the command line, no
module imports itself through others, modules stay short."""

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import lbaecodec

PACKAGE = Path(lbaecodec.__file__).parent
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file (inside functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_walk_sees_imports():
    graph = _graph()
    assert "lbaecodec.zoo" in graph["lbaecodec.codec"]
    assert "lbaecodec.lab.baselines" in graph["lbaecodec.lab"]
    assert "lbaecodec.lab.generate" in graph["lbaecodec.cli.generate"]  # an import inside a function


def test_no_import_cycles():
    graphlib.TopologicalSorter(_graph()).prepare()  # raises CycleError naming the cycle


def test_runtime_imports_neither_lab_nor_cli():
    outside = ("lbaecodec.lab", "lbaecodec.cli")
    for name, imported in _graph().items():
        if not name.startswith(outside) and name != "lbaecodec.__main__":  # `python -m lbaecodec` runs the CLI
            assert not [m for m in imported if m.startswith(outside)], name


def test_modules_stay_short():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_encode_and_decode_load_no_lab_module(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 40), (200, 30, 60)).save(tmp_path / "x.png")
    code = (
        "import sys, lbaecodec\n"
        f"lbaecodec.decode(lbaecodec.encode({str(tmp_path / 'x.png')!r}, device='cpu'), device='cpu')\n"
        "print(sorted(m for m in sys.modules if m.startswith(('lbaecodec.lab', 'lbaecodec.cli'))))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-800:]
    assert r.stdout.strip().splitlines()[-1] == "[]"
