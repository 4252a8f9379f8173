r"""Where a whole item's update stops on an own loop: the restarted row's
horizon.

An item whose every interaction is forgotten restarts from zero and is
stepped over its horizon (see ``IFRUConfig.reset_unsupported``).  The
horizon comes from the original run's Adam state, whose second moments
for that row were built while the item was popular.  This script
measures, on ``weight_path.py``'s own-loop LightGCN (its cached runs, or
trained as it trains them), (1) the row's Adam :math:`\sqrt{v}` at the end
of the original run and of the paired retrain, beside the request's users'
rows, and what a rebuilt second moment would read: per batch of
:math:`B` examples, the row is the sampled negative of each with
probability :math:`1/I`, so its mean gradient's second moment is about
:math:`E[c^2]/(BI) + (E[c]/I)^2` for the per-example gradients
:math:`c_e = \sigma(s_{ur} - s_{up}) \, \partial s_{ur}/\partial
\text{row}` (taken at the restart point: the original model with the row
at zero, on the new graph; and at the paired retrain's end); and (2) the
update's closure of the paired retrain's change with
the restarted rows' horizon scaled by each ``--factors`` (1 = the
default), on the forgotten and probe pairs, against the two seeds' mean
paired change.

Example::

    python benchmarks/reset_horizon.py --dataset ml-100k --epochs 45 \
        --data-dir ../shared/data \
        --out benchmarks/results/reset_horizon/ml-100k_1e-4.json
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import weight_path as wp  # noqa: E402

from torch_geometric_unlearn import IFRUConfig, Recipe  # noqa: E402
from torch_geometric_unlearn.data.datasets import load_dataset  # noqa: E402
from torch_geometric_unlearn.data.interactions import pair_keys  # noqa: E402
from torch_geometric_unlearn.evaluation.fidelity import (  # noqa: E402
    probe_pairs)
from torch_geometric_unlearn.unlearn.recipe import (  # noqa: E402
    from_training_loop)


def adam_scale(optimizer, rows) -> float:
    r"""The mean :math:`\sqrt{v}` of Adam's second moments on :obj:`rows`
    of the embedding table."""
    state = next(iter(optimizer.state_dict()['state'].values()))
    return float(state['exp_avg_sq'][rows].sqrt().mean())


def rebuilt_scale(loop, emb: torch.Tensor, adj, pos: torch.Tensor,
                  row: int, batch_size: int, num_items: int) -> float:
    r"""The mean :math:`\sqrt{v}` Adam would keep for the isolated
    :obj:`row` (an item without edges) if it were only ever the uniform
    sampled negative of the examples :obj:`pos` (node ids), from the
    embeddings :obj:`emb` on the graph :obj:`adj`."""
    final = loop.final(emb, adj)
    user, item = pos
    margin = (final[user] * (final[row] - final[item])).sum(1)
    # The row reaches only its own output, by LightGCN's layer-0 weight.
    grad = torch.sigmoid(margin).view(-1, 1) * final[user] / (
        loop.args.layers + 1)
    second = (grad.pow(2).mean(0) / (batch_size * num_items) +
              (grad.mean(0) / num_items).pow(2))
    return float(second.sqrt().mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', default='ml-100k',
                        choices=['ml-100k', 'lastfm'])
    parser.add_argument('--data-dir', default=os.environ.get('TGU_DATA_DIR'))
    parser.add_argument('--epochs', type=int, default=45)
    parser.add_argument('--lambda-reg', type=float, default=1e-4)
    parser.add_argument('--request', default='popular:1')
    parser.add_argument('--factors', type=float, nargs='+',
                        default=[1, 3, 10, 30, 100])
    parser.add_argument('--cache', default='/tmp/weight_path_cache')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    # weight_path's own loop, at its defaults (its cache keys).
    loop_args = argparse.Namespace(
        dataset=args.dataset, data_dir=args.data_dir, model='lightgcn',
        weight_decay=0.0, layers=2, dim=64, lr=5e-3, sgd_lr=20.0,
        batch_size=2048, epochs=args.epochs, lambda_reg=args.lambda_reg,
        node_id=1, optimizer='adam', segments=3, cache=args.cache,
        threads=args.threads)
    data = load_dataset(args.dataset, args.data_dir)
    loop = wp.OwnLoop(data, loop_args)
    runs = wp.Runs(loop, args.cache)
    pairs = wp.request(data, args.request)
    keep = ~torch.isin(pair_keys(data.train_index, data.num_items),
                       pair_keys(pairs, data.num_items))
    forget = torch.stack([pairs[0], pairs[1] + data.num_users])
    sets = {'forgotten': pairs,
            'probe': probe_pairs(data, pairs, seed=wp.REQUEST_SEED)}
    adj_old, adj_new = loop.adjacency(None), loop.adjacency(keep.float())
    recipe = Recipe(lambda_reg=args.lambda_reg, batch_size=2048,
                    node_id=True)
    report = {'command': ' '.join(['python'] + sys.argv),
              'date': time.strftime('%Y-%m-%d'), 'config': vars(args),
              'seeds': {}}
    changes = {}
    for seed in (0, 1):
        original = runs.get(seed, None, 1.0)
        paired = runs.get(seed, args.request, 0.0, keep, original)
        emb = loop.state(original['model'])
        before = {k: loop.scores(emb, adj_old, p) for k, p in sets.items()}

        def change(e):
            return {k: loop.scores(e, adj_new, p) - before[k]
                    for k, p in sets.items()}
        out = {'paired': change(loop.state(paired['model'])),
               'drop-edges': change(emb)}
        items, users = torch.unique(forget[1]), torch.unique(forget[0])
        entry = {'adam_sqrt_v': {
            'restarted rows, original': adam_scale(original['optimizer'],
                                                   items),
            'restarted rows, paired retrain': adam_scale(
                paired['optimizer'], items),
            "request's users, original": adam_scale(original['optimizer'],
                                                    users),
            "request's users, paired retrain": adam_scale(
                paired['optimizer'], users)}}
        assert items.numel() == 1, 'the rebuilt moment takes one item'
        restart = emb.clone()
        restart[items] = 0
        kept = loop.pos[:, keep]
        entry['adam_sqrt_v']['restarted rows, rebuilt at the restart'] = \
            rebuilt_scale(loop, restart, adj_new, kept, int(items),
                          loop_args.batch_size, data.num_items)
        entry['adam_sqrt_v']["restarted rows, rebuilt at the retrain's "
                             "end"] = rebuilt_scale(
            loop, loop.state(paired['model']), adj_new, kept, int(items),
            loop_args.batch_size, data.num_items)
        for factor in args.factors:
            unlearner = from_training_loop(
                original['model'], loop.edge_index, loop.num_users, recipe,
                num_items=loop.num_items, edge_label_index=loop.pos,
                negatives=original['negatives'],
                optimizer=original['optimizer'], config=IFRUConfig())
            unlearner.horizon = unlearner.horizon.clone()
            unlearner.horizon[items] *= factor
            result = unlearner.unlearn(edge_index=forget)
            assert result.diagnostics['reset_rows'] == items.numel()
            out[f'horizon x{factor:g}'] = change(loop.state(result.model))
        changes[seed] = out
        report['seeds'][seed] = entry
        print(seed, entry, flush=True)
    mean = {k: (changes[0]['paired'][k] + changes[1]['paired'][k]) / 2
            for k in sets}
    for seed in (0, 1):
        closures = {name: {k: wp.compare(c[k], changes[seed]['paired'][k],
                                         mean[k]) for k in sets}
                    for name, c in changes[seed].items() if name != 'paired'}
        report['seeds'][seed]['closure'] = closures
        for name, c in closures.items():
            print(seed, name, ' '.join(
                f"{k} {c[k]['closure']:.2f} (norm {c[k]['norm_ratio']:.2f})"
                for k in sets), flush=True)
    if args.out:
        wp.write_report(args.out, report)


if __name__ == '__main__':
    main()
