// Where the page keeps its choices: the rooms and name in the address and
// in localStorage, so that a reload comes back to them, and the token in
// sessionStorage, so that it dies with the tab.

// saved reads a choice from storage.
export function saved(key, storage = localStorage) {
  try {
    return storage.getItem(key) || '';
  } catch {
    return '';
  }
}

export function save(key, value, storage = localStorage) {
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

// remember keeps a session's rooms and name in the address (open room
// first) and in storage.
export function remember(s) {
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

// fromHash reads #room=a&room=b&name=..&token=.. and takes a token out
// of the address at once, so that it is neither left on screen nor in
// the tab's history.
export function fromHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const token = (p.get('token') || '').trim();
  if (p.has('token')) {
    p.delete('token');
    history.replaceState(null, '', p.size ? `#${p}` : `${location.pathname}${location.search}`);
  }
  return { rooms: p.getAll('room').filter((r) => r), name: p.get('name') || '', token };
}
