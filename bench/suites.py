"""Suites: plain functions that list the runs of a benchmark for a profile.

A profile scales a suite: ``smoke`` (the whole suite in minutes on a CPU: tests and CI),
``quick`` (a CPU in well under an hour, enough to show the paper's ordering) and ``paper`` (the
reference protocol: each model in its own reference configuration, :mod:`bench.profiles`).
:data:`SUITES` maps a name to a :class:`Suite`; its builder takes ``(profile, seeds, time,
models)`` and returns RunSpecs. A suite's default models are the registered models tagged with
its ``tag`` (each model's file says which suites it belongs to), so a model of yours can join a
suite's default list with ``register_model(..., tags=("timescale",))``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.data.registry import UEA_PREFIX, DatasetEntry, get_dataset_entry
from bench.models import get_model_entry, list_models, model_parameters, models_tagged
from bench.profiles import model_settings, reference
from bench.records import RunSpec
from bench.registry import Registry, suggest
from bench.settings import NO_REFERENCE, PROFILES, TrainSettings
from hippo.transition import MEASURES

DEFAULT_SEEDS = {"smoke": (0,), "quick": (0, 1), "paper": (0, 1, 2)}
TIME_MODES = ("index", "physical")

CT = "character-trajectories"
# The HiPPO paper's function-approximation measures (LMU's is LegT's, up to normalisation).
FUNCAPPROX_MEASURES = ("legs", "legt", "lagt", "tlagt", "glagt", "fout")

# Test rates (fractions of the original 200 Hz) for the accuracy-versus-rate curves.
EVAL_RATES = (0.25, 0.375, 0.5, 0.75, 1.0)

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


def _classification_runs(
    suite: str,
    family: str,
    dataset: str,
    profile: str,
    seeds: Sequence[int],
    models: Sequence[str],
    conditions: Sequence[tuple[str, dict[str, Any]]],
    eval_rates: Sequence[float] = (),
    sample_rate_hz: float | None = None,
    protocol: str | None = None,
) -> list[RunSpec]:
    """Classification runs, condition x model x seed, each model in its reference settings
    (:func:`bench.profiles.model_settings`, ``protocol``'s where it has one) scaled by the profile."""
    specs = []
    for model in models:
        settings, model_args = model_settings(family, model, profile, protocol, eval_rates=list(eval_rates))
        source = reference(family, model, protocol).source
        provenance = {"settings": source} if source == NO_REFERENCE else {}
        specs += [
            RunSpec(
                suite=suite, task="classification", dataset=dataset, condition=condition,
                model=model, seed=seed, profile=profile, data=dict(data),
                train=settings.to_dict(), model_args={**model_args, **_time_unit(model, data, sample_rate_hz)},
                provenance=dict(provenance),
            )
            for condition, data in conditions
            for seed in seeds
        ]  # fmt: skip
    # condition-major order: a suite's first runs fill its first table column
    order = {c: i for i, (c, _) in enumerate(conditions)}
    return sorted(specs, key=lambda s: order[s.condition])


def _time_unit(model: str, data: dict[str, Any], sample_rate_hz: float | None) -> dict[str, float]:
    """``{"time_unit": seconds per model step}`` for a model that discretises with ``time_unit``
    (the deep SSMs) under physical time: one source sample (5 ms for CharacterTrajectories), so
    index and physical time coincide at the source rate and Δ scales with any other rate."""
    if data.get("time") != "physical" or "time_unit" not in model_parameters(model):
        return {}
    return {"time_unit": 1.0 / sample_rate_hz}


def _shift(dataset: DatasetEntry, train: float, test: float) -> str:
    """A condition's name: ``100Hz->200Hz`` where the sampling rate is known, else ``0.5->1.0``."""
    if dataset.sample_rate_hz:
        return f"{dataset.sample_rate_hz * train:g}Hz->{dataset.sample_rate_hz * test:g}Hz"
    return f"{train}->{test}"


def _uea_data(dataset: DatasetEntry, **data: Any) -> dict[str, Any]:
    """A UEA data module's protocol settings; a generic ``uea:<Name>`` is told its sampling rate."""
    if dataset.name.startswith(UEA_PREFIX) and dataset.sample_rate_hz:
        data["sample_rate_hz"] = dataset.sample_rate_hz
    return data


def timescale(profile: str, seeds: Sequence[int], time: str, models: Sequence[str],
              dataset: DatasetEntry | None = None) -> list[RunSpec]:  # fmt: skip
    """A UEA dataset (default CharacterTrajectories) trained at one rate, tested at another (and
    across EVAL_RATES): 100 -> 200 Hz and 200 -> 100 Hz for CharacterTrajectories."""
    dataset = dataset or get_dataset_entry(CT)
    conditions = [
        (_shift(dataset, 0.5, 1.0), _uea_data(dataset, train_hz=0.5, eval_hz=1.0, time=time)),
        (_shift(dataset, 1.0, 0.5), _uea_data(dataset, train_hz=1.0, eval_hz=0.5, time=time)),
    ]
    return _classification_runs("timescale", dataset.family, dataset.name, profile, seeds, models, conditions,
                                EVAL_RATES, dataset.sample_rate_hz)  # fmt: skip


def timestamps(profile: str, seeds: Sequence[int], time: str, models: Sequence[str]) -> list[RunSpec]:
    """The reference's timestamp-scale shift ("Missing values upsample / downsample" in hippo-code).

    Every sample is kept at 200 Hz (the reference's seeded random subsampling at rate 1 keeps all
    points); only the clock changes: timestamps are multiplied by 0.5 in training and 1 at test
    (``ts 0.5->1``), or the other way round: the pen moved twice as fast or half as fast. Values
    are unchanged, so models that ignore time see identical data in both conditions. Index time
    (the default) is the reference's clock: source indices times the scale (hippo-code
    ``postprocess_data``, ``ts * T``); physical time gives seconds, 200 times smaller, which
    matters to models that integrate over the gaps (ODE-RNN, GRU-D's decays).
    """
    conditions = [
        (f"ts {a}->{b}", dict(train_hz=1.0, eval_hz=1.0, time=time, train_time_scale=a, eval_time_scale=b))
        for a, b in ((0.5, 1.0), (1.0, 0.5))
    ]
    ct = get_dataset_entry(CT)
    return _classification_runs("timestamps", ct.family, CT, profile, seeds, models, conditions,
                                sample_rate_hz=ct.sample_rate_hz)  # fmt: skip


def missing(profile: str, seeds: Sequence[int], time: str, models: Sequence[str],
            dataset: DatasetEntry | None = None) -> list[RunSpec]:  # fmt: skip
    """A UEA dataset (default CharacterTrajectories) with 30 / 50 / 70 % of the time points dropped,
    the Neural CDE paper's Table 1: its models train under its own loop (``protocol="ncde-paper"``,
    :mod:`baselines.references`), the others in their own reference settings."""
    dataset = dataset or get_dataset_entry(CT)
    conditions = [
        (f"{round(rate * 100)}% missing",
         _uea_data(dataset, train_hz=1.0, eval_hz=1.0, time=time, missing_rate=rate))
        for rate in (0.3, 0.5, 0.7)
    ]  # fmt: skip
    return _classification_runs("missing", dataset.family, dataset.name, profile, seeds, models, conditions,
                                sample_rate_hz=dataset.sample_rate_hz, protocol="ncde-paper")  # fmt: skip


def pmnist(profile: str, seeds: Sequence[int], time: str, models: Sequence[str]) -> list[RunSpec]:
    """Permuted MNIST (bit-reversal permutation of the 784 pixels, as the reference code)."""
    conditions = [("pMNIST", {"permute": "bit_reversal"})]
    return _classification_runs("pmnist", "mnist", "pmnist", profile, seeds, models, conditions)


def smnist(profile: str, seeds: Sequence[int], time: str, models: Sequence[str]) -> list[RunSpec]:
    """Sequential MNIST (pixels in raster order)."""
    conditions = [("sMNIST", {"permute": None})]
    return _classification_runs("smnist", "mnist", "smnist", profile, seeds, models, conditions)


def funcapprox(profile: str, seeds: Sequence[int], time: str, models: Sequence[str]) -> list[RunSpec]:
    """Online function approximation of white noise: every measure x N, float64."""
    cfg = FUNCAPPROX[profile]
    return [
        RunSpec(
            suite="funcapprox", task="funcapprox", dataset=None, condition=f"N={n}",
            model=measure, seed=seed, profile=profile, data={},
            train={}, model_args={"N": n, "length": cfg["length"], "method": "bilinear"},
        )
        for measure in models
        for n in cfg["Ns"]
        for seed in seeds
    ]  # fmt: skip


def throughput(profile: str, seeds: Sequence[int], time: str, models: Sequence[str]) -> list[RunSpec]:
    """Every model at one size and batch on CharacterTrajectories batches at 200 Hz.

    Unlike the accuracy suites, every model gets the same width and batch: a speed comparison.
    """
    cfg = THROUGHPUT[profile]
    train = TrainSettings.from_dict({k: v for k, v in cfg.items() if k != "hidden_size"}).to_dict()
    return [
        RunSpec(
            suite="throughput", task="throughput", dataset=CT,
            condition=f"batch {cfg['batch_size']}", model=model, seed=seed, profile=profile,
            data=dict(train_hz=1.0, eval_hz=1.0, time=time), train=dict(train),
            model_args={"hidden_size": cfg["hidden_size"]},
        )
        for model in models
        for seed in seeds
    ]  # fmt: skip


SuiteBuilder = Callable[..., list[RunSpec]]


@dataclass(frozen=True)
class Suite:
    """A suite: its builder, the tag of its default models, and how it treats time.

    ``tag``: the suite runs the registered models tagged with it (``models_tagged``) unless
    ``--models`` says otherwise; ``measures`` suites (funcapprox) run hippo measures instead.
    ``time_modes`` lists the time modes the suite accepts (the first is its default); MNIST
    pixels and funcapprox samples are evenly spaced and take index time only.
    """

    description: str
    builder: SuiteBuilder
    tag: str
    time_modes: tuple[str, ...] = ("index",)
    measures: tuple[str, ...] = ()  # its default "models" are these hippo measures (funcapprox), not models
    datasets: bool = False  # takes ``dataset=`` (any UEA dataset; default CharacterTrajectories)

    @property
    def models(self) -> tuple[str, ...]:
        """The models (or measures) the suite runs by default."""
        return self.measures or models_tagged(self.tag)


SUITES: Registry[Suite] = Registry("suite")
SUITES.add("timescale", Suite("CharacterTrajectories 100->200 Hz and 200->100 Hz, accuracy vs test rate",
                              timescale, "timescale", TIME_MODES, datasets=True))
SUITES.add("timestamps", Suite("CharacterTrajectories at 200 Hz with the clock scaled 0.5->1 and 1->0.5 (hippo-code)",
                               timestamps, "timestamps", TIME_MODES))
SUITES.add("pmnist", Suite("Permuted MNIST (bit-reversal), test accuracy", pmnist, "mnist"))
SUITES.add("smnist", Suite("Sequential MNIST, test accuracy", smnist, "mnist"))
SUITES.add("missing", Suite("CharacterTrajectories with 30/50/70% of points dropped (the Neural CDE paper's Table 1)",
                            missing, "missing", TIME_MODES, datasets=True))
SUITES.add("funcapprox", Suite("Online function approximation: reconstruction MSE and steps/s per measure and N",
                               funcapprox, "funcapprox", measures=FUNCAPPROX_MEASURES))
SUITES.add("throughput", Suite("Training/inference samples/s, steps/s and peak memory, every model", throughput,
                               "throughput", TIME_MODES))
# The suites that compare published tables, and the model sets their tags name:
# timescale: the HiPPO paper's timescale table; mnist: its pMNIST table (no ODE/CDE models: rk4
# per step over 784 steps); missing: the Neural CDE paper's Table 1 and HiPPO-LegS, the LSTM and
# S4D beside it; deep-ssm: HiPPO's successors, run with --models in both time modes.


def build_suite(
    name: str,
    profile: str,
    seeds: Sequence[int] | None = None,
    time: str | None = None,
    models: Sequence[str] | None = None,
    dataset: str | None = None,
    sample_rate_hz: float | None = None,
) -> list[RunSpec]:
    """The runs of suite ``name`` under ``profile``.

    ``time`` defaults to the suite's own default (index time).
    ``models`` replaces the suite's default list: any registered model (for funcapprox: any
    measure of ``hippo.transition``). ``dataset`` (timescale, missing) is a registered dataset
    or ``uea:<Name>``, with ``sample_rate_hz`` where the registry does not know its rate.
    Bad input raises ValueError with one line.
    """
    suite = SUITES.get(name)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    time = suite.time_modes[0] if time is None else time
    if time not in TIME_MODES:
        raise ValueError(f"unknown time mode {time!r}; valid: {', '.join(TIME_MODES)}")
    if time not in suite.time_modes:
        raise ValueError(
            f"suite {name!r} has no time setting (MNIST pixels and funcapprox samples are evenly "
            f"spaced); --time applies to {', '.join(n for n in SUITES if len(SUITES.get(n).time_modes) > 1)}"
        )
    seeds = DEFAULT_SEEDS[profile] if seeds is None else tuple(seeds)
    models = suite.models if models is None else tuple(dict.fromkeys(models))
    _check_models(name, suite, models)
    if not suite.datasets:
        if dataset is not None or sample_rate_hz is not None:
            with_data = ", ".join(n for n in SUITES if SUITES.get(n).datasets)
            raise ValueError(f"suite {name!r} has a fixed dataset; --dataset and --sample-rate apply to {with_data}")
        return suite.builder(profile, seeds, time, models)
    if sample_rate_hz is not None and not sample_rate_hz > 0:
        raise ValueError(f"--sample-rate must be a positive number of Hz, got {sample_rate_hz!r}")
    entry = get_dataset_entry(dataset or CT, sample_rate_hz)
    if sample_rate_hz is not None and not entry.name.startswith(UEA_PREFIX):
        raise ValueError(f"dataset {entry.name!r} has a known sampling rate ({entry.sample_rate_hz:g} Hz); "
                         "--sample-rate applies to uea:<Name> datasets")
    if entry.family != "character-trajectories":
        raise ValueError(f"suite {name!r} needs a UEA dataset (character-trajectories or uea:<Name>), got {entry.name!r}")
    if time == "physical" and not entry.sample_rate_hz:
        raise ValueError(f"dataset {entry.name!r} has no known sampling rate: pass --sample-rate HZ for physical time")
    return suite.builder(profile, seeds, time, models, dataset=entry)


def _check_models(name: str, suite: Suite, models: Sequence[str]) -> None:
    if suite.measures:
        unknown = [m for m in models if m not in MEASURES]
        valid = list(MEASURES)
    else:
        for model in models:
            if ":" in model:  # a class path: imported, checked and registered under that name
                try:
                    get_model_entry(model)
                except ValueError as e:
                    raise ValueError(f"suite {name!r}: {e}") from None
        valid = list_models()
        unknown = [m for m in models if m not in valid]
    if unknown:
        kind = "measure" if suite.measures else "model"
        raise ValueError(
            f"suite {name!r}: unknown {kind} {', '.join(map(repr, unknown))}{suggest(unknown[0], valid)}; "
            f"valid {kind}s: {', '.join(valid)}"
        )
