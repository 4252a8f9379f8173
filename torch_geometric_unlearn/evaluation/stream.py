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
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor

from torch_geometric_unlearn.data.deletion import request_stream
from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys,
                                                       remaining_data)
from torch_geometric_unlearn.evaluation.benchmark import (load_data,
                                                          machine,
                                                          make_unlearner)
from torch_geometric_unlearn.evaluation.config import BenchmarkConfig
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         score_change)
from torch_geometric_unlearn.evaluation.metrics import (
    evaluate, membership_inference_auc, unseen_pairs)
from torch_geometric_unlearn.evaluation.protocols import (fairness_gap,
                                                          retrain_agreement)
from torch_geometric_unlearn.training.trainer import (TrainConfig, TrainResult,
                                                      build_model, train)
from torch_geometric_unlearn.unlearn.baselines import PairedRetrainUnlearner
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
               parts: int = 4, k: int = 20) -> Dict[str, Any]:
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

    Returns:
        Dict[str, Any]: Per checkpoint (:obj:`'after'` requests, the
        union's size, the paired retrain's seconds), per method the
        cumulative unlearning seconds, test NDCG@k and recall@k, the
        fairness gap, the agreement with the paired retrain, the closure of
        the union's scores (and, for an unlearner of one model, the closure
        of the union forgotten in one request: the difference is the
        stream's drift) and the membership-inference AUC.
    """
    unlearners = {name: None if make is None else make()
                  for name, make in methods.items()}
    seconds = {name: 0.0 for name in methods}
    current = {name: (model, data) for name in methods}
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
        done = stop
        union = torch.cat(list(requests[:stop]), 1)
        after = remaining_data(data, ~torch.isin(
            pair_keys(data.train_index, data.num_items),
            pair_keys(union, data.num_items)))
        start = time.perf_counter()
        paired = PairedRetrainUnlearner(
            model, data, record.examples, record.labels, config.l2,
            config=config, epochs=record.best_epoch).unlearn(union).model
        row: Dict[str, Any] = {
            'after': stop, 'forgotten': union.size(1),
            'paired_retrain_seconds': time.perf_counter() - start,
            'methods': {}}
        unseen = unseen_pairs(data, union)
        target = score_change(model, data.edge_index, paired,
                              after.edge_index, union, data.num_users)
        for name in ['paired-retrain'] + list(methods):
            if name == 'paired-retrain':
                m, edges, entry = paired, after.edge_index, {}
            else:
                m = current[name][0]
                edges = after.edge_index
                entry = {'seconds': seconds[name]}
                entry['agreement'] = retrain_agreement(
                    m, paired, after, [k], edge_index=edges,
                    reference_edge_index=after.edge_index)
                # An ensemble's scores are not the original model's: no
                # change from them to measure.
                if not isinstance(m, ShardedRecommender):
                    entry['closure'] = change_closure(score_change(
                        model, data.edge_index, m, edges, union,
                        data.num_users), target)
                    if methods[name] is not None:
                        # The union as one request: what the stream's
                        # accumulated updates drifted from, if they did.
                        one = methods[name]().unlearn(union).model
                        entry['closure_one_request'] = change_closure(
                            score_change(model, data.edge_index, one,
                                         edges, union, data.num_users),
                            target)
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
    :obj:`config`, draws :obj:`num_requests` disjoint requests of its
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
    out = run_stream(model, data, record, train_config, requests, methods)
    return {'config': {**asdict(config), 'request': str(spec),
                       'train': json_value(config.train)},
            'machine': machine(config.device),
            'date': time.strftime('%Y-%m-%d'), 'data': repr(data),
            'train': {'epochs': record.epochs, 'seconds': record.wall_time},
            **out}


def format_stream(report: Dict[str, Any]) -> str:
    r"""A Markdown table of a stream's report: per checkpoint and method,
    cumulative seconds (the paired retrain's own), the closure (and in one
    request), NDCG@20, the agreement with the paired retrain and the MIA
    AUC."""
    lines = ['| after | forgotten | method | seconds | closure (one '
             'request) | ndcg@20 | top20 agreement (ndcg) | MIA auc |',
             '|---|---|---|---|---|---|---|---|']
    for row in report['checkpoints']:
        for name, entry in row['methods'].items():
            seconds = (row['paired_retrain_seconds'] if name ==
                       'paired-retrain' else entry['seconds'])
            closure = '' if 'closure' not in entry else (
                f"{entry['closure']:.2f}" + (
                    f" ({entry['closure_one_request']:.2f})"
                    if 'closure_one_request' in entry else ''))
            agreement = entry.get('agreement', {}).get('ndcg@20')
            lines.append(
                f"| {row['after']} | {row['forgotten']} | {name} | "
                f"{seconds:.3g} | {closure} | "
                f"{entry['test']['ndcg@20']:.4f} | "
                f"{'' if agreement is None else f'{agreement:.3f}'} | "
                f"{entry['mia_auc']:.3f} |")
    return '\n'.join(lines)
