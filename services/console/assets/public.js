// The public map: where the panic buttons are and whether each works. Read-only, no login,
// and only what /public/buttons.geojson publishes (no incidents, brigades or cameras).

import { MapView, esc } from './map.js';
import { t, clock } from './i18n.js';

// The feed changes when a button goes offline or comes back: a minute is fresh enough.
const REFRESH_MS = 60000;
const map = new MapView(document.getElementById('map'), { label: t('map.label.public') });

async function refresh() {
  try {
    const r = await fetch('/public/buttons.geojson', { cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const feed = await r.json();
    const buttons = feed.features.map((f) => ({
      id: f.properties.id,
      name: f.properties.name,
      lon: f.geometry.coordinates[0],
      lat: f.geometry.coordinates[1],
      status: f.properties.working ? 'online' : 'offline',
    }));
    map.draw({ buttons });
    const working = buttons.filter((b) => b.status === 'online').length;
    document.getElementById('summary').innerHTML = `<span class="count">${t('public.summary', { n: `<b>${working}</b>`, total: buttons.length })}</span>`;
    document.getElementById('list').innerHTML = buttons.map((b) => `<tr>
      <td><b>${esc(b.id)}</b></td><td>${esc(b.name)}</td>
      <td><span class="chip health-${b.status}">${b.status === 'online' ? t('public.working') : t('public.out_of_service')}</span></td></tr>`).join('');
    document.getElementById('updated').textContent = clock(Date.now());
  } catch (e) {
    document.getElementById('summary').textContent = t('public.unavailable', { error: e.message });
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
