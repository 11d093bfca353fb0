"""docs/architecture.md as the code is: its tree names every package and top-level module of hutch/
(and apps/), in the layers ``test_layers`` holds, and nothing that is not there; every path it
names exists; each idiom's path is a Mermaid diagram."""

import pathlib
import re

from .test_layers import LAYERS, layer_of

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
ROW = re.compile(r"^\| (\w+) \| `([^`]+)` \|(.*)$", re.MULTILINE)
# the doc's names of test_layers' ranks
LAYER_NAMES = {0: "vocabulary", 1: "services", 2: "configuration", 3: "tiers", 4: "top", 5: "apps"}
PATHS = ("Broadcast", "Notify", "RPC", "Event stream", "Push delivery")
DIAGRAMS = ("flowchart", "sequenceDiagram")
OPENS = re.compile(r"(subgraph|alt|opt|loop|par|critical|rect)\b")


def text():
    return DOC.read_text(encoding="utf-8")


def section(heading, level="##"):
    """The text under ``heading`` up to the next heading of its level or above."""
    match = re.search(
        rf"^{level} {re.escape(heading)}\n(.*?)(?=^#{{1,{len(level)}}} |\Z)", text(), re.MULTILINE | re.DOTALL
    )
    assert match, f"docs/architecture.md has no section {heading!r}"
    return match.group(1)


def mermaid_blocks(markdown):
    return re.findall(r"^```mermaid\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def tree_rows():
    return ROW.findall(section("The tree"))


def the_tree():
    """hutch/ and every package in it (a directory with ``__init__.py``), its top-level modules, apps/."""
    inits = (ROOT / "hutch").rglob("__init__.py")
    packages = {f"{init.parent.relative_to(ROOT).as_posix()}/" for init in inits}
    modules = {f"hutch/{path.name}" for path in (ROOT / "hutch").glob("*.py") if path.name != "__init__.py"}
    return packages | modules | {"apps/"}


def dotted(path):
    """``hutch/amqp/`` -> ``hutch.amqp``, ``hutch/errors.py`` -> ``hutch.errors``."""
    return path.removesuffix("/").removesuffix(".py").replace("/", ".")


def test_the_tree_names_every_package_and_module_once():
    named = [path for _layer, path, _what in tree_rows()]
    assert len(named) == len(set(named)), "a name appears twice in the tree"
    missing = sorted(the_tree() - set(named))
    assert not missing, f"add a line to docs/architecture.md's tree for {missing}"


def test_every_name_in_the_tree_is_there():
    stale = sorted(set(path for _layer, path, _what in tree_rows()) - the_tree())
    assert not stale, f"docs/architecture.md's tree names {stale}, which hutch/ no longer has"


def test_the_tree_is_in_layer_order_and_says_each_layer():
    ranks = []
    for layer, path, _what in tree_rows():
        rank = LAYERS[layer_of(dotted(path))]
        assert layer == LAYER_NAMES[rank], f"{path} is in the layer {LAYER_NAMES[rank]!r}, not {layer!r}"
        ranks.append(rank)
    assert ranks == sorted(ranks), "the tree goes bottom to top"


def test_the_tree_names_every_app_module():
    (what,) = [what for _layer, path, what in tree_rows() if path == "apps/"]
    for module in sorted((ROOT / "apps").glob("*.py")):
        assert re.search(rf"\b{module.stem}\b", what), f"apps/{module.name} is not in the tree's apps/ line"


def test_the_tree_states_the_rule_and_its_one_exception():
    rule = " ".join(section("The tree").split())
    assert "tests/unit/test_layers.py" in rule
    assert "`hutch.delivery.api` → `hutch.web.http`" in rule


def test_every_path_the_doc_names_exists():
    files = r"(?<![\w/.])((?:hutch|apps|apache|docs|bin)/[\w/.-]*\.(?:py|cfg|conf|md|ini|service))\b"
    named = set(re.findall(files, text()))
    assert {"hutch/serve/front.py", "hutch/web/app.py", "apache/haproxy.cfg"} <= named
    for path in sorted(named):
        assert (ROOT / path).exists(), f"docs/architecture.md names {path}, which does not exist"


def test_the_processes_and_each_idioms_path_are_mermaid_diagrams():
    processes = mermaid_blocks(section("The processes"))
    assert len(processes) == 1 and processes[0].startswith("flowchart")
    for name in ("HAProxy", "mod_wsgi", "event servers", "delivery processes", "RabbitMQ", "Redis"):
        assert name in processes[0], f"the processes' diagram has no {name}"
    for heading in PATHS:
        assert mermaid_blocks(section(heading, "###")), f"the path of {heading} has no Mermaid diagram"


def test_the_mermaid_blocks_are_well_formed():
    blocks = mermaid_blocks(text())
    assert len(blocks) == 1 + len(PATHS)
    for block in blocks:
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        assert lines[0].split()[0] in DIAGRAMS, lines[0]
        opened, ended = sum(1 for line in lines[1:] if OPENS.match(line)), lines.count("end")
        assert opened == ended, f"a {lines[0]} block opens {opened} and ends {ended}"
        if lines[0] == "sequenceDiagram":
            declared = {line.split()[1] for line in lines if line.startswith("participant ")}
            for line in lines:
                arrow = re.match(r"(\w+)-{1,2}>>(\w+):", line)
                if arrow:
                    assert set(arrow.groups()) <= declared, line
                assert ";" not in line and "#" not in line, f"Mermaid ends a line at ';' and '#': {line}"
