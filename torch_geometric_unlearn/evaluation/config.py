r"""The settings of the benchmark (see
:mod:`~torch_geometric_unlearn.evaluation.benchmark`): which requests, which
methods, how many repeats; each validated on construction."""
import math
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

from torch_geometric_unlearn.training.trainer import TrainConfig

__all__ = ['RequestSpec', 'BenchmarkConfig', 'Protocol', 'METHODS',
           'DEFAULT_METHODS', 'ENSEMBLES', 'PROTOCOLS', 'REFERENCES',
           'REQUESTS']


METHODS = ('ifru', 'ifru-nospill', 'ifru-noprune', 'drop-edges', 'finetune',
           'warm-retrain', 'retrain', 'paired-retrain', 'sisa', 'receraser')
#: The exact-unlearning baselines, which train ensembles of their own:
#: their scores are not the original model's.
ENSEMBLES = ('sisa', 'receraser')
#: What runs when no methods are named: all but the ensembles.
DEFAULT_METHODS = tuple(m for m in METHODS if m not in ENSEMBLES)
# Retrains: references, not candidates.
REFERENCES = ('warm-retrain', 'retrain', 'paired-retrain')


REQUESTS = ('random', 'users', 'active-users', 'inactive-users', 'items',
            'poison', 'flip')
#: The request kinds that forget whole users.
USER_REQUESTS = ('users', 'active-users', 'inactive-users')


@dataclass
class RequestSpec:
    r"""What to forget: :obj:`kind` and :obj:`amount`, written
    :obj:`'kind:amount'`.

    * :obj:`'random:0.01'` (a fraction, below 1) or :obj:`'random:100'` (a
      count): random training interactions;
    * :obj:`'users:5'`, :obj:`'items:5'`: every interaction of random users
      or items; :obj:`'users:0.05'`, a share of the users;
    * :obj:`'active-users:0.05'`, :obj:`'inactive-users:0.05'`: the most
      or least active users (CURE4Rec's "core" and "edge" users), as a
      share or a count (see
      :func:`~torch_geometric_unlearn.data.deletion.users_by_activity`);
    * :obj:`'poison:0.01'`: fake interactions injected before training (a
      fraction of the training interactions);
    * :obj:`'flip:0.01'`: training pairs whose labels were flipped before
      training (the IFRU paper's protocol; BCE).
    """
    kind: str
    amount: float

    def __post_init__(self):
        if self.kind not in REQUESTS:
            raise ValueError(f"Unknown request kind {self.kind!r} (choose "
                             f"from {list(REQUESTS)})")
        if not (self.amount > 0 and math.isfinite(self.amount)):
            raise ValueError(f"The request amount must be a positive, "
                             f"finite number (got {self.amount})")
        whole = float(self.amount).is_integer()
        if self.kind == 'items' and not whole:
            raise ValueError(f"'{self.kind}' needs a whole count (got "
                             f"{self.amount})")
        if self.kind in USER_REQUESTS and not (whole or self.amount < 1):
            raise ValueError(f"'{self.kind}' needs a whole count or a "
                             f"share of the users below 1 (got "
                             f"{self.amount})")
        if self.kind in ('poison', 'flip') and self.amount >= 1:
            raise ValueError(f"'{self.kind}' needs a fraction below 1 (got "
                             f"{self.amount})")

    @classmethod
    def parse(cls, spec: str) -> 'RequestSpec':
        r"""Parses :obj:`'kind:amount'`."""
        kind, _, amount = spec.partition(':')
        try:
            value = float(amount)
        except ValueError:
            raise ValueError(f"A request is written 'kind:amount', e.g. "
                             f"'random:0.01' (got {spec!r})") from None
        return cls(kind, value)

    def __str__(self) -> str:
        return f'{self.kind}:{self.amount:g}'


@dataclass
class BenchmarkConfig:
    r"""Configuration of :func:`run_benchmark`, validated on construction.

    Args:
        dataset (str): :obj:`'synthetic'`, :obj:`'ml-100k'`,
            :obj:`'gowalla'` or :obj:`'lastfm'`.
        data_dir (str, optional): Folder of the real data sets.
        dataset_options (Dict[str, Any]): Extra keyword arguments of the
            loader, e.g. the sizes of
            :func:`~torch_geometric_unlearn.data.datasets.synthetic`.
        layers (int): LightGCN layers; 0 is matrix factorisation.
        dim (int): Embedding size.
        request (RequestSpec or str): What to forget.
        methods (Sequence[str]): Methods to compare, from :obj:`METHODS`.
            :obj:`'drop-edges'` keeps the parameters and only predicts with
            the new graph: the do-nothing baseline, added after the IFRU
            variants if missing, as it costs nothing.
            :obj:`'paired-retrain'` is the reference of the score-change
            closure (see :mod:`~torch_geometric_unlearn.evaluation.fidelity`).
            :obj:`'sisa'` and :obj:`'receraser'` train their own ensembles
            (see :mod:`~torch_geometric_unlearn.unlearn.sisa`; RecEraser
            partitions the trained model's final embeddings with its
            balanced clustering and aggregates by attention), whose
            training time is reported as :obj:`train_seconds`; closures and
            rank shifts measured from the original model do not apply to
            them.
        repeats (int): Independent runs (seeds :obj:`seed` to
            :obj:`seed + repeats - 1`).
        ifru_repeats (int): Timed calls of each IFRU variant per run; the
            median is reported (the first call of a process pays for
            warm-up).
        seed (int): First seed.
        device (str): Torch device of the model.
        train (TrainConfig): The reference trainer's settings; its seed is
            replaced by each run's.
        converged_fidelity (bool): Also measure the IFRU variants' closure
            between converged points.
        progress (bool): Show progress bars.
        sisa_shards (int): SISA's number of shards.
        sisa_partition (str): How SISA and RecEraser deal the interactions
            to shards: :obj:`'user'`, :obj:`'item'` or
            :obj:`'interaction'`.
        sisa_balanced (bool): Partition SISA's shards by RecEraser's
            balanced clustering too (its scores stay averaged).
    """
    dataset: str = 'synthetic'
    data_dir: Optional[str] = None
    dataset_options: Dict[str, Any] = field(default_factory=dict)
    layers: int = 2
    dim: int = 64
    request: RequestSpec = field(
        default_factory=lambda: RequestSpec('random', 0.01))
    methods: Sequence[str] = DEFAULT_METHODS
    repeats: int = 1
    ifru_repeats: int = 3
    seed: int = 0
    device: str = 'cpu'
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(progress=False))
    converged_fidelity: bool = False
    progress: bool = True
    sisa_shards: int = 10
    sisa_partition: str = 'user'
    sisa_balanced: bool = False

    def __post_init__(self):
        if isinstance(self.request, str):
            self.request = RequestSpec.parse(self.request)
        self.methods = list(self.methods)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"Unknown methods {unknown} (choose from "
                             f"{list(METHODS)})")
        if 'drop-edges' not in self.methods:
            ifru = [i for i, m in enumerate(self.methods)
                    if m.startswith('ifru')]
            self.methods.insert(ifru[-1] + 1 if ifru else 0, 'drop-edges')
        if self.sisa_partition not in ('user', 'item', 'interaction'):
            raise ValueError(f"'sisa_partition' must be 'user', 'item' or "
                             f"'interaction' (got {self.sisa_partition!r})")
        for name in ('repeats', 'ifru_repeats', 'dim', 'sisa_shards'):
            if getattr(self, name) < 1:
                raise ValueError(f"'{name}' must be at least 1 (got "
                                 f"{getattr(self, name)})")
        if self.layers < 0:
            raise ValueError(f"'layers' must be non-negative (got "
                             f"{self.layers})")
        if self.request.kind == 'flip' and self.train.loss.value != 'bce':
            raise ValueError("'flip' requests need labelled data and the "
                             "BCE loss (set the loss to 'bce')")
        if self.request.kind == 'poison' and self.train.loss.value != 'bpr':
            raise ValueError("'poison' requests inject implicit interactions:"
                             " use the BPR loss")


@dataclass(frozen=True)
class Protocol:
    r"""A protocol of the recommendation-unlearning literature, run end to
    end by ``benchmark --protocol NAME`` (see :obj:`PROTOCOLS` and
    ``docs/benchmarks.md``).

    Args:
        name (str): Its name on the command line.
        source (str): Where it is defined, and what it measures.
        requests (Tuple[str, ...]): The requests, one benchmark each
            (:class:`RequestSpec` strings).
        methods (Tuple[str, ...]): The methods it compares (dropping the
            edges is always added).
        loss (str): The training loss it needs.
        stream (int, optional): Run each request's kind as a stream of this
            many disjoint requests, measured after each quarter.
    """
    name: str
    source: str
    requests: Tuple[str, ...]
    methods: Tuple[str, ...]
    loss: str = 'bpr'
    stream: Optional[int] = None

    def configs(self, base: BenchmarkConfig,
                methods: Optional[Sequence[str]] = None
                ) -> List[BenchmarkConfig]:
        r"""One validated configuration per request, from :obj:`base`'s
        data, model and trainer (whose loss must be :obj:`loss`), with
        :obj:`methods` or the protocol's."""
        if base.train.loss.value != self.loss:
            raise ValueError(f"The {self.name} protocol trains with the "
                             f"{self.loss} loss (got "
                             f"{base.train.loss.value})")
        return [replace(base, request=RequestSpec.parse(request),
                        methods=list(methods or self.methods))
                for request in self.requests]


#: The protocols ``benchmark --protocol`` runs.
PROTOCOLS = {
    'cure4rec': Protocol(
        'cure4rec',
        'CURE4Rec (Chen et al., NeurIPS 2024 Datasets and Benchmarks): 5% '
        'of the users deleted whole, chosen at random, from the most '
        'active ("core") and from the least active ("edge"); NDCG@20, '
        'HR@20, the fairness gap between the most active 5% of users and '
        'the rest, and the unlearning time, with SISA and RecEraser as '
        'the exact baselines',
        ('users:0.05', 'active-users:0.05', 'inactive-users:0.05'),
        ('ifru', 'paired-retrain', 'sisa', 'receraser')),
    'cova': Protocol(
        'cova',
        "COVA's measures (the top-K agreement with the retrain at K = 20, "
        '50, 100) on the IFRU paper\'s request (Zhang et al., TORS 2024): '
        "1% of the training labels flipped before training, BCE, AUC; on "
        "'ifru-ml100k' the request is the authors' own flipped pairs",
        ('flip:0.01', ),
        ('ifru', 'paired-retrain', 'retrain', 'sisa', 'receraser'),
        loss='bce'),
    'erase': Protocol(
        'erase',
        'ERASE (arXiv 2603.08341): a stream of 20 small requests (0.25% of '
        'the training interactions each) applied in turn; efficiency, '
        'utility and effectiveness after each quarter against the paired '
        'retrain of everything forgotten so far',
        ('random:0.0025', ), ('ifru', 'sisa'), stream=20),
}
