"""The import contract: layers tlcli -> tlplugins -> tlcore, and no import cycles, counting the imports inside
functions (those only hide a cycle until the function runs). Imports under ``if TYPE_CHECKING:`` do not count."""

import ast

from tests.conftest import REPO

PACKAGES = {"tlcli": REPO / "cli", "tlplugins": REPO / "plugins", "tlcore": REPO / "tlcore"}
"""Import name -> folder, from the top layer down: a package imports only those below it."""
LAYERS = list(PACKAGES)


def project_modules():
    """``{dotted module name: path}`` of every module tl installs."""
    found = {}
    for name, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            found[".".join((name, *path.relative_to(folder).with_suffix("").parts)).removesuffix(".__init__")] = path
    return found


def imported(name, path, known):
    """The project's modules that ``name`` imports, anywhere in it but under ``if TYPE_CHECKING:``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def project_module(target):
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    project_module(alias.name)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[:len(package.split(".")) - child.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for alias in child.names:  # a submodule (from package import module) or a name in base
                    project_module(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def import_graph():
    known = project_modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_two_modules_import_each_other_directly_or_through_others():
    assert cycles(import_graph()) == []


def test_each_package_imports_only_the_layers_below_it():
    graph = import_graph()
    upward = [f"{module} imports {target}" for module, targets in sorted(graph.items()) for target in sorted(targets)
              if LAYERS.index(module.split(".")[0]) > LAYERS.index(target.split(".")[0])]
    assert upward == []


def test_the_contract_sees_imports_inside_functions_and_a_cycle_through_them():
    """The checker itself: a cycle closed by a function-level import is found."""
    graph = {"tlcore.a": {"tlcore.b"}, "tlcore.b": {"tlcore.c"}, "tlcore.c": {"tlcore.a"}, "tlcore.d": {"tlcore.a"}}
    assert cycles(graph) == [["tlcore.a", "tlcore.b", "tlcore.c"]]
    known = project_modules()
    run = imported("tlcore.run", known["tlcore.run"], known)
    assert "tlcore.quantization" in run, "run imports quantization inside a function"
