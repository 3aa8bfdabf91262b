"""The record schema (bench/records.py): the writer refuses what it does not declare, the fixtures and docs derive
from it, and reports read runs without the harness."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.records import FIELDS, KEYS, REQUIRED_KEYS, SCHEMA_VERSION, RecordError, markdown, type_name, validate
from bench.run.records import make_record
from bench.run.store import RESULTS, RunStore

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "recorded"


def _record(**extra) -> dict:
    return make_record(run_id="r", status="ok", error=None, variant="dense-ft", task="xnli", method="dense",
                       scenario="latency", cell_id="dense-ft/xnli/0/eager/fp32/cpu", latency_ms_p50=1.5,
                       batch_size=4, **extra)


def test_a_valid_record_is_written_and_read_back(tmp_path):
    store = RunStore.create(tmp_path, "schema")
    store.append(_record(heads_per_layer=[8, 8], accuracy_by_language={"en": 0.5}, macs_per_token=34816))
    (back,) = store.records()
    assert back["schema_version"] == SCHEMA_VERSION and back["heads_per_layer"] == [8, 8]
    assert set(REQUIRED_KEYS) <= set(back)


def test_an_unknown_key_fails_naming_it_and_where_to_add_it(tmp_path):
    store = RunStore.create(tmp_path, "schema")
    with pytest.raises(RecordError) as caught:
        store.append(_record(sparse_kernel_rows=3))
    message = str(caught.value)
    assert "'sparse_kernel_rows'" in message and "add it to bench/record_keys/" in message
    assert "dense-ft/xnli/0/eager/fp32/cpu latency" in message  # which record
    assert not (store.path / RESULTS).exists()  # nothing unvalidated reaches the file


def test_a_misspelt_key_gets_a_did_you_mean():
    with pytest.raises(RecordError, match="did you mean 'throughput_samples_per_s'"):
        validate(_record(throughput_sample_per_s=1.0))


@pytest.mark.parametrize(("key", "value"), [("latency_ms_p50", "1.5"), ("batch_size", 4.0), ("batch_size", True),
                                            ("status", "done"), ("heads_per_layer", [8, "8"]),
                                            ("accuracy_by_language", {"en": "high"})])
def test_a_value_of_the_wrong_type_fails_naming_the_key(tmp_path, key, value):
    store = RunStore.create(tmp_path, "schema")
    with pytest.raises(RecordError, match=f"key '{key}' must be"):
        store.append(_record() | {key: value})
    assert store.records() == []


def test_a_record_without_a_required_key_fails():
    record = _record()
    del record["speedup_vs_dense"]
    with pytest.raises(RecordError, match="required key.*speedup_vs_dense"):
        validate(record)


def test_nan_is_written_as_null_with_its_note_and_validates(tmp_path):
    store = RunStore.create(tmp_path, "schema")
    store.append(_record(train_final_loss=float("nan")))
    (back,) = store.records()
    assert back["train_final_loss"] is None and "train_final_loss" in back["non_finite_note"]


def test_every_recorded_fixture_follows_the_schema():
    runs = sorted(FIXTURES.glob("*/results.jsonl"))
    assert len(runs) >= 5
    for path in runs:
        for line in path.read_text(encoding="utf-8").splitlines():
            validate(json.loads(line))


def test_every_key_is_documented_with_a_type():
    assert len(FIELDS) == len(KEYS) > 150
    for key in KEYS:
        assert key.doc and key.section and type_name(key.type)
    assert REQUIRED_KEYS[0] == "schema_version" and len(REQUIRED_KEYS) == 25


def test_docs_records_md_is_generated_from_the_schema():
    """docs/records.md is `python -m bench.records > docs/records.md`; regenerate it after changing the schema."""
    written = (ROOT / "docs" / "records.md").read_text(encoding="utf-8")
    assert written == markdown(), "docs/records.md is stale: run `python -m bench.records > docs/records.md`"
    for key in KEYS:
        assert f"| `{key.name}` |" in written


def test_the_schema_imports_nothing_heavy():
    code = ("import sys, bench.records, bench.rundir; "
            "heavy = sorted({'torch', 'numpy', 'onnxruntime', 'bench.run'} & set(sys.modules)); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    """Every module an import statement in `path` (a module of `package`) names: top level and function level,
    relative ones resolved, each with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def test_reports_never_import_the_harness():
    """reports/ reads runs through bench.rundir and bench.records, never bench.run (function-level imports too)."""
    offenders = [f"{path.relative_to(ROOT)}:{line}: {name}" for path in sorted((ROOT / "reports").rglob("*.py"))
                 for line, name in _imports(path, ".".join(path.relative_to(ROOT).parent.parts)) if name == "bench.run" or name.startswith("bench.run.")]
    assert offenders == []


def test_the_import_walk_sees_function_level_and_relative_imports(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("import json\n\ndef f():\n    from bench.run.env import fingerprint\n    from .. import run\n"
                       "    return fingerprint, run\n")
    found = _imports(planted, "bench.measure")
    assert (4, "bench.run.env") in found and (5, "bench.run") in found
