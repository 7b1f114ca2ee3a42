// The intercom's calls in the console (docs/intercom.md). A call the node took arrives as a
// `call` event on the live stream and rings on its incident's card; one operator answers it:
// the page offers WebRTC audio (the microphone, G.711 only, ICE gathered before the offer is
// sent: no trickle), POSTs the offer, and plays the caller through an <audio> element. The
// operator who answered may hold and hang up; every other console shows who took it.

import { t, apiError } from './i18n.js';
import { esc } from './map.js';

// How long ICE gathering may take before the offer goes with what it has.
const GATHER_MAX_MS = 5000;

const calls = new Map();
const hooks = { operator: () => null, render: () => {}, toast: () => {} };
// This page's own call: { id, pc, stream }.
let mine = null;

export function initCalls({ operator, render, toast }) {
  Object.assign(hooks, { operator, render, toast });
  document.addEventListener('click', (event) => {
    const button = event.target.closest('[data-call-action]');
    if (!button) return;
    event.preventDefault();
    const id = button.dataset.callId;
    switch (button.dataset.callAction) {
      case 'answer': answer(id); break;
      case 'hold': post(id, 'hold', { held: true }); break;
      case 'resume': post(id, 'hold', { held: false }); break;
      case 'hangup': hangUp(id); break;
      default: break;
    }
  });
}

// A `call` event: ringing, taken, held, or ended.
export function onCall(call) {
  if (call.state === 'ended') {
    calls.delete(call.call_id);
    if (mine?.id === call.call_id) {
      stop();
      const by = call.ended_by || '';
      hooks.toast(by.startsWith('operator:') ? t('call.you_hung_up') : t('call.caller_hung_up'), 'ok');
    }
  } else {
    calls.set(call.call_id, call);
    if (call.state === 'ringing' && mine?.id === call.call_id && mine.answered) {
      // The node lost this page's leg (the network dropped for too long): the call rings
      // again for every operator, this page's connection is dead.
      stop();
      hooks.toast(t('call.leg_dropped'), 'error');
    }
  }
  window.centinelaCalls.last = call;
  hooks.render();
}

// What a card shows of its incident's calls.
export function callSlot(incidentId) {
  const me = hooks.operator();
  return [...calls.values()].filter((c) => c.incident === incidentId).map((c) => {
    const id = esc(c.call_id);
    const taken = c.operator && c.operator !== me;
    let body;
    if (c.state === 'ringing') {
      body = `<span class="chip chip-alert call-ringing">${t('call.ringing')}</span>
        <button type="button" class="call-answer" data-call-action="answer" data-call-id="${id}">${t('call.answer')}</button>
        <button type="button" class="ghost call-hangup" data-call-action="hangup" data-call-id="${id}">${t('call.reject')}</button>`;
    } else if (taken) {
      body = `<span class="chip call-taken">${t('call.taken_by', { who: esc(c.operator) })}</span>`;
    } else {
      const held = c.state === 'held';
      body = `<span class="chip ${held ? 'call-held' : 'call-talking'}">${held ? t('call.on_hold') : t('call.talking')}</span>
        <button type="button" class="ghost" data-call-action="${held ? 'resume' : 'hold'}" data-call-id="${id}">${held ? t('call.resume') : t('call.hold')}</button>
        <button type="button" class="call-hangup" data-call-action="hangup" data-call-id="${id}">${t('call.hang_up')}</button>`;
    }
    return `<div class="card-call" data-call="${id}" data-call-state="${esc(c.state)}">📞 ${body}</div>`;
  }).join('');
}

// The calls nobody has answered yet (the page's alarm rings for them, and escalates past
// the acknowledgement target as it does for an unacknowledged incident).
export function ringingCalls() {
  return [...calls.values()].filter((call) => call.state === 'ringing');
}

// The `T` key: answers the selected incident's ringing call, or the oldest ringing one.
export function answerRinging(selectedIncident) {
  const ringing = [...calls.values()].filter((c) => c.state === 'ringing');
  const call = ringing.find((c) => c.incident === selectedIncident) || ringing[0];
  if (call) answer(call.call_id);
}

async function request(id, action, body) {
  let response;
  let reply = null;
  try {
    response = await fetch(`/api/calls/${encodeURIComponent(id)}/${action}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body || {}),
    });
    reply = await response.json().catch(() => null);
  } catch (e) {
    hooks.toast(t('action.not_sent', { error: e }), 'error');
    return null;
  }
  if (!response.ok) {
    hooks.toast(apiError(reply, response.status), 'error');
    return null;
  }
  return reply;
}

async function post(id, action, body) {
  const reply = await request(id, action, body);
  if (reply?.call) onCall(reply.call);
}

function stop() {
  if (!mine) return;
  mine.pc.close();
  mine.stream?.getTracks().forEach((track) => track.stop());
  const audio = document.getElementById('call-audio');
  if (audio) audio.srcObject = null;
  mine = null;
}

async function answer(id) {
  if (mine) stop();
  const pc = new RTCPeerConnection({ iceServers: [] });
  mine = { id, pc, stream: null };
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    mine.stream = stream;
    stream.getAudioTracks().forEach((track) => pc.addTrack(track, stream));
  } catch (e) {
    // No microphone: the operator still hears the caller.
    pc.addTransceiver('audio', { direction: 'recvonly' });
    hooks.toast(t('call.no_microphone', { error: e.message || e }), 'error');
  }
  pc.ontrack = (event) => {
    let audio = document.getElementById('call-audio');
    if (!audio) {
      audio = document.createElement('audio');
      audio.id = 'call-audio';
      audio.autoplay = true;
      document.body.appendChild(audio);
    }
    audio.srcObject = event.streams[0] || new MediaStream([event.track]);
    audio.play().catch(() => {});
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === 'complete') return done();
    const timer = setTimeout(done, GATHER_MAX_MS);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(timer);
        done();
      }
    });
  });
  const reply = await request(id, 'answer', { sdp: pc.localDescription.sdp });
  if (!reply || mine?.pc !== pc) {
    if (mine?.pc === pc) stop();
    return;
  }
  await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
  mine.answered = true;
  if (reply.call) onCall(reply.call);
  hooks.toast(t('call.answered'), 'ok');
}

async function hangUp(id) {
  const reply = await request(id, 'hangup', {});
  if (mine?.id === id) stop();
  if (reply?.call) onCall(reply.call);
}

// For tests and the curious: this page's call and its peer connection.
window.centinelaCalls = {
  calls,
  get mine() { return mine; },
  last: null,
};
