import os
import os.path as osp

import pytest
import torch

from torch_geometric_unlearn.data.datasets import synthetic

_HERE = osp.dirname(osp.abspath(__file__))


@pytest.fixture(scope='session')
def data_dir():
    r"""The real data folder: $TGU_DATA_DIR, else ../shared/data beside the
    repository; tests that need it skip when it is absent."""
    root = os.environ.get('TGU_DATA_DIR',
                          osp.join(_HERE, '..', '..', 'shared', 'data'))
    if not osp.isdir(root):
        pytest.skip(f"real data folder '{root}' is absent (set TGU_DATA_DIR)")
    return root


@pytest.fixture
def single_thread():
    # Bitwise reproducible sparse products.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / 'cache'
    monkeypatch.setenv('TGU_CACHE_DIR', str(path))
    return path


@pytest.fixture(scope='session')
def small_data():
    return synthetic(num_users=200, num_items=300, num_interactions=5000,
                     num_topics=8, seed=0)
