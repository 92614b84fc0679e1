"""The reference training settings the model files cite, one constructor per source.

"Identical data modules" never meant identical hyperparameters (DESIGN.md, "Reference
protocols"): each model trains as its own reference code trained it. A model's file declares
its references per dataset family (and per protocol such as ``"ncde-paper"``) beside its
``register_model``; these helpers name the sources several models share, so a setting and the
place it comes from are written once.

Keys of a model's ``references``: the dataset families ``"character-trajectories"`` (every UEA
dataset under the CharacterTrajectories protocol) and ``"mnist"`` (sequential and permuted), and
protocols (:data:`bench.settings.PROTOCOLS`), which a suite that follows another paper's training
loop asks for first.
"""

from __future__ import annotations

from typing import Any

from bench.settings import Reference

CT = "character-trajectories"
MNIST = "mnist"
NCDE_PAPER = "ncde-paper"

HIPPO_CODE_CT = "hippo-code README (CharacterTrajectories commands)"
HIPPO_CODE_MNIST = "hippo-code README (permuted MNIST command)"
NCDE_EXPERIMENTS = "Neural CDE experiments, HiPPO authors' fork (experiments/uea.py, run_all)"
NO_MNIST_REFERENCE = "no published MNIST setting: the Neural CDE experiments' sizes, MNIST's epochs and batch"
NCDE_PAPER_SOURCE = "Neural CDE paper (patrick-kidger/NeuralCDE experiments/uea.py main, run_all; common.py _train_loop)"
S4_EXAMPLE = "state-spaces/s4 example.py defaults (no published CharacterTrajectories setting)"
S4_EXAMPLE_MNIST = "state-spaces/s4 example.py, its MNIST command (--d_model 256 --weight_decay 0.0)"

# The Neural CDE paper's own training loop (patrick-kidger/NeuralCDE, experiments/uea.py ``main``
# and common.py ``_train_loop``), which its Table 1 (CharacterTrajectories with points dropped)
# ran: batch 32, Adam at 0.001 * 32 / 32, up to 1000 epochs; every 10 epochs (and after the last)
# it validates, keeps the best validation accuracy's weights, steps
# ``ReduceLROnPlateau(patience=1, mode="max")`` on that accuracy, and stops once neither the
# training loss nor the training accuracy has improved for 50 epochs.
NCDE_PAPER_SCHEDULE: dict[str, Any] = {"val_every": 10, "lr_plateau_patience": 1, "stop_patience": 50}


def hippo_code() -> dict[str, Reference]:
    """The HiPPO-RNN cells and the RNNs the hippo-code README runs with ``model.cell=<cell>``:
    hidden 256, 100 epochs of batch 100 on CharacterTrajectories; hidden 512, 50 epochs on MNIST."""
    return {
        CT: Reference({"hidden_size": 256}, epochs=100, batch_size=100, lr=1e-3, source=HIPPO_CODE_CT),
        MNIST: Reference({"hidden_size": 512}, epochs=50, batch_size=100, lr=1e-3, source=HIPPO_CODE_MNIST),
    }


def ncde_experiments(model_args: dict[str, Any], paper_table: bool = False) -> dict[str, Reference]:
    """The Neural CDE experiments' sizes ``model_args`` (batch 32, lr 0.001 * 32 / 32, 100 epochs
    in the HiPPO authors' fork); MNIST has no published setting. With ``paper_table``, also the
    Neural CDE paper's own loop (:data:`NCDE_PAPER_SCHEDULE`, up to 1000 epochs) as protocol
    ``"ncde-paper"``: the models of its Table 1."""
    refs = {
        CT: Reference(model_args, epochs=100, batch_size=32, lr=1e-3 * 32 / 32, source=NCDE_EXPERIMENTS),
        MNIST: Reference(model_args, epochs=50, batch_size=100, lr=1e-3, source=NO_MNIST_REFERENCE),
    }
    if paper_table:
        refs[NCDE_PAPER] = Reference(model_args, epochs=1000, batch_size=32, lr=1e-3 * 32 / 32,
                                     source=NCDE_PAPER_SOURCE, extra=NCDE_PAPER_SCHEDULE)  # fmt: skip
    return refs


def s4_example() -> dict[str, Reference]:
    """The deep SSMs: state-spaces/s4's ``example.py`` (AdamW at 0.01 with weight decay 0.01, 4
    layers of width 128, dropout 0.1, 100 epochs of batch 64; width 256 and no weight decay for
    MNIST). Their SSM parameters train at min(lr, 1e-3) without weight decay under a cosine
    schedule (the models' own ``configure_optimizers``). Mamba has no published setting on these
    tasks: it takes S4's."""
    return {
        CT: Reference({"hidden_size": 128, "n_layers": 4, "dropout": 0.1}, epochs=100, batch_size=64,
                      lr=0.01, weight_decay=0.01, source=S4_EXAMPLE),
        MNIST: Reference({"hidden_size": 256, "n_layers": 4, "dropout": 0.1}, epochs=100, batch_size=64,
                         lr=0.01, weight_decay=0.0, source=S4_EXAMPLE_MNIST),
    }  # fmt: skip
