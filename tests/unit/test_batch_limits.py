"""Apache's hard limit for batch bodies is the one max_batch_bytes' default needs, wherever it runs."""

import pathlib
import re

from hutch.serve import cli, plan
from hutch.settings import Settings
from hutch.web.server_errors import BODY_SLACK

ROOT = pathlib.Path(__file__).resolve().parents[2]
BATCH_BODIES = ROOT / "apache" / "batch-bodies.conf"


def test_the_batch_paths_limit_sits_just_above_max_batch_bytes():
    [limit] = re.findall(r"^\s*LimitRequestBody\s+(\d+)\s*$", BATCH_BODIES.read_text(), re.MULTILINE)
    assert int(limit) == Settings().max_batch_bytes + BODY_SLACK


def test_hutch_serve_and_the_system_apache_both_include_it_before_the_chunked_rule():
    command = plan.serve_arguments(cli.parse(["serve"]), plan.server_limits(Settings()))
    includes = [command[i + 1] for i, flag in enumerate(command) if flag == "--include-file"]
    assert includes.index(str(BATCH_BODIES)) < includes.index(str(ROOT / "apache" / "chunked-bodies.conf"))
    conf = (ROOT / "apache" / "hutch.conf").read_text()
    assert conf.index("Include ${HUTCH_HOME}/apache/batch-bodies.conf") < conf.index("chunked-bodies.conf\n")
