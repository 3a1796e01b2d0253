// leakwatch dashboard: polls the data endpoint for the few series each chart shows and draws
// them on canvas. No third-party code; every request goes to the page's own origin.
(function () {
  'use strict';

  var cfg = JSON.parse(document.getElementById('leakwatch-config').textContent);
  var dataUrl = cfg.data_url || location.pathname.replace(/\/+$/, '') + '/data';
  // Series colours. Red and green are kept for alert markers.
  var PALETTE = ['#1f77b4', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
  var FIRING = '#d62728';
  var RESOLVED = '#2ca02c';
  var MAX_POINTS = 3600; // per series kept in the browser
  var CHOOSER_LIMIT = 200; // names listed by a chart's series chooser
  var CHOSEN_MAX = 24; // series one chart draws when chosen by hand

  var store = new Map(); // series name -> [[t, value], ...], oldest first
  var missing = new Set(); // names the endpoint said it has no history of (yet)
  var alerts = [];
  var alertsKey = '';
  var newest = null; // newest sample time received
  var lastDiscover = -Infinity;
  // Read by tests and curious users: how the page is doing.
  var stats = (window.leakwatchDashboard = { polls: 0, errors: 0, lastError: null });

  var chartsEl = document.getElementById('charts');
  var statusEl = document.getElementById('status');
  var charts = cfg.groups.map(makeChart);

  // ---- data ------------------------------------------------------------------------------

  function get(params) {
    var q = params
      .map(function (p) { return p[0] + '=' + encodeURIComponent(String(p[1])); })
      .join('&');
    return fetch(dataUrl + '?' + q, { cache: 'no-store', credentials: 'same-origin' }).then(function (res) {
      return res.json().then(function (body) { return { status: res.status, body: body }; });
    });
  }

  function fail(r) {
    throw new Error((r.body && r.body.error) || 'HTTP ' + r.status);
  }

  // Samples of `names` (newer than `since` when given); names the endpoint does not know are
  // set aside in `missing` and the rest asked again.
  function getSeries(names, since, withAlerts) {
    var params = [['series', names.join(',')], ['alerts', withAlerts]];
    if (since !== null) params.push(['since', since]);
    return get(params).then(function (r) {
      if (r.status === 404 && r.body.unknown) {
        r.body.unknown.forEach(function (n) { missing.add(n); });
        var rest = names.filter(function (n) { return !missing.has(n); });
        return rest.length || withAlerts ? getSeries(rest, since, withAlerts) : null;
      }
      if (r.status !== 200) fail(r);
      return r.body;
    });
  }

  function merge(body) {
    if (!body) return;
    if (body.newest !== null && (newest === null || body.newest > newest)) newest = body.newest;
    body.series.forEach(function (s) {
      var arr = store.get(s.name) || [];
      var last = arr.length ? arr[arr.length - 1][0] : -Infinity;
      (s.points || []).forEach(function (p) {
        if (p[0] > last) { arr.push(p); last = p[0]; }
      });
      if (arr.length > MAX_POINTS) arr.splice(0, arr.length - MAX_POINTS);
      store.set(s.name, arr);
    });
  }

  // Which series each automatic chart shows: its fixed series, then the largest matches.
  function discover() {
    var jobs = charts.map(function (chart) {
      if (!chart.auto) return Promise.resolve();
      var g = chart.group;
      if (!g.match.length) { chart.names = g.series.slice(); return Promise.resolve(); }
      return get([['match', g.match.join(',')], ['limit', g.limit], ['points', false], ['alerts', false]])
        .then(function (r) {
          if (r.status !== 200) fail(r);
          // The user may have chosen series while this was on its way: theirs stand.
          if (!chart.auto) return;
          var names = g.series.slice();
          r.body.series.forEach(function (s) { if (names.indexOf(s.name) < 0) names.push(s.name); });
          chart.names = names;
          chart.matched = r.body.matched;
        });
    });
    if (missing.size) {
      // Series that were unknown may have appeared since.
      jobs.push(get([['series', Array.from(missing).join(',')], ['points', false], ['alerts', false]])
        .then(function (r) {
          if (r.status === 200) missing.clear();
          else if (r.status === 404 && r.body.unknown) missing = new Set(r.body.unknown);
          else fail(r);
        }));
    }
    return Promise.all(jobs);
  }

  function update() {
    var wanted = new Set();
    charts.forEach(function (c) { c.names.forEach(function (n) { if (!missing.has(n)) wanted.add(n); }); });
    Array.from(store.keys()).forEach(function (n) { if (!wanted.has(n)) store.delete(n); });
    var fresh = [], known = [];
    wanted.forEach(function (n) { (store.has(n) ? known : fresh).push(n); });
    var since = newest;
    // One request for what is already drawn (only the new samples, with the alerts), one
    // for the whole history of series the page has not seen before.
    return getSeries(known, since, true).then(function (body) {
      merge(body);
      if (body) setAlerts(body.alerts);
      return fresh.length ? getSeries(fresh, null, false).then(merge) : null;
    });
  }

  function tick() {
    var work = Promise.resolve();
    if (!document.hidden) {
      work = (performance.now() - lastDiscover >= cfg.discover_ms
        ? discover().then(function () { lastDiscover = performance.now(); })
        : Promise.resolve())
        .then(update)
        .then(function () {
          stats.polls++;
          drawAll();
          setStatus();
        })
        .catch(function (e) {
          stats.errors++;
          stats.lastError = String(e && e.message || e);
          statusEl.textContent = 'error: ' + stats.lastError;
          statusEl.className = 'error';
        });
    }
    work.then(function () { setTimeout(tick, cfg.refresh_ms); });
  }

  function setStatus() {
    var firing = alerts.filter(function (a) { return a.active; }).length;
    statusEl.className = '';
    statusEl.textContent = (newest === null ? 'no samples yet' : 't = ' + fmtTime(newest)) +
      ' · ' + store.size + ' series drawn · ' + firing + ' alert' + (firing === 1 ? '' : 's') +
      ' firing · every ' + cfg.refresh_ms / 1000 + ' s';
  }

  // ---- charts ----------------------------------------------------------------------------

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function makeChart(group, i) {
    var chart = { group: group, auto: true, names: group.series.slice(), matched: 0, colours: new Map() };
    var box = el('section', 'chart');
    box.dataset.group = String(i);
    var head = el('div', 'chart-head');
    head.appendChild(el('h2', '', group.title));
    chart.shown = head.appendChild(el('span', 'shown'));
    var toggle = head.appendChild(el('button', 'choose', 'series…'));
    toggle.type = 'button';
    box.appendChild(head);
    chart.canvas = box.appendChild(el('canvas'));
    chart.canvas.setAttribute('role', 'img');
    chart.canvas.setAttribute('aria-label', group.title);
    chart.legend = box.appendChild(el('ul', 'legend'));
    box.appendChild(makeChooser(chart, toggle));
    chartsEl.appendChild(box);
    return chart;
  }

  function makeChooser(chart, toggle) {
    var box = el('div', 'chooser');
    box.hidden = true;
    var form = box.appendChild(el('form'));
    var input = form.appendChild(el('input'));
    input.type = 'text';
    input.value = chart.group.match.join(',') || '*';
    input.setAttribute('aria-label', 'series pattern');
    form.appendChild(el('button', '', 'find')).type = 'submit';
    var auto = form.appendChild(el('button', '', 'automatic'));
    auto.type = 'button';
    var note = box.appendChild(el('p', 'note', 'Patterns: * matches anything, commas separate.'));
    var list = box.appendChild(el('ul'));
    var apply = box.appendChild(el('button', 'apply', 'show checked'));
    apply.type = 'button';

    function item(name, value, checked) {
      var li = el('li');
      var label = li.appendChild(el('label'));
      var cb = label.appendChild(el('input'));
      cb.type = 'checkbox';
      cb.value = name;
      cb.checked = checked;
      label.appendChild(document.createTextNode(' ' + name + (value === null ? '' : '  (' + fmt(value, chart.group.unit) + ')')));
      list.appendChild(li);
    }

    // Only the latest search may fill the list: an earlier one answering late (opening the
    // chooser searches too) would otherwise replace the list the user is ticking.
    var searches = 0;
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var pattern = input.value, search = ++searches;
      get([['match', pattern], ['limit', CHOOSER_LIMIT], ['points', false], ['alerts', false]]).then(function (r) {
        if (search !== searches) return;
        list.textContent = '';
        list.dataset.pattern = pattern;
        if (r.status !== 200) { note.textContent = r.body.error || 'HTTP ' + r.status; return; }
        var found = r.body.series.map(function (s) { return s.name; });
        chart.names.forEach(function (n) { if (found.indexOf(n) < 0) item(n, null, true); });
        r.body.series.forEach(function (s) { item(s.name, s.last, chart.names.indexOf(s.name) >= 0); });
        note.textContent = r.body.series.length + ' of ' + r.body.matched + ' matching series, largest first' +
          (r.body.matched > r.body.series.length ? '; narrow the pattern to find others' : '') +
          '. At most ' + CHOSEN_MAX + ' are drawn.';
      }).catch(function (e) { if (search === searches) note.textContent = String(e); });
    });
    apply.addEventListener('click', function () {
      var names = Array.from(list.querySelectorAll('input:checked')).map(function (cb) { return cb.value; });
      chart.auto = false;
      chart.names = names.slice(0, CHOSEN_MAX);
      drawChart(chart);
    });
    auto.addEventListener('click', function () {
      chart.auto = true;
      lastDiscover = -Infinity;
      box.hidden = true;
    });
    toggle.addEventListener('click', function () {
      box.hidden = !box.hidden;
      if (!box.hidden && !list.childElementCount) form.requestSubmit();
    });
    return box;
  }

  function colourOf(chart, name) {
    if (!chart.colours.has(name)) {
      var used = new Set();
      chart.names.forEach(function (n) { if (chart.colours.has(n)) used.add(chart.colours.get(n)); });
      var i = 0;
      while (used.has(i) && i < PALETTE.length) i++;
      chart.colours.set(name, i % PALETTE.length);
    }
    return PALETTE[chart.colours.get(name)];
  }

  // Counters become changes per second; a drop (a restarted counter) is skipped.
  function rates(points) {
    var out = [];
    for (var i = 1; i < points.length; i++) {
      var dt = points[i][0] - points[i - 1][0];
      var dv = points[i][1] - points[i - 1][1];
      if (dt > 0 && dv >= 0) out.push([points[i][0], dv / dt]);
    }
    return out;
  }

  // A step of 1, 2 or 5 times a power of ten giving about `n` intervals over `span`; for
  // bytes, in the binary unit the axis labels use (so ticks read 2 MiB, not 2.1 MiB).
  function niceStep(span, n, unit) {
    var scale = 1;
    if (unit === 'bytes') while (span / scale >= 1024) scale *= 1024;
    var raw = span / scale / n;
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag * scale;
  }

  function drawAll() {
    charts.forEach(drawChart);
    // Forget colours of series no chart shows any more.
    charts.forEach(function (c) {
      Array.from(c.colours.keys()).forEach(function (n) { if (c.names.indexOf(n) < 0) c.colours.delete(n); });
    });
  }

  function drawChart(chart) {
    var canvas = chart.canvas;
    var dpr = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    var ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var rate = chart.group.plot === 'rate';
    var unit = chart.group.unit;
    var lines = chart.names.filter(function (n) { return store.has(n); }).map(function (n) {
      var pts = store.get(n);
      return { name: n, colour: colourOf(chart, n), pts: rate ? rates(pts) : pts };
    });

    var xmax = newest === null ? 1 : newest, xmin = Infinity, ymin = 0, ymax = -Infinity, count = 0;
    lines.forEach(function (l) {
      l.pts.forEach(function (p) {
        if (p[0] < xmin) xmin = p[0];
        if (p[1] < ymin) ymin = p[1];
        if (p[1] > ymax) ymax = p[1];
      });
      count += l.pts.length;
    });
    if (!isFinite(xmin) || xmin >= xmax) xmin = xmax - 60;
    if (!isFinite(ymax) || ymax <= ymin) ymax = ymin + 1;
    var ystep = niceStep(ymax - ymin, 4, unit);
    ymax = Math.ceil(ymax / ystep) * ystep;
    ymin = Math.floor(ymin / ystep) * ystep;

    var left = 64, right = 10, top = 14, bottom = 22;
    var pw = Math.max(1, w - left - right), ph = Math.max(1, h - top - bottom);
    function X(t) { return left + (t - xmin) / (xmax - xmin) * pw; }
    function Y(v) { return top + (1 - (v - ymin) / (ymax - ymin)) * ph; }

    // Grid and labels.
    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    ctx.strokeStyle = '#e6e6e6';
    ctx.fillStyle = '#666';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (var v = ymin; v <= ymax + ystep / 2; v += ystep) {
      var y = Math.round(Y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + pw, y); ctx.stroke();
      ctx.fillText(fmt(v, unit) + (rate ? '/s' : ''), left - 4, y);
    }
    var xstep = niceStep(xmax - xmin, 5);
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (var t = Math.ceil(xmin / xstep) * xstep; t <= xmax; t += xstep) {
      var x = Math.round(X(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + ph); ctx.stroke();
      ctx.fillText(fmtTime(t), x, top + ph + 4);
    }

    // Series.
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top - 2, pw, ph + 4);
    ctx.clip();
    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    lines.forEach(function (l) {
      if (!l.pts.length) return;
      ctx.strokeStyle = l.colour;
      ctx.beginPath();
      l.pts.forEach(function (p, i) {
        if (i === 0) ctx.moveTo(X(p[0]), Y(p[1])); else ctx.lineTo(X(p[0]), Y(p[1]));
      });
      if (l.pts.length === 1) ctx.lineTo(X(l.pts[0][0]) + 2, Y(l.pts[0][1]));
      ctx.stroke();
    });
    ctx.restore();

    // Alerts: every alert in the time range, on every chart, numbered as in the list.
    var marked = 0;
    ctx.lineWidth = 1.5;
    ctx.setLineDash([4, 3]);
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    alerts.forEach(function (a, i) {
      if (a.at < xmin || a.at > xmax) return;
      var colour = a.state === 'resolved' ? RESOLVED : FIRING;
      var x = Math.round(X(a.at)) + 0.5;
      ctx.strokeStyle = colour;
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + ph); ctx.stroke();
      ctx.fillStyle = colour;
      ctx.fillText('#' + (i + 1), x + 3, 1);
      marked++;
    });
    ctx.setLineDash([]);

    canvas.dataset.series = String(lines.filter(function (l) { return l.pts.length; }).length);
    canvas.dataset.points = String(count);
    canvas.dataset.alerts = String(marked);

    chart.legend.textContent = '';
    lines.forEach(function (l) {
      var li = el('li');
      li.title = l.name;
      var sw = li.appendChild(el('span', 'swatch'));
      sw.style.background = l.colour;
      li.appendChild(document.createTextNode(l.name));
      var last = l.pts.length ? l.pts[l.pts.length - 1][1] : null;
      li.appendChild(el('span', 'value', last === null ? '–' : fmt(last, unit) + (rate ? '/s' : '')));
      chart.legend.appendChild(li);
    });
    if (!lines.length) chart.legend.appendChild(el('li', 'value', 'no series yet'));
    chart.shown.textContent = chart.auto
      ? (chart.matched > lines.length ? lines.length + ' of ' + chart.matched + ' series, largest first' : '')
      : 'chosen by hand';
  }

  // ---- alerts list -----------------------------------------------------------------------

  function setAlerts(list) {
    var key = list.map(function (a) { return a.at + a.name + a.series + a.state + a.active; }).join('|');
    alerts = list;
    if (key === alertsKey) return;
    alertsKey = key;
    var ol = document.getElementById('alerts');
    ol.textContent = '';
    document.getElementById('no-alerts').hidden = list.length > 0;
    // Newest first; numbers match the markers on the charts.
    for (var i = list.length - 1; i >= 0; i--) {
      var a = list[i];
      var state = a.state === 'resolved' ? 'resolved' : a.active ? 'firing' : 'fired';
      var li = el('li', state);
      li.value = i + 1;
      li.appendChild(el('span', 'state', state));
      li.appendChild(document.createTextNode(' ' + a.rule + ' · ' + a.series + ': '));
      li.appendChild(el('span', 'message', a.message));
      li.appendChild(el('div', 'when', 'at t = ' + fmtTime(a.at) + ', condition since t = ' + fmtTime(a.since)));
      if (a.hint && a.hint.length) {
        var ul = li.appendChild(el('ul', 'hint'));
        a.hint.forEach(function (s) {
          ul.appendChild(el('li', '', 'created at ' + s.location + ' (' + s.live + ' live, oldest ' +
            fmtTime(s.age_ms / 1000) + ' old)'));
        });
      }
      ol.appendChild(li);
    }
  }

  // ---- formatting ------------------------------------------------------------------------

  function fmt(v, unit) {
    var a = Math.abs(v);
    if (unit === 'bytes') {
      var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
      var i = 0;
      while (a >= 1024 && i < units.length - 1) { a /= 1024; v /= 1024; i++; }
      return round(v) + ' ' + units[i];
    }
    if (a >= 1e9) return round(v / 1e9) + 'G';
    if (a >= 1e6) return round(v / 1e6) + 'M';
    if (a >= 1e4) return round(v / 1e3) + 'k';
    return round(v);
  }

  function round(v) {
    var a = Math.abs(v);
    return String(a >= 100 ? Math.round(v) : a >= 10 ? Math.round(v * 10) / 10 : Math.round(v * 100) / 100);
  }

  function fmtTime(s) {
    if (s < 60) return round(s) + 's';
    var sec = Math.floor(s % 60), min = Math.floor(s / 60) % 60, hr = Math.floor(s / 3600);
    var mm = hr ? (min < 10 ? '0' : '') + min : String(min);
    return (hr ? hr + ':' : '') + mm + ':' + (sec < 10 ? '0' : '') + sec;
  }

  window.addEventListener('resize', drawAll);
  tick();
})();
