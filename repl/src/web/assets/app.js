// The slcp web UI: people, conversations, history, search, sending text, images and files.
// Every string from the network reaches the page through textContent or an attribute, never
// as HTML. Commands go to the client as the same lines a prompt sends (/api/cmd).
'use strict';

const $ = (id) => document.getElementById(id);
const S = {
  me: '',
  conv: '*',
  convs: new Map(),   // conversation -> {last, unread}
  people: new Map(),  // handle -> {status, privacy}
  logs: new Map(),    // conversation -> {items, oldest, complete, loading}
  away: false,
};
const PAGE = 500;
let list;

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  };
  const r = await fetch(path, init);
  if (!r.ok) throw new Error((await r.text()).trim());
  return r.status === 204 ? null : r.json();
}
const cmd = (line) => api('/api/cmd', { line });
const rows = (r) => (r.lines || []).flatMap((l) => { try { return [JSON.parse(l)]; } catch { return []; } });
const isGroup = (c) => c === '*' || c.startsWith('@') || c.includes(',');
const title = (c) => (c === '*' ? 'Everyone' : c);

function say(text, error) {
  const s = $('status');
  s.textContent = text;
  s.className = error ? 'status error' : 'status';
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function when(at) {
  const d = new Date(at);
  const pad = (n) => String(n).padStart(2, '0');
  const hm = pad(d.getHours()) + ':' + pad(d.getMinutes());
  const today = new Date();
  return d.toDateString() === today.toDateString()
    ? hm : d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + hm;
}

const media = (path, download) =>
  '/media?path=' + encodeURIComponent(path) + (download ? '&download=1' : '');
const base = (p) => p.split('/').pop();

// A stored message as the page shows it.
function fromRow(conv, r) {
  let from = r.dir === 'out' ? S.me : r.peer, text = r.body;
  if (r.dir === 'in' && isGroup(conv) && r.kind === 'text') {
    const i = text.indexOf(': ');
    if (i > 0) { from = text.slice(0, i); text = text.slice(i + 2); }
  }
  const privacy = ['encrypted', 'verified', 'unverified'].includes(r.outcome) ? r.outcome : 'plain';
  const failed = r.outcome.startsWith('failed') ? r.outcome : '';
  return item(r.kind, from, text, r.at, r.dir === 'out', privacy, failed, r.id);
}

function item(kind, from, text, at, out, privacy, failed, id) {
  let k = kind;
  if (k === 'text' && text.startsWith('* ' + from + ' ')) { k = 'action'; text = text.slice(from.length + 3); }
  return { kind: k, from, text, at, out, privacy: privacy || 'plain', failed: failed || '', id };
}

// One row of the conversation.
function make(it, grew) {
  const row = el('div', 'msg ' + it.kind + (it.out ? ' out' : ''));
  const t = el('time', '', when(it.at));
  t.dateTime = new Date(it.at).toISOString();
  t.title = new Date(it.at).toLocaleString();
  row.appendChild(t);
  if (it.privacy !== 'plain') {
    const lock = el('span', 'lock' + (it.privacy === 'unverified' ? ' bad' : ''),
      it.privacy === 'verified' ? '🔒✓' : it.privacy === 'unverified' ? '⚠' : '🔒');
    lock.title = it.privacy === 'unverified'
      ? 'unverified: not the key pinned for this handle' : it.privacy;
    lock.setAttribute('aria-label', lock.title);
    lock.setAttribute('role', 'img');
    row.appendChild(lock);
  }
  if (it.kind === 'action') {
    row.appendChild(el('span', 'body', '* ' + it.from + ' ' + it.text));
  } else if (it.kind === 'notice') {
    row.appendChild(el('span', 'body', it.text));
  } else {
    row.appendChild(el('span', 'who', it.from + ':'));
    const body = el('span', 'body');
    if (it.kind === 'image' && it.out && !it.blob) {
      // What was sent from here stays on this disk, outside what the page may show.
      body.textContent = 'sent image ' + base(it.text);
    } else if (it.kind === 'image') {
      const b = el('button', 'thumb');
      b.type = 'button';
      b.setAttribute('aria-label', 'Image from ' + it.from + ', show full size');
      const img = el('img');
      img.alt = 'image from ' + it.from;
      img.src = it.out ? it.blob : media(it.text);
      img.addEventListener('load', grew);
      b.appendChild(img);
      b.addEventListener('click', () => { $('viewer-img').src = img.src; $('viewer').showModal(); });
      body.appendChild(b);
    } else if (it.kind === 'file') {
      if (it.out) {
        body.textContent = 'sent file ' + base(it.text);
      } else {
        const a = el('a', '', base(it.text));
        a.href = media(it.text, true);
        a.setAttribute('download', base(it.text));
        body.appendChild(document.createTextNode('file '));
        body.appendChild(a);
      }
    } else {
      body.textContent = it.text;
    }
    row.appendChild(body);
  }
  if (it.failed) row.appendChild(el('span', 'failed', '(' + it.failed + ')'));
  return row;
}

function convEntry(c) {
  if (!S.convs.has(c)) S.convs.set(c, { last: 0, unread: 0 });
  return S.convs.get(c);
}

function drawConvs() {
  const ul = $('convs');
  ul.replaceChildren();
  const all = [...S.convs.entries()].filter(([c]) => c !== '*')
    .sort((a, b) => b[1].last - a[1].last);
  all.unshift(['*', convEntry('*')]);
  for (const [c, v] of all) {
    const b = el('button');
    b.type = 'button';
    b.dataset.conv = c;
    if (c === S.conv) b.setAttribute('aria-current', 'true');
    b.appendChild(el('span', 'name', title(c)));
    let label = title(c);
    if (v.unread) {
      b.appendChild(el('span', 'badge', String(v.unread)));
      label += ', ' + v.unread + ' unread';
    }
    b.setAttribute('aria-label', label);
    b.addEventListener('click', () => open(c));
    const li = el('li');
    li.appendChild(b);
    ul.appendChild(li);
  }
  const unread = [...S.convs.values()].reduce((n, v) => n + v.unread, 0);
  document.title = (unread ? '(' + unread + ') ' : '') + 'slcp';
}

function drawPeople() {
  const ul = $('people');
  ul.replaceChildren();
  const all = [...S.people.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  if (!all.length) ul.appendChild(el('li', 'state', 'nobody else is here'));
  for (const [h, p] of all) {
    const b = el('button');
    b.type = 'button';
    b.dataset.handle = h;
    b.appendChild(el('span', 'dot ' + p.status));
    b.appendChild(el('span', 'name', h));
    b.appendChild(el('span', 'state', p.status));
    const n = S.convs.get(h)?.unread || 0;
    if (n) b.appendChild(el('span', 'badge', String(n)));
    b.setAttribute('aria-label', h + ', ' + p.status + (n ? ', ' + n + ' unread' : ''));
    b.addEventListener('click', () => open(h));
    const li = el('li');
    li.appendChild(b);
    ul.appendChild(li);
  }
}

function logOf(c) {
  if (!S.logs.has(c)) S.logs.set(c, { items: [], oldest: null, complete: false, loading: false });
  return S.logs.get(c);
}

async function loadOlder(c) {
  const log = logOf(c);
  if (log.complete || log.loading) return;
  log.loading = true;
  try {
    const before = log.oldest ? ' --before ' + log.oldest : '';
    const r = await cmd('HISTORY --json' + before + ' ' + c + ' ' + PAGE);
    if (r.error) { log.complete = true; if (!/history is off/.test(r.error)) say(r.error, true); return; }
    const got = rows(r).map((x) => fromRow(c, x));
    if (got.length < PAGE) log.complete = true;
    if (got.length) log.oldest = got[0].id;
    log.items = got.concat(log.items);
    if (c === S.conv) list.prepend(got);
  } catch (e) {
    say(String(e.message || e), true);
  } finally {
    log.loading = false;
  }
}

async function open(c) {
  S.conv = c;
  $('title').textContent = title(c);
  const log = logOf(c);
  list.set(log.items);
  if (!log.items.length && !log.complete) await loadOlder(c);
  read(c);
  drawConvs();
  drawPeople();
  // A notification-free conversation while it is being read, as QUERY does at a prompt.
  cmd('FOCUS ' + c).catch(() => {});
  $('text').focus();
}

function read(c) {
  const v = convEntry(c);
  if (v.unread) {
    v.unread = 0;
    api('/api/read', { conv: c }).catch(() => {});
  }
}

function add(c, it) {
  const log = logOf(c);
  log.items.push(it);
  const v = convEntry(c);
  v.last = Math.max(v.last, it.at);
  if (c === S.conv) list.push([it]);
  if (!it.out && it.kind !== 'notice') {
    if (c === S.conv && !document.hidden) read(c); else v.unread++;
    notify(c, it);
  }
  drawConvs();
  drawPeople();
}

// A browser notification while the tab is hidden (the terminal's bell, for a page).
function notify(c, it) {
  const N = window.Notification;
  if (document.visibilityState !== 'hidden' || !N || N.permission !== 'granted') return;
  const from = isGroup(c) ? it.from + ' in ' + title(c) : it.from;
  const body = it.kind === 'image' ? 'sent an image' : it.kind === 'file' ? 'sent a file' : it.text;
  try { new N(from, { body: body.slice(0, 200), tag: c }); } catch { /* not allowed here */ }
}

function onEvent(e, at) {
  switch (e.kind) {
    case 'message': add(e.from, item('text', e.from, e.text, at, false)); break;
    case 'private': add(e.from, item('text', e.from, e.text, at, false, e.privacy)); break;
    case 'group': add(e.group, item('text', e.from, e.text, at, false, e.privacy)); break;
    case 'image': add(e.from, item('image', e.from, e.path, at, false)); break;
    case 'file': add(e.from, item('file', e.from, e.path, at, false)); break;
    case 'join': S.people.set(e.handle, { status: 'here' }); drawPeople(); break;
    case 'leave': S.people.set(e.handle, { status: 'gone' }); drawPeople(); break;
    case 'away': S.people.set(e.handle, { status: 'away' }); drawPeople(); break;
    case 'back': S.people.set(e.handle, { status: 'here' }); drawPeople(); break;
    case 'rename': S.people.delete(e.from); S.people.set(e.to, { status: 'here' }); drawPeople(); break;
    case 'handle': S.me = e.handle; $('handle').value = e.handle; break;
    case 'progress': progress(e.sent, e.size); break;
    case 'notice': say(e.text); break;
    case 'error': say(e.text, true); break;
    case 'clash': say(e.handle + ' is also used by ' + e.addr + '; change your handle', true); break;
    default: break;
  }
}

function progress(sent, size) {
  $('progress').hidden = false;
  const pct = size ? Math.floor((sent * 100) / size) : 0;
  $('progress-bar').value = pct;
  $('progress-label').textContent = 'Sending: ' + pct + ' %';
}

function live() {
  const ws = new WebSocket('ws://' + location.host + '/ws');
  ws.onopen = () => { $('link').textContent = 'connected'; };
  ws.onmessage = (m) => {
    let v;
    try { v = JSON.parse(m.data); } catch { return; }
    if (v.type === 'event') onEvent(v.event, v.at);
    else if (v.type === 'lagged') reload();
    else if (v.type === 'closed') { $('link').textContent = 'the client stopped'; ws.close(); }
  };
  ws.onclose = () => {
    if ($('link').textContent === 'the client stopped') return;
    $('link').textContent = 'reconnecting…';
    setTimeout(() => { live(); reload(); }, 2000);
  };
}

async function send(text) {
  const c = S.conv;
  let line;
  if (text.startsWith('/me ')) line = 'MSG ' + c + ' * ' + S.me + ' ' + text.slice(4);
  else if (text.startsWith('/') && !text.startsWith('//')) line = text.slice(1);
  else line = 'MSG ' + c + ' ' + (text.startsWith('//') ? text.slice(1) : text);
  const r = await cmd(line);
  if (line.startsWith('MSG ')) {
    const body = line.slice(5 + c.length);
    add(c, item('text', S.me, body, Date.now(), true, 'plain', r.error || ''));
  }
  if (r.error) say(r.error, true);
  else say((r.lines || []).join('\n'));
}

async function upload(file) {
  const c = S.conv;
  const kind = /^image\/(png|jpeg|gif|webp|bmp)$/.test(file.type) ? 'img' : 'file';
  say('Sending ' + file.name + ' to ' + title(c) + '…');
  progress(0, file.size);
  try {
    const q = '?to=' + encodeURIComponent(c) + '&kind=' + kind + '&name=' + encodeURIComponent(file.name);
    const r = await fetch('/api/send' + q, { method: 'POST', body: file }).then((x) => x.json());
    const it = item(kind === 'img' ? 'image' : 'file', S.me, file.name, Date.now(), true, 'plain', r.error || '');
    if (kind === 'img') it.blob = URL.createObjectURL(file);
    add(c, it);
    if (r.error) say(r.error, true); else say((r.lines || []).join('\n') || 'sent ' + file.name);
  } catch (e) {
    say(String(e.message || e), true);
  } finally {
    $('progress').hidden = true;
  }
}

async function search(words) {
  const r = await cmd('SEARCH --json ' + words);
  const ul = $('results-list');
  ul.replaceChildren();
  $('results').hidden = false;
  if (r.error) { ul.appendChild(el('li', '', r.error)); return; }
  const hits = rows(r);
  $('results-h').textContent = hits.length + ' found for ' + words;
  for (const h of hits) {
    const b = el('button');
    b.type = 'button';
    b.textContent = when(h.at) + '  ' + (h.dir === 'out' ? 'you → ' : '') + h.peer + ': ' + h.body;
    b.addEventListener('click', () => open(h.peer));
    const li = el('li');
    li.appendChild(b);
    ul.appendChild(li);
  }
}

async function refresh() {
  const st = await api('/api/state');
  S.me = st.me;
  $('handle').value = st.me;
  for (const [c, n] of Object.entries(st.unread)) convEntry(c).unread = n;
  const conv = await cmd('HISTORY --json');
  for (const c of rows(conv)) convEntry(c.peer).last = c.last;
  const who = await cmd('WHO --json');
  if (!who.error) {
    for (const [h, p] of S.people) if (p.status !== 'gone') p.status = 'gone';
    for (const p of rows(who)) S.people.set(p.handle, { status: p.status, privacy: p.privacy });
  }
  const status = rows(await cmd('STATUS --json'))[0];
  if (status) { S.away = status.away; $('away').checked = status.away; }
  const ar = await cmd('AUTOREPLY');
  const l = (ar.lines || []).find((x) => x.startsWith('autoreply: '));
  if (l) $('reply-text').value = l.slice(11);
  drawConvs();
  drawPeople();
}

// Events were missed (a slow tab, a lost connection): the database has them all.
async function reload() {
  S.logs.clear();
  await refresh();
  await open(S.conv);
}

function theme(dark) {
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  $('theme').setAttribute('aria-pressed', String(dark));
  try { localStorage.setItem('slcp-theme', dark ? 'dark' : 'light'); } catch { /* private mode */ }
}

function wire() {
  $('compose').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('text').value;
    if (!t.trim()) return;
    $('text').value = '';
    send(t).catch((e) => say(String(e.message || e), true));
  });
  $('pick').addEventListener('click', () => $('file').click());
  $('file').addEventListener('change', () => {
    for (const f of $('file').files) upload(f);
    $('file').value = '';
  });
  const chat = document.querySelector('.chat');
  chat.addEventListener('dragover', (ev) => { ev.preventDefault(); $('drop').hidden = false; });
  chat.addEventListener('dragleave', (ev) => { if (ev.target === $('drop')) $('drop').hidden = true; });
  chat.addEventListener('drop', (ev) => {
    ev.preventDefault();
    $('drop').hidden = true;
    for (const f of ev.dataTransfer.files) upload(f);
  });
  $('rename').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await cmd('HANDLE ' + $('handle').value.trim());
    if (r.error) { say(r.error, true); $('handle').value = S.me; return; }
    S.me = $('handle').value.trim();
    say('you are now ' + S.me);
  });
  $('away').addEventListener('change', async () => {
    const r = await cmd($('away').checked ? 'AWAY' : 'BACK');
    if (r.error) { say(r.error, true); $('away').checked = !$('away').checked; return; }
    say($('away').checked ? 'you are away' : 'you are back');
  });
  $('autoreply').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await cmd('AUTOREPLY ' + $('reply-text').value);
    if (r.error) say(r.error, true); else say((r.lines || []).join(' ') || 'auto-reply set');
  });
  $('open').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const c = $('open-to').value.trim();
    if (c && !/\s/.test(c)) { $('open-to').value = ''; open(c); }
  });
  $('search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const w = $('search-words').value.trim();
    if (w) search(w).catch((e) => say(String(e.message || e), true));
  });
  $('results-close').addEventListener('click', () => { $('results').hidden = true; });
  $('theme').addEventListener('click', () => theme(document.documentElement.dataset.theme !== 'dark'));
  const N = window.Notification;
  if (N && N.permission === 'default') {
    $('notify').hidden = false;
    $('notify').addEventListener('click', () => N.requestPermission().then(() => { $('notify').hidden = true; }));
  }
  document.addEventListener('visibilitychange', () => { if (!document.hidden) { read(S.conv); drawConvs(); } });
}

async function main() {
  let saved = null;
  try { saved = localStorage.getItem('slcp-theme'); } catch { /* private mode */ }
  theme(saved ? saved === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches);
  list = new VList($('log'), make);
  list.onTop = () => loadOlder(S.conv);
  wire();
  live();
  await refresh();
  await open('*');
  document.body.dataset.ready = 'true';
}

main().catch((e) => say(String(e.message || e), true));
