/**
 * What long-running engine calls take: an event sink and an AbortSignal. The
 * events themselves are plain data shared with the host and the panel
 * (src/shared/events.ts).
 */
import type { EngineEvent } from '../shared/events';

export type { EngineEvent, EpochMetrics, Phase } from '../shared/events';

export type EventSink = (event: EngineEvent) => void;

export const noEvents: EventSink = () => undefined;

/** Options every long-running engine call takes. */
export interface Progress {
  onEvent?: EventSink;
  signal?: AbortSignal;
}
