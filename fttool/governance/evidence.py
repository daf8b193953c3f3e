"""Evidence that a run directory is what its report says: digests, the run digest, verify, lineage export.

`report.sha256` holds, in sha256sum format, the digests of the report files (report.json, its renderings,
MODEL_CARD.md) and of the run files (recipe.yaml, plan.json, run_state.json), then two lines:
`# run digest <sha256>`, one digest over every lineage entry and the digests of report.json and the run
files (what a sign-off approves and signs), and `# renderings digest <sha256>`, over the renderings'
digests and the run digest. The renderings are left out of the run digest because fttool renders them
again, with the sign-offs given, after a run is signed off. `verify` checks, wherever the run sits:

- every report and run file against report.sha256 (all four report files, whichever the file lists);
- both digests against the lines they cover and the lineage in report.json, so editing report.json (or
  a rendering) and rewriting its line in report.sha256 is caught;
- every rendering (report.html, report.md, MODEL_CARD.md) against what fttool renders from report.json and
  signoff.json, so a rendering edited after the sign-off fails even with every digest recomputed: the
  renderings are bound to what the signatures cover;
- every lineage artifact the run kept, against its sha256;
- that every other file is volatile (fttool.pipeline.layout.VOLATILE): a file added to model/ fails;
- that no file, volatile ones included, is a symbolic link (to a file elsewhere or another run's signoff.json);
- every export under export/ against its manifest.json, and an exported adapter or full model against model/;
- every sign-off: given on the run as it is now (or listed by the report as superseded), its signature
  valid, and with `allowed_signers` made by a key the file lists; with `allowed_signers`, at least one
  sign-off of the run as it is now must be signed by such a key.

Sources (the recipe's inputs and a local base model) are recorded by content digest with the path as the
recipe gave it; `sources=True` also re-hashes them where they are now. The digests are not secret: whoever
can write the run directory and run this code can rewrite them all. Only a signed sign-off, checked against
allowed signers kept elsewhere, shows that the run is the one a person approved (docs/security.md).
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

from fttool.governance import signing
from fttool.governance.approvals import EvidenceError, given_signoffs, read_signoffs, require_regular, unreadable
from fttool.pipeline.digest import files_under, sha256_file, sha256_path
from fttool.pipeline.layout import (
    DIGESTS,
    EXPORT,
    MODEL_CARD,
    REPORT_FILES,
    REPORT_JSON,
    RUN_FILES,
    SIGNOFFS,
    RunLayout,
    is_volatile,
)

RUN_MARK, RENDERINGS_MARK = "run digest", "renderings digest"
# What `fttool export` writes beside the model files: the sha256 of every file, the model card, the sign-offs.
EXPORT_MANIFEST, EXPORT_CARD = "manifest.json", "README.md"
MODEL_DIR = "model"
_DIGEST_LINE = re.compile(r"([0-9a-f]{64})  (\S.*)")
_MARK_LINE = re.compile(rf"# ({RUN_MARK}|{RENDERINGS_MARK}) ([0-9a-f]{{64}})")
RENDERINGS = {"html": "report.html", "md": "report.md"}


@dataclass(frozen=True)
class Mismatch:
    path: str
    problem: str

    def __str__(self) -> str:
        # A file name is anyone's text: a line break in it must not forge a line of verify's output.
        shown = ascii(self.path) if any(unicodedata.category(ch)[0] in "CZ" and ch != " " for ch in self.path) \
            else self.path
        return f"{shown}: {self.problem}"


# -- reading ------------------------------------------------------------------------------------------
def read_report(run_dir: Path) -> dict:
    """report.json through fttool.report's one reader, or EvidenceError saying why it cannot be read."""
    from fttool.report.reader import ReportInvalid
    from fttool.report.reader import read_report as read_valid_report

    path = RunLayout(Path(run_dir)).report
    require_regular(path)
    try:
        return read_valid_report(path)
    except ReportInvalid as exc:
        raise EvidenceError(f"{exc}\nrestore the report fttool wrote") from None
    except RecursionError:  # json's decoder recurses once per nested array or object
        raise unreadable(path, 1, "nested too deep to be a report") from None


@dataclass(frozen=True)
class Digests:
    """What report.sha256 records."""
    files: dict[str, str]  # file name -> sha256
    run: str | None  # the run digest: lineage, report.json and the run files; what a sign-off approves
    renderings: str | None  # ties the renderings' digests to the run digest


def read_digests(run_dir: Path) -> Digests:
    """report.sha256 as recorded; EvidenceError for a line in no known format."""
    path = RunLayout(Path(run_dir)).digests
    require_regular(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise unreadable(path, 1, "not a text file") from None
    files: dict[str, str] = {}
    marks: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        file_line, mark_line = _DIGEST_LINE.fullmatch(line), _MARK_LINE.fullmatch(line)
        if mark_line:
            marks[mark_line.group(1)] = mark_line.group(2)
        elif file_line:
            files[file_line.group(2)] = file_line.group(1)
        elif line.strip():
            raise unreadable(path, number, "not a '<sha256>  <file>' or '# run digest <sha256>' line")
    return Digests(files, marks.get(RUN_MARK), marks.get(RENDERINGS_MARK))


# -- digests ------------------------------------------------------------------------------------------
def covered_files(run_dir: Path) -> list[str]:
    """The report and run files that exist: the ones report.sha256 lists and the run digest covers."""
    layout = RunLayout(Path(run_dir))
    return [name for name in (*REPORT_FILES, *RUN_FILES) if (layout / name).is_file()]


def required_files(report: dict) -> list[str]:
    """Covered files a run must have: report.json, the model card, the run files and the renderings it asked for."""
    try:
        formats = report["recipe"]["resolved"]["report"]["formats"]
    except (KeyError, TypeError):
        formats = list(RENDERINGS)
    return [REPORT_JSON, MODEL_CARD, *RUN_FILES, *(RENDERINGS[f] for f in formats if f in RENDERINGS)]


def run_digest(file_digests: dict[str, str], artifacts: list[dict]) -> str:
    """One sha256 over every lineage entry (path, kind, sha256) and the digests of report.json and the run files.

    The renderings are left out: fttool renders them again, with the sign-offs given, after the run is signed.
    """
    lines = [f"file\0{name}\0{file_digests.get(name)}\n" for name in (REPORT_JSON, *RUN_FILES)]
    lines += sorted(f"{a['kind']}\0{a['path']}\0{a['sha256']}\n" for a in artifacts)
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def renderings_digest(file_digests: dict[str, str], run: str) -> str:
    """One sha256 over the renderings' digests and the run digest, so that no line of report.sha256 stands alone."""
    lines = [f"{name}\0{file_digests.get(name)}\n" for name in REPORT_FILES if name != REPORT_JSON]
    return hashlib.sha256("".join([*lines, run]).encode("utf-8")).hexdigest()


def write_digests(run_dir: Path) -> str:
    """Write report.sha256 for the files as they are now; returns the run digest."""
    layout = RunLayout(Path(run_dir))
    digests = {name: sha256_file(layout / name) for name in covered_files(run_dir)}
    # fttool writes digests only for a report it has just validated and written, so it is read as it is.
    digest = run_digest(digests, json.loads(layout.report.read_text(encoding="utf-8"))["lineage"]["artifacts"])
    lines = [f"{sha}  {name}\n" for name, sha in digests.items()]
    lines += [f"# {RUN_MARK} {digest}\n", f"# {RENDERINGS_MARK} {renderings_digest(digests, digest)}\n"]
    layout.digests.write_text("".join(lines), encoding="utf-8")
    return digest


def require_report_unchanged(run_dir: Path) -> None:
    """Raise EvidenceError unless report.json is the one report.sha256 recorded and no report file is a link
    (before re-rendering them)."""
    layout = RunLayout(Path(run_dir))
    linked = [name for name in (*REPORT_FILES, DIGESTS) if (layout / name).is_symlink()]
    if linked:  # fttool writes these files next: through a link it would overwrite a file elsewhere
        raise EvidenceError(f"{layout / linked[0]} is a symbolic link: a run directory holds its own files, and fttool "
                            "will not write through it; restore the file fttool wrote")
    recorded = read_digests(run_dir).files.get(REPORT_JSON) if layout.digests.exists() else None
    if recorded is None or recorded != sha256_file(layout.report):
        raise EvidenceError(f"{layout.report}: differs from the digest in {DIGESTS} (or none is recorded): it was "
                            "edited after fttool wrote it, so fttool will not render it or record new digests; "
                            "restore the report fttool wrote")


# -- verify -------------------------------------------------------------------------------------------
def _check_covered(run_dir: Path, report: dict, recorded: dict[str, str]) -> list[Mismatch]:
    layout, problems = RunLayout(run_dir), []
    required = required_files(report)
    for name in (*REPORT_FILES, *RUN_FILES):
        present = (layout / name).is_file()
        if not present:
            if name in required or name in recorded:
                problems.append(Mismatch(name, "missing"))
        elif name not in recorded:
            problems.append(Mismatch(name, f"has no digest in {DIGESTS}: it cannot be checked"))
        elif sha256_file(layout / name) != recorded[name]:
            problems.append(Mismatch(name, f"sha256 differs from {DIGESTS}: the file was changed"))
    return problems


def check_artifacts(run_dir: Path, artifacts: list[dict]) -> list[Mismatch]:
    root, problems = run_dir.resolve(), []
    for artifact in artifacts:
        if artifact["kind"] != "artifact" or artifact.get("retained") is False:
            continue
        path = (run_dir / artifact["path"]).resolve()
        if not path.is_relative_to(root) or path == root:
            problems.append(Mismatch(artifact["path"], "lineage artifact outside the run directory"))
        elif not path.exists():
            problems.append(Mismatch(artifact["path"], "artifact is missing"))
        elif sha256_path(path) != artifact["sha256"]:
            problems.append(Mismatch(artifact["path"], "artifact sha256 differs from the report's lineage"))
    return problems


def _check_renderings(run_dir: Path, report: dict, recorded: Digests) -> list[Mismatch]:
    """Each rendering against what fttool renders from report.json and signoff.json, which the signatures cover.

    The renderings are rendered again after each sign-off, so no signature can cover their bytes; rendering them
    again here binds them to what is signed: report.json (through the run digest) and each sign-off (its own
    signature). Only renderings whose digest holds, of a run whose run digest holds, are compared: the others are
    reported already, and a report.json that changed leaves nothing to render from.
    """
    from fttool import __version__
    from fttool.report.model_card import render_model_card
    from fttool.report.render import RENDERINGS as RENDERERS

    layout = RunLayout(run_dir)
    if recorded.run is None or recorded.run != run_digest(recorded.files, report["lineage"]["artifacts"]) \
            or recorded.files.get(REPORT_JSON) != sha256_file(layout.report):
        return []
    signoffs = given_signoffs(run_dir)
    renderers = {**dict(RENDERERS.values()), MODEL_CARD: render_model_card}
    version = (report.get("run") or {}).get("fttool_version")
    other = f" (or rendered by fttool {version}, and this is {__version__})" if version != __version__ else ""
    problems = []
    for name, render in renderers.items():
        path = layout / name
        if path.is_file() and not path.is_symlink() and recorded.files.get(name) == sha256_file(path) \
                and path.read_bytes() != render(report, signoffs).encode("utf-8"):
            problems.append(Mismatch(name, f"differs from what fttool renders from report.json and {SIGNOFFS}, "
                                           f"which the sign-offs cover: it was edited after fttool wrote it{other}; "
                                           "render it again with fttool report RUN_DIR"))
    return problems


def _check_no_links(run_dir: Path) -> list[Mismatch]:
    """A run directory holds its own files: a link would let a file elsewhere (or another run's) stand in for one."""
    return [Mismatch(rel, "a symbolic link: a run directory holds its own files, not links to others")
            for rel in RunLayout(run_dir).files() if (run_dir / rel).is_symlink()]


def _check_nothing_added(run_dir: Path, artifacts: list[dict]) -> list[Mismatch]:
    known = {a["path"] for a in artifacts if a["kind"] == "artifact"} | set(REPORT_FILES) | set(RUN_FILES) | {DIGESTS}
    return [Mismatch(rel, "not in the report's lineage: added after the run") for rel in RunLayout(run_dir).files()
            if rel not in known and not is_volatile(rel)]


def _check_export(export: Path, rel: str, model_files: dict[str, str]) -> list[Mismatch]:
    """One export directory against its manifest.json, and a copied model (adapter, full) against the lineage."""
    try:
        manifest = json.loads((export / EXPORT_MANIFEST).read_text(encoding="utf-8"))
        listed, kind = dict(manifest["files"]), manifest["export"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return [Mismatch(rel, f"no readable {EXPORT_MANIFEST}: not an export fttool wrote")]
    present = {path.relative_to(export).as_posix() for path in files_under(export)} - {EXPORT_MANIFEST}
    problems = []
    for name in sorted(present | set(listed)):
        if name not in listed:
            problems.append(Mismatch(f"{rel}/{name}", f"not in the export's {EXPORT_MANIFEST}: added after the export"))
        elif name not in present:
            problems.append(Mismatch(f"{rel}/{name}", "missing from the export"))
        elif sha256_file(export / name) != listed[name]:
            problems.append(Mismatch(f"{rel}/{name}", f"sha256 differs from the export's {EXPORT_MANIFEST}"))
        elif kind != "merged" and name not in (EXPORT_CARD, SIGNOFFS):  # a merge computes new weights
            if f"{MODEL_DIR}/{name}" not in model_files:
                problems.append(Mismatch(f"{rel}/{name}", f"not among the run's model files ({MODEL_DIR}/ in the "
                                                          "lineage)"))
            elif listed[name] != model_files[f"{MODEL_DIR}/{name}"]:
                problems.append(Mismatch(f"{rel}/{name}", f"differs from the run's {MODEL_DIR}/{name}"))
    return problems


def _check_exports(run_dir: Path, artifacts: list[dict]) -> list[Mismatch]:
    """Exports written into the run directory: what gets published must be what the run trained."""
    root = run_dir / EXPORT
    if not root.is_dir() or root.is_symlink():
        return []
    model_files = {a["path"]: a["sha256"] for a in artifacts if a["kind"] == "artifact"}
    problems = []
    for export in sorted(root.iterdir()):
        rel = f"{EXPORT}/{export.name}"
        if export.is_dir() and not export.is_symlink():
            problems += _check_export(export, rel, model_files)
        else:
            problems.append(Mismatch(rel, "not an export fttool wrote (each export is a directory)"))
    return problems


def recipe_dir_of(run_dir: Path, report: dict) -> Path:
    """Where the recipe was when the run started, as report.json records it (relative to the run directory)."""
    return (Path(run_dir) / report["recipe"]["path"]).parent


def check_sources(run_dir: Path, report: dict, recipe_dir: Path | None = None) -> list[Mismatch]:
    """Re-hash every source where it is now: relative paths from `recipe_dir` (default: where the recipe was)."""
    base = Path(recipe_dir) if recipe_dir else recipe_dir_of(run_dir, report)
    problems = []
    for artifact in report["lineage"]["artifacts"]:
        if artifact["kind"] != "source":
            continue
        path = (base / Path(artifact["path"]).expanduser()).resolve()
        if not path.exists():
            problems.append(Mismatch(artifact["path"], f"source is missing (looked for {path})"))
        elif sha256_path(path) != artifact["sha256"]:
            problems.append(Mismatch(artifact["path"], f"source sha256 differs from the report's lineage ({path})"))
    return problems


def current_run_digest(run_dir: Path) -> str | None:
    """The run digest report.sha256 records, if it agrees with the digests it lists and the report's lineage."""
    recorded = read_digests(run_dir)
    artifacts = read_report(run_dir)["lineage"]["artifacts"]
    return recorded.run if recorded.run and run_digest(recorded.files, artifacts) == recorded.run else None


def _check_marks(recorded: Digests, artifacts: list[dict]) -> list[Mismatch]:
    if recorded.run is None:
        return [Mismatch(DIGESTS, "has no run digest: the run cannot be checked as a whole")]
    if run_digest(recorded.files, artifacts) != recorded.run:
        return [Mismatch(DIGESTS, "the run digest does not match the digests and lineage it covers: "
                                  "report.sha256 or the report was rewritten")]
    if recorded.renderings != renderings_digest(recorded.files, recorded.run):
        return [Mismatch(DIGESTS, "the renderings digest does not match the renderings' digests: report.sha256 "
                                  "was rewritten")]
    return []


def verify(run_dir: Path, sources: bool = False, recipe_dir: Path | None = None,
           allowed_signers: Path | None = None) -> list[Mismatch]:
    """Every difference between the run directory and its evidence; empty when the run verifies.

    Raises EvidenceError when report.json, report.sha256 or signoff.json cannot be read at all, or
    signing.SignatureError when the allowed signers file cannot.
    """
    run_dir = Path(run_dir)
    report = read_report(run_dir)
    artifacts = report["lineage"]["artifacts"]
    problems: list[Mismatch] = []
    if RunLayout(run_dir).digests.exists():
        recorded = read_digests(run_dir)
    else:
        problems.append(Mismatch(DIGESTS, "missing: the report's own digests cannot be checked"))
        recorded = Digests({}, None, None)
    problems += _check_covered(run_dir, report, recorded.files)
    problems += _check_marks(recorded, artifacts)
    problems += _check_renderings(run_dir, report, recorded)
    problems += check_artifacts(run_dir, artifacts)
    problems += _check_nothing_added(run_dir, artifacts)
    problems += _check_no_links(run_dir)
    problems += _check_exports(run_dir, artifacts)
    if sources:
        problems += check_sources(run_dir, report, recipe_dir)
    current = recorded.run if recorded.run and run_digest(recorded.files, artifacts) == recorded.run else None
    checks = check_signoffs(run_dir, report, current, allowed_signers)
    problems += [Mismatch(SIGNOFFS, check.problem) for check in checks if check.problem]
    if allowed_signers and not any(check.allowed for check in checks):
        # Asking who signed means a signature is required: else deleting signoff.json would pass.
        problems.append(Mismatch(SIGNOFFS, "no sign-off of the run as it is now is signed by a key the allowed "
                                           "signers file lists (fttool signoff --key)"))
    return problems


# -- sign-offs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignoffCheck:
    entry: dict
    problem: str | None  # why the sign-off makes verify fail; None when it holds
    notes: tuple[str, ...]  # what verify says about it: superseded, unsigned, who signed, waivers
    allowed: bool = False  # it approves the run as it is now, signed by a key the allowed signers file lists
    waivers_count: bool = False  # allowed, and its run digest is the run's now: its waivers unlock an export


UNCOUNTED_WAIVER = (" (counts for nothing: a waiver unlocks an export only in a sign-off of the run as it is, signed "
                    "by a key --allowed-signers FILE lists)")


def signed_payload(entry: dict) -> bytes:
    """What a signature covers: the sign-off without its signature and key, as canonical JSON."""
    fields = {k: v for k, v in entry.items() if k not in ("signature", "key")}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _signature_state(entry: dict, allowed: list[signing.AllowedSigner] | None) -> tuple[str | None, str]:
    """(problem, note) for the signature of one sign-off."""
    if "signature" not in entry:
        return None, "unsigned"
    try:
        key = signing.verify(signed_payload(entry), str(entry["signature"]))
    except signing.SignatureError as exc:
        return f"signature invalid: {exc}", "signature invalid"
    if key != entry.get("key"):
        return "signature made with another key than the one the sign-off names", "signature invalid"
    if allowed is None:
        return None, "signature valid, key not checked (pass --allowed-signers)"
    principals = [signer.principals for signer in allowed if signer.public_key == key]
    if not principals:
        return "signed with a key that is not in the allowed signers file", "signed by an unknown key"
    return None, f"signed by {principals[0]} (allowed signers)"


def _approves(entry: dict, report: dict, current: str | None, report_sha256: str) -> bool | None:
    """True when the sign-off approved the run as it is now, None when the report lists it as superseded."""
    if (entry.get("run_digest") == current) if "run_digest" in entry else entry["report_sha256"] == report_sha256:
        return True
    listed = {(e.get("by"), e.get("role"), e.get("at"), e.get("report_sha256")) for e in report.get("signoff") or []}
    return None if (entry["by"], entry["role"], entry["at"], entry["report_sha256"]) in listed else False


def check_signoffs(run_dir: Path, report: dict, current: str | None,
                   allowed_signers: Path | None = None) -> list[SignoffCheck]:
    """Each sign-off in signoff.json: whether it approved the run as it is now, and its signature.

    fttool rewrites a signed-off report only to add to it (review import), and then lists the old sign-offs
    as superseded; any other sign-off of another run digest means the run changed after it was approved.
    """
    allowed = signing.read_allowed_signers(allowed_signers) if allowed_signers else None
    report_sha256 = sha256_file(RunLayout(Path(run_dir)).report)
    checks = []
    for entry in read_signoffs(run_dir):
        who = f"{entry['by']} ({entry['role']}) at {entry['at']}"
        approves = _approves(entry, report, current, report_sha256)
        problem = None if approves is not False else f"the run changed after {who} signed off"
        notes = [] if approves is not None else [f"approved an older report (sha256 {entry['report_sha256'][:12]}), "
                                                 "before fttool added to it; it does not approve this one"]
        signature_problem, signature_note = _signature_state(entry, allowed)
        notes.append(signature_note)
        if signature_problem:
            problem = f"sign-off by {who}: {signature_problem}" + (f"; {problem}" if problem else "")
        trusted = allowed is not None and approves is True and "signature" in entry and not signature_problem
        counted = trusted and current is not None and entry.get("run_digest") == current
        notes += [f"waived {w.get('rule')}: {w.get('reason')}{'' if counted else UNCOUNTED_WAIVER}"
                  for w in entry.get("waivers") or []]
        checks.append(SignoffCheck(entry, problem, tuple(notes), trusted, counted))
    return checks


# -- lineage export -----------------------------------------------------------------------------------
def openlineage_event(run_dir: Path) -> dict:
    """The run as an OpenLineage RunEvent: sources as inputs, run artifacts as outputs, sha256 as facets."""
    report = read_report(run_dir)
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
