/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection: a candidate
 * takes the Lease when it is free or its holder has not renewed it for `leaseDurationMs`, then
 * renews it every `retryPeriodMs`. Every write carries the resourceVersion it read, so of two
 * candidates only one wins (the other gets 409). A leader that cannot renew within
 * `renewDeadlineMs` stops leading before another candidate may take over (renewDeadline <
 * leaseDuration), so two replicas never write at once.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../core/common/logger.js';
import { apiErrorMessage, type Kube } from './client.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  now?: () => Date;
  /** Each failed attempt to take or renew the Lease, with the API server's status code if any. */
  onError?: (code: number | undefined) => void;
}

type Lease = KubernetesObject & {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string | Date;
    renewTime?: string | Date;
    leaseTransitions?: number;
  };
};

export interface LeaderElector {
  /** Resolves once this candidate leads. */
  acquired: Promise<void>;
  isLeader(): boolean;
  /** Stops campaigning; a leader releases the Lease so a standby takes over at once. */
  stop(): Promise<void>;
}

const micro = (d: Date) => d.toISOString().replace('Z', '000Z'); // MicroTime: six fraction digits

export function electLeader(
  kube: Kube,
  options: LeaderElectionOptions,
  logger: Logger,
  onLost: () => void,
): LeaderElector {
  const candidate = new LeaseCandidate(kube, options, logger, onLost);
  void candidate.campaign();
  return { acquired: candidate.acquired, isLeader: () => candidate.leader, stop: () => candidate.stop() };
}

/** One candidate's campaign: take or renew the Lease every period; stop leading at the deadline. */
class LeaseCandidate {
  leader = false;
  readonly acquired: Promise<void>;
  private resolveAcquired: () => void = () => undefined;
  private stopped = false;
  private lastRenew = 0;
  /** When the Lease another candidate holds lapses, by its renewTime (0: not known). */
  private lapsesAt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The acquire or renew under way, which a release must wait for (else it writes the Lease back). */
  private attempt: Promise<boolean> | undefined;
  private lastReason = '';
  private lastWarned = 0;
  private readonly leaseMs: number;
  private readonly deadlineMs: number;
  private readonly retryMs: number;
  private readonly now: () => Date;
  private readonly ref: { apiVersion: string; kind: string; namespace: string; name: string };

  constructor(
    private readonly kube: Kube,
    private readonly options: LeaderElectionOptions,
    private readonly logger: Logger,
    private readonly onLost: () => void,
  ) {
    this.leaseMs = options.leaseDurationMs ?? 15_000;
    this.deadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryMs = options.retryPeriodMs ?? 2_000;
    this.now = options.now ?? (() => new Date());
    this.ref = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      namespace: options.namespace,
      name: options.name,
    };
    this.acquired = new Promise<void>((r) => {
      this.resolveAcquired = r;
    });
  }

  private get lease() {
    return `${this.ref.namespace}/${this.ref.name}`;
  }

  /** One period: an attempt, then leadership gained or lost, then the next look. */
  async campaign(): Promise<void> {
    if (this.stopped) return;
    try {
      this.attempt = this.tryAcquireOrRenew();
      if (await this.attempt) this.renewed();
    } catch (e) {
      this.reportFailure(e);
    }
    if (this.leader && Date.now() - this.lastRenew > this.deadlineMs) {
      this.leader = false;
      this.logger.error({ lease: this.lease }, 'lost the lease: stopping');
      this.stopped = true;
      this.onLost();
      return;
    }
    // A standby looks again when the holder's Lease lapses if that comes before the next period,
    // so a leader that died is replaced as soon as its Lease allows, not up to a period later.
    const untilLapse = this.lapsesAt ? this.lapsesAt - this.now().getTime() + 5 : this.retryMs;
    if (!this.stopped)
      this.timer = setTimeout(() => void this.campaign(), Math.max(5, Math.min(this.retryMs, untilLapse)));
  }

  private renewed(): void {
    this.lastRenew = Date.now();
    if (this.leader) return;
    this.leader = true;
    this.logger.info({ lease: this.lease, identity: this.options.identity }, 'became leader');
    this.resolveAcquired();
  }

  /** One attempt to take or renew the Lease; true when this candidate holds it afterwards. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const t = this.now();
    const live = await this.kube.get<Lease>(this.ref);
    const spec = {
      holderIdentity: this.options.identity,
      leaseDurationSeconds: Math.ceil(this.leaseMs / 1000),
      renewTime: micro(t),
    };
    if (!live) {
      await this.kube.create({
        apiVersion: this.ref.apiVersion,
        kind: this.ref.kind,
        metadata: { name: this.ref.name, namespace: this.ref.namespace },
        spec: { ...spec, acquireTime: micro(t), leaseTransitions: 0 },
      } as KubernetesObject);
      return true;
    }
    const holder = live.spec?.holderIdentity;
    const renewed = live.spec?.renewTime ? new Date(live.spec.renewTime).getTime() : 0;
    const duration = (live.spec?.leaseDurationSeconds ?? 0) * 1000;
    const held = holder && holder !== this.options.identity && renewed + duration > t.getTime();
    this.lapsesAt = held ? renewed + duration : 0;
    if (held) return false;
    const takeover = holder !== this.options.identity;
    const acquireTime =
      live.spec?.acquireTime instanceof Date ? micro(live.spec.acquireTime) : live.spec?.acquireTime;
    await this.kube.replace({
      ...live,
      spec: {
        ...live.spec,
        ...spec,
        ...(takeover
          ? { acquireTime: micro(t), leaseTransitions: (live.spec?.leaseTransitions ?? 0) + 1 }
          : { acquireTime }),
      },
    } as KubernetesObject);
    return true;
  }

  /**
   * A lost race for the Lease (409) is how election works and stays at debug. Anything else (the
   * namespace missing, Forbidden, the API server away) would leave this replica a silent standby
   * for good: it is logged at warn with the reason, once per new reason and then every minute.
   */
  private reportFailure(e: unknown): void {
    const err = e as { code?: number };
    const reason = `${err.code ? `${err.code} ` : ''}${apiErrorMessage(e)}`;
    this.options.onError?.(err.code);
    if (err.code === 409) {
      this.logger.debug({ reason }, 'lost a race for the lease');
      return;
    }
    if (reason === this.lastReason && Date.now() - this.lastWarned < 60_000) return;
    this.lastReason = reason;
    this.lastWarned = Date.now();
    this.logger.warn(
      { lease: this.lease, identity: this.options.identity, leader: this.leader, reason },
      this.leader
        ? 'cannot renew the leader lease; leadership ends at the renew deadline'
        : 'cannot take the leader lease: this replica stays a standby and writes nothing until it can',
    );
  }

  /** Stops campaigning; a leader releases the Lease so a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    // A renew in flight would land after the release and hold the Lease for its whole duration.
    await this.attempt?.catch(() => undefined);
    if (!this.leader) return;
    this.leader = false;
    // Release: an expired renewTime lets a standby take over without waiting out the lease.
    try {
      const live = await this.kube.get<Lease>(this.ref);
      if (live?.spec?.holderIdentity === this.options.identity)
        await this.kube.replace({
          ...live,
          spec: { ...live.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: micro(new Date(0)) },
        } as KubernetesObject);
    } catch {
      // the lease lapses on its own
    }
  }
}
