import { describe, expect, it } from "vitest";
import { Ring, Timeline } from "../src/lib/ring";

describe("Ring", () => {
  it("rejects a capacity that is not a positive integer", () => {
    expect(() => new Ring(0)).toThrow(RangeError);
    expect(() => new Ring(2.5)).toThrow(RangeError);
  });
  it("keeps the newest values oldest-first after wrapping", () => {
    const r = new Ring(3);
    for (const v of [1, 2, 3, 4, 5]) r.push(v);
    expect(r.length).toBe(3);
    expect(r.toArray()).toEqual([3, 4, 5]);
    expect(r.at(0)).toBe(3);
    expect(r.at(-1)).toBe(5);
    expect(r.last()).toBe(5);
    expect(r.at(3)).toBeNull();
  });
  it("stores missing and non-finite values as gaps", () => {
    const r = new Ring(4);
    r.push(1);
    r.push(null);
    r.push(Number.NaN);
    r.push(Number.POSITIVE_INFINITY);
    expect(r.toArray()).toEqual([1, null, null, null]);
    expect(r.extent()).toEqual([1, 1]);
    expect(r.empty()).toBe(false);
    r.push(null);
    expect(r.empty()).toBe(true);
    expect(r.extent()).toBeNull();
  });
  it("averages the values held, skipping gaps, after wrapping", () => {
    const r = new Ring(3);
    expect(r.mean()).toBeNull();
    r.push(10);
    r.push(null);
    r.push(2);
    expect(r.mean()).toBe(6);
    r.push(4); // overwrites 10
    expect(r.mean()).toBe(3);
    r.push(null);
    r.push(null);
    expect(r.mean()).toBe(4);
    r.push(null);
    expect(r.mean()).toBeNull();
  });
  it("reuses the output array", () => {
    const r = new Ring(5);
    r.push(1);
    r.push(2);
    const out: (number | null)[] = [9, 9, 9, 9, 9, 9];
    expect(r.toArray(out)).toBe(out);
    expect(out).toEqual([1, 2]);
  });
  it("gives its values as a Float64Array with NaN for a missing value, refilling one of the right length", () => {
    const r = new Ring(3);
    r.push(1);
    r.push(null);
    const a = r.values();
    expect(Array.from(a)).toEqual([1, NaN]);
    expect(r.values(a)).toBe(a);
    r.push(3);
    const b = r.values(a);
    expect(b).not.toBe(a); // the ring grew: a new array
    expect(Array.from(b)).toEqual([1, NaN, 3]);
    r.push(4); // wraps around
    expect(r.values(b)).toBe(b);
    expect(Array.from(b)).toEqual([NaN, 3, 4]);
  });
  it("resizes keeping the newest values", () => {
    const r = new Ring(5);
    for (let i = 0; i < 8; i++) r.push(i);
    r.resize(3);
    expect(r.toArray()).toEqual([5, 6, 7]);
    r.resize(6);
    r.push(8);
    expect(r.toArray()).toEqual([5, 6, 7, 8]);
  });
  it("stays bounded over a long run", () => {
    const r = new Ring(300);
    for (let i = 0; i < 100_000; i++) r.push(i);
    expect(r.length).toBe(300);
    expect(r.at(0)).toBe(99_700);
  });
});

describe("Timeline", () => {
  it("aligns a series that appears mid-window with leading gaps", () => {
    const t = new Timeline(4);
    t.push(1, { a: 1 });
    t.push(2, { a: 2, b: 20 });
    t.push(3, { b: 30 });
    expect(t.times.toArray()).toEqual([1, 2, 3]);
    expect(t.get("a")!.toArray()).toEqual([1, 2, null]);
    expect(t.get("b")!.toArray()).toEqual([null, 20, 30]);
  });
  it("ignores a tick that is not newer (a replayed backfill)", () => {
    const t = new Timeline(4);
    expect(t.push(5, { a: 1 })).toBe(true);
    expect(t.push(5, { a: 2 })).toBe(false);
    expect(t.push(4, { a: 3 })).toBe(false);
    expect(t.get("a")!.toArray()).toEqual([1]);
  });
  it("drops series that vanished from the whole window", () => {
    const t = new Timeline(8);
    t.push(0, { gone: 1, kept: 1 });
    for (let i = 1; i < 64; i++) t.push(i, { kept: i });
    expect(t.get("gone")).toBeUndefined();
    expect(t.latest("kept")).toBe(63);
    expect(t.get("kept")!.length).toBe(8);
  });
  it("resizes every series together", () => {
    const t = new Timeline(6);
    for (let i = 0; i < 6; i++) t.push(i, { a: i, b: i * 10 });
    const s = t.resize(3);
    expect(s.times.toArray()).toEqual([3, 4, 5]);
    expect(s.get("b")!.toArray()).toEqual([30, 40, 50]);
  });
});

describe("Ring.pushed", () => {
  it("counts every value pushed, past the capacity, until cleared", () => {
    const r = new Ring(3);
    for (let i = 0; i < 7; i++) r.push(i);
    expect(r.length).toBe(3);
    expect(r.pushed).toBe(7);
    r.clear();
    expect(r.pushed).toBe(0);
  });
});
