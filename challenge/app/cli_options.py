"""Command-line options made from the run config's schema (challenge.config): every scalar
setting of RunConfig, and of a section (smiles, finetune), becomes an option with the field's
description as its help and its default shown, so a new setting is one field, never an edit of
the CLI. Choices of heads and feature sets come from the registries (entry points).

A command declares its fixed parameters (the track argument, --config, --quiet...) and which
settings it offers; `with_schema_options` gives typer the whole signature, and the command
receives the values back as a flags dict in the schema's shape (challenge.config.flag_values)."""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer
from pydantic import BaseModel


def _scalar(annotation) -> type | None:
    """The command-line type of a field: str/int/float/bool/Path, str for a Literal or a list
    (comma-separated), None for what only a YAML file can say (dicts, sections)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _scalar(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        kinds = [_scalar(a) for a in typing.get_args(annotation) if a is not type(None)]
        return kinds[0] if len(kinds) == 1 else None
    if origin is Literal or origin is list:
        return str
    if isinstance(annotation, type) and issubclass(annotation, (bool, int, float, str, Path)) and not issubclass(annotation, BaseModel):
        return annotation
    return None


def _choices(annotation) -> list[str]:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return [str(c) for c in typing.get_args(annotation)]
    return [c for a in typing.get_args(annotation) for c in _choices(a)]


def _is_list(annotation) -> bool:
    origin = typing.get_origin(annotation)
    return origin is list or any(_is_list(a) for a in typing.get_args(annotation))


def schema_parameters(
    model: type[BaseModel],
    names: list[str] | None = None,
    prefix: str = "",
    panel: str | None = None,
    extra_help: dict[str, str] | None = None,
) -> list[inspect.Parameter]:
    """One keyword parameter per scalar field of `model` (or those in `names`), annotated for typer."""
    parameters = []
    for name, field in model.model_fields.items():
        kind = _scalar(field.annotation)
        if kind is None or (names is not None and name not in names):
            continue
        option = (prefix + name).replace("_", "-")
        help_text = (field.description or "") + (extra_help or {}).get(name, "")
        choices = _choices(field.annotation)
        if choices:
            help_text += f" One of: {', '.join(choices)}" + (", comma-separated." if _is_list(field.annotation) else ".")
        default = field.get_default(call_default_factory=True)
        if kind is bool:
            declaration = f"--{option}" if default is False else f"--{option}/--no-{option}"
            info = typer.Option(declaration, help=help_text, rich_help_panel=panel, show_default=f"--{option}" if default else False)
            parameters.append(
                inspect.Parameter(prefix + name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[bool], info])
            )
            continue
        shown = ",".join(map(str, default)) if isinstance(default, list) else str(default)
        # the value is None when the option is not given (lower layers then decide); the schema's default is shown
        info = typer.Option(
            f"--{option}", help=help_text, rich_help_panel=panel, show_default=shown if default not in (None, [], {}) else False
        )
        parameters.append(
            inspect.Parameter(prefix + name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[kind], info])
        )
    return parameters


def section_parameters(model: type[BaseModel], section: str) -> list[inspect.Parameter]:
    """A section's fields as options, spelled with its `option_prefix` in its own help panel."""
    from challenge.config import option_prefix

    section_model = model.model_fields[section].annotation
    return schema_parameters(section_model, prefix=option_prefix(section_model, section), panel=getattr(section_model, "panel", section))


def with_schema_options(function, parameters: list[inspect.Parameter]):
    """`function(**values)` with the signature typer reads: its own parameters first, then the
    schema's (a parameter the function declares itself wins)."""
    own = list(inspect.signature(function, eval_str=True).parameters.values())
    taken = {p.name for p in own}
    merged = [p for p in own if p.kind != inspect.Parameter.VAR_KEYWORD] + [p for p in parameters if p.name not in taken]
    ordered = [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) if p.kind == inspect.Parameter.KEYWORD_ONLY else p for p in merged]
    function.__signature__ = inspect.Signature(ordered)
    function.__annotations__ = {p.name: p.annotation for p in ordered}
    return function


def schema_flags(values: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """Command-line values back in the schema's shape: section options into their sections,
    comma-separated lists split, paths as text; options not given (None) left out."""
    flags: dict[str, Any] = {}
    from challenge.config import option_prefix
    from challenge.config import sections as schema_sections

    sections = schema_sections(model)
    for name, value in values.items():
        if value is None:
            continue
        target, key, annotation = flags, name, model.model_fields[name].annotation if name in model.model_fields else None
        for section, section_model in sections.items():  # a flat schema (pretraining's settings) has none
            prefix = option_prefix(section_model, section)
            field = name.removeprefix(prefix) if prefix and name.startswith(prefix) else (name if not prefix else None)
            if field is not None and field in section_model.model_fields and name not in model.model_fields:
                target, key, annotation = flags.setdefault(section, {}), field, section_model.model_fields[field].annotation
                break
        if annotation is not None and _is_list(annotation) and isinstance(value, str):
            value = [part for part in value.split(",") if part]
        target[key] = str(value) if isinstance(value, Path) else value
    return flags
