/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection: a candidate
 * takes the Lease when it is free or its holder has not renewed it for `leaseDurationMs`, then
 * renews it every `retryPeriodMs`. Every write carries the resourceVersion it read, so of two
 * candidates only one wins (the other gets 409). A leader that cannot renew within
 * `renewDeadlineMs` stops leading before another candidate may take over (renewDeadline <
 * leaseDuration), so two replicas never write at once.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../src/core/logger.js';
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
  const leaseMs = options.leaseDurationMs ?? 15_000;
  const deadlineMs = options.renewDeadlineMs ?? 10_000;
  const retryMs = options.retryPeriodMs ?? 2_000;
  const now = options.now ?? (() => new Date());
  const ref = {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    namespace: options.namespace,
    name: options.name,
  };
  let leader = false;
  let stopped = false;
  let lastRenew = 0;
  /** When the Lease another candidate holds lapses, by its renewTime (0: not known). */
  let lapsesAt = 0;
  let timer: NodeJS.Timeout | undefined;
  let resolveAcquired: () => void = () => undefined;
  const acquired = new Promise<void>((r) => {
    resolveAcquired = r;
  });

  /** One attempt to take or renew the Lease; true when this candidate holds it afterwards. */
  const tryAcquireOrRenew = async (): Promise<boolean> => {
    const t = now();
    const live = await kube.get<Lease>(ref);
    const spec = {
      holderIdentity: options.identity,
      leaseDurationSeconds: Math.ceil(leaseMs / 1000),
      renewTime: micro(t),
    };
    if (!live) {
      await kube.create({
        apiVersion: ref.apiVersion,
        kind: ref.kind,
        metadata: { name: ref.name, namespace: ref.namespace },
        spec: { ...spec, acquireTime: micro(t), leaseTransitions: 0 },
      } as KubernetesObject);
      return true;
    }
    const holder = live.spec?.holderIdentity;
    const renewed = live.spec?.renewTime ? new Date(live.spec.renewTime).getTime() : 0;
    const duration = (live.spec?.leaseDurationSeconds ?? 0) * 1000;
    const held = holder && holder !== options.identity && renewed + duration > t.getTime();
    lapsesAt = held ? renewed + duration : 0;
    if (held) return false;
    const takeover = holder !== options.identity;
    await kube.replace({
      ...live,
      spec: {
        ...live.spec,
        ...spec,
        ...(takeover
          ? { acquireTime: micro(t), leaseTransitions: (live.spec?.leaseTransitions ?? 0) + 1 }
          : {
              acquireTime:
                live.spec?.acquireTime instanceof Date
                  ? micro(live.spec.acquireTime)
                  : live.spec?.acquireTime,
            }),
      },
    } as KubernetesObject);
    return true;
  };

  /**
   * A lost race for the Lease (409) is how election works and stays at debug. Anything else (the
   * namespace missing, Forbidden, the API server away) would leave this replica a silent standby
   * for good: it is logged at warn with the reason, once per new reason and then every minute.
   */
  let lastReason = '';
  let lastWarned = 0;
  const reportFailure = (e: unknown) => {
    const err = e as { code?: number };
    const reason = `${err.code ? `${err.code} ` : ''}${apiErrorMessage(e)}`;
    options.onError?.(err.code);
    if (err.code === 409) {
      logger.debug({ reason }, 'lost a race for the lease');
      return;
    }
    if (reason === lastReason && Date.now() - lastWarned < 60_000) return;
    lastReason = reason;
    lastWarned = Date.now();
    logger.warn(
      { lease: `${ref.namespace}/${ref.name}`, identity: options.identity, leader, reason },
      leader
        ? 'cannot renew the leader lease; leadership ends at the renew deadline'
        : 'cannot take the leader lease: this replica stays a standby and writes nothing until it can',
    );
  };

  /** The acquire or renew under way, which a release must wait for (else it writes the Lease back). */
  let attempt: Promise<boolean> | undefined;
  const loop = async () => {
    if (stopped) return;
    try {
      attempt = tryAcquireOrRenew();
      const ok = await attempt;
      if (ok) {
        lastRenew = Date.now();
        if (!leader) {
          leader = true;
          logger.info({ lease: `${ref.namespace}/${ref.name}`, identity: options.identity }, 'became leader');
          resolveAcquired();
        }
      }
    } catch (e) {
      reportFailure(e);
    }
    if (leader && Date.now() - lastRenew > deadlineMs) {
      leader = false;
      logger.error({ lease: `${ref.namespace}/${ref.name}` }, 'lost the lease: stopping');
      stopped = true;
      onLost();
      return;
    }
    // A standby looks again when the holder's Lease lapses if that comes before the next period,
    // so a leader that died is replaced as soon as its Lease allows, not up to a period later.
    const untilLapse = lapsesAt ? lapsesAt - now().getTime() + 5 : retryMs;
    if (!stopped) timer = setTimeout(loop, Math.max(5, Math.min(retryMs, untilLapse)));
  };
  void loop();

  return {
    acquired,
    isLeader: () => leader,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      // A renew in flight would land after the release and hold the Lease for its whole duration.
      await attempt?.catch(() => undefined);
      if (!leader) return;
      leader = false;
      // Release: an expired renewTime lets a standby take over without waiting out the lease.
      try {
        const live = await kube.get<Lease>(ref);
        if (live?.spec?.holderIdentity === options.identity)
          await kube.replace({
            ...live,
            spec: {
              ...live.spec,
              holderIdentity: '',
              leaseDurationSeconds: 1,
              renewTime: micro(new Date(0)),
            },
          } as KubernetesObject);
      } catch {
        // the lease lapses on its own
      }
    },
  };
}
