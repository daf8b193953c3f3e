"""The runner: caching keyed on file contents, resume, lineage and record conservation."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.runs import data_project as make_project

from fttool.cli import cli
from fttool.data.records import read_jsonl
from fttool.pipeline.digest import sha256_file
from fttool.pipeline.runner import RunError, run_plan
from fttool.recipe import compile_recipe


def report_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def statuses(run_dir: Path) -> dict:
    return {s["name"]: s["status"] for s in report_of(run_dir)["stages"]}


def test_data_only_run_counts_and_lineage(tmp_path):
    recipe = make_project(tmp_path)
    run_dir = run_plan(compile_recipe(recipe), tmp_path / "runs" / "one")
    report = report_of(run_dir)
    assert report["data"]["counts"] == {"input": 22, "quarantined": 1, "duplicates": 1, "dropped_by_policy": 0,
                                        "kept": 20, "augmented": 0}
    assert report["data"]["splits"] == {"train": 12, "validation": 4, "test": 4}
    assert {s["name"] for s in report["skipped_stages"]} == {"pii", "bias", "augment", "canaries", "train", "evaluate",
                                                             "memorisation"}
    artifacts = report["lineage"]["artifacts"]
    for artifact in artifacts:
        if artifact.get("retained", True):
            root = tmp_path if artifact["kind"] == "source" else run_dir  # sources: as the recipe names them
            assert sha256_file(root / artifact["path"]) == artifact["sha256"], artifact["path"]
    by_path = {a["path"]: a for a in artifacts}
    assert {"data/train.jsonl", "data/validation.jsonl", "data/test.jsonl", "quarantine.jsonl"} <= set(by_path)
    assert by_path["data/train.jsonl"]["parents"] == ["work/dedup/records.jsonl"]
    assert by_path["records.jsonl"]["kind"] == "source"
    # The records before scrubbing are recorded by digest but not kept in the run directory.
    assert by_path["work/dedup/records.jsonl"]["retained"] is False and not (run_dir / "work").exists()
    ids = [r["id"] for split in ("train", "validation", "test")
           for r in read_jsonl(run_dir / "data" / f"{split}.jsonl")]
    assert len(ids) == len(set(ids)) == 20


def test_second_run_reuses_every_stage_and_says_so(tmp_path):
    recipe = make_project(tmp_path)
    first = run_plan(compile_recipe(recipe), tmp_path / "runs" / "a")
    second = run_plan(compile_recipe(recipe), tmp_path / "runs" / "b")
    assert set(statuses(first).values()) == {"ran"}
    assert set(statuses(second).values()) == {"cached"}
    for split in ("train", "validation", "test"):
        assert (first / "data" / f"{split}.jsonl").read_bytes() == (second / "data" / f"{split}.jsonl").read_bytes()
    assert report_of(first)["data"]["counts"] == report_of(second)["data"]["counts"]


def test_edited_source_is_never_served_stale(tmp_path):
    recipe = make_project(tmp_path)
    first = run_plan(compile_recipe(recipe), tmp_path / "runs" / "a")
    with open(tmp_path / "records.jsonl", "a") as handle:
        handle.write(json.dumps({"instruction": "A brand new question?", "output": "New."}) + "\n")
    second = run_plan(compile_recipe(recipe), tmp_path / "runs" / "b")
    assert statuses(second) == {"ingest": "ran", "dedup": "ran", "split": "ran"}
    assert report_of(second)["data"]["counts"]["kept"] == report_of(first)["data"]["counts"]["kept"] + 1


def test_changed_parameter_reruns_only_downstream_stages(tmp_path):
    recipe = make_project(tmp_path)
    run_plan(compile_recipe(recipe), tmp_path / "runs" / "a")
    recipe.write_text(recipe.read_text().replace("seed: 3", "seed: 4"))
    second = run_plan(compile_recipe(recipe), tmp_path / "runs" / "b")
    assert statuses(second) == {"ingest": "cached", "dedup": "cached", "split": "ran"}


@pytest.mark.parametrize("software, other", [
    ("code_digest", lambda: "0" * 64),  # as an edited rule or lexicon would give
    ("package_versions", lambda: {"presidio-analyzer": "0.0.1"}),  # another version of a package
])
def test_other_software_is_neither_served_the_cache_nor_resumed(tmp_path, monkeypatch, software, other):
    recipe = make_project(tmp_path)
    run_dir = run_plan(compile_recipe(recipe), tmp_path / "runs" / "a")
    monkeypatch.setattr(f"fttool.pipeline.runner.{software}", other)
    second = run_plan(compile_recipe(recipe), tmp_path / "runs" / "b")
    assert set(statuses(second).values()) == {"ran"}
    with pytest.raises(RunError, match="the inputs of stage ingest changed .*fttool or a package differs"):
        run_plan(compile_recipe(recipe), run_dir, resume=True)


def test_the_code_digest_follows_code_and_data_files_but_not_bytecode(tmp_path):
    from fttool.pipeline.software import package_digest

    package = tmp_path / "package"
    (package / "__pycache__").mkdir(parents=True)
    (package / "rules.py").write_text("LIMIT = 1\n")
    (package / "names.txt").write_text("ada\n")
    before = package_digest(package)
    (package / "__pycache__" / "rules.cpython-311.pyc").write_bytes(b"compiled at another time")
    assert package_digest(package) == before
    (package / "names.txt").write_text("ada\ngrace\n")
    assert package_digest(package) != before


def test_tampered_cache_entry_is_not_reused(tmp_path):
    recipe = make_project(tmp_path)
    run_plan(compile_recipe(recipe), tmp_path / "runs" / "a")
    (cached,) = (tmp_path / "runs" / ".fttool-cache" / "split").glob("*/data/train.jsonl")
    cached.chmod(0o600)
    with open(cached, "a") as handle:
        handle.write('{"id": "forged"}\n')
    second = run_plan(compile_recipe(recipe), tmp_path / "runs" / "b")
    assert statuses(second)["split"] == "ran"
    assert "forged" not in (second / "data" / "train.jsonl").read_text()


def test_cached_files_are_read_only_copies_so_one_run_cannot_break_another(tmp_path, monkeypatch):
    from fttool.governance.evidence import verify

    monkeypatch.setenv("FTTOOL_CACHE_DIR", str(tmp_path / "elsewhere"))
    recipe = make_project(tmp_path)
    first = run_plan(compile_recipe(recipe), tmp_path / "runs" / "a")
    second = run_plan(compile_recipe(recipe), tmp_path / "runs" / "b")
    assert set(statuses(second).values()) == {"cached"}
    assert not (tmp_path / "runs" / ".fttool-cache").exists(), "the cache is where FTTOOL_CACHE_DIR says"
    cached = [p for p in (tmp_path / "elsewhere").rglob("*") if p.is_file() and p.name != "record.json"]
    assert cached and all(p.stat().st_nlink == 1 and not p.stat().st_mode & 0o222 for p in cached)
    assert (second / "data" / "train.jsonl").stat().st_nlink == 1
    with open(first / "data" / "train.jsonl", "a") as handle:
        handle.write('{"id": "edited"}\n')
    assert verify(second) == [] and verify(first)

    result = CliRunner().invoke(cli, ["cache", "purge"])
    assert result.exit_code == 0 and f"{tmp_path / 'elsewhere'}: {len(statuses(first))} cached stage" in result.output
    assert not list((tmp_path / "elsewhere").rglob("*.jsonl"))
    assert set(statuses(run_plan(compile_recipe(recipe), tmp_path / "runs" / "c")).values()) == {"ran"}


def test_a_second_run_into_a_locked_run_directory_is_refused_at_once(tmp_path):
    import fcntl

    recipe = make_project(tmp_path)
    run_dir = tmp_path / "runs" / "a"
    run_dir.mkdir(parents=True)
    with open(run_dir / ".fttool.lock", "a+") as held:  # as the first `fttool run` holds it
        held.write("fttool run, pid 1234, since 2026-01-01T00:00:00+00:00\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for resume in (False, True):
            with pytest.raises(RunError, match="is in use by another fttool command \\(fttool run, pid 1234"):
                run_plan(compile_recipe(recipe), run_dir, resume=resume)
    assert sorted(p.name for p in run_dir.iterdir()) == [".fttool.lock"]
    run_dir = run_plan(compile_recipe(recipe), run_dir)  # once the first run let go
    assert report_of(run_dir)["data"]["counts"]["kept"] == 20


def test_output_dir_must_be_empty_without_resume(tmp_path):
    recipe = make_project(tmp_path)
    run_dir = run_plan(compile_recipe(recipe), tmp_path / "runs" / "a")
    with pytest.raises(RunError, match="is not empty; pass --resume"):
        run_plan(compile_recipe(recipe), run_dir)


def test_resume_reuses_finished_stages_and_refuses_a_changed_recipe(tmp_path):
    recipe = make_project(tmp_path)
    run_dir = run_plan(compile_recipe(recipe), tmp_path / "runs" / "a")
    run_plan(compile_recipe(recipe), run_dir, resume=True)
    # Stages that wrote only to work/, deleted when the run succeeded, come from the cache.
    assert statuses(run_dir) == {"ingest": "cached", "dedup": "cached", "split": "resumed"}
    assert report_of(run_dir)["run"]["resumed_at"]
    recipe.write_text(recipe.read_text().replace("seed: 3", "seed: 5"))
    with pytest.raises(RunError, match="the recipe changed since this run started"):
        run_plan(compile_recipe(recipe), run_dir, resume=True)


def test_a_stage_that_loses_records_fails_the_run(tmp_path, monkeypatch):
    from fttool.data.records import write_jsonl
    from fttool.pipeline import runner
    from fttool.stages import stage_class

    real_split = stage_class("split")

    class LeakySplit(real_split):
        def run(self, ctx):
            result = super().run(ctx)
            records = list(read_jsonl(ctx.outputs["train"]))
            write_jsonl(ctx.outputs["train"], records[1:])  # silently drop one record
            return result

    monkeypatch.setattr(runner, "stage_class", lambda name: LeakySplit if name == "split" else stage_class(name))
    recipe = make_project(tmp_path)
    with pytest.raises(RunError, match="stage split lost track of records: 20 in - 0 removed \\+ 0 added = 20, "
                                       "but 19 written"):
        run_plan(compile_recipe(recipe), tmp_path / "runs" / "a")


def test_cache_entry_is_not_reused_when_the_stage_writes_elsewhere(tmp_path):
    recipe = make_project(tmp_path)
    run_plan(compile_recipe(recipe), tmp_path / "runs" / "a")
    # With augmentation, split no longer writes the final data/train.jsonl but an intermediate file.
    with open(recipe, "a") as handle:
        handle.write("augment:\n  - {method: random, action: swap, ratio: 0.5, min_similarity: 0}\n")
    second = run_plan(compile_recipe(recipe), tmp_path / "runs" / "b")
    assert statuses(second)["split"] == "ran"
    assert "work/split/train.jsonl" in {a["path"] for a in report_of(second)["lineage"]["artifacts"]}


def test_a_lock_file_linked_elsewhere_is_never_written_through(tmp_path):
    """A colleague plants .fttool.lock as a link to a file of the user's: fttool must not truncate it."""
    recipe = make_project(tmp_path)
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    run_dir = tmp_path / "runs" / "a"
    run_dir.mkdir(parents=True)
    (run_dir / ".fttool.lock").symlink_to(victim)
    with pytest.raises(RunError, match="is a symbolic link"):
        run_plan(compile_recipe(recipe), run_dir)
    assert victim.read_text() == "keep me\n"


def test_resume_refuses_a_run_directory_holding_links(tmp_path):
    recipe = make_project(tmp_path)
    run_dir = run_plan(compile_recipe(recipe), tmp_path / "runs" / "a")
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    (run_dir / "plan.json").unlink()
    (run_dir / "plan.json").symlink_to(victim)
    with pytest.raises(RunError, match="plan.json is a symbolic link"):
        run_plan(compile_recipe(recipe), run_dir, resume=True)
    assert victim.read_text() == "keep me\n"


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_lock_path_that_is_not_a_file_is_a_clean_refusal(tmp_path, kind):
    import os

    recipe = make_project(tmp_path)
    run_dir = tmp_path / "runs" / "a"
    run_dir.mkdir(parents=True)
    if kind == "directory":
        (run_dir / ".fttool.lock").mkdir()
    else:
        os.mkfifo(run_dir / ".fttool.lock")
    with pytest.raises(RunError, match=r"\.fttool\.lock (is not a regular file|cannot be opened)"):
        run_plan(compile_recipe(recipe), run_dir)
