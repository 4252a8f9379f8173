import os
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


def test_readme_quick_start_runs_when_pasted(tmp_path):
    # The own-loop quick start, exactly as the README shows it.
    with open(osp.join(ROOT, 'README.md')) as f:
        readme = f.read()
    section = readme.split('## Quick start: your own training loop')[1]
    code = section.split('```python\n')[1].split('```')[0]
    assert 'from_training_loop' in code and 'recommendation_loss' in code
    script = tmp_path / 'quick_start.py'
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'objective: BPR' in proc.stdout
    assert 'trajectory step' in proc.stdout and ': ok' in proc.stdout


def test_readme_module_table_names_every_module():
    # The table under 'What is in the package' names each module by its
    # dotted path inside the package, so that it follows the layout.
    with open(osp.join(ROOT, 'README.md')) as f:
        readme = f.read()
    section = readme.split('## What is in the package')[1].split('\n## ')[0]
    table = '\n'.join(line for line in section.split('\n')
                      if line.startswith('| `'))
    package = osp.join(ROOT, 'torch_geometric_unlearn')
    missing = []
    for folder, _, files in os.walk(package):
        for name in files:
            if name.endswith('.py') and not name.startswith('__'):
                path = osp.relpath(osp.join(folder, name[:-3]), package)
                module = path.replace(os.sep, '.')
                if f'`{module}`' not in table:
                    missing.append(module)
    assert not missing, f'README module table lacks {missing}'
