"""The layer contract: which packages of cryo_pipeline may import which, no stage imports
another stage, one home per format and name, and the package never imports Snakemake."""

import ast
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import cryo_pipeline

PACKAGE_DIR = Path(cryo_pipeline.__file__).parent
REPO = PACKAGE_DIR.parent

# package -> the packages of cryo_pipeline it may import (besides itself and the top-level
# ``cryo_pipeline`` for ``__version__``). Everything else is a layering error.
ALLOWED = {
    "ops": set(),
    "models": {"ops"},
    "config": set(),
    "io": {"config", "models", "ops"},
    "training": {"config", "models", "ops"},
    "inference": {"io", "models", "ops"},
    "stitch": {"io", "ops"},
    "report": {"config", "io", "ops"},
    "stages": {"config", "io", "ops", "models", "training", "inference", "stitch", "report"},
    "cli": {"config", "io", "stages", "training.distributed"},
}


def _package_files(package: str) -> list[Path]:
    return sorted((PACKAGE_DIR / package).rglob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    """Absolute module names ``path`` imports (at any depth: lazy imports inside functions count)."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            # ``from cryo_pipeline.stages import fit_slab`` imports the module cryo_pipeline.stages.fit_slab
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _internal(names: set[str]) -> set[str]:
    """The cryo_pipeline modules among ``names``, without the prefix (``io.mrc``)."""
    return {n.removeprefix("cryo_pipeline.") for n in names if n.startswith("cryo_pipeline.")}


def test_every_package_is_in_the_contract():
    packages = {p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(ALLOWED), f"add {packages ^ set(ALLOWED)} to ALLOWED with what it may import"


def test_packages_import_only_the_layers_below_them():
    bad = []
    for package, allowed in ALLOWED.items():
        files = _package_files(package)
        assert files, package
        for path in files:
            for name in _internal(_imported_modules(path)):
                top = name.split(".")[0]
                if top == package or top in allowed or any(name == a or name.startswith(a + ".")
                                                           for a in allowed if "." in a):
                    continue
                if top in ALLOWED:  # a package of cryo_pipeline it may not use
                    bad.append(f"{path.relative_to(REPO)} imports cryo_pipeline.{name}")
    assert not bad, "layer contract broken:\n" + "\n".join(bad)


def test_no_stage_imports_another_stage():
    stages = sorted((PACKAGE_DIR / "stages").glob("*.py"))
    names = {p.stem for p in stages} - {"__init__"}
    assert {"fit_slab", "plan_slabs", "evaluate", "collect_metrics", "reconstruct_wbp"} <= names
    bad = []
    for path in stages:
        for name in _internal(_imported_modules(path)):
            if name.startswith("stages.") and name.split(".")[1] in names and name.split(".")[1] != path.stem:
                bad.append(f"stages/{path.name} imports cryo_pipeline.{name}")
    assert not bad, "\n".join(bad)


def test_the_training_loops_and_kernels_do_no_file_io():
    """Pure layers: no torch.save/load, no open(); the stages and io own every file."""
    pattern = re.compile(r"\btorch\.(save|load)\(|\bopen\(|\.write_text\(|\.to_csv\(")
    for package in ("ops", "training"):
        for path in _package_files(package):
            hits = [line.strip() for line in path.read_text().splitlines() if pattern.search(line)]
            assert not hits, f"{path.relative_to(REPO)} does file I/O: {hits}"


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


def test_no_module_imports_snakemake_textually():
    for module in pkgutil.walk_packages(cryo_pipeline.__path__, "cryo_pipeline."):
        spec_path = PACKAGE_DIR.parent / (module.name.replace(".", "/") + ".py")
        if spec_path.is_file():
            assert not any(m.startswith("snakemake") for m in _imported_modules(spec_path)), module.name


def _code_strings(path: Path) -> str:
    """The string values a .py file's code holds (docstrings left out), or an .smk file without comments."""
    text = path.read_text()
    if path.suffix == ".smk":
        return "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    tree = ast.parse(text)
    skipped = {id(node.body[0].value) for node in ast.walk(tree)  # docstrings
               if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
               and node.body and isinstance(node.body[0], ast.Expr)}
    for node in ast.walk(tree):  # __all__ names functions, not keys
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            skipped.update(id(n) for n in ast.walk(node.value))
    return "\n".join(n.value for n in ast.walk(tree)
                     if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skipped)


def _sources() -> list[Path]:
    return sorted(p for root in ("cryo_pipeline", "workflow") for p in (REPO / root).rglob("*")
                  if p.suffix in (".py", ".smk") and "__pycache__" not in p.parts)


def _spelled_in(pattern: str) -> set[str]:
    """Files (relative) whose code spells ``pattern`` as a string (or a line of an .smk file)."""
    return {str(p.relative_to(REPO)) for p in _sources() if re.search(pattern, _code_strings(p))}


def test_method_names_live_in_one_module():
    for name in ("wbp", "isonet", "cryogen", "cn", "corrupted"):
        # a whole string value; "reconstruct_wbp" (a rule) or "cn." (a config key) are other names
        found = _spelled_in(rf"(?m)^{name}$|\b{name}\|") - {"cryo_pipeline/config/methods.py"}
        if name in ("wbp", "cn"):  # the config sections wbp: and cn: (settings of their rules) share the name
            found -= {"cryo_pipeline/config/pipeline.py", "cryo_pipeline/config/reads.py",
                      "cryo_pipeline/config/execution.py"}
        assert not found, f"method name {name!r} spelled outside config/methods.py in {sorted(found)}"


def _sequence_literals(path: Path):
    """The sets of strings held by each tuple/list/set literal and dict's keys in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
            elements = node.keys if isinstance(node, ast.Dict) else node.elts
            yield {e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)}


def test_each_tables_column_list_lives_in_one_module():
    from cryo_pipeline.io.tables import LOSS_COLUMNS, METRIC_COLUMNS, SUBTOMO_TABLE_COLUMNS

    for columns in (METRIC_COLUMNS, LOSS_COLUMNS, SUBTOMO_TABLE_COLUMNS):
        homes = {str(p.relative_to(REPO)) for p in _sources() if p.suffix == ".py"
                 for strings in _sequence_literals(p) if 2 * len(strings & set(columns)) > len(columns)}
        assert homes == {"cryo_pipeline/io/tables.py"}, (columns[:3], homes)


def test_slab_plan_keys_live_in_one_module():
    # the keys only a slab plan has (volume_shape_zyx, voxel_size_angstrom, ... are shared names)
    for key in ("seed_slab", "n_slabs", "value_scale", "tilt_indices", "tilt_series_rms", "origins_y", "boundaries_y"):
        assert _spelled_in(rf"(?m)^{key}$") == {"cryo_pipeline/io/slab_plan.py"}, key
