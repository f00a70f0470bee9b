import { resolve } from "node:path";
import { defineConfig } from "vite";

// Three pages: the grants window (index.html), the consent window (consent.html) and
// the tool approval window (approve.html).
// Paths are relative so the bundle loads from Tauri's asset protocol.
export default defineConfig({
  base: "./",
  clearScreen: false,
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    rollupOptions: {
      input: {
        main: resolve(__dirname, "index.html"),
        consent: resolve(__dirname, "consent.html"),
        approve: resolve(__dirname, "approve.html"),
      },
    },
  },
});
