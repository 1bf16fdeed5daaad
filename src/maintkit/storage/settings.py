"""What the settings of every storage target share: the pydantic base, the name rule, credential keys.

Why apart from ``storage.config``: each target's module declares its own settings model (a new
target is one module), and ``config`` reads them through the registry; both need these.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from maintkit.storage.base import Target

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

#: keys that would put a credential into the inventory (compared lower-case, ``-`` as ``_``)
CREDENTIAL_KEYS = {
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "access_key",
    "access_key_id",
    "secret_key",
    "secret_access_key",
    "secret",
    "session_token",
    "token",
    "password",
    "credentials",
}
CREDENTIAL_MESSAGE = (
    "credentials do not belong in the inventory: maintkit takes them from the standard AWS chain "
    "(AWS_* environment variables, ~/.aws/credentials, SSO, an instance or task role) or from the "
    "AWS profile named by `profile`"
)


class SettingsModel(BaseModel):
    """Settings written in the inventory: unknown keys are errors, values never change."""

    #: defer_build: the validator is built when first used, not at import (most runs check no storage)
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class TargetSettings(SettingsModel):
    """One ``storage:`` entry of a kind of target; ``KIND`` is its ``type:`` value."""

    KIND: ClassVar[str]
    name: str

    @abstractmethod
    def build(self, base_dir: Path) -> Target:
        """The target these settings describe (relative paths start at ``base_dir``)."""
