/**
 * Every problem Switchyard reports to a person has a stable code from this table (as fastify's
 * FST_ERR_* and undici's UND_ERR_*). A retired code is never reused. `docs/errors.md` documents
 * each code, and a test checks that the table and the docs agree.
 */
export const ERROR_CODES = {
  SY_FILE_READ: 'a file or folder given with -f cannot be read',
  SY_NO_INPUT: 'no YAML or JSON file was found in the paths given',
  SY_YAML_PARSE: 'a document is not valid YAML',
  SY_UNKNOWN_KIND: 'a document is not a Switchyard resource',
  SY_SCHEMA: 'a field does not have the type, format or range its schema expects',
  SY_ONE_OF: 'an object needs exactly one of several fields',
  SY_INVALID_REGEX: 'a regex is not valid RE2 syntax',
  SY_INVALID_VALUE:
    'a value is well-formed but not usable (for example a canary version equal to the stable one)',
  SY_DUPLICATE: 'two resources or list entries have the same identity',
  SY_MISSING_POLICY: 'a Preview names a TrafficPolicy that does not exist',
  SY_MISSING_PREVIEW: 'a policy routes to a preview that is not Ready or does not exist',
  SY_HOST_CONFLICT: 'two TrafficPolicies claim the same host',
  SY_NAME_TOO_LONG: 'a generated DNS name would be longer than 63 characters',
  SY_AMBIENT_UNSUPPORTED: 'an EnvoyFilter feature was asked for in an ambient-mode namespace',
  SY_GATEWAY_API_UNSUPPORTED:
    'a policy asks for what the Gateway API, or the channel of its CRDs on the cluster, cannot express; that part was left out',
  SY_ROUTE_ORDER:
    "two routes of a policy cannot be kept in their written order under the Gateway API's precedence rules; the later one was left out",
  SY_ROUTE_NOT_ACCEPTED:
    'the Gateway API implementation did not accept a route Switchyard wrote, or could not resolve its backends',
  SY_BAD_REQUEST: 'a command-line argument is malformed',
  SY_REPOSITORY_MISMATCH:
    "a Preview's spec.repository is not its policy's spec.previews.repository; it gets no route",
  SY_GW_NO_UPSTREAM: 'a route of the gateway leads to an upstream key with no URL in GatewayConfig',
  SY_GW_NO_POLICY: 'the gateway got a request for a host no TrafficPolicy serves (404)',
  SY_GW_NOT_READY: 'the gateway has no configuration loaded yet, or is shutting down (503)',
  SY_GW_NO_ROUTE: 'no route of the policy matched the request (404)',
  SY_GW_RATE_LIMITED: 'a rate limit refused the request (429)',
  SY_GW_UPSTREAM_UNAVAILABLE: 'the upstream refused the connection or could not be reached (503)',
  SY_GW_UPSTREAM_FAILED: 'the upstream reset the connection or sent an invalid response (502)',
  SY_GW_UPSTREAM_TIMEOUT: 'the upstream did not answer within the timeout (504)',
  SY_GW_BAD_REQUEST: 'the request is malformed (400)',
  SY_GW_UPGRADE_REFUSED: 'an Upgrade to a protocol the policy does not allow (403)',
  SY_GW_TOKEN_INVALID:
    'a request carried an intercept token that is forged or expired, or a preview URL was opened with one minted for another policy (401)',
  SY_INTERNAL: 'an unexpected failure inside Switchyard (a bug: please report it)',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Where a problem is: the file, the 1-based document in it, and the field path inside that document. */
export interface Source {
  file: string;
  document: number;
}

export interface Problem {
  code: ErrorCode;
  message: string;
  source?: Source;
  path?: string;
}

export function problem(code: ErrorCode, message: string, source?: Source, path?: string): Problem {
  const p: Problem = { code, message };
  if (source) p.source = source;
  if (path) p.path = path;
  return p;
}

/** Whether a value returned as "result or problem" is the problem. */
export function isProblem(v: unknown): v is Problem {
  const code = (v as Partial<Problem> | undefined)?.code;
  return typeof code === 'string' && code in ERROR_CODES && typeof (v as Problem).message === 'string';
}

/** `file:document N: spec.path: what was expected` — the format of the CLI contract (docs/cli.md). */
export function formatProblem(p: Problem): string {
  const where = p.source ? `${p.source.file}:document ${p.source.document}: ` : '';
  const path = p.path ? `${p.path}: ` : '';
  return `${where}${path}${p.message} [${p.code}]`;
}
