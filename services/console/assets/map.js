// The map every page draws. Two ways, one interface (`new MapView(host, options)`,
// `draw({buttons, units, incidents, selected})`):
//
// - streets: when the node names a tile server (`CENTINELA_MAP_TILES`, on <html
//   data-map-tiles>), Leaflet (vendored from npm, served by the node) draws its raster tiles
//   with the attribution, and the markers on top; brigades leave a short trail of their last
//   positions and a dashed line goes from each assigned brigade to its incident;
// - the grid: an SVG drawn from coordinates alone, when no tiles are configured or the tile
//   server does not answer (the first TILE_ERRORS_MAX tiles fail before any loads).
//
// Clicking an incident, a brigade on a job or a button with an open incident selects that
// incident. Colour is never the only signal: every marker carries its id, and its state in
// its tooltip.
//
// A layer of brigade posts (`setPosts`, drawn by posts.js from plan-posts) sits over the rest,
// a numbered diamond at each post, until cleared.
//
// Grid geometry: positions are projected onto a local flat plane in metres around the centre
// of what is shown (equirectangular: fine over a district's few kilometres), so the grid and
// the scale bar are true distances. The extent only grows, so moving brigades never make the
// map jump.

import { t, has } from './i18n.js';

const root = document.documentElement;
const TILES = root.dataset.mapTiles || '';
const ATTRIBUTION = root.dataset.mapAttribution || '';
// Leaflet is loaded only when there are tiles to draw.
const L = TILES ? await import('./vendor/leaflet/leaflet-src.esm.js').catch((e) => {
  console.warn('map: Leaflet did not load; drawing the grid', e);
  return null;
}) : null;

// Tiles that may fail before the first one loads before the map gives up on the tile server
// and draws the grid: one screen is about a dozen tiles, so a dead server is noticed on the
// first screen, while one bad tile among good ones changes nothing.
const TILE_ERRORS_MAX = 4;
// Positions kept per brigade for its trail: at one report every few seconds, the last minute
// or so, enough to show which way it is heading without cluttering the map.
const TRAIL_POINTS_MAX = 12;
// Zoom of a first view with a single point, and the most the first view zooms in.
const FIRST_ZOOM_MAX = 16;
// Side of a post's marker on the street map, in pixels (map.css's .lf-post says the same).
const POST_PX = 22;

const SVG_NS = 'http://www.w3.org/2000/svg';
const M_PER_DEG_LAT = 110540;
const M_PER_DEG_LON_EQUATOR = 111320;
// Margin around the outermost point, in metres: room for labels at the edges.
const PADDING_M = 180;
// Grid spacing in metres: a city block is about 100 m in Lima's centre.
const GRID_M = 250;

export function esc(text) {
  return String(text ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

class GridMap {
  // `host`: the element to draw into; `onSelect(incidentId)`: called when an incident is clicked.
  constructor(host, { onSelect = null, label = t('map.title') } = {}) {
    this.host = host;
    this.onSelect = onSelect;
    this.bounds = null; // {minLat, maxLat, minLon, maxLon}
    this.svg = document.createElementNS(SVG_NS, 'svg');
    this.svg.setAttribute('class', 'map-svg');
    this.svg.setAttribute('role', 'img');
    this.svg.setAttribute('aria-label', label);
    this.svg.setAttribute('preserveAspectRatio', 'xMidYMid meet');
    host.replaceChildren(this.svg);
    // Pointer-down, not click: the map is redrawn as brigades move, and a click spanning two
    // drawings would be lost.
    this.svg.addEventListener('pointerdown', (event) => {
      const target = event.target.closest('[data-incident]');
      if (target && this.onSelect) this.onSelect(target.dataset.incident);
    });
  }

  grow(points) {
    for (const p of points) {
      if (!Number.isFinite(p.lat) || !Number.isFinite(p.lon)) continue;
      if (!this.bounds) {
        this.bounds = { minLat: p.lat, maxLat: p.lat, minLon: p.lon, maxLon: p.lon };
        continue;
      }
      const b = this.bounds;
      b.minLat = Math.min(b.minLat, p.lat);
      b.maxLat = Math.max(b.maxLat, p.lat);
      b.minLon = Math.min(b.minLon, p.lon);
      b.maxLon = Math.max(b.maxLon, p.lon);
    }
  }

  // `buttons`: [{id, lat, lon, status, name}], `units`: [{id, lat, lon, status, callsign}],
  // `incidents`: [{id, lat, lon, priority, units}], `selected`: incident id or null,
  // `posts`: [{lat, lon, button}].
  draw({ buttons = [], units = [], incidents = [], selected = null, posts = [] }) {
    this.grow(buttons);
    this.grow(units);
    this.grow(posts);
    if (!this.bounds) {
      this.svg.innerHTML = '';
      return;
    }
    const b = this.bounds;
    const lat0 = (b.minLat + b.maxLat) / 2;
    const lon0 = (b.minLon + b.maxLon) / 2;
    const kx = M_PER_DEG_LON_EQUATOR * Math.cos((lat0 * Math.PI) / 180);
    const x = (lon) => (lon - lon0) * kx;
    const y = (lat) => -(lat - lat0) * M_PER_DEG_LAT;
    const halfW = ((b.maxLon - b.minLon) * kx) / 2 + PADDING_M;
    const halfH = ((b.maxLat - b.minLat) * M_PER_DEG_LAT) / 2 + PADDING_M;
    const w = halfW * 2;
    const h = halfH * 2;
    this.svg.setAttribute('viewBox', `${-halfW} ${-halfH} ${w} ${h}`);
    // Marker sizes follow the extent, so the map reads the same at any zoom.
    const unit = Math.max(w, h) / 60;
    const parts = [];

    // Grid and scale.
    parts.push('<g class="map-grid">');
    for (let gx = Math.ceil(-halfW / GRID_M) * GRID_M; gx <= halfW; gx += GRID_M) {
      parts.push(`<line x1="${gx}" y1="${-halfH}" x2="${gx}" y2="${halfH}"/>`);
    }
    for (let gy = Math.ceil(-halfH / GRID_M) * GRID_M; gy <= halfH; gy += GRID_M) {
      parts.push(`<line x1="${-halfW}" y1="${gy}" x2="${halfW}" y2="${gy}"/>`);
    }
    parts.push('</g>');
    const sx = -halfW + unit * 2;
    const sy = halfH - unit * 2.2;
    parts.push(`<g class="map-scale"><line x1="${sx}" y1="${sy}" x2="${sx + 500}" y2="${sy}" stroke-width="${unit * 0.35}"/>` +
      `<text x="${sx + 250}" y="${sy - unit * 0.8}" font-size="${unit * 1.6}" text-anchor="middle">500 m</text></g>`);
    parts.push(`<text class="map-north" x="${halfW - unit * 2.5}" y="${-halfH + unit * 3.2}" font-size="${unit * 2}" text-anchor="middle">N ↑</text>`);

    const byUnit = new Map(units.map((u) => [u.id, u]));
    // Lines from each incident to its units.
    parts.push('<g class="map-links">');
    for (const i of incidents) {
      for (const id of i.units || []) {
        const u = byUnit.get(id);
        if (!u) continue;
        parts.push(`<line x1="${x(u.lon)}" y1="${y(u.lat)}" x2="${x(i.lon)}" y2="${y(i.lat)}" stroke-width="${unit * 0.3}"/>`);
      }
    }
    parts.push('</g>');

    // Buttons: squares colored by health.
    for (const btn of buttons) {
      const s = unit * 1.5;
      parts.push(`<g class="map-button health-${esc(btn.status)}" data-button="${esc(btn.id)}"><title>${esc(btn.id)} ${esc(btn.name)} — ${esc(has(`button_status.${btn.status}`) ? t(`button_status.${btn.status}`) : btn.status)}</title>` +
        `<rect x="${x(btn.lon) - s / 2}" y="${y(btn.lat) - s / 2}" width="${s}" height="${s}" stroke-width="${unit * 0.2}"/>` +
        `<text x="${x(btn.lon) + s * 0.8}" y="${y(btn.lat) + s * 0.35}" font-size="${unit * 1.5}">${esc(btn.id)}</text></g>`);
    }

    // Incidents: rings around their button, larger and thicker when selected.
    for (const i of incidents) {
      const r = unit * (i.id === selected ? 3.2 : 2.4);
      parts.push(`<g class="map-incident prio-${esc(i.priority)}${i.id === selected ? ' selected' : ''}" data-incident="${esc(i.id)}">` +
        `<title>${esc(i.id)} (${esc(has(`priority.${i.priority}`) ? t(`priority.${i.priority}`) : i.priority)})</title>` +
        `<circle cx="${x(i.lon)}" cy="${y(i.lat)}" r="${r}" stroke-width="${unit * (i.id === selected ? 0.7 : 0.45)}"/></g>`);
    }

    // Brigades: circles colored by status, with their id.
    for (const u of units) {
      const r = unit * 1.05;
      parts.push(`<g class="map-unit status-${esc(u.status)}"><title>${esc(u.id)} ${esc(u.callsign)} — ${esc(has(`unit_status.${u.status}`) ? t(`unit_status.${u.status}`) : u.status)}</title>` +
        `<circle cx="${x(u.lon)}" cy="${y(u.lat)}" r="${r}" stroke-width="${unit * 0.25}"/>` +
        `<text x="${x(u.lon)}" y="${y(u.lat) - r * 1.5}" font-size="${unit * 1.45}" text-anchor="middle">${esc(u.id)}</text></g>`);
    }

    // Posts: numbered diamonds, on top.
    posts.forEach((p, n) => {
      if (!Number.isFinite(p.lat) || !Number.isFinite(p.lon)) return;
      const s = unit * 1.9;
      const cx = x(p.lon);
      const cy = y(p.lat);
      parts.push(`<g class="map-post" data-post="${n + 1}" data-lat="${p.lat}" data-lon="${p.lon}"><title>${esc(postTitle(p, n))}</title>` +
        `<polygon points="${cx},${cy - s} ${cx + s},${cy} ${cx},${cy + s} ${cx - s},${cy}" stroke-width="${unit * 0.3}"/>` +
        `<text x="${cx}" y="${cy + unit * 0.5}" font-size="${unit * 1.3}" text-anchor="middle">${n + 1}</text></g>`);
    });
    this.svg.innerHTML = parts.join('');
  }
}

const buttonStatus = (v) => (has(`button_status.${v}`) ? t(`button_status.${v}`) : v);
const unitStatus = (v) => (has(`unit_status.${v}`) ? t(`unit_status.${v}`) : v);
const priority = (v) => (has(`priority.${v}`) ? t(`priority.${v}`) : v);
const postTitle = (p, n) => t('map.post', { n: n + 1, button: p.button || '' });

// What the map shows, for the tests and for diagnosis.
const status = { kind: 'grid', tilesLoaded: 0, tileErrors: 0, tileRequests: 0, tilesIdle: false };
window.centinelaMap = status;

class StreetMap {
  constructor(host, { onSelect, label, onFail }) {
    this.onSelect = onSelect;
    this.container = document.createElement('div');
    this.container.className = 'map-street';
    this.container.setAttribute('role', 'region');
    this.container.setAttribute('aria-label', label);
    host.replaceChildren(this.container);
    // No fade: a wall screen shows a tile at once, and a screenshot shows what is there.
    this.map = L.map(this.container, { zoomControl: true, attributionControl: true, keyboard: true, fadeAnimation: false });
    // Plain text: the default prefix carries an inline SVG the page's policy does not need.
    this.map.attributionControl.setPrefix('Leaflet');
    this.map.setView([-12.0464, -77.0300], 14);
    const tiles = L.tileLayer(TILES, { attribution: esc(ATTRIBUTION), maxZoom: 19, crossOrigin: false });
    tiles.on('tileloadstart', () => { status.tileRequests += 1; });
    tiles.on('tileload', () => { status.tilesLoaded += 1; });
    // Every tile of the current view is in (`load`), or some are on their way (`loading`).
    tiles.on('loading', () => { status.tilesIdle = false; });
    tiles.on('load', () => { status.tilesIdle = true; });
    tiles.on('tileerror', () => {
      status.tileErrors += 1;
      if (!status.tilesLoaded && status.tileErrors >= TILE_ERRORS_MAX) onFail();
    });
    tiles.addTo(this.map);
    // The page's layout may size the map after it was made (and a wall screen may resize):
    // Leaflet must know, or it leaves part of the view without tiles.
    this.resized = new ResizeObserver(() => this.map.invalidateSize({ pan: false }));
    this.resized.observe(this.container);
    this.links = L.layerGroup().addTo(this.map);
    this.trails = L.layerGroup().addTo(this.map);
    this.postLayer = L.layerGroup().addTo(this.map);
    this.postsShown = null;
    this.markers = new Map(); // key -> marker
    this.trail = new Map(); // unit id -> [[lat, lon]...]
    this.fitted = false;
  }

  // A marker kept across draws (so a click is never lost to a redraw), created on first use.
  marker(key, make) {
    let m = this.markers.get(key);
    if (!m) {
      m = make();
      m.addTo(this.map);
      this.markers.set(key, m);
    }
    m.seen = true;
    return m;
  }

  draw({ buttons = [], units = [], incidents = [], selected = null, posts = [] }) {
    const ok = (p) => Number.isFinite(p.lat) && Number.isFinite(p.lon);
    if (!this.fitted) {
      const points = [...buttons, ...units].filter(ok).map((p) => [p.lat, p.lon]);
      if (points.length) {
        this.map.fitBounds(points, { padding: [16, 16], maxZoom: FIRST_ZOOM_MAX, animate: false });
        this.fitted = true;
      }
    }
    for (const m of this.markers.values()) m.seen = false;
    // Read by the click handlers, which outlive this draw.
    this.incidentAt = new Map(incidents.map((i) => [i.button, i]));
    this.byUnit = new Map(units.map((u) => [u.id, u]));
    const select = (id) => { if (id && this.onSelect) this.onSelect(id); };

    for (const b of buttons.filter(ok)) {
      const m = this.marker(`b:${b.id}`, () => L.marker([b.lat, b.lon], { keyboard: true })
        .on('click', () => select(this.incidentAt.get(m.buttonId)?.id)));
      m.buttonId = b.id;
      m.setLatLng([b.lat, b.lon]);
      const html = `<span class="lf-button health-${esc(b.status)}" data-button="${esc(b.id)}">${esc(b.id)}</span>`;
      if (m.html !== html) {
        m.setIcon(L.divIcon({ html, className: 'lf-icon', iconSize: null, iconAnchor: [7, 7] }));
        m.html = html;
      }
      const title = `${b.id} ${b.name || ''} — ${buttonStatus(b.status)}`;
      if (m.getElement()) m.getElement().title = title;
    }

    const { byUnit } = this;
    this.links.clearLayers();
    this.trails.clearLayers();
    for (const u of units.filter(ok)) {
      const trail = this.trail.get(u.id) || [];
      const last = trail[trail.length - 1];
      if (!last || last[0] !== u.lat || last[1] !== u.lon) trail.push([u.lat, u.lon]);
      while (trail.length > TRAIL_POINTS_MAX) trail.shift();
      this.trail.set(u.id, trail);
      if (trail.length > 1) {
        L.polyline(trail, { className: `lf-trail status-${u.status}`, interactive: false }).addTo(this.trails);
      }
      const m = this.marker(`u:${u.id}`, () => L.circleMarker([u.lat, u.lon], { radius: 8, weight: 2 })
        .bindTooltip('', { permanent: true, direction: 'top', className: 'lf-label', offset: [0, -8] })
        .on('click', () => select(this.byUnit.get(m.unitId)?.incident)));
      m.unitId = u.id;
      m.setLatLng([u.lat, u.lon]);
      const path = m.getElement();
      if (path) path.setAttribute('class', `leaflet-interactive lf-unit status-${u.status}`);
      m.setTooltipContent(esc(u.id));
      if (path) path.setAttribute('aria-label', `${u.id} ${u.callsign || ''} — ${unitStatus(u.status)}`);
    }

    for (const i of incidents.filter(ok)) {
      const chosen = i.id === selected;
      const m = this.marker(`i:${i.id}`, () => L.circleMarker([i.lat, i.lon], { radius: 16, weight: 3 })
        .on('click', () => select(m.incidentId)));
      m.incidentId = i.id;
      m.setLatLng([i.lat, i.lon]);
      m.setRadius(chosen ? 22 : 16);
      const path = m.getElement();
      if (path) {
        path.setAttribute('class', `leaflet-interactive lf-incident prio-${i.priority}${chosen ? ' selected' : ''}`);
        path.dataset.incident = i.id;
        path.setAttribute('aria-label', `${i.id} (${priority(i.priority)})`);
      }
      // The route line from each assigned brigade to the incident.
      for (const id of i.units || []) {
        const u = byUnit.get(id);
        if (u && ok(u)) L.polyline([[u.lat, u.lon], [i.lat, i.lon]], { className: 'lf-route', interactive: false }).addTo(this.links);
      }
    }
    for (const [key, m] of this.markers) {
      if (!m.seen) {
        m.remove();
        this.markers.delete(key);
      }
    }

    // Posts: redrawn only when the plan changes (the icon's centre is the post).
    if (posts !== this.postsShown) {
      this.postsShown = posts;
      this.postLayer.clearLayers();
      posts.forEach((p, n) => {
        if (!ok(p)) return;
        const html = `<span class="lf-post" data-post="${n + 1}" data-lat="${p.lat}" data-lon="${p.lon}"><b>${n + 1}</b></span>`;
        L.marker([p.lat, p.lon], {
          icon: L.divIcon({ html, className: 'lf-icon', iconSize: [POST_PX, POST_PX], iconAnchor: [POST_PX / 2, POST_PX / 2] }),
          title: postTitle(p, n),
          keyboard: false,
          zIndexOffset: 1000,
        }).addTo(this.postLayer);
      });
    }
  }

  destroy() {
    this.resized.disconnect();
    this.map.remove();
  }
}

export class MapView {
  // `host`: the element to draw into; `onSelect(incidentId)`; `label`: its accessible name.
  constructor(host, { onSelect = null, label = t('map.title') } = {}) {
    this.host = host;
    this.options = { onSelect, label };
    this.last = null;
    this.posts = [];
    if (L) {
      status.kind = 'street';
      this.view = new StreetMap(host, { ...this.options, onFail: () => this.toGrid() });
    } else {
      this.view = new GridMap(host, this.options);
    }
  }

  // The tile server did not answer: the grid from now on (until the page is reloaded).
  toGrid() {
    if (status.kind === 'grid') return;
    console.warn(`map: ${status.tileErrors} tiles failed and none loaded; drawing the grid`);
    status.kind = 'grid';
    this.view.destroy();
    this.view = new GridMap(this.host, this.options);
    if (this.last) this.view.draw({ ...this.last, posts: this.posts });
  }

  draw(data) {
    this.last = data;
    this.view.draw({ ...data, posts: this.posts });
  }

  // The brigades' posts to show ([{lat, lon, button}]; [] clears them), until changed.
  setPosts(posts) {
    this.posts = posts || [];
    if (this.last) this.view.draw({ ...this.last, posts: this.posts });
  }
}
