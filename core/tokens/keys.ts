/**
 * Intercept-token keys (docs/architecture.md, rule 6). Tokens are signed with an asymmetric key so
 * that whoever verifies them holds only public keys: Envoy reads them from the JWKS inlined in an
 * Istio RequestAuthentication (an object many people can read), the Node gateway from the same JWKS
 * file. ES256 (P-256) is the default, as every Envoy and JWT library reads it; EdDSA (Ed25519) is
 * accepted too. A rotation publishes the new public key beside the old one until the old key's
 * tokens have expired; the `kid` (the key's RFC 7638 thumbprint) tells a verifier which to use.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { type Problem, problem } from '../common/errors.js';

export type TokenAlgorithm = 'ES256' | 'EdDSA';
export const TOKEN_ALGORITHMS: readonly TokenAlgorithm[] = ['ES256', 'EdDSA'];

/** A public key as published in the JWKS. */
export interface TokenJwk extends JWK {
  kty: 'EC' | 'OKP';
  crv: 'P-256' | 'Ed25519';
  x: string;
  kid: string;
  alg: TokenAlgorithm;
  use: 'sig';
}

export interface TokenJwks {
  keys: TokenJwk[];
}

export interface SigningKey {
  key: KeyObject;
  alg: TokenAlgorithm;
  kid: string;
}

function algorithmOf(key: KeyObject): TokenAlgorithm | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  return undefined;
}

const WRONG_KIND =
  'expected an EC P-256 (ES256) or Ed25519 (EdDSA) key in PEM; make one with `switchyard token-key`';

async function publicJwkOf(key: KeyObject, alg: TokenAlgorithm): Promise<TokenJwk> {
  const jwk = createPublicKey(key).export({ format: 'jwk' }) as JWK;
  const members: JWK =
    jwk.kty === 'EC'
      ? { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y }
      : { kty: 'OKP', crv: jwk.crv, x: jwk.x };
  return { ...members, kid: await calculateJwkThumbprint(members), alg, use: 'sig' } as TokenJwk;
}

/** The private key `switchyard token` signs with, or what is wrong with it. */
export async function signingKey(pem: string, name: string): Promise<SigningKey | Problem> {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    return problem('SY_INVALID_VALUE', `${name} is not a private key: ${WRONG_KIND}`);
  }
  const alg = algorithmOf(key);
  if (!alg) return problem('SY_INVALID_VALUE', `${name} is a ${key.asymmetricKeyType} key: ${WRONG_KIND}`);
  return { key, alg, kid: (await publicJwkOf(key, alg)).kid };
}

/** A new private key in PKCS#8 PEM. */
export function generateTokenKey(alg: TokenAlgorithm): string {
  const { privateKey } =
    alg === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
}

/** The JWKS of the public halves of these keys (each PEM may be the private or the public key). */
export async function publicJwks(pems: { name: string; pem: string }[]): Promise<TokenJwks | Problem> {
  const keys: TokenJwk[] = [];
  for (const { name, pem } of pems) {
    let key: KeyObject;
    try {
      key = pem.includes('PRIVATE KEY') ? createPrivateKey(pem) : createPublicKey(pem);
    } catch {
      return problem('SY_INVALID_VALUE', `${name} is not a key: ${WRONG_KIND}`);
    }
    const alg = algorithmOf(key);
    if (!alg) return problem('SY_INVALID_VALUE', `${name} is a ${key.asymmetricKeyType} key: ${WRONG_KIND}`);
    const jwk = await publicJwkOf(key, alg);
    if (!keys.some((k) => k.kid === jwk.kid)) keys.push(jwk);
  }
  return { keys };
}

/**
 * The JWKS a gateway or the controller verifies with, read from `text` (named `name` in problems).
 * Only public ES256 / EdDSA keys: a private member or a shared secret would be published in the
 * RequestAuthentication for anyone who may read it.
 */
export function parseJwks(text: string, name: string): TokenJwks | Problem {
  const bad = (path: string, what: string) => problem('SY_INVALID_VALUE', `${name}: ${path}: ${what}`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return bad(
      '(document)',
      'expected a JWKS in JSON ({"keys": [...]}); make one with `switchyard token-jwks`',
    );
  }
  const keys = (doc as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0)
    return bad('keys', 'expected a non-empty list of public keys; make one with `switchyard token-jwks`');
  const out: TokenJwk[] = [];
  for (const [i, k] of keys.entries()) {
    const at = `keys[${i}]`;
    const jwk = k as Partial<TokenJwk> & { d?: unknown };
    if (typeof jwk !== 'object' || jwk === null) return bad(at, 'expected an object');
    if (jwk.d !== undefined)
      return bad(`${at}.d`, 'this is a private key: publish only public keys (switchyard token-jwks)');
    const es = jwk.kty === 'EC' && jwk.crv === 'P-256' && typeof jwk.y === 'string';
    const ed = jwk.kty === 'OKP' && jwk.crv === 'Ed25519';
    if (!(es || ed) || typeof jwk.x !== 'string')
      return bad(at, 'expected an EC P-256 (ES256) or OKP Ed25519 (EdDSA) public key');
    const alg: TokenAlgorithm = es ? 'ES256' : 'EdDSA';
    if (jwk.alg !== undefined && jwk.alg !== alg) return bad(`${at}.alg`, `expected ${alg} for this key`);
    if (typeof jwk.kid !== 'string' || jwk.kid === '')
      return bad(`${at}.kid`, 'expected a key id (switchyard token-jwks sets the key thumbprint)');
    out.push({ ...(jwk as TokenJwk), alg, use: 'sig' });
  }
  return { keys: out };
}
