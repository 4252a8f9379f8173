r"""Sphinx configuration; build with
``python -m sphinx -W -b html docs docs/_build/html``."""
import os.path as osp
import sys

# Document the checkout, installed or not.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

import torch_geometric_unlearn  # noqa: E402

project = 'torch_geometric_unlearn'
author = 'torch_geometric_unlearn contributors'
version = release = torch_geometric_unlearn.__version__

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.mathjax',
    'sphinx.ext.viewcode',
    'myst_parser',
]
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
exclude_patterns = ['_build']

# The docstrings are Google style ("Args:", "Returns:").
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
# Markdown headings get anchors, so that pages can link to sections, and
# $...$ / $$...$$ is mathematics, as GitHub renders it too.
myst_heading_anchors = 3
myst_enable_extensions = ['dollarmath']

html_theme = 'alabaster'
