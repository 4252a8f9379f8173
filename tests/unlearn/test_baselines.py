import pytest
import torch

from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.data.interactions import pair_keys
from torch_geometric_unlearn.training.trainer import (TrainConfig, build_model,
                                                      train)
from torch_geometric_unlearn.unlearn.baselines import (FineTuneUnlearner,
                                                       PairedRetrainUnlearner,
                                                       RetrainUnlearner,
                                                       WarmRetrainUnlearner)

CONFIG = TrainConfig(progress=False, lr=0.01, batch_size=1024, max_epochs=8,
                     patience=2)


@pytest.fixture(scope='module')
def trained(small_data):
    model = build_model(small_data, 8, 1)
    record = train(model, small_data, CONFIG)
    return model, record


@pytest.mark.parametrize('cls', [RetrainUnlearner, WarmRetrainUnlearner])
def test_retrains_on_the_remaining_data(small_data, trained, cls):
    model, record = trained
    pairs = random_interactions(small_data, count=30, seed=0)
    unlearner = cls(model, small_data, record.examples, config=CONFIG,
                    copy_model=True)
    result = unlearner.unlearn(pairs)
    assert result.method == cls.method
    assert 1 <= result.diagnostics['epochs'] <= CONFIG.max_epochs
    assert not torch.equal(result.model.embedding.weight,
                           model.embedding.weight)
    # The new frozen triples cover exactly the remaining training pairs.
    remaining = small_data.num_train - 30
    assert unlearner.examples.shape == (3, remaining)
    forgotten = pair_keys(pairs, small_data.num_items)
    assert not torch.isin(pair_keys(unlearner.examples[:2],
                                    small_data.num_items), forgotten).any()


def test_warm_retrain_starts_where_the_model_is(small_data, trained):
    model, record = trained
    pairs = random_interactions(small_data, count=30, seed=0)
    one_epoch = TrainConfig(**{**vars(CONFIG), 'max_epochs': 1})
    warm = WarmRetrainUnlearner(model, small_data, record.examples,
                                config=one_epoch, copy_model=True)
    cold = RetrainUnlearner(model, small_data, record.examples,
                            config=one_epoch, copy_model=True)
    warm_metric = warm.unlearn(pairs).diagnostics['recall@20']
    cold_metric = cold.unlearn(pairs).diagnostics['recall@20']
    assert warm_metric > 0.9 * record.best_metric > cold_metric


def test_finetune_runs_its_budget(small_data, trained):
    model, record = trained
    unlearner = FineTuneUnlearner(model, small_data, record.examples,
                                  config=CONFIG, epochs=2, copy_model=True)
    result = unlearner.unlearn(random_interactions(small_data, count=5))
    assert result.diagnostics['epochs'] == 2
    with pytest.raises(ValueError, match='epochs'):
        FineTuneUnlearner(model, small_data, record.examples, config=CONFIG,
                          epochs=0)


def test_paired_retrain_is_the_original_run_without_the_requests(
        small_data, trained):
    model, record = trained
    first = random_interactions(small_data, count=20, seed=1)
    second = random_interactions(small_data, count=20, seed=2)
    second = second[:, ~torch.isin(pair_keys(second, small_data.num_items),
                                   pair_keys(first, small_data.num_items))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bitwise reproducible sparse products
    try:
        unlearner = PairedRetrainUnlearner(
            model, small_data, record.examples, config=CONFIG,
            epochs=record.best_epoch, copy_model=True)
        unlearner.unlearn(first)
        result = unlearner.unlearn(second)
        # The reference, written out: one run on the original data's
        # stream without both requests, for the original's epoch count.
        expected = build_model(small_data, 8, 1)
        epochs = record.best_epoch
        direct = train(expected, small_data,
                       TrainConfig(progress=False, lr=0.01, batch_size=1024,
                                   max_epochs=epochs, eval_every=epochs,
                                   patience=1),
                       exclude=torch.cat([first, second], 1))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(result.model.embedding.weight,
                       expected.embedding.weight)
    assert result.diagnostics['epochs'] == record.best_epoch
    assert torch.equal(unlearner.examples, direct.examples)
    assert result.diagnostics['length'] == \
        f"the original run's {record.best_epoch} epochs"
    with pytest.raises(ValueError, match='epochs'):
        PairedRetrainUnlearner(model, small_data, record.examples,
                               config=CONFIG, epochs=0)
    # One yardstick: the original's length unless early stopping is asked
    # for, and then the result says so.
    with pytest.raises(ValueError, match='record.best_epoch'):
        PairedRetrainUnlearner(model, small_data, record.examples,
                               config=CONFIG)
    with pytest.raises(ValueError, match='not both'):
        PairedRetrainUnlearner(model, small_data, record.examples,
                               config=CONFIG, epochs=3, early_stopping=True)
    again = PairedRetrainUnlearner(model, small_data, record.examples,
                                   config=CONFIG, early_stopping=True
                                   ).unlearn(first)
    assert again.diagnostics['length'] == 'early stopping applied again'
