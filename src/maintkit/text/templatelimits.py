"""Bounds on what one template may compute, so that bad input fails fast instead of hanging.

Why: templates come from playbooks, inventories, vars files and ``--var``; validation renders them
before anything runs. jinja's sandbox stops reaching outside the template, not ``{{ 'x' * 10**10 }}``
(gigabytes, folded by the compiler before any render) or ``{{ 7 ** 999999999 }}`` (hours of CPU).
Each operation that can multiply the size of its input is checked here against ``MAX_SIZE``.
Not bounded: loops nested over large ranges, which cost CPU time but no memory.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from jinja2.utils import generate_lorem_ipsum

#: the longest string or list, and the biggest integer (in bits), one template operation may make
MAX_SIZE = 1_000_000
MAX_BITS = 4096


def _checked_binop_sizes(operator: str, left: Any, right: Any) -> None:
    """Refuse ``*``, ``**`` and ``%`` whose result would not stay small.

    Why: ``{{ 'x' * 10**10 }}`` or ``{{ 10 ** 10 ** 10 }}`` in a playbook or a ``--var`` would make
    validation allocate gigabytes or compute for hours; bad input must be an error, fast.
    Intercepting these operators also stops jinja from folding them at compile time.
    """
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int) and len(seq) * times > MAX_SIZE:
                raise SecurityError(f"the result of '*' would be too large (over {MAX_SIZE} items)")
    elif operator == "**":
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and abs(left) > 1
            and right * abs(left).bit_length() > MAX_BITS
        ):
            raise SecurityError(f"the result of '**' would be too large (over {MAX_BITS} bits)")
    elif operator == "%" and isinstance(left, str) and _format_widths(left) > MAX_SIZE:
        raise SecurityError("a '%' format width is too large")


def _format_widths(text: str) -> int:
    """Return the largest width or precision a ``%`` or ``{}`` format string asks for."""
    numbers = re.findall(r"%[-+ #0]*(\d+)|%[-+ #0]*\d*\.(\d+)|\{[^{}]*?:[^{}]*?(\d+)", text)
    return max((int(n) for group in numbers for n in group if n), default=0)


def _width_guard(name: str, position: int, keyword: str) -> Any:
    """Wrap jinja's filter ``name``: its size argument (at ``position`` or ``keyword``) is bounded."""
    original = jinja2.filters.FILTERS[name]

    def guarded(*args: Any, **kwargs: Any) -> Any:
        width = kwargs.get(keyword, args[position] if len(args) > position else 0)
        if isinstance(width, int) and width > MAX_SIZE:
            raise SecurityError(f"'{name}' width is too large (over {MAX_SIZE})")
        return original(*args, **kwargs)

    return guarded


def _format_filter(value: Any, *args: Any, **kwargs: Any) -> str:
    if _format_widths(str(value)) > MAX_SIZE:
        raise SecurityError("a format width is too large")
    return str(jinja2.filters.do_format(value, *args, **kwargs))


def _replace_filter(value: Any, old: str, new: str, count: int | None = None) -> str:
    text = str(value)
    occurrences = text.count(str(old)) if old else len(text) + 1
    if len(text) + occurrences * len(str(new)) > MAX_SIZE:
        raise SecurityError(f"the result of 'replace' would be too large (over {MAX_SIZE} characters)")
    return text.replace(str(old), str(new), -1 if count is None else count)


#: jinja filters whose arguments could make a huge string or list, bounded
BOUNDED_FILTERS = {
    "center": _width_guard("center", 1, "width"),
    "indent": _width_guard("indent", 1, "width"),
    "batch": _width_guard("batch", 1, "linecount"),
    "slice": _width_guard("slice", 1, "slices"),
    "format": _format_filter,
    "replace": _replace_filter,
}


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if n > 100 or max > 1000:
        raise SecurityError("lipsum asks for too much text")
    return str(generate_lorem_ipsum(n, html, min, max))


#: jinja globals, bounded
BOUNDED_GLOBALS = {"lipsum": _lipsum}


class BoundedSandbox(SandboxedEnvironment):
    """jinja's sandbox, with the operations that could exhaust memory or time bounded."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _checked_binop_sizes(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Any:
        """``'{:>9999999999}'.format(x)``: refuse widths that would fill the memory."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and _format_widths(str(getattr(value, "__self__", ""))) > MAX_SIZE:
            raise SecurityError("a format width is too large")
        return wrapped
