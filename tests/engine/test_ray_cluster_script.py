"""scripts/ray-cluster.sh keeps the test cluster on 127.0.0.1: every TCP port any process of its
nodes listens on (GCS, raylets, object managers, agents, workers, the job API) is bound to a
loopback address, never to 0.0.0.0 or ::. Read from /proc (the kernel's socket table and each
process's descriptors), so nothing here trusts Ray's own idea of where it listens."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from tests.conftest import _required_backends

STATE_DIR = Path(os.environ.get("EVOCADE_RAY_DIR", "/tmp/evocade-ray"))
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """/proc/net/tcp{,6}'s local address (host byte order, per 32-bit word) as an address."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def _is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def listening_sockets() -> dict[int, tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """Socket inode -> (address, port) of every listening TCP socket on the machine."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN:
                continue
            host, _, port = fields[1].partition(":")
            found[int(fields[9])] = (_address(host), int(port, 16))
    return found


def session_members(session: int) -> list[int]:
    """Every process whose session id is `session` (a node's `ray start --block` and all it
    spawned: ray-cluster.sh starts each node in a session of its own)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        fields = stat.rpartition(")")[2].split()  # after "pid (comm)": state ppid pgrp session
        if int(fields[3]) == session:
            members.append(int(entry.name))
    return members


def socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for descriptor in descriptors:
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def test_address_decoding_reads_the_kernels_byte_order() -> None:
    assert str(_address("0100007F")) == "127.0.0.1"
    assert str(_address("00000000")) == "0.0.0.0"
    assert str(_address("00000000000000000000000001000000")) == "::1"
    mapped = _address("0000000000000000FFFF00000100007F")
    assert isinstance(mapped, ipaddress.IPv6Address)
    assert str(mapped.ipv4_mapped) == "127.0.0.1"
    assert not _is_loopback(_address("00000000000000000000000000000000"))  # ::
    assert _is_loopback(_address("0000000000000000FFFF00000100007F"))


@pytest.mark.ray
def test_ray_cluster_script_listens_on_loopback_only(ray_address: str) -> None:
    nodes = {name: STATE_DIR / f"{name}.pid" for name in ("head", "worker")}
    started_here = (STATE_DIR / "address").is_file() and all(p.is_file() for p in nodes.values())
    if not started_here or (STATE_DIR / "address").read_text().strip() != ray_address:
        reason = f"the cluster at {ray_address} was not started by scripts/ray-cluster.sh"
        if "ray" in _required_backends():
            pytest.fail(f"{reason} (state in {STATE_DIR})")
        pytest.skip(reason)
    listening = listening_sockets()
    seen: list[tuple[int, str]] = []
    exposed = []
    for name, pid_file in nodes.items():
        members = session_members(int(pid_file.read_text()))
        assert members, f"the {name} node's session has no process"
        for pid in members:
            for inode in socket_inodes(pid) & set(listening):
                address, port = listening[inode]
                where = f"{name} pid {pid} ({_comm(pid)}) on {address}:{port}"
                seen.append((port, where))
                if not _is_loopback(address):
                    exposed.append(where)
    assert not exposed, "listening beyond loopback: " + "; ".join(exposed)
    ports = {port for port, _ in seen}
    assert int(ray_address.rpartition(":")[2]) in ports  # the GCS itself was among them
    assert len(ports) >= 6, seen  # GCS, two raylets and object managers, agents: all looked at


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"
