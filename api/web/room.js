// One joined room: its timeline and history, its outbox, its unread count
// and who is in it. Its messages come by the session's stream; every
// message is kept once, by id, in its latest version (the highest
// `version`: an edit or delete of the stream or of an answer replaces the
// copy shown; one of a message the page does not hold is skipped).
//
// The unread count is the messages of others after the user's read
// marker, tombstones not counted. The marker comes from GET /me/rooms
// whenever the stream opens, from `read` events (any tab or device of the
// user moved it) and from here: when the room's newest message is on
// screen, PUT /rooms/{room}/read moves it there. While the page holds
// every message after the marker it counts them itself; else it adds
// those after the server's count to that count.

import { ChangeRefused, deleteMessage, editMessage, getMessage, markRead } from './changes.js';
import { Outbox } from './outbox.js';
import { Presence } from './presence.js';
import { isBlank } from './rules.js';
import { compareIDs, renderEditor, renderMessage, versionOf } from './render.js';
import { AccessError, getJSON } from './server.js';
import { nearBottom, scrollToBottom, showError, ui } from './ui.js';

const PAGE_SIZE = 50;

export class Room {
  constructor(session, name) {
    this.session = session;
    this.name = name;
    this.base = `/rooms/${encodeURIComponent(name)}`;
    this.shown = new Map(); // message id → its <li>
    this.messages = new Map(); // message id → its latest version held
    this.lastRead = null; // the user's read marker, as far as known here
    this.markSent = null; // the newest id a PUT read was sent for
    this.server = null; // {unread, upTo, marker} of GET /me/rooms
    this.editing = null; // {id, version, form} of the message being edited
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
    this.list.addEventListener('click', (ev) => this.clicked(ev));
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

  // changeable tells whether the page offers to edit and delete m: the
  // user's own, and with a token anyone's, as the token may make its
  // holder a moderator (the server says no if not).
  changeable(m) {
    return m.user === this.user || Boolean(this.token);
  }

  render(m) {
    return renderMessage(m, m.user === this.user, this.changeable(m));
  }

  // place shows a message once, in order among those of its epoch; a
  // newer version of one shown replaces it.
  place(m) {
    if (!m || typeof m.id !== 'string' || !m.id.includes('-')) {
      return false;
    }
    if (this.shown.has(m.id)) {
      this.apply(m);
      return false;
    }
    this.messages.set(m.id, m);
    const li = this.render(m);
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

  // received shows a message of the stream; one from someone else
  // counts as unread until its room shows it.
  received(m) {
    this.placeKeepingScroll([m]);
    this.markViewed();
    this.updateUnread();
    this.presence.stopTyping(m.user);
  }

  // apply takes on a newer version of a message held (an edit or a
  // delete) and shows it; it returns whether it was newer. A message being
  // edited here keeps its editor unless it was deleted.
  apply(m) {
    const held = m && typeof m.id === 'string' ? this.messages.get(m.id) : undefined;
    if (!held || versionOf(m) <= versionOf(held)) {
      return false;
    }
    this.messages.set(m.id, m);
    if (this.editing && this.editing.id === m.id && m.deleted !== true) {
      this.updateUnread();
      return true;
    }
    if (this.editing && this.editing.id === m.id) {
      this.editing = null;
    }
    this.rerender(m.id);
    this.updateUnread();
    return true;
  }

  rerender(id) {
    const old = this.shown.get(id);
    const m = this.messages.get(id);
    if (!old || !m) {
      return;
    }
    const li = this.render(m);
    old.replaceWith(li);
    this.shown.set(id, li);
  }

  // clicked handles the buttons of the timeline's messages: Edit, Delete
  // (twice: the first click asks), and the editor's Cancel.
  clicked(ev) {
    const button = ev.target instanceof Element ? ev.target.closest('button') : null;
    const li = button && button.closest('li.message');
    if (!li || this.shown.get(li.dataset.id) !== li) {
      return;
    }
    const id = li.dataset.id;
    if (button.dataset.action === 'edit') {
      this.startEdit(id);
    } else if (button.dataset.action === 'delete') {
      if (button.dataset.confirm === 'true') {
        this.remove(id);
      } else {
        button.dataset.confirm = 'true';
        button.textContent = 'Delete?';
        button.title = 'Click again to delete this message for everyone';
      }
    } else if (button.classList.contains('cancel')) {
      this.endEdit();
    }
  }

  startEdit(id) {
    this.endEdit();
    const li = this.shown.get(id);
    const m = this.messages.get(id);
    if (!li || !m || m.deleted === true) {
      return;
    }
    const form = renderEditor(String(m.text ?? ''));
    const area = form.querySelector('textarea');
    li.classList.add('editing');
    li.querySelector('.text').hidden = true;
    li.querySelector('.actions').hidden = true;
    li.append(form);
    this.editing = { id, version: versionOf(m), form };
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.saveEdit(area.value);
    });
    area.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && !ev.altKey && !ev.ctrlKey && !ev.metaKey) {
        ev.preventDefault();
        form.requestSubmit();
      } else if (ev.key === 'Escape') {
        ev.preventDefault();
        this.endEdit();
      }
    });
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }

  // endEdit closes the editor, showing the message as it is now.
  endEdit() {
    if (this.editing) {
      const { id } = this.editing;
      this.editing = null;
      this.rerender(id);
    }
  }

  // saveEdit sends the editor's text. The edit is of the version the
  // editor opened on: if someone changed the message meanwhile, the page
  // shows their version's text in the error and keeps the editor, so a
  // second Save overwrites on purpose.
  async saveEdit(text) {
    const editing = this.editing;
    const held = editing && this.messages.get(editing.id);
    if (!held) {
      return;
    }
    if (isBlank(text)) {
      showError('An edited message cannot be empty: Delete removes a message.');
      return;
    }
    if (text === held.text && versionOf(held) === editing.version) {
      this.endEdit();
      return;
    }
    const buttons = editing.form.querySelectorAll('button, textarea');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const m = await editMessage(this, { id: editing.id, version: editing.version }, text);
      if (this.editing === editing) {
        this.editing = null;
      }
      if (!this.apply(m)) {
        this.rerender(m.id);
      }
      showError('');
    } catch (err) {
      buttons.forEach((b) => { b.disabled = false; });
      const latest = await this.changeFailed('edit', editing.id, err);
      if (latest && this.editing === editing && latest.deleted !== true) {
        editing.version = versionOf(latest);
      }
    }
  }

  async remove(id) {
    const m = this.messages.get(id);
    if (!m) {
      return;
    }
    try {
      this.apply(await deleteMessage(this, m));
      showError('');
    } catch (err) {
      await this.changeFailed('delete', id, err);
      this.rerender(id);
    }
  }

  // changeFailed shows why an edit or delete failed. A refusal for a
  // change made meanwhile (409, 412) takes on the message's latest
  // version, which it returns.
  async changeFailed(what, id, err) {
    if (err instanceof AccessError) {
      this.session.deny(err);
      return null;
    }
    showError(`Could not ${what} the message: ${err.message}`);
    if (!(err instanceof ChangeRefused) || (err.status !== 409 && err.status !== 412)) {
      return null;
    }
    try {
      const latest = await getMessage(this, id);
      this.apply(latest);
      return latest;
    } catch {
      return null;
    }
  }

  // noteRead moves the read marker here to id if that is newer.
  noteRead(id) {
    if (typeof id === 'string' && id.includes('-') && (this.lastRead === null || compareIDs(id, this.lastRead) > 0)) {
      this.lastRead = id;
    }
    this.updateUnread();
  }

  // readState takes on the user's read state from GET /me/rooms.
  readState(r) {
    const upTo = r.last_message && typeof r.last_message.id === 'string' ? r.last_message.id : null;
    const marker = typeof r.last_read === 'string' ? r.last_read : null;
    this.server = { unread: r.unread, upTo, marker };
    this.noteRead(marker);
  }

  // unreadAfter counts the messages held after id (all, for null) that
  // count as unread: others', not deleted.
  unreadAfter(id) {
    let n = 0;
    for (const m of this.messages.values()) {
      if (m.user !== this.user && m.deleted !== true && (id === null || compareIDs(m.id, id) > 0)) {
        n++;
      }
    }
    return n;
  }

  // edge returns the oldest (sign -1) or newest (1) message id held.
  edge(sign) {
    let best = null;
    for (const id of this.messages.keys()) {
      if (best === null || Math.sign(compareIDs(id, best)) === sign) {
        best = id;
      }
    }
    return best;
  }

  updateUnread() {
    const marker = this.lastRead;
    const oldest = this.edge(-1);
    const holdsAll = (this.loaded && !this.hasOlder) ||
      (marker !== null && oldest !== null && compareIDs(oldest, marker) <= 0);
    if (!holdsAll && this.server && this.server.marker === marker) {
      this.setUnread(this.server.unread + this.unreadAfter(this.server.upTo));
    } else {
      this.setUnread(this.unreadAfter(marker));
    }
  }

  // markViewed moves the read marker to the newest message when the room
  // shows it: open, scrolled to the bottom, in a tab on screen.
  markViewed() {
    if (!this.isOpen() || this.closed || document.visibilityState === 'hidden' || !nearBottom()) {
      return;
    }
    const newest = this.edge(1);
    if (newest === null) {
      return;
    }
    this.noteRead(newest);
    if (this.markSent !== null && compareIDs(newest, this.markSent) <= 0) {
      return;
    }
    this.markSent = newest;
    markRead(this, newest).then((mark) => {
      if (!this.closed) {
        this.noteRead(mark.last_read);
      }
    }).catch(() => {
      // Tried again when the room shows a newer message.
      if (this.markSent === newest) {
        this.markSent = null;
      }
    });
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
    this.markViewed();
    this.updateUnread();
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
      if (this.shown.has(m.id)) {
        this.apply(m);
      } else {
        const li = this.render(m);
        this.list.prepend(li);
        this.shown.set(m.id, li);
        this.messages.set(m.id, m);
      }
    }
    if (page.messages.length > 0) {
      this.oldest = page.messages[0].id;
    }
    this.setHasOlder(page.has_more);
    this.updateUnread();
    ui.log.scrollTop = ui.log.scrollHeight - fromBottom;
  }

  // stored shows a message of the outbox the server has stored; any
  // trouble the page showed is over.
  stored(m) {
    this.placeKeepingScroll([m]);
    this.markViewed();
    this.session.ready = true;
    if (!this.historyFailed) {
      showError('');
    }
    this.session.showState();
  }
}
