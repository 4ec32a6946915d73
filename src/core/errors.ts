/**
 * Errors the engine throws. Every message is written for the user: it says
 * what went wrong and what to do next. `code` is stable for scripts and tests.
 */
export type ErrorCode =
  | 'BAD_INPUT'
  | 'NO_DATA'
  | 'BAD_MODEL'
  | 'DOWNLOAD'
  | 'NOT_FOUND'
  | 'EXISTS'
  | 'BACKEND'
  | 'INTERNAL';

export class HeadstartError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'HeadstartError';
  }
}

/** Thrown when an AbortSignal fired; callers report "cancelled", not an error. */
export class CancelledError extends Error {
  constructor(message = 'cancelled') {
    super(message);
    this.name = 'CancelledError';
  }
}

export function isCancelled(err: unknown): err is CancelledError {
  return err instanceof CancelledError || (err instanceof Error && err.name === 'AbortError');
}

/** Throws CancelledError when the signal has fired. Call once per batch. */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new CancelledError();
}

/** A short, single-line description of any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name;
  return String(err);
}

export function assertNever(x: never): never {
  throw new HeadstartError('INTERNAL', `unexpected value: ${JSON.stringify(x)}`);
}
