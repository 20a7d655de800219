// The live page of `autophase watch --http`: state on load, then the event stream.
// No library, no external request. See autophase/live/page.py for the data it reads.
"use strict";
(function () {
  var HISTORY_ROWS = 500;
  var lastSeq = 0, count = 0, viewName = null, viewSeq = 0;
  var surface = null, yaw = 0.6, pitch = 0.35;

  function $(id) { return document.getElementById(id); }
  function fmt(v, digits) {
    if (v === null || v === undefined || v === "") return "–";
    if (typeof v === "number") return isFinite(v) ? v.toPrecision(digits || 4) : "–";
    return String(v);
  }
  function basename(p) { return p ? String(p).split(/[\\/]/).pop() : ""; }
  // the event's fields, whichever of the service's spellings it uses
  function modelOf(ev) {
    var m = ev.model_version !== undefined ? ev.model_version : ev.model;
    if (m && typeof m === "object") m = m.version;
    return m ? String(m) : "";
  }
  function latencyOf(ev) {
    var v = ev.latency_s !== undefined ? ev.latency_s : ev.latency;
    if (v === undefined && ev.seconds && typeof ev.seconds === "object") v = ev.seconds.total;
    return typeof v === "number" ? v : null;
  }
  function stagesOf(ev) {
    var s = ev.stages || ev.seconds;
    if (!s || typeof s !== "object") return "";
    return Object.keys(s).filter(function (k) { return k !== "total"; }).map(function (k) {
      return k + " " + (typeof s[k] === "number" ? s[k].toFixed(3) : s[k]);
    }).join(", ");
  }
  function isError(ev) { return !!ev.error || ev.event === "error" || ev.status === "error"; }
  function timeOf(ev) {
    var t = ev.time || ev.timestamp || ev.t;
    if (typeof t === "number") t = new Date(t * 1000).toISOString();
    return t ? String(t).replace("T", " ").replace(/\.\d+/, "").replace(/\+00:00|Z$/, "") : "";
  }

  // cyclic colour for a phase in [-π, π): hue around the circle
  function phaseRGB(phi) {
    var h = ((phi + Math.PI) / (2 * Math.PI)) * 6, i = Math.floor(h) % 6, f = h - Math.floor(h);
    var q = 1 - f, rgb = [[1, f, 0], [q, 1, 0], [0, 1, f], [0, q, 1], [f, 0, 1], [1, 0, q]][(i + 6) % 6];
    return [Math.round(40 + 215 * rgb[0]), Math.round(40 + 215 * rgb[1]), Math.round(40 + 215 * rgb[2])];
  }

  // ------------------------------------------------------------------ history
  function addRow(ev, fresh) {
    var tb = $("history").tBodies[0], tr = document.createElement("tr");
    var err = isError(ev);
    tr.className = (err ? "error" : "ok") + (fresh ? " fresh" : "");
    tr.dataset.seq = ev.seq;
    var cells = [ev.seq, timeOf(ev), basename(ev.input || ev.path || ""),
                 err ? "error: " + (ev.error || ev.message || "") : (ev.event || "ok"),
                 fmt(ev.chi2), fmt(ev.llk_free), latencyOf(ev) === null ? "–" : latencyOf(ev).toFixed(3),
                 modelOf(ev) || "–", stagesOf(ev)];
    cells.forEach(function (c, k) {
      var td = document.createElement("td");
      td.textContent = c;
      if (k === 0 || (k >= 4 && k <= 6)) td.className = "num";
      tr.appendChild(td);
    });
    tb.insertBefore(tr, tb.firstChild);
    while (tb.rows.length > HISTORY_ROWS) tb.deleteRow(tb.rows.length - 1);
  }

  function onEvent(ev, fresh, show) {
    if (ev.seq <= lastSeq) return;
    lastSeq = ev.seq;
    count += 1;
    document.body.dataset.events = String(count);
    document.body.dataset.lastSeq = String(lastSeq);
    addRow(ev, fresh);
    if (show && !isError(ev) && ev.output) showLatest(ev);
  }

  // ------------------------------------------------------------------ latest
  function showLatest(ev) {
    $("latest-input").textContent = basename(ev.input) || basename(ev.output);
    $("latest-chi2").textContent = fmt(ev.chi2);
    $("latest-llk").textContent = fmt(ev.llk_free);
    $("latest-latency").textContent = latencyOf(ev) === null ? "–" : latencyOf(ev).toFixed(3) + " s";
    $("latest-model").textContent = modelOf(ev) || "–";
    $("latest-output").textContent = basename(ev.output);
    var name = basename(ev.output), seq = ev.seq;
    viewSeq = seq;
    fetch("/api/view/" + encodeURIComponent(name)).then(function (r) {
      if (!r.ok) throw new Error(name + ": " + r.status);
      return r.json();
    }).then(function (view) {
      if (seq !== viewSeq) return;          // a newer result came meanwhile
      drawSlices(view);
      surface = view.surface;
      $("iso-level").textContent = view.level;
      drawSurface();
      viewName = name;
      document.body.dataset.view = name;
    }).catch(function (e) { document.body.dataset.viewError = String(e); });
  }

  function drawSlices(view) {
    var box = $("slices");
    box.textContent = "";
    ["amplitude", "phase"].forEach(function (kind) {
      view.slices.forEach(function (s) {
        var bytes = atob(s[kind]), c = document.createElement("canvas");
        c.width = s.width; c.height = s.height;
        c.title = kind + ", " + s.axis + " = " + s.index;
        var ctx = c.getContext("2d"), img = ctx.createImageData(s.width, s.height);
        for (var r = 0; r < s.height; r++) {
          for (var col = 0; col < s.width; col++) {
            var v = bytes.charCodeAt(r * s.width + col), o = ((s.height - 1 - r) * s.width + col) * 4, rgb;
            if (kind === "amplitude") rgb = [v, v, v];
            else if (v === 255) rgb = [68, 68, 68];
            else rgb = phaseRGB(v / 255 * 2 * Math.PI - Math.PI);
            img.data[o] = rgb[0]; img.data[o + 1] = rgb[1]; img.data[o + 2] = rgb[2]; img.data[o + 3] = 255;
          }
        }
        ctx.putImageData(img, 0, 0);
        box.appendChild(c);
      });
    });
    view.slices.forEach(function (s) {
      var d = document.createElement("div");
      d.className = "label";
      d.textContent = s.axis + " = " + s.index;
      box.appendChild(d);
    });
  }

  function drawSurface() {
    var c = $("surface"), ctx = c.getContext("2d");
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, c.width, c.height);
    if (!surface) {
      ctx.fillStyle = "#aaa";
      ctx.fillText("no isosurface (scikit-image missing, or an empty object)", 12, 20);
      c.dataset.triangles = "0";
      return;
    }
    var V = surface.vertices, F = surface.faces, P = surface.phase, n = V.length / 3;
    var cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
    var X = new Float32Array(n), Y = new Float32Array(n), Z = new Float32Array(n), ext = 1e-6;
    for (var i = 0; i < n; i++) {     // array (z, y, x) → screen: x right, z up, y into the screen
      var x = V[3 * i + 2], y = V[3 * i + 1], z = V[3 * i];
      var x1 = cy * x - sy * y, y1 = sy * x + cy * y;
      var y2 = cp * y1 - sp * z, z2 = sp * y1 + cp * z;
      X[i] = x1; Y[i] = z2; Z[i] = y2;
      ext = Math.max(ext, Math.abs(x1), Math.abs(z2));
    }
    var scale = 0.45 * Math.min(c.width, c.height) / ext, ox = c.width / 2, oy = c.height / 2;
    var m = F.length / 3, order = new Array(m), depth = new Float32Array(m);
    for (var f = 0; f < m; f++) { order[f] = f; depth[f] = Z[F[3 * f]] + Z[F[3 * f + 1]] + Z[F[3 * f + 2]]; }
    order.sort(function (a, b) { return depth[b] - depth[a]; });   // far first
    for (var k = 0; k < m; k++) {
      var t = order[k], a = F[3 * t], b = F[3 * t + 1], d = F[3 * t + 2];
      var ux = X[b] - X[a], uy = Y[b] - Y[a], uz = Z[b] - Z[a], vx = X[d] - X[a], vy = Y[d] - Y[a], vz = Z[d] - Z[a];
      var nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
      var shade = 0.35 + 0.65 * Math.abs(nz - 0.3 * ny) / (Math.sqrt(nx * nx + ny * ny + nz * nz) * 1.044 + 1e-9);
      var s = Math.sin(P[a]) + Math.sin(P[b]) + Math.sin(P[d]), co = Math.cos(P[a]) + Math.cos(P[b]) + Math.cos(P[d]);
      var rgb = phaseRGB(Math.atan2(s, co));
      ctx.fillStyle = "rgb(" + Math.round(rgb[0] * shade) + "," + Math.round(rgb[1] * shade) + "," +
                      Math.round(rgb[2] * shade) + ")";
      ctx.beginPath();
      ctx.moveTo(ox + scale * X[a], oy - scale * Y[a]);
      ctx.lineTo(ox + scale * X[b], oy - scale * Y[b]);
      ctx.lineTo(ox + scale * X[d], oy - scale * Y[d]);
      ctx.closePath();
      ctx.fill();
      ctx.strokeStyle = ctx.fillStyle;   // hides the seams between triangles
      ctx.stroke();
    }
    c.dataset.triangles = String(m);
  }

  function drawLegend() {
    var c = $("phase-legend"), ctx = c.getContext("2d");
    for (var r = 0; r < c.height; r++) {
      var rgb = phaseRGB(Math.PI - (r / (c.height - 1)) * 2 * Math.PI * 0.9999);
      ctx.fillStyle = "rgb(" + rgb.join(",") + ")";
      ctx.fillRect(0, r, c.width, 1);
    }
  }

  function enableDrag() {
    var c = $("surface"), drag = null;
    c.addEventListener("pointerdown", function (e) { drag = [e.clientX, e.clientY]; c.setPointerCapture(e.pointerId); });
    c.addEventListener("pointerup", function () { drag = null; });
    c.addEventListener("pointermove", function (e) {
      if (!drag) return;
      yaw += (e.clientX - drag[0]) * 0.01;
      pitch = Math.max(-1.5, Math.min(1.5, pitch + (e.clientY - drag[1]) * 0.01));
      drag = [e.clientX, e.clientY];
      drawSurface();
    });
  }

  // ------------------------------------------------------------------ models
  function showModels(m) {
    if (!m) return;
    var cur = m.current;
    $("model-current").textContent = cur && cur.version ? cur.version : "as started (no --learn)";
    $("model-note").textContent = cur && cur.reason ? "(" + cur.reason + ")" : "";
    var tb = $("rounds").tBodies[0];
    tb.textContent = "";
    (m.rounds || []).slice().reverse().forEach(function (r) {
      var cells;
      if (r.event === "round") {
        cells = [timeOf(r), r.candidate, fmt(r.score_current), fmt(r.score_candidate), r.decision];
      } else if (r.event === "rollback") {
        cells = [timeOf(r), r.from + " → " + r.to, "", "", "rollback"];
      } else if (r.event === "start") {
        cells = [timeOf(r), r.version, "", "", "start"];
      } else {
        return;                       // a promotion is the round's own row
      }
      var tr = document.createElement("tr");
      tr.className = "model-" + cells[4];
      cells.forEach(function (c) { var td = document.createElement("td"); td.textContent = c || "–"; tr.appendChild(td); });
      tb.appendChild(tr);
    });
  }

  // ------------------------------------------------------------------ wiring
  function connect() {
    var es = new EventSource("/api/stream?after=" + lastSeq);
    es.addEventListener("open", function () { $("link").textContent = "live"; $("link").className = "badge live"; });
    es.addEventListener("error", function () { $("link").textContent = "reconnecting…"; $("link").className = "badge down"; });
    es.addEventListener("run", function (e) { onEvent(JSON.parse(e.data), true, true); });
    es.addEventListener("models", function (e) { showModels(JSON.parse(e.data)); });
  }

  drawLegend();
  enableDrag();
  fetch("/api/state").then(function (r) { return r.json(); }).then(function (st) {
    $("out").textContent = st.out;
    st.events.forEach(function (ev) { onEvent(ev, false, false); });
    var ok = st.events.filter(function (ev) { return !isError(ev) && ev.output; });
    if (ok.length) showLatest(ok[ok.length - 1]);
    lastSeq = Math.max(lastSeq, st.seq);
    showModels(st.models);
    document.body.dataset.ready = "1";
    connect();
  }).catch(function (e) { $("link").textContent = "no state: " + e; $("link").className = "badge down"; });
})();
