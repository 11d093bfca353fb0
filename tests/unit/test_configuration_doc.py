"""docs/configuration.md names every ini key the gateway reads, with the default the code has.

The keys come from ``hutch.settings`` (its converters and the keys it reads by name); each must
have a row in the reference's table, and where the row gives a value as the default, the setting's
converter must turn it into the code's default.  A key added to the settings without a row, or a
default changed on one side only, fails here.
"""

import dataclasses
import pathlib
import re

import pytest

from hutch import settings
from hutch.amqp.history import HistoryPolicy

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
ROW = re.compile(r"^\| (?P<keys>`[^|]+) \| (?P<default>[^|]+) \| (?P<meaning>.+) \|$")
BY_NAME = (
    "auth",
    "auth.key_file",
    "auth.key.{name}",
    "auth.permissions.{name}",
    "session_secret_file",
    "session.*",
)
DERIVED = {"apps_directory", "templates_directory"}  # beside the ini: no fixed value


def rows():
    """key -> the default column, for every key in a row of the reference's tables."""
    found = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            for key in re.findall(r"`([^`]+)`", match["keys"]):
                found[key] = match["default"].strip()
    return found


def code_default(key):
    if key in settings.HISTORY_CONVERTERS:
        field, _convert = settings.HISTORY_CONVERTERS[key]
        return getattr(HistoryPolicy(), field)
    return {field.name: field for field in dataclasses.fields(settings.Settings)}[key]


def converter(key):
    if key in settings.HISTORY_CONVERTERS:
        return settings.HISTORY_CONVERTERS[key][1]
    return settings.CONVERTERS[key]


SETTING_KEYS = sorted([*settings.CONVERTERS, *settings.HISTORY_CONVERTERS])


def test_the_table_was_read():
    assert len(rows()) >= len(SETTING_KEYS)


@pytest.mark.parametrize("key", [*SETTING_KEYS, *BY_NAME])
def test_every_key_has_a_row(key):
    assert key in rows(), f"{key} is read by hutch/settings.py but has no row in docs/configuration.md"


def test_the_keys_read_by_name_are_the_settings_own():
    """``BY_NAME`` is what parse_settings names besides its converters: it must still name them."""
    source = pathlib.Path(settings.__file__).read_text(encoding="utf-8")
    for key in ("session_secret_file", '"auth"', '"auth."', '"session."', '"key_file"'):
        assert key in source


@pytest.mark.parametrize("key", SETTING_KEYS)
def test_each_default_is_the_codes(key):
    written = rows()[key]
    if key in DERIVED:
        assert "beside the ini" in written
        return
    field = code_default(key)
    default = field if not isinstance(field, dataclasses.Field) else _field_default(field)
    if written.startswith("none"):
        assert not default, f"{key}: the doc says none, the code says {default!r}"
        return
    value = written.strip("`")
    assert written == f"`{value}`", f"{key}: the default {written!r} is not one `value`"
    assert converter(key)(value) == default, f"{key}: the doc says {value!r}, the code {default!r}"


def _field_default(field):
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory()


def test_the_session_defaults_are_named():
    text = DOC.read_text(encoding="utf-8")
    for key in settings.SESSION_DEFAULTS:
        assert f"`{key}" in text, key
    assert f"`session.timeout = {settings.SESSION_DEFAULTS['session.timeout']}`" in text
