import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.join(osp.dirname(osp.abspath(__file__)), '..')


def test_docs_build_without_warnings(tmp_path):
    # Sphinx and myst-parser come with the 'test' extra; skip where a bare
    # install lacks them.
    pytest.importorskip('sphinx')
    pytest.importorskip('myst_parser')
    proc = subprocess.run([
        sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b',
        'html',
        osp.join(ROOT, 'docs'),
        str(tmp_path / 'html')
    ], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
