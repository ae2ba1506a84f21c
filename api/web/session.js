// A user's session: the rooms joined, the one on screen, the stream that
// follows them all, and the badge. While the server fails the badge says
// so and the page asks /readyz for its recovery, so that what failed is
// tried again at once and the badge clears. When the server wants sign-in,
// the session sends its token as a bearer token.

import { remember } from './address.js';
import { readState } from './changes.js';
import { Room } from './room.js';
import { accessLabels, probeReady } from './server.js';
import { Stream } from './stream.js';
import { scrollToBottom, setStatus, showError, showNoRoom, ui } from './ui.js';

const HEALTH_POLL_MS = 2000;

// current is the session on screen, or null.
let current = null;

export function currentSession() {
  return current;
}

// startSession ends the current session, if any, and starts a new one on
// screen.
export function startSession(name, token) {
  if (current) {
    current.close();
  }
  showError('');
  ui.hint.hidden = true;
  ui.text.disabled = false;
  ui.send.disabled = false;
  current = new Session(name, token);
  return current;
}

// Session is a user's rooms and the one stream that follows them all.
// With a token, user is the token's subject.
class Session {
  constructor(user, token) {
    this.user = user;
    this.token = token;
    this.rooms = new Map(); // name → Room, in the order joined
    this.openRoom = null;
    this.stream = new Stream(this);
    this.ready = null; // the last answer of /readyz: true, false or null
    this.healthTimer = 0;
    this.closed = false;
  }

  // add joins a room unless joined; the stream follows the new set of
  // rooms.
  add(name) {
    if (!this.rooms.has(name)) {
      this.rooms.set(name, new Room(this, name));
      this.stream.queue();
    }
  }

  // leave drops a room: its stream is reopened without it.
  leave(name) {
    const room = this.rooms.get(name);
    if (!room) {
      return;
    }
    room.close();
    this.rooms.delete(name);
    if (this.openRoom === room) {
      this.openRoom = null;
      const next = this.rooms.keys().next();
      if (next.done) {
        showNoRoom();
      } else {
        this.open(next.value);
      }
    }
    this.stream.queue();
    this.remember();
  }

  open(name) {
    const room = this.rooms.get(name);
    if (!room || room === this.openRoom) {
      return;
    }
    if (this.openRoom) {
      this.openRoom.show(false);
    }
    this.openRoom = room;
    ui.hint.hidden = true;
    ui.text.disabled = this.closed;
    ui.send.disabled = this.closed;
    room.show(true);
    scrollToBottom();
    room.markViewed();
    room.updateUnread();
    room.presence.load();
    this.remember();
  }

  // loadReadState asks for the user's read markers and unread counts in
  // every room joined, 100 rooms a request; a failure leaves the counts
  // the page makes itself.
  async loadReadState() {
    const names = Array.from(this.rooms.keys());
    for (let i = 0; i < names.length; i += 100) {
      let states;
      try {
        states = await readState(this, names.slice(i, i + 100));
      } catch {
        return;
      }
      if (this.closed) {
        return;
      }
      for (const [name, r] of states) {
        const room = this.rooms.get(name);
        if (room) {
          room.readState(r);
        }
      }
    }
  }

  // remember keeps the rooms in the address and storage, while this
  // session is on screen.
  remember() {
    if (current === this) {
      remember(this);
    }
  }

  // stop ends the session's work and leaves its rooms on screen.
  stop() {
    this.closed = true;
    this.stream.stop();
    clearTimeout(this.healthTimer);
    for (const room of this.rooms.values()) {
      room.stop();
    }
  }

  // close stops the session and takes its rooms off the screen.
  close() {
    this.stop();
    for (const room of this.rooms.values()) {
      room.close();
    }
  }

  outboxBlocked() {
    return Array.from(this.rooms.values()).some((r) => r.outbox.blocked);
  }

  // showState shows on the badge what works: the stream, and whether
  // messages can be sent.
  showState() {
    if (this.closed || current !== this) {
      return;
    }
    if (this.rooms.size === 0) {
      setStatus('idle', 'not connected');
    } else if (this.stream.state === 'connecting') {
      setStatus('connecting', 'connecting…');
    } else if (this.stream.state === 'reconnecting') {
      setStatus('reconnecting', 'reconnecting…');
    } else if (this.outboxBlocked() || this.ready === false) {
      setStatus('unavailable', "connected · can't send right now");
    } else {
      setStatus('connected', 'connected');
    }
  }

  // deny ends the session for a refused token or permission, saying so
  // until the next join.
  deny(err) {
    this.stop();
    if (current === this) {
      setStatus(err.state, accessLabels[err.state]);
      showError(err.message);
      ui.text.disabled = true;
      ui.send.disabled = true;
    }
  }

  // troubled notes that the server failed us: the badge says so, and
  // /readyz is asked until the server answers again.
  troubled() {
    this.showState();
    this.watchHealth();
  }

  watchHealth() {
    if (!this.healthTimer && !this.closed) {
      this.healthTimer = setTimeout(() => this.checkHealth(), HEALTH_POLL_MS);
    }
  }

  async checkHealth() {
    const ready = await probeReady();
    this.healthTimer = 0;
    if (this.closed) {
      return;
    }
    if (ready === true && this.ready === false) {
      this.recovered();
    }
    this.ready = ready;
    this.showState();
    if (ready !== null && (this.outboxBlocked() || ready === false)) {
      this.watchHealth();
    }
  }

  // recovered follows a sign that the server works again: what failed is
  // tried again at once.
  recovered() {
    this.ready = true;
    for (const room of this.rooms.values()) {
      room.outbox.kick();
      if (room.historyFailed) {
        room.refresh();
      }
    }
    this.showState();
  }
}
