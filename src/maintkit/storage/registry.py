"""Which kinds of storage target exist: the inventory's ``type:`` value -> the settings of that kind.

Adding a target is one module (a :class:`~maintkit.storage.base.Target`, its writer, and its
:class:`~maintkit.storage.settings.TargetSettings` with ``KIND`` and ``build``) plus its loader in
:data:`TARGET_TYPES` below; the inventory checks, the "unknown type" messages and the construction
all read this table (they were five hand edits in ``storage.config``). Why loaders and not the
classes: a module is imported only when an inventory names its type, so a run that stores nowhere
else than the default folder never loads the S3 code (start-up time of every ``maintkit run``).
"""

from __future__ import annotations

from collections.abc import Callable

from maintkit.storage.settings import TargetSettings


def _local() -> type[TargetSettings]:
    from maintkit.storage.local import LocalSettings

    return LocalSettings


def _s3() -> type[TargetSettings]:
    from maintkit.storage.s3 import S3Settings

    return S3Settings


#: ``type:`` -> the loader of its settings model, in the order the messages list them
TARGET_TYPES: dict[str, Callable[[], type[TargetSettings]]] = {"local": _local, "s3": _s3}
