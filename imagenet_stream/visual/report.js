// imagenet-stream report: the zoomable class treemap. No network, no library: the data is the
// JSON in <script id="tree-data">; {w: wnids, n: names, p: parent positions, c: own counts,
// k: 1 for a dataset class}, parents before children.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("tree-data").textContent);
  var N = data.w.length;
  var kids = [], total = new Float64Array(N), classes = new Int32Array(N), i;
  for (i = 0; i < N; i++) kids.push([]);
  var roots = [];
  for (i = 0; i < N; i++) { if (data.p[i] >= 0) kids[data.p[i]].push(i); else roots.push(i); }
  for (i = N - 1; i >= 0; i--) {  // children come after parents: sum bottom-up
    total[i] += data.c[i];
    if (data.k[i] && data.c[i] > 0) classes[i] += 1;
    if (data.p[i] >= 0) { total[data.p[i]] += total[i]; classes[data.p[i]] += classes[i]; }
  }
  var ROOT = -1;  // a virtual root above the top-level nodes
  function children(node) { return node === ROOT ? roots : kids[node]; }
  function totalOf(node) { return node === ROOT ? roots.reduce(function (s, r) { return s + total[r]; }, 0) : total[node]; }
  function classesOf(node) { return node === ROOT ? roots.reduce(function (s, r) { return s + classes[r]; }, 0) : classes[node]; }
  function nameOf(node) { return node === ROOT ? "all classes" : data.n[node]; }

  var box = document.getElementById("treemap"), crumbs = document.getElementById("crumbs"),
      detail = document.getElementById("node-detail");
  box.setAttribute("data-classes", String(classesOf(ROOT)));
  var fmt = function (x) { return Math.round(x).toLocaleString("en-US"); };
  var palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"];

  // Squarified treemap (Bruls, Huizing, van Wijk): rows of tiles whose aspect ratios stay near 1.
  function squarify(items, x, y, w, h, out) {
    var sum = items.reduce(function (s, it) { return s + it.v; }, 0);
    if (!items.length || sum <= 0) return;
    var scale = (w * h) / sum, rest = items.slice();
    while (rest.length) {
      var side = Math.min(w, h), row = [], rowSum = 0, best = Infinity;
      while (rest.length) {
        var v = rest[0].v * scale, s = rowSum + v;
        var maxv = Math.max(v, row.length ? row[0].v * scale : 0), minv = v;
        var worst = Math.max(side * side * maxv / (s * s), (s * s) / (side * side * minv));
        if (row.length && worst > best) break;
        best = worst; row.push(rest.shift()); rowSum = s;
      }
      var thick = rowSum / side, pos = 0;
      row.forEach(function (it) {
        var len = it.v * scale / thick;
        if (w >= h) out.push({it: it, x: x, y: y + pos, w: thick, h: len});
        else out.push({it: it, x: x + pos, y: y, w: len, h: thick});
        pos += len;
      });
      if (w >= h) { x += thick; w -= thick; } else { y += thick; h -= thick; }
    }
  }

  var current = ROOT;
  function itemsOf(node) {
    var items = children(node).filter(function (c) { return total[c] > 0; })
      .map(function (c) { return {node: c, v: total[c], own: false}; });
    if (node !== ROOT && data.k[node] && data.c[node] > 0 && items.length)
      items.push({node: node, v: data.c[node], own: true});  // the class's own images beside its subclasses
    items.sort(function (a, b) { return b.v - a.v; });
    return items;
  }
  function opens(it) { return !it.own && kids[it.node].length > 0; }
  function tile(it, t, color, depth) {
    var el = document.createElement("div");
    el.className = "tile" + (opens(it) ? "" : " leaf") + (depth ? " inner" : "");
    el.style.left = t.x + "px"; el.style.top = t.y + "px";
    el.style.width = Math.max(t.w - 1, 0) + "px"; el.style.height = Math.max(t.h - 1, 0) + "px";
    el.style.background = color;
    el.setAttribute("data-wnid", data.w[it.node]);
    var label = (it.own ? "(this class) " : "") + data.n[it.node];
    el.title = label + " " + data.w[it.node] + ": " + fmt(it.v) + " images, " +
      (it.own ? 1 : classes[it.node]) + " classes";
    if (t.w > 46 && t.h > 14) el.textContent = label + " · " + fmt(it.v);
    el.addEventListener("click", function (ev) {
      ev.stopPropagation();
      if (opens(it)) show(it.node); else describe(it.node);
    });
    return el;
  }
  function show(node) {
    current = node;
    var tiles = [];
    squarify(itemsOf(node), 0, 0, box.clientWidth, box.clientHeight, tiles);
    box.textContent = "";
    box.setAttribute("data-view", node === ROOT ? "" : data.w[node]);
    tiles.forEach(function (t, n) {
      var color = palette[n % palette.length], el = tile(t.it, t, color, 0);
      box.appendChild(el);
      if (opens(t.it) && t.w > 60 && t.h > 44) {  // the next level inside, under a label strip
        var inner = [];
        squarify(itemsOf(t.it.node), 2, 16, t.w - 5, t.h - 19, inner);
        inner.forEach(function (u) { el.appendChild(tile(u.it, u, "rgba(255,255,255,0.18)", 1)); });
      }
    });
    crumbs.textContent = "";
    var path = [], up = node;
    while (up !== ROOT && up !== undefined && up >= 0) { path.unshift(up); up = data.p[up]; }
    path.unshift(ROOT);
    path.forEach(function (p, n) {
      var a = document.createElement("button");
      a.textContent = nameOf(p); a.className = "crumb";
      a.addEventListener("click", function () { show(p); });
      crumbs.appendChild(a);
      if (n < path.length - 1) crumbs.appendChild(document.createTextNode(" › "));
    });
    describe(node);
  }

  function describe(node) {
    var sizes = [], stack = children(node).slice();
    if (node !== ROOT && data.k[node] && data.c[node] > 0) sizes.push([data.c[node], node]);
    while (stack.length) {
      var c = stack.pop();
      if (data.k[c] && data.c[c] > 0) sizes.push([data.c[c], c]);
      Array.prototype.push.apply(stack, kids[c]);
    }
    sizes.sort(function (a, b) { return b[0] - a[0]; });
    var median = sizes.length ? sizes[Math.floor(sizes.length / 2)][0] : 0;
    var html = "<h3>" + esc(nameOf(node)) + (node === ROOT ? "" : " <code>" + data.w[node] + "</code>") + "</h3>" +
      "<p>" + fmt(totalOf(node)) + " images in " + fmt(classesOf(node)) + " classes; class sizes " +
      (sizes.length ? fmt(sizes[sizes.length - 1][0]) + " – " + fmt(median) + " (median) – " + fmt(sizes[0][0]) : "–") + "</p>";
    var list = function (title, part) {
      return "<h4>" + title + "</h4><ol>" + part.map(function (s) {
        return "<li>" + esc(data.n[s[1]]) + " <code>" + data.w[s[1]] + "</code> " + fmt(s[0]) + "</li>";
      }).join("") + "</ol>";
    };
    if (sizes.length) html += list("largest", sizes.slice(0, 8));
    if (sizes.length > 8) html += list("long tail (smallest)", sizes.slice(-8).reverse());
    detail.innerHTML = html;
  }
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); }

  // open at the first node with a choice (the tree's top is a chain: entity > physical entity > ...)
  var start = ROOT;
  for (;;) {
    var live = children(start).filter(function (c) { return total[c] > 0; });
    if (live.length !== 1 || (start !== ROOT && data.k[start] && data.c[start] > 0)) break;
    start = live[0];
  }
  show(start);
  window.addEventListener("resize", function () { show(current); });
  document.body.setAttribute("data-ready", "1");
})();
