/**
 * Hash routing: `#/history?from=...&to=...`. The whole view state lives in the fragment so a link can be
 * shared, and the daemon only ever has to serve one index.html.
 */

export interface Route {
  path: string;
  params: URLSearchParams;
}

function parse(hash: string): Route {
  // `perfpulse serve` prints the first-run link as `/#setup=TOKEN`.
  const setup = /^#?setup=(.*)$/.exec(hash);
  if (setup) return { path: "/setup", params: new URLSearchParams({ token: decodeURIComponent(setup[1]) }) };
  const h = hash.replace(/^#/, "") || "/live";
  const q = h.indexOf("?");
  const path = q < 0 ? h : h.slice(0, q);
  return { path: path.startsWith("/") ? path : `/${path}`, params: new URLSearchParams(q < 0 ? "" : h.slice(q + 1)) };
}

class Router {
  route = $state<Route>(parse(typeof location === "undefined" ? "" : location.hash));

  constructor() {
    if (typeof window !== "undefined") {
      window.addEventListener("hashchange", () => {
        this.route = parse(location.hash);
      });
    }
  }

  href(path: string, params?: Record<string, string | number | undefined | null> | URLSearchParams): string {
    const p = params instanceof URLSearchParams ? params : new URLSearchParams();
    if (params && !(params instanceof URLSearchParams)) {
      for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
    }
    const qs = p.toString();
    return `#${path}${qs ? `?${qs}` : ""}`;
  }

  go(path: string, params?: Record<string, string | number | undefined | null> | URLSearchParams): void {
    const target = this.href(path, params);
    if (location.hash !== target) location.hash = target;
    this.route = parse(target);
  }

  /** Update the query of the current view without adding a history entry per keystroke. */
  replace(params: Record<string, string | number | undefined | null>): void {
    const target = this.href(this.route.path, params);
    history.replaceState(null, "", target);
    this.route = parse(target);
  }
}

export const router = new Router();
