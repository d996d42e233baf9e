export interface FailureThrottleOptions {
  /** Failed verifications allowed per client address within the window. */
  limit: number;
  windowMs: number;
  /** Addresses tracked at most; the oldest windows are dropped first. @defaultValue 10000 */
  maxTracked?: number;
  now?: () => number;
}

/**
 * Slows down a client address that keeps failing signature verification, before any HMAC work is spent on it.
 * A valid delivery clears the address's count, so a sender of valid deliveries is never throttled.
 */
export class FailureThrottle {
  private readonly failures = new Map<string, { count: number; windowStart: number }>();
  private readonly maxTracked: number;
  private readonly now: () => number;

  constructor(private readonly options: FailureThrottleOptions) {
    this.maxTracked = options.maxTracked ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Seconds until the address may try again, or 0 when it is not throttled. */
  retryAfterSeconds(address: string): number {
    const entry = this.failures.get(address);
    if (!entry) return 0;
    const elapsed = this.now() - entry.windowStart;
    if (elapsed >= this.options.windowMs) {
      this.failures.delete(address);
      return 0;
    }
    return entry.count >= this.options.limit ? Math.ceil((this.options.windowMs - elapsed) / 1000) : 0;
  }

  recordFailure(address: string): void {
    const at = this.now();
    const entry = this.failures.get(address);
    if (entry && at - entry.windowStart < this.options.windowMs) {
      entry.count += 1;
      return;
    }
    if (this.failures.size >= this.maxTracked) {
      const oldest = this.failures.keys().next().value;
      if (oldest !== undefined) this.failures.delete(oldest);
    }
    this.failures.delete(address);
    this.failures.set(address, { count: 1, windowStart: at });
  }

  recordSuccess(address: string): void {
    this.failures.delete(address);
  }
}
