// The event page, for guests (/event/{id}) and the host (/event/{id}/host#secret),
// each also under a region's path (/r/{region}/event/{id}…), as the share
// links of a deployment of several regions are.
import {
  ApiError, ago, agoPrecisely, el, regionBase, regionOf, request, retryable, stored, ulid, voteWord, votesLabel, withRetry,
} from './api.js';

let region = regionOf(location.pathname);
const [eventId, hostPart] = location.pathname.slice(regionBase(region).length).split('/').slice(2);
const isHost = hostPart === 'host';
// The host secret lives in the fragment: browsers never send it to servers.
// It is kept in memory and sent only as an Authorization header.
const secret = isHost ? decodeURIComponent(location.hash.slice(1)) : null;
let api;
let viewPath;
setRegion(region);

/** Asks `name`'s path (`null`: the plain one) from now on. */
function setRegion(name) {
  region = name;
  api = `${regionBase(region)}/api/events/${eventId}`;
  viewPath = isHost ? `${api}/host/questions` : `${api}/questions`;
}

/**
 * When an answer came from another region's path (the event lives there: a
 * stale or missing hint was sent on with a 307), ask that region directly
 * from now on, and show its address, so a reload or a copied link goes
 * straight there.
 */
function followRegion(answeredAt) {
  const answeredIn = answeredAt ? regionOf(new URL(answeredAt).pathname) : null;
  if (!answeredIn || answeredIn === region) return;
  setRegion(answeredIn);
  const page = `${regionBase(region)}/event/${eventId}${isHost ? '/host' : ''}`;
  history.replaceState(history.state, '', page + location.hash);
}

const MAX_TEXT = 1000;
const POLL_VISIBLE_MS = 1000;
const POLL_HIDDEN_MS = 15000;
/** After a touch or focus in the list, hold reordering this long. */
const HOLD_MS = 1500;

const $ = (id) => document.getElementById(id);
const pendingKey = `openfloor:pending:${eventId}`;
const votesKey = `openfloor:votes:${eventId}`;

const state = {
  view: null,
  etag: null,
  freshAt: 0,
  /** When the host's board was made, on this page's clock (0: unknown). */
  boardAt: 0,
  failures: 0,
  stopped: false,
  pollTimer: 0,
  holdUntil: 0,
  renderTimer: 0,
  /** Own questions not yet in the view: {id, text, author, status}. */
  pending: stored.get(pendingKey, []),
  /** Questions this browser votes for. */
  votes: new Set(stored.get(votesKey, [])),
  /** Vote changes sent but not yet reflected by a newer view: qid -> +1/-1. */
  inflight: new Map(),
  editing: null,
  /** When the page began waiting for the event to replicate here (0: not). */
  waitingSince: 0,
  waitTries: 0,
};

$('role').textContent = isHost ? '· host view' : '';
if (isHost) $('host-tools').hidden = false;

// ---- polling ---------------------------------------------------------------

function schedule(ms) {
  clearTimeout(state.pollTimer);
  if (!state.stopped) state.pollTimer = setTimeout(poll, ms);
}

async function poll() {
  try {
    const answer = await request('GET', viewPath, { secret, etag: state.etag });
    followRegion(answer.url);
    if (!answer.notModified) {
      state.view = answer.json;
      state.etag = answer.etag;
      state.inflight.clear();
      render();
    }
    state.freshAt = Date.now();
    // The host's board: when the projector made it, on this page's clock.
    state.boardAt = answer.viewAge === null || answer.viewAge === undefined ? 0 : state.freshAt - answer.viewAge;
    state.failures = 0;
    state.waitingSince = 0;
    state.waitTries = 0;
    $('waiting').hidden = true;
    showFreshness();
    problem(null);
    schedule(document.hidden ? POLL_HIDDEN_MS : POLL_VISIBLE_MS);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 400)) {
      return stop('This event does not exist or has expired.');
    }
    if (error instanceof ApiError && error.status === 401) {
      return stop('This host link is not valid. Use the complete host link you were given when the event was created.');
    }
    if (error instanceof ApiError && error.code === 'not_here_yet') {
      // Created moments ago in another region: this one will know it as
      // soon as the directory has replicated. Waiting, not failing.
      waiting();
      // Back off (1, 2, 4, then every 5 s; a hidden tab as for any poll):
      // replication takes a second or two, a mistyped link for ever.
      state.waitTries += 1;
      const backoff = Math.min(5000, 1000 * 2 ** (state.waitTries - 1));
      return schedule(document.hidden ? POLL_HIDDEN_MS : Math.max((error.retryAfter || 1) * 1000, backoff));
    }
    state.failures += 1;
    const wait = Math.min(30000, Math.max((error.retryAfter || 0) * 1000, 1000 * 2 ** (state.failures - 1)));
    problem(`Cannot reach openfloor (${retryable(error) ? 'connection problem' : error.message}); retrying in ${Math.round(wait / 1000)} s.`, true);
    schedule(wait);
  }
}

function stop(message) {
  state.stopped = true;
  clearTimeout(state.pollTimer);
  $('title').textContent = 'Not available';
  $('ask').hidden = true;
  $('host-tools').hidden = true;
  $('closed-note').hidden = true;
  problem(message);
}

/** How long "waiting" reads as normal before the page says it is slow. */
const PATIENT_MS = 30000;

/**
 * Says, politely and once (not at every poll), that the event is on its way
 * to this region; after a while, that it is taking long.
 */
function waiting() {
  state.waitingSince ||= Date.now();
  $('title').textContent = 'Getting the event ready…';
  const slow = Date.now() - state.waitingSince > PATIENT_MS;
  const message = slow
    ? 'This is taking longer than usual. If the event does not open, check the link with the host. This page keeps trying.'
    : 'This event was created a moment ago and is still being set up. This page opens it by itself in a few seconds; there is no need to reload.';
  const box = $('waiting');
  if (box.textContent !== message) box.textContent = message;
  box.hidden = false;
}

function problem(message, offerRetry = false) {
  const box = $('problem');
  // Rewriting an alert makes screen readers read it again: only on change.
  if (message && box.textContent.startsWith(message) && !box.hidden) return;
  box.replaceChildren();
  box.hidden = !message;
  if (!message) return;
  box.append(el('span', {}, message));
  if (offerRetry) box.append(' ', el('button', { type: 'button', class: 'secondary', onclick: () => { state.failures = 0; poll(); } }, 'Retry now'));
}

document.addEventListener('visibilitychange', () => { if (!document.hidden && !state.stopped) poll(); });

function showFreshness() {
  // The host reads two times: when the page last heard from the server, and
  // (below) when the ranking last changed there.
  const heard = isHost ? 'Checked' : 'Updated';
  if (state.freshAt && !state.stopped) $('freshness').textContent = `${heard} ${ago(Date.now() - state.freshAt)}`;
  // Not a live region: it changes every second, which a screen reader would
  // read out each time.
  const board = $('board-age');
  board.hidden = !(isHost && state.boardAt && !state.stopped);
  if (!board.hidden) board.textContent = `Ranking updated ${agoPrecisely(Date.now() - state.boardAt)}`;
}
setInterval(showFreshness, 1000);

// ---- rendering ---------------------------------------------------------------

/** Renders now, or once the reader's finger has left the list. */
function render() {
  clearTimeout(state.renderTimer);
  const wait = state.holdUntil - Date.now();
  if (wait > 0) {
    state.renderTimer = setTimeout(render, wait);
    return;
  }
  const view = state.view;
  if (!view) return;
  for (const list of document.querySelectorAll('.lists')) list.hidden = false;
  const title = view.event.title || 'Untitled event';
  $('title').textContent = title;
  document.title = `${title} · openfloor`;
  const open = view.event.open;
  $('ask').hidden = !open;
  $('closed-note').hidden = open;
  if (isHost) {
    $('open-state').textContent = open ? 'Open to new questions' : 'Closed to new questions';
    $('toggle-open').textContent = open ? 'Close to new questions' : 'Reopen to new questions';
  }

  // Own questions that the view now shows are no longer pending.
  const shown = new Set([...view.questions, ...view.answered].map((q) => q.id));
  const stillPending = state.pending.filter((p) => !shown.has(p.id));
  if (stillPending.length !== state.pending.length) savePending(stillPending);

  const pendingItems = state.pending.map((p) => ({ id: p.id, text: p.text, author: p.author || null, votes: 0, pending: p.status }));
  animateInto($('questions'), [...pendingItems, ...view.questions], false);
  animateInto($('answered'), view.answered, true);
  renderPresenter();
}

/** Rebuilds a list, animating items from their old to their new places. */
function animateInto(list, questions, answered) {
  const before = new Map([...list.children].map((li) => [li.dataset.id, li.getBoundingClientRect().top]));
  const focusedId = document.activeElement?.closest?.('li')?.dataset.id;
  const focusedRole = document.activeElement?.dataset?.role;
  list.replaceChildren(...(questions.length ? questions.map((q) => item(q, answered)) : [el('li', { class: 'empty' }, answered ? 'Nothing answered yet.' : 'No questions yet. Ask the first one!')]));
  for (const li of list.children) {
    const old = before.get(li.dataset.id);
    if (old === undefined) continue;
    const delta = old - li.getBoundingClientRect().top;
    if (Math.abs(delta) < 1) continue;
    li.animate([{ transform: `translateY(${delta}px)` }, { transform: 'translateY(0)' }], { duration: 250, easing: 'ease-out' });
  }
  if (focusedId) list.querySelector(`li[data-id="${focusedId}"] [data-role="${focusedRole}"]`)?.focus();
}

function item(q, answered) {
  const voted = state.votes.has(q.id);
  const votes = q.votes + (state.inflight.get(q.id) || 0);
  const classes = ['card', 'question', q.hidden ? 'hidden-q' : '', q.pending ? 'pending' : ''].filter(Boolean).join(' ');
  const meta = [
    q.author ? `— ${q.author}` : '— anonymous',
    q.pending ? el('span', { class: 'badge' }, q.pending === 'failed' ? 'not sent' : 'pending') : null,
    q.hidden ? el('span', { class: 'badge' }, 'hidden from guests') : null,
  ];
  const vote = q.pending || answered
    ? el('span', { class: 'vote count', 'aria-label': votesLabel(votes) }, el('span', { class: 'n' }, votes), voteWord(votes))
    : el('button', {
        type: 'button', class: 'vote', 'data-role': 'vote', 'aria-pressed': String(voted),
        'aria-label': `${voted ? 'Remove your vote' : 'Upvote'} (${votesLabel(votes)})`,
        onclick: () => toggleVote(q.id),
      }, el('span', { class: 'n count' }, votes), voted ? 'voted' : voteWord(votes));
  const body = el('div', { class: 'body' });
  if (state.editing === q.id) body.append(editor(q));
  else body.append(el('p', { class: 'text' }, q.text));
  body.append(el('p', { class: 'muted' }, ...meta.flatMap((m) => (m ? [m, ' '] : []))));
  if (q.pending === 'failed') {
    body.append(el('button', { type: 'button', class: 'secondary', onclick: () => resend(q.id) }, 'Try sending again'));
  }
  if (isHost && !q.pending) body.append(hostActions(q, answered));
  return el('li', { class: classes, 'data-id': q.id }, vote, body);
}

// ---- guests: asking and voting ---------------------------------------------------

const askText = $('ask-text');
function updateCount() {
  const n = [...askText.value.trim()].length;
  const count = $('ask-count');
  count.textContent = `${n} / ${MAX_TEXT}`;
  count.classList.toggle('over', n > MAX_TEXT);
  $('ask-button').disabled = n === 0 || n > MAX_TEXT;
}
askText.addEventListener('input', updateCount);
updateCount();

function savePending(list) {
  state.pending = list;
  stored.set(pendingKey, list);
}

$('ask').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = askText.value.trim();
  if (!text || [...text].length > MAX_TEXT) return;
  // The id is minted here, so a retry (even after a reload) never duplicates.
  const question = { id: ulid(), text, author: $('ask-author').value.trim(), status: 'sending' };
  savePending([...state.pending, question]);
  askText.value = '';
  updateCount();
  render();
  send(question);
});

async function send(question) {
  const status = $('ask-status');
  status.classList.remove('error');
  try {
    const answer = await withRetry(() => request('POST', `${api}/questions`, { body: { id: question.id, text: question.text, author: question.author || undefined } }), {
      onRetry: (_, wait) => { status.textContent = `Connection problem; retrying in ${Math.round(wait / 1000)} s…`; },
    });
    followRegion(answer.url);
    status.textContent = 'Sent. It appears in the list in a moment.';
    setPendingStatus(question.id, 'sent');
    schedule(50);
  } catch (error) {
    status.classList.add('error');
    if (retryable(error)) {
      status.textContent = 'Your question could not be sent. It is kept here; try again when you are back online.';
      setPendingStatus(question.id, 'failed');
    } else {
      status.textContent = `Your question was not accepted: ${error.message}`;
      savePending(state.pending.filter((p) => p.id !== question.id));
      render();
    }
  }
}

function setPendingStatus(id, status) {
  savePending(state.pending.map((p) => (p.id === id ? { ...p, status } : p)));
  render();
}

function resend(id) {
  const question = state.pending.find((p) => p.id === id);
  if (question) {
    setPendingStatus(id, 'sending');
    send(question);
  }
}

async function toggleVote(qid) {
  const up = !state.votes.has(qid);
  const apply = (on) => {
    if (on) state.votes.add(qid); else state.votes.delete(qid);
    stored.set(votesKey, [...state.votes]);
  };
  apply(up);
  state.inflight.set(qid, (state.inflight.get(qid) || 0) + (up ? 1 : -1));
  render();
  try {
    followRegion((await withRetry(() => request('PUT', `${api}/questions/${qid}/vote`, { body: { up } }))).url);
    schedule(50);
  } catch (error) {
    apply(!up);
    state.inflight.delete(qid);
    $('ask-status').textContent = `Your vote was not counted: ${error.message}`;
    render();
  }
}

// Keep the list still for a moment under a finger or keyboard focus.
for (const list of [$('questions'), $('answered')]) {
  for (const type of ['pointerdown', 'focusin']) {
    list.addEventListener(type, () => { state.holdUntil = Date.now() + HOLD_MS; });
  }
}

// ---- the host -------------------------------------------------------------------

function hostActions(q, answered) {
  const act = (label, role, path, body) => el('button', {
    type: 'button', class: 'secondary', 'data-role': role,
    onclick: () => hostPut(path, body),
  }, label);
  return el('p', { class: 'row host-actions' },
    act(answered ? 'Mark unanswered' : 'Mark answered', 'answer', `/questions/${q.id}/answered`, { value: !answered }),
    act(q.hidden ? 'Unhide' : 'Hide', 'hide', `/questions/${q.id}/hidden`, { value: !q.hidden }),
    el('button', { type: 'button', class: 'secondary', 'data-role': 'edit', onclick: () => { state.editing = q.id; state.holdUntil = 0; render(); } }, 'Edit text'));
}

function editor(q) {
  const area = el('textarea', { 'aria-label': 'Corrected question text' });
  area.value = q.text;
  const save = async (event) => {
    event.preventDefault();
    await hostPut(`/questions/${q.id}/text`, { text: area.value });
    state.editing = null;
    render();
  };
  const form = el('form', { onsubmit: save }, area,
    el('p', { class: 'row' }, el('button', { type: 'submit' }, 'Save'),
      el('button', { type: 'button', class: 'secondary', onclick: () => { state.editing = null; render(); } }, 'Cancel')));
  setTimeout(() => area.focus(), 0);
  return form;
}

async function hostPut(path, body) {
  try {
    const answer = await withRetry(() => request('PUT', `${api}${path}`, { body, secret }), {
      onRetry: (_, wait) => problem(`Connection problem; retrying in ${Math.round(wait / 1000)} s…`),
    });
    followRegion(answer.url);
    problem(null);
    schedule(50);
  } catch (error) {
    problem(`That did not work: ${error.message}`);
  }
}

$('toggle-open').addEventListener('click', () => hostPut('/open', { value: !state.view?.event.open }));

// Presenter mode: the question being answered now (the top of the ranking)
// and the next few, in large type, full screen.
$('presenter-button').addEventListener('click', () => {
  $('presenter').hidden = false;
  renderPresenter();
  $('presenter').requestFullscreen?.().catch(() => {});
  $('presenter-exit').focus();
});
function exitPresenter() {
  $('presenter').hidden = true;
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  $('presenter-button').focus();
}
$('presenter-exit').addEventListener('click', exitPresenter);
document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && !$('presenter').hidden) exitPresenter(); });
document.addEventListener('fullscreenchange', () => { if (!document.fullscreenElement && !$('presenter').hidden) exitPresenter(); });

function renderPresenter() {
  if ($('presenter').hidden || !state.view) return;
  const visible = state.view.questions.filter((q) => !q.hidden);
  const [now, ...next] = visible;
  $('presenter-title').textContent = state.view.event.title || 'openfloor';
  $('presenter-now').textContent = now ? now.text : 'No questions yet.';
  $('presenter-now-meta').textContent = now ? `${votesLabel(now.votes)}${now.author ? ` · ${now.author}` : ''}` : '';
  $('presenter-next').replaceChildren(...(next.length
    ? next.slice(0, 3).map((q) => el('li', { class: 'next' }, q.text))
    : [el('li', { class: 'next' }, 'Nothing else yet.')]));
}

// ---- start ---------------------------------------------------------------------------

if (isHost && !secret) {
  stop('This host link is incomplete: it must end with #followed-by-the-secret.');
} else {
  // Questions asked before a reload or while offline: send them again (same id).
  for (const p of state.pending) if (p.status !== 'sent') send(p);
  poll();
}
