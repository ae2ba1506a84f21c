// roomcast chat page.
//
// History comes from GET /rooms/{room}/messages, live messages from an
// EventSource on /rooms/{room}/stream that resumes after the newest message
// the page has, so nothing falls between the two and a reconnect replays what
// was missed. Every message is kept once, by id. Text from the server is only
// ever set with textContent, never parsed as HTML.
//
// When the server wants sign-in, the page sends the token given in its Token
// field (or in the URL hash, from where it is removed at once) as a bearer
// token, and on the stream as access_token, since EventSource cannot send
// headers. The token is kept in sessionStorage, so it dies with the tab.
//
// A sent message waits in the outbox, shown as pending below the timeline,
// until the server has stored it. Each message gets its Idempotency-Key once,
// so the automatic resends after a failure the server may recover from (no
// connection, 408, 429, 5xx) can never store it twice. While sends fail the
// badge says so and the page asks /readyz for the server's recovery, so that
// it resends at once and clears the badge when the server is back.
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

  const $ = (id) => document.getElementById(id);
  const ui = {
    join: $('join'), room: $('room'), name: $('name'), token: $('token'), status: $('status'),
    log: $('log'), hint: $('hint'), older: $('older'), empty: $('empty'), list: $('messages'),
    outbox: $('outbox'),
    error: $('error'), compose: $('compose'), text: $('text'), send: $('send'),
    template: $('message-template'),
  };

  // chat is the joined room, or null.
  let chat = null;

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

  // Outbox sends a chat's messages in order, one at a time, each with the
  // Idempotency-Key it got when it was written, and keeps each one on screen
  // as pending until the server has stored it.
  class Outbox {
    constructor(chat) {
      this.chat = chat;
      this.items = []; // {text, key, li}, oldest first
      this.busy = false; // a post is in flight
      this.blocked = false; // the last post failed and will be sent again
      this.delay = SEND_RETRY_MIN_MS;
      this.timer = 0;
    }

    add(text) {
      const item = { text, key: newKey(), li: renderPending(text, this.chat.user) };
      if (this.blocked) {
        notePending(item.li, 'waiting', 'not sent yet; waiting for the server…');
      } else {
        notePending(item.li, 'sending', 'sending…');
      }
      ui.outbox.append(item.li);
      this.items.push(item);
      this.chat.updateEmpty();
      scrollToBottom();
      this.kick();
    }

    // kick sends the oldest message now, unless a post is in flight.
    kick() {
      clearTimeout(this.timer);
      this.timer = 0;
      if (!this.busy && !this.chat.closed && this.items.length > 0) {
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
      const outcome = await this.chat.post(item);
      this.busy = false;
      if (this.chat.closed) {
        return;
      }
      if (outcome.message) {
        this.sent(item, outcome.message);
      } else if (outcome.retry) {
        this.later(item, outcome);
      } else if (outcome.denied) {
        this.chat.deny(outcome.denied);
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
      this.chat.stored(m);
      this.kick();
    }

    // later keeps the message pending and sends it again after a backoff,
    // or at once when the chat sees the server recover.
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
      this.chat.troubled();
    }

    // refused gives up on a message the server will never take as it is,
    // and hands its text back for editing.
    refused(item, err) {
      this.items.shift();
      this.blocked = false;
      this.giveUp(item, err.message);
      if (ui.text.value === '') {
        this.edit(item);
      }
      showError(err.message);
      this.chat.showState();
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
      this.chat.updateEmpty();
    }
  }

  // Chat is one joined room: its messages, its stream and its outbox. With
  // a token, user is the token's subject.
  class Chat {
    constructor(room, user, token) {
      this.room = room;
      this.user = user;
      this.token = token;
      this.base = `/rooms/${encodeURIComponent(room)}`;
      this.shown = new Map(); // message id → its <li>
      this.oldest = null; // before= cursor of the next older page
      this.resumeID = null; // every message up to this one has been received
      this.source = null;
      this.sourceFrom = null; // resumeID when source was opened
      this.sourceHeard = false; // source delivered a message
      this.streamState = 'connecting'; // connecting, open or reconnecting
      this.retryDelay = RETRY_MIN_MS;
      this.retryTimer = 0;
      this.outbox = new Outbox(this);
      this.ready = null; // the last answer of /readyz: true, false or null
      this.healthTimer = 0;
      this.historyFailed = false;
      this.closed = false;
    }

    async start() {
      this.showState();
      await this.refresh();
      if (!this.closed) {
        this.openStream();
      }
    }

    close() {
      this.closed = true;
      clearTimeout(this.retryTimer);
      clearTimeout(this.healthTimer);
      this.outbox.stop();
      if (this.source) {
        this.source.close();
      }
    }

    // showState shows on the badge what works: the stream, and whether
    // messages can be sent.
    showState() {
      if (this.closed || chat !== this) {
        return;
      }
      if (this.streamState === 'connecting') {
        setStatus('connecting', 'connecting…');
      } else if (this.streamState === 'reconnecting') {
        setStatus('reconnecting', 'reconnecting…');
      } else if (this.outbox.blocked || this.ready === false) {
        setStatus('unavailable', "connected · can't send right now");
      } else {
        setStatus('connected', 'connected');
      }
    }

    // deny ends the chat for a refused token or permission, saying so until
    // the next join.
    deny(err) {
      this.close();
      if (chat === this) {
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
      if (ready !== null && (this.outbox.blocked || ready === false)) {
        this.watchHealth();
      }
    }

    // recovered follows a sign that the server works again: what failed is
    // tried again at once.
    recovered() {
      this.ready = true;
      this.outbox.kick();
      if (this.historyFailed) {
        this.refresh();
      }
      this.showState();
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
          this.deny(err);
          return;
        }
        this.historyFailed = true;
        showError(`Could not load history: ${err.message}`);
        this.troubled();
      }
    }

    // recover follows a stream the server refused. A refusal for the
    // token or permission ends the chat; anything else is retried later.
    async recover() {
      try {
        await getJSON(`${this.base}/messages?limit=1`, this.token);
      } catch (err) {
        if (err instanceof AccessError) {
          this.deny(err);
          return;
        }
      }
      this.scheduleReconnect();
    }

    // loadLatest merges the newest page of history. Until something is
    // received, it also sets where the stream resumes and older pages start.
    async loadLatest() {
      const page = await getJSON(`${this.base}/messages?limit=${PAGE_SIZE}`, this.token);
      if (this.closed) {
        return;
      }
      const stick = nearBottom();
      for (const m of page.messages) {
        this.place(m);
      }
      const n = page.messages.length;
      if (n > 0 && this.oldest === null) {
        this.oldest = page.messages[0].id;
        this.setHasOlder(page.has_more);
      }
      if (n > 0 && this.resumeID === null) {
        this.resumeID = page.messages[n - 1].id;
      }
      this.updateEmpty();
      if (stick) {
        scrollToBottom();
      }
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
          ui.list.prepend(li);
          this.shown.set(m.id, li);
        }
      }
      if (page.messages.length > 0) {
        this.oldest = page.messages[0].id;
      }
      this.setHasOlder(page.has_more);
      ui.log.scrollTop = ui.log.scrollHeight - fromBottom;
    }

    setHasOlder(more) {
      ui.older.hidden = !more;
    }

    updateEmpty() {
      ui.empty.hidden = this.shown.size > 0 || ui.outbox.childElementCount > 0;
    }

    // place shows a message once, in order among those of its epoch.
    place(m) {
      if (!m || typeof m.id !== 'string' || !m.id.includes('-') || this.shown.has(m.id)) {
        return;
      }
      const li = renderMessage(m, m.user === this.user);
      let before = ui.list.lastElementChild;
      while (before && before.dataset.epoch === li.dataset.epoch &&
             Number(before.dataset.seq) > Number(li.dataset.seq)) {
        before = before.previousElementSibling;
      }
      if (before) {
        before.after(li);
      } else {
        ui.list.prepend(li);
      }
      this.shown.set(m.id, li);
      this.updateEmpty();
    }

    // showGap marks in the timeline where messages were lost.
    showGap(detail) {
      const gap = document.createElement('li');
      gap.className = 'gap';
      gap.setAttribute('role', 'separator');
      gap.textContent = `Missed messages: ${detail}`;
      ui.list.append(gap);
    }

    openStream() {
      clearTimeout(this.retryTimer);
      const from = this.resumeID;
      const query = new URLSearchParams();
      if (from) {
        query.set('last_event_id', from);
      }
      if (this.token) {
        query.set('access_token', this.token);
      }
      const es = new EventSource(`${this.base}/stream${query.size ? `?${query}` : ''}`);
      this.source = es;
      this.sourceFrom = from;
      this.sourceHeard = false;
      const on = (type, handle) => es.addEventListener(type, (ev) => {
        if (es === this.source) {
          handle.call(this, ev, es);
        }
      });
      on('open', this.streamOpened);
      on('message', this.streamMessage);
      on('reset', this.streamReset);
      on('error', this.streamFailed);
    }

    streamOpened() {
      this.retryDelay = RETRY_MIN_MS;
      this.streamState = 'open';
      this.showState();
      // Opened without a resume point: what was posted before the
      // subscription began is only in history.
      if (this.resumeID === null || this.historyFailed) {
        this.refresh();
      }
    }

    streamMessage(ev) {
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      const stick = nearBottom();
      this.sourceHeard = true;
      this.place(m);
      this.resumeID = ev.lastEventId || m.id;
      if (stick) {
        scrollToBottom();
      }
      // A message arrived, so the server can store messages again.
      if (this.outbox.blocked || this.ready === false) {
        this.recovered();
      }
    }

    // streamReset shows the loss in the timeline; the stream goes on, and
    // so the badge stays as it is.
    streamReset(ev) {
      let detail = 'some messages are no longer available';
      try {
        const r = JSON.parse(ev.data);
        if (typeof r.detail === 'string' && r.detail) {
          detail = r.detail;
        }
      } catch {
        // keep the default
      }
      this.showGap(detail);
      if (nearBottom()) {
        scrollToBottom();
      }
    }

    streamFailed(ev, es) {
      this.streamState = 'reconnecting';
      this.showState();
      // EventSource reconnects by itself with Last-Event-ID, except after
      // a refused response, which may be the end of the token (the server
      // ends a stream when its token expires), and it cannot resume from a
      // point it never heard of: open a new one from where the page is.
      if (es.readyState === EventSource.CLOSED) {
        es.close();
        this.recover();
      } else if (!this.sourceHeard && this.sourceFrom !== this.resumeID) {
        es.close();
        this.scheduleReconnect();
      }
    }

    scheduleReconnect() {
      if (this.closed) {
        return;
      }
      const delay = this.retryDelay * (0.5 + Math.random() / 2);
      this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
      this.retryTimer = setTimeout(() => {
        if (!this.closed) {
          this.openStream();
        }
      }, delay);
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
      const stick = nearBottom();
      this.place(m);
      if (stick) {
        scrollToBottom();
      }
      this.ready = true;
      if (!this.historyFailed) {
        showError('');
      }
      this.showState();
    }
  }

  // saved reads a choice from storage: the room and name from
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

  function validChoice(room, name, token) {
    if (!ROOM_PATTERN.test(room)) {
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

  function join(room, name, token) {
    if (token) {
      name = tokenSubject(token);
    }
    const problem = validChoice(room, name, token);
    if (problem) {
      showError(problem);
      return;
    }
    if (chat) {
      chat.close();
    }
    ui.room.value = room;
    ui.token.value = token;
    showTokenUser();
    ui.name.value = name;
    save('roomcast.room', room);
    if (!token) {
      save('roomcast.name', name);
    }
    save('roomcast.token', token, sessionStorage);
    const hash = `#${new URLSearchParams({ room, name })}`;
    if (location.hash !== hash) {
      history.replaceState(null, '', hash);
    }
    document.title = `${room} · roomcast`;
    showError('');
    ui.list.replaceChildren();
    ui.outbox.replaceChildren();
    ui.hint.hidden = true;
    ui.older.hidden = true;
    ui.empty.hidden = true;
    ui.text.disabled = false;
    ui.send.disabled = false;
    chat = new Chat(room, name, token);
    chat.start();
  }

  // fromHash reads #room=..&name=..&token=.. and takes a token out of the
  // address at once, so that it is neither left on screen nor in the tab's
  // history.
  function fromHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    const token = (p.get('token') || '').trim();
    if (p.has('token')) {
      p.delete('token');
      history.replaceState(null, '', p.size ? `#${p}` : `${location.pathname}${location.search}`);
    }
    return { room: p.get('room') || '', name: p.get('name') || '', token };
  }

  ui.join.addEventListener('submit', (ev) => {
    ev.preventDefault();
    join(ui.room.value.trim(), ui.name.value.trim(), ui.token.value.trim());
  });

  ui.token.addEventListener('input', showTokenUser);

  ui.compose.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = ui.text.value;
    if (!chat || text.trim() === '' || ui.send.disabled) {
      return;
    }
    ui.text.value = '';
    fitCompose();
    chat.outbox.add(text);
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

  ui.text.addEventListener('input', fitCompose);

  ui.older.addEventListener('click', async () => {
    if (!chat) {
      return;
    }
    const reader = chat;
    ui.older.disabled = true;
    try {
      await reader.loadOlder();
    } catch (err) {
      if (err instanceof AccessError) {
        reader.deny(err);
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
    if (h.room && name && (h.token || !chat || chat.room !== h.room || chat.user !== name)) {
      join(h.room, name, token);
    }
  });

  const start = fromHash();
  const token = start.token || saved('roomcast.token', sessionStorage);
  const room = start.room || saved('roomcast.room') || ui.room.defaultValue;
  ui.room.value = room;
  ui.name.value = start.name || saved('roomcast.name');
  ui.token.value = token;
  showTokenUser();
  if (room && (token || ui.name.value)) {
    join(room, ui.name.value, token);
  } else {
    (room ? ui.name : ui.room).focus();
  }
})();
