"""Human review: the ratings sheet, its validation, and the report, digests and sign-offs after an import."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.report_run import small_run

from fttool.cli import cli
from fttool.data.records import read_jsonl
from fttool.governance.evidence import verify
from fttool.governance.review import EXPORT_FILE, RATINGS_FILE, export_sheet, read_ratings, spreadsheet_safe
from fttool.governance.signoff import failing_rules
from fttool.pipeline.digest import sha256_file


@pytest.fixture
def run_dir(tmp_path_factory) -> Path:
    """A fresh run directory per test (served from the stage cache after the session's first run)."""
    root = tmp_path_factory.getbasetemp() / "small-run"
    name = f"review-{len(list((root / 'runs').glob('review-*'))) if (root / 'runs').is_dir() else 0}"
    return small_run(root, name)


def export(run_dir: Path) -> list[dict]:
    result = CliRunner().invoke(cli, ["review", "export", str(run_dir)])
    assert result.exit_code == 0, result.output
    with open(run_dir / EXPORT_FILE, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def write_sheet(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def line_starts(sheet: Path) -> dict[int, int]:
    """Spreadsheet row number -> the file line where that row starts."""
    with open(sheet, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        starts, line = {}, 1
        for number, _ in enumerate(reader, start=1):
            starts[number] = line
            line = reader.line_num + 1
    return starts


def import_sheet(run_dir: Path, sheet: Path):
    return CliRunner().invoke(cli, ["review", "import", str(run_dir), str(sheet)])


@pytest.mark.slow
def test_export_lists_every_prediction_with_empty_rating_columns(run_dir):
    rows = export(run_dir)
    predictions = list(read_jsonl(run_dir / "evaluation/predictions.jsonl"))
    assert [row["id"] for row in rows] == [p["id"] for p in predictions] and rows
    assert all(row["base_output"] == spreadsheet_safe(p["base"]) and row["tuned_output"] == spreadsheet_safe(p["tuned"])
               for row, p in zip(rows, predictions))
    assert all(row["prompt"].startswith("### Instruction:") and row["reference"] for row in rows)
    assert all(row["base_rating"] == row["tuned_rating"] == row["preferred"] == "" for row in rows)
    # The sheet holds model text, so it stays in the run directory and out of the report.
    assert "review.csv" not in (run_dir / "report.json").read_text()


@pytest.mark.slow
def test_import_summarises_ratings_rerenders_and_the_run_still_verifies(run_dir, tmp_path):
    rows = export(run_dir)
    for index, row in enumerate(rows[:-1]):  # the last prediction is left unrated
        row.update(base_rating="2", tuned_rating=str(3 + index % 2), preferred="tuned" if index % 2 else "tie")
    sheet = write_sheet(tmp_path / "ratings.csv", rows)
    result = import_sheet(run_dir, sheet)
    assert result.exit_code == 0, result.output

    report = json.loads((run_dir / "report.json").read_text())
    review = report["review"]
    rated = len(rows) - 1
    assert review["predictions"] == len(rows) and review["rated"] == rated and review["unrated"] == 1
    tuned = [3 + index % 2 for index in range(rated)]
    assert review["mean_rating"] == {"base": 2.0, "tuned": pytest.approx(sum(tuned) / rated, abs=1e-4)}
    assert review["preference"] == {"base": 0, "tuned": rated // 2, "tie": rated - rated // 2}
    assert review["sha256"] == sha256_file(run_dir / RATINGS_FILE) == sha256_file(sheet)
    assert {"path": RATINGS_FILE, "sha256": review["sha256"], "kind": "artifact", "stage": "review",
            "parents": ["evaluation/predictions.jsonl"]} in report["lineage"]["artifacts"]
    # Counts and means only: no prompt or output reaches the report or its renderings.
    for name in ("report.json", "report.html", "report.md", "MODEL_CARD.md"):
        text = (run_dir / name).read_text()
        assert rows[0]["prompt"].splitlines()[1] not in text, name
    assert "Mean rating, tuned model" in (run_dir / "report.html").read_text()
    assert f"{rated} of {len(rows)} outputs rated" in (run_dir / "MODEL_CARD.md").read_text()
    assert verify(run_dir) == []


@pytest.mark.slow
def test_invalid_rows_are_all_reported_with_lines_and_nothing_is_imported(run_dir, tmp_path):
    rows = export(run_dir)
    assert len(rows) >= 4
    rows[0].update(base_rating="7")
    rows[1].update(preferred="maybe")
    rows[2].update(tuned_output="an edited output")
    duplicate = dict(rows[3])
    unknown = {**rows[3], "id": "r-not-in-this-run"}
    sheet = write_sheet(tmp_path / "ratings.csv", [*rows, duplicate, unknown])
    before = sha256_file(run_dir / "report.json")

    result = import_sheet(run_dir, sheet)
    assert result.exit_code == 2
    problems = [line.strip() for line in result.output.splitlines()[1:]]
    # Rows are numbered as a spreadsheet shows them; lines are where each row starts (prompts span lines).
    starts = line_starts(sheet)
    expected = [(2, "base_rating is '7'; write a whole number from 1 to 5"), (3, "preferred is 'maybe'"),
                (4, "tuned_output differs from this run's prediction"),
                (len(rows) + 2, f"id '{rows[3]['id']}' was already rated in row 5"),
                (len(rows) + 3, "id 'r-not-in-this-run' is not among this run's predictions")]
    assert len(problems) == len(expected), problems
    for problem, (row, message) in zip(problems, expected):
        assert problem.startswith(f"{sheet}:{starts[row]}: row {row}: {message}"), problem
    assert sha256_file(run_dir / "report.json") == before and not (run_dir / RATINGS_FILE).exists()

    (tmp_path / "no-header.csv").write_text("id,base_output\nx,y\n")
    result = import_sheet(run_dir, tmp_path / "no-header.csv")
    assert result.exit_code == 2
    assert "the header lacks tuned_output, base_rating, tuned_rating, preferred" in result.output


@pytest.mark.slow
def test_an_import_after_signoff_marks_the_signoff_as_approving_the_older_report(run_dir, tmp_path):
    runner = CliRunner()
    # The small run's recipe has no pii section, so its report policy fails: the sign-off waives what failed.
    waivers = [arg for rule in failing_rules(json.loads((run_dir / "report.json").read_text()))
               for arg in ("--waive", rule)] + ["--reason", "test run without PII scrubbing"]
    signoff = ["signoff", str(run_dir), "--by", "Ada", "--role", "model risk", *waivers]
    assert runner.invoke(cli, signoff).exit_code == 0
    signed = sha256_file(run_dir / "report.json")
    rows = export(run_dir)
    rows[0].update(base_rating="1", tuned_rating="5", preferred="tuned")
    assert import_sheet(run_dir, write_sheet(tmp_path / "ratings.csv", rows)).exit_code == 0

    report = json.loads((run_dir / "report.json").read_text())
    assert [(s["by"], s["report_sha256"], s["superseded"]) for s in report["signoff"]] == [("Ada", signed, True)]
    verified = runner.invoke(cli, ["verify", str(run_dir)])
    assert verified.exit_code == 0, verified.output
    assert "approved an older report" in verified.output and signed[:12] in verified.output
    # The new report can be signed off in its turn.
    assert runner.invoke(cli, signoff).exit_code == 0
    assert verify(run_dir) == []

    # An edit that fttool did not make is still caught.
    shutil.copyfile(run_dir / "report.json", tmp_path / "kept.json")
    text = (run_dir / "report.json").read_text().replace('"rated": 1', '"rated": 2')
    (run_dir / "report.json").write_text(text)
    assert any("report.json" in str(problem) for problem in verify(run_dir))


def test_cells_a_spreadsheet_would_run_as_formulas_are_escaped_and_still_import(tmp_path):
    """OWASP CSV injection: = + - @ tab and carriage return at the start of a cell get a leading apostrophe."""
    from fttool.data.records import write_jsonl

    attacks = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]
    tests = [{"id": f"t{i}", "source": "t", "format": "alpaca", "instruction": text, "input": "", "output": text,
              "meta": {}} for i, text in enumerate(attacks)]
    predictions = [{"id": f"t{i}", "base": text, "tuned": "plain"} for i, text in enumerate(attacks)]
    write_jsonl(tmp_path / "data" / "test.jsonl", tests)
    write_jsonl(tmp_path / "evaluation" / "predictions.jsonl", predictions)
    with open(export_sheet(tmp_path), newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    for row, text in zip(rows, attacks):
        assert row["base_output"] == "'" + text and row["reference"] == "'" + text and row["tuned_output"] == "plain"
    for row in rows:
        row.update(base_rating="3", tuned_rating="4", preferred="tuned")
    ratings, problems = read_ratings(write_sheet(tmp_path / "ratings.csv", rows), predictions)
    assert problems == [] and len(ratings) == len(attacks)
