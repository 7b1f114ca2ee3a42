// The camera wall: one tile per camera of an open incident, live video where the camera has
// an RTSP stream (the same `/api/cameras/{id}/live.ws` view as the incident panel, so the
// node still pulls one upstream session per camera however many tiles and panels watch it),
// the node's MJPEG stills otherwise. Each tile enlarges to fill the window and carries the
// camera's PTZ controls. Tiles come and go with the incidents; a hidden wall watches nothing.
//
// console.js owns the data: it calls `wall.render(...)` on every render with the open
// incidents and the cameras it keeps in step with the cluster.

import { t, has } from './i18n.js';

import { MsePlayer, mseSupports } from './fmp4.js';

// Every word this file shows is in the console's catalogues, under `wall.`.
const PTZ_GLYPH = { left: '◀', up: '▲', down: '▼', right: '▶', in: '+', out: '−', home: '⌂' };

// Same bounds as the incident panel's player (console.js): retry pace, and how far the
// decoder may fall behind before this page skips to the next key frame.
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5000;
const DECODE_QUEUE_MAX = 30;
// Steps of the PTZ buttons, as in the incident panel.
const PTZ_STEP = { pan: 10, tilt: 5, zoom: 1.5 };

const cameraPath = (id) => `/api/cameras/${encodeURIComponent(id)}`;

// One tile's live video: the node's WebSocket view decoded with WebCodecs onto a canvas, or
// in a browser without WebCodecs played through Media Source Extensions in a <video>
// (fmp4.js), as in the incident panel.
class TilePlayer {
  constructor(camera, canvas, video, changed) {
    this.camera = camera;
    this.canvas = canvas;
    this.video = video;
    this.changed = changed;
    this.ws = null;
    this.decoder = null;
    this.mse = null;
    this.mseReady = false; // the <video> has a picture
    this.mseShownBefore = 0; // frames shown by earlier configurations' players
    this.state = 'connecting';
    this.reason = '';
    this.framesDecoded = 0;
    this.framesSkipped = 0;
    this.needKey = true;
    this.retryMs = RETRY_MIN_MS;
    this.timer = null;
    this.stopped = false;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}${cameraPath(this.camera)}/live.ws`);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    let heard = false;
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      heard = true;
      if (typeof event.data === 'string') this.message(JSON.parse(event.data));
      else this.frame(event.data);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.closeDecoder();
      if (!heard) this.setState('unavailable', '');
      else if (this.state !== 'refused') this.setState('reconnecting', '');
      this.timer = setTimeout(() => { if (!this.stopped) this.connect(); }, this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    };
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
    this.closeDecoder();
  }

  setState(state, reason) {
    if (this.state === state && this.reason === (reason || '')) return;
    this.state = state;
    this.reason = reason || '';
    this.changed();
  }

  // Whether the tile has a picture to show instead of the stills.
  get shown() {
    return 'VideoDecoder' in window ? this.framesDecoded > 0 : this.mseReady;
  }

  closeDecoder() {
    if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    this.decoder = null;
    if (this.mse) {
      this.framesSkipped += this.mse.skipped;
      this.mseShownBefore = this.framesDecoded;
      this.mse.close();
      this.mse = null;
    }
    if (this.mseReady) {
      this.mseReady = false; // a closed <video> is blank: the stills return
      if (!this.stopped) this.changed();
    }
    this.needKey = true;
  }

  configureMse(config) {
    if (!mseSupports(config.codec)) {
      this.setState('unsupported', config.codec);
      return;
    }
    const mse = new MsePlayer(this.video, config, (shown) => {
      if (this.mse === mse) this.framesDecoded = this.mseShownBefore + shown;
    }, (message) => {
      if (this.mse !== mse) return;
      this.mse = null;
      this.setState('unsupported', message);
    });
    this.video.addEventListener('loadeddata', () => {
      if (this.mse !== mse || this.mseReady) return;
      this.mseReady = true;
      this.changed();
    }, { once: true });
    this.mse = mse;
  }

  message(message) {
    if (message.type === 'status') {
      if (message.state !== 'playing') this.closeDecoder();
      else this.retryMs = RETRY_MIN_MS;
      this.setState(message.state, message.reason);
    } else if (message.type === 'config') {
      this.configure(message);
    }
  }

  configure(config) {
    this.closeDecoder();
    if (!('VideoDecoder' in window)) {
      this.configureMse(config);
      return;
    }
    const description = Uint8Array.from(atob(config.description), (c) => c.charCodeAt(0));
    const decoder = new VideoDecoder({
      output: (frame) => this.draw(frame),
      error: (e) => {
        if (this.decoder !== decoder) return;
        this.decoder = null;
        this.setState('unsupported', `${config.codec}: ${e.message}`);
      },
    });
    try {
      decoder.configure({ codec: config.codec, description, optimizeForLatency: true });
    } catch (e) {
      this.setState('unsupported', `${config.codec}: ${e.message}`);
      return;
    }
    this.decoder = decoder;
    this.needKey = true;
  }

  frame(buffer) {
    if (this.mse) {
      const header = new DataView(buffer, 0, 17);
      this.mse.push((header.getUint8(0) & 1) === 1, Number(header.getBigInt64(1)), new Uint8Array(buffer, 17));
      return;
    }
    const decoder = this.decoder;
    if (!decoder || decoder.state !== 'configured') return;
    const header = new DataView(buffer, 0, 17);
    const key = (header.getUint8(0) & 1) === 1;
    if (!key && (this.needKey || decoder.decodeQueueSize > DECODE_QUEUE_MAX)) {
      this.needKey = true;
      this.framesSkipped += 1;
      return;
    }
    this.needKey = false;
    const timestamp = Number(header.getBigInt64(1));
    decoder.decode(new EncodedVideoChunk({ type: key ? 'key' : 'delta', timestamp, data: new Uint8Array(buffer, 17) }));
  }

  draw(frame) {
    if (!this.stopped) {
      const canvas = this.canvas;
      if (canvas.width !== frame.displayWidth) canvas.width = frame.displayWidth;
      if (canvas.height !== frame.displayHeight) canvas.height = frame.displayHeight;
      canvas.getContext('2d').drawImage(frame, 0, 0);
    }
    frame.close();
    this.framesDecoded += 1;
    // The first picture replaces the stills.
    if (this.framesDecoded === 1) this.changed();
  }
}

// What a tile shows for a camera: `video`, `live` (MJPEG), `last` (one still), `none`.
function modeOf(camera) {
  const onvif = camera?.driver === 'onvif';
  const online = Boolean(camera?.online);
  if (!onvif) return 'none';
  if (online && camera.stream_uri && ('VideoDecoder' in window || 'MediaSource' in window)) return 'video';
  return online ? 'live' : 'last';
}

export class Wall {
  constructor(requestRender) {
    this.requestRender = requestRender;
    this.section = document.getElementById('wall');
    this.grid = document.getElementById('wall-tiles');
    this.tiles = new Map(); // camera id -> { el, mode, player, pose, incidents, note }
    this.enlarged = null; // camera id of the enlarged tile
    const button = document.getElementById('wall-open');
    button.textContent = t('wall.open');
    button.title = t('wall.open_title');
    button.addEventListener('click', () => this.toggle());
    document.getElementById('wall-title').textContent = t('wall.title');
    const close = document.getElementById('wall-close');
    close.textContent = t('wall.close');
    close.addEventListener('click', () => this.toggle(false));
    document.getElementById('wall-empty').textContent = t('wall.empty');
    this.grid.addEventListener('click', (event) => this.onClick(event));
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && this.enlarged) {
        this.enlarge(null);
        event.stopPropagation();
      }
    }, true);
    const wall = this;
    // Test and diagnostic hooks: what the wall shows, read by the Chromium tests.
    window.centinelaWall = {
      get open() { return !wall.section.hidden; },
      get enlarged() { return wall.enlarged; },
      tiles() {
        return [...wall.tiles.entries()].map(([camera, t]) => ({
          camera,
          incidents: t.incidents,
          mode: t.mode,
          state: t.player ? t.player.state : t.mode,
          framesDecoded: t.player ? t.player.framesDecoded : 0,
          framesSkipped: t.player ? t.player.framesSkipped : 0,
        }));
      },
    };
  }

  toggle(open = this.section.hidden) {
    this.section.hidden = !open;
    document.getElementById('wall-open').setAttribute('aria-pressed', String(open));
    this.requestRender();
  }

  // `incidents`: the open incidents in queue order; `cameras`: id -> camera as the console
  // keeps them; `live`: whether the console's event stream is live (PTZ needs it).
  render(incidents, cameras, live) {
    const wanted = new Map();
    if (!this.section.hidden) {
      for (const incident of incidents) {
        if (!incident.camera || incident.state === 'closed') continue;
        const list = wanted.get(incident.camera) || [];
        list.push(incident.id);
        wanted.set(incident.camera, list);
      }
    }
    for (const [id, tile] of this.tiles) {
      if (!wanted.has(id)) this.remove(id, tile);
    }
    for (const [id, incidentIds] of wanted) {
      const camera = cameras.get(id);
      let tile = this.tiles.get(id);
      if (!tile) {
        tile = this.create(id, camera);
        this.tiles.set(id, tile);
        this.grid.append(tile.el);
      }
      tile.incidents = incidentIds;
      this.update(id, tile, camera, live);
    }
    // Queue order: the most urgent incident's camera first.
    [...wanted.keys()].forEach((id, i) => { this.tiles.get(id).el.style.order = String(i); });
    document.getElementById('wall-empty').hidden = wanted.size > 0;
  }

  create(id, camera) {
    const el = document.createElement('figure');
    el.className = 'wall-tile';
    el.dataset.camera = id;
    const picture = document.createElement('div');
    picture.className = 'wall-picture';
    const canvas = document.createElement('canvas');
    canvas.hidden = true;
    const video = document.createElement('video'); // MSE, without WebCodecs
    video.hidden = true;
    video.muted = true;
    video.playsInline = true;
    const img = document.createElement('img');
    img.alt = id;
    picture.append(canvas, video, img);
    const caption = document.createElement('figcaption');
    const name = document.createElement('b');
    name.textContent = id;
    const incidents = document.createElement('span');
    incidents.className = 'wall-incidents';
    const note = document.createElement('span');
    note.className = 'wall-note';
    const enlarge = document.createElement('button');
    enlarge.type = 'button';
    enlarge.className = 'ghost';
    enlarge.dataset.wallEnlarge = '';
    enlarge.textContent = t('wall.enlarge');
    const ptz = document.createElement('span');
    ptz.className = 'wall-ptz';
    for (const direction of Object.keys(PTZ_GLYPH)) {
      const b = document.createElement('button');
      b.type = 'button';
      b.dataset.wallPtz = direction;
      b.title = t(`wall.ptz.${direction}`);
      b.setAttribute('aria-label', t(`wall.ptz.${direction}`));
      b.textContent = PTZ_GLYPH[direction];
      ptz.append(b);
    }
    caption.append(name, incidents, note, ptz, enlarge);
    el.append(picture, caption);
    return {
      el, canvas, video, img, note, incidentsEl: incidents, ptz, enlargeButton: enlarge,
      mode: null, player: null, incidents: [],
      pose: camera?.preset ? { ...camera.preset } : { pan_deg: 0, tilt_deg: 0, zoom: 1 },
      ptzError: '',
    };
  }

  update(id, tile, camera, live) {
    const mode = modeOf(camera);
    if (tile.mode !== mode) {
      tile.mode = mode;
      if (tile.player) tile.player.stop();
      tile.player = mode === 'video' ? new TilePlayer(id, tile.canvas, tile.video, this.requestRender) : null;
      tile.img.removeAttribute('src');
      if (mode === 'live' || mode === 'video') tile.img.src = `${cameraPath(id)}/live.mjpeg`;
      if (mode === 'last') tile.img.src = `${cameraPath(id)}/still.jpg`;
    }
    const playing = Boolean(tile.player && tile.player.shown);
    const mse = !('VideoDecoder' in window);
    tile.canvas.hidden = !playing || mse;
    tile.video.hidden = !playing || !mse;
    tile.img.hidden = playing || mode === 'none';
    // The stills stop once the video shows (one stream per tile).
    if (playing && tile.img.hasAttribute('src')) tile.img.removeAttribute('src');
    tile.incidentsEl.textContent = tile.incidents.join(', ');
    let note = '';
    if (mode === 'none') note = t('wall.native');
    else if (!camera?.online) note = `${t('wall.offline')}${camera?.fault ? ` (${camera.fault})` : ''}`;
    else if (tile.player && tile.player.state !== 'playing') {
      note = `${has(`wall.state.${tile.player.state}`) ? t(`wall.state.${tile.player.state}`) : tile.player.state}${tile.player.reason ? `: ${tile.player.reason}` : ''}`;
    }
    if (tile.ptzError) note = note ? `${note} · ${tile.ptzError}` : tile.ptzError;
    tile.note.textContent = note;
    tile.note.hidden = !note;
    tile.el.dataset.state = tile.player ? tile.player.state : mode;
    const steerable = mode !== 'none' && Boolean(camera?.online) && live;
    for (const b of tile.ptz.querySelectorAll('button')) b.disabled = !steerable;
  }

  remove(id, tile) {
    if (tile.player) tile.player.stop();
    tile.img.removeAttribute('src');
    tile.el.remove();
    this.tiles.delete(id);
    if (this.enlarged === id) this.enlarged = null;
  }

  onClick(event) {
    const tileEl = event.target.closest('.wall-tile');
    if (!tileEl) return;
    const id = tileEl.dataset.camera;
    if (event.target.closest('[data-wall-enlarge]')) {
      this.enlarge(this.enlarged === id ? null : id);
      return;
    }
    const ptz = event.target.closest('[data-wall-ptz]');
    if (ptz) this.steer(id, ptz.dataset.wallPtz);
  }

  // A tile enlarged fills the window (over the wall); Esc or its button shrinks it back.
  enlarge(id) {
    for (const [camera, tile] of this.tiles) {
      const big = camera === id;
      tile.el.classList.toggle('wall-tile-big', big);
      tile.el.toggleAttribute('data-enlarged', big);
      tile.enlargeButton.textContent = big ? t('wall.shrink') : t('wall.enlarge');
    }
    this.enlarged = id && this.tiles.has(id) ? id : null;
  }

  async steer(id, direction) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    const p = tile.pose;
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
    let error = '';
    try {
      const r = await fetch(`${cameraPath(id)}/ptz`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(to || {}),
      });
      const reply = await r.json().catch(() => null);
      if (r.ok) tile.pose = home ? { ...(reply?.preset || p) } : to;
      else error = `${t('wall.ptz_failed')}: ${reply?.error?.message || `HTTP ${r.status}`}`;
    } catch (e) {
      error = `${t('wall.ptz_failed')}: ${e}`;
    }
    tile.ptzError = error;
    this.requestRender();
  }
}
