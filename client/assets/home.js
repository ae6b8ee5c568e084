// The home page: create an event (then go to its host page, which shares
// it), and the events hosted from this browser.
import { el, myEvents, regionBase, regionOf, request, withRetry } from './api.js';

// Served under a region's path (/r/{region}/), ask that region.
const base = regionBase(regionOf(location.pathname));

const form = document.getElementById('create');
const status = document.getElementById('create-status');
const button = document.getElementById('create-button');

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  button.disabled = true;
  status.textContent = 'Creating…';
  status.classList.remove('error');
  try {
    const title = document.getElementById('title').value;
    const region = document.querySelector('input[name="region"]:checked')?.value || undefined;
    const { json } = await withRetry(() => request('POST', `${base}/api/events`, { body: { title, region } }), {
      onRetry: (_, wait) => { status.textContent = `Connection problem; retrying in ${Math.round(wait / 1000)} s…`; },
    });
    const guest = new URL(json.guest_url, location.origin).href;
    const host = new URL(json.host_url, location.origin).href;
    myEvents.remember({ id: json.id, title: json.title, guest, host });
    // The host page says where the event runs, once, and opens its share
    // card: it is where the host goes now, and what they can bookmark.
    const where = regionLabels.get(json.region);
    try {
      sessionStorage.setItem(`openfloor:created:${json.id}`, JSON.stringify({ where: where || null }));
    } catch { /* private mode: the host opens the card themselves */ }
    status.textContent = 'Event created. Opening its host page…';
    location.assign(host);
  } catch (error) {
    status.textContent = `Could not create the event: ${error.message}`;
    status.classList.add('error');
    button.disabled = false;
  }
});

// The events hosted from this browser: the way back to a host link after a
// reload or a closed tab.
function listMyEvents() {
  const events = myEvents.list();
  const list = document.getElementById('my-events-list');
  document.getElementById('my-events').hidden = events.length === 0;
  list.replaceChildren(...events.map((e) => {
    const title = e.title || 'Untitled event';
    const forget = el('button', { type: 'button', class: 'secondary', 'aria-label': `Forget ${title}` }, 'Forget');
    // Forgetting drops the only key this browser holds: a second tap, within
    // a few seconds, confirms it.
    // Its name always contains what it shows (WCAG 2.5.3).
    const show = (armed) => {
      forget.textContent = armed ? 'Tap again to forget' : 'Forget';
      forget.setAttribute('aria-label', armed ? `Tap again to forget ${title}` : `Forget ${title}`);
    };
    forget.addEventListener('click', () => {
      if (forget.dataset.armed) {
        myEvents.forget(e.id);
        listMyEvents();
        // The list may be gone: then on to creating one.
        const next = myEvents.list().length ? 'my-events-heading' : 'title';
        document.getElementById(next).focus();
        return;
      }
      forget.dataset.armed = '1';
      show(true);
      setTimeout(() => { delete forget.dataset.armed; show(false); }, 4000);
    });
    return el('li', { class: 'card' },
      el('p', { class: 'title', dir: 'auto' }, title),
      el('p', { class: 'row' },
        el('a', { href: e.host, 'aria-label': `Host page of ${title}` }, 'Host page'),
        el('a', { href: e.guest, 'aria-label': `Guest page of ${title}` }, 'Guest page'),
        forget));
  }));
}
listMyEvents();
// Back from the host page (the back/forward cache restores this page as it
// was left): ready to create again, with the new event listed.
addEventListener('pageshow', (e) => {
  if (!e.persisted) return;
  button.disabled = false;
  status.textContent = '';
  listMyEvents();
});

// A deployment of several regions lets the host choose where the event runs
// (by default the one nearest them). One region: nothing to choose.
const regionLabels = new Map();

async function offerRegions() {
  let info;
  try {
    ({ json: info } = await request('GET', `${base}/api/regions`));
  } catch {
    return; // Without the list, the event runs in the region nearest the host.
  }
  if (!info || info.regions.length < 2) return;
  for (const r of info.regions) regionLabels.set(r.name, r.label);
  const suggested = regionLabels.get(info.suggested) ?? info.suggested;
  const option = (value, label, checked) => el('label', { class: 'option' },
    el('input', { type: 'radio', name: 'region', value, checked }), label);
  document.getElementById('region-options').append(
    option('', info.nearest ? `Automatic: the nearest to you, now ${suggested}` : `Automatic (now ${suggested})`, true),
    ...info.regions.map((r) => option(r.name, r.label, false)),
  );
  document.getElementById('region-choice').hidden = false;
}
offerRegions();
