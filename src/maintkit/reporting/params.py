"""Describe an action's parameter model for people (``maintkit actions NAME``, docs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def type_name(annotation: Any) -> str:
    """A short readable name for a parameter's type: ``str``, ``list[int]``, ``str | None``."""
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
        rows.append((field.alias or name, type_name(field.annotation), default, field.description or ""))
    return rows
