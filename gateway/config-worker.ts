/**
 * Reads and parses the gateway's files on a worker thread (gateway/config-file.ts starts it), so a
 * megabyte of YAML never holds the traffic port's event loop. Plain data back: documents and problems.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadPaths } from '../core/resources/load.js';

const { paths } = workerData as { paths: string[] };
parentPort?.postMessage(await loadPaths(paths));
