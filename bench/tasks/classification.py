"""The ``classification`` task: train with model selection, evaluate at every rate, time a
throughput phase; and its report (accuracy tables per condition, the published numbers beside
them, the settings table, accuracy, rate-curve and learning-curve plots).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import seaborn as sns

from bench import reports
from bench.models import create_model, get_model_entry
from bench.profiles import follows_profile, profile_description
from bench.progress import EpochProgress
from bench.published import published_anchor
from bench.records import RunSpec
from bench.reports import plt  # pyplot on the Agg backend (files only)
from bench.settings import TrainSettings
from bench.tasks.base import THROUGHPUT_METRICS, CompareMetric, RunContext, Task, make_data_module
from bench.tasks.throughput import throughput_phase
from bench.throughput import peak_memory, reset_peak_memory
from bench.training import evaluate, evaluate_eval_selected, fit, lightning_logger


def run_classification(spec: RunSpec, ctx: RunContext, rid: str, log: logging.Logger) -> dict[str, Any]:
    """Train ``spec``'s model with model selection (:func:`bench.training.fit`), test the kept
    weights at the evaluation rate and across ``eval_rates``, time the throughput phase; the
    record's fields."""
    settings = TrainSettings.from_dict(spec.train)
    model_cls = get_model_entry(spec.model).load()
    dm = make_data_module(spec, ctx.data_dir, getattr(model_cls, "batch_extras", {}))
    dm.setup("fit")
    dm.setup("test")
    model = create_model(spec.model, dm.num_inputs, dm.num_classes, **spec.model_args).to(ctx.device)
    out: dict[str, Any] = {
        "data_protocol": dm.describe() if hasattr(dm, "describe") else dict(spec.data),
        "model_config": dict(getattr(model, "config", {})),
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }
    log.info("model %s: %d parameters, config %s", spec.model, out["num_parameters"], out["model_config"])
    log.info("training settings: %s", settings.to_dict())
    reset_peak_memory(ctx.device)
    start = time.perf_counter()
    callbacks = [EpochProgress(ctx.progress, log)]
    module = fit(model, dm, settings, device=ctx.device, checkpoint_dir=ctx.checkpoint_dir(spec.suite, rid),
                 callbacks=callbacks, logger=lightning_logger(ctx.logger, ctx.curves_dir(spec.suite, rid)))  # fmt: skip
    out["train_seconds"] = time.perf_counter() - start
    out["peak_memory_bytes"] = peak_memory(ctx.device)
    out["history"] = module.history
    metrics, curve = evaluate(
        model, dm, ctx.device, val_names=module.val_names, eval_rates=settings.eval_rates,
        limit_batches=settings.limit_eval_batches,
    )  # fmt: skip
    out["metrics"] = {
        **metrics,
        "best_epoch": module.best_epoch,
        "selected_on": module.val_names[0],
        **evaluate_eval_selected(model, module, dm, ctx.device, settings.limit_eval_batches, metrics["test_acc"]),
        "num_classes": dm.num_classes,
    }
    if settings.stop_patience is not None:  # None: trained all settings.epochs
        out["metrics"]["stopped_epoch"] = module.stopped_epoch
    out["rate_curve"] = curve
    out["throughput"] = throughput_phase(model, dm, settings, ctx)
    return out


def classification_report(suite: str, ok: pd.DataFrame, profile: str, failed: int, folder: Path) -> tuple[list[reports.Table], list[Path]]:
    """Accuracy per model and condition under both selections, at the training rate, beside the
    published numbers (paper profile), the settings table; accuracy, rate-curve, learning-curve
    and accuracy-versus-throughput plots."""
    ok = ok.assign(column=reports.column_label(ok))
    classes = {int(c) for c in ok["num_classes"].dropna()}
    chance = "; ".join(f"{100 / c:.1f}% ({c} classes)" for c in sorted(classes)) or "unknown"
    dataset = ok["dataset"].dropna().iloc[0] if ok["dataset"].notna().any() else None
    if all(follows_profile(dataset, r.model, profile, r.settings) for r in ok.itertuples()):
        scaling = profile_description(dataset, profile)
    else:  # records of an older suite definition or custom specs: the caption must not claim it
        scaling = f"{profile}, with the settings of the settings table (not this version's {profile} definition)"
    caption = (
        f"{suite}: test accuracy (%) at the evaluation rate, mean ± std over seeds (n runs); "
        f"best mean in bold. Chance level: {chance}. Profile {scaling}; each model's settings are in "
        f"the settings table.{reports.time_note(ok)} Model selection on validation at the training rate: "
        "the honest protocol, which never sees the shifted rate before the test."
    )
    tables = [reports.pivot_table(ok, "test_acc", row="model", column="column", scale=100, caption=caption)]
    reference = ok.dropna(subset=["test_acc_eval_selected"])
    if not reference.empty:
        tables.append(reports.pivot_table(
            reference, "test_acc_eval_selected", row="model", column="column", scale=100,
            caption=f"{suite}: reference protocol (selection at the evaluation rate): test accuracy (%) of "
                    "the weights from the epoch with the best validation accuracy at the EVALUATION rate. "
                    "The references validate at the evaluation rate (hippo-code datasets/uea.py subsamples "
                    "validation at eval_hz); the Neural CDE experiments keep the best such epoch, checked "
                    "every 10 epochs, and hippo-code logs test accuracy every epoch without a selection "
                    "rule. Every epoch is a candidate here. It peeks at the shifted distribution, so it is "
                    "optimistic; same training runs as the table above; mean ± std over seeds (n runs).",
        ))  # fmt: skip
    # Accuracy at the training rate (from the rate curve) says whether a model learned the task at
    # all, so the tables above separate "did not learn" from "did not transfer to the new rate".
    at_train = [
        (r.rate_curve or {}).get(str(float(r.train_hz))) if pd.notna(r.train_hz) else None
        for r in ok.itertuples()
    ]
    ok = ok.assign(acc_train_rate=at_train)
    if any(v is not None for v in at_train):
        same_rate = ok.dropna(subset=["acc_train_rate"])
        tables.append(reports.pivot_table(
            same_rate, "acc_train_rate", row="model", column="column", scale=100,
            caption=f"{suite}: test accuracy (%) at the TRAINING rate (no shift), for reference; "
                    f"mean ± std over seeds (n runs). Profile: {profile}.{reports.time_note(ok)}",
        ))  # fmt: skip
    partial = ok.dropna(subset=["test_examples", "test_size"])
    partial = partial[partial["test_examples"] < partial["test_size"]]
    if len(partial):
        low, high, size = (int(v) for v in (partial["test_examples"].min(), partial["test_examples"].max(),
                                            partial["test_size"].max()))  # fmt: skip
        seen = f"{low}" if low == high else f"{low}-{high}"
        tables[0].notes.append(f"Test accuracy of {len(partial)} run(s) on the first {seen} of {size} test "
                               "examples only (the profile limits evaluation batches).")  # fmt: skip
    copies = ok[ok["reused_from"].notna()]
    if len(copies):
        models = ", ".join(dict.fromkeys(copies["model"]))
        tables[0].notes.append(
            f"{len(copies)} run(s) of {models} are the computation of another condition's run (the "
            "conditions differ only in what these models ignore, e.g. the clock's scale for a model "
            "with time_scale_invariant), so they repeat its results: the same computation up to float "
            "rounding, not an independent replicate.")  # fmt: skip
    if failed:
        tables[0].notes.append(f"Failed runs (not in the table): {failed}.")
    if (note := reports.older_code_note(ok)) is not None:
        tables[0].notes.append(note)
    if profile == "paper" and (table := reports.published_table(suite, ok)) is not None:
        tables.append(table)
    tables.append(reports.settings_table(ok))
    paths = []
    title = f"{suite}, {_profile_title(ok, profile)}"
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * ok["model"].nunique() + 2), 4.4))
    models, columns = list(dict.fromkeys(ok["model"])), list(dict.fromkeys(ok["column"]))
    sns.barplot(data=ok.assign(acc=ok["test_acc"] * 100), x="model", y="acc", hue="column", ax=ax,
                errorbar="sd", order=models, hue_order=columns)  # fmt: skip
    for c in sorted(classes):
        ax.axhline(100 / c, ls=":", color="black", lw=1, label=f"chance ({100 / c:.0f}%)")
    if profile == "paper":  # the published number on its bar
        source = dict(zip(ok["column"], zip(ok["dataset"], ok["condition"], strict=True), strict=True))
        width = 0.8 / len(columns)
        marks = [(i - 0.4 + (j + 0.5) * width, anchor.mean) for i, m in enumerate(models)
                 for j, c in enumerate(columns) if (anchor := published_anchor(*source[c], m)) is not None]  # fmt: skip
        if marks:
            ax.scatter(*zip(*marks, strict=True), marker="_", s=400, linewidths=2.5, color="black", zorder=5,
                       label="published")  # fmt: skip
    ax.set_ylabel("test accuracy (%)")
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=45)
    ax.set_title(f"{title}\nselection at the training rate; bars: mean over seeds, error bars: ± 1 sd", fontsize=9)
    ax.legend(title="", fontsize=8)
    paths += reports.save_figure(fig, folder, "accuracy")

    curve = [
        {"model": r.model, "column": r.column, "seed": r.seed, "rate": float(rate), "acc": acc * 100}
        for r in ok.itertuples() for rate, acc in r.rate_curve.items() if acc is not None
    ]  # fmt: skip
    if curve:
        grid = sns.relplot(data=pd.DataFrame(curve), x="rate", y="acc", hue="model", col="column",
                           kind="line", marker="o", errorbar="sd", height=3.5)  # fmt: skip
        grid.set_axis_labels("test rate (fraction of the source rate)", "test accuracy (%)")
        grid.set_titles("trained {col_name}")
        # The dashed line marks the rate the model was trained at: the curve's peak should sit there.
        train_rates = ok.dropna(subset=["train_hz"]).groupby("column")["train_hz"].first()
        for name, ax in grid.axes_dict.items():
            if name in train_rates:
                ax.axvline(train_rates[name], ls="--", color="grey", lw=1)
                ax.text(train_rates[name], 50, "training rate ", rotation=90, ha="right", va="center",
                        fontsize=7, color="grey")  # fmt: skip
            for c in sorted(classes):
                ax.axhline(100 / c, ls=":", color="black", lw=1)
                ax.text(ax.get_xlim()[0], 100 / c, f" chance ({100 / c:.0f}%)", va="bottom", fontsize=7)
        sns.move_legend(grid, "upper left", bbox_to_anchor=(1.0, 0.95))
        grid.figure.suptitle(f"{title}: selection at the training rate; lines: mean over seeds, bands: ± 1 sd",
                             fontsize=9, y=1.04)  # fmt: skip
        paths += reports.save_figure(grid.figure, folder, "accuracy_vs_rate")

    paths += learning_curves(ok, folder)
    speed = ok.dropna(subset=["train_samples_per_s"])
    if not speed.empty:
        fig, ax = plt.subplots(figsize=(6, 4))
        sns.scatterplot(data=speed.assign(acc=speed["test_acc"] * 100), x="train_samples_per_s", y="acc",
                        hue="model", style="column", ax=ax)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("training throughput (samples/s)")
        ax.set_ylabel("test accuracy (%)")
        paths += reports.save_figure(fig, folder, "accuracy_vs_throughput")
    return tables, paths


# History keys of validation accuracy, and how the learning-curve plot names them.
VALIDATION_CURVES = {"val_acc_train_rate": "training rate", "val_acc_eval_rate": "evaluation rate",
                     "val_acc": "validation"}  # fmt: skip


def _profile_title(ok: pd.DataFrame, profile: str) -> str:
    """The profile in a figure title: ``quick profile (8 epochs)``, ``paper profile``."""
    epochs = sorted({int(s["epochs"]) for s in ok["settings"] if s.get("epochs") is not None})
    shown = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}" if epochs else "?"
    return f"{profile} profile ({shown} epochs)" if profile != "paper" else f"paper profile (up to {shown} epochs)"


def learning_curves(ok: pd.DataFrame, folder: Path) -> list[Path]:
    """Validation accuracy per epoch at both rates, per model and condition (mean and sd over seeds)."""
    points = [
        {"model": r.model, "column": r.column, "seed": r.seed, "epoch": entry["epoch"] + 1,
         "rate": name, "acc": entry[key] * 100}
        for r in ok.itertuples() for entry in r.history for key, name in VALIDATION_CURVES.items()
        if entry.get(key) is not None and not math.isnan(entry[key])
    ]  # fmt: skip
    if not points:
        return []
    grid = sns.relplot(data=pd.DataFrame(points), x="epoch", y="acc", hue="model", style="rate", col="column",
                       kind="line", errorbar="sd", height=3.5)  # fmt: skip
    grid.set_axis_labels("epoch", "validation accuracy (%)")
    grid.set_titles("{col_name}")
    sns.move_legend(grid, "upper left", bbox_to_anchor=(1.0, 0.95))
    grid.figure.suptitle("validation accuracy per validated epoch at both rates; lines: mean over seeds, "
                         "bands: ± 1 sd", fontsize=9, y=1.04)  # fmt: skip
    return reports.save_figure(grid.figure, folder, "learning_curves")


TASK = Task(
    "classification", "train with model selection, evaluate at every rate, time a throughput phase",
    run=run_classification, report=classification_report,
    compare=(CompareMetric("test_acc", "accuracy", relative=False),
             # the reference codes' selection (absent from MNIST and older records)
             CompareMetric("test_acc_eval_selected", "accuracy", relative=False), *THROUGHPUT_METRICS),
    headline=("test_acc", "test_acc {:.3f}"), settings=True, trains=True, on_device=True,
)  # fmt: skip
