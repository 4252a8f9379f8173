r"""Where the gap to retraining sits: the training run's own response to a
request, traced along the request's weight.

A researcher's PyG loop (``LightGCN``, ``recommendation_loss`` with
``lambda_reg`` and ``node_id``, Adam, batches, fresh uniform negatives) is
trained with the request's pairs at weight :math:`w`: their BPR terms,
their nodes' share of the batch's L2 and their edges in the propagation
scaled by :math:`w` (each batch's loss is the weighted mean, so
:math:`w = 1` is the original run and :math:`w = 0` exactly the paired
retrain: same seed, batches and negatives, without the request).  From the
scores :math:`s(w)` it reports, against the paired retrain's change
:math:`s(0) - s(1)`:

* ``first-order``: :math:`(s(1 - h) - s(1)) / h` (``--h``, 0.1), the exact
  first-order response of the run, which any linearisation at the trained
  model can at best reproduce;
* ``secant-W``: :math:`(s(W) - s(1)) / (1 - W)` for each ``--weights`` W;
* the package's update through the front door
  (:func:`~torch_geometric_unlearn.unlearn.recipe.from_training_loop` with
  the optimiser and the last epoch's negatives), one per ``--variants``:
  ``ifru`` (the default), ``ifru-exact`` (the kept examples' averaged
  change over every item instead of a sample), ``ifru-segments`` (with a
  :class:`TrajectoryRecorder` of ``--segments`` snapshots kept by the
  original run), ``ifru-previous`` (the default before the sampler's
  average covered every example), ``ifru-newton`` (the Newton step,
  forced), ``ifru-frozen`` (no average: the frozen negatives), for the
  GNN loops ``ifru-negK`` (K negatives per pair, the default 16),
  ``ifru-nocheck`` (the default without the certificate's check on the
  draws, for its cost) and ablations; each with its certificate's figures
  and flags;
* ``drop-edges``: the parameters kept, the new graph used;

each on the forgotten pairs, on probe pairs (a request's users with random
items, random users with its items) and on neighbour pairs (the remaining
training pairs sharing a user or an item with it), as closure against the
seeds' mean paired change (1 = the paired retrain's, 0 = no change), and
as the cosine and norm ratio against the same seed's paired change
(direction right and length wrong is a different failure from a missing
term).  The noise floor is the closure between two seeds' paired changes.
Every update's certificate is kept, with one candidate check that needs no
retrain, the neighbours' mean BPR loss before and after (it barely moved,
even for updates that hurt them).

``--model sage`` or ``gcn`` trains a researcher's GNN link predictor
instead (two :class:`SAGEConv` or :class:`GCNConv` over an
:class:`~torch.nn.Embedding`, dot-product scores, BPR with fresh uniform
negatives, Adam with ``--weight-decay``; the request's weight scales its
BPR terms and its edges in the aggregation), unlearned through the same
front door (the autograd backend); ``--lambda-reg 0 --node-id 0`` there.
``--model hetero`` does the same for a :func:`to_hetero` recommender
(:class:`HeteroSAGE`), unlearned as a :class:`HeteroLinkModel`.

``--optimizer sgd`` trains with SGD and momentum instead;
``--optimizer adam-frozen`` replays the original run's second moments in
every perturbed run (:math:`\hat v` as the original had it at each step),
so that what remains of the gap is not Adam's normalisation.

The loop propagates with a normalised CSR adjacency (PyG's ``LGConv``
computes the same products, eight times slower on this box); runs are kept
in ``--cache`` so that other steps can be tried on the same models.

    python benchmarks/weight_path.py --dataset ml-100k --epochs 45 \
        --data-dir ../shared/data --lambda-reg 1e-4 --threads 1 \
        --out benchmarks/results/weight_path/ml-100k_1e-4.json
"""
import argparse
import copy
import hashlib
import json
import os
import platform
import sys
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.nn import GCNConv, LightGCN, SAGEConv, to_hetero

from torch_geometric_unlearn import (HeteroLinkModel, IFRUConfig,
                                     PruningConfig, Recipe,
                                     TrajectoryRecorder, from_training_loop)
from torch_geometric_unlearn.data.datasets import load_dataset, synthetic
from torch_geometric_unlearn.data.deletion import (item_interactions,
                                                   random_interactions,
                                                   random_users,
                                                   user_interactions)
from torch_geometric_unlearn.data.interactions import pair_keys
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         noise_floor,
                                                         probe_pairs)
from torch_geometric_unlearn.evaluation.metrics import unseen_pairs
from torch_geometric_unlearn.influence import SolverError
from torch_geometric_unlearn.unlearn.certificate import auc_of

REQUEST_SEED = 100


class OwnLoop:
    r"""PyG's LightGCN recipe as a plain loop, with a weight per training
    pair (1 = as trained, 0 = left out)."""
    def __init__(self, data, args):
        self.data, self.args = data, args
        self.num_users, self.num_items = data.num_users, data.num_items
        self.pos = torch.stack([data.train_index[0],
                                data.train_index[1] + data.num_users])
        self.num = self.pos.size(1)
        self.edge_index = torch.cat([self.pos, self.pos.flip(0)], 1)

    def adjacency(self, weight: Optional[Tensor]) -> Tensor:
        r"""The symmetrically normalised adjacency (LGConv's) with each
        pair's edges weighted, as a CSR tensor."""
        n = self.num_users + self.num_items
        w = (torch.ones(self.num) if weight is None else weight).double()
        w = torch.cat([w, w])
        deg = torch.zeros(n, dtype=torch.float64).index_add_(
            0, self.edge_index[0], w)
        inv = deg.pow(-0.5).masked_fill_(deg == 0, 0)
        value = inv[self.edge_index[0]] * w * inv[self.edge_index[1]]
        return torch.sparse_coo_tensor(self.edge_index, value.float(),
                                       (n, n)).coalesce().to_sparse_csr()

    def final(self, emb: Tensor, adj: Tensor) -> Tensor:
        r"""LightGCN's output embeddings: the mean of the layers."""
        layers = self.args.layers
        x, out = emb, emb / (layers + 1)
        for _ in range(layers):
            x = adj @ x
            out = out + x / (layers + 1)
        return out

    def state(self, model) -> Tensor:
        r"""What :meth:`scores` reads of a model: its embedding table."""
        return model.embedding.weight.detach()

    def scores(self, emb: Tensor, adj: Tensor, pairs: Tensor) -> Tensor:
        with torch.no_grad():
            f = self.final(emb, adj).double()
        return (f[pairs[0]] * f[pairs[1] + self.num_users]).sum(1)

    def epochs(self, gen: torch.Generator):
        r"""Each epoch's fresh uniform negatives :obj:`[num]` (node ids)
        and its shuffled batches of pair indices."""
        nu, ni = self.num_users, self.num_items
        for _ in range(self.args.epochs):
            order = torch.randperm(self.num, generator=gen)
            negatives = torch.randint(nu, nu + ni, (self.num, ),
                                      generator=gen)
            yield negatives, order.split(self.args.batch_size)

    def fit(self, seed: int, weight: Optional[Tensor] = None,
            record_v: bool = False, replay_v: Optional[List[Tensor]] = None,
            snapshots: int = 0) -> Dict:
        r"""Trains from :obj:`seed`; returns the model, the optimiser, the
        last epoch's negatives, (:obj:`record_v`) Adam's second moment
        after every step and (:obj:`snapshots`) a
        :class:`TrajectoryRecorder` of that many snapshots, one taken after
        every epoch."""
        args, nu, ni = self.args, self.num_users, self.num_items
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = LightGCN(nu + ni, args.dim, args.layers)
        emb = model.embedding.weight
        if args.optimizer == 'sgd':
            opt = torch.optim.SGD(model.parameters(), lr=args.sgd_lr,
                                  momentum=0.9)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        adj = self.adjacency(weight)
        moments, m, steps = [], torch.zeros_like(emb), 0
        recorder = (TrajectoryRecorder(emb, opt, snapshots) if snapshots
                    else None)
        for negatives, batches in self.epochs(gen):
            for index in batches:
                pos = self.pos[:, index]
                label = torch.cat([pos, torch.stack([pos[0],
                                                     negatives[index]])], 1)
                f = self.final(emb, adj)
                score = (f[label[0]] * f[label[1]]).sum(1)
                pos_rank, neg_rank = score.chunk(2)
                c = (torch.ones(index.numel()) if weight is None else
                     weight[index])
                total = c.sum()
                loss = -(c * F.logsigmoid(pos_rank - neg_rank)).sum() / total
                if args.lambda_reg:
                    if args.node_id:
                        share = torch.zeros(nu + ni).index_reduce_(
                            0, label.reshape(-1), c.repeat(4), 'amax',
                            include_self=False)
                        reg = (share.view(-1, 1) * emb.pow(2)).sum()
                    else:
                        reg = emb.pow(2).sum()
                    loss = loss + args.lambda_reg * reg / total
                opt.zero_grad()
                loss.backward()
                steps += 1
                if replay_v is not None:
                    self._adam_step(emb, m, replay_v[steps - 1], steps)
                else:
                    opt.step()
                if args.optimizer == 'sgd':  # SGD keeps no step count
                    opt.state[emb]['step'] = torch.tensor(float(steps))
                if record_v:
                    moments.append(opt.state[emb]['exp_avg_sq'].clone())
            if recorder is not None:
                recorder.snapshot()
        return {'model': model, 'optimizer': opt, 'negatives': negatives,
                'moments': moments, 'snapshots': (recorder.snapshots
                                                  if recorder else None)}

    def _adam_step(self, param: Tensor, m: Tensor, v: Tensor, step: int):
        # torch.optim.Adam's update with the recorded second moment.
        beta1, beta2 = 0.9, 0.999
        with torch.no_grad():
            m.lerp_(param.grad, 1 - beta1)
            denom = (v.sqrt() / (1 - beta2**step)**0.5).add_(1e-8)
            param.addcdiv_(m, denom, value=-self.args.lr / (1 - beta1**step))


class SAGE(torch.nn.Module):
    r"""A researcher's GraphSAGE link predictor: two :class:`SAGEConv`
    (mean aggregation) over an :class:`torch.nn.Embedding`, scored by the
    dot product, called as :obj:`model(edge_index, edge_label_index)`."""
    def __init__(self, num_nodes: int, dim: int):
        super().__init__()
        self.embedding = torch.nn.Embedding(num_nodes, dim)
        torch.nn.init.normal_(self.embedding.weight, std=0.1)
        self.conv1, self.conv2 = SAGEConv(dim, dim), SAGEConv(dim, dim)

    def final(self, adj: Tensor) -> Tensor:
        r"""The output embeddings with :obj:`adj` the row-normalised
        (mean-aggregating) adjacency, edges weighted."""
        x = self.embedding.weight
        for k, conv in enumerate((self.conv1, self.conv2)):
            x = conv.lin_l(adj @ x) + conv.lin_r(x)
            if k == 0:
                x = x.relu()
        return x

    def forward(self, edge_index: Tensor, edge_label_index: Tensor
                ) -> Tensor:
        x = self.conv1(self.embedding.weight, edge_index).relu()
        x = self.conv2(x, edge_index)
        return (x[edge_label_index[0]] * x[edge_label_index[1]]).sum(-1)


class GCN(SAGE):
    r"""The same link predictor with two :class:`GCNConv` (symmetric
    normalisation, self-loops) instead of :class:`SAGEConv`."""
    def __init__(self, num_nodes: int, dim: int):
        super().__init__(num_nodes, dim)
        self.conv1, self.conv2 = GCNConv(dim, dim), GCNConv(dim, dim)

    def final(self, adj: Tensor) -> Tensor:
        r"""The output embeddings with :obj:`adj` the normalised adjacency
        with self-loops, edges weighted."""
        x = self.embedding.weight
        for k, conv in enumerate((self.conv1, self.conv2)):
            x = adj @ conv.lin(x) + conv.bias
            if k == 0:
                x = x.relu()
        return x


class _Encoder(torch.nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv1, self.conv2 = SAGEConv(dim, dim), SAGEConv(dim, dim)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.conv2(self.conv1(x, edge_index).relu(), edge_index)


class HeteroSAGE(torch.nn.Module):
    r"""A researcher's :func:`to_hetero` recommender, the shape of PyG's
    ``examples/hetero/recommender_system.py``: user and item
    :class:`~torch.nn.Embedding` tables, two :class:`SAGEConv` made
    heterogeneous over ('user', 'rates', 'item') and its reverse, scored by
    the dot product; called as :obj:`model(x_dict, edge_index_dict,
    edge_label_index)` and unlearned as a :class:`HeteroLinkModel`."""
    def __init__(self, num_users: int, num_items: int, dim: int):
        super().__init__()
        self.user = torch.nn.Embedding(num_users, dim)
        self.item = torch.nn.Embedding(num_items, dim)
        for table in (self.user, self.item):
            torch.nn.init.normal_(table.weight, std=0.1)
        self.encoder = to_hetero(_Encoder(dim), hetero_template(
            num_users, num_items).metadata(), aggr='sum')

    def final(self, adj: Tensor) -> Tensor:
        r"""The output embeddings, users' then items', with :obj:`adj` the
        row-normalised (mean-aggregating) adjacency, edges weighted: each
        type's convolution is :class:`SAGEConv`'s
        :math:`W_l \bar x_{N(v)} + b + W_r x_v`."""
        users = self.user.num_embeddings
        x = torch.cat([self.user.weight, self.item.weight])
        for k, name in enumerate(('conv1', 'conv2')):
            convs, agg = getattr(self.encoder, name), adj @ x
            to_user = convs['item__rev_rates__user']
            to_item = convs['user__rates__item']
            x = torch.cat([
                to_user.lin_l(agg[:users]) + to_user.lin_r(x[:users]),
                to_item.lin_l(agg[users:]) + to_item.lin_r(x[users:])])
            if k == 0:
                x = x.relu()
        return x

    def forward(self, x_dict, edge_index_dict, edge_label_index: Tensor
                ) -> Tensor:
        z = self.encoder({'user': self.user.weight,
                          'item': self.item.weight}, edge_index_dict)
        row, col = edge_label_index
        return (z['user'][row] * z['item'][col]).sum(-1)


def hetero_template(num_users: int, num_items: int) -> HeteroData:
    data = HeteroData()
    data['user'].num_nodes = num_users
    data['item'].num_nodes = num_items
    data['user', 'rates', 'item'].edge_index = torch.empty(2, 0).long()
    data['item', 'rev_rates', 'user'].edge_index = torch.empty(2, 0).long()
    return data


class LinkLoop(OwnLoop):
    r"""The same loop for :class:`SAGE` or :class:`GCN` (``--model``): BPR
    with fresh uniform negatives, Adam with :obj:`--weight-decay`; a pair's
    weight scales its BPR term and its edges in the aggregation."""
    def adjacency(self, weight: Optional[Tensor]) -> Tensor:
        if self.args.model == 'gcn':
            return self._gcn_adjacency(weight)
        n = self.num_users + self.num_items
        w = (torch.ones(self.num) if weight is None else weight).double()
        w = torch.cat([w, w])
        deg = torch.zeros(n, dtype=torch.float64).index_add_(
            0, self.edge_index[1], w)
        inv = (1 / deg).masked_fill_(deg == 0, 0)
        # Row i (a target) averages its sources j.
        return torch.sparse_coo_tensor(
            self.edge_index.flip(0), (inv[self.edge_index[1]] * w).float(),
            (n, n)).coalesce().to_sparse_csr()

    def _gcn_adjacency(self, weight: Optional[Tensor]) -> Tensor:
        # GCNConv's D^-1/2 (A + I) D^-1/2 with each pair's edges weighted.
        n = self.num_users + self.num_items
        w = (torch.ones(self.num) if weight is None else weight).double()
        loops = torch.arange(n).repeat(2, 1)
        index = torch.cat([self.edge_index, loops], 1)
        w = torch.cat([w, w, torch.ones(n, dtype=torch.float64)])
        deg = torch.zeros(n, dtype=torch.float64).index_add_(0, index[1], w)
        inv = deg.pow(-0.5)
        return torch.sparse_coo_tensor(
            index.flip(0), (inv[index[0]] * w * inv[index[1]]).float(),
            (n, n)).coalesce().to_sparse_csr()

    def state(self, model) -> torch.nn.Module:
        return getattr(model, 'model', model)

    def scores(self, model, adj: Tensor, pairs: Tensor) -> Tensor:
        with torch.no_grad():
            f = self.state(model).final(adj).double()
        return (f[pairs[0]] * f[pairs[1] + self.num_users]).sum(1)

    def fit(self, seed: int, weight: Optional[Tensor] = None,
            record_v: bool = False, replay_v=None, snapshots: int = 0
            ) -> Dict:
        args, nu, ni = self.args, self.num_users, self.num_items
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = (HeteroSAGE(nu, ni, args.dim) if args.model == 'hetero' else
                 (GCN if args.model == 'gcn' else SAGE)(nu + ni, args.dim))
        opt = torch.optim.Adam(model.parameters(), lr=args.lr,
                               weight_decay=args.weight_decay)
        adj = self.adjacency(weight)
        for negatives, batches in self.epochs(gen):
            for index in batches:
                pos = self.pos[:, index]
                f = model.final(adj)
                pos_rank = (f[pos[0]] * f[pos[1]]).sum(1)
                neg_rank = (f[pos[0]] * f[negatives[index]]).sum(1)
                c = (torch.ones(index.numel()) if weight is None else
                     weight[index])
                loss = -(c * F.logsigmoid(pos_rank - neg_rank)).sum() / \
                    c.sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        return {'model': model, 'optimizer': opt, 'negatives': negatives,
                'moments': [], 'snapshots': None}


def request(data, spec: str) -> Tensor:
    kind, _, amount = spec.partition(':')
    if kind == 'random':
        return random_interactions(data, fraction=float(amount),
                                   seed=REQUEST_SEED)
    if kind == 'users':
        return user_interactions(data, random_users(data, int(amount),
                                                    seed=REQUEST_SEED))
    if kind == 'popular':
        degree = torch.bincount(data.train_index[1], minlength=data.num_items)
        return item_interactions(data, degree.argsort(
            descending=True, stable=True)[:int(amount)])
    raise SystemExit(f'unknown request {spec!r}')


def neighbour_pairs(data, pairs: Tensor, keep: Tensor, num: int = 20_000
                    ) -> Tensor:
    r"""The remaining training pairs that share a user or an item with the
    request (a popular item's users' other items, a random request's
    users' and items' other interactions), at most :obj:`num` drawn."""
    train = data.train_index[:, keep]
    near = (torch.isin(train[0], pairs[0]) | torch.isin(train[1], pairs[1]))
    near = train[:, near]
    if near.size(1) > num:
        gen = torch.Generator().manual_seed(REQUEST_SEED)
        near = near[:, torch.randperm(near.size(1), generator=gen)[:num]]
    return near


def forgotten_auc(loop, emb: Tensor, adj: Tensor, pairs: Tensor,
                  unseen: Tensor) -> float:
    r"""AUC of the forgotten :obj:`pairs` against their users' never-seen
    pairs :obj:`unseen` (the certificate's ``forgotten_auc``), scored by
    the loop's model with embeddings :obj:`emb` on :obj:`adj`."""
    score = loop.scores(emb, adj, torch.cat([pairs, unseen], 1))
    return auc_of(score[:pairs.size(1)], score[pairs.size(1):])


def compare(change: Tensor, own: Tensor, mean: Tensor) -> Dict[str, float]:
    return {'closure': change_closure(change, mean),
            'closure_own': change_closure(change, own),
            'cosine': float(F.cosine_similarity(change, own, dim=0)),
            'norm_ratio': float(change.norm() / own.norm())}


def degree_groups(data, pairs: Tensor) -> Dict[str, Tensor]:
    r"""The forgotten pairs by their item's training degree: where on the
    tail the gap sits (an item that loses all its edges changes most)."""
    degree = torch.bincount(data.train_index[1], minlength=data.num_items)
    removed = torch.bincount(pairs[1], minlength=data.num_items)
    d, r = degree[pairs[1]], removed[pairs[1]]
    return {'item loses all': r == d,
            'item degree <= 10': (r < d) & (d <= 10),
            'item degree 11-50': (d > 10) & (d <= 50),
            'item degree > 50': d > 50}


class Runs:
    r"""Trained runs, kept on disk by their settings."""
    def __init__(self, loop: OwnLoop, folder: Optional[str]):
        self.loop, self.folder = loop, folder
        if folder:
            os.makedirs(folder, exist_ok=True)

    def get(self, seed: int, spec: Optional[str], w: float,
            keep: Optional[Tensor] = None, original=None) -> Dict:
        args = self.loop.args
        snapshots = args.segments if spec is None else 0
        key = json.dumps([args.dataset, args.dim, args.layers, args.lr,
                          args.sgd_lr, args.batch_size, args.epochs,
                          args.lambda_reg, args.node_id, args.optimizer,
                          seed, spec, w] + ([snapshots] if snapshots else []) +
                         ([args.model, args.weight_decay]
                          if args.model != 'lightgcn' else []))
        path = (os.path.join(self.folder, hashlib.sha1(
            key.encode()).hexdigest()[:16] + '.pt') if self.folder else None)
        frozen = args.optimizer == 'adam-frozen'
        # The frozen runs replay the original's second moments, which are
        # too large to keep: that original is trained again.
        if path and os.path.exists(path) and not (frozen and spec is None):
            return torch.load(path, weights_only=False)
        weight = None
        if keep is not None:
            weight = torch.ones(self.loop.num)
            weight[~keep] = w
        start = time.perf_counter()
        run = self.loop.fit(
            seed, weight, record_v=frozen and spec is None,
            replay_v=original['moments'] if frozen and spec else None,
            snapshots=snapshots)
        run['seconds'] = time.perf_counter() - start
        print(f'  trained seed {seed} {spec or "original"} w={w:g} in '
              f'{run["seconds"]:.1f} s', flush=True)
        if path:
            kept = {k: v for k, v in run.items() if k != 'moments'}
            torch.save(kept, path)
        return run


#: IFRU's variants: (config, whether the optimiser is passed, whether the
#: recorded snapshots are).
VARIANTS = {
    'ifru': (IFRUConfig(), True, False),
    'ifru-segments': (IFRUConfig(), True, True),
    # The kept examples' averaged change over every item, not a sample.
    'ifru-exact': (IFRUConfig(expected_samples=None), True, False),
    'ifru-nospill': (IFRUConfig(spillover=False), True, False),
    # Rows of nodes left only as negatives keep their trained values.
    'ifru-noreset': (IFRUConfig(reset_unsupported=False), True, False),
    'ifru-newton': (IFRUConfig(step='newton'), True, False),
    # The default before the sampler's average covered every example.
    'ifru-previous': (IFRUConfig(expected_negatives='forgotten'), True,
                      False),
    'ifru-frozen': (IFRUConfig(expected_negatives=False), True, False),
    'ifru-nopruning': (IFRUConfig(pruning=None), True, False),
    'ifru-residual': (IFRUConfig(), False, False),
    # The default without the certificate's check on the draws (for its
    # cost).
    'ifru-nocheck': (IFRUConfig(check_draws=False), True, False),
    'ifru-previous-nocheck': (IFRUConfig(expected_negatives='forgotten',
                                         check_draws=False), True, False),
    # GNN loops only: K negatives per pair in the gradients (the frozen one
    # and K - 1 drawn from the sampler; the default 16, 1 the default
    # before), at most 4 of them in the curvature (the default) or C.
    'ifru-neg1': (IFRUConfig(sampled_negatives=1), True, False),
    'ifru-neg4': (IFRUConfig(sampled_negatives=4), True, False),
    'ifru-neg8': (IFRUConfig(sampled_negatives=8), True, False),
    # The 'noisy_draw' flag's advice past the default: more negatives.
    'ifru-neg64': (IFRUConfig(sampled_negatives=64), True, False),
    # Rows of the request's ends alone (importance at least 0.1, against
    # the default's 90% of the candidates).
    'ifru-ends': (IFRUConfig(pruning=PruningConfig('threshold', 0.1)), True,
                  False),
    'ifru-curv1': (IFRUConfig(curvature_negatives=1), True, False),
    'ifru-curv16': (IFRUConfig(curvature_negatives=16), True, False),
}


def unlearn_ifru(loop: OwnLoop, run: Dict, forget: Tensor,
                 variant: str = 'ifru'):
    args = loop.args
    recipe = Recipe(lambda_reg=args.lambda_reg, batch_size=args.batch_size,
                    node_id=bool(args.node_id),
                    weight_decay=args.weight_decay)
    config, with_optimizer, segments = VARIANTS[variant]
    model = run['model']
    if isinstance(model, HeteroSAGE):
        model = HeteroLinkModel(model, hetero_template(loop.num_users,
                                                       loop.num_items))
    unlearner = from_training_loop(
        model, loop.edge_index, loop.num_users, recipe,
        num_items=loop.num_items,
        edge_label_index=loop.pos, negatives=run['negatives'],
        optimizer=run['optimizer'] if with_optimizer else None,
        trajectory=run['snapshots'] if segments else None,
        config=copy.deepcopy(config))
    start = time.perf_counter()
    try:
        result = unlearner.unlearn(edge_index=forget)
    except SolverError as error:  # recorded, as a user would see it
        return None, {'error': str(error)}
    seconds = time.perf_counter() - start
    cert = result.certificate
    return loop.state(result.model), {
        'seconds': seconds, 'certificate': str(cert), 'flags': cert.flags,
        'figures': {k: v for k, v in vars(cert).items()
                    if isinstance(v, (int, float, str)) or v is None}}


def neighbour_loss(loop: OwnLoop, run: Dict, emb: Tensor, adj: Tensor,
                   neighbours: Tensor) -> float:
    r"""The mean BPR loss of the request's neighbour pairs (remaining
    training pairs sharing a user or an item with it) against the last
    epoch's negatives: a candidate check that needs no retrain."""
    num_items = loop.num_items
    keys = pair_keys(torch.stack([loop.pos[0], loop.pos[1] - loop.num_users]),
                     num_items)
    order = torch.argsort(keys)
    index = order[torch.searchsorted(keys[order],
                                     pair_keys(neighbours, num_items))]
    negatives = run['negatives'][index] - loop.num_users
    pos = loop.scores(emb, adj, neighbours)
    neg = loop.scores(emb, adj, torch.stack([neighbours[0], negatives]))
    return float(F.softplus(neg - pos).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', default='ml-100k',
                        choices=['ml-100k', 'lastfm', 'synthetic'])
    parser.add_argument('--data-dir', default=os.environ.get('TGU_DATA_DIR'))
    parser.add_argument('--model', default='lightgcn',
                        choices=['lightgcn', 'sage', 'gcn', 'hetero'])
    parser.add_argument('--weight-decay', type=float, default=0.0,
                        help="Adam's weight decay (the SAGE and GCN loops' "
                        'regulariser)')
    parser.add_argument('--layers', type=int, default=2)
    parser.add_argument('--dim', type=int, default=64)
    parser.add_argument('--lr', type=float, default=5e-3)
    parser.add_argument('--sgd-lr', type=float, default=20.0)
    parser.add_argument('--batch-size', type=int, default=2048)
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument('--lambda-reg', type=float, default=1e-4)
    parser.add_argument('--node-id', type=int, default=1, choices=[0, 1])
    parser.add_argument('--optimizer', default='adam',
                        choices=['adam', 'sgd', 'adam-frozen'])
    parser.add_argument('--requests', nargs='+',
                        default=['random:0.01', 'popular:1', 'users:5'])
    parser.add_argument('--weights', type=float, nargs='*', default=[0.5],
                        help='secants from these weights')
    parser.add_argument('--h', type=float, default=0.1,
                        help='the first-order response from w = 1 - h')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--path-seeds', type=int, nargs='+', default=[0],
                        help='seeds whose first-order response and secants '
                        'are trained')
    parser.add_argument('--variants', nargs='*',
                        default=['ifru-previous', 'ifru', 'ifru-segments'],
                        choices=list(VARIANTS))
    parser.add_argument('--segments', type=int, default=3,
                        help='snapshots the original run keeps (a '
                        'TrajectoryRecorder), for ifru-segments')
    parser.add_argument('--cache', default='/tmp/weight_path_cache')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    if len(args.seeds) < 2:
        parser.error('the noise floor needs two seeds')
    torch.set_num_threads(args.threads)
    data = (synthetic(1000, 1500, 30_000, seed=0)
            if args.dataset == 'synthetic' else
            load_dataset(args.dataset, args.data_dir))
    loop = (OwnLoop if args.model == 'lightgcn' else LinkLoop)(data, args)
    runs = Runs(loop, args.cache)
    start = time.perf_counter()
    originals = {seed: runs.get(seed, None, 1.0) for seed in args.seeds}
    report = {'command': ' '.join(['python'] + sys.argv),
              'config': vars(args), 'data': repr(data),
              'machine': {'cpu': platform.processor() or platform.machine(),
                          'threads': args.threads,
                          'torch': torch.__version__},
              'date': time.strftime('%Y-%m-%d'), 'requests': []}
    for spec in args.requests:
        pairs = request(data, spec)
        keep = ~torch.isin(pair_keys(data.train_index, data.num_items),
                           pair_keys(pairs, data.num_items))
        forget = torch.stack([pairs[0], pairs[1] + data.num_users])
        sets = {'forgotten': pairs, 'probe': probe_pairs(
            data, pairs, seed=REQUEST_SEED),
            'neighbours': neighbour_pairs(data, pairs, keep)}
        groups = degree_groups(data, pairs)
        unseen = unseen_pairs(data, pairs)
        adj_old, adj_new = loop.adjacency(None), loop.adjacency(
            keep.float())
        changes: Dict[int, Dict[str, Dict[str, Tensor]]] = {}
        extra: Dict[int, Dict] = {}
        aucs: Dict[int, Dict[str, float]] = {}
        for seed in args.seeds:
            original, info = originals[seed], {}
            emb = loop.state(original['model'])
            before = {k: loop.scores(emb, adj_old, p)
                      for k, p in sets.items()}

            def change(e: Tensor, adj: Tensor) -> Dict[str, Tensor]:
                return {k: loop.scores(e, adj, p) - before[k]
                        for k, p in sets.items()}

            paired = runs.get(seed, spec, 0.0, keep, original)
            paired_emb = loop.state(paired['model'])
            info['paired-retrain'] = {'seconds': paired['seconds']}
            auc = {'original': forgotten_auc(loop, emb, adj_old, pairs,
                                             unseen),
                   'paired-retrain': forgotten_auc(loop, paired_emb, adj_new,
                                                   pairs, unseen),
                   'drop-edges': forgotten_auc(loop, emb, adj_new, pairs,
                                               unseen)}
            out = {'paired': change(paired_emb, adj_new),
                   'drop-edges': change(emb, adj_new)}
            if seed in args.path_seeds:
                for w in [1 - args.h] + args.weights:
                    run = runs.get(seed, spec, w, keep, original)
                    weight = torch.ones(loop.num)
                    weight[~keep] = w
                    diff = change(loop.state(run['model']),
                                  loop.adjacency(weight))
                    name = ('first-order' if w == 1 - args.h else
                            f'secant-{w:g}')
                    out[name] = {k: v / (1 - w) for k, v in diff.items()}
            loss_before = neighbour_loss(loop, original, emb, adj_old,
                                         sets['neighbours'])
            info['paired-retrain']['neighbour_loss'] = [
                loss_before, neighbour_loss(
                    loop, original, paired_emb, adj_new,
                    sets['neighbours'])]
            info['drop-edges'] = {'neighbour_loss': [
                loss_before, neighbour_loss(loop, original, emb, adj_new,
                                            sets['neighbours'])]}
            for variant in args.variants:
                new_emb, info[variant] = unlearn_ifru(loop, original, forget,
                                                      variant)
                if new_emb is None:
                    continue
                out[variant] = change(new_emb, adj_new)
                auc[variant] = forgotten_auc(loop, new_emb, adj_new, pairs,
                                             unseen)
                info[variant]['neighbour_loss'] = [loss_before, neighbour_loss(
                    loop, original, new_emb, adj_new, sets['neighbours'])]
            changes[seed], extra[seed], aucs[seed] = out, info, auc
        mean = {k: torch.stack([changes[s]['paired'][k]
                                for s in args.seeds]).mean(0) for k in sets}
        entry = {'request': spec, 'size': pairs.size(1),
                 'probe_pairs': sets['probe'].size(1),
                 'neighbour_pairs': sets['neighbours'].size(1),
                 'noise_floor': {k: noise_floor([changes[s]['paired'][k]
                                                 for s in args.seeds])
                                 for k in sets},
                 'seeds': {}}
        for seed in args.seeds:
            own = changes[seed]['paired']
            entry['seeds'][seed] = {
                name: {k: compare(v[k], own[k], mean[k]) for k in sets}
                for name, v in changes[seed].items() if name != 'paired'}
            for name, v in changes[seed].items():
                if name == 'paired':
                    continue
                entry['seeds'][seed][name]['groups'] = {
                    group: dict(compare(v['forgotten'][mask],
                                        own['forgotten'][mask],
                                        mean['forgotten'][mask]),
                                size=int(mask.sum()))
                    for group, mask in groups.items() if mask.sum() > 1}
            for name, info in extra[seed].items():
                entry['seeds'][seed].setdefault(name, {})['info'] = info
            entry['seeds'][seed]['forgotten_auc'] = aucs[seed]
        report['requests'].append(entry)
        print(table(entry), flush=True)
    report['seconds'] = time.perf_counter() - start
    if args.out:
        write_report(args.out, report)


def write_report(path: str, report: Dict):
    r"""Writes :obj:`report` as JSON to :obj:`path`, making its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(report, f, indent=1)
    print(f'wrote {path}')


def table(entry: Dict) -> str:
    floor = entry['noise_floor']
    keys = ('forgotten', 'probe', 'neighbours')
    lines = [f"\n{entry['request']} ({entry['size']} pairs); noise floor " +
             ', '.join(f'{k} {floor[k]:.2f}' for k in keys),
             '| seed | method | ' + ' | '.join(
                 f'{k}: closure / own / cosine / norm' for k in keys) + ' |',
             '|---|---|---|---|---|']
    for seed, methods in entry['seeds'].items():
        for name, sets in methods.items():
            if 'forgotten' not in sets:
                continue
            cells = [' / '.join(f'{sets[k][m]:.2f}' for m in (
                'closure', 'closure_own', 'cosine', 'norm_ratio'))
                for k in keys]
            info = sets.get('info', {})
            if 'seconds' in info:
                cells.append(f"{info['seconds']:.2f} s, "
                             f"{info['certificate'].split(': ')[-1]}")
            lines.append(f'| {seed} | {name} | ' + ' | '.join(cells) + ' |')
    first = next(iter(entry['seeds'].values()))
    names = [n for n in first if 'groups' in first[n]]
    if names:
        groups = list(first[names[0]]['groups'])
        lines += ['', 'forgotten pairs by item degree, seed ' + str(next(
            iter(entry['seeds']))) + ': closure own / cosine / norm',
            '| method | ' + ' | '.join(
                f"{g} ({first[names[0]]['groups'][g]['size']})"
                for g in groups) + ' |', '|---|' + '---|' * len(groups)]
        for name in names:
            lines.append(f'| {name} | ' + ' | '.join(' / '.join(
                f"{first[name]['groups'][g][m]:.2f}" for m in (
                    'closure_own', 'cosine', 'norm_ratio'))
                for g in groups) + ' |')
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
