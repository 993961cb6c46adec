"""The dashboard in Debian's Chromium at 1 Hz: main-thread time per tick, time to the first full chart after a
load, and the size of what the browser downloads, against the web UI of Glances measured in the same run.

* ``perfpulse`` — `perfpulse serve --interval 1` in a subprocess (fresh data directory, an admin created
  through the setup API), its ring filled for ``--warmup`` seconds (300 = the full five-minute window), the
  Live view open with every panel streaming.
* ``glances``   — `glances -w -t 1` (PyPI, in its own venv: ``python3 -m venv /tmp/glances-web-venv &&
  /tmp/glances-web-venv/bin/pip install 'glances[web]'``), its web UI refreshing every second.

Main-thread time comes from Chromium itself (CDP ``Performance.getMetrics``: ``TaskDuration`` is every task
the renderer's main thread ran — script, style, layout, paint, GC) divided by the ticks (perfpulse) or
refreshes (Glances) in the window. For perfpulse the page also records each tick's own cost (from the
WebSocket message to the end of the work it queued, style/layout/paint included), which gives a median.
Both pages are measured twice: in a 1920×1080 viewport, and in a 1920×6000 one where every panel is on
screen (panels off screen skip their redraw, so this is the worst case).

    .venv/bin/python -m bench.dashboard [--warmup 300] [--seconds 60] [--reloads 5] [--glances-python PATH]

Two builds of the dashboard against one daemon (``--ab DIR_A DIR_B``, each a copy of ``src/perfpulse/web``
made after ``npm run build``): single runs of the above, each with its own daemon, differ by more than a
small change when other work shares the CPUs. Here one daemon serves both builds (the page's script and
stylesheet are swapped per browser context by request interception), measured alternately in
``--seconds`` windows for ``--rounds`` rounds. Besides ``TaskDuration`` and the page's per-tick median,
each window is traced (CDP ``Tracing``) and the CPU time of the renderer's main thread summed (the
``tdur`` of its top-level tasks), which a busy neighbour inflates much less than wall-clock time; the
tracing itself adds to all three figures (``--no-trace`` leaves it out, and the CPU figure with it).
Glances and the reloads are not run in this mode.

    .venv/bin/python -m bench.dashboard --ab /tmp/web-before /tmp/web-after [--rounds 3] [--seconds 20]

More than two builds can be given (each is measured once per round, in the order given in odd rounds and
in the reverse order in even ones: give an even ``--rounds``). ``--url URL``
measures a daemon that is already running and warmed (an admin ``bench`` with the password below must
exist), which saves the five minutes of warm-up between experiments. ``--breakdown`` adds, from the traces,
the CPU per tick of every browser thread (the renderer's main thread, the compositor, the raster workers,
the display compositor in the GPU process) and the main thread's CPU by trace event, each event counted
without the events nested in it, so that the parts add up.

    .venv/bin/python -m bench.dashboard --url http://127.0.0.1:8787 --ab A B C --rounds 2 --seconds 15 --breakdown

``--profile SECONDS`` (with ``--url`` and ``--ab``) records a CDP sampling profile of each build instead and
prints its call tree in milliseconds per tick; give it builds made with ``npx vite build --minify false
--outDir DIR`` so that the functions keep their names.

``--allocations SECONDS`` (with ``--url`` and ``--ab``) records a CDP sampling heap profile of each build
(one sample per KiB allocated, objects collected since included) and prints the KiB allocated per tick,
in all and by the function that allocated them. What a page allocates per tick is what the young-generation
collections then have to sweep, on the main thread.

    .venv/bin/python -m bench.dashboard --url http://127.0.0.1:8787 --ab A B --allocations 20
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gzip
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "src" / "perfpulse" / "web"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN = ("bench", "bench-password-123")
VIEWPORTS = {
    "1920x1080": {"width": 1920, "height": 1080},
    "1920x6000 (all panels on screen)": {"width": 1920, "height": 6000},
}

LONGTASKS = """
window.__longtasks = [];
new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__longtasks.push(e.duration); })
  .observe({ type: 'longtask', buffered: true });
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def gzip_size(files: list[Path]) -> tuple[int, int]:
    raw = sum(f.stat().st_size for f in files)
    packed = sum(len(gzip.compress(f.read_bytes(), compresslevel=9)) for f in files)
    return raw, packed


def main_thread(page: Any, cdp: Any, seconds: float, count: str) -> dict[str, float]:
    """CDP main-thread time over ``seconds``, per unit of ``count`` (a JS expression giving a counter)."""

    def metrics() -> dict[str, float]:
        return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}

    a, n0 = metrics(), page.evaluate(count)
    page.wait_for_timeout(seconds * 1000)
    z, n1 = metrics(), page.evaluate(count)
    units = max(1, n1 - n0)
    out = {k: (z[k] - a[k]) * 1000 / units for k in ("TaskDuration", "ScriptDuration", "LayoutDuration")}
    out["units"] = units
    return out


def bench_perfpulse(browser: Any, url: str, seconds: float, reloads: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, viewport in VIEWPORTS.items():
        ctx = browser.new_context(viewport=viewport)
        ctx.add_init_script(LONGTASKS)
        page = ctx.new_page()
        page.goto(url + "/")
        page.fill("input[name=username]", ADMIN[0])
        page.fill("input[name=password]", ADMIN[1])
        page.click("button[type=submit]")
        page.wait_for_selector("[data-state=live]")
        page.wait_for_timeout(5000)
        cdp = ctx.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.evaluate("window.__perfpulse.live.stats.durations.length = 0; window.__longtasks.length = 0")
        mt = main_thread(page, cdp, seconds, "window.__perfpulse.live.stats.received")
        ticks = page.evaluate("window.__perfpulse.live.stats.durations.slice()")
        longtasks = page.evaluate("window.__longtasks.slice()")
        ticks.sort()
        results[label] = {
            **mt,
            "tick_median": statistics.median(ticks),
            "tick_p95": ticks[int(0.95 * (len(ticks) - 1))],
            "ticks": len(ticks),
            "longtasks": len(longtasks),
        }
        ctx.close()
    # Time to the first chart drawn with every backfilled point, after a fresh load (logged in already).
    ctx = browser.new_context(viewport=VIEWPORTS["1920x1080"])
    page = ctx.new_page()
    page.goto(url + "/")
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_selector("[data-state=live]")
    loads = []
    for _ in range(reloads):
        page.reload()
        mark = page.wait_for_function(
            "() => { const m = performance.getEntriesByName('perfpulse:first-full-chart')[0];"
            " return m && {t: m.startTime, points: m.detail.points}; }",
            timeout=30_000,
        ).json_value()
        loads.append(mark)
        page.wait_for_timeout(1500)
    ctx.close()
    results["first_full_chart_ms"] = statistics.median(m["t"] for m in loads)
    results["first_full_chart_all"] = [round(m["t"]) for m in loads]
    results["first_full_chart_points"] = min(m["points"] for m in loads)
    return results


def login(page: Any, url: str) -> None:
    page.goto(url + "/")
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_selector("[data-state=live]")


def serve_build(build: Path) -> Any:
    """A Playwright route handler answering the page's script and stylesheet from ``build``."""
    js = next((build / "assets").glob("*.js")).read_bytes()
    css = next((build / "assets").glob("*.css")).read_bytes()

    def handler(route: Any) -> None:
        path = route.request.url.split("?")[0]
        if path.endswith(".js"):
            route.fulfill(status=200, body=js, headers={"content-type": "text/javascript"})
        elif path.endswith(".css"):
            route.fulfill(status=200, body=css, headers={"content-type": "text/css"})
        else:
            route.continue_()

    return handler


def outermost_cpu(spans: list[tuple[int, int, int]]) -> int:
    """Sum of the CPU of (start, end, cpu) spans that are not nested in an earlier one."""
    total, end = 0, -1
    for start, stop, cpu in sorted(spans):
        if start >= end:
            total += cpu
            end = stop
    return total


def renderer_main(events: list[dict[str, Any]]) -> tuple[Any, Any] | None:
    """(pid, tid) of the busiest renderer main thread in a Chromium trace (the page's), or None."""
    names = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
    }
    busiest = collections.Counter(
        (e.get("pid"), e.get("tid")) for e in events if (e.get("pid"), e.get("tid")) in names
    )
    return busiest.most_common(1)[0][0] if busiest else None


def main_thread_cpu_ms(events: list[dict[str, Any]]) -> float:
    """CPU milliseconds of the renderer main thread's top-level tasks in a Chromium trace."""
    main = renderer_main(events)
    if main is None:
        return 0.0
    tasks = [
        (e["ts"], e["ts"] + e.get("dur", 0), e.get("tdur", e.get("dur", 0)))
        for e in events
        if (e.get("pid"), e.get("tid")) == main
        and e.get("ph") == "X"
        and e.get("name") in ("ThreadControllerImpl::RunTask", "RunTask")
    ]
    return outermost_cpu(tasks) / 1000


def self_cpu_by_name(events: list[dict[str, Any]]) -> dict[str, float]:
    """Exclusive CPU milliseconds per trace event name on the renderer main thread (time in a child event
    is counted for the child only), so the parts of a frame add up to its total."""
    main = renderer_main(events)
    if main is None:
        return {}
    spans = sorted(
        (
            (e["ts"], -e.get("dur", 0), e["ts"] + e.get("dur", 0), e.get("tdur", e.get("dur", 0)), e["name"])
            for e in events
            if (e.get("pid"), e.get("tid")) == main and e.get("ph") == "X" and "dur" in e
        ),
    )
    out: collections.Counter[str] = collections.Counter()
    stack: list[list[Any]] = []  # [end, name, cpu, children's cpu]

    def close(frame: list[Any]) -> None:
        out[frame[1]] += max(0.0, frame[2] - frame[3])

    for start, _neg, end, cpu, name in spans:
        while stack and stack[-1][0] <= start:
            close(stack.pop())
        if stack:
            stack[-1][3] += cpu
        stack.append([end, name, cpu, 0.0])
    while stack:
        close(stack.pop())
    return {k: v / 1000 for k, v in out.items()}


def cpu_by_thread(events: list[dict[str, Any]]) -> dict[str, float]:
    """CPU milliseconds of the outermost trace events per thread name (every process of the browser)."""
    names = {
        (e["pid"], e["tid"]): e["args"].get("name", "?")
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name"
    }
    per: dict[tuple[Any, Any], list[tuple[int, int, int]]] = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            per[(e.get("pid"), e.get("tid"))].append((e["ts"], e["ts"] + e["dur"], e.get("tdur", e["dur"])))
    out: collections.Counter[str] = collections.Counter()
    for key, spans in per.items():
        out[names.get(key, "?")] += outermost_cpu(spans)
    return {k: v / 1000 for k, v in out.items()}


TRACE_CATEGORIES = "devtools.timeline,disabled-by-default-devtools.timeline,blink,cc"


def open_build(browser: Any, url: str, build: Path) -> tuple[Any, Any, Any]:
    """A fresh context at 1920×1080 serving ``build``'s script and stylesheet, logged in, its Live view
    streaming for 5 s; (context, page, CDP session)."""
    ctx = browser.new_context(viewport=VIEWPORTS["1920x1080"])
    ctx.route("**/assets/*", serve_build(build))
    page = ctx.new_page()
    login(page, url)
    page.wait_for_timeout(5000)
    return ctx, page, ctx.new_cdp_session(page)


def ab_window(browser: Any, url: str, build: Path, seconds: float, trace: bool = True) -> dict[str, float]:
    """One measuring window of one build: CPU (trace), TaskDuration and the per-tick median, per tick."""
    ctx, page, cdp = open_build(browser, url, build)
    cdp.send("Performance.enable")
    page.evaluate("window.__perfpulse.live.stats.durations.length = 0")
    if not trace:
        mt = main_thread(page, cdp, seconds, "window.__perfpulse.live.stats.received")
        ticks = sorted(page.evaluate("window.__perfpulse.live.stats.durations.slice()"))
        ctx.close()
        return {"cpu": float("nan"), "task": mt["TaskDuration"], "median": statistics.median(ticks)}
    cdp.send("Tracing.start", {"categories": TRACE_CATEGORIES, "transferMode": "ReturnAsStream"})
    mt = main_thread(page, cdp, seconds, "window.__perfpulse.live.stats.received")
    done: dict[str, Any] = {}
    cdp.on("Tracing.tracingComplete", lambda e: done.update(e))
    cdp.send("Tracing.end")
    while not done:
        page.wait_for_timeout(100)
    chunks = []
    while True:
        r = cdp.send("IO.read", {"handle": done["stream"], "size": 1 << 20})
        chunks.append(r["data"])
        if r.get("eof"):
            break
    cdp.send("IO.close", {"handle": done["stream"]})
    raw = json.loads("".join(chunks))
    events = raw["traceEvents"] if isinstance(raw, dict) else raw
    ticks = sorted(page.evaluate("window.__perfpulse.live.stats.durations.slice()"))
    ctx.close()
    parts = {f"self:{k}": v / mt["units"] for k, v in self_cpu_by_name(events).items()}
    parts.update({f"thread:{k}": v / mt["units"] for k, v in cpu_by_thread(events).items()})
    return {
        **parts,
        "cpu": main_thread_cpu_ms(events) / mt["units"],
        "task": mt["TaskDuration"],
        "median": statistics.median(ticks),
    }


def profile_window(browser: Any, url: str, build: Path, seconds: float) -> tuple[int, dict[str, Any]]:
    """A CDP sampling profile (100 µs) of one build's live page over ``seconds``: (ticks, profile)."""
    ctx, page, cdp = open_build(browser, url, build)
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 100})
    n0 = page.evaluate("window.__perfpulse.live.stats.received")
    cdp.send("Profiler.start")
    page.wait_for_timeout(seconds * 1000)
    prof = cdp.send("Profiler.stop")["profile"]
    ticks = page.evaluate("window.__perfpulse.live.stats.received") - n0
    ctx.close()
    return max(1, ticks), prof


def allocation_window(browser: Any, url: str, build: Path, seconds: float) -> tuple[int, dict[str, Any]]:
    """A CDP sampling heap profile (a sample per KiB, collected objects kept) of one build's live page over
    ``seconds``: (ticks, profile)."""
    ctx, page, cdp = open_build(browser, url, build)
    cdp.send("HeapProfiler.enable")
    n0 = page.evaluate("window.__perfpulse.live.stats.received")
    cdp.send(
        "HeapProfiler.startSampling",
        {
            "samplingInterval": 1024,
            "includeObjectsCollectedByMajorGC": True,
            "includeObjectsCollectedByMinorGC": True,
        },
    )
    page.wait_for_timeout(seconds * 1000)
    prof = cdp.send("HeapProfiler.stopSampling")["profile"]
    ticks = page.evaluate("window.__perfpulse.live.stats.received") - n0
    ctx.close()
    return max(1, ticks), prof


def allocations_by_function(prof: dict[str, Any], ticks: int, top: int = 15) -> list[str]:
    """The KiB allocated per tick in all, then by allocating function (name:line), most first."""
    by: collections.Counter[str] = collections.Counter()
    stack = [prof["head"]]
    while stack:
        n = stack.pop()
        f = n["callFrame"]
        where = f":{f['lineNumber'] + 1}" if f["lineNumber"] >= 0 else ""
        by[f"{f['functionName'] or '(anonymous)'}{where}"] += n["selfSize"]
        stack.extend(n.get("children", []))
    lines = [f"{sum(by.values()) / 1024 / ticks:.1f} KiB per tick in all"]
    lines += [f"{v / 1024 / ticks:7.1f} {k}" for k, v in by.most_common(top)]
    return lines


def profile_tree(prof: dict[str, Any], ticks: int, floor_ms: float = 0.05) -> list[str]:
    """The profile as an indented call tree of inclusive milliseconds per tick, branches under ``floor_ms``
    left out. Function names are only meaningful in an unminified build (``vite build --minify false``)."""
    nodes = {n["id"]: n for n in prof["nodes"]}
    kids: dict[int, list[int]] = collections.defaultdict(list)
    for n in prof["nodes"]:
        for c in n.get("children", []):
            kids[n["id"]].append(c)
    own: collections.Counter[int] = collections.Counter()
    for sample, delta in zip(prof["samples"], prof["timeDeltas"], strict=True):
        own[sample] += delta
    total: dict[int, float] = {}

    def add_up(n: int) -> float:
        total[n] = own[n] + sum(add_up(c) for c in kids[n])
        return total[n]

    root = prof["nodes"][0]["id"]
    add_up(root)
    lines: list[str] = []

    def walk(n: int, depth: int) -> None:
        ms = total[n] / 1000 / ticks
        frame = nodes[n]["callFrame"]
        if ms < floor_ms or frame["functionName"] == "(idle)":
            return
        where = f":{frame['lineNumber'] + 1}" if frame["lineNumber"] >= 0 else ""
        lines.append(f"{'  ' * depth}{ms:.2f} {frame['functionName'] or '(anonymous)'}{where}")
        for c in sorted(kids[n], key=lambda c: -total[c]):
            walk(c, depth + 1)

    for c in sorted(kids[root], key=lambda c: -total[c]):
        walk(c, 0)
    return lines


def bench_ab(
    browser: Any, url: str, builds: list[Path], seconds: float, rounds: int, trace: bool = True
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {str(b): [] for b in builds}
    for r in range(rounds):
        # Every other round in reverse order: the slot a build is measured in (first or last of a round)
        # moved figures by about a millisecond here, which an odd/even alternation cancels out.
        for b in builds if r % 2 == 0 else builds[::-1]:
            w = ab_window(browser, url, b, seconds, trace)
            runs[str(b)].append(w)
            print(
                f"round {r + 1} {b}: cpu {w['cpu']:.1f} ms, task {w['task']:.1f} ms, median {w['median']:.1f} ms",
                file=sys.stderr,
                flush=True,
            )
    return runs


def bench_glances(browser: Any, url: str, seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, viewport in VIEWPORTS.items():
        ctx = browser.new_context(viewport=viewport)
        page = ctx.new_page()
        # Count the UI's polls of the stats API (its refreshes).
        polls = {"n": 0}

        def on_request(r: Any, polls: dict[str, int] = polls) -> None:
            if "/api/" in r.url:
                polls["n"] += 1

        page.on("request", on_request)
        page.goto(url + "/")
        page.wait_for_timeout(5000)
        cdp = ctx.new_cdp_session(page)
        cdp.send("Performance.enable")
        a = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        t0, n0 = time.monotonic(), polls["n"]
        page.wait_for_timeout(seconds * 1000)
        z = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        elapsed, requests = time.monotonic() - t0, polls["n"] - n0
        refreshes = max(1.0, elapsed)  # -t 1: one refresh per second
        results[label] = {
            "TaskDuration": (z["TaskDuration"] - a["TaskDuration"]) * 1000 / refreshes,
            "ScriptDuration": (z["ScriptDuration"] - a["ScriptDuration"]) * 1000 / refreshes,
            "LayoutDuration": (z["LayoutDuration"] - a["LayoutDuration"]) * 1000 / refreshes,
            "api_requests_per_s": requests / elapsed,
        }
        ctx.close()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warmup", type=float, default=300, help="seconds the daemon runs before measuring")
    ap.add_argument("--seconds", type=float, default=60, help="measuring window per viewport")
    ap.add_argument("--reloads", type=int, default=5)
    ap.add_argument("--glances-python", default="/tmp/glances-web-venv/bin/python")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--ab", nargs="+", type=Path, metavar="DIR", help="compare two (or more) builds")
    ap.add_argument("--rounds", type=int, default=3, help="--ab: windows per build")
    ap.add_argument("--no-trace", action="store_true", help="--ab: no trace (no CPU figure, less overhead)")
    ap.add_argument(
        "--profile",
        type=float,
        metavar="SECONDS",
        help="--ab: instead of timing, a JavaScript sampling profile of each build (call tree, ms per tick)",
    )
    ap.add_argument(
        "--allocations",
        type=float,
        metavar="SECONDS",
        help="--ab: instead of timing, a sampling heap profile of each build (KiB allocated per tick, by function)",
    )
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="--ab: CPU by browser thread and main-thread CPU by trace event",
    )
    ap.add_argument(
        "--url",
        help="--ab: measure a daemon already running (and warmed) at this URL instead of starting one; "
        f"it needs an admin {ADMIN[0]!r} with password {ADMIN[1]!r}",
    )
    args = ap.parse_args(sys.argv[1:] if __name__ == "__main__" else [])

    from playwright.sync_api import sync_playwright

    if not (WEB / "index.html").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT / "frontend", check=True)
        subprocess.run(["npm", "run", "build"], cwd=ROOT / "frontend", check=True)
    assets = sorted(p for p in WEB.rglob("*") if p.is_file() and p.suffix in (".js", ".css", ".html"))
    raw, packed = gzip_size(assets)

    if args.ab and args.url and args.allocations:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            for build in args.ab:
                ticks, prof = allocation_window(browser, args.url.rstrip("/"), build, args.allocations)
                print(f"\n`{build}`: allocations over {ticks} ticks (sampling heap profile)\n")
                print("```\n" + "\n".join(allocations_by_function(prof, ticks)) + "\n```")
            browser.close()
        return
    if args.ab and args.url and args.profile:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            for build in args.ab:
                ticks, prof = profile_window(browser, args.url.rstrip("/"), build, args.profile)
                print(
                    f"\n`{build}`: JavaScript per tick over {ticks} ticks (inclusive ms, sampling profile)\n"
                )
                print("```\n" + "\n".join(profile_tree(prof, ticks)) + "\n```")
            browser.close()
        return
    if args.ab and args.url:
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            runs = bench_ab(
                browser, args.url.rstrip("/"), args.ab, args.seconds, args.rounds, not args.no_trace
            )
            browser.close()
        print_ab(runs, args, started)
        return

    tmp = Path(tempfile.mkdtemp(prefix="perfpulse-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp / "serve.log").open("wb")
    serve = ["serve", "--port", str(port), "--data-dir", str(tmp / "data"), "--interval", "1"]
    daemon = subprocess.Popen(
        [sys.executable, "-m", "perfpulse.cli", *serve, "--no-access-log", "--log-level", "warning"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    glances = None
    try:
        wait_http(url + "/api/v1/health", daemon)
        token = (tmp / "data" / "setup-token").read_text().strip()
        r = httpx.post(
            url + "/api/v1/setup", json={"token": token, "username": ADMIN[0], "password": ADMIN[1]}
        )
        r.raise_for_status()
        print(f"filling the live window for {args.warmup:g} s ...", file=sys.stderr, flush=True)
        time.sleep(args.warmup)
        if args.ab:
            started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                runs = bench_ab(browser, url, args.ab, args.seconds, args.rounds, not args.no_trace)
                browser.close()
            print_ab(runs, args, started)
            return
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            browser_version = browser.version.split(".")[0]
            pp = bench_perfpulse(browser, url, args.seconds, args.reloads)
            gl: dict[str, Any] | None = None
            gl_size: tuple[int, int] | None = None
            if os.access(args.glances_python, os.X_OK):
                gport = free_port()
                gargs = ["-w", "-t", "1", "-B", "127.0.0.1", "-p", str(gport), "--disable-autodiscover"]
                glances = subprocess.Popen(
                    [args.glances_python, "-m", "glances", *gargs, "--disable-check-update"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                wait_http(f"http://127.0.0.1:{gport}/", glances)
                gl = bench_glances(browser, f"http://127.0.0.1:{gport}", args.seconds)
                gdir = Path(
                    subprocess.check_output(
                        [
                            args.glances_python,
                            "-c",
                            "import glances, os; print(os.path.dirname(glances.__file__))",
                        ],
                        text=True,
                    ).strip()
                )
                gfiles = sorted((gdir / "outputs" / "static" / "public").glob("*.js"))
                gl_size = gzip_size(gfiles)
            browser.close()
    finally:
        stop(daemon)
        if glances is not None:
            stop(glances)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print("## Dashboard\n")
    print(
        f"Debian Chromium {browser_version} headless (software rendering, `--disable-gpu`) on this VM (2 vCPU), the"
        " daemon and"
    )
    print(
        f"the browser on the same machine; perfpulse at 1 Hz after {args.warmup:g} s of warm-up, {args.seconds:g} s"
    )
    print("windows. Main-thread time is Chromium's own `TaskDuration` per tick (perfpulse) or per refresh")
    print("(Glances, `-t 1`); the per-tick median is the page's own measure (message → work done, rendering")
    opts = "".join(f" {a}" for a in sys.argv[1:]) if __name__ == "__main__" else ""
    print(f"included). Command: `.venv/bin/python -m bench.dashboard{opts}`\n")
    print(
        "| viewport | perfpulse main thread / tick | per-tick median (p95) | Glances main thread / refresh | ratio | long tasks |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label in VIEWPORTS:
        a = pp[label]
        g = gl[label] if gl else None
        ratio = f"{a['TaskDuration'] / g['TaskDuration']:.2f}" if g and g["TaskDuration"] else "—"
        gtxt = f"{g['TaskDuration']:.1f} ms" if g else "not run"
        print(
            f"| {label} | {a['TaskDuration']:.1f} ms | {a['tick_median']:.1f} ms ({a['tick_p95']:.1f} ms) |"
            f" {gtxt} | {ratio} | {a['longtasks']} |"
        )
    print()
    print(
        f"- Time to the first full chart after a reload (median of {args.reloads}, from navigation start, "
        f"≥ {pp['first_full_chart_points']} backfilled points): **{pp['first_full_chart_ms']:.0f} ms** "
        f"(all: {pp['first_full_chart_all']}; target ≤ 1000 ms)"
    )
    print(
        f"- Bundle (JS + CSS + HTML): {raw / 1024:.1f} KiB, **{packed / 1024:.1f} KiB gzip -9** (target ≤ 250 KB)",
        end="",
    )
    if gl_size:
        print(
            f"; Glances' web UI JS: {gl_size[0] / 1024:.0f} KiB, {gl_size[1] / 1024:.0f} KiB gzip ({packed / gl_size[1]:.2f}×)"
        )
    else:
        print()


def print_ab(runs: dict[str, list[dict[str, float]]], args: Any, started: str) -> None:
    opts = "".join(f" {a}" for a in sys.argv[1:]) if __name__ == "__main__" else ""
    print(f"A/B against one daemon, 1920×1080, from {started}: `.venv/bin/python -m bench.dashboard{opts}`")
    tracing = "off" if args.no_trace else "on"
    print(f"(medians of {args.rounds} rounds of {args.seconds:g} s windows, per tick, tracing {tracing})\n")
    last = "per-tick median per window" if args.no_trace else "CPU per window"
    print(f"| build | main-thread CPU (trace) | `TaskDuration` | per-tick median | {last} |")
    print("|---|---:|---:|---:|---|")
    for build, ws in runs.items():
        med = {k: statistics.median(w[k] for w in ws) for k in ("cpu", "task", "median")}
        each = ", ".join(f"{w['median' if args.no_trace else 'cpu']:.1f}" for w in ws)
        cpu = "—" if args.no_trace else f"{med['cpu']:.1f} ms"
        print(f"| `{build}` | {cpu} | {med['task']:.1f} ms | {med['median']:.1f} ms | {each} |")
    if args.breakdown and not args.no_trace:
        builds = list(runs)
        keys = {k for ws in runs.values() for w in ws for k in w}

        def med_of(b: str, k: str) -> float:
            return statistics.median(w.get(k, 0.0) for w in runs[b])

        def busiest(prefix: str, most: int) -> list[str]:
            found = [k for k in keys if k.startswith(prefix)]
            return sorted(found, key=lambda k: -max(med_of(b, k) for b in builds))[:most]

        print(
            "\nCPU per tick by thread (`thread:`, every process of the browser), and on the renderer's main"
            " thread by trace event (`self:`, exclusive of nested events); medians over the rounds:\n"
        )
        print("| thread or trace event | " + " | ".join(f"`{b}`" for b in builds) + " |")
        print("|---|" + "---:|" * len(builds))
        for k in busiest("thread:", 8) + busiest("self:", 25):
            print(f"| `{k}` | " + " | ".join(f"{med_of(b, k):.2f} ms" for b in builds) + " |")


if __name__ == "__main__":
    main()
