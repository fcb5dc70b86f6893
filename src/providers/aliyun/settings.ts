import { atFirstUse } from '../../lib/first-use';
import { z } from '../../lib/zod';
import { parseSettings, type SettingsOwner } from '../settings';
import type { Annotations } from '../types';

/** The aliyun provider's settings or annotations checked by `schema` (messages name aliyun and the client type). */
export function parseAliyunSettings<S extends z.ZodType>(
  schema: S,
  value: unknown,
  section: SettingsOwner['section'],
  clientType?: string,
): z.output<S> {
  return parseSettings(schema, value, {
    provider: 'aliyun',
    section,
    ...(clientType === undefined ? {} : { clientType }),
  });
}

/** Which version of a secret to fetch: `annotations.version_stage` / `version_id` (empty = newest). */
export interface SecretVersionSelector {
  readonly versionStage?: string;
  readonly versionId?: string;
}

/** Built at its first use (client_key, sts_token and ecs_ram_role load at their first secret). */
const versionSchema = atFirstUse(() =>
  z
    .object({
      version_stage: z.string({ error: 'must be a string' }).nullish(),
      version_id: z.string({ error: 'must be a string' }).nullish(),
    })
    .transform(({ version_stage: stage, version_id: id }): SecretVersionSelector => ({
      ...(stage ? { versionStage: stage } : {}),
      ...(id ? { versionId: id } : {}),
    })),
);

export function secretVersionSelector(annotations: Annotations, clientType?: string): SecretVersionSelector {
  return parseAliyunSettings(versionSchema(), annotations, 'annotations', clientType);
}
