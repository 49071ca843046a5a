/**
 * A circuit breaker for something the gateway may do without (Redis for rate limits, a shadow for
 * mirror copies): closed, it is used; after a failure it is left alone for `retryMs`; then one
 * caller at a time probes it until it answers again. So a dependency that is down costs one try
 * per `retryMs`, not one per request.
 */
export class Breaker {
  private retryAt = 0;
  private probing = false;
  private open = false;

  constructor(
    private readonly retryMs: number,
    /** Monotonic milliseconds. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Whether this caller may use it now (a probe, when it has been left alone long enough). */
  tryNow(): boolean {
    if (!this.open) return true;
    if (this.probing || this.now() < this.retryAt) return false;
    this.probing = true;
    return true;
  }

  succeeded(): void {
    this.open = false;
    this.probing = false;
  }

  failed(): void {
    this.open = true;
    this.probing = false;
    this.retryAt = this.now() + this.retryMs;
  }
}
