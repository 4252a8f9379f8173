r"""PyG's LightGCN example as a user writes it, on a small graph, shared by
the tests of :mod:`~torch_geometric_unlearn.unlearn.recipe` and
:mod:`~torch_geometric_unlearn.graph.adjacency`."""
import torch
from torch_geometric.nn import LightGCN

from torch_geometric_unlearn.data.datasets import synthetic

BATCH = 150


def make_graph():
    r"""60 users, 80 items; the training pairs cut to a multiple of the
    batch so that every batch of the loop has :obj:`BATCH` pairs.  Returns
    :obj:`(edge_index, train_eli, num_users, num_items)`."""
    data = synthetic(60, 80, 900, num_topics=4, seed=1)
    pairs = data.train_index[:, :data.num_train // BATCH * BATCH]
    num_users = data.num_users
    train_eli = torch.stack([pairs[0], pairs[1] + num_users])
    edge_index = torch.cat([train_eli, train_eli.flip(0)], 1)
    return edge_index, train_eli, num_users, data.num_items


def pyg_loop(graph, lambda_reg, node_id, epochs=20, seed=0, recorder=None):
    r"""PyG's LightGCN example, as a user writes it: returns the model, the
    optimiser and the negatives of the last epoch (item node ids).  With
    :obj:`recorder` (a function of the model and the optimiser returning a
    :class:`TrajectoryRecorder`), a snapshot after every epoch, the
    recorder returned fourth."""
    edge_index, train_eli, num_users, num_items = graph
    torch.manual_seed(seed)
    model = LightGCN(num_users + num_items, 4, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    last = torch.empty(train_eli.size(1), dtype=torch.long)
    kept = None if recorder is None else recorder(model, optimizer)
    for _ in range(epochs):
        for index in torch.randperm(train_eli.size(1)).split(BATCH):
            pos = train_eli[:, index]
            neg = torch.stack([pos[0], torch.randint(
                num_users, num_users + num_items, (index.numel(), ))])
            edge_label_index = torch.cat([pos, neg], dim=1)
            pos_rank, neg_rank = model(edge_index, edge_label_index).chunk(2)
            loss = model.recommendation_loss(
                pos_rank, neg_rank, lambda_reg=lambda_reg,
                node_id=edge_label_index.unique() if node_id else None)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            last[index] = neg[1]
        if kept is not None:
            kept.snapshot()
    return (model, optimizer, last) if kept is None else (model, optimizer,
                                                          last, kept)
