import os
import random
import signal
import subprocess
import sys
import time

import pytest

from torch_geometric_unlearn import persist
from torch_geometric_unlearn.persist import atomic_open, check_output


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / 'report.json'
    target.write_text('old')
    with pytest.raises(RuntimeError, match='midway'):
        with atomic_open(str(target)) as f:
            f.write('new, but not all of it')
            raise RuntimeError('midway')
    assert target.read_text() == 'old'
    assert os.listdir(tmp_path) == ['report.json']  # no temporary left
    with atomic_open(str(target), 'wb') as f:
        f.write(b'new')
    assert target.read_bytes() == b'new'
    assert os.listdir(tmp_path) == ['report.json']
    # A new file gets the permissions open() would give it.
    mode = os.stat(target).st_mode & 0o777
    assert mode == 0o666 & ~persist._UMASK


def test_outputs_are_checked_before_work(tmp_path):
    assert check_output(str(tmp_path / 'a.pt')) == str(tmp_path / 'a.pt')
    with pytest.raises(ValueError, match="'--out' .* does not exist"):
        check_output(str(tmp_path / 'missing' / 'a.pt'), "'--out'")
    with pytest.raises(ValueError, match='is a folder'):
        check_output(str(tmp_path))


# The writer loads persist.py on its own (no torch: it starts in
# milliseconds) and rewrites one file over and over, each version a header,
# a body of one repeated byte and a trailer, so that a torn file shows.
WRITER = r'''
import importlib.util, sys
spec = importlib.util.spec_from_file_location('persist', sys.argv[1])
persist = importlib.util.module_from_spec(spec)
spec.loader.exec_module(persist)
size = 1 << 20
print('ready', flush=True)
version = 0
while True:
    version += 1
    body = bytes([48 + version % 10]) * size
    with persist.atomic_open(sys.argv[2], 'wb') as f:
        f.write(b'v%d\n' % version)
        for start in range(0, size, 1 << 16):
            f.write(body[start:start + (1 << 16)])
        f.write(b'END\n')
'''


def complete(data: bytes) -> bool:
    head, _, rest = data.partition(b'\n')
    if not head.startswith(b'v') or not rest.endswith(b'END\n'):
        return False
    body = rest[:-4]
    digit = bytes([48 + int(head[1:]) % 10])
    return len(body) == 1 << 20 and body == digit * len(body)


def test_a_killed_writer_never_leaves_a_torn_file(tmp_path):
    # SIGKILL at random points of a stream of rewrites: the target is
    # always one complete version, never a torn one.
    script = tmp_path / 'writer.py'
    script.write_text(WRITER)
    target = tmp_path / 'checkpoint.bin'
    target.write_bytes(b'v0\n' + b'0' * (1 << 20) + b'END\n')
    rng = random.Random(0)
    versions = set()
    for _ in range(50):
        proc = subprocess.Popen([sys.executable, str(script),
                                 persist.__file__, str(target)],
                                stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b'ready\n'
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = target.read_bytes()
        assert complete(data), data[:20]
        versions.add(data.partition(b'\n')[0])
        for leftover in tmp_path.glob('.checkpoint.bin.*.tmp'):
            leftover.unlink()  # what a kill leaves: never the target
    # The kills landed at different points of the stream.
    assert len(versions) > 5


HOLDER = r'''
import sys, time
from torch_geometric_unlearn.persist import file_lock
with file_lock(sys.argv[1]):
    print('held', flush=True)
    time.sleep(float(sys.argv[2]))
'''


def test_the_writer_s_lock_excludes_other_processes(tmp_path):
    target = str(tmp_path / 'model.pt')
    holder = subprocess.Popen([sys.executable, '-c', HOLDER, target, '1.5'],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        waited = []
        with pytest.raises(TimeoutError, match='another process'):
            with persist.file_lock(target, timeout=0.2,
                                   on_wait=lambda: waited.append(1)):
                pass
        assert waited == [1]
        start = time.monotonic()
        with persist.file_lock(target):  # waits out the holder's sleep
            assert time.monotonic() - start > 1.0
            # Re-entrant within the thread: a nested take does not block.
            with persist.file_lock(target, timeout=0):
                pass
    finally:
        holder.wait()
    assert os.listdir(tmp_path) == ['.model.pt.lock']
