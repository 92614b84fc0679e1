"""Every model hippo-bench compares, behind one interface (:mod:`bench.models.contract`).

Each built-in model registers itself in its own file, beside its reference settings and the
suites it belongs to (:func:`register_model`). The files live in ``baselines/``, on top of the
operators of ``hippo/``; this package holds the registry and the contract, no model class.
"""

from bench.models.registry import (
    MODELS,
    ModelEntry,
    create_model,
    get_model_entry,
    list_models,
    model_parameters,
    models_tagged,
    register_model,
)

# The modules whose import registers the built-in models, in the order ``bench ls models`` lists
# them; imported on the first lookup, not before (a model file imports its heavy dependencies
# only when a model runs).
BUILTIN_MODEL_MODULES = (
    "baselines.hippo_rnn",
    "baselines.rnn",
    "baselines.gru_d",
    "baselines.ode_rnn",
    "baselines.gru_dt",
    "baselines.gru_ode",
    "baselines.ncde",
    "baselines.lmu",
    "baselines.deep_ssm",
    "baselines.attention",
    "baselines.linear_attention",
)
MODELS.autoload(BUILTIN_MODEL_MODULES)

__all__ = [
    "BUILTIN_MODEL_MODULES",
    "MODELS",
    "ModelEntry",
    "create_model",
    "get_model_entry",
    "list_models",
    "model_parameters",
    "models_tagged",
    "register_model",
]
