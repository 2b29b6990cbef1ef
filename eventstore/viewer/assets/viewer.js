// The session viewer's page code. Data is rendered with textContent and setAttribute
// only, never parsed as HTML: every string in the data is stored text (see docs/viewer.md).
"use strict";
(function () {
  const timings = {start: performance.now()};   // ms since navigation; the benchmark reads them
  const DATA = JSON.parse(document.getElementById("viewer-data").textContent);
  timings.parsed = performance.now();
  const SERVE = DATA.mode === "serve";
  const ROW = 20;             // px per row of the tree and the timeline
  const PREVIEW = 2000;       // payload characters shown before "show all"
  const E = {pos: 0, stream: 1, version: 2, type: 3, at: 4, summary: 5, payload: 6, chars: 7, cmd: 8, hash: 9};
  const N = {id: 0, parent: 1, added: 2, tomb: 3, removed: 4, role: 5, text: 6, frame: 7, at: 8};

  let model = null;           // the current session's model
  let stops = [];             // slider stops: the last shown position of each command
  let positions = [];         // the session's event positions, sorted
  let position = 0;           // the slider's position
  let selected = null;        // index of the selected event
  let timelineRows = [];      // flattened: {cmd: i} or {ev: i}
  let rowOfEvent = [];
  let treeRows = [];
  let stateTimer = null;

  // --- small DOM helpers (text only) -------------------------------------------------------
  function h(tag, cls, text) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text !== undefined && text !== null) el.textContent = String(text);
    return el;
  }
  function $(id) { return document.getElementById(id); }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }
  function iso(ms) { return ms === null || ms === undefined ? "-" : new Date(ms).toISOString(); }
  function clock(ms) { return iso(ms).slice(11, 23); }
  function bisectRight(arr, x) {
    let lo = 0, hi = arr.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (arr[mid] <= x) lo = mid + 1; else hi = mid; }
    return lo;
  }

  // --- a list that renders only the rows in view --------------------------------------------
  function VList(el, renderRow) {
    const spacer = h("div", "spacer");
    el.appendChild(spacer);
    const list = {count: 0, refresh: null, reveal: null};
    let shown = new Map();
    function draw() {
      const first = Math.max(0, Math.floor(el.scrollTop / ROW) - 20);
      const last = Math.min(list.count, Math.ceil((el.scrollTop + el.clientHeight) / ROW) + 20);
      const next = new Map();
      for (let i = first; i < last; i++) {
        const row = renderRow(i);
        row.classList.add("vrow");
        row.style.top = (i * ROW) + "px";
        next.set(i, row);
      }
      shown.forEach(function (row) { row.remove(); });
      const frag = document.createDocumentFragment();
      next.forEach(function (row) { frag.appendChild(row); });
      el.appendChild(frag);
      shown = next;
    }
    el.addEventListener("scroll", function () { window.requestAnimationFrame(draw); });
    list.refresh = function (count) {
      if (count !== undefined) { list.count = count; spacer.style.height = (count * ROW) + "px"; }
      draw();
    };
    list.reveal = function (i) {
      const top = i * ROW;
      if (top < el.scrollTop || top + ROW > el.scrollTop + el.clientHeight) {
        el.scrollTop = Math.max(0, top - el.clientHeight / 2);
      }
      draw();
    };
    return list;
  }

  const treeList = VList($("tree"), renderTreeRow);
  const timeline = VList($("timeline"), renderTimelineRow);

  // --- loading -------------------------------------------------------------------------------
  function getJSON(url) {
    return fetch(url, {cache: "no-store"}).then(function (r) {
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return r.json();
    });
  }

  function fillSessions(sessions, current) {
    const sel = $("session-select");
    clear(sel);
    sessions.forEach(function (s) {
      const opt = h("option", null, s.id + (s.name && s.name !== s.id ? " (" + s.name + ")" : "") +
        " · " + s.status + " · " + s.events + " events");
      opt.value = s.id;
      if (s.id === current) opt.selected = true;
      sel.appendChild(opt);
    });
  }

  function loadSession(id, keepLatest) {
    if (!SERVE) { show(DATA.models[id], true); return Promise.resolve(); }
    return getJSON("api/session?id=" + encodeURIComponent(id)).then(function (m) { show(m, keepLatest); });
  }

  function hex(b64) {
    if (!b64) return "-";
    const bin = atob(b64);
    let out = "";
    for (let i = 0; i < bin.length; i++) out += bin.charCodeAt(i).toString(16).padStart(2, "0");
    return out;
  }

  function unpack(m) {
    // Types travel as indexes and lane items as lists (a smaller page); expand them once.
    if (m.unpacked) return;
    m.events.forEach(function (e) { e[E.type] = m.types[e[E.type]]; });
    const F = m.lanes.fields;
    ["lease", "queue", "inputs", "processes"].forEach(function (name) {
      m.lanes[name].items = m.lanes[name].items.map(function (a) {
        const o = {};
        F.forEach(function (f, k) { o[f] = a[k]; });
        return o;
      });
    });
    m.unpacked = true;
  }

  function show(m, latest) {
    const oldPosition = position;
    unpack(m);
    timings.unpacked = performance.now();
    model = m;
    positions = m.events.map(function (e) { return e[E.pos]; });
    const lastOf = {};
    m.events.forEach(function (e) { lastOf[e[E.cmd]] = e[E.pos]; });
    stops = Object.keys(lastOf).map(Number).sort(function (a, b) { return a - b; })
      .map(function (c) { return lastOf[c]; });
    timelineRows = []; rowOfEvent = new Array(m.events.length);
    let cmd = -1;
    m.events.forEach(function (e, i) {
      if (e[E.cmd] !== cmd) { cmd = e[E.cmd]; timelineRows.push({cmd: cmd, first: i}); }
      rowOfEvent[i] = timelineRows.length;
      timelineRows.push({ev: i});
    });
    const s = m.session;
    $("session-info").textContent = (s.name || s.id) + " · " + s.status + " · generation " + s.generation +
      (s.model ? " · " + s.model : "") + " · " + m.events.length + " events in " + m.commands.length + " commands";
    const slider = $("slider");
    slider.max = String(Math.max(0, stops.length - 1));
    timeline.refresh(timelineRows.length);
    timings.timeline = performance.now();
    drawLanes();
    timings.lanes = performance.now();
    let target = stops.length ? stops[stops.length - 1] : 0;
    if (!latest && oldPosition) target = stops[Math.max(0, bisectRight(stops, oldPosition) - 1)] || target;
    setPosition(target);
    if (selected !== null && selected >= m.events.length) selected = null;
    if (m.tree_check && m.tree_check.length) {
      $("tree-summary").appendChild(h("div", "warn", "tree and store.at disagree: " +
        m.tree_check.map(function (p) { return p[0] + ": " + p[1]; }).join("; ")));
    }
  }

  // --- time travel ------------------------------------------------------------------------------
  function setPosition(p) {
    position = p;
    const idx = Math.max(0, bisectRight(stops, p) - 1);
    $("slider").value = String(idx);
    const ev = bisectRight(positions, p) - 1;
    const at = ev >= 0 ? model.events[ev][E.at] : null;
    $("slider-label").textContent = "as of position " + p + " · " + iso(at) + " · command " + (idx + 1) + " of " +
      stops.length;
    document.body.setAttribute("data-position", String(p));
    drawTree();
    timeline.refresh();
    drawCursor();
    drawState();
  }

  $("slider").addEventListener("input", function () { setPosition(stops[Number(this.value)]); });
  $("step-back").addEventListener("click", function () {
    const i = Number($("slider").value); if (i > 0) setPosition(stops[i - 1]);
  });
  $("step-forward").addEventListener("click", function () {
    const i = Number($("slider").value); if (i < stops.length - 1) setPosition(stops[i + 1]);
  });
  $("latest").addEventListener("click", function () { setPosition(stops[stops.length - 1]); });
  $("session-select").addEventListener("change", function () { selected = null; loadSession(this.value, true); });

  // --- the tree ---------------------------------------------------------------------------------
  function drawTree() {
    const P = position, nodes = model.tree.nodes;
    const visible = [], byId = new Map(), children = new Map();
    nodes.forEach(function (n) {
      if (n[N.added] <= P && (n[N.removed] === null || n[N.removed] > P)) { visible.push(n); byId.set(n[N.id], n); }
    });
    let leaf = null;
    model.tree.leaf.forEach(function (l) { if (l[0] <= P) leaf = l[1]; });
    const roots = [];
    visible.forEach(function (n) {
      const parent = n[N.parent];
      if (parent !== null && byId.has(parent)) {
        if (!children.has(parent)) children.set(parent, []);
        children.get(parent).push(n);
      } else roots.push(n);
    });
    const active = new Set();
    for (let id = leaf; id !== null && byId.has(id) && !active.has(id); id = byId.get(id)[N.parent]) active.add(id);
    // Depth-first, first child at its parent's level and each later child one level in:
    // a long conversation stays flat and only branches indent.
    treeRows = [];
    const stack = roots.slice().reverse().map(function (n) { return [n, 0, false]; });
    while (stack.length) {
      const item = stack.pop(), n = item[0], level = item[1];
      const kids = children.get(n[N.id]) || [];
      treeRows.push({n: n, level: level, branch: item[2], tip: kids.length === 0});
      for (let k = kids.length - 1; k >= 0; k--) stack.push([kids[k], k === 0 ? level : level + 1, k > 0]);
    }
    let tombs = 0;
    visible.forEach(function (n) { if (n[N.tomb] !== null && n[N.tomb] <= P) tombs++; });
    const summary = $("tree-summary");
    clear(summary);
    summary.textContent = visible.length + " nodes (" + tombs + " tombstoned) · leaf " + (leaf || "-") +
      " · active path " + active.size + " nodes";
    treeRows.active = active; treeRows.leaf = leaf;
    treeList.refresh(treeRows.length);
  }

  function renderTreeRow(i) {
    const r = treeRows[i], n = r.n, P = position;
    const row = h("div", "node");
    const tomb = n[N.tomb] !== null && n[N.tomb] <= P;
    const isHead = n[N.id] === treeRows.leaf, isActive = treeRows.active.has(n[N.id]);
    if (isActive) row.classList.add("active");
    if (isHead) row.classList.add("head");
    if (r.tip) row.classList.add("tip");
    if (tomb) row.classList.add("tombstoned");
    row.setAttribute("data-node-id", n[N.id]);
    row.style.paddingLeft = (4 + r.level * 16) + "px";
    if (r.branch) row.appendChild(h("span", "branch", "↳ "));
    row.appendChild(h("span", "mark", isHead ? "◆" : (isActive ? "●" : "○")));
    row.appendChild(h("span", "nid", n[N.id]));
    if (isHead) row.appendChild(h("span", "badge head", "HEAD"));
    if (r.tip) row.appendChild(h("span", "badge tip", "leaf"));
    if (tomb) row.appendChild(h("span", "badge tomb", "tombstoned"));
    row.appendChild(h("span", "role", n[N.role]));
    row.appendChild(h("span", "text", n[N.text]));
    row.title = n[N.id] + " · added at position " + n[N.added] + (n[N.at] ? " · " + n[N.at] : "");
    row.addEventListener("click", function () { selectEvent(bisectRight(positions, n[N.added]) - 1); });
    return row;
  }

  // --- the timeline -----------------------------------------------------------------------------
  function streamLabel(i) {
    const s = model.streams[i];
    return s.indexOf("session:") === 0 ? "session" : s;
  }

  function renderTimelineRow(i) {
    const r = timelineRows[i];
    if (r.cmd !== undefined) {
      const c = model.commands[r.cmd], e = model.events[r.first];
      const span = c[0] === c[1] ? "position " + c[0] : "positions " + c[0] + "–" + c[1];
      const others = c[1] - c[0] + 1 - c[2];
      const row = h("div", "command", "command " + (r.cmd + 1) + " · " + span + " · " + clock(e[E.at]) + " UTC · " +
        c[2] + (c[2] === 1 ? " event" : " events") + (others > 0 ? " (+" + others + " in other streams)" : "") +
        (c[3] ? "" : " · no command marks"));
      row.setAttribute("data-command", String(r.cmd));
      if (c[0] > position) row.classList.add("future");
      return row;
    }
    const e = model.events[r.ev];
    const row = h("div", "event");
    row.setAttribute("data-position", String(e[E.pos]));
    row.setAttribute("data-type", e[E.type]);
    if (e[E.pos] > position) row.classList.add("future");
    if (r.ev === selected) row.classList.add("selected");
    row.appendChild(h("span", "pos", e[E.pos]));
    row.appendChild(h("span", "time", clock(e[E.at])));
    if (model.streams.length > 1 && streamLabel(e[E.stream]) !== "session") {
      row.appendChild(h("span", "stream", streamLabel(e[E.stream])));
    }
    row.appendChild(h("span", "etype", e[E.type]));
    row.appendChild(h("span", "summary", e[E.summary]));
    row.title = e[E.summary];
    row.addEventListener("click", function () { selectEvent(r.ev); });
    return row;
  }

  // --- the selected event -------------------------------------------------------------------------
  function selectEvent(i) {
    if (i < 0 || i >= model.events.length) return;
    selected = i;
    const e = model.events[i], c = model.commands[e[E.cmd]];
    $("detail-position").textContent = String(e[E.pos]);
    $("detail-stream").textContent = model.streams[e[E.stream]] + " @ version " + e[E.version];
    $("detail-type").textContent = e[E.type];
    $("detail-time").textContent = iso(e[E.at]);
    $("detail-command").textContent = "command " + (e[E.cmd] + 1) + ": positions " + c[0] + "–" + c[1] +
      (c[3] ? "" : " (row without command marks: shown alone)");
    $("detail-hash").textContent = hex(e[E.hash]);
    showPayload(e, false);
    timeline.reveal(rowOfEvent[i]);
  }

  function showPayload(e, full) {
    const text = e[E.payload], total = e[E.chars], pre = $("payload"), btn = $("expand"), note = $("payload-note");
    note.textContent = "";
    if (text.length === total && total <= 200000) {
      try { pre.textContent = JSON.stringify(JSON.parse(text), null, 1); btn.hidden = true; return; }
      catch (err) { /* not JSON: shown as stored */ }
    }
    if (full || text.length <= PREVIEW) pre.textContent = text;
    else pre.textContent = text.slice(0, PREVIEW) + "\n… (" + (total - PREVIEW) + " more characters)";
    const more = !full && (text.length > PREVIEW || total > text.length);
    btn.hidden = !more;
    btn.textContent = "show all " + total + " characters";
    btn.onclick = function () { expand(e); };
    if (full && total > text.length) {
      note.textContent = "cut in this file at " + text.length + " of " + total + " characters: " +
        "`eventstore serve` or `eventstore log DB --from " + e[E.pos] + " --limit 1 --json` shows it whole";
    }
  }

  function expand(e) {
    if (SERVE && e[E.chars] > e[E.payload].length) {
      getJSON("api/event?position=" + e[E.pos]).then(function (full) {
        const copy = e.slice(); copy[E.payload] = full.payload; copy[E.chars] = full.payload.length;
        showPayload(copy, true);
      });
    } else showPayload(e, true);
  }

  // --- lanes ----------------------------------------------------------------------------------------
  const LANES = [["lease", "lease"], ["queue", "queued work"], ["inputs", "turn inputs"], ["processes", "processes"]];
  let tracks = [];

  function xOf(p, width) {
    const n = Math.max(1, positions.length);
    const i = Math.max(0, bisectRight(positions, p) - 1);
    return (i + 0.5) / n * width;
  }

  const LABEL_MIN = 40;       // px: narrower lane items carry their label in the title only

  function drawLanes() {
    const root = $("lanes");
    clear(root);
    tracks = [];
    const width = Math.max(200, root.clientWidth - 160);
    LANES.forEach(function (pair) {
      const lane = model.lanes[pair[0]];
      const el = h("div", "lane");
      el.setAttribute("data-lane", pair[0]);
      el.appendChild(h("div", "lane-label", pair[1] + " (" + lane.items.length + ")"));
      const track = h("div", "lane-track");
      track.style.height = (lane.rows * 20 + 4) + "px";
      const frag = document.createDocumentFragment();
      const items = [], ticks = [];
      const lastTick = {};   // row -> x of the last tick drawn in it
      lane.items.forEach(function (it) {
        const item = h("div", "item");
        item.setAttribute("data-item-id", it.id);
        item.setAttribute("data-start", String(it.start));
        if (it.end !== null) item.setAttribute("data-end", String(it.end));
        if (it.end_reason) item.setAttribute("data-end-reason", it.end_reason);
        if (it.lapsed !== null) item.classList.add("lapsed");
        item.style.left = xOf(it.start, width) + "px";
        item.style.top = (2 + it.row * 20) + "px";
        item.title = it.label + " · " + it.id + " · " + it.detail +
          (it.end_reason ? " · ended: " + it.end_reason + " at " + it.end : " · open") +
          (it.lapsed !== null ? " · expired before position " + it.lapsed : "");
        item.addEventListener("click", function () { selectEvent(bisectRight(positions, it.start) - 1); });
        frag.appendChild(item);
        items.push({el: item, it: it, key: ""});
        it.marks.forEach(function (m) {
          // Ticks closer than 2 px in one row would draw as one: the first stands for them.
          const x = xOf(m[0], width);
          if (lastTick[it.row] !== undefined && x - lastTick[it.row] < 2) return;
          lastTick[it.row] = x;
          const tick = h("div", "tick");
          tick.style.left = x + "px";
          tick.style.top = (2 + it.row * 20) + "px";
          tick.title = m[1] + " (position " + m[0] + ")";
          tick.setAttribute("data-position", String(m[0]));
          tick.addEventListener("click", function () { selectEvent(bisectRight(positions, m[0]) - 1); });
          frag.appendChild(tick);
          ticks.push({el: tick, at: m[0], hidden: false});
        });
      });
      const cursor = h("div", "cursor");
      frag.appendChild(cursor);
      track.appendChild(frag);
      el.appendChild(track);
      root.appendChild(el);
      tracks.push({cursor: cursor, items: items, ticks: ticks, width: width});
    });
  }

  function drawCursor() {
    const P = position;
    tracks.forEach(function (t) {
      t.cursor.style.left = xOf(P, t.width) + "px";
      t.items.forEach(function (entry) {
        const it = entry.it, el = entry.el;
        const future = it.start > P, open = it.end === null || it.end > P;
        const w = future ? 0 : Math.max(3, xOf(open ? P : it.end, t.width) - xOf(it.start, t.width));
        let label = it.label, exp = null;
        if (it.expiries && !future) {
          // A holding's expiry as of the slider: the latest acquisition or renewal by then.
          it.expiries.forEach(function (x) { if (x[0] <= P) exp = x[1]; });
          label += " · expires " + clock(exp);
        }
        const key = future ? "f" : (open ? "o" : "c") + w + label;
        if (key === entry.key) return;   // unchanged: leave the element alone
        entry.key = key;
        el.hidden = future;
        if (future) return;
        el.classList.toggle("open", open);
        el.style.width = w + "px";
        el.textContent = w >= LABEL_MIN ? label : "";
        el.setAttribute("data-label", label);
        if (exp !== null) el.setAttribute("data-expires", iso(exp));
      });
      t.ticks.forEach(function (tick) {
        const hide = tick.at > P;
        if (hide !== tick.hidden) { tick.hidden = hide; tick.el.hidden = hide; }
      });
    });
  }

  // --- the state panel (store.at) -------------------------------------------------------------------
  function drawState() {
    if (SERVE) {
      clearTimeout(stateTimer);
      const p = position, id = model.session.id;
      stateTimer = setTimeout(function () {
        getJSON("api/state?id=" + encodeURIComponent(id) + "&at=" + p).then(function (snap) {
          if (p === position && model.session.id === id) renderState(snap, true);
        });
      }, 120);
      return;
    }
    let best = null;
    model.snapshots.forEach(function (s) { if (s.position <= position) best = s; });
    renderState(best, best !== null && best.position === position);
  }

  function renderState(snap, exact) {
    const root = $("state");
    clear(root);
    if (snap === null) {
      root.appendChild(h("div", "approx", "no snapshot at or before position " + position +
        " in this file (it holds " + model.snapshots.length + ")"));
      return;
    }
    root.setAttribute("data-snapshot", String(snap.position));
    root.appendChild(h("div", exact ? "exact" : "approx", exact ?
      "store.at(" + snap.position + ")" :
      "store.at(" + snap.position + "): the nearest snapshot at or before position " + position +
      " (this file holds " + model.snapshots.length + " snapshots)"));
    const table = h("table");
    function line(k, v) { const tr = h("tr"); tr.appendChild(h("td", null, k)); tr.appendChild(h("td", null, v)); table.appendChild(tr); }
    function err(v) { return v && v.error !== undefined ? "(" + v.error + ")" : null; }
    const hd = snap.head;
    if (err(hd)) line("head", err(hd));
    else if (hd && hd.revision !== undefined) {
      line("head", "revision " + hd.revision + " · leaf " + (hd.leaf || "-") + " · " + hd.live_nodes + " live nodes" +
        (hd.checkpoint_turn !== null ? " · checkpoint turn " + hd.checkpoint_turn : ""));
    } else line("head", hd ? hd.status + ", no commits" : "-");
    const ls = snap.lease;
    if (err(ls)) line("lease", err(ls));
    else line("lease", ls === null ? "never held" : (ls.holder === null ? "free (fence " + ls.fence + ")" :
      ls.holder + " · fence " + ls.fence + " · expires " + iso(ls.expires_ms) + (ls.live ? " · live" : " · expired")));
    [["queue", "queued work"], ["inputs", "turn inputs"], ["processes", "processes"]].forEach(function (pair) {
      const v = snap[pair[0]];
      if (err(v)) { line(pair[1], err(v)); return; }
      const states = Object.keys(v.counts);
      if (!states.length) { line(pair[1], "none"); return; }
      // Counts per state, then the rows still in play (settled ones are only counted).
      const text = states.map(function (k) { return v.counts[k] + " " + k; }).join(" · ");
      const open = v.open.map(function (r) { return (pair[0] === "processes" ? r[0] : "#" + r[2]) + " " + r[1]; });
      line(pair[1], text + (open.length ? ": " + open.join(", ") : ""));
    });
    root.appendChild(table);
  }

  // --- live updates (serve) -----------------------------------------------------------------------
  let lastSeen = null;
  function poll() {
    getJSON("api/head").then(function (head) {
      $("live").textContent = "live · position " + head.last_position;
      if (lastSeen !== null && head.last_position !== lastSeen) {
        const atLatest = stops.length === 0 || position === stops[stops.length - 1];
        return getJSON("api/sessions").then(function (list) {
          const current = model ? model.session.id : (list[0] && list[0].id);
          fillSessions(list, current);
          lastSeen = head.last_position;
          if (current) return loadSession(current, atLatest);
        });
      }
      lastSeen = head.last_position;
    }).catch(function (e) { $("live").textContent = "disconnected: " + e.message; })
      .then(function () { setTimeout(poll, DATA.poll_ms || 1000); });
  }

  // --- start --------------------------------------------------------------------------------------
  function start() {
    if (!SERVE) {
      fillSessions(DATA.sessions, DATA.initial);
      if (DATA.initial) show(DATA.models[DATA.initial], true);
      else $("session-info").textContent = "this store has no sessions";
      $("live").textContent = "file written at position " + DATA.last_position;
      timings.ready = performance.now();
      document.body.setAttribute("data-ready", "1");
      return;
    }
    getJSON("api/sessions").then(function (list) {
      const initial = DATA.initial || (list[0] && list[0].id);
      fillSessions(list, initial);
      if (!initial) $("session-info").textContent = "no sessions yet: the page follows the log";
      return initial ? loadSession(initial, true) : null;
    }).then(function () { document.body.setAttribute("data-ready", "1"); poll(); });
  }
  window.viewer = {setPosition: setPosition, selectEvent: selectEvent, timings: timings,
                   position: function () { return position; }, stops: function () { return stops.slice(); }};
  start();
})();
