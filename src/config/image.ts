import { isAbsolute } from 'node:path';
import { z } from '../lib/zod';

/**
 * `[image]`: PullImage settings (upstream image-rs key names and meanings), every default here;
 * the daemon's camelCase type (`CdhConfig['image']`) is derived from it like the rest of the config.
 */
export const imageSectionSchema = z
  .strictObject({
    work_dir: z
      .string()
      .refine((v) => isAbsolute(v), 'must be an absolute path')
      .default('/run/kata-containers/image'),
    max_concurrent_layer_downloads_per_image: z.number().int().min(1).max(64).default(3),
    image_security_policy_uri: z.string().default(''),
    /** Inline policy.json text (upstream `image_security_policy`); the URI wins. */
    image_security_policy: z.string().default(''),
    sigstore_config_uri: z.string().default(''),
    /** Inline registries.d YAML (upstream `sigstore_config`); the URI wins. */
    sigstore_config: z.string().default(''),
    authenticated_registry_credentials_uri: z.string().default(''),
    registry_configuration_uri: z.string().default(''),
    /**
     * Inline `[image.registry_config]` (containers-registries.conf keys, kept as written): wins
     * over registry_configuration_uri, as upstream; absent = none.
     */
    registry_config: z.record(z.string(), z.unknown()).optional(),
    extra_root_certificates: z.array(z.string()).default(() => []),
    image_pull_proxy: z
      .strictObject({
        https_proxy: z.string().default(''),
        http_proxy: z.string().default(''),
        no_proxy: z.string().default(''),
      })
      .prefault({}),
    // Upstream key with a single possible meaning here (overlay is the only snapshotter).
    default_snapshot: z.literal('overlay').optional(),
  })
  .prefault({});
