"""hutch.contract.reference: where Swagger UI's files come from, and the page that starts it."""

import os

import pytest

from hutch.contract import reference


def test_the_package_files_are_the_installed_swagger_ui():
    folder = reference.package_static()
    for name, (_type, source) in reference.ASSETS.items():
        if source == "package":
            assert os.path.isfile(os.path.join(folder, name)), name


def test_a_missing_package_is_named(monkeypatch):
    monkeypatch.setattr(reference, "PACKAGE", "no_such_swagger_ui_package")
    with pytest.raises(ImportError, match="swagger-ui-py"):
        reference.package_static()


def test_the_page_escapes_what_it_is_given_and_has_no_inline_script():
    page = reference.page('/a"b/reference', '/a"b/openapi.json')
    assert 'data-openapi-url="/a&quot;b/openapi.json"' in page
    assert 'href="/a&quot;b/reference/swagger-ui.css"' in page
    assert "<script>" not in page and "onload" not in page
