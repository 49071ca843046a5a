/**
 * In mesh mode, the installation's one RequestAuthentication for intercept tokens
 * (core/istio/request-authentication.ts): kept as configured (`--token-jwks`) while this replica
 * leads, written again on every resync (an edit or a deletion by someone else is undone), and
 * removed when the controller runs without keys, so that a key taken away opens nothing any more.
 */

import {
  DEFAULT_ISTIO_ROOT_NAMESPACE,
  renderTokenAuthentication,
  SECURITY_V1,
  TOKEN_AUTHENTICATION_NAME,
  type TokenAuthenticationOptions,
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

export function setupTokenAuthentication(manager: Manager, setup: TokenAuthenticationSetup): void {
  const namespace = setup.tokens?.namespace ?? setup.namespace ?? DEFAULT_ISTIO_ROOT_NAMESPACE;
  const ref = {
    apiVersion: SECURITY_V1,
    kind: 'RequestAuthentication',
    namespace,
    name: TOKEN_AUTHENTICATION_NAME,
  };
  const queue = manager.queue(
    async () => {
      if (setup.tokens) {
        await manager.live.apply(
          renderTokenAuthentication({ ...setup.tokens, namespace }),
          FIELD_MANAGER,
          true,
        );
        return undefined;
      }
      const live = await manager.live.get(ref);
      if (live?.metadata?.labels?.[MANAGED_BY] === MANAGED_BY_VALUE) {
        await manager.live.delete(ref);
        manager.logger.info(ref, 'intercept tokens: no --token-jwks, RequestAuthentication removed');
      }
      return undefined;
    },
    (_key, error, attempt) =>
      manager.logger.warn(
        { ...ref, attempt, err: error instanceof Error ? error.message : String(error) },
        'intercept tokens: could not write the RequestAuthentication; retrying with backoff',
      ),
    1,
  );
  queue.add(KEY);
  manager.onResync(() => queue.add(KEY));
}
