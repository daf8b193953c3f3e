"""Human review of the tuned model: a ratings sheet out, the ratings back into the report.

`export` writes review/review.csv inside the run directory: one row per test prediction of the
evaluate stage, with the prompt, the reference answer, the base and tuned outputs and empty rating
columns. The sheet holds model inputs and outputs, so it stays in the run directory with the data it
came from; it never goes into the report. A cell that starts with = + - @, a tab or a carriage return gets
a leading apostrophe (OWASP's CSV injection guidance), so that a spreadsheet program shows it as text
instead of running it as a formula; the import accepts the cell with or without it.

`import_ratings` works on a run that verifies only, checks a filled-in sheet row by row and refuses it,
listing every problem with its line, unless all rows are valid. A valid sheet is copied
to review/ratings.csv (added to the lineage), summarised into report.json's `review` section (counts
and means only), and the report is rendered and its digests written again. Sign-offs given before the
import approved an older report: the new report lists them as superseded, and `fttool verify` says so.
"""
from __future__ import annotations

import csv
import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

from fttool.data.records import prompt_and_response, read_jsonl
from fttool.governance.evidence import EvidenceError, read_report, read_signoffs, verify
from fttool.pipeline.digest import sha256_file
from fttool.pipeline.errors import RunError
from fttool.pipeline.layout import REVIEW_SHEET, RunLayout, RunLock

REVIEW_DIR = "review"
EXPORT_FILE = REVIEW_SHEET
RATINGS_FILE = f"{REVIEW_DIR}/ratings.csv"
PREDICTIONS_FILE = "evaluation/predictions.jsonl"
TEXT_COLUMNS = ("id", "prompt", "reference", "base_output", "tuned_output")
RATING_COLUMNS = ("base_rating", "tuned_rating", "preferred")
RATING_SCALE = (1, 5)
PREFERENCES = ("base", "tuned", "tie")
# What a spreadsheet program may read as the start of a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class ReviewError(Exception):
    """Why a review cannot be exported or imported; each line says where and what to do."""


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # where the row starts in the file; a quoted cell can span lines
    row: int  # as a spreadsheet numbers it, the header being row 1
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: row {self.row}: {self.message}"


def _predictions(run_dir: Path) -> list[dict]:
    path = run_dir / PREDICTIONS_FILE
    if not path.is_file():
        raise ReviewError(f"{path}: no predictions to review; the run must include the evaluate stage "
                          "(an evaluate section in the recipe)")
    return list(read_jsonl(path))


def spreadsheet_safe(text: str) -> str:
    """The cell as a spreadsheet program shows it as text: with a leading apostrophe when it could be a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _unescaped(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell


def export_sheet(run_dir: Path) -> Path:
    """Write review/review.csv for raters; returns its path."""
    run_dir = Path(run_dir)
    predictions = _predictions(run_dir)
    tests = {record["id"]: record for record in read_jsonl(RunLayout(run_dir).split("test"))}
    path = run_dir / EXPORT_FILE
    if path.is_symlink() or path.parent.is_symlink():  # writing through it would overwrite a file elsewhere
        raise ReviewError(f"{path if path.is_symlink() else path.parent} is a symbolic link; fttool writes the sheet "
                          "into the run directory itself: remove the link")
    path.parent.mkdir(exist_ok=True)
    # utf-8-sig: spreadsheet programs read a CSV as UTF-8 only when it starts with a byte order mark.
    with open(path, "w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow([*TEXT_COLUMNS, *RATING_COLUMNS])
        for prediction in predictions:
            prompt, reference = prompt_and_response(tests[prediction["id"]])
            cells = [prediction["id"], prompt, reference, prediction["base"], prediction["tuned"]]
            writer.writerow([*map(spreadsheet_safe, cells), "", "", ""])
    return path


def _same_text(cell: str, text: str) -> bool:
    """Equal up to line endings, surrounding blanks (which spreadsheet programs change) and the formula escape."""
    def normal(value: str) -> str:
        return value.replace("\r\n", "\n").replace("\r", "\n").strip()

    return normal(cell) == normal(text) or normal(_unescaped(cell)) == normal(text)


def _rating(value: str, column: str, where: tuple[str, int, int], problems: list[Problem]) -> int | None:
    if not value.strip():
        return None
    low, high = RATING_SCALE
    try:
        number = int(value.strip())
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        problems.append(Problem(*where, f"{column} is '{value.strip()}'; write a whole number from {low} to {high}, "
                                         "or leave it empty"))
        return None
    return number


def read_ratings(path: Path, predictions: list[dict]) -> tuple[dict[str, dict], list[Problem]]:
    """Ratings by prediction id, and every problem found (empty when the sheet can be imported)."""
    file = str(path)
    by_id = {prediction["id"]: prediction for prediction in predictions}
    ratings: dict[str, dict] = {}
    problems: list[Problem] = []
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ReviewError(f"{file}: cannot read the ratings file: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames or []
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ReviewError(f"{file}:1: not a readable CSV file ({exc}); export it again as CSV (UTF-8)") from None
        missing = [column for column in ("id", "base_output", "tuned_output", *RATING_COLUMNS) if column not in header]
        if missing:
            raise ReviewError(f"{file}:1: the header lacks {', '.join(missing)}; start from the sheet that "
                              f"`fttool review export` wrote and keep its header row")
        first_row: dict[str, int] = {}
        line, number = reader.line_num + 1, 1
        try:
            for number, row in enumerate(reader, start=2):
                where = (file, line, number)
                line = reader.line_num + 1  # where the next row starts
                if None in row or any(value is None for value in row.values()):
                    cells = sum(1 for key, value in row.items() if key is not None and value is not None)
                    problems.append(Problem(*where, f"the row has {cells + len(row.get(None) or [])} cells where the "
                                                    f"header has {len(header)}; check for a stray or missing comma "
                                                    "or quote"))
                    continue
                if not any(value.strip() for value in row.values()):
                    problems.append(Problem(*where, "empty row; delete it"))
                    continue
                record_id = _unescaped(row["id"].strip())
                prediction = by_id.get(record_id)
                if prediction is None:
                    problems.append(Problem(*where, f"id '{record_id}' is not among this run's predictions "
                                                    f"({PREDICTIONS_FILE}); was the sheet exported from another run?"))
                    continue
                if record_id in first_row:
                    problems.append(Problem(*where, f"id '{record_id}' was already rated in row "
                                                    f"{first_row[record_id]}; keep one row per id"))
                    continue
                first_row[record_id] = number
                for side in ("base", "tuned"):
                    if not _same_text(row[f"{side}_output"], prediction[side]):
                        problems.append(Problem(*where, f"{side}_output differs from this run's prediction for "
                                                        f"'{record_id}'; rate the sheet exported from this run, with "
                                                        "its outputs unedited"))
                base = _rating(row["base_rating"], "base_rating", where, problems)
                tuned = _rating(row["tuned_rating"], "tuned_rating", where, problems)
                preferred = row["preferred"].strip().lower()
                if preferred and preferred not in PREFERENCES:
                    problems.append(Problem(*where, f"preferred is '{row['preferred'].strip()}'; write one of "
                                                    f"{', '.join(PREFERENCES)}, or leave it empty"))
                    preferred = ""
                ratings[record_id] = {"base": base, "tuned": tuned, "preferred": preferred or None}
        except (csv.Error, UnicodeDecodeError) as exc:
            problems.append(Problem(file, line, number + 1, f"cannot read this row ({exc}); save the sheet as CSV "
                                                            "(UTF-8)"))
    return ratings, problems


def summarise(ratings: dict[str, dict], predictions: int, file: str, digest: str) -> dict:
    """Counts and means only: the report never holds a prompt, output or comment."""
    def mean(side: str) -> float | None:
        values = [r[side] for r in ratings.values() if r[side] is not None]
        return round(sum(values) / len(values), 4) if values else None

    rated = sum(1 for r in ratings.values() if any(value is not None for value in r.values()))
    return {
        "file": file, "sha256": digest,
        "imported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "scale": {"min": RATING_SCALE[0], "max": RATING_SCALE[1]},
        "predictions": predictions,
        "rows": len(ratings),
        "rated": rated,
        # Predictions with no rating at all, whether their row was left blank or left out of the sheet.
        "unrated": predictions - rated,
        "ratings": {side: sum(1 for r in ratings.values() if r[side] is not None) for side in ("base", "tuned")},
        "mean_rating": {"base": mean("base"), "tuned": mean("tuned")},
        "preference": {choice: sum(1 for r in ratings.values() if r["preferred"] == choice) for choice in PREFERENCES},
    }


def _require_verified(run_dir: Path) -> None:
    """ReviewError unless the run verifies: an import rewrites the report's digests, which must not bless an edit."""
    try:
        problems = [p for p in verify(run_dir) if p.path != RATINGS_FILE]  # an earlier import's sheet is replaced
    except EvidenceError as exc:
        raise ReviewError(str(exc)) from None
    if problems:
        raise ReviewError("the run does not verify, so its report is not rewritten:\n"
                          + "\n".join(f"  {problem}" for problem in problems))


def _require_policy_as_run(report: dict, recipe_dir: Path) -> None:
    """ReviewError unless the report policy is where the recipe named it and as the run applied it (its sha256):
    the import judges the report again, and another policy would rewrite the verdict under fresh digests."""
    path = (recipe_dir / report["recipe"]["resolved"]["report"]["policy"]).resolve()
    recorded = report["policy"].get("sha256")
    if not path.is_file():
        raise ReviewError(f"{path}: the report policy the run was judged by is not there (did the recipe's folder "
                          "move?); import the ratings where it is")
    if sha256_file(path) != recorded:
        raise ReviewError(f"{path}: the report policy changed since the run (sha256 {str(recorded)[:12]} -> "
                          f"{sha256_file(path)[:12]}), so the report would be judged by another policy than the run "
                          "was; restore it, or start a new run")


def import_ratings(run_dir: Path, ratings_path: Path) -> dict:
    """Validate a filled-in sheet and record its summary in the run's report; returns the summary.

    Raises ReviewError listing every problem when any row is invalid; nothing is changed then.
    """
    run_dir = Path(run_dir)
    try:
        with RunLock(RunLayout(run_dir), "fttool review import"):
            return _import_ratings(run_dir, Path(ratings_path))
    except RunError as exc:
        raise ReviewError(str(exc)) from None


def _import_ratings(run_dir: Path, ratings_path: Path) -> dict:
    from fttool.report import write_report_files
    from fttool.report.build import policy_outcome

    _require_verified(run_dir)
    predictions = _predictions(run_dir)
    ratings, problems = read_ratings(Path(ratings_path), predictions)
    if problems:
        raise ReviewError("the ratings were not imported; fix these rows and import again:\n"
                          + "\n".join(f"  {problem}" for problem in problems))

    report = read_report(run_dir)
    recipe_dir = (run_dir / report["recipe"]["path"]).parent
    if report["policy"].get("evaluated"):
        _require_policy_as_run(report, recipe_dir)
    target = run_dir / RATINGS_FILE
    if target.is_symlink():  # verify leaves an earlier import's sheet to this command, which replaces it
        raise ReviewError(f"{target} is a symbolic link; fttool writes the ratings into the run directory itself: "
                          "remove the link")
    target.parent.mkdir(exist_ok=True)
    if Path(ratings_path).resolve() != target.resolve():
        shutil.copyfile(ratings_path, target)
    digest = sha256_file(target)
    report["review"] = summarise(ratings, len(predictions), RATINGS_FILE, digest)
    artifacts = [a for a in report["lineage"]["artifacts"] if a["path"] != RATINGS_FILE]
    artifacts.append({"path": RATINGS_FILE, "sha256": digest, "kind": "artifact", "stage": "review",
                      "parents": [PREDICTIONS_FILE]})
    report["lineage"]["artifacts"] = artifacts
    signoffs = read_signoffs(run_dir)
    report["signoff"] = [{**{k: entry[k] for k in ("by", "role", "at", "report_sha256")}, "superseded": True}
                         for entry in signoffs] or None
    if report["policy"].get("evaluated"):
        report["policy"] = policy_outcome(report, run_dir, recipe_dir)
    write_report_files(report, run_dir)
    return report["review"]
