// The page at `/`: a thin UI over RtcMesh. Tests read window.rtcmeshApp
// instead of scraping the DOM.

import { RtcMesh, randomId, isValidId } from './rtcmesh-client.js';

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
};

function fmtBytes(n) {
  if (n === null || n === undefined) return '?';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

const query = new URLSearchParams(location.search);
const app = {
  mesh: new RtcMesh(),
  peerId: isValidId(query.get('peer')) ? query.get('peer') : `web-${randomId(8).toLowerCase()}`,
  received: [], // { from, id, name, size, sha256, ok, error, url }
  sent: [], // { to, id, name, size, sha256, ok, error }
  chats: [], // { from, text, ts, relayed, mine }
  errors: [],
  joined: false,
  join: null,
  leave: null,
};
window.rtcmeshApp = app;
const mesh = app.mesh;

// ------------------------------------------------------------------ join / leave

$('room').value = query.get('room') || $('room').value;
$('name').value = query.get('name') || '';
$('peer-id').textContent = app.peerId;

function setJoinedUi(joined) {
  app.joined = joined;
  $('join').disabled = joined;
  $('leave').disabled = !joined;
  $('room').disabled = joined;
  $('name').disabled = joined;
  $('chat-input').disabled = !joined;
  $('chat-send').disabled = !joined;
  updateFileForm();
}

app.join = async () => {
  const room = $('room').value.trim();
  const name = $('name').value.trim() || app.peerId;
  const url = new URL(location.href);
  url.searchParams.set('room', room);
  url.searchParams.set('name', name);
  history.replaceState(null, '', url);
  $('join').disabled = true;
  try {
    await mesh.join({ room, peer: app.peerId, metadata: { name }, token: query.get('token') || undefined });
    setJoinedUi(true);
    system(`joined room ${room} as ${app.peerId}`);
  } catch (e) {
    $('join').disabled = false;
    system(`could not join: ${e.message}`);
    throw e;
  }
};

app.leave = () => {
  mesh.leave();
  setJoinedUi(false);
  system('left the room');
  renderPeers();
};

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  app.join().catch(() => {});
});
$('leave').addEventListener('click', () => app.leave());

// ------------------------------------------------------------------ chat

function addChatLine(entry) {
  app.chats.push(entry);
  const li = el('li', { class: `${entry.mine ? 'mine' : ''} ${entry.relayed ? 'relayed' : ''}` },
    el('span', { class: 'from', textContent: entry.mine ? 'you' : (peerName(entry.from) || entry.from), title: entry.from }),
    el('span', { textContent: entry.text }));
  const log = $('chat-log');
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  log.append(li);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function system(text) {
  const log = $('chat-log');
  log.append(el('li', { class: 'system', textContent: text }));
  log.scrollTop = log.scrollHeight;
}

$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('chat-input').value;
  if (!text) return;
  const to = mesh.sendChat(text);
  addChatLine({ from: app.peerId, text, ts: Date.now(), relayed: false, mine: true, to });
  $('chat-input').value = '';
});

mesh.addEventListener('chat', (e) => addChatLine({ ...e.detail, mine: false }));

// ------------------------------------------------------------------ peers

function peerName(id) {
  const md = mesh.roster.get(id);
  return md && typeof md.name === 'string' ? md.name : '';
}

function renderPeers() {
  const list = mesh.peers();
  const tbody = $('peers').querySelector('tbody');
  tbody.replaceChildren(...list.map((p) => el('tr', { dataset: { peer: p.peer } },
    el('td', {}, el('code', { textContent: p.peer })),
    el('td', { textContent: peerName(p.peer) + (p.inRoom ? '' : ' (left hub)') }),
    el('td', { class: `state-${p.state}`, textContent: p.state }),
    el('td', { class: `channel-${p.channel}`, textContent: p.channel }),
    el('td', { textContent: p.pair || '' }),
    el('td', { textContent: p.rtt_ms !== null ? `${p.rtt_ms.toFixed(1)} ms` : '' }))));
  $('no-peers').hidden = list.length > 0;
  updatePeerSelect(list);
  renderStats(list);
}

function updatePeerSelect(list) {
  const sel = $('file-peer');
  const current = sel.value;
  const open = list.filter((p) => p.channel === 'open').map((p) => p.peer);
  const have = [...sel.options].map((o) => o.value);
  if (open.join('\n') !== have.join('\n')) {
    sel.replaceChildren(...open.map((p) => el('option', { value: p, textContent: peerName(p) ? `${peerName(p)} (${p})` : p })));
    if (open.includes(current)) sel.value = current;
  }
  updateFileForm();
}

function updateFileForm() {
  $('file-send').disabled = !app.joined || !$('file-peer').value || !$('file-input').files.length;
}

for (const type of ['peer-joined', 'peer-left', 'connection-state', 'channel-open', 'channel-closed', 'stats', 'peer-announced']) {
  mesh.addEventListener(type, renderPeers);
}
mesh.addEventListener('peer-joined', (e) => system(`${e.detail.peer} joined`));
mesh.addEventListener('peer-left', (e) => system(`${e.detail.peer} left (${e.detail.reason})`));
mesh.addEventListener('hub', (e) => {
  const b = $('hub-state');
  b.dataset.state = e.detail.state;
  b.textContent = e.detail.state === 'connected' ? 'hub connected' : e.detail.state;
  renderStats(mesh.peers());
});
mesh.addEventListener('error', (e) => {
  app.errors.push(e.detail.message);
  if (app.errors.length > 100) app.errors.shift();
  console.warn('rtcmesh:', e.detail.message);
});

// ------------------------------------------------------------------ files

const transferRows = new Map(); // id -> { li, bar, label }

function transferRow(id, text) {
  let row = transferRows.get(id);
  if (!row) {
    const label = el('div', { textContent: text });
    const bar = el('progress', { max: 1, value: 0 });
    const li = el('li', { dataset: { id } }, label, bar);
    $('transfers').prepend(li);
    row = { li, bar, label };
    transferRows.set(id, row);
  }
  return row;
}

$('file-input').addEventListener('change', updateFileForm);
$('file-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const file = $('file-input').files[0];
  const peer = $('file-peer').value;
  if (!file || !peer) return;
  app.sendFile(peer, file);
  $('file-input').value = '';
  updateFileForm();
});

app.sendFile = (peer, file) => mesh.sendFile(peer, file).catch((err) => {
  system(`could not send ${file.name}: ${err.message}`);
  return { ok: false, error: err.message };
});

mesh.addEventListener('file-progress', (e) => {
  const d = e.detail;
  const arrow = d.direction === 'send' ? `→ ${d.peer}` : `← ${d.peer}`;
  const row = transferRow(d.id, '');
  row.label.textContent = `${d.name} ${arrow}: ${fmtBytes(d.bytes)} / ${fmtBytes(d.size)}`;
  row.bar.value = d.size ? d.bytes / d.size : 1;
});

mesh.addEventListener('file-sent', (e) => {
  const d = e.detail;
  app.sent.push({ to: d.to, id: d.id, name: d.name, size: d.size, sha256: d.sha256, ok: d.ok, error: d.error ?? null, seconds: d.seconds ?? null });
  const row = transferRow(d.id, '');
  row.label.className = d.ok ? 'ok' : 'bad';
  row.label.textContent = d.ok
    ? `${d.name} → ${d.to}: ${fmtBytes(d.size)} delivered, SHA-256 confirmed`
    : `${d.name} → ${d.to}: failed (${d.error})`;
  if (d.ok) row.bar.value = 1;
});

mesh.addEventListener('file-received', (e) => {
  const d = e.detail;
  app.received.push({ from: d.from, id: d.id, name: d.name, size: d.size, sha256: d.sha256, ok: d.ok, error: d.error ?? null, url: d.url ?? null });
  transferRows.get(d.id)?.li.remove();
  transferRows.delete(d.id);
  const li = el('li', { dataset: { id: d.id } });
  if (d.ok) {
    li.append(el('a', { href: d.url, download: d.name, textContent: d.name }),
      ` ${fmtBytes(d.size)} from ${d.from} `, el('span', { class: 'ok', textContent: 'SHA-256 ok', title: d.sha256 }));
  } else {
    li.append(el('span', { class: 'bad', textContent: `${d.name} from ${d.from} failed: ${d.error}` }));
  }
  $('received').prepend(li);
});

// ------------------------------------------------------------------ stats

function renderStats(list) {
  const c = mesh.counters;
  const open = list.filter((p) => p.channel === 'open').length;
  const rtts = list.map((p) => p.rtt_ms).filter((v) => typeof v === 'number');
  const rows = [
    ['hub', mesh.hubState],
    ['room', mesh.room || '–'],
    ['peer id', app.peerId],
    ['channels open', `${open} / ${list.length}`],
    ['mean ICE RTT', rtts.length ? `${(rtts.reduce((a, b) => a + b, 0) / rtts.length).toFixed(1)} ms` : '–'],
    ['bytes sent', fmtBytes(list.reduce((a, p) => a + p.bytes_sent, 0))],
    ['bytes received', fmtBytes(list.reduce((a, p) => a + p.bytes_received, 0))],
    ['hub messages in / out', `${c.hubIn} / ${c.hubOut}`],
    ['reconnects', String(c.reconnects)],
    ['files sent / received', `${app.sent.filter((f) => f.ok).length} / ${app.received.filter((f) => f.ok).length}`],
  ];
  $('stats').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { textContent: k }), el('dd', { textContent: v })]));
}

renderPeers();
if (query.get('join') === '1') app.join().catch(() => {});
