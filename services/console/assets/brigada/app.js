// The brigade app (docs/brigade-app.md): sign in with the unit's token or an officer's account
// (user and password; the session is an HttpOnly cookie the page never sees), see the unit and its
// assignment live, act with big buttons, report the phone's position. Actions wait in a queue
// kept in localStorage and are retried with their idempotency key until the node answers, so
// nothing tapped is lost on a flaky network; the live stream reconnects by itself.

import { t, lang, choose, clock } from '/assets/i18n.js';
import { MapView } from '/assets/map.js';

const $ = (id) => document.getElementById(id);
const STORE = { token: 'brigada.token', queue: 'brigada.queue', state: 'brigada.state' };
// Position reports: at most this often while moving less than MOVE_M, and a report (or a
// heartbeat) at least every HEARTBEAT_MS so the node knows the unit is live.
const POSITION_MS = 5000;
const MOVE_M = 20;
const HEARTBEAT_MS = 10000;
// The stream sends a tick every 5 s: three missed ticks and it is reconnected.
const SILENCE_MS = 15000;
const RETRY_MAX_MS = 10000;
// What `view.token` holds for an officer signed in with user and password: the credential is
// the session cookie, sent by the browser itself.
const OFFICER = 'officer-session';
const SPEED_MPS = { foot: 1.4, motorcycle: 8.3, car: 6.9 };
const ROAD_FACTOR = 1.3;

const view = {
  epoch: 0, // sign-outs so far: a sign-in answer from before the last one is dropped
  token: localStorage.getItem(STORE.token),
  unit: null,
  assignment: null,
  fix: null, // {lat, lon, at}
  sent: null, // last position sent {lat, lon, at}
  watch: null,
  timers: [],
  stream: null, // AbortController
  lastEvent: 0,
  online: false,
  flushing: false,
  ringingFor: null,
  acked: new Set(), // incidents acknowledged from this page
  audio: null,
  message: '',
  messageBad: false,
};

// A hook for tests and for support: what the page rang, what it holds.
const hook = { rings: 0, ringing: false, events: 0 };
window.__brigada = {
  get rings() { return hook.rings; },
  get ringing() { return hook.ringing; },
  get events() { return hook.events; },
  get online() { return view.online; },
  pending: () => queue().map((a) => a.label),
  state: () => ({ unit: view.unit, assignment: view.assignment }),
};

// Every word comes from the message catalogues (/assets/i18n/{es,en}.json, keys `brigada.*`
// and the console's own `kind.*`, `priority.*`): the node renders the page in the officer's
// language (their choice, remembered; else the phone's Accept-Language; Spanish by default).
const actionLabel = (kind) => ({
  ack: t('brigada.ack'),
  en_route: t('brigada.en_route'),
  on_scene: t('brigada.on_scene'),
  available: t('brigada.available'),
  out_of_service: t('brigada.out_of_service'),
})[kind] || kind;
const outcomeLabel = (outcome) => ({
  handled: t('brigada.handled'),
  false_alarm: t('brigada.false_alarm'),
  prank: t('brigada.prank'),
})[outcome] || outcome;

// ---- the queue of actions ------------------------------------------------------------------

function queue() {
  try { return JSON.parse(localStorage.getItem(STORE.queue) || '[]'); } catch { return []; }
}
function saveQueue(items) { localStorage.setItem(STORE.queue, JSON.stringify(items)); }

function newKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

function enqueue(path, body, label) {
  const items = queue();
  items.push({ key: newKey(), path, body, label });
  saveQueue(items);
  render();
  flush();
}

async function flush() {
  if (view.flushing || !view.token) return;
  view.flushing = true;
  let delay = 1000;
  try {
    for (;;) {
      const items = queue();
      if (!items.length) break;
      const item = items[0];
      let response = null;
      let reply = null;
      try {
        response = await fetch(`/brigada/api/${item.path}`, {
          method: 'POST',
          headers: { ...auth(), 'content-type': 'application/json' },
          body: JSON.stringify({ ...item.body, key: item.key }),
        });
        reply = await response.json().catch(() => null);
      } catch (e) {
        response = null;
      }
      if (response && (response.ok || response.status === 409 || response.status === 400)) {
        // Answered: done with it, whatever the answer. A refusal comes with the current truth.
        saveQueue(queue().filter((a) => a.key !== item.key));
        if (reply?.unit) apply(reply);
        if (!response.ok) say(t('brigada.refused', { message: reply?.error?.message || response.status }), true);
        else say(t('brigada.all_sent'));
        delay = 1000;
        continue;
      }
      if (response && (response.status === 401 || response.status === 403)) {
        say(t('brigada.refused', { message: reply?.error?.message || response.status }), true);
        saveQueue(queue().filter((a) => a.key !== item.key));
        continue;
      }
      // Not answered (no network, node down, rate limited): the same key again, later.
      if (!response) say(t('brigada.offline_net'), true);
      render();
      await sleep(delay);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  } finally {
    view.flushing = false;
    render();
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const auth = () => (view.token === OFFICER ? {} : { authorization: `Bearer ${view.token}` });

// ---- the live stream -----------------------------------------------------------------------

async function connect() {
  let delay = 1000;
  while (view.token) {
    const controller = new AbortController();
    view.stream = controller;
    view.lastEvent = Date.now();
    try {
      const response = await fetch('/brigada/api/events', { headers: auth(), signal: controller.signal, cache: 'no-store' });
      if (response.status === 401 || response.status === 403) {
        const reply = await response.json().catch(() => null);
        signOut(t('brigada.bad_token', { message: reply?.error?.message || response.status }));
        return;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      setOnline(true);
      delay = 1000;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          onEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (e) {
      // Aborted by the watchdog, or the network went: reconnect below.
    }
    setOnline(false);
    if (!view.token) return;
    await sleep(delay);
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  }
}

function onEvent(block) {
  view.lastEvent = Date.now();
  hook.events += 1;
  let name = 'message';
  let data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) name = line.slice(6).trim();
    else if (line.startsWith('data:')) data += line.slice(5).trim();
  }
  if (name === 'state') {
    try { apply(JSON.parse(data)); } catch (e) { /* a malformed event is ignored */ }
  }
  // Back online: whatever waited goes now.
  if (queue().length) flush();
}

function setOnline(online) {
  view.online = online;
  $('link').dataset.state = online ? 'on' : 'off';
}

function watchdog() {
  if (view.stream && view.online && Date.now() - view.lastEvent > SILENCE_MS) view.stream.abort();
}

// ---- state, ringing ------------------------------------------------------------------------

function apply(state) {
  localStorage.setItem(STORE.state, JSON.stringify({ unit: state.unit, assignment: state.assignment || null }));
  view.unit = state.unit;
  view.assignment = state.assignment || null;
  const a = view.assignment;
  const waiting = a && view.unit.status === 'dispatched' && !view.unit.acked && !view.acked.has(a.id);
  if (waiting) ring(a.id);
  else stopRing();
  render();
}

function ring(incident) {
  if (view.ringingFor === incident) return;
  stopRing();
  view.ringingFor = incident;
  hook.rings += 1;
  hook.ringing = true;
  const beep = () => {
    try {
      view.audio = view.audio || new AudioContext();
      const ctx = view.audio;
      if (ctx.state === 'suspended') ctx.resume();
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.3;
      osc.connect(gain).connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.4);
    } catch (e) { /* no audio: the vibration and the red button remain */ }
    if (navigator.vibrate) navigator.vibrate([400, 200, 400]);
  };
  beep();
  view.ringTimer = setInterval(beep, 1200);
}

function stopRing() {
  const ringing = Boolean(view.ringTimer);
  if (ringing) clearInterval(view.ringTimer);
  view.ringTimer = null;
  view.ringingFor = null;
  hook.ringing = false;
  // Only when it was ringing: a page opened from the QR link has had no tap yet, and Chromium
  // refuses (and logs) a vibration call before the first one.
  if (ringing && navigator.vibrate) navigator.vibrate(0);
}

// ---- actions -------------------------------------------------------------------------------

function act(kind) {
  const a = view.assignment;
  const unit = view.unit;
  if (!unit) return;
  // The page moves ahead at once (the officer may tap the next step while offline); the
  // node's answer, or the stream, brings the truth.
  if (kind === 'ack' && a) {
    view.acked.add(a.id);
    stopRing();
    enqueue('ack', { incident: a.id }, actionLabel('ack'));
    unit.acked = true;
  } else if ((kind === 'en_route' || kind === 'on_scene') && a) {
    view.acked.add(a.id);
    stopRing();
    enqueue('status', { status: kind, incident: a.id }, actionLabel(kind));
    unit.status = kind;
  } else if (kind === 'clear' && a) {
    // The outcome in the operators' own vocabulary, and what the officer adds.
    const outcome = $('outcome').value;
    const note = $('outcome-note').value.trim();
    const body = { status: 'available', incident: a.id, outcome };
    if (note) body.note = note;
    enqueue('status', body, `${t('brigada.clear')} (${outcomeLabel(outcome)})`);
    $('outcome-note').value = '';
    unit.status = 'available';
    view.assignment = null;
  } else if (kind === 'available' || kind === 'out_of_service') {
    enqueue('status', { status: kind }, actionLabel(kind));
    unit.status = kind;
  }
  render();
}

// ---- position ------------------------------------------------------------------------------

function startGeolocation() {
  if (!navigator.geolocation) {
    $('gps').textContent = t('brigada.gps_off');
    return;
  }
  view.watch = navigator.geolocation.watchPosition(
    (p) => {
      view.fix = { lat: p.coords.latitude, lon: p.coords.longitude, at: Date.now(), accuracy: p.coords.accuracy };
      $('gps').textContent = t('brigada.gps', { fix: `${view.fix.lat.toFixed(5)}, ${view.fix.lon.toFixed(5)} ±${Math.round(p.coords.accuracy || 0)} m` });
      const moved = view.sent ? distanceM(view.sent, view.fix) : Infinity;
      if (!view.sent || moved >= MOVE_M || Date.now() - view.sent.at >= POSITION_MS) sendPosition();
      render();
    },
    (e) => { $('gps').textContent = t('brigada.gps', { fix: e.message }); },
    { enableHighAccuracy: true, maximumAge: POSITION_MS, timeout: 30000 },
  );
}

function stopGeolocation() {
  if (view.watch !== null && navigator.geolocation) navigator.geolocation.clearWatch(view.watch);
  view.watch = null;
}

async function sendPosition() {
  if (!view.fix || !view.token) return;
  const fix = view.fix;
  view.sent = { ...fix, at: Date.now() };
  try {
    await fetch('/brigada/api/position', {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ lat: fix.lat, lon: fix.lon, accuracy: fix.accuracy }),
    });
  } catch (e) { /* the next report goes anyway; a position is only worth its latest value */ }
}

async function heartbeat() {
  if (!view.token) return;
  if (view.sent && Date.now() - view.sent.at < HEARTBEAT_MS) return;
  if (view.fix) return sendPosition();
  try {
    await fetch('/brigada/api/heartbeat', { method: 'POST', headers: auth() });
  } catch (e) { /* retried on the next beat */ }
}

function distanceM(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.min(1, Math.sqrt(h)));
}

// ---- rendering -----------------------------------------------------------------------------

function say(text, bad) {
  view.message = text;
  view.messageBad = !!bad;
  render();
}

function render() {
  const unit = view.unit;
  $('signin').hidden = !!unit;
  $('home').hidden = !unit;
  if (!unit) return;
  $('unit-id').textContent = unit.id;
  $('unit-callsign').textContent = unit.callsign;
  $('unit-status').textContent = t(`brigada.status_${unit.status}`);
  $('unit-status').className = `status s-${unit.status}`;
  const cooling = unit.cooldown_until_ms && unit.cooldown_until_ms > Date.now();
  $('unit-note').textContent = cooling ? t('brigada.cooldown', { time: clock(unit.cooldown_until_ms) }) : '';

  const a = view.assignment;
  $('assignment').hidden = !a;
  $('idle').hidden = !!a;
  if (a) {
    $('a-priority').textContent = t(`priority.${a.priority}`);
    $('a-priority').className = `prio p-${a.priority}`;
    $('a-kind').textContent = t(`kind.${a.kind}`);
    $('a-place').textContent = a.place || a.button;
    $('a-button').textContent = `${a.button} · ${a.id}`;
    const from = view.fix || (unit.lat !== undefined ? { lat: unit.lat, lon: unit.lon } : null);
    if (from && a.lat !== undefined) {
      const metres = distanceM(from, { lat: a.lat, lon: a.lon });
      const seconds = (metres * ROAD_FACTOR) / (SPEED_MPS[unit.mode] || 1.4);
      $('a-distance').textContent = t('brigada.distance', { km: (metres / 1000).toFixed(1), min: Math.max(1, Math.round(seconds / 60)) });
      drawMap(from, a);
    }
    const caller = a.caller;
    $('a-caller').textContent = caller ? [caller.name, caller.phone, caller.notes && `${t('brigada.notes')}: ${caller.notes}`].filter(Boolean).join('\n') : '';
    const status = unit.status;
    const acked = unit.acked || view.acked.has(a.id);
    $('do-ack').disabled = acked || status !== 'dispatched';
    $('do-ack').classList.toggle('ringing', hook.ringing);
    $('do-en-route').disabled = status !== 'dispatched';
    $('do-on-scene').disabled = !(status === 'dispatched' || status === 'en_route');
    $('do-clear').disabled = status !== 'on_scene';
  } else {
    $('do-available').disabled = unit.status === 'available';
    $('do-out').disabled = unit.status === 'out_of_service';
  }
  const items = queue();
  $('pending').textContent = items.length ? t('brigada.pending', { n: items.length, what: items.map((i) => i.label).join(', ') }) : '';
  $('message').textContent = view.message;
  $('message').className = `message${view.messageBad ? ' bad' : ''}`;
}

// The assignment's map: the console's own map module (street tiles from CENTINELA_MAP_TILES
// with Leaflet, or the plain grid when none are configured or they do not load), with the
// phone's position, the incident, and the route line between them. A new map per assignment,
// so each first view fits the unit and its incident.
function drawMap(me, a) {
  if (!view.map || view.mapFor !== a.id) {
    view.map?.view?.destroy?.();
    view.map = new MapView($('a-map'), { label: a.place || a.button });
    view.mapFor = a.id;
  }
  const unit = view.unit;
  view.map.draw({
    buttons: [{ id: a.button, name: a.place || '', lat: a.lat, lon: a.lon, status: 'online' }],
    units: [{ id: unit.id, callsign: unit.callsign, lat: me.lat, lon: me.lon, status: unit.status }],
    incidents: [{ id: a.id, button: a.button, lat: a.lat, lon: a.lon, priority: a.priority, units: [unit.id] }],
    selected: a.id,
  });
}

// ---- sign-in -------------------------------------------------------------------------------

async function signIn(token) {
  // Signed out while this was on its way: the answer is stale and must not sign back in.
  const epoch = view.epoch;
  let response;
  let reply = null;
  try {
    const headers = token === OFFICER ? {} : { authorization: `Bearer ${token}` };
    response = await fetch('/brigada/api/me', { headers, cache: 'no-store' });
    reply = await response.json().catch(() => null);
  } catch (e) {
    // No network: a token already accepted stays signed in, and the queue waits.
    if (view.unit) return true;
    showSignInError(t('brigada.offline_net'));
    return false;
  }
  if (epoch !== view.epoch) return false;
  if (!response.ok) {
    showSignInError(t('brigada.bad_token', { message: reply?.error?.message || `HTTP ${response.status}` }));
    return false;
  }
  view.token = token;
  localStorage.setItem(STORE.token, token);
  apply(reply);
  start();
  return true;
}

// An officer's account: the node checks the password (throttled like the console's) and sets
// the session cookie; the unit is the one the account is bound to.
async function signInOfficer(user, password) {
  let response;
  let reply = null;
  try {
    response = await fetch('/brigada/api/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user, password }),
    });
    reply = await response.json().catch(() => null);
  } catch (e) {
    showSignInError(t('brigada.offline_net'));
    return false;
  }
  if (!response.ok) {
    showSignInError(t('brigada.bad_token', { message: reply?.error?.message || `HTTP ${response.status}` }));
    return false;
  }
  if (view.token !== OFFICER || view.unit?.id !== reply?.unit?.id) {
    saveQueue([]);
    localStorage.removeItem(STORE.state);
  }
  $('password').value = '';
  view.token = OFFICER;
  localStorage.setItem(STORE.token, OFFICER);
  apply(reply);
  start();
  return true;
}

function showSignInError(text) {
  $('signin-error').textContent = text;
  $('signin-error').hidden = false;
}

function start() {
  if (view.started) return;
  view.started = true;
  connect();
  startGeolocation();
  view.timers.push(setInterval(heartbeat, 2000), setInterval(watchdog, 2000), setInterval(() => { if (queue().length) flush(); }, 5000));
  flush();
}

function signOut(reason) {
  view.epoch += 1;
  if (view.token === OFFICER) fetch('/brigada/api/logout', { method: 'POST' }).catch(() => {});
  view.token = null;
  view.unit = null;
  view.assignment = null;
  view.started = false;
  localStorage.removeItem(STORE.token);
  localStorage.removeItem(STORE.state);
  saveQueue([]);
  stopRing();
  stopGeolocation();
  for (const timer of view.timers) clearInterval(timer);
  view.timers = [];
  if (view.stream) view.stream.abort();
  setOnline(false);
  render();
  $('signin').hidden = false;
  if (reason) showSignInError(reason);
}

// ---- start ---------------------------------------------------------------------------------

$('signin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  // The tap that signs in also unlocks sound for the ring.
  try { view.audio = view.audio || new AudioContext(); view.audio.resume(); } catch (err) { /* no audio */ }
  $('signin-error').hidden = true;
  const user = $('user').value.trim();
  if (user) await signInOfficer(user, $('password').value);
  else await signIn($('token').value.trim());
});
$('do-ack').addEventListener('click', () => act('ack'));
$('do-en-route').addEventListener('click', () => act('en_route'));
$('do-on-scene').addEventListener('click', () => act('on_scene'));
$('do-clear').addEventListener('click', () => act('clear'));
$('do-available').addEventListener('click', () => act('available'));
$('do-out').addEventListener('click', () => act('out_of_service'));
$('signout').addEventListener('click', () => signOut());
// The other language: remembered (a cookie) and the page rendered again in it.
$('lang').addEventListener('click', () => choose(lang === 'es' ? 'en' : 'es'));
window.addEventListener('online', () => flush());

// Opened from the QR code `centinela unit-token --console-url` prints (`/brigada/#token=...`):
// the token signs in, is stored, and is taken out of the address bar (so out of the history, a
// shared link or a screenshot). A different unit's token starts clean: the queue and the last
// state were the other unit's.
{
  const fromLink = new URLSearchParams(location.hash.slice(1)).get('token');
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  if (fromLink) {
    if (fromLink !== view.token) {
      saveQueue([]);
      localStorage.removeItem(STORE.state);
    }
    view.token = fromLink;
    localStorage.setItem(STORE.token, fromLink);
  }
}
if ('serviceWorker' in navigator) navigator.serviceWorker.register('/brigada/sw.js', { scope: '/brigada/' }).catch(() => {});
if (view.token) {
  // Opened offline: the last known state, the queue, and reconnection until the node answers.
  let cached = null;
  try { cached = JSON.parse(localStorage.getItem(STORE.state) || 'null'); } catch { cached = null; }
  if (cached?.unit) {
    apply(cached);
    start();
  }
  signIn(view.token).then((ok) => { if (!ok && !cached?.unit) signOut(); });
} else {
  render();
  $('signin').hidden = false;
}
