// roomcast chat page.
//
// The page follows every joined room over ONE EventSource on
// /stream?rooms=a,b,c, whose message ids are composite cursors: when the set
// of rooms changes the page opens a new stream with last_event_id set to the
// last id it saw, so rooms carried over resume with no gap, and the browser's
// own reconnect sends it as Last-Event-ID. A room the cursor does not cover
// (new, or the stream began without a cursor) loads its latest history once
// the stream is open, so nothing falls between the two. Every message is
// kept once, by id. Text from the server is only ever set with textContent,
// never parsed as HTML.
//
// When the server wants sign-in, the page sends the token given in its Token
// field (or in the URL hash, from where it is removed at once) as a bearer
// token, and on the stream as access_token, since EventSource cannot send
// headers. The token is kept in sessionStorage, so it dies with the tab.
//
// A sent message waits in its room's outbox, shown as pending below the
// room's timeline, until the server has stored it. Each message gets its
// Idempotency-Key once, so the automatic resends after a failure the server
// may recover from (no connection, 408, 429, 5xx) can never store it twice.
// While sends fail the badge says so and the page asks /readyz for the
// server's recovery, so that it resends at once and clears the badge.
//
// Each room counts its unread messages; the open room shows who is online
// (GET /rooms/{room}/presence, then join and leave events) and who is
// typing (typing events of others, for 3 s). Typing in the message box
// tells the room at most every 2 s.
'use strict';

(() => {
  const PAGE_SIZE = 50;
  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 15000;
  const SEND_RETRY_MIN_MS = 1000;
  const SEND_RETRY_MAX_MS = 10000;
  const HEALTH_POLL_MS = 2000;
  // Statuses after which the same post, sent again later, may succeed.
  const RETRYABLE = new Set([408, 429, 500, 502, 503, 504]);
  const ROOM_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
  const MAX_NAME_CHARS = 64;
  const TYPING_SEND_MS = 2000; // the server publishes one typing event per 2 s
  const TYPING_SHOW_MS = 3000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    join: $('join'), room: $('room'), name: $('name'), token: $('token'), status: $('status'),
    rooms: $('room-list'), online: $('online'), typing: $('typing'),
    log: $('log'), hint: $('hint'), older: $('older'), empty: $('empty'), timelines: $('timelines'),
    error: $('error'), compose: $('compose'), text: $('text'), send: $('send'),
    template: $('message-template'),
  };

  // session is the signed-in user with their rooms, or null.
  let session = null;

  function setStatus(state, text) {
    ui.status.dataset.state = state;
    ui.status.textContent = text;
  }

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = !message;
  }

  // parseID splits a message id "<epoch>-<seq>".
  function parseID(id) {
    const i = id.indexOf('-');
    return { epoch: id.slice(0, i), seq: Number(id.slice(i + 1)) };
  }

  function newKey() {
    if (crypto.randomUUID) {
      return crypto.randomUUID();
    }
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // tokenClaims decodes a JWT's payload, for display only: the server
  // checks the signature and the page trusts nothing in it. It returns null
  // for what is not a JWT.
  function tokenClaims(token) {
    const part = token.split('.')[1];
    if (!part) {
      return null;
    }
    try {
      const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
      const bytes = Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
      const claims = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
      return claims && typeof claims === 'object' ? claims : null;
    } catch {
      return null;
    }
  }

  // tokenSubject is the sub of a token, the user the server posts as, or ''.
  function tokenSubject(token) {
    const claims = tokenClaims(token);
    return claims && typeof claims.sub === 'string' ? claims.sub : '';
  }

  // AccessError is a request refused for want of a valid token or
  // permission; state is the status it shows: signin, expired or forbidden.
  class AccessError extends Error {
    constructor(state, message) {
      super(message);
      this.state = state;
    }
  }

  const accessLabels = { signin: 'sign-in needed', expired: 'token expired', forbidden: 'not allowed in this room' };

  // readProblem returns the type, title and detail of a problem response,
  // or empty strings.
  async function readProblem(resp) {
    const type = resp.headers.get('Content-Type') || '';
    if (type.includes('json')) {
      try {
        const p = await resp.json();
        return {
          type: typeof p.type === 'string' ? p.type : '',
          title: typeof p.title === 'string' ? p.title : '',
          detail: typeof p.detail === 'string' ? p.detail : '',
        };
      } catch {
        // no usable body
      }
    }
    return { type: '', title: '', detail: '' };
  }

  // failure turns a failed response into an Error: an AccessError for 401
  // and 403, else one describing the problem details.
  async function failure(resp, token) {
    const { type, title, detail } = await readProblem(resp);
    if (resp.status === 401) {
      if (token && type === 'urn:roomcast:problem:token-expired') {
        return new AccessError('expired', 'Your token has expired. Paste a new one and join again.');
      }
      return new AccessError('signin', token
        ? `Sign-in needed: the server did not accept this token (${detail || 'invalid'}). Paste a valid one and join again.`
        : 'Sign-in needed: this server wants a token. Paste one in the Token field and join again.');
    }
    if (resp.status === 403) {
      return new AccessError('forbidden', `Not allowed in this room${detail ? `: ${detail}` : ''}.`);
    }
    let text = `${resp.status} ${resp.statusText}`.trim();
    if (title) {
      text = detail ? `${title}: ${detail}` : title;
    }
    const after = resp.headers.get('Retry-After');
    if (after) {
      text += ` (retry in ${after} s)`;
    }
    return new Error(text);
  }

  // authHeaders adds the bearer token, when there is one, to headers.
  function authHeaders(token, headers) {
    return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
  }

  async function getJSON(url, token) {
    let resp;
    try {
      resp = await fetch(url, { headers: authHeaders(token, { Accept: 'application/json' }) });
    } catch {
      throw new Error('Cannot reach the server.');
    }
    if (!resp.ok) {
      throw await failure(resp, token);
    }
    return resp.json();
  }

  function renderMessage(m, own) {
    const li = ui.template.content.firstElementChild.cloneNode(true);
    const { epoch, seq } = parseID(m.id);
    li.dataset.id = m.id;
    li.dataset.epoch = epoch;
    li.dataset.seq = String(seq);
    li.classList.toggle('own', own);
    li.querySelector('.user').textContent = String(m.user ?? '');
    li.querySelector('.text').textContent = String(m.text ?? '');
    const time = li.querySelector('.time');
    const at = new Date(m.time);
    if (!Number.isNaN(at.getTime())) {
      time.dateTime = m.time;
      time.title = at.toLocaleString();
      time.textContent = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    }
    return li;
  }

  // renderPending shows a message of this page that the server has not
  // stored yet.
  function renderPending(text, user) {
    const li = ui.template.content.firstElementChild.cloneNode(true);
    li.classList.add('own', 'pending');
    li.querySelector('.user').textContent = user;
    li.querySelector('.text').textContent = text;
    return li;
  }

  // notePending sets what a pending message's note says: state is sending,
  // waiting (to be sent again) or failed (given up).
  function notePending(li, state, note) {
    li.dataset.state = state;
    li.querySelector('.note').textContent = note;
  }

  // backoff returns a delay of about ms, randomised so that pages do not
  // retry in step.
  function backoff(ms) {
    return ms * (0.75 + Math.random() / 2);
  }

  // probeReady asks the server whether it can serve: true for 200, false
  // for 503 or no answer, null for anything else (a proxy may hide /readyz).
  async function probeReady() {
    try {
      const resp = await fetch('/readyz', { cache: 'no-store' });
      if (resp.ok) {
        return true;
      }
      return resp.status === 503 ? false : null;
    } catch {
      return false;
    }
  }

  function nearBottom() {
    return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
  }

  function scrollToBottom() {
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  // Outbox sends a room's messages in order, one at a time, each with the
  // Idempotency-Key it got when it was written, and keeps each one on screen
  // as pending until the server has stored it.
  class Outbox {
    constructor(room) {
      this.room = room;
      this.items = []; // {text, key, li}, oldest first
      this.busy = false; // a post is in flight
      this.blocked = false; // the last post failed and will be sent again
      this.delay = SEND_RETRY_MIN_MS;
      this.timer = 0;
    }

    add(text) {
      const item = { text, key: newKey(), li: renderPending(text, this.room.user) };
      if (this.blocked) {
        notePending(item.li, 'waiting', 'not sent yet; waiting for the server…');
      } else {
        notePending(item.li, 'sending', 'sending…');
      }
      this.room.pending.append(item.li);
      this.items.push(item);
      this.room.updateEmpty();
      if (this.room.isOpen()) {
        scrollToBottom();
      }
      this.kick();
    }

    // kick sends the oldest message now, unless a post is in flight.
    kick() {
      clearTimeout(this.timer);
      this.timer = 0;
      if (!this.busy && !this.room.closed && this.items.length > 0) {
        this.sendNext();
      }
    }

    stop() {
      clearTimeout(this.timer);
      this.timer = 0;
    }

    async sendNext() {
      const item = this.items[0];
      this.busy = true;
      notePending(item.li, 'sending', 'sending…');
      const outcome = await this.room.post(item);
      this.busy = false;
      if (this.room.closed) {
        return;
      }
      if (outcome.message) {
        this.sent(item, outcome.message);
      } else if (outcome.retry) {
        this.later(item, outcome);
      } else if (outcome.denied) {
        this.room.session.deny(outcome.denied);
        this.giveUpAll(outcome.denied.message);
      } else {
        this.refused(item, outcome.error);
      }
    }

    sent(item, m) {
      this.items.shift();
      item.li.remove();
      this.blocked = false;
      this.delay = SEND_RETRY_MIN_MS;
      this.room.stored(m);
      this.kick();
    }

    // later keeps the message pending and sends it again after a backoff,
    // or at once when the session sees the server recover.
    later(item, { reason, afterMs }) {
      this.blocked = true;
      for (const other of this.items) {
        notePending(other.li, 'waiting', 'not sent yet; waiting for the server…');
      }
      notePending(item.li, 'waiting', `not sent yet (${reason}); retrying…`);
      const wait = Math.max(afterMs, backoff(this.delay));
      this.delay = Math.min(this.delay * 2, SEND_RETRY_MAX_MS);
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.kick(), wait);
      this.room.session.troubled();
    }

    // refused gives up on a message the server will never take as it is,
    // and hands its text back for editing when its room is open.
    refused(item, err) {
      this.items.shift();
      this.blocked = false;
      this.giveUp(item, err.message);
      if (ui.text.value === '' && this.room.isOpen()) {
        this.edit(item);
      }
      showError(err.message);
      this.room.session.showState();
      this.kick();
    }

    giveUpAll(why) {
      this.stop();
      for (const item of this.items.splice(0)) {
        this.giveUp(item, why);
      }
    }

    // giveUp leaves a message on screen as not sent, with a button that
    // puts its text back into the message box.
    giveUp(item, why) {
      notePending(item.li, 'failed', `not sent: ${why}`);
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'edit';
      button.textContent = 'Edit';
      button.addEventListener('click', () => this.edit(item));
      item.li.querySelector('.meta').append(button);
    }

    edit(item) {
      item.li.remove();
      ui.text.value = ui.text.value ? `${ui.text.value}\n${item.text}` : item.text;
      fitCompose();
      this.room.updateEmpty();
    }
  }

  // Room is one joined room: its timeline, its outbox, its unread count,
  // who is online and who is typing. Its messages come by the session's
  // stream.
  class Room {
    constructor(session, name) {
      this.session = session;
      this.name = name;
      this.base = `/rooms/${encodeURIComponent(name)}`;
      this.shown = new Map(); // message id → its <li>
      this.oldest = null; // before= cursor of the next older page
      this.hasOlder = false;
      this.historyFailed = false;
      this.unread = 0;
      this.online = new Map(); // user → since
      this.typers = new Map(); // user → timer that ends their typing
      this.typingSentAt = 0;
      this.closed = false;
      this.view = this.renderView();
      this.entry = this.renderEntry();
      this.outbox = new Outbox(this);
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
        this.renderOnline();
        this.renderTyping();
      }
    }

    // stop ends the room's work; what it shows stays.
    stop() {
      this.closed = true;
      this.outbox.stop();
      for (const timer of this.typers.values()) {
        clearTimeout(timer);
      }
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

    updateEmpty() {
      if (this.isOpen()) {
        ui.empty.hidden = this.shown.size > 0 || this.pending.childElementCount > 0;
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
      this.stopTyping(m.user);
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

    // loadPresence lists who is online; join and leave events keep the
    // list current after that.
    // Events that arrive while the list loads are applied after it, so an
    // answer older than an event does not undo it.
    async loadPresence() {
      const heard = [];
      this.presenceHeard = heard;
      let p;
      try {
        p = await getJSON(`${this.base}/presence`, this.token);
      } catch {
        p = null; // the list stays as the events left it
      }
      if (this.presenceHeard === heard) {
        this.presenceHeard = null;
      }
      if (this.closed || !p || !Array.isArray(p.users)) {
        return;
      }
      this.online = new Map(p.users.map((u) => [String(u.user), String(u.since)]));
      for (const [kind, ev] of heard) {
        this.applyPresence(kind, ev);
      }
      this.renderOnline();
    }

    presenceChanged(kind, ev) {
      if (this.presenceHeard) {
        this.presenceHeard.push([kind, ev]);
      }
      this.applyPresence(kind, ev);
      this.renderOnline();
    }

    applyPresence(kind, ev) {
      if (kind === 'join') {
        this.online.set(ev.user, ev.time);
      } else {
        this.online.delete(ev.user);
        this.stopTyping(ev.user);
      }
    }

    renderOnline() {
      if (!this.isOpen()) {
        return;
      }
      const users = Array.from(this.online.keys()).sort();
      ui.online.replaceChildren(...users.map((user) => {
        const li = document.createElement('li');
        li.textContent = user;
        li.classList.toggle('own', user === this.user);
        return li;
      }));
      ui.online.dataset.count = String(users.length);
      ui.online.hidden = users.length === 0;
    }

    // typing shows that user types, for a few seconds; this page's own
    // typing is not shown.
    typing(user) {
      if (user === this.user) {
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
      if (!this.isOpen()) {
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
      fetch(`${this.base}/typing`, {
        method: 'POST',
        headers: authHeaders(this.token, { 'Content-Type': 'application/json' }),
        body: JSON.stringify(this.token ? {} : { user: this.user }),
      }).catch(() => {});
    }

    // post sends one message of the outbox and says how it went: the stored
    // message, a reason to retry (with the least wait the server asked
    // for), an access error, or an error that retrying cannot cure. With a
    // token the server posts as its subject, and the body names no user.
    async post(item) {
      let resp;
      try {
        resp = await fetch(`${this.base}/messages`, {
          method: 'POST',
          headers: authHeaders(this.token, { 'Content-Type': 'application/json', 'Idempotency-Key': item.key }),
          body: JSON.stringify(this.token ? { text: item.text } : { text: item.text, user: this.user }),
        });
      } catch {
        return { retry: true, reason: 'cannot reach the server', afterMs: 0 };
      }
      if (resp.ok) {
        try {
          return { message: await resp.json() };
        } catch {
          return { retry: true, reason: 'the answer was cut off', afterMs: 0 };
        }
      }
      if (RETRYABLE.has(resp.status)) {
        const { title } = await readProblem(resp);
        const after = Number(resp.headers.get('Retry-After'));
        return { retry: true, reason: title || `${resp.status}`, afterMs: after > 0 ? after * 1000 : 0 };
      }
      if (resp.status === 403) {
        // Reading may be allowed where posting is not: the chat goes on.
        const { detail } = await readProblem(resp);
        return { error: new Error(`Not allowed to post in this room${detail ? `: ${detail}` : ''}.`) };
      }
      const err = await failure(resp, this.token);
      return err instanceof AccessError ? { denied: err } : { error: err };
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

  // parseEvent returns an event's JSON data, or null.
  function parseEvent(ev) {
    try {
      const data = JSON.parse(ev.data);
      return data && typeof data === 'object' ? data : null;
    } catch {
      return null;
    }
  }

  // Session is a user's rooms and the one stream that follows them all.
  // With a token, user is the token's subject.
  class Session {
    constructor(user, token) {
      this.user = user;
      this.token = token;
      this.rooms = new Map(); // name → Room, in the order joined
      this.openRoom = null;
      this.source = null;
      this.sourceRooms = []; // the rooms of source
      this.sourceFrom = null; // the cursor source was opened with
      this.sourceHeard = false; // source delivered a message
      this.lastID = null; // the composite cursor of the last message seen
      this.cursorRooms = new Set(); // the rooms lastID holds positions of
      this.streamState = 'connecting'; // connecting, open or reconnecting
      this.streamQueued = false;
      this.retryDelay = RETRY_MIN_MS;
      this.retryTimer = 0;
      this.ready = null; // the last answer of /readyz: true, false or null
      this.healthTimer = 0;
      this.closed = false;
    }

    // add joins a room unless joined; the stream follows the new set of
    // rooms.
    add(name) {
      if (!this.rooms.has(name)) {
        this.rooms.set(name, new Room(this, name));
        this.queueStream();
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
      this.queueStream();
      remember(this);
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
      room.loadPresence();
      remember(this);
    }

    // stop ends the session's work and leaves its rooms on screen.
    stop() {
      this.closed = true;
      clearTimeout(this.retryTimer);
      clearTimeout(this.healthTimer);
      for (const room of this.rooms.values()) {
        room.stop();
      }
      if (this.source) {
        this.source.close();
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
      if (this.closed || session !== this) {
        return;
      }
      if (this.rooms.size === 0) {
        setStatus('idle', 'not connected');
      } else if (this.streamState === 'connecting') {
        setStatus('connecting', 'connecting…');
      } else if (this.streamState === 'reconnecting') {
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
      if (session === this) {
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

    // recover follows a stream the server refused. A refusal for the
    // token or permission ends the session; anything else is retried later.
    async recover() {
      for (const room of this.sourceRooms) {
        try {
          await getJSON(`/rooms/${encodeURIComponent(room)}/messages?limit=1`, this.token);
        } catch (err) {
          if (err instanceof AccessError) {
            this.deny(err);
            return;
          }
        }
      }
      this.scheduleReconnect();
    }

    // queueStream reopens the stream for the current rooms once the
    // current task is done, so that joining several rooms at once opens
    // one stream.
    queueStream() {
      if (this.streamQueued) {
        return;
      }
      this.streamQueued = true;
      queueMicrotask(() => {
        this.streamQueued = false;
        if (!this.closed) {
          this.openStream();
        }
      });
    }

    openStream() {
      clearTimeout(this.retryTimer);
      if (this.source) {
        this.source.close();
        this.source = null;
      }
      const rooms = Array.from(this.rooms.keys());
      this.showState();
      if (rooms.length === 0) {
        return;
      }
      const from = this.lastID;
      const query = new URLSearchParams({ rooms: rooms.join(',') });
      if (from) {
        query.set('last_event_id', from);
      }
      if (this.token) {
        query.set('access_token', this.token);
      } else {
        query.set('user', this.user);
      }
      const es = new EventSource(`/stream?${query}`);
      this.source = es;
      this.sourceRooms = rooms;
      this.sourceFrom = from;
      this.sourceCovered = new Set(from ? Array.from(this.cursorRooms).filter((r) => rooms.includes(r)) : []);
      this.sourceHeard = false;
      if (this.streamState === 'open') {
        this.streamState = 'connecting';
        this.showState();
      }
      const on = (type, handle) => es.addEventListener(type, (ev) => {
        if (es === this.source) {
          handle.call(this, ev, es);
        }
      });
      on('open', this.streamOpened);
      on('message', this.streamMessage);
      on('reset', this.streamReset);
      on('join', (ev) => this.streamPresence('join', ev));
      on('leave', (ev) => this.streamPresence('leave', ev));
      on('typing', this.streamTyping);
      on('error', this.streamFailed);
    }

    // streamOpened loads the history of every room the stream does not
    // resume: what was posted there before the subscription began is only
    // in history.
    streamOpened() {
      this.retryDelay = RETRY_MIN_MS;
      this.streamState = 'open';
      this.showState();
      // The open room's list may predate this stream's own join.
      if (this.openRoom) {
        this.openRoom.loadPresence();
      }
      const covered = this.sourceHeard ? new Set(this.sourceRooms) : this.sourceCovered;
      for (const name of this.sourceRooms) {
        const room = this.rooms.get(name);
        if (room && (!covered.has(name) || room.historyFailed)) {
          room.refresh();
        }
      }
    }

    roomOf(data) {
      return data && typeof data.room === 'string' ? this.rooms.get(data.room) : undefined;
    }

    streamMessage(ev) {
      const m = parseEvent(ev);
      const room = this.roomOf(m);
      if (!room) {
        return;
      }
      this.sourceHeard = true;
      if (ev.lastEventId) {
        this.lastID = ev.lastEventId;
        this.cursorRooms = new Set(this.sourceRooms);
      }
      room.received(m);
      // A message arrived, so the server can store messages again.
      if (this.outboxBlocked() || this.ready === false) {
        this.recovered();
      }
    }

    // streamReset shows the loss in the room's timeline; the stream goes
    // on, and so the badge stays as it is.
    streamReset(ev) {
      const r = parseEvent(ev);
      const room = this.roomOf(r);
      if (room) {
        room.showGap(typeof r.detail === 'string' && r.detail ? r.detail : 'some messages are no longer available');
      }
    }

    streamPresence(kind, ev) {
      const p = parseEvent(ev);
      const room = this.roomOf(p);
      if (room && typeof p.user === 'string') {
        room.presenceChanged(kind, p);
      }
    }

    streamTyping(ev) {
      const p = parseEvent(ev);
      const room = this.roomOf(p);
      if (room && typeof p.user === 'string') {
        room.typing(p.user);
      }
    }

    streamFailed(ev, es) {
      this.streamState = 'reconnecting';
      this.showState();
      // EventSource reconnects by itself with Last-Event-ID, except after
      // a refused response, which may be the end of the token (the server
      // ends a stream when its token expires).
      if (es.readyState === EventSource.CLOSED) {
        es.close();
        this.recover();
      }
    }

    scheduleReconnect() {
      if (this.closed) {
        return;
      }
      const delay = this.retryDelay * (0.5 + Math.random() / 2);
      this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        if (!this.closed) {
          this.openStream();
        }
      }, delay);
    }
  }

  // saved reads a choice from storage: the rooms and name from
  // localStorage, the token from sessionStorage so that it dies with the tab.
  function saved(key, storage = localStorage) {
    try {
      return storage.getItem(key) || '';
    } catch {
      return '';
    }
  }

  function save(key, value, storage = localStorage) {
    try {
      if (value) {
        storage.setItem(key, value);
      } else {
        storage.removeItem(key);
      }
    } catch {
      // storage may be disabled; the fields still hold the choice
    }
  }

  function validChoice(rooms, name, token) {
    if (rooms.length === 0 || !rooms.every((room) => ROOM_PATTERN.test(room))) {
      return 'A room is 1 to 128 letters, digits, ".", "_" or "-".';
    }
    if (token) {
      if (!tokenClaims(token)) {
        return 'This token cannot be read: paste the whole JWT, three parts separated by dots.';
      }
      return name ? '' : 'This token names no user (it has no "sub" claim).';
    }
    const chars = Array.from(name).length;
    if (chars < 1 || chars > MAX_NAME_CHARS) {
      return `A name is 1 to ${MAX_NAME_CHARS} characters.`;
    }
    return '';
  }

  // showTokenUser shows, while a token is given, its subject as the name,
  // which cannot then be edited: the server posts as the subject.
  function showTokenUser() {
    const token = ui.token.value.trim();
    if (token) {
      ui.name.value = tokenSubject(token);
      ui.name.readOnly = true;
      ui.name.title = "The token's subject: the server posts as this user";
    } else if (ui.name.readOnly) {
      ui.name.value = saved('roomcast.name');
      ui.name.readOnly = false;
      ui.name.title = '';
    }
  }

  // fitCompose grows the message box with its lines, up to a few; browsers
  // that size it to its content (field-sizing in style.css) ignore this.
  function fitCompose() {
    ui.text.rows = Math.min(ui.text.value.split('\n').length, 6);
  }

  // remember keeps the session's rooms and name in the address (open room
  // first) and in storage, so that a reload comes back to them.
  function remember(s) {
    if (session !== s) {
      return;
    }
    const names = Array.from(s.rooms.keys());
    const open = s.openRoom ? s.openRoom.name : '';
    const ordered = open ? [open, ...names.filter((n) => n !== open)] : names;
    const p = new URLSearchParams();
    for (const room of ordered) {
      p.append('room', room);
    }
    p.set('name', s.user);
    const hash = `#${p}`;
    if (location.hash !== hash) {
      history.replaceState(null, '', hash);
    }
    save('roomcast.rooms', ordered.join(','));
    document.title = open ? `${open} · roomcast` : 'roomcast';
  }

  // showNoRoom is the screen with no room joined.
  function showNoRoom() {
    ui.hint.hidden = false;
    ui.older.hidden = true;
    ui.empty.hidden = true;
    ui.online.hidden = true;
    ui.typing.textContent = '';
    ui.text.disabled = true;
    ui.send.disabled = true;
  }

  // join joins rooms as name (or the token's subject) and opens the first
  // one. A new name or token starts a new session with the rooms joined
  // so far.
  function join(rooms, name, token) {
    if (token) {
      name = tokenSubject(token);
    }
    const problem = validChoice(rooms, name, token);
    if (problem) {
      showError(problem);
      return;
    }
    ui.token.value = token;
    showTokenUser();
    ui.name.value = name;
    ui.room.value = rooms[0];
    if (!token) {
      save('roomcast.name', name);
    }
    save('roomcast.token', token, sessionStorage);
    if (!session || session.closed || session.user !== name || session.token !== token) {
      const carried = session && !session.closed ? Array.from(session.rooms.keys()) : [];
      startSession(name, token);
      rooms = [...rooms, ...carried.filter((r) => !rooms.includes(r))];
    }
    for (const room of rooms) {
      session.add(room);
    }
    session.open(rooms[0]);
  }

  function startSession(name, token) {
    if (session) {
      session.close();
    }
    showError('');
    ui.hint.hidden = true;
    ui.text.disabled = false;
    ui.send.disabled = false;
    session = new Session(name, token);
  }

  // fromHash reads #room=a&room=b&name=..&token=.. and takes a token out
  // of the address at once, so that it is neither left on screen nor in
  // the tab's history.
  function fromHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    const token = (p.get('token') || '').trim();
    if (p.has('token')) {
      p.delete('token');
      history.replaceState(null, '', p.size ? `#${p}` : `${location.pathname}${location.search}`);
    }
    return { rooms: p.getAll('room').filter((r) => r), name: p.get('name') || '', token };
  }

  ui.join.addEventListener('submit', (ev) => {
    ev.preventDefault();
    join([ui.room.value.trim()], ui.name.value.trim(), ui.token.value.trim());
  });

  ui.token.addEventListener('input', showTokenUser);

  ui.compose.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = ui.text.value;
    const room = session && session.openRoom;
    if (!room || text.trim() === '' || ui.send.disabled) {
      return;
    }
    ui.text.value = '';
    fitCompose();
    room.outbox.add(text);
    ui.text.focus();
  });

  // Enter sends; Shift+Enter makes a new line, as does Enter while an input
  // method is composing.
  ui.text.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && !ev.altKey && !ev.ctrlKey && !ev.metaKey) {
      ev.preventDefault();
      ui.compose.requestSubmit();
    }
  });

  ui.text.addEventListener('input', () => {
    fitCompose();
    const room = session && session.openRoom;
    if (room && ui.text.value.trim() !== '') {
      room.noteTyping();
    }
  });

  ui.older.addEventListener('click', async () => {
    const room = session && session.openRoom;
    if (!room) {
      return;
    }
    ui.older.disabled = true;
    try {
      await room.loadOlder();
    } catch (err) {
      if (err instanceof AccessError) {
        room.session.deny(err);
      } else {
        showError(`Could not load older messages: ${err.message}`);
      }
    } finally {
      ui.older.disabled = false;
    }
  });

  window.addEventListener('hashchange', () => {
    const h = fromHash();
    const token = h.token || ui.token.value.trim();
    const name = token ? tokenSubject(token) : h.name;
    if (h.rooms.length === 0 || !name) {
      return;
    }
    const same = session && !session.closed && session.user === name && !h.token &&
      session.openRoom && session.openRoom.name === h.rooms[0] && h.rooms.every((r) => session.rooms.has(r));
    if (!same) {
      join(h.rooms, name, token);
    }
  });

  const start = fromHash();
  const token = start.token || saved('roomcast.token', sessionStorage);
  const savedRooms = saved('roomcast.rooms').split(',').filter((r) => ROOM_PATTERN.test(r));
  const rooms = start.rooms.length > 0 ? start.rooms : savedRooms.length > 0 ? savedRooms : [ui.room.defaultValue];
  ui.room.value = rooms[0];
  ui.name.value = start.name || saved('roomcast.name');
  ui.token.value = token;
  showTokenUser();
  if (token || ui.name.value) {
    join(rooms, ui.name.value, token);
  } else {
    (rooms[0] ? ui.name : ui.room).focus();
  }
})();
