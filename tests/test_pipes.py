"""`bench run ... | head -1`: a reader that goes away must not fail a run that is measuring well."""

import json
import os
import subprocess
import sys
from pathlib import Path

import tomli_w

from tinydata import tiny_sweep


def test_a_closed_stdout_does_not_fail_the_run(tmp_path, generated_data_dir, bench_env):
    config = tmp_path / "sweep.toml"
    config.write_text(tomli_w.dumps(tiny_sweep(tmp_path / "runs", tmp_path / "cache", generated_data_dir)))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("COLUMNS", None)
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    first = proc.stdout.readline()  # what `head -1` reads before it exits
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    code = proc.wait(timeout=300)
    assert first.startswith(b"run "), first
    assert code == 0, stderr
    assert "Traceback" not in stderr and "SystemExit" not in stderr and "BrokenPipe" not in stderr, stderr
    (run,) = (tmp_path / "runs").iterdir()
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "complete", manifest
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert records and all(r["status"] == "ok" for r in records)
    assert (run / "report.html").is_file()  # the files after the terminal views were still written
