import { createHash, createHmac } from 'node:crypto';

/**
 * ES256 with deterministic nonces (RFC 6979, HMAC-SHA256), for test fixtures that must come out
 * byte for byte the same every time they are generated (Node's ECDSA picks a random nonce).
 * Test-only code: not constant-time. Every signature it makes is a plain ES256 signature that
 * any verifier (node:crypto included) accepts.
 */

const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const GX = 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n;
const GY = 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n;

/** A point in Jacobian coordinates (X/Z², Y/Z³); Z = 0 is the point at infinity. */
interface Jacobian {
  readonly x: bigint;
  readonly y: bigint;
  readonly z: bigint;
}

const INFINITY: Jacobian = { x: 0n, y: 1n, z: 0n };

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

function modPow(base: bigint, exponent: bigint, m: bigint): bigint {
  let result = 1n;
  let b = mod(base, m);
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
  }
  return result;
}

/** m is prime here (p and n), so a^(m-2) is the inverse. */
function modInverse(a: bigint, m: bigint): bigint {
  return modPow(a, m - 2n, m);
}

/** Doubling for a = -3 (dbl-2001-b). */
function double(point: Jacobian): Jacobian {
  if (point.z === 0n || point.y === 0n) return INFINITY;
  const { x, y, z } = point;
  const delta = mod(z * z, P);
  const gamma = mod(y * y, P);
  const beta = mod(x * gamma, P);
  const alpha = mod(3n * (x - delta) * (x + delta), P);
  const x3 = mod(alpha * alpha - 8n * beta, P);
  const z3 = mod((y + z) ** 2n - gamma - delta, P);
  const y3 = mod(alpha * (4n * beta - x3) - 8n * gamma * gamma, P);
  return { x: x3, y: y3, z: z3 };
}

/** General addition (add-2007-bl). */
function add(a: Jacobian, b: Jacobian): Jacobian {
  if (a.z === 0n) return b;
  if (b.z === 0n) return a;
  const z1z1 = mod(a.z * a.z, P);
  const z2z2 = mod(b.z * b.z, P);
  const u1 = mod(a.x * z2z2, P);
  const u2 = mod(b.x * z1z1, P);
  const s1 = mod(a.y * b.z * z2z2, P);
  const s2 = mod(b.y * a.z * z1z1, P);
  if (u1 === u2) return s1 === s2 ? double(a) : INFINITY;
  const h = mod(u2 - u1, P);
  const i = mod(4n * h * h, P);
  const j = mod(h * i, P);
  const r = mod(2n * (s2 - s1), P);
  const v = mod(u1 * i, P);
  const x3 = mod(r * r - j - 2n * v, P);
  const y3 = mod(r * (v - x3) - 2n * s1 * j, P);
  const z3 = mod(((a.z + b.z) ** 2n - z1z1 - z2z2) * h, P);
  return { x: x3, y: y3, z: z3 };
}

function multiplyG(k: bigint): bigint {
  let result = INFINITY;
  let addend: Jacobian = { x: GX, y: GY, z: 1n };
  for (let e = k; e > 0n; e >>= 1n) {
    if (e & 1n) result = add(result, addend);
    addend = double(addend);
  }
  const zInverse = modInverse(result.z, P);
  return mod(result.x * zInverse * zInverse, P);
}

function toBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
}

function to32Bytes(value: bigint): Buffer {
  return Buffer.from(value.toString(16).padStart(64, '0'), 'hex');
}

function hmac(key: Buffer, ...parts: Uint8Array[]): Buffer {
  const mac = createHmac('sha256', key);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

/** The RFC 6979 nonce for private key `d` and message hash `hash` (qlen = hlen = 256). */
export function rfc6979Nonce(d: bigint, hash: Buffer): bigint {
  const x = to32Bytes(d);
  const h1 = to32Bytes(mod(toBigInt(hash), N));
  let v: Buffer = Buffer.alloc(32, 0x01);
  let k: Buffer = Buffer.alloc(32, 0x00);
  k = hmac(k, v, Buffer.from([0x00]), x, h1);
  v = hmac(k, v);
  k = hmac(k, v, Buffer.from([0x01]), x, h1);
  v = hmac(k, v);
  for (;;) {
    v = hmac(k, v);
    const candidate = toBigInt(v);
    if (candidate >= 1n && candidate < N) return candidate;
    k = hmac(k, v, Buffer.from([0x00]));
    v = hmac(k, v);
  }
}

/** ES256 signature (r‖s, 64 bytes) of `message` with the private scalar `d`, deterministic. */
export function signEs256Deterministic(message: Uint8Array, d: bigint): Buffer {
  const hash = createHash('sha256').update(message).digest();
  const e = toBigInt(hash);
  const k = rfc6979Nonce(d, hash);
  const r = mod(multiplyG(k), N);
  const s = mod(modInverse(k, N) * (e + r * d), N);
  if (r === 0n || s === 0n) throw new Error('degenerate ECDSA signature (probability ~2^-256)');
  return Buffer.concat([to32Bytes(r), to32Bytes(s)]);
}

/** The private scalar of a P-256 JWK (`d`, base64url). */
export function privateScalarOfJwk(jwk: { d?: string }): bigint {
  if (jwk.d === undefined) throw new Error('the JWK has no private part d');
  return toBigInt(Buffer.from(jwk.d, 'base64url'));
}
