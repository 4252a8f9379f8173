r"""The model contract for unlearning any PyG link predictor.

:class:`~torch_geometric_unlearn.unlearn.ifru.IFRUnlearner` (its autograd
backend) does not need to know how a recommender is built.  It needs four
things, which a :class:`LinkModel` names:

1. **How to score user-item pairs on a graph**: the model is called the way
   PyG's own :class:`~torch_geometric.nn.models.LightGCN` is,
   :obj:`model(edge_index, edge_label_index)` (homogeneous graph, items
   offset by the number of users), or :obj:`model(x, edge_index,
   edge_label_index)` with fixed node features, or
   :obj:`model(x_dict, edge_index_dict, edge_label_index)` for a
   :class:`~torch_geometric.data.HeteroData` model
   (:class:`HeteroLinkModel`), and returns one score per pair.  Models that
   split the work into an :obj:`encode` (graph to node embeddings) and a
   :obj:`decode` (embeddings and pairs to scores) step can name the two
   methods instead; the graph is then encoded once per evaluation.
2. **Which parameters belong to nodes**: parameters whose first dimension
   is a node count (embedding tables, per-node biases) are found on their
   own and assigned to a node type; pass :obj:`node_params` where that is
   ambiguous.  Every other parameter (convolution and decoder weights) is
   *shared*.
3. **The receptive field**: the number of message-passing layers
   (:func:`num_message_passing_layers`), overridable.
4. **How the training graph is built** from the positive training pairs,
   so that the unlearner can rebuild it without the forgotten interactions.

The model must be deterministic in :meth:`~torch.nn.Module.eval` mode (the
unlearner evaluates it there) and twice differentiable through its message
passing on :obj:`edge_index` tensors (every PyG convolution is; cached
normalisation such as :obj:`GCNConv(cached=True)` is refused, because it
would keep the deleted edges).
"""
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.nn.conv import MessagePassing

from torch_geometric_unlearn.data.interactions import to_undirected_homogeneous

__all__ = [
    'LinkModel',
    'HeteroLinkModel',
    'num_message_passing_layers',
]

# Modules whose parameters are dense weights even when a dimension happens
# to equal a node count.
_DENSE_MODULES = ('torch.nn.modules', 'torch_geometric.nn')


class LinkModel(torch.nn.Module):
    r"""Wraps a homogeneous PyG link predictor over users and items.

    Users are nodes :obj:`0 .. num_users - 1` and items follow, as in
    :class:`~torch_geometric_unlearn.data.interactions.InteractionData`.
    Calling the wrapper scores user-item pairs on a graph:

    .. code-block:: python

        link_model = LinkModel(model, num_users, num_items)
        graph = link_model.graph(data.train_positive_index)  # edge_index
        scores = link_model(graph, pairs)  # pairs: [2, B] user, item ids

    Args:
        model (torch.nn.Module): The link predictor.  Without
            :obj:`encode`/:obj:`decode` it is called as
            :obj:`model(edge_index, edge_label_index)`, or
            :obj:`model(x, edge_index, edge_label_index)` when :obj:`x` is
            given, with homogeneous pairs :obj:`[2, B]`, and returns scores
            :obj:`[B]`.
        num_users (int): Number of users.
        num_items (int): Number of items.
        x (torch.Tensor, optional): Fixed node features
            :obj:`[num_users + num_items, F]`, passed first.
        encode (str, optional): Name of a method of :obj:`model` mapping
            :obj:`([x,] edge_index)` to node embeddings.
        decode (str, optional): Name of a method mapping
            :obj:`(embeddings, edge_label_index)` to scores :obj:`[B]`.
            Give both or neither.
        node_params (Dict[str, str], optional): Maps names of node-indexed
            parameters (as in :meth:`model.named_parameters`) to their node
            type: :obj:`'node'` (one row per user and item), :obj:`'user'`
            or :obj:`'item'`.  Found automatically by default.
        num_hops (int, optional): The receptive field; by default the
            number of message-passing layers of :obj:`model`.
    """
    def __init__(self, model: torch.nn.Module, num_users: int,
                 num_items: int, x: Optional[Tensor] = None,
                 encode: Optional[str] = None, decode: Optional[str] = None,
                 node_params: Optional[Dict[str, str]] = None,
                 num_hops: Optional[int] = None):
        super().__init__()
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"'model' must be a torch.nn.Module "
                            f"(got {type(model).__name__})")
        if isinstance(model, LinkModel):
            raise TypeError("'model' is already a LinkModel")
        for name, value in (('num_users', num_users),
                            ('num_items', num_items)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"'{name}' must be a positive int "
                                 f"(got {value!r})")
        if (encode is None) != (decode is None):
            raise ValueError("Give both 'encode' and 'decode', or neither")
        for name in (encode, decode):
            if name is not None and not callable(getattr(model, name, None)):
                raise TypeError(f"'{type(model).__name__}' has no method "
                                f"{name!r}")
        self.model = model
        self.num_users, self.num_items = num_users, num_items
        self.x = x
        self.encode_name, self.decode_name = encode, decode
        self._check_features()
        self.node_types = self._node_types()
        self.node_params = self._find_node_params(node_params)
        for name, module in model.named_modules():
            if getattr(module, 'cached', False) is True:
                raise ValueError(
                    f"'{name}' ({type(module).__name__}) caches its graph "
                    f"normalisation (cached=True): it would keep the "
                    f"forgotten edges.  Build it with cached=False")
        if num_hops is not None and (not isinstance(num_hops, int)
                                     or num_hops < 0):
            raise ValueError(f"'num_hops' must be a non-negative int "
                             f"(got {num_hops!r})")
        self.num_hops = (num_message_passing_layers(model)
                         if num_hops is None else num_hops)

    @property
    def num_nodes(self) -> int:
        return self.num_users + self.num_items

    def _check_features(self):
        if self.x is not None and (not isinstance(self.x, Tensor) or
                                   self.x.size(0) != self.num_nodes):
            raise ValueError(f"'x' must be a tensor with one row per node "
                             f"({self.num_nodes})")

    def _node_types(self) -> Dict[str, Tuple[int, int]]:
        r"""Each node type as (first homogeneous id, count)."""
        return {
            'node': (0, self.num_nodes),
            'user': (0, self.num_users),
            'item': (self.num_users, self.num_items),
        }

    def _find_node_params(self, given: Optional[Dict[str, str]]
                          ) -> Dict[str, str]:
        named = dict(self.model.named_parameters())
        if given is not None:
            out = {}
            for name, kind in given.items():
                if name not in named:
                    raise ValueError(f"'node_params' names {name!r}, which "
                                     f"is not a parameter of the model")
                if kind not in self.node_types:
                    raise ValueError(f"'node_params[{name!r}]' must be one "
                                     f"of {list(self.node_types)} "
                                     f"(got {kind!r})")
                size = self.node_types[kind][1]
                if named[name].dim() == 0 or named[name].size(0) != size:
                    raise ValueError(f"'{name}' has no first dimension of "
                                     f"{size} {kind} rows")
                out[f'model.{name}'] = kind
            return out
        owners = {}
        for module_name, module in self.model.named_modules():
            for name, _ in module.named_parameters(recurse=False):
                owners[f'{module_name}.{name}'.lstrip('.')] = module
        out = {}
        for name, param in named.items():
            owner = type(owners[name])
            dense = (owner.__module__.startswith(_DENSE_MODULES)
                     and owner is not torch.nn.Embedding)
            if param.dim() == 0 or dense:
                continue
            kinds = [kind for kind, (_, size) in self.node_types.items()
                     if param.size(0) == size]
            if len(kinds) > 1:
                raise ValueError(
                    f"Cannot tell the node type of '{name}' (its "
                    f"{param.size(0)} rows match {kinds}); pass "
                    f"'node_params', e.g. {{{name!r}: {kinds[0]!r}}}")
            if kinds:
                out[f'model.{name}'] = kinds[0]
        return out

    def rows(self, name: str, nodes: Tensor) -> Tensor:
        r"""The rows of node-indexed parameter :obj:`name` (as in
        :meth:`named_parameters` of the wrapper) that belong to the
        homogeneous node ids :obj:`nodes` :obj:`[n]`."""
        start, size = self.node_types[self.node_params[name]]
        inside = (nodes >= start) & (nodes < start + size)
        return nodes[inside] - start

    def graph(self, pairs: Tensor) -> Any:
        r"""The message-passing input built from positive training pairs
        :obj:`[2, N]` (user, item): here the undirected homogeneous
        :obj:`edge_index` :obj:`[2, 2N]`."""
        return to_undirected_homogeneous(pairs, self.num_users)

    def _inputs(self, graph: Any) -> tuple:
        return (graph, ) if self.x is None else (self.x, graph)

    def _label_index(self, pairs: Tensor) -> Tensor:
        return torch.stack([pairs[0], pairs[1] + self.num_users])

    def embed(self, graph: Any) -> Any:
        r"""Node embeddings of :obj:`graph` from :obj:`encode`; without an
        :obj:`encode` step, the graph itself (scoring then runs the whole
        model)."""
        if self.encode_name is None:
            return graph
        return getattr(self.model, self.encode_name)(*self._inputs(graph))

    def decode(self, embedding: Any, pairs: Tensor) -> Tensor:
        r"""Scores :obj:`[B]` of user-item pairs :obj:`[2, B]` from the
        output of :meth:`embed`."""
        index = self._label_index(pairs)
        if self.decode_name is None:
            return self.model(*self._inputs(embedding), index)
        return getattr(self.model, self.decode_name)(embedding, index)

    def forward(self, graph: Any, pairs: Tensor) -> Tensor:
        r"""Scores :obj:`[B]` of user-item pairs :obj:`[2, B]` on
        :obj:`graph` (see :meth:`graph`)."""
        return self.decode(self.embed(graph), pairs)

    def check(self, train_pairs: Tensor):
        r"""Raises a :class:`TypeError` naming the contract unless the model
        scores a few of :obj:`train_pairs` :obj:`[2, N]` as one float per
        pair."""
        pairs = train_pairs[:, :4]
        try:
            with torch.no_grad():
                out = self(self.graph(train_pairs), pairs)
        except Exception as error:
            raise TypeError(
                f"{type(self.model).__name__} does not follow the "
                f"{type(self).__name__} contract: {self._contract()} "
                f"(calling it failed with {type(error).__name__}: "
                f"{error})") from error
        if not isinstance(out, Tensor) or not out.is_floating_point() or \
                out.shape != (pairs.size(1), ):
            shape = list(out.shape) if isinstance(out, Tensor) else type(out)
            raise TypeError(f"{type(self.model).__name__} must return one "
                            f"float score per pair, shape "
                            f"[{pairs.size(1)}] (got {shape}); "
                            f"{self._contract()}")

    def _contract(self) -> str:
        args = 'edge_index' if self.x is None else 'x, edge_index'
        if self.encode_name is None:
            return (f"model({args}, edge_label_index) must return scores "
                    f"[B] for homogeneous pairs [2, B] (items offset by "
                    f"num_users)")
        return (f"model.{self.encode_name}({args}) must return node "
                f"embeddings and model.{self.decode_name}(embeddings, "
                f"edge_label_index) scores [B]")

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({type(self.model).__name__}, '
                f'users={self.num_users}, items={self.num_items}, '
                f'num_hops={self.num_hops}, '
                f'node_params={list(self.node_params)})')


class HeteroLinkModel(LinkModel):
    r"""Wraps a heterogeneous PyG recommender over a user type and an item
    type, e.g. a :func:`~torch_geometric.nn.to_hetero` GNN as in PyG's
    :obj:`examples/hetero/recommender_system.py`.

    The model is called as :obj:`model(x_dict, edge_index_dict,
    edge_label_index)` (or through :obj:`encode(x_dict, edge_index_dict)`
    and :obj:`decode(z_dict, edge_label_index)`), where
    :obj:`edge_label_index` :obj:`[2, B]` holds (user id, item id) pairs of
    :obj:`edge_type`.  The graph holds :obj:`edge_type` and its reverse;
    a forgotten interaction leaves both.

    Args:
        model (torch.nn.Module): The recommender.
        data (HeteroData): The graph's node types and their inputs:
            :obj:`x_dict` is passed on as it is (node types without
            features may be absent; the model then uses its own embedding
            tables), and :obj:`num_nodes` of both types must be known.
            Only :obj:`edge_type` and :obj:`rev_edge_type` may be edge
            types: others would carry spillover along paths that the
            unlearner does not trace.
        edge_type (Tuple[str, str, str]): The interactions, e.g.
            :obj:`('user', 'rates', 'item')`.
        rev_edge_type (Tuple[str, str, str], optional): The reverse type;
            by default :obj:`('item', 'rev_rates', 'user')`, as
            :class:`~torch_geometric.transforms.ToUndirected` names it.
        encode (str, optional): See :class:`LinkModel`.
        decode (str, optional): See :class:`LinkModel`.
        node_params (Dict[str, str], optional): Maps node-indexed parameters
            to the node type names of :obj:`edge_type`.
        num_hops (int, optional): See :class:`LinkModel`.
    """
    def __init__(self, model: torch.nn.Module, data: HeteroData,
                 edge_type: Tuple[str, str, str] = ('user', 'rates', 'item'),
                 rev_edge_type: Optional[Tuple[str, str, str]] = None,
                 encode: Optional[str] = None, decode: Optional[str] = None,
                 node_params: Optional[Dict[str, str]] = None,
                 num_hops: Optional[int] = None):
        if not isinstance(data, HeteroData):
            raise TypeError(f"'data' must be a HeteroData "
                            f"(got {type(data).__name__})")
        edge_type = tuple(edge_type)
        if len(edge_type) != 3 or edge_type[0] == edge_type[2]:
            raise ValueError(f"'edge_type' must be (user type, relation, "
                             f"item type) with two distinct node types "
                             f"(got {edge_type!r})")
        src, rel, dst = edge_type
        rev_edge_type = tuple(rev_edge_type or (dst, f'rev_{rel}', src))
        if rev_edge_type[0] != dst or rev_edge_type[2] != src:
            raise ValueError(f"'rev_edge_type' must lead from {dst!r} to "
                             f"{src!r} (got {rev_edge_type!r})")
        others = set(data.edge_types) - {edge_type, rev_edge_type}
        if others:
            raise ValueError(f"'data' holds edge types {sorted(others)} "
                             f"besides {edge_type} and its reverse; their "
                             f"spillover is not traced")
        if set(data.node_types) - {src, dst}:
            raise ValueError(f"'data' may only hold the node types {src!r} "
                             f"and {dst!r} (got {data.node_types})")
        sizes = []
        for kind in (src, dst):
            size = data[kind].num_nodes if kind in data.node_types else None
            if not size:
                raise ValueError(f"'data[{kind!r}]' needs 'x' or "
                                 f"'num_nodes'")
            sizes.append(int(size))
        self.edge_type, self.rev_edge_type = edge_type, rev_edge_type
        self.x_dict = data.collect('x', allow_empty=True)
        super().__init__(model, sizes[0], sizes[1], None, encode, decode,
                         node_params, num_hops)

    def _check_features(self):
        for kind, x in self.x_dict.items():
            start, size = self._node_types()[kind]
            if x.size(0) != size:
                raise ValueError(f"'x' of node type {kind!r} has {x.size(0)} "
                                 f"rows, expected {size}")

    def _node_types(self) -> Dict[str, Tuple[int, int]]:
        return {
            self.edge_type[0]: (0, self.num_users),
            self.edge_type[2]: (self.num_users, self.num_items),
        }

    def graph(self, pairs: Tensor) -> Dict[Tuple[str, str, str], Tensor]:
        r"""The :obj:`edge_index_dict` of positive training pairs
        :obj:`[2, N]`: the pairs as :obj:`edge_type` and flipped as
        :obj:`rev_edge_type`."""
        return {self.edge_type: pairs, self.rev_edge_type: pairs.flip(0)}

    def _inputs(self, graph: Any) -> tuple:
        # A fresh dict per call: models may write into x_dict.
        return (dict(self.x_dict), graph)

    def _label_index(self, pairs: Tensor) -> Tensor:
        return pairs

    def _contract(self) -> str:
        if self.encode_name is None:
            return ("model(x_dict, edge_index_dict, edge_label_index) must "
                    "return scores [B] for (user, item) pairs [2, B] of "
                    f"{self.edge_type}")
        return (f"model.{self.encode_name}(x_dict, edge_index_dict) must "
                f"return node embeddings and model.{self.decode_name}("
                f"embeddings, edge_label_index) scores [B]")


def num_message_passing_layers(model: torch.nn.Module) -> int:
    r"""The number of message-passing layers of :obj:`model`: its receptive
    field in hops.

    Counts every :class:`~torch_geometric.nn.conv.MessagePassing` module,
    except that a :class:`~torch.nn.ModuleDict` of them (one per edge type,
    as :func:`~torch_geometric.nn.to_hetero` and
    :class:`~torch_geometric.nn.conv.HeteroConv` build) counts as one
    layer.  Plain :func:`torch_geometric.utils.get_num_hops` counts each
    edge type separately and so over-counts heterogeneous models.  The
    count is wrong for a layer applied several times or a multi-hop layer
    (e.g. :class:`~torch_geometric.nn.conv.ChebConv`): pass
    :obj:`num_hops` to :class:`LinkModel` then.
    """
    layers = 0
    inside_dict = set()
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleDict) and len(module) and all(
                isinstance(m, MessagePassing) for m in module.values()):
            layers += 1
            inside_dict.update(id(m) for m in module.values())
    for module in model.modules():
        if isinstance(module, MessagePassing) and id(module) not in \
                inside_dict:
            layers += 1
    return layers
