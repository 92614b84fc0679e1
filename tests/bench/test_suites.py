"""Suite builders: every suite x profile builds, and the paper profile is the reference protocol."""

from __future__ import annotations

import pytest

from bench.models import list_models, models_tagged
from bench.suites import PROFILES, SUITES, build_suite

SSM_MODELS = models_tagged("deep-ssm")
# The HiPPO paper's timescale table, in its column order (the models tagged "timescale").
TIMESCALE_MODELS = ("hippo-legs", "hippo-legt", "hippo-lagt", "lstm", "gru", "gru-d", "ode-rnn", "ncde", "lmu")


def test_suites_run_the_models_tagged_with_their_tag():
    assert SUITES["timescale"].models == TIMESCALE_MODELS
    assert set(SUITES["missing"].models) == {"gru-ode", "gru-dt", "gru-decay", "ode-rnn", "ncde", "hippo-legs",
                                             "lstm", "s4d"}  # fmt: skip
    assert SSM_MODELS == ("s4d", "s4d-lin", "lssl", "mamba")
    assert set(SUITES["pmnist"].models) == set(SUITES["smnist"].models) >= set(SSM_MODELS)
    assert not {"ode-rnn", "ncde", "gru-d"} & set(SUITES["pmnist"].models)  # rk4 over 784 steps: left out
    assert SUITES["funcapprox"].models == ("legs", "legt", "lagt", "tlagt", "glagt", "fout")


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("suite", list(SUITES))
def test_every_suite_builds(suite, profile):
    specs = build_suite(suite, profile)
    assert specs and all(s.suite == suite and s.profile == profile for s in specs)
    assert len({(s.model, s.condition, s.seed) for s in specs}) == len(specs)
    if specs[0].task != "funcapprox":
        assert {s.model for s in specs} <= set(list_models())


def test_timescale_runs_the_papers_models_and_shifts():
    specs = build_suite("timescale", "smoke", seeds=[0, 1])
    assert len(specs) == len(TIMESCALE_MODELS) * 2 * 2
    shifts = {s.condition: (s.data["train_hz"], s.data["eval_hz"]) for s in specs}
    assert shifts == {"100Hz->200Hz": (0.5, 1.0), "200Hz->100Hz": (1.0, 0.5)}
    assert all(s.data["time"] == "index" for s in specs)
    assert all(s.train["eval_rates"] == [0.25, 0.375, 0.5, 0.75, 1.0] for s in specs)
    assert all(s.data["time"] == "physical" for s in build_suite("timescale", "smoke", time="physical"))


def test_paper_profile_is_each_models_reference_configuration():
    ct = build_suite("timescale", "paper")
    assert {s.seed for s in ct} == {0, 1, 2}
    width_batch = {s.model: (s.model_args["hidden_size"], s.train["batch_size"]) for s in ct}
    assert width_batch == {"ncde": (32, 32), "ode-rnn": (32, 32), "gru-d": (47, 32), "hippo-legs": (256, 100),
                           "hippo-legt": (256, 100), "hippo-lagt": (256, 100), "lstm": (256, 100),
                           "gru": (256, 100), "lmu": (256, 100)}  # fmt: skip
    assert all(s.model_args["hidden_hidden_size"] == 32 and s.model_args["num_hidden_layers"] == 3
               for s in ct if s.model in ("ncde", "ode-rnn"))  # fmt: skip
    assert all(s.train["epochs"] == 100 and s.train["lr"] == 1e-3 and s.train["limit_train_batches"] is None
               for s in ct)  # fmt: skip
    mnist = build_suite("pmnist", "paper")
    assert all(s.data["permute"] == "bit_reversal" for s in mnist)
    assert all(s.model_args["hidden_size"] == 512 and s.train["epochs"] == 50 and s.train["batch_size"] == 100
               for s in mnist if s.model not in SSM_MODELS)  # fmt: skip
    # the deep SSMs: state-spaces/s4 example.py (its MNIST command: d_model 256, no weight decay)
    assert {(s.model_args["hidden_size"], s.train["batch_size"], s.train["lr"], s.train["weight_decay"])
            for s in mnist if s.model in SSM_MODELS} == {(256, 64, 0.01, 0.0)}  # fmt: skip
    assert {s.data["missing_rate"] for s in build_suite("missing", "paper")} == {0.3, 0.5, 0.7}
    assert max(s.model_args["length"] for s in build_suite("funcapprox", "paper")) == 1_000_000


def test_bad_names_raise_one_clear_error():
    with pytest.raises(ValueError, match="unknown suite 'x'; valid suites"):
        build_suite("x", "smoke")
    with pytest.raises(ValueError, match="unknown profile"):
        build_suite("timescale", "huge")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        build_suite("timescale", "smoke", models=["lstm", "nope"])
    assert {s.model for s in build_suite("timescale", "smoke", models=["lstm"])} == {"lstm"}


def test_time_mode_is_rejected_where_a_suite_ignores_it():
    import pytest

    from bench.suites import build_suite

    with pytest.raises(ValueError, match="has no time setting"):
        build_suite("pmnist", "smoke", time="physical")
    assert build_suite("timescale", "smoke", time="physical")[0].data["time"] == "physical"


def test_repeated_seeds_and_models_run_once_and_empty_lists_are_rejected():
    import argparse

    import pytest

    from bench.cli import _csv, _seeds

    assert _seeds("0,0,1") == [0, 1] and _csv("lstm, lstm,gru") == ["lstm", "gru"]
    with pytest.raises(argparse.ArgumentTypeError):
        _seeds("")


def test_ssms_get_the_sample_interval_as_time_unit_in_physical_time_only():
    physical = build_suite("timescale", "smoke", time="physical", models=["s4d", "mamba", "lstm"])
    assert {s.model: s.model_args.get("time_unit") for s in physical} == {"s4d": 0.005, "mamba": 0.005, "lstm": None}
    index = build_suite("timescale", "smoke", models=["s4d"])
    assert all("time_unit" not in s.model_args for s in index)


def test_timestamps_suite_scales_the_reference_clock():
    specs = build_suite("timestamps", "smoke")
    assert {s.model for s in specs} >= {"hippo-legs-ts", "hippo-legs", "ncde"}
    assert {s.condition: (s.data["train_time_scale"], s.data["eval_time_scale"]) for s in specs} == {
        "ts 0.5->1.0": (0.5, 1.0), "ts 1.0->0.5": (1.0, 0.5)}
    # index time at the source rate: source indices times the scale, hippo-code's timestamps
    assert all(s.data["time"] == "index" and s.data["train_hz"] == s.data["eval_hz"] == 1.0 for s in specs)
