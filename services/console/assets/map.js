// The map: an SVG drawn from coordinates alone (no tile server, nothing fetched).
//
// Positions are projected onto a local flat plane in metres around the centre of what is
// shown (equirectangular: fine over a district's few kilometres), so the grid and the scale
// bar are true distances. The extent only grows, so moving brigades never make the map jump.

import { t, has } from './i18n.js';

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

export class MapView {
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
  // `incidents`: [{id, lat, lon, priority, units}], `selected`: incident id or null.
  draw({ buttons = [], units = [], incidents = [], selected = null }) {
    this.grow(buttons);
    this.grow(units);
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
      parts.push(`<g class="map-button health-${esc(btn.status)}"><title>${esc(btn.id)} ${esc(btn.name)} — ${esc(has(`button_status.${btn.status}`) ? t(`button_status.${btn.status}`) : btn.status)}</title>` +
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
    this.svg.innerHTML = parts.join('');
  }
}
