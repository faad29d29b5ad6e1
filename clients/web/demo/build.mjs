// Builds the demo page into OUT (default ../../build/web): app.js bundled by
// esbuild from main.ts (with the SDK), plus index.html and style.css.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "../../../build/web"));
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, "main.ts")],
  bundle: true,
  format: "iife",
  target: "es2022",
  sourcemap: true,
  minify: true,
  outfile: join(out, "app.js"),
  logLevel: "warning",
});
for (const f of ["index.html", "style.css"]) copyFileSync(join(here, f), join(out, f));
console.log(`demo built into ${out}`);
