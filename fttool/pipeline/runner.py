"""Run a compiled plan: fingerprints, caching, resume, record counts and lineage, in one place.

Each stage's fingerprint covers its name, version, parameters and the sha256 of every input it
reads (file contents, never names or timestamps), so an edited input is never served from cache.
Outputs of a finished stage are kept in a content-addressed cache beside the run directories and
reused by any later run whose stage fingerprint matches; cached files are re-hashed before reuse.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fttool.data.records import count_lines
from fttool.pipeline.digest import files_under, sha256_file, sha256_path
from fttool.pipeline.errors import RunError
from fttool.pipeline.plan import Plan, StageSpec, canonical_json, sha256_text
from fttool.pipeline.stage import RECORD_DATASETS, StageContext, StageResult
from fttool.stages import stage_class
from fttool.training.model_ref import is_local_model

STATE_FILE = "run_state.json"
CACHE_DIR_NAME = ".fttool-cache"


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


def _place(source: Path, target: Path) -> None:
    """Hard-link a cached file into the run (a copy across file systems)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


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
        self.cache_dir = cache_dir
        self.resume = resume
        self.state: dict = {}
        self.sources: dict[str, dict] = {}  # recipe-relative path -> lineage entry

    # -- setup -----------------------------------------------------------------------------------
    def prepare(self) -> None:
        state_path = self.run_dir / STATE_FILE
        if self.resume:
            if not state_path.is_file():
                raise RunError(f"{self.run_dir}: nothing to resume (no {STATE_FILE}); run without --resume")
            self.state = json.loads(state_path.read_text())
            if self.state["recipe_fingerprint"] != self.plan.fingerprint:
                raise RunError(
                    f"{self.run_dir}: the recipe changed since this run started (fingerprint "
                    f"{self.state['recipe_fingerprint'][:12]} -> {self.plan.fingerprint[:12]}); resuming would mix "
                    "old and new results. Start a new run, or restore the recipe to resume.")
            self.state["resumed_at"] = _now()
        else:
            if self.run_dir.exists() and any(self.run_dir.iterdir()):
                raise RunError(f"{self.run_dir} is not empty; pass --resume to continue the run there, "
                               "or choose another --output-dir")
            self.state = {"run_id": self.run_dir.name, "started_at": _now(),
                          "recipe_fingerprint": self.plan.fingerprint, "stages": {}}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "plan.json").write_text(json.dumps(self.plan.to_dict(), indent=2) + "\n")
        shutil.copyfile(self.plan.recipe_path, self.run_dir / "recipe.yaml")
        self._save_state()

    def _save_state(self) -> None:
        tmp = self.run_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=2) + "\n")
        tmp.replace(self.run_dir / STATE_FILE)

    # -- fingerprints ----------------------------------------------------------------------------
    def _external_digests(self, spec: StageSpec) -> dict[str, str]:
        digests = {}
        for rel in stage_class(spec.name).external_inputs(spec.params):
            path = (self.plan.recipe_path.parent / rel).resolve()
            if rel.startswith("demo:") or not (path.exists() or is_local_model(rel)):
                digests[rel] = "name:" + rel  # a hub id: the name and pinned revision identify it
                continue
            if rel not in self.sources:
                self.sources[rel] = {"path": os.path.relpath(path, self.run_dir), "sha256": sha256_path(path),
                                     "kind": "source", "stage": None, "parents": []}
            digests[rel] = self.sources[rel]["sha256"]
        return digests

    def fingerprint(self, spec: StageSpec) -> str:
        cls = stage_class(spec.name)
        inputs = {name: sha256_path(self.run_dir / rel) for name, rel in spec.inputs.items()}
        return sha256_text(canonical_json({
            "stage": spec.name, "version": cls.version, "params": spec.params,
            # Where outputs go is part of the key: a cached entry is materialised at its recorded paths.
            "outputs": spec.outputs, "inputs": inputs, "external": self._external_digests(spec)}))

    # -- one stage -------------------------------------------------------------------------------
    def _count(self, paths: dict[str, str], names) -> int | None:
        counted = [rel for name, rel in paths.items() if name in RECORD_DATASETS and name in names]
        return sum(count_lines(self.run_dir / rel) for rel in counted) if counted else None

    def _execute(self, spec: StageSpec, fingerprint: str) -> StageRecord:
        _remove_outputs(self.run_dir, dict(spec.outputs))
        # Keyed by fingerprint, so what a failed attempt left there is only ever reused for the same inputs.
        work_dir = self.run_dir / "work" / spec.name / f"scratch-{fingerprint[:16]}"
        work_dir.mkdir(parents=True, exist_ok=True)
        ctx = StageContext(params=spec.params,
                           inputs={n: self.run_dir / rel for n, rel in spec.inputs.items()},
                           outputs={n: self.run_dir / rel for n, rel in spec.outputs.items()},
                           recipe_dir=self.plan.recipe_path.parent, work_dir=work_dir)
        for path in ctx.outputs.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        try:
            result: StageResult = stage_class(spec.name)().run(ctx)
        except Exception as exc:
            log = self.run_dir / "logs" / f"{spec.name}.error.log"
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
            expected = records_in - sum(result.removed.values()) + sum(result.added.values())
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
        tmp.mkdir(parents=True)
        for rel in record.outputs:
            _place(self.run_dir / rel, tmp / rel)
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
        previous = self.state["stages"].get(spec.name)
        if not previous or previous["fingerprint"] != fingerprint:
            return None
        record = StageRecord(**previous)
        if not _files_match(self.run_dir, record.outputs):
            return None
        record.status = "resumed"
        return record

    def _check_unchanged(self, spec: StageSpec, fingerprint: str) -> None:
        """On resume, a stage that finished or started before must see the same inputs as then."""
        before = (self.state["stages"].get(spec.name, {}).get("fingerprint")
                  or self.state.get("started", {}).get(spec.name))
        if before and before != fingerprint:
            raise RunError(
                f"{self.run_dir}: the inputs of stage {spec.name} changed since this run started (fingerprint "
                f"{before[:12]} -> {fingerprint[:12]}: a source file or the base model differs); resuming would mix "
                "old and new results. Start a new run, or restore the inputs to resume.")

    def run_stage(self, spec: StageSpec) -> StageRecord:
        fingerprint = self.fingerprint(spec)
        if self.resume:
            self._check_unchanged(spec, fingerprint)
        record = (self.resume and self._from_resume(spec, fingerprint)) or self._from_cache(spec, fingerprint)
        if record is None:
            self.state.setdefault("started", {})[spec.name] = fingerprint
            self._save_state()
            record = self._execute(spec, fingerprint)
            self._store_in_cache(record)
        self.state["stages"][spec.name] = asdict(record)
        self._save_state()
        return record

    # -- whole run -------------------------------------------------------------------------------
    def lineage(self, records: list[StageRecord]) -> dict:
        artifacts = list(self.sources.values())
        for spec, record in zip(self.plan.stages, records):
            parents = sorted({rel for name, rel in spec.inputs.items() for rel in _expand(self.run_dir, rel)}
                             | {self.sources[r]["path"] for r in stage_class(spec.name).external_inputs(spec.params)
                                if r in self.sources})
            for rel, digest in record.outputs.items():
                artifacts.append({"path": rel, "sha256": digest, "kind": "artifact", "stage": spec.name,
                                  "parents": parents})
        return {"artifacts": artifacts}

    def check_requirements(self) -> None:
        problems = [f"stage {spec.name}: {problem}" for spec in self.plan.stages
                    for problem in stage_class(spec.name).unmet_requirements(spec.params)]
        if problems:
            raise RunError("this machine cannot run the plan: " + "; ".join(problems))

    def run(self) -> tuple[list[StageRecord], dict]:
        self.check_requirements()
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
    """Run `plan` into `output_dir` (default reports/<name>-<run id>) and write its report."""
    from fttool.report import write_report

    if resume and output_dir is None:
        raise RunError("--resume needs --output-dir naming the run directory to continue")
    run_dir = (output_dir or Path("reports") / f"{plan.name}-{new_run_id()}").resolve()
    runner = Runner(plan, run_dir, run_dir.parent / CACHE_DIR_NAME, resume)
    records, lineage = runner.run()
    write_report(plan, runner.state, records, lineage, run_dir)
    return run_dir

