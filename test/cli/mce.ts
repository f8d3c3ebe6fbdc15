// The CLI on the sources, for tests that run it as a real process (exit codes and streams exactly
// as a user sees them): node --import tsx test/cli/mce.ts <args>.
import { main } from '../../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
