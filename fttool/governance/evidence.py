"""Evidence that a run directory is what its report says: digests, verification, sign-off, lineage export.

`report.sha256` holds the digests of report.json and its renderings (sha256sum format). `verify`
re-hashes every artifact in report.json's lineage, the sources it names, and the report files, and
checks that every sign-off was given on the report as it is now. A sign-off records who approved,
when, and the digest of the report they saw, so editing the report afterwards is caught even if
report.sha256 is rewritten too.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from fttool.pipeline.digest import sha256_file, sha256_path

DIGEST_FILE = "report.sha256"
SIGNOFF_FILE = "signoff.json"
REPORT_FILES = ("report.json", "report.html", "report.md", "MODEL_CARD.md")


@dataclass(frozen=True)
class Mismatch:
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def write_digests(run_dir: Path) -> None:
    lines = [f"{sha256_file(run_dir / name)}  {name}\n" for name in REPORT_FILES if (run_dir / name).is_file()]
    (run_dir / DIGEST_FILE).write_text("".join(lines), encoding="utf-8")


def _recorded_digests(run_dir: Path) -> dict[str, str]:
    digests = {}
    for line in (run_dir / DIGEST_FILE).read_text(encoding="utf-8").splitlines():
        digest, name = line.split("  ", 1)
        digests[name] = digest
    return digests


def verify(run_dir: Path) -> list[Mismatch]:
    """Every difference between the run directory and its report; empty when the run verifies."""
    run_dir = Path(run_dir)
    problems: list[Mismatch] = []
    if not (run_dir / "report.json").is_file():
        return [Mismatch("report.json", "missing")]
    if not (run_dir / DIGEST_FILE).is_file():
        problems.append(Mismatch(DIGEST_FILE, "missing: the report's own digests cannot be checked"))
    else:
        for name, digest in _recorded_digests(run_dir).items():
            if not (run_dir / name).is_file():
                problems.append(Mismatch(name, "missing"))
            elif sha256_file(run_dir / name) != digest:
                problems.append(Mismatch(name, f"sha256 differs from {DIGEST_FILE}: the file was changed"))
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    for artifact in report["lineage"]["artifacts"]:
        path = (run_dir / artifact["path"]).resolve()
        if not path.exists():
            problems.append(Mismatch(artifact["path"], f"{artifact['kind']} is missing"))
        elif sha256_path(path) != artifact["sha256"]:
            problems.append(Mismatch(artifact["path"], f"{artifact['kind']} sha256 differs from the report's lineage"))
    for signoff in _signoffs_of_older_reports(run_dir, report)[1]:
        problems.append(Mismatch("report.json", f"changed after {signoff['by']} ({signoff['role']}) signed off "
                                                f"at {signoff['at']}"))
    return problems


def _signoff_key(entry: dict) -> tuple:
    return entry["by"], entry["role"], entry["at"], entry["report_sha256"]


def _signoffs_of_older_reports(run_dir: Path, report: dict) -> tuple[list[dict], list[dict]]:
    """Sign-offs whose report digest is not the current report's: (those the report lists as superseded, the rest).

    fttool rewrites a signed-off report only to add to it (review import), and then lists the old sign-offs;
    any other sign-off of an older digest means the report changed after it was approved.
    """
    listed = {_signoff_key(entry) for entry in report.get("signoff") or []}
    current = sha256_file(Path(run_dir) / "report.json")
    older = [entry for entry in read_signoffs(run_dir) if entry["report_sha256"] != current]
    return ([entry for entry in older if _signoff_key(entry) in listed],
            [entry for entry in older if _signoff_key(entry) not in listed])


def superseded_signoffs(run_dir: Path) -> list[dict]:
    """Sign-offs of an older version of the report, which the current report lists as superseded.

    They approved the report as it was before fttool added to it (e.g. human review ratings), not as it is now.
    """
    report = json.loads((Path(run_dir) / "report.json").read_text(encoding="utf-8"))
    return _signoffs_of_older_reports(run_dir, report)[0]


def read_signoffs(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / SIGNOFF_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def sign_off(run_dir: Path, by: str, role: str) -> dict:
    """Record an approval of the report as it is now; refused when the run does not verify."""
    run_dir = Path(run_dir)
    problems = verify(run_dir)
    if problems:
        raise ValueError("the run does not verify, so it cannot be signed off:\n"
                         + "\n".join(f"  {p}" for p in problems))
    entry = {"by": by, "role": role, "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "report_sha256": sha256_file(run_dir / "report.json")}
    signoffs = [*read_signoffs(run_dir), entry]
    (run_dir / SIGNOFF_FILE).write_text(json.dumps(signoffs, indent=2) + "\n", encoding="utf-8")
    return entry


def openlineage_event(run_dir: Path) -> dict:
    """The run as an OpenLineage RunEvent: sources as inputs, run artifacts as outputs, sha256 as facets."""
    report = json.loads((Path(run_dir) / "report.json").read_text(encoding="utf-8"))
    run = report["run"]
    producer = f"urn:fttool:{run['fttool_version']}"

    def dataset(artifact: dict) -> dict:
        return {"namespace": "file", "name": artifact["path"],
                "facets": {"fttool_digest": {"_producer": producer, "_schemaURL": "urn:fttool:facet:digest:1",
                                             "sha256": artifact["sha256"], "stage": artifact["stage"],
                                             "parents": artifact["parents"]}}}

    artifacts = report["lineage"]["artifacts"]
    # OpenLineage wants a UUID; derive it from fttool's run id so the export is reproducible.
    run_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:fttool:run:{run['name']}:{run['id']}")
    return {
        "eventType": "COMPLETE" if run["status"] == "succeeded" else "FAIL",
        "eventTime": run["finished_at"] or run["started_at"],
        "producer": producer,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(run_uuid), "facets": {"fttool_run": {"_producer": producer,
                                                                  "_schemaURL": "urn:fttool:facet:run:1",
                                                                  "id": run["id"]}}},
        "job": {"namespace": "fttool", "name": run["name"], "facets": {}},
        "inputs": [dataset(a) for a in artifacts if a["kind"] == "source"],
        "outputs": [dataset(a) for a in artifacts if a["kind"] == "artifact"],
    }
