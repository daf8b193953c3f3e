"""Rules of the data section: split ratios, sources that exist and can be read, tags, field mappings."""
from __future__ import annotations

from pathlib import Path

from fttool.data.containers import CONTAINERS, source_container, source_tag
from fttool.data.probe import unmatched_fields, unreadable_start
from fttool.data.settings import CHAT_FORMATS, INPUT_FIELDS, SourceSettings, resolved_source
from fttool.recipe.errors import RecipeError
from fttool.recipe.loader import LoadedRecipe
from fttool.recipe.rules.rule import Rule


def _split_errors(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    errors = []
    split = recipe["data"]["split"]
    total = split["train"] + split["validation"] + split["test"]
    if abs(total - 1.0) > 1e-6:
        errors.append(loaded.error(("data", "split"),
                                   f"split ratios sum to {total:g}; train + validation + test must sum to 1"))
    if "stratify" in split and "group_by" in split:
        # Groups can cross strata, so both cannot hold at once; the user must choose.
        errors.append(loaded.error(("data", "split", "group_by"), "use either 'stratify' or 'group_by', not both",
                                   at_key=True))
    return errors


def _source_errors(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    errors = []
    first_with_tag: dict[str, int] = {}
    for index, source in enumerate(recipe["data"]["sources"]):
        stray = [key for key in ("revision", "split") if key in source and "hub" not in source]
        if stray:
            errors.append(loaded.error(("data", "sources", index, stray[0]), f"'{stray[0]}' applies to hub sources "
                                       "only; remove it or name the dataset with hub", at_key=True))
        if ("path" in source) == ("hub" in source):
            errors.append(loaded.error(("data", "sources", index), "a source needs either a path or a hub dataset "
                                       "(hub, revision, split), not both"))
            continue
        if "hub" in source:
            errors += _hub_errors(loaded, index, source) + _fields_errors(loaded, index, source, None)
            continue
        path = loaded.directory / source["path"]
        if not path.is_file():
            errors.append(loaded.error(("data", "sources", index, "path"),
                                       f"source file not found: {path} (paths are relative to the recipe file)"))
        container = source_container(source)
        if container is None:
            errors.append(loaded.error(("data", "sources", index, "path"),
                                       f"cannot tell how '{source['path']}' is stored from its extension; "
                                       f"add container: one of {', '.join(CONTAINERS)}"))
        elif container == "csv" and source["format"] in CHAT_FORMATS:
            errors.append(loaded.error(("data", "sources", index, "format"),
                                       "CSV cells are plain strings, so a CSV source cannot hold chat messages"))
        tag = source_tag(source)
        if tag in first_with_tag:
            # Records are traced back to their source by tag alone.
            where = "tag" if "tag" in source else "path"  # a source without a tag is tagged with its file name
            errors.append(loaded.error(("data", "sources", index, where),
                                       f"tag '{tag}' is already used by data.sources[{first_with_tag[tag]}]; "
                                       "give each source its own tag"))
        first_with_tag.setdefault(tag, index)
        errors += _fields_errors(loaded, index, source, path if path.is_file() and container else None)
    return errors


def _hub_errors(loaded: LoadedRecipe, index: int, source: dict) -> list[RecipeError]:
    missing = [key for key in ("revision", "split") if key not in source]
    if not missing:
        return []
    return [loaded.error(("data", "sources", index), f"hub source '{source['hub']}' needs {' and '.join(missing)}: "
                         "the revision (a branch, tag or commit) pins the data so that the run can be repeated, "
                         "the split names the part to read, e.g. {hub: org/name, revision: main, split: train}")]


def _fields_errors(loaded: LoadedRecipe, index: int, source: dict, path: Path | None) -> list[RecipeError]:
    """Field names the format does not have, and (for a readable file) fields its first records all lack."""
    allowed = INPUT_FIELDS[source["format"]]
    errors = [loaded.error(("data", "sources", index, "fields", name), f"'{name}' is not a field of the "
                           f"{source['format']} format; map one of: {', '.join(allowed)}", at_key=True)
              for name in source.get("fields", {}) if name not in allowed]
    if errors or path is None:
        return errors
    settings = SourceSettings(**resolved_source(source))
    unreadable = unreadable_start(settings, path)
    if unreadable:
        hint = " (set container: jsonl if it holds one JSON object a line)" if settings.container == "json" else ""
        return [loaded.error(("data", "sources", index, "path"), f"{source['path']} cannot be read as "
                             f"{settings.container}: line {unreadable[0]}: {unreadable[1]}; a run would quarantine "
                             f"the whole file{hint}")]
    explicit = set(source.get("fields", {}))
    for missing in unmatched_fields(settings, path, explicit):
        mapped = missing.canonical in explicit
        where = ("data", "sources", index, "fields", missing.canonical) if mapped else ("data", "sources", index)
        what = f"fields.{missing.canonical} '{missing.key}'" if mapped else f"field '{missing.key}'"
        errors.append(loaded.error(where, f"{what} not found in the first {missing.records} records of "
                                   f"{source['path']}; keys seen: {', '.join(missing.keys_seen)} "
                                   f"(map it with fields: {{{missing.canonical}: <key>}})"))
    return errors


def _splits_needed(loaded: LoadedRecipe, recipe: dict) -> list[RecipeError]:
    """Evaluation needs a test split and training a validation split."""
    errors = []
    split = recipe["data"]["split"]
    if "evaluate" in recipe and split["test"] == 0:
        errors.append(loaded.error(("data", "split", "test"), "'evaluate' needs a test split above 0"))
    if "train" in recipe and split["validation"] == 0:
        errors.append(loaded.error(("data", "split", "validation"),
                                   "training reports validation loss, so the validation split must be above 0"))
    return errors


RULES = [Rule(("data",), _split_errors), Rule(("data",), _source_errors), Rule(("data",), _splits_needed)]
