"""The result cache's key: a digest of everything that determines a run's output, and nothing else (pure)."""

from __future__ import annotations

import hashlib
import json

from tasks.service.plan import RunPlan


def cache_key(plan: RunPlan, *, image_id: str, salt: str) -> str:
    """sha256 over tenant, tool, image content id, exact argv, each input file's sha256, spec version and salt.

    Not the run id, the timeout nor the cache age: a run that finished in time is the same run whatever its
    name or budget was.
    """
    files = {name: hashlib.sha256(_bytes(data)).hexdigest() for name, data in sorted(plan.inputs.items())}
    document = {
        "tenant": plan.tenant_id, "tool": plan.spec.name, "image": image_id, "argv": list(plan.invocation.argv),
        "inputs": files, "version": plan.spec.version, "salt": salt,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data
