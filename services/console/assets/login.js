// Sign-in: POST /api/login sets the session cookie (HttpOnly), then on to the console.

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
  fail(reply?.error?.message || `Sign-in failed (HTTP ${r.status})`);
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  $('error').hidden = true;
  post('/api/login', { operator: $('operator').value.trim(), password: $('password').value })
    .catch((e) => fail(`The node did not answer: ${e}`));
});

$('demo-login').addEventListener('click', () => {
  post('/api/login/demo', {}).catch((e) => fail(`The node did not answer: ${e}`));
});

fetch('/api/login', { cache: 'no-store' })
  .then((r) => r.json())
  .then((info) => {
    $('node').textContent = info.node;
    $('demo').hidden = !info.demo;
    $('none').hidden = info.operators_configured;
  })
  .catch(() => fail('The node did not answer; is it running?'));
