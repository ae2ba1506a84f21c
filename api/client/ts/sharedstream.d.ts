// Types of sharedstream.js, the chat page's api/web/sharedstream.js: one
// EventSource shared by the tabs of an origin that follow the same stream.

/** An event with an id, as every tab keeps the recent ones. */
export interface RecentEvent {
  type: string;
  data: string;
  /** The event's own id: a message id, or a composite cursor on a multi-room stream. */
  id: string;
  /** The stream's last event id when it came (the MessageEvent's lastEventId). */
  last?: string;
}

/** The last events with an id that a tab delivered, and the id it started from. */
export declare class RecentEvents {
  constructor(limit?: number);
  readonly limit: number;
  /** The id the stream resumed from, or that of the newest event forgotten. */
  readonly start: string | null;
  /** Forgets everything and starts anew from id. */
  begin(id: string | null): void;
  has(id: string): boolean;
  /** Keeps ev unless its id was seen; whether ev is new. */
  add(ev: RecentEvent): boolean;
  /** The id of the newest event kept, else the start. */
  last(): string | null;
  /** The events after id, and whether id is known here (the start or an event kept). */
  after(id: string): { found: boolean; events: RecentEvent[] };
}

/** Whether this browser has Web Locks and BroadcastChannel, which tabs need to share a stream. */
export declare function shareable(): boolean;

export interface SharedEventSourceOptions {
  /** Named event types to relay besides message, e.g. ["reset", "join", "leave", "typing"]. */
  events?: string[];
  /** Where this tab's stream resumes: the leader sends it as resumeParam. */
  lastEventId?: string | null;
  /** The query parameter of the resume point; last_event_id. */
  resumeParam?: string;
  /** The name of the lock and the channel; by default derived from the URL. */
  name?: string;
  withCredentials?: boolean;
}

/**
 * An EventSource shared by the tabs that open it with the same URL: one
 * tab, elected with the Web Locks API, holds the EventSource and relays
 * its events over a BroadcastChannel; another takes over when it closes,
 * resuming from the last id it saw. It dispatches open, error, message and
 * the named events, each a MessageEvent with data and lastEventId.
 */
export declare class SharedEventSource extends EventTarget {
  constructor(url: string, options?: SharedEventSourceOptions);
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSED: 2;
  /** The stream's address without the resume point. */
  readonly url: string;
  /** That of the leader's EventSource. */
  readonly readyState: 0 | 1 | 2;
  /** This tab holds the EventSource. */
  readonly leader: boolean;
  /** Tabs share the stream (else every tab holds its own EventSource). */
  readonly shared: boolean;
  /** The stream goes on from options.lastEventId with no gap; known once open. */
  readonly resumed: boolean;
  /** The id of the last event delivered here. */
  readonly lastID: string | null;
  /** Ends this tab's part; a leader lets another tab take over. */
  close(): void;
}
