r"""Small link predictors of each supported family, shared by the tests of
:mod:`~torch_geometric_unlearn.models` and :mod:`~torch_geometric_unlearn.
generic`."""
import torch
from torch_geometric.data import HeteroData
from torch_geometric.nn import GCNConv, SAGEConv, to_hetero

from torch_geometric_unlearn.models import HeteroLinkModel, LinkModel

FAMILIES = ['gcn', 'sage', 'hetero']


class Encoder(torch.nn.Module):
    def __init__(self, conv, dim, layers=2):
        super().__init__()
        self.convs = torch.nn.ModuleList([conv(dim, dim)
                                          for _ in range(layers)])

    def forward(self, x, edge_index):
        for i, conv in enumerate(self.convs):
            x = conv(x if i == 0 else x.tanh(), edge_index)
        return x


class GNN(torch.nn.Module):
    r"""Learned embeddings, two GCN or SAGE layers, dot-product decoder."""
    def __init__(self, num_nodes, dim, conv, layers=2):
        super().__init__()
        self.emb = torch.nn.Embedding(num_nodes, dim)
        self.encoder = Encoder(conv, dim, layers)

    def encode(self, edge_index):
        return self.encoder(self.emb.weight, edge_index)

    def decode(self, z, edge_label_index):
        return (z[edge_label_index[0]] * z[edge_label_index[1]]).sum(-1)

    def forward(self, edge_index, edge_label_index):
        return self.decode(self.encode(edge_index), edge_label_index)


class HeteroGNN(torch.nn.Module):
    r"""PyG's recommender shape: user and item embeddings, a ``to_hetero``
    SAGE encoder over ('user', 'rates', 'item') and its reverse."""
    def __init__(self, num_users, num_items, dim, metadata, layers=2):
        super().__init__()
        self.user_emb = torch.nn.Embedding(num_users, dim)
        self.item_emb = torch.nn.Embedding(num_items, dim)
        self.encoder = to_hetero(Encoder(SAGEConv, dim, layers), metadata,
                                 aggr='sum')

    def encode(self, x_dict, edge_index_dict):
        x_dict = {'user': self.user_emb.weight, 'item': self.item_emb.weight}
        return self.encoder(x_dict, edge_index_dict)

    def decode(self, z_dict, edge_label_index):
        row, col = edge_label_index
        return (z_dict['user'][row] * z_dict['item'][col]).sum(-1)

    def forward(self, x_dict, edge_index_dict, edge_label_index):
        return self.decode(self.encode(x_dict, edge_index_dict),
                           edge_label_index)


def hetero_template(num_users, num_items):
    data = HeteroData()
    data['user'].num_nodes = num_users
    data['item'].num_nodes = num_items
    data['user', 'rates', 'item'].edge_index = torch.empty(2, 0).long()
    data['item', 'rev_rates', 'user'].edge_index = torch.empty(2, 0).long()
    return data


def make(family, num_users, num_items, dim, seed=0, layers=2, **kwargs):
    r"""A :class:`LinkModel` of the family with :obj:`layers` message-passing
    layers, float64, seeded."""
    torch.manual_seed(seed)
    if family == 'hetero':
        template = hetero_template(num_users, num_items)
        model = HeteroGNN(num_users, num_items, dim, template.metadata(),
                          layers)
        return HeteroLinkModel(model, template, encode='encode',
                               decode='decode', **kwargs).double()
    conv = GCNConv if family == 'gcn' else SAGEConv
    model = GNN(num_users + num_items, dim, conv, layers)
    return LinkModel(model, num_users, num_items, encode='encode',
                     decode='decode', **kwargs).double()
