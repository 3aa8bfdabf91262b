"""The progress line of a long run: counts, the current group, and an ETA from the work that has finished."""

from bench.run.progress import Progress


def test_eta_comes_from_finished_preparations_and_rounds():
    lines = []
    progress = Progress(total_cells=6, min_rounds=4, say=lines.append)
    progress.expect(2)  # two batches of three cells
    progress.batch_started("group xnli fp32 batch 1/2", 3)
    assert progress.eta_s() is None  # nothing finished yet: no estimate rather than a guess
    for seconds in (10.0, 20.0, 30.0):
        progress.cell_prepared(seconds)
    # 3 cells left to prepare at the mean 20 s; no round timed yet.
    assert progress.eta_s() == 60.0
    progress.round_done(2.0)
    progress.round_done(4.0)
    # 3 x 20 s of preparation, the 2 rounds left of this batch and 4 of the next at the mean 3 s.
    assert progress.eta_s() == 60.0 + 6 * 3.0
    progress.cells_done(3)
    assert progress.done_cells == 3 and progress.eta_s() == 60.0 + 4 * 3.0
    assert "3/6 cells done, 3 prepared" in lines[-1] and "group xnli fp32 batch 1/2" in lines[-1]
    assert "ETA 1m12s" in lines[-1]


def test_past_the_minimum_rounds_the_line_says_so_instead_of_a_stuck_zero():
    lines = []
    progress = Progress(total_cells=2, min_rounds=2, say=lines.append, max_rounds=10)
    progress.expect(1)
    progress.batch_started("group xnli fp32 batch 1/1", 2)
    progress.cell_prepared(5.0)
    progress.cell_prepared(5.0)
    progress.round_done(1.0)
    assert "ETA 1s" in lines[-1]
    progress.round_done(3.0)
    progress.round_done(2.0)  # round 3: the stopping rule wants more than the minimum
    assert "ETA 0s" not in lines[-1]
    assert "round 3: past the minimum 2, running until the stopping rule is met" in lines[-1]
    assert "at most 14s more (max_rounds 10)" in lines[-1]  # 7 rounds left at the mean 2 s


def test_round_lines_are_throttled_for_a_pipe(monkeypatch):
    clock = iter(float(t) for t in range(1000))
    monkeypatch.setattr("bench.run.progress.time.perf_counter", lambda: next(clock))
    lines = []
    progress = Progress(total_cells=1, min_rounds=40, say=lines.append, min_interval_s=15.0)
    progress.expect(1)
    progress.batch_started("group", 1)
    progress.cell_prepared(1.0)  # always shown
    for _ in range(30):  # one a second
        progress.round_done(1.0)
    progress.cells_done(1)  # always shown
    assert 3 <= len(lines) <= 5, lines
    assert "1/1 cells done" in lines[-1]
