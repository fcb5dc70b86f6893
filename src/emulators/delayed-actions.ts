import type { ServerResponse } from 'node:http';

/** Emulator answers scheduled for later: dropped when the client goes away or the emulator closes. */
export class DelayedActions {
  private readonly timers = new Set<NodeJS.Timeout>();

  /** Runs `action` after `ms` unless the client went away first (then `onAbandoned`). */
  later(res: ServerResponse, action: () => void, ms: number, onAbandoned?: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!res.destroyed) action();
    }, ms);
    this.timers.add(timer);
    res.on('close', () => {
      if (this.timers.delete(timer)) {
        clearTimeout(timer);
        onAbandoned?.();
      }
    });
  }

  cancelAll(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
