// The operator console. One module, no framework, no build step.
//
// Data flow: /api/events (server-sent events) keeps `store` in step with the cluster
// (snapshot, then live changes); every render reads `store`. Operator actions POST to
// /api/incidents/{id}/..., which call the same Operator service as the CLI; their effect comes
// back through the event stream like anybody else's. The page never invents state: when the
// stream is down it says so and greys out, and reconnects by itself with backoff.

import { MapView, esc } from './map.js';
import { Wall } from './wall.js';
import { GlassMeter } from './glass.js';
import { t, has, clock, apiError, choose, lang } from './i18n.js';
import { MsePlayer, mseSupports } from './fmp4.js';
import { initCalls, onCall, callSlot, answerRinging, ringingCalls } from './calls.js';
import { initPosts } from './posts.js';

const PRIORITY_RANK = { critical: 4, high: 3, medium: 2, low: 1 };
const KINDS = ['unclassified', 'robbery', 'assault', 'purse_snatching', 'vehicle_theft', 'medical', 'other'];
const PRIORITIES = ['critical', 'high', 'medium', 'low'];
const UNIT_STATUS_ORDER = ['on_scene', 'en_route', 'dispatched', 'available', 'out_of_service', 'offline'];
// Recently closed incidents kept for the operator to look back at (and for a selected
// incident that closes under them).
const CLOSED_KEPT_MAX = 20;
// Reconnect backoff: first retry quickly (a node restart), then up to this, with jitter.
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 8000;
const CLUSTER_POLL_MS = 5000;
// Brigades move: the selected incident's recommendations (and their ETAs) are re-asked this often.
const RECOMMEND_REFRESH_MS = 10000;
const TOAST_MS = 4000;

const store = {
  incidents: new Map(), // open incidents by id
  closed: new Map(), // recently closed, newest last
  units: new Map(),
  buttons: new Map(),
  cameras: new Map(),
};
const view = {
  session: null,
  cameraView: null, // which picture the incident panel shows: `${camera}:video|live|last|none`
  stillAge: null, // ms: how old the last picture of an offline camera is
  ptz: null, // where the manual controls last sent the camera
  selected: null,
  snapshotSeen: false, // a first snapshot completed: later unknown incidents are "new"
  pending: null, // the snapshot being received
  offsetMs: 0, // server clock minus ours
  conn: 'connecting',
  source: null,
  backoffMs: BACKOFF_MIN_MS,
  attempt: 0,
  watchdog: null,
  lastEventAt: 0,
  renderQueued: false,
  detailFor: null, // id the detail form was built for
  recommend: { for: null, at: 0, data: null, error: null },
  handoffs: { for: null, data: null, error: null }, // the selected incident's hand-offs
  agencies: null, // [{id, name, kinds}] from /api/agencies, loaded once
  audio: null,
  soundOn: true,
};

const $ = (id) => document.getElementById(id);
// The camera wall (wall.js), built at start.
let wall = null;

// Replaces an element's content only when it changed, so a re-render caused by some other
// change (a brigade moving) never swaps a button out from under the operator's click.
// While the pointer is down inside an element, its content is left alone (the render is
// redone on release), so a click always starts and ends on the same button.
function setHtml(el, html) {
  if (view.pressing && el.contains(view.pressing)) return;
  if (el.renderedHtml !== html) {
    el.innerHTML = html;
    el.renderedHtml = html;
  }
}
const now = () => Date.now() + view.offsetMs;

// ---- formatting -------------------------------------------------------------------------

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${String(m).padStart(2, '0')}:${sec}`;
}

// Values of the API's enums in words. An unknown value (a newer node) shows as itself rather
// than as a missing key.
const raw = (v) => String(v ?? '').replaceAll('_', ' ');
const kindText = (v) => (has(`kind.${v}`) ? t(`kind.${v}`) : raw(v));
const priorityText = (v) => (has(`priority.${v}`) ? t(`priority.${v}`) : raw(v));
const stateText = (v) => (has(`state.${v}`) ? t(`state.${v}`) : raw(v));
const unitStatusText = (v) => (has(`unit_status.${v}`) ? t(`unit_status.${v}`) : raw(v));
const resolutionText = (v) => (has(`resolution.${v}`) ? t(`resolution.${v}`) : raw(v));
const auditText = (v) => (has(`audit.${v}`) ? t(`audit.${v}`) : raw(v));
const cameraStateText = (v) => (has(`camera_state.${v}`) ? t(`camera_state.${v}`) : raw(v));
const buttonStatusText = (v) => (has(`button_status.${v}`) ? t(`button_status.${v}`) : raw(v));
const handoffStateText = (v) => (has(`handoff_state.${v}`) ? t(`handoff_state.${v}`) : raw(v));

function actorText(actor) {
  const [kind, rest] = String(actor).split(/:(.*)/s);
  switch (kind) {
    case 'operator': return t('actor.operator', { id: rest });
    case 'unit': return t('actor.unit', { id: rest });
    case 'button': return t('actor.button', { id: rest });
    case 'dispatcher': return t('actor.dispatcher', { id: rest });
    default: return actor;
  }
}

// ---- timers -------------------------------------------------------------------------------
// A timer element carries data-since (ms), optional data-until (ms, stops it), and
// optional data-target (s): amber from 2/3 of the target, red past it.

function timerHtml(since, { until = null, target = null, big = false, label = '' } = {}) {
  if (!since) return `<span class="timer timer-none${big ? ' big' : ''}">—</span>`;
  return `<span class="timer${big ? ' big' : ''}" data-since="${since}"${until ? ` data-until="${until}"` : ''}${target ? ` data-target="${target}"` : ''} title="${esc(label)}"></span>`;
}

function tickTimers() {
  const at = now();
  for (const el of document.querySelectorAll('.timer[data-since]')) {
    const since = Number(el.dataset.since);
    const until = el.dataset.until ? Number(el.dataset.until) : at;
    const ms = until - since;
    el.textContent = duration(ms);
    const target = el.dataset.target ? Number(el.dataset.target) * 1000 : 0;
    el.classList.toggle('t-ok', target > 0 && ms < (target * 2) / 3);
    el.classList.toggle('t-warn', target > 0 && ms >= (target * 2) / 3 && ms < target);
    el.classList.toggle('t-late', target > 0 && ms >= target);
    el.classList.toggle('t-stopped', Boolean(el.dataset.until));
  }
  $('clock').textContent = clock(at);
}

// When the first unit was assigned and when one arrived, from the audit trail.
function milestones(incident) {
  let dispatchedAt = null;
  let onSceneAt = null;
  for (const entry of incident.audit || []) {
    if (entry.action === 'assigned' && dispatchedAt === null) dispatchedAt = entry.at_ms;
    if (entry.action === 'unit_on_scene' && onSceneAt === null) onSceneAt = entry.at_ms;
  }
  return { dispatchedAt, onSceneAt };
}

function pressTimer(incident, big) {
  const targets = view.session?.targets || {};
  // Colored against the operator-ack target until someone acknowledges; then it just runs.
  const acked = Boolean(incident.acknowledged_by);
  return timerHtml(incident.first_press_at_ms, {
    until: incident.closed_at_ms,
    target: acked ? null : targets.operator_ack_s,
    big,
    label: acked ? t('timer.since_press') : t('timer.since_press_ack', { s: targets.operator_ack_s }),
  });
}

function dispatchTimer(incident, big) {
  const targets = view.session?.targets || {};
  const { dispatchedAt, onSceneAt } = milestones(incident);
  return timerHtml(dispatchedAt, {
    until: onSceneAt || incident.closed_at_ms,
    target: targets.on_scene_s,
    big,
    label: t('timer.since_dispatch', { min: Math.round((targets.on_scene_s || 0) / 60) }),
  });
}

// ---- ordering ---------------------------------------------------------------------------

function queue() {
  return [...store.incidents.values()].sort((a, b) =>
    (PRIORITY_RANK[b.priority] || 0) - (PRIORITY_RANK[a.priority] || 0) ||
    a.first_press_at_ms - b.first_press_at_ms ||
    a.id.localeCompare(b.id));
}

function incidentById(id) {
  return store.incidents.get(id) || store.closed.get(id) || null;
}

// ---- connection ---------------------------------------------------------------------------

function setConn(conn, text) {
  view.conn = conn;
  document.body.dataset.conn = conn;
  const el = $('conn');
  el.textContent = text;
  el.className = `conn conn-${conn}`;
}

function connect() {
  if (view.source) view.source.close();
  view.attempt += 1;
  setConn(view.snapshotSeen ? 'reconnecting' : 'connecting', view.snapshotSeen ? t('conn.reconnecting') : t('conn.connecting'));
  const source = new EventSource('/api/events');
  view.source = source;
  const on = (name, handler) => source.addEventListener(name, (event) => {
    view.lastEventAt = Date.now();
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    handler(data);
  });
  on('hello', (d) => {
    view.offsetMs = d.server_time_ms ? d.server_time_ms - Date.now() : 0;
    view.node = d.node;
  });
  on('tick', (d) => {
    if (d.server_time_ms) view.offsetMs = d.server_time_ms - Date.now();
  });
  on('snapshot_start', () => {
    view.pending = { incidents: new Map(), units: new Map(), buttons: new Map(), cameras: new Map() };
  });
  on('snapshot_done', finishSnapshot);
  on('incident', onIncident);
  on('call', onCall);
  on('unit', (u) => { (view.pending || store).units.set(u.id, u); queueRender(); });
  on('button', (b) => { (view.pending || store).buttons.set(b.id, b); queueRender(); });
  on('camera', (c) => { (view.pending || store).cameras.set(c.id, c); queueRender(); });
  on('error', (d) => {
    toast(t('conn.feed_error', { message: d.message }), 'error');
    lost();
  });
  source.onerror = () => lost();
  view.lastEventAt = Date.now();
  clearInterval(view.watchdog);
  view.watchdog = setInterval(() => {
    const silenceMax = (view.session?.stream_silence_max_s || 15) * 1000;
    if (Date.now() - view.lastEventAt > silenceMax) lost();
  }, 1000);
}

function finishSnapshot() {
  const fresh = view.pending;
  view.pending = null;
  if (!fresh) return;
  for (const [id, incident] of fresh.incidents) {
    if (view.snapshotSeen && !store.incidents.has(id) && !store.closed.has(id)) newIncident(incident);
  }
  // Incidents that vanished from the open set closed while we were not looking.
  for (const [id, incident] of store.incidents) {
    if (!fresh.incidents.has(id)) rememberClosed({ ...incident, state: 'closed', stale: true });
  }
  store.incidents = fresh.incidents;
  store.units = fresh.units;
  store.buttons = fresh.buttons;
  store.cameras = fresh.cameras;
  view.snapshotSeen = true;
  view.backoffMs = BACKOFF_MIN_MS;
  view.attempt = 0;
  setConn('live', t('conn.live', { node: view.node || '' }));
  if (!view.selected || !incidentById(view.selected)) view.selected = queue()[0]?.id || null;
  queueRender();
  refreshCluster();
}

function lost() {
  if (view.source) {
    view.source.close();
    view.source = null;
  }
  clearInterval(view.watchdog);
  if (view.reconnectTimer) return;
  const wait = Math.min(view.backoffMs, BACKOFF_MAX_MS) * (0.75 + Math.random() * 0.5);
  view.backoffMs = Math.min(view.backoffMs * 2, BACKOFF_MAX_MS);
  setConn('reconnecting', t('conn.retry', { attempt: view.attempt + 1, s: (wait / 1000).toFixed(1) }));
  queueRender();
  view.reconnectTimer = setTimeout(async () => {
    view.reconnectTimer = null;
    // A restarted node may not know our session: go and sign in again rather than loop.
    try {
      const r = await fetch('/api/session', { cache: 'no-store' });
      if (r.status === 401) {
        location.href = view.session?.demo ? '/' : '/login';
        return;
      }
      if (r.ok) view.session = await r.json();
    } catch {
      // The node is down; EventSource will fail again and back off further.
    }
    connect();
  }, wait);
}

function onIncident(incident) {
  if (view.pending) {
    if (incident.state !== 'closed') view.pending.incidents.set(incident.id, incident);
    return;
  }
  const known = store.incidents.get(incident.id);
  if (incident.state === 'closed') {
    store.incidents.delete(incident.id);
    rememberClosed(incident);
  } else {
    if (!known) newIncident(incident);
    store.incidents.set(incident.id, incident);
  }
  if (!view.selected) view.selected = incident.id;
  queueRender();
}

function rememberClosed(incident) {
  store.closed.delete(incident.id);
  store.closed.set(incident.id, incident);
  while (store.closed.size > CLOSED_KEPT_MAX) store.closed.delete(store.closed.keys().next().value);
}

// ---- alerting -----------------------------------------------------------------------------

function newIncident(incident) {
  view.flash = view.flash || new Set();
  view.flash.add(incident.id);
  setTimeout(() => { view.flash.delete(incident.id); queueRender(); }, 4000);
  document.body.classList.remove('alerting');
  void document.body.offsetWidth; // restart the animation
  document.body.classList.add('alerting');
  beep();
}

function ensureAudio() {
  if (!view.audio) {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    view.audio = new Context();
  }
  if (view.audio.state === 'suspended') view.audio.resume().catch(() => {});
  return view.audio;
}

// ---- alarms --------------------------------------------------------------------------------
//
// Browsers let a page make sound only after a person interacted with it: the shift starts
// with one click (or the key S) that unlocks it. From then on, while any open incident waits
// for acknowledgement its alarm repeats every ALARM_REPEAT_MS; past the acknowledgement target
// it escalates: louder, every ALARM_ESCALATED_REPEAT_MS, and the page title and favicon flash.
// A button tampered with, a button gone offline and a camera gone offline each have their own
// sound, played once when it happens, and stay listed in the alerts panel until a supervisor
// clears them (the list is the node's: every console shows the same one, a reload keeps it).
// With the console in the background, the browser shows a notification as well.
// All sounds are generated with Web Audio (no files).

const ALARM_REPEAT_MS = 4000;
const ALARM_ESCALATED_REPEAT_MS = 1500;
// How often the alarm loop looks at the queue: well under the fastest repeat.
const ALARM_CHECK_MS = 250;
const ALARM_GAIN = 0.18;
const ALARM_ESCALATED_GAIN = 0.5;

const alarm = {
  started: false,
  lastAt: 0, // when the incident alarm last sounded (ms, this PC's clock)
  ringing: false, // some incident waits for acknowledgement
  escalated: false, // ... past the target
  callEscalated: false, // an intercom call rings unanswered past the target
  checks: 0, // runs of the alarm loop
  plays: { incident: 0, escalated: 0, tamper: 0, button_offline: 0, camera_offline: 0 },
  notifications: 0,
  alerts: new Map(), // key (`tamper:B01`) -> { kind, id, since }
  flashOn: false,
};

// Test and diagnostic hooks: what the alarms did, read by the Chromium tests.
window.centinelaAlarm = {
  get started() { return alarm.started; },
  get ringing() { return alarm.ringing; },
  get escalated() { return alarm.escalated; },
  get callEscalated() { return alarm.callEscalated; },
  get checks() { return alarm.checks; },
  get notifications() { return alarm.notifications; },
  get audio() { return view.audio?.state || 'none'; },
  plays: alarm.plays,
  alerts: () => [...alarm.alerts.keys()],
};

// Tones: [frequency Hz, start s, length s] per sound, square or sine waves.
const SOUNDS = {
  incident: { wave: 'square', tones: [[880, 0, 0.16], [1175, 0.18, 0.16], [880, 0.36, 0.16], [1175, 0.54, 0.16]] },
  escalated: { wave: 'square', tones: [[988, 0, 0.1], [1319, 0.11, 0.1], [988, 0.22, 0.1], [1319, 0.33, 0.1], [988, 0.44, 0.1], [1319, 0.55, 0.1]] },
  // A falling-rising siren: somebody is opening the box.
  tamper: { wave: 'sawtooth', tones: [[1400, 0, 0.25], [700, 0.25, 0.25], [1400, 0.5, 0.25], [700, 0.75, 0.25]] },
  // Two low falling tones: a button went quiet.
  button_offline: { wave: 'sine', tones: [[523, 0, 0.3], [392, 0.32, 0.45]] },
  // Three short mid beeps: a camera went dark.
  camera_offline: { wave: 'triangle', tones: [[660, 0, 0.09], [660, 0.14, 0.09], [660, 0.28, 0.09]] },
};

function play(kind, gain = ALARM_GAIN) {
  alarm.plays[kind] += 1;
  if (!view.soundOn) return;
  const ctx = ensureAudio();
  if (!ctx) return;
  const sound = SOUNDS[kind];
  const t0 = ctx.currentTime;
  for (const [freq, at, length] of sound.tones) {
    const osc = ctx.createOscillator();
    const envelope = ctx.createGain();
    osc.type = sound.wave;
    osc.frequency.value = freq;
    envelope.gain.setValueAtTime(0.0001, t0 + at);
    envelope.gain.exponentialRampToValueAtTime(gain, t0 + at + 0.02);
    envelope.gain.exponentialRampToValueAtTime(0.0001, t0 + at + length);
    osc.connect(envelope).connect(ctx.destination);
    osc.start(t0 + at);
    osc.stop(t0 + at + length + 0.01);
  }
}

function beep() {
  // A new incident sounds at once, then repeats from the alarm loop.
  alarm.lastAt = 0;
  if (alarm.started) checkAlarms();
  updateSoundButton();
}

function startShift() {
  if (alarm.started) return;
  alarm.started = true;
  view.soundOn = true;
  ensureAudio();
  if ('Notification' in window && Notification.permission === 'default') {
    Notification.requestPermission().catch(() => {});
  }
  // What is wrong already is news to this shift: sounded once per kind.
  for (const a of alarm.alerts.values()) a.sounded = false;
  alarm.lastAt = 0;
  checkAlarms();
  updateSoundButton();
  toast(t('shift.started'), 'ok');
}

function notify(title, body) {
  if (!document.hidden || !('Notification' in window) || Notification.permission !== 'granted') return;
  try {
    const n = new Notification(title, { body, tag: title, icon: '/assets/favicon.svg' });
    n.onclick = () => window.focus();
    alarm.notifications += 1;
  } catch (e) {
    // Notifications may be unavailable (no service worker on some platforms); the sound stays.
  }
}

// The open alerts the node holds on its buttons and cameras (cleared only by a supervisor).
function currentAlerts() {
  const found = new Map();
  for (const b of store.buttons.values()) {
    if (b.alert) found.set(`${b.alert.kind}:${b.id}`, { kind: b.alert.kind, id: b.id, device: 'buttons', since: b.alert.since_ms });
  }
  for (const c of store.cameras.values()) {
    if (c.alert) found.set(`${c.alert.kind}:${c.id}`, { kind: c.alert.kind, id: c.id, device: 'cameras', since: c.alert.since_ms, detail: c.online ? null : c.fault });
  }
  return found;
}

// A supervisor clears an alert; the node refuses an operator (403, its message in the toast).
async function clearAlert(device, id) {
  let response;
  let reply = null;
  try {
    response = await fetch(`/api/${device}/${encodeURIComponent(id)}/clear-alert`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    reply = await response.json().catch(() => null);
  } catch (err) {
    toast(t('action.not_sent', { error: err }), 'error');
    return;
  }
  if (!response.ok) {
    toast(apiError(reply, response.status), 'error');
    return;
  }
  if (reply?.button) store.buttons.set(reply.button.id, reply.button);
  if (reply?.camera) store.cameras.set(reply.camera.id, reply.camera);
  toast(t('alert.cleared', { id }), 'ok');
  checkAlarms();
  queueRender();
}

function checkAlarms() {
  alarm.checks += 1;
  if (!view.snapshotSeen) return;
  // Alerts: the node's open ones; a cleared one leaves the panel.
  const found = currentAlerts();
  for (const key of [...alarm.alerts.keys()]) if (!found.has(key)) alarm.alerts.delete(key);
  for (const [key, a] of found) {
    const known = alarm.alerts.get(key);
    if (known) known.detail = a.detail;
    else alarm.alerts.set(key, { ...a, sounded: false });
  }
  const due = new Set();
  for (const a of alarm.alerts.values()) {
    if (!a.sounded && alarm.started) {
      a.sounded = true;
      due.add(a.kind);
      notify(t(`alert.kind.${a.kind}`), a.id);
    }
  }
  for (const kind of due) play(kind);

  // The incident alarm.
  const waiting = [...store.incidents.values()].filter((i) => !i.acknowledged_by && i.state !== 'closed');
  const targetMs = (view.session?.targets?.operator_ack_s || 15) * 1000;
  // A call nobody answers rings the same alarm, and escalates past the same target.
  const calling = ringingCalls();
  alarm.callEscalated = calling.some((c) => now() - c.ringing_since_ms >= targetMs);
  alarm.ringing = waiting.length > 0 || calling.length > 0;
  alarm.escalated = waiting.some((i) => now() - i.first_press_at_ms >= targetMs) || alarm.callEscalated;
  if (alarm.ringing && alarm.started) {
    const every = alarm.escalated ? ALARM_ESCALATED_REPEAT_MS : ALARM_REPEAT_MS;
    if (Date.now() - alarm.lastAt >= every) {
      if (alarm.lastAt === 0) notify(t('alert.new_incident'), waiting.map((i) => i.button).join(', '));
      alarm.lastAt = Date.now();
      // Every sounding counts as an incident alarm; past the target it is the louder one.
      if (alarm.escalated) {
        alarm.plays.incident += 1;
        play('escalated', ALARM_ESCALATED_GAIN);
      } else {
        play('incident');
      }
    }
  } else {
    alarm.lastAt = 0;
  }
  flash(alarm.escalated);
  renderAlerts();
}

// Past the target the title and the favicon blink, so a console in a background tab or
// behind another window still catches the eye.
const FAVICON = '/assets/favicon.svg';
const FAVICON_ALERT = `data:image/svg+xml,${encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="8" fill="#d93025"/><text x="8" y="12.5" font-size="12" text-anchor="middle" fill="#fff" font-family="sans-serif" font-weight="bold">!</text></svg>')}`;
let flashTick = 0;
function flash(on) {
  flashTick += 1;
  const blink = on && Math.floor(flashTick / 2) % 2 === 0;
  document.body.classList.toggle('escalated', on);
  if (blink === alarm.flashOn) return;
  alarm.flashOn = blink;
  const icon = document.querySelector('link[rel="icon"]');
  if (icon) icon.href = blink ? FAVICON_ALERT : FAVICON;
  renderCounts();
}

function renderAlerts() {
  const host = $('alerts');
  if (!host) return;
  const alerts = [...alarm.alerts.entries()].sort((a, b) => ALERT_RANK[a[1].kind] - ALERT_RANK[b[1].kind] || a[1].since - b[1].since);
  $('alerts-count').textContent = alerts.length;
  $('alerts-count').classList.toggle('pill-alert', alerts.length > 0);
  setHtml(host, alerts.length
    ? alerts.map(([key, a]) => `<li class="alert alert-${a.kind}" data-alert="${esc(key)}">
        <span class="alert-icon" aria-hidden="true">${ALERT_ICON[a.kind]}</span>
        <b>${esc(t(`alert.kind.${a.kind}`))}</b> ${esc(a.id)}${a.detail ? ` <small>${esc(a.detail)}</small>` : ''}
        <time>${clock(a.since)}</time>
        <button type="button" class="alert-clear" data-clear-device="${a.device}" data-clear-id="${esc(a.id)}" title="${esc(t('alert.clear_title'))}">${esc(t('alert.clear'))}</button></li>`).join('')
    : `<li class="muted">${t('alert.none')}</li>`);
}
// Text symbols every system font has (a wall screen's PC may have no emoji font).
const ALERT_ICON = { tamper: '⚠', button_offline: '○', camera_offline: '◎' };
// Most serious first, then oldest.
const ALERT_RANK = { tamper: 0, button_offline: 1, camera_offline: 2 };

function updateSoundButton() {
  const button = $('sound');
  const suspended = view.audio && view.audio.state === 'suspended';
  if (!alarm.started) {
    button.textContent = t('shift.start');
    button.classList.add('warn');
    return;
  }
  button.textContent = !view.soundOn ? t('sound.off') : suspended ? t('sound.enable') : t('sound.on');
  button.classList.toggle('warn', !view.soundOn || Boolean(suspended));
}

// ---- rendering ----------------------------------------------------------------------------

// Coalesces renders to one per frame. A hidden tab gets no animation frames at all, and an
// operator may keep the console in a background tab: there a timer (which browsers throttle
// to about once a second) keeps the title's count and the page current.
function queueRender() {
  if (view.renderQueued) return;
  view.renderQueued = true;
  const run = () => {
    view.renderQueued = false;
    render();
  };
  if (document.hidden) setTimeout(run, 0);
  else requestAnimationFrame(run);
}

function render() {
  wall?.render(queue(), store.cameras, view.conn === 'live');
  renderQueue();
  renderDetail();
  renderUnits();
  renderMap();
  renderCounts();
  tickTimers();
}

function renderCounts() {
  const open = store.incidents.size;
  const unacked = [...store.incidents.values()].filter((i) => !i.acknowledged_by).length;
  const available = [...store.units.values()].filter((u) => u.status === 'available').length;
  // A camera that cannot show the caller is worth every operator's attention.
  const camerasOff = [...store.cameras.values()].filter((c) => !c.online);
  setHtml($('counts'), `<span class="count ${unacked ? 'count-alert' : ''}">${t('counts.to_ack', { n: `<b>${unacked}</b>` })}</span>` +
    `<span class="count">${t('counts.open', { n: `<b>${open}</b>` })}</span>` +
    `<span class="count">${t('counts.available', { n: `<b>${available}</b>`, total: store.units.size })}</span>` +
    (camerasOff.length ? `<span class="count count-alert" id="cameras-offline" title="${esc(camerasOff.map((c) => `${c.id}: ${c.fault || t('camera.no_connection')}`).join('\n'))}">${camerasOff.length === 1 ? t('counts.camera_offline', { n: '<b>1</b>' }) : t('counts.cameras_offline', { n: `<b>${camerasOff.length}</b>` })}</span>` : ''));
  const prefix = unacked ? `(${unacked}) ` : '';
  const blink = alarm.flashOn ? `🔴 ${t('alert.title_flash')} ` : '';
  document.title = `${blink}${prefix}${t('page.console.title')}`;
}

// A unit as one chip colored by status: "U03 en route"; "no ack" while its terminal has not
// acknowledged the assignment.
function unitChip(id) {
  const u = store.units.get(id);
  if (!u) return `<span class="chip">${esc(id)}</span>`;
  const waiting = u.status === 'dispatched' && !u.acked;
  return `<span class="chip uchip status-${esc(u.status)}${waiting ? ' waiting' : ''}" title="${esc(u.callsign)} · ${esc(modeText(u.mode))}"><b>${esc(u.id)}</b> ${esc(unitStatusText(u.status))}${waiting ? ` · ${t('unit.no_ack')}` : ''}</span>`;
}

function renderQueue() {
  const list = $('queue');
  const items = queue();
  $('queue-count').textContent = items.length;
  $('queue-empty').hidden = items.length > 0;
  setHtml(list, items.map((i) => {
    const button = store.buttons.get(i.button);
    const classes = ['card', `prio-${i.priority}`, `state-${i.state}`];
    if (i.id === view.selected) classes.push('selected');
    if (view.flash?.has(i.id)) classes.push('flash');
    if (!i.acknowledged_by) classes.push('unacked');
    const noUnit = i.units.length === 0 && i.state !== 'on_scene';
    return `<li class="${classes.join(' ')}" data-incident-id="${esc(i.id)}" data-state="${esc(i.state)}" tabindex="-1">
      <div class="card-top">
        <span class="prio-badge prio-${esc(i.priority)}">${esc(priorityText(i.priority))}</span>
        <span class="chip state-chip state-${esc(i.state)}">${esc(stateText(i.state))}</span>
        ${i.acknowledged_by ? '' : `<span class="chip chip-alert">${t('card.needs_ack')}</span>`}
        ${i.press_count > 1 ? `<span class="presses" title="${t('card.merged_presses')}">×${i.press_count}</span>` : ''}
      </div>
      <div class="card-place"><b>${esc(i.button)}</b> ${esc(button?.name || '')}</div>
      <div class="card-timers">
        <span class="timer-box"><small>${t('card.since_press')}</small>${pressTimer(i, false)}</span>
        <span class="timer-box"><small>${t('card.since_dispatch')}</small>${dispatchTimer(i, false)}</span>
      </div>
      <div class="card-units">${i.kind !== 'unclassified' ? `<span class="kind">${esc(kindText(i.kind))}</span> · ` : ''}${noUnit ? `<span class="chip chip-alert">${t('card.no_unit')}</span>` : i.units.map(unitChip).join(' ')}</div>
      ${callSlot(i.id)}
    </li>`;
  }).join(''));
  const closed = [...store.closed.values()].reverse();
  setHtml($('closed'), closed.map((i) =>
    `<li class="closed-item${i.id === view.selected ? ' selected' : ''}" data-incident-id="${esc(i.id)}">
      <span>${esc(i.id)}</span><span class="chip">${esc(i.resolution ? resolutionText(i.resolution) : stateText('closed'))}</span></li>`).join(''));
  $('closed-section').hidden = closed.length === 0;
}

function renderUnits() {
  const known = [...store.units.keys()].sort();
  if ($('radio-units').childElementCount !== known.length) {
    setHtml($('radio-units'), known.map((id) => `<option value="${esc(id)}">`).join(''));
  }
  const units = [...store.units.values()].sort((a, b) =>
    UNIT_STATUS_ORDER.indexOf(a.status) - UNIT_STATUS_ORDER.indexOf(b.status) || a.id.localeCompare(b.id));
  setHtml($('units'), units.map((u) => {
    const incident = u.incident ? incidentById(u.incident) : null;
    return `<tr data-unit="${esc(u.id)}">
      <td class="u-name" title="${esc(u.callsign)}"><b>${esc(u.id)}</b></td>
      <td class="u-mode">${esc(modeText(u.mode))}${u.capabilities.map((c) => ` <span class="cap" title="${esc(capTitle(c))}">${capText(c)}</span>`).join('')}</td>
      <td><span class="chip status-${esc(u.status)}">${esc(unitStatusText(u.status))}</span>${cooldownChip(u)}${u.radio_by ? ` <span class="chip radio-chip" title="${esc(t('unit.radio_title', { by: u.radio_by, at: clock(u.radio_at_ms) }))}">${t('unit.radio')}</span>` : ''}</td>
      <td>${timerHtml(u.status_since_ms)}</td>
      <td>${u.incident ? `<a href="#" data-incident-id="${esc(u.incident)}" title="${esc(u.incident)}">${esc(incident?.button || u.incident.split('-')[0])}</a>` : ''}</td>
    </tr>`;
  }).join(''));
}

// A unit that let an assignment time out is skipped by the dispatcher until its cool-down ends.
function cooldownChip(u) {
  if (!u.cooldown_until_ms || u.cooldown_until_ms <= Date.now()) return '';
  return ` <span class="chip chip-alert cooldown-chip" title="${esc(t('unit.cooldown_title', { until: clock(u.cooldown_until_ms) }))}">${t('unit.cooldown')}</span>`;
}

// Radio fallback: an operator sets a unit's status (and position) from a radio call.
async function radioReport(e) {
  e.preventDefault();
  const unit = $('radio-unit').value.trim();
  const body = { status: $('radio-status').value };
  const lat = $('radio-lat').value.trim();
  const lon = $('radio-lon').value.trim();
  if (lat || lon) {
    body.lat = Number(lat);
    body.lon = Number(lon);
  }
  let response;
  let reply = null;
  try {
    response = await fetch(`/api/units/${encodeURIComponent(unit)}/status`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    reply = await response.json().catch(() => null);
  } catch (err) {
    toast(t('action.not_sent', { error: err }), 'error');
    return;
  }
  if (!response.ok) {
    toast(apiError(reply, response.status), 'error');
    return;
  }
  if (reply?.id) store.units.set(reply.id, reply);
  toast(t('radio.done', { unit, status: unitStatusText(body.status) }), 'ok');
  queueRender();
}

const modeText = (v) => (has(`mode.${v}`) ? t(`mode.${v}`) : raw(v));
// Capabilities: a short tag in the table, the full name on hover.
const capText = (v) => esc(has(`cap.${v}`) ? t(`cap.${v}`) : raw(v));
const capTitle = (v) => (has(`cap_title.${v}`) ? t(`cap_title.${v}`) : raw(v));

let map = null;
function renderMap() {
  if (!map) {
    map = new MapView($('map'), { onSelect: select, label: t('map.label.console') });
  }
  map.draw({
    buttons: [...store.buttons.values()],
    units: [...store.units.values()],
    incidents: [...store.incidents.values()],
    selected: view.selected,
  });
}

function renderDetail() {
  const incident = view.selected ? incidentById(view.selected) : null;
  const panel = $('detail');
  if (!incident) {
    panel.innerHTML = `<div class="empty big-empty">${t('detail.none')}<br><small>${t('detail.none_hint')}</small></div>`;
    view.detailFor = null;
    videoStop();
    return;
  }
  if (view.detailFor !== incident.id) {
    panel.innerHTML = detailSkeleton();
    view.detailFor = incident.id;
    view.cameraView = null;
    fillClassifyForm(incident);
    loadRecommendations(incident.id);
    loadHandoffs(incident.id);
  }
  const button = store.buttons.get(incident.button);
  const camera = store.cameras.get(incident.camera);
  const bookmark = camera?.bookmarks?.filter((b) => b.incident === incident.id).pop();
  const closed = incident.state === 'closed';
  panel.classList.toggle('is-closed', closed);
  setHtml($('d-head'), `
    <span class="prio-badge prio-${esc(incident.priority)}">${esc(priorityText(incident.priority))}</span>
    <span class="chip state-chip state-${esc(incident.state)}">${esc(stateText(incident.state))}</span>
    <span class="kind">${esc(kindText(incident.kind))}</span>
    ${incident.press_count > 1 ? `<span class="presses">${t('detail.presses', { n: incident.press_count })}</span>` : ''}
    <span class="incident-id">${esc(incident.id)}</span>`);
  setHtml($('d-place'), `<b>${esc(incident.button)}</b> ${esc(button?.name || '')}
    <small class="coords">${incident.lat?.toFixed(5)}, ${incident.lon?.toFixed(5)}</small>
    ${button && button.status !== 'online' ? `<span class="chip health-${esc(button.status)}">${t('detail.button_status', { status: buttonStatusText(button.status) })}</span>` : ''}`);
  $('d-closed').hidden = !closed;
  $('d-closed').textContent = closed
    ? `${incident.resolution ? t('detail.closed_as', { resolution: resolutionText(incident.resolution), at: clock(incident.closed_at_ms) }) : t('detail.closed_at', { at: clock(incident.closed_at_ms) })}${incident.stale ? ` ${t('detail.closed_stale')}` : ''}`
    : '';
  const { dispatchedAt, onSceneAt } = milestones(incident);
  setHtml($('d-timers'), `
    <div class="big-timer"><small>${t('detail.since_press')}</small>${pressTimer(incident, true)}
      <small>${incident.acknowledged_by ? t('detail.acked_by', { who: `<b>${esc(incident.acknowledged_by)}</b>`, at: clock(incident.acknowledged_at_ms) }) : `<b class="alert-text">${t('detail.not_acked')}</b> · ${t('detail.ack_target', { s: view.session?.targets?.operator_ack_s ?? '?' })}`}</small></div>
    <div class="big-timer"><small>${t('detail.since_dispatch')}</small>${dispatchTimer(incident, true)}
      <small>${onSceneAt ? t('detail.on_scene_at', { at: clock(onSceneAt) }) : dispatchedAt ? t('detail.on_scene_target', { min: Math.round((view.session?.targets?.on_scene_s || 0) / 60) }) : `<b class="alert-text">${t('detail.no_unit_yet')}</b>`}</small></div>
    <div class="big-timer camera-box camera-${esc(camera?.state || 'unknown')}"><small>${t('camera.title', { id: esc(incident.camera) })}</small>
      <span class="camera-state">${camera ? (camera.online ? esc(cameraStateText(camera.state)) : t('camera.offline')) : t('camera.unknown')}</span>
      <small>${camera?.target_incident === incident.id ? t('camera.aimed_here') : camera?.target_incident ? t('camera.aimed_at', { id: esc(camera.target_incident) }) : t('camera.not_aimed')}${bookmark ? ` · ${t('camera.bookmark', { at: clock(bookmark.at_ms) })}` : ''}</small></div>`);
  setHtml($('d-units'), incident.units.length
    ? incident.units.map((id) => {
      const u = store.units.get(id);
      const waiting = u && u.status === 'dispatched' && !u.acked;
      return `<span class="d-unit">${unitChip(id)} ${timerHtml(u?.status_since_ms, { target: waiting ? view.session?.targets?.unit_ack_s : null, label: waiting ? t('unit.waiting_ack') : t('unit.in_status') })}</span>`;
    }).join('')
    : `<span class="chip chip-alert">${t('detail.no_unit_attached')}</span>`);
  renderUnitOutcomes(incident);
  renderSwap(incident);
  renderHold(incident);
  for (const button of panel.querySelectorAll('[data-action]')) button.disabled = closed || view.conn !== 'live';
  $('act-ack').disabled = closed || Boolean(incident.acknowledged_by) || view.conn !== 'live';
  $('act-ack').textContent = incident.acknowledged_by ? t('action.acked_by', { who: incident.acknowledged_by }) : t('action.ack');
  const cancel = $('resolve-kind').querySelector('option[value="cancelled"]');
  if (cancel) cancel.disabled = view.session?.role !== 'supervisor';
  renderCaller(incident);
  renderRecommendations(incident);
  renderHandoffs(incident);
  renderAudit(incident);
  renderCamera(incident, camera);
}

// ---- the camera's picture ----------------------------------------------------------------

// Steps of the manual controls: a tenth of a turn of the view at a time.
const PTZ_STEP = { pan: 10, tilt: 5, zoom: 1.5 };

function renderCamera(incident, camera) {
  const img = $('cam-live');
  const note = $('cam-note');
  const canvas = $('cam-video');
  const mseVideo = $('cam-mse');
  const videoNote = $('cam-video-status');
  setHtml($('cam-title'), esc(incident.camera));
  const onvif = camera?.driver === 'onvif';
  const online = Boolean(camera?.online);
  $('cam-status').textContent = !camera ? t('camera.unknown') : !online ? t('camera.offline') : cameraStateText(camera.state);
  $('cam-status').className = `cam-status cam-${!camera ? 'unknown' : online ? camera.state : 'offline'}`;
  for (const b of $('d-camera').querySelectorAll('[data-ptz]')) b.disabled = !onvif || !online || view.conn !== 'live';
  $('act-still').disabled = !onvif || !online || incident.state === 'closed' || view.conn !== 'live';
  // Full-motion video when the camera has an RTSP stream and the browser has WebCodecs (or,
  // failing that, Media Source Extensions); the node's MJPEG stills otherwise, and while the
  // video has not shown a frame yet.
  const streamable = onvif && online && Boolean(camera?.stream_uri) && VIDEO_MODE !== 'none';
  const want = !onvif ? 'none' : streamable ? 'video' : online ? 'live' : 'last';
  const key = `${incident.camera}:${want}`;
  if (view.cameraView !== key) {
    view.cameraView = key;
    view.ptz = camera?.preset ? { ...camera.preset } : { pan_deg: 0, tilt_deg: 0, zoom: 1 };
    img.removeAttribute('src');
    img.hidden = want === 'none';
    if (want === 'live') img.src = `/api/cameras/${encodeURIComponent(incident.camera)}/live.mjpeg`;
    if (want === 'last') showLastStill(incident.camera);
  }
  if (want === 'video') {
    videoStart(incident.camera);
    // The panel was rebuilt (another incident on the same camera): play into the new <video>.
    if (player.mse && player.mse.video !== mseVideo) {
      const { config } = player.mse;
      videoCloseDecoder();
      videoConfigureMse(config);
    }
    // The MSE <video> is shown once it has a picture (a hidden one counts no frames).
    const shown = VIDEO_MODE === 'mse' ? player.mseReady : player.framesDecoded > 0;
    canvas.hidden = !shown || VIDEO_MODE !== 'webcodecs';
    mseVideo.hidden = !shown || VIDEO_MODE !== 'mse';
    img.hidden = shown;
    const mjpeg = `/api/cameras/${encodeURIComponent(incident.camera)}/live.mjpeg`;
    if (!shown && img.getAttribute('src') !== mjpeg) img.src = mjpeg;
    if (shown && img.hasAttribute('src')) img.removeAttribute('src');
    const problem = player.state !== 'playing';
    videoNote.hidden = !problem && !player.latencyShown;
    videoNote.dataset.state = player.state;
    videoNote.textContent = problem
      ? `${has(`video.${player.state}`) ? t(`video.${player.state}`) : player.state}${player.reason ? `: ${player.reason}` : ''}${shown ? '' : ` · ${t('video.stills')}`}`
      : t('video.latency', { ms: player.latencyMs ?? '…' });
    videoNote.classList.toggle('cam-latency', !problem);
  } else {
    videoStop();
    canvas.hidden = true;
    mseVideo.hidden = true;
    videoNote.hidden = true;
  }
  note.hidden = online && onvif;
  if (!onvif) note.textContent = t('camera.native');
  else if (!online) {
    const age = view.stillAge != null ? ` · ${t('camera.last_picture', { s: Math.round(view.stillAge / 1000) })}` : '';
    note.textContent = `${t('camera.offline_note')}${camera?.fault ? ` (${camera.fault})` : ''}${age}`;
  }
  const stills = (incident.audit || []).filter((e) => e.action === 'still_saved')
    .map((e) => (/sha256 ([0-9a-f]{64})/.exec(e.detail || '') || [])[1]).filter(Boolean);
  const stream = incident.recording?.stream_uri || camera?.stream_uri;
  setHtml($('cam-stream'), stream ? `${t('camera.stream')} <code>${esc(stream)}</code>` : '');
  setHtml($('cam-stills'), stills.map((sha) => `<a class="still-link" target="_blank" rel="noopener" href="/api/incidents/${encodeURIComponent(incident.id)}/stills/${sha}.jpg">${t('camera.still', { sha: sha.slice(0, 12) })}…</a>`).join(' '));
}

// ---- live video: H.264 from the node over a WebSocket, decoded with WebCodecs -------------
//
// Browsers without WebCodecs play the same access units through Media Source Extensions:
// fmp4.js wraps them as fragmented MP4 for a muted <video> (`VIDEO_MODE` 'mse').
//
// The node pulls the camera's RTSP stream (one session per camera, however many operators
// watch) and forwards its access units untouched: a JSON `status`, a JSON `config` (the
// decoder's codec string and avcC description), then binary frames: u8 flags (1: key frame),
// i64 presentation time µs, u64 the node's receive time ms, the access unit. A view that falls
// behind skips to the next key frame, at the node and here.

const VIDEO_RETRY_MIN_MS = 500;
const VIDEO_RETRY_MAX_MS = 5000;
// Frames waiting in the decoder beyond which this page skips to the next key frame (a busy
// PC must not fall further and further behind live).
const VIDEO_DECODE_QUEUE_MAX = 30;
// Node receive times kept to estimate latency, by presentation time.
const VIDEO_LATENCY_SAMPLES_MAX = 120;

// How this browser plays live video: 'webcodecs', 'mse', or 'none' (stills only).
const VIDEO_MODE = 'VideoDecoder' in window ? 'webcodecs' : 'MediaSource' in window ? 'mse' : 'none';

const player = {
  camera: null, // the camera shown, or null
  ws: null,
  decoder: null,
  mse: null, // the MsePlayer of the current configuration, in 'mse' mode
  mseReady: false, // the <video> has a picture
  mseShownBefore: 0, // frames shown by earlier configurations' players
  state: 'off', // off, connecting, playing, reconnecting, refused, unavailable, unsupported
  reason: '',
  framesDecoded: 0,
  framesSkipped: 0,
  needKey: true,
  retryMs: VIDEO_RETRY_MIN_MS,
  timer: null,
  received: new Map(), // presentation time -> node receive time (ms, server clock)
  latencyMs: null,
  latencyShown: false, // supervisors see the latency from node to screen
  glass: new GlassMeter(), // capture to canvas, for test cameras that stamp their picture
};

// Test and diagnostic hooks: what the video shows, read by the Chromium tests.
window.centinelaVideo = {
  get mode() { return VIDEO_MODE; },
  get camera() { return player.camera; },
  get state() { return player.state; },
  get reason() { return player.reason; },
  // Frames drawn (WebCodecs) or shown by the <video> (MSE).
  get framesDecoded() { return player.framesDecoded; },
  get framesShown() { return player.framesDecoded; },
  get framesSkipped() { return player.framesSkipped; },
  get latencyMs() { return player.latencyMs; },
  get measureGlass() { return player.glass.enabled; },
  set measureGlass(on) { player.glass.enabled = Boolean(on); },
  // Glass-to-glass samples (ms) and frames whose stamp did not read (glass.js).
  get glass() { return { samples: [...player.glass.samples], unreadable: player.glass.unreadable }; },
};

function videoStart(cameraId) {
  if (player.camera === cameraId) return;
  videoStop();
  player.camera = cameraId;
  player.framesDecoded = 0;
  player.framesSkipped = 0;
  player.mseReady = false;
  player.mseShownBefore = 0;
  player.retryMs = VIDEO_RETRY_MIN_MS;
  // Measured from decoded frames' timestamps: WebCodecs only.
  player.latencyShown = view.session?.role === 'supervisor' && VIDEO_MODE === 'webcodecs';
  videoConnect();
}

function videoStop() {
  if (!player.camera) return;
  player.camera = null;
  player.state = 'off';
  player.reason = '';
  clearTimeout(player.timer);
  if (player.ws) player.ws.close();
  player.ws = null;
  videoCloseDecoder();
}

function videoCloseDecoder() {
  if (player.decoder && player.decoder.state !== 'closed') player.decoder.close();
  player.decoder = null;
  if (player.mse) {
    player.framesSkipped += player.mse.skipped;
    player.mseShownBefore = player.framesDecoded;
    player.mse.close();
  }
  player.mseReady = false; // a closed <video> is blank: the stills return
  player.mse = null;
  player.needKey = true;
  player.received.clear();
}

function videoState(state, reason) {
  if (player.state === state && player.reason === (reason || '')) return;
  player.state = state;
  player.reason = reason || '';
  queueRender();
}

function videoConnect() {
  const cameraId = player.camera;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/api/cameras/${encodeURIComponent(cameraId)}/live.ws`);
  ws.binaryType = 'arraybuffer';
  player.ws = ws;
  let heard = false;
  if (player.state === 'off') videoState('connecting');
  ws.onmessage = (event) => {
    if (player.ws !== ws) return;
    heard = true;
    if (typeof event.data === 'string') videoMessage(JSON.parse(event.data));
    else videoFrame(event.data);
  };
  ws.onclose = () => {
    if (player.ws !== ws) return; // stopped, or replaced
    player.ws = null;
    videoCloseDecoder();
    // Refused before a word (no stream, signed out, too many views): the node said why in
    // the HTTP answer, which browsers do not show a page; the stills stay.
    if (!heard) videoState('unavailable', t('video.not_opened'));
    else if (player.state !== 'refused') videoState('reconnecting', t('video.lost'));
    player.timer = setTimeout(() => { if (player.camera === cameraId) videoConnect(); }, player.retryMs);
    player.retryMs = Math.min(player.retryMs * 2, VIDEO_RETRY_MAX_MS);
  };
}

function videoMessage(message) {
  if (message.type === 'status') {
    if (message.state !== 'playing') videoCloseDecoder();
    else player.retryMs = VIDEO_RETRY_MIN_MS;
    videoState(message.state, message.reason);
  } else if (message.type === 'config') {
    videoConfigure(message);
  }
}

function videoConfigure(config) {
  videoCloseDecoder();
  if (VIDEO_MODE === 'mse') { videoConfigureMse(config); return; }
  if (VIDEO_MODE !== 'webcodecs') { videoState('unsupported', t('video.no_webcodecs')); return; }
  const description = Uint8Array.from(atob(config.description), (c) => c.charCodeAt(0));
  const decoder = new VideoDecoder({
    output: (frame) => videoDraw(frame),
    error: (e) => {
      if (player.decoder !== decoder) return;
      player.decoder = null;
      videoState('unsupported', `${config.codec}: ${e.message}`);
    },
  });
  try {
    decoder.configure({ codec: config.codec, description, optimizeForLatency: true });
  } catch (e) {
    videoState('unsupported', `${config.codec}: ${e.message}`);
    return;
  }
  player.decoder = decoder;
  player.needKey = true;
}

function videoConfigureMse(config) {
  const video = $('cam-mse');
  if (!video) return;
  if (!mseSupports(config.codec)) { videoState('unsupported', `${config.codec}: not playable with Media Source Extensions`); return; }
  const mse = new MsePlayer(video, config, (shown) => {
    if (player.mse !== mse) return;
    player.framesDecoded = player.mseShownBefore + shown;
  }, (message) => {
    if (player.mse !== mse) return;
    player.mse = null;
    videoState('unsupported', message);
  });
  video.addEventListener('loadeddata', () => {
    if (player.mse !== mse || player.mseReady) return;
    player.mseReady = true;
    queueRender();
  }, { once: true });
  player.mse = mse;
}

function videoFrame(buffer) {
  if (player.mse) {
    const header = new DataView(buffer, 0, 17);
    player.mse.push((header.getUint8(0) & 1) === 1, Number(header.getBigInt64(1)), new Uint8Array(buffer, 17));
    return;
  }
  const decoder = player.decoder;
  if (!decoder || decoder.state !== 'configured') return;
  const header = new DataView(buffer, 0, 17);
  const key = (header.getUint8(0) & 1) === 1;
  const timestamp = Number(header.getBigInt64(1));
  const receivedMs = Number(header.getBigUint64(9));
  if (!key && (player.needKey || decoder.decodeQueueSize > VIDEO_DECODE_QUEUE_MAX)) {
    player.needKey = true;
    player.framesSkipped += 1;
    return;
  }
  player.needKey = false;
  if (player.received.size >= VIDEO_LATENCY_SAMPLES_MAX) player.received.clear();
  player.received.set(timestamp, receivedMs);
  decoder.decode(new EncodedVideoChunk({ type: key ? 'key' : 'delta', timestamp, data: new Uint8Array(buffer, 17) }));
}

function videoDraw(frame) {
  const canvas = $('cam-video');
  if (canvas && player.camera) {
    if (canvas.width !== frame.displayWidth) canvas.width = frame.displayWidth;
    if (canvas.height !== frame.displayHeight) canvas.height = frame.displayHeight;
    const context = canvas.getContext('2d');
    context.drawImage(frame, 0, 0);
    player.glass.sample(context, frame.displayWidth);
  }
  const receivedMs = player.received.get(frame.timestamp);
  player.received.delete(frame.timestamp);
  frame.close();
  if (receivedMs != null) player.latencyMs = Math.max(0, Math.round(now() - receivedMs));
  player.framesDecoded += 1;
  // The first picture replaces the stills; later ones only update the latency line.
  if (player.framesDecoded === 1 || (player.latencyShown && player.framesDecoded % 30 === 0)) queueRender();
}

// The last picture of a camera that went offline, and how old it is.
async function showLastStill(cameraId) {
  view.stillAge = null;
  try {
    const r = await fetch(`/api/cameras/${encodeURIComponent(cameraId)}/still.jpg`, { cache: 'no-store' });
    if (!r.ok) return;
    view.stillAge = Number(r.headers.get('x-frame-age-ms'));
    const blob = await r.blob();
    if (view.cameraView === `${cameraId}:last`) $('cam-live').src = URL.createObjectURL(blob);
    queueRender();
  } catch (e) { /* the note says offline already */ }
}

async function steer(direction) {
  const incident = incidentById(view.selected);
  if (!incident) return;
  const p = view.ptz || { pan_deg: 0, tilt_deg: 0, zoom: 1 };
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const moves = {
    left: () => ({ ...p, pan_deg: clamp(p.pan_deg - PTZ_STEP.pan, -180, 180) }),
    right: () => ({ ...p, pan_deg: clamp(p.pan_deg + PTZ_STEP.pan, -180, 180) }),
    up: () => ({ ...p, tilt_deg: clamp(p.tilt_deg + PTZ_STEP.tilt, -90, 90) }),
    down: () => ({ ...p, tilt_deg: clamp(p.tilt_deg - PTZ_STEP.tilt, -90, 90) }),
    in: () => ({ ...p, zoom: clamp(p.zoom * PTZ_STEP.zoom, 1, 40) }),
    out: () => ({ ...p, zoom: clamp(p.zoom / PTZ_STEP.zoom, 1, 40) }),
  };
  const home = direction === 'home';
  const to = home ? null : moves[direction]();
  let r;
  try {
    r = await fetch(`/api/cameras/${encodeURIComponent(incident.camera)}/ptz`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(to || {}),
    });
  } catch (e) {
    toast(t('action.not_sent', { error: e }), 'error');
    return;
  }
  const reply = await r.json().catch(() => null);
  if (!r.ok) {
    toast(apiError(reply, r.status), 'error');
    return;
  }
  view.ptz = home ? { ...(reply?.preset || p) } : to;
}

function detailSkeleton() {
  return `
  <div class="d-head" id="d-head"></div>
  <div class="d-place" id="d-place"></div>
  <div class="d-closed" id="d-closed" hidden></div>
  <div class="d-timers" id="d-timers"></div>
  <div class="actions">
    <button id="act-ack" class="primary" data-action="ack">${t('action.ack')}</button>
    <button id="act-prank" class="danger" data-action="prank" data-confirm="${t('action.confirm')}">${t('action.prank')}</button>
    <span class="resolve-group">
      <select id="resolve-kind" aria-label="${t('action.resolution')}" data-action="resolve-kind">
        <option value="handled">${resolutionText('handled')}</option>
        <option value="false_alarm">${resolutionText('false_alarm')}</option>
        <option value="cancelled" title="${t('action.supervisors_only')}">${resolutionText('cancelled')}</option>
      </select>
      <button id="act-resolve" data-action="resolve" data-confirm="${t('action.confirm')}">${t('action.resolve')}</button>
    </span>
  </div>
  <section class="d-section d-camera" id="d-camera">
    <h3>${t('camera.heading')} <span id="cam-title"></span> <span id="cam-status" class="cam-status"></span></h3>
    <div class="cam-frame">
      <img id="cam-live" alt="${t('camera.picture')}">
      <canvas id="cam-video" hidden aria-label="${t('camera.video')}"></canvas>
      <video id="cam-mse" hidden muted playsinline aria-label="${t('camera.video')}"></video>
      <div id="cam-note" class="cam-note" hidden></div>
      <div id="cam-video-status" class="cam-note" hidden></div>
    </div>
    <div class="ptz" role="group" aria-label="${t('ptz.label')}">
      <button type="button" data-ptz="left" title="${t('ptz.left')}">◀</button>
      <button type="button" data-ptz="up" title="${t('ptz.up')}">▲</button>
      <button type="button" data-ptz="down" title="${t('ptz.down')}">▼</button>
      <button type="button" data-ptz="right" title="${t('ptz.right')}">▶</button>
      <button type="button" data-ptz="in" title="${t('ptz.in')}">+</button>
      <button type="button" data-ptz="out" title="${t('ptz.out')}">-</button>
      <button type="button" data-ptz="home" id="cam-home">${t('ptz.home')}</button>
      <button type="button" id="act-still" data-action="still">${t('action.still')}</button>
    </div>
    <div class="cam-stills" id="cam-stills"></div>
    <div class="cam-stream" id="cam-stream"></div>
  </section>
  <section class="d-section">
    <h3>${t('classify.heading')} <small>(C)</small></h3>
    <form id="classify" class="classify" autocomplete="off">
      <label>${t('classify.kind')} <select name="kind" id="f-kind">${KINDS.map((k) => `<option value="${k}">${kindText(k)}</option>`).join('')}</select></label>
      <label>${t('classify.priority')} <select name="priority" id="f-priority"><option value="">${t('classify.default')}</option>${PRIORITIES.map((p) => `<option value="${p}">${priorityText(p)}</option>`).join('')}</select></label>
      <label>${t('classify.caller')} <input name="name" id="f-name" maxlength="512" placeholder="${t('classify.name')}"></label>
      <label>${t('classify.phone')} <input name="phone" id="f-phone" maxlength="512" placeholder="${t('classify.phone_hint')}"></label>
      <label class="notes">${t('classify.notes')} <input name="notes" id="f-notes" maxlength="512" placeholder="${t('classify.notes_hint')}"></label>
      <button type="submit" id="act-classify" data-action="classify">${t('classify.save')}</button>
    </form>
    <div class="caller" id="d-caller"></div>
  </section>
  <section class="d-section">
    <h3>${t('detail.units')} <span class="d-units" id="d-units"></span></h3>
    <div id="d-outcomes" class="d-outcomes"></div>
    <div id="d-swap" class="d-swap"></div>
    <div id="d-hold" class="d-hold"></div>
    <h3>${t('rec.heading')} <button class="link" id="rec-refresh" type="button">${t('rec.refresh')}</button>
      <button id="act-dispatch-best" class="small-button" data-action="dispatch-best">${t('rec.dispatch_best')}</button></h3>
    <div id="d-recommend"></div>
  </section>
  <section class="d-section d-handoffs">
    <h3>${t('handoff.heading')} <small>${t('handoff.subtitle')}</small></h3>
    <div class="handoff-form">
      <select id="handoff-agency" aria-label="${t('handoff.agency')}"></select>
      <input id="handoff-note" maxlength="512" placeholder="${t('handoff.note')}">
      <button type="button" id="act-handoff" data-action="handoff" data-confirm="${t('action.confirm')}">${t('handoff.send')}</button>
    </div>
    <div id="d-handoffs"></div>
  </section>
  <section class="d-section">
    <h3>${t('audit.heading')}</h3>
    <ol class="timeline" id="d-audit"></ol>
  </section>`;
}

function fillClassifyForm(incident) {
  $('f-kind').value = incident.kind;
  $('f-priority').value = '';
  $('f-name').value = incident.caller?.name || '';
  $('f-phone').value = incident.caller?.phone || '';
  $('f-notes').value = incident.caller?.notes || '';
}

function renderCaller(incident) {
  const c = incident.caller;
  setHtml($('d-caller'), c && (c.name || c.phone || c.notes)
    ? `<b>${t('classify.on_record')}</b> ${esc(c.name || '—')} · ${esc(c.phone || '—')}${c.notes ? `<br>${esc(c.notes)}` : ''}`
    : '');
}

// How the units that cleared the incident said they left the scene (the brigade app's clear).
function renderUnitOutcomes(incident) {
  const outcomes = incident.unit_outcomes || [];
  setHtml($('d-outcomes'), outcomes.length
    ? `<b>${esc(t('brigade.outcomes'))}:</b> ${outcomes.map((o) => `<span class="unit-outcome"><b>${esc(o.unit)}</b> ${esc(resolutionText(o.resolution))}${o.note ? ` · ${esc(o.note)}` : ''} <time>${clock(o.at_ms)}</time></span>`).join(' ')}`
    : '');
}

// The swap recommended after a reclassification: one click sends the better-suited unit and
// releases the other (audited as this operator). Never done automatically.
function renderSwap(incident) {
  const swap = incident.swap;
  const off = incident.state === 'closed' || view.conn !== 'live';
  setHtml($('d-swap'), swap
    ? `<b>${esc(t('brigade.swap_title'))}:</b> ${esc(t('brigade.swap_why', { to: swap.in, from: swap.out, kind: kindText(swap.kind) }))}
      <button type="button" id="act-swap" data-swap-in="${esc(swap.in)}" data-swap-out="${esc(swap.out)}" ${off ? 'disabled' : ''}>${esc(t('brigade.swap'))} ${esc(swap.out)} → ${esc(swap.in)}</button>`
    : '');
}

// Verify first: at such a site the dispatcher holds the recommended brigade until an operator
// confirms on camera (this button, audited as the operator) or the hold passes.
function renderHold(incident) {
  const until = incident.held_until_ms;
  const off = incident.state === 'closed' || view.conn !== 'live';
  const best = view.recommend.for === incident.id ? view.recommend.data?.[0]?.unit : null;
  setHtml($('d-hold'), until
    ? `<b>${esc(best ? t('verify.held', { unit: best, until: clock(until) }) : t('verify.held_none', { until: clock(until) }))}</b>
      <button type="button" id="act-verify" class="primary" ${off ? 'disabled' : ''}>${esc(t('verify.confirm'))}</button>`
    : '');
}

function confirmVerified() {
  const incident = incidentById(view.selected);
  if (!incident || !incident.held_until_ms || incident.state === 'closed') return;
  act('verify', {}, t('verify.confirmed', { id: incident.id }));
}

function renderAudit(incident) {
  const entries = incident.audit || [];
  setHtml($('d-audit'), entries.map((e) => `<li class="tl-${esc(e.action)}">
      <time>${clock(e.at_ms)}</time>
      <span class="tl-action">${esc(auditText(e.action))}</span>
      <span class="tl-actor">${esc(actorText(e.actor))}</span>
      ${e.detail ? `<span class="tl-detail">${esc(e.detail)}</span>` : ''}
    </li>`).join(''));
}

// `quiet`: a periodic refresh keeps showing the current list until the new one arrives.
async function loadRecommendations(id, { quiet = false } = {}) {
  if (!quiet || view.recommend.for !== id) {
    view.recommend = { for: id, at: Date.now(), data: null, error: null, loading: true };
    queueRender();
  }
  try {
    const r = await fetch(`/api/incidents/${encodeURIComponent(id)}/recommend?limit=6`, { cache: 'no-store' });
    const body = await r.json().catch(() => null);
    if (view.recommend.for !== id) return;
    if (r.ok) view.recommend = { for: id, at: Date.now(), data: body.candidates, error: null };
    else view.recommend = { for: id, at: Date.now(), data: null, error: apiError(body, r.status) };
  } catch (e) {
    if (view.recommend.for === id) view.recommend = { for: id, at: Date.now(), data: null, error: String(e) };
  }
  queueRender();
}

function renderRecommendations(incident) {
  const rec = view.recommend;
  const host = $('d-recommend');
  if (rec.for !== incident.id || rec.loading) {
    setHtml(host, `<div class="muted">${t('common.loading')}</div>`);
    return;
  }
  if (rec.error) {
    setHtml(host, `<div class="error-text">${esc(rec.error)}</div>`);
    return;
  }
  if (!rec.data.length) {
    setHtml(host, `<div class="muted">${t('rec.none')}</div>`);
    return;
  }
  const closed = incident.state === 'closed' || view.conn !== 'live';
  setHtml(host, `<table class="rec"><thead><tr><th>${t('rec.col.brigade')}</th><th>${t('units.col.mode')}</th><th>${t('rec.col.eta')}</th><th></th><th></th></tr></thead><tbody>${rec.data.map((c) => {
    const u = c.detail || {};
    const attached = incident.units.includes(c.unit);
    return `<tr data-unit="${esc(c.unit)}"${c.preferred ? ' class="preferred"' : ''}>
      <td class="u-name"><b>${esc(c.unit)}</b> <small>${esc(u.callsign || '')}</small></td>
      <td>${esc(u.mode ? modeText(u.mode) : '')}${(u.capabilities || []).map((cap) => ` <span class="cap" title="${esc(capTitle(cap))}">${capText(cap)}</span>`).join('')}</td>
      <td class="eta">${duration(c.eta_s * 1000)}</td>
      <td>${c.preferred ? `<span class="chip chip-ok" title="${t('rec.preferred_title')}">${t('rec.preferred')}</span>` : ''}</td>
      <td class="rec-actions">${attached ? `<span class="muted">${t('rec.attached')}</span>` : `<button data-dispatch="${esc(c.unit)}" ${closed ? 'disabled' : ''}>${t('rec.add')}</button><button data-replace="${esc(c.unit)}" data-confirm="${t('action.confirm')}" ${closed ? 'disabled' : ''} title="${t('rec.replace_title')}">${t('rec.replace')}</button>`}</td>
    </tr>`;
  }).join('')}</tbody></table>`);
}

// ---- hand-offs -----------------------------------------------------------------------------

async function loadAgencies() {
  try {
    const r = await fetch('/api/agencies', { cache: 'no-store' });
    if (r.ok) view.agencies = await r.json();
  } catch (e) {
    // Retried with the next hand-off refresh.
  }
  queueRender();
}

async function loadHandoffs(id) {
  if (view.handoffs.for !== id) view.handoffs = { for: id, data: null, error: null };
  if (view.agencies === null) loadAgencies();
  try {
    const r = await fetch(`/api/incidents/${encodeURIComponent(id)}/handoffs`, { cache: 'no-store' });
    const body = await r.json().catch(() => null);
    if (view.handoffs.for !== id) return;
    const steps = view.handoffs.steps;
    view.handoffs = r.ok
      ? { for: id, data: body, error: null, steps }
      : { for: id, data: null, error: apiError(body, r.status), steps };
  } catch (e) {
    if (view.handoffs.for === id) view.handoffs = { for: id, data: null, error: String(e) };
  }
  queueRender();
}

const HANDOFF_CHIP = { delivered: 'chip-ok', failed: 'chip-alert', queued: 'chip-warn' };

function renderHandoffs(incident) {
  // Each attempt and acknowledgement is also an audit entry, which the event stream brings:
  // a new one reloads the hand-offs at once instead of at the next periodic refresh.
  const steps = (incident.audit || []).filter((e) => /^hand(ed_off|off_)/.test(e.action)).length;
  if (view.handoffs.for === incident.id && view.handoffs.steps !== steps) {
    view.handoffs.steps = steps;
    loadHandoffs(incident.id);
  }
  const select = $('handoff-agency');
  const agencies = view.agencies || [];
  if (select && select.dataset.filled !== String(agencies.length)) {
    setHtml(select, agencies.length
      ? agencies.map((a) => `<option value="${esc(a.id)}">${esc(a.name)} (${esc(a.id)})</option>`).join('')
      : `<option value="">${t('handoff.no_agencies')}</option>`);
    select.dataset.filled = String(agencies.length);
  }
  $('act-handoff').disabled = !agencies.length || incident.state === 'closed' || view.conn !== 'live';
  const h = view.handoffs;
  const host = $('d-handoffs');
  if (h.for !== incident.id || (!h.data && !h.error)) {
    setHtml(host, `<div class="muted">${t('common.loading')}</div>`);
    return;
  }
  if (h.error) {
    setHtml(host, `<div class="error-text">${esc(h.error)}</div>`);
    return;
  }
  if (!h.data.length) {
    setHtml(host, `<div class="muted">${t('handoff.none')}</div>`);
    return;
  }
  setHtml(host, `<table class="handoffs"><thead><tr><th>${t('handoff.agency')}</th><th>${t('handoff.col.message')}</th><th>${t('handoff.col.state')}</th><th>${t('handoff.col.attempts')}</th><th>${t('handoff.col.error')}</th></tr></thead><tbody>${h.data.flatMap((handoff) => handoff.messages.map((m) => `<tr data-handoff="${esc(handoff.agency)}">
      <td><b>${esc(handoff.agency)}</b></td>
      <td>${esc(m.msg_type)} <small>${esc(m.identifier)}</small></td>
      <td><span class="chip ${HANDOFF_CHIP[m.state] || ''}">${esc(handoffStateText(m.state))}</span></td>
      <td>${m.attempts}</td>
      <td class="error-text">${esc(m.last_error || '')}</td>
    </tr>`)).join('')}</tbody></table>${h.data.flatMap((handoff) => handoff.acks.map((a) => `<div class="handoff-ack">${t('handoff.acked', { agency: esc(handoff.agency), at: clock(a.at_ms), detail: esc(a.detail) })}</div>`)).join('')}`);
}

function handOff() {
  const agency = $('handoff-agency').value;
  if (!agency) return;
  const note = $('handoff-note').value.trim();
  act('handoffs', { agency, note: note || null }, t('handoff.done', { agency }))
    .then((reply) => {
      if (reply) $('handoff-note').value = '';
      loadHandoffs(view.selected);
    });
}

// ---- actions ------------------------------------------------------------------------------

async function act(path, body, done) {
  const id = view.selected;
  if (!id) return null;
  let response;
  let reply = null;
  try {
    response = await fetch(`/api/incidents/${encodeURIComponent(id)}/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body || {}),
    });
    reply = await response.json().catch(() => null);
  } catch (e) {
    toast(t('action.not_sent', { error: e }), 'error');
    return null;
  }
  if (!response.ok) {
    toast(apiError(reply, response.status), 'error');
    if (response.status === 401) location.href = view.session?.demo ? '/' : '/login';
    return null;
  }
  // The event stream brings the same change; take the reply if it is newer than what we show.
  const shown = incidentById(id);
  if (reply && (!shown || (reply.audit?.length || 0) > (shown.audit?.length || 0))) {
    if (reply.state === 'closed') {
      store.incidents.delete(id);
      rememberClosed(reply);
    } else {
      store.incidents.set(id, reply);
    }
  }
  toast(done, 'ok');
  queueRender();
  return reply;
}

function acknowledge() {
  const incident = incidentById(view.selected);
  if (!incident || incident.acknowledged_by || incident.state === 'closed') return;
  act('ack', {}, t('action.acked', { id: incident.id }));
}

function classify(event) {
  event.preventDefault();
  const form = new FormData($('classify'));
  act('classify', {
    kind: form.get('kind'),
    priority: form.get('priority') || null,
    caller: { name: form.get('name'), phone: form.get('phone'), notes: form.get('notes') },
  }, t('classify.saved'));
}

// Destructive buttons ask twice: the first click arms them for a few seconds.
function confirmed(button) {
  if (button.dataset.armed) return true;
  button.dataset.armed = '1';
  const text = button.textContent;
  button.textContent = button.dataset.confirm;
  button.classList.add('armed');
  setTimeout(() => {
    delete button.dataset.armed;
    button.textContent = text;
    button.classList.remove('armed');
  }, 4000);
  return false;
}

function onDetailClick(event) {
  const button = event.target.closest('button');
  if (!button || button.disabled) return;
  if (button.id === 'act-ack') acknowledge();
  else if (button.id === 'act-verify') confirmVerified();
  else if (button.id === 'act-prank') {
    if (confirmed(button)) act('prank', {}, t('action.pranked'));
  } else if (button.id === 'act-resolve') {
    if (confirmed(button)) {
      const resolution = $('resolve-kind').value;
      act('resolve', { resolution }, t('action.resolved', { resolution: resolutionText(resolution) }));
    }
  } else if (button.id === 'act-dispatch-best') act('dispatch', { unit: null, replace: false }, t('action.dispatched'));
  else if (button.dataset.dispatch) act('dispatch', { unit: button.dataset.dispatch, replace: false }, t('action.added', { unit: button.dataset.dispatch }))
    .then(() => loadRecommendations(view.selected));
  else if (button.dataset.swapIn) {
    act('dispatch', { unit: button.dataset.swapIn, swap_out: button.dataset.swapOut }, t('brigade.swapped', { to: button.dataset.swapIn, from: button.dataset.swapOut }))
      .then(() => loadRecommendations(view.selected));
  } else if (button.dataset.replace) {
    if (confirmed(button)) act('dispatch', { unit: button.dataset.replace, replace: true }, t('action.replaced', { unit: button.dataset.replace }))
      .then(() => loadRecommendations(view.selected));
  } else if (button.id === 'rec-refresh') loadRecommendations(view.selected);
  else if (button.dataset.ptz) steer(button.dataset.ptz);
  else if (button.id === 'act-still') act('still', {}, t('action.still_saved'));
  else if (button.id === 'act-handoff') {
    if (confirmed(button)) handOff();
  }
}

function select(id) {
  if (!id || id === view.selected) return;
  view.selected = id;
  queueRender();
  requestAnimationFrame(() => document.querySelector(`#queue [data-incident-id="${CSS.escape(id)}"]`)?.scrollIntoView({ block: 'nearest' }));
}

function move(step) {
  const items = queue();
  if (!items.length) return;
  const at = items.findIndex((i) => i.id === view.selected);
  const next = at < 0 ? 0 : (at + step + items.length) % items.length;
  select(items[next].id);
}

// Next incident still waiting for an operator, in queue order after the selected one.
function nextUnacknowledged() {
  const items = queue();
  if (!items.length) return;
  const at = items.findIndex((i) => i.id === view.selected);
  for (let k = 1; k <= items.length; k += 1) {
    const candidate = items[(at + k + items.length) % items.length];
    if (!candidate.acknowledged_by) {
      select(candidate.id);
      return;
    }
  }
  move(1);
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const typing = event.target.closest('input, textarea, select');
  if (event.key === 'Escape') {
    $('help').hidden = true;
    if (typing) event.target.blur();
    return;
  }
  if (typing) return;
  switch (event.key) {
    case 'a': case 'A': acknowledge(); break;
    case 'n': case 'N': nextUnacknowledged(); break;
    case 'j': case 'ArrowDown': move(1); break;
    case 'k': case 'ArrowUp': move(-1); break;
    case 'c': case 'C': $('f-kind')?.focus(); break;
    case 'l': case 'L': switchLang(); break;
    case 's': case 'S': startShift(); break;
    // The incident's buttons, through their own click (so Prank and Resolve still ask twice).
    case 'p': case 'P': pressButton('act-prank'); break;
    case 'r': case 'R': pressButton('act-resolve'); break;
    case 'd': case 'D': pressButton('act-dispatch-best'); break;
    case 'i': case 'I': pressButton('act-still'); break;
    case 'v': case 'V': pressButton('act-verify'); break;
    case 'h': case 'H': $('handoff-agency')?.focus(); break;
    case 'u': case 'U': $('radio-unit').focus(); break;
    case 'm': case 'M': $('sound').click(); break;
    case 't': case 'T': answerRinging(view.selected); break;
    case '?': $('help').hidden = !$('help').hidden; break;
    default: return;
  }
  event.preventDefault();
}

// A keyboard shortcut for a button: only when it could be clicked.
function pressButton(id) {
  const button = $(id);
  if (button && !button.disabled) button.click();
}

// Spanish <-> English, remembered for this operator (see i18n.js).
function switchLang() {
  choose(lang === 'es' ? 'en' : 'es', view.session?.operator);
}

// ---- cluster ------------------------------------------------------------------------------

async function refreshCluster() {
  try {
    const r = await fetch('/api/cluster', { cache: 'no-store' });
    const c = await r.json();
    if (!r.ok) throw new Error(apiError(c, r.status));
    setHtml($('cluster'), `
      <div class="cluster-line">${t('cluster.leader')} <b>${esc(c.leader || t('cluster.no_leader'))}</b> · ${t('cluster.term')} <b>${esc(c.term)}</b> · ${t('cluster.store')} ${esc(c.store)} @${esc(c.store_revision)}</div>
      <ul class="members">${c.members.map((m) => `<li class="${m.id === c.leader ? 'leader' : ''}${m.id === view.session?.node ? ' me' : ''}"><b>${esc(m.id)}</b> <small>${esc(m.site)}</small>${m.id === c.leader ? ' ★' : ''}${m.id === view.session?.node ? ` <small>${t('cluster.this_node')}</small>` : ''}</li>`).join('')}</ul>`);
    $('cluster').classList.toggle('no-leader', !c.leader);
  } catch (e) {
    setHtml($('cluster'), `<div class="error-text">${t('cluster.unavailable', { error: esc(e.message || e) })}</div>`);
  }
}

// ---- toasts -------------------------------------------------------------------------------

function toast(text, kind) {
  const el = $('toast');
  el.textContent = text;
  el.className = `toast toast-${kind}`;
  el.hidden = false;
  clearTimeout(view.toastTimer);
  view.toastTimer = setTimeout(() => { el.hidden = true; }, TOAST_MS);
}

// ---- start --------------------------------------------------------------------------------

async function start() {
  const r = await fetch('/api/session', { cache: 'no-store' }).catch(() => null);
  if (r && r.status === 401) {
    location.href = '/login';
    return;
  }
  view.session = r && r.ok ? await r.json() : null;
  if (view.session) {
    $('who').innerHTML = `<b>${esc(view.session.name)}</b> <small>${esc(has(`role.${view.session.role}`) ? t(`role.${view.session.role}`) : view.session.role)}${view.session.demo ? ` · ${t('console.demo')}` : ''}</small>`;
    $('who').title = t('console.signed_in_as', { id: view.session.operator });
    view.node = view.session.node;
  }
  // Lists select on pointer-down, not click: live updates re-render them, and a click whose
  // press and release land on two renderings of the same card would be lost.
  const selectOnPress = (list) => {
    list.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      const item = e.target.closest('[data-incident-id]');
      if (item) select(item.dataset.incidentId);
    });
    list.addEventListener('click', (e) => {
      if (e.target.closest('a[data-incident-id]')) e.preventDefault();
    });
  };
  selectOnPress($('queue'));
  selectOnPress($('closed'));
  selectOnPress($('units'));
  wall = new Wall(queueRender);
  $('radio-form').addEventListener('submit', radioReport);
  $('detail').addEventListener('click', onDetailClick);
  $('alerts').addEventListener('click', (e) => {
    const button = e.target.closest('[data-clear-id]');
    if (button) clearAlert(button.dataset.clearDevice, button.dataset.clearId);
  });
  $('detail').addEventListener('submit', classify);
  document.addEventListener('keydown', onKey);
  initCalls({ operator: () => view.session?.operator, render: queueRender, toast });
  initPosts($('posts'), () => map);
  document.addEventListener('pointerdown', (e) => { view.pressing = e.target; }, true);
  const released = () => {
    if (!view.pressing) return;
    view.pressing = null;
    // After the click that follows this release has been handled.
    setTimeout(queueRender, 0);
  };
  document.addEventListener('pointerup', released, true);
  document.addEventListener('pointercancel', released, true);
  // Browsers only let a page make sound after the operator interacted with it.
  const unlock = () => { if (view.soundOn) ensureAudio(); updateSoundButton(); };
  document.addEventListener('pointerdown', unlock);
  document.addEventListener('keydown', unlock);
  $('sound').addEventListener('click', () => {
    if (!alarm.started) {
      startShift();
      return;
    }
    view.soundOn = !view.soundOn;
    updateSoundButton();
  });
  $('logout').addEventListener('click', async () => {
    await fetch('/api/logout', { method: 'POST' }).catch(() => {});
    location.href = '/login';
  });
  $('help-open').addEventListener('click', () => { $('help').hidden = false; });
  $('lang').addEventListener('click', switchLang);
  $('help').addEventListener('click', () => { $('help').hidden = true; });
  // Back from a background tab: draw at once rather than at the next throttled timer.
  document.addEventListener('visibilitychange', () => { if (!document.hidden) queueRender(); });
  ensureAudio();
  updateSoundButton();
  setInterval(tickTimers, 250);
  setInterval(checkAlarms, ALARM_CHECK_MS);
  setInterval(refreshCluster, CLUSTER_POLL_MS);
  setInterval(() => {
    const incident = view.selected && store.incidents.get(view.selected);
    if (incident && view.conn === 'live' && !document.hidden) {
      loadRecommendations(incident.id, { quiet: true });
      loadHandoffs(incident.id);
    }
  }, RECOMMEND_REFRESH_MS);
  connect();
  render();
}

start();
