import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Backend, backendFor, type ControllerMode } from '../controllers/backends/index.js';
import { formatProblem, problem } from '../core/common/errors.js';
import { renderEnvoyGatewayTokenVerification } from '../core/gateway-api/envoy-gateway-tokens.js';
import type { GatewayApiChannel } from '../core/gateway-api/http-route.js';
import { renderTokenVerification } from '../core/istio/request-authentication.js';
import { DEFAULTS } from '../core/resources/schema.js';
import { loadAndCompile, reportProblems } from './input.js';
import { type CliIO, EXIT_INVALID, EXIT_OK } from './io.js';
import { formatObjects } from './output.js';
import type { Settings } from './settings.js';
import { type TokenAuthenticationFlags, tokenAuthenticationOf } from './token.js';

export interface RenderOptions {
  file: string[];
  mode: ControllerMode;
  gatewayApiChannel: GatewayApiChannel;
  envoyGateway?: boolean;
  tokenGateway?: string[];
  output: string;
  outDir?: string;
  ambientNamespace: string[];
  clusterDomain?: string;
}

export interface RenderCliOptions extends RenderOptions, TokenAuthenticationFlags {}

export async function renderCommand(opts: RenderCliOptions, io: CliIO, settings: Settings): Promise<number> {
  const backend = backendFor(opts.mode);
  const tokens = renderTokens(opts, backend.tokensCheckedBy, io, settings);
  if (typeof tokens === 'number') return tokens;
  const tokenGateways = envoyGatewayTokenGateways(opts, tokens !== undefined, io);
  if (typeof tokenGateways === 'number') return tokenGateways;
  const { plan, problems, resources } = await loadAndCompile(opts.file, opts.clusterDomain);
  const failed = reportProblems(problems, io);
  if (failed !== undefined) return failed;
  const rendered = backend.renderOffline(plan, {
    ambientNamespaces: new Set(opts.ambientNamespace),
    gatewayApiChannel: opts.gatewayApiChannel,
    tokensVerified: tokens !== undefined,
    ...(tokenGateways ? { tokenGateways } : {}),
    envoyGatewayPolicies: opts.envoyGateway === true,
    sourceOf: (p) => {
      const found = resources.policies.find(
        (r) => r.metadata.name === p.name && (r.metadata.namespace ?? DEFAULTS.namespace) === p.namespace,
      );
      return found && resources.sources.get(found);
    },
  });
  const renderFailed = reportProblems(rendered.problems, io);
  if (renderFailed !== undefined) return renderFailed;
  // What verifies tokens, for requireToken routes (the controller keeps Istio's in a cluster;
  // GitOps applies them from here): Istio's RequestAuthentication (and, for Gateway API routes, its
  // EnvoyFilter), or on Envoy Gateway a SecurityPolicy and ClientTrafficPolicy per Gateway.
  if (tokens && tokenGateways)
    rendered.objects.unshift(
      ...[...tokenGateways].sort().flatMap((g) => renderEnvoyGatewayTokenVerification(tokens.jwks, g)),
    );
  else if (tokens)
    rendered.objects.unshift(
      ...renderTokenVerification({ ...tokens, claimHeaders: backend.tokenClaimHeaders }),
    );
  if (!opts.outDir) {
    io.stdout(formatObjects(rendered.objects, opts.output));
    return EXIT_OK;
  }
  // GitOps layout: one file per object, <dir>/<namespace>/<kind>-<name>.<ext>.
  const ext = opts.output === 'json' ? 'json' : 'yaml';
  for (const obj of rendered.objects) {
    const dir = join(opts.outDir, obj.metadata.namespace);
    await mkdir(dir, { recursive: true });
    const file = join(dir, `${obj.kind.toLowerCase()}-${obj.metadata.name}.${ext}`);
    await writeFile(
      file,
      ext === 'json' ? `${JSON.stringify(obj, null, 2)}\n` : formatObjects([obj], 'yaml'),
    );
    io.stdout(`${file}\n`);
  }
  return EXIT_OK;
}

const GATEWAY_REF = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/;

/**
 * With --envoy-gateway and keys, the Gateways that verify tokens (`--token-gateway`, at least one);
 * undefined otherwise; an exit code when they are missing or malformed.
 */
function envoyGatewayTokenGateways(
  opts: RenderCliOptions,
  keys: boolean,
  io: CliIO,
): ReadonlySet<string> | undefined | number {
  const given = opts.tokenGateway ?? [];
  const refuse = (message: string) => {
    io.stderr(`${formatProblem(problem('SY_BAD_REQUEST', message))}\n`);
    return EXIT_INVALID;
  };
  if (!opts.envoyGateway || !keys)
    return given.length > 0 ? refuse('--token-gateway: needs --envoy-gateway and --token-jwks') : undefined;
  if (given.length === 0)
    return refuse(
      '--envoy-gateway with --token-jwks: name the Gateways that verify intercept tokens (--token-gateway namespace/name)',
    );
  const bad = given.find((g) => !GATEWAY_REF.test(g));
  if (bad) return refuse(`--token-gateway ${bad}: expected namespace/name of a Gateway`);
  return new Set(given);
}

/**
 * The token keys to write the mesh's RequestAuthentication with, where the mode's token rules live
 * in the cluster's objects; an exit code when keys are given to a mode that cannot use them here.
 */
function renderTokens(
  opts: RenderCliOptions,
  checkedBy: Backend['tokensCheckedBy'],
  io: CliIO,
  settings: Settings,
): ReturnType<typeof tokenAuthenticationOf> {
  if (!opts.tokenJwks || checkedBy === 'controller') return tokenAuthenticationOf(opts, io, settings);
  const why =
    checkedBy === 'gateway'
      ? 'the gateway verifies tokens itself: give it the keys (gateway --token-jwks)'
      : 'it does not carry intercept tokens yet (docs/gateway-api.md)';
  io.stderr(`${formatProblem(problem('SY_BAD_REQUEST', `--token-jwks: --mode ${opts.mode}: ${why}`))}\n`);
  return EXIT_INVALID;
}
