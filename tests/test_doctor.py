"""`bench doctor` on this CPU: the stack rows, every CPU path it can prove, CUDA rows skipped with reasons, and a
JSON file of every check; the checks themselves fail when what they guard is wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bench.cli import app
from bench.doctor import paths

CUDA = torch.cuda.is_available()


@pytest.mark.skipif(CUDA, reason="checks the rows of a machine without CUDA")
def test_doctor_on_the_cpu_passes_its_paths_and_skips_cuda_with_reasons(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "doctor.json"
    result = CliRunner().invoke(app, ["doctor", "--backends", "eager", "--peaks", "off", "--threads", "1",
                                      "--output", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    rows = {(c["area"], c["name"]): c for c in document["checks"]}
    assert document["summary"]["fail"] == 0 and document["summary"]["pass"] >= 10
    assert rows[("stack", "TF32 policy")]["status"] == "pass"
    assert rows[("stack", "ORT CPUExecutionProvider")]["status"] == "pass"
    assert rows[("cuda *", "paths")]["status"] == "skip" and "CUDA is not available" in rows[("cuda *", "paths")]["detail"]
    for name in ("NVML", "cuDNN", "cuSPARSELt"):
        assert rows[("stack", name)]["status"] == "skip" and rows[("stack", name)]["detail"]
    dense = "cpu eager fp32 random:tiny"
    assert rows[(dense, "parity")]["status"] == "pass" and rows[(dense, "memory")]["status"] == "pass"
    assert rows[(dense, "timing")]["status"] == "skip" and "CUDA events" in rows[(dense, "timing")]["detail"]
    assert rows[(dense, "% of peak")]["status"] == "skip" and "--peaks off" in rows[(dense, "% of peak")]["detail"]
    assert "CUDA-only" in rows[("cpu eager fp32 semi24", "2:4 conversion")]["detail"]
    assert rows[("cpu eager fp32 structured", "speedup_mechanism")]["status"] == "pass"
    assert rows[("cpu eager fp32 prefix", "parity")]["status"] == "pass"
    assert "bench doctor" in result.output and "failed" in result.output
    said = " ".join(result.output.split())  # however the console wrapped it
    assert "proving cpu x 1 backend(s)" in said and "(cuda: CUDA is not available, skipped)" in said


def test_bad_doctor_options_are_one_line_errors(tmp_path):
    result = CliRunner().invoke(app, ["doctor", "--backends", "tensorrt", "--output", str(tmp_path / "d.json")])
    assert result.exit_code == 2 and "unknown tensorrt" in result.output and not (tmp_path / "d.json").exists()


def test_parity_and_timing_checks_fail_when_they_should():
    reference = np.array([[0.5, -0.25, 1.0]], dtype=np.float32)
    assert paths._parity("a", "fp32", reference.copy(), reference).status == "pass"
    assert paths._parity("a", "fp32", reference + 1e-3, reference).status == "fail"
    assert paths._parity("a", "bf16", reference + 1e-2, reference).status == "pass"
    assert paths._parity("a", "fp32", reference.astype(np.float16), reference).status == "fail"  # not float32


def test_percent_of_peak_above_100_fails_with_the_reason():
    from bench.backends import Target
    from bench.model.classifier import XGLMClassifier
    from bench.model.source import ModelSource, load_backbone

    model = XGLMClassifier(load_backbone(ModelSource.parse("random:tiny"), seed=0), 3)
    settings = paths.Settings(devices=["cpu"], backends=["eager"], dtypes=None, models=["random:tiny"], threads=1,
                              workdir=None, peaks={"cpu": {"peak_tflops_fp32": 1e-6, "peak_gbps": 1e-3}})
    check = paths._percent_of_peak("a", model, Target("cpu", "fp32", 1), (4, 32), 1e-3, settings)
    assert check.status == "fail" and "recalibrate" in check.detail
    fine = paths.Settings(**{**settings.__dict__, "peaks": {"cpu": {"peak_tflops_fp32": 1e3, "peak_gbps": 1e6}}})
    assert paths._percent_of_peak("a", model, Target("cpu", "fp32", 1), (4, 32), 1e-3, fine).status == "pass"
