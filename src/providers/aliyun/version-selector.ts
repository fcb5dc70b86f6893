import { z } from 'zod';
import { parseSettings } from '../settings';
import type { Annotations } from '../types';

/** Which version of a secret to fetch: `annotations.version_stage` / `version_id` (empty = newest). */
export interface SecretVersionSelector {
  readonly versionStage?: string;
  readonly versionId?: string;
}

const versionSchema = z
  .object({
    version_stage: z.string({ error: 'must be a string' }).nullish(),
    version_id: z.string({ error: 'must be a string' }).nullish(),
  })
  .transform(({ version_stage: stage, version_id: id }): SecretVersionSelector => ({
    ...(stage ? { versionStage: stage } : {}),
    ...(id ? { versionId: id } : {}),
  }));

export function secretVersionSelector(annotations: Annotations, clientType?: string): SecretVersionSelector {
  return parseSettings(versionSchema, annotations, {
    provider: 'aliyun',
    section: 'annotations',
    ...(clientType === undefined ? {} : { clientType }),
  });
}
