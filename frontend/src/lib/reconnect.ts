/**
 * The reconnect policy of the live connection: exponential backoff with jitter, so that a restarted daemon
 * is not hit by every open dashboard at the same instant, and a give-up point after which the user decides
 * (the "failed" badge with its retry button) instead of the page retrying forever in the background.
 */

export interface BackoffOptions {
  /** Delay before the first retry, ms. */
  baseMs?: number;
  /** Upper bound of any delay, ms. */
  maxMs?: number;
  factor?: number;
  /** Share of each delay that is randomised: 0 = none, 1 = anywhere in [0, delay]. */
  jitter?: number;
  /** Retries before giving up; Infinity never gives up. */
  maxAttempts?: number;
  random?: () => number;
}

export class Backoff {
  readonly baseMs: number;
  readonly maxMs: number;
  readonly factor: number;
  readonly jitter: number;
  readonly maxAttempts: number;
  private readonly random: () => number;
  private attempts = 0;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? 500;
    this.maxMs = opts.maxMs ?? 15_000;
    this.factor = opts.factor ?? 2;
    this.jitter = opts.jitter ?? 0.5;
    this.maxAttempts = opts.maxAttempts ?? 12;
    this.random = opts.random ?? Math.random;
    if (!(this.baseMs > 0) || !(this.maxMs >= this.baseMs)) throw new RangeError("backoff needs 0 < baseMs <= maxMs");
    if (!(this.factor >= 1)) throw new RangeError("backoff factor must be >= 1");
    if (!(this.jitter >= 0 && this.jitter <= 1)) throw new RangeError("backoff jitter must be within 0..1");
  }

  /** Retries made since the last success. */
  get attempt(): number {
    return this.attempts;
  }

  get exhausted(): boolean {
    return this.attempts >= this.maxAttempts;
  }

  /** The upper bound of the next delay, before jitter. */
  ceiling(attempt = this.attempts): number {
    return Math.min(this.maxMs, this.baseMs * this.factor ** attempt);
  }

  /** The delay before the next retry in ms, or null once the attempts are used up. */
  next(): number | null {
    if (this.exhausted) return null;
    const cap = this.ceiling();
    this.attempts++;
    return Math.round(cap * (1 - this.jitter * this.random()));
  }

  /** A connection succeeded: the next failure starts again from the base delay. */
  reset(): void {
    this.attempts = 0;
  }
}
