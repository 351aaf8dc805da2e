from __future__ import annotations

import re
from pathlib import Path

from otel_bridge.config import VARIABLES, variables_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_configuration_table_is_the_generated_one() -> None:
    text = README.read_text()
    match = re.search(r"<!-- variables:start -->\n(.*?)\n<!-- variables:end -->", text, re.S)
    assert match is not None
    assert match.group(1) == variables_table(), "run scripts/readme-table"
    for variable in VARIABLES:
        assert f"`{variable.env}`" in match.group(1)


def test_readme_names_the_two_commands_and_ci_runs_the_test_one() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci
