from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from system_machines import (
    MACHINES,
    Clock,
    catalogue_gaps,
    copy_tree,
    drop_lines,
    large,
    numbers,
    scenario,
    ticks,
)

from perfpulse.collectors.base import Roots
from perfpulse.collectors.network import NetworkCollector, _tcp_by_netlink
from perfpulse.procfs.files import read
from perfpulse.procfs.net import TCP_STATES, parse_tcp_states


def test_large_machine() -> None:
    clock = Clock()
    first, second = ticks(NetworkCollector(clock=clock), clock, scenario("large"))
    assert first["interfaces"]["ens1f0"]["rx_bytes_per_second"] is None
    ifs = second["interfaces"]
    assert set(ifs) == set(large.NICS)
    assert {n: i["kind"] for n, i in ifs.items()} == {n: v[0] for n, v in large.NICS.items()}
    ens = ifs["ens1f0"]
    assert ens["rx_bytes_per_second"] == 900_000_000 and ens["tx_packets_per_second"] == 90_000
    assert ens["rx_errors_per_second"] == 1 and ens["rx_drops_per_second"] == 2
    assert ens["speed_bytes_per_second"] == 25_000 * 125_000 and ens["up"] is True
    assert ifs["ens1f1"]["up"] is False and ifs["ens1f1"]["speed_bytes_per_second"] is None
    assert ifs["lo"]["up"] is True  # operstate "unknown" with IFF_UP, as `ip link` shows it
    assert ifs["ens1f0"]["mtu_bytes"] == 9000
    not_lo = [v for n, v in large.NICS.items() if n != "lo"]
    assert second["total"]["rx_bytes_per_second"] == sum(v[5] for v in not_lo)
    assert second["total"]["tx_packets_per_second"] == sum(v[8] for v in not_lo)
    expected = {name: large.TCP_COUNTS[n] + (20 if n == 6 else 0) for n, name in TCP_STATES.items()}
    assert second["tcp"] == expected
    assert second["info"]["bond0"] == {"bond": 1} and second["info"]["br0"] == {"bridge": 1}
    assert catalogue_gaps(NetworkCollector(), second) == []


def test_captured_machine() -> None:
    clock = Clock()
    _, second = ticks(NetworkCollector(clock=clock), clock, scenario("captured"))
    ifs = second["interfaces"]
    assert ifs["lo"]["kind"] == "loopback" and ifs["eth0"]["kind"] == "physical"
    assert ifs["eth0"]["up"] is True
    assert second["tcp"]["listen"] >= 1
    assert min(numbers(second)) >= 0


def test_counters_going_backwards_give_no_rate() -> None:
    clock = Clock()
    _, second = ticks(NetworkCollector(clock=clock), clock, [MACHINES / "large/t1", MACHINES / "large/t0"])
    for name, iface in second["interfaces"].items():
        if large.NICS[name][5]:  # ens1f1 carries no traffic: its counters stay equal, a true 0
            assert iface["rx_bytes_per_second"] is None and iface["tx_bytes_per_second"] is None
    assert second["total"]["rx_bytes_per_second"] == 0.0  # only ens1f1 (idle, counters unchanged) has a rate
    assert min(numbers(second)) >= 0


def test_vanished_interface_starts_fresh_when_it_returns(tmp_path: Path) -> None:
    t1 = copy_tree(MACHINES / "large/t1", tmp_path / "t1")
    drop_lines(t1 / "proc/net/dev", "ens1f0:")
    clock = Clock()
    _, second, third = ticks(
        NetworkCollector(clock=clock), clock, [MACHINES / "large/t0", t1, MACHINES / "large/t1"]
    )
    assert "ens1f0" not in second["interfaces"]
    assert second["interfaces"]["eno1"]["rx_bytes_per_second"] == 40_000_000
    assert third["interfaces"]["ens1f0"]["rx_bytes_per_second"] is None  # not a delta against t0
    assert third["interfaces"]["eno1"]["rx_bytes_per_second"] == 0.0
    assert third["total"]["rx_bytes_per_second"] == 0.0  # ens1f0 is back but has no rate yet


def test_missing_net_dev_is_unavailable(tmp_path: Path) -> None:
    c = NetworkCollector(roots=Roots.under(tmp_path))
    assert not c.is_available()
    assert asyncio.run(c.collect())["available"] is False


def test_this_machine_netlink_and_files_agree_on_our_sockets() -> None:
    """The live path counts with sock_diag; /proc/net/tcp must see the same sockets we open."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            accepted, _ = server.accept()
            with accepted:
                by_netlink = _tcp_by_netlink()
                by_files = parse_tcp_states(read("/proc/net/tcp"))
                parse_tcp_states(read("/proc/net/tcp6"), by_files)
                assert client.fileno() >= 0
    for counts in (by_netlink, by_files):
        assert counts["listen"] >= 1 and counts["established"] >= 2
    c = NetworkCollector()
    asyncio.run(c.collect())
    out = asyncio.run(c.collect())
    assert "lo" in out["interfaces"] and out["interfaces"]["lo"]["kind"] == "loopback"
    assert out["tcp"] is not None and out["tcp"]["listen"] >= 0
    assert min(numbers(out)) >= 0


def test_tcp_census_is_refreshed_every_tcp_interval(tmp_path: Path) -> None:
    """Counting sockets walks the kernel's connection hash, so it runs every 5 s, not every tick."""
    t0 = copy_tree(MACHINES / "large/t0", tmp_path / "t0")
    clock = Clock()
    c = NetworkCollector(roots=Roots.under(t0), clock=clock)
    before = asyncio.run(c.collect())["tcp"]
    drop_lines(t0 / "proc/net/tcp", "0: ")  # one established socket fewer
    clock.now += 1.0
    assert asyncio.run(c.collect())["tcp"] == before
    clock.now += 4.0
    after = asyncio.run(c.collect())["tcp"]
    assert after["established"] == before["established"] - 1


def test_minimal_machine_still_works() -> None:
    clock = Clock()
    _, second = ticks(NetworkCollector(clock=clock), clock, scenario("minimal"))
    assert second["available"] is True and second["interfaces"]["lo"]["rx_bytes_per_second"] is not None


def test_a_root_re_pointed_at_another_tree_refreshes_the_cached_census(tmp_path: Path) -> None:
    """Replays swap a symlink under fixed roots; the TCP census and interface kinds must follow it."""
    link = tmp_path / "machine"
    link.symlink_to(MACHINES / "large/t0", target_is_directory=True)
    clock = Clock()
    c = NetworkCollector(roots=Roots.under(link), clock=clock)
    assert asyncio.run(c.collect())["tcp"]["time_wait"] == 180
    link.unlink()
    link.symlink_to(MACHINES / "large/t1", target_is_directory=True)
    clock.now += 1.0
    out = asyncio.run(c.collect())
    assert out["tcp"]["time_wait"] == 200
    assert out["interfaces"]["ens1f0"]["rx_bytes_per_second"] == 900_000_000
