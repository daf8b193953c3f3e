"""Deny-list values (the people or accounts a recipe asks to scrub) reach the scrubber, never a file a reviewer gets."""
from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from fttool.cli import cli
from fttool.pii.settings import withhold_deny_lists

NAMES = ["Ottoline Quarrendon", "Wystan Pembury"]


def test_withheld_lists_keep_their_size_and_digest_but_no_value():
    recipe = {"pii": {"recognizers": [{"name": "staff", "entity": "PERSON", "deny_list": NAMES}]}}
    [line] = withhold_deny_lists(recipe)["pii"]["recognizers"][0]["deny_list"]
    assert line.startswith("<withheld: 2 value(s), sha256 ") and not any(name in line for name in NAMES)
    assert withhold_deny_lists({"deny_list": list(reversed(NAMES))}) == {"deny_list": [line]}  # order-free digest


@pytest.mark.slow  # runs the data stages and the PII stage
def test_a_run_scrubs_deny_listed_names_and_writes_them_nowhere(tmp_path):
    records = [{"instruction": f"Please call {NAMES[i % 2]} about ticket {i}.", "output": "Done."} for i in range(24)]
    (tmp_path / "records.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (tmp_path / "recipe.yaml").write_text(textwrap.dedent(f"""\
        name: deny
        data:
          sources: [{{path: records.jsonl, format: alpaca}}]
          split: {{train: 0.6, validation: 0.2, test: 0.2, seed: 1}}
        pii:
          enabled: true
          recognizers:
            - {{name: staff, entity: PERSON, deny_list: {json.dumps(NAMES)}}}
        """))
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "recipe.yaml"), "--output-dir", str(run_dir)])
    assert (run_dir / "report.json").is_file(), result.output
    leaks = [path.relative_to(run_dir).as_posix() for path in run_dir.rglob("*") if path.is_file()
             and any(name.encode() in path.read_bytes() for name in NAMES)]
    assert leaks == []
    assert "<withheld: 2 value(s)" in (run_dir / "recipe.yaml").read_text()
    assert "original file's sha256" in (run_dir / "recipe.yaml").read_text()
    assert CliRunner().invoke(cli, ["verify", str(run_dir)]).exit_code == 0
