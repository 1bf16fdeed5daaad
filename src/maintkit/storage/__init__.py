"""Where snapshots live: storage targets (a local folder, S3), the manifest, retention.

Everything here runs on the control node. Servers never see a storage credential (DESIGN.md, "pull
model"): maintkit reads the dump over SSH and writes it to every target itself, so a compromised shop
cannot reach, let alone delete, its own backups.

Importing this package is cheap: boto3 is imported only when an S3 target first talks to S3.
"""

from __future__ import annotations

from maintkit.storage.base import (
    ArtifactWriter,
    StorageError,
    Target,
    new_snapshot_id,
    parse_snapshot_id,
    snapshot_key,
    snapshot_prefix,
)

__all__ = [
    "ArtifactWriter",
    "StorageError",
    "Target",
    "new_snapshot_id",
    "parse_snapshot_id",
    "snapshot_key",
    "snapshot_prefix",
]
