from pathlib import Path

from iomt.simulation.report import Summary, build_report, markdown, round_rows, write_report


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

    config = {"task": "stress", "devices": 1, "rounds": 1, "strategy": "fedavg",
              "codec": "int8", "test_subjects": [8], "pretrain_subjects": [1]}  # fmt: skip
    # Execute
    texts = {}
    for pooled in (0.82, 0.78):
        report = build_report(config, [], summary(pooled), {}, {}, {})
        texts[pooled] = markdown(report, [])
    # Assert
    for text in texts.values():
        assert "trained centrally on every window the devices hold" in text
    assert "0.020 above the federated head" in texts[0.82]
    assert "beat it by 0.020" in texts[0.78] and "not an upper bound" in texts[0.78]
