// Who is in a room: the open room shows who is online (GET
// /rooms/{room}/presence, then join and leave events) and who is typing
// (typing events of others, for 3 s). Typing in the message box tells the
// room at most every 2 s.

import { authHeaders, getJSON } from './server.js';
import { ui } from './ui.js';

const TYPING_SEND_MS = 2000; // the server publishes one typing event per 2 s
const TYPING_SHOW_MS = 3000;

// Presence is one room's users online and typing.
export class Presence {
  constructor(room) {
    this.room = room;
    this.online = new Map(); // user → since
    this.typers = new Map(); // user → timer that ends their typing
    this.typingSentAt = 0;
    this.heard = null; // events that came while the list loads
  }

  // load lists who is online; join and leave events keep the list current
  // after that.
  // Events that arrive while the list loads are applied after it, so an
  // answer older than an event does not undo it.
  async load() {
    const heard = [];
    this.heard = heard;
    let p;
    try {
      p = await getJSON(`${this.room.base}/presence`, this.room.token);
    } catch {
      p = null; // the list stays as the events left it
    }
    if (this.heard === heard) {
      this.heard = null;
    }
    if (this.room.closed || !p || !Array.isArray(p.users)) {
      return;
    }
    this.online = new Map(p.users.map((u) => [String(u.user), String(u.since)]));
    for (const [kind, ev] of heard) {
      this.apply(kind, ev);
    }
    this.renderOnline();
  }

  // changed follows a join or leave event.
  changed(kind, ev) {
    if (this.heard) {
      this.heard.push([kind, ev]);
    }
    this.apply(kind, ev);
    this.renderOnline();
  }

  apply(kind, ev) {
    if (kind === 'join') {
      this.online.set(ev.user, ev.time);
    } else {
      this.online.delete(ev.user);
      this.stopTyping(ev.user);
    }
  }

  renderOnline() {
    if (!this.room.isOpen()) {
      return;
    }
    const users = Array.from(this.online.keys()).sort();
    ui.online.replaceChildren(...users.map((user) => {
      const li = document.createElement('li');
      li.textContent = user;
      li.classList.toggle('own', user === this.room.user);
      return li;
    }));
    ui.online.dataset.count = String(users.length);
    ui.online.hidden = users.length === 0;
  }

  // typing shows that user types, for a few seconds; this page's own
  // typing is not shown.
  typing(user) {
    if (user === this.room.user) {
      return;
    }
    clearTimeout(this.typers.get(user));
    this.typers.set(user, setTimeout(() => this.stopTyping(user), TYPING_SHOW_MS));
    this.renderTyping();
  }

  stopTyping(user) {
    if (this.typers.has(user)) {
      clearTimeout(this.typers.get(user));
      this.typers.delete(user);
      this.renderTyping();
    }
  }

  renderTyping() {
    if (!this.room.isOpen()) {
      return;
    }
    const users = Array.from(this.typers.keys()).sort();
    let text = '';
    if (users.length === 1) {
      text = `${users[0]} is typing…`;
    } else if (users.length > 1) {
      text = `${users.slice(0, -1).join(', ')} and ${users[users.length - 1]} are typing…`;
    }
    ui.typing.textContent = text;
  }

  // noteTyping tells the room that this page's user types, at most once
  // per TYPING_SEND_MS; a failure only means nobody sees it.
  noteTyping() {
    const now = Date.now();
    if (now - this.typingSentAt < TYPING_SEND_MS) {
      return;
    }
    this.typingSentAt = now;
    const { base, token, user } = this.room;
    fetch(`${base}/typing`, {
      method: 'POST',
      headers: authHeaders(token, { 'Content-Type': 'application/json' }),
      body: JSON.stringify(token ? {} : { user }),
    }).catch(() => {});
  }

  // stop ends the typing timers.
  stop() {
    for (const timer of this.typers.values()) {
      clearTimeout(timer);
    }
  }
}
