// The home page: create an event, show its links and a QR code.
import { el, regionBase, regionOf, request, withRetry } from './api.js';

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
    const region = document.getElementById('region').value || undefined;
    const { json } = await withRetry(() => request('POST', `${base}/api/events`, { body: { title, region } }), {
      onRetry: (_, wait) => { status.textContent = `Connection problem; retrying in ${Math.round(wait / 1000)} s…`; },
    });
    show(json);
    status.textContent = '';
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
  document.getElementById('guest-link').textContent = guest;
  document.getElementById('host-link').textContent = host;
  document.getElementById('guest-open').href = guest;
  document.getElementById('host-open').href = host;
  document.getElementById('qr').src = `${base}/api/qr?text=${encodeURIComponent(guest)}`;
  document.getElementById('created').hidden = false;
  form.hidden = true;
  document.getElementById('guest-link').scrollIntoView({ block: 'nearest' });
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

// A deployment of several regions lets the host choose where the event runs
// (by default the one nearest them). One region: nothing to choose.
async function offerRegions() {
  try {
    const { json } = await request('GET', `${base}/api/regions`);
    if (!json || json.regions.length < 2) return;
    const nearest = json.regions.find((r) => r.name === json.suggested);
    document.getElementById('region-auto').textContent = `Nearest to you${nearest ? ` (${nearest.label})` : ''}`;
    document.getElementById('region').append(...json.regions.map((r) => el('option', { value: r.name }, r.label === r.name ? r.name : `${r.label} · ${r.name}`)));
    document.getElementById('region-choice').hidden = false;
  } catch {
    // Without the list, the event runs in the region nearest the host.
  }
}
offerRegions();
