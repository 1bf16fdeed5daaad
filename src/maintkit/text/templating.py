"""Rendering ``{{ }}`` templates the way Ansible users expect, without their sharp edges.

Why these choices:

* **Sandboxed, StrictUndefined.** A template may only read data, and a misspelt variable is an error,
  never an empty string that turns ``rm -rf {{ root }}/var`` into ``rm -rf /var``.
* **Native values.** A string that is exactly one ``{{ expr }}`` renders to the expression's value
  (an int, a list, a mapping), as in Ansible, so ``timeout: "{{ t }}"`` can feed an int parameter.
* **Shell quoting.** In a shell command every interpolated value is quoted (``shlex.quote``) unless
  it went through ``| raw``: a variable holding ``'; rm -rf / #`` stays one harmless word.
* **Lazy variables.** A user-written variable whose value is itself a template
  (``backup_dir: "{{ site_root }}/backups"``) is rendered when a template reads it. Only variables
  named in ``HostVars.templated`` are: command output registered by a step is data, never a template.
* **No values in errors.** Error messages name the variable or expression, never a value: values
  may be secrets, and errors reach the console and the journal.
"""

from __future__ import annotations

import difflib
import json
import os
import posixpath
import re
import shlex
from collections.abc import Iterator, Mapping
from functools import lru_cache
from itertools import chain, islice
from typing import Any

import jinja2
from jinja2 import StrictUndefined, Undefined, meta, nodes
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from maintkit.model.problems import MaintkitError
from maintkit.secrets import Redactor, is_secret_name
from maintkit.text.templatelimits import BOUNDED_FILTERS, BOUNDED_GLOBALS, BoundedSandbox

TEMPLATE_MARKERS = ("{{", "{%", "{#")
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0", "", "none"})
_MISSING = object()


class TemplateError(MaintkitError):
    """A template could not be rendered: undefined variable, bad expression, failed lookup.

    The message names the template and the variable or expression; it never holds a value.
    """


class RawShell(str):
    """A string that is already safe shell text: the shell renderer does not quote it again."""

    __slots__ = ()


def as_data(value: Any) -> Any:
    """Return ``value`` with every :class:`RawShell` mark removed (nested values too).

    Why: ``raw`` is the playbook author vouching for the text of the template they wrote. A
    variable's value is data wherever it came from (``--var``, a vars file, the inventory, a
    register), even when it was itself rendered from a template: ``--var "v={{ 'x; rm -rf /' | raw }}"``
    must reach ``shell: echo {{ v }}`` quoted. So the mark never survives a variable's rendering.
    """
    if isinstance(value, RawShell):
        return str.__str__(value)
    if isinstance(value, Mapping):
        return {key: as_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_data(item) for item in value]
    return value


class HostVars(dict[str, Any]):
    """A host's variables, plus the names whose values are user-written templates to render lazily.

    Assigning a name (a ``register``) removes it from ``templated``: results are data.
    """

    def __init__(self, *args: Any, templated: frozenset[str] | set[str] = frozenset(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.templated: set[str] = set(templated)

    def __setitem__(self, key: str, value: Any) -> None:
        self.templated.discard(key)
        super().__setitem__(key, value)

    def copy(self) -> HostVars:
        return HostVars(self, templated=self.templated)

    def update(self, *args: Any, **kwargs: Any) -> None:
        new = dict(*args, **kwargs)
        self.templated.difference_update(new)
        super().update(new)


# -- filters ---------------------------------------------------------------------------------------


def _raw_filter(value: Any) -> RawShell:
    """``{{ x | raw }}``: insert ``x`` into a shell command unquoted (the author vouches for it)."""
    return RawShell(str(value))


def _quote_filter(value: Any) -> RawShell:
    """``{{ x | quote }}``: shell-quote ``x`` (for templates that are not rendered as shell)."""
    return RawShell(shlex.quote(str(value)))


def _bool_filter(value: Any) -> bool:
    """``{{ x | bool }}``: Ansible's bool: yes/no/true/false/on/off/1/0 strings become booleans."""
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)


def _to_json_filter(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


FILTERS = {
    "raw": _raw_filter,
    "quote": _quote_filter,
    "bool": _bool_filter,
    "to_json": _to_json_filter,
    "basename": lambda value: posixpath.basename(str(value)),
    "dirname": lambda value: posixpath.dirname(str(value)),
}


# -- environments ----------------------------------------------------------------------------------


def _native_concat(values: Iterator[Any]) -> Any:
    """Return the single value a template produced as it is, or the outputs joined as a string.

    Unlike jinja2's ``native_concat`` this never parses strings as Python literals: a password
    ``"0123"`` stays a string.
    """
    head = list(islice(values, 2))
    if not head:
        return ""
    if len(head) == 1:
        return head[0]
    return "".join(str(v) for v in chain(head, values))


class _NativeCodeGenerator(NativeCodeGenerator):
    """Evaluates constant expressions at render time, so ``{{ 2 }}`` is the int 2, not the text "2"."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Any, finalize: Any) -> Any:
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)


class _NativeSandbox(BoundedSandbox):
    code_generator_class = _NativeCodeGenerator
    concat = staticmethod(_native_concat)  # type: ignore[assignment]


def _shell_finalize(value: Any) -> Any:
    """Quote every interpolated value for the shell, except values marked :class:`RawShell`."""
    if isinstance(value, RawShell | Undefined):
        return value
    return shlex.quote(str(value))


def _environment(cls: type[SandboxedEnvironment], **options: Any) -> SandboxedEnvironment:
    env = cls(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False, **options)
    env.filters.update(BOUNDED_FILTERS)
    env.filters.update(FILTERS)
    env.globals.update(BOUNDED_GLOBALS)
    return env


NATIVE_ENV = _environment(_NativeSandbox)
SHELL_ENV = _environment(BoundedSandbox, finalize=_shell_finalize)
#: names every template may use without defining them: jinja's globals and ``lookup``
GLOBAL_NAMES = frozenset(NATIVE_ENV.globals) | {"lookup"}


@lru_cache(maxsize=4096)
def _native_template(source: str) -> jinja2.Template:
    return NATIVE_ENV.from_string(source)


@lru_cache(maxsize=4096)
def _shell_template(source: str) -> jinja2.Template:
    return SHELL_ENV.from_string(source)


# -- variables -------------------------------------------------------------------------------------


def _make_lookup(redactor: Redactor) -> Any:
    """Return the ``lookup`` function templates call; values it reads are secrets."""

    def lookup(kind: str, name: str, default: Any = _MISSING) -> Any:
        if kind != "env":
            raise TemplateError(f"unknown lookup '{kind}': maintkit knows lookup('env', NAME)")
        value = os.environ.get(name)
        if value is None:
            if default is _MISSING:
                raise TemplateError(
                    f"environment variable '{name}' is not set (lookup('env', '{name}') has no default)"
                )
            return default
        redactor.add(value)
        return value

    return lookup


class _Scope(Mapping[str, Any]):
    """The variables one render sees: the host's, then jinja's globals and ``lookup``.

    Values of user-written templated variables are rendered on first read (and cached for the
    render); a variable that reads itself, directly or not, is an error rather than a recursion.
    """

    def __init__(self, variables: Mapping[str, Any], redactor: Redactor) -> None:
        self._vars = variables
        self._redactor = redactor
        self._templated: set[str] = set(getattr(variables, "templated", ()))
        self._extra = {**NATIVE_ENV.globals, "lookup": _make_lookup(redactor)}
        self._cache: dict[str, Any] = {}
        self._resolving: list[str] = []

    def __getitem__(self, key: str) -> Any:
        if key in self._cache:
            return self._cache[key]
        if key not in self._vars:
            return self._extra[key]
        value = self._vars[key]
        if key in self._templated and has_template(value):
            value = self._resolve(key, value)
        self._cache[key] = value
        return value

    def _resolve(self, key: str, value: Any) -> Any:
        if key in self._resolving:
            cycle = " -> ".join([*self._resolving[self._resolving.index(key) :], key])
            raise TemplateError(f"variable '{key}' refers to itself ({cycle})")
        self._resolving.append(key)
        try:
            value = _render_value(value, self, shell=False)
        except TemplateError as error:
            if str(error).startswith("variable '"):  # already says which variable
                raise
            raise TemplateError(f"variable '{key}': {error}") from None
        finally:
            self._resolving.pop()
        value = as_data(value)
        declared = self._vars.get("secret_vars") or ()
        if is_secret_name(key, declared if isinstance(declared, list | tuple | set) else ()):
            self._redactor.add(value)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._vars or key in self._extra

    def __iter__(self) -> Iterator[str]:
        return iter({**self._extra, **dict.fromkeys(self._vars)})

    def __len__(self) -> int:
        return len(set(self._vars) | set(self._extra))

    @property
    def redactor(self) -> Redactor:
        return self._redactor


# -- rendering -------------------------------------------------------------------------------------


def has_template(value: Any) -> bool:
    """Return True when a value (or any string inside it) contains template syntax."""
    if isinstance(value, str):
        return any(marker in value for marker in TEMPLATE_MARKERS)
    if isinstance(value, Mapping):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_template(v) for v in value)
    return False


def iter_templates(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Yield (key path, template string) for every string with template syntax inside a value."""
    if isinstance(value, str):
        if has_template(value):
            yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_templates(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from iter_templates(item, (*path, index))


def render(value: Any, variables: Mapping[str, Any], redactor: Redactor, *, shell: bool = False) -> Any:
    """Given a value (strings, mappings and lists nested), return it with every template rendered.

    A string that is exactly one ``{{ expr }}`` becomes the expression's native value. With
    ``shell=True`` strings render as shell text: every interpolated value is shell-quoted unless it
    went through ``| raw``. Values read through ``lookup('env', ...)`` are added to ``redactor``.
    Raise TemplateError naming the template and the problem (never a value) if rendering fails.
    """
    scope = variables if isinstance(variables, _Scope) else _Scope(variables, redactor)
    return _render_value(value, scope, shell=shell)


def _render_value(value: Any, scope: _Scope, *, shell: bool) -> Any:
    if isinstance(value, str):
        return _render_string(value, scope, shell=shell) if has_template(value) else value
    if isinstance(value, Mapping):
        return {key: _render_value(item, scope, shell=shell) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_render_value(item, scope, shell=shell) for item in value]
    return value


def _render_string(source: str, scope: _Scope, *, shell: bool) -> Any:
    try:
        template = _shell_template(source) if shell else _native_template(source)
        env = SHELL_ENV if shell else NATIVE_ENV
        context = template.new_context(scope, shared=True)  # type: ignore[arg-type]
        result = env.concat(template.root_render_func(context))
        if isinstance(result, Undefined):
            str(result)  # StrictUndefined raises UndefinedError naming the variable
    except TemplateError:
        raise
    except Exception as error:
        raise TemplateError(
            scope.redactor(f"{describe_template(source)}: {_describe_error(error)}")
        ) from None
    if shell and not isinstance(result, str):
        result = str(result)
    return result


def _describe_error(error: Exception) -> str:
    """Return what went wrong without any value: jinja's messages name variables; Python's may not."""
    if isinstance(error, jinja2.TemplateSyntaxError):
        return f"syntax error: {_unknown_name_hint(str(error.message))} (line {error.lineno})"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, jinja2.UndefinedError | SecurityError):
        return str(error.message)
    if isinstance(error, ValueError):  # messages like "invalid literal for int(): 'value'"
        return f"{type(error).__name__} while evaluating the expression"
    return f"{type(error).__name__}: {error}"


def describe_template(source: str) -> str:
    """Return a short one-line quote of a template for messages."""
    text = " ".join(source.split())
    if len(text) > 70:
        text = text[:67] + "..."
    return f"template '{text}'"


def evaluate_when(expr: str | bool, variables: Mapping[str, Any], redactor: Redactor) -> bool:
    """Given a ``when`` condition, return whether the step should run.

    A bare expression (``r.rc == 0``, ``not flag``) is evaluated like Ansible does; a string with
    ``{{ }}`` is rendered and its result read as a boolean ("false", "no", "0" and "" are false).
    Raise TemplateError if the expression is invalid or reads an undefined variable.
    """
    if isinstance(expr, bool):
        return expr
    result = render(when_template(expr), variables, redactor)
    return _truthy(result)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        word = value.strip().lower()
        return word not in FALSE_WORDS
    return bool(value)


def when_template(expr: str | bool) -> str:
    """Given a ``when`` condition, return it as a template: bare expressions are wrapped in ``{{ }}``."""
    if isinstance(expr, bool):
        return "{{ true }}" if expr else "{{ false }}"
    if has_template(expr):
        return expr
    return "{{ " + expr.strip() + " }}"


# -- static checks ---------------------------------------------------------------------------------


def check_template(value: Any) -> list[str]:
    """Given a value, return a message for every template in it that does not compile.

    Compiling (not only parsing) also catches unknown filters and tests.
    """
    messages = []
    for _, source in iter_templates(value):
        message = template_error(source)
        if message:
            messages.append(message)
    return messages


def template_error(source: str) -> str | None:
    """Return why one template string does not compile, or None if it does."""
    try:
        _native_template(source)
    except jinja2.TemplateSyntaxError as error:
        where = f" (line {error.lineno} of the template)" if "\n" in source.strip() else ""
        return f"template syntax error: {_unknown_name_hint(str(error.message))}{where}"
    except RecursionError:
        return "template nested too deeply"
    return None


_UNKNOWN_NAME = re.compile(r"^No (filter|test) named '([^']*)'")


def _unknown_name_hint(message: str) -> str:
    """Add "did you mean" to jinja's "No filter named 'defualt'." (a common typo), and list none."""
    match = _UNKNOWN_NAME.match(message)
    if not match:
        return message
    kind, name = match.groups()
    known = NATIVE_ENV.filters if kind == "filter" else NATIVE_ENV.tests
    matches = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    hint = f" (did you mean '{matches[0]}'?)" if matches else ""
    return f"unknown {kind} '{name}'{hint}"


def check_expression(expr: str | bool) -> str | None:
    """Return why a ``when`` condition does not compile, or None if it does."""
    if isinstance(expr, bool):
        return None
    if has_template(expr):
        return template_error(expr)
    try:
        NATIVE_ENV.compile_expression(expr)
    except jinja2.TemplateSyntaxError as error:
        return f"invalid condition: {_unknown_name_hint(str(error.message))}"
    except RecursionError:
        return "invalid condition: nested too deeply"
    return None


def undeclared_variables(value: Any) -> set[str]:
    """Given a value, return every variable name its templates read without defining them.

    Templates that do not parse are skipped (``check_template`` reports them).
    """
    names: set[str] = set()
    for _, source in iter_templates(value):
        names |= _names_in(source)[0]
    return names


def required_variables(value: Any) -> set[str]:
    """Like :func:`undeclared_variables`, minus names the template guards.

    Why: ``x is defined``, ``x is undefined`` and ``x | default(...)`` are how a template says that
    ``x`` may be missing, so validation must not call ``x`` undefined. A guarded name is trusted in
    the whole template (``{% if x is defined %}{{ x }}{% endif %}``); rendering still fails on a
    read the guard does not cover, since undefined is strict.
    """
    names: set[str] = set()
    for _, source in iter_templates(value):
        names |= _names_in(source)[1]
    return names


@lru_cache(maxsize=4096)
def _names_in(source: str) -> tuple[frozenset[str], frozenset[str]]:
    """Return (undeclared names, required names) of one template; empty sets if it does not parse.

    Cached: validation asks the same question for every selected host.
    """
    try:
        ast = NATIVE_ENV.parse(source)
        undeclared = frozenset(meta.find_undeclared_variables(ast))  # compiles: unknown filters raise
    except (jinja2.TemplateSyntaxError, RecursionError):
        return frozenset(), frozenset()
    return undeclared, undeclared - _guarded_names(ast)


def _guarded_names(ast: nodes.Template) -> set[str]:
    """Return the names tested with ``is defined``/``is undefined`` or given a ``default``."""
    guarded: set[str] = set()
    for node in chain(ast.find_all(nodes.Test), ast.find_all(nodes.Filter)):
        is_guard = (isinstance(node, nodes.Test) and node.name in ("defined", "undefined")) or (
            isinstance(node, nodes.Filter) and node.name in ("default", "d")
        )
        if is_guard and isinstance(node.node, nodes.Name):
            guarded.add(node.node.name)
    return guarded


@lru_cache(maxsize=4096)
def sole_variable(source: str) -> str | None:
    """Return ``x`` when a template is exactly ``{{ x }}`` (or ``{{ x | default(…) }}``), else None.

    Why: such a template hands the variable's value over whole, so a value it makes wrong was
    written where the variable was (an inventory line, a ``--var``), and that is where a problem
    found after rendering must point. Any other filter or text around it changes the value.
    """
    try:
        ast = NATIVE_ENV.parse(source)
    except (jinja2.TemplateSyntaxError, RecursionError):
        return None
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output) or len(ast.body[0].nodes) != 1:
        return None
    node: nodes.Node | None = ast.body[0].nodes[0]
    while isinstance(node, nodes.Filter) and node.name in ("default", "d"):
        node = node.node
    return node.name if isinstance(node, nodes.Name) and node.ctx == "load" else None
