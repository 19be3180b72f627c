"""Layering rules: the package never imports Snakemake; ops import no I/O, stages or CLI."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import cryo_pipeline

PACKAGE_DIR = Path(cryo_pipeline.__file__).parent


def test_importing_every_module_never_imports_snakemake():
    code = (
        "import importlib, pkgutil, sys, cryo_pipeline\n"
        "names = [m.name for m in pkgutil.walk_packages(cryo_pipeline.__path__, 'cryo_pipeline.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "assert len(names) > 20, names\n"
        "bad = sorted(m for m in sys.modules if m == 'snakemake' or m.startswith('snakemake.'))\n"
        "print(len(names)); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + result.stdout


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_ops_are_pure_kernels():
    forbidden = ("cryo_pipeline.io", "cryo_pipeline.stages", "cryo_pipeline.cli", "cryo_pipeline.config", "snakemake")
    ops_files = sorted((PACKAGE_DIR / "ops").glob("*.py"))
    assert len(ops_files) >= 10
    for path in ops_files:
        bad = [m for m in _imported_modules(path) if m.startswith(forbidden)]
        assert not bad, f"{path.name} imports {bad}"


def test_no_module_imports_snakemake_textually():
    for module in pkgutil.walk_packages(cryo_pipeline.__path__, "cryo_pipeline."):
        spec_path = PACKAGE_DIR.parent / (module.name.replace(".", "/") + ".py")
        if spec_path.is_file():
            assert not any(m.startswith("snakemake") for m in _imported_modules(spec_path)), module.name
