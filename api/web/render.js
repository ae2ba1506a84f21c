// The elements of one message: stored, or pending in an outbox. Text from
// the server is only ever set with textContent, never parsed as HTML.

import { ui } from './ui.js';

// parseID splits a message id "<epoch>-<seq>".
export function parseID(id) {
  const i = id.indexOf('-');
  return { epoch: id.slice(0, i), seq: Number(id.slice(i + 1)) };
}

export function renderMessage(m, own) {
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
export function renderPending(text, user) {
  const li = ui.template.content.firstElementChild.cloneNode(true);
  li.classList.add('own', 'pending');
  li.querySelector('.user').textContent = user;
  li.querySelector('.text').textContent = text;
  return li;
}

// notePending sets what a pending message's note says: state is sending,
// waiting (to be sent again) or failed (given up).
export function notePending(li, state, note) {
  li.dataset.state = state;
  li.querySelector('.note').textContent = note;
}
