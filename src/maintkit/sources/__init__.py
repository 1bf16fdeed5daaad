"""What a snapshot reads from a server: pure command builders and small parsers.

Nothing here opens a connection. Each builder returns shell text (and, for databases, the bytes to
send on stdin) for :meth:`maintkit.transport.base.Transport.run`; the caller streams stdout into
storage and, for dumps, through :class:`~maintkit.sources.trailer.DumpTrailerWatcher`.
"""

from maintkit.sources.appconfig import fingerprint_command, parse_fingerprint
from maintkit.sources.compression import (
    SUFFIX,
    Compression,
    CompressionChoice,
    StreamDecompressor,
    detect_compression,
    parse_markers,
    strip_markers,
)
from maintkit.sources.database import (
    DatabaseSource,
    TableListing,
    defaults_file,
    dump_command,
    option_value,
    parse_tables,
    tables_command,
)
from maintkit.sources.files import FilesSource, tar_command
from maintkit.sources.probe import HostTools, parse_probe, probe_command
from maintkit.sources.trailer import DumpTrailerWatcher, check_dump_trailer

__all__ = [
    "SUFFIX",
    "Compression",
    "CompressionChoice",
    "DatabaseSource",
    "DumpTrailerWatcher",
    "FilesSource",
    "HostTools",
    "StreamDecompressor",
    "TableListing",
    "check_dump_trailer",
    "defaults_file",
    "detect_compression",
    "dump_command",
    "fingerprint_command",
    "option_value",
    "parse_fingerprint",
    "parse_markers",
    "parse_probe",
    "parse_tables",
    "probe_command",
    "strip_markers",
    "tables_command",
    "tar_command",
]
