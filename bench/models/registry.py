"""Model registry: one line per model, resolved lazily (``name -> "module:Class"``).

Heavy optional dependencies (torchcde, torchdiffeq) are imported only when a model that needs
them is created, so ``python -m bench ls models`` and the HiPPO models work without them.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: where its class lives and the fixed arguments that define it."""

    name: str
    target: str  # "package.module:ClassName"
    description: str
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> type[torch.nn.Module]:
        module_name, _, class_name = self.target.partition(":")
        return getattr(importlib.import_module(module_name), class_name)

    def time_scale_invariant(self) -> bool:
        """Whether the class declares its logits independent of a uniform time scale
        (``bench.models.base``); False when it says nothing."""
        return bool(getattr(self.load(), "time_scale_invariant", False))

    def code_version(self) -> str:
        """The class's ``code_version``, or its ``version_for(**fixed)`` when it has one (a class
        registered several times, e.g. one HiPPO entry per measure, versions each entry)."""
        cls = self.load()
        version_for = getattr(cls, "version_for", None)
        return str(version_for(**self.fixed) if version_for is not None else cls.code_version)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, target: str, description: str, **fixed: Any) -> None:
    """Register ``name`` as ``target`` (``"module:Class"``) built with ``fixed`` keyword arguments."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = ModelEntry(name, target, description, dict(fixed))


def list_models() -> list[str]:
    """Names of every registered model, in registration order."""
    return list(_REGISTRY)


def get_model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; valid models: {', '.join(list_models())}"
        ) from None


def model_parameters(name: str) -> dict[str, inspect.Parameter]:
    """The keyword arguments ``create_model(name, ...)`` accepts as overrides, with defaults."""
    entry = get_model_entry(name)
    params = inspect.signature(entry.load().__init__).parameters
    skip = {"self", "num_inputs", "num_classes", *entry.fixed}
    return {
        k: p
        for k, p in params.items()
        if k not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def create_model(name: str, num_inputs: int, num_classes: int, **overrides: Any) -> torch.nn.Module:
    """Build registered model ``name`` for ``num_inputs`` channels and ``num_classes`` classes.

    ``overrides`` are keyword arguments of the model's constructor (every model takes
    ``hidden_size``). Unknown names and unknown overrides raise ``ValueError`` listing what is valid.
    """
    entry = get_model_entry(name)
    accepted = model_parameters(name)
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise ValueError(
            f"model {name!r} does not take {', '.join(unknown)}; "
            f"it takes: {', '.join(accepted) or '(nothing)'}"
        )
    return entry.load()(num_inputs, num_classes, **entry.fixed, **overrides)


# --- the registry: one line per model -------------------------------------------------------
_HIPPO = "bench.models.hippo_rnn:HiPPOClassifier"
register_model("hippo-legs", _HIPPO, "HiPPO-RNN, scaled Legendre memory (LegS), O(N) step", measure="legs")
register_model("hippo-legs-ts", _HIPPO, "HiPPO-RNN, timestamped LegS (the reference's tlsi): steps (t_k - t_k-1) / t_k from batch.times", measure="legs", timestamped=True)
register_model("hippo-legt", _HIPPO, "HiPPO-RNN, translated Legendre memory (LegT, window theta)", measure="legt")
register_model("hippo-lagt", _HIPPO, "HiPPO-RNN, translated Laguerre memory (LagT)", measure="lagt")
register_model("hippo-tlagt", _HIPPO, "HiPPO-RNN, tilted Laguerre memory (TLagT)", measure="tlagt")
register_model("hippo-glagt", _HIPPO, "HiPPO-RNN, generalised Laguerre memory (GLagT)", measure="glagt")
register_model("hippo-fout", _HIPPO, "HiPPO-RNN, translated Fourier memory (FouT)", measure="fout")
register_model("lstm", "baselines.rnn:LSTMClassifier", "LSTM (torch.nn), last valid hidden state")
register_model("gru", "baselines.rnn:GRUClassifier", "GRU (torch.nn), last valid hidden state")
register_model("gru-d", "baselines.gru_d:GRUD", "GRU-D (Che et al. 2018): decays, mean imputation, mask input")
register_model("ode-rnn", "baselines.ode_rnn:ODERNN", "ODE-RNN (Rubanova et al. 2019): rk4 ODE between observations, GRU at them")
register_model("ncde", "baselines.ncde:NeuralCDE", "Neural CDE (Kidger et al. 2020): Hermite cubic path, rk4 cdeint")
register_model("lmu", "baselines.lmu:LMU", "LMU, hippo-code's gated cell (the HiPPO paper's LMU): Legendre memory, ZOH, theta 100")
register_model("lmu-voelker", "baselines.lmu:VoelkerLMU", "LMU, the ungated cell of Voelker et al. 2019 with keras-lmu's initialisation")
_DEEP_SSM = "bench.models.deep_ssm"
register_model("s4d", f"{_DEEP_SSM}:S4DClassifier", "S4D (diagonal SSM, S4D-LegS init), 4 layers, FFT convolution", init="legs")
register_model("s4d-lin", f"{_DEEP_SSM}:S4DClassifier", "S4D with S4D-Lin init (-1/2 + i pi n)", init="lin")
register_model("lssl", f"{_DEEP_SSM}:LSSLClassifier", "LSSL, fixed HiPPO-LegS A (learned dt, C, D), dense kernel")
register_model("mamba", f"{_DEEP_SSM}:MambaClassifier", "Mamba-style selective SSM (S4D-Real A, compiled CPU scan)")
