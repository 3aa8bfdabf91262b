"""Hardware targets compared by what a sample costs: dollars per million samples from each run's price, samples per
joule where energy was measured, and the best target (run x backend x dtype) per variant and shape.

A run's price comes from `bench compare --price RUN=USD_PER_HOUR` (RUN: a compared run's directory, by the path
given or its name), else from the [cost] section recorded in its config.toml. The price is what one group
occupies for an hour (a GPU, or the CPU cores of measure.threads), so

    $ per million samples = usd_per_hour / 3600 x (seconds per sample) x 1e6

with seconds per sample = p50 / batch at a latency shape (its CI from the CI of the median, since the cost is
linear in p50), or 1 / throughput over the evaluation pass (no CI). Samples per joule come from the record's
energy; the interval shown is its counter uncertainty (`energy_uncertainty_rel`) where the record carries one.
Targets are matched on (variant, task, batch, seq) across device kinds, so a GPU and a CPU server compare.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError
from reports.load import Run

Interval = tuple[float | None, float | None]


@dataclass(frozen=True)
class Price:
    usd_per_hour: float
    source: str  # "--price" or "config.toml [cost]"


@dataclass(frozen=True)
class CostCell:
    """One ok latency or throughput record of a run, with what it costs."""

    run: int  # index among the compared runs
    record: dict[str, Any]
    latency_ms: float | None  # p50 at a latency shape; None for the evaluation pass
    latency_ci: Interval
    usd_per_million: float | None  # None: the run has no price
    usd_ci: Interval
    samples_per_j: float | None  # None: no energy measured
    samples_per_j_ci: Interval

    @property
    def target(self) -> tuple[str, str]:
        return self.record["backend"], self.record["dtype"]

    @property
    def cell(self) -> tuple:
        r = self.record
        return r["variant"], r["task"], r.get("batch_size"), r.get("seq_len"), r["scenario"]


@dataclass(frozen=True)
class Pick:
    cell: CostCell
    value: float
    interval: Interval
    clear: bool  # the runner-up's interval does not reach this one's: a clear winner


@dataclass(frozen=True)
class Best:
    """The best target for one variant at one shape, by each criterion (None: no target has the figure)."""

    cell: tuple  # variant, task, batch, seq
    targets: int  # how many (run, backend, dtype) targets measured it
    fastest: Pick | None
    cheapest: Pick | None
    most_efficient: Pick | None


def run_prices(runs: list[Run], given: list[str]) -> list[Price | None]:
    """Each run's price: --price RUN=USD_PER_HOUR first, else its config.toml [cost] usd_per_hour, else None."""
    prices: list[Price | None] = [_recorded(run) for run in runs]
    priced: set[int] = set()
    for item in given:
        name, sep, amount = item.rpartition("=")
        if not sep or not name:
            raise BenchError(f"--price '{item}': expected RUN=USD_PER_HOUR, e.g. --price {runs[0].path.name}=4.10")
        try:
            usd = float(amount)
        except ValueError:
            usd = -1.0
        if not usd > 0 or usd == float("inf"):
            raise BenchError(f"--price '{item}': USD_PER_HOUR must be a positive number of dollars per hour")
        index = _which(runs, name, item)
        if index in priced:
            raise BenchError(f"--price: run '{name}' is priced twice; give one price per run")
        priced.add(index)
        prices[index] = Price(usd, "--price")
    return prices


def cost_cells(runs: list[Run], prices: list[Price | None]) -> list[CostCell]:
    out = []
    for index, (run, price) in enumerate(zip(runs, prices)):
        for record in run.records:
            if record.get("status") == "ok" and record.get("scenario") in ("latency", "throughput"):
                cell = _cost(index, record, price)
                if cell is not None:
                    out.append(cell)
    return out


def best_targets(cells: list[CostCell]) -> list[Best]:
    """Per (variant, task, batch, seq) at the latency shapes, over every run x backend x dtype that measured it."""
    groups: dict[tuple, list[CostCell]] = {}
    for cell in cells:
        if cell.latency_ms is not None:
            groups.setdefault(cell.cell[:4], []).append(cell)
    return [Best(key, len(group),
                 _pick(group, lambda c: (c.latency_ms, c.latency_ci), lower=True),
                 _pick(group, lambda c: (c.usd_per_million, c.usd_ci), lower=True),
                 _pick(group, lambda c: (c.samples_per_j, c.samples_per_j_ci), lower=False))
            for key, group in groups.items()]


def _pick(group: list[CostCell], figure, lower: bool) -> Pick | None:
    scored = [(cell, *figure(cell)) for cell in group if figure(cell)[0] is not None]
    if not scored:
        return None
    scored.sort(key=lambda s: s[1] if lower else -s[1])
    cell, value, interval = scored[0]
    clear = True
    if len(scored) > 1:
        _, other, other_interval = scored[1]
        mine = interval[1] if lower else interval[0]  # the side of the winner's interval facing the runner-up
        theirs = other_interval[0] if lower else other_interval[1]
        clear = None not in (mine, theirs) and (mine < theirs if lower else mine > theirs)
    return Pick(cell, value, interval, clear)


def _cost(index: int, record: dict[str, Any], price: Price | None) -> CostCell | None:
    per_second = price.usd_per_hour / 3600 if price else None
    spj = record.get("samples_per_j")
    if spj is None and record.get("energy_j_per_sample"):
        spj = 1 / record["energy_j_per_sample"]
    spj_ci = _energy_interval(record, spj)
    if record["scenario"] == "latency":
        p50, batch = record.get("latency_ms_p50"), record.get("batch_size")
        if not p50 or not batch:
            return None
        ci = (record.get("latency_ms_ci95_low"), record.get("latency_ms_ci95_high"))
        usd = (lambda ms: None if ms is None or per_second is None else per_second * ms / 1e3 / batch * 1e6)
        return CostCell(index, record, p50, ci, usd(p50), (usd(ci[0]), usd(ci[1])), spj, spj_ci)
    rate = record.get("throughput_samples_per_s")
    if not rate:
        return None
    usd_value = per_second / rate * 1e6 if per_second is not None else None
    return CostCell(index, record, None, (None, None), usd_value, (None, None), spj, spj_ci)


def _energy_interval(record: dict[str, Any], spj: float | None) -> Interval:
    if spj is None:
        return None, None
    if record.get("samples_per_j_ci95_low") is not None:
        return record["samples_per_j_ci95_low"], record.get("samples_per_j_ci95_high")
    rel = record.get("energy_uncertainty_rel")
    if rel is None or not 0 <= rel < 1:
        return None, None
    return spj / (1 + rel), spj / (1 - rel)  # energy within +-rel, so samples per joule within these


def _recorded(run: Run) -> Price | None:
    path = run.path / "config.toml"
    try:
        usd = tomllib.loads(path.read_text(encoding="utf-8")).get("cost", {}).get("usd_per_hour")
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return None
    return Price(float(usd), "config.toml [cost]") if isinstance(usd, (int, float)) and usd > 0 else None


def _which(runs: list[Run], name: str, item: str) -> int:
    """The run a --price names: by the path it was given as, its resolved path, or its directory name."""
    matches = [i for i, run in enumerate(runs)
               if name in (str(run.path), run.path.name, str(run.path.resolve()), run.run_id)
               or name.rstrip("/") in (str(run.path).rstrip("/"), run.path.name)]
    if len(matches) == 1:
        return matches[0]
    names = ", ".join(f"{chr(ord('A') + i)}: {run.path.name}" for i, run in enumerate(runs))
    if not matches:
        raise BenchError(f"--price '{item}': '{name}' is none of the compared runs ({names})")
    raise BenchError(f"--price '{item}': '{name}' names {len(matches)} compared runs; give its path instead")
