import { describe, expect, it } from "vitest";
import { Backoff } from "../src/lib/reconnect";
import { LiveConnection, type ConnState, type SocketLike, type Timers } from "../src/lib/connection";

describe("Backoff", () => {
  it("grows exponentially up to the cap without jitter", () => {
    const b = new Backoff({ baseMs: 100, maxMs: 1000, factor: 2, jitter: 0, maxAttempts: 8 });
    const delays = Array.from({ length: 6 }, () => b.next());
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
  it("jitter keeps each delay within [ceiling × (1 − jitter), ceiling]", () => {
    const seq = [0, 0.999, 0.5];
    let i = 0;
    const b = new Backoff({ baseMs: 1000, maxMs: 60_000, jitter: 0.5, random: () => seq[i++ % seq.length] });
    expect(b.next()).toBe(1000); // random 0 → full ceiling
    expect(b.next()).toBe(1001); // 2000 × (1 − 0.4995)
    expect(b.next()).toBe(3000); // 4000 × 0.75
  });
  it("spreads many clients over the window (no thundering herd)", () => {
    const delays = Array.from({ length: 500 }, () => new Backoff({ baseMs: 1000, jitter: 0.5 }).next()!);
    const distinct = new Set(delays.map((d) => Math.floor(d / 50)));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...delays)).toBeLessThanOrEqual(1000);
    expect(distinct.size).toBeGreaterThan(5);
  });
  it("gives up after maxAttempts and starts over after reset", () => {
    const b = new Backoff({ baseMs: 10, maxAttempts: 3, jitter: 0 });
    expect([b.next(), b.next(), b.next()]).toEqual([10, 20, 40]);
    expect(b.exhausted).toBe(true);
    expect(b.next()).toBeNull();
    b.reset();
    expect(b.next()).toBe(10);
  });
  it("rejects nonsense options", () => {
    expect(() => new Backoff({ baseMs: 0 })).toThrow(RangeError);
    expect(() => new Backoff({ baseMs: 10, maxMs: 5 })).toThrow(RangeError);
    expect(() => new Backoff({ jitter: 2 })).toThrow(RangeError);
    expect(() => new Backoff({ factor: 0.5 })).toThrow(RangeError);
  });
});

class FakeSocket implements SocketLike {
  onopen: SocketLike["onopen"] = null;
  onmessage: SocketLike["onmessage"] = null;
  onclose: SocketLike["onclose"] = null;
  onerror: SocketLike["onerror"] = null;
  closed = false;
  constructor(readonly url: string) {}
  send(): void {}
  close(code = 1000, reason = ""): void {
    this.closed = true;
    this.onclose?.({ code, reason });
  }
}

class FakeTimers implements Timers {
  t = 0;
  private queue: { at: number; fn: () => void; id: number }[] = [];
  private ids = 0;
  set(fn: () => void, ms: number): unknown {
    const id = ++this.ids;
    this.queue.push({ at: this.t + ms, fn, id });
    return id;
  }
  clear(h: unknown): void {
    this.queue = this.queue.filter((q) => q.id !== h);
  }
  now(): number {
    return this.t;
  }
  /** Advance the clock, running due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at);
      const q = this.queue[0];
      if (!q || q.at > end) break;
      this.queue.shift();
      this.t = q.at;
      q.fn();
    }
    this.t = end;
  }
}

function setup(authorised = true) {
  const sockets: FakeSocket[] = [];
  const states: [ConnState, number | null][] = [];
  const messages: unknown[] = [];
  const timers = new FakeTimers();
  const conn = new LiveConnection({
    url: () => "ws://x/api/v1/ws",
    onMessage: (m) => messages.push(m),
    onState: (s, d) => states.push([s, d.retryInMs]),
    stillAuthorised: async () => authorised,
    backoff: new Backoff({ baseMs: 100, maxMs: 1000, jitter: 0, maxAttempts: 4 }),
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    timers,
    silenceMs: 5000,
  });
  return { conn, sockets, states, messages, timers };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

describe("LiveConnection", () => {
  it("goes live on the first message and passes messages on", () => {
    const { conn, sockets, states, messages } = setup();
    conn.start();
    sockets[0].onopen?.({});
    sockets[0].onmessage?.({ data: '{"type":"hello"}' });
    sockets[0].onmessage?.({ data: "not json" });
    expect(conn.state).toBe("live");
    expect(messages).toEqual([{ type: "hello" }]);
    expect(states.map((s) => s[0])).toEqual(["connecting", "live"]);
  });

  it("decodes the daemon's binary frames (UTF-8 JSON)", () => {
    const { conn, sockets, messages } = setup();
    conn.start();
    const bytes = new TextEncoder().encode('{"type":"tick","host":"hôte"}');
    sockets[0].onmessage?.({ data: bytes.buffer });
    expect(messages).toEqual([{ type: "tick", host: "hôte" }]);
  });

  it("reconnects with growing delays, resets after success, fails when attempts run out", async () => {
    const { conn, sockets, states, timers } = setup();
    conn.start();
    sockets[0].onopen?.({});
    sockets[0].onmessage?.({ data: "{}" });
    sockets[0].close(1006); // the server went away
    await flush();
    expect(conn.state).toBe("reconnecting");
    expect(states.at(-1)).toEqual(["reconnecting", 100]);
    timers.advance(100);
    expect(sockets).toHaveLength(2);
    sockets[1].close(1006);
    await flush();
    expect(states.at(-1)).toEqual(["reconnecting", 200]);
    timers.advance(200);
    sockets[2].onopen?.({});
    sockets[2].onmessage?.({ data: "{}" }); // back: the backoff starts over
    expect(conn.state).toBe("live");
    expect(conn.backoff.attempt).toBe(0);
    for (let i = 0; i < 4; i++) {
      sockets.at(-1)!.close(1006);
      await flush();
      timers.advance(2000);
    }
    sockets.at(-1)!.close(1006);
    await flush();
    expect(conn.state).toBe("failed");
    const n = sockets.length;
    timers.advance(60_000);
    expect(sockets).toHaveLength(n); // no retry in the background once failed
    conn.retry();
    expect(sockets).toHaveLength(n + 1);
    expect(conn.state).toBe("connecting");
  });

  it("stops for good when the session has expired", async () => {
    const { conn, sockets, timers } = setup(false);
    conn.start();
    sockets[0].onopen?.({});
    sockets[0].close(1006);
    await flush();
    timers.advance(10_000);
    expect(conn.state).toBe("closed");
    expect(sockets).toHaveLength(1);
  });

  it("drops a silent socket (dead peer without FIN) and reconnects", async () => {
    const { conn, sockets, timers } = setup();
    conn.start();
    sockets[0].onopen?.({});
    sockets[0].onmessage?.({ data: "{}" });
    timers.advance(4000);
    expect(sockets[0].closed).toBe(false);
    timers.advance(2500);
    expect(sockets[0].closed).toBe(true);
    await flush();
    expect(conn.state).toBe("reconnecting");
    timers.advance(100);
    expect(sockets).toHaveLength(2);
  });

  it("stop() closes without reconnecting", async () => {
    const { conn, sockets, timers } = setup();
    conn.start();
    conn.stop();
    await flush();
    timers.advance(10_000);
    expect(sockets).toHaveLength(1);
    expect(conn.state).toBe("closed");
  });
});
