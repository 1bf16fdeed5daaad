"""A storage target in an S3 bucket (AWS, or any S3-compatible store through ``endpoint_url``).

How an artifact of unknown size streams into S3 with bounded memory: the writer feeds a
:class:`~maintkit.storage.pipe.BoundedPipe` (a file-like whose ``read(n)`` is backed by at most 4 MiB
of waiting bytes), and boto3's transfer manager (``upload_fileobj``) reads it in a background thread,
cutting it into 8 MiB parts uploaded 4 at a time. When S3 is slower than the dump, the pipe fills and
``write()`` blocks: the SSH channel stops being read and the dump on the server waits (backpressure),
instead of the control node buffering gigabytes. Memory is bounded by the pipe (4 MiB) plus the parts
boto3 holds (``max_in_memory_upload_chunks``, here concurrency + 1, of 8 MiB) and botocore's copies
of the parts in flight: about 100 MiB above the process's baseline, measured flat from 100 MiB to
1 GiB. The price of unknown sizes: S3 allows 10,000 parts, so 8 MiB parts cap an artifact at
78 GiB (``part_size_mib`` raises it); the writer fails clearly before passing the cap.

Why boto3's transfer manager and not hand-written multipart calls: it already retries parts
(botocore's retry modes, configured through the standard AWS config), uploads them concurrently,
sends small artifacts as one PUT, and aborts the multipart upload when anything fails. We add
the pieces it cannot know: abort on *our* failure (the dump broke: the reader raises inside boto3,
which aborts the upload), a final check that no incomplete multipart upload is left behind (they
are invisible, and billed), and Object Lock handling.

Retries and checksums follow the AWS config chain too (``AWS_MAX_ATTEMPTS``/``max_attempts``,
``AWS_RETRY_MODE``, ``request_checksum_calculation``), so a user can tune them per profile without
maintkit options; the default is botocore's ``standard`` mode (3 attempts per request; a part is
held in memory, so a connection cut in the middle of it is retried). ``ChecksumAlgorithm=SHA256``
is forced only with Object Lock, which requires a checksum: some S3-compatible stores reject the
newer checksum headers, and their users set ``request_checksum_calculation = when_required``.

Credentials come only from boto3's standard chain (environment, ``~/.aws/credentials`` and
``config``, SSO, instance/task roles) or a named ``profile``: never from maintkit's own
configuration, so a playbook or an inventory in git cannot leak them.

Object Lock: every object gets ``ObjectLockMode`` + ``ObjectLockRetainUntilDate`` (now + days) and a
``ChecksumAlgorithm`` (S3 refuses lock parameters without Content-MD5 or an ``x-amz-checksum-*``
header, on every part). After each upload the retention is read back (``HeadObject``); a store that
dropped it (moto, for one, ignores lock headers on multipart uploads) gets it through
``PutObjectRetention``, and if it still is not there the artifact fails. A bucket without an
Object Lock configuration is refused before anything is uploaded.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator

from maintkit.storage.base import (
    ArtifactWriter,
    StorageError,
    Target,
    check_key,
    check_prefix,
    parse_snapshot_id,
    refuse_empty_prefix,
)
from maintkit.storage.pipe import BoundedPipe, MiB, PipeAborted, PipeClosed
from maintkit.storage.settings import CREDENTIAL_MESSAGE, NAME_PATTERN, SettingsModel, TargetSettings

log = logging.getLogger(__name__)

DEFAULT_PART_SIZE = 8 * MiB
DEFAULT_CONCURRENCY = 4
MAX_PARTS = 10_000  # an S3 multipart upload has at most 10,000 parts
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
#: bytes waiting between the dump and boto3's reader (backpressure beyond that)
PIPE_LIMIT = 4 * MiB
READ_BUFFER = 1 * MiB
SSE_VALUES = ("AES256", "aws:kms")
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")

NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}
NO_BUCKET_CODES = {"NoSuchBucket"}
DENIED_CODES = {"403", "AccessDenied", "AllAccessDisabled", "Forbidden"}
BAD_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
}


@dataclass(frozen=True)
class ObjectLock:
    """Retention set on every uploaded object: ``mode`` GOVERNANCE or COMPLIANCE, for ``days``."""

    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    days: int

    def __post_init__(self) -> None:
        if self.mode not in LOCK_MODES:
            raise ValueError(f"object_lock.mode must be GOVERNANCE or COMPLIANCE, not {self.mode!r}")
        if self.days < 1:
            raise ValueError("object_lock.days must be at least 1")

    def retain_until(self, now: datetime | None = None) -> datetime:
        """The retain-until date for an object written ``now``, on a whole second (stores round)."""
        start = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        return start + timedelta(days=self.days, seconds=1)


def public_url(url: str | None) -> str | None:
    """Return ``url`` without any ``user:password@`` part (for messages)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def error_code(error: BaseException) -> str:
    """The S3 error code of a botocore ClientError (``NoSuchBucket``, ``404``...), or ``""``."""
    response = getattr(error, "response", None)
    if not isinstance(response, Mapping):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def has_retention(head: Mapping[str, Any], mode: str, until: datetime) -> bool:
    """Whether a HeadObject answer shows retention ``mode`` until ``until`` or later."""
    kept = head.get("ObjectLockRetainUntilDate")
    if head.get("ObjectLockMode") != mode or not isinstance(kept, datetime):
        return False
    if kept.tzinfo is None:
        kept = kept.replace(tzinfo=UTC)
    return kept >= until - timedelta(seconds=1)


_MMAP_THRESHOLD_SET = False


def return_large_buffers_to_the_os() -> None:
    """Make glibc give every freed buffer of 1 MiB or more back to the kernel at once (best effort).

    Why: parts are 8 MiB ``bytes`` made and freed by several upload threads. glibc serves such sizes
    with ``mmap`` only until the first one is freed; it then raises its threshold and keeps later
    ones in per-thread heaps, whose freed space stays in the process. A fixed threshold turns that
    off: measured on a 600 MiB stream, peak RSS 153 -> 139 MiB. No effect, and no error, off glibc.
    """
    global _MMAP_THRESHOLD_SET
    if _MMAP_THRESHOLD_SET:
        return
    _MMAP_THRESHOLD_SET = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1024 * 1024)  # M_MMAP_THRESHOLD (malloc.h), 1 MiB
    except (OSError, AttributeError):
        return


class S3Writer(ArtifactWriter):
    """Streams one artifact to S3 through boto3's transfer manager running in a background thread."""

    def __init__(self, target: S3Target, key: str, extra_args: dict[str, Any], lock_until: datetime | None):
        self.key = key
        self.target = target
        self.full_key = target.full_key(key)
        self.lock_until = lock_until
        self._extra_args = extra_args
        self._pipe = BoundedPipe(PIPE_LIMIT)
        self._written = 0
        self._max_size = target.part_size * MAX_PARTS
        self._error: BaseException | None = None
        self._uploaded = False
        self._state: Literal["open", "failed", "committed", "aborted"] = "open"
        self._thread = threading.Thread(target=self._upload, name=f"s3-upload {key}", daemon=True)
        self._thread.start()

    @property
    def committed(self) -> bool:
        return self._state == "committed"

    def _upload(self) -> None:
        try:
            self.target.client().upload_fileobj(
                self._pipe,
                self.target.bucket,
                self.full_key,
                ExtraArgs=self._extra_args,
                Config=self.target.transfer_config(),
            )
            self._uploaded = True
        except BaseException as error:  # reported by commit()/write() in the caller's thread
            self._error = error
        finally:
            self._pipe.reader_done()

    def write(self, data: bytes, /) -> int:
        if self._state != "open":
            raise StorageError(f"write to {self.target.location(self.key)} after {self._state}")
        self._written += len(data)
        if self._written > self._max_size:
            raise StorageError(
                f"{self.target.location(self.key)}: the artifact exceeds {self._max_size // MiB} MiB, "
                f"the most an S3 multipart upload of {MAX_PARTS} parts of "
                f"{self.target.part_size // MiB} MiB can hold; raise part_size_mib of storage target "
                f"'{self.target.name}'"
            )
        try:
            return self._pipe.write(data)
        except PipeClosed:
            self._thread.join()
            raise self._failure() from self._error

    def commit(self) -> None:
        if self._state == "committed":
            return
        if self._state != "open":
            raise StorageError(f"commit of {self.target.location(self.key)} after {self._state}")
        with contextlib.suppress(PipeClosed):  # a failed upload is reported just below
            self._pipe.close()
        self._thread.join()
        if self._error is not None:
            self._state = "failed"
            self.target.abort_incomplete_uploads(self.full_key, exact=True)
            raise self._failure() from self._error
        try:
            if self.lock_until is not None:
                self.target.ensure_retention(self.full_key, self.lock_until)
        except BaseException:
            self._state = "failed"
            raise
        self._state = "committed"

    def abort(self) -> None:
        if self._state in ("committed", "aborted"):
            return
        self._pipe.abort()
        self._thread.join()
        self._state = "aborted"
        if self._uploaded:  # interrupted during commit, after boto3 had completed the upload
            self.target.delete_quietly(self.full_key)
        self.target.abort_incomplete_uploads(self.full_key, exact=True)

    def _failure(self) -> StorageError:
        error = self._error
        if error is None:
            return StorageError(f"the upload of {self.target.location(self.key)} stopped")
        return self.target.storage_error(error, f"uploading {self.key}")


class _BodyReader(io.RawIOBase):
    """A raw stream over a botocore StreamingBody, so that ``open_reader`` returns a real BinaryIO."""

    def __init__(self, body: Any, where: str) -> None:
        self._body = body
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._body.read(len(view))
        except Exception as error:  # urllib3/botocore errors while streaming: name the object
            raise StorageError(f"reading {self._where} failed: {error}") from error
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


class S3Target(Target):
    """An S3 bucket (and optional key prefix) holding snapshots. See the module docstring."""

    def __init__(
        self,
        name: str,
        bucket: str,
        prefix: str = "",
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        storage_class: str | None = None,
        sse: Literal["AES256", "aws:kms"] | None = None,
        sse_kms_key_id: str | None = None,
        object_lock: ObjectLock | Mapping[str, Any] | None = None,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        max_concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 storage target needs a bucket")
        if sse is not None and sse not in SSE_VALUES:
            raise ValueError(f"sse must be AES256 or aws:kms, not {sse!r}")
        if sse_kms_key_id and sse != "aws:kms":
            raise ValueError("sse_kms_key_id needs sse: aws:kms")
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError("the part size must be between 5 MiB and 5 GiB (S3's limits)")
        self.name = name
        self.bucket = bucket
        self.prefix = check_prefix(prefix.strip("/") + "/") if prefix.strip("/") else ""
        self.region = region
        self.endpoint_url = endpoint_url
        self.profile = profile
        self.storage_class = storage_class
        self.sse = sse
        self.sse_kms_key_id = sse_kms_key_id
        if isinstance(object_lock, Mapping):
            object_lock = ObjectLock(mode=object_lock["mode"], days=int(object_lock["days"]))
        self.object_lock: ObjectLock | None = object_lock
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._checked = False

    # -- plumbing --------------------------------------------------------------------------------
    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}"
        endpoint = public_url(self.endpoint_url)
        return f"{where} at {endpoint}" if endpoint else where

    def full_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.full_key(key)}"

    def client(self) -> Any:
        """The boto3 S3 client, created on first use (boto3 is imported only then)."""
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        import boto3
        import botocore.config
        import botocore.exceptions

        try:
            session = boto3.session.Session(profile_name=self.profile)
        except botocore.exceptions.ProfileNotFound:
            raise StorageError(
                f"storage target '{self.name}': AWS profile '{self.profile}' is not defined "
                "(in ~/.aws/config or ~/.aws/credentials)"
            ) from None
        config = botocore.config.Config(
            max_pool_connections=max(10, self.max_concurrency * 2),
            user_agent_extra="maintkit",
        )
        return session.client("s3", region_name=self.region, endpoint_url=self.endpoint_url, config=config)

    def transfer_config(self) -> Any:
        """boto3's TransferConfig: parts of ``part_size``, ``max_concurrency`` at a time, bounded memory."""
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=self.max_concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )
        # s3transfer's own knob (boto3 does not expose it): parts read from a non-seekable stream and
        # held in memory before their upload; the default (10) would hold 80 MiB. One per upload
        # thread keeps every thread busy: the pipe in front holds the next part's first blocks.
        config.max_in_memory_upload_chunks = self.max_concurrency
        return config

    def storage_error(self, error: BaseException, doing: str) -> StorageError:
        """Translate a boto3/botocore error into a StorageError that says what to do (no secrets)."""
        if isinstance(error, StorageError):
            return error
        import botocore.exceptions as bce

        where = f"storage target '{self.name}' ({self.describe()})"
        if isinstance(error, bce.NoCredentialsError | bce.PartialCredentialsError):
            return StorageError(
                f"{where}: no AWS credentials found while {doing}. maintkit takes them from the standard "
                "AWS chain (AWS_* environment variables, ~/.aws/credentials, SSO, an instance or task "
                "role) or from the AWS profile named by `profile`"
            )
        if isinstance(error, bce.ProfileNotFound):
            return StorageError(f"{where}: AWS profile '{self.profile}' is not defined")
        if isinstance(error, bce.EndpointConnectionError):
            return StorageError(f"{where}: cannot reach the S3 endpoint (connection failed) while {doing}")
        if isinstance(error, bce.ConnectionError):  # closed, reset, timed out: the URL says nothing more
            return StorageError(f"{where}: lost the connection to the S3 endpoint while {doing}")
        if isinstance(error, bce.BotoCoreError) and not isinstance(error, bce.ClientError):
            return StorageError(f"{where}: {doing} failed: {error}")
        code = error_code(error)
        if code:
            return self._client_error(where, code, error, doing)
        if isinstance(error, PipeAborted):
            return StorageError(f"{where}: {doing} was aborted")
        return StorageError(f"{where}: {doing} failed: {type(error).__name__}: {error}")

    def _client_error(self, where: str, code: str, error: BaseException, doing: str) -> StorageError:
        if code in NO_BUCKET_CODES:
            return StorageError(f"{where}: bucket {self.bucket} does not exist (while {doing})")
        if code in BAD_CREDENTIAL_CODES:
            return StorageError(
                f"{where}: the AWS credentials were refused ({code}) while {doing}; check the "
                "credentials of the AWS chain or of `profile`"
            )
        if code in DENIED_CODES:
            return StorageError(
                f"{where}: access denied while {doing}; the credentials' IAM policy must allow it "
                f"on bucket {self.bucket}"
            )
        message = getattr(error, "response", {}).get("Error", {}).get("Message", "")
        return StorageError(f"{where}: {doing} failed: {code}: {message}".rstrip(": "))

    def _call(self, doing: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client(), method)(**kwargs)
        except Exception as error:
            raise self.storage_error(error, doing) from error

    # -- checks ------------------------------------------------------------------------------------
    def check(self) -> None:
        """Check once that the bucket exists and is reachable, and its Object Lock if asked for."""
        if self._checked:
            return
        try:
            self.client().head_bucket(Bucket=self.bucket)
        except Exception as error:
            if error_code(error) in NOT_FOUND_CODES | NO_BUCKET_CODES:
                raise StorageError(
                    f"storage target '{self.name}': bucket {self.bucket} does not exist"
                    + (f" at {public_url(self.endpoint_url)}" if self.endpoint_url else "")
                ) from None
            raise self.storage_error(error, f"checking bucket {self.bucket}") from error
        if self.object_lock is not None:
            self._check_object_lock()
        self._checked = True

    def _check_object_lock(self) -> None:
        try:
            answer = self.client().get_object_lock_configuration(Bucket=self.bucket)
        except Exception as error:
            if error_code(error) != "ObjectLockConfigurationNotFoundError":
                raise self.storage_error(error, "reading the bucket's Object Lock configuration") from error
            answer = {}
        enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
        if enabled != "Enabled":
            raise StorageError(
                f"bucket {self.bucket} has no Object Lock configuration; create it with object lock "
                f"enabled or remove object_lock from the storage target '{self.name}'"
            )

    # -- writing ---------------------------------------------------------------------------------
    def _extra_args(self, lock_until: datetime | None) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.storage_class:
            extra["StorageClass"] = self.storage_class
        if self.sse:
            extra["ServerSideEncryption"] = self.sse
        if self.sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.sse_kms_key_id
        if self.object_lock is not None and lock_until is not None:
            extra["ObjectLockMode"] = self.object_lock.mode
            extra["ObjectLockRetainUntilDate"] = lock_until
            extra["ChecksumAlgorithm"] = "SHA256"
        return extra

    def _lock_until(self) -> datetime | None:
        return self.object_lock.retain_until() if self.object_lock is not None else None

    def open_writer(self, key: str) -> S3Writer:
        check_key(key)
        self.check()
        return_large_buffers_to_the_os()
        lock_until = self._lock_until()
        return S3Writer(self, key, self._extra_args(lock_until), lock_until)

    def put_bytes(self, key: str, data: bytes) -> None:
        """One PutObject (a manifest is small): S3 makes it visible only once complete."""
        full_key = self.full_key(key)
        self.check()
        lock_until = self._lock_until()
        self._call(
            f"writing {key}",
            "put_object",
            Bucket=self.bucket,
            Key=full_key,
            Body=data,
            **self._extra_args(lock_until),
        )
        if lock_until is not None:
            self.ensure_retention(full_key, lock_until)

    def ensure_retention(self, full_key: str, until: datetime) -> None:
        """Make sure the object carries the retention asked for, setting it if the store dropped it."""
        assert self.object_lock is not None
        head = self._call(f"reading {full_key}", "head_object", Bucket=self.bucket, Key=full_key)
        if has_retention(head, self.object_lock.mode, until):
            return
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": full_key,
            "Retention": {"Mode": self.object_lock.mode, "RetainUntilDate": until},
        }
        if head.get("VersionId"):
            args["VersionId"] = head["VersionId"]
        log.debug("setting Object Lock retention on %s after upload", full_key)
        self._call(f"setting Object Lock retention on {full_key}", "put_object_retention", **args)
        head = self._call(f"reading {full_key}", "head_object", Bucket=self.bucket, Key=full_key)
        if not has_retention(head, self.object_lock.mode, until):
            raise StorageError(
                f"storage target '{self.name}': s3://{self.bucket}/{full_key} does not keep the Object "
                f"Lock retention asked for ({self.object_lock.mode} until {until.isoformat()})"
            )

    def abort_incomplete_uploads(self, full_key: str, *, exact: bool) -> int:
        """Abort the multipart uploads left under ``full_key`` (that key only, if ``exact``); log,
        never raise, a failure (this runs on error paths: the original error is what counts).

        Why: an incomplete multipart upload is invisible in listings yet billed for its parts; boto3
        aborts on failure, but not if the network died before the abort could be sent.
        """
        try:
            return self._abort_uploads(full_key, exact=exact)
        except Exception as error:  # the step's message says so already: not repeated on stderr
            log.info(
                "could not check or abort the incomplete uploads under s3://%s/%s: %s (the next "
                "snapshot of the site, or a bucket lifecycle rule 'AbortIncompleteMultipartUpload', "
                "removes them)",
                self.bucket,
                full_key,
                self.storage_error(error, "listing incomplete uploads"),
            )
            return 0

    def abort_unfinished_uploads(self, prefix: str, *, before: datetime | None = None) -> int:
        """Abort the incomplete multipart uploads under ``prefix`` (relative to the target) started
        before ``before``; raise StorageError when the bucket cannot be asked."""
        check_prefix(prefix)
        try:
            return self._abort_uploads(self.prefix + prefix, exact=False, before=before)
        except Exception as error:
            raise self.storage_error(error, f"aborting incomplete uploads under {prefix}") from error

    def _abort_uploads(self, full_prefix: str, *, exact: bool, before: datetime | None = None) -> int:
        aborted = 0
        paginator = self.client().get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
            for upload in page.get("Uploads", []):
                if exact and upload["Key"] != full_prefix:
                    continue
                if before is not None and not _started_before(upload, before):
                    continue
                self.client().abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                aborted += 1
        return aborted

    def delete_quietly(self, full_key: str) -> None:
        """Delete one object, logging (not raising) a failure: used on error paths only."""
        try:
            self.client().delete_object(Bucket=self.bucket, Key=full_key)
        except Exception as error:
            log.warning(
                "could not delete s3://%s/%s: %s",
                self.bucket,
                full_key,
                self.storage_error(error, "deleting"),
            )

    # -- reading ---------------------------------------------------------------------------------
    def open_reader(self, key: str) -> BinaryIO:
        full_key = self.full_key(key)
        try:
            answer = self.client().get_object(Bucket=self.bucket, Key=full_key)
        except Exception as error:
            if error_code(error) in NOT_FOUND_CODES:
                raise StorageError(f"{key} not found in {self.describe()}") from None
            raise self.storage_error(error, f"reading {key}") from error
        raw = _BodyReader(answer["Body"], self.location(key))
        return io.BufferedReader(raw, buffer_size=READ_BUFFER)

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client().head_object(Bucket=self.bucket, Key=self.full_key(key))
            return head
        except Exception as error:
            if error_code(error) in NOT_FOUND_CODES:
                return None
            raise self.storage_error(error, f"reading {key}") from error

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise StorageError(f"{key} not found in {self.describe()}")
        return int(head["ContentLength"])

    def _folder(self, prefix: str) -> str:
        check_prefix(prefix)
        folder = prefix.strip("/")
        return self.prefix + (folder + "/" if folder else "")

    def list_dir(self, prefix: str) -> list[str]:
        full = self._folder(prefix)
        names: list[str] = []
        try:
            paginator = self.client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    names.append(common["Prefix"][len(full) :].rstrip("/"))
        except Exception as error:
            raise self.storage_error(error, f"listing {prefix or '/'}") from error
        return sorted(names)

    def _list_full(self, full_prefix: str, doing: str) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = []
        try:
            paginator = self.client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                objects.extend(page.get("Contents", []))
        except Exception as error:
            raise self.storage_error(error, doing) from error
        return objects

    def list_keys(self, prefix: str) -> list[tuple[str, int, datetime]]:
        check_prefix(prefix)
        listed = [
            (item["Key"][len(self.prefix) :], int(item["Size"]), _utc(item["LastModified"]))
            for item in self._list_full(self.prefix + prefix, f"listing {prefix or '/'}")
        ]
        return sorted(listed)

    def delete_prefix(self, prefix: str) -> int:
        """Delete the objects under ``prefix`` and abort the uploads left unfinished there.

        In a versioned bucket (every Object Lock bucket is one) a delete only adds a delete marker:
        the locked versions stay, as they should, until their retention ends and a lifecycle rule
        (NoncurrentVersionExpiration) removes them.
        """
        refuse_empty_prefix(prefix)
        full_prefix = self.prefix + prefix
        keys = [item["Key"] for item in self._list_full(full_prefix, f"listing {prefix}")]
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            answer = self._call(
                f"deleting {prefix}",
                "delete_objects",
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
            errors = answer.get("Errors", [])
            if errors:
                first = errors[0]
                raise StorageError(
                    f"storage target '{self.name}': could not delete {len(errors)} object(s) under "
                    f"{prefix}, e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message', '')}"
                )
        self.abort_incomplete_uploads(full_prefix, exact=False)
        return len(keys)


def _started_before(upload: Mapping[str, Any], before: datetime) -> bool:
    """Whether a ListMultipartUploads entry began before ``before``: by its ``Initiated`` time and,
    when its key holds a snapshot id, by that id's time too (both must be older).

    Why both: some S3-compatible stores report a meaningless ``Initiated`` (moto: a fixed date in
    2010), and an upload of a snapshot being written must never be aborted by a sweep.
    """
    initiated = upload.get("Initiated")
    if isinstance(initiated, datetime) and _utc(initiated) >= before:
        return False
    for segment in str(upload.get("Key", "")).split("/"):
        taken = parse_snapshot_id(segment)
        if taken is not None:
            return taken < before
    return True


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- the inventory's settings of an S3 target ------------------------------------------------------


class ObjectLockSettings(SettingsModel):
    mode: Literal["GOVERNANCE", "COMPLIANCE"] = Field(
        description="GOVERNANCE (privileged users can lift it) or COMPLIANCE (nobody can)."
    )
    days: int = Field(ge=1, description="Retention of every uploaded object, in days.")


class S3Settings(TargetSettings):
    """``type: s3``: a bucket (and prefix) of AWS or an S3-compatible store."""

    KIND: ClassVar[str] = "s3"
    name: str = Field("s3", pattern=NAME_PATTERN, description="Name used by --target.")
    type: Literal["s3"]
    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = Field(None, pattern=r"^https?://", description="S3-compatible store.")
    profile: str | None = Field(None, description="AWS profile (~/.aws/config) holding the credentials.")
    storage_class: str | None = None
    sse: Literal["AES256", "aws:kms"] | None = None
    sse_kms_key_id: str | None = None
    object_lock: ObjectLockSettings | None = None
    part_size_mib: int = Field(8, ge=5, le=5120, description="Multipart part size; 10,000 parts at most.")

    @field_validator("endpoint_url")
    @classmethod
    def _no_credentials_in_url(cls, value: str | None) -> str | None:
        """Refuse ``http://KEY:SECRET@host``: the URL is printed in connection errors and journals."""
        if value is not None and "@" in urlsplit(value).netloc:
            raise ValueError(f"endpoint_url must not hold credentials (user:password@); {CREDENTIAL_MESSAGE}")
        return value

    @model_validator(mode="after")
    def _kms_key_needs_kms(self) -> S3Settings:
        if self.sse_kms_key_id and self.sse != "aws:kms":
            raise ValueError("sse_kms_key_id needs sse: aws:kms")
        return self

    def build(self, base_dir: Path) -> Target:
        return S3Target(
            self.name,
            self.bucket,
            prefix=self.prefix,
            region=self.region,
            endpoint_url=self.endpoint_url,
            profile=self.profile,
            storage_class=self.storage_class,
            sse=self.sse,
            sse_kms_key_id=self.sse_kms_key_id,
            object_lock=self.object_lock.model_dump() if self.object_lock else None,
            part_size=self.part_size_mib * MiB,
        )
