import pytest
import torch

from torch_geometric_unlearn.data.datasets import synthetic
from torch_geometric_unlearn.data.deletion import request_stream
from torch_geometric_unlearn.data.interactions import (pair_keys,
                                                       remaining_data)
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         noise_floor,
                                                         probe_pairs,
                                                         score_change)
from torch_geometric_unlearn.evaluation.metrics import evaluate
from torch_geometric_unlearn.evaluation.stream import checkpoints, run_stream
from torch_geometric_unlearn.training.trainer import (TrainConfig, build_model,
                                                      train)
from torch_geometric_unlearn.unlearn.baselines import PairedRetrainUnlearner
from torch_geometric_unlearn.unlearn.ifru import IFRUnlearner

CONFIG = TrainConfig(progress=False, l2=1.0, lr=0.01, max_epochs=6,
                     batch_size=512)


def test_a_stream_is_disjoint_requests_of_its_size(small_data):
    stream = request_stream(small_data, 5, 30, seed=2)
    keys = torch.cat([pair_keys(r, small_data.num_items) for r in stream])
    assert [r.size(1) for r in stream] == [30] * 5
    assert keys.unique().numel() == 150
    assert torch.isin(keys, pair_keys(small_data.train_index,
                                      small_data.num_items)).all()
    users = request_stream(small_data, 3, 2, kind='users', seed=1)
    owners = [set(r[0].tolist()) for r in users]
    assert all(len(o) == 2 for o in owners)
    assert not owners[0] & owners[1] and not owners[1] & owners[2]
    for request, own in zip(users, owners):  # every pair of those users
        assert request.size(1) == int(torch.isin(
            small_data.train_index[0], torch.tensor(sorted(own))).sum())
    with pytest.raises(ValueError, match='need'):
        request_stream(small_data, 100, 1000)
    assert checkpoints(20) == [5, 10, 15, 20]
    assert checkpoints(3) == [1, 2, 3]


def test_the_stream_measures_each_quarter_against_the_paired_retrain():
    data = synthetic(80, 120, 2000, num_topics=4, seed=5)
    torch.manual_seed(0)
    model = build_model(data, 8, 1)
    record = train(model, data, CONFIG)
    stream = request_stream(data, 4, 8, seed=3)

    def ifru():
        return IFRUnlearner(model, data, record.examples, record.labels,
                            CONFIG.l2, horizon=record.horizon)
    torch.manual_seed(1)
    other = build_model(data, 8, 1)
    other_config = TrainConfig(**{**vars(CONFIG), 'seed': 1})
    other_record = train(other, data, other_config)
    out = run_stream(model, data, record, CONFIG, stream,
                     {'ifru': ifru, 'drop-edges': None},
                     floor=(other, other_record, other_config))
    rows = out['checkpoints']
    assert [r['after'] for r in rows] == [1, 2, 3, 4]
    assert [r['forgotten'] for r in rows] == [8, 16, 24, 32]
    seconds = [r['methods']['ifru']['seconds'] for r in rows]
    assert seconds == sorted(seconds) and seconds[0] > 0
    # Dropping the edges is the original model on the union's graph.
    union = torch.cat(stream, 1)
    after = remaining_data(data, ~torch.isin(
        pair_keys(data.train_index, data.num_items),
        pair_keys(union, data.num_items)))
    assert rows[-1]['methods']['drop-edges']['test']['ndcg@20'] == \
        pytest.approx(evaluate(model, after, adj=after.edge_index)[
            'ndcg@20'])
    # IFRU's last state is the four requests applied in turn.
    sequential = ifru()
    for request in stream:
        result = sequential.unlearn(request)
    assert rows[-1]['methods']['ifru']['test']['ndcg@20'] == pytest.approx(
        evaluate(result.model, after, adj=after.edge_index)['ndcg@20'])
    # The paired retrain agrees with itself; IFRU follows it closer than
    # the original parameters do.
    last = rows[-1]['methods']
    assert 'agreement' not in last['paired-retrain']
    assert last['ifru']['closure']['forgotten'] > \
        last['drop-edges']['closure']['forgotten']
    # The union in one request, for the drift: IFRU on the union by hand,
    # on the forgotten pairs and on the probe pairs.
    one = ifru().unlearn(union).model
    sets = {'forgotten': union, 'probe': probe_pairs(data, union)}

    def change(before, moved, key):
        return score_change(before, data.edge_index, moved,
                            after.edge_index, sets[key], data.num_users)

    def paired(m, r, config):
        return PairedRetrainUnlearner(
            m, data, r.examples, None, CONFIG.l2, config=config,
            epochs=r.best_epoch).unlearn(union).model
    reference = paired(model, record, CONFIG)
    for key in sets:
        target = change(model, reference, key)
        assert last['ifru']['closure_one_request'][key] == pytest.approx(
            change_closure(change(model, one, key), target))
        assert last['ifru']['closure'][key] == pytest.approx(
            change_closure(change(model, result.model, key), target))
        # The noise floor: the other seed's paired retrain against this
        # one's, both ways.
        assert rows[-1]['noise_floor'][key] == pytest.approx(noise_floor([
            target, change(other, paired(other, other_record,
                                         other_config), key)]))
    assert 'closure_one_request' not in last['drop-edges']
    # Every IFRU update so far is counted by the step its certificate
    # names; dropping the edges has none.
    steps = {key: n for key, n in last['ifru']['certificates'].items()
             if key.startswith('step ')}
    assert sum(steps.values()) == 4
    assert sum(rows[0]['methods']['ifru']['certificates'].get(key, 0)
               for key in steps) == 1
    assert 'certificates' not in last['drop-edges']
