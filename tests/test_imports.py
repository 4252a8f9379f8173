import ast
import pathlib

import torch_geometric_unlearn

PACKAGE = pathlib.Path(torch_geometric_unlearn.__file__).parent
NAME = PACKAGE.name


def module_imports():
    # Every module (not the packages' __init__ files, which gather the
    # others) and the package modules it imports, at any depth of its code.
    modules = {}
    for path in PACKAGE.rglob('*.py'):
        if path.name == '__init__.py':
            continue
        name = '.'.join((NAME, ) + path.relative_to(PACKAGE).with_suffix(
            '').parts)
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith(NAME):
                targets = [node.module] + [f'{node.module}.{alias.name}'
                                           for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            found.update(t for t in targets if t in modules and t != name)
        graph[name] = found
    return graph


def test_the_package_has_no_import_cycles():
    graph = module_imports()
    assert 'torch_geometric_unlearn.unlearn.ifru' in graph
    state = {}

    def visit(name, path):
        state[name] = 'open'
        for other in sorted(graph[name]):
            assert state.get(other) != 'open', \
                'import cycle: ' + ' -> '.join(path + [other])
            if other not in state:
                visit(other, path + [other])
        state[name] = 'done'
    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
