"""Model registry: one line per built-in model, resolved lazily (``name -> "module:Class"``), and
four ways to bring a model from outside (README, "Benchmark your own model"):

- ``register_model(name, "module:Class", description, **fixed)`` from any module;
- the decorator ``@register_model("my-gru", description="...")`` on a class;
- a class path as the name, ``"my_pkg.my_module:MyNet"``, for a class never registered;
- an installed distribution's entry points in the group ``hippo_bench.models``
  (``my-net = "my_pkg.my_module:MyNet"``), discovered the first time a name is missing.

Files and modules named by ``--include`` (:mod:`bench.plugins`) are imported before any lookup.
Heavy optional dependencies (torchcde, torchdiffeq) are imported only when a model that needs
them is created, so ``python -m bench ls models`` and the HiPPO models work without them. Every
class is checked against the contract (:mod:`bench.models.contract`) when it is first loaded.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.models.contract import check_model_class, default_config, source_version
from bench.registry import Registry, load_target

ENTRY_POINT_GROUP = "hippo_bench.models"
BUILT_IN = "built-in"


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its class (or ``"module:Class"``), the fixed arguments that define it,
    and where it comes from (``source``: built-in, a module, ``--include``, a class path or an
    entry point)."""

    name: str
    target: str | type  # "package.module:ClassName", or the class
    description: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    source: str = BUILT_IN

    def load(self) -> type[torch.nn.Module]:
        cls = load_target(self.target)
        check_model_class(cls, self.name)
        return cls

    def importable_target(self) -> str | None:
        """``"module:Class"`` a fresh process can import (workers rebuild the entry from it), or
        None for a class defined in ``__main__`` or in an ``--include`` file (workers re-include)."""
        if isinstance(self.target, str):
            return self.target
        module = getattr(self.target, "__module__", "__main__")
        if module == "__main__" or module.startswith("bench_include_"):
            return None
        return f"{module}:{self.target.__qualname__}"

    def time_scale_invariant(self) -> bool:
        """Whether the class declares its logits independent of a uniform time scale
        (``bench.models.base``); False when it says nothing."""
        return bool(getattr(self.load(), "time_scale_invariant", False))

    def code_version(self) -> str:
        """The class's ``code_version``, or its ``version_for(**fixed)`` when it has one (a class
        registered several times, e.g. one HiPPO entry per measure, versions each entry); a
        class without either gets a hash of its source (:func:`source_version`)."""
        cls = self.load()
        version_for = getattr(cls, "version_for", None)
        if version_for is not None:
            return str(version_for(**self.fixed))
        version = getattr(cls, "code_version", None)
        return source_version(cls) if version is None else str(version)


def _entry_point(name: str, value: str, distribution: str) -> ModelEntry:
    return ModelEntry(name, value, f"entry point of {distribution}", source=f"entry point ({distribution})")


MODELS: Registry[ModelEntry] = Registry("model", ENTRY_POINT_GROUP, _entry_point)
# set by bench.plugins.include while a file or module of the user's is being imported
_including: list[str] = []


def register_model(name: str, target: str | type | None = None, description: str = "",
                   **fixed: Any) -> Any:  # fmt: skip
    """Register ``name`` as ``target`` (``"module:Class"`` or a class) built with ``fixed``
    keyword arguments. Without ``target`` it is a class decorator::

        @register_model("my-gru", description="a GRU of mine")
        class MyGRU(torch.nn.Module): ...
    """
    if target is None:
        def decorate(cls: type) -> type:
            register_model(name, cls, description or (cls.__doc__ or "").strip().split("\n")[0], **fixed)
            return cls

        return decorate
    if not isinstance(target, str):
        check_model_class(target, name)
    if _including:
        source = _including[-1]
    elif isinstance(target, str):
        source = "register_model"
    else:
        source = f"@register_model in {target.__module__}"
    MODELS.add(name, ModelEntry(name, target, description, dict(fixed), source))
    return target


def _register_builtin(name: str, target: str, description: str, **fixed: Any) -> None:
    MODELS.add(name, ModelEntry(name, target, description, dict(fixed), BUILT_IN))


def list_models() -> list[str]:
    """Names of every registered model, in registration order (entry points after the rest)."""
    return MODELS.names()


def get_model_entry(name: str) -> ModelEntry:
    """The entry of ``name``; a ``"module:Class"`` name that is not registered is imported and
    registered under that name (``source`` "class path"). ValueError (one line) otherwise."""
    if name not in MODELS and ":" in name:
        cls = load_target(name)
        check_model_class(cls, name)
        MODELS.add(name, ModelEntry(name, name, (cls.__doc__ or "").strip().split("\n")[0], source="class path"))
    return MODELS.get(name)


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

    ``overrides`` are keyword arguments of the model's constructor. Unknown names and unknown
    overrides raise ``ValueError`` listing what is valid. A model without ``config`` gets its
    resolved constructor arguments as one.
    """
    entry = get_model_entry(name)
    accepted = model_parameters(name)
    cls = entry.load()
    takes_any = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())
    unknown = sorted(set(overrides) - set(accepted))
    if unknown and not takes_any:
        raise ValueError(
            f"model {name!r} does not take {', '.join(unknown)}; "
            f"it takes: {', '.join(accepted) or '(nothing)'}"
        )
    kwargs = {**entry.fixed, **overrides}
    model = cls(num_inputs, num_classes, **kwargs)
    if not isinstance(getattr(model, "config", None), dict):
        model.config = default_config(cls, (num_inputs, num_classes), kwargs)
    return model





# --- the registry: one line per model -------------------------------------------------------
_HIPPO = "bench.models.hippo_rnn:HiPPOClassifier"
_register_builtin("hippo-legs", _HIPPO, "HiPPO-RNN, scaled Legendre memory (LegS), O(N) step", measure="legs")
_register_builtin("hippo-legs-ts", _HIPPO, "HiPPO-RNN, timestamped LegS (the reference's tlsi): steps (t_k - t_k-1) / t_k from batch.times", measure="legs", timestamped=True)
_register_builtin("hippo-legt", _HIPPO, "HiPPO-RNN, translated Legendre memory (LegT, window theta)", measure="legt")
_register_builtin("hippo-lagt", _HIPPO, "HiPPO-RNN, translated Laguerre memory (LagT)", measure="lagt")
_register_builtin("hippo-tlagt", _HIPPO, "HiPPO-RNN, tilted Laguerre memory (TLagT)", measure="tlagt")
_register_builtin("hippo-glagt", _HIPPO, "HiPPO-RNN, generalised Laguerre memory (GLagT)", measure="glagt")
_register_builtin("hippo-fout", _HIPPO, "HiPPO-RNN, translated Fourier memory (FouT)", measure="fout")
_register_builtin("lstm", "baselines.rnn:LSTMClassifier", "LSTM (torch.nn), last valid hidden state")
_register_builtin("gru", "baselines.rnn:GRUClassifier", "GRU (torch.nn), last valid hidden state")
_register_builtin("gru-d", "baselines.gru_d:GRUD", "GRU-D (Che et al. 2018): decays, mean imputation, mask input")
_register_builtin("ode-rnn", "baselines.ode_rnn:ODERNN", "ODE-RNN (Rubanova et al. 2019): rk4 ODE between observations, GRU at them")
_register_builtin("gru-dt", "baselines.gru_dt:GRUDeltaT", "GRU-Δt (the Neural CDE paper's): GRU at observations, reading the time since the previous one")
_register_builtin("gru-decay", "baselines.gru_dt:GRUDeltaT", "GRU-D as the Neural CDE experiments run it ('decay'): GRU-Δt with h decayed by each gap", decay=True)
_register_builtin("gru-ode", "baselines.gru_ode:GRUODE", "GRU-ODE (the Neural CDE paper's): a CDE with state [x, h], h driven by the time channel, rk4")
_register_builtin("ncde", "baselines.ncde:NeuralCDE", "Neural CDE (Kidger et al. 2020): Hermite cubic path, rk4 cdeint")
_register_builtin("lmu", "baselines.lmu:LMU", "LMU, hippo-code's gated cell (the HiPPO paper's LMU): Legendre memory, ZOH, theta 100")
_register_builtin("lmu-voelker", "baselines.lmu:VoelkerLMU", "LMU, the ungated cell of Voelker et al. 2019 with keras-lmu's initialisation")
_DEEP_SSM = "bench.models.deep_ssm"
_register_builtin("s4d", f"{_DEEP_SSM}:S4DClassifier", "S4D (diagonal SSM, S4D-LegS init), 4 layers, FFT convolution", init="legs")
_register_builtin("s4d-lin", f"{_DEEP_SSM}:S4DClassifier", "S4D with S4D-Lin init (-1/2 + i pi n)", init="lin")
_register_builtin("lssl", f"{_DEEP_SSM}:LSSLClassifier", "LSSL, fixed HiPPO-LegS A (learned dt, C, D), dense kernel")
_register_builtin("mamba", f"{_DEEP_SSM}:MambaClassifier", "Mamba-style selective SSM (S4D-Real A, compiled CPU scan)")
