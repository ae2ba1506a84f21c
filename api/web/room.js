// One joined room: its timeline and history, its outbox, its unread count
// and who is in it. Its messages come by the session's stream; every
// message is kept once, by id.

import { Outbox } from './outbox.js';
import { Presence } from './presence.js';
import { renderMessage } from './render.js';
import { AccessError, getJSON } from './server.js';
import { nearBottom, scrollToBottom, showError, ui } from './ui.js';

const PAGE_SIZE = 50;

export class Room {
  constructor(session, name) {
    this.session = session;
    this.name = name;
    this.base = `/rooms/${encodeURIComponent(name)}`;
    this.shown = new Map(); // message id → its <li>
    this.loaded = false; // the newest page of history has answered once
    this.oldest = null; // before= cursor of the next older page
    this.hasOlder = false;
    this.historyFailed = false;
    this.unread = 0;
    this.closed = false;
    this.view = this.renderView();
    this.entry = this.renderEntry();
    this.outbox = new Outbox(this);
    this.presence = new Presence(this);
  }

  get user() { return this.session.user; }

  get token() { return this.session.token; }

  isOpen() { return this.session.openRoom === this; }

  // renderView makes the room's timeline and outbox, hidden until opened.
  renderView() {
    const view = document.createElement('section');
    view.className = 'timeline';
    view.dataset.room = this.name;
    view.hidden = true;
    this.list = document.createElement('ol');
    this.list.className = 'messages';
    this.list.setAttribute('aria-live', 'polite');
    this.pending = document.createElement('ol');
    this.pending.className = 'messages outbox';
    this.pending.setAttribute('aria-label', 'Not sent yet');
    view.append(this.list, this.pending);
    ui.timelines.append(view);
    return view;
  }

  // renderEntry makes the room's line in the room list: a button that
  // opens it, with its unread count, and one that leaves it.
  renderEntry() {
    const li = document.createElement('li');
    li.className = 'room-entry';
    li.dataset.room = this.name;
    const open = document.createElement('button');
    open.type = 'button';
    open.className = 'open-room';
    const label = document.createElement('span');
    label.className = 'room-name';
    label.textContent = this.name;
    this.badge = document.createElement('span');
    this.badge.className = 'unread';
    this.badge.hidden = true;
    open.append(label, this.badge);
    open.addEventListener('click', () => this.session.open(this.name));
    const leave = document.createElement('button');
    leave.type = 'button';
    leave.className = 'leave-room';
    leave.textContent = '×';
    leave.title = `Leave ${this.name}`;
    leave.setAttribute('aria-label', `Leave ${this.name}`);
    leave.addEventListener('click', () => this.session.leave(this.name));
    li.append(open, leave);
    ui.rooms.append(li);
    return li;
  }

  // show puts the room on screen (the ids #messages and #outbox mark the
  // open room's lists), or takes it off.
  show(open) {
    this.view.hidden = !open;
    this.list.id = open ? 'messages' : '';
    this.pending.id = open ? 'outbox' : '';
    this.entry.querySelector('.open-room').setAttribute('aria-current', open ? 'true' : 'false');
    if (open) {
      this.setUnread(0);
      this.updateEmpty();
      ui.older.hidden = !this.hasOlder;
      this.presence.renderOnline();
      this.presence.renderTyping();
    }
  }

  // stop ends the room's work; what it shows stays, but no longer says
  // that history is loading.
  stop() {
    this.closed = true;
    this.outbox.stop();
    this.presence.stop();
    this.updateEmpty();
  }

  close() {
    this.stop();
    this.view.remove();
    this.entry.remove();
  }

  setUnread(n) {
    this.unread = n;
    this.entry.dataset.unread = String(n);
    this.badge.textContent = String(n);
    this.badge.hidden = n === 0;
  }

  setHasOlder(more) {
    this.hasOlder = more;
    if (this.isOpen()) {
      ui.older.hidden = !more;
    }
  }

  // updateEmpty tells, for the open room, that its history is loading, or
  // once it has loaded, that the room has no messages: until the server
  // has answered, an empty timeline says nothing about the room.
  updateEmpty() {
    if (this.isOpen()) {
      ui.loading.hidden = this.loaded || this.closed;
      ui.empty.hidden = !this.loaded || this.shown.size > 0 || this.pending.childElementCount > 0;
    }
  }

  // place shows a message once, in order among those of its epoch.
  place(m) {
    if (!m || typeof m.id !== 'string' || !m.id.includes('-') || this.shown.has(m.id)) {
      return false;
    }
    const li = renderMessage(m, m.user === this.user);
    let before = this.list.lastElementChild;
    while (before && before.dataset.epoch === li.dataset.epoch &&
           Number(before.dataset.seq) > Number(li.dataset.seq)) {
      before = before.previousElementSibling;
    }
    if (before) {
      before.after(li);
    } else {
      this.list.prepend(li);
    }
    this.shown.set(m.id, li);
    this.updateEmpty();
    return true;
  }

  // placeKeepingScroll places messages and keeps the open room scrolled
  // to its newest message if it was.
  placeKeepingScroll(messages) {
    const stick = this.isOpen() && nearBottom();
    let placed = 0;
    for (const m of messages) {
      placed += this.place(m) ? 1 : 0;
    }
    if (stick) {
      scrollToBottom();
    }
    return placed;
  }

  // received shows a message of the stream; one from someone else in a
  // room not on screen counts as unread.
  received(m) {
    if (this.placeKeepingScroll([m]) > 0 && !this.isOpen() && m.user !== this.user) {
      this.setUnread(this.unread + 1);
    }
    this.presence.stopTyping(m.user);
  }

  // showGap marks in the timeline where messages were lost.
  showGap(detail) {
    const stick = this.isOpen() && nearBottom();
    const gap = document.createElement('li');
    gap.className = 'gap';
    gap.setAttribute('role', 'separator');
    gap.textContent = `Missed messages: ${detail}`;
    this.list.append(gap);
    if (stick) {
      scrollToBottom();
    }
  }

  // refresh loads the latest history, showing a failure until a later
  // refresh succeeds.
  async refresh() {
    try {
      await this.loadLatest();
      if (this.historyFailed) {
        this.historyFailed = false;
        showError('');
      }
    } catch (err) {
      if (err instanceof AccessError) {
        this.session.deny(err);
        return;
      }
      this.historyFailed = true;
      showError(`Could not load history of ${this.name}: ${err.message}`);
      this.session.troubled();
    }
  }

  // loadLatest merges the newest page of history; the first one also
  // sets where older pages start.
  async loadLatest() {
    const page = await getJSON(`${this.base}/messages?limit=${PAGE_SIZE}`, this.token);
    if (this.closed) {
      return;
    }
    this.placeKeepingScroll(page.messages);
    if (page.messages.length > 0 && this.oldest === null) {
      this.oldest = page.messages[0].id;
      this.setHasOlder(page.has_more);
    }
    this.loaded = true;
    this.updateEmpty();
  }

  async loadOlder() {
    if (this.oldest === null) {
      return;
    }
    const page = await getJSON(`${this.base}/messages?limit=${PAGE_SIZE}&before=${encodeURIComponent(this.oldest)}`, this.token);
    if (this.closed) {
      return;
    }
    const fromBottom = ui.log.scrollHeight - ui.log.scrollTop;
    for (let i = page.messages.length - 1; i >= 0; i--) {
      const m = page.messages[i];
      if (!this.shown.has(m.id)) {
        const li = renderMessage(m, m.user === this.user);
        this.list.prepend(li);
        this.shown.set(m.id, li);
      }
    }
    if (page.messages.length > 0) {
      this.oldest = page.messages[0].id;
    }
    this.setHasOlder(page.has_more);
    ui.log.scrollTop = ui.log.scrollHeight - fromBottom;
  }

  // stored shows a message of the outbox the server has stored; any
  // trouble the page showed is over.
  stored(m) {
    this.placeKeepingScroll([m]);
    this.session.ready = true;
    if (!this.historyFailed) {
      showError('');
    }
    this.session.showState();
  }
}
