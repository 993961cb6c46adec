"""`perfpulse check`: what can be counted here, why not, and exactly what to change to count more.

Each event perfpulse counts by default is opened for real, system-wide (what the daemon and `stat -a`
need) and for this process (what `stat -- CMD` needs), and every failure is turned into a reason and a
fix. Exit status: 0 everything counts, 1 some events cannot be counted, 2 nothing can.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from perfpulse.collectors.perf_events import DEFAULT_EVENTS

#: What `perfpulse check` probes by default: the collector's events and `stat`'s task-clock.
CHECKED_EVENTS: tuple[str, ...] = ("task-clock", *(name for group in DEFAULT_EVENTS for name in group))


#: Errors whose fix the advice section spells out; the others get their hint next to the event.
_ADVISED = frozenset({"EACCES", "EPERM", "ENOENT"})


def in_container(proc: Path = Path("/proc")) -> bool:
    """Docker/Podman/Kubernetes leave these marks; the advice for containers differs (seccomp, caps)."""
    if Path("/.dockerenv").exists() or Path("/run/.containerenv").exists():
        return True
    try:
        text = (proc / "1" / "cgroup").read_text()
    except OSError:
        return False
    return any(mark in text for mark in ("docker", "kubepods", "containerd", "libpod"))


def advice(report: dict[str, Any], container: bool) -> list[str]:
    """The changes that would let more events count, most specific first."""
    out: list[str] = []
    failures = [e for e in report["events"] if not e["ok"]]
    errnos = {e["error"] for e in failures}
    if "EACCES" in errnos or ("EPERM" in errnos and not container):
        out += [
            "System-wide counting needs privilege. Pick one:",
            "  - run as root, or give the service CAP_PERFMON (Linux >= 5.8) in its systemd unit:",
            "      [Service]",
            "      AmbientCapabilities=CAP_PERFMON",
            "      CapabilityBoundingSet=CAP_PERFMON",
            "  - or let every local user count the machine:",
            "      sudo sysctl -w kernel.perf_event_paranoid=0",
            "      echo 'kernel.perf_event_paranoid = 0' | sudo tee /etc/sysctl.d/60-perfpulse.conf",
        ]
    if "EPERM" in errnos and container:
        out += [
            "In a container, perf_event_open needs the capability and a seccomp profile that allows it:",
            "  docker run --cap-add PERFMON ...        (Docker >= 23: the default profile then allows it)",
            "  older Docker, Podman, containerd: also --security-opt seccomp=PROFILE.json, a profile",
            "    that allows perf_event_open",
            "  Kubernetes: securityContext.capabilities.add: [PERFMON] and a Localhost seccompProfile",
            "  kernel.perf_event_paranoid is the host's: change it on the host.",
        ]
    if "ENOENT" in errnos and not report["hardware_available"]:
        vm = "This virtual machine has no virtual PMU" if report["hypervisor"] else "No CPU PMU found"
        out += [
            f"{vm}: hardware events (cycles, instructions, cache, branch) cannot be counted here.",
            "  KVM/QEMU: -cpu host (pmu=on); libvirt: <cpu mode='host-passthrough'/> and <pmu state='on'/>",
            "  VMware: enable 'Virtualize CPU performance counters'; cloud: use a bare-metal instance type",
            "  Software events (cpu-clock, context-switches, page-faults) still count.",
        ]
    for e in failures:
        if e["error"] not in _ADVISED and e["hint"] and e["hint"] not in out:
            out.append(f"{e['event']}: {e['hint']}")
    if out:
        out.append("docs/PERMISSIONS.md explains each option.")
    return out


def gather(events: tuple[str, ...] | None) -> dict[str, Any]:
    """Probe this machine (opening each event for real) and shape the result for printing and --json."""
    from perfpulse.perf.probe import probe

    return probe(events).as_dict()


def countable(event: dict[str, Any]) -> bool:
    return bool(event["ok"] or event["process"] or event["user_only"])


def exit_status(report: dict[str, Any]) -> int:
    """0: everything counts system-wide; 2: nothing can be counted at all; 1: in between."""
    events = report["events"]
    if events and all(e["ok"] for e in events):
        return 0
    return 1 if any(countable(e) for e in events) else 2


def render(report: dict[str, Any], tips: list[str]) -> str:
    caps = report["capabilities"]
    lines = [
        f"perf events on {report['kernel']} ({report['machine']})",
        "",
        f"  kernel.perf_event_paranoid = {report['paranoid']}: {report['paranoid_meaning']}",
        f"  running as uid {os.geteuid()}; CAP_PERFMON {'yes' if caps.get('CAP_PERFMON') else 'no'}, "
        f"CAP_SYS_ADMIN {'yes' if caps.get('CAP_SYS_ADMIN') else 'no'}; "
        f"seccomp {({0: 'off', 1: 'strict', 2: 'filter'}).get(report['seccomp'], 'unknown')}",
        f"  virtual machine: {'yes' if report['hypervisor'] else 'no'}",
        f"  PMUs: {', '.join(report['pmus']) or 'none'}"
        + ("" if report["hardware_available"] else "  (no CPU PMU: no hardware events)"),
    ]
    if report.get("error"):
        lines.append(f"  perf_event_open unavailable: {report['error']}")
    width = max([len(e["event"]) for e in report["events"]] + [5])
    lines += ["", f"  {'event':<{width}}  system-wide  stat -- CMD"]
    notes: dict[str, int] = {}
    for e in report["events"]:
        cmd = "yes" if e["ok"] or e["process"] else "user only" if e["user_only"] else "no"
        line = f"  {e['event']:<{width}}  {'yes' if e['ok'] else 'no':<11}  {cmd:<9}"
        if not e["ok"]:
            text = str(e["reason"]).replace(f" {e['event']} ", " the event ")
            if e["hint"] and e["error"] not in _ADVISED:
                text += f"\n      fix: {e['hint']}"
            note = notes.setdefault(text, len(notes) + 1)
            line += f"  {e['error'] or 'error'} [{note}]"
        lines.append(line.rstrip())
    if notes:
        lines.append("")
        lines += [f"  [{n}] {text}" for text, n in notes.items()]
    ok = sum(1 for e in report["events"] if e["ok"])
    lines += ["", f"{ok} of {len(report['events'])} events can be counted system-wide here."]
    if tips:
        lines += ["", *tips]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in ",".join(args.event).split(",") if n.strip()] if args.event else []
    try:
        report = gather(tuple(names) or CHECKED_EVENTS)
    except OSError as exc:
        print(f"perfpulse check: cannot probe perf events here: {exc}", file=sys.stderr)
        return 2
    tips = advice(report, in_container() or report.get("seccomp") == 2)
    if args.json:
        print(json.dumps({**report, "status": exit_status(report), "advice": tips}, indent=2))
    else:
        print(render(report, tips))
    return exit_status(report)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check",
        help="what perf events can be counted here, why not, and how to enable more",
        description="Probe perf event access: paranoid level, capabilities, PMUs, and each event, opened "
        "for real. Exit status 0: all count system-wide, 1: some cannot, 2: none can be counted at all.",
    )
    p.add_argument("-e", "--event", action="append", metavar="EV,...", help="probe these events instead")
    p.add_argument("--json", action="store_true", help="machine-readable report (with the advice)")
    p.set_defaults(func=run)
