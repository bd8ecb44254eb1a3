"""The DP bench's settings and its frontier section (figures come from the results given)."""

from __future__ import annotations

from pathlib import Path

from bench.dp_watch import FRONTIER, Setting
from bench.report import Plots
from bench.sections import dp_section


def test_settings_parse_fixed_and_adaptive_clips() -> None:
    fixed = Setting.parse("z=4,q=1,clip=0.5,dps=8")
    adaptive = Setting.parse("z=2,q=0.25,clip=auto,dps=32,gamma=0.9")
    assert fixed == Setting(4.0, 1.0, 0.5, 8)
    assert adaptive == Setting(2.0, 0.25, None, 32, 0.9)
    assert sum(Setting.parse(text).noise > 0 for text in FRONTIER) >= 5


def _row(noise: float, epsilon: float | None, devices: int, accuracy: float) -> dict[str, object]:
    return {"noise_multiplier": noise, "sampling_rate": 1.0 if devices == 32 else 0.25,
            "clip": "adaptive" if noise else "none", "target_quantile": 0.9, "epsilon": epsilon,
            "delta": 1e-5, "rounds": 20, "devices": devices, "devices_per_round_mean": 32.0,
            "accuracy_mean": accuracy, "accuracy_std": 0.01, "final_clip_median": 0.16,
            "seeds": 3}  # fmt: skip


def test_section_plots_the_frontier_and_names_the_best_setting_under_epsilon_8(
    tmp_path: Path,
) -> None:
    # Prepare
    results = {"settings": [_row(0, None, 32, 0.82), _row(3, 7.5, 32, 0.81),
                            _row(5, 4.2, 32, 0.79), _row(2, 3.1, 128, 0.805),
                            _row(1, 9.1, 128, 0.83)]}  # fmt: skip

    # Execute
    text = dp_section(results, Plots(tmp_path, "plots"))

    # Assert
    assert (tmp_path / "dp_frontier.png").exists()
    assert "32 devices: best at epsilon <= 8 is epsilon 7.5 (z 3" in text
    assert "accuracy 0.81, 1.00 points below no noise on 32 devices (0.82)" in text
    assert "- 128 devices: best at epsilon <= 8 is epsilon 3.1" in text
