// The presenter screen (/event/{id}/present): the question to answer now
// (the top of the guest view's ranking), the next few, and how to join, in
// type sized for a projector. It reads the public guest view, so it needs
// no host secret: a second screen can show it while the host moderates.
import { el, eventPage, guestLink, qrCode, regionBase, regionOf, request, votesLabel } from './api.js';

const $ = (id) => document.getElementById(id);
const region = regionOf(location.pathname);
const eventId = eventPage(location.pathname).id;
const api = `${regionBase(region)}/api/events/${eventId}`;
const guestUrl = guestLink(region, eventId);

/** How often the screen reads the view: as often as guests do (and, as
 * for them, rarely while its tab is hidden). */
const POLL_MS = 1000;
const POLL_HIDDEN_MS = 15000;
/** The question's type, as fractions of the screen's height: the largest
 * it may be, and the smallest it is allowed to shrink to before it is cut. */
const NOW_MAX = 0.09;
const NOW_MIN = 0.03;

const state = { view: null, etag: null, failures: 0 };

$('join-link').textContent = guestUrl.replace(/^https?:\/\//, '');
$('join-qr').src = qrCode(region, guestUrl);

// The join link and QR show at all times unless the host hides them.
function toggleJoin() {
  const join = $('join');
  join.hidden = !join.hidden;
  $('toggle-join').textContent = join.hidden ? 'Show the join link' : 'Hide the join link';
  fit();
}
$('toggle-join').addEventListener('click', toggleJoin);

async function poll() {
  try {
    const answer = await request('GET', `${api}/questions`, { etag: state.etag });
    if (!answer.notModified) {
      state.view = answer.json;
      state.etag = answer.etag;
      render();
    }
    state.failures = 0;
    $('status').textContent = '';
    schedule(document.hidden ? POLL_HIDDEN_MS : POLL_MS);
  } catch (error) {
    if (error.status === 404 || error.status === 400) {
      $('title').textContent = 'No such event';
      $('now-text').textContent = 'This event does not exist or has expired.';
      return;
    }
    state.failures += 1;
    $('status').textContent = 'Reconnecting…';
    schedule(Math.min(10000, 1000 * 2 ** state.failures));
  }
}

let timer = 0;
function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(poll, ms);
}
// Shown again: read at once rather than at the end of a hidden tab's wait.
document.addEventListener('visibilitychange', () => { if (!document.hidden) schedule(0); });

function render() {
  const view = state.view;
  const title = view.event.title || 'openfloor';
  $('title').textContent = title;
  document.title = `${title} · presenter · openfloor`;
  const [now, ...next] = view.questions;
  $('now-text').textContent = now ? now.text : 'No questions yet. Ask the first one!';
  $('now-meta').textContent = now ? `${votesLabel(now.votes)}${now.author ? ` · ${now.author}` : ''}` : '';
  $('next-list').replaceChildren(...(next.length
    ? next.slice(0, 3).map((q) => el('li', { dir: 'auto' }, q.text))
    : [el('li', {}, 'Nothing else yet.')]));
  fit();
}

/** What the last fit was for: the same text on the same screen fits the same. */
let fitted = '';

/**
 * Sizes the question's type to fill its part of the screen without
 * overflowing it: the largest size that fits, found by halving; below the
 * smallest allowed size, the text is cut with an ellipsis rather than run
 * off the screen (nobody scrolls a projector).
 */
function fit() {
  const box = $('now');
  const text = $('now-text');
  const key = `${text.textContent}\n${$('now-meta').textContent}\n${innerWidth}x${innerHeight}\n${$('join').hidden}`;
  if (key === fitted) return;
  fitted = key;
  const height = innerHeight;
  const fits = () => box.scrollHeight <= box.clientHeight;
  text.classList.remove('cut');
  let low = NOW_MIN * height;
  let high = NOW_MAX * height;
  text.style.fontSize = `${low}px`;
  if (!fits()) {
    // As many lines as the box holds at the smallest size, then fewer
    // while it still overflows (the votes line and its margin count too).
    text.classList.add('cut');
    let lines = Math.max(1, Math.floor(box.clientHeight / (low * 1.2)));
    text.style.setProperty('-webkit-line-clamp', String(lines));
    while (!fits() && lines > 1) {
      lines -= 1;
      text.style.setProperty('-webkit-line-clamp', String(lines));
    }
    return;
  }
  while (high - low > 1) {
    const mid = (low + high) / 2;
    text.style.fontSize = `${mid}px`;
    if (fits()) low = mid;
    else high = mid;
  }
  text.style.fontSize = `${low}px`;
}
// Once per frame at most while a window is being resized.
let resizing = 0;
addEventListener('resize', () => {
  cancelAnimationFrame(resizing);
  resizing = requestAnimationFrame(fit);
});

poll();
