/**
 * The REST client. Every call goes to the same origin with the session cookie; a 401 on any call means the
 * session ended (expired, revoked, logged out elsewhere), and the app goes back to the login view instead of
 * showing a half-empty page.
 */

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly detail: unknown = null,
  ) {
    super(message);
  }
  /** Per-field messages of a 422, keyed by the field's name. */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    const d = this.detail as { detail?: unknown } | null;
    const list = d && Array.isArray(d.detail) ? d.detail : [];
    for (const e of list as { loc?: unknown[]; msg?: string }[]) {
      const loc = (e.loc ?? []).filter((x) => x !== "body");
      out[loc.join(".") || "_"] = e.msg ?? "invalid";
    }
    return out;
  }
}

type Listener = () => void;
const unauthorisedListeners = new Set<Listener>();

export function onUnauthorised(fn: Listener): () => void {
  unauthorisedListeners.add(fn);
  return () => unauthorisedListeners.delete(fn);
}

function messageOf(body: unknown, status: number): string {
  if (body && typeof body === "object") {
    const b = body as Record<string, unknown>;
    if (typeof b.detail === "string") return b.detail;
    if (Array.isArray(b.detail)) {
      return (b.detail as { msg?: string; loc?: unknown[] }[])
        .map((e) => `${(e.loc ?? []).filter((x) => x !== "body").join(".")}: ${e.msg ?? "invalid"}`)
        .join("; ");
    }
    if (typeof b.message === "string") return b.message;
    if (typeof b.error === "string") return b.error;
  }
  if (typeof body === "string" && body) return body.slice(0, 200);
  return `HTTP ${status}`;
}

export interface RequestOptions {
  /** Do not treat a 401 as a session end (the login form itself, the first "who am I"). */
  quiet401?: boolean;
  signal?: AbortSignal;
}

export async function request<T = unknown>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
  const init: RequestInit = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json" },
    signal: opts.signal,
  };
  if (body !== undefined) {
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path.startsWith("/") ? path : `${API}/${path}`, init);
  const text = await res.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (!res.ok) {
    if (res.status === 401 && !opts.quiet401) for (const fn of unauthorisedListeners) fn();
    throw new ApiError(res.status, messageOf(parsed, res.status), parsed);
  }
  return parsed as T;
}

export const get = <T = unknown>(path: string, opts?: RequestOptions) => request<T>("GET", path, undefined, opts);
export const post = <T = unknown>(path: string, body?: unknown, opts?: RequestOptions) => request<T>("POST", path, body ?? {}, opts);
export const put = <T = unknown>(path: string, body?: unknown, opts?: RequestOptions) => request<T>("PUT", path, body ?? {}, opts);
export const patch = <T = unknown>(path: string, body?: unknown, opts?: RequestOptions) => request<T>("PATCH", path, body ?? {}, opts);
export const del = <T = unknown>(path: string, opts?: RequestOptions) => request<T>("DELETE", path, undefined, opts);

/** Raw text (CSV export). */
export async function getText(path: string): Promise<string> {
  const res = await fetch(path.startsWith("/") ? path : `${API}/${path}`, { credentials: "same-origin" });
  if (res.status === 401) for (const fn of unauthorisedListeners) fn();
  if (!res.ok) throw new ApiError(res.status, `HTTP ${res.status}`);
  return res.text();
}

export function wsUrl(path = `${API}/ws`): string {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}${path}`;
}
