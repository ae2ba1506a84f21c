// One stream for all tabs: the tabs of one origin that follow the same
// stream URL share a single EventSource. They elect a leader with the Web
// Locks API (a lock named after the URL); only the leader holds the
// EventSource and relays every event (type, data, id) to the other tabs
// over a BroadcastChannel of the same name. When the leader's tab closes,
// the browser hands the lock to another tab, which opens the stream anew
// from the last id it saw (the resume parameter, last_event_id by
// default), so nothing is lost; every tab drops an event whose id it has
// already seen, so nothing comes twice. A tab that lags behind the new
// leader, or joins a running stream with a cursor of its own, asks the
// leader for what it missed, from a short list of recent events every tab
// keeps. Without Web Locks or BroadcastChannel each tab holds its own
// EventSource.
//
// A browser allows six HTTP/1.1 connections per host, so without this the
// seventh tab of a chat waits for ever. The ids of single-room streams are
// message ids and those of multi-room streams composite cursors; neither
// is compared here, only matched.
//
// The same file ships in the TypeScript client as
// roomcast-client-ts/sharedstream.

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 2;

// RECENT is how many events each tab keeps for a tab that lags behind.
const RECENT = 512;

// RecentEvents is the last events with an id that a tab delivered, in
// order, and the id it started from: enough to tell whether an id was
// seen and to replay what came after it.
export class RecentEvents {
  constructor(limit = RECENT) {
    this.limit = limit;
    this.events = []; // {type, data, id}, oldest first
    this.ids = new Set();
    this.start = null; // the id the stream resumed from, if known
  }

  // begin forgets everything and starts anew from id (or null).
  begin(id) {
    this.events = [];
    this.ids.clear();
    this.start = id || null;
  }

  has(id) {
    return this.ids.has(id);
  }

  // add keeps ev unless its id was seen; it returns whether ev is new.
  add(ev) {
    if (this.ids.has(ev.id)) {
      return false;
    }
    this.events.push(ev);
    this.ids.add(ev.id);
    if (this.events.length > this.limit) {
      const old = this.events.shift();
      this.ids.delete(old.id);
      this.start = old.id;
    }
    return true;
  }

  // last is the id of the newest event kept, else the start.
  last() {
    return this.events.length > 0 ? this.events[this.events.length - 1].id : this.start;
  }

  // after returns the events that followed id, and whether id is known
  // here at all (the start or an event kept); unknown, events is empty.
  after(id) {
    if (id && id === this.start) {
      return { found: true, events: this.events.slice() };
    }
    const i = this.events.findIndex((ev) => ev.id === id);
    return i < 0 ? { found: false, events: [] } : { found: true, events: this.events.slice(i + 1) };
  }
}

// shareable tells whether this browser has what tabs need to share a
// stream.
export function shareable() {
  return typeof BroadcastChannel === 'function' && typeof navigator === 'object' &&
    navigator !== null && typeof navigator.locks === 'object' && navigator.locks !== null;
}

let tabCount = 0;

// tabID names this object among the tabs that share its stream.
function tabID() {
  tabCount++;
  const random = typeof crypto === 'object' && crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
  return `${random}.${tabCount}`;
}

// SharedEventSource is an EventSource shared by the tabs that open it with
// the same URL. It dispatches what an EventSource does: open, error,
// message and the named events listed in options.events, each a
// MessageEvent with data and lastEventId. readyState is that of the
// leader's EventSource. A stream taken over by another tab stays open for
// its listeners: they see an error only when the new leader cannot
// connect.
//
// Options: events (the named event types to relay besides message),
// lastEventId (where this tab's stream resumes; a leader sends it as the
// resume parameter), resumeParam (last_event_id), name (of the lock and
// the channel; by default derived from the URL), withCredentials.
export class SharedEventSource extends EventTarget {
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.readyState = CONNECTING;
    this.leader = false; // this tab holds the EventSource
    this.shared = shareable();
    // resumed: the stream goes on from options.lastEventId with no gap. A
    // leader's server sees to it; a tab joining a running stream only
    // knows once the leader has replayed what followed that id.
    this.resumed = false;
    this.events = ['message', ...(options.events || []).filter((t) => t !== 'message')];
    this.resumeParam = options.resumeParam || 'last_event_id';
    this.withCredentials = Boolean(options.withCredentials);
    this.recent = new RecentEvents();
    this.recent.begin(options.lastEventId || null);
    this.lastID = options.lastEventId || null; // the last id delivered here
    this.source = null;
    this.closed = false;
    this.synced = false; // a follower knows the leader's events up to now
    this.pending = []; // events relayed before this follower was synced
    this.tab = tabID();
    if (!this.shared) {
      this.lead();
      return;
    }
    const name = options.name || `roomcast.stream ${new URL(url, location.href).href}`;
    this.channel = new BroadcastChannel(name);
    this.channel.onmessage = (ev) => this.heard(ev.data);
    this.abort = new AbortController();
    navigator.locks.request(name, { signal: this.abort.signal }, () => {
      if (this.closed) {
        return undefined;
      }
      this.lead();
      return new Promise((resolve) => {
        this.release = resolve;
      });
    }).catch(() => {
      // aborted by close
    });
    this.post({ kind: 'hello', tab: this.tab, last: this.lastID });
  }

  // close ends this tab's part: a leader closes its EventSource and lets
  // another tab take over.
  close() {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this.readyState = CLOSED;
    if (this.source) {
      this.source.close();
      this.source = null;
    }
    if (this.shared) {
      this.abort.abort();
      if (this.release) {
        this.release();
      }
      this.channel.close();
    }
  }

  post(msg) {
    if (this.shared && !this.closed) {
      this.channel.postMessage(msg);
    }
  }

  // lead opens the EventSource from the last id seen here and announces
  // this tab as the leader, so followers ask for what they missed.
  lead() {
    this.leader = true;
    if (this.readyState !== OPEN) {
      // Relayed events that no leader stitched to lastEventId (it closed
      // before it answered) may follow a gap.
      this.resumed = Boolean(this.lastID) && !this.pending.some((ev) => ev.id);
    }
    this.synced = true;
    this.deliverAll(this.pending);
    this.pending = [];
    const from = this.lastID;
    let address = this.url;
    if (from) {
      address += `${address.includes('?') ? '&' : '?'}${encodeURIComponent(this.resumeParam)}=${encodeURIComponent(from)}`;
    }
    const es = new EventSource(address, { withCredentials: this.withCredentials });
    this.source = es;
    // An EventSource's lastEventId starts empty, whatever the address says.
    let previous = '';
    for (const type of this.events) {
      es.addEventListener(type, (ev) => {
        if (es !== this.source) {
          return;
        }
        // lastEventId stays what it was on an event without an id of its
        // own: only a changed one marks an event that can be resumed.
        const id = ev.lastEventId && ev.lastEventId !== previous ? ev.lastEventId : '';
        if (id) {
          previous = id;
        }
        const relayed = { type, data: ev.data, id, last: ev.lastEventId };
        if (this.deliver(relayed)) {
          this.post({ kind: 'event', ev: relayed });
        }
      });
    }
    es.addEventListener('open', () => {
      if (es === this.source) {
        this.setState(OPEN);
        this.post({ kind: 'state', state: OPEN });
      }
    });
    es.addEventListener('error', () => {
      if (es === this.source) {
        const state = es.readyState;
        this.post({ kind: 'state', state });
        this.setState(state, true);
      }
    });
    this.post({ kind: 'leader', tab: this.tab });
  }

  // setState takes on the leader's state and tells the listeners: open
  // once, error on every failure. A closed stream stays closed, as an
  // EventSource does.
  setState(state, failed = false) {
    if (this.closed) {
      return;
    }
    if (state === OPEN) {
      if (this.readyState !== OPEN) {
        this.readyState = OPEN;
        this.dispatchEvent(new Event('open'));
      }
      return;
    }
    if (!failed && state === CONNECTING) {
      return; // a follower that joins while the leader connects
    }
    this.readyState = state;
    if (state === CLOSED) {
      this.close();
      this.readyState = CLOSED;
    }
    this.dispatchEvent(new Event('error'));
  }

  // deliver dispatches ev here unless its id was seen; it returns whether
  // it did.
  deliver(ev) {
    if (this.closed) {
      return false;
    }
    if (ev.id) {
      if (!this.recent.add({ type: ev.type, data: ev.data, id: ev.id, last: ev.last })) {
        return false;
      }
      this.lastID = ev.id;
    }
    this.dispatchEvent(new MessageEvent(ev.type, { data: ev.data, lastEventId: ev.last || ev.id || '' }));
    return true;
  }

  deliverAll(events) {
    for (const ev of events) {
      this.deliver(ev);
    }
  }

  // heard handles a message from another tab.
  heard(msg) {
    if (this.closed || !msg || typeof msg !== 'object') {
      return;
    }
    switch (msg.kind) {
      case 'event':
        if (this.synced) {
          this.deliver(msg.ev);
        } else {
          this.pending.push(msg.ev);
        }
        break;
      case 'state':
        if (!this.leader) {
          this.setState(msg.state, true);
        }
        break;
      case 'hello':
        // A new follower, or one that follows a new leader: what it missed.
        if (this.leader) {
          const { found, events } = msg.last ? this.recent.after(msg.last) : { found: false, events: [] };
          this.post({ kind: 'welcome', to: msg.tab, state: this.readyState, found, events });
        }
        break;
      case 'leader':
        if (!this.leader) {
          this.synced = false;
          this.post({ kind: 'hello', tab: this.tab, last: this.lastID });
        }
        break;
      case 'welcome':
        if (msg.to === this.tab && !this.leader && !this.synced) {
          this.synced = true;
          if (this.readyState !== OPEN) {
            this.resumed = Boolean(msg.found);
          }
          this.deliverAll(msg.events);
          this.deliverAll(this.pending);
          this.pending = [];
          this.setState(msg.state);
        }
        break;
      default:
    }
  }
}

SharedEventSource.CONNECTING = CONNECTING;
SharedEventSource.OPEN = OPEN;
SharedEventSource.CLOSED = CLOSED;
