import math

import pytest
import torch

from torch_geometric_unlearn.influence.objectives import (bpr_loss,
                                                          weighted_bpr_loss)


def test_weighted_bpr_loss_weights_each_example():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    weight = torch.tensor([1.0, 0.0, -0.5, 2.0, 0.25])
    # Written out: example b's term is the mean over its three negatives
    # of -log sigmoid(s_pos - s_neg).
    expected = sum(
        float(weight[b]) * sum(
            -math.log(1 / (1 + math.exp(-(scores[0, b] - scores[k, b]))))
            for k in range(1, 4)) / 3 for b in range(5))
    loss = weighted_bpr_loss(weight)(scores)
    assert loss.dtype == torch.float64
    assert float(loss) == pytest.approx(expected, rel=1e-12)
    assert float(weighted_bpr_loss(torch.ones(5))(scores)) == pytest.approx(
        float(bpr_loss(scores)), rel=1e-12)
