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
