"""Every default of the isolation module, defined once: settings and callers import these, never repeat them."""

from __future__ import annotations

from typing import Final

LABEL_PREFIX: Final = "studio"

# The tool's uid/gid: not root, and not any uid a base image is likely to give a real account
# (65532 is distroless' "nonroot").
TOOL_UID: Final = 65532
TOOL_GID: Final = 65532
TOOL_USER: Final = f"{TOOL_UID}:{TOOL_GID}"
DROPPED_CAPABILITIES: Final = ("ALL",)
SECURITY_OPTIONS: Final = ("no-new-privileges",)
TOOL_NETWORK: Final = "none"

MEMORY: Final = "1g"
CPUS: Final = 1.0
PIDS: Final = 256
TMPFS_SIZE: Final = "64m"
FILE_SIZE_BYTES: Final = 1 << 30
LOG_MAX_SIZE: Final = "1m"
# Open files per tool process: enough for a scanner's sockets and outputs, far below the engine's own
# default (1048576), which lets a hostile tool pin kernel memory with descriptors.
NOFILE: Final = 1024

MAX_FILE_BYTES: Final = 64 << 20
MAX_TOTAL_BYTES: Final = 256 << 20
READ_TIMEOUT_SECONDS: Final = 120.0
CLEANUP_TIMEOUT_SECONDS: Final = 15.0
PULL_TIMEOUT_SECONDS: Final = 600.0
