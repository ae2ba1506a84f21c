// roomcast chat page.
//
// History comes from GET /rooms/{room}/messages, live messages from an
// EventSource on /rooms/{room}/stream that resumes after the newest message
// the page has, so nothing falls between the two and a reconnect replays what
// was missed. Every message is kept once, by id. Text from the server is only
// ever set with textContent, never parsed as HTML.
'use strict';

(() => {
  const PAGE_SIZE = 50;
  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 15000;
  const ROOM_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
  const MAX_NAME_CHARS = 64;

  const $ = (id) => document.getElementById(id);
  const ui = {
    join: $('join'), room: $('room'), name: $('name'), status: $('status'),
    log: $('log'), older: $('older'), empty: $('empty'), list: $('messages'),
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

  // problemMessage describes a failed response, from its problem details
  // when it has them.
  async function problemMessage(resp) {
    let text = `${resp.status} ${resp.statusText}`.trim();
    const type = resp.headers.get('Content-Type') || '';
    if (type.includes('json')) {
      try {
        const p = await resp.json();
        if (typeof p.title === 'string') {
          text = typeof p.detail === 'string' && p.detail ? `${p.title}: ${p.detail}` : p.title;
        }
      } catch {
        // keep the status line
      }
    }
    const after = resp.headers.get('Retry-After');
    if (after) {
      text += ` (retry in ${after} s)`;
    }
    return text;
  }

  async function getJSON(url) {
    let resp;
    try {
      resp = await fetch(url, { headers: { Accept: 'application/json' } });
    } catch {
      throw new Error('Cannot reach the server.');
    }
    if (!resp.ok) {
      throw new Error(await problemMessage(resp));
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

  function nearBottom() {
    return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
  }

  function scrollToBottom() {
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  // Chat is one joined room: its messages, its stream and its sender.
  class Chat {
    constructor(room, user) {
      this.room = room;
      this.user = user;
      this.base = `/rooms/${encodeURIComponent(room)}`;
      this.shown = new Map(); // message id → its <li>
      this.oldest = null; // before= cursor of the next older page
      this.resumeID = null; // every message up to this one has been received
      this.source = null;
      this.sourceFrom = null; // resumeID when source was opened
      this.sourceHeard = false; // source delivered a message
      this.retryDelay = RETRY_MIN_MS;
      this.retryTimer = 0;
      this.pending = null; // {text, key} of a send that failed
      this.historyFailed = false;
      this.closed = false;
    }

    async start() {
      setStatus('connecting', 'connecting…');
      await this.refresh();
      if (!this.closed) {
        this.openStream();
      }
    }

    close() {
      this.closed = true;
      clearTimeout(this.retryTimer);
      if (this.source) {
        this.source.close();
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
        this.historyFailed = true;
        showError(`Could not load history: ${err.message}`);
      }
    }

    // loadLatest merges the newest page of history. Until something is
    // received, it also sets where the stream resumes and older pages start.
    async loadLatest() {
      const page = await getJSON(`${this.base}/messages?limit=${PAGE_SIZE}`);
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
      const page = await getJSON(`${this.base}/messages?limit=${PAGE_SIZE}&before=${encodeURIComponent(this.oldest)}`);
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
      ui.empty.hidden = this.shown.size > 0;
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

    openStream() {
      clearTimeout(this.retryTimer);
      const from = this.resumeID;
      const query = from ? `?last_event_id=${encodeURIComponent(from)}` : '';
      const es = new EventSource(`${this.base}/stream${query}`);
      this.source = es;
      this.sourceFrom = from;
      this.sourceHeard = false;

      es.addEventListener('open', () => {
        if (es !== this.source) {
          return;
        }
        this.retryDelay = RETRY_MIN_MS;
        setStatus('connected', 'connected');
        // Opened without a resume point: what was posted before the
        // subscription began is only in history.
        if (this.resumeID === null) {
          this.refresh();
        }
      });
      es.addEventListener('message', (ev) => {
        if (es !== this.source) {
          return;
        }
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
      });
      es.addEventListener('reset', (ev) => {
        if (es !== this.source) {
          return;
        }
        let detail = 'some messages are no longer available';
        try {
          const r = JSON.parse(ev.data);
          if (typeof r.detail === 'string' && r.detail) {
            detail = r.detail;
          }
        } catch {
          // keep the default
        }
        const gap = document.createElement('li');
        gap.className = 'gap';
        gap.textContent = `Missed messages: ${detail}`;
        ui.list.append(gap);
        setStatus('missed', 'connected · missed messages');
      });
      es.addEventListener('error', () => {
        if (es !== this.source) {
          return;
        }
        setStatus('reconnecting', 'reconnecting…');
        // EventSource reconnects by itself with Last-Event-ID, except after
        // a refused response, and it cannot resume from a point it never
        // heard of: open a new one from where the page is then.
        if (es.readyState === EventSource.CLOSED || (!this.sourceHeard && this.sourceFrom !== this.resumeID)) {
          es.close();
          this.scheduleReconnect();
        }
      });
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

    // send posts text. A failed send keeps its Idempotency-Key, so that
    // sending the same text again cannot store it twice.
    async send(text) {
      const key = this.pending && this.pending.text === text ? this.pending.key : newKey();
      this.pending = { text, key };
      let resp;
      try {
        resp = await fetch(`${this.base}/messages`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key },
          body: JSON.stringify({ text, user: this.user }),
        });
      } catch {
        throw new Error('Cannot reach the server; your message was not sent.');
      }
      if (!resp.ok) {
        throw new Error(await problemMessage(resp));
      }
      this.pending = null;
      const m = await resp.json();
      if (!this.closed) {
        this.place(m);
        scrollToBottom();
      }
    }
  }

  function saved(key) {
    try {
      return localStorage.getItem(key) || '';
    } catch {
      return '';
    }
  }

  function save(key, value) {
    try {
      localStorage.setItem(key, value);
    } catch {
      // storage may be disabled; the URL hash still holds the choice
    }
  }

  function validChoice(room, name) {
    if (!ROOM_PATTERN.test(room)) {
      return 'A room is 1 to 128 letters, digits, ".", "_" or "-".';
    }
    const chars = Array.from(name).length;
    if (chars < 1 || chars > MAX_NAME_CHARS) {
      return `A name is 1 to ${MAX_NAME_CHARS} characters.`;
    }
    return '';
  }

  function join(room, name) {
    const problem = validChoice(room, name);
    if (problem) {
      showError(problem);
      return;
    }
    if (chat) {
      chat.close();
    }
    ui.room.value = room;
    ui.name.value = name;
    save('roomcast.room', room);
    save('roomcast.name', name);
    const hash = `#${new URLSearchParams({ room, name })}`;
    if (location.hash !== hash) {
      history.replaceState(null, '', hash);
    }
    document.title = `${room} · roomcast`;
    showError('');
    ui.list.replaceChildren();
    ui.older.hidden = true;
    ui.empty.hidden = true;
    ui.text.disabled = false;
    ui.send.disabled = false;
    chat = new Chat(room, name);
    chat.start();
  }

  function fromHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    return { room: p.get('room') || '', name: p.get('name') || '' };
  }

  ui.join.addEventListener('submit', (ev) => {
    ev.preventDefault();
    join(ui.room.value.trim(), ui.name.value.trim());
  });

  ui.compose.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = ui.text.value;
    if (!chat || text.trim() === '' || ui.send.disabled) {
      return;
    }
    ui.send.disabled = true;
    try {
      await chat.send(text);
      ui.text.value = '';
      showError('');
    } catch (err) {
      showError(err.message);
    } finally {
      ui.send.disabled = false;
      ui.text.focus();
    }
  });

  ui.older.addEventListener('click', async () => {
    if (!chat) {
      return;
    }
    ui.older.disabled = true;
    try {
      await chat.loadOlder();
    } catch (err) {
      showError(`Could not load older messages: ${err.message}`);
    } finally {
      ui.older.disabled = false;
    }
  });

  window.addEventListener('hashchange', () => {
    const { room, name } = fromHash();
    if (room && name && (!chat || chat.room !== room || chat.user !== name)) {
      join(room, name);
    }
  });

  const start = fromHash();
  const room = start.room || saved('roomcast.room');
  const name = start.name || saved('roomcast.name');
  ui.room.value = room;
  ui.name.value = name;
  if (room && name) {
    join(room, name);
  } else {
    (room ? ui.name : ui.room).focus();
  }
})();
