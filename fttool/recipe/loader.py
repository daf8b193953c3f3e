"""Load a recipe (or another fttool YAML document, such as a policy) safely and remember where every key and
value sits.

Recipes and policies are data: only YAML's safe constructors run, so no document can import or execute code.
"""
from __future__ import annotations

import re
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


# Bounds on what a document may expand to: YAML aliases can make a few hundred bytes describe billions of nodes.
MAX_NODES = 100_000
MAX_DEPTH = 64

_YAML_12_RESOLVERS = [
    # YAML 1.2's core schema: 2e-4 is a number (YAML 1.1 reads it as text), yes/no/on/off are text, and there are
    # no dates or sexagesimal numbers. Documents are JSON data checked by JSON Schemas, which have no dates.
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     list("-+.0123456789")),
]


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader that resolves plain scalars as YAML 1.2's core schema does (as axolotl and LLaMA-Factory users
    expect: `learning_rate: 2e-4` is a number), and so keeps an unquoted 2025-06-30 as text."""

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        try:
            if text.startswith("0o"):
                return int(text[2:], 8)
            return int(text, 16) if text.startswith("0x") else int(text)
        except ValueError:  # Python refuses to read decimal integers of more than 4300 digits
            raise yaml.constructor.ConstructorError(
                None, None, f"the integer is too long to read ({len(text)} digits); write a number that fits the "
                "setting", node.start_mark) from None


Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in _YAML_12_RESOLVERS:
    Yaml12Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)
Yaml12Loader.add_constructor("tag:yaml.org,2002:int", Yaml12Loader.construct_yaml_int)


def _expansion_problem(root: yaml.Node) -> str | None:
    """Why `root` expands too far (aliases, nesting or recursion); None when it is within bounds.

    Sizes are memoised per node, so a document of shared aliases is measured in time linear in its text.
    """
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    in_progress: set[int] = set()

    def measure(node: yaml.Node) -> tuple[int, int]:
        key = id(node)
        if key in sizes:
            return sizes[key], depths[key]
        if key in in_progress:
            raise RecursionError
        in_progress.add(key)
        children = ([child for pair in node.value for child in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        size, depth = 1, 0
        for child in children:
            child_size, child_depth = measure(child)
            size, depth = min(size + child_size, MAX_NODES + 1), max(depth, child_depth)
            if depth >= MAX_DEPTH:
                break
        in_progress.discard(key)
        sizes[key], depths[key] = size, depth + 1
        return size, depth + 1

    try:
        size, depth = measure(root)
    except RecursionError:
        return "a recursive alias refers to itself; write the values out instead"
    if depth > MAX_DEPTH:
        return f"nesting is deeper than {MAX_DEPTH} levels; flatten the document"
    if size > MAX_NODES:
        return (f"the document expands to more than {MAX_NODES:,} values through its aliases (&anchor/*alias); "
                "write the values out or use fewer aliases")
    return None


def _require_printable(path: Path, text: str) -> None:
    """RecipeInvalid at the first character YAML does not allow (control characters), which PyYAML's reader
    rejects without a position."""
    found = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if found:
        start = found.start()
        line, column = text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1
        raise RecipeInvalid([RecipeError(str(path), line, column, f"YAML syntax error: unacceptable character "
                                         f"#x{ord(found.group()):04x}: control characters are not allowed; remove it")])


def load_yaml_file(path: str | Path, kind: str, not_a_mapping: str) -> LoadedDocument:
    """Parse `path`, a YAML mapping; raise RecipeInvalid naming the file, line and column on any problem.

    `kind` names the document in messages ("recipe", "policy"); `not_a_mapping` says what the top level must be.
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # a directory, or a FIFO whose reading would wait for a writer
        raise RecipeInvalid([RecipeError(str(path), 0, 0, f"{kind} file is not a regular file; check the path")])
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeInvalid([RecipeError(str(path), 0, 0, f"{kind} file not found; check the path")]) from None
    except OSError as exc:  # a directory, a file this user may not read
        raise RecipeInvalid([RecipeError(str(path), 0, 0, f"{kind} file cannot be read ({exc.strerror}); "
                                                          "check the path")]) from None
    except UnicodeDecodeError as exc:
        raise RecipeInvalid([RecipeError(str(path), 1, 1, f"{kind} is not valid UTF-8 "
                                          f"({exc.reason} at byte {exc.start})")]) from None
    _require_printable(path, text)
    document = LoadedDocument(path=path, data={})
    parser = Yaml12Loader(text)
    try:
        # What yaml.load does, keeping the node tree for positions rather than parsing the text twice. Positions
        # are taken first: constructing a mapping flattens `<<` merges into its node.
        root = parser.get_single_node()
        problem = None if root is None else _expansion_problem(root)
        if problem:
            raise RecipeInvalid([RecipeError(str(path), 1, 1, f"{kind} rejected: {problem}")])
        errors = index_positions(document, root) if isinstance(root, yaml.MappingNode) else []
        data = None if root is None else parser.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"YAML syntax error: {exc.problem or exc}"
        raise RecipeInvalid([RecipeError(str(path), line, column, message)]) from None
    except RecursionError:  # PyYAML composes nested nodes recursively: far deeper than MAX_DEPTH exhausts the stack
        raise RecipeInvalid([RecipeError(str(path), 1, 1, f"{kind} rejected: nesting is deeper than {MAX_DEPTH} "
                                                          "levels; flatten the document")]) from None
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
