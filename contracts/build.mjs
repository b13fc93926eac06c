// Compile contracts/src with solc-js and write the ABI and bytecode the Python settlement
// package loads into src/gpumarket/settlement/artifacts/. With --check, compare instead and
// exit 1 when the committed artifacts are stale (the test suite runs this).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");
const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.join(here, "..", "src", "gpumarket", "settlement", "artifacts");
const CONTRACTS = ["GpuMarket", "TestStablecoin"];

function findImports(file) {
  for (const root of [here, path.join(here, "node_modules")]) {
    const candidate = path.resolve(root, file);
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
  }
  return { error: `not found: ${file}` };
}

const sources = {};
for (const name of CONTRACTS) {
  const file = `src/${name}.sol`;
  sources[file] = { content: fs.readFileSync(path.join(here, file), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 10000 },
    viaIR: true,
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}

let stale = [];
for (const name of CONTRACTS) {
  const compiled = output.contracts[`src/${name}.sol`][name];
  const artifact = {
    contractName: name,
    compiler: `solc-js ${solc.version()}`,
    settings: {
      optimizer: input.settings.optimizer,
      viaIR: input.settings.viaIR,
      evmVersion: input.settings.evmVersion,
    },
    abi: compiled.abi,
    bytecode: "0x" + compiled.evm.bytecode.object,
    deployedBytecode: "0x" + compiled.evm.deployedBytecode.object,
  };
  const text = JSON.stringify(artifact, null, 2) + "\n";
  const target = path.join(outDir, `${name}.json`);
  if (process.argv.includes("--check")) {
    const current = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : "";
    if (current !== text) stale.push(target);
  } else {
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(target, text);
    console.log(`wrote ${path.relative(process.cwd(), target)}`);
  }
}
if (stale.length) {
  console.error(`stale artifacts (run \`node contracts/build.mjs\` and commit): ${stale.join(", ")}`);
  process.exit(1);
}
