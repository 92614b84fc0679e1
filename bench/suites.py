"""Suites: plain functions that list the runs of a benchmark for a profile.

A profile scales a suite: ``smoke`` (the whole suite in minutes on a CPU: tests and CI),
``quick`` (a CPU in well under an hour, enough to show the paper's ordering) and ``paper`` (the
reference protocol, for GPUs and nightly jobs). ``SUITES`` maps a name to
``(description, builder)``; a builder takes ``(profile, seeds, time)`` and returns RunSpecs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench.records import RunSpec

PROFILES = ("smoke", "quick", "paper")
DEFAULT_SEEDS = {"smoke": (0,), "quick": (0, 1), "paper": (0, 1, 2)}
TIME_MODES = ("index", "physical")

# The paper's timescale table, in its column order.
TIMESCALE_MODELS = (
    "hippo-legs", "hippo-legt", "hippo-lagt", "lstm", "gru", "gru-d", "ode-rnn", "ncde", "lmu",
)  # fmt: skip
# 784-step MNIST: the ODE/CDE models (rk4 per step) are left out as in the HiPPO paper's table.
MNIST_MODELS = (
    "hippo-legs", "hippo-legt", "hippo-lagt", "hippo-tlagt", "hippo-glagt", "hippo-fout",
    "lstm", "gru", "lmu",
)  # fmt: skip
FUNCAPPROX_MEASURES = ("legs", "legt", "lagt", "tlagt", "glagt", "fout")
THROUGHPUT_MODELS = TIMESCALE_MODELS + ("hippo-tlagt", "hippo-glagt", "hippo-fout")

# Test rates (fractions of the original 200 Hz) for the accuracy-versus-rate curves.
EVAL_RATES = (0.25, 0.375, 0.5, 0.75, 1.0)

# CharacterTrajectories training per profile. limit_* cap batches per epoch / per evaluation
# (None = all). Throughput is timed on one training batch: warm-up, then median of iters.
CT_TRAIN: dict[str, dict[str, Any]] = {
    "smoke": dict(epochs=1, batch_size=16, lr=1e-3, limit_train_batches=2, limit_eval_batches=1,
                  throughput_warmup=0, throughput_iters=1),
    "quick": dict(epochs=8, batch_size=50, lr=2e-3, limit_train_batches=None,
                  limit_eval_batches=None, throughput_warmup=1, throughput_iters=3),
    "paper": dict(epochs=100, batch_size=100, lr=1e-3, limit_train_batches=None,
                  limit_eval_batches=None, throughput_warmup=5, throughput_iters=20),
}  # fmt: skip
CT_HIDDEN = {"smoke": 8, "quick": 64, "paper": 256}

MNIST_TRAIN: dict[str, dict[str, Any]] = {
    "smoke": dict(epochs=1, batch_size=32, lr=1e-3, limit_train_batches=2, limit_eval_batches=1,
                  throughput_warmup=1, throughput_iters=2),
    "quick": dict(epochs=1, batch_size=100, lr=1e-3, limit_train_batches=100,
                  limit_eval_batches=20, throughput_warmup=2, throughput_iters=5),
    "paper": dict(epochs=50, batch_size=100, lr=1e-3, limit_train_batches=None,
                  limit_eval_batches=None, throughput_warmup=5, throughput_iters=20),
}  # fmt: skip
MNIST_HIDDEN = {"smoke": 8, "quick": 64, "paper": 512}

FUNCAPPROX = {
    "smoke": dict(Ns=(8, 16), length=1_000),
    "quick": dict(Ns=(16, 64, 256), length=100_000),
    "paper": dict(Ns=(16, 64, 128, 256), length=1_000_000),
}
THROUGHPUT = {
    "smoke": dict(hidden_size=8, batch_size=16, throughput_warmup=0, throughput_iters=1),
    "quick": dict(hidden_size=128, batch_size=100, throughput_warmup=2, throughput_iters=5),
    "paper": dict(hidden_size=256, batch_size=100, throughput_warmup=5, throughput_iters=20),
}


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")


def _ct_runs(
    suite: str,
    profile: str,
    seeds: Sequence[int],
    conditions: Sequence[tuple[str, dict[str, Any]]],
    eval_rates: Sequence[float] = (),
) -> list[RunSpec]:
    """CharacterTrajectories classification runs: condition x model x seed."""
    train = {**CT_TRAIN[profile], "eval_rates": list(eval_rates)}
    return [
        RunSpec(
            suite=suite, task="classification", dataset="character-trajectories",
            condition=condition, model=model, seed=seed, profile=profile,
            data=dict(data), train=dict(train),
            model_args={"hidden_size": CT_HIDDEN[profile]},
        )
        for condition, data in conditions
        for model in TIMESCALE_MODELS
        for seed in seeds
    ]  # fmt: skip


def timescale(profile: str, seeds: Sequence[int], time: str = "index") -> list[RunSpec]:
    """CharacterTrajectories trained at one rate, tested at another (and across EVAL_RATES)."""
    conditions = [
        ("100Hz->200Hz", dict(train_hz=0.5, eval_hz=1.0, time=time)),
        ("200Hz->100Hz", dict(train_hz=1.0, eval_hz=0.5, time=time)),
    ]
    return _ct_runs("timescale", profile, seeds, conditions, EVAL_RATES)


def missing(profile: str, seeds: Sequence[int], time: str = "index") -> list[RunSpec]:
    """CharacterTrajectories with 30 / 50 / 70 % of the time points dropped at random."""
    conditions = [
        (f"{round(rate * 100)}% missing", dict(train_hz=1.0, eval_hz=1.0, time=time, missing_rate=rate))
        for rate in (0.3, 0.5, 0.7)
    ]
    return _ct_runs("missing", profile, seeds, conditions)


def _mnist(suite: str, condition: str, permute: str | None, profile: str, seeds: Sequence[int]):
    return [
        RunSpec(
            suite=suite, task="classification", dataset=suite, condition=condition,
            model=model, seed=seed, profile=profile, data={"permute": permute},
            train={**MNIST_TRAIN[profile], "eval_rates": []},
            model_args={"hidden_size": MNIST_HIDDEN[profile]},
        )
        for model in MNIST_MODELS
        for seed in seeds
    ]  # fmt: skip


def pmnist(profile: str, seeds: Sequence[int], time: str = "index") -> list[RunSpec]:
    """Permuted MNIST (bit-reversal permutation of the 784 pixels, as the reference code)."""
    return _mnist("pmnist", "pMNIST", "bit_reversal", profile, seeds)


def smnist(profile: str, seeds: Sequence[int], time: str = "index") -> list[RunSpec]:
    """Sequential MNIST (pixels in raster order)."""
    return _mnist("smnist", "sMNIST", None, profile, seeds)


def funcapprox(profile: str, seeds: Sequence[int], time: str = "index") -> list[RunSpec]:
    """Online function approximation of white noise: every measure x N, float64."""
    cfg = FUNCAPPROX[profile]
    return [
        RunSpec(
            suite="funcapprox", task="funcapprox", dataset=None, condition=f"N={n}",
            model=measure, seed=seed, profile=profile, data={},
            train={}, model_args={"N": n, "length": cfg["length"], "method": "bilinear"},
        )
        for measure in FUNCAPPROX_MEASURES
        for n in cfg["Ns"]
        for seed in seeds
    ]  # fmt: skip


def throughput(profile: str, seeds: Sequence[int], time: str = "index") -> list[RunSpec]:
    """Every model at one size and batch on CharacterTrajectories batches at 200 Hz."""
    cfg = THROUGHPUT[profile]
    train = {k: v for k, v in cfg.items() if k != "hidden_size"}
    return [
        RunSpec(
            suite="throughput", task="throughput", dataset="character-trajectories",
            condition=f"batch {cfg['batch_size']}", model=model, seed=seed, profile=profile,
            data=dict(train_hz=1.0, eval_hz=1.0, time=time), train=train,
            model_args={"hidden_size": cfg["hidden_size"]},
        )
        for model in THROUGHPUT_MODELS
        for seed in seeds
    ]  # fmt: skip


# Suites whose data modules take ``time`` (CharacterTrajectories); the others ignore it.
TIMED_SUITES = ("timescale", "missing", "throughput")

SuiteBuilder = Callable[[str, Sequence[int], str], list[RunSpec]]

SUITES: dict[str, tuple[str, SuiteBuilder]] = {
    "timescale": ("CharacterTrajectories 100->200 Hz and 200->100 Hz, accuracy vs test rate", timescale),
    "pmnist": ("Permuted MNIST (bit-reversal), test accuracy", pmnist),
    "smnist": ("Sequential MNIST, test accuracy", smnist),
    "missing": ("CharacterTrajectories with 30/50/70% of points dropped", missing),
    "funcapprox": ("Online function approximation: reconstruction MSE and steps/s per measure and N", funcapprox),
    "throughput": ("Training/inference samples/s, steps/s and peak memory, every model", throughput),
}


def build_suite(
    name: str,
    profile: str,
    seeds: Sequence[int] | None = None,
    time: str = "index",
    models: Sequence[str] | None = None,
) -> list[RunSpec]:
    """The runs of suite ``name``; ``models`` keeps only those models (each must be in the suite)."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; valid suites: {', '.join(SUITES)}")
    _check_profile(profile)
    if time not in TIME_MODES:
        raise ValueError(f"unknown time mode {time!r}; valid: {', '.join(TIME_MODES)}")
    if time != "index" and name not in TIMED_SUITES:
        raise ValueError(
            f"suite {name!r} has no time setting (MNIST pixels and funcapprox samples are evenly "
            f"spaced); --time applies to {', '.join(TIMED_SUITES)}"
        )
    seeds = DEFAULT_SEEDS[profile] if seeds is None else tuple(seeds)
    specs = SUITES[name][1](profile, seeds, time)
    if models is not None:
        available = list(dict.fromkeys(s.model for s in specs))
        unknown = [m for m in models if m not in available]
        if unknown:
            raise ValueError(
                f"suite {name!r} has no model {', '.join(map(repr, unknown))}; "
                f"its models: {', '.join(available)}"
            )
        specs = [s for s in specs if s.model in models]
    return specs
