r"""Unlearning a LightGCN trained the way PyG's examples train with
:class:`~torch_geometric.transforms.ToSparseTensor`: message passing over
a :obj:`SparseTensor` :obj:`adj_t`.  The unlearner takes that adjacency as
it is and gives the new graph back in the same form.

Needs torch-sparse (``pip install torch-geometric-unlearn[full]``, see the
README); run as ``python examples/sparse_tensor_loop.py``.
"""
import torch
import torch_geometric.transforms as T
from torch_geometric.data import Data
from torch_geometric.nn import LightGCN

from torch_geometric_unlearn import Recipe, from_training_loop
from torch_geometric_unlearn.data.datasets import synthetic

torch.manual_seed(0)
data = synthetic(num_users=200, num_items=300, num_interactions=5000)
num_users, num_items = data.num_users, data.num_items
train_edge_label_index = torch.stack(  # PyG's convention: items offset
    [data.train_index[0], data.train_index[1] + num_users])
graph = Data(edge_index=torch.cat([train_edge_label_index,
                                   train_edge_label_index.flip(0)], dim=1),
             num_nodes=num_users + num_items)
graph = T.ToSparseTensor()(graph)  # graph.adj_t replaces graph.edge_index

model = LightGCN(num_users + num_items, embedding_dim=32, num_layers=2)
optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
for epoch in range(20):
    for index in torch.randperm(train_edge_label_index.size(1)).split(1024):
        pos = train_edge_label_index[:, index]
        neg = torch.stack([pos[0], torch.randint(
            num_users, num_users + num_items, (index.numel(), ))])
        edge_label_index = torch.cat([pos, neg], dim=1)
        pos_rank, neg_rank = model(graph.adj_t, edge_label_index).chunk(2)
        loss = model.recommendation_loss(pos_rank, neg_rank, lambda_reg=1e-4)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

recipe = Recipe(loss='bpr', lambda_reg=1e-4, batch_size=1024)
unlearner = from_training_loop(model, graph.adj_t, num_users, recipe,
                               optimizer=optimizer)
result = unlearner.unlearn(users=torch.tensor([7]))
adj_t = result.adj  # the new graph, a SparseTensor like graph.adj_t
print(f'forgot {result.request.size(1)} interactions of user 7; new graph: '
      f'{type(adj_t).__name__} with {adj_t.nnz()} entries (was '
      f'{graph.adj_t.nnz()})')
scores = result.model(adj_t, train_edge_label_index[:, :5])
print('certificate:', result.certificate)
