"""The `bench` command line: bad input is one clear line, a non-zero exit and no run directory; good input
runs, renders and reports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

import bench.measure.passes
import bench.run.sweep
from bench.cli import app
from helpers import assert_user_error, plain

pytestmark = pytest.mark.usefixtures("bench_env")  # offline, caches in tmp dirs


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def out_dir(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def write_config(tiny_config, tmp_path, out_dir):
    """Factory: write a tiny sweep config (with section overrides) to a TOML file; returns its path."""

    def write(name: str = "sweep.toml", cache_dir: Path | None = None, **sections) -> Path:
        path = tmp_path / name
        config = tiny_config(out_dir, cache_dir or tmp_path / "cache", **sections)
        path.write_text(tomli_w.dumps(config), encoding="utf-8")
        return path

    return write


# ------------------------------------------------------------------------------------------ model


def test_unknown_preset_suggests_the_close_one(runner, write_config, out_dir):
    result = runner.invoke(app, ["run", str(write_config()), "--model", "random:tinyy"])
    assert_user_error(result, out_dir, "tinyy", "did you mean 'tiny'", "tiny, small, 564M")


def test_nonexistent_model_path(runner, write_config, out_dir, tmp_path):
    missing = tmp_path / "no-such-model"
    result = runner.invoke(app, ["run", str(write_config()), "--model", str(missing)])
    assert_user_error(result, out_dir, str(missing))


def test_nonexistent_relative_model_path(runner, write_config, out_dir, tmp_path, monkeypatch):
    # 'models/xglm-mine' does not exist here; it reads like a hub id, and the hub is offline.
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", str(write_config()), "--model", "models/xglm-mine"])
    assert_user_error(result, out_dir, "models/xglm-mine")


def test_model_directory_without_config_json(runner, write_config, out_dir, tmp_path):
    folder = tmp_path / "empty-model"
    folder.mkdir()
    result = runner.invoke(app, ["run", str(write_config()), "--model", str(folder)])
    assert_user_error(result, out_dir, str(folder), "config.json")


def test_model_directory_of_another_architecture(runner, write_config, out_dir, tmp_path):
    folder = tmp_path / "bert-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 100}))
    result = runner.invoke(app, ["run", str(write_config()), "--model", str(folder)])
    assert_user_error(result, out_dir, "bert", "XGLM")


def test_model_directory_with_a_broken_config_json(runner, write_config, out_dir, tmp_path):
    folder = tmp_path / "broken-model"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    result = runner.invoke(app, ["run", str(write_config()), "--model", str(folder)])
    assert_user_error(result, out_dir, "config.json")


# ------------------------------------------------------------------------------------------- data


def test_missing_data_directory(runner, write_config, out_dir, tmp_path):
    nowhere = tmp_path / "nowhere"
    config = write_config(data={"source": "local", "data_dir": str(nowhere)})
    result = runner.invoke(app, ["run", str(config)])
    assert_user_error(result, out_dir, str(nowhere), "does not exist")


def test_malformed_tsv_row_names_file_and_line(runner, write_config, out_dir, tmp_path, generated_data_dir):
    data = tmp_path / "data"
    shutil.copytree(generated_data_dir / "XNLI-1.0", data / "XNLI-1.0")
    test_file = data / "XNLI-1.0" / "xnli.test.tsv"
    text = test_file.read_text(encoding="utf-8").rstrip("\n")
    bad_line = text.count("\n") + 2
    test_file.write_text(f"{text}\nen\tneutral\tonly three fields\n", encoding="utf-8")
    config = write_config(data={"data_dir": str(data)})
    result = runner.invoke(app, ["run", str(config)])
    assert_user_error(result, out_dir, "xnli.test.tsv", f"line {bad_line}")


def test_unknown_language_lists_the_available_ones(runner, write_config, out_dir):
    config = write_config(data={"languages": ["en", "xx"]})
    result = runner.invoke(app, ["run", str(config)])
    assert_user_error(result, out_dir, "'xx'", "available: en, sw")


# ---------------------------------------------------------------------------------- device, output


def test_cuda_without_cuda(runner, write_config, out_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = runner.invoke(app, ["run", str(write_config()), "--device", "cuda"])
    assert_user_error(result, out_dir, "cuda", "not available")


def test_output_dir_that_cannot_be_created(runner, write_config, out_dir):
    result = runner.invoke(app, ["run", str(write_config()), "--output-dir", "/proc/forbidden"])
    assert_user_error(result, out_dir, "/proc/forbidden", "--output-dir")
    assert not Path("/proc/forbidden").exists()


def test_output_dir_under_a_file(runner, write_config, out_dir, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    target = a_file / "runs"
    result = runner.invoke(app, ["run", str(write_config()), "--output-dir", str(target)])
    assert_user_error(result, out_dir, str(target))
    assert a_file.read_text() == "x"


# ----------------------------------------------------------------------------------------- config


def test_bad_field_value_names_field_allowed_and_given(runner, write_config, out_dir):
    config = write_config(measure={"device": "tpu"})
    result = runner.invoke(app, ["run", str(config)])
    assert_user_error(result, out_dir, "measure.device", "cpu|cuda|cuda:", "'tpu'", config.name)


def test_unknown_config_key_is_rejected(runner, write_config, out_dir):
    config = write_config(measure={"warmup_iterations": 3})
    result = runner.invoke(app, ["run", str(config)])
    assert_user_error(result, out_dir, "measure.warmup_iterations", "not permitted")


def test_unknown_method_in_a_variant(runner, write_config, out_dir):
    config = write_config(variants=[{"name": "ia3-ft", "method": "ia3"}])  # a PEFT method the harness does not have
    result = runner.invoke(app, ["run", str(config)])
    assert_user_error(result, out_dir, "variants[0]", "unknown method 'ia3'", "available: dense")


def test_unknown_backend_on_the_command_line(runner, write_config, out_dir):
    result = runner.invoke(app, ["run", str(write_config()), "--backends", "eager,onnx"])
    assert_user_error(result, out_dir, "measure.backends", "'onnx'", "'onnxruntime'")


@pytest.mark.parametrize("options, needles", [
    (["--batch-sizes", "1,x"], ("--batch-sizes", "comma-separated integers")),
    (["--set", "train.steps"], ("--set", "KEY=VALUE")),
    (["--set", "measure.bogus=1"], ("command-line option --set measure.bogus", "bogus")),
    (["--set", "train.steps=inf"], ("command-line option --set train.steps",)),
    (["--languages", "en,xx"], ("language 'xx'", "available: en")),  # refused when the data is read
])
def test_bad_command_line_overrides_are_one_line_errors(runner, write_config, out_dir, options, needles):
    result = runner.invoke(app, ["run", str(write_config()), *options])
    assert_user_error(result, out_dir, *needles)


def test_missing_config_file(runner, out_dir, tmp_path):
    missing = tmp_path / "nope.toml"
    result = runner.invoke(app, ["run", str(missing), "--output-dir", str(out_dir)])
    assert_user_error(result, out_dir, str(missing), "not found")


def test_config_path_is_a_directory(runner, out_dir, tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    result = runner.invoke(app, ["run", str(folder), "--output-dir", str(out_dir)])
    assert_user_error(result, out_dir, str(folder))


def test_invalid_toml(runner, out_dir, tmp_path):
    config = tmp_path / "broken.toml"
    config.write_text("[measure\ndevice = 'cpu'\n")
    result = runner.invoke(app, ["run", str(config), "--output-dir", str(out_dir)])
    assert_user_error(result, out_dir, str(config), "not valid TOML")


# ------------------------------------------------------------------------------------ good runs


def test_run_applies_command_line_overrides(runner, write_config, out_dir, tiny_sweep, tmp_path):
    # The config asks for every backend and another model; the command line narrows it to eager on tiny.
    config = write_config(model={"source": "random:small"}, cache_dir=tiny_sweep.cache_dir)
    result = runner.invoke(app, ["run", str(config), "--backends", "eager", "--model", "random:tiny",
                                 "--name", "from-cli", "--device", "cpu", "--batch-sizes", "2",
                                 "--set", "measure.seq_lens=[12]"])
    assert result.exit_code == 0, result.output
    (run_dir,) = out_dir.iterdir()
    assert run_dir.name.endswith("-from-cli")
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "complete"
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert {r["backend"] for r in records} == {"eager"}
    assert {r["model"] for r in records} == {"random:tiny"}
    assert {(r["batch_size"], r["seq_len"]) for r in records if r["scenario"] == "latency"} == {(2, 12)}
    assert all(r["status"] == "ok" for r in records)
    output = plain(result.output)
    assert "results:" in output and "results.jsonl" in output
    assert "Latency" in output and "Accuracy" in output


def test_ctrl_c_exits_130_and_keeps_the_run_incomplete(runner, write_config, out_dir, monkeypatch):
    real_memory, calls = bench.measure.passes.memory, []

    def interrupted_in_the_second_cell(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_memory(*args, **kwargs)

    monkeypatch.setattr(bench.measure.passes, "memory", interrupted_in_the_second_cell)
    result = runner.invoke(app, ["run", str(write_config(measure={"backends": ["eager", "onnxruntime"]}))])
    assert result.exit_code == 130
    (run_dir,) = out_dir.iterdir()
    assert "interrupted" in plain(result.stderr) and run_dir.name in plain(result.stderr)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "incomplete"
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    # The first cell was prepared and its records are kept; the cut-off cell wrote nothing. No latency was timed
    # (the rounds start once every cell is prepared), so no cell is done: --resume measures both again.
    assert {r["backend"] for r in records} == {"eager"}
    assert {r["scenario"] for r in records} == {"throughput", "accuracy", "memory"}
    assert not (run_dir / "cells.done").exists()
    # The interrupted run still renders, saying what it is.
    report = runner.invoke(app, ["report", str(run_dir)])
    assert report.exit_code == 0, report.output
    assert "incomplete" in plain(report.output) and "interrupted" in plain(report.output)


# ------------------------------------------------------------------------------------------ report


def test_report_on_a_directory_that_is_not_a_run(runner, tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    line = assert_user_error(result, tmp_path / "runs", str(tmp_path), "not a run directory")
    assert "results.jsonl" in line


def test_report_on_a_missing_directory(runner, tmp_path):
    missing = tmp_path / "gone"
    result = runner.invoke(app, ["report", str(missing)])
    assert_user_error(result, tmp_path / "runs", str(missing))


def test_report_renders_the_sweep(runner, tiny_sweep):
    result = runner.invoke(app, ["report", str(tiny_sweep.path)])
    assert result.exit_code == 0, result.output
    text = plain(result.output)
    assert tiny_sweep.path.name in text
    assert "complete" in text
    for backend in ("eager", "compile", "onnxruntime"):
        assert backend in text
    eager = next(r for r in tiny_sweep.records if r["backend"] == "eager" and r["scenario"] == "latency")
    assert f"{eager['latency_ms_p50']:.2f}" in text
    assert "random-weight backbone" in text


def test_report_on_a_truncated_results_file(runner, tiny_sweep, tmp_path):
    copy = tmp_path / tiny_sweep.path.name
    shutil.copytree(tiny_sweep.path, copy)
    with open(copy / "results.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"status": "ok", "scen')
    lines = len((copy / "results.jsonl").read_text().splitlines())
    result = runner.invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output  # read up to the last complete line, and said
    text = " ".join(plain(result.output).split())
    assert "incomplete" in text and f"line {lines} was cut off" in text and "--resume" in text


# --------------------------------------------------------------------------------------------- env


def test_env_prints_the_fingerprint_as_json(runner):
    import torch

    result = runner.invoke(app, ["env"])
    assert result.exit_code == 0, result.output
    env = json.loads(plain(result.stdout))
    assert env["torch_version"] == torch.__version__
    assert "cuda_available" in env


# ------------------------------------------------------------------------------ the console script


def test_python_dash_m_bench_help():
    done = subprocess.run([sys.executable, "-m", "bench", "--help"], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("run", "report", "env"):
        assert re.search(rf"\b{command}\b", done.stdout), done.stdout


def test_console_script_reports_bad_input_in_one_line(tmp_path):
    script = Path(sys.executable).with_name("bench")
    if not script.is_file():
        pytest.skip("the bench console script is not installed next to this interpreter")
    missing = tmp_path / "no-run-here"
    done = subprocess.run([str(script), "report", str(missing)], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: '{missing}' is not a run directory (no results.jsonl or run.json)"
    ]


# ------------------------------------------------------------------ issue 31: writes outside the run and cache


@pytest.mark.slow
def test_an_eager_run_writes_nothing_outside_its_output_and_cache(tmp_path, generated_data_dir):
    """HOME is a fresh directory: onnxruntime's telemetry store (~/.cache/Microsoft/DeveloperTools/.onnxruntime) and
    anything else written under HOME would show; the env.json leaves ORT's providers null (ORT not imported)."""
    from tinydata import tiny_sweep

    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "sweep.toml"
    config.write_text(tomli_w.dumps(tiny_sweep(tmp_path / "runs", tmp_path / "cache", generated_data_dir,
                                               measure={"scenarios": ["latency"]})))
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("XDG_CACHE_HOME", "ORT_DISABLE_TELEMETRY")}
    done = subprocess.run([sys.executable, "-m", "bench", "run", str(config)], capture_output=True, text=True,
                          timeout=300, env={**env, "HOME": str(home)})
    assert done.returncode == 0, done.stderr
    assert [p for p in home.rglob("*")] == []
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "env.json").read_text())["onnxruntime_providers"] is None


def test_importing_onnxruntime_through_bench_writes_no_telemetry_store(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("XDG_CACHE_HOME", "ORT_DISABLE_TELEMETRY")}
    done = subprocess.run([sys.executable, "-c", "import bench, onnxruntime"], capture_output=True, text=True,
                          timeout=120, env={**env, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.rglob("*")) == []


def test_git_state_takes_no_index_lock(tmp_path, monkeypatch):
    """The fingerprint's git query is read-only: a `git status` that refreshed the index would take
    .git/index.lock, and so fails while one is held (a commit in progress) where the read-only one succeeds."""
    from bench.run.env import git_state

    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "a.py").write_text("x = 1\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    (repo / "pkg" / "a.py").write_text("x = 2\n")  # stat info changes: a refreshing status would rewrite the index
    (repo / ".git" / "index.lock").write_text("")  # held by someone else
    state = git_state(repo / "pkg")
    assert state["git_dirty"] is True and state["git_commit"]


def test_compare_of_one_machine_says_nothing_of_different_hardware_and_two_machines_do(runner, tmp_path):
    recorded = Path(__file__).parent / "fixtures" / "recorded"
    same = runner.invoke(app, ["compare", str(recorded / "cpu-dense"), str(recorded / "cpu-dense-x1.25")])
    assert same.exit_code == 0, same.output
    assert "different hardware" not in plain(same.stdout)
    other = runner.invoke(app, ["compare", str(recorded / "cpu-dense"), str(recorded / "synthetic-study")])
    assert other.exit_code == 0, other.output  # weighed as targets (a CPU and a GPU): compared, not an error
    assert "different hardware" in plain(other.stdout)


def test_version_names_the_distribution_and_the_commit(runner):
    from importlib.metadata import version

    import bench
    from bench.run.env import git_state

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    commit = git_state(Path(bench.__file__).parent)["git_commit"]
    assert result.output.startswith(f"xglm-bench {version('xglm-bench')}, ")
    assert (commit[:12] if commit else "not a git checkout") in result.output
