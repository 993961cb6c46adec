"""Network: per interface traffic from /proc/net/dev, link state from sysfs, TCP sockets by state.

Totals add every interface except loopback. Bonds, bridges and VLANs are counted like any interface, so on
a host where eth0 is enslaved to br0 the same bytes appear on both; each interface carries a ``kind``
(physical, virtual, bridge, bond, loopback) so a reader can filter. ``up`` follows ``ip link``: the
interface is administratively up (IFF_UP) and its operstate is ``up`` or ``unknown`` (drivers such as
virtio and loopback never report one).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from perfpulse.collectors.base import BaseCollector, Roots, register, run_blocking, unavailable
from perfpulse.model import MetricSpec
from perfpulse.procfs import ParseError
from perfpulse.procfs.files import read, read_attr, read_optional, tree_id, why
from perfpulse.procfs.inet_diag import parse_tcp_dump, tcp_dump_request
from perfpulse.procfs.net import TCP_STATES, parse_net_dev, parse_tcp_states
from perfpulse.procfs.sysfs import parse_hex, parse_int, parse_word
from perfpulse.rates import CounterTracker, read_boot_id

_COUNTERS = (
    ("rx_bytes", "bytes_per_second", "Bytes received"),
    ("tx_bytes", "bytes_per_second", "Bytes sent"),
    ("rx_packets", "per_second", "Packets received"),
    ("tx_packets", "per_second", "Packets sent"),
    ("rx_errors", "per_second", "Receive errors"),
    ("tx_errors", "per_second", "Transmit errors"),
    ("rx_drops", "per_second", "Received packets dropped"),
    ("tx_drops", "per_second", "Packets dropped before sending"),
)
_MAX_BYTES_PER_S = 1e12  # 8 Tb/s: beyond any NIC, so a larger jump is a counter glitch
_MAX_PACKETS_PER_S = 1e10
_KINDS_TTL_S = 60.0
#: Seconds an interface's speed and MTU are reused while its operstate stays the same.
_STATIC_TTL_S = 10.0
_IFF_UP = 0x1
_REAL_PROC = Path("/proc")
_NETLINK_SOCK_DIAG = 4
_ARPHRD_LOOPBACK = 772


def _g(name: str, unit: str, desc: str, path: str, labels: tuple[str, ...] = ("interface",)) -> MetricSpec:
    return MetricSpec(name, unit, "gauge", desc, path, labels)


@register
class NetworkCollector(BaseCollector):
    name = "network"
    catalogue = (
        *(_g(f"network_{k}_per_second", u, d, f"interfaces.*.{k}_per_second") for k, u, d in _COUNTERS),
        _g("network_up", "count", "1 when the interface is up", "interfaces.*.up"),
        _g(
            "network_speed_bytes_per_second",
            "bytes_per_second",
            "Negotiated link speed",
            "interfaces.*.speed_bytes_per_second",
        ),
        _g("network_mtu_bytes", "bytes", "Largest packet the interface sends", "interfaces.*.mtu_bytes"),
        _g("network_interface_info", "info", "Interface kind", "info.*.*", ("interface", "kind")),
        *(_g(f"network_total_{k}_per_second", u, d, f"total.{k}_per_second", ()) for k, u, d in _COUNTERS),
        _g("network_tcp_connections", "count", "TCP sockets (IPv4 and IPv6) per state", "tcp.*", ("state",)),
    )

    def __init__(
        self,
        *,
        roots: Roots | None = None,
        enabled: bool = True,
        timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        tcp_interval: float = 5.0,
    ) -> None:
        super().__init__(roots=roots, enabled=enabled, timeout=timeout)
        self._tracker = CounterTracker(clock=clock, boot_id=lambda: read_boot_id(str(self.roots.proc)))
        self._clock = clock
        self._kind_of: dict[str, str] = {}
        self._kinds_key: tuple[object, frozenset[str]] | None = None
        self._kinds_at = float("-inf")
        self.tcp_interval = tcp_interval
        self._tcp_last: dict[str, int] | None = None
        self._tcp_key: object = None
        self._tcp_at = float("-inf")
        #: interface -> (operstate when read, read at, speed, MTU)
        self._static: dict[str, tuple[str | None, float, float | None, int | None]] = {}

    def unavailable_reason(self) -> str | None:
        if not os.access(self.roots.proc / "net/dev", os.R_OK):
            return f"{self.roots.proc / 'net/dev'} cannot be read: is /proc mounted with networking?"
        return None

    def blocking_call(self) -> Callable[[], dict[str, Any]]:
        return self._collect

    async def collect(self) -> dict[str, Any]:
        return await run_blocking(self._collect)

    def _collect(self) -> dict[str, Any]:
        path = self.roots.proc / "net/dev"
        try:
            devs = parse_net_dev(read(path))
        except (OSError, ParseError) as exc:
            return unavailable(f"cannot read {path}: {why(exc)}", "check that /proc is mounted")
        interfaces: dict[str, Any] = {}
        # An interface seen for the first time (a new container's veth) has no rate yet and adds nothing to
        # this interval's total; the total is unknown only while no interface has a rate.
        total: dict[str, float | None] = {f"{k}_per_second": None for k, _, _ in _COUNTERS}
        tr = self._tracker
        now = self._clock()
        with tr.tick():
            kinds = self._kinds(devs)
            if len(self._static) > len(devs):
                self._static = {n: v for n, v in self._static.items() if n in devs}
            for name, st in devs.items():
                iface = self._link(name, kinds[name], now)
                for key, unit, _ in _COUNTERS:
                    limit = _MAX_BYTES_PER_S if unit == "bytes_per_second" else _MAX_PACKETS_PER_S
                    rate = tr.per_second((name, key), getattr(st, key), limit=limit)
                    iface[f"{key}_per_second"] = rate
                    if iface["kind"] != "loopback" and rate is not None:
                        total[f"{key}_per_second"] = rate + (total[f"{key}_per_second"] or 0.0)
                interfaces[name] = iface
        return {
            "available": True,
            "interfaces": interfaces,
            "info": {n: {i["kind"]: 1} for n, i in interfaces.items()},
            "total": total,
            "tcp": self._tcp(),
        }

    def _link(self, name: str, kind: str, now: float) -> dict[str, Any]:
        """State every tick; speed and MTU again when the state changes (a link that comes up negotiates
        its speed) and at least every ``_STATIC_TTL_S``: two reads an interface instead of four."""
        base = f"{self.roots.sys}/class/net/{name}"
        operstate, flags = _link_state(base)
        known = self._static.get(name)
        if known is None or known[0] != operstate or now - known[1] > _STATIC_TTL_S:
            known = (operstate, now, *_link_static(base))
            self._static[name] = known
        return {
            "kind": kind,
            "operstate": operstate,
            "up": None if flags is None else bool(flags & _IFF_UP) and operstate in ("up", "unknown"),
            "speed_bytes_per_second": known[2],
            "mtu_bytes": known[3],
        }

    def _kinds(self, devs: Mapping[str, object]) -> dict[str, str]:
        """Interface kinds change only when interfaces come and go: looked up again then, or each minute."""
        key = (tree_id(self.roots.sys), frozenset(devs))
        now = self._clock()
        if key[0] != (self._kinds_key or (None,))[0]:
            self._static = {}  # another sysfs tree: nothing read from the old one holds
        if key != self._kinds_key or now - self._kinds_at > _KINDS_TTL_S:
            self._kind_of = {n: _kind(f"{self.roots.sys}/class/net/{n}") for n in devs}
            self._kinds_key, self._kinds_at = key, now
        return self._kind_of

    def _tcp(self) -> dict[str, int] | None:
        """Sockets by state, refreshed every ``tcp_interval`` seconds: counting walks the kernel's whole
        connection hash (0.5-1 ms here), and a per-state census is not worth that every second."""
        now = self._clock()
        key = tree_id(self.roots.proc)
        if key == self._tcp_key and now - self._tcp_at < self.tcp_interval:
            return self._tcp_last
        self._tcp_last, self._tcp_key, self._tcp_at = self._count_tcp(), key, now
        return self._tcp_last

    def _count_tcp(self) -> dict[str, int] | None:
        if self.roots.proc == _REAL_PROC:
            try:
                return _tcp_by_netlink()
            except (OSError, ParseError):
                pass  # no sock_diag (a seccomp profile, a kernel without inet_diag): read the files
        counts = dict.fromkeys(TCP_STATES.values(), 0)
        found = False
        for rel in ("net/tcp", "net/tcp6"):
            try:
                raw = read_optional(self.roots.proc / rel)  # tcp6 is absent with ipv6.disable=1
            except OSError:
                continue
            if raw is None:
                continue
            try:
                parse_tcp_states(raw, counts)
                found = True
            except ParseError:
                continue
        return counts if found else None


def _tcp_by_netlink() -> dict[str, int]:
    """TCP sockets by state in this network namespace, the same set /proc/net/tcp{,6} lists."""
    counts = dict.fromkeys(TCP_STATES.values(), 0)
    families = [socket.AF_INET]
    if os.path.exists("/proc/net/if_inet6"):  # absent with ipv6.disable=1
        families.append(socket.AF_INET6)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(1.0)
        for seq, family in enumerate(families, 1):
            sock.sendall(tcp_dump_request(family, seq))
            while not parse_tcp_dump(sock.recv(1 << 16), counts):
                pass
    return counts


def _kind(base: str) -> str:
    if read_attr(f"{base}/type", parse_int) == _ARPHRD_LOOPBACK:
        return "loopback"
    if os.path.isdir(f"{base}/bridge"):
        return "bridge"
    if os.path.isdir(f"{base}/bonding"):
        return "bond"
    return "physical" if os.path.exists(f"{base}/device") else "virtual"


def _link_state(base: str) -> tuple[str | None, int | None]:
    """operstate and flags of one interface from sysfs (ABI: sysfs-class-net); missing ones read None."""
    return read_attr(f"{base}/operstate", parse_word), read_attr(f"{base}/flags", parse_hex)


def _link_static(base: str) -> tuple[float | None, int | None]:
    """Speed (bytes/s) and MTU of one interface: attributes that change only with the link's state or an
    administrator's command."""
    speed = read_attr(f"{base}/speed", parse_int)  # Mb/s; -1 or EINVAL when the link is down or has no speed
    return (speed * 125_000 if speed is not None and speed > 0 else None), read_attr(f"{base}/mtu", parse_int)
