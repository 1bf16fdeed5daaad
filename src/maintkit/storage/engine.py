"""Where a site's restic repository lives in each target, and its password on the control node.

Why one repository per site and environment per target (``SITE/ENV/restic`` beside the snapshot
folders): deduplication works within a repository, and a site's nights are what share chunks; one
repository per target keeps every target complete on its own (a lost bucket never breaks the other
copy). The control node opens them directly: a local target's folder as a path, an S3 target through
restic's rclone backend with an rclone remote configured purely by environment variables
(``RCLONE_CONFIG_<NAME>_*``) holding the control node's credentials, so no credential is ever on a
command line (``ps``) or written to a file, and none goes to a host.

The password: one per site and environment, in ``MAINTKIT_KEYS_DIR`` (default ``~/.maintkit/keys``)
``/SITE/ENV/restic.password``, 0600, created by the first snapshot only (verify, prune and restore
only read it: a new password would lock every stored night). With age recipients configured, an
escrow copy encrypted to them is written into every target (``SITE/ENV/restic.password.age``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from maintkit.storage.base import StorageError, Target, check_segment, snapshot_prefix
from maintkit.storage.local import LocalTarget
from maintkit.storage.restic import Repository, ResticError
from maintkit.storage.s3 import S3Target

#: the folder of a site's repository in each target, beside its snapshot folders
REPOSITORY_FOLDER = "restic"
#: every engine snapshot maintkit takes is tagged TAG_PREFIX + its maintkit snapshot id
TAG_PREFIX = "maintkit-"
ESCROW_NAME = "restic.password.age"
DEFAULT_KEYS_DIR = "~/.maintkit/keys"


def engine_tag(snapshot_id: str) -> str:
    return TAG_PREFIX + check_segment(snapshot_id, "snapshot id")


def repository_key(site: str, env: str) -> str:
    """The repository's key relative to a target: ``SITE/ENV/restic`` (the manifest's ``key``)."""
    return snapshot_prefix(site, env) + REPOSITORY_FOLDER


def escrow_key(site: str, env: str) -> str:
    return snapshot_prefix(site, env) + ESCROW_NAME


def password_path(site: str, env: str) -> Path:
    """The control node's password file of a site's repositories (it may not exist yet)."""
    base = Path(os.environ.get("MAINTKIT_KEYS_DIR") or DEFAULT_KEYS_DIR).expanduser()
    return (
        base / check_segment(site, "site name") / check_segment(env, "environment name") / "restic.password"
    )


def existing_password(site: str, env: str) -> Path:
    """The password file, which must exist (verify, prune, restore never create one)."""
    path = password_path(site, env)
    if not path.is_file():
        raise ResticError(
            f"the restic password of {site}/{env} is missing on this control node ({path}); "
            f"decrypt the escrow copy {escrow_key(site, env)} of a target with your age identity "
            f"(age -d -i KEY -o {path} restic.password.age; chmod 600 {path})"
        )
    return path


@dataclass(frozen=True)
class Location:
    """How the control node reaches a repository: restic's ``-r`` value, rclone's path, their env."""

    restic: str  # for ``restic -r``: a folder, or ``rclone:REMOTE:bucket/key``
    rclone: str  # for ``rclone serve restic``: a folder, or ``REMOTE:bucket/key``
    env: dict[str, str]  # RCLONE_CONFIG_* of an S3 target (credentials): environment only


def location(target: Target, key: str, *, remote: str = "mk0") -> Location:
    """Where ``key`` of ``target`` is, for restic and rclone on the control node.

    ``remote`` names the rclone remote (distinct per target when several are open at once, as in
    ``restic copy``). Raises StorageError for a kind of target the engine cannot write to.
    """
    if isinstance(target, LocalTarget):
        path = str(target.root / key)
        return Location(path, path, {})
    if isinstance(target, S3Target):
        path = f"{remote}:{target.bucket}/{target.full_key(key)}"
        return Location(f"rclone:{path}", path, _rclone_s3_env(target, remote))
    raise StorageError(
        f"storage target '{target.name}': files_engine restic cannot write to {target.describe()}"
    )


def repository(target: Target, key: str, password_file: Path, *, remote: str = "mk0") -> Repository:
    where = location(target, key, remote=remote)
    return Repository(where.restic, password_file, env=where.env, name=target.name)


def _rclone_s3_env(target: S3Target, remote: str) -> dict[str, str]:
    """An rclone S3 remote from the target's settings and the control node's AWS credentials.

    The credentials come from boto3's chain (or the target's ``profile``), as for the tar path; they
    are resolved now (a role's temporary keys included) and live only in the environment of the
    rclone/restic processes this run starts.
    """
    import boto3
    import botocore.exceptions

    try:
        session = boto3.session.Session(profile_name=target.profile)
    except botocore.exceptions.ProfileNotFound:
        raise StorageError(
            f"storage target '{target.name}': AWS profile '{target.profile}' is not defined"
        ) from None
    credentials = session.get_credentials()
    if credentials is None:
        raise StorageError(f"storage target '{target.name}': no AWS credentials on this control node")
    frozen = credentials.get_frozen_credentials()
    prefix = f"RCLONE_CONFIG_{remote.upper()}_"
    env = {
        "TYPE": "s3",
        "PROVIDER": "Other" if target.endpoint_url else "AWS",
        "ACCESS_KEY_ID": frozen.access_key,
        "SECRET_ACCESS_KEY": frozen.secret_key,
        "REGION": target.region or session.region_name or "us-east-1",
        "NO_CHECK_BUCKET": "true",  # the bucket exists (target.check); never try to create one
    }
    if frozen.token:
        env["SESSION_TOKEN"] = frozen.token
    if target.endpoint_url:
        env["ENDPOINT"] = target.endpoint_url
        env["FORCE_PATH_STYLE"] = "true"
    if target.storage_class:
        env["STORAGE_CLASS"] = target.storage_class
    if target.sse:
        env["SERVER_SIDE_ENCRYPTION"] = target.sse
    if target.sse_kms_key_id:
        env["SSE_KMS_KEY_ID"] = target.sse_kms_key_id
    out = {prefix + name: value for name, value in env.items()}
    bundle = os.environ.get("AWS_CA_BUNDLE")
    if bundle:
        # boto3 honours AWS_CA_BUNDLE; rclone's S3 backend refuses to start with it ("unable to load
        # custom CA bundle ... unsupported transport", rclone 1.60): give rclone the same bundle its
        # own way and hide the variable from it (the AWS SDK treats an empty value as unset)
        out.update({"RCLONE_CA_CERT": bundle, "AWS_CA_BUNDLE": ""})
    return out


def write_escrow(
    targets: list[Target], site: str, env: str, password_file: Path, recipients: list[object]
) -> list[str]:
    """Store the password encrypted to the site's age recipients in every target lacking it.

    Why: losing the control node's password file loses every night in the repositories; the escrow
    copy lets the holder of an age identity recover it. Return the targets written.
    """
    import pyrage

    if not recipients:
        return []
    key = escrow_key(site, env)
    sealed = pyrage.encrypt(password_file.read_bytes(), recipients)  # type: ignore[arg-type]
    written = []
    for target in targets:
        if not target.exists(key):
            target.put_bytes(key, sealed)
            written.append(target.name)
    return written
