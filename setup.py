from setuptools import find_packages, setup

setup(
    name='torch-geometric-unlearn',
    version='0.1.0',
    description='Influence-function unlearning (IFRU) for PyTorch Geometric '
    'recommenders',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(include=['torch_geometric_unlearn*']),
    install_requires=[
        'torch>=2.4',
        'torch-geometric>=2.8,<2.9',
        'numpy',
        'tqdm',
    ],
    extras_require={
        # Compiled, source-only on PyPI (minutes to build): used when present.
        'full': ['torch-scatter', 'torch-sparse'],
        # PyG's MovieLens100K reader needs pandas.
        'data': ['pandas'],
        'plot': ['matplotlib'],
        'docs': ['sphinx', 'myst-parser'],
        # The test suite builds the docs too (tests/test_docs.py).
        'test': ['pytest', 'hypothesis', 'pandas', 'matplotlib', 'sphinx',
                 'myst-parser'],
    },
    entry_points={
        'console_scripts': [
            'torch-geometric-unlearn=torch_geometric_unlearn.cli:main',
        ],
    },
    classifiers=[
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
    ],
)
