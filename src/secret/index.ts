/** The sealed-secret domain: what the daemon, the `secret` CLI and tests use. */
export { SecretUnsealer, type SecretUnsealerDeps } from './unsealer';
export {
  inspectSealedSecret,
  sealEnvelope,
  sealVault,
  signSealedSecret,
  unsignedSealedSecret,
  type EnvelopeSealRequest,
  type VaultSealRequest,
} from './seal';
export { generateSigningJwkPair, type P256Jwk, type SigningJwkPair } from './jwk';
export {
  parsePayload,
  validatePayload,
  type EnvelopeSecret,
  type SealedSecretPayload,
  type VaultSecret,
} from './payload';
export { SigningKeyResolver, type VerificationKeyResolver } from './signing-keys';
