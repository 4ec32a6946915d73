/**
 * One small message handler for a postMessage channel (vscode-hexeditor's
 * pattern): notifications go out as they are; a request carries a
 * `requestId` and its promise settles when the `reply` with that id comes
 * back. The request map fixes each request's params and result type.
 */

/** Requests of a channel: each method's params and result. */
export type RequestMap = Record<string, { params: object; result: object }>;

/** A request on the wire: `{type: method, requestId, ...params}`. */
export type RequestMessage<R extends RequestMap> = { [K in keyof R & string]: { type: K; requestId: number } & R[K]['params'] }[keyof R & string];

/** The reply to a request, typed by its method. */
export type ReplyMessage<R extends RequestMap> = { [K in keyof R & string]: { type: 'reply'; method: K; requestId: number; result: R[K]['result'] } }[keyof R & string];

/** Builds the reply to `req` (the side that answers uses it, so replies stay typed). */
export function replyTo<R extends RequestMap, K extends keyof R & string>(req: { type: K; requestId: number }, result: R[K]['result']): ReplyMessage<R> {
  const reply: { type: 'reply'; method: K; requestId: number; result: R[K]['result'] } = { type: 'reply', method: req.type, requestId: req.requestId, result };
  return reply as ReplyMessage<R>;
}

/**
 * The requesting side of a channel. `post` sends a message; every message
 * received goes to {@link handle}, which settles replies and passes the rest
 * to `onMessage`.
 */
export class MessageHandler<R extends RequestMap, TOut extends { type: string }, TIn extends { type: string }> {
  private nextId = 1;
  private readonly pending = new Map<number, (result: R[keyof R]['result']) => void>();

  constructor(
    private readonly post: (m: TOut | RequestMessage<R>) => void,
    private readonly onMessage: (m: Exclude<TIn, { type: 'reply' }>) => void,
  ) {}

  /** Sends a notification (no reply). */
  notify(m: TOut): void {
    this.post(m);
  }

  /** Sends request `method`; resolves with its reply's result. */
  request<K extends keyof R & string>(method: K, params: R[K]['params']): Promise<R[K]['result']> {
    const requestId = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(requestId, resolve as (result: R[keyof R]['result']) => void);
      this.post({ ...params, type: method, requestId } as RequestMessage<R>);
    });
  }

  /** Handles a received message: a reply settles its request, anything else goes to `onMessage`. */
  handle(m: TIn | ReplyMessage<R>): void {
    if (m.type === 'reply' && 'requestId' in m) {
      const resolve = this.pending.get(m.requestId);
      this.pending.delete(m.requestId);
      resolve?.(m.result);
      return;
    }
    this.onMessage(m as Exclude<TIn, { type: 'reply' }>);
  }
}
