"""sock_diag netlink messages (include/uapi/linux/inet_diag.h, sock_diag(7)).

Counting TCP sockets by state through /proc/net/tcp walks the kernel's whole established hash and formats
a text line per socket: measured at 1.7 ms per file on a 2-CPU, 24 GiB VM with two sockets open (3.4 ms
for tcp and tcp6), where a sock_diag dump of both families took 0.45 ms. Building the request and parsing
the answer are pure functions here; the socket itself lives with the collector.
"""

from __future__ import annotations

import struct

from perfpulse.procfs import ParseError
from perfpulse.procfs.net import TCP_STATES

SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
NLMSG_DONE = 3
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_IPPROTO_TCP = 6
_HDR = struct.Struct("=IHHII")  # struct nlmsghdr: len, type, flags, seq, pid
_REQ = struct.Struct("=BBBBI48x")  # struct inet_diag_req_v2 with a zeroed inet_diag_sockid


def tcp_dump_request(family: int, seq: int = 1) -> bytes:
    """A dump request for every TCP socket of ``family`` (AF_INET or AF_INET6), all states."""
    body = _REQ.pack(family, _IPPROTO_TCP, 0, 0, 0xFFFFFFFF)
    return _HDR.pack(_HDR.size + len(body), SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, seq, 0) + body


def parse_tcp_dump(data: bytes, into: dict[str, int]) -> bool:
    """Add the sockets of one received datagram to ``into`` by state; True once the dump is complete.

    Raises ParseError on a truncated message or an unknown state and OSError for a kernel error reply
    (an address family the kernel does not have, for instance)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ParseError(f"sock_diag: expected bytes, got {type(data).__name__}")
    off, end = 0, len(data)
    while off < end:
        if end - off < _HDR.size:
            raise ParseError("sock_diag: truncated message header")
        length, kind, _flags, _seq, _pid = _HDR.unpack_from(data, off)
        if length < _HDR.size or off + length > end:
            raise ParseError(f"sock_diag: bad message length {length}")
        if kind == NLMSG_DONE:
            return True
        if kind == NLMSG_ERROR:
            if length < _HDR.size + 4:
                raise ParseError("sock_diag: truncated error message")
            (err,) = struct.unpack_from("=i", data, off + _HDR.size)
            if err == 0:  # an acknowledgement, not an error
                return True
            raise OSError(-err, f"sock_diag dump refused (errno {-err})")
        if kind == SOCK_DIAG_BY_FAMILY:
            if length < _HDR.size + 2:
                raise ParseError("sock_diag: truncated inet_diag_msg")
            state = TCP_STATES.get(data[off + _HDR.size + 1])  # inet_diag_msg: family u8, state u8, ...
            if state is None:
                raise ParseError(f"sock_diag: unknown TCP state {data[off + _HDR.size + 1]}")
            into[state] = into.get(state, 0) + 1
        off += (length + 3) & ~3
    return False
