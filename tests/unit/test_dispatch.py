"""The hardened urlparser over a temporary apps folder (the urlparser pitfalls its module docstring lists)."""

import os
import sys
import textwrap

import pytest
import webtest

from hutch.web.dispatch import AppDirectory

HELLO = """
import itertools

LOADED_AS = __name__
requests = itertools.count(1)


def application(environ, start_response):
    body = f"{LOADED_AS} {next(requests)} {environ['SCRIPT_NAME']} {environ['PATH_INFO']!r}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""

SECRETS = "amqp_url = amqp://admin:s3cret@broker/\n"


def write(directory, name, text):
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(autouse=True)
def forget_app_modules():
    """Each test loads its own apps folder: drop the hutch_apps.* modules it registered."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("hutch_apps."):
            del sys.modules[name]


@pytest.fixture
def apps(tmp_path):
    """An apps folder holding one real module and the junk Paste used to serve."""
    folder = tmp_path / "apps"
    folder.mkdir()
    write(folder, "hello.py", HELLO)
    write(folder, "hello.py~", HELLO.replace("application", "stale"))
    write(folder, "hello.bak", SECRETS)
    write(folder, "_private.py", HELLO)
    write(folder, "bad-name.py", HELLO)
    write(folder, "production.ini", SECRETS)
    write(folder, ".env", SECRETS)
    write(folder, "notes.txt", SECRETS)
    write(folder, "data.json", '{"password": "s3cret"}')
    (folder / "pkg").mkdir()
    write(folder / "pkg", "__init__.py", HELLO)
    return folder


def client_for(folder, **extra_environ):
    return webtest.TestApp(AppDirectory(str(folder)), extra_environ=extra_environ)


def snapshot(folder):
    return {
        (os.path.relpath(os.path.join(root, name), folder), os.stat(os.path.join(root, name)).st_mtime_ns)
        for root, dirs, files in os.walk(folder)
        for name in files + dirs
    }


def test_public_module_is_dispatched(apps):
    response = client_for(apps).get("/hello")
    assert response.text.startswith("hutch_apps.hello 1 ")


@pytest.mark.parametrize(
    "path",
    [
        "/hello.py",
        "/hello.py~",
        "/hello.bak",
        "/_private",
        "/_private.py",
        "/bad-name",
        "/production.ini",
        "/production",
        "/.env",
        "/notes.txt",
        "/notes",
        "/data.json",
        "/data",
        "/pkg",
        "/pkg/",
        "/__init__",
        "/__init__.py",
        "/__pycache__",
        "/nothing",
        "/",
        "",
    ],
)
def test_nothing_else_is_served(apps, path):
    response = client_for(apps).get(path, status=404)
    assert response.json["error"] == "not_found"
    assert "s3cret" not in response.text
    assert "stale" not in response.text


def test_no_file_is_written_into_the_folder_during_requests(apps):
    client = client_for(apps)
    before = snapshot(apps)
    for path in ("/hello", "/__init__", "/pkg/", "/nothing", "/production.ini", "/hello/x"):
        client.get(path, expect_errors=True)
    assert snapshot(apps) == before


def test_script_name_and_path_info_are_shifted(apps):
    client = client_for(apps, SCRIPT_NAME="/gateway")
    assert client.get("/hello/a/b").text.endswith(" /gateway/hello '/a/b'")
    assert client.get("/hello").text.endswith(" /gateway/hello ''")
    assert client.get("/hello/").text.endswith(" /gateway/hello '/'")


def test_modules_load_once_under_the_namespace(apps):
    app = AppDirectory(str(apps))
    module = sys.modules["hutch_apps.hello"]
    assert "hello" not in sys.modules or sys.modules["hello"] is not module
    client = webtest.TestApp(app)
    # Module state survives between requests: Paste's dotted-name mode re-imported every time.
    counts = [client.get("/hello").text.split()[1] for _ in range(3)]
    assert counts == ["1", "2", "3"]
    assert sys.modules["hutch_apps.hello"] is module


def test_no_filesystem_scan_per_request(apps, monkeypatch):
    client = client_for(apps)
    os.remove(apps / "hello.py")
    write(apps, "late.py", HELLO)

    def no_scan(*args, **kwargs):
        raise AssertionError("the apps folder was scanned during a request")

    monkeypatch.setattr(os, "listdir", no_scan)
    monkeypatch.setattr(os, "scandir", no_scan)
    assert client.get("/hello").text.startswith("hutch_apps.hello ")
    assert client.get("/late", status=404).json["error"] == "not_found"


def test_app_named_like_a_stdlib_module_does_not_shadow_it(tmp_path):
    import queue

    stdlib_queue = sys.modules["queue"]
    write(tmp_path, "queue.py", HELLO)
    client = client_for(tmp_path)
    assert sys.modules["queue"] is stdlib_queue
    assert sys.modules["hutch_apps.queue"] is not stdlib_queue
    assert queue.Queue().empty()
    assert client.get("/queue").text.startswith("hutch_apps.queue 1 ")


def test_url_names_replace_the_module_name(tmp_path):
    write(tmp_path, "spec.py", HELLO + "\nurl_names = ('spec.json',)\n")
    client = client_for(tmp_path)
    assert client.get("/spec.json").text.startswith("hutch_apps.spec 1 ")
    client.get("/spec", status=404)


def test_module_without_application_fails_at_start_up(tmp_path):
    write(tmp_path, "empty.py", "VALUE = 1\n")
    with pytest.raises(ImportError, match=r"empty\.py"):
        AppDirectory(str(tmp_path))


def test_module_that_fails_to_import_fails_at_start_up(tmp_path):
    write(tmp_path, "broken.py", "raise RuntimeError('cannot start')\n")
    with pytest.raises(RuntimeError, match="cannot start"):
        AppDirectory(str(tmp_path))


def test_two_folders_with_the_same_module_name_serve_their_own_code(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write(first, "hello.py", HELLO.replace("LOADED_AS = __name__", "LOADED_AS = 'first'"))
    write(second, "hello.py", HELLO.replace("LOADED_AS = __name__", "LOADED_AS = 'second'"))
    assert client_for(first).get("/hello").text.startswith("first ")
    assert client_for(second).get("/hello").text.startswith("second ")
