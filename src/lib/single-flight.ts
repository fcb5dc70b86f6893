import { abortError } from './abort';

interface Flight<V> {
  readonly result: Promise<V>;
  readonly controller: AbortController;
  /** Callers that have neither taken the result nor given up. */
  waiting: number;
  settled: boolean;
}

export interface SingleFlightOptions<V> {
  /**
   * Called once the shared work succeeded and every caller has taken its share (or given up):
   * where the result holds secret material, the place to wipe it.
   */
  readonly onAllTaken?: (value: V, key: string) => void;
}

/**
 * Concurrent calls for one key share one piece of work. A caller whose signal fires stops
 * waiting at once (abortError of its signal); when the last caller has gone before the work
 * finished, the work's own signal is aborted with that caller's reason and the next caller
 * starts afresh. Nothing is remembered once the work settles (caching is the caller's job).
 */
export class SingleFlight<V> {
  private readonly flights = new Map<string, Flight<V>>();

  constructor(private readonly options: SingleFlightOptions<V> = {}) {}

  /** True while work for `key` is in flight (a caller now would share it). */
  has(key: string): boolean {
    return this.flights.has(key);
  }

  /** Works in progress. */
  get size(): number {
    return this.flights.size;
  }

  /**
   * Joins the work for `key`, starting it with `start` when none is in flight. `take` turns
   * the shared result into this caller's own (a copy), before the caller counts as served.
   */
  async run<T = V>(
    key: string,
    signal: AbortSignal | undefined,
    start: (signal: AbortSignal) => Promise<V>,
    take: (value: V) => T = (value) => value as unknown as T,
  ): Promise<T> {
    if (signal?.aborted) throw abortError(signal);
    const flight = this.flights.get(key) ?? this.start(key, start);
    flight.waiting++;
    let left = false;
    const leave = (): void => {
      if (left) return;
      left = true;
      if (--flight.waiting > 0) return;
      if (!flight.settled) {
        flight.controller.abort(signal?.reason);
        if (this.flights.get(key) === flight) this.flights.delete(key);
      } else {
        void flight.result.then(
          (value) => this.options.onAllTaken?.(value, key),
          () => undefined,
        );
      }
    };
    if (signal === undefined) {
      try {
        return take(await flight.result);
      } finally {
        leave();
      }
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        leave();
        reject(abortError(signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      flight.result.then(
        (value) => {
          signal.removeEventListener('abort', onAbort);
          if (left) return;
          try {
            resolve(take(value));
          } catch (error) {
            reject(error);
          } finally {
            leave();
          }
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          if (left) return;
          leave();
          reject(error);
        },
      );
    });
  }

  private start(key: string, start: (signal: AbortSignal) => Promise<V>): Flight<V> {
    const controller = new AbortController();
    const flight: Flight<V> = {
      result: Promise.resolve().then(() => start(controller.signal)),
      controller,
      waiting: 0,
      settled: false,
    };
    this.flights.set(key, flight);
    const land = (): void => {
      flight.settled = true;
      if (this.flights.get(key) === flight) this.flights.delete(key);
    };
    flight.result.then(land, land);
    return flight;
  }
}
