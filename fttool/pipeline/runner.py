"""Run a compiled plan: fingerprints, caching, resume, record counts and lineage, in one place.

Each stage's fingerprint covers its name, parameters, the sha256 of every input it reads (file contents, never names
or timestamps), and the software (fttool.pipeline.software: fttool's own files, the tracked packages' versions), so
an edited input, another fttool or another presidio is never served from cache.
Outputs of a finished stage are kept in a content-addressed cache (beside the run directories, or
$FTTOOL_CACHE_DIR) as read-only copies, and copied into any later run whose stage fingerprint matches;
cached files are re-hashed before reuse. On resume, a finished stage's outputs are reused only as the seal the
runner keeps in the cache records them, never on run_state.json's word (fttool.pipeline.resume_seal). The cache
holds what the stages wrote, raw records included:
`fttool cache purge` empties it. A run holds a lock on its directory while it writes there, and when it
succeeds it deletes work/, where the records before PII scrubbing were kept.
"""
from __future__ import annotations

import datetime as dt
import json
import secrets
import shutil
import stat
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from fttool.data.records import count_lines
from fttool.pii.settings import withhold_deny_lists
from fttool.pipeline.digest import files_under, sha256_file, sha256_path
from fttool.pipeline.errors import RunError
from fttool.pipeline.layout import LOCK, WORK, RunLayout, RunLock, cache_dir
from fttool.pipeline.plan import Plan, StageSpec, canonical_json, sha256_text, thaw
from fttool.pipeline.resume_seal import SEALS, check_against_seal, read_seal, sealed_outputs_present, write_seal
from fttool.pipeline.software import code_digest, package_versions
from fttool.pipeline.stage import RECORD_DATASETS, StageContext, StageResult
from fttool.stages import stage_class
from fttool.training.model_ref import is_local_model

READ_ONLY = stat.S_IRUSR


@dataclass
class StageRecord:
    name: str
    status: str  # ran | cached | resumed
    fingerprint: str
    seconds: float
    records_in: int | None
    records_out: int | None
    removed: dict[str, int]
    added: dict[str, int]
    outputs: dict[str, str]  # run-relative file path -> sha256
    result: dict = field(default_factory=dict)  # the StageResult, as stored


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def _output_files(run_dir: Path, outputs: dict[str, str]) -> dict[str, str]:
    hashes = {}
    for rel in outputs.values():
        for path in files_under(run_dir / rel):
            hashes[path.relative_to(run_dir).as_posix()] = sha256_file(path)
    return hashes


def _files_match(root: Path, hashes: dict[str, str]) -> bool:
    return all((root / rel).is_file() and sha256_file(root / rel) == digest for rel, digest in hashes.items())


def _place(source: Path, target: Path, read_only: bool = False) -> None:
    """Copy a file, never hard-link it: an edit in one run must not reach the cache or another run."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    shutil.copyfile(source, target)
    if read_only:
        target.chmod(READ_ONLY)


def purge_cache(directory: Path | None = None) -> tuple[Path, int]:
    """Delete every entry of the stage cache (default: $FTTOOL_CACHE_DIR, else reports/.fttool-cache).

    Returns the cache directory and how many stage outputs were deleted (resume seals go too, uncounted).
    """
    root = Path(directory) if directory else cache_dir(Path("reports") / "run")
    entries = [entry for stage in sorted(root.iterdir()) if stage.is_dir() for entry in stage.iterdir()] \
        if root.is_dir() else []
    for entry in entries:
        if entry.is_dir():
            shutil.rmtree(entry)  # read-only files go with their directory, which stays writable
        else:
            entry.unlink()
    return root, sum(entry.parent.name != SEALS for entry in entries)


def _remove_outputs(run_dir: Path, outputs: dict[str, str]) -> None:
    for rel in outputs.values():
        path = run_dir / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


class Runner:
    def __init__(self, plan: Plan, run_dir: Path, cache_dir: Path, resume: bool):
        self.plan = plan
        self.run_dir = run_dir
        self.layout = RunLayout(run_dir)
        self.cache_dir = cache_dir
        self.resume = resume
        self.state: dict = {}
        self.sealed: dict = {}  # on resume: the finished stages' records as sealed outside the run directory
        self.sources: dict[str, dict] = {}  # the path as the recipe gives it -> lineage entry

    # -- setup -----------------------------------------------------------------------------------
    def prepare(self) -> None:
        state_path = self.layout.state
        if self.resume:
            if not state_path.is_file():
                raise RunError(f"{self.run_dir}: nothing to resume (no {state_path.name}); run without --resume")
            links = [rel for rel in self.layout.files() if (self.run_dir / rel).is_symlink()]
            if links:  # the run writes plan.json, its state and stage outputs: never through a link to elsewhere
                raise RunError(f"{self.run_dir / links[0]} is a symbolic link; a run directory holds its own files: "
                               "remove the link to resume")
            self.state = self._read_state()
            if self.state["recipe_fingerprint"] != self.plan.fingerprint:
                raise RunError(
                    f"{self.run_dir}: the recipe changed since this run started (fingerprint "
                    f"{self.state['recipe_fingerprint'][:12]} -> {self.plan.fingerprint[:12]}); resuming would mix "
                    "old and new results. Start a new run, or restore the recipe to resume.")
            self._check_seal()
            self.state["resumed_at"] = _now()
        else:
            if self.run_dir.exists() and any(p.name != LOCK for p in self.run_dir.iterdir()):
                raise RunError(f"{self.run_dir} is not empty; pass --resume to continue the run there, "
                               "or choose another --output-dir")
            self.state = {"run_id": self.run_dir.name, "started_at": _now(),
                          "recipe_fingerprint": self.plan.fingerprint, "stages": {}}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.layout.plan.write_text(json.dumps(withhold_deny_lists(self.plan.to_dict()), indent=2) + "\n")
        self._copy_recipe()
        self._save_state()

    def _copy_recipe(self) -> None:
        """The recipe as given, or, when it names deny-list values (people or accounts to scrub), the resolved
        recipe with them withheld, headed by the original file's sha256 so it can be matched to the reviewed one."""
        resolved = thaw(self.plan.recipe)
        withheld = withhold_deny_lists(resolved)
        if withheld == resolved:
            shutil.copyfile(self.plan.recipe_path, self.layout.recipe)
            return
        header = (f"# {self.plan.recipe_path.name} as run, defaults resolved and deny-list values withheld; the "
                  f"original file's sha256 is {sha256_file(self.plan.recipe_path)}\n")
        self.layout.recipe.write_text(header + yaml.safe_dump(withheld, sort_keys=False, allow_unicode=True))

    def _read_state(self) -> dict:
        try:
            state = json.loads(self.layout.state.read_text(encoding="utf-8"))
            if isinstance(state, dict) and isinstance(state.get("stages"), dict) and "recipe_fingerprint" in state:
                return state
        except (OSError, ValueError):
            pass
        raise RunError(f"{self.layout.state}: not a run state fttool wrote; start a new run")

    def _check_seal(self) -> None:
        """The seal, not run_state.json, says which stage outputs a resume may reuse (fttool.pipeline.resume_seal)."""
        sealed = read_seal(self.cache_dir, self.run_dir)
        if sealed is None:
            _log(f"resume: no seal of this run's finished stages in {self.cache_dir} (the run moved, or the cache was "
                 "purged or is another), so none is taken from the run directory: each comes from the cache or runs "
                 "again")
        else:
            check_against_seal(self.run_dir, self.layout.state, self.state["stages"], sealed)
        self.sealed = sealed or {}
        # Records the seal does not hold are dropped, so that saving the state never seals what it did not vouch for.
        self.state["stages"] = {name: record for name, record in self.state["stages"].items()
                                if self.sealed.get(name) == record}

    def _save_state(self) -> None:
        # The seal first: a run stopped between the two writes leaves a state that the seal holds.
        write_seal(self.cache_dir, self.run_dir, self.state["stages"])
        tmp = self.layout.state.with_name(self.layout.state.name + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=2) + "\n")
        tmp.replace(self.layout.state)

    # -- fingerprints ----------------------------------------------------------------------------
    def _external_digests(self, spec: StageSpec) -> dict[str, str]:
        digests = {}
        for rel in stage_class(spec.name).external_inputs(spec.params):
            path = (self.plan.recipe_path.parent / rel).resolve()
            if rel.startswith("demo:") or not (path.exists() or is_local_model(rel)):
                digests[rel] = "name:" + rel  # a hub id: the name and pinned revision identify it
                continue
            if rel not in self.sources:
                # Recorded by content, with the path as the recipe gives it, so the run can move and still verify.
                self.sources[rel] = {"path": rel, "sha256": sha256_path(path), "kind": "source", "stage": None,
                                     "parents": []}
            digests[rel] = self.sources[rel]["sha256"]
        return digests

    def fingerprint(self, spec: StageSpec) -> str:
        cls = stage_class(spec.name)
        inputs = {name: sha256_path(self.run_dir / rel) for name, rel in spec.inputs.items()}
        keyed = cls.secret_digests(spec.params)
        params = {key: value for key, value in thaw(spec.params).items() if key not in cls.unkeyed_params}
        return sha256_text(canonical_json({
            "stage": spec.name, "code": code_digest(), "packages": package_versions(), "params": params,
            # Where outputs go is part of the key: a cached entry is materialised at its recorded paths.
            "outputs": spec.outputs, "inputs": inputs, "external": self._external_digests(spec),
            **({"secrets": keyed} if keyed else {})}))

    # -- one stage -------------------------------------------------------------------------------
    def _count(self, paths: dict[str, str], names) -> int | None:
        counted = [rel for name, rel in paths.items() if name in RECORD_DATASETS and name in names]
        return sum(count_lines(self.run_dir / rel) for rel in counted) if counted else None

    def context(self, spec: StageSpec, fingerprint: str) -> StageContext:
        """The one place a StageContext is made: paths wired into the run directory, directories created."""
        work_dir = self.layout.work_dir(spec.name, fingerprint)
        work_dir.mkdir(parents=True, exist_ok=True)
        ctx = StageContext(params=spec.params,
                           inputs={n: self.run_dir / rel for n, rel in spec.inputs.items()},
                           outputs={n: self.run_dir / rel for n, rel in spec.outputs.items()},
                           recipe_dir=self.plan.recipe_path.parent, work_dir=work_dir, run_dir=self.run_dir)
        for path in ctx.outputs.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        return ctx

    def _execute(self, spec: StageSpec, fingerprint: str) -> StageRecord:
        _remove_outputs(self.run_dir, dict(spec.outputs))
        ctx = self.context(spec, fingerprint)
        started = time.perf_counter()
        try:
            result: StageResult = stage_class(spec.name)().run(ctx)
        except Exception as exc:
            log = self.layout.error_log(spec.name)
            log.parent.mkdir(exist_ok=True)
            log.write_text(traceback.format_exc())
            raise RunError(f"stage {spec.name} failed: {type(exc).__name__}: {exc} (traceback in {log})") from exc
        seconds = time.perf_counter() - started
        missing = [rel for rel in spec.outputs.values() if not (self.run_dir / rel).exists()]
        if missing:
            raise RunError(f"stage {spec.name} did not write its declared outputs: {', '.join(missing)}")
        cls = stage_class(spec.name)
        records_in = (result.records_read if result.records_read is not None
                      else self._count(dict(spec.inputs), cls.reads))
        records_out = self._count(dict(spec.outputs), cls.writes)
        if records_out is not None:
            expected = (records_in or 0) - sum(result.removed.values()) + sum(result.added.values())
            if expected != records_out:
                raise RunError(
                    f"stage {spec.name} lost track of records: {records_in} in - {sum(result.removed.values())} "
                    f"removed + {sum(result.added.values())} added = {expected}, but {records_out} written")
        return StageRecord(spec.name, "ran", fingerprint, round(seconds, 3), records_in, records_out,
                           dict(result.removed), dict(result.added), _output_files(self.run_dir, dict(spec.outputs)),
                           asdict(result))

    def _store_in_cache(self, record: StageRecord) -> None:
        entry = self.cache_dir / record.name / record.fingerprint
        tmp = entry.with_name(entry.name + f".tmp-{secrets.token_hex(3)}")
        # The cache holds raw records: only the user who ran fttool may read it.
        self.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp.mkdir(parents=True)
        for rel in record.outputs:
            _place(self.run_dir / rel, tmp / rel, read_only=True)
        (tmp / "record.json").write_text(json.dumps(asdict(record), indent=2))
        if entry.exists():
            shutil.rmtree(entry)
        tmp.rename(entry)

    def _from_cache(self, spec: StageSpec, fingerprint: str) -> StageRecord | None:
        entry = self.cache_dir / spec.name / fingerprint
        if not (entry / "record.json").is_file():
            return None
        record = StageRecord(**json.loads((entry / "record.json").read_text()))
        if not _files_match(entry, record.outputs):  # a cached file was edited: do not trust the entry
            shutil.rmtree(entry)
            return None
        _remove_outputs(self.run_dir, dict(spec.outputs))
        for rel in record.outputs:
            _place(entry / rel, self.run_dir / rel)
        record.status, record.seconds = "cached", 0.0
        return record

    def _from_resume(self, spec: StageSpec, fingerprint: str) -> StageRecord | None:
        previous = self.sealed.get(spec.name)  # as sealed: run_state.json may have been edited
        if not previous or previous["fingerprint"] != fingerprint or not sealed_outputs_present(self.run_dir,
                                                                                                previous):
            return None
        record = StageRecord(**previous)
        record.status = "resumed"
        return record

    def _check_unchanged(self, spec: StageSpec, fingerprint: str) -> None:
        """On resume, a stage that finished or started before must see the same inputs as then."""
        before = (self.state["stages"].get(spec.name, {}).get("fingerprint")
                  or self.state.get("started", {}).get(spec.name))
        if before and before != fingerprint:
            raise RunError(
                f"{self.run_dir}: the inputs of stage {spec.name} changed since this run started (fingerprint "
                f"{before[:12]} -> {fingerprint[:12]}: a source file, the base model, fttool or a package differs); "
                "resuming would mix old and new results. Start a new run, or restore the inputs to resume.")

    def run_stage(self, spec: StageSpec) -> StageRecord:
        fingerprint = self.fingerprint(spec)
        if self.resume:
            self._check_unchanged(spec, fingerprint)
        cacheable = stage_class(spec.name).cacheable(spec.params)
        record = ((self.resume and self._from_resume(spec, fingerprint))
                  or (cacheable and self._from_cache(spec, fingerprint)) or None)
        if record is None:
            self.state.setdefault("started", {})[spec.name] = fingerprint
            self._save_state()
            record = self._execute(spec, fingerprint)
            if cacheable:
                self._store_in_cache(record)
        self.state["stages"][spec.name] = asdict(record)
        self._save_state()
        return record

    # -- whole run -------------------------------------------------------------------------------
    def lineage(self, records: list[StageRecord]) -> dict:
        """Sources and every stage output with its sha256 and parents; work/ files are marked as not kept."""
        artifacts = list(self.sources.values())
        for spec, record in zip(self.plan.stages, records):
            parents = sorted({rel for name, rel in spec.inputs.items() for rel in _expand(self.run_dir, rel)}
                             | {self.sources[r]["path"] for r in stage_class(spec.name).external_inputs(spec.params)
                                if r in self.sources})
            for rel, digest in record.outputs.items():
                artifact: dict = {"path": rel, "sha256": digest, "kind": "artifact", "stage": spec.name,
                                  "parents": parents}
                if rel.startswith(WORK + "/"):
                    artifact["retained"] = False
                artifacts.append(artifact)
        return {"artifacts": artifacts}

    def check_requirements(self) -> None:
        problems = [f"stage {spec.name}: {problem}" for spec in self.plan.stages
                    for problem in stage_class(spec.name).unmet_requirements(spec.params)]
        if problems:
            raise RunError("this machine cannot run the plan: " + "; ".join(problems))

    def run(self) -> tuple[list[StageRecord], dict]:
        """Every stage in order; the caller checks requirements first and holds the run directory's lock."""
        self.prepare()
        records = []
        for index, spec in enumerate(self.plan.stages, start=1):
            _log(f"[{index}/{len(self.plan.stages)}] {spec.name} ...")
            record = self.run_stage(spec)
            records.append(record)
            _log(f"[{index}/{len(self.plan.stages)}] {spec.name}: {record.status} in {record.seconds:.1f}s")
        self.state["finished_at"] = _now()
        self._save_state()
        return records, self.lineage(records)


def _expand(run_dir: Path, rel: str) -> list[str]:
    return [p.relative_to(run_dir).as_posix() for p in files_under(run_dir / rel)]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_plan(plan: Plan, output_dir: Path | None = None, resume: bool = False) -> Path:
    """Run `plan` into `output_dir` (default reports/<name>-<run id>) and write its report.

    The run directory is locked while the run writes there; when the report is written, work/ is deleted, so
    the records as they were before PII scrubbing do not stay in a directory people share.
    """
    from fttool.report import write_report

    if resume and output_dir is None:
        raise RunError("--resume needs --output-dir naming the run directory to continue")
    run_dir = (output_dir or Path("reports") / f"{plan.name}-{new_run_id()}").resolve()
    layout = RunLayout(run_dir)
    runner = Runner(plan, run_dir, cache_dir(run_dir), resume)
    runner.check_requirements()
    with RunLock(layout, "fttool run", "or choose another --output-dir"):
        records, lineage = runner.run()
        write_report(plan, runner.state, records, lineage, run_dir)
        shutil.rmtree(layout.work, ignore_errors=True)
    return run_dir
