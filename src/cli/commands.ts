// The command table. One file per command; add new commands here.
import type { Command } from './command.js';
import { inspect } from './inspect.js';
import { benchCommand } from './bench.js';

export const commands: Command[] = [inspect, benchCommand];
