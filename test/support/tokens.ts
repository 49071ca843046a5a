/**
 * Intercept-token keys for tests, made with the product's own key code: an ES256 key (current), an
 * EdDSA key (still accepted, as during a rotation), their JWKS, and a key nobody trusts.
 */
import { SignJWT } from 'jose';
import { isProblem } from '../../core/common/errors.js';
import { signInterceptToken, TOKEN_ISSUER } from '../../core/tokens/intercept-token.js';
import {
  generateTokenKey,
  publicJwks,
  type SigningKey,
  signingKey,
  type TokenJwks,
} from '../../core/tokens/keys.js';

export interface TestTokenKeys {
  current: SigningKey;
  currentPem: string;
  previous: SigningKey;
  previousPem: string;
  /** Not in the JWKS. */
  stranger: SigningKey;
  jwks: TokenJwks;
}

async function key(pem: string): Promise<SigningKey> {
  const k = await signingKey(pem, 'test key');
  if (isProblem(k)) throw new Error(k.message);
  return k;
}

export async function testTokenKeys(): Promise<TestTokenKeys> {
  const currentPem = generateTokenKey('ES256');
  const previousPem = generateTokenKey('EdDSA');
  const jwks = await publicJwks([
    { name: 'current', pem: currentPem },
    { name: 'previous', pem: previousPem },
  ]);
  if (isProblem(jwks)) throw new Error(jwks.message);
  return {
    current: await key(currentPem),
    currentPem,
    previous: await key(previousPem),
    previousPem,
    stranger: await key(generateTokenKey('ES256')),
    jwks,
  };
}

export interface MintOptions {
  header?: string;
  value: string;
  /** `namespace/policy`. */
  audience: string;
  ttlSeconds?: number;
  key: SigningKey;
  /** Pretend to be signed by this key id (a forgery that names a trusted key). */
  kid?: string;
}

export function mint(o: MintOptions): Promise<string> {
  const key = o.kid ? { ...o.key, kid: o.kid } : o.key;
  return signInterceptToken(
    key,
    { header: o.header ?? 'x-switchyard-preview', value: o.value, audience: o.audience },
    o.ttlSeconds ?? 600,
  );
}

/** A token of another issuer, signed with a trusted key (Envoy refuses it; so must the gateway). */
export function mintForeignIssuer(o: MintOptions): Promise<string> {
  return new SignJWT({ [o.header ?? 'x-switchyard-preview']: o.value })
    .setProtectedHeader({ alg: o.key.alg, kid: o.key.kid })
    .setIssuer(`not-${TOKEN_ISSUER}`)
    .setAudience(o.audience)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(o.key.key);
}
