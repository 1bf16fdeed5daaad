"""Describe an action's parameter model for people (``maintkit actions NAME``, docs)."""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def type_name(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> str:
    """A short readable name for a parameter's type: ``str``, ``list[int]``, ``str | None``.

    Never a Python class path: a nested parameter model is a ``mapping`` (its description names the
    keys), a ``Literal`` its choices (``auto | zstd | gzip``).

    A type whose metadata can ``describe()`` itself (the choices of a ``cms`` parameter, read from
    the CMS registry when asked) is printed as it says."""
    described = [m.describe() for m in metadata if callable(getattr(m, "describe", None))]
    if described:
        return described[0]
    if get_origin(annotation) is Annotated:
        inner, *extra = get_args(annotation)
        return type_name(inner, extra)
    args = get_args(annotation)
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return " | ".join("None" if arg is type(None) else type_name(arg) for arg in args)
    if origin is Literal:
        return " | ".join(str(arg) for arg in args)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"  # what the YAML holds; the description names its keys
    if origin is not None and args:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_name(arg) for arg in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def describe_params(model: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """Given a parameter model, return rows of (name, type, default, description)."""
    rows = []
    for name, field in model.model_fields.items():
        if field.is_required():
            default = "(required)"
        elif field.default_factory is not None:
            default = repr(field.default_factory())  # type: ignore[call-arg]
        elif field.default is PydanticUndefined:
            default = ""
        else:
            default = repr(field.default)
        kind = type_name(field.annotation, field.metadata)
        rows.append((field.alias or name, kind, default, field.description or ""))
    return rows
