"""What a volume and a workspace of one tenant's run share: identity and labels, read limits, state and client."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import docker

from isolation import defaults
from isolation.engine import connect
from isolation.errors import VolumeStateError
from isolation.naming import Role, VolumeIdentity, deadline_labels, new_identity, prefixed, role_labels
from isolation.tarread import ReadLimits


class RunOwned:
    """The base of IsolatedContainerVolume and RunWorkspace: a unique labelled name per tenant and run, picked at
    construction, and the state every engine object of the run shares (`new`, `creating`, `ready`, ...)."""

    _noun = "object"  # how errors name it
    _opener = "open()"  # what makes it ready

    def __init__(
        self,
        tenant_id: str,
        run_id: str,
        client: docker.DockerClient | None = None,
        *,
        label_prefix: str = defaults.LABEL_PREFIX,
        extra_labels: Mapping[str, str] | None = None,
        deadline: datetime | None = None,
        max_file_bytes: int = defaults.MAX_FILE_BYTES,
        max_total_bytes: int = defaults.MAX_TOTAL_BYTES,
        read_timeout: float = defaults.READ_TIMEOUT_SECONDS,
        cleanup_timeout: float = defaults.CLEANUP_TIMEOUT_SECONDS,
    ) -> None:
        self.identity: VolumeIdentity = new_identity(tenant_id, run_id, label_prefix, deadline=deadline)
        self._client = client
        self._extra_labels = dict(extra_labels or {})
        self._limits = ReadLimits(max_file_bytes, max_total_bytes, read_timeout)
        self._cleanup_timeout = cleanup_timeout
        self._state = "new"
        self._start()

    def _start(self) -> None:
        """Set a subclass's own state at construction (nothing exists on the engine yet)."""

    @property
    def name(self) -> str:
        """The Docker name picked at construction: tenant-<t>-run-<r>-<unix ms>-<hex>."""
        return self.identity.name

    @property
    def labels(self) -> dict[str, str]:
        """Labels on its volumes and on every container of this package that holds them."""
        return {**self.identity.labels(), **prefixed(self._extra_labels, self.identity.prefix)}

    def container_labels(self, role: Role = Role.TOOL, *, deadline: datetime | None = None) -> dict[str, str]:
        """Labels for a container holding its volumes: their labels, the role and (if given) its own deadline."""
        labels = role_labels(self.labels, role, prefix=self.identity.prefix)
        if deadline is not None:
            labels.update(deadline_labels(deadline, prefix=self.identity.prefix))
        return labels

    @property
    def exists(self) -> bool:
        """True from its creation on the engine until cleanup() removes it."""
        return self._state in ("creating", "ready")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} state={self._state}>"

    def _connected(self) -> docker.DockerClient:
        self._client = connect(self._client)
        return self._client

    def _require_ready(self) -> None:
        if self._state != "ready":
            raise VolumeStateError(f"{self._noun} {self.name} is {self._state}; call {self._opener} first")

    def _who(self) -> tuple[str, str, str]:
        return self.identity.tenant_id, self.identity.run_id, self.name
