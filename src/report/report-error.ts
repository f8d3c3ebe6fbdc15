// A run folder the report cannot be made from (missing, unrecognised, unreadable JSON): one line.
export class ReportError extends Error {
  constructor(message: string) {
    super(message.split('\n')[0]);
    this.name = 'ReportError';
  }
}
