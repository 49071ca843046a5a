/**
 * `npm run cluster:stop`: stops the cluster tests' cluster and removes what it left on the machine
 * (after SWITCHYARD_CLUSTER_KEEP, or a run that was killed).
 */
import { stopRun } from './cluster.js';
import { CLUSTER_RUN } from './setup.js';

await stopRun(CLUSTER_RUN);
console.log(`stopped the test cluster in ${CLUSTER_RUN}`);
