"""`python -m bench async`: time to accuracy and its docs section, from made-up curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.async_rounds import report_section, time_to_accuracy
from bench.report import Plots


def _run(points: list[tuple[float, float]]) -> dict[str, Any]:
    curve = [{"version": i + 1, "wall_s": t, "accuracy": a, "participants": 3}
             for i, (t, a) in enumerate(points)]  # fmt: skip
    return {"curve": curve, "wall_s": points[-1][0], "final_accuracy": points[-1][1],
            "pretrained_accuracy": 0.5, "updates_accepted": 3 * len(points),
            "rejected": {"too_stale": 2}}  # fmt: skip


def test_time_to_accuracy_is_when_each_run_first_reached_the_sync_final_accuracy() -> None:
    # Prepare: sync reaches its final 0.8 first at 20 s; async at 9 s
    sync = _run([(10.0, 0.7), (20.0, 0.8), (30.0, 0.79), (40.0, 0.8)])
    async_ = _run([(3.0, 0.6), (6.0, 0.75), (9.0, 0.81), (12.0, 0.78)])

    # Execute
    result = time_to_accuracy(sync, async_)

    # Assert
    assert result["target_accuracy"] == 0.8
    assert (result["sync_time_to_target_s"], result["async_time_to_target_s"]) == (20.0, 9.0)
    assert result["async_reached_target_sooner"] and result["speedup"] == 2.22
    assert result["sync_time_to_final_s"] == 40.0 and result["speedup_vs_sync_run"] == 4.44


def test_an_async_run_that_never_reaches_the_target_says_so() -> None:
    result = time_to_accuracy(_run([(10.0, 0.9)]), _run([(1.0, 0.5), (2.0, 0.89)]))
    assert result["async_time_to_target_s"] is None and not result["async_reached_target_sooner"]


def test_section_has_both_modes_and_the_plot(tmp_path: Path) -> None:
    # Prepare
    sync, async_ = _run([(10.0, 0.7), (20.0, 0.8)]), _run([(2.0, 0.6), (5.0, 0.85)])
    settings = {"devices": 10, "slow_fraction": 0.3, "slowdown": 5.0, "train_time": 1.0,
                "rounds": 2, "buffer_size": 3, "max_staleness": 6}  # fmt: skip
    results = {"settings": settings, "sync": sync, "async": async_,
               **time_to_accuracy(sync, async_)}  # fmt: skip

    # Execute
    text = report_section(results, Plots(tmp_path, "benchmarks"))

    # Assert
    assert "| sync |" in text and "| async |" in text and "too_stale 2" in text
    assert "asynchronous rounds reached that accuracy sooner" in text
    assert (tmp_path / "async_time_to_accuracy.png").stat().st_size > 0
