// `npm run bench [-- flags]`: the engine benchmark, same as `mce bench engine` (flags: --smoke, --reps N,
// --only a,b, --out PATH, --no-torch, --backend native|wasm|cpu). The workloads live in src/bench/.
import { main } from '../src/cli/main.js';

process.exitCode = await main(['bench', 'engine', ...process.argv.slice(2)]);
