// A room's outbox: a sent message waits in it, shown as pending below the
// room's timeline, until the server has stored it. Each message gets its
// Idempotency-Key once, so the automatic resends after a failure the server
// may recover from (no connection, 408, 429, 5xx) can never store it twice.

import { notePending, renderPending } from './render.js';
import { AccessError, authHeaders, failure, readProblem } from './server.js';
import { fitCompose, scrollToBottom, showError, ui } from './ui.js';

const SEND_RETRY_MIN_MS = 1000;
const SEND_RETRY_MAX_MS = 10000;
// Statuses after which the same post, sent again later, may succeed.
const RETRYABLE = new Set([408, 429, 500, 502, 503, 504]);

function newKey() {
  if (crypto.randomUUID) {
    return crypto.randomUUID();
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// backoff returns a delay of about ms, randomised so that pages do not
// retry in step.
function backoff(ms) {
  return ms * (0.75 + Math.random() / 2);
}

// Outbox sends a room's messages in order, one at a time, each with the
// Idempotency-Key it got when it was written, and keeps each one on screen
// as pending until the server has stored it.
export class Outbox {
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
    const outcome = await this.post(item);
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

  // post sends one message and says how it went: the stored message, a
  // reason to retry (with the least wait the server asked for), an access
  // error, or an error that retrying cannot cure. With a token the server
  // posts as its subject, and the body names no user.
  async post(item) {
    const { base, token, user } = this.room;
    let resp;
    try {
      resp = await fetch(`${base}/messages`, {
        method: 'POST',
        headers: authHeaders(token, { 'Content-Type': 'application/json', 'Idempotency-Key': item.key }),
        body: JSON.stringify(token ? { text: item.text } : { text: item.text, user }),
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
    const err = await failure(resp, token);
    return err instanceof AccessError ? { denied: err } : { error: err };
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
