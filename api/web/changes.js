// Requests that change what a room holds or what its user has read: edit
// and delete a message, move the read marker, read the markers and unread
// counts of the joined rooms. Without a token each names the page's user,
// as posts do; with one the server takes its subject.

import { AccessError, authHeaders, failure, readProblem } from './server.js';

// ChangeRefused is an edit or delete the server refused (403, 409, 412
// and the like) with the problem's words; the session goes on.
export class ChangeRefused extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function send(url, init, token) {
  let resp;
  try {
    resp = await fetch(url, init);
  } catch {
    throw new Error('Cannot reach the server.');
  }
  if (resp.ok) {
    return resp.json();
  }
  if (resp.status === 401) {
    throw await failure(resp, token);
  }
  if (resp.status >= 400 && resp.status < 500) {
    const { title, detail } = await readProblem(resp);
    throw new ChangeRefused(resp.status, detail || title || `${resp.status} ${resp.statusText}`.trim());
  }
  throw await failure(resp, token);
}

function messageURL(room, id, user) {
  const url = `${room.base}/messages/${encodeURIComponent(id)}`;
  return user ? `${url}?${new URLSearchParams({ user })}` : url;
}

// editMessage replaces the text of message m (as the page holds it, so an
// edit made meanwhile by another is a 412, not overwritten) and returns
// its new version.
export function editMessage(room, m, text) {
  const { token, user } = room;
  return send(messageURL(room, m.id), {
    method: 'PATCH',
    headers: authHeaders(token, { 'Content-Type': 'application/json', 'If-Match': `"${m.version ?? 1}"` }),
    body: JSON.stringify(token ? { text } : { text, user }),
  }, token);
}

// deleteMessage turns message m into its tombstone and returns it.
export function deleteMessage(room, m) {
  const { token, user } = room;
  return send(messageURL(room, m.id, token ? '' : user), {
    method: 'DELETE',
    headers: authHeaders(token, { Accept: 'application/json' }),
  }, token);
}

// getMessage reads the latest version of a message.
export function getMessage(room, id) {
  return send(messageURL(room, id), { headers: authHeaders(room.token, { Accept: 'application/json' }) }, room.token);
}

// markRead moves the user's read marker in room to id; the answer is
// the marker where it is now.
export function markRead(room, id) {
  const { token, user } = room;
  return send(`${room.base}/read`, {
    method: 'PUT',
    headers: authHeaders(token, { 'Content-Type': 'application/json' }),
    body: JSON.stringify(token ? { id } : { id, user }),
  }, token);
}

// readState returns the user's read state in rooms (at most 100): room
// name → {room, last_read?, unread, last_message?}.
export async function readState(session, rooms) {
  const query = new URLSearchParams({ rooms: rooms.join(',') });
  if (!session.token) {
    query.set('user', session.user);
  }
  const page = await send(`/me/rooms?${query}`, { headers: authHeaders(session.token, { Accept: 'application/json' }) }, session.token);
  const states = new Map();
  for (const r of Array.isArray(page.rooms) ? page.rooms : []) {
    if (r && typeof r.room === 'string' && Number.isInteger(r.unread)) {
      states.set(r.room, r);
    }
  }
  return states;
}

export { AccessError };
