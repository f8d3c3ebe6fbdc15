// One worker process of `mce bench --jobs N` (jobs.ts): runs its slice and sends back the result.
// It exits when its parent goes (the IPC channel closes), so a killed sweep leaves nothing running.
import { useBackend } from '../../engine/backend.js';
import type { WorkerSpec } from './jobs.js';
import { runErasureBench } from './run.js';

const orphaned = (): never => process.exit(130);
process.on('disconnect', orphaned);
const spec = JSON.parse(process.argv[2]!) as WorkerSpec;
await useBackend();
const result = await runErasureBench(spec.settings, { dir: spec.dir, shard: spec.shard, job: spec.job });
process.off('disconnect', orphaned);
process.send!(result, () => process.disconnect());
