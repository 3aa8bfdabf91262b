"""Environment fingerprint: serialisable, truthful about this interpreter, and never raising."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import torch

import bench.measure.device
import bench.run.env
from bench.run.env import fingerprint, git_state
from bench.rundir import short_summary

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(scope="module")
def env():
    return fingerprint()


def test_fingerprint_is_json_serialisable(env):
    assert json.loads(json.dumps(env)) == env


def test_fingerprint_describes_this_interpreter(env):
    assert env["torch_version"] == torch.__version__
    assert env["torch_num_threads"] == torch.get_num_threads()
    assert env["cuda_available"] == torch.cuda.is_available()
    assert env["cpu_cores_logical"] == psutil.cpu_count() > 0
    assert env["cpu_cores_physical"] > 0
    assert env["bench_version"] == bench.__version__
    assert env["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", env["git_commit"])


def test_short_summary_mentions_core_count(env):
    assert f"({env['cpu_cores_physical']} cores" in short_summary(env)


def test_short_summary_of_a_gpu_machine():
    env = {
        "cpu_model": "Xeon", "cpu_cores_physical": 8, "cpu_cores_logical": 16,
        "gpus": [{"name": "NVIDIA H100"}] * 2, "nvidia_driver_version": "550.54",
        "torch_version": "2.13.0+cu128", "onnxruntime_version": "1.31.1",
        "onnxruntime_providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "git_commit": "abcdef0" + "1" * 33, "git_dirty": True,
    }
    assert short_summary(env) == (
        "Xeon (8 cores, 16 threads) | 2x NVIDIA H100 (driver 550.54) | torch 2.13.0+cu128"
        " | ORT 1.31.1 [CUDAExecutionProvider, CPUExecutionProvider] | git abcdef0 (dirty)"
    )
    assert short_summary({}) == "unknown CPU (cores unknown) | no GPU | torch n/a | ORT n/a | no git"


def test_importing_bench_env_does_not_import_onnxruntime():
    code = "import bench.run.env, sys; assert 'onnxruntime' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_failing_probes_yield_null(monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("probe failed")

    monkeypatch.setattr(bench.measure.device, "_cpuinfo_value", fail)
    monkeypatch.setattr(bench.measure.device, "torch_gpus", fail)
    monkeypatch.setattr(bench.run.env.subprocess, "run", fail)  # as if git were missing
    env = fingerprint()
    assert env["cpu_flags"] is None and env["gpus"] is None
    assert (env["git_commit"], env["git_dirty"]) == (None, None)


def test_nvml_failure_nulls_gpu_fields_and_says_why():
    gpus = [{"uuid": "GPU-00000000-0000-0000-0000-000000000000"}]
    info = bench.run.env._nvml(gpus)
    assert info["nvidia_driver_version"] is None and isinstance(info["nvml_error"], str)
    nvml_fields = ("sm_clock_max_mhz", "memory_clock_max_mhz", "power_limit_w")
    assert [gpus[0][field] for field in nvml_fields] == [None, None, None]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_fields_from_torch_and_nvml(env):
    assert len(env["gpus"]) == torch.cuda.device_count()
    assert env["nvml_error"] is None, env["nvml_error"]
    assert all(gpu["sm_clock_max_mhz"] > 0 and gpu["power_limit_w"] > 0 for gpu in env["gpus"])


@needs_git
def test_git_state_of_a_checkout(tmp_path: Path):
    def git(*args: str) -> str:
        cmd = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()

    package = tmp_path / "pkg"
    assert git_state(package) == {"git_commit": None, "git_dirty": None}  # not a repository
    git("init", "-q")
    package.mkdir()
    (package / "__init__.py").write_text("")
    assert git_state(package) == {"git_commit": None, "git_dirty": True}  # no commit yet
    git("add", "-A")
    git("commit", "-q", "-m", "init")
    assert git_state(package) == {"git_commit": git("rev-parse", "HEAD"), "git_dirty": False}
    (package / "__init__.py").write_text("x = 1\n")
    assert git_state(package)["git_dirty"] is True
    # A package installed into an ignored venv belongs to no checkout, even inside a repository.
    (tmp_path / ".gitignore").write_text(".venv/\n")
    installed = tmp_path / ".venv" / "lib" / "site-packages" / "pkg"
    installed.mkdir(parents=True)
    assert git_state(installed) == {"git_commit": None, "git_dirty": None}


def test_a_package_outside_a_checkout_reports_what_its_wheel_recorded(tmp_path: Path):
    package = tmp_path / "site-packages" / "bench"
    package.mkdir(parents=True)
    nulls = {"git_commit": None, "git_dirty": None}
    assert git_state(package) == nulls
    recorded = {"git_commit": "ab" * 20, "git_dirty": False}
    (package / "build_commit.json").write_text(json.dumps(recorded))
    assert git_state(package) == recorded
    (package / "build_commit.json").write_text('{"git_comm')  # damaged: nulls, never a guess or a crash
    assert git_state(package) == nulls


@needs_git
def test_the_wheel_records_the_commit_it_is_built_from(tmp_path: Path):
    """The README's quickstart installs non-editable: the wheel itself must carry the commit (hatch_build.py)."""
    import zipfile

    wheel_builder = pytest.importorskip("hatchling.builders.wheel", reason="hatchling (the test extra) is not installed")
    root = Path(bench.run.env.__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0 or not (root / "hatch_build.py").is_file():
        pytest.skip("the project is not a git checkout here")
    wheel = next(iter(wheel_builder.WheelBuilder(str(root)).build(directory=str(tmp_path), versions=["standard"])))
    with zipfile.ZipFile(wheel) as archive:
        recorded = json.loads(archive.read("bench/build_commit.json"))
    assert recorded["git_commit"] == head.stdout.strip() and isinstance(recorded["git_dirty"], bool)
