import pytest
import torch

from mtapp.models.dropout import LANE_VALUES, Dropout


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_units_drop_at_rate_p_on_every_lane_and_the_expected_output_is_the_input(p):
    torch.manual_seed(0)
    x = torch.ones(400, 1000)  # 100k units per lane: 0.005 is 3.4 standard deviations at p = 0.3
    y = Dropout(p).train()(x)
    dropped = y == 0
    for lane in range(4):  # each 64-bit draw gives four lanes; the top one has a zero sign bit
        assert abs(dropped.flatten()[lane::4].float().mean().item() - p) < 0.005
    kept = y[~dropped]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - round(p * LANE_VALUES) / LANE_VALUES)))
    assert abs(y.mean().item() - 1.0) < 0.01


def test_the_gradient_is_the_mask_of_the_forward_pass():
    torch.manual_seed(1)
    x = (torch.rand(8, 50, 32) + 0.5).requires_grad_()
    y = Dropout(0.2).train()(x)
    g = torch.randn_like(x)
    y.backward(g)
    assert torch.allclose(x.grad, g * (y / x).detach())


def test_masks_follow_the_torch_seed_and_differ_between_calls():
    x = torch.ones(64, 64)
    drop = Dropout(0.5).train()
    torch.manual_seed(7)
    first, second = drop(x), drop(x)
    torch.manual_seed(7)
    assert torch.equal(drop(x), first)
    assert not torch.equal(first, second)


def test_eval_mode_and_p_zero_return_the_input_and_bf16_stays_bf16():
    x = torch.randn(5, 7)
    assert Dropout(0.4).eval()(x) is x
    assert Dropout(0.0).train()(x) is x
    assert Dropout(0.4).train()(x.bfloat16()).dtype == torch.bfloat16


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_a_probability_outside_0_1_is_refused(p):
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(p)
