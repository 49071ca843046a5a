/**
 * A work queue as client-go's: a key is queued once however often it is added, one worker handles a
 * key at a time, a failure re-queues it with exponential backoff (5 ms doubling to 60 s), a
 * success forgets its failures and may ask to be called again later (a preview's TTL). Keys are
 * `namespace/name`.
 */
/** Handles one key; a number asks for the key to be handled again after that many milliseconds. */
export type Handler = (key: string) => Promise<number | undefined>;

export class WorkQueue {
  private readonly pending = new Set<string>();
  private readonly active = new Set<string>();
  /** Added again while being handled: handle once more afterwards. */
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  /** One delayed add per key: a later request replaces an earlier one. */
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private stopped = false;
  private readonly idle: (() => void)[] = [];

  constructor(
    private readonly handler: Handler,
    private readonly onError: (key: string, error: unknown, attempt: number) => void,
    private readonly concurrency = 4,
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) this.dirty.add(key);
    else this.pending.add(key);
    this.idle.shift()?.();
  }

  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timers.get(key));
    const t = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    t.unref();
    this.timers.set(key, t);
  }

  get length(): number {
    return this.pending.size + this.active.size;
  }

  /** Runs workers until stop(); resolves when they have all finished. */
  async run(): Promise<void> {
    const worker = async () => {
      while (!this.stopped) {
        const key = this.pending.values().next().value as string | undefined;
        if (key === undefined) {
          await new Promise<void>((r) => this.idle.push(r));
          continue;
        }
        this.pending.delete(key);
        this.active.add(key);
        try {
          const again = await this.handler(key);
          this.failures.delete(key);
          if (again !== undefined) this.addAfter(key, again);
        } catch (e) {
          const attempt = (this.failures.get(key) ?? 0) + 1;
          this.failures.set(key, attempt);
          this.onError(key, e, attempt);
          this.addAfter(key, Math.min(60_000, 5 * 2 ** attempt));
        } finally {
          this.active.delete(key);
          if (this.dirty.delete(key)) this.add(key);
        }
      }
    };
    await Promise.all(Array.from({ length: this.concurrency }, worker));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    for (const wake of this.idle.splice(0)) wake();
  }
}
