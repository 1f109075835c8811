"""nmap as the oracle of how nmap reads a target (`nmap -sL -n` lists without sending a packet): every form it
reads as some other address is refused by the scope check, and every target the check accepts lists exactly the
addresses the check saw."""

from __future__ import annotations

import ipaddress
import re
import socket

import docker
import pytest

from tasks.errors import TargetError
from tasks.scope import host
from tasks.tools import TargetKind, load_catalogue

pytestmark = pytest.mark.integration
# "for 10.0.0.1", or "for 127.1 (127.0.0.1)" when nmap took the target for a name and the C library read it.
_LISTED = re.compile(r"^Nmap scan report for (?:\S+ \((\S+)\)|(\S+))$", re.MULTILINE)

# Targets nmap's params accept (they look like host names) that nmap reads as addresses, not always as they seem:
# nmap 7.93 lists 0177.0.0.1 as 177.0.0.1 where inet_aton reads 127.0.0.1, and 127.1 as 127.0.0.1.
AMBIGUOUS = ["127.1", "0x7f.0.0.1", "2130706433", "0177.0.0.1", "010.0.0.1", "127.0.0.1-3", "127.0.0.0x1"]
ACCEPTED = ["127.0.0.1", "127.0.0.0/30", "127.0.5.7/32", "127.0.4.0/29"]


def listed(client: docker.DockerClient, image: str, target: str) -> list[str]:
    """The addresses `nmap -sL -n TARGET` lists (nothing is sent: -sL only lists, -n resolves nothing)."""
    output = client.containers.run(
        image, ["-sL", "-n", target], entrypoint=["nmap"], network_mode="none", remove=True, user="65532:65532",
        cap_drop=["ALL"],
    )  # fmt: skip
    return [by_name or plain for by_name, plain in _LISTED.findall(output.decode())]


def test_the_ambiguous_forms_pass_nmaps_params_and_nmap_reads_them_as_addresses() -> None:
    params = load_catalogue()["nmap"].params_model.model_validate({"targets": AMBIGUOUS})
    assert list(params.targets) == AMBIGUOUS  # so the scope check is what stands between them and nmap


@pytest.mark.parametrize("target", AMBIGUOUS)
def test_a_form_nmap_reads_as_an_address_is_refused_by_the_scope_check(
    docker_client: docker.DockerClient, tools_image: str, target: str
) -> None:
    addresses = listed(docker_client, tools_image, target)
    assert addresses and all(ipaddress.ip_address(a) for a in addresses), addresses  # nmap: an address, not a name
    with pytest.raises(TargetError, match=r"dotted quad|not an IPv4 address"):
        host.read(TargetKind.HOST, target)


@pytest.mark.parametrize("target", ACCEPTED)
def test_a_target_the_check_accepts_lists_under_nmap_exactly_as_the_check_read_it(
    docker_client: docker.DockerClient, tools_image: str, target: str
) -> None:
    network = host.read(TargetKind.HOST, target).network
    assert network is not None
    assert [ipaddress.ip_address(a) for a in listed(docker_client, tools_image, target)] == list(
        network if network.num_addresses > 1 else [network.network_address]
    )


def test_nmap_and_the_c_library_read_a_leading_zero_differently_so_neither_reading_is_guessed(
    docker_client: docker.DockerClient, tools_image: str
) -> None:
    assert listed(docker_client, tools_image, "0177.0.0.1") == ["177.0.0.1"]  # nmap: decimal
    assert socket.inet_ntoa(socket.inet_aton("0177.0.0.1")) == "127.0.0.1"  # inet_aton (Go's cgo resolver): octal
    with pytest.raises(TargetError):
        host.read(TargetKind.HOST, "0177.0.0.1")
