import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { fileURLToPath } from "node:url";

const outDir = fileURLToPath(new URL("../src/perfpulse/web", import.meta.url));

// The daemon serves the build from the Python package; `npm run dev` proxies the API to a running daemon.
const target = process.env.PERFPULSE_URL ?? "http://127.0.0.1:8787";

export default defineConfig({
  plugins: [svelte()],
  base: "./",
  build: {
    outDir,
    emptyOutDir: true,
    target: "es2022",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
  },
  server: {
    proxy: {
      "/api": { target, ws: true, changeOrigin: false },
    },
  },
  test: {
    include: ["tests/**/*.test.ts"],
    environment: "node",
  },
});
