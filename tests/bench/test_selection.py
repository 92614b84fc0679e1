"""Model selection as the tables use it: which epoch's weights give each number of a record.

The scripted model (``bench_fakes``) trains for 5 epochs; its validation accuracy peaks early
and then falls, at another epoch at each rate, and each epoch's weights have their own test
accuracy at every rate. Run through ``run_suite``, the record must hold the accuracies of the
epochs the rules select: the honest rule at the training rate, the reference codes' rule at the
evaluation rate, and the rate curve of the first, on the test split.
"""

from __future__ import annotations

import pytest

from bench.runner import run_suite
from bench.suites import EVAL_RATES


def first_argmax(values: list[float]) -> int:
    return values.index(max(values))


# (training rate, evaluation rate, epoch best at the first, epoch best at the second)
CONDITIONS = [(0.5, 1.0, 1, 2), (1.0, 0.5, 2, 1)]


@pytest.mark.parametrize(("train_hz", "eval_hz", "best", "best_at_eval"), CONDITIONS)
def test_the_record_holds_the_selected_epochs_accuracies(fakes, results_dir, train_hz, eval_hz, best, best_at_eval):
    assert fakes.SCRIPT_RATES == EVAL_RATES  # the curve's rates are the suites'
    (record,) = run_suite([fakes.scripted_spec(train_hz, eval_hz)], results_dir, interactive=False).records
    check_selected(record, fakes, train_hz, eval_hz, best, best_at_eval)


def check_selected(record, fakes, train_hz: float, eval_hz: float, best: int, best_at_eval: int) -> None:
    """A scripted run's record holds the accuracies of the epochs each rule selects."""
    assert record.status == "ok", record.error
    history, metrics, epochs = record.history, record.metrics, range(fakes.SCRIPT_EPOCHS)
    assert [e["epoch"] for e in history] == list(epochs)
    at_train = [e["val_acc_train_rate"] for e in history]
    at_eval = [e["val_acc_eval_rate"] for e in history]
    assert at_train == [fakes.script_acc("val", train_hz, e) for e in epochs]  # validation at the right rates
    assert at_eval == [fakes.script_acc("val", eval_hz, e) for e in epochs]
    assert at_train.count(max(at_train)) == at_eval.count(max(at_eval)) == 2  # ties: the earliest wins

    # the epochs: the first argmax of each history, neither of them the last epoch
    assert metrics["best_epoch"] == first_argmax(at_train) == best
    assert metrics["best_epoch_eval_selected"] == first_argmax(at_eval) == best_at_eval
    assert metrics["selected_on"] == "val_acc_train_rate" and metrics["selected_on_eval"] == "val_acc_eval_rate"
    # the numbers: those epochs' weights on the test split at the evaluation rate
    assert metrics["test_acc"] == fakes.script_acc("test", eval_hz, best)
    assert metrics["test_acc_eval_selected"] == fakes.script_acc("test", eval_hz, best_at_eval)
    assert metrics["test_examples"] == fakes.SCRIPT_N
    # validation after training is the selected weights' (the history's value at that epoch)
    assert metrics["val_acc_train_rate"] == at_train[best] and metrics["val_acc_eval_rate"] == at_eval[best]
    # the accuracy-versus-rate curve: the selected weights on the test split at every rate
    assert record.rate_curve == {str(r): fakes.script_acc("test", r, best) for r in EVAL_RATES}
    assert record.rate_curve[str(eval_hz)] == metrics["test_acc"]
    assert all(record.rate_curve[str(r)] != fakes.script_acc("val", r, best) for r in EVAL_RATES)


def test_one_rule_picking_one_epoch_gives_one_number(fakes, results_dir):
    """Equal rates (the missing-data suite's shape): both rules select the same weights."""
    (record,) = run_suite([fakes.scripted_spec(1.0, 1.0)], results_dir, interactive=False).records
    assert record.status == "ok", record.error
    at_train = [e["val_acc_train_rate"] for e in record.history]
    assert record.metrics["best_epoch"] == first_argmax(at_train) == 2
    assert record.metrics["test_acc"] == fakes.script_acc("test", 1.0, 2)
    assert record.metrics.get("test_acc_eval_selected", record.metrics["test_acc"]) == record.metrics["test_acc"]
