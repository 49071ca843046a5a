/**
 * Fire-and-forget copies of requests to a shadow upstream. A copy never delays, fails or holds
 * memory for the primary: it is sent after the primary's body is read, its answer is discarded,
 * at most `maxInFlight` copies are buffered or in flight at once (more are dropped and counted),
 * bodies over the cap are not copied, and each copy has its own short timeout. A shadow that
 * refuses connections (not deployed yet, crashed) is left alone for a second after each refusal,
 * its copies dropped, and then one copy probes it: a refused connection costs undici more than a
 * whole proxied request, so copying every request into one more than doubled the gateway's CPU
 * per request (load-tests/README.md).
 */
import { PassThrough, type Readable } from 'node:stream';
import { type Dispatcher, Pool } from 'undici';
import type { UpstreamProtocol } from '../core/compiler/plan.js';
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
  onResult?(result: 'sent' | 'dropped' | 'failed'): void;
}

export interface MirrorSlot {
  send(copy: MirrorCopy): void;
  release(): void;
}

/** How long a shadow that refused a connection gets no copies before one copy probes it. */
const SHADOW_RETRY_MS = 1000;

/** One shadow origin: its connections, and whether it is taking them. */
interface Shadow {
  pool: Pool;
  breaker: Breaker;
}

export class Mirror {
  private inFlight = 0;
  private readonly shadows = new Map<string, Shadow>();
  private byUrl = { http1: new WeakMap<URL, Shadow>(), http2: new WeakMap<URL, Shadow>() };

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
    const { pool, breaker } = this.shadowFor(copy.url, copy.protocol ?? 'http1');
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

  /** The shadow of a URL object (each snapshot builds its URLs once): no `url.origin` per copy. */
  private shadowFor(url: URL, protocol: UpstreamProtocol): Shadow {
    let shadow = this.byUrl[protocol].get(url);
    if (shadow) return shadow;
    const key = `${protocol} ${url.origin}`;
    shadow = this.shadows.get(key);
    if (!shadow) {
      // As many connections as copies may be in flight, so a copy is never queued behind a hung one.
      shadow = {
        pool: new Pool(
          url.origin,
          poolOptions(url, protocol, { connections: this.options.maxInFlight ?? 100 }),
        ),
        breaker: new Breaker(SHADOW_RETRY_MS),
      };
      this.shadows.set(key, shadow);
    }
    this.byUrl[protocol].set(url, shadow);
    return shadow;
  }

  get pending(): number {
    return this.inFlight;
  }

  async close(): Promise<void> {
    const shadows = [...this.shadows.values()];
    this.shadows.clear();
    this.byUrl = { http1: new WeakMap(), http2: new WeakMap() };
    await Promise.all(shadows.map((s) => s.pool.destroy()));
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
