// The Reportes page: the municipality's report from the archive (GET /api/report, the JSON of
// `centinela report --json`) drawn as two charts with Chart.js (vendored, window.Chart) and a
// table, with its CSV to download (GET /api/report.csv). Dates are days in the city's zone;
// hours and weekdays are shifted by the zone's offset at the start of the period.

import { t, locale, timeZone } from './i18n.js';

const $ = (id) => document.getElementById(id);
const DAY_MS = 86_400_000;
// The period shown first: the last 30 days, today included.
const DEFAULT_DAYS = 30;

// The zone's offset from UTC at `ms`, in minutes (Lima: -300).
function offsetMinutes(ms) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(ms));
  const part = (type) => Number(parts.find((p) => p.type === type).value);
  const asUtc = Date.UTC(part('year'), part('month') - 1, part('day'), part('hour'), part('minute'), part('second'));
  return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60000);
}

// Midnight of `yyyy-mm-dd` in the city's zone, in ms since the epoch.
function midnight(date) {
  const [y, m, d] = date.split('-').map(Number);
  const guess = Date.UTC(y, m - 1, d);
  return guess - offsetMinutes(guess) * 60000;
}

// `ms` as the city's `yyyy-mm-dd`.
function day(ms) {
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(ms));
}

function query() {
  const since = midnight($('since').value);
  // The last day is included: the period ends at the next midnight.
  const until = midnight(day(midnight($('until').value) + DAY_MS + 3_600_000));
  return new URLSearchParams({
    since_ms: String(since),
    until_ms: String(until),
    by: $('by').value,
    utc_offset_minutes: String(offsetMinutes(since)),
  });
}

// A row's key as people read it: 09:00, lun., B01.
function label(by, key) {
  if (by === 'hour') return `${key.padStart(2, '0')}:00`;
  if (by === 'weekday') {
    // 2024-01-01 was a Monday (weekday 0).
    return new Intl.DateTimeFormat(locale, { weekday: 'short', timeZone: 'UTC' }).format(new Date(Date.UTC(2024, 0, 1 + Number(key))));
  }
  // Incidents at buttons without a district (or archived before districts existed).
  if (by === 'district' && key === 'unknown') return t('reports.district.unknown');
  return key;
}

const seconds = (latency) => (latency && latency.p50_s != null ? latency.p50_s : null);

let charts = [];

function draw(report) {
  for (const chart of charts) chart.destroy();
  const labels = report.rows.map((row) => label(report.by, row.key));
  const outcomes = new window.Chart($('chart-outcomes'), {
    type: 'bar',
    data: {
      labels,
      datasets: [
        { label: t('reports.col.handled'), data: report.rows.map((r) => r.handled), backgroundColor: '#2f855a' },
        { label: t('reports.col.pranks'), data: report.rows.map((r) => r.pranks), backgroundColor: '#c53030' },
        { label: t('reports.col.false_alarms'), data: report.rows.map((r) => r.false_alarms), backgroundColor: '#d69e2e' },
        { label: t('reports.col.cancelled'), data: report.rows.map((r) => r.cancelled), backgroundColor: '#718096' },
      ],
    },
    options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  });
  const response = new window.Chart($('chart-response'), {
    type: 'bar',
    data: {
      labels,
      datasets: [
        { label: t('reports.col.ack'), data: report.rows.map((r) => seconds(r.acknowledged)), backgroundColor: '#3182ce' },
        { label: t('reports.col.assigned'), data: report.rows.map((r) => seconds(r.assigned)), backgroundColor: '#805ad5' },
        { label: t('reports.col.on_scene'), data: report.rows.map((r) => seconds(r.on_scene)), backgroundColor: '#dd6b20' },
      ],
    },
    options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true, title: { display: true, text: t('reports.seconds') } } } },
  });
  charts = [outcomes, response];
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

function latencyText(latency) {
  if (!latency || latency.p50_s == null) return '—';
  return t('reports.latency', { p50: latency.p50_s, p90: latency.p90_s });
}

function fill(report) {
  $('col-key').textContent = t(`reports.by.${report.by}`);
  const body = $('table').querySelector('tbody');
  body.replaceChildren();
  for (const row of [...report.rows, report.total]) {
    const tr = document.createElement('tr');
    const key = row.key === 'all' && row === report.total ? t('reports.total') : label(report.by, row.key);
    tr.dataset.key = row.key;
    const share = (n) => `${n} (${Math.round((n / Math.max(row.incidents, 1)) * 100)} %)`;
    tr.append(
      cell(key), cell(String(row.presses)), cell(String(row.incidents)), cell(String(row.handled)),
      cell(share(row.pranks)), cell(share(row.false_alarms)), cell(String(row.cancelled)),
      cell(latencyText(row.acknowledged)), cell(latencyText(row.assigned)), cell(latencyText(row.on_scene)),
    );
    body.append(tr);
  }
  const repeat = $('repeat');
  repeat.replaceChildren();
  if (report.repeat_pranks.length === 0) {
    const li = document.createElement('li');
    li.textContent = t('reports.repeat.none');
    repeat.append(li);
  }
  for (const r of report.repeat_pranks) {
    const li = document.createElement('li');
    li.textContent = t('reports.repeat.item', { button: r.button, pranks: r.pranks });
    repeat.append(li);
  }
}

async function load() {
  const params = query();
  $('csv').href = `/api/report.csv?${params}`;
  $('status').textContent = t('reports.loading');
  document.body.dataset.report = 'loading';
  try {
    const r = await fetch(`/api/report?${params}`, { credentials: 'same-origin' });
    if (r.status === 401) {
      location.href = '/login';
      return;
    }
    const report = await r.json();
    if (!r.ok) throw new Error(report.message || r.statusText);
    draw(report);
    fill(report);
    $('status').textContent = report.rows.length === 0
      ? t('reports.empty')
      : t('reports.summary', { incidents: report.total.incidents, presses: report.total.presses });
    document.body.dataset.report = 'ready';
  } catch (e) {
    $('status').textContent = t('reports.error', { reason: e.message });
    document.body.dataset.report = 'error';
  }
}

const now = Date.now();
$('until').value = day(now);
$('since').value = day(now - (DEFAULT_DAYS - 1) * DAY_MS);
$('filters').addEventListener('submit', (event) => {
  event.preventDefault();
  load();
});
$('by').addEventListener('change', load);
load();
