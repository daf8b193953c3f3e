"""Load a recipe (or another fttool YAML document, such as a policy) safely and remember where every key and
value sits.

Recipes and policies are data: only YAML's safe constructors run, so no document can import or execute code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fttool.recipe.errors import RecipeError, RecipeInvalid

JsonPath = tuple  # keys and list indices from the document root


def format_json_path(path: JsonPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "$"


@dataclass
class LoadedDocument:
    path: Path
    data: dict
    value_positions: dict = field(default_factory=dict)  # JsonPath -> (line, column), 1-based
    key_positions: dict = field(default_factory=dict)  # JsonPath of a mapping entry -> its key's position

    @property
    def directory(self) -> Path:
        return self.path.parent

    def position(self, path: JsonPath, at_key: bool = False) -> tuple[int, int]:
        """The closest known position for `path`, walking up to the parent when needed."""
        path = tuple(path)
        if at_key and path in self.key_positions:
            return self.key_positions[path]
        while path and path not in self.value_positions:
            path = path[:-1]
        return self.value_positions.get(path, (1, 1))

    def error(self, path: JsonPath, message: str, at_key: bool = False) -> RecipeError:
        line, column = self.position(path, at_key)
        return RecipeError(str(self.path), line, column, message, format_json_path(path))


# The compiler and the stages only ever see recipes, so they keep the recipe name.
LoadedRecipe = LoadedDocument


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _index_positions(node: yaml.Node, path: JsonPath, document: LoadedDocument, errors: list[RecipeError]) -> None:
    document.value_positions[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                line, column = _mark(key_node)
                errors.append(RecipeError(
                    str(document.path), line, column,
                    f"duplicate key '{key}' (first defined on line {seen[key]}); remove one of them",
                    format_json_path(path + (key,))))
                continue
            seen[key] = _mark(key_node)[0]
            document.key_positions[path + (key,)] = _mark(key_node)
            _index_positions(value_node, path + (key,), document, errors)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_positions(item, path + (index,), document, errors)


def index_positions(document: LoadedDocument, root: yaml.Node) -> list[RecipeError]:
    """Record where each key and value under `root` sits in `document`; returns the duplicate-key errors.

    `root` is what yaml.compose returns; JSON composes the same way, so JSON files get positions too.
    """
    errors: list[RecipeError] = []
    _index_positions(root, (), document, errors)
    return errors


class DatesAsTextLoader(yaml.SafeLoader):
    """SafeLoader that keeps an unquoted 2025-06-30 as text.

    Documents are JSON data checked by JSON Schemas, which have strings, not dates; and PyYAML's own date
    reading fails on an impossible date such as 2030-02-30 without saying where.
    """


DatesAsTextLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def load_yaml_file(path: str | Path, kind: str, not_a_mapping: str) -> LoadedDocument:
    """Parse `path`, a YAML mapping; raise RecipeInvalid naming the file, line and column on any problem.

    `kind` names the document in messages ("recipe", "policy"); `not_a_mapping` says what the top level must be.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeInvalid([RecipeError(str(path), 0, 0, f"{kind} file not found; check the path")])
    except UnicodeDecodeError as exc:
        raise RecipeInvalid([RecipeError(str(path), 1, 1, f"{kind} is not valid UTF-8 ({exc.reason} at byte {exc.start})")])
    document = LoadedDocument(path=path, data={})
    parser = DatesAsTextLoader(text)
    try:
        # What yaml.load does, keeping the node tree for positions rather than parsing the text twice. Positions
        # are taken first: constructing a mapping flattens `<<` merges into its node.
        root = parser.get_single_node()
        errors = index_positions(document, root) if isinstance(root, yaml.MappingNode) else []
        data = None if root is None else parser.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise RecipeInvalid([RecipeError(str(path), line, column, f"YAML syntax error: {exc.problem or exc}")])
    finally:
        parser.dispose()
    if not isinstance(data, dict):
        raise RecipeInvalid([RecipeError(str(path), 1, 1, not_a_mapping)])
    if errors:
        raise RecipeInvalid(errors)
    document.data = data
    return document


def load_recipe_file(path: str | Path) -> LoadedRecipe:
    """Parse `path`; raise RecipeInvalid naming the file, line and column on any problem."""
    return load_yaml_file(path, "recipe", "a recipe must be a YAML mapping with at least 'name' and 'data'")
