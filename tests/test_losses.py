"""The shared adversarial losses and gradient penalties, on critics whose gradients are known."""

import pytest
import torch

from napari_biogan.nn import losses


class Linear(torch.nn.Module):
    """D(x) = sum(w * x): its gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1)


def test_r1_is_half_the_squared_gradient_norm_at_the_real_samples():
    w = torch.tensor([[3.0, 4.0]])
    real = torch.randn(5, 1, 2).requires_grad_(True)
    critic = Linear(w)
    penalty = losses.r1_penalty(critic(real), real)
    assert penalty.item() == pytest.approx(0.5 * 25.0)
    penalty.backward()  # it trains the critic: d/dw of 0.5 |w|^2 is w
    assert torch.allclose(critic.w.grad, w)


def test_gradient_penalty_is_zero_for_a_unit_gradient_and_grows_with_the_norm():
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    assert losses.gradient_penalty(Linear(torch.tensor([0.6, 0.8])), real, fake).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.gradient_penalty(Linear(torch.tensor([3.0, 4.0])), real, fake).item() == pytest.approx(16.0)


def test_hinge_critic_loss_has_a_floor_and_an_unknown_loss_is_one_sentence():
    assert losses.critic_loss("hinge", torch.tensor([5.0]), torch.tensor([-5.0])).item() == 0.0
    assert losses.critic_loss("hinge", torch.tensor([0.0]), torch.tensor([0.0])).item() == 2.0
    with pytest.raises(ValueError, match="Unknown loss 'ls'"):
        losses.critic_loss("ls", torch.zeros(1), torch.zeros(1))
