// prunewise dashboard, in the browser: theme toggle, live updates over Server-Sent Events, and the
// charts (ECharts, served from this server). No inline scripts: data arrives in
// <script type="application/json"> blocks or from JSON endpoints; text goes in with textContent.
(function () {
  'use strict';
  var root = document.documentElement;
  var charts = []; // [{ el, build }] — rebuilt on theme change and live updates

  // ------------------------------------------------------------ theme
  var THEMES = ['system', 'light', 'dark'];
  function currentTheme() {
    var t = root.getAttribute('data-theme');
    return t === 'light' || t === 'dark' ? t : 'system';
  }
  function isDark() {
    var t = currentTheme();
    return t === 'dark' || (t === 'system' && window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches);
  }
  function setTheme(t) {
    if (t === 'system') root.removeAttribute('data-theme');
    else root.setAttribute('data-theme', t);
    try {
      if (t === 'system') localStorage.removeItem('prunewise-theme');
      else localStorage.setItem('prunewise-theme', t);
    } catch (e) {
      /* storage blocked */
    }
    labelTheme();
    rebuildCharts();
  }
  function labelTheme() {
    var b = document.getElementById('theme-toggle');
    if (b) b.textContent = 'theme: ' + currentTheme();
  }
  var toggle = document.getElementById('theme-toggle');
  if (toggle) {
    toggle.addEventListener('click', function () {
      setTheme(THEMES[(THEMES.indexOf(currentTheme()) + 1) % THEMES.length]);
    });
  }
  labelTheme();
  if (window.matchMedia) {
    var mq = window.matchMedia('(prefers-color-scheme: dark)');
    if (mq.addEventListener)
      mq.addEventListener('change', function () {
        if (currentTheme() === 'system') rebuildCharts();
      });
  }

  // ------------------------------------------------------------ charts
  function css(name) {
    return getComputedStyle(root).getPropertyValue(name).trim();
  }
  function chartOn(el, build) {
    if (!el || !window.echarts) return;
    var entry = { el: el, build: build, chart: null };
    charts.push(entry);
    renderChart(entry);
  }
  function renderChart(entry) {
    if (entry.chart) entry.chart.dispose();
    entry.chart = window.echarts.init(entry.el, isDark() ? 'dark' : null, { renderer: 'canvas' });
    entry.build(entry.chart);
  }
  function rebuildCharts() {
    charts.forEach(renderChart);
  }
  window.addEventListener('resize', function () {
    charts.forEach(function (c) {
      if (c.chart) c.chart.resize();
    });
  });
  function baseOption() {
    return { backgroundColor: 'transparent', textStyle: { color: css('--fg') }, animation: false };
  }
  function readJson(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function fmt(v, d) {
    return typeof v === 'number' && isFinite(v) ? v.toFixed(d) : '—';
  }

  // ------------------------------------------------------------ live updates
  function live() {
    if (!document.body.hasAttribute('data-live') || !window.EventSource) return;
    var state = document.getElementById('live-state');
    var es = new EventSource('/events');
    var pending = false;
    var last = 0;
    function mark(s, text) {
      if (state) {
        state.setAttribute('data-state', s);
        state.textContent = text;
      }
    }
    es.addEventListener('hello', function () {
      mark('live', 'live');
    });
    es.addEventListener('error', function () {
      mark('off', 'reconnecting…');
    });
    es.addEventListener('change', function () {
      if (pending) return;
      pending = true;
      var wait = Math.max(0, 1000 - (Date.now() - last));
      setTimeout(refresh, wait);
    });
    function refresh() {
      last = Date.now();
      fetch(location.href, { headers: { Accept: 'text/html' } })
        .then(function (r) {
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          pending = false;
          if (!html) return;
          var doc = new DOMParser().parseFromString(html, 'text/html');
          // rows checked for compare stay checked across the refresh
          var checked = {};
          document.querySelectorAll('input[type="checkbox"][name="runs"]:checked').forEach(function (c) {
            checked[c.value] = true;
          });
          document.querySelectorAll('[data-live-part]').forEach(function (part) {
            var fresh = doc.getElementById(part.id);
            if (fresh) part.replaceWith(document.importNode(fresh, true));
          });
          document.querySelectorAll('input[type="checkbox"][name="runs"]').forEach(function (c) {
            if (checked[c.value]) c.checked = true;
          });
          document.dispatchEvent(new CustomEvent('prunewise:updated'));
          mark('live', 'live · updated ' + new Date().toISOString().slice(11, 19) + ' UTC');
        })
        .catch(function () {
          pending = false;
        });
    }
  }

  // ------------------------------------------------------------ trade-off scatter
  var LABELS = {
    error: 'validation error (fraction)',
    accuracy: 'test accuracy (fraction)',
    bytes: 'size (bytes of deployed weights)',
    latencyMs: 'latency (ms per batch)',
    energyJ: 'energy (J per inference)',
  };
  // budget clause column (candidates view, `filter=`) → trade-off field
  var BUDGET_FIELD = { latency: 'latencyMs', bytes: 'bytes', accuracy: 'accuracy', error: 'error', energy: 'energyJ' };
  function budgetClauses() {
    var f = new URLSearchParams(location.search).get('filter') || '';
    var out = [];
    f.split(',').forEach(function (c) {
      var m = /^([a-z_]+)\s*(<=|>=|<|>)\s*(-?[0-9.eE+-]+)$/.exec(c.trim());
      if (m && BUDGET_FIELD[m[1]]) out.push({ field: BUDGET_FIELD[m[1]], op: m[2], value: Number(m[3]), text: m[1] + ' ' + m[2] + ' ' + m[3] });
    });
    return out;
  }
  function meets(p, clauses, idx) {
    return clauses.every(function (c) {
      var v = p[idx(c.field)];
      if (v === null || v === undefined) return false;
      return c.op === '<=' ? v <= c.value : c.op === '>=' ? v >= c.value : c.op === '<' ? v < c.value : v > c.value;
    });
  }
  var MAXIMISE = { accuracy: true };
  function tradeoff() {
    var el = document.getElementById('tradeoff-chart');
    if (!el) return;
    var params = new URLSearchParams(location.search);
    var sel = { x: document.getElementById('x-axis'), y: document.getElementById('y-axis'), colour: document.getElementById('colour-by') };
    var domBox = document.getElementById('show-dominated');
    if (domBox && params.get('dominated') === '0') domBox.checked = false;
    ['x', 'y', 'colour'].forEach(function (k) {
      if (params.get(k) && sel[k].querySelector('option[value="' + CSS.escape(params.get(k)) + '"]')) sel[k].value = params.get(k);
    });
    var data = null;
    function load() {
      return fetch(el.getAttribute('data-src'))
        .then(function (r) {
          return r.json();
        })
        .then(function (d) {
          data = d;
        });
    }
    function idx(name) {
      return data.fields.indexOf(name);
    }
    function front(points, xi, yi, xmax, ymax) {
      // the 2-D front (both minimised, or maximised where marked), as the corners of a step line
      var sx = xmax ? -1 : 1,
        sy = ymax ? -1 : 1;
      var s = points
        .filter(function (p) {
          return p[xi] !== null && p[yi] !== null;
        })
        .slice()
        .sort(function (a, b) {
          return sx * (a[xi] - b[xi]) || sy * (a[yi] - b[yi]);
        });
      var out = [],
        best = Infinity;
      s.forEach(function (p) {
        if (sy * p[yi] < best) {
          best = sy * p[yi];
          out.push(p);
        }
      });
      return out;
    }
    function build(chart) {
      if (!data) return;
      var x = sel.x.value,
        y = sel.y.value,
        colour = sel.colour.value;
      var xi = idx(x),
        yi = idx(y),
        ki = idx('k'),
        ri = idx('round');
      var pts = data.points;
      var f = front(pts, xi, yi, MAXIMISE[x], MAXIMISE[y]);
      var onFront = new Set(f);
      var weightOf = function (p) {
        var w = data.weights[p[ki]];
        return w ? w[colour] : null;
      };
      var toItem = function (p) {
        return [p[xi], p[yi], weightOf(p) === null ? -1 : weightOf(p), p[ki], p[ri]];
      };
      var clauses = budgetClauses();
      var dominated = [],
        frontPts = [],
        base = [],
        inBudget = 0;
      pts.forEach(function (p) {
        if (clauses.length && meets(p, clauses, idx)) inBudget++;
        if (p[ri] === 0 && p[ki] === 0) base.push(toItem(p));
        else (onFront.has(p) ? frontPts : dominated).push(toItem(p));
      });
      var showDominated = !domBox || domBox.checked;
      var opt = baseOption();
      opt.tooltip = {
        trigger: 'item',
        formatter: function (it) {
          var v = it.value;
          if (!v || v.length < 5) return it.name || '';
          var div = document.createElement('div');
          div.textContent = (v[3] === 0 ? 'baseline' : 'run-' + v[3] + ' round ' + v[4]) + (it.seriesName === 'front' ? ' (on the front)' : '');
          [LABELS[x] + ': ' + fmt(v[0], 5), LABELS[y] + ': ' + fmt(v[1], 5), v[3] === 0 ? '' : colour + ' weight: ' + fmt(v[2], 2)].forEach(function (t) {
            if (!t) return;
            div.appendChild(document.createElement('br'));
            div.appendChild(document.createTextNode(t));
          });
          return div.innerHTML;
        },
      };
      opt.legend = {
        top: 0,
        left: 'center',
        data: ['front', 'dominated', 'baseline'],
        selected: { dominated: showDominated },
        textStyle: { color: css('--fg') },
      };
      opt.grid = { left: 90, right: 130, top: 40, bottom: 60, containLabel: false };
      opt.xAxis = { type: 'value', name: LABELS[x], nameLocation: 'middle', nameGap: 32, scale: true, inverse: !!MAXIMISE[x] };
      opt.yAxis = { type: 'value', name: LABELS[y], nameLocation: 'middle', nameGap: 62, scale: true, inverse: !!MAXIMISE[y] };
      opt.visualMap = {
        type: 'continuous',
        min: 0,
        max: 1,
        dimension: 2,
        seriesIndex: [0, 1],
        calculable: false,
        right: 10,
        top: 'middle',
        text: [colour + ' weight 1', '0'],
        inRange: { color: ['#3b82f6', '#22c55e', '#f59e0b', '#ef4444'] },
      };
      opt.series = [
        {
          name: 'dominated',
          type: 'scatter',
          data: dominated,
          symbolSize: 6,
          itemStyle: { opacity: 0.35 },
          large: dominated.length > 5000,
          largeThreshold: 5000,
        },
        { name: 'front', type: 'scatter', data: frontPts, symbolSize: 9, itemStyle: { opacity: 1, borderColor: css('--fg'), borderWidth: 1 }, z: 3 },
        {
          name: 'front line',
          type: 'line',
          step: MAXIMISE[y] === MAXIMISE[x] ? 'end' : 'start',
          data: f.map(function (p) {
            return [p[xi], p[yi]];
          }),
          symbol: 'none',
          lineStyle: { color: css('--fg'), width: 1.5 },
          silent: true,
          z: 2,
        },
        { name: 'baseline', type: 'scatter', data: base, symbol: 'diamond', symbolSize: 14, itemStyle: { color: css('--fg') }, z: 4 },
      ];
      // the budget (candidates view's filter): a dashed line on each axis it bounds
      var budgetLines = [];
      clauses.forEach(function (c) {
        if (c.field === x) budgetLines.push({ xAxis: c.value, name: 'budget ' + c.text });
        if (c.field === y) budgetLines.push({ yAxis: c.value, name: 'budget ' + c.text });
      });
      if (budgetLines.length)
        opt.series.push({
          name: 'budget',
          type: 'line',
          data: [],
          silent: false,
          markLine: {
            symbol: 'none',
            lineStyle: { type: 'dashed', color: css('--bad'), width: 1.5 },
            label: { formatter: '{b}', color: css('--bad') },
            data: budgetLines,
          },
        });
      el.setAttribute('data-budget-lines', String(budgetLines.length));
      chart.setOption(opt);
      chart.off('legendselectchanged');
      chart.on('legendselectchanged', function (e) {
        if (e.name !== 'dominated' || !domBox) return;
        domBox.checked = !!e.selected.dominated;
        remember();
      });
      chart.off('click');
      chart.on('click', function (it) {
        if (!it.value || it.seriesName === 'front line') return;
        var k = it.value[3];
        location.href = '/runs/' + (k === 0 && data.baselineRun ? data.baselineRun : data.runPrefix + k);
      });
      el.setAttribute('data-points', String(pts.length));
      el.setAttribute('data-front', String(f.length));
      var count = document.getElementById('tradeoff-count');
      if (count)
        count.textContent =
          pts.length +
          ' candidates, ' +
          f.length +
          ' on the front of these two objectives' +
          (clauses.length
            ? '; ' +
              inBudget +
              ' within the budget ' +
              clauses
                .map(function (c) {
                  return c.text;
                })
                .join(', ')
            : '');
      fillTable(f, x, y);
    }
    function fillTable(f, x, y) {
      var tbody = document.querySelector('#tradeoff-table tbody');
      if (!tbody) return;
      document.getElementById('tt-x').textContent = LABELS[x];
      document.getElementById('tt-y').textContent = LABELS[y];
      tbody.textContent = '';
      f.forEach(function (p) {
        var tr = document.createElement('tr');
        var k = p[idx('k')],
          r = p[idx('round')];
        var td0 = document.createElement('td');
        var a = document.createElement('a');
        a.href = '/runs/' + (k === 0 && data.baselineRun ? data.baselineRun : data.runPrefix + k);
        a.textContent = k === 0 ? 'baseline' : 'run-' + k + ' round ' + r;
        td0.appendChild(a);
        tr.appendChild(td0);
        [
          fmt(p[idx(x)], 5),
          fmt(p[idx(y)], 5),
          fmt(p[idx('accuracy')] * 100, 2) + ' %',
          fmt(p[idx('bytes')], 0),
          fmt(p[idx('latencyMs')], 3),
          fmt(p[idx('energyJ')], 9),
        ].forEach(function (t) {
          var td = document.createElement('td');
          td.textContent = t;
          tr.appendChild(td);
        });
        tbody.appendChild(tr);
      });
    }
    var entry = null;
    load().then(function () {
      chartOn(el, build);
      entry = charts[charts.length - 1];
      el.setAttribute('data-ready', '1');
    });
    function remember() {
      var p = new URLSearchParams(location.search);
      p.set('x', sel.x.value);
      p.set('y', sel.y.value);
      p.set('colour', sel.colour.value);
      if (domBox && !domBox.checked) p.set('dominated', '0');
      else p.delete('dominated');
      history.replaceState(null, '', '?' + p.toString());
    }
    Object.keys(sel).forEach(function (k) {
      sel[k].addEventListener('change', function () {
        remember();
        if (entry) renderChart(entry);
      });
    });
    if (domBox)
      domBox.addEventListener('change', function () {
        remember();
        if (entry) renderChart(entry);
      });
    document.addEventListener('prunewise:updated', function () {
      load().then(function () {
        if (entry) renderChart(entry);
      });
    });
  }

  // ------------------------------------------------------------ parallel coordinates
  // dims: k, w_accuracy, w_size, w_latency, w_energy, accuracy, bytes, latency, energy
  var PAR = [
    { dim: 1, name: 'w accuracy', col: 'w_accuracy' },
    { dim: 2, name: 'w size', col: 'w_size' },
    { dim: 3, name: 'w latency', col: 'w_latency' },
    { dim: 4, name: 'w energy', col: 'w_energy' },
    { dim: 5, name: 'test accuracy', col: 'accuracy' },
    { dim: 6, name: 'size (bytes)', col: 'bytes', inverse: true },
    { dim: 7, name: 'latency (ms)', col: 'latency', inverse: true },
    { dim: 8, name: 'energy (J)', col: 'energy', inverse: true },
  ];
  function parallel() {
    var el = document.getElementById('parallel-chart');
    if (!el) return;
    var rows = readJson('parallel-data') || [];
    var ranges = {}; // col -> [lo, hi]
    function build(chart) {
      var opt = baseOption();
      opt.parallelAxis = PAR.map(function (a, i) {
        return {
          id: 'ax-' + i,
          dim: a.dim,
          name: a.name,
          inverse: !!a.inverse,
          scale: a.dim >= 5,
          min: a.dim < 5 ? 0 : undefined,
          max: a.dim < 5 ? 1 : undefined,
          nameTextStyle: { color: css('--fg') },
        };
      });
      opt.parallel = { left: 60, right: 80, top: 70, bottom: 40, parallelAxisDefault: { areaSelectStyle: { width: 20 } } };
      // colour: the run's dominant weight (the legend above names each colour)
      var dominant = ['accuracy', 'size', 'latency', 'energy'];
      var colours = ['#3b82f6', '#22c55e', '#f59e0b', '#ef4444'];
      opt.visualMap = {
        type: 'piecewise',
        dimension: 9,
        orient: 'horizontal',
        top: 0,
        left: 'center',
        pieces: dominant.map(function (name, i) {
          return { value: i, label: 'weight mostly on ' + name, color: colours[i] };
        }),
        textStyle: { color: css('--fg') },
      };
      opt.series = [
        {
          type: 'parallel',
          data: rows.map(function (r) {
            var best = 0;
            for (var i = 1; i < 4; i++) if (r[1 + i] > r[1 + best]) best = i;
            return r.concat([best]);
          }),
          lineStyle: { width: 1, opacity: rows.length > 2000 ? 0.15 : 0.5 },
          inactiveStyle: { opacity: 0.04 },
          progressive: 2000,
          smooth: false,
        },
      ];
      chart.setOption(opt);
      chart.on('axisareaselected', function (e) {
        var i = Number(String(e.parallelAxisId).replace('ax-', ''));
        var a = PAR[i];
        if (!a) return;
        if (e.intervals && e.intervals.length) ranges[a.col] = e.intervals[0];
        else delete ranges[a.col];
        apply();
      });
      // a shared link: show the URL's ranges on the axes again
      var f = new URLSearchParams(location.search).get('filter') || '';
      var lo = {},
        hi = {};
      f.split(',').forEach(function (c) {
        var m = /^([a-z_]+)(>=|<=)(.+)$/.exec(c);
        if (m) (m[2] === '>=' ? lo : hi)[m[1]] = Number(m[3]);
      });
      PAR.forEach(function (a, i) {
        if (a.col in lo && a.col in hi) chart.dispatchAction({ type: 'axisAreaSelect', parallelAxisId: 'ax-' + i, intervals: [[lo[a.col], hi[a.col]]] });
      });
      el.setAttribute('data-ready', '1');
    }
    function filterText() {
      return Object.keys(ranges)
        .map(function (col) {
          var r = ranges[col];
          return col + '>=' + Number(r[0].toPrecision(6)) + ',' + col + '<=' + Number(r[1].toPrecision(6));
        })
        .join(',');
    }
    var timer = null;
    function apply() {
      var f = filterText();
      var label = document.getElementById('parallel-selection');
      if (label) label.textContent = f ? 'Selection: ' + f : 'No range selected.';
      var p = new URLSearchParams(location.search);
      if (f) p.set('filter', f);
      else p.delete('filter');
      p.delete('after');
      history.replaceState(null, '', '?' + p.toString());
      var link = document.getElementById('parallel-link');
      if (link) link.href = location.pathname.replace(/\/parallel$/, '/runs') + '?' + p.toString();
      var input = document.getElementById('filter');
      if (input) input.value = f;
      clearTimeout(timer);
      timer = setTimeout(function () {
        fetch(location.href)
          .then(function (r) {
            return r.text();
          })
          .then(function (html) {
            var doc = new DOMParser().parseFromString(html, 'text/html');
            var fresh = doc.getElementById('runs-part');
            var part = document.getElementById('runs-part');
            if (fresh && part) part.replaceWith(document.importNode(fresh, true));
          });
      }, 250);
    }
    chartOn(el, build);
  }

  // ------------------------------------------------------------ compare: overlaid per-round curves
  function compare() {
    var d = readJson('compare-data');
    if (!d) return;
    function lines(xKey, xName) {
      return function (chart) {
        var opt = baseOption();
        opt.tooltip = {
          trigger: 'item',
          formatter: function (it) {
            var div = document.createElement('div');
            div.textContent = it.seriesName + ' round ' + it.value[2];
            div.appendChild(document.createElement('br'));
            div.appendChild(
              document.createTextNode(xName + ': ' + fmt(it.value[0], xKey === 'flops' ? 0 : 3) + ' · test accuracy ' + fmt(it.value[1], 2) + ' %'),
            );
            return div.innerHTML;
          },
        };
        opt.legend = { top: 0, type: 'scroll', textStyle: { color: css('--fg') } };
        opt.grid = { left: 70, right: 20, top: 40, bottom: 50 };
        opt.xAxis = { type: 'value', name: xName, nameLocation: 'middle', nameGap: 30, scale: true };
        opt.yAxis = { type: 'value', name: 'test accuracy (%)', nameLocation: 'middle', nameGap: 50, scale: true };
        opt.series = d.curves.map(function (c) {
          return {
            name: c.label,
            type: 'line',
            data: c.rows
              .filter(function (r) {
                return r[xKey] !== null && r.accuracy !== null;
              })
              .map(function (r) {
                return [r[xKey], r.accuracy * 100, r.round];
              }),
            symbolSize: 7,
          };
        });
        chart.setOption(opt);
      };
    }
    chartOn(document.getElementById('compare-flops'), lines('flops', 'FLOPs per example'));
    chartOn(document.getElementById('compare-latency'), lines('latencyMs', 'latency (ms per batch)'));
  }

  // ------------------------------------------------------------ run page
  function run() {
    var roundsEl = document.getElementById('run-rounds-chart');
    if (!roundsEl) return;
    function data() {
      return readJson('run-data') || { rounds: [], series: [] };
    }
    chartOn(roundsEl, function (chart) {
      var d = data();
      var opt = baseOption();
      opt.tooltip = { trigger: 'axis' };
      opt.legend = { top: 0, textStyle: { color: css('--fg') } };
      opt.grid = { left: 70, right: 70, top: 40, bottom: 50 };
      opt.xAxis = {
        type: 'category',
        name: 'round (0: the baseline)',
        nameLocation: 'middle',
        nameGap: 28,
        data: d.rounds.map(function (r) {
          return String(r.round);
        }),
      };
      opt.yAxis = [
        { type: 'value', name: 'test accuracy (%)', nameLocation: 'middle', nameGap: 45, scale: true },
        { type: 'value', name: 'times better than baseline (×)', nameLocation: 'middle', nameGap: 40, scale: true },
      ];
      opt.series = [
        {
          name: 'test accuracy',
          type: 'line',
          data: d.rounds.map(function (r) {
            return r.accuracy === null ? null : +(r.accuracy * 100).toFixed(2);
          }),
        },
        {
          name: 'size ×',
          type: 'line',
          yAxisIndex: 1,
          data: d.rounds.map(function (r) {
            return r.sizeX;
          }),
        },
        {
          name: 'latency ×',
          type: 'line',
          yAxisIndex: 1,
          data: d.rounds.map(function (r) {
            return r.latencyX;
          }),
        },
        {
          name: 'energy ×',
          type: 'line',
          yAxisIndex: 1,
          data: d.rounds.map(function (r) {
            return r.energyX;
          }),
        },
      ];
      chart.setOption(opt);
    });
    chartOn(document.getElementById('run-series-chart'), function (chart) {
      var d = data();
      var opt = baseOption();
      opt.tooltip = { trigger: 'axis' };
      opt.legend = { top: 0, type: 'scroll', textStyle: { color: css('--fg') } };
      opt.grid = { left: 70, right: 20, top: 40, bottom: 50 };
      opt.xAxis = { type: 'value', name: 'optimizer step (batch)', nameLocation: 'middle', nameGap: 28, minInterval: 1 };
      opt.yAxis = { type: 'value', name: 'training loss', nameLocation: 'middle', nameGap: 50, scale: true };
      // per batch (batchLoss: the mean over groups of consecutive batches) as lines; per epoch as dots
      var perBatch = {};
      d.series.forEach(function (s) {
        if (s.key === 'batchLoss' && s.points.length) perBatch[s.round + ' ' + s.stage] = s.points[s.points.length - 1][0];
      });
      opt.series = d.series.map(function (s) {
        var who = s.round === 0 ? s.stage : 'round ' + s.round;
        if (s.key === 'batchLoss') return { name: who + ' loss per batch', type: 'line', data: s.points, showSymbol: s.points.length < 40, symbolSize: 4 };
        if (s.key === 'trainLoss') {
          // trainLoss is keyed by epoch: place each epoch's mean at the step that ended it
          var lastStep = perBatch[s.round + ' ' + s.stage];
          var epochs = s.points.length ? s.points[s.points.length - 1][0] : 1;
          return {
            name: who + ' loss per epoch',
            type: lastStep ? 'scatter' : 'line',
            data: lastStep
              ? s.points.map(function (p) {
                  return [Math.round((p[0] * lastStep) / epochs), p[1]];
                })
              : s.points,
            symbolSize: 9,
          };
        }
        return { name: who + ' ' + s.key, type: 'line', data: s.points };
      });
      if (!d.series.length)
        opt.title = { text: 'no per-step series recorded', left: 'center', top: 'middle', textStyle: { color: css('--muted'), fontSize: 13 } };
      chart.setOption(opt);
    });
    document.addEventListener('prunewise:updated', rebuildCharts);
  }

  live();
  function start() {
    tradeoff();
    parallel();
    compare();
    run();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
