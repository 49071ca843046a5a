/**
 * Where Istio verifies intercept tokens (mesh mode, and Gateway API mode on Istio), the
 * installation's one RequestAuthentication for them and, in Gateway API mode, the EnvoyFilter that
 * removes forged claim headers (core/istio/request-authentication.ts): kept as configured (`--token-jwks`) while
 * this replica leads, written again on every resync (an edit or a deletion by someone else is
 * undone), and removed when the controller runs without keys, so that a key taken away opens
 * nothing any more (on a cluster without Istio there is none to remove: the read finds no such kind).
 */

import {
  DEFAULT_ISTIO_ROOT_NAMESPACE,
  renderTokenVerification,
  TOKEN_AUTHENTICATION_NAME,
  type TokenAuthenticationOptions,
  tokenVerificationKinds,
} from '../../core/istio/request-authentication.js';
import { MANAGED_BY, MANAGED_BY_VALUE } from '../../core/resources/labels.js';
import { FIELD_MANAGER } from '../../kube/apply.js';
import type { Manager } from '../../kube/manager.js';

export interface TokenAuthenticationSetup {
  /** Istio's root namespace, where the object lives (also when it is to be removed). */
  namespace?: string;
  /** The keys and gateway workloads; undefined: no tokens, no object. */
  tokens?: TokenAuthenticationOptions;
}

const KEY = 'request-authentication';

/**
 * `claimHeaders`: the mode's routes match the claim headers (Gateway API), so the verifier copies
 * claims into them and an EnvoyFilter removes what clients send there.
 */
export function setupTokenAuthentication(
  manager: Manager,
  setup: TokenAuthenticationSetup,
  claimHeaders: boolean,
  afterWrite: () => void = () => {},
): void {
  const namespace = setup.tokens?.namespace ?? setup.namespace ?? DEFAULT_ISTIO_ROOT_NAMESPACE;
  const refs = tokenVerificationKinds(claimHeaders).map((kind) => ({
    ...kind,
    namespace,
    name: TOKEN_AUTHENTICATION_NAME,
  }));
  const queue = manager.queue(
    async () => {
      if (setup.tokens) {
        for (const o of renderTokenVerification({ ...setup.tokens, namespace, claimHeaders }))
          await manager.live.apply(o, FIELD_MANAGER, true);
        afterWrite();
        return undefined;
      }
      for (const ref of refs) {
        const live = await manager.live.get(ref);
        if (live?.metadata?.labels?.[MANAGED_BY] !== MANAGED_BY_VALUE) continue;
        await manager.live.delete(ref);
        manager.logger.info(ref, `intercept tokens: no --token-jwks, ${ref.kind} removed`);
      }
      return undefined;
    },
    (_key, error, attempt) =>
      manager.logger.warn(
        {
          namespace,
          name: TOKEN_AUTHENTICATION_NAME,
          attempt,
          err: error instanceof Error ? error.message : String(error),
        },
        `intercept tokens: could not write the ${refs.map((r) => r.kind).join(' and ')}; retrying with backoff`,
      ),
    1,
  );
  queue.add(KEY);
  manager.onResync(() => queue.add(KEY));
}
