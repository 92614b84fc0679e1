"""GRU-D: the paper's delta recursion and decay equations, checked by hand."""

from __future__ import annotations

import pytest
import torch
from baseline_batches import make_batch

from baselines.common import gru_step
from baselines.gru_d import GRUD, last_observation


def test_delta_matches_the_papers_example() -> None:
    # Che et al. 2018, section 2: s = (0, 0.1, 0.6, 1.6, 2.2, 2.5, 3.1), mask 1 0 0 1 0 0 1
    times = torch.tensor([[0.0, 0.1, 0.6, 1.6, 2.2, 2.5, 3.1]])
    mask = torch.tensor([[1, 0, 0, 1, 0, 0, 1]], dtype=torch.bool).unsqueeze(-1)
    last_index, delta = last_observation(times, mask)
    expected = torch.tensor([0.0, 0.1, 0.6, 1.6, 0.6, 0.9, 1.5])
    torch.testing.assert_close(delta[0, :, 0], expected)
    assert last_index[0, :, 0].tolist() == [0, 0, 0, 3, 3, 3, 6]


def test_channel_never_observed_yet_uses_the_mean_and_delta_from_start() -> None:
    times = torch.tensor([[0.0, 1.0, 3.0]])
    mask = torch.tensor([[[True, False], [True, False], [True, True]]])
    last_index, delta = last_observation(times, mask)
    assert last_index[0, :, 1].tolist() == [-1, -1, 2]
    torch.testing.assert_close(delta[0, :, 1], torch.tensor([0.0, 1.0, 3.0]))
    model = GRUD(2, 3, hidden_size=4, x_mean=[0.0, 0.7])
    with torch.no_grad():
        model.b_gamma_x.fill_(50.0)  # gamma_x ~ 0: fully decayed to the mean
        values = torch.tensor([[[1.0, 9.0], [2.0, 9.0], [3.0, 4.0]]])
        x_hat = model.impute(values, mask, last_index, model.decays(delta)[0])
    torch.testing.assert_close(x_hat[0, :, 1], torch.tensor([0.7, 0.7, 4.0]))


def test_one_step_matches_a_hand_computation() -> None:
    torch.manual_seed(0)
    model = GRUD(2, 3, hidden_size=4, x_mean=[0.5, -0.25])
    with torch.no_grad():
        model.b_gamma_x.uniform_(-0.5, 0.5)
        model.gamma_h.bias.uniform_(-0.5, 0.5)
    x_prev, x_now = torch.tensor([1.5, -2.0]), torch.tensor([0.3, 0.8])
    m_now = torch.tensor([True, False])
    h_prev = torch.randn(4)
    dt = 0.7  # both channels observed at the previous step, 0.7 time units ago
    delta = torch.full((2,), dt)

    # by hand, with the paper's equations and torch.nn.GRUCell's gates
    gx = torch.exp(-torch.clamp(model.w_gamma_x * delta + model.b_gamma_x, min=0))
    gh = torch.exp(-torch.clamp(model.gamma_h.weight @ delta + model.gamma_h.bias, min=0))
    x_hat = torch.where(m_now, x_now, gx * x_prev + (1 - gx) * model.x_mean)
    inp = torch.cat([x_hat, m_now.float()])
    h = gh * h_prev
    W_ir, W_iz, W_in = model.cell.weight_ih.chunk(3)
    W_hr, W_hz, W_hn = model.cell.weight_hh.chunk(3)
    b_ir, b_iz, b_in = model.cell.bias_ih.chunk(3)
    b_hr, b_hz, b_hn = model.cell.bias_hh.chunk(3)
    r = torch.sigmoid(W_ir @ inp + b_ir + W_hr @ h + b_hr)
    z = torch.sigmoid(W_iz @ inp + b_iz + W_hz @ h + b_hz)
    n = torch.tanh(W_in @ inp + b_in + r * (W_hn @ h + b_hn))
    expected = (1 - z) * n + z * h

    # the model's vectorised route for the same step
    times = torch.tensor([[0.0, dt]])
    mask = torch.stack([torch.ones(2, dtype=torch.bool), m_now]).unsqueeze(0)
    values = torch.stack([x_prev, torch.where(m_now, x_now, x_prev)]).unsqueeze(0)  # forward filled
    last_index, got_delta = last_observation(times, mask)
    torch.testing.assert_close(got_delta[0, 1], delta)
    got_gx, got_gh = model.decays(got_delta)
    got_x_hat = model.impute(values, mask, last_index, got_gx)
    torch.testing.assert_close(got_x_hat[0, 1], x_hat)
    torch.testing.assert_close(got_gh[0, 1], gh)
    gi = torch.nn.functional.linear(inp, model.cell.weight_ih, model.cell.bias_ih)
    got = gru_step(gi.unsqueeze(0), (got_gh[0, 1] * h_prev).unsqueeze(0), model.cell)
    torch.testing.assert_close(got[0], expected)


def test_forward_matches_a_plain_loop() -> None:
    """The precomputed route equals a per-step loop written straight from the paper."""
    torch.manual_seed(1)
    model = GRUD(3, 4, hidden_size=6, x_mean=[0.1, 0.2, -0.3])
    batch = make_batch([9, 6], missing=0.4, seed=5)
    logits = model(batch)
    for b in range(2):
        n = int(batch.lengths[b])
        h = torch.zeros(6)
        x_last = model.x_mean.clone()
        last_time = torch.full((3,), float(batch.times[b, 0]))
        for t in range(n):
            s, x, m = batch.times[b, t], batch.values[b, t], batch.mask[b, t]
            delta = s - last_time
            gx = torch.exp(-torch.relu(model.w_gamma_x * delta + model.b_gamma_x))
            gh = torch.exp(-torch.relu(model.gamma_h(delta)))
            x_hat = torch.where(m, x, gx * x_last + (1 - gx) * model.x_mean)
            h = model.cell(torch.cat([x_hat, m.float()]).unsqueeze(0), (gh * h).unsqueeze(0))[0]
            x_last = torch.where(m, x, x_last)
            last_time = torch.where(m, s, last_time)
        torch.testing.assert_close(logits[b], model.classifier(h), rtol=1e-5, atol=1e-6)


def test_x_mean_must_match_channels() -> None:
    with pytest.raises(ValueError, match="x_mean must hold num_inputs=3"):
        GRUD(3, 2, x_mean=[0.0, 1.0])
