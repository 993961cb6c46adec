/** Colours for canvases (uPlot, sparklines, heat maps), following the OS light/dark preference. */

const LIGHT = {
  fg: "#1f2937",
  muted: "#6b7280",
  grid: "rgba(0,0,0,0.08)",
  axis: "#6b7280",
  series: ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#9333ea", "#ea580c"],
};
const DARK = {
  fg: "#e5e7eb",
  muted: "#9ca3af",
  grid: "rgba(255,255,255,0.08)",
  axis: "#9ca3af",
  series: ["#60a5fa", "#f87171", "#4ade80", "#fbbf24", "#a78bfa", "#22d3ee", "#f472b6", "#a3e635", "#c084fc", "#fb923c"],
};

export type Palette = typeof LIGHT;

class Theme {
  dark = $state(false);

  constructor() {
    if (typeof window !== "undefined" && window.matchMedia) {
      const mq = window.matchMedia("(prefers-color-scheme: dark)");
      this.dark = mq.matches;
      mq.addEventListener("change", (e) => {
        this.dark = e.matches;
      });
    }
  }

  get palette(): Palette {
    return this.dark ? DARK : LIGHT;
  }

  color(i: number): string {
    const s = this.palette.series;
    return s[((i % s.length) + s.length) % s.length];
  }
}

export const theme = new Theme();

/** Blue → yellow → red for 0..1, the heat-map scale. */
export function heat(v: number | null, dark: boolean): string {
  if (v === null || !Number.isFinite(v)) return dark ? "#1f2937" : "#f3f4f6";
  const x = Math.max(0, Math.min(1, v));
  const stops = dark
    ? [
        [30, 58, 138],
        [234, 179, 8],
        [239, 68, 68],
      ]
    : [
        [191, 219, 254],
        [250, 204, 21],
        [220, 38, 38],
      ];
  const [a, b, t] = x < 0.5 ? [stops[0], stops[1], x * 2] : [stops[1], stops[2], (x - 0.5) * 2];
  const c = a.map((av, i) => Math.round(av + (b[i] - av) * t));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
