// The elements of one message: stored, or pending in an outbox. Text from
// the server is only ever set with textContent, never parsed as HTML.

import { ui } from './ui.js';

// parseID splits a message id "<epoch>-<seq>".
export function parseID(id) {
  const i = id.indexOf('-');
  return { epoch: id.slice(0, i), seq: Number(id.slice(i + 1)) };
}

// compareIDs orders two message ids of a room: negative, 0 or positive.
// Ids of one epoch compare by seq; epochs (later ones are longer or
// greater) by their text.
export function compareIDs(a, b) {
  const x = parseID(a);
  const y = parseID(b);
  if (x.epoch !== y.epoch) {
    return x.epoch.length - y.epoch.length || (x.epoch < y.epoch ? -1 : 1);
  }
  return x.seq - y.seq;
}

// versionOf is a message's version; 1 for a server that does not send it.
export function versionOf(m) {
  return Number.isInteger(m.version) ? m.version : 1;
}

// renderMessage makes a stored message's <li>: a tombstone says the
// message was deleted, an edited one says so; changeable, it has Edit and
// Delete buttons.
export function renderMessage(m, own, changeable = false) {
  const li = ui.template.content.firstElementChild.cloneNode(true);
  const { epoch, seq } = parseID(m.id);
  li.dataset.id = m.id;
  li.dataset.epoch = epoch;
  li.dataset.seq = String(seq);
  li.dataset.version = String(versionOf(m));
  li.classList.toggle('own', own);
  li.querySelector('.user').textContent = String(m.user ?? '');
  const text = li.querySelector('.text');
  if (m.deleted === true) {
    li.classList.add('deleted');
    text.textContent = 'message deleted';
  } else {
    text.textContent = String(m.text ?? '');
    if (typeof m.edited_at === 'string') {
      const edited = li.querySelector('.edited');
      edited.textContent = '(edited)';
      const at = new Date(m.edited_at);
      if (!Number.isNaN(at.getTime())) {
        edited.title = `edited ${at.toLocaleString()}`;
      }
    }
    if (changeable) {
      li.querySelector('.actions').append(actionButton('edit', 'Edit'), actionButton('delete', 'Delete'));
    }
  }
  const time = li.querySelector('.time');
  const at = new Date(m.time);
  if (!Number.isNaN(at.getTime())) {
    time.dateTime = m.time;
    time.title = at.toLocaleString();
    time.textContent = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }
  return li;
}

function actionButton(action, label) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `action ${action}`;
  b.dataset.action = action;
  b.textContent = label;
  return b;
}

// renderEditor is the form that edits a message's text in place.
export function renderEditor(text) {
  const form = document.createElement('form');
  form.className = 'editor';
  const area = document.createElement('textarea');
  area.className = 'edit-text';
  area.rows = Math.min(text.split('\n').length, 6);
  area.value = text;
  area.setAttribute('aria-label', 'Edited message');
  const save = document.createElement('button');
  save.type = 'submit';
  save.className = 'save';
  save.textContent = 'Save';
  const cancel = document.createElement('button');
  cancel.type = 'button';
  cancel.className = 'cancel';
  cancel.textContent = 'Cancel';
  form.append(area, save, cancel);
  return form;
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
