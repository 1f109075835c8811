"""Intrusive tools (ToolSpec.intrusive) run only for tenants an operator opted in: the one refusal, wherever the
opt-in lives (Redis for a worker, `--allow-intrusive` for a run in the CLI's own process)."""

from __future__ import annotations

from tasks.errors import IntrusiveToolError
from tasks.tools import ToolSpec

# How an operator opts a tenant in on workers (the message of a refusal says it, with the tenant's id).
OPT_IN = "toolrunner limits set --tenant {tenant} --allow-intrusive"


def refuse_unless_opted_in(spec: ToolSpec, tenant_id: str, *, opted_in: bool, fix: str | None = None) -> None:
    """Raise IntrusiveToolError when spec is intrusive and the tenant is not opted in; `fix` says how to opt in
    (default: the operator's command for workers)."""
    if spec.intrusive and not opted_in:
        how = fix or f"an operator opts it in with `{OPT_IN.format(tenant=tenant_id)}`"
        raise IntrusiveToolError(
            f"refused: {spec.name} is an intrusive tool (it can harm a target) and tenant {tenant_id} is not opted in"
            f" to intrusive tools; {how}"
        )
