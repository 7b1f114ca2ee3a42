// Sign-in: POST /api/login sets the session cookie (HttpOnly), then on to the console.

import { t, apiError } from './i18n.js';

const $ = (id) => document.getElementById(id);

function fail(message) {
  $('error').textContent = message;
  $('error').hidden = false;
}

async function post(path, body) {
  const r = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (r.ok) {
    location.href = '/';
    return;
  }
  const reply = await r.json().catch(() => null);
  // The two refusals a person meets here, in their words; anything else by its code.
  if (r.status === 401) fail(t('login.refused'));
  else if (r.status === 429) fail(t('login.throttled', { s: r.headers.get('retry-after') || '?' }));
  else fail(t('login.failed', { error: apiError(reply, r.status) }));
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  $('error').hidden = true;
  post('/api/login', { operator: $('operator').value.trim(), password: $('password').value })
    .catch((e) => fail(t('login.no_answer', { error: e })));
});

$('demo-login').addEventListener('click', () => {
  post('/api/login/demo', {}).catch((e) => fail(t('login.no_answer', { error: e })));
});

// The buttons stay disabled until here: a form sent before this module ran (it waits for the
// catalogue) would go out as a plain GET with the password in the URL.
$('submit').disabled = false;
$('demo-login').disabled = false;

fetch('/api/login', { cache: 'no-store' })
  .then((r) => r.json())
  .then((info) => {
    $('node').textContent = info.node;
    $('demo').hidden = !info.demo;
    $('none').hidden = info.operators_configured;
  })
  .catch(() => fail(t('login.node_down')));
