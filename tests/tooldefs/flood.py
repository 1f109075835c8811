"""A test-only tool that writes an amplifying report in nmap's or ffuf's format, parsed by the real parser."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from tasks.tools import Finding, Invocation, ToolParams, ToolSpec, ffuf, nmap
from tasks.tools.base import Outputs

ZEROS_FILE = "zeros.bin"
# busybox awk writes the reports inside the container: nothing this large crosses the queue.
_NMAP = (
    'BEGIN { print "<?xml version=\\"1.0\\"?><!DOCTYPE nmaprun><nmaprun scanner=\\"nmap\\">";'
    " for (h = 1; h <= HOSTS; h++) {"
    ' printf "<host><address addr=\\"10.0.0.%d\\" addrtype=\\"ipv4\\"/><ports>\\n", h;'
    " for (p = 1; p <= 65535; p++)"
    ' printf "<port protocol=\\"tcp\\" portid=\\"%d\\"><state state=\\"open\\" reason=\\"syn-ack\\"/>'
    '<service name=\\"unknown\\" method=\\"table\\"/></port>\\n", p;'
    ' print "</ports></host>" }'
    ' print "</nmaprun>" }'
)
_FFUF_HITS = (
    'BEGIN { printf "{\\"commandline\\":\\"ffuf\\",\\"results\\":["; for (i = 1; i <= N; i++)'
    ' printf "%s{\\"input\\":{\\"FUZZ\\":\\"w%d\\"},\\"position\\":%d,\\"status\\":200,\\"length\\":10,\\"words\\":1,'
    '\\"lines\\":1,\\"content-type\\":\\"text/html\\",\\"redirectlocation\\":\\"\\",'
    '\\"url\\":\\"http://127.0.0.1/w%d\\",\\"host\\":\\"127.0.0.1\\"}", (i > 1 ? "," : ""), i, i, i;'
    ' print "]}" }'
)
# One good hit, then nesting deeper than any parser should follow: the run must keep the hit.
_FFUF_DEEP = (
    'BEGIN { printf "{\\"results\\":[{\\"input\\":{\\"FUZZ\\":\\"ok\\"},\\"status\\":200,'
    '\\"url\\":\\"http://127.0.0.1/ok\\"},"; for (i = 1; i <= N; i++) printf "["; print "" }'
)
_FFUF_EMPTY = (
    'BEGIN { printf "{\\"results\\":["; for (i = 1; i <= N; i++) printf "%s{}", (i > 1 ? "," : ""); print "]}" }'
)


class FloodParams(ToolParams):
    """Which report to write and how large."""

    format: Literal["nmap", "ffuf", "ffuf-empty", "ffuf-deep", "zeros"]
    count: int = Field(ge=1, le=10_000_000, description="nmap hosts of 65535 open ports, ffuf results, MiB of zeros")


def build(params: FloodParams) -> Invocation:
    """An awk program writing the report into /outputs (dd for zeros: a large output nobody parses)."""
    if params.format == "zeros":
        script = f"dd if=/dev/zero of=/outputs/{ZEROS_FILE} bs=1048576 count={params.count} 2>/dev/null"
        return Invocation(argv=["-c", script], output_files=[ZEROS_FILE])
    if params.format == "nmap":
        program, variable, output = _NMAP, "HOSTS", nmap.REPORT_FILE
    else:
        program = {"ffuf": _FFUF_HITS, "ffuf-empty": _FFUF_EMPTY, "ffuf-deep": _FFUF_DEEP}[params.format]
        output = ffuf.REPORT_FILE
        variable = "N"
    script = f"awk -v {variable}={params.count} '{program}' > /outputs/{output}"
    return Invocation(argv=["-c", script], output_files=[output])


def parse(outputs: Outputs) -> Iterator[Finding]:
    """The real nmap or ffuf parser, whichever report the tool wrote; zeros give no findings."""
    if nmap.REPORT_FILE in outputs:
        return nmap.parse(outputs)
    return ffuf.parse(outputs) if ffuf.REPORT_FILE in outputs else iter(())


SPEC = ToolSpec(
    name="flood",
    image="toolrunner-busybox:local",
    entrypoint=["sh"],
    params_model=FloodParams,
    build=build,
    parse=parse,
    default_timeout=120,
    description="test-only: an amplifying nmap or ffuf report",
)
