"""The house: imports point down the pipeline (import-linter's contracts in pyproject.toml), stages say what they
are for, modules stay readable, and start-up stays light."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "prompts", "sparsify", "reports")
STAGES = ("model", "data", "variants", "backends", "measure", "run")
MAX_LINES = 600  # one sitting; files are split where their jobs part, not at a line count


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))  # import-linter's command, in the test extra


def _lint_imports(config: Path, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([LINT_IMPORTS, str(config)], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, **env})


def _contracts(tmp_path: Path, extra_layer_order: str | None = None) -> Path:
    """pyproject.toml's import-linter contracts, copied (optionally with the layers reordered) for a test."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text[text.index("[tool.importlinter]"):text.index("[tool.pytest.ini_options]")]
    if extra_layer_order:
        section = section.replace('"variants", "measure"', extra_layer_order)
    path = tmp_path / "contracts.toml"
    path.write_text(section, encoding="utf-8")
    return path


def test_imports_point_down_the_pipeline(tmp_path):
    """import-linter's layers contract over every import, function-level ones included (pyproject.toml)."""
    done = _lint_imports(_contracts(tmp_path))
    assert done.returncode == 0 and "0 broken" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


def test_the_contract_fails_on_a_planted_cycle(tmp_path):
    """Putting measure above variants makes bench.variants.train's import of the timing helper point up."""
    done = _lint_imports(_contracts(tmp_path, '"measure", "variants"'))
    assert done.returncode != 0 and "bench.variants.train -> bench.measure.timing" in done.stdout, done.stdout[-3000:]


def test_a_planted_upward_import_breaks_the_contract(tmp_path):
    """A real planted import (a copy of the project where bench.errors imports bench.run) is caught."""
    import shutil

    copy = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    errors = copy / "bench" / "errors.py"
    errors.write_text(errors.read_text(encoding="utf-8") + "\n\ndef _planted():\n    import bench.run.sweep  # noqa\n",
                      encoding="utf-8")
    contracts = _contracts(tmp_path)
    done = _lint_imports(contracts, cwd=copy, PYTHONPATH=str(copy))
    assert done.returncode != 0 and "bench.errors -> bench.run.sweep" in done.stdout, done.stdout[-3000:]


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_is_a_package_that_says_its_job(stage):
    init = ROOT / "bench" / stage / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    assert doc and len(doc.splitlines()[0]) > 20, f"bench/{stage}/__init__.py needs a first line saying its job"


def test_every_source_module_starts_with_its_purpose_and_fits_one_sitting():
    too_long, undocumented = [], []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_LINES:
            too_long.append(f"{name} ({len(text.splitlines())} lines)")
        if not path.name == "__main__.py" and not ast.get_docstring(ast.parse(text)):
            undocumented.append(name)
    assert not too_long, f"modules over {MAX_LINES} lines: {', '.join(too_long)}"
    assert not undocumented, f"modules without a docstring: {', '.join(undocumented)}"


def test_start_up_and_config_validation_stay_light():
    """`bench` (the CLI's module) and validating a config with every method never import the heavy optional
    libraries; they load when a cell, a structured variant or a plot needs them."""
    code = ("import sys, bench, bench.cli; from bench.config import parse_config; "
            "parse_config({'variants': [{'name': m, 'method': m, **({'sparsity': 0.5} if m in ('unstructured', "
            "'structured') else {'prompt_length': 4} if m in ('prompt', 'soft_prompt') else {})} for m in "
            "('dense', 'prompt', 'unstructured', 'semi24', 'structured', 'soft_prompt', 'lora')] "
            "+ [{'name': 'on-base', 'method': 'lora', 'base': 'structured'}]}); "
            "heavy = [m for m in ('onnxruntime', 'torch_pruning', 'matplotlib', 'torch') if m in sys.modules]; "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
