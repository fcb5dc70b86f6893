import { repositoryName, type ImageReference } from './reference';

/**
 * Policy / registries.d scopes for a docker reference, most specific first, as containers/image
 * looks them up: `host/ns/repo:tag` (or `@digest`), `host/ns/repo`, `host/ns`, `host`, then
 * wildcard hosts `*.example.com`, `*.com`.
 */
export function scopeCandidates(ref: ImageReference): string[] {
  const repo = repositoryName(ref);
  const out: string[] = [];
  if (ref.digest !== undefined) out.push(`${repo}@${ref.digest}`);
  if (ref.tag !== undefined) out.push(`${repo}:${ref.tag}`);
  let path = repo;
  for (;;) {
    out.push(path);
    const slash = path.lastIndexOf('/');
    if (slash < 0) break;
    path = path.slice(0, slash);
  }
  const host = ref.registry.replace(/:\d+$/, '');
  if (!/^[\d.]+$/.test(host) && !host.startsWith('[')) {
    const labels = host.split('.');
    for (let i = 1; i < labels.length; i++) out.push(`*.${labels.slice(i).join('.')}`);
  }
  return out;
}
