"""The `evaluating` context manager used by every inference path."""

import pytest
import torch
from torch import nn

from structreg.core.layers import evaluating


def test_evaluating_sets_eval_no_grad_and_restores_the_mode():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).train()
    with evaluating(net):
        assert not net.training and not torch.is_grad_enabled()
        out = net(torch.ones(2, 3, requires_grad=True))
        assert not out.requires_grad
    assert net.training and torch.is_grad_enabled()
    net.eval()
    with pytest.raises(RuntimeError):
        with evaluating(net):
            raise RuntimeError("inside")
    assert not net.training
