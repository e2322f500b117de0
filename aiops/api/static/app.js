/* aiops page: detectors with their series, expected band, anomalies and incidents (shaded
 * spans); a feed of incidents, opened and resolved live.
 *
 * Reads the API of the same origin only: GET /api/detectors, /api/datasources/collectors,
 * /api/detectors/{id}/series, /api/incidents, and the WebSocket /api/events/ws (its default
 * stream speaks incidents; resumed with ?since=<last id> after a drop). With a token configured the page asks for it, keeps it in sessionStorage (or
 * localStorage when "remember" is ticked), sends it as a bearer header, and as ?token= to the
 * WebSocket (browsers cannot set headers there). Text from the API is only ever set as text.
 *
 * One view per incident at #/incidents/<id> (linked from the feed, and from alerts): its
 * series with the expected band and the incident's span, its numbers, and its log triage
 * (GET /api/incidents/{id}, /api/detectors/{id}/series, /api/incidents/{id}/triage; the
 * triage is polled while it is running or not there yet).
 */
(function () {
  "use strict";

  const TOKEN_KEY = "aiops.token";
  const RANGE_KEY = "aiops.range";
  const RANGES = { "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600 };
  const MAX_CHARTS_PER_DETECTOR = 6;
  const MAX_FEED = 200;
  const FEED_PRELOAD = 20; // the newest incidents listed before the live ones arrive
  const MAX_INCIDENTS = 1000; // spans per detector and range
  const REFRESH_MS = 60000;
  const SERIES_CONCURRENCY = 2;

  const $ = (id) => document.getElementById(id);
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY) || "",
    needToken: false,
    range: RANGES[localStorage.getItem(RANGE_KEY)] ? localStorage.getItem(RANGE_KEY) : "1h",
    cards: new Map(), // detector id -> {el, charts: Map(series key -> {plot, markers}), data}
    cursor: null, // the last event id the feed has seen (WebSocket resume point)
    seen: new Set(),
    preloaded: false,
    ws: null,
    wsAttempt: 0,
    wsTimer: null,
    loading: null,
    again: false,
  };

  class AuthError extends Error {}

  // ------------------------------------------------------------------ API

  async function api(path) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    const response = await fetch(path, { headers, cache: "no-store" });
    if (response.status === 401) {
      askForToken(state.token ? "That token was refused." : "");
      throw new AuthError("token required");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      throw new Error(`${response.status} ${response.statusText}`);
    }
    if (!response.ok) throw new Error((body && body.error) || `HTTP ${response.status}`);
    return body;
  }

  // ------------------------------------------------------------------ token

  function askForToken(message) {
    state.needToken = true;
    closeSocket();
    $("login").hidden = false;
    $("main").hidden = true;
    $("token-error").textContent = message || "";
    $("token").focus();
  }

  function useToken(token, remember) {
    state.token = token;
    sessionStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(TOKEN_KEY);
    (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
    state.needToken = false;
    $("login").hidden = true;
    $("main").hidden = false;
    $("forget-token").hidden = false;
  }

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    useToken(token, $("remember").checked);
    $("token").value = "";
    start();
  });

  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(TOKEN_KEY);
    state.token = "";
    askForToken("");
  });

  // ------------------------------------------------------------------ formatting

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  function labelText(labels) {
    const parts = Object.keys(labels || {})
      .sort()
      .map((k) => `${k}="${labels[k]}"`);
    return parts.length ? `{${parts.join(", ")}}` : "{}";
  }

  function timeText(date) {
    const today = new Date().toDateString() === date.toDateString();
    const t = date.toLocaleTimeString([], { hour12: false });
    return today ? t : `${date.toLocaleDateString()} ${t}`;
  }

  function ago(iso) {
    if (!iso) return "never";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 90) return `${Math.round(s)}s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 129600) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  const pad = (n) => String(n).padStart(2, "0");

  function axisTimes(u, splits) {
    // 24-hour clock; the date under the first tick and under midnight
    return splits.map((ts, i) => {
      const d = new Date(ts * 1000);
      const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
      const midnight = d.getHours() === 0 && d.getMinutes() === 0;
      return i === 0 || midnight ? `${hm}\n${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` : hm;
    });
  }

  function legendTime(u, ts) {
    if (ts === null || ts === undefined) return "–";
    const d = new Date(ts * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // ------------------------------------------------------------------ detectors

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function card(detector) {
    let entry = state.cards.get(detector.id);
    if (!entry) {
      const node = $("detector-template").content.firstElementChild.cloneNode(true);
      node.dataset.detector = detector.id;
      entry = { el: node, charts: new Map(), data: null };
      state.cards.set(detector.id, entry);
    }
    const node = entry.el;
    node.querySelector(".name").textContent = detector.name;
    node.querySelector(".name").title = detector.id;
    const badge = node.querySelector(".status");
    badge.textContent = detector.status;
    badge.dataset.status = detector.status;
    const params = Object.entries(detector.params || {})
      .map(([k, v]) => `${k}=${v}`)
      .join(", ");
    node.querySelector(".kind").textContent =
      `${detector.kind}${params ? ` (${params})` : ""}` +
      (detector.threshold !== 1 ? ` · threshold ${fmt(detector.threshold)}` : "");
    const ds = (detector.datasources || [])[0];
    node.querySelector(".query code").textContent = ds
      ? `${ds.name}: ${ds.query}  [step ${ds.step_seconds}s]`
      : "no datasource";
    const t = detector.triage;
    node.querySelector(".triage-link").textContent = t
      ? `log triage: ${t.selector ? `${t.datasource}: ${t.selector}` : t.job ? `log job ${t.job}` : `file ${t.path}`}` +
        ` (lead ${t.lead_seconds}s, baselines ${(t.baselines || []).join(", ")})`
      : "";
    return entry;
  }

  function showCollector(entry, status) {
    const span = entry.el.querySelector(".collector");
    if (!status) {
      span.textContent = "";
      return;
    }
    span.dataset.state = status.state;
    if (status.state === "failed") {
      span.textContent = `collector failed ${ago(status.last_error_at)}: ${status.last_error || ""}`;
    } else if (status.state === "never_run") {
      span.textContent = "not collected yet";
    } else if (status.state === "skipped") {
      span.textContent = `skipped: ${status.skip_reason || ""}`;
    } else {
      span.textContent = `collected ${ago(status.last_success_at)} · ${status.series} series`;
    }
  }

  function message(entry, text, kind) {
    const p = entry.el.querySelector(".message");
    p.textContent = text || "";
    p.dataset.kind = kind || "info";
  }

  async function loadDetectors() {
    const [list, collectors] = await Promise.all([
      api("/api/detectors"),
      api("/api/datasources/collectors").catch((e) => {
        if (e instanceof AuthError) throw e;
        return { collectors: [] };
      }),
    ]);
    const byId = new Map(collectors.collectors.map((c) => [c.detector_id, c]));
    const container = $("detectors");
    const ids = new Set();
    for (const detector of list.detectors) {
      ids.add(detector.id);
      const entry = card(detector);
      entry.detector = detector;
      showCollector(entry, byId.get(detector.id));
      container.appendChild(entry.el); // (re)appended in list order
    }
    for (const [id, entry] of state.cards) {
      if (!ids.has(id)) {
        destroyCharts(entry);
        entry.el.remove();
        state.cards.delete(id);
      }
    }
    $("notice").textContent = list.detectors.length
      ? ""
      : "No detectors yet. Create one with POST /api/detectors or a detectors file (AIOPS_DETECTORS_FILE).";
    return list.detectors;
  }

  async function loadSeries(detectors) {
    const queue = detectors.slice();
    const seconds = RANGES[state.range];
    async function worker() {
      while (queue.length) {
        const detector = queue.shift();
        const entry = state.cards.get(detector.id);
        if (!entry) continue;
        if (!(detector.datasources || []).length) {
          destroyCharts(entry);
          message(entry, "No datasource attached: nothing to chart.");
          continue;
        }
        try {
          const end = Math.floor(Date.now() / 1000);
          const id = encodeURIComponent(detector.id);
          const [data, incidents] = await Promise.all([
            api(`/api/detectors/${id}/series?start=${end - seconds}&end=${end}`),
            api(`/api/incidents?detector=${id}&since=${end - seconds}&until=${end + 1}&limit=${MAX_INCIDENTS}`)
              .then((page) => page.items)
              .catch((e) => {
                if (e instanceof AuthError) throw e;
                return [];
              }),
          ]);
          drawDetector(entry, data, incidents);
        } catch (e) {
          if (e instanceof AuthError) throw e;
          destroyCharts(entry);
          message(entry, `Cannot chart this detector: ${e.message}`, "error");
        }
      }
    }
    const workers = [];
    for (let i = 0; i < SERIES_CONCURRENCY; i++) workers.push(worker());
    await Promise.all(workers);
  }

  // ------------------------------------------------------------------ charts

  function destroyCharts(entry) {
    for (const chart of entry.charts.values()) chart.plot.destroy();
    entry.charts.clear();
    entry.el.querySelector(".charts").replaceChildren();
    entry.el.querySelector(".more").textContent = "";
  }

  // A series with its band (low..high, filled), its expected value dashed, incident spans and
  // anomaly markers: the options both charts (detector and incident view) draw with.
  function bandChartOptions(chart, data, width, height) {
    const accent = cssVar("--accent"), band = cssVar("--band"), muted = cssVar("--muted");
    const line = cssVar("--line"), expected = cssVar("--expected");
    const axis = { stroke: muted, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
    const hidden = { stroke: "transparent", width: 0, points: { show: false }, value: (u, v) => fmt(v) };
    return {
      width,
      height,
      scales: { x: { time: true, min: data.start, max: data.end } },
      series: [
        { value: legendTime },
        { label: "value", stroke: accent, width: 1.5, value: (u, v) => fmt(v) },
        Object.assign({ label: "low" }, hidden),
        Object.assign({ label: "high" }, hidden),
        { label: "expected", stroke: expected, width: 1, dash: [4, 4], points: { show: false }, value: (u, v) => fmt(v) },
      ],
      bands: [{ series: [3, 2], fill: band }],
      axes: [Object.assign({ values: axisTimes }, axis), Object.assign({ size: 56, values: (u, splits) => splits.map(fmt) }, axis)],
      plugins: [spanPlugin(chart), markerPlugin(chart)],
    };
  }

  function columns(series, step) {
    // uPlot columns; a null row where samples are missing, so gaps show as gaps
    const xs = [], v = [], lo = [], hi = [], ex = [];
    const t = series.timestamps;
    for (let i = 0; i < t.length; i++) {
      if (i > 0 && t[i] - t[i - 1] > 2 * step) {
        xs.push(t[i - 1] + step); v.push(null); lo.push(null); hi.push(null); ex.push(null);
      }
      xs.push(t[i]);
      v.push(series.values[i]);
      lo.push(series.lower[i]);
      hi.push(series.upper[i]);
      ex.push(series.expected[i]);
    }
    return [xs, v, lo, hi, ex];
  }

  function markerPlugin(chart) {
    return {
      hooks: {
        draw: [
          (u) => {
            const ctx = u.ctx;
            const r = 4.5 * devicePixelRatio;
            ctx.save();
            ctx.lineWidth = 1.5 * devicePixelRatio;
            ctx.strokeStyle = cssVar("--panel") || "#fff";
            for (const m of chart.markers) {
              if (m.value === null || m.ts < u.scales.x.min || m.ts > u.scales.x.max) continue;
              const x = u.valToPos(m.ts, "x", true);
              const y = u.valToPos(m.value, "y", true);
              ctx.beginPath();
              ctx.arc(x, y, r, 0, 2 * Math.PI);
              ctx.fillStyle = m.severity === "critical" ? cssVar("--bad") : cssVar("--warn");
              ctx.fill();
              ctx.stroke();
            }
            ctx.restore();
          },
        ],
      },
    };
  }

  function spanOf(incident) {
    return {
      id: incident.id,
      start: Date.parse(incident.opened_at) / 1000,
      end: incident.resolved_at ? Date.parse(incident.resolved_at) / 1000 : null, // null: still open
      severity: incident.severity,
    };
  }

  function spanPlugin(chart) {
    // incidents as shaded spans behind the lines, from opening to resolution (or now, if open)
    return {
      hooks: {
        drawClear: [
          (u) => {
            const ctx = u.ctx;
            const { left, top, width, height } = u.bbox;
            ctx.save();
            ctx.beginPath();
            ctx.rect(left, top, width, height);
            ctx.clip();
            for (const s of chart.spans) {
              const end = s.end === null ? u.scales.x.max : s.end;
              if (end < u.scales.x.min || s.start > u.scales.x.max) continue;
              const x0 = u.valToPos(Math.max(s.start, u.scales.x.min), "x", true);
              const x1 = u.valToPos(Math.min(end, u.scales.x.max), "x", true);
              ctx.fillStyle = s.severity === "critical" ? cssVar("--incident-bad") : cssVar("--incident");
              ctx.fillRect(x0, top, Math.max(x1 - x0, 2 * devicePixelRatio), height);
            }
            ctx.restore();
          },
        ],
      },
    };
  }

  function chartWidth(entry) {
    return Math.max(280, entry.el.querySelector(".charts").clientWidth || 600);
  }

  function drawDetector(entry, data, incidents) {
    destroyCharts(entry);
    entry.data = data;
    const box = entry.el.querySelector(".charts");
    const byKey = new Map();
    for (const m of data.anomalies) {
      if (!byKey.has(m.series_key)) byKey.set(m.series_key, []);
      byKey.get(m.series_key).push(m);
    }
    const spans = new Map();
    for (const incident of incidents || []) {
      if (!spans.has(incident.series_key)) spans.set(incident.series_key, []);
      spans.get(incident.series_key).push(spanOf(incident));
    }
    const shown = data.series.slice(0, MAX_CHARTS_PER_DETECTOR);
    if (!data.series.length) {
      message(entry, "The query returned no samples in this range.");
    } else {
      const flagged = data.anomalies.length;
      const count = (incidents || []).length;
      const open = (incidents || []).filter((i) => !i.resolved_at).length;
      message(
        entry,
        count || flagged
          ? `${count} incident${count === 1 ? "" : "s"}${open ? ` (${open} open)` : ""} in this range · ` +
            `${flagged} anomalous point${flagged === 1 ? "" : "s"}${data.anomalies_truncated ? " (newest shown)" : ""}.`
          : ""
      );
    }
    for (const series of shown) {
      const wrap = el("div", "chart");
      wrap.dataset.series = series.key;
      wrap.appendChild(el("p", "labels", labelText(series.labels)));
      box.appendChild(wrap);
      const chart = { markers: byKey.get(series.key) || [], spans: spans.get(series.key) || [], plot: null, wrap };
      wrap.dataset.incidents = String(chart.spans.length);
      const opts = bandChartOptions(chart, data, chartWidth(entry), 170);
      opts.cursor = { drag: { x: true, y: false } };
      chart.plot = new uPlot(opts, columns(series, data.step), wrap);
      entry.charts.set(series.key, chart);
    }
    const hidden = data.series_total - shown.length;
    entry.el.querySelector(".more").textContent = hidden > 0
      ? `${hidden} more series not charted (${data.series_total} in all).`
      : "";
  }

  function resizeCharts() {
    for (const entry of state.cards.values()) {
      const width = chartWidth(entry);
      for (const chart of entry.charts.values()) {
        if (chart.plot.width !== width) chart.plot.setSize({ width, height: 170 });
      }
    }
  }

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(resizeCharts, 150);
  });

  // ------------------------------------------------------------------ the live feed

  function setWsState(s) {
    const node = $("ws-state");
    node.dataset.state = s;
    node.textContent = s;
  }

  function closeSocket() {
    clearTimeout(state.wsTimer);
    state.wsTimer = null;
    if (state.ws) {
      const ws = state.ws;
      state.ws = null;
      ws.onclose = null;
      ws.close(1000);
    }
  }

  function connect() {
    closeSocket();
    if (state.needToken) return;
    const params = new URLSearchParams();
    if (state.cursor !== null) params.set("since", String(state.cursor));
    if (state.token) params.set("token", state.token);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const qs = params.toString();
    const ws = new WebSocket(`${proto}//${location.host}/api/events/ws${qs ? "?" + qs : ""}`);
    state.ws = ws;
    setWsState(state.wsAttempt ? "reconnecting" : "connecting");
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (msg.op === "event") {
        advance(msg.id);
        addEvent(msg);
      } else if (msg.op === "live") {
        advance(msg.last_id);
        state.wsAttempt = 0;
        setWsState("live");
      } else if (msg.op === "heartbeat") {
        advance(msg.last_id);
      }
    };
    ws.onclose = () => {
      if (state.ws !== ws) return;
      state.ws = null;
      state.wsAttempt += 1;
      setWsState(state.wsAttempt > 3 ? "offline" : "reconnecting");
      const delay = Math.min(10000, 500 * 2 ** Math.min(state.wsAttempt - 1, 5));
      state.wsTimer = setTimeout(reconnect, delay);
    };
  }

  async function reconnect() {
    state.wsTimer = null;
    // a refused handshake looks like any drop: check the token with a cheap request first
    try {
      await api("/api/detectors?status=paused");
    } catch (e) {
      if (e instanceof AuthError) return;
    }
    connect();
  }

  function advance(id) {
    if (typeof id === "number" && (state.cursor === null || id > state.cursor)) state.cursor = id;
  }

  function addEvent(msg) {
    if (state.seen.has(msg.id)) return;
    state.seen.add(msg.id);
    const e = msg.event || {};
    if (e.type === "incident.opened" || e.type === "incident.resolved") {
      const p = e.payload || {};
      showIncident(
        {
          id: p.incident_id, detector_id: e.detector_id, series_key: e.series_key, labels: e.labels,
          opened_at: p.opened_at, resolved_at: p.resolved_at, last_anomalous_at: p.last_anomalous_at,
          severity: e.severity, peak_value: e.value, peak_expected: e.expected, peak_score: e.score,
          points: p.points, backfill_id: e.backfill_id,
        },
        msg.id,
        true
      );
      markIncidentOnChart(e);
      return;
    }
    const li = el("li", "new");
    li.dataset.eventId = String(msg.id);
    if (e.detector_id) li.dataset.detector = e.detector_id;
    const row = el("div", "row");
    const sev = el("span", "sev", e.type === "anomaly" ? e.severity : e.type);
    sev.dataset.severity = e.severity || "info";
    row.append(
      sev,
      el("span", "detector-id", e.detector_id || "—"),
      el("span", "time", e.ts ? timeText(new Date(e.ts)) : "")
    );
    li.appendChild(row);
    if (e.labels && Object.keys(e.labels).length) li.appendChild(el("div", "labels", labelText(e.labels)));
    prependFeed(li);
  }

  function prependFeed(li) {
    const feed = $("feed");
    feed.prepend(li);
    while (feed.children.length > MAX_FEED) feed.lastElementChild.remove();
    $("feed-empty").hidden = true;
  }

  function showIncident(inc, eventId, live) {
    // one feed item per incident: opened adds it on top, resolved updates it in place
    if (inc.id === undefined || inc.id === null) return;
    let li = $("feed").querySelector(`li[data-incident-id="${Number(inc.id)}"]`);
    const fresh = !li;
    if (fresh) {
      li = el("li", live ? "incident new" : "incident");
      li.dataset.incidentId = String(inc.id);
    }
    if (eventId !== null) li.dataset.eventId = String(eventId);
    if (inc.detector_id) li.dataset.detector = inc.detector_id;
    const open = !inc.resolved_at;
    li.dataset.state = open ? "open" : "resolved";
    const row = el("div", "row");
    const sev = el("span", "sev", inc.severity || "info");
    sev.dataset.severity = inc.severity || "info";
    const st = el("span", "state", open ? "open" : "resolved");
    st.dataset.state = open ? "open" : "resolved";
    const link = el("a", "detector-id", inc.detector_id || "—");
    link.href = `#/incidents/${Number(inc.id)}`;
    link.title = "open the incident view";
    row.append(
      sev,
      st,
      link,
      el("span", "time", inc.opened_at ? timeText(new Date(inc.opened_at)) : "")
    );
    const parts = [row];
    if (inc.labels && Object.keys(inc.labels).length) parts.push(el("div", "labels", labelText(inc.labels)));
    let text = `peak ${fmt(inc.peak_value)}`;
    if (inc.peak_expected !== null && inc.peak_expected !== undefined) text += ` · expected ${fmt(inc.peak_expected)}`;
    if (inc.peak_score !== null && inc.peak_score !== undefined) text += ` · score ${fmt(inc.peak_score)}`;
    if (inc.points) text += ` · ${inc.points} point${inc.points === 1 ? "" : "s"}`;
    if (!open) text += ` · resolved ${timeText(new Date(inc.resolved_at))}`;
    if (inc.backfill_id) text += " · backfill";
    parts.push(el("div", "numbers", text));
    li.replaceChildren(...parts);
    if (fresh) {
      if (live) prependFeed(li);
      else {
        $("feed").appendChild(li);
        $("feed-empty").hidden = true;
      }
    }
  }

  async function preloadFeed() {
    // the newest live incidents, so the feed is not empty before the next one opens
    if (state.preloaded) return;
    state.preloaded = true;
    try {
      const page = await api(`/api/incidents?source=live&order=desc&limit=${FEED_PRELOAD}`);
      for (const inc of page.items) showIncident(inc, null, false);
    } catch (e) {
      state.preloaded = false;
      if (e instanceof AuthError) throw e;
    }
  }

  function markIncidentOnChart(e) {
    const entry = state.cards.get(e.detector_id);
    if (!entry) return;
    if (e.type === "incident.opened") {
      entry.el.classList.remove("flash");
      void entry.el.offsetWidth; // restart the animation
      entry.el.classList.add("flash");
    }
    const chart = entry.charts.get(e.series_key);
    const p = e.payload || {};
    if (!chart || !p.opened_at) return;
    const span = spanOf({ id: p.incident_id, opened_at: p.opened_at, resolved_at: p.resolved_at, severity: e.severity });
    const known = chart.spans.find((x) => x.id === span.id);
    if (known) Object.assign(known, span);
    else chart.spans.push(span);
    chart.wrap.dataset.incidents = String(chart.spans.length);
    chart.plot.redraw(false);
  }


  // ------------------------------------------------------------------ incident view

  const TRIAGE_POLL_MS = 3000;
  const TRIAGE_POLLS = 60; // about three minutes, then the view stops asking
  const KINDS = {
    new_error_type: "new error type", new_template: "new template", rate_jump: "rate jump",
    slower: "slower operation", vanished: "vanished template",
  };
  const view = { id: null, plot: null, timer: null, polls: 0 };

  function routedIncident() {
    const m = /^#\/incidents\/(\d{1,18})$/.exec(location.hash);
    return m ? Number(m[1]) : null;
  }

  function closeView() {
    clearTimeout(view.timer);
    view.timer = null;
    if (view.plot) view.plot.destroy();
    view.plot = null;
    view.id = null;
    view.polls = 0;
  }

  async function showRoute() {
    const id = routedIncident();
    if (id !== null && id === view.id) return;
    closeView();
    $("incident-view").hidden = id === null;
    $("detectors-section").hidden = id !== null;
    if (id === null) {
      resizeCharts();
      return;
    }
    view.id = id;
    $("iv-title").textContent = `Incident ${id}`;
    for (const part of ["iv-sev", "iv-state", "iv-labels", "iv-numbers"]) $(part).textContent = "";
    $("iv-chart").replaceChildren(el("p", "notice", "Loading…"));
    $("iv-triage").replaceChildren();
    try {
      await loadIncidentView(id);
    } catch (e) {
      if (e instanceof AuthError) throw e;
      if (view.id === id) $("iv-chart").replaceChildren(el("p", "error", `Cannot show incident ${id}: ${e.message}`));
    }
  }

  async function loadIncidentView(id) {
    const detail = await api(`/api/incidents/${id}?points_limit=1000`);
    if (view.id !== id) return;
    const inc = detail.incident;
    const open = !inc.resolved_at;
    $("iv-title").textContent = `Incident ${inc.id} · ${inc.detector_id}`;
    $("iv-sev").textContent = inc.severity;
    $("iv-sev").dataset.severity = inc.severity;
    $("iv-state").textContent = open ? "open" : "resolved";
    $("iv-state").dataset.state = open ? "open" : "resolved";
    $("incident-view").dataset.incident = String(inc.id);
    $("iv-labels").textContent = labelText(inc.labels);
    let text = `opened ${timeText(new Date(inc.opened_at))}`;
    text += open ? " · still open" : ` · resolved ${timeText(new Date(inc.resolved_at))}`;
    text += ` · peak ${fmt(inc.peak_value)} (expected ${fmt(inc.peak_expected)}, score ${fmt(inc.peak_score)})`;
    text += ` · ${inc.points} anomalous point${inc.points === 1 ? "" : "s"}`;
    if (inc.backfill_id) text += ` · backfill ${inc.backfill_id}`;
    $("iv-numbers").textContent = text;
    loadTriage(id).catch((e) => {
      if (!(e instanceof AuthError)) throw e;
    });
    await drawIncidentSeries(inc, detail.points);
  }

  async function drawIncidentSeries(inc, points) {
    const opened = Date.parse(inc.opened_at) / 1000;
    const now = Date.now() / 1000;
    const last = inc.resolved_at ? Date.parse(inc.resolved_at) / 1000 : now;
    const margin = Math.max(1800, last - opened); // as much before the onset as the incident lasted, 30 min at least
    const start = Math.floor(opened - margin);
    const end = Math.ceil(Math.min(now, last + margin / 2));
    const box = $("iv-chart");
    let data;
    try {
      data = await api(`/api/detectors/${encodeURIComponent(inc.detector_id)}/series?start=${start}&end=${Math.max(end, start + 60)}`);
    } catch (e) {
      if (e instanceof AuthError) throw e;
      box.replaceChildren(el("p", "error", `Cannot chart the series: ${e.message}`));
      return;
    }
    if (view.id !== inc.id) return;
    const series = data.series.find((x) => x.key === inc.series_key);
    if (!series) {
      box.replaceChildren(el("p", "notice", "The series has no samples in this range any more."));
      return;
    }
    box.replaceChildren();
    const chart = {
      markers: (points || []).map((p) => ({ ts: Date.parse(p.ts) / 1000, value: p.value, severity: p.severity })),
      spans: [spanOf(inc)],
      plot: null,
    };
    const opts = bandChartOptions(chart, data, Math.max(280, box.clientWidth || 600), 240);
    view.plot = new uPlot(opts, columns(series, data.step), box);
    box.dataset.spans = "1";
  }

  async function loadTriage(id) {
    let triage = null, missing = "";
    try {
      triage = await api(`/api/incidents/${id}/triage`);
    } catch (e) {
      if (e instanceof AuthError) throw e;
      missing = e.message;
    }
    if (view.id !== id) return;
    renderTriage(triage, missing);
    if ((!triage || triage.status === "running") && view.polls < TRIAGE_POLLS) {
      view.polls += 1;
      view.timer = setTimeout(() => loadTriage(id).catch(() => {}), TRIAGE_POLL_MS);
    }
  }

  function renderTriage(t, missing) {
    const box = $("iv-triage");
    box.dataset.status = t ? t.status : "none";
    const parts = [el("h3", "", "Log triage")];
    if (!t) {
      parts.push(el("p", "notice", `No triage yet (${missing}). A detector that names a log source ` +
        "(its `triage`) gets one when the incident opens."));
    } else if (t.status === "running") {
      parts.push(el("p", "notice", `Reading ${t.source}…`));
    } else if (t.status === "failed") {
      parts.push(el("p", "error", `Triage of ${t.source} failed: ${t.error}`));
    } else {
      const r = t.report || {};
      parts.push(el("p", "summary", t.summary || r.summary || ""));
      const w = r.window || {};
      const windows = el("ul", "windows");
      windows.append(el("li", "", `incident window ${timeText(new Date(w.start))} – ${timeText(new Date(w.end))}: ` +
        `${(r.lines || {}).incident} lines, ${(r.errors || {}).incident} errors`));
      for (const b of r.baselines || []) {
        windows.append(el("li", b.used ? "" : "unused", `baseline ${b.name}: ${b.lines} lines${b.used ? "" : " (none: not used)"}`));
      }
      parts.push(el("p", "source", `source ${t.source}`), windows);
      const list = el("ol", "findings");
      for (const f of r.findings || []) list.append(finding(f));
      if (!(r.findings || []).length) list.append(el("li", "notice", "Nothing changed between the baseline and the incident window."));
      parts.push(list);
      if ((r.top_templates || []).length) {
        parts.push(el("h4", "", "Top templates in the incident window"));
        const top = el("ol", "top-templates");
        for (const tpl of r.top_templates) top.append(el("li", "", `${tpl.count} × ${tpl.template}`));
        parts.push(top);
      }
    }
    box.replaceChildren(...parts);
  }

  function finding(f) {
    const li = el("li", "finding");
    li.dataset.kind = f.kind;
    const head = el("div", "row");
    const sev = el("span", "sev", f.severity || "info");
    sev.dataset.severity = f.severity || "info";
    head.append(sev, el("strong", "", KINDS[f.kind] || f.kind));
    let numbers = `${f.count} (baseline ${f.previous_count})`;
    if (f.kind === "rate_jump") numbers += ` · ×${fmt(f.ratio)}`;
    if (f.kind === "slower") numbers = `p50 ${fmt(f.p50_ms.baseline)} ms → ${fmt(f.p50_ms.incident)} ms · p95 ` +
      `${fmt(f.p95_ms.baseline)} → ${fmt(f.p95_ms.incident)} ms`;
    if (f.kind === "vanished") numbers = `0 (expected ${fmt(f.expected_count)})`;
    head.append(el("span", "numbers", numbers));
    li.append(head, el("code", "what", f.template || f.error_type || ""));
    for (const example of f.examples || []) li.append(el("pre", "example", example));
    const q = f.logql ? f.logql.pattern_filter || f.logql.line_filter : null;
    if (q) {
      const logql = el("p", "logql");
      logql.append(el("span", "", "LogQL "), el("code", "", q));
      li.append(logql);
    }
    return li;
  }

  window.addEventListener("hashchange", () => {
    showRoute().catch(() => {});
  });

  // ------------------------------------------------------------------ controls and start

  function pressRange() {
    for (const b of $("range").querySelectorAll("button")) {
      b.setAttribute("aria-pressed", String(b.dataset.range === state.range));
    }
  }

  $("range").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-range]");
    if (!b || b.dataset.range === state.range) return;
    state.range = b.dataset.range;
    localStorage.setItem(RANGE_KEY, state.range);
    pressRange();
    refresh();
  });

  $("refresh").addEventListener("click", () => refresh());

  async function refresh() {
    if (state.needToken) return;
    if (state.loading) {
      state.again = true; // e.g. the range changed while loading: load once more after this
      return state.loading;
    }
    state.loading = (async () => {
      try {
        const detectors = await loadDetectors();
        if (!state.ws && !state.wsTimer) {
          await preloadFeed();
          connect(); // the token works: start the feed
        }
        if (routedIncident() !== view.id) await showRoute();
        await loadSeries(detectors);
        $("updated").textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
      } catch (e) {
        if (!(e instanceof AuthError)) $("notice").textContent = `Cannot load detectors: ${e.message}`;
      } finally {
        state.loading = null;
        if (state.again) {
          state.again = false;
          refresh();
        }
      }
    })();
    return state.loading;
  }

  function start() {
    $("forget-token").hidden = !state.token;
    refresh();
  }

  pressRange();
  setInterval(() => {
    if (!document.hidden) refresh();
  }, REFRESH_MS);
  start();
})();
