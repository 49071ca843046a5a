/**
 * Fire-and-forget copies of requests to a shadow upstream. A copy never delays, fails or holds
 * memory for the primary: it is sent after the primary's body is read, its answer is discarded,
 * at most `maxInFlight` copies are buffered or in flight at once (more are dropped and counted),
 * bodies over the cap are not copied, and each copy has its own short timeout. A shadow that
 * refuses connections (not deployed yet, crashed) is left alone for `retryMs` after each refusal,
 * its copies dropped, and then one copy probes it: a refused connection costs undici more than a
 * whole proxied request, so copying every request into one more than doubled the gateway's CPU
 * per request (load-tests/README.md).
 */
import { PassThrough, type Readable } from 'node:stream';
import { type Dispatcher, Pool } from 'undici';
import type { UpstreamProtocol } from '../src/compiler/plan.js';
import { Breaker } from './breaker.js';
import { isConnectFailure } from './errors.js';
import { hasBody, poolOptions } from './proxy.js';
import type { TrafficRequest } from './traffic-server.js';

export interface MirrorCopy {
  url: URL;
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body?: Buffer;
  /** As the policy speaks to its pods (gRPC copies need HTTP/2). */
  protocol?: UpstreamProtocol;
}

export interface MirrorOptions {
  maxInFlight?: number;
  timeoutMs?: number;
  /** Istio ≥ 1.28 keeps the Host of copies; earlier versions append `-shadow`. */
  hostSuffix?: string;
  /** How long a shadow that refused a connection gets no copies before one probes it (default 1 s). */
  retryMs?: number;
  onResult?(result: 'sent' | 'dropped' | 'failed'): void;
}

export interface MirrorSlot {
  send(copy: MirrorCopy): void;
  release(): void;
}

export class Mirror {
  private inFlight = 0;
  private readonly pools = new Map<string, Pool>();
  private byUrl = { http1: new WeakMap<URL, Pool>(), http2: new WeakMap<URL, Pool>() };
  /** Per shadow (its pool): whether it is taking connections. */
  private readonly breakers = new WeakMap<Pool, Breaker>();

  constructor(private readonly options: MirrorOptions = {}) {}

  send(copy: MirrorCopy): void {
    if (this.take()) this.start(copy);
  }

  /** One of the `maxInFlight` slots, or false (counted as dropped) when every slot is taken. */
  private take(): boolean {
    if (this.inFlight >= (this.options.maxInFlight ?? 100)) {
      this.options.onResult?.('dropped');
      return false;
    }
    this.inFlight++;
    return true;
  }

  /**
   * Takes a slot for one copy before its body is buffered, so concurrent large bodies never hold
   * more than `maxInFlight` buffers; undefined (counted as dropped) when every slot is taken. The
   * slot is given back by `send` (once the copy is answered) or `release` (nothing to copy).
   */
  reserve(): MirrorSlot | undefined {
    if (!this.take()) return undefined;
    let used = false;
    return {
      send: (copy) => {
        if (used) return;
        used = true;
        this.start(copy);
      },
      release: () => {
        if (used) return;
        used = true;
        this.inFlight--;
      },
    };
  }

  /**
   * Copies a request on its way to the primary: its head at once, a body captured as it streams to
   * the primary, up to `maxBodyBytes` (a larger one is not copied). Returns the stream the primary
   * must read its body from.
   */
  tee(req: TrafficRequest, copy: Omit<MirrorCopy, 'body'>, maxBodyBytes: number): Readable {
    if (!hasBody(req)) {
      // Nothing to buffer: no slot object, the copy goes now.
      this.send(copy);
      return req;
    }
    // A slot first: a body is buffered only for a copy that will be sent.
    const slot = this.reserve();
    if (!slot) return req;
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    // The primary reads from `primary`; listening to 'data' on req alone would let chunks flow past it.
    const primary = new PassThrough();
    req.pipe(primary);
    req.on('data', (chunk: Buffer) => {
      if (tooBig) return;
      size += chunk.length;
      if (size > maxBodyBytes) {
        tooBig = true;
        chunks.length = 0;
      } else chunks.push(chunk);
    });
    req.once('end', () => {
      if (tooBig) {
        this.options.onResult?.('dropped');
        slot.release();
      } else slot.send({ ...copy, body: Buffer.concat(chunks) });
    });
    // Aborted before its end: nothing to copy, the slot goes back (a no-op after 'end').
    req.once('close', () => slot.release());
    return primary;
  }

  private start(copy: MirrorCopy): void {
    const pool = this.poolFor(copy.url, copy.protocol ?? 'http1');
    let breaker = this.breakers.get(pool);
    if (!breaker) {
      breaker = new Breaker(this.options.retryMs ?? 1000);
      this.breakers.set(pool, breaker);
    }
    // Checked when the copy goes, not when its slot is taken: a probe must be a copy that is sent.
    if (!breaker.tryNow()) {
      this.inFlight--;
      this.options.onResult?.('dropped');
      return;
    }
    const headers: Record<string, string | string[]> = { ...copy.headers, 'x-switchyard-shadow': '1' };
    if (this.options.hostSuffix && typeof headers.host === 'string')
      headers.host = `${headers.host}${this.options.hostSuffix}`;
    if (copy.body) headers['content-length'] = String(copy.body.length);
    const timeoutMs = this.options.timeoutMs ?? 5000;
    pool.dispatch(
      {
        path: copy.path,
        method: copy.method as Dispatcher.HttpMethod,
        headers,
        body: copy.body ?? null,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      },
      new DroppedAnswer(this.finish, breaker) as unknown as Dispatcher.DispatchHandler,
    );
  }

  private readonly finish = (result: 'sent' | 'failed') => {
    this.inFlight--;
    this.options.onResult?.(result);
  };

  /** The pool of a shadow's URL object (each snapshot builds its URLs once): no `url.origin` per copy. */
  private poolFor(url: URL, protocol: UpstreamProtocol): Pool {
    let pool = this.byUrl[protocol].get(url);
    if (pool) return pool;
    const key = `${protocol} ${url.origin}`;
    pool = this.pools.get(key);
    if (!pool) {
      // As many connections as copies may be in flight, so a copy is never queued behind a hung one.
      pool = new Pool(
        url.origin,
        poolOptions(url, protocol, { connections: this.options.maxInFlight ?? 100 }),
      );
      this.pools.set(key, pool);
    }
    this.byUrl[protocol].set(url, pool);
    return pool;
  }

  get pending(): number {
    return this.inFlight;
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    this.byUrl = { http1: new WeakMap(), http2: new WeakMap() };
    await Promise.all(pools.map((p) => p.destroy()));
  }
}

/**
 * A copy's dispatch handler, which drops the answer: no Readable, promise or dump per copy (a copy
 * through undici's request API cost more than the primary request it copies). Reports once, and
 * tells the shadow's breaker whether it took the connection.
 */
class DroppedAnswer {
  private done = false;
  constructor(
    private readonly finish: (result: 'sent' | 'failed') => void,
    private readonly shadow: Breaker,
  ) {}
  onConnect(): void {}
  onHeaders(): boolean {
    return true;
  }
  onData(): boolean {
    return true;
  }
  onComplete(): void {
    this.shadow.succeeded();
    this.report('sent');
  }
  onError(err: Error): void {
    // Only a refused or unreachable connection keeps copies away; a slow or resetting shadow is
    // bounded by the copies' timeout and maxInFlight.
    if (isConnectFailure(err)) this.shadow.failed();
    else this.shadow.succeeded();
    this.report('failed');
  }
  private report(result: 'sent' | 'failed'): void {
    if (this.done) return;
    this.done = true;
    this.finish(result);
  }
}
