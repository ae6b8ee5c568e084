// The home page: create an event, show its links and a QR code.
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
    show(json);
    const where = regionLabels.get(json.region);
    status.textContent = `Event created${where ? ` (server: ${where})` : ''}. Share the guest link below.`;
  } catch (error) {
    status.textContent = `Could not create the event: ${error.message}`;
    status.classList.add('error');
  } finally {
    button.disabled = false;
  }
});

function show(created) {
  const guest = new URL(created.guest_url, location.origin).href;
  const host = new URL(created.host_url, location.origin).href;
  myEvents.remember({ id: created.id, title: created.title, guest, host });
  listMyEvents();
  document.getElementById('guest-link').textContent = guest;
  document.getElementById('host-link').textContent = host;
  document.getElementById('guest-open').href = guest;
  document.getElementById('host-open').href = host;
  document.getElementById('qr').src = `${base}/api/qr?text=${encodeURIComponent(guest)}`;
  document.getElementById('created').hidden = false;
  form.hidden = true;
  // The form that had focus is gone: move to what comes next.
  document.getElementById('guest-heading').focus();
}

for (const copy of document.querySelectorAll('[data-copy]')) {
  copy.addEventListener('click', async () => {
    const text = document.getElementById(copy.dataset.copy).textContent;
    const said = document.getElementById('copy-status');
    try {
      await navigator.clipboard.writeText(text);
      said.textContent = 'Copied.';
    } catch {
      // No clipboard permission: select the text so the person can copy it.
      const range = document.createRange();
      range.selectNodeContents(document.getElementById(copy.dataset.copy));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      said.textContent = 'Selected: press Ctrl+C (or ⌘C) to copy.';
    }
  });
}

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
    forget.addEventListener('click', () => {
      if (forget.dataset.armed) {
        myEvents.forget(e.id);
        listMyEvents();
        document.getElementById('my-events-heading').focus();
        return;
      }
      forget.dataset.armed = '1';
      forget.textContent = 'Tap again to forget';
      setTimeout(() => { delete forget.dataset.armed; forget.textContent = 'Forget'; }, 4000);
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
