"""The tree shows the tiers: which package may import which, and no import circle.

The imports are read from the source (every ``import`` and ``from ... import``,
at module level or inside a function), so a function-level import cannot hide
a circle.  The layers are ``hutch/__init__.py``'s docstring, as a table.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Bottom to top: a module may import its own layer's vocabulary and anything below.
LAYERS = {
    "vocabulary": 0,
    "hutch.auth": 1,
    "hutch.amqp": 1,
    "configuration": 2,
    "hutch.web": 3,
    "hutch.events": 3,
    "hutch.delivery": 3,
    "hutch.contract": 4,
    "hutch.serve": 4,
    "apps": 5,
}
VOCABULARY = {"hutch", "hutch.errors", "hutch.names", "hutch.files", "hutch.messages", "hutch.metrics"}
VOCABULARY |= {"hutch.metrics_env"}
CONFIGURATION = {"hutch.settings", "hutch.inifile"}
# Sideways, on purpose: the delivery tier's HTTP routes (delivery.api) are built on the WSGI tier's plumbing.
SIDEWAYS = {("hutch.delivery", "hutch.web")}


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules():
    paths = [*sorted((ROOT / "hutch").rglob("*.py")), *sorted((ROOT / "apps").glob("*.py"))]
    return {module_name(path): path for path in paths}


def imported(name, path, modules):
    """The modules of ``modules`` that the file imports (a name imported from a package counts as
    its module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
    return found


def import_graph():
    modules = source_modules()
    return {name: imported(name, path, modules) for name, path in modules.items()}


def layer_of(module):
    if module in VOCABULARY:
        return "vocabulary"
    if module in CONFIGURATION:
        return "configuration"
    if module.startswith("apps"):
        return "apps"
    package = ".".join(module.split(".")[:2])
    assert package in LAYERS, f"{module} is in no layer: add its package to LAYERS and hutch/__init__.py"
    return package


def violations(graph):
    """Every import that goes up a layer, or sideways between two packages without leave."""
    wrong = []
    for module, targets in graph.items():
        for target in targets:
            source_layer, target_layer = layer_of(module), layer_of(target)
            if source_layer == target_layer or (source_layer, target_layer) in SIDEWAYS:
                continue
            if LAYERS[target_layer] >= LAYERS[source_layer]:
                wrong.append(f"{module} ({source_layer}) imports {target} ({target_layer})")
    return sorted(wrong)


def circles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_graph_is_read_from_the_tree(graph):
    assert graph["hutch.web.app"] >= {"hutch.settings", "hutch.amqp.client", "hutch.web.dispatch"}
    assert "hutch.events.server" in graph["hutch.events.main"]
    assert sum(len(targets) for targets in graph.values()) > 200


def test_no_import_goes_up_a_layer(graph):
    assert violations(graph) == []


def test_there_is_no_import_circle(graph):
    assert circles(graph) == []


def test_the_checks_catch_what_they_are_for():
    assert violations({"hutch.amqp.client": {"hutch.web.http"}}) == [
        "hutch.amqp.client (hutch.amqp) imports hutch.web.http (hutch.web)"
    ]
    assert violations({"hutch.web.http": {"hutch.events.sse"}}) != []
    assert violations({"hutch.auth.policy": {"hutch.amqp.client"}}) != []
    assert violations({"hutch.delivery.api": {"hutch.web.http"}}) == []
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_package_says_what_it_is_for_and_what_it_may_import():
    for init in sorted((ROOT / "hutch").glob("*/__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "import" in docstring, f"{init.parent.name}: the docstring says what it may import"
        assert f"hutch.{init.parent.name}" in LAYERS, f"{init.parent.name} is in no layer"
