"""Build step: the shipped playbooks live in the top-level ``playbooks/`` folder, installed as the
package ``maintkit.playbooks`` (wheel and ``pip install -e .`` alike).

Why here and not in pyproject.toml: its ``packages.find`` cannot add a package from outside ``src/``,
and listing every package by hand would drop the next new one silently. Everything else is in
pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "maintkit.playbooks"],
    package_dir={"": "src", "maintkit.playbooks": "playbooks"},
    package_data={
        "maintkit": ["py.typed"],
        "maintkit.playbooks": ["*.yml"],
        "maintkit.history.migrations": ["script.py.mako"],
        "maintkit.reporting": ["templates/*.j2"],
    },
)
