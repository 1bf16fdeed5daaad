"""``none``: no CMS. A plain folder or composer project: no app config, no caches left out.

Releases still work (vendor and the composer files copied); the version is read from
composer.lock as for Magento.
"""

from __future__ import annotations

from maintkit.cms.base import Profile, ReleaseLayout, register
from maintkit.cms.magento import VERSION_PHP

PROFILE = register(
    Profile(
        name="none",
        title="no CMS (a folder, a composer project)",
        version_php=VERSION_PHP,
        release=ReleaseLayout(shared=(), copy=("vendor", "composer.json", "composer.lock"), clear=()),
        audit="composer",
        rank=1000,
    )
)
