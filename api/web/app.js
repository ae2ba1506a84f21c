// roomcast chat page: the entry module. It reads the address and storage,
// joins, and wires the forms; the work is done by the modules it imports:
//
//   session.js   the rooms joined, the badge, the server's health
//   stream.js    the one EventSource that follows every room
//   sharedstream.js  that EventSource, shared by the page's tabs
//   room.js      a room's timeline, history pages and gaps
//   outbox.js    a room's messages not yet stored, sent once each
//   changes.js   edits, deletes, read markers and unread counts
//   presence.js  who is online and typing in a room
//   render.js    the elements of one message
//   server.js    requests, problem details, the readiness probe
//   address.js   the choices kept in the address and storage
//   token.js     reading a sign-in token for display
//   rules.js     what the server refuses, refused here first
//   ui.js        the page's elements and screen-wide state
//
// When the server wants sign-in, the page sends the token given in its
// Token field (or in the URL hash, from where it is removed at once).

import { fromHash, save, saved } from './address.js';
import { isBlank, MAX_NAME_CHARS, ROOM_PATTERN } from './rules.js';
import { AccessError } from './server.js';
import { currentSession, startSession } from './session.js';
import { tokenClaims, tokenSubject } from './token.js';
import { fitCompose, showError, ui } from './ui.js';

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
  let session = currentSession();
  if (!session || session.closed || session.user !== name || session.token !== token) {
    const carried = session && !session.closed ? Array.from(session.rooms.keys()) : [];
    session = startSession(name, token);
    rooms = [...rooms, ...carried.filter((r) => !rooms.includes(r))];
  }
  for (const room of rooms) {
    session.add(room);
  }
  session.open(rooms[0]);
}

// openRoom is the room on screen, or null.
function openRoom() {
  const session = currentSession();
  return session && session.openRoom;
}

ui.join.addEventListener('submit', (ev) => {
  ev.preventDefault();
  join([ui.room.value.trim()], ui.name.value.trim(), ui.token.value.trim());
});

ui.token.addEventListener('input', showTokenUser);

ui.compose.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = ui.text.value;
  const room = openRoom();
  if (!room || isBlank(text) || ui.send.disabled) {
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
  const room = openRoom();
  if (room && !isBlank(ui.text.value)) {
    room.presence.noteTyping();
  }
});

ui.older.addEventListener('click', async () => {
  const room = openRoom();
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

// The open room's newest message on screen is read.
const viewed = () => {
  const room = openRoom();
  if (room) {
    room.markViewed();
  }
};
ui.log.addEventListener('scroll', viewed, { passive: true });
document.addEventListener('visibilitychange', viewed);

window.addEventListener('hashchange', () => {
  const h = fromHash();
  const token = h.token || ui.token.value.trim();
  const name = token ? tokenSubject(token) : h.name;
  if (h.rooms.length === 0 || !name) {
    return;
  }
  const session = currentSession();
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
