"""``create_once``: the session secret and the first key file are created whole, and the first one wins."""

import concurrent.futures
import os
import pathlib
import stat

from hutch.files import create_once


def test_creates_the_file_private_with_the_text_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "deeper" / "secret"
    assert create_once(str(path), "first\n") is True
    assert path.read_text() == "first\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["secret"]


def test_an_existing_file_is_kept_as_it_is(tmp_path):
    path = tmp_path / "secret"
    path.write_text("theirs\n")
    assert create_once(str(path), "mine\n") is False
    assert path.read_text() == "theirs\n"
    assert os.listdir(tmp_path) == ["secret"]


def _create(path, text):
    return create_once(path, text)


def test_of_processes_racing_to_create_it_exactly_one_wins_and_its_text_stays(tmp_path):
    path = str(tmp_path / "secret")
    texts = [f"process {number}\n" for number in range(8)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=8) as pool:
        won = list(pool.map(_create, [path] * len(texts), texts))
    assert won.count(True) == 1
    assert pathlib.Path(path).read_text() == texts[won.index(True)]
    assert os.listdir(tmp_path) == ["secret"]
