"""The result cache's key: a digest of everything that determines a run's output, and nothing else (pure)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence


def cache_key(
    *, tenant_id: str, tool: str, image_id: str, argv: Sequence[str], inputs: Mapping[str, str | bytes],
    version: int, salt: str,
) -> str:  # fmt: skip
    """sha256 over tenant, tool, image content id, exact argv, each input file's sha256, spec version and salt.

    Not the timeout nor the cache age: a run that finished in time is the same run whatever its budget was.
    """
    files = {name: hashlib.sha256(_bytes(data)).hexdigest() for name, data in sorted(inputs.items())}
    document = {
        "tenant": tenant_id, "tool": tool, "image": image_id, "argv": list(argv), "inputs": files,
        "version": version, "salt": salt,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data
