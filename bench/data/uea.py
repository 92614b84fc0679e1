"""Any dataset of the UEA multivariate archive under the Neural CDE / HiPPO reference protocol.

Protocol (shared/DESIGN.md, "Data protocols"), applied in this order:

1. concatenate the archive's TRAIN and TEST; labels ``0..K-1`` in the classes' declared order;
2. pad every channel of every series to the longest length with its last observed value
   (``lengths`` is the full padded length, and models that ignore ``mask`` read the padding as
   the reference RNNs do). In ``mask`` the tail after the series' last observation (in any
   channel) is unobserved, so that models that read out at the last observation find it (the
   Neural CDE experiments' ``final_index``); a channel that ends before the series does is
   filled and counts as observed. ``?`` before a channel's last value is a missing value;
3. missing-data variant: per series, drop ``int(L * missing_rate)`` time points (all channels)
   chosen by ``torch.randperm`` with one generator seeded 56789, series by series, as the
   Neural CDE code does. This happens at the source rate, so a rate change keeps the same
   physical points missing;
4. stratified 70/15/15 split (``train_test_split(train_size=0.7, random_state=0)``, then the
   rest 50/50 with ``random_state=1``; the first half is validation);
5. per channel: subtract the training split's mean, divide by its std (unbiased) + 1e-5, over
   observed values only (the statistics never see validation or test data);
6. unobserved values are forward filled (0 = the training mean before the first observation);
7. rate change: factor ``hz`` in (0, 1] keeps source indices ``arange(int(L * hz)) // hz``.
8. timestamp scale (hippo-code's ``train_ts`` / ``eval_ts``): the training split and validation
   loader 0 multiply their timestamps by ``train_time_scale``, the test split and validation
   loader 1 by ``eval_time_scale``; values are unchanged, only the clock runs at another speed.

Time: ``"index"`` gives the retained positions ``0, 1, 2, ...`` (what the reference passes);
``"physical"`` gives seconds ``source_index / sample_rate_hz`` (needs ``sample_rate_hz``).

Parsing is done once per source-file content: the parsed arrays and the protocol's tensors are
cached in the cache directory (``BENCH_CACHE_DIR``) under the sha256 of the source files and
:data:`CACHE_VERSION`, written atomically; a cache file that does not load (truncated, say) is
rebuilt with a one-line warning.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor

from bench.data import download as dl
from bench.data.base import (
    Extras,
    SequenceDataModule,
    SequenceDataset,
    check_choice,
    check_extras,
    check_rate,
)
from bench.data.formats import ParsedSeries, read_arff_dimensions, read_ts
from bench.data.paths import (
    DataNotFoundError,
    cache_dir,
    check_data_dir,
    data_dir_origin,
    find_uea_files,
    read_cache,
    resolve_data_dir,
    sha256_files,
    write_cache,
)

MISSING_SEED = 56789
TIME_MODES = ("index", "physical")
# Part of every cache key (parsed arrays and processed tensors): bump it whenever a change to
# the readers (formats.py) or to the protocol here changes what ends up in a cache, or the old
# cached arrays would silently be reused (the sources' sha256 alone does not change). One
# number for both caches: the processed tensors are built from the parsed arrays.
# 2: the padded tail after a series' last observation is unobserved in ``mask``
CACHE_VERSION = "2"


def rate_indices(length: int, hz: float) -> np.ndarray:
    """Source indices kept at rate factor ``hz``: ``arange(int(length * hz)) // hz`` (int64)."""
    kept = int(length * hz)
    if kept < 2:
        raise ValueError(f"rate factor {hz} keeps {kept} of {length} steps; at least 2 are needed")
    return (np.arange(kept) // hz).astype(np.int64)


def missing_message(name: str, root: Path) -> str:
    return (
        f"UEA dataset {name!r} not found under {root}: download "
        f"{dl.UEA_URL.format(name=name)} and unzip it into {root / name}/ so that it holds "
        f"{name}_TRAIN.ts and {name}_TEST.ts (or the per-dimension {name}Dimension<k>_TRAIN.arff / "
        f"_TEST.arff files), or point --data-dir / data_dir= / $BENCH_DATA_DIR at a folder that has them"
    )


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    write_cache(path, lambda f: np.savez(f, **arrays))


def _read_parsed(path: Path) -> tuple[ParsedSeries, ParsedSeries]:
    with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:  # closed on a failed load too
        classes = tuple(z["classes"].tolist())
        train, test = (ParsedSeries(z[f"{s}_values"], z[f"{s}_labels"], classes) for s in ("train", "test"))
    return train, test


def _read_processed(path: Path) -> dict[str, Any]:
    data = torch.load(path, weights_only=True)
    if not isinstance(data, dict) or not isinstance(data.get("splits"), dict):
        raise ValueError("not a processed-data dict with 'splits'")
    return data


def load_parsed(
    kind: str, files: dict[str, list[Path]], name: str
) -> tuple[ParsedSeries, ParsedSeries, str]:
    """Parse TRAIN and TEST (or load them from the cache) -> (train, test, sha256 of the sources)."""
    sources = [*files["TRAIN"], *files["TEST"]]
    checksum = sha256_files(sources)
    cached = cache_dir() / f"uea-{name}-{kind}-v{CACHE_VERSION}-{checksum[:20]}.npz"
    if (splits := read_cache(cached, _read_parsed)) is not None:
        return splits[0], splits[1], checksum
    read = (lambda paths: read_ts(paths[0])) if kind == "ts" else read_arff_dimensions
    train, test = read(files["TRAIN"]), read(files["TEST"])
    if train.values.shape[1] != test.values.shape[1]:
        raise ValueError(
            f"{name}: TRAIN has {train.values.shape[1]} channels but TEST has {test.values.shape[1]}"
        )
    _save_npz(
        cached,
        train_values=train.values,
        train_labels=train.labels,
        test_values=test.values,
        test_labels=test.labels,
        classes=np.array(train.classes),
    )
    return train, test, checksum


def pad_last_observed(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N, C, L)`` with NaN -> (values, observed): each channel's tail after its last value is
    filled with that value; NaN before it stays NaN (missing). ``observed`` ``(N, C, L)`` is
    false where NaN and after the series' last observation in any channel (the padding); a
    channel's filled tail before that counts as observed."""
    present = ~np.isnan(values)
    length = values.shape[-1]
    last = length - 1 - np.argmax(present[..., ::-1], axis=-1)  # (N, C)
    fill = np.take_along_axis(values, last[..., None], axis=-1)
    tail = (np.arange(length) > last[..., None]) & present.any(-1, keepdims=True)
    values = np.where(tail, fill, values)
    return values, ~np.isnan(values) & within_series(present)


def within_series(present: np.ndarray) -> np.ndarray:
    """``(N, C, L)`` bool -> ``(N, 1, L)``: true up to each series' last observation in any channel."""
    seen = present.any(axis=1, keepdims=True)  # (N, 1, L)
    last = seen.shape[-1] - 1 - np.argmax(seen[..., ::-1], axis=-1)  # (N, 1)
    return (np.arange(seen.shape[-1]) <= last[..., None]) & seen.any(-1, keepdims=True)


def drop_time_points(values: Tensor, missing_rate: float, seed: int = MISSING_SEED) -> Tensor:
    """``(N, L, C)``: set ``int(L * missing_rate)`` random time points of each series to NaN.

    One ``torch.Generator`` seeded ``seed`` draws ``randperm(L)`` for series 0, 1, ... in turn
    (the Neural CDE reference); all channels of a dropped time point go missing.
    """
    values = values.clone()
    generator = torch.Generator().manual_seed(seed)
    n_drop = int(values.shape[1] * missing_rate)
    for row in values:
        row[torch.randperm(values.shape[1], generator=generator)[:n_drop]] = float("nan")
    return values


def forward_fill(values: Tensor) -> Tensor:
    """``(N, L, C)``: NaN -> last non-NaN value along L; 0 before the first one."""
    steps = torch.arange(values.shape[1]).view(1, -1, 1).expand_as(values)
    last = torch.where(torch.isnan(values), -1, steps).cummax(dim=1).values
    filled = values.gather(1, last.clamp(min=0))
    return torch.where(last < 0, torch.zeros_like(values), filled)


def stratified_split(labels: np.ndarray) -> dict[str, np.ndarray]:
    """The reference 70/15/15 split of ``range(N)``, stratified by ``labels`` (ints)."""
    index = np.arange(len(labels))
    train, rest = train_test_split(
        index, train_size=0.7, random_state=0, shuffle=True, stratify=labels
    )
    val, test = train_test_split(
        rest, train_size=0.5, random_state=1, shuffle=True, stratify=labels[rest]
    )
    return {"train": train, "val": val, "test": test}


def reference_protocol(
    train: ParsedSeries, test: ParsedSeries, missing_rate: float
) -> dict[str, Any]:
    """Steps 1-6 of the protocol (module docstring) at the source rate.

    Returns ``values`` ``(N, L, C)`` float32 (normalised, forward filled), ``mask`` ``(N, L, C)``
    bool, ``labels`` ``(N,)`` int64, ``splits`` name -> row indices, ``mean`` / ``std`` ``(C,)``
    float64 (training statistics) and ``classes``.
    """
    classes = train.classes
    if set(test.classes) != set(classes):
        raise ValueError(
            f"TRAIN declares classes {list(classes)} but TEST declares {list(test.classes)}"
        )
    lookup = {c: i for i, c in enumerate(classes)}
    n_train, lmax = len(train.labels), max(train.values.shape[-1], test.values.shape[-1])
    raw = np.full((n_train + len(test.labels), train.values.shape[1], lmax), np.nan)
    raw[:n_train, :, : train.values.shape[-1]] = train.values
    raw[n_train:, :, : test.values.shape[-1]] = test.values
    labels = np.array([lookup[c] for c in [*train.labels, *test.labels]], dtype=np.int64)
    padded, _ = pad_last_observed(raw)
    values = drop_time_points(torch.from_numpy(padded).transpose(1, 2).contiguous(), missing_rate)
    # the padding repeats the last value but is not an observation (step 2)
    mask = ~torch.isnan(values) & torch.from_numpy(within_series(~np.isnan(raw))).transpose(1, 2)
    splits = stratified_split(labels)
    train_values = values[torch.from_numpy(splits["train"])].flatten(
        0, 1
    )  # (n * L, C), NaN = unobserved
    mean = train_values.nanmean(dim=0)
    count = (~torch.isnan(train_values)).sum(dim=0)
    std = (
        ((train_values - mean) ** 2).nansum(dim=0) / (count - 1)
    ).sqrt()  # unbiased, as the reference
    return {
        "values": forward_fill((values - mean) / (std + 1e-5)).float(),
        "mask": mask,
        "labels": torch.from_numpy(labels),
        "splits": {k: torch.from_numpy(v) for k, v in splits.items()},
        "mean": mean,
        "std": std,
        "classes": list(classes),
    }


class UEADataModule(SequenceDataModule):
    """A UEA archive dataset as :class:`SequenceBatch` loaders (protocol: module docstring).

    Args:
        name: archive name, e.g. ``"CharacterTrajectories"`` (files ``{name}_TRAIN.ts`` ... or
            ``{name}Dimension<k>_TRAIN.arff`` ... under ``data_dir`` or ``data_dir/name``).
        data_dir: data folder; default ``$BENCH_DATA_DIR``, else the per-user cache. A named
            folder must exist (see :mod:`bench.data.paths`); only the default is created.
        train_hz: rate factor in (0, 1] of the training data (and of validation loader 0).
        eval_hz: rate factor of the test data (and of validation loader 1).
        time: ``"index"`` (step positions) or ``"physical"`` (seconds; needs ``sample_rate_hz``).
        missing_rate: share of time points dropped per series, in [0, 1).
        batch_size / eval_batch_size: training / evaluation batch sizes.
        seed: seed of the training shuffle (the split and the missing points use the fixed
            reference seeds 0, 1 and 56789 so every model sees the same data).
        sample_rate_hz: the recording's sampling rate (200 for CharacterTrajectories).
        extras: per-model preprocessing to run once per (split, rate): name -> function
            ``(values, times, mask, lengths) -> (N, ...)`` (a model's ``batch_extras``).
        download: whether ``prepare_data`` may download absent files.

    ``val_dataloader()`` returns ``[val at train_hz, val at eval_hz]`` (``dataloader_idx`` 0 / 1,
    named by ``val_dataloader_names``); ``eval_dataloader(split, hz)`` gives any split at any rate.
    """

    val_dataloader_names = ["val_train_rate", "val_eval_rate"]

    def __init__(
        self,
        name: str,
        data_dir: str | os.PathLike[str] | None = None,
        train_hz: float = 1.0,
        eval_hz: float = 1.0,
        time: str = "index",
        missing_rate: float = 0.0,
        batch_size: int = 32,
        seed: int = 0,
        *,
        eval_batch_size: int | None = None,
        sample_rate_hz: float | None = None,
        extras: Extras | None = None,
        download: bool = True,
        num_workers: int = 0,
        train_time_scale: float = 1.0,
        eval_time_scale: float = 1.0,
    ):
        super().__init__(batch_size, eval_batch_size, seed, num_workers)
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"name must be a UEA dataset name such as 'CharacterTrajectories', got {name!r}"
            )
        self.name = name
        self.data_dir = resolve_data_dir(data_dir)
        self.data_dir_origin = data_dir_origin(data_dir)
        self.train_hz = check_rate("train_hz", train_hz)
        self.eval_hz = check_rate("eval_hz", eval_hz)
        self.time = check_choice("time", time, TIME_MODES)
        if (
            isinstance(missing_rate, bool)
            or not isinstance(missing_rate, int | float)
            or not 0.0 <= missing_rate < 1.0
        ):
            raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate!r}")
        self.missing_rate = float(missing_rate)
        if sample_rate_hz is not None and not sample_rate_hz > 0:
            raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz!r}")
        if time == "physical" and sample_rate_hz is None:
            raise ValueError(f"time='physical' needs sample_rate_hz (the sampling rate of {name})")
        self.sample_rate_hz = sample_rate_hz
        for key, scale in (("train_time_scale", train_time_scale), ("eval_time_scale", eval_time_scale)):
            if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
                raise ValueError(f"{key} must be a positive number, got {scale!r}")
        self.train_time_scale, self.eval_time_scale = float(train_time_scale), float(eval_time_scale)
        self.extras = check_extras(extras)
        self.download = download
        self._parsed: tuple[ParsedSeries, ParsedSeries, str, str, list[Path]] | None = None
        self._data: dict[str, Any] | None = None
        self._datasets: dict[tuple[str, float, float], SequenceDataset] = {}

    # ----------------------------------------------------------------- loading
    def _files(self) -> tuple[str, dict[str, list[Path]]]:
        found = find_uea_files(self.data_dir, self.name)
        if found is None:
            check_data_dir(self.data_dir, self.data_dir_origin)  # a typo: say so, not "not found"
            raise DataNotFoundError(missing_message(self.name, self.data_dir))
        return found

    def prepare_data(self) -> None:
        """Download and unpack the archive zip when the files are absent and ``download`` is on.

        A named data directory must exist (a typo is refused, not created); the per-user default
        is created here, when a download starts. A failed download keeps nothing and raises one
        :class:`DataNotFoundError` that leads with the failure, then says what to place where.
        """
        if find_uea_files(self.data_dir, self.name) is not None:
            return
        check_data_dir(self.data_dir, self.data_dir_origin, create=self.download)
        if not self.download:
            raise DataNotFoundError(missing_message(self.name, self.data_dir))
        try:
            dl.download_uea(self.name, self.data_dir)
        except DataNotFoundError as exc:  # ChecksumError too: the class is kept
            raise type(exc)(f"{exc}. {missing_message(self.name, self.data_dir)}") from exc

    def _load(self) -> tuple[ParsedSeries, ParsedSeries, str, str, list[Path]]:
        if self._parsed is None:
            if find_uea_files(self.data_dir, self.name) is None and self.download:
                self.prepare_data()
            kind, files = self._files()
            train, test, checksum = load_parsed(kind, files, self.name)
            self._parsed = (train, test, checksum, kind, [*files["TRAIN"], *files["TEST"]])
        return self._parsed

    def setup(self, stage: str | None = None) -> None:
        """Parse (or load the cache), apply the protocol once, build the loaders' datasets.

        Datasets of the default (split, rate) pairs are built here, with their ``extras``; any
        other pair is built on first use by ``eval_dataloader`` and kept.
        """
        if self._data is None:
            self._data = self._process()
        train, evaluation = (self.train_hz, self.train_time_scale), (self.eval_hz, self.eval_time_scale)
        wanted = {
            "fit": [("train", *train), ("val", *train), ("val", *evaluation)],
            "validate": [("val", *train), ("val", *evaluation)],
            "test": [("test", *evaluation)],
            "predict": [("test", *evaluation)],
        }
        for split, hz, scale in wanted.get(stage or "", [p for v in wanted.values() for p in v]):
            self._dataset(split, hz, scale)

    def _process(self) -> dict[str, Any]:
        """The protocol's full-rate tensors, from the cache when these sources were processed before."""
        train, test, checksum, kind, sources = self._load()
        cached = cache_dir() / (
            f"uea-{self.name}-processed-v{CACHE_VERSION}-{checksum[:20]}-missing{self.missing_rate!r}.pt"
        )
        data = read_cache(cached, _read_processed)
        if data is None:
            data = reference_protocol(train, test, self.missing_rate)
            write_cache(cached, lambda f: torch.save(data, f))
        data["splits"] = {k: v.numpy() for k, v in data["splits"].items()}
        return {**data, "checksum": checksum, "kind": kind, "sources": [p.name for p in sources]}

    def _dataset(self, split: str, hz: float, time_scale: float | None = None) -> SequenceDataset:
        """``split`` at rate factor ``hz``, its timestamps multiplied by ``time_scale`` (default:
        the training scale for the training split, the evaluation scale for the others)."""
        if time_scale is None:
            time_scale = self.train_time_scale if split == "train" else self.eval_time_scale
        key = (split, float(hz), float(time_scale))
        if key not in self._datasets:
            if self._data is None:
                self.setup()
            data = self._data
            rows = torch.from_numpy(data["splits"][split])
            index = torch.from_numpy(rate_indices(data["values"].shape[1], hz))
            values, mask = data["values"][rows][:, index], data["mask"][rows][:, index]
            n, steps = values.shape[:2]
            if self.time == "index":
                times = torch.arange(steps, dtype=torch.float32)
            else:
                times = (index.double() / self.sample_rate_hz).float()
            times = (times * time_scale).expand(n, steps)
            lengths = torch.full((n,), steps, dtype=torch.int64)
            extras = {name: fn(values, times, mask, lengths) for name, fn in self.extras.items()}
            self._datasets[key] = SequenceDataset(
                values, times, mask, lengths, data["labels"][rows], extras
            )
        return self._datasets[key]

    def val_dataloader(self):
        """``[val at train_hz, val at eval_hz]``: ``dataloader_idx`` 0 is for model selection."""
        return [
            self._loader(self._dataset("val", hz, scale), shuffle=False)
            for hz, scale in ((self.train_hz, self.train_time_scale), (self.eval_hz, self.eval_time_scale))
        ]

    # ------------------------------------------------------------ information
    @property
    def num_inputs(self) -> int:
        """Channels C of ``values`` (time is in ``times``, not a channel)."""
        return self._load()[0].values.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self._load()[0].classes)

    def seq_len(self, hz: float | None = None) -> int:
        """Steps per series at rate factor ``hz`` (default ``train_hz``)."""
        train, test = self._load()[:2]
        hz = self.train_hz if hz is None else check_rate("hz", hz)
        return len(rate_indices(max(train.values.shape[-1], test.values.shape[-1]), hz))

    def describe(self) -> dict[str, Any]:
        """The protocol settings, for run records."""
        if self._data is None:
            self.setup()
        data = self._data
        return {
            "dataset": self.name,
            "protocol": "ncde-reference (concat, pad last value, 70/15/15)",
            "train_hz": self.train_hz,
            "eval_hz": self.eval_hz,
            "time": self.time,
            "train_time_scale": self.train_time_scale,
            "eval_time_scale": self.eval_time_scale,
            "sample_rate_hz": self.sample_rate_hz,
            "missing_rate": self.missing_rate,
            "missing_seed": MISSING_SEED,
            "split_random_state": [0, 1],
            "shuffle_seed": self.seed,
            "split_sizes": {k: len(v) for k, v in data["splits"].items()},
            "seq_len": {"train": self.seq_len(self.train_hz), "eval": self.seq_len(self.eval_hz)},
            "num_inputs": data["values"].shape[-1],
            "num_classes": len(data["classes"]),
            "classes": list(data["classes"]),
            "normalisation_mean": data["mean"].tolist(),
            "normalisation_std": data["std"].tolist(),
            "source_format": data["kind"],
            "source_files": data["sources"],
            "source_sha256": data["checksum"],
            "extras": list(self.extras),
        }
