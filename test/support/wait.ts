import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `condition` every 10 ms; true once it holds, false if `withinMs` passes first. */
export async function until(condition: () => boolean, withinMs: number): Promise<boolean> {
  const giveUp = Date.now() + withinMs;
  while (!condition()) {
    if (Date.now() > giveUp) return false;
    await sleep(10);
  }
  return true;
}
