import torch
from _link_models import make

from torch_geometric_unlearn.data.datasets import synthetic
from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.data.interactions import pair_keys
from torch_geometric_unlearn.training.link import train_link_model
from torch_geometric_unlearn.training.trainer import TrainConfig
from torch_geometric_unlearn.unlearn.generic import LinkIFRUnlearner

# Past its first epochs, where Adam's steps are noise-driven.
EPOCHS = 30


def _config():
    # One evaluation, at the last epoch: that epoch's parameters are kept.
    return TrainConfig(progress=False, lr=0.01, batch_size=256, l2=1.0,
                       max_epochs=2, eval_every=2, patience=1)


def _params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_paired_link_run_draws_the_original_stream():
    data = synthetic(40, 50, 800, num_topics=3, seed=2)
    pairs = random_interactions(data, count=20, seed=1)
    models = [make('sage', data.num_users, data.num_items, 4)
              for _ in range(3)]
    full = train_link_model(models[0], data, _config())
    same = train_link_model(models[1], data, _config(),
                            exclude=data.train_index[:, :0])
    part = train_link_model(models[2], data, _config(), exclude=pairs)
    # Excluding nothing is the original run, bit for bit.
    assert torch.equal(_params(models[0]), _params(models[1]))
    assert torch.equal(full.examples, same.examples)
    # Excluding pairs: the original negatives for every other example but
    # those drawn among their user's excluded items (see paired_stream).
    keep = ~torch.isin(pair_keys(full.examples[:2], data.num_items),
                       pair_keys(pairs, data.num_items))
    assert int((~keep).sum()) == 20
    kept = full.examples[:, keep]
    assert torch.equal(part.examples[:2], kept[:2])
    moved = part.examples[2] != kept[2]
    assert 0 < int(moved.sum()) < 0.1 * kept.size(1)
    assert torch.isin(pair_keys(part.examples[[0, 2]][:, moved],
                                data.num_items),
                      pair_keys(pairs, data.num_items)).all()
    assert not torch.equal(_params(models[0]), _params(models[2]))


def test_the_run_records_its_horizon_per_node_table():
    data = synthetic(40, 50, 800, num_topics=3, seed=2)
    model = make('hetero', data.num_users, data.num_items, 4)
    record = train_link_model(model, data, TrainConfig(
        progress=False, lr=0.01, batch_size=64, l2=1.0, max_epochs=EPOCHS,
        eval_every=EPOCHS, patience=1))
    assert set(record.horizon) == set(model.node_params)
    for name, value in record.horizon.items():
        assert value.shape == model.get_parameter(name).shape
        assert bool((value > 0).all() & torch.isfinite(value).all())
    # What the generic unlearner takes as the run's horizon.
    LinkIFRUnlearner(model, data, record.examples, l2=1.0,
                     horizon=record.horizon)
