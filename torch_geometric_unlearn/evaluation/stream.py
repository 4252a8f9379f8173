r"""A stream of requests, as ERASE (arXiv 2603.08341) runs its protocol:
many small requests applied one after another, with efficiency, utility and
effectiveness measured after each quarter of the stream against the paired
retrain of everything forgotten so far.

Repeated requests are where general-purpose methods drift: each update is
taken from the previous one's parameters, so errors add up, while the
reference (one retrain without the union) has none.
"""
import time
from dataclasses import asdict, replace
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from torch_geometric_unlearn.data.deletion import request_stream
from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys,
                                                       remaining_data)
from torch_geometric_unlearn.evaluation.benchmark import (load_data,
                                                          machine,
                                                          make_unlearner,
                                                          next_seed,
                                                          paired_retrain)
from torch_geometric_unlearn.evaluation.config import BenchmarkConfig
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         noise_floor,
                                                         probe_pairs,
                                                         score_change)
from torch_geometric_unlearn.evaluation.metrics import (
    evaluate, membership_inference_auc, unseen_pairs)
from torch_geometric_unlearn.evaluation.protocols import (fairness_gap,
                                                          retrain_agreement)
from torch_geometric_unlearn.training.trainer import (TrainConfig, TrainResult,
                                                      build_model, train)
from torch_geometric_unlearn.unlearn.base import Unlearner
from torch_geometric_unlearn.unlearn.ledger import json_value
from torch_geometric_unlearn.unlearn.sisa import ShardedRecommender

#: The methods a stream runs: an unlearner built from the trained model, or
#: None for dropping the edges (the original parameters on the new graph).
Factory = Optional[Callable[[], Unlearner]]


def checkpoints(num_requests: int, parts: int = 4) -> List[int]:
    r"""After how many requests each of :obj:`parts` equal parts of the
    stream ends (the last is :obj:`num_requests`)."""
    return sorted({max(1, round(num_requests * q / parts))
                   for q in range(1, parts + 1)})


def run_stream(model: torch.nn.Module, data: InteractionData,
               record: TrainResult, config: TrainConfig,
               requests: Sequence[Tensor], methods: Dict[str, Factory],
               parts: int = 4, k: int = 20,
               floor: Optional[Tuple[torch.nn.Module, TrainResult,
                                     TrainConfig]] = None
               ) -> Dict[str, Any]:
    r"""Applies :obj:`requests` one after another with each method and,
    after each of :obj:`parts` parts of the stream, measures every method
    against the paired retrain of the union forgotten so far.

    Args:
        model (torch.nn.Module): The trained LightGCN or MF.
        data (InteractionData): Its training data.
        record (TrainResult): Its training record (the paired retrain runs
            its :obj:`best_epoch` epochs with :obj:`config`).
        config (TrainConfig): Its training configuration.
        requests (Sequence[torch.Tensor]): Disjoint requests, :obj:`[2, k]`
            each (e.g. from
            :func:`~torch_geometric_unlearn.data.deletion.request_stream`).
        methods (Dict[str, Callable]): A factory of a fresh unlearner per
            method name, or :obj:`None` to drop the edges.
        parts (int): Parts of the stream measured (4: quarters).
        k (int): The metrics' cut-off.
        floor (Tuple, optional): The same model trained with another seed,
            its record and configuration: its paired retrain of each union
            gives the noise floor of the closures.

    Returns:
        Dict[str, Any]: Per checkpoint (:obj:`'after'` requests, the
        union's size, the paired retrain's seconds, the noise floor), per
        method the cumulative unlearning seconds, test NDCG@k and
        recall@k, the fairness gap, the agreement with the paired retrain,
        the closure of the scores of the union and of probe pairs sharing
        a user or an item with it (and, for an unlearner of one model, the
        same closures of the union forgotten in one request: the
        difference is the stream's drift), the membership-inference AUC,
        and for certified unlearners how many updates so far took each
        step and raised each flag (:obj:`'certificates'`).
    """
    unlearners = {name: None if make is None else make()
                  for name, make in methods.items()}
    seconds = {name: 0.0 for name in methods}
    current = {name: (model, data) for name in methods}
    # Which step each certified update took, and the flags it raised.
    certified: Dict[str, Dict[str, int]] = {name: {} for name in methods}
    stops, done, out = checkpoints(len(requests), parts), 0, []
    for stop in stops:
        for request in requests[done:stop]:
            for name, unlearner in unlearners.items():
                if unlearner is None:
                    continue
                start = time.perf_counter()
                result = unlearner.unlearn(request)
                seconds[name] += time.perf_counter() - start
                current[name] = (result.model, result.data)
                if result.certificate is not None:
                    counts = certified[name]
                    for key in [f'step {result.certificate.step}'] + [
                            f'flag {f}' for f in result.certificate.flags]:
                        counts[key] = counts.get(key, 0) + 1
        done = stop
        union = torch.cat(list(requests[:stop]), 1)
        after = remaining_data(data, ~torch.isin(
            pair_keys(data.train_index, data.num_items),
            pair_keys(union, data.num_items)))
        start = time.perf_counter()
        paired = paired_retrain(model, data, record, config, union).model
        row: Dict[str, Any] = {
            'after': stop, 'forgotten': union.size(1),
            'paired_retrain_seconds': time.perf_counter() - start,
            'methods': {}}
        unseen = unseen_pairs(data, union)
        sets = {'forgotten': union, 'probe': probe_pairs(data, union)}

        def changes(before, moved, edges) -> Dict[str, Tensor]:
            return {key: score_change(before, data.edge_index, moved, edges,
                                      index, data.num_users)
                    for key, index in sets.items()}

        def closures(moved, edges) -> Dict[str, float]:
            change = changes(model, moved, edges)
            return {key: change_closure(change[key], target[key])
                    for key in sets}

        target = changes(model, paired, after.edge_index)
        if floor is not None:
            other_model, other_record, other_config = floor
            other = changes(other_model, paired_retrain(
                other_model, data, other_record, other_config, union).model,
                after.edge_index)
            row['noise_floor'] = {key: noise_floor([target[key], other[key]])
                                  for key in sets}
        for name in ['paired-retrain'] + list(methods):
            if name == 'paired-retrain':
                m, edges, entry = paired, after.edge_index, {}
            else:
                m = current[name][0]
                edges = after.edge_index
                entry = {'seconds': seconds[name]}
                if certified[name]:
                    entry['certificates'] = dict(certified[name])
                entry['agreement'] = retrain_agreement(
                    m, paired, after, [k], edge_index=edges,
                    reference_edge_index=after.edge_index)
                # An ensemble's scores are not the original model's: no
                # change from them to measure.
                if not isinstance(m, ShardedRecommender):
                    entry['closure'] = closures(m, edges)
                    if methods[name] is not None:
                        # The union as one request: what the stream's
                        # accumulated updates drifted from, if they did.
                        entry['closure_one_request'] = closures(
                            methods[name]().unlearn(union).model, edges)
            test = evaluate(m, after, k=k, adj=edges)
            entry['test'] = {key: test[key] for key in (f'recall@{k}',
                                                        f'ndcg@{k}')}
            entry['fairness'] = fairness_gap(m, after, k, edge_index=edges)
            entry['mia_auc'] = membership_inference_auc(
                m, edges, union, unseen, data.num_users)
            row['methods'][name] = entry
        out.append(row)
    return {'requests': len(requests),
            'sizes': [int(r.size(1)) for r in requests],
            'checkpoints': out}


def run_stream_benchmark(config: BenchmarkConfig,
                         num_requests: int) -> Dict[str, Any]:
    r"""The ``benchmark --requests N`` command: trains the model of
    :obj:`config` (and, for the noise floor, the same model from the next
    seed), draws :obj:`num_requests` disjoint requests of its
    request's kind and size (:obj:`'random'`: pairs, a count or a share of
    the training pairs; :obj:`'users'`: whole users, a count or a share of
    the users), and runs :func:`run_stream` for every method of
    :obj:`config` (the paired retrain is the reference; dropping the edges
    is always there)."""
    spec = config.request
    if spec.kind not in ('random', 'users'):
        raise ValueError(f"A stream draws 'random' or 'users' requests "
                         f"(got {spec.kind!r})")
    if 'retrain' in config.methods:
        raise ValueError("The stream's reference is the paired retrain; "
                         "leave 'retrain' out")
    seed = config.seed
    train_config = replace(config.train, seed=seed)
    data = load_data(config, seed)
    model = build_model(data, config.dim, config.layers).to(config.device)
    record = train(model, data, train_config)
    # The noise floor: the same model from the next seed, and its paired
    # retrains.
    floor = next_seed(config, data, train_config)
    pool = (data.num_train if spec.kind == 'random' else
            int(torch.unique(data.train_positive_index[0]).numel()))
    size = (int(spec.amount) if spec.amount >= 1 else
            max(1, round(spec.amount * pool)))
    requests = request_stream(data, num_requests, size, spec.kind, seed)
    methods: Dict[str, Factory] = {
        name: (None if name == 'drop-edges' else partial(
            make_unlearner, name, model, data, record, train_config,
            config))
        for name in config.methods if name != 'paired-retrain'}
    out = run_stream(model, data, record, train_config, requests, methods,
                     floor=floor)
    return {'config': {**asdict(config), 'request': str(spec),
                       'train': json_value(config.train)},
            'machine': machine(config.device),
            'date': time.strftime('%Y-%m-%d'), 'data': repr(data),
            'train': {'epochs': record.epochs, 'seconds': record.wall_time},
            **out}


def format_stream(report: Dict[str, Any]) -> str:
    r"""A Markdown table of a stream's report: per checkpoint and method,
    cumulative seconds (the paired retrain's own), the closures of the
    forgotten and the probe pairs (and in one request; the paired retrain's
    row gives the noise floor), NDCG@20, the agreement with the paired
    retrain and the MIA AUC."""
    def pair(closure: Optional[Dict[str, float]]) -> str:
        return '' if closure is None else (f"{closure['forgotten']:.2f} / "
                                           f"{closure['probe']:.2f}")

    lines = ['| after | forgotten | method | seconds | closure forgotten / '
             'probe (one request; paired retrain: noise floor) | ndcg@20 | '
             'top20 agreement (ndcg) | MIA auc |',
             '|---|---|---|---|---|---|---|---|']
    for row in report['checkpoints']:
        for name, entry in row['methods'].items():
            paired = name == 'paired-retrain'
            seconds = (row['paired_retrain_seconds'] if paired else
                       entry['seconds'])
            closure = pair(row.get('noise_floor') if paired else
                           entry.get('closure'))
            if 'closure_one_request' in entry:
                closure += f" ({pair(entry['closure_one_request'])})"
            agreement = entry.get('agreement', {}).get('ndcg@20')
            lines.append(
                f"| {row['after']} | {row['forgotten']} | {name} | "
                f"{seconds:.3g} | {closure} | "
                f"{entry['test']['ndcg@20']:.4f} | "
                f"{'' if agreement is None else f'{agreement:.3f}'} | "
                f"{entry['mia_auc']:.3f} |")
    return '\n'.join(lines)
