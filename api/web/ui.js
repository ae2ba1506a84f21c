// The page's elements, and what belongs to the whole screen rather than to
// one room: the badge, the banner, the scroll position, the message box.

const $ = (id) => document.getElementById(id);

// ui is the elements of index.html the page works with.
export const ui = {
  join: $('join'), room: $('room'), name: $('name'), token: $('token'), status: $('status'),
  rooms: $('room-list'), online: $('online'), typing: $('typing'),
  log: $('log'), hint: $('hint'), older: $('older'), loading: $('loading'), empty: $('empty'), timelines: $('timelines'),
  error: $('error'), compose: $('compose'), text: $('text'), send: $('send'),
  template: $('message-template'),
};

export function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

export function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
}

export function nearBottom() {
  return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
}

export function scrollToBottom() {
  ui.log.scrollTop = ui.log.scrollHeight;
}

// fitCompose grows the message box with its lines, up to a few; browsers
// that size it to its content (field-sizing in style.css) ignore this.
export function fitCompose() {
  ui.text.rows = Math.min(ui.text.value.split('\n').length, 6);
}

// showNoRoom is the screen with no room joined.
export function showNoRoom() {
  ui.hint.hidden = false;
  ui.older.hidden = true;
  ui.loading.hidden = true;
  ui.empty.hidden = true;
  ui.online.hidden = true;
  ui.typing.textContent = '';
  ui.text.disabled = true;
  ui.send.disabled = true;
}
