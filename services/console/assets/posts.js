// Where to post the brigades, on the console's map (docs/plan-posts.md): a small form under
// the map asks the node (`GET /api/plan-posts`, the same Operator.PlanPosts the CLI calls) for
// N posts with an M-minute target, draws them on the map (MapView.setPosts: a numbered diamond
// at each, on the grid and on the streets), and says the coverage before (the units where
// they are now) and after, the solver and whether the plan is proven optimal. "Clear" removes
// the layer. Every refusal is shown as the node gives it (bad input with the accepted range, a
// node without an archive, a period without incidents).

import { t, apiError } from './i18n.js';
import { esc } from './map.js';

// What the defaults ask: three brigades, an eight-minute target (a common response goal for a
// patrol car in a district).
const BRIGADES_DEFAULT = 3;
const MINUTES_DEFAULT = 8;

const percent = (share) => `${(share * 100).toFixed(1)} %`;

// The layer's state, for the tests and for diagnosis: 'idle' | 'computing' | 'shown' |
// 'error', and the last plan or error message.
const status = { state: 'idle', plan: null, error: null };
window.centinelaPosts = status;

// `host`: the element under the map to fill; `map()`: the page's MapView (created lazily).
export function initPosts(host, map) {
  host.innerHTML =
    `<form class="posts-form" novalidate aria-label="${esc(t('posts.label'))}">` +
    `<b>${esc(t('posts.title'))}</b> ` +
    `<label>${esc(t('posts.brigades'))} <input name="brigades" type="number" inputmode="numeric" min="1" step="1" value="${BRIGADES_DEFAULT}" size="3"></label> ` +
    `<label>${esc(t('posts.minutes'))} <input name="minutes" type="number" inputmode="decimal" min="0" step="0.5" value="${MINUTES_DEFAULT}" size="3"></label> ` +
    `<button type="submit" name="compute">${esc(t('posts.compute'))}</button> ` +
    `<button type="button" name="clear" class="ghost" disabled>${esc(t('posts.clear'))}</button>` +
    '</form><div class="posts-result" role="status" aria-live="polite"></div>';
  const form = host.querySelector('form');
  const result = host.querySelector('.posts-result');
  const clear = form.elements.clear;

  const show = (state, html) => {
    status.state = state;
    host.dataset.state = state;
    result.className = `posts-result posts-${state}`;
    result.innerHTML = html;
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    // The node checks the numbers and says what it accepts: the page sends what was typed.
    const query = new URLSearchParams({
      brigades: form.elements.brigades.value.trim(),
      minutes: form.elements.minutes.value.trim(),
    });
    form.elements.compute.disabled = true;
    show('computing', esc(t('posts.computing')));
    try {
      const response = await fetch(`/api/plan-posts?${query}`, { credentials: 'same-origin' });
      const reply = await response.json().catch(() => null);
      if (!response.ok) {
        status.plan = null;
        // No incidents archived in the period (or none placed at a button): say what to do.
        const hint = reply?.error?.code === 'failed_precondition' ? `${t('posts.no_history')} ` : '';
        status.error = hint + apiError(reply, response.status);
        map()?.setPosts([]);
        clear.disabled = true;
        show('error', esc(status.error));
        return;
      }
      status.plan = reply;
      status.error = null;
      map()?.setPosts(reply.posts);
      clear.disabled = false;
      const solver = reply.optimal ? t('posts.optimal') : t('posts.not_proven', { bound: percent(reply.upper_bound) });
      show('shown',
        `<span class="posts-coverage">${esc(t('posts.coverage', {
          before: percent(reply.coverage_before), after: percent(reply.coverage_after),
          now: reply.brigades_now, brigades: reply.brigades, minutes: reply.target_minutes,
        }))}</span> ` +
        `<small>${esc(t('posts.solver', { solver: reply.solver }))} · ${esc(solver)} · ` +
        `${esc(t('posts.demand', { incidents: reply.incidents, buttons: reply.buttons }))}</small>` +
        `<ol class="posts-list">${reply.posts.map((p) => `<li>${esc(p.button)}</li>`).join('')}</ol>`);
    } catch (e) {
      status.error = t('posts.failed');
      show('error', esc(status.error));
    } finally {
      form.elements.compute.disabled = false;
    }
  });

  clear.addEventListener('click', () => {
    status.plan = null;
    status.error = null;
    map()?.setPosts([]);
    clear.disabled = true;
    show('idle', '');
  });
}
