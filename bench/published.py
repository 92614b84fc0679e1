"""Published test accuracies that the ``paper`` profile reproduces: anchors, each with its source
and the protocol it ran.

Reports of ``paper``-profile records show them beside the measured numbers with a verdict
(``bench.reports``). Keys are what a record's spec says: ``(dataset, condition, model)``; values
are percentages as printed in the source, with the std where it prints one. Only numbers a
source prints belong here, never ones read off a plot.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Anchor:
    """One published number: ``mean`` (and ``std`` over ``runs`` runs, when printed), in %."""

    mean: float
    source: str
    protocol: str
    std: float | None = None
    runs: int | None = None

    def text(self) -> str:
        """As printed: ``99.2 ± 0.3``, or ``88.8``."""
        return str(self.mean) if self.std is None else f"{self.mean} ± {self.std}"


HIPPO_PAPER = "Gu et al., HiPPO (NeurIPS 2020): the timescale-robustness table, as the HiPPO blog post prints it"
HIPPO_PROTOCOL = ("hippo-code (LegS, LSTM, LMU) and the HiPPO authors' fork of the Neural CDE experiments "
                  "(GRU-D, ODE-RNN, Neural CDE), 100 epochs; selection rule not stated")  # fmt: skip
HIPPO_PAPER_PMNIST = "Gu et al., HiPPO (NeurIPS 2020), Tables 4 and 5"
PMNIST_PROTOCOL = "hippo-code, hidden 512, batch 100, Adam 1e-3, 50 epochs"
NCDE_PAPER = "Kidger et al., Neural CDE (NeurIPS 2020), Table 1 (as imgs/ct.png in patrick-kidger/NeuralCDE)"
NCDE_PROTOCOL = ("patrick-kidger/NeuralCDE experiments/uea.py run_all: batch 32, Adam 1e-3, up to 1000 epochs, "
                 "validation every 10, ReduceLROnPlateau, stop after 50 epochs without progress; 5 runs")  # fmt: skip

# (dataset, condition, model) -> anchor
ANCHORS: dict[tuple[str, str, str], Anchor] = {
    **{
        ("character-trajectories", condition, model): Anchor(value, HIPPO_PAPER, HIPPO_PROTOCOL)
        for condition, row in {
            "100Hz->200Hz": {"lstm": 25.4, "gru-d": 23.1, "ode-rnn": 41.8, "ncde": 44.7, "lmu": 6.0, "hippo-legs": 88.8},
            "200Hz->100Hz": {"lstm": 64.6, "gru-d": 25.5, "ode-rnn": 31.5, "ncde": 11.3, "lmu": 13.1, "hippo-legs": 90.1},
        }.items()
        for model, value in row.items()
    },
    ("pmnist", "pMNIST", "hippo-legs"): Anchor(98.3, HIPPO_PAPER_PMNIST, PMNIST_PROTOCOL),
    ("pmnist", "pMNIST", "lmu"): Anchor(97.15, HIPPO_PAPER_PMNIST, PMNIST_PROTOCOL),
    # The table's GRU-D is the experiments' "decay" model (bench name gru-decay), not Che et al.'s.
    **{
        ("character-trajectories", f"{rate}% missing", model): Anchor(mean, NCDE_PAPER, NCDE_PROTOCOL, std, 5)
        for model, row in {
            "gru-ode": {30: (89.9, 8.4), 50: (89.6, 5.6), 70: (86.6, 3.5)},
            "gru-dt": {30: (94.4, 1.7), 50: (92.0, 1.0), 70: (91.1, 1.1)},
            "gru-decay": {30: (93.2, 2.0), 50: (92.7, 2.8), 70: (90.8, 2.1)},
            "ode-rnn": {30: (97.9, 0.4), 50: (97.5, 0.6), 70: (96.7, 0.9)},
            "ncde": {30: (99.2, 0.3), 50: (99.3, 0.3), 70: (99.4, 0.4)},
        }.items()
        for rate, (mean, std) in row.items()
    },
}  # fmt: skip


def published_anchor(dataset: str, condition: str, model: str) -> Anchor | None:
    """The published anchor of ``model`` under ``condition`` on ``dataset``, or None."""
    return ANCHORS.get((dataset, condition, model))


def published_accuracy(dataset: str, condition: str, model: str) -> tuple[float, str] | None:
    """The published test accuracy (%) of ``model`` under ``condition`` and its source, or None."""
    anchor = published_anchor(dataset, condition, model)
    return None if anchor is None else (anchor.mean, anchor.source)


def verdict(anchor: Anchor, honest: float, reference: float | None = None) -> str:
    """How our mean (%) compares with ``anchor``: ``reproduced`` (within the published std or 2
    points of the honest selection, or of the reference one where there is one), ``between our
    selections`` (the published number lies between the two), or ``off by +X`` (our nearer mean
    minus the published one, in points; with ``(reference)`` when that is the reference's)."""
    tolerance = max(anchor.std or 0.0, 2.0)
    ours = [v for v in (honest, reference) if v is not None]
    if any(abs(v - anchor.mean) <= tolerance for v in ours):
        return "reproduced"
    if reference is not None and min(ours) <= anchor.mean <= max(ours):
        return "between our selections"
    nearer = min(ours, key=lambda v: abs(v - anchor.mean))
    which = " (reference)" if reference is not None and nearer == reference and nearer != honest else ""
    return f"off by {nearer - anchor.mean:+.1f}{which}"
