/**
 * Which of a pull request's previews is the newest, in one place: the compiler routes `pr-N` to
 * it, the preview controller keeps the newest `maxPerPullRequest`, and the PR bot ignores an event
 * older than the one a preview was written for.
 */
import { HEAD_UPDATED_AT } from '../resources/labels.js';

type Aged = { metadata?: { creationTimestamp?: unknown; annotations?: Record<string, string> | undefined } };

const created = (p: Aged) => {
  const c = p.metadata?.creationTimestamp;
  return c instanceof Date ? c.toISOString() : typeof c === 'string' ? c : '';
};

/** The time of the pull-request event a Preview was written for (the PR bot's annotation); '' if none. */
export function eventTime(p: Aged): string {
  return p.metadata?.annotations?.[HEAD_UPDATED_AT] ?? '';
}

/**
 * Older first: by creation time, then (creation times have one-second resolution) by the event it
 * was written for. 0 when nothing tells them apart: callers keep the order they were given (a
 * file's order; the API server lists by name).
 */
export function compareAge(a: Aged, b: Aged): number {
  const [ca, cb] = [created(a), created(b)];
  if (ca !== cb) return ca < cb ? -1 : 1;
  const [ea, eb] = [eventTime(a), eventTime(b)];
  return ea === eb ? 0 : ea < eb ? -1 : 1;
}
