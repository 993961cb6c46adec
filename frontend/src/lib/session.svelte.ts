/**
 * Who is logged in. The session itself is an HttpOnly cookie the page cannot read; this only mirrors what
 * the server says about it.
 */
import { ApiError, get, onUnauthorised, post } from "./api";

export interface User {
  username: string;
  role: "admin" | "viewer" | string;
}

class Session {
  user = $state<User | null>(null);
  /** "unknown" until the first answer; "setup" while no admin exists yet. */
  phase = $state<"unknown" | "setup" | "login" | "ready">("unknown");
  expired = $state(false);

  constructor() {
    onUnauthorised(() => this.ended());
  }

  /** The server no longer knows this session (expired, revoked, logged out elsewhere): back to the login
   * form, saying why, instead of a page whose requests all fail. */
  ended(): void {
    if (this.user) this.expired = true;
    this.user = null;
    if (this.phase === "ready") this.phase = "login";
  }

  get isAdmin(): boolean {
    return this.user?.role === "admin";
  }

  async refresh(): Promise<void> {
    try {
      this.user = await get<User>("auth/me", { quiet401: true });
      this.phase = "ready";
      this.expired = false;
      return;
    } catch (err) {
      if (!(err instanceof ApiError) || (err.status !== 401 && err.status !== 403)) throw err;
    }
    this.user = null;
    this.phase = (await setupNeeded()) ? "setup" : "login";
  }

  async login(username: string, password: string): Promise<void> {
    await post("auth/login", { username, password }, { quiet401: true });
    this.expired = false;
    await this.refresh();
  }

  async logout(): Promise<void> {
    try {
      await post("auth/logout", {}, { quiet401: true });
    } finally {
      this.user = null;
      this.phase = "login";
    }
  }
}

export async function setupNeeded(): Promise<boolean> {
  try {
    const s = await get<{ required?: boolean }>("setup", { quiet401: true });
    return Boolean(s.required);
  } catch {
    return false;
  }
}

export const session = new Session();
