/**
 * Data-plane errors, each with a stable code (core/common/errors.ts) and the HTTP status it maps to,
 * in one place (as undici's UND_ERR_* classes). The response body says what happened and to whom.
 */

import { ERROR_CODES, type ErrorCode } from '../core/common/errors.js';
import { UPSTREAM_HEADER } from '../core/compiler/plan.js';

/** The HTTP status of each error the data plane answers with: one code, one status. */
export const GATEWAY_STATUS = {
  SY_GW_NO_POLICY: 404,
  SY_GW_NO_ROUTE: 404,
  SY_GW_TOKEN_INVALID: 401,
  SY_GW_RATE_LIMITED: 429,
  SY_GW_BAD_REQUEST: 400,
  SY_GW_UPGRADE_REFUSED: 403,
  SY_GW_NOT_READY: 503,
  SY_GW_NO_UPSTREAM: 503,
  SY_GW_UPSTREAM_UNAVAILABLE: 503,
  SY_GW_UPSTREAM_FAILED: 502,
  SY_GW_UPSTREAM_TIMEOUT: 504,
  SY_INTERNAL: 500,
} as const satisfies Partial<Record<ErrorCode, number>>;

export type GatewayErrorCode = keyof typeof GATEWAY_STATUS;

export class GatewayError extends Error {
  readonly status: number;
  constructor(
    readonly code: GatewayErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.status = GATEWAY_STATUS[code];
  }

  body(): string {
    return `${JSON.stringify({ error: { code: this.code, status: this.status, message: this.message, about: ERROR_CODES[this.code] } })}\n`;
  }
}

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const TIMEOUT_CODES = new Set([
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
  'TimeoutError',
  'ABORT_ERR',
]);

function errorCode(e: unknown): string {
  const err = e as { code?: unknown; name?: string; cause?: { code?: string } };
  // DOMExceptions carry a numeric legacy code; their name says more.
  return (typeof err?.code === 'string' ? err.code : undefined) ?? err?.cause?.code ?? err?.name ?? 'unknown';
}

/** Maps a failure to reach an upstream onto 503 (unreachable), 504 (slow) or 502 (broke). */
export function upstreamError(e: unknown, upstream: string, url: URL, timedOut: boolean): GatewayError {
  const code = errorCode(e);
  const headers = { [UPSTREAM_HEADER]: upstream };
  if (timedOut || TIMEOUT_CODES.has(code)) {
    return new GatewayError(
      'SY_GW_UPSTREAM_TIMEOUT',
      `upstream ${upstream} (${url.origin}) did not answer in time (${code})`,
      headers,
    );
  }
  if (CONNECT_CODES.has(code)) {
    return new GatewayError(
      'SY_GW_UPSTREAM_UNAVAILABLE',
      `upstream ${upstream} (${url.origin}) is unavailable: ${code}`,
      headers,
    );
  }
  return new GatewayError(
    'SY_GW_UPSTREAM_FAILED',
    `upstream ${upstream} (${url.origin}) failed: ${code}`,
    headers,
  );
}

export function isConnectFailure(e: unknown): boolean {
  return CONNECT_CODES.has(errorCode(e));
}

export function isReset(e: unknown): boolean {
  const code = errorCode(e);
  return code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE';
}
