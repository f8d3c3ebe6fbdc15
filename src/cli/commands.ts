// The command table. One file per command; add new commands here.
import type { Command } from './command.js';

export const commands: Command[] = [];
