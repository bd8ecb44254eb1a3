"""Subject lists on the command line: ids and ranges, and one-line refusals of what is not one."""

from __future__ import annotations

import io

import pytest

from iomt.cli import main
from iomt.environment import Environment
from iomt.subject_ids import parse_subject_ids


def test_ranges_and_single_ids_mix_in_the_order_given() -> None:
    assert parse_subject_ids("1-3,21-23") == [1, 2, 3, 21, 22, 23]
    assert parse_subject_ids("8, 9,10") == [8, 9, 10]
    assert parse_subject_ids("16-20,5") == [16, 17, 18, 19, 20, 5]
    assert parse_subject_ids("7-7") == [7]


@pytest.mark.parametrize(
    "text, says",
    [("1-", "expected subject ids"), ("a,b", "expected subject ids"), ("1-2-3", "expected"),
     ("5-3", "runs backwards"), ("1-5,3", "listed twice in '1-5,3': [3]")],
)  # fmt: skip
def test_what_is_not_a_subject_list_is_refused(text: str, says: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_subject_ids(text)
    assert says in str(refused.value)


def test_train_refuses_a_bad_range_in_one_line_before_reading_anything(tmp_path, capsys) -> None:
    argv = ["train", "--data", str(tmp_path / "missing.npz"), "--arch", "bilstm",
            "--out", str(tmp_path / "run"), "--train-subjects", "1-10,20-15"]  # fmt: skip
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), interactive=False)
    with pytest.raises(SystemExit) as exited:  # argparse's own usage error
        main(argv, env)
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "iomt train: error: argument --train-subjects: subject range '20-15' runs backwards"
    )
    assert not (tmp_path / "run").exists()


def test_evaluate_refuses_a_bad_subject_list_before_loading_the_run(tmp_path) -> None:
    from training.datasets import simulated_stress
    from training.datasets.window_dataset import save_window_dataset
    from training.run_artifacts import RUN_FILES

    run = tmp_path / "run"
    run.mkdir()
    for name in RUN_FILES:
        (run / name).write_text("not read: the subject list is refused first")
    data = tmp_path / "d.npz"
    save_window_dataset(simulated_stress.prepare(seed=0, subjects=1, sessions=1), data)
    out, err = io.StringIO(), io.StringIO()
    argv = ["evaluate", str(run), "--data", str(data), "--subjects", "3-1"]
    code = main(argv, Environment(stdout=out, stderr=err, interactive=False))
    assert code == 2
    assert err.getvalue().strip().splitlines() == [
        "iomt evaluate: error: --subjects: subject range '3-1' runs backwards"
    ]
