import json
from pathlib import Path

from iomt.simulation.report import (
    PooledChoice,
    Summary,
    build_report,
    markdown,
    person_gain_words,
    round_rows,
    write_report,
)


def test_round_rows_carry_the_documented_fields() -> None:
    rows = round_rows(
        [
            {
                "round": 1,
                "accuracy": 0.8,
                "participants": 3,
                "bytes_in": 10,
                "bytes_out": 20,
                "dropped": 1,
                "rejected": {"stale": 2, "malformed": 1},
            }
        ]
    )
    assert rows[0]["round"] == 1 and rows[0]["rejected"] == 3
    assert rows[0]["bytes_up"] == 10 and rows[0]["bytes_down"] == 20 and rows[0]["dropped"] == 1
    assert rows[0]["rejected_by_reason"] == {"stale": 2, "malformed": 1}


def test_report_files_are_written(tmp_path: Path) -> None:
    summary = Summary(
        pretrained=0.7,
        federated=0.8,
        personalised=0.9,
        federated_on_device=0.85,
        pooled_upper_bound=0.82,
        local_only=0.75,
    )
    rows = round_rows(
        [
            {
                "round": r,
                "accuracy": 0.7 + r / 100,
                "participants": 2,
                "bytes_in": 100,
                "bytes_out": 200,
            }
            for r in (1, 2)
        ]
    )
    config = {
        "task": "har",
        "devices": 2,
        "rounds": 2,
        "strategy": "fedavg",
        "codec": "int8",
        "test_subjects": [8],
        "pretrain_subjects": [1],
    }
    devices = {"dev-01": {"subject": 4, "global": 0.8, "personalised": 0.9, "local_only": 0.7}}
    report = build_report(config, rows, summary, devices, {"drop_rate": 0.0}, {"total": 1.0})
    written = write_report(tmp_path, report)
    assert {p.name for p in written} >= {"report.json", "report.md", "accuracy_per_round.png"}
    text = (tmp_path / "report.md").read_text()
    assert "| federated global head | 0.800 |" in text


def test_report_says_what_the_pooled_bound_is_and_whether_it_bounded(tmp_path: Path) -> None:
    # Prepare
    def summary(pooled: float) -> Summary:
        return Summary(
            pretrained=0.7,
            federated=0.8,
            personalised=0.9,
            federated_on_device=0.85,
            pooled_upper_bound=pooled,
            local_only=0.75,
        )

    choice = PooledChoice("sgd, 5 passes", {"none": 0.7, "sgd, 5 passes": 0.83, "fedavg": 0.81},
                          "fedavg", "none")  # fmt: skip
    config = _config()
    # Execute
    texts = {}
    for pooled in (0.82, 0.78):
        report = build_report(config, [], summary(pooled), {}, {}, {}, choice)
        texts[pooled] = markdown(report, [])
    # Assert
    for text in texts.values():
        assert "trained centrally on every window the devices hold" in text
        assert "chose `sgd, 5 passes` among 3 recipes" in text
        assert "procedure run centrally (0.810)" in text and "by construction" in text
        assert "scores 0.810 with the fleet's procedure run on the others against 0.700" in text
    assert "0.020 above the federated head" in texts[0.82]
    assert "beat it by 0.020" in texts[0.78] and "not an upper bound in fact" in texts[0.78]
    assert json.loads(json.dumps(report))["pooled"]["recipe"] == "sgd, 5 passes"


def test_the_summary_line_gives_the_pretrained_heads_held_out_devices_score() -> None:
    import io

    from iomt.commands.simulate import _print_summary
    from iomt.environment import Environment

    summary = Summary(0.6, 0.8, 0.9, 0.85, 0.82, 0.75)
    choice = PooledChoice("fedavg", {"none": 0.7, "fedavg": 0.81}, "fedavg", "none")
    report = build_report({}, [], summary, {}, {}, {"total": 1.0}, choice)
    out = io.StringIO()
    _print_summary(
        Environment(stdout=out, stderr=io.StringIO(), interactive=False), report, Path("x")
    )
    assert "(0.810; the fleet's procedure 0.810, the pretrained head 0.700)" in out.getvalue()


def test_report_says_who_was_recorded_in_the_lab() -> None:
    summary = Summary(0.6, 0.8, 0.9, 0.85, 0.82, 0.75)
    config = _config()
    daily = markdown(build_report(config, [], summary, {}, {}, {}), [])
    lab = markdown(build_report({**config, "lab_subjects": [1, 2]}, [], summary, {}, {}, {}), [])
    assert "lab" not in daily
    assert "pretrained on [1] only (subjects [1, 2] recorded in a lab protocol" in lab


def test_report_gives_the_federated_gain_person_by_person() -> None:
    # Prepare: three people gain 10, 4 and -2 points, one is unchanged
    summary = Summary(0.6, 0.8, 0.9, 0.85, 0.82, 0.75)
    scores = {16: (0.70, 0.80), 17: (0.50, 0.54), 41: (0.90, 0.88), 42: (0.60, 0.60)}
    per_subject = {s: {"pretrained": a, "federated": b} for s, (a, b) in scores.items()}
    # Execute
    report = json.loads(json.dumps(build_report(_config(), [], summary, {}, {}, {},
                                                per_test_subject=per_subject)))  # fmt: skip
    one = build_report(_config(), [], summary, {}, {}, {}, per_test_subject={16: per_subject[16]})
    # Assert: mean 3.0, sample sd 5.29, so a standard error of 2.6 over four people
    assert report["per_test_subject"]["41"] == {"pretrained": 0.9, "federated": 0.88}
    assert person_gain_words(report["per_test_subject"]).startswith(
        "Person by person, the federated head gains +3.0 points on the pretrained one over the "
        "4 test subjects (standard error 2.6); 2 gain, 1 lose."
    )
    assert "standard error 2.6" in markdown(report, [])
    assert "Person by person" not in markdown(one, [])  # no spread to give from one person


def _config() -> dict:  # type: ignore[type-arg]
    return {"task": "stress", "devices": 1, "rounds": 1, "strategy": "fedavg",
            "codec": "int8", "test_subjects": [8], "pretrain_subjects": [1]}  # fmt: skip


def _report() -> dict:  # type: ignore[type-arg]
    summary = Summary(0.6, 0.8, 0.9, 0.85, 0.82, 0.75)
    rows = round_rows([{"round": r, "accuracy": 0.7 + r / 100, "participants": 2,
                        "bytes_in": 2500 * r, "bytes_out": 900} for r in (1, 2, 3)])  # fmt: skip
    devices = {f"dev-0{i}": {"subject": i, "global": 0.8, "personalised": 1.0, "local_only": 0.7}
               for i in (1, 2)}  # fmt: skip
    return build_report({}, rows, summary, devices, {}, {})


def test_every_plot_has_a_title_and_labelled_axes() -> None:
    from iomt.simulation.report import accuracy_figure, bytes_figure, personalisation_figure

    for make in (accuracy_figure, bytes_figure, personalisation_figure):
        axes = make(_report()).axes[0]
        assert axes.get_title() and axes.get_xlabel() and axes.get_ylabel(), make.__name__


def test_accuracy_starts_at_round_zero_on_a_full_axis() -> None:
    from iomt.simulation.report import accuracy_figure

    axes = accuracy_figure(_report()).axes[0]
    line = axes.get_lines()[0]
    assert list(line.get_xdata()) == [0, 1, 2, 3] and line.get_ydata()[0] == 0.6
    assert axes.get_ylim()[0] == 0 and axes.get_ylim()[1] >= 1.0


def test_personalisation_shows_local_only_and_bars_at_one_are_not_clipped() -> None:
    from iomt.simulation.report import personalisation_figure

    axes = personalisation_figure(_report()).axes[0]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == [
        "federated", "+ personalised", "local only"
    ]  # fmt: skip
    assert axes.get_ylim()[1] > 1.0
