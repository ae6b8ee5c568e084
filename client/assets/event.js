// The event page, for guests (/event/{id}) and the host (/event/{id}/host#secret),
// each also under a region's path (/r/{region}/event/{id}…), as the share
// links of a deployment of several regions are.
import {
  ApiError, ago, agoPrecisely, el, eventPage, failureSentence, failureText, guestLink, myEvents, qrCode, regionBase,
  regionOf, request, retryable, stored, touchEvent, ulid, voteWord, votesLabel, withRetry,
} from './api.js';

let region = regionOf(location.pathname);
const { id: eventId, part: hostPart } = eventPage(location.pathname);
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
touchEvent(eventId);

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
  /** The title last remembered among this browser's events (host only). */
  remembered: null,
  /** Whether the host unfolded their own ask form. */
  hostAsking: false,
  /** The open questions' order: 'popular' (the ranking) or 'recent'. */
  order: stored.get('openfloor:order', 'popular') === 'recent' ? 'recent' : 'popular',
  /** Whether the reader paused the lists' updates (WCAG 2.2.2), the view
   * the lists keep showing meanwhile, and how many questions arrived since. */
  paused: false,
  frozen: null,
  unseen: 0,
  /** Per question, how many times this browser changed its vote: a late
   * failure of an earlier change never undoes a later one. */
  voteChanges: new Map(),
  /** Per question, the last vote change sent (they go one after another). */
  voteQueue: new Map(),
  /** The questions the lists show, by id: new ones are announced. */
  listed: null,
  /** This browser's own questions (marked "yours"). */
  mine: new Set(stored.get(`openfloor:mine:${eventId}`, [])),
  /** Long questions this reader opened with "more". */
  expanded: new Set(),
  /** The question the host is editing: {id, text, form} (form: once built). */
  editing: null,
  /** When the vote message appeared (0: none shown). */
  voteNoteAt: 0,
  /** When the page began waiting for the event to replicate here (0: not). */
  waitingSince: 0,
  waitTries: 0,
};

$('role').textContent = isHost ? '· host view' : '';
if (isHost) $('host-tools').hidden = false;
if (isHost) share();
$('host-ask').addEventListener('click', () => {
  state.hostAsking = !state.hostAsking;
  $('host-ask').setAttribute('aria-expanded', String(state.hostAsking));
  render();
  if (state.hostAsking) askText.focus();
});

/**
 * The host's way to invite the audience: the guest link, a copy button and
 * a QR code, open (and focused) right after the event was created.
 */
function share() {
  const guest = guestLink(region, eventId);
  $('guest-link').textContent = guest;
  $('guest-open').href = guest;
  $('qr').src = qrCode(region, guest);
  $('share').hidden = false;
  // The presenter screen reads the public guest view: its link carries no
  // secret, so it can be opened on a shared screen.
  $('presenter-link').href = `${regionBase(region)}/event/${eventId}/present`;
  $('copy-guest').addEventListener('click', async () => {
    const said = $('copy-status');
    try {
      await navigator.clipboard.writeText(guest);
      said.textContent = 'Copied.';
    } catch {
      // No clipboard permission: select the link so the person can copy it.
      const range = document.createRange();
      range.selectNodeContents($('guest-link'));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      said.textContent = 'Selected: press Ctrl+C (or ⌘C) to copy.';
    }
  });
  const createdKey = `openfloor:created:${eventId}`;
  let created = null;
  try {
    created = JSON.parse(sessionStorage.getItem(createdKey));
    sessionStorage.removeItem(createdKey);
  } catch { /* private mode: nothing was left for this page */ }
  if (created) {
    $('share').open = true;
    $('share-status').textContent = `Event created${created.where ? ` (server: ${created.where})` : ''}. Share the guest link below.`;
    $('share-summary').focus();
  }
}

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
    // Back in touch: a vote's failure is old news once it has been read.
    if (state.voteNoteAt && Date.now() - state.voteNoteAt >= VOTE_NOTE_MS) voteNote(null);
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
    problem(`${failureSentence(error)}. This page tries again in ${Math.round(wait / 1000)}\u00a0s.`, true);
    schedule(wait);
  }
}

function stop(message) {
  state.stopped = true;
  clearTimeout(state.pollTimer);
  $('title').textContent = 'Not available';
  $('ask').hidden = true;
  $('host-tools').hidden = true;
  $('share').hidden = true;
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
// Back online: ask now rather than at the end of a long backoff, and send
// the questions that could not be sent (same ids: never twice).
window.addEventListener('online', () => {
  if (state.stopped) return;
  state.failures = 0;
  poll();
  for (const p of state.pending) if (p.status === 'failed') resend(p.id);
});
// The host link pasted into this tab after a wrong one changes only the
// fragment, which loads nothing: load the page for the new secret.
window.addEventListener('hashchange', () => { if (isHost) location.reload(); });

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
  // The secret worked: the home page lists this event's host link from now on.
  if (isHost && state.remembered !== view.event.title) {
    state.remembered = view.event.title;
    myEvents.remember({ id: eventId, title: view.event.title, guest: guestLink(region, eventId), host: location.href });
  }
  const open = view.event.open;
  // The host's own ask form stays folded away until they want it: the page
  // is for moderating.
  $('ask').hidden = !open || (isHost && !state.hostAsking);
  if (isHost) $('host-ask').hidden = !open;
  $('closed-note').hidden = open;
  if (isHost) {
    $('open-state').textContent = open ? 'Open to new questions' : 'Closed to new questions';
    $('toggle-open').textContent = open ? 'Close to new questions' : 'Reopen to new questions';
  }

  // Own questions that the view now shows are no longer pending.
  const shown = new Set([...view.questions, ...view.answered].map((q) => q.id));
  const stillPending = state.pending.filter((p) => !shown.has(p.id));
  if (stillPending.length !== state.pending.length) savePending(stillPending);

  announceNew(view);
  // Paused: the lists show the view they showed when paused, until
  // resumed; the reader's own actions (asking, ordering, editing) still
  // show in them.
  const listed = state.paused ? (state.frozen ??= view) : view;
  renderLists(listed);
}

/** Fills the two lists from `view`, with this browser's pending questions. */
function renderLists(view) {
  // A large event's guest view lists the top of the ranking only: an own
  // question sent but not listed is below it, not lost.
  const more = view.more ?? { questions: 0, answered: 0 };
  const status = (p) => (p.status === 'sent' && more.questions > 0 ? 'below' : p.status);
  const pendingItems = state.pending.map((p) => ({ id: p.id, text: p.text, author: p.author || null, votes: 0, pending: status(p) }));
  const ordered = state.order === 'recent'
    ? [...view.questions].sort((a, b) => b.asked_at - a.asked_at || (a.id < b.id ? 1 : -1))
    : view.questions;
  animateInto($('questions'), [...pendingItems, ...ordered], false);
  animateInto($('answered'), view.answered, true);
  showLeftOut($('more-questions'), view.questions.length, more.questions,
    state.order === 'recent' ? 'open questions (Recent orders those)' : 'open questions');
  showLeftOut($('more-answered'), view.answered.length, more.answered, 'answered questions');
}

/**
 * Says "2 new questions" in one polite live region (not the list itself,
 * which would be read out whole), for questions others asked since the
 * last view; the first view announces nothing.
 */
function announceNew(view) {
  const ids = [...view.questions, ...view.answered].map((q) => q.id);
  // Every id seen on this page, not only in the last view: a question that
  // comes back into a large event's top 250, or is unhidden, is not new.
  const first = !state.listed;
  state.listed ??= new Set();
  const fresh = ids.filter((id) => !state.listed.has(id) && !state.mine.has(id)).length;
  for (const id of ids) state.listed.add(id);
  if (first || !fresh) return;
  // Emptied first, so that the same words said twice are read twice.
  const region = $('announce');
  region.textContent = '';
  setTimeout(() => { region.textContent = `${fresh} new ${fresh === 1 ? 'question' : 'questions'}`; }, 50);
  if (state.paused) {
    state.unseen += fresh;
    $('paused-note').textContent = `Updates paused: ${state.unseen} new since. Resume to see them.`;
  }
}

// The open questions' order, kept for this browser.
function setOrder(order) {
  state.order = order;
  stored.set('openfloor:order', order);
  $('order-popular').setAttribute('aria-pressed', String(order === 'popular'));
  $('order-recent').setAttribute('aria-pressed', String(order === 'recent'));
  render();
}
$('order-popular').addEventListener('click', () => setOrder('popular'));
$('order-recent').addEventListener('click', () => setOrder('recent'));
setOrder(state.order);

// Pausing keeps the lists still for reading (and for assistive
// technology); resuming shows everything that changed meanwhile.
$('pause').addEventListener('click', () => {
  state.paused = !state.paused;
  state.unseen = 0;
  state.frozen = null;
  // Its name says what it does next (no aria-pressed: the name changes).
  $('pause').textContent = state.paused ? 'Resume updates' : 'Pause updates';
  $('paused-note').hidden = !state.paused;
  $('paused-note').textContent = 'Updates paused. Resume to see the latest.';
  render();
});

/** Says how many of a list's questions the view leaves out, if any. */
function showLeftOut(note, shown, leftOut, what) {
  note.hidden = leftOut === 0;
  note.textContent = leftOut ? `Showing the top ${shown} of ${shown + leftOut} ${what}.` : '';
}

/** Rebuilds a list, animating items from their old to their new places. */
function animateInto(list, questions, answered) {
  const before = new Map([...list.children].map((li) => [li.dataset.id, li.getBoundingClientRect().top]));
  const focused = document.activeElement;
  const focusedId = focused?.closest?.('li')?.dataset.id;
  const focusedRole = focused?.dataset?.role;
  const caret = focused instanceof HTMLTextAreaElement ? caretOf(focused) : null;
  list.replaceChildren(...(questions.length ? questions.map((q) => item(q, answered)) : [el('li', { class: 'empty' }, answered ? 'Nothing answered yet.' : 'No questions yet. Ask the first one!')]));
  for (const li of list.children) {
    const old = before.get(li.dataset.id);
    if (old === undefined) continue;
    const delta = old - li.getBoundingClientRect().top;
    if (Math.abs(delta) < 1) continue;
    li.animate([{ transform: `translateY(${delta}px)` }, { transform: 'translateY(0)' }], { duration: 250, easing: 'ease-out' });
  }
  const again = focusedId && list.querySelector(`li[data-id="${focusedId}"] [data-role="${focusedRole}"]`);
  if (!again) return;
  again.focus({ preventScroll: true });
  // Taking a text box out of the page loses its caret: put it back.
  if (caret && again instanceof HTMLTextAreaElement) restoreCaret(again, caret);
}

function caretOf(area) {
  return { start: area.selectionStart, end: area.selectionEnd, direction: area.selectionDirection, scroll: area.scrollTop };
}

function restoreCaret(area, caret) {
  area.setSelectionRange(caret.start, caret.end, caret.direction);
  area.scrollTop = caret.scroll;
}

/** What an own question not yet listed shows, by its status. */
function pendingBadge(status) {
  if (status === 'failed') return 'not sent';
  if (status === 'below') return `asked · below the top ${state.view.questions.length}`;
  return 'pending';
}

function item(q, answered) {
  const classes = ['card', 'question', q.hidden ? 'hidden-q' : '', q.pending ? 'pending' : ''].filter(Boolean).join(' ');
  // dir=auto: each text and name reads in its own direction (Arabic with
  // digits, say), whatever the page's.
  const meta = [
    q.author ? el('span', {}, '— ', el('span', { class: 'author', dir: 'auto' }, q.author)) : '— anonymous',
    q.pending ? el('span', { class: 'badge' }, pendingBadge(q.pending)) : null,
    !q.pending && state.mine.has(q.id) ? el('span', { class: 'tag' }, 'yours') : null,
    q.hidden ? el('span', { class: 'badge' }, 'hidden from guests') : null,
  ];
  const vote = q.pending || answered
    ? el('span', { class: 'vote count' }, ...voteCount(q.votes))
    : voteButton(q);
  const body = el('div', { class: 'body' });
  if (state.editing?.id === q.id) body.append(editor(q));
  else body.append(questionText(q));
  body.append(el('p', { class: 'muted' }, ...meta.flatMap((m) => (m ? [m, ' '] : []))));
  if (q.pending === 'failed') {
    body.append(el('button', { type: 'button', class: 'secondary', onclick: () => resend(q.id) }, 'Try sending again'));
  }
  if (isHost && !q.pending) body.append(hostActions(q, answered));
  return el('li', { class: classes, 'data-id': q.id }, vote, body);
}

/** Questions longer than this many characters show their start and "more". */
const CLAMP_CHARS = 300;
/** How much of a long question shows (cut at a word where one is near). */
const CLAMP_TO = 240;

/**
 * A question's text; a long one clamped, with a "more"/"less" button: a
 * 1,000-character question would otherwise fill screens of a phone.
 */
function questionText(q) {
  const text = el('span', {});
  const p = el('p', { class: 'text', dir: 'auto', id: `text-${q.id}` }, text);
  const chars = [...q.text];
  if (chars.length <= CLAMP_CHARS) {
    text.textContent = q.text;
    return p;
  }
  const toggle = el('button', { type: 'button', class: 'more', 'data-role': 'more', 'aria-controls': p.id });
  const show = () => {
    const open = state.expanded.has(q.id);
    text.textContent = open ? q.text : `${clamp(chars)}…`;
    toggle.textContent = open ? 'less' : 'more';
    toggle.setAttribute('aria-expanded', String(open));
  };
  // In place, not by a render: that may wait while the finger is on the list.
  toggle.addEventListener('click', () => {
    if (!state.expanded.delete(q.id)) state.expanded.add(q.id);
    show();
  });
  show();
  p.append(' ', toggle);
  return p;
}

/** The start of a long text, ending at a word's end when one is near. */
function clamp(chars) {
  const head = chars.slice(0, CLAMP_TO).join('');
  const lastSpace = head.search(/\s\S*$/);
  return (lastSpace > CLAMP_TO * 0.75 ? head.slice(0, lastSpace) : head).trimEnd();
}

/** "1" over "vote": what a vote box shows (a space between, for the name). */
function voteCount(votes) {
  return [el('span', { class: 'n count' }, votes), ' ', el('span', { class: 'word' }, voteWord(votes))];
}

function voteButton(q) {
  const button = el('button', { type: 'button', class: 'vote', 'data-role': 'vote', onclick: () => toggleVote(q.id) });
  showVote(button, q);
  return button;
}

/**
 * Writes this browser's vote and the count into `button`. Its name is
 * "Upvote 1 vote": it contains what the button shows (WCAG 2.5.3), and it
 * does not change when pressed: aria-pressed says whether this browser voted.
 */
function showVote(button, q) {
  button.setAttribute('aria-pressed', String(state.votes.has(q.id)));
  const votes = q.votes + (state.inflight.get(q.id) || 0);
  button.replaceChildren(el('span', { class: 'visually-hidden' }, 'Upvote '), ...voteCount(votes));
}

/**
 * Shows the voter's own tap at once, in the buttons already on the page,
 * while re-ordering the list may wait until the finger has left it.
 */
function paintVote(qid) {
  const q = state.view?.questions.find((question) => question.id === qid);
  if (!q) return;
  for (const button of document.querySelectorAll('#questions button.vote')) {
    if (button.closest('li').dataset.id === qid) showVote(button, q);
  }
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

// A half-typed question (and name) survives a reload or a closed tab.
const draftKey = `openfloor:draft:${eventId}`;
const draft = stored.get(draftKey, {});
if (typeof draft.text === 'string' && !askText.value) askText.value = draft.text;
if (typeof draft.author === 'string' && !$('ask-author').value) $('ask-author').value = draft.author;
function saveDraft() {
  if (!askText.value && !$('ask-author').value) {
    try { localStorage.removeItem(draftKey); } catch { /* private mode */ }
    return;
  }
  stored.set(draftKey, { text: askText.value, author: $('ask-author').value });
}
askText.addEventListener('input', saveDraft);
$('ask-author').addEventListener('input', saveDraft);
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
  state.mine.add(question.id);
  stored.set(`openfloor:mine:${eventId}`, [...state.mine]);
  askText.value = '';
  saveDraft();
  updateCount();
  // The Ask button is disabled now the box is empty: keep the focus in the
  // form, ready for the next question, rather than lose it to the page.
  askText.focus();
  render();
  send(question);
});

async function send(question) {
  const status = $('ask-status');
  status.classList.remove('error');
  try {
    const answer = await withRetry(() => request('POST', `${api}/questions`, { body: { id: question.id, text: question.text, author: question.author || undefined } }), {
      onRetry: (error, wait) => { status.textContent = `${failureSentence(error)}. Sending again in ${Math.round(wait / 1000)} s…`; },
    });
    followRegion(answer.url);
    status.textContent = 'Sent. It appears in the list in a moment.';
    setPendingStatus(question.id, 'sent');
    voteForOwn(question.id);
    schedule(50);
  } catch (error) {
    status.classList.add('error');
    if (retryable(error)) {
      status.textContent = 'Your question could not be sent. It is kept here; try again when you are back online.';
      setPendingStatus(question.id, 'failed');
    } else {
      status.textContent = `Your question was not accepted: ${error.message}`;
      savePending(state.pending.filter((p) => p.id !== question.id));
      state.mine.delete(question.id);
      stored.set(`openfloor:mine:${eventId}`, [...state.mine]);
      render();
    }
  }
}

/**
 * The asker votes for their own question, as in wewerewondering: it starts
 * at one vote, theirs, which they can take back like any vote. Once: a
 * resend of the same question does not vote again.
 */
async function voteForOwn(qid) {
  if (state.votes.has(qid)) return;
  const change = changeVote(qid, true);
  try {
    await sendVote(qid, true);
    schedule(50);
  } catch {
    // Not counted: the button shows it not pressed, to tap like any other
    // (unless the asker changed it since: theirs is the last word).
    if (state.voteChanges.get(qid) === change) {
      changeVote(qid, false);
      render();
    }
  }
}

/** Records this browser's vote on `qid` as `up`; returns the change's number. */
function changeVote(qid, up) {
  if (up) state.votes.add(qid); else state.votes.delete(qid);
  stored.set(votesKey, [...state.votes]);
  const change = (state.voteChanges.get(qid) || 0) + 1;
  state.voteChanges.set(qid, change);
  return change;
}

/**
 * Sends a vote change on `qid` after the ones before it on the same
 * question have settled: changes reach the server in the order they were
 * made, so an automatic vote and a withdrawal cannot cross.
 */
function sendVote(qid, up, onRetry) {
  const before = state.voteQueue.get(qid) ?? Promise.resolve();
  const sent = before.catch(() => {}).then(() => withRetry(
    () => request('PUT', `${api}/questions/${qid}/vote`, { body: { up } }),
    { onRetry },
  ));
  state.voteQueue.set(qid, sent);
  return sent;
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
  const change = changeVote(qid, up);
  state.inflight.set(qid, (state.inflight.get(qid) || 0) + (up ? 1 : -1));
  paintVote(qid);
  render();
  try {
    const answer = await sendVote(qid, up, (error) => voteNote(`${failureSentence(error)}. Your vote is sent again by itself.`));
    followRegion(answer.url);
    voteNote(null);
    schedule(50);
  } catch (error) {
    state.inflight.delete(qid);
    voteNote(`Your vote was not counted: ${failureText(error)}.`);
    // Undone, unless the voter changed it again since.
    if (state.voteChanges.get(qid) === change) changeVote(qid, !up);
    paintVote(qid);
    render();
  }
}

/** How long a vote's failure stays before a working connection clears it. */
const VOTE_NOTE_MS = 5000;

/**
 * Says how a vote went, in a bar at the foot of the screen: in view wherever
 * the voter has scrolled, and not in the ask form, which a closed event hides.
 */
function voteNote(message) {
  const box = $('vote-status');
  state.voteNoteAt = message ? Date.now() : 0;
  if (box.textContent !== (message || '')) box.textContent = message || '';
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
    el('button', { type: 'button', class: 'secondary', 'data-role': 'edit', onclick: () => startEditing(q) }, 'Edit text'));
}

function startEditing(q) {
  state.editing = { id: q.id, text: q.text, form: null };
  state.holdUntil = 0;
  render();
  state.editing?.form?.querySelector('textarea').focus();
}

/**
 * The edit box of `q`. Built once per edit and then moved from render to
 * render: live updates (any vote in the room) re-render the list, and must
 * never put the server's text back over what the host is typing.
 */
function editor(q) {
  const editing = state.editing;
  if (editing.form) return editing.form;
  const area = el('textarea', { 'aria-label': 'Corrected question text', 'data-role': 'edit-text', dir: 'auto' });
  area.value = editing.text;
  const save = async (event) => {
    event.preventDefault();
    // A failed save keeps the box open, with the host's text in it.
    if (!(await hostPut(`/questions/${q.id}/text`, { text: area.value }))) return;
    if (state.editing === editing) state.editing = null;
    render();
  };
  const cancel = () => { state.editing = null; render(); };
  editing.form = el('form', { onsubmit: save }, area,
    el('p', { class: 'row' }, el('button', { type: 'submit', 'data-role': 'save' }, 'Save'),
      el('button', { type: 'button', class: 'secondary', 'data-role': 'cancel', onclick: cancel }, 'Cancel')));
  return editing.form;
}

/** Sends a host's change; true once it is done. */
async function hostPut(path, body) {
  try {
    const answer = await withRetry(() => request('PUT', `${api}${path}`, { body, secret }), {
      onRetry: (error, wait) => problem(`${failureSentence(error)}. Trying again in ${Math.round(wait / 1000)} s…`),
    });
    followRegion(answer.url);
    problem(null);
    schedule(50);
    return true;
  } catch (error) {
    problem(`That did not work: ${error.message}`);
    return false;
  }
}

$('toggle-open').addEventListener('click', () => hostPut('/open', { value: !state.view?.event.open }));

// ---- start ---------------------------------------------------------------------------

if (isHost && !secret) {
  stop('This host link is incomplete: it must end with #followed-by-the-secret.');
} else {
  // Questions asked before a reload or while offline: send them again (same id).
  for (const p of state.pending) if (p.status !== 'sent') resend(p.id);
  poll();
}
