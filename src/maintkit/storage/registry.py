"""Which kinds of storage target exist: the inventory's ``type:`` value -> the settings of that kind.

Adding a target is one module (a :class:`~maintkit.storage.base.Target`, its writer, and its
:class:`~maintkit.storage.settings.TargetSettings` with ``KIND`` and ``build``) plus its settings
class in :data:`TARGET_TYPES` below; the inventory checks, the "unknown type" messages and the
construction all read this table (they were five hand edits in ``storage.config``).
"""

from __future__ import annotations

from maintkit.storage.local import LocalSettings
from maintkit.storage.s3 import S3Settings
from maintkit.storage.settings import TargetSettings

#: ``type:`` -> settings model, in the order the messages list them
TARGET_TYPES: dict[str, type[TargetSettings]] = {kind.KIND: kind for kind in (LocalSettings, S3Settings)}
