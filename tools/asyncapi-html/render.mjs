// Renders an AsyncAPI document to one self-contained HTML page.
// Usage: node render.mjs ASYNCAPI_FILE OUT_DIR   -> OUT_DIR/index.html
import path from "node:path";
import { fileURLToPath } from "node:url";
import Generator from "@asyncapi/generator";

const [doc, out] = process.argv.slice(2);
if (!doc || !out) {
  console.error("usage: node render.mjs ASYNCAPI_FILE OUT_DIR");
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const template = path.join(here, "node_modules", "@asyncapi", "html-template");
const generator = new Generator(template, path.resolve(out), {
  forceWrite: true,
  templateParams: { singleFile: "true" },
});
await generator.generateFromFile(path.resolve(doc));
console.log(`wrote ${path.join(out, "index.html")}`);
