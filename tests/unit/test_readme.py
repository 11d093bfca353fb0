"""The README and docs/ as a newcomer reads them: one thing said about the server's processes and
threads (what runs), every link and anchor leading somewhere, every file a command names there.

The README's tour itself runs in tests/e2e/test_readme_tour.py."""

import pathlib
import re

from hutch.serve.plan import DEFAULT_PROCESSES, DEFAULT_THREADS

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_thread_count_in_the_docs_is_the_default():
    conf = (ROOT / "apache" / "hutch.conf").read_text()
    assert f"processes={DEFAULT_PROCESSES}" in conf and f"threads={DEFAULT_THREADS}" in conf
    pages = [
        "README.md",
        "apache/README.md",
        *(f"docs/{path.name}" for path in sorted(ROOT.glob("docs/*.md"))),
    ]
    mentioned = set()
    for name in pages:
        text = (ROOT / name).read_text()
        flags = re.findall(r"--threads (\d+)", text)
        groups = re.findall(r"(\d+|two) (?:daemon )?processes\s+(?:\u00d7|x|of)\s+(\d+) threads", text)
        if flags or groups:
            mentioned.add(name)
        assert {int(count) for count in flags} <= {DEFAULT_THREADS}, f"{name}: --threads {flags}"
        for processes, threads in groups:
            count = 2 if processes == "two" else int(processes)
            assert (count, int(threads)) == (DEFAULT_PROCESSES, DEFAULT_THREADS), name
    assert "apache/README.md" in mentioned and len(mentioned) >= 2, (
        mentioned
    )  # the sysadmin's guide, and the user's


# --- the README and docs/ as a newcomer follows them -------------------------------------------

DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def without_code(text):
    return re.sub(r"^```.*?^```$", "", text, flags=re.MULTILINE | re.DOTALL)


def anchors(path):
    """The heading anchors a Markdown renderer makes for ``path`` (GitHub's rule)."""
    headings = re.findall(r"^#+ (.+)$", without_code(path.read_text(encoding="utf-8")), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def shell_blocks(text):
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_the_docs_pages_exist_and_the_readme_names_each():
    names = {path.name for path in DOCS}
    assert {"guide.md", "http.md", "operations.md", "configuration.md", "development.md"} <= names
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in names:
        assert f"](docs/{name})" in readme, name


def test_every_relative_link_of_the_readme_and_docs_leads_somewhere():
    for page in [ROOT / "README.md", *DOCS]:
        for target in LINK.findall(without_code(page.read_text(encoding="utf-8"))):
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            destination = (page.parent / file).resolve() if file else page
            assert destination.exists(), f"{page.name}: {target}"
            if anchor:
                assert anchor in anchors(destination), f"{page.name}: {target}: no such heading"


def test_every_file_the_readmes_commands_name_is_there():
    """bin/run and bin/test, the examples, the venv bin/setup builds, the key file production.ini names."""
    commands = "\n".join(shell_blocks((ROOT / "README.md").read_text(encoding="utf-8")))
    named = set(re.findall(r"(?<![\w/.])((?:bin|examples)/[\w.-]+)", commands))
    assert {"bin/run", "bin/test", "examples/notify_consumer.py", "examples/rpc_responder.py"} <= named
    for path in named:
        assert (ROOT / path).is_file(), path
        if path.startswith("bin/"):
            assert (ROOT / path).stat().st_mode & 0o111, f"{path} is not executable"
    assert ".venv/bin/python examples/" in commands and re.search(r"(?<![\w/.])python3? ", commands) is None
    assert 'VENV="$ROOT/.venv"' in (ROOT / "bin" / "setup").read_text()
    assert "var/api-keys" in commands
    assert "auth.key_file = %(here)s/var/api-keys" in (ROOT / "production.ini").read_text()
    assert re.search(r"serve --port 8080\b", (ROOT / "bin" / "run").read_text())
    assert "bin/test" in (ROOT / ".ci" / "run").read_text()
