"""Describe an action's parameter model for people (``maintkit actions NAME``, docs)."""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def type_name(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> str:
    """A short readable name for a parameter's type: ``str``, ``list[int]``, ``str | None``.

    A type whose metadata can ``describe()`` itself (the choices of a ``cms`` parameter, read from
    the CMS registry when asked) is printed as it says."""
    described = [m.describe() for m in metadata if callable(getattr(m, "describe", None))]
    if described:
        return described[0]
    if get_origin(annotation) is Annotated:
        inner, *extra = get_args(annotation)
        return type_name(inner, extra)
    args = get_args(annotation)
    if get_origin(annotation) in (Union, UnionType) and any(get_origin(a) is Annotated for a in args):
        return " | ".join("None" if arg is type(None) else type_name(arg) for arg in args)
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
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
