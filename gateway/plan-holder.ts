/**
 * Holds the snapshot in force. A good load replaces it; a bad one is kept aside with its problems
 * (shown on the admin API and logged) while the last good snapshot keeps serving.
 */
import type { Problem } from '../core/common/errors.js';
import type { BuildResult, Snapshot } from './snapshot.js';

export interface LoadError {
  at: string;
  source: string;
  problems: Problem[];
}

export class PlanHolder {
  private snapshot: Snapshot | undefined;
  private error: LoadError | undefined;
  reloads = 0;
  failures = 0;

  get current(): Snapshot | undefined {
    return this.snapshot;
  }

  get lastError(): LoadError | undefined {
    return this.error;
  }

  /** Returns true when the result was applied. */
  apply(result: BuildResult, source: string, now: Date): boolean {
    if (result.ok) {
      this.snapshot = result.snapshot;
      this.error = undefined;
      this.reloads++;
      return true;
    }
    this.error = { at: now.toISOString(), source, problems: result.problems };
    this.failures++;
    return false;
  }
}
