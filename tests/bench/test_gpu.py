"""On a CUDA device (marker ``gpu``, left out of the default run: ``python -m pytest -m gpu``).

The harness on the accelerator the nightly uses: model selection through the runner gives the
selected epochs' numbers, and every registered model computes on CUDA what it computes on the
CPU (logits and gradients, float32 to a loose tolerance), on real series.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_models import build, real_batch  # noqa: F401 (a fixture)
from test_selection import CONDITIONS, check_selected

from bench.models import list_models
from bench.runner import run_suite, with_trainer_options

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available())"),
]


@pytest.mark.parametrize(("train_hz", "eval_hz", "best", "best_at_eval"), CONDITIONS)
def test_selection_on_cuda(fakes, results_dir, train_hz, eval_hz, best, best_at_eval):
    specs = with_trainer_options([fakes.scripted_spec(train_hz, eval_hz)], accelerator="cuda")
    (record,) = run_suite(specs, results_dir, device="cuda", interactive=False).records
    check_selected(record, fakes, train_hz, eval_hz, best, best_at_eval)


@pytest.mark.parametrize("name", list_models())
def test_a_model_computes_on_cuda_what_it_computes_on_the_cpu(name, real_batch):  # noqa: F811
    results = {}
    for device in ("cpu", "cuda"):
        model = build(name).to(device).eval()  # no dropout: the two devices draw other masks
        batch = real_batch("physical", dict(type(model).batch_extras)).to(device)
        logits = model(batch)
        F.cross_entropy(logits, batch.labels).backward()
        grads = {n: p.grad.cpu() for n, p in model.named_parameters() if p.grad is not None}
        results[device] = logits.detach().cpu(), grads
    (cpu_logits, cpu_grads), (cuda_logits, cuda_grads) = results["cpu"], results["cuda"]
    assert torch.isfinite(cuda_logits).all() and cpu_grads.keys() == cuda_grads.keys()
    torch.testing.assert_close(cuda_logits, cpu_logits, rtol=1e-3, atol=1e-4)
    for key, grad in cpu_grads.items():
        torch.testing.assert_close(cuda_grads[key], grad, rtol=1e-2, atol=1e-4, msg=f"{name}: {key}")
