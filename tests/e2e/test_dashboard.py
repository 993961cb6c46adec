"""The dashboard in a real browser against the real daemon.

Debian's Chromium, driven by Playwright, talks to `perfpulse serve` running in a subprocess on a loopback
port: first-run setup, login and session end, live values that follow the daemon tick by tick, a restart
survived by reconnecting, history and comparison queries, a settings change that takes effect, and the
viewer role kept out of admin pages. The screenshots in docs/screenshots/ are taken here, from the real app.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

import pytest
from dashboard_support import ADMIN, VIEWER, Console, Daemon, login, shot

PlaywrightError = pytest.importorskip("playwright.sync_api").Error
HD = {"width": 1280, "height": 720}
FULL_HD = {"width": 1920, "height": 1080}


def new_page(browser: Any, **kwargs: Any) -> tuple[Any, Any, Console]:
    ctx = browser.new_context(viewport=kwargs.pop("viewport", HD), **kwargs)
    page = ctx.new_page()
    return ctx, page, Console(page)


def seq_of(page: Any) -> int:
    return int(page.get_attribute("[data-seq]", "data-seq") or -1)


def wait_seq_above(page: Any, seq: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = seq_of(page)
        if now > seq:
            return now
        page.wait_for_timeout(50)
    raise AssertionError(f"no tick after seq {seq} within {timeout} s")


_IEC = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]


def parse_iec(text: str) -> float:
    m = re.fullmatch(r"([\d.]+) (\w+)", text.strip())
    assert m, f"not a size with an IEC unit: {text!r}"
    return float(m.group(1)) * 1024 ** _IEC.index(m.group(2))


def test_first_run_setup_login_and_session_end(browser: Any, fresh_daemon: Daemon) -> None:
    ctx, page, console = new_page(browser)
    token = fresh_daemon.setup_token
    # The link `perfpulse serve` prints: the token rides in the fragment.
    page.goto(f"{fresh_daemon.url}/#setup={token}")
    page.wait_for_selector("text=Create the first administrator")
    assert page.input_value("input[name=token]") == token
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.fill("input[name=confirm]", ADMIN[1])
    page.evaluate("document.querySelector('input[name=token]').type = 'password'")  # keep it out of the image
    shot(page, "setup")
    page.click("button[type=submit]")
    page.wait_for_selector("[data-state=live]", timeout=15_000)
    assert token not in page.url, "the setup token must leave the address bar"
    assert page.inner_text("[data-testid=user]").startswith(ADMIN[0])

    # Setup is closed for good now.
    with fresh_daemon.api(None) as anon:
        assert anon.get("/api/v1/setup").json() == {"required": False}

    # Log out, log in again through the form.
    page.click("text=Log out")
    page.wait_for_selector("text=Log in")
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Wrong user name or password.")
    shot(page, "login")
    page.fill("input[name=password]", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_selector("[data-state=live]", timeout=15_000)

    # The session ends behind the page's back (the password is changed elsewhere, which revokes every
    # session of the user): the daemon drops the live stream and the next request fails, and either sends
    # the page to the login form with a notice, not to a blank view.
    with fresh_daemon.api(ADMIN) as c:
        r = c.post(
            "/api/v1/auth/password", json={"current_password": ADMIN[1], "new_password": ADMIN[1] + "x"}
        )
        assert r.status_code == 200, r.text
    with contextlib.suppress(PlaywrightError):  # gone already if the closed stream was noticed first
        page.click("nav >> text=Settings", timeout=2000)
    page.wait_for_selector("[data-testid=expired]", timeout=10_000)
    assert page.is_visible("input[name=password]")
    assert console.unexpected() == []
    ctx.close()


def test_live_values_follow_the_daemon_tick_by_tick(browser: Any, daemon: Daemon) -> None:
    ctx, page, console = new_page(browser)
    login(page, daemon.url, ADMIN)
    page.wait_for_selector("[data-testid=proc-total]")

    # Consecutive ticks arrive and are drawn: the sequence number and the sample time move each second.
    seen = []
    seq = seq_of(page)
    for _ in range(3):
        seq = wait_seq_above(page, seq)
        seen.append((seq, page.inner_text("[data-seq] time")))
    assert [s for s, _ in seen] == list(range(seen[0][0], seen[0][0] + 3))
    assert len({t for _, t in seen}) == 3

    # What the page shows is what the REST API says for the same tick. Panels off screen keep the tick
    # they last drew, so the process table is brought into view and the comparison waits until its
    # visibility observer has reported it on screen and one more tick has been drawn.
    page.locator("[data-testid=proc-total]").scroll_into_view_if_needed()
    page.wait_for_selector("section[data-collector=processes][data-visible=true]")
    wait_seq_above(page, seq_of(page))
    got = page.evaluate(
        """async () => {
          for (let i = 0; i < 40; i++) {
            const snap = await (await fetch('/api/v1/snapshot')).json();
            const el = document.querySelector('[data-seq]');
            const procs = document.querySelector('[data-testid=proc-total]').textContent.trim();
            if (Number(el.dataset.seq) === snap.seq && /^[0-9]+$/.test(procs)) {
              return {
                snap,
                memory: document.querySelector('[data-tile=memory] [data-value]').textContent,
                procs: document.querySelector('[data-testid=proc-total]').textContent,
                load: document.querySelector('[data-tile=load] [data-value]').textContent,
              };
            }
            await new Promise((r) => setTimeout(r, 120));
          }
          return null;
        }"""
    )
    assert got is not None, "the page never showed the tick /api/v1/snapshot returned"
    data = got["snap"]["collectors"]
    assert int(got["procs"]) == data["processes"]["data"]["total"]
    used = data["memory"]["data"]["used_bytes"]
    assert parse_iec(got["memory"]) == pytest.approx(used, rel=0.006)
    assert float(got["load"]) == pytest.approx(data["cpu"]["data"]["load"]["1m"], abs=0.006)

    # After a reload the charts are full at once: the daemon's backfill is drawn in the first frame.
    while seq_of(page) < 12:
        page.wait_for_timeout(200)
    ticks_so_far = seq_of(page)
    page.reload()
    page.wait_for_selector("[data-state=live]")
    points = page.wait_for_function(
        "() => performance.getEntriesByName('perfpulse:first-full-chart')[0]?.detail?.points"
    ).json_value()
    assert points >= ticks_so_far - 1, f"first full chart had {points} points of {ticks_so_far} ticks"
    shot(page, "live-1280x720")
    assert console.unexpected() == []
    ctx.close()


def test_settings_interval_change_takes_effect(browser: Any, daemon: Daemon) -> None:
    ctx, page, console = new_page(browser)
    login(page, daemon.url, ADMIN)
    page.click("nav >> text=Settings")
    page.wait_for_selector("input[name=interval]")
    shot(page, "settings", full_page=True)
    page.fill("input[name=interval]", "0")
    page.click("button:has-text('Save')")
    page.wait_for_selector("[role=alert]:has-text('interval')")  # the daemon's 422, shown next to the field
    page.fill("input[name=interval]", "0.5")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Saved: interval")
    with daemon.api(ADMIN) as c:
        assert c.get("/api/v1/config").json()["interval"] == 0.5

    # Retention per tier, in days or hours: a value the daemon refuses shows its own message next to the
    # field (raw samples cannot outlive the 1-minute tier, 90 days by default), and nothing is changed.
    raw = "input[name=retention_raw_seconds]"
    assert page.input_value(raw) == "2"
    assert page.input_value("select[name=retention_raw_seconds-unit]") == "days"
    page.fill(raw, "100")
    page.click("button:has-text('Save')")
    error = page.wait_for_selector("[data-testid=retention_raw_seconds-error]")
    assert "must not exceed the 1-minute tier" in error.inner_text()
    assert page.get_attribute(raw, "aria-invalid") == "true"
    with daemon.api(ADMIN) as c:
        assert c.get("/api/v1/config").json()["retention_raw_seconds"] == 48 * 3600
    # An accepted change: 36 hours of raw samples.
    page.fill(raw, "36")
    page.select_option("select[name=retention_raw_seconds-unit]", "hours")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Saved: retention_raw_seconds")
    assert page.locator("[data-testid=retention_raw_seconds-error]").count() == 0
    with daemon.api(ADMIN) as c:
        assert c.get("/api/v1/config").json()["retention_raw_seconds"] == 36 * 3600
    assert page.input_value(raw) == "36"
    page.click("nav >> text=Live")
    page.wait_for_selector("text=every 0.5 s", timeout=10_000)
    n0 = page.evaluate("window.__perfpulse.live.stats.received")
    page.wait_for_timeout(3000)
    n1 = page.evaluate("window.__perfpulse.live.stats.received")
    assert 4 <= n1 - n0 <= 8, f"{n1 - n0} ticks in 3 s at 0.5 s"
    with daemon.api(ADMIN) as c:
        assert c.put("/api/v1/config", json={"interval": 1.0}).status_code == 200
    page.wait_for_selector("text=every 1 s", timeout=10_000)

    # Switching a collector off removes its panel from the open Live view; switching it on brings it back.
    page.wait_for_selector("[data-collector=pressure]", state="attached")
    page.click("nav >> text=Settings")
    page.uncheck("input[aria-label='Enable pressure']")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Saved: collectors")
    page.click("nav >> text=Live")
    page.wait_for_selector("[data-tile=psi]:has-text('collector not enabled')", timeout=15_000)
    assert page.locator("[data-collector=pressure]").count() == 0
    with daemon.api(ADMIN) as c:
        r = c.put("/api/v1/config", json={"collectors": {"pressure": True}})
        assert r.status_code == 200, r.text
    page.wait_for_selector("[data-collector=pressure]", state="attached", timeout=15_000)
    assert console.unexpected() == []
    ctx.close()


def test_viewer_cannot_reach_admin_pages(browser: Any, daemon: Daemon) -> None:
    ctx, page, console = new_page(browser)
    login(page, daemon.url, VIEWER)
    page.wait_for_selector("[data-testid=proc-total]")
    # Command lines are for admins: the column is not there and the daemon did not send them.
    assert page.locator("th:has-text('Command line')").count() == 0
    assert (
        page.evaluate("Object.keys(window.__perfpulse.live.latest.collectors.processes.data)").count(
            "cmdlines"
        )
        == 0
    )
    page.click("nav >> text=Settings")
    page.wait_for_selector("input[name=interval]")
    assert page.is_disabled("input[name=interval]")
    assert page.locator("nav >> text=Users").count() == 0
    assert page.locator("nav >> text=API tokens").count() == 0
    for section in ("users", "tokens"):
        page.goto(f"{daemon.url}/#/settings/{section}")
        page.wait_for_selector("[data-testid=forbidden]")
        assert page.locator("table").count() == 0
    shot(page, "settings-viewer")
    # The daemon refuses too, whatever the page shows.
    assert page.request.get(f"{daemon.url}/api/v1/users").status == 403
    assert page.request.put(f"{daemon.url}/api/v1/config", data={"interval": 2}).status == 403
    # Viewers may change their own password and read the system page.
    page.goto(f"{daemon.url}/#/settings/account")
    page.wait_for_selector("input[name=current-password]")
    assert console.unexpected() == []
    ctx.close()


def test_admin_pages_users_tokens_system(browser: Any, daemon: Daemon) -> None:
    ctx, page, console = new_page(browser)
    login(page, daemon.url, ADMIN)
    page.goto(f"{daemon.url}/#/settings/users")
    page.wait_for_selector(f"th:has-text('{VIEWER[0]}')")
    page.fill("input[name=new-username]", "alice")
    page.fill("input[name=new-password]", "alice-password-1")
    page.click("button:has-text('Add user')")
    page.wait_for_selector("text=User alice added.")
    shot(page, "settings-users")
    page.goto(f"{daemon.url}/#/settings/tokens")
    page.fill("input[name=token-name]", "prometheus")
    page.click("button:has-text('Create token')")
    token = page.inner_text("[data-testid=new-token]")
    r = page.request.get(f"{daemon.url}/api/v1/config", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200
    page.goto(f"{daemon.url}/#/settings/system")
    page.wait_for_selector("text=Perf access")
    page.wait_for_selector("text=perf_event_paranoid")
    shot(page, "settings-system", full_page=True)
    assert console.unexpected() == []
    ctx.close()


def test_history_query_zoom_export_and_comparison(browser: Any, daemon: Daemon) -> None:
    # The comparison needs two periods of recorded data: 30 s now against the 30 s before.
    with daemon.api(ADMIN) as c:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            h = c.get("/api/v1/history", params={"series": "cpu_busy_ratio", "from": "now-65s", "to": "now"})
            if h.status_code == 200 and sum(v is not None for v in h.json()["series"][0]["avg"]) >= 60:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"history did not fill: {h.status_code} {h.text[:300]}")

    ctx, page, console = new_page(browser)
    login(page, daemon.url, ADMIN)
    now = int(time.time())
    page.goto(
        f"{daemon.url}/#/history?range=custom&from={now - 120}&to={now}&s=cpu_busy_ratio&s=memory_used_bytes"
    )
    page.wait_for_selector(".card canvas")
    page.wait_for_selector("text=tier raw")
    assert page.locator(".card").count() == 2
    shot(page, "history")

    # Dragging across a chart zooms in, and the new range is in the URL (shareable).
    box = page.locator(".card .u-over").first.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, y, steps=8)
    page.mouse.up()
    page.wait_for_function(f"() => Number(/from=(\\d+)/.exec(location.hash)?.[1] ?? 0) > {now - 110}")
    frm = int(re.search(r"from=(\d+)", page.url).group(1))
    to = int(re.search(r"to=(\d+)", page.url).group(1))
    assert now - 100 < frm < to < now - 10
    zoomed = page.url
    page.reload()
    page.wait_for_selector(".card canvas")
    assert page.url == zoomed

    # Export: the CSV of what is on screen.
    href = page.get_attribute("[data-testid=export]", "href")
    r = page.request.get(daemon.url + href)
    assert r.status == 200 and "text/csv" in r.headers["content-type"]
    lines = r.text().strip().splitlines()
    assert len(lines) > 2 and "cpu_busy_ratio" in r.text()

    # Compare the last 30 s with the 30 s before: one summary row per series with its change.
    now = int(time.time())
    series = "s=cpu_busy_ratio&s=memory_used_bytes"
    page.goto(f"{daemon.url}/#/history?range=custom&from={now - 30}&to={now}&{series}&compare=previous")
    page.wait_for_selector("[data-testid=compare-summary] tbody tr")
    rows = page.locator("[data-testid=compare-summary] tbody tr")
    assert rows.count() == 2
    change = rows.nth(1).locator("td.change").inner_text()
    assert re.fullmatch(r"[+−±]\d+\.\d %", change), change
    assert page.locator(".card canvas").count() >= 2
    shot(page, "compare", full_page=True)
    assert console.unexpected() == []
    ctx.close()


def test_full_hd_and_dark_theme(browser: Any, daemon: Daemon) -> None:
    ctx, page, console = new_page(browser, viewport=FULL_HD, color_scheme="dark")
    login(page, daemon.url, ADMIN)
    page.wait_for_selector("[data-testid=proc-total]")
    page.wait_for_timeout(1500)
    bg = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--bg').trim()")
    assert bg == "#0f1115"
    # Nothing overflows sideways at either size.
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    shot(page, "live-1920x1080-dark")
    page.set_viewport_size(HD)
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    # Keyboard: on a fresh load the first Tab reaches the skip link, and the navigation is reachable
    # without a mouse.
    page.reload()
    page.wait_for_selector("[data-state=live]")
    page.keyboard.press("Tab")
    assert "skip-link" in page.evaluate("document.activeElement.className")
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "History":
            break
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Compare with")
    assert console.unexpected() == []
    ctx.close()


def test_daemon_restart_is_survived_by_reconnecting(browser: Any, daemon: Daemon) -> None:
    ctx, page, console = new_page(browser)
    login(page, daemon.url, ADMIN)
    before = wait_seq_above(page, seq_of(page))
    daemon.stop()
    page.wait_for_selector("[data-state=reconnecting]", timeout=10_000)
    shot(page, "reconnecting")
    daemon.start()
    page.wait_for_selector("[data-state=live]", timeout=30_000)
    # Ticks flow again (the new process counts from the start) and the session survived the restart.
    t0 = page.evaluate("window.__perfpulse.live.latest.wall_time")
    page.wait_for_function(f"() => window.__perfpulse.live.latest.wall_time > {t0}", timeout=10_000)
    assert page.locator("input[name=password]").count() == 0
    assert before > 0
    # While the daemon was down the browser logged the refused connections; nothing else.
    assert console.unexpected("WebSocket connection to", "ERR_CONNECTION_REFUSED") == []
    ctx.close()
