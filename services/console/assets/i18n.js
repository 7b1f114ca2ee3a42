// Words and times for every page: Spanish (es-PE) first, English on request.
//
// The node renders each page in one language (`<html lang>`) and names the city's time zone
// on <html data-timezone>. This module loads that language's catalogue
// (/assets/i18n/{es,en}.json, flat "area.key": "text {param}") before the page's own module
// runs (top-level await), so `t()` is synchronous everywhere.
//
// Strings kept elsewhere for now (another page's small {es, en} objects) join through
// `extend({ es: {...}, en: {...} })` until they are moved into the catalogues.

const root = document.documentElement;
export const lang = root.lang.startsWith('en') ? 'en' : 'es';
// Number and date conventions of the language: Peru's Spanish, British English (24 h).
export const locale = lang === 'en' ? 'en-GB' : 'es-PE';
const DEFAULT_ZONE = 'America/Lima';

let catalogue = {};
try {
  const r = await fetch(`/assets/i18n/${lang}.json`);
  if (r.ok) catalogue = await r.json();
} catch (e) {
  console.warn('i18n: catalogue unavailable, showing keys', e);
}

// Keys asked for and not found: the Chromium tests read them (they must stay empty).
const missing = new Set();

// The text of `key` in the page's language, `{name}` replaced from `params`.
export function t(key, params) {
  let text = catalogue[key];
  if (text === undefined) {
    missing.add(key);
    text = key;
  }
  if (params) text = text.replace(/\{(\w+)\}/g, (all, name) => (name in params ? String(params[name]) : all));
  return text;
}

// Whether the catalogue has `key` (for values of enums a newer node may add).
export function has(key) {
  return key in catalogue;
}

// Adds strings kept outside the catalogues ({ es: {...}, en: {...} }); catalogue keys win.
export function extend(strings) {
  catalogue = { ...(strings[lang] || {}), ...catalogue };
}

// The city's time zone; a name the browser does not know falls back to Lima's.
function zone() {
  const wanted = root.dataset.timezone || DEFAULT_ZONE;
  try {
    new Intl.DateTimeFormat(locale, { timeZone: wanted });
    return wanted;
  } catch (e) {
    console.warn(`i18n: unknown time zone ${wanted}, showing ${DEFAULT_ZONE}`);
    return DEFAULT_ZONE;
  }
}
export const timeZone = zone();

const clockFormat = new Intl.DateTimeFormat(locale, {
  timeZone, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
});
const dateTimeFormat = new Intl.DateTimeFormat(locale, {
  timeZone, day: '2-digit', month: '2-digit', year: 'numeric',
  hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
});

// A time of day in the city's zone, 24-hour: "14:03:27"; "—" for none.
export function clock(ms) {
  if (!ms) return '—';
  return clockFormat.format(new Date(ms));
}

// Date and time in the city's zone, 24-hour.
export function dateTime(ms) {
  if (!ms) return '—';
  return dateTimeFormat.format(new Date(ms));
}

// An API error for people: the stable code's text, then the server's own detail.
export function apiError(reply, status) {
  const code = reply?.error?.code;
  const detail = reply?.error?.message;
  const known = code && `error.${code}` in catalogue ? t(`error.${code}`) : null;
  if (known && detail) return `${known}: ${detail}`;
  if (known) return known;
  return detail || t('error.http', { status });
}

const COOKIE_MAX_AGE_S = 365 * 24 * 60 * 60;

// Switches the page's language and remembers it: for this browser and, when signed in, for
// this operator (the node reads the cookies when it renders the next page).
export function choose(next, operator) {
  const set = (name) => { document.cookie = `${name}=${next}; Path=/; Max-Age=${COOKIE_MAX_AGE_S}; SameSite=Lax`; };
  set('centinela_lang');
  if (operator) {
    const hex = [...new TextEncoder().encode(operator)].map((b) => b.toString(16).padStart(2, '0')).join('');
    set(`centinela_lang_${hex}`);
  }
  const url = new URL(location.href);
  url.searchParams.delete('lang');
  location.href = url.toString();
}

// Test and diagnostic hooks.
window.centinelaI18n = {
  lang,
  timeZone,
  t,
  clock,
  missing: () => [...missing],
};
