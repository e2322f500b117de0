/* aiops page: detectors with their series, expected band and anomalies; a live event feed.
 *
 * Reads the API of the same origin only: GET /api/detectors, /api/datasources/collectors,
 * /api/detectors/{id}/series, and the WebSocket /api/events/ws (resumed with ?since=<last id>
 * after a drop). With a token configured the page asks for it, keeps it in sessionStorage (or
 * localStorage when "remember" is ticked), sends it as a bearer header, and as ?token= to the
 * WebSocket (browsers cannot set headers there). Text from the API is only ever set as text.
 */
(function () {
  "use strict";

  const TOKEN_KEY = "aiops.token";
  const RANGE_KEY = "aiops.range";
  const RANGES = { "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600 };
  const MAX_CHARTS_PER_DETECTOR = 6;
  const MAX_FEED = 200;
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
          const data = await api(
            `/api/detectors/${encodeURIComponent(detector.id)}/series?start=${end - seconds}&end=${end}`
          );
          drawDetector(entry, data);
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

  function chartWidth(entry) {
    return Math.max(280, entry.el.querySelector(".charts").clientWidth || 600);
  }

  function drawDetector(entry, data) {
    destroyCharts(entry);
    entry.data = data;
    const box = entry.el.querySelector(".charts");
    const byKey = new Map();
    for (const m of data.anomalies) {
      if (!byKey.has(m.series_key)) byKey.set(m.series_key, []);
      byKey.get(m.series_key).push(m);
    }
    const shown = data.series.slice(0, MAX_CHARTS_PER_DETECTOR);
    if (!data.series.length) {
      message(entry, "The query returned no samples in this range.");
    } else {
      const flagged = data.anomalies.length;
      message(
        entry,
        flagged
          ? `${flagged} anomal${flagged === 1 ? "y" : "ies"} in this range${data.anomalies_truncated ? " (newest shown)" : ""}.`
          : ""
      );
    }
    const accent = cssVar("--accent"), band = cssVar("--band"), muted = cssVar("--muted");
    const line = cssVar("--line"), expected = cssVar("--expected");
    for (const series of shown) {
      const wrap = el("div", "chart");
      wrap.dataset.series = series.key;
      wrap.appendChild(el("p", "labels", labelText(series.labels)));
      box.appendChild(wrap);
      const chart = { markers: byKey.get(series.key) || [], plot: null, wrap };
      const axis = { stroke: muted, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
      const opts = {
        width: chartWidth(entry),
        height: 170,
        cursor: { drag: { x: true, y: false } },
        scales: { x: { time: true, min: data.start, max: data.end } },
        series: [
          { value: legendTime },
          { label: "value", stroke: accent, width: 1.5, value: (u, v) => fmt(v) },
          { label: "low", stroke: "transparent", width: 0, points: { show: false }, value: (u, v) => fmt(v) },
          { label: "high", stroke: "transparent", width: 0, points: { show: false }, value: (u, v) => fmt(v) },
          { label: "expected", stroke: expected, width: 1, dash: [4, 4], points: { show: false }, value: (u, v) => fmt(v) },
        ],
        bands: [{ series: [3, 2], fill: band }],
        axes: [Object.assign({ values: axisTimes }, axis), Object.assign({ size: 56, values: (u, splits) => splits.map(fmt) }, axis)],
        plugins: [markerPlugin(chart)],
      };
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
    if (e.value !== null && e.value !== undefined) {
      let text = `value ${fmt(e.value)}`;
      if (e.expected !== null && e.expected !== undefined) text += ` · expected ${fmt(e.expected)}`;
      if (e.lower !== null && e.upper !== null && e.lower !== undefined) text += ` [${fmt(e.lower)}, ${fmt(e.upper)}]`;
      if (e.score !== null && e.score !== undefined) text += ` · score ${fmt(e.score)}`;
      li.appendChild(el("div", "numbers", text));
    }
    const feed = $("feed");
    feed.prepend(li);
    while (feed.children.length > MAX_FEED) feed.lastElementChild.remove();
    $("feed-empty").hidden = true;
    if (e.type === "anomaly") markOnChart(e, msg.id);
  }

  function markOnChart(e, id) {
    const entry = state.cards.get(e.detector_id);
    if (!entry) return;
    entry.el.classList.remove("flash");
    void entry.el.offsetWidth; // restart the animation
    entry.el.classList.add("flash");
    const chart = entry.charts.get(e.series_key);
    if (!chart || !e.ts) return;
    const ts = Date.parse(e.ts) / 1000;
    if (chart.markers.some((m) => m.id === id)) return;
    chart.markers.push({ id, ts, value: e.value, score: e.score, severity: e.severity, series_key: e.series_key });
    chart.plot.redraw(false);
  }

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
        if (!state.ws && !state.wsTimer) connect(); // the token works: start the feed
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
