/**
 * The live WebSocket connection and its states: connecting → live → reconnecting (backoff) → failed.
 * Everything the browser provides (the socket, timers) is injected so the state machine is unit-tested
 * without a browser.
 */
import { Backoff } from "./reconnect";

export type ConnState = "connecting" | "live" | "reconnecting" | "failed" | "closed";

export interface SocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
  now(): number;
}

export interface ConnectionOptions {
  url: () => string;
  onMessage: (msg: unknown, raw: string) => void;
  onState: (state: ConnState, detail: { attempt: number; retryInMs: number | null; reason: string }) => void;
  /** Called on every unexpected close; resolving false stops reconnecting (the session has expired). */
  stillAuthorised?: () => Promise<boolean>;
  backoff?: Backoff;
  createSocket?: (url: string) => SocketLike;
  timers?: Timers;
  /** No message for this long means a dead peer (no FIN seen): the socket is dropped and retried. */
  silenceMs?: number;
}

const decoder = new TextDecoder();

const browserTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
};

export class LiveConnection {
  state: ConnState = "closed";
  private socket: SocketLike | null = null;
  private retryTimer: unknown = null;
  private watchdog: unknown = null;
  private lastMessageAt = 0;
  private stopped = true;
  private opened = false;
  readonly backoff: Backoff;
  private readonly timers: Timers;
  private readonly create: (url: string) => SocketLike;
  silenceMs: number;

  constructor(private readonly opts: ConnectionOptions) {
    this.backoff = opts.backoff ?? new Backoff();
    this.timers = opts.timers ?? browserTimers;
    this.create =
      opts.createSocket ??
      ((url) => {
        const ws = new WebSocket(url);
        ws.binaryType = "arraybuffer"; // the daemon sends UTF-8 JSON in binary frames
        return ws as unknown as SocketLike;
      });
    this.silenceMs = opts.silenceMs ?? 10_000;
  }

  start(): void {
    this.stopped = false;
    this.backoff.reset();
    this.open();
  }

  /** The user pressed "retry" after a failure: a fresh round of attempts. */
  retry(): void {
    this.clearRetry();
    this.dropSocket();
    this.start();
  }

  stop(): void {
    this.stopped = true;
    this.clearRetry();
    this.clearWatchdog();
    this.dropSocket();
    this.setState("closed", "stopped");
  }

  send(msg: unknown): void {
    this.socket?.send(JSON.stringify(msg));
  }

  private setState(state: ConnState, reason: string, retryInMs: number | null = null): void {
    this.state = state;
    this.opts.onState(state, { attempt: this.backoff.attempt, retryInMs, reason });
  }

  private open(): void {
    if (this.stopped) return;
    this.setState(this.backoff.attempt === 0 ? "connecting" : "reconnecting", "opening");
    let sock: SocketLike;
    try {
      sock = this.create(this.opts.url());
    } catch (err) {
      this.scheduleRetry(String(err));
      return;
    }
    this.socket = sock;
    this.opened = false;
    sock.onopen = () => {
      this.opened = true;
      this.lastMessageAt = this.timers.now();
      this.armWatchdog();
    };
    sock.onmessage = (ev) => {
      this.lastMessageAt = this.timers.now();
      const raw = typeof ev.data === "string" ? ev.data : ev.data instanceof ArrayBuffer ? decoder.decode(ev.data) : "";
      let msg: unknown;
      try {
        msg = JSON.parse(raw);
      } catch {
        return; // a malformed frame is ignored, not fatal
      }
      if (this.state !== "live") {
        this.backoff.reset();
        this.setState("live", "receiving");
      }
      this.opts.onMessage(msg, raw);
    };
    sock.onerror = () => {
      /* a close event always follows */
    };
    sock.onclose = (ev) => {
      if (sock !== this.socket) return;
      this.socket = null;
      this.clearWatchdog();
      if (this.stopped) return;
      void this.afterClose(`closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ""})${this.opened ? "" : " before opening"}`);
    };
  }

  private async afterClose(reason: string): Promise<void> {
    if (this.opts.stillAuthorised) {
      let ok = true;
      try {
        ok = await this.opts.stillAuthorised();
      } catch {
        ok = true; // the server is unreachable: that is what reconnecting is for
      }
      if (!ok) {
        this.stopped = true;
        this.setState("closed", "session expired");
        return;
      }
    }
    if (this.stopped) return;
    this.scheduleRetry(reason);
  }

  private scheduleRetry(reason: string): void {
    const delay = this.backoff.next();
    if (delay === null) {
      this.setState("failed", reason);
      return;
    }
    this.setState("reconnecting", reason, delay);
    this.retryTimer = this.timers.set(() => {
      this.retryTimer = null;
      this.open();
    }, delay);
  }

  private armWatchdog(): void {
    this.clearWatchdog();
    this.watchdog = this.timers.set(() => {
      this.watchdog = null;
      if (!this.socket) return;
      if (this.timers.now() - this.lastMessageAt >= this.silenceMs) {
        const s = this.socket;
        this.socket = null;
        try {
          s.close(4000, "silent");
        } catch {
          /* already closing */
        }
        void this.afterClose(`no data for ${Math.round(this.silenceMs / 1000)} s`);
      } else {
        this.armWatchdog();
      }
    }, Math.max(250, this.silenceMs / 4));
  }

  private clearWatchdog(): void {
    if (this.watchdog !== null) this.timers.clear(this.watchdog);
    this.watchdog = null;
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) this.timers.clear(this.retryTimer);
    this.retryTimer = null;
  }

  private dropSocket(): void {
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onclose = null;
      s.onmessage = null;
      try {
        s.close(1000, "bye");
      } catch {
        /* ignore */
      }
    }
  }
}
