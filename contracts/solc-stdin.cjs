// Compile standard JSON from stdin with solc-js, reading imports from the working directory,
// contracts/ and node_modules (used by solc-shim.sh for forge, and by build.mjs).
const fs = require("fs");
const path = require("path");
const solc = require("solc");
const roots = [process.cwd(), __dirname, path.join(__dirname, "node_modules")];
function findImports(file) {
  for (const root of roots) {
    const candidate = path.resolve(root, file);
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
  }
  return { error: `not found: ${file}` };
}
const input = fs.readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));
