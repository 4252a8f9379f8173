import json

import pytest
import torch

from torch_geometric_unlearn.data.request_file import read_request


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_good_files_name_exactly_their_rows(tmp_path):
    pairs = read_request(write(tmp_path, 'p.csv', 'user,item\n3,4\n\n5,6\n'))
    users, items = pairs['interactions']
    assert users.tolist() == [3, 5] and items.tolist() == [4, 6]
    assert read_request(write(tmp_path, 'u.csv', 'user\n 7 \n9\n'))[
        'users'].tolist() == [7, 9]
    two = read_request(write(tmp_path, 'p.json', json.dumps(
        {'interactions': [[1, 2], [3, 4]]})))['interactions']
    # Two pairs given as rows stay rows: users (1, 3), items (2, 4).
    assert two[0].tolist() == [1, 3] and two[1].tolist() == [2, 4]
    empty = read_request(write(tmp_path, 'e.json', '{"items": []}'))
    assert empty['items'].dtype == torch.long and empty['items'].numel() == 0


@pytest.mark.parametrize('name, text, match', [
    ('a.csv', 'user,item\n1,2\n3,4,5\n', r"line 3: 3 values, but the header "
     r"'user,item' names 2"),
    ('b.csv', 'user\n1,2\n', "line 2: 2 values, but the header 'user' "
     "names 1"),
    ('c.csv', 'user,item\n1,2.0\n', r"line 2: '2.0' is not an integer"),
    ('d.csv', 'user,item\n1,\n', "line 2: '' is not an integer"),
    ('e.csv', 'item\n99999999999999999999\n', 'line 2: an id is too large'),
    ('f.csv', 'uid\n1\n', "header 'user,item', 'user' or 'item'"),
    ('a.json', '{"users": [1.0]}', r"users\[0\] must be an integer id"),
    ('b.json', '{"users": [true]}', r"users\[0\] must be an integer id"),
    ('c.json', '{"items": ["3"]}', r"items\[0\] must be an integer id"),
    ('d.json', '{"interactions": [[1, 2, 3]]}',
     r"interactions\[0\] must be \[user, item\]"),
    ('e.json', '{"interactions": [1, 2]}', r"interactions\[0\] must be"),
    ('f.json', '{"interactions": [[1, 2.5]]}', r"interactions\[0\]"),
    ('g.json', '{"users": 3}', "'users' must be a list"),
    ('h.json', '{"users": [1], "items": [2]}', 'must hold one key'),
    ('i.json', '{"users": [1', 'is not valid JSON'),
    ('j.json', '{"users": [0], "users": [1]}', "names the key 'users' twice"),
])
def test_malformed_files_are_refused_by_line(tmp_path, name, text, match):
    path = write(tmp_path, name, text)
    with pytest.raises(ValueError, match=match) as info:
        read_request(path)
    assert path in str(info.value)
