// The home page: create an event, show its links and a QR code.
import { request, withRetry } from './api.js';

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
    const { json } = await withRetry(() => request('POST', '/api/events', { body: { title } }), {
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
  document.getElementById('qr').src = `/api/qr?text=${encodeURIComponent(guest)}`;
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
