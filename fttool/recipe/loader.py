"""Load a recipe YAML file safely and remember where every key and value sits.

Recipes are data: only YAML's safe constructors run, so no recipe can import or execute code.
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
class LoadedRecipe:
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


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _index_positions(node: yaml.Node, path: JsonPath, recipe: LoadedRecipe, errors: list[RecipeError]) -> None:
    recipe.value_positions[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                line, column = _mark(key_node)
                errors.append(RecipeError(
                    str(recipe.path), line, column,
                    f"duplicate key '{key}' (first defined on line {seen[key]}); remove one of them",
                    format_json_path(path + (key,))))
                continue
            seen[key] = _mark(key_node)[0]
            recipe.key_positions[path + (key,)] = _mark(key_node)
            _index_positions(value_node, path + (key,), recipe, errors)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_positions(item, path + (index,), recipe, errors)


def load_recipe_file(path: str | Path) -> LoadedRecipe:
    """Parse `path`; raise RecipeInvalid naming the file, line and column on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeInvalid([RecipeError(str(path), 0, 0, "recipe file not found; check the path")])
    except UnicodeDecodeError as exc:
        raise RecipeInvalid([RecipeError(str(path), 1, 1, f"recipe is not valid UTF-8 ({exc.reason} at byte {exc.start})")])
    recipe = LoadedRecipe(path=path, data={})
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise RecipeInvalid([RecipeError(str(path), line, column, f"YAML syntax error: {exc.problem or exc}")])
    if not isinstance(data, dict):
        raise RecipeInvalid([RecipeError(str(path), 1, 1, "a recipe must be a YAML mapping with at least 'name' and 'data'")])
    errors: list[RecipeError] = []
    _index_positions(root, (), recipe, errors)
    if errors:
        raise RecipeInvalid(errors)
    recipe.data = data
    return recipe
