"""Every model hippo-bench compares, behind one interface (see ``bench.models.base``)."""

from bench.models.registry import (
    ModelEntry,
    create_model,
    get_model_entry,
    list_models,
    model_parameters,
    register_model,
)

__all__ = [
    "ModelEntry",
    "create_model",
    "get_model_entry",
    "list_models",
    "model_parameters",
    "register_model",
]
