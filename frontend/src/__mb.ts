import { traceLine, type Geometry } from "./lib/paths";
const N = 300, S = 30;
const xs = new Float64Array(N); for (let i = 0; i < N; i++) xs[i] = 1e9 + i;
const series: (number | null)[][] = [];
for (let s = 0; s < S; s++) series.push(Array.from({ length: N }, (_, i) => (s % 3 === 0 ? Math.random() * 50 : s % 3 === 1 ? 0 : (i % 40 < 3 ? 20 : 0))));
let calls = 0;
const sink = { moveTo(x: number, y: number) { calls++; }, lineTo(x: number, y: number) { calls++; }, closePath() {} };
const g: Geometry = { left: 50, top: 10, width: 620, height: 80, xMin: 1e9, xMax: 1e9 + N, yMin: 0, yMax: 100 };
for (let r = 0; r < 5; r++) {
  const t0 = performance.now();
  for (let k = 0; k < 200; k++) for (const ys of series) traceLine(xs, ys, 0, N - 1, g, sink);
  console.log(((performance.now() - t0) / 200).toFixed(3), "ms per tick-equivalent", calls / 200 / (r + 1));
}
