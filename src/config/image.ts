import { isAbsolute } from 'node:path';
import { z } from 'zod';

/** `[image]`: PullImage settings (upstream image-rs key names and meanings). */
export interface ImageSettings {
  workDir: string;
  maxConcurrentLayerDownloadsPerImage: number;
  imageSecurityPolicyUri: string;
  /** Inline policy.json text (upstream `image_security_policy`); the URI wins. */
  imageSecurityPolicy: string;
  sigstoreConfigUri: string;
  /** Inline registries.d YAML (upstream `sigstore_config`); the URI wins. */
  sigstoreConfig: string;
  authenticatedRegistryCredentialsUri: string;
  registryConfigurationUri: string;
  /** Inline `[image.registry_config]`: wins over registry_configuration_uri, as upstream. */
  registryConfig?: Record<string, unknown>;
  extraRootCertificates: string[];
  imagePullProxy: { httpsProxy: string; httpProxy: string; noProxy: string };
}

export function defaultImageSettings(): ImageSettings {
  return {
    workDir: '/run/kata-containers/image',
    maxConcurrentLayerDownloadsPerImage: 3,
    imageSecurityPolicyUri: '',
    imageSecurityPolicy: '',
    sigstoreConfigUri: '',
    sigstoreConfig: '',
    authenticatedRegistryCredentialsUri: '',
    registryConfigurationUri: '',
    extraRootCertificates: [],
    imagePullProxy: { httpsProxy: '', httpProxy: '', noProxy: '' },
  };
}

export const imageSectionSchema = z
  .strictObject({
    work_dir: z.string().refine((v) => isAbsolute(v), 'must be an absolute path'),
    max_concurrent_layer_downloads_per_image: z.number().int().min(1).max(64),
    image_security_policy_uri: z.string(),
    image_security_policy: z.string(),
    sigstore_config_uri: z.string(),
    sigstore_config: z.string(),
    authenticated_registry_credentials_uri: z.string(),
    registry_configuration_uri: z.string(),
    registry_config: z.record(z.string(), z.unknown()),
    extra_root_certificates: z.array(z.string()),
    image_pull_proxy: z
      .strictObject({ https_proxy: z.string(), http_proxy: z.string(), no_proxy: z.string() })
      .partial(),
    // Upstream keys with a single possible meaning here (overlay is the only snapshotter).
    default_snapshot: z.literal('overlay'),
  })
  .partial();

export type ImageSection = z.infer<typeof imageSectionSchema>;

export function resolveImageSettings(section: ImageSection | undefined): ImageSettings {
  const s = defaultImageSettings();
  if (section === undefined) return s;
  if (section.work_dir !== undefined) s.workDir = section.work_dir;
  if (section.max_concurrent_layer_downloads_per_image !== undefined)
    s.maxConcurrentLayerDownloadsPerImage = section.max_concurrent_layer_downloads_per_image;
  if (section.image_security_policy_uri !== undefined)
    s.imageSecurityPolicyUri = section.image_security_policy_uri;
  if (section.image_security_policy !== undefined) s.imageSecurityPolicy = section.image_security_policy;
  if (section.sigstore_config_uri !== undefined) s.sigstoreConfigUri = section.sigstore_config_uri;
  if (section.sigstore_config !== undefined) s.sigstoreConfig = section.sigstore_config;
  if (section.authenticated_registry_credentials_uri !== undefined)
    s.authenticatedRegistryCredentialsUri = section.authenticated_registry_credentials_uri;
  if (section.registry_configuration_uri !== undefined)
    s.registryConfigurationUri = section.registry_configuration_uri;
  if (section.registry_config !== undefined) s.registryConfig = section.registry_config;
  if (section.extra_root_certificates !== undefined)
    s.extraRootCertificates = section.extra_root_certificates;
  const proxy = section.image_pull_proxy;
  if (proxy?.https_proxy !== undefined) s.imagePullProxy.httpsProxy = proxy.https_proxy;
  if (proxy?.http_proxy !== undefined) s.imagePullProxy.httpProxy = proxy.http_proxy;
  if (proxy?.no_proxy !== undefined) s.imagePullProxy.noProxy = proxy.no_proxy;
  return s;
}
