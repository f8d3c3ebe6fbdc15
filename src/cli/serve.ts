// `mce serve`: the local web lab (src/serve/). Binds 127.0.0.1 unless --host says otherwise, because
// the API reads the runs folder and starts erase processes; runs until Ctrl-C.
import { UsageError, UserError, type Command } from './command.js';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export const serveCommand: Command = {
  name: 'serve',
  summary: 'the web lab: browse runs, compare original vs erased on any prompt, scrub trajectories, start erase runs',
  flags: {
    port: { type: 'number', help: 'TCP port (0 = any free port)', default: 8177 },
    host: { type: 'string', help: 'interface to listen on; anything but loopback exposes the lab (and its erase button) to the network', default: '127.0.0.1' },
    runs: { type: 'string', help: 'runs folder: erase runs to browse, and where runs started from the page go', default: 'runs' },
  },
  async run(args, flags) {
    if (args.length) throw new UsageError(`mce serve: unexpected argument '${args[0]}'`);
    const port = flags['port'] as number;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`mce serve: --port must be an integer in [0, 65535], got ${port}`);
    const host = flags['host'] as string;
    const { startLab } = await import('../serve/server.js');
    let lab;
    try {
      lab = await startLab({ runsDir: flags['runs'] as string, host, port });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') throw new UserError(`port ${port} is in use; pick another with --port (0 = any free port)`);
      if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new UserError(`cannot listen on ${host}: no such interface here`);
      throw e;
    }
    if (!LOOPBACK.has(host)) process.stderr.write(`mce serve: listening on ${host}, not loopback: anyone who can reach it can start erase runs\n`);
    process.stdout.write(`mce serve: ${lab.url} (runs: ${flags['runs'] as string}); Ctrl-C stops\n`);
    await new Promise<void>((done) => {
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
    });
    await lab.close();
    return 0;
  },
};
