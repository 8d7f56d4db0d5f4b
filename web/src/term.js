// Terminals on a student's page: xterm.js over a WebSocket to a shell in a node. Binary frames
// carry the terminal's bytes both ways; text frames carry control messages (resize, end).
import { Terminal } from '/static/xterm.mjs';
import { FitAddon } from '/static/addon-fit.mjs';

const tabs = document.getElementById('term-tabs');
const panels = document.getElementById('term-panels');
const open = new Map();
const enc = new TextEncoder();

const theme = {
  background: '#0d1117', foreground: '#e6edf3', cursor: '#f0f6fc', selectionBackground: '#3b5070',
  black: '#484f58', red: '#ff7b72', green: '#3fb950', yellow: '#d29922', blue: '#58a6ff',
  magenta: '#bc8cff', cyan: '#39c5cf', white: '#b1bac4', brightBlack: '#6e7681',
  brightRed: '#ffa198', brightGreen: '#56d364', brightYellow: '#e3b341', brightBlue: '#79c0ff',
  brightMagenta: '#d2a8ff', brightCyan: '#56d4dd', brightWhite: '#ffffff',
};

async function copy(text, back) {
  if (!text) return;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Not a secure context (plain http on a classroom network): the old way.
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.className = 'offscreen';
    document.body.append(ta);
    ta.select();
    try { document.execCommand('copy'); } finally { ta.remove(); }
  }
  window.v6lab?.toast('Copied.');
  back?.focus();
}

function activate(node) {
  for (const [n, t] of open) {
    const on = n === node;
    t.tab.setAttribute('aria-selected', String(on));
    t.tab.tabIndex = on ? 0 : -1;
    t.panel.hidden = !on;
    if (on) {
      requestAnimationFrame(() => {
        t.fit.fit();
        t.panel.scrollIntoView({ block: 'nearest' });
        t.term.focus();
      });
    }
  }
}

function end(t, text) {
  if (!t.alive) return;
  t.alive = false;
  t.status.textContent = text;
  t.panel.classList.add('ended');
  t.tab.classList.add('ended');
  t.term.write(`\r\n\x1b[1;33m${text}\x1b[0m\r\n`);
  t.again.hidden = false;
}

function openTerminal(node, url) {
  const old = open.get(node);
  if (old && old.alive) { activate(node); return; }
  if (old) { old.term.dispose(); old.tab.remove(); old.panel.remove(); open.delete(node); }
  document.getElementById('term-empty')?.remove();

  const tab = document.createElement('button');
  tab.type = 'button';
  tab.className = 'tab';
  tab.id = `tab-${node}`;
  tab.setAttribute('role', 'tab');
  tab.setAttribute('aria-controls', `term-${node}`);
  tab.textContent = node;

  const panel = document.createElement('div');
  panel.className = 'term-panel';
  panel.id = `term-${node}`;
  panel.setAttribute('role', 'tabpanel');
  panel.setAttribute('aria-labelledby', tab.id);
  const bar = document.createElement('div');
  bar.className = 'term-bar';
  const status = document.createElement('span');
  status.className = 'term-status';
  status.setAttribute('role', 'status');
  status.textContent = `Connecting to ${node}…`;
  const copyBtn = document.createElement('button');
  copyBtn.type = 'button';
  copyBtn.className = 'secondary small';
  copyBtn.textContent = 'Copy selection';
  const again = document.createElement('button');
  again.type = 'button';
  again.className = 'small';
  again.textContent = 'Reconnect';
  again.hidden = true;
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'secondary small';
  close.textContent = 'Close';
  close.setAttribute('aria-label', `Close the terminal on ${node}`);
  bar.append(status, copyBtn, again, close);
  const box = document.createElement('div');
  box.className = 'term-box';
  box.dataset.node = node;
  panel.append(bar, box);
  tabs.append(tab);
  panels.append(panel);

  const term = new Terminal({
    cursorBlink: true,
    fontSize: 16,
    lineHeight: 1.15,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
    scrollback: 5000,
    theme,
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(box);
  fit.fit();

  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}${url}`);
  ws.binaryType = 'arraybuffer';
  const t = { tab, panel, term, ws, fit, status, again, alive: true };
  open.set(node, t);

  const sendSize = () => {
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
    }
  };
  ws.onopen = () => {
    status.textContent = `Connected to ${node}`;
    panel.dataset.connected = 'true';
    sendSize();
    term.focus();
  };
  ws.onmessage = (m) => {
    if (typeof m.data !== 'string') { term.write(new Uint8Array(m.data)); return; }
    let c = {};
    try { c = JSON.parse(m.data); } catch { /* ignore */ }
    if (c.type === 'exit') end(t, `The shell on ${node} ended (exit code ${c.code}).`);
    else if (c.type === 'closed') end(t, `Terminal closed: ${c.reason}.`);
  };
  ws.onclose = () => end(t, `The connection to ${node} closed.`);
  ws.onerror = () => { status.textContent = `Could not connect to ${node}.`; };

  term.onData((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d)); });
  term.onBinary((d) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const b = new Uint8Array(d.length);
    for (let i = 0; i < d.length; i++) b[i] = d.charCodeAt(i) & 255;
    ws.send(b);
  });
  term.onResize(sendSize);
  term.attachCustomKeyEventHandler((e) => {
    if (e.type !== 'keydown' || !e.ctrlKey || !e.shiftKey) return true;
    const k = e.key.toLowerCase();
    if (k === 'c') { copy(term.getSelection(), term); e.preventDefault(); return false; }
    // The terminal takes Tab (completion): this shortcut leaves it for the page's controls.
    if (k === 'l') { e.preventDefault(); copyBtn.focus(); return false; }
    if (k === 'v') return false; // the browser pastes into the terminal
    return true;
  });

  copyBtn.addEventListener('click', () => copy(term.getSelection(), term));
  again.addEventListener('click', () => { openTerminal(node, url); });
  close.addEventListener('click', () => {
    t.alive = false;
    try { ws.close(); } catch { /* closed */ }
    term.dispose();
    tab.remove();
    panel.remove();
    open.delete(node);
    const next = open.keys().next();
    if (!next.done) activate(next.value);
    else document.querySelector(`.open-term[data-node="${CSS.escape(node)}"]`)?.focus();
  });
  tab.addEventListener('click', () => activate(node));
  tab.addEventListener('keydown', (e) => {
    const all = [...tabs.querySelectorAll('[role=tab]')];
    const i = all.indexOf(tab);
    let j = -1;
    if (e.key === 'ArrowRight') j = (i + 1) % all.length;
    if (e.key === 'ArrowLeft') j = (i - 1 + all.length) % all.length;
    if (j >= 0) { e.preventDefault(); all[j].focus(); all[j].click(); }
  });
  activate(node);
}

document.addEventListener('click', (e) => {
  const b = e.target.closest('.open-term');
  if (b && !b.disabled) openTerminal(b.dataset.node, b.dataset.url);
});

let fitTimer = null;
new ResizeObserver(() => {
  clearTimeout(fitTimer);
  fitTimer = setTimeout(() => {
    for (const t of open.values()) if (!t.panel.hidden) t.fit.fit();
  }, 100);
}).observe(panels);
