import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `base: "./"` so the built app works from any directory a server puts it in.
export default defineConfig({
  base: "./",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true },
});
