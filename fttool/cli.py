"""fttool's command line. Commands stay thin: they parse arguments and call into the package."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from fttool import __version__

EXIT_FAILED = 1
EXIT_INVALID = 2


def _compile_or_exit(recipe: str, machine_rank: int | None = None):
    from fttool.recipe import RecipeInvalid, compile_recipe

    try:
        return compile_recipe(recipe, machine_rank)
    except RecipeInvalid as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        raise SystemExit(EXIT_INVALID) from None


def _report_policy_warnings(compiled) -> None:
    """What the recipe's report policy asks a reviewer to look at twice (broad or long waivers): the run applies it
    to the report without `fttool check`, which would show these, ever being run."""
    policy = compiled.recipe.get("report", {}).get("policy")
    if not policy:
        return
    from fttool.policy.policy_file import load_policy

    for warning in load_policy(compiled.recipe_path.parent / policy).warnings:
        click.echo(warning, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fttool")
def cli() -> None:
    """Compile fine-tuning recipes into audited runs.

    A recipe (YAML) declares the data, the privacy and fairness checks, the training and the
    evaluation. fttool validates it, compiles it into a plan of stages, runs them with caching
    and lineage, and writes an audit report a reviewer can sign off.
    """


@cli.command()
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(recipes: tuple[str, ...]) -> None:
    """Check RECIPES against the schema and report every error.

    Errors are printed as FILE:LINE:COL: message (at json.path). Exits 0 when all recipes are
    valid and 2 when any is not.
    """
    from fttool.recipe import RecipeInvalid, compile_recipe
    from fttool.training.private import delta_rule

    failed = False
    for recipe in recipes:
        try:
            compiled = compile_recipe(recipe)
            click.echo(f"{recipe}: valid")
            _report_policy_warnings(compiled)
            rule = delta_rule(compiled.recipe.get("train", {}))
            if rule:  # N is only known when the run has split the data
                click.echo(f"{recipe}: note: {rule}", err=True)
        except RecipeInvalid as exc:
            failed = True
            for error in exc.errors:
                click.echo(str(error), err=True)
    if failed:
        raise SystemExit(EXIT_INVALID)


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(recipe: str, as_json: bool) -> None:
    """Print the compiled plan of RECIPE: stages in order, with every default resolved."""
    compiled = _compile_or_exit(recipe)
    if as_json:
        click.echo(json.dumps(compiled.to_dict(), indent=2))
        return
    from fttool.pipeline.plan import thaw

    click.echo(f"plan {compiled.name}  fingerprint {compiled.fingerprint}")
    for index, stage in enumerate(compiled.stages, start=1):
        click.echo(f"{index}. {stage.name}")
        for label, mapping in (("reads", stage.inputs), ("writes", stage.outputs)):
            if mapping:
                click.echo(f"     {label}: " + ", ".join(f"{k}={v}" for k, v in mapping.items()))
        click.echo("     params: " + json.dumps(thaw(stage.params), sort_keys=True))
    for name, reason in compiled.skipped.items():
        click.echo(f"-  {name}: skipped ({reason})")


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory. Default: reports/<name>-<run id>.")
@click.option("--resume", is_flag=True, help="Continue the run in --output-dir (training from its last checkpoint); "
              "refused if the recipe or its inputs changed.")
@click.option("--machine-rank", type=click.IntRange(min=0),
              help="This machine's rank when several train together (compute.num_machines), replacing "
              "compute.machine_rank: 0 runs the whole plan and writes the report, the others prepare the same data "
              "and only train.")
def run(recipe: str, output_dir: Path | None, resume: bool, machine_rank: int | None) -> None:
    """Run RECIPE and write the run directory with its audit report.

    Stages whose parameters and input files are unchanged, run by the same software (fttool's files, the
    versions of the packages the report lists), are reused from the cache.
    """
    compiled = _compile_or_exit(recipe, machine_rank)
    _report_policy_warnings(compiled)
    from fttool.pipeline.runner import RunError, run_plan
    from fttool.pipeline.worker import join_training, refuse_resume_on_several_machines
    from fttool.pipeline.worker import machine_rank as rank_of

    try:
        refuse_resume_on_several_machines(compiled, resume)
        if rank_of(compiled) > 0:
            run_dir = join_training(compiled, output_dir, resume)
            click.echo(f"machine {rank_of(compiled)} trained with machine 0 and finished: {run_dir} holds the "
                       "prepared data; machine 0's run directory has the model and the report")
            return
        run_dir = run_plan(compiled, output_dir, resume)
    except RunError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_FAILED) from None
    _summarise_run(run_dir)


def _summarise_run(run_dir: Path) -> None:
    """The console summary of a finished run, ending with its verdict; exit 1 when the verdict is fail, so that
    no outcome a user must act on (a failed policy rule, personal data left, no record kept) reads as success."""
    from fttool.pipeline.layout import REPORT_HTML
    from fttool.report import read_report
    from fttool.report.markdown import evaluation_outcome
    from fttool.report.verdict import FAIL, verdict

    report = read_report(run_dir)
    counts = report["data"]["counts"]
    # Every stage ran; whether the outcome is a success is the verdict's to say, below.
    click.echo(f"run {report['run']['id']} finished: {run_dir}")
    click.echo("records: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    click.echo("stages: " + ", ".join(f"{s['name']} {s['status']}" for s in report["stages"]))
    outcome = evaluation_outcome(report)
    if outcome:
        click.echo(outcome)
    result = verdict(report)
    click.echo(result.summary())
    if result.status != FAIL:
        return
    for reason in result.reasons:
        if reason.status == FAIL:
            click.echo(f"error: {reason.text} (the report's {reason.section} section: {run_dir / REPORT_HTML})",
                       err=True)
    # The ingest summary names its quarantine file, relative to the run directory.
    quarantine = ((report["data"].get("ingest") or {}).get("quarantine") or {}).get("path")
    if counts.get("kept") == 0 and quarantine:
        click.echo(f"error: why each record was rejected is in {run_dir / quarantine} (line and reason, never "
                   "content)", err=True)
    raise SystemExit(EXIT_FAILED)


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report(run_dir: Path) -> None:
    """Render report.html, report.md and MODEL_CARD.md again from RUN_DIR/report.json."""
    from fttool.governance.evidence import EvidenceError
    from fttool.report import ReportInvalid, rerender

    try:
        written = rerender(run_dir)
    except ReportInvalid as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        raise SystemExit(EXIT_INVALID) from None
    except EvidenceError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_INVALID) from None
    for path in written:
        click.echo(str(path))


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--sources", is_flag=True, help="Also re-hash the run's inputs (data sources, a local base model) "
              "where they are now.")
@click.option("--recipe-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="With --sources: where the recipe's folder is now (default: where it was when the run started).")
@click.option("--allowed-signers", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="git's allowed_signers file: every signed sign-off must be made by a key it lists, and at least "
              "one sign-off of the run as it is now must be signed so.")
def verify(run_dir: Path, sources: bool, recipe_dir: Path | None, allowed_signers: Path | None) -> None:
    """Check that RUN_DIR is what its report says, wherever it sits.

    Checks the report and run files against report.sha256 and its run digest, re-hashes every lineage
    artifact, fails on any file the lineage does not list (apart from the volatile ones: signoff.json,
    logs/, export/, review/review.csv), and checks every sign-off and its signature. Exits 1 naming each
    problem, 2 when the evidence cannot be read at all.
    """
    from fttool.governance.evidence import EvidenceError, check_signoffs, current_run_digest, read_report
    from fttool.governance.evidence import verify as verify_run
    from fttool.governance.signing import SignatureError

    try:
        problems = verify_run(run_dir, sources, recipe_dir, allowed_signers)
        checks = check_signoffs(run_dir, read_report(run_dir), current_run_digest(run_dir), allowed_signers)
    except (EvidenceError, SignatureError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_INVALID) from None
    for problem in problems:
        click.echo(f"{run_dir}/{problem}", err=True)
    for check in checks:
        entry = check.entry
        click.echo(f"note: sign-off by {entry['by']} ({entry['role']}) at {entry['at']}: " + "; ".join(check.notes),
                   err=True)
    if problems:
        raise SystemExit(EXIT_FAILED)
    click.echo(f"{run_dir}: verified" + ("" if sources else " (sources not re-hashed; pass --sources)"))


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--by", "by", required=True, help="Name of the person approving the run.")
@click.option("--role", required=True, help="Their role, e.g. 'model risk officer'.")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="OpenSSH ed25519 private key (ssh-keygen -t ed25519) to sign the sign-off with.")
@click.option("--waive", "waived", multiple=True, metavar="RULE",
              help="A failing rule of the report policy to accept; repeat for several. Needs --reason.")
@click.option("--reason", help="Why the waived rules are accepted; recorded with them.")
def signoff(run_dir: Path, by: str, role: str, key_file: Path | None, waived: tuple[str, ...],
            reason: str | None) -> None:
    """Record that BY, acting as ROLE, approved RUN_DIR as it is now.

    The run must verify, and its report policy must have passed unless each failing rule is waived
    (--waive RULE --reason TEXT). The sign-off stores the run digest, so any later change is caught by
    `fttool verify`; with --key it is signed (SSH signature, namespace fttool-signoff).
    """
    from fttool.governance.evidence import EvidenceError, read_report
    from fttool.governance.signoff import SignoffRefused, policy_waived_rules, sign_off

    if waived and not reason:
        click.echo("error: --waive needs --reason saying why the rules are accepted", err=True)
        raise SystemExit(EXIT_INVALID)
    try:
        entry = sign_off(run_dir, by, role, key_file, {rule: reason for rule in waived} if reason else {})
    except (ValueError, EvidenceError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_INVALID) from None
    except SignoffRefused as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_FAILED) from None
    signed = "signed" if "signature" in entry else "unsigned"
    click.echo(f"signed off by {entry['by']} ({entry['role']}) at {entry['at']}, run digest {entry['run_digest']} "
               f"({signed})" + "".join(f"; waived {w['rule']}" for w in entry["waivers"]))
    if entry["waivers"] and "signature" not in entry:
        click.echo("note: unsigned waivers unlock no export: fttool export counts a waiver only in a sign-off signed "
                   "by a key its --allowed-signers file lists; sign off again with --key KEY", err=True)
    self_waived = [rule for rule in policy_waived_rules(read_report(run_dir))
                   if rule not in {w["rule"] for w in entry["waivers"]}]
    if self_waived:
        click.echo(f"note: the report's own policy file waived {', '.join(self_waived)}, unsigned: fttool export "
                   "counts that only when a signed sign-off waives it (--key KEY --waive RULE --reason TEXT)", err=True)


@cli.group()
def review() -> None:
    """Human review: export a ratings sheet, import the filled-in ratings into the report."""


@review.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def review_export(run_dir: Path) -> None:
    """Write RUN_DIR/review/review.csv: prompt, reference, base and tuned output, empty rating columns.

    The sheet holds model inputs and outputs, so it is written inside the run directory only. Raters
    fill in base_rating and tuned_rating (1 to 5) and preferred (base, tuned or tie).
    """
    from fttool.governance.review import ReviewError, export_sheet

    try:
        path = export_sheet(run_dir)
    except ReviewError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_FAILED) from None
    click.echo(f"{path} (holds model inputs and outputs: keep it with the run's data)")


@review.command("import")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("ratings", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def review_import(run_dir: Path, ratings: Path) -> None:
    """Check RATINGS (a filled-in review.csv) and add its summary to RUN_DIR's report.

    Every invalid row is listed as FILE:LINE: problem, and nothing is imported unless all rows are
    valid (exit 2). The report is rendered and its digests written again; sign-offs given before
    are kept and marked as approving the older report.
    """
    from fttool.governance.review import ReviewError, import_ratings

    try:
        summary = import_ratings(run_dir, ratings)
    except ReviewError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_INVALID) from None
    means = summary["mean_rating"]
    click.echo(f"imported {summary['rated']} rated of {summary['predictions']} predictions "
               f"({summary['unrated']} unrated); mean rating base {means['base']}, tuned {means['tuned']}; "
               "preferred: " + ", ".join(f"{k} {v}" for k, v in summary["preference"].items()))


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def lineage(run_dir: Path) -> None:
    """Print RUN_DIR's lineage as an OpenLineage RunEvent (JSON)."""
    from fttool.governance.evidence import EvidenceError, openlineage_event

    try:
        click.echo(json.dumps(openlineage_event(run_dir), indent=2))
    except EvidenceError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_INVALID) from None


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--merge", is_flag=True, help="Merge the LoRA adapter into the base model's weights (peft "
              "merge_and_unload); a full fine-tune is already whole.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path),
              help="Export directory. Default: RUN_DIR/export/<adapter|merged|full>.")
@click.option("--recipe-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="With --merge and a local base model: where the recipe's folder is now, if it moved.")
@click.option("--trust-remote-code", is_flag=True, help="With --merge: let a base model that ships its own code "
              "(trust_remote_code in the run's plan) run it; check that code first.")
@click.option("--allowed-signers", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="git's allowed_signers file: the run must verify as fttool verify --allowed-signers checks it, and "
              "a run whose report policy failed is exported only when a sign-off signed by a key it lists waived "
              "each failing rule.")
def export(run_dir: Path, merge: bool, output: Path | None, recipe_dir: Path | None, trust_remote_code: bool,
           allowed_signers: Path | None) -> None:
    """Export RUN_DIR's model with its model card and sign-offs (README.md), signoff.json and manifest.json
    (sha256 of every file, the run digest and the report's digest). Refused, exit 1, when the run does not
    verify, or its report policy failed and no sign-off of the run as it is, signed by a key --allowed-signers
    lists, waived the failing rules (unsigned waivers count for nothing); exit 2 when the evidence or the
    allowed signers file cannot be read."""
    from fttool.governance.evidence import EvidenceError
    from fttool.governance.export import ExportError, export_run
    from fttool.governance.signing import SignatureError

    try:
        click.echo(str(export_run(run_dir, merge, output, recipe_dir, trust_remote_code, allowed_signers)))
    except (EvidenceError, SignatureError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_INVALID) from None
    except ExportError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_FAILED) from None


@cli.group()
def cache() -> None:
    """The stage cache: outputs of finished stages, raw records included, reused by later runs.

    It lives in $FTTOOL_CACHE_DIR, or else in .fttool-cache beside the run directory (reports/.fttool-cache
    for runs without --output-dir).
    """


@cache.command("purge")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The cache to empty. Default: $FTTOOL_CACHE_DIR, else reports/.fttool-cache.")
def cache_purge(cache_dir: Path | None) -> None:
    """Delete every cached stage output. Later runs compute their stages again."""
    from fttool.pipeline.runner import purge_cache

    purged, count = purge_cache(cache_dir)
    click.echo(f"{purged}: {count} cached stage output(s) deleted" if count else f"{purged}: nothing cached")


@cli.group()
def pii() -> None:
    """The data owner's view of what the PII stage found (pii/findings.jsonl in the run directory)."""


@pii.command("sample")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--type", "entity", help="Only findings of this entity type, e.g. PERSON.")
@click.option("-n", "count", type=click.IntRange(min=1), default=20, show_default=True, help="How many to print.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draw.")
@click.option("--residual", is_flag=True,
              help="Only what the second scan found still in the scrubbed text: the report's residual count.")
def pii_sample(run_dir: Path, entity: str | None, count: int, seed: int, residual: bool) -> None:
    """Print a sample of findings: record id, field, type, score, recognizer, and the context with values masked.

    A residual's context is the scrubbed text, as written to the prepared data.
    """
    from fttool.pii.findings import line, sample

    try:
        chosen, total = sample(run_dir, entity, count, seed, residual)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    kind = "residual findings" if residual else "findings"
    click.echo(f"{len(chosen)} of {total} {kind}{' of type ' + entity if entity else ''}")
    for finding in chosen:
        click.echo(line(finding))


@cli.command("import")
@click.argument("tool", type=click.Choice(["axolotl", "llamafactory"]))
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the recipe here (and any template file beside it) instead of printing it.")
def import_config(tool: str, config: Path, output: Path | None) -> None:
    """Write a recipe from an axolotl or LLaMA-Factory CONFIG, and list on stderr every setting not carried over.

    Datasets become sources whose local paths you fill in; the recipe validates once they exist.
    """
    import yaml

    from fttool.recipe.importers import import_config as translate

    try:
        imported = translate(tool, config)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    text = yaml.safe_dump(imported.recipe, sort_keys=False, allow_unicode=True)
    if output is None:
        click.echo(text, nl=False)
        for name in imported.files:
            click.echo(f"fill in: {name}: the recipe names this template file; run with -o to write it", err=True)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        for name, content in imported.files.items():
            (output.parent / name).write_text(content, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    for line in imported.not_carried:
        click.echo(f"not carried over: {line}", err=True)
    for line in imported.differs:
        click.echo(f"differs: {line}", err=True)
    for line in imported.to_fill:
        click.echo(f"fill in: {line}", err=True)


@cli.command()
def schema() -> None:
    """Print the recipe JSON Schema (schemas/recipe.schema.json)."""
    from fttool.recipe.schema import SCHEMA_DIR

    sys.stdout.write((SCHEMA_DIR / "recipe.schema.json").read_text(encoding="utf-8"))


@cli.command()
# Paths are not checked by click: a missing or unreadable one is invalid input that the chosen format reports.
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--policy", "policy_file", required=True, type=click.Path(),
              help="Policy file, e.g. policies/regulated.yaml.")
@click.option("--waivers", "waivers_file", type=click.Path(),
              help="Waivers file, added to the policy's own waivers.")
# The format names are spelled out so that `fttool --help` does not import the policy package.
@click.option("--format", "output_format", type=click.Choice(["text", "json", "junit", "github", "sarif"]),
              default="text", show_default=True)
@click.option("--allowed-signers", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="git's allowed_signers file: a report's run must then be signed off by a key it lists (as fttool "
              "verify --allowed-signers checks it). Without it, a run with a signed sign-off fails LIN-001.")
def check(paths: tuple[Path, ...], policy_file: str, waivers_file: str | None, output_format: str,
          allowed_signers: Path | None) -> None:
    """Check recipes and run reports (PATHS) against a policy.

    A PATH is a recipe, a report.json or a run directory. Recipe rules run before anything is
    trained; report rules gate a finished run. Exits 0 when no error-severity rule fails (warnings
    and waived findings are reported), 1 when one does, and 2 when the policy or any input is invalid;
    then their errors are printed and no rule runs.
    """
    from fttool.policy.engine import evaluate
    from fttool.policy.formats import render, render_invalid
    from fttool.policy.policy_file import load_policy
    from fttool.policy.targets import load_target, require_allowed_signers
    from fttool.recipe import RecipeInvalid

    errors, targets, policy = [], [], None
    try:
        policy = load_policy(policy_file, waivers_file)
    except RecipeInvalid as exc:
        errors += exc.errors
    try:
        if allowed_signers:
            require_allowed_signers(allowed_signers)
    except RecipeInvalid as exc:
        errors += exc.errors
    for path in paths:
        try:
            targets.append(load_target(path, allowed_signers))
        except RecipeInvalid as exc:
            errors += exc.errors
    for warning in policy.warnings if policy else ():
        click.echo(warning, err=True)
    if errors or policy is None:  # no policy only when loading it failed, with errors
        for error in errors:
            click.echo(str(error), err=True)
        if output_format != "text":  # CI tools read stdout; give them a document that carries the errors
            click.echo(render_invalid(errors, output_format), nl=False)
        raise SystemExit(EXIT_INVALID)
    check_run = evaluate(policy, targets)
    for warning in _uncounted_waiver_warnings(targets, allowed_signers):
        click.echo(warning, err=True)
    click.echo(render(check_run, output_format), nl=False)
    if not check_run.passed:
        raise SystemExit(EXIT_FAILED)


def _uncounted_waiver_warnings(targets: list, allowed_signers: Path | None) -> list[str]:
    """'REPORT: warning: ...' for each waiver of a checked run that fttool export would not count (unsigned, or not
    signed by a key --allowed-signers lists), so that a waiver a run's own policy file gave itself is seen."""
    from fttool.governance.evidence import EvidenceError
    from fttool.governance.signing import SignatureError
    from fttool.governance.signoff import uncounted_waivers
    from fttool.pipeline.layout import REPORT_JSON

    warnings = []
    for target in targets:
        path = Path(target.file)
        if target.kind != "report" or path.name != REPORT_JSON:
            continue
        try:
            notes = uncounted_waivers(path.parent, target.data, allowed_signers)
        except (OSError, EvidenceError, SignatureError) as exc:
            notes = [f"its waivers cannot be judged ({exc})"]
        warnings += [f"{path}: warning: {note}" for note in notes]
    return warnings


def main() -> None:
    cli()
