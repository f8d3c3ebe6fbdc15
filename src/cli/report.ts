// `mce report RUN_DIR [--out FILE]`: one self-contained HTML file (images inlined, plots as SVG,
// no external requests) for an erase run, a baseline bundle or a results folder.
import { UsageError, UserError, type Command } from './command.js';

export const reportCommand: Command = {
  name: 'report',
  summary: 'write one self-contained HTML report (opens offline) for an erase run, a baseline bundle or a results folder',
  args: 'RUN_DIR',
  flags: {
    out: { type: 'string', help: 'where to write the HTML (default: RUN_DIR/report.html)' },
  },
  async run(args, flags) {
    if (args.length !== 1) throw new UsageError('mce report: give one run folder: mce report RUN_DIR [--out FILE]');
    const out = flags['out'];
    if (out !== undefined && (typeof out !== 'string' || !out)) throw new UsageError('mce report: --out needs a file name');
    const { writeReport } = await import('../report/run-report.js');
    const { ReportError } = await import('../report/report-error.js');
    try {
      const r = await writeReport(args[0]!, out as string | undefined);
      process.stderr.write(`mce report: ${r.kinds.join(' + ')} -> ${r.path} (${r.bytes} bytes)\n`);
    } catch (e) {
      if (e instanceof ReportError) throw new UserError(e.message);
      throw e;
    }
    return 0;
  },
};
