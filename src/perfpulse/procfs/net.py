"""/proc/net/dev (per-interface counters) and /proc/net/tcp, tcp6 (one socket per line).

/proc/net/dev: two header lines, then ``name: 8 receive fields 8 transmit fields`` (net/core/net-procfs.c).
The name may touch the first number when it is wide (``eth0:123``), so the split is on the colon.
/proc/net/tcp: the 4th column ``st`` is the TCP state in hex (include/net/tcp_states.h).
"""

from __future__ import annotations

from dataclasses import dataclass

from perfpulse.procfs import ParseError, as_text, to_ints

#: include/net/tcp_states.h, TCP_ESTABLISHED = 1 .. TCP_NEW_SYN_RECV = 12.
TCP_STATES: dict[int, str] = {
    1: "established",
    2: "syn_sent",
    3: "syn_recv",
    4: "fin_wait1",
    5: "fin_wait2",
    6: "time_wait",
    7: "close",
    8: "close_wait",
    9: "last_ack",
    10: "listen",
    11: "closing",
    12: "new_syn_recv",
}


@dataclass(frozen=True, slots=True)
class NetDevStat:
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_drops: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_drops: int


def parse_net_dev(data: bytes | str) -> dict[str, NetDevStat]:
    text = as_text(data, "/proc/net/dev")
    out: dict[str, NetDevStat] = {}
    for line in text.splitlines():
        if "|" in line or not line.strip():
            continue  # the two header lines carry '|' separators
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not sep or not name:
            raise ParseError(f"/proc/net/dev: unexpected line {line[:60]!r}")
        nums = to_ints(rest.split(), f"/proc/net/dev {name[:20]}")
        if len(nums) != 16:
            raise ParseError(f"/proc/net/dev {name[:20]}: expected 16 counters, got {len(nums)}")
        if min(nums) < 0:
            raise ParseError(f"/proc/net/dev {name[:20]}: negative counter")
        out[name] = NetDevStat(*nums[0:4], *nums[8:12])
    return out


def parse_tcp_states(data: bytes | str, into: dict[str, int] | None = None) -> dict[str, int]:
    """Sockets per state name; ``into`` lets tcp and tcp6 add into one dict. Every state is present."""
    text = as_text(data, "/proc/net/tcp")
    out = into if into is not None else dict.fromkeys(TCP_STATES.values(), 0)
    lines = text.splitlines()
    if lines and lines[0].split()[:1] == ["sl"]:
        lines = lines[1:]
    for line in lines:
        parts = line.split(None, 4)
        if not parts:
            continue
        if len(parts) < 4 or not parts[0].endswith(":"):
            raise ParseError(f"/proc/net/tcp: unexpected line {line[:60]!r}")
        tok = parts[3]
        try:
            state = int(tok, 16) if tok.isascii() and tok.isalnum() and len(tok) <= 4 else -1
        except ValueError:
            state = -1
        name = TCP_STATES.get(state)
        if name is None:
            raise ParseError(f"/proc/net/tcp: unknown state {tok[:10]!r}")
        out[name] = out.get(name, 0) + 1
    return out
