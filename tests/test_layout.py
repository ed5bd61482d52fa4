"""The package's shape, checked so that it stays readable: layers import only downwards, functions stay short
and take few positional arguments, and scripts stay thin (their logic lives in the package)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "acai"

# Lowest first: a module may import only from layers below its own (and from its own sub-package).
LAYERS = [
    {"acai", "errors"},
    {"config", "locks", "cache"},
    {"data"},
    {"networks"},
    {"regularizers"},
    {"evaluation"},
    {"tracking", "console"},
    {"training"},
    {"serving", "reporting", "interpolate"},
    {"explorer", "sweep_callback"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
MAX_LINES = 60
MAX_POSITIONAL = 5


def unit(path: Path, package: Path = PACKAGE) -> str:
    """The layer name of a module: its sub-package, or the module itself at the top of the package."""
    parts = path.relative_to(package).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py").replace("__init__", "acai")


def acai_imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "acai":
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "acai"]
    return out


def functions(folder: Path):
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path, node


def test_every_package_module_belongs_to_a_layer():
    units = {unit(p) for p in PACKAGE.rglob("*.py")}
    assert units - RANK.keys() == set(), "add new sub-packages to LAYERS in tests/test_layout.py"


def upward_imports(package: Path) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        here = unit(path, package)
        for line, module in acai_imports(path):
            parts = module.split(".")
            there = parts[1] if len(parts) > 1 else "acai"
            if there != here and RANK.get(there, -1) >= RANK[here]:
                found.append(f"{path.relative_to(package)}:{line} ({here}) imports {module} ({there})")
    return found


def test_imports_only_go_down_the_layers():
    assert upward_imports(PACKAGE) == []


def test_an_upward_import_is_found(tmp_path):
    """Known answer: the data layer importing evaluation code is found; evaluation importing data is not."""
    (tmp_path / "data").mkdir()
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "data" / "bad.py").write_text("from acai.evaluation.cache import cache_dir\n")
    (tmp_path / "evaluation" / "fine.py").write_text("import acai.data.base\nfrom acai.errors import ConfigError\n")
    assert upward_imports(tmp_path) == ["data/bad.py:1 (data) imports acai.evaluation.cache (evaluation)"]


@pytest.mark.parametrize("folder", ["src"])
def test_functions_are_short_and_take_few_positional_arguments(folder):
    long, wide = [], []
    for path, node in functions(ROOT / folder):
        where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
        lines = node.end_lineno - node.lineno + 1
        positional = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
        if lines > MAX_LINES:
            long.append(f"{where}: {lines} lines")
        if len(positional) > MAX_POSITIONAL:
            wide.append(f"{where}: {len(positional)} positional parameters")
    assert long == [] and wide == []


def test_scripts_are_thin():
    """A script parses its arguments and calls the package: no other script imports it, and it is short."""
    scripts = sorted((ROOT / "src").glob("*.py"))
    assert {p.name for p in scripts} >= {"train.py", "report.py", "interpolate.py", "evaluate.py", "explore.py"}
    for path in scripts:
        assert len(path.read_text().splitlines()) <= 200, f"{path.name} holds library code: move it into acai/"
    stems = {p.stem for p in scripts}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & stems, f"{path.relative_to(ROOT)} imports a script: {imported & stems}"
        assert "spec_from_file_location" not in path.read_text(), f"{path.relative_to(ROOT)} loads a file as a module"
