// The one stream that follows every joined room: an EventSource on
// /stream?rooms=a,b,c, whose message ids are composite cursors, shared by
// every tab of the page that follows the same rooms as the same user
// (sharedstream.js): one tab holds it and relays its events to the others. When the
// set of rooms changes the stream is opened anew with last_event_id set to
// the last id seen, so rooms carried over resume with no gap, and the
// browser's own reconnect sends it as Last-Event-ID. A room the cursor does
// not cover (new, or the stream began without a cursor) loads its latest
// history once the stream is open, so nothing falls between the two. With
// a token the stream sends it as access_token, since EventSource cannot
// send headers.

import { AccessError, getJSON } from './server.js';
import { SharedEventSource } from './sharedstream.js';
import { showError } from './ui.js';

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 15000;

// parseEvent returns an event's JSON data, or null.
function parseEvent(ev) {
  try {
    const data = JSON.parse(ev.data);
    return data && typeof data === 'object' ? data : null;
  } catch {
    return null;
  }
}

// Stream is a session's EventSource, opened anew for each set of rooms.
export class Stream {
  constructor(session) {
    this.session = session;
    this.source = null;
    this.rooms = []; // the rooms of source
    this.covered = new Set(); // the rooms source resumes from its cursor
    this.heard = false; // source delivered a message
    this.lastID = null; // the composite cursor of the last message seen
    this.cursorRooms = new Set(); // the rooms lastID holds positions of
    this.state = 'connecting'; // connecting, open or reconnecting
    this.queued = false;
    this.retryDelay = RETRY_MIN_MS;
    this.retryTimer = 0;
  }

  // queue reopens the stream for the current rooms once the current task
  // is done, so that joining several rooms at once opens one stream.
  queue() {
    if (this.queued) {
      return;
    }
    this.queued = true;
    queueMicrotask(() => {
      this.queued = false;
      if (!this.session.closed) {
        this.open();
      }
    });
  }

  open() {
    const s = this.session;
    clearTimeout(this.retryTimer);
    if (this.source) {
      this.source.close();
      this.source = null;
    }
    const rooms = Array.from(s.rooms.keys());
    s.showState();
    if (rooms.length === 0) {
      return;
    }
    const from = this.lastID;
    const query = new URLSearchParams({ rooms: rooms.join(',') });
    if (s.token) {
      query.set('access_token', s.token);
    } else {
      query.set('user', s.user);
    }
    // The events of the server's that the page shows besides messages:
    // the tab that holds the stream relays these to the others.
    const named = {
      reset: this.reset,
      join: (ev) => this.presence('join', ev),
      leave: (ev) => this.presence('leave', ev),
      typing: this.typing,
      edit: this.change,
      delete: this.change,
      read: this.read,
      banned: this.banned,
      revoked: this.revoked,
    };
    // The cursor is not part of the address: tabs at different points of
    // the same rooms share one stream, which resumes from it as
    // last_event_id.
    const es = new SharedEventSource(`/stream?${query}`, { lastEventId: from, events: Object.keys(named) });
    this.source = es;
    this.rooms = rooms;
    this.covered = new Set(from ? Array.from(this.cursorRooms).filter((r) => rooms.includes(r)) : []);
    this.heard = false;
    if (this.state === 'open') {
      this.state = 'connecting';
      s.showState();
    }
    const on = (type, handle) => es.addEventListener(type, (ev) => {
      if (es === this.source) {
        handle.call(this, ev, es);
      }
    });
    on('open', this.opened);
    on('message', this.message);
    for (const [type, handle] of Object.entries(named)) {
      on(type, handle);
    }
    on('error', this.failed);
  }

  // stop closes the stream and cancels a reconnect.
  stop() {
    clearTimeout(this.retryTimer);
    if (this.source) {
      this.source.close();
    }
  }

  // opened loads the history of every room the stream does not resume:
  // what was posted there before the subscription began is only in
  // history. A tab that joins another tab's stream resumes from its own
  // cursor only where that tab still had the events after it (resumed).
  opened(ev, es) {
    const s = this.session;
    this.retryDelay = RETRY_MIN_MS;
    this.state = 'open';
    s.showState();
    // The open room's list may predate this stream's own join.
    if (s.openRoom) {
      s.openRoom.presence.load();
    }
    // Read events are not resumed: what markers moved meanwhile is asked.
    s.loadReadState();
    const covered = this.heard ? new Set(this.rooms) : es.resumed ? this.covered : new Set();
    for (const name of this.rooms) {
      const room = s.rooms.get(name);
      if (room && (!covered.has(name) || room.historyFailed)) {
        room.refresh();
      }
    }
  }

  roomOf(data) {
    return data && typeof data.room === 'string' ? this.session.rooms.get(data.room) : undefined;
  }

  message(ev) {
    const s = this.session;
    const m = parseEvent(ev);
    const room = this.roomOf(m);
    if (!room) {
      return;
    }
    this.advance(ev);
    room.received(m);
    // A message arrived, so the server can store messages again.
    if (s.outboxBlocked() || s.ready === false) {
      s.recovered();
    }
  }

  // advance notes the position of a message or change the stream
  // delivered, where it resumes.
  advance(ev) {
    this.heard = true;
    if (ev.lastEventId) {
      this.lastID = ev.lastEventId;
      this.cursorRooms = new Set(this.rooms);
    }
  }

  // change applies an edit or delete (data: the message's new version)
  // to a message the page holds.
  change(ev) {
    const m = parseEvent(ev);
    const room = this.roomOf(m);
    if (!room) {
      return;
    }
    this.advance(ev);
    room.apply(m);
  }

  // read moves the user's own read marker, moved by another tab or
  // device or by a post; a read receipt (with user) is another's and
  // changes no badge.
  read(ev) {
    const r = parseEvent(ev);
    const room = this.roomOf(r);
    if (room && r.user === undefined && typeof r.id === 'string') {
      room.noteRead(r.id);
    }
  }

  // reset shows the loss in the room's timeline; the stream goes on, and
  // so the badge stays as it is.
  reset(ev) {
    const r = parseEvent(ev);
    const room = this.roomOf(r);
    if (room) {
      room.showGap(typeof r.detail === 'string' && r.detail ? r.detail : 'some messages are no longer available');
    }
  }

  presence(kind, ev) {
    const p = parseEvent(ev);
    const room = this.roomOf(p);
    if (room && typeof p.user === 'string') {
      room.presence.changed(kind, p);
    }
  }

  typing(ev) {
    const p = parseEvent(ev);
    const room = this.roomOf(p);
    if (room && typeof p.user === 'string') {
      room.presence.typing(p.user);
    }
  }

  // banned leaves a room the user was banned from, saying why: the server
  // no longer carries it, and a stream naming it would be refused.
  banned(ev) {
    const b = parseEvent(ev);
    if (!this.roomOf(b)) {
      return;
    }
    let text = `You were banned from ${b.room}`;
    if (typeof b.until === 'string' && b.until) {
      text += ` until ${new Date(b.until).toLocaleString()}`;
    }
    if (typeof b.reason === 'string' && b.reason) {
      text += `: ${b.reason}`;
    }
    this.session.leave(b.room);
    showError(`${text}.`);
  }

  // revoked ends the session: the token is no longer accepted anywhere.
  revoked() {
    this.session.deny(new AccessError('signin', 'Your token was revoked. Paste a new one and join again.'));
  }

  failed(ev, es) {
    this.state = 'reconnecting';
    this.session.showState();
    // EventSource reconnects by itself with Last-Event-ID, except after
    // a refused response, which may be the end of the token (the server
    // ends a stream when its token expires).
    if (es.readyState === SharedEventSource.CLOSED) {
      es.close();
      this.recover();
    }
  }

  // recover follows a stream the server refused. A refusal for the
  // token or permission ends the session; anything else is retried later.
  async recover() {
    const s = this.session;
    for (const room of this.rooms) {
      try {
        await getJSON(`/rooms/${encodeURIComponent(room)}/messages?limit=1`, s.token);
      } catch (err) {
        if (err instanceof AccessError) {
          s.deny(err);
          return;
        }
      }
    }
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    if (this.session.closed) {
      return;
    }
    const delay = this.retryDelay * (0.5 + Math.random() / 2);
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (!this.session.closed) {
        this.open();
      }
    }, delay);
  }
}
