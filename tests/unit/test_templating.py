"""Templates: native values, shell quoting, lazy variables, conditions, lookups, and static checks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from maintkit.secrets import Redactor
from maintkit.text.templating import (
    HostVars,
    RawShell,
    TemplateError,
    as_data,
    check_expression,
    check_template,
    evaluate_when,
    render,
    required_variables,
    undeclared_variables,
)

VARS = {"port": 2222, "names": ["a", "b"], "conf": {"x": 1}, "root": "/srv/shop", "flag": False}


def r(value: object, variables: dict[str, object] | None = None, **kwargs: bool) -> object:
    return render(value, VARS if variables is None else variables, Redactor(), **kwargs)


# -- rendering ---------------------------------------------------------------------------------------


def test_one_expression_renders_to_its_native_value() -> None:
    assert r("{{ port }}") == 2222
    assert r("{{ names }}") == ["a", "b"]
    assert r("{{ conf }}") == {"x": 1}
    assert r("{{ port + 1 }}") == 2223


def test_mixed_text_renders_to_a_string_and_strings_stay_strings() -> None:
    assert r("port {{ port }}") == "port 2222"
    assert r("{{ '0123' }}") == "0123"  # never parsed as a literal
    assert r(" {{ port }}") == " 2222"


def test_structures_are_rendered_recursively_and_plain_values_untouched() -> None:
    value = {"a": ["{{ root }}/var", 3, None], "b": {"c": "{{ flag }}"}, "d": "no template"}
    assert r(value) == {"a": ["/srv/shop/var", 3, None], "b": {"c": False}, "d": "no template"}


def test_undefined_variable_is_an_error_naming_it() -> None:
    with pytest.raises(TemplateError) as caught:
        r("{{ rooot }}/var")
    assert str(caught.value) == "template '{{ rooot }}/var': 'rooot' is undefined"


def test_errors_never_contain_values() -> None:
    variables = {"db_password": "hunter2-very-secret"}
    for template in ("{{ db_password.nope }}", "{{ db_password + 1 }}", "{{ db_password.index('zz') }}"):
        with pytest.raises(TemplateError) as caught:
            r(template, variables)
        assert "hunter2" not in str(caught.value)


def test_the_sandbox_refuses_internals() -> None:
    with pytest.raises(TemplateError, match="unsafe"):
        r("{{ ''.__class__.__mro__ }}")


# -- shell quoting -----------------------------------------------------------------------------------


def test_a_malicious_value_never_becomes_shell_syntax(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = f"'; touch {marker}; '"
    for payload in (evil, f"$(touch {marker})", f"`touch {marker}`", f"x\ntouch {marker}"):
        command = r("echo {{ value }} >/dev/null", {"value": payload}, shell=True)
        subprocess.run(["sh", "-c", command], check=True)
        assert not marker.exists(), command


def test_shell_rendering_quotes_each_value_but_not_raw_ones() -> None:
    variables = {"msg": "hello world", "pipe": "| wc -l", "n": 3}
    assert r("echo {{ msg }} {{ n }}", variables, shell=True) == "echo 'hello world' 3"
    assert r("echo x {{ pipe | raw }}", variables, shell=True) == "echo x | wc -l"
    assert r("echo {{ msg | quote }}", variables, shell=True) == "echo 'hello world'"  # not quoted twice
    assert r("{{ n }}", variables, shell=True) == "3"  # always a string


def test_quote_filter_outside_shell() -> None:
    assert r("ssh h {{ cmd | quote }}", {"cmd": "ls -l"}) == "ssh h 'ls -l'"


# -- lazy variables ----------------------------------------------------------------------------------


def test_templated_variables_render_when_read() -> None:
    variables = HostVars(
        {"root": "/srv", "backups": "{{ root }}/backups", "latest": "{{ backups }}/latest", "n": "{{ 2 }}"},
        templated={"backups", "latest", "n"},
    )
    assert r("{{ latest }}", variables) == "/srv/backups/latest"
    assert r("{{ n + 1 }}", variables) == 3


def test_a_variable_reading_itself_is_an_error() -> None:
    variables = HostVars({"a": "{{ b }}", "b": "x{{ a }}"}, templated={"a", "b"})
    with pytest.raises(TemplateError, match=r"variable 'a' refers to itself \(a -> b -> a\)"):
        r("{{ a }}", variables)


def test_registered_output_is_data_never_a_template() -> None:
    variables = HostVars({"x": "{{ 1 }}"}, templated={"x"})
    variables["result"] = {"stdout": "{{ lookup('env', 'HOME') }}"}
    variables["x"] = "{{ 2 }}"  # assigned by a register: now data
    assert r("{{ result.stdout }}", variables) == "{{ lookup('env', 'HOME') }}"
    assert r("{{ x }}", variables) == "{{ 2 }}"


def test_a_templated_secret_is_redacted_once_rendered() -> None:
    redactor = Redactor()
    variables = HostVars({"base": "s3cr3t-base", "api_token": "{{ base }}-x"}, templated={"api_token"})
    render("{{ api_token }}", variables, redactor)
    assert "s3cr3t-base-x" in redactor.secrets


# -- conditions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (True, True),
        (False, False),
        ("result.rc == 0", True),
        ("'ok' in result.stdout", True),
        ("not flag", True),
        ("flag", False),
        ("missing is defined", False),
        ("missing | default(true)", True),
        ("{{ result.rc == 1 }}", False),
        ("{{ 'no' }}", False),
        ("{{ 'yes' }}", True),
    ],
)
def test_evaluate_when(expr: str | bool, expected: bool) -> None:
    variables = {"result": {"rc": 0, "stdout": "all ok"}, "flag": False}
    assert evaluate_when(expr, variables, Redactor()) is expected


def test_when_with_an_undefined_variable_is_an_error() -> None:
    with pytest.raises(TemplateError, match="'nope' is undefined"):
        evaluate_when("nope == 1", {}, Redactor())


# -- lookups -----------------------------------------------------------------------------------------


def test_lookup_env_reads_the_environment_and_makes_it_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_DB_PASSWORD", "correct-horse")
    redactor = Redactor()
    assert render("{{ lookup('env', 'SHOP_DB_PASSWORD') }}", {}, redactor) == "correct-horse"
    assert redactor("pw=correct-horse") == "pw=***"


def test_lookup_env_default_and_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    assert r("{{ lookup('env', 'NOT_SET_ANYWHERE', default='d') }}") == "d"
    with pytest.raises(TemplateError) as caught:
        r("{{ lookup('env', 'NOT_SET_ANYWHERE') }}")
    assert "environment variable 'NOT_SET_ANYWHERE' is not set" in str(caught.value)


# -- static checks -----------------------------------------------------------------------------------


def test_undeclared_and_required_variables() -> None:
    value = {"a": "{{ x }} {{ y.z }}", "b": ["{% for i in items %}{{ i }}{% endfor %}"], "c": "plain"}
    assert undeclared_variables(value) == {"x", "y", "items"}
    guarded = "{{ a | default('') }} {% if b is defined %}{{ b }}{% endif %} {{ c }}"
    assert required_variables(guarded) == {"c"}
    assert undeclared_variables(guarded) == {"a", "b", "c"}


def test_check_template_reports_syntax_and_unknown_filters() -> None:
    assert check_template({"a": "{{ x ", "b": "{{ x | nofilter }}", "c": "fine {{ x }}"}) == [
        "template syntax error: unexpected end of template, expected 'end of print statement'.",
        "template syntax error: unknown filter 'nofilter'",
    ]
    assert check_template("line one\n{% if %}\n") == [
        "template syntax error: Expected an expression, got 'end of statement block' (line 2 of the template)"
    ]


def test_check_expression() -> None:
    assert check_expression("r.rc == 0 and not flag") is None
    assert check_expression("r.rc ==") == "invalid condition: unexpected 'end of template'"
    assert check_expression(True) is None


# -- data never switches quoting off; templates cannot allocate without bound ----------------------


def test_raw_inside_a_variable_value_is_quoted_in_a_shell_command() -> None:
    variables = HostVars({"v": "{{ 'x; touch X' | raw }}"}, templated={"v"})
    assert render("echo {{ v }}", variables, Redactor(), shell=True) == "echo 'x; touch X'"


def test_raw_inside_a_nested_variable_value_is_quoted_too() -> None:
    variables = HostVars({"d": {"k": "{{ 'a; b' | raw }}"}}, templated={"d"})
    assert render("echo {{ d.k }}", variables, Redactor(), shell=True) == "echo 'a; b'"


def test_raw_written_in_the_command_itself_is_not_quoted() -> None:
    variables = HostVars({"v": "a; b"})
    assert render("echo {{ v | raw }}", variables, Redactor(), shell=True) == "echo a; b"


def test_as_data_removes_every_raw_mark() -> None:
    value = as_data({"a": [RawShell("x")], "b": RawShell("y")})
    assert value == {"a": ["x"], "b": "y"}
    assert type(value["a"][0]) is str and type(value["b"]) is str


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 10000000000 }}",
        "{{ [1] * 10000000000 }}",
        "{{ 7 ** 999999999 }}",
        "{{ '%099999999999d' % 3 }}",
        "{{ 'x' | center(10000000000) }}",
        "{{ 'x' | indent(10000000000) }}",
        "{{ '%099999999999d' | format(3) }}",
        "{{ '{:>99999999999}'.format(1) }}",
        "{{ ('x' * 999999) | replace('', 'yyyyyyyyyy') }}",
        "{{ [1] | batch(10000000000, 0) | list }}",
        "{{ [1] | slice(10000000000, 0) | list }}",
        "{{ lipsum(10000000) }}",
    ],
)
def test_templates_that_would_exhaust_memory_fail_fast(source: str) -> None:
    with pytest.raises(TemplateError, match=r"too large|too much"):
        render(source, {}, Redactor())


def test_small_arithmetic_still_works() -> None:
    assert render("{{ 'ab' * 3 }}-{{ 2 ** 10 }}-{{ '%05d' % 42 }}", {}, Redactor()) == "ababab-1024-00042"


def test_a_misspelt_filter_or_test_is_named_with_the_closest_known_one() -> None:
    assert check_template("{{ x | defualt(1) }}") == [
        "template syntax error: unknown filter 'defualt' (did you mean 'default'?)"
    ]
    assert (
        check_expression("x is definedd")
        == "invalid condition: unknown test 'definedd' (did you mean 'defined'?)"
    )
