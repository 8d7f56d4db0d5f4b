// v6lab pages: countdowns, local times, buttons calling the JSON API, and live updates from the
// controller's event stream (Server-Sent Events), which refresh the page's live parts
// (elements with data-fragment, rendered by the server).
'use strict';
(() => {
  const skew = Number(document.body.dataset.now || 0) * 1000 - Date.now();
  const serverSecs = () => (Date.now() + skew) / 1000;

  function left(s) {
    if (s <= 0) return 'ended';
    const pad = (n) => String(n).padStart(2, '0');
    if (s >= 3600) return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
    if (s >= 60) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
    return `${s} s`;
  }

  function tick() {
    for (const el of document.querySelectorAll('time.countdown[data-expires]')) {
      const s = Math.floor(Number(el.dataset.expires) - serverSecs());
      const text = left(s);
      if (el.textContent !== text) el.textContent = text;
      el.classList.toggle('soon', s > 0 && s < 600);
      el.classList.toggle('over', s <= 0);
    }
  }

  function localTimes(root) {
    for (const el of root.querySelectorAll('time[data-ts]')) {
      const d = new Date(Number(el.dataset.ts) * 1000);
      const opts = el.dataset.format === 'time'
        ? { hour: '2-digit', minute: '2-digit' }
        : { hour: '2-digit', minute: '2-digit', second: '2-digit' };
      el.textContent = d.toLocaleTimeString([], opts);
      el.dateTime = d.toISOString();
    }
  }

  function announce(text) {
    const a = document.getElementById('announce');
    if (!a) return;
    a.textContent = '';
    setTimeout(() => { a.textContent = text; }, 50);
  }

  let toastTimer = null;
  function toast(text, bad) {
    let t = document.getElementById('toast');
    if (!t) {
      t = document.createElement('div');
      t.id = 'toast';
      t.setAttribute('role', 'status');
      document.body.append(t);
    }
    t.textContent = text;
    t.className = bad ? 'bad' : 'ok';
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, bad ? 8000 : 4000);
  }

  // Live parts of the page, refreshed from the server.
  let refreshTimer = null;
  let refreshing = false;
  async function refresh() {
    if (refreshing) { schedule(); return; }
    refreshing = true;
    try {
      for (const el of document.querySelectorAll('[data-fragment]')) {
        let r;
        try {
          r = await fetch(el.dataset.fragment, { credentials: 'same-origin' });
        } catch {
          continue;
        }
        if (r.status === 401) {
          // A student's session ends with the lab: say so in place. Elsewhere, sign in again.
          if (document.querySelector('.live[data-scope="lab"]')) { labEnded('Your lab has ended. Thank you for taking part!'); return; }
          location.reload();
          return;
        }
        if (!r.ok) {
          if (r.status === 404 || r.status === 403) {
            const p = document.createElement('p');
            p.className = 'warn';
            p.textContent = 'This no longer exists.';
            el.replaceChildren(p);
          }
          continue;
        }
        const html = await r.text();
        const focusId = el.contains(document.activeElement) ? document.activeElement.id : null;
        el.innerHTML = html; // rendered and escaped by the server's templates
        localTimes(el);
        if (focusId) document.getElementById(focusId)?.focus();
      }
      tick();
      document.dispatchEvent(new CustomEvent('v6lab:refreshed'));
    } finally {
      refreshing = false;
    }
  }
  function schedule() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 300);
  }

  function done(b, body) {
    if (body.deleted) return `Deleted ${body.deleted}.`;
    if (body.expires) {
      const at = new Date(body.expires * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      return `${body.name} now ends at ${at}.`;
    }
    if (Array.isArray(body.exercises)) {
      const ok = body.exercises.filter((e) => e.passed).length;
      return `Checked: ${ok} of ${body.exercises.length} exercises pass.`;
    }
    return 'Done.';
  }

  document.addEventListener('click', async (ev) => {
    if (ev.target.closest('[data-print]')) { window.print(); return; }
    const b = ev.target.closest('button[data-api]');
    if (!b || b.disabled) return;
    if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
    const opts = { method: b.dataset.method || 'POST', credentials: 'same-origin', headers: {} };
    if (b.dataset.by) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify({ by: b.dataset.by });
    }
    const label = b.textContent;
    b.disabled = true;
    b.setAttribute('aria-busy', 'true');
    if (b.dataset.busy) b.textContent = b.dataset.busy;
    try {
      const r = await fetch(b.dataset.api, opts);
      let body = {};
      try { body = await r.json(); } catch { /* no body */ }
      if (!r.ok) {
        toast(body.error || `That did not work (${r.status}).`, true);
      } else {
        const text = done(b, body);
        toast(text);
        announce(text);
        if (b.dataset.then) { location.href = b.dataset.then; return; }
      }
    } catch {
      toast('The controller did not answer.', true);
    } finally {
      b.disabled = false;
      b.removeAttribute('aria-busy');
      b.textContent = label;
      schedule();
    }
  });

  // Events list (dashboard, class page).
  function addEvent(e) {
    const list = document.getElementById('events');
    if (!list) return;
    list.querySelector('.empty')?.remove();
    const li = document.createElement('li');
    li.className = `ev ev-${e.kind} new`;
    const t = document.createElement('time');
    t.dataset.ts = e.ts;
    const k = document.createElement('span');
    k.className = 'ev-kind';
    k.textContent = e.kind;
    const m = document.createElement('span');
    m.className = 'ev-msg';
    m.textContent = e.message;
    li.append(t, ' ', k, ' ', m);
    localTimes(li);
    list.prepend(li);
    while (list.children.length > 60) list.lastElementChild.remove();
  }

  function labEnded(text) {
    for (const b of document.querySelectorAll('.open-term, #check-now')) b.disabled = true;
    const s = document.getElementById('status');
    if (s) {
      const p = document.createElement('p');
      p.className = 'warn ended';
      p.setAttribute('role', 'alert');
      p.textContent = text;
      s.replaceChildren(p);
      s.removeAttribute('data-fragment');
    }
    document.getElementById('exercises')?.removeAttribute('data-fragment');
  }

  const KINDS = ['created', 'ready', 'error', 'expiring', 'expired', 'deleted', 'deleting',
    'adopted', 'forgotten', 'repairing', 'extended', 'class-created', 'class-deleted',
    'class-expired', 'exercise-passed', 'exercise-failing', 'controller-started', 'token-rotated'];

  function live() {
    const el = document.querySelector('.live[data-events]');
    if (!el || !('EventSource' in window)) return;
    const scope = el.dataset.scope;
    let last = Number(document.getElementById('events')?.dataset.last || 0);
    const ours = (e) => {
      if (scope === 'all') return true;
      if (scope === 'lab') return e.lab === el.dataset.lab;
      if (e.class && e.class === el.dataset.class) return true;
      return !!e.lab && !!document.querySelector(`tr[data-lab="${CSS.escape(e.lab)}"]`);
    };
    const onEvent = (m) => {
      let e;
      try { e = JSON.parse(m.data); } catch { return; }
      if (typeof e.id === 'number') {
        if (e.id <= last) return;
        last = e.id;
      }
      if (!ours(e)) return;
      addEvent(e);
      if (e.kind === 'exercise-passed' || e.kind === 'expiring') announce(e.message);
      if (scope === 'lab') {
        if (['deleting', 'deleted', 'expired', 'forgotten'].includes(e.kind)) {
          labEnded('Your lab has ended. Thank you for taking part!');
          return;
        }
        if (e.kind === 'ready' && el.dataset.state !== 'ready') { location.reload(); return; }
      }
      schedule();
    };
    const src = new EventSource(el.dataset.events);
    for (const k of KINDS) src.addEventListener(k, onEvent);
    src.onmessage = onEvent;
    src.onopen = () => document.body.classList.remove('offline');
    src.onerror = () => document.body.classList.add('offline');
  }

  localTimes(document);
  tick();
  setInterval(tick, 1000);
  live();
  window.v6lab = { refresh, toast, announce };
})();
