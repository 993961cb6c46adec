"""What one perfpulse tick costs, and what the daemon costs at 1 Hz, against Glances and node_exporter.

Measured in one run:

1. In process: CPU time (``time.process_time``, every thread of the process) per full default tick, over
   many ticks after a warm-up; then each collector alone, so an expensive one is named; and the
   Prometheus rendering of a Snapshot.
2. Daemons at 1 Hz for ``--duration`` seconds (300 for the recorded figures), side by side, each process's
   utime+stime read from /proc/<pid>/stat after a warm-up and at the end:
   - perfpulse: a real Sampler loop over the default collectors, rendering the Prometheus text every tick
     (as if scraped every second);
   - Glances (PyPI ``glances``, in its own venv, never the project's): its stats API refreshing cpu, mem,
     memswap, load, diskio, fs, network, processcount, processlist, sensors once a second;
   - node_exporter (Debian ``prometheus-node-exporter``) on a loopback port, scraped once a second by this
     process with a plain HTTP client; once with its default collectors and once with only those that read
     the sources perfpulse reads.

Run: ``.venv/bin/python -m bench.tick_cost [--duration 300] [--ticks 100]``. Glances is looked up in
``--glances-python`` (default /tmp/glances-venv/bin/python; create it with
``python3 -m venv /tmp/glances-venv && /tmp/glances-venv/bin/pip install glances``) and node_exporter on
PATH or /usr/bin; a missing peer is reported as missing, not guessed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

GLANCES_PLUGINS = (
    "cpu",
    "mem",
    "memswap",
    "load",
    "diskio",
    "fs",
    "network",
    "processcount",
    "processlist",
    "sensors",
)

# A Glances loop on a fixed 1 s grid, printing one line per refresh (counted by the parent).
#
# Each Glances plugin guards its update() with a refresh timer (``_check_decorator``): a call made before the
# timer ran out (``--time``, 2 s by default, or a plugin's own ``refresh``) returns the stats of the last
# refresh without reading anything. Called once a second with its own timers, Glances really refreshes cpu,
# mem, load, diskio and the process table only every second or third call (8 calls here gave 3 refreshes)
# and fs once a minute, so CPU divided by calls would not be CPU per refresh. The loop therefore expires every
# plugin's timer before calling it (``own_timers`` False), and reports on each line how many of the timer-
# guarded plugins did refresh, so the parent counts only full refreshes. ``own_timers`` True keeps Glances'
# timers, to show the difference (``--glances-own-timers``).
GLANCES_LOOP = """
import sys, time
sys.argv = ["glances"]
from glances.main import GlancesMain
from glances.stats import GlancesStats
core = GlancesMain()
stats = GlancesStats(config=core.get_config(), args=core.get_args())
plugins = [stats.get_plugin(n) for n in {plugins!r}]
own_timers = {own_timers!r}
t0 = time.monotonic()
k = 0
while True:
    refreshed = 0
    for p in plugins:
        if not own_timers:
            p.refresh_timer.target = 0.0
        before = p.refresh_timer.target
        p.update()
        refreshed += p.refresh_timer.target != before
    print("tick", refreshed, flush=True)
    k += 1
    time.sleep(max(0.0, t0 + k * 1.0 - time.monotonic()))
"""

#: Plugins whose update() is guarded by a refresh timer in Glances 4.5 (network and processlist are not:
#: network reads on every call, processlist shows what processcount's refresh of the process table read).
GLANCES_TIMED = ("cpu", "mem", "memswap", "load", "diskio", "fs", "processcount", "sensors")

# node_exporter collectors that read what perfpulse's default collectors read.
NODE_MATCHED = (
    "cpu",
    "cpufreq",
    "stat",
    "loadavg",
    "meminfo",
    "vmstat",
    "diskstats",
    "filesystem",
    "netdev",
    "netclass",
    "sockstat",
    "pressure",
    "hwmon",
    "processes",
    "rapl",
)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# -- 1. in process -------------------------------------------------------------------------------------------
async def _per_tick(enabled: list[str] | None, ticks: int, gap: float) -> tuple[float, dict[str, float]]:
    from perfpulse.sampler import build_default

    sampler = build_default(enabled=enabled)
    for _ in range(3):  # warm-up: first reads, perf opens, topology scans
        await sampler.tick()
        await asyncio.sleep(gap)
    cpu = 0.0
    durations: dict[str, list[float]] = {}
    for _ in range(ticks):
        t0 = time.process_time()
        snap = await sampler.tick()
        cpu += time.process_time() - t0
        for name, meta in snap.meta.items():
            durations.setdefault(name, []).append(meta.duration_ms)
        await asyncio.sleep(gap)
    await sampler.aclose()
    return cpu / ticks, {n: statistics.fmean(v) for n, v in durations.items()}


def _sampler_overhead(ticks: int) -> float:
    """CPU per tick of the Sampler and aggregator alone: ten collectors whose collection is one blocking call
    that returns at once, as the real /proc collectors' are, ticking at 0.1 s."""
    from perfpulse.collectors.aggregator import MetricsAggregator
    from perfpulse.model import Snapshot
    from perfpulse.sampler import Sampler
    from perfpulse.testing import FakeCollector

    fakes = [FakeCollector(f"hop{i}", shared_worker=True) for i in range(10)]
    sampler = Sampler(MetricsAggregator(fakes), interval=0.1)
    marks: list[float] = []

    def sink(s: Snapshot) -> None:
        if s.seq in (10, 10 + ticks):
            marks.append(time.process_time())
        if s.seq >= 10 + ticks:
            sampler.stop()

    async def go() -> None:
        sampler.add_sink(sink, name="bench")
        await sampler.run()
        await sampler.aclose()

    asyncio.run(go())
    return (marks[1] - marks[0]) / ticks


def _render_cost(ticks: int) -> float:
    from perfpulse.exporters.prometheus import render
    from perfpulse.sampler import build_default

    async def go() -> float:
        sampler = build_default()
        await sampler.tick()
        await asyncio.sleep(0.2)
        snap = await sampler.tick()
        collectors = sampler.aggregator.collectors()
        t0 = time.process_time()
        for _ in range(ticks):
            render(snap, collectors)
        cost = (time.process_time() - t0) / ticks
        await sampler.aclose()
        return cost

    return asyncio.run(go())


# -- 2. daemons ------------------------------------------------------------------------------------------------
def daemon(scrape_every_tick: bool) -> None:
    """The perfpulse side of the 1 Hz comparison: a real Sampler over the default collectors; with
    ``scrape_every_tick`` it also renders the Prometheus text each tick, as a 1 s scrape would make it."""
    from perfpulse.exporters.prometheus import render
    from perfpulse.model import Snapshot
    from perfpulse.sampler import build_default

    async def go() -> None:
        sampler = build_default(interval=1.0)
        collectors = sampler.aggregator.collectors()

        def scrape(s: Snapshot) -> None:
            if scrape_every_tick:
                render(s, collectors)
            print("tick", flush=True)

        sampler.add_sink(scrape, name="scrape")
        await sampler.run()

    asyncio.run(go())


@dataclass
class Peer:
    name: str
    proc: subprocess.Popen[str]
    refreshes: int = 0
    counting: bool = False
    cpu0: float = 0.0
    errors: list[str] = field(default_factory=list)
    #: For Glances: how many timer-guarded plugins must report a refresh for a call to count as one.
    plugins_per_refresh: int = 0
    calls: int = 0
    plugin_updates: int = 0
    plugin_refreshes: int = 0

    def count_lines(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not (line.startswith("tick") and self.counting):
                continue
            self.calls += 1
            if not self.plugins_per_refresh:
                self.refreshes += 1
                continue
            refreshed = int(line.split()[1])
            self.plugin_updates += self.plugins_per_refresh
            self.plugin_refreshes += refreshed
            if refreshed >= self.plugins_per_refresh:
                self.refreshes += 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scraper(peer: Peer, url: str, stop: threading.Event) -> None:
    t0 = time.monotonic()
    k = 0
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                r.read()
            if peer.counting:
                peer.refreshes += 1
        except (
            OSError,
            http.client.HTTPException,
        ) as exc:  # IncompleteRead when the exporter stops mid-scrape
            peer.errors.append(str(exc))
        k += 1
        stop.wait(max(0.0, t0 + k - time.monotonic()))


def _wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: exporter exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as r:
                r.read()
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def daemons(
    duration: float, glances_python: str, warmup: float = 5.0, glances_own_timers: bool = False
) -> dict[str, dict[str, float]]:
    peers: list[Peer] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        for label, flag in (("perfpulse", "--daemon"), ("perfpulse + /metrics render", "--daemon-render")):
            pp = subprocess.Popen(
                [sys.executable, "-m", "bench.tick_cost", flag],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            peers.append(Peer(label, pp))
        if Path(glances_python).exists():
            variants = [("glances", False)]
            if glances_own_timers:
                variants.append(("glances (own refresh timers)", True))
            for label, own in variants:
                code = GLANCES_LOOP.format(plugins=GLANCES_PLUGINS, own_timers=own)
                gl = subprocess.Popen(
                    [glances_python, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
                )
                peers.append(Peer(label, gl, plugins_per_refresh=0 if own else len(GLANCES_TIMED)))
        else:
            print(f"glances: {glances_python} not found; skipped", file=sys.stderr)
        ne = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
        if ne is None and Path("/usr/bin/prometheus-node-exporter").exists():
            ne = "/usr/bin/prometheus-node-exporter"
        if ne is not None:
            for label, extra in (
                ("node_exporter (defaults)", []),
                (
                    "node_exporter (matched)",
                    ["--collector.disable-defaults", *(f"--collector.{c}" for c in NODE_MATCHED)],
                ),
            ):
                port = _free_port()
                proc = subprocess.Popen(
                    [ne, f"--web.listen-address=127.0.0.1:{port}", *extra],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                url = f"http://127.0.0.1:{port}/metrics"
                _wait_http(url, proc)
                peer = Peer(label, proc)
                peers.append(peer)
                threads.append(threading.Thread(target=_scraper, args=(peer, url, stop), daemon=True))
        else:
            print(
                "node_exporter: not installed (apt-get install prometheus-node-exporter); skipped",
                file=sys.stderr,
            )
        for p in peers:
            if p.proc.stdout is not None:
                threads.append(threading.Thread(target=p.count_lines, daemon=True))
        for t in threads:
            t.start()
        time.sleep(warmup)
        t_start = time.monotonic()
        for p in peers:
            p.cpu0 = cpu_seconds(p.proc.pid)
            p.counting = True
        time.sleep(duration)
        elapsed = time.monotonic() - t_start
        out: dict[str, dict[str, float]] = {}
        for p in peers:
            p.counting = False
            used = cpu_seconds(p.proc.pid) - p.cpu0
            out[p.name] = {
                "cpu_seconds": used,
                "seconds": elapsed,
                "refreshes": float(p.refreshes),
                "core_percent": 100.0 * used / elapsed,
                "cpu_ms_per_refresh": 1000.0 * used / max(p.refreshes, 1),
                "errors": float(len(p.errors)),
                "calls": float(p.calls),
                "plugin_updates": float(p.plugin_updates),
                "plugin_refreshes": float(p.plugin_refreshes),
            }
        return out
    finally:
        stop.set()
        for p in peers:
            if p.proc.poll() is None:
                p.proc.terminate()
        for p in peers:
            try:
                p.proc.wait(10)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()


# -- report ----------------------------------------------------------------------------------------------------
def run(
    duration: float, ticks: int, glances_python: str, peers: bool = True, glances_own_timers: bool = False
) -> None:
    full, means = asyncio.run(_per_tick(None, ticks, 0.25))
    per_collector = {}
    for name in sorted(means):
        per_collector[name], _ = asyncio.run(_per_tick([name], max(ticks // 2, 10), 0.25))
    render_s = _render_cost(ticks)
    overhead = _sampler_overhead(ticks)
    print("## Sampler tick cost\n")
    print(f"Machine: {os.cpu_count()} CPUs, {len(os.listdir('/proc'))} /proc entries.\n")
    print(f"- full default tick: **{full * 1000:.2f} ms CPU** (mean of {ticks} ticks after 3 warm-up ticks)")
    print(f"- Prometheus rendering of one Snapshot: {render_s * 1000:.2f} ms CPU")
    print(
        f"- Sampler + aggregator alone (10 collectors whose blocking call returns at once): {overhead * 1000:.2f} ms CPU\n"
    )
    print("| collector | CPU ms per tick (alone) | wall ms per tick (duration_ms, in the full tick) |")
    print("|---|---:|---:|")
    for name in sorted(per_collector, key=lambda n: -per_collector[n]):
        print(f"| {name} | {per_collector[name] * 1000:.2f} | {means[name]:.2f} |")
    if not peers:
        return
    res = daemons(duration, glances_python, glances_own_timers=glances_own_timers)
    print(f"\n### Daemons at 1 Hz, side by side for {duration:.0f} s\n")
    print("| process | CPU s | refreshes | CPU ms / refresh | % of one core |")
    print("|---|---:|---:|---:|---:|")
    for name, r in res.items():
        print(
            f"| {name} | {r['cpu_seconds']:.2f} | {r['refreshes']:.0f} | "
            f"{r['cpu_ms_per_refresh']:.2f} | {r['core_percent']:.2f} |"
        )
    pp = res.get("perfpulse")
    pr = res.get("perfpulse + /metrics render")
    if pp is None or pr is None:
        return
    print()
    # Glances only refreshes; node_exporter collects *and* renders on each scrape: compare like with like.
    for mine, label, peers_of in ((pp, "perfpulse", "glances"), (pr, "perfpulse + render", "node_exporter")):
        for name, r in res.items():
            if name.startswith(peers_of) and r["cpu_ms_per_refresh"] > 0:
                ratio = mine["cpu_ms_per_refresh"] / r["cpu_ms_per_refresh"]
                per = "call (not per refresh)" if "own refresh timers" in name else "refresh"
                print(f"- {label} / {name}, CPU per {per}: **{ratio:.2f}**")
    print(
        f"- perfpulse at 1 Hz: **{pp['core_percent']:.2f} % of one core** ({pr['core_percent']:.2f} % when scraped every second)"
    )
    for name, r in res.items():
        if r["errors"]:
            print(f"- {name}: {r['errors']:.0f} failed scrapes")
        if r["plugin_updates"]:
            print(
                f"- {name}: {r['refreshes']:.0f} of {r['calls']:.0f} calls refreshed every timer-guarded plugin "
                f"({r['plugin_refreshes']:.0f} of {r['plugin_updates']:.0f} plugin updates read their source)"
            )
        elif name.startswith("glances"):
            print(
                f"- {name}: {r['calls']:.0f} calls, counted as refreshes; with its own timers most calls return "
                "the stats of an earlier refresh, so its CPU per call is not CPU per refresh"
            )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.tick_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=300.0, help="seconds of the 1 Hz comparison (300)")
    p.add_argument("--ticks", type=int, default=100, help="ticks for the in-process cost (100)")
    p.add_argument("--glances-python", default="/tmp/glances-venv/bin/python")
    p.add_argument("--no-peers", action="store_true", help="in-process figures only")
    p.add_argument(
        "--glances-own-timers",
        action="store_true",
        help="also run Glances with its own refresh timers (most calls then read nothing), for comparison",
    )
    p.add_argument("--daemon", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--daemon-render", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.daemon or args.daemon_render:
        daemon(scrape_every_tick=args.daemon_render)
        return
    run(
        args.duration,
        args.ticks,
        args.glances_python,
        peers=not args.no_peers,
        glances_own_timers=args.glances_own_timers,
    )


if __name__ == "__main__":
    main()
