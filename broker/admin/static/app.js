/* nsqadmin's single-page UI: plain JavaScript, no build step, no dependencies.
 *
 * Each page fetches nsqadmin's JSON API (the same /api/... endpoints Go's
 * nsqadmin serves), renders once, then refreshes on a timer, updating the
 * DOM in place: table rows are keyed, so a row (and any button in it) stays
 * the same element from one refresh to the next.  Rates are computed here,
 * between two refreshes, from nsqd's message counters; each rate keeps a
 * short history drawn as an inline SVG sparkline.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("nsqadmin-config").textContent);
  var base = config.basePath || "";
  var page = document.getElementById("page");
  var HISTORY = 40; // rate points kept per series

  // -- small helpers ---------------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "cls") node.className = attrs[k];
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), attrs[k]);
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c !== null && c !== undefined) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function fmt(n) {
    if (n === null || n === undefined || isNaN(n)) return "–";
    return Number(n).toLocaleString("en-US");
  }

  function fmtRate(r) {
    if (r === null || r === undefined) return "–";
    if (r === 0) return "0";
    if (r < 10) return r.toFixed(2);
    if (r < 100) return r.toFixed(1);
    return fmt(Math.round(r));
  }

  function fmtDuration(ns) {
    var s = Math.max(0, Math.floor(ns / 1e9));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h) return h + "h" + String(m).padStart(2, "0") + "m";
    if (m) return m + "m" + String(sec).padStart(2, "0") + "s";
    return sec + "s";
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function url(path) { return base + path; }
  function enc(s) { return encodeURIComponent(s); }

  function api(method, path, body) {
    var opts = { method: method, headers: { "Accept": "application/vnd.nsq; version=1.0" } };
    if (body !== undefined) opts.body = JSON.stringify(body);
    return fetch(url(path), opts).then(function (resp) {
      return resp.text().then(function (text) {
        var data;
        try { data = text ? JSON.parse(text) : {}; } catch (e) { data = { message: text }; }
        if (!resp.ok) throw new Error(resp.status + " " + (data.message || resp.statusText));
        return data;
      });
    });
  }

  // -- rates and sparklines -----------------------------------------------------

  var series = {}; // key -> {count, at, rates: []}

  function track(key, count) {
    var now = performance.now() / 1000;
    var s = series[key];
    if (!s) {
      series[key] = { count: count, at: now, rates: [] };
      return null;
    }
    var dt = now - s.at;
    if (dt <= 0.2) return s.rates.length ? s.rates[s.rates.length - 1] : null;
    var rate = Math.max(0, (count - s.count) / dt);
    s.count = count; s.at = now;
    s.rates.push(rate);
    if (s.rates.length > HISTORY) s.rates.shift();
    return rate;
  }

  function lastRate(key) {
    var s = series[key];
    return s && s.rates.length ? s.rates[s.rates.length - 1] : null;
  }

  function sparkline(key, width, height) {
    var s = series[key];
    var points = s ? s.rates : [];
    var svgNS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("width", width); svg.setAttribute("height", height);
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("data-testid", "sparkline");
    if (points.length < 2) return svg;
    var max = Math.max.apply(null, points) || 1;
    var step = width / (points.length - 1);
    var x0 = 0;
    var coords = points.map(function (p, i) {
      return (x0 + i * step).toFixed(1) + "," + (height - 2 - (p / max) * (height - 4)).toFixed(1);
    });
    var area = document.createElementNS(svgNS, "polygon");
    area.setAttribute("class", "spark-area");
    area.setAttribute("points", x0.toFixed(1) + "," + height + " " + coords.join(" ") + " " + width + "," + height);
    var line = document.createElementNS(svgNS, "polyline");
    line.setAttribute("class", "spark-line");
    line.setAttribute("points", coords.join(" "));
    svg.appendChild(area); svg.appendChild(line);
    return svg;
  }

  function setSpark(td, key, width, height) {
    td.replaceChildren(sparkline(key, width || 100, height || 22));
  }

  // -- keyed tables ----------------------------------------------------------------
  //
  // A column is {label, num, key?, cell(td, item, tr)}: ``cell`` fills or updates
  // its cell; it is called on every refresh with the same td.

  function table(testid, columns) {
    var head = el("tr", {}, columns.map(function (c) {
      return el("th", { cls: c.num ? "num" : "", text: c.label });
    }));
    var tbody = el("tbody");
    var node = el("table", { "data-testid": testid }, [el("thead", {}, [head]), tbody]);
    return { node: node, tbody: tbody, columns: columns };
  }

  function syncRows(t, items, keyOf, decorate) {
    var existing = {};
    Array.prototype.forEach.call(t.tbody.children, function (tr) { existing[tr.dataset.key] = tr; });
    var prev = null;
    items.forEach(function (item) {
      var key = keyOf(item);
      var tr = existing[key];
      if (!tr) {
        tr = el("tr");
        tr.dataset.key = key;
        t.columns.forEach(function (c) {
          var td = el("td", { cls: (c.num ? "num " : "") + (c.cls || "") });
          if (c.key) td.dataset.col = c.key;
          tr.appendChild(td);
        });
        if (decorate) decorate(tr, item);
      }
      delete existing[key];
      t.columns.forEach(function (c, i) { c.cell(tr.children[i], item, tr); });
      var want = prev ? prev.nextSibling : t.tbody.firstChild;
      if (want !== tr) t.tbody.insertBefore(tr, want);
      prev = tr;
    });
    Object.keys(existing).forEach(function (k) { existing[k].remove(); });
  }

  function textCol(label, key, get, num) {
    return { label: label, key: key, num: num, cell: function (td, item) { setText(td, get(item)); } };
  }
  function numCol(label, key, get) {
    return textCol(label, key, function (item) { return fmt(get(item)); }, true);
  }
  function linkCol(label, key, text, href) {
    return {
      label: label, key: key,
      cell: function (td, item) {
        var a = td.firstChild;
        if (!a) { a = el("a", { "data-link": "" }); td.appendChild(a); }
        setText(a, text(item));
        var h = href(item);
        if (a.getAttribute("href") !== h) a.setAttribute("href", h);
      }
    };
  }

  function card(label, testid) {
    var value = el("div", { cls: "value", "data-testid": testid });
    var spark = el("div");
    var node = el("div", { cls: "card" }, [el("div", { cls: "label", text: label }), value, spark]);
    return { node: node, value: value, spark: spark };
  }

  function pausedBadge(paused) {
    return paused ? el("span", { cls: "badge paused", "data-testid": "paused-badge", text: "paused" }) : null;
  }

  // -- actions ---------------------------------------------------------------------

  function act(what, method, path, body, after) {
    if (!window.confirm("Are you sure you want to " + what + "?")) return;
    api(method, path, body).then(function (data) {
      showWarning(data.message);
      if (after) after(); else refresh();
    }, showError);
  }

  function actionButton(label, testid, onclick, danger) {
    return el("button", { cls: "small" + (danger ? " danger" : ""), "data-testid": testid, text: label, onclick: onclick });
  }

  // -- banners and status ----------------------------------------------------------

  var statusNode = document.getElementById("status");
  function showWarning(message) {
    var w = document.getElementById("warning");
    w.hidden = !message;
    setText(w, message || "");
  }
  function showError(err) {
    var e = document.getElementById("error");
    if (!err) { e.hidden = true; return; }
    e.hidden = false;
    setText(e, String(err.message || err));
    statusNode.className = "status failed";
    setText(statusNode, "update failed");
  }
  function markUpdated() {
    statusNode.className = "status";
    setText(statusNode, "updated " + new Date().toLocaleTimeString());
  }

  // -- pages -----------------------------------------------------------------------
  //
  // A page is {name, title, build(root), load() -> Promise, update(data)}.

  function topicsPage() {
    var t = table("topics-table", [
      linkCol("Topic", "topic", function (x) { return x.topic_name; }, function (x) { return url("/topics/" + enc(x.topic_name)); }),
      numCol("Depth", "depth", function (x) { return x.depth; }),
      textCol("Memory + Disk", "memory", function (x) { return fmt(x.memory_depth) + " + " + fmt(x.backend_depth); }, true),
      numCol("In flight", "in_flight", function (x) { return x.in_flight; }),
      numCol("Messages", "messages", function (x) { return x.message_count; }),
      textCol("Rate /s", "rate", function (x) { return fmtRate(x.rate); }, true),
      { label: "", cls: "spark", cell: function (td, x) { setSpark(td, "topic:" + x.topic_name); } },
      numCol("Channels", "channels", function (x) { return (x.channels || []).length; }),
      numCol("Nodes", "nodes", function (x) { return (x.nodes || []).length; }),
      { label: "", cell: function (td, x) { td.replaceChildren(pausedBadge(x.paused) || ""); } }
    ]);
    var empty = el("div", { cls: "empty", "data-testid": "empty", text: "No topics yet. Publish to nsqd (POST /pub?topic=…) to create one." });
    return {
      name: "topics",
      title: "Topics",
      build: function (root) {
        root.append(el("h1", { text: "Topics" }), t.node, empty);
      },
      load: function () {
        return api("GET", "/api/topics").then(function (list) {
          var names = list.topics || [];
          return Promise.all(names.map(function (n) {
            return api("GET", "/api/topics/" + enc(n)).catch(function (err) {
              return { topic_name: n, error: String(err.message || err) };
            });
          })).then(function (topics) { return { message: list.message, topics: topics }; });
        });
      },
      update: function (data) {
        var messages = [data.message];
        data.topics.forEach(function (x) {
          if (x.error) { messages.push(x.topic_name + ": " + x.error); return; }
          if (x.message) messages.push(x.message);
          x.in_flight = (x.channels || []).reduce(function (s, c) { return s + c.in_flight_count; }, 0);
          x.rate = track("topic:" + x.topic_name, x.message_count);
        });
        showWarning(messages.filter(Boolean).join("\n"));
        var topics = data.topics.filter(function (x) { return !x.error; });
        syncRows(t, topics, function (x) { return x.topic_name; }, function (tr, x) {
          tr.setAttribute("data-testid", "topic-row"); tr.dataset.topic = x.topic_name;
        });
        t.node.hidden = topics.length === 0;
        empty.hidden = topics.length !== 0;
      }
    };
  }

  function topicPage(topic) {
    var title = el("h1", {}, [el("a", { href: url("/topics"), "data-link": "", cls: "crumb", text: "Topics /" }), el("span", { "data-testid": "topic-name", text: topic })]);
    var badge = el("span");
    title.appendChild(badge);
    var cards = {
      depth: card("Depth", "topic-depth"), memory: card("Memory", "topic-memory"), disk: card("Disk", "topic-disk"),
      inflight: card("In flight", "topic-in-flight"), messages: card("Messages", "topic-messages"), rate: card("Rate /s", "topic-rate")
    };
    var current = null;
    var actions = el("div", { cls: "actions" });
    var pauseBtn = el("button", { "data-testid": "pause-topic", onclick: function () {
      var action = current && current.paused ? "unpause" : "pause";
      act(action + " topic " + topic, "POST", "/api/topics/" + enc(topic), { action: action });
    } });
    actions.append(
      pauseBtn,
      el("button", { "data-testid": "empty-topic", text: "Empty topic", onclick: function () {
        act("empty topic " + topic, "POST", "/api/topics/" + enc(topic), { action: "empty" });
      } }),
      el("button", { cls: "danger", "data-testid": "delete-topic", text: "Delete topic", onclick: function () {
        act("delete topic " + topic, "DELETE", "/api/topics/" + enc(topic), undefined, function () { navigate(url("/topics")); });
      } })
    );
    var nodes = table("topic-nodes-table", [
      linkCol("Node", "node", function (x) { return x.hostname ? x.hostname + " (" + x.node + ")" : x.node; }, function (x) { return url("/nodes/" + enc(x.node)); }),
      numCol("Depth", "depth", function (x) { return x.depth; }),
      numCol("Memory", "memory", function (x) { return x.memory_depth; }),
      numCol("Disk", "disk", function (x) { return x.backend_depth; }),
      numCol("Messages", "messages", function (x) { return x.message_count; }),
      textCol("Rate /s", "rate", function (x) { return fmtRate(lastRate("topic-node:" + topic + ":" + x.node)); }, true),
      numCol("Channels", "channels", function (x) { return (x.channels || []).length; }),
      { label: "", cell: function (td, x) { td.replaceChildren(pausedBadge(x.paused) || ""); } }
    ]);
    var channels = table("channels-table", [
      { label: "Channel", key: "channel", cell: function (td, x) {
        if (x.sub) { setText(td, x.hostname ? x.hostname + " (" + x.node + ")" : x.node); return; }
        var a = td.firstChild;
        if (!a) { a = el("a", { "data-link": "", href: url("/topics/" + enc(topic) + "/" + enc(x.channel_name)) }); td.appendChild(a); }
        setText(a, x.channel_name);
      } },
      numCol("Depth", "depth", function (x) { return x.depth; }),
      textCol("Memory + Disk", "memory", function (x) { return fmt(x.memory_depth) + " + " + fmt(x.backend_depth); }, true),
      numCol("In flight", "in_flight", function (x) { return x.in_flight_count; }),
      numCol("Deferred", "deferred", function (x) { return x.deferred_count; }),
      numCol("Requeued", "requeued", function (x) { return x.requeue_count; }),
      numCol("Timed out", "timed_out", function (x) { return x.timeout_count; }),
      numCol("Messages", "messages", function (x) { return x.message_count; }),
      textCol("Rate /s", "rate", function (x) { return fmtRate(x.rate); }, true),
      { label: "", cls: "spark", cell: function (td, x) { if (x.sub) { td.replaceChildren(); return; } setSpark(td, "channel:" + topic + ":" + x.channel_name); } },
      numCol("Clients", "clients", function (x) { return x.client_count; }),
      { label: "", key: "state", cell: function (td, x) { td.replaceChildren(pausedBadge(x.paused) || ""); } },
      { label: "", key: "actions", cell: function (td, x, tr) {
        if (x.sub || !config.isAdmin) return;
        var pause = td.firstChild;
        if (!pause) {
          var name = x.channel_name, path = "/api/topics/" + enc(topic) + "/" + enc(name);
          pause = actionButton("", "pause-channel", function () {
            var action = tr.dataset.paused === "true" ? "unpause" : "pause";
            act(action + " channel " + topic + "/" + name, "POST", path, { action: action });
          });
          td.append(pause, " ",
            actionButton("Empty", "empty-channel", function () { act("empty channel " + topic + "/" + name, "POST", path, { action: "empty" }); }), " ",
            actionButton("Delete", "delete-channel", function () { act("delete channel " + topic + "/" + name, "DELETE", path); }, true));
        }
        tr.dataset.paused = String(!!x.paused);
        setText(pause, x.paused ? "Unpause" : "Pause");
      } }
    ]);
    var noChannels = el("div", { cls: "empty", "data-testid": "empty", text: "This topic has no channels." });
    return {
      name: "topic",
      title: topic,
      build: function (root) {
        var grid = el("div", { cls: "cards" }, Object.keys(cards).map(function (k) { return cards[k].node; }));
        root.append(title, grid, config.isAdmin ? actions : el("span"), el("h2", { text: "Channels" }), channels.node, noChannels, el("h2", { text: "Nodes" }), nodes.node);
      },
      load: function () { return api("GET", "/api/topics/" + enc(topic)); },
      update: function (data) {
        current = data;
        showWarning(data.message);
        badge.replaceChildren(pausedBadge(data.paused) || "");
        setText(pauseBtn, data.paused ? "Unpause topic" : "Pause topic");
        var inflight = (data.channels || []).reduce(function (s, c) { return s + c.in_flight_count; }, 0);
        var rate = track("topic:" + topic, data.message_count);
        setText(cards.depth.value, fmt(data.depth));
        setText(cards.memory.value, fmt(data.memory_depth));
        setText(cards.disk.value, fmt(data.backend_depth));
        setText(cards.inflight.value, fmt(inflight));
        setText(cards.messages.value, fmt(data.message_count));
        setText(cards.rate.value, fmtRate(rate));
        setSpark(cards.rate.spark, "topic:" + topic, 120, 26);
        (data.nodes || []).forEach(function (n) { track("topic-node:" + topic + ":" + n.node, n.message_count); });
        syncRows(nodes, data.nodes || [], function (x) { return x.node; }, function (tr, x) { tr.setAttribute("data-testid", "topic-node-row"); tr.dataset.node = x.node; });
        var rows = [];
        (data.channels || []).forEach(function (c) {
          c.rate = track("channel:" + topic + ":" + c.channel_name, c.message_count);
          rows.push(c);
          (c.nodes || []).forEach(function (n) {
            rows.push(Object.assign({}, n, { sub: true, parent: c.channel_name, rate: null }));
          });
        });
        syncRows(channels, rows, function (x) { return x.sub ? x.parent + "@" + x.node : x.channel_name; }, function (tr, x) {
          if (x.sub) { tr.className = "sub"; tr.setAttribute("data-testid", "channel-node-row"); tr.dataset.channel = x.parent; tr.dataset.node = x.node; }
          else { tr.setAttribute("data-testid", "channel-row"); tr.dataset.channel = x.channel_name; }
        });
        channels.node.hidden = rows.length === 0;
        noChannels.hidden = rows.length !== 0;
      }
    };
  }

  function channelPage(topic, channel) {
    var title = el("h1", {}, [
      el("a", { href: url("/topics/" + enc(topic)), "data-link": "", cls: "crumb", text: topic + " /" }),
      el("span", { "data-testid": "channel-name", text: channel })
    ]);
    var badge = el("span");
    title.appendChild(badge);
    var names = [["depth", "Depth"], ["in_flight_count", "In flight"], ["deferred_count", "Deferred"], ["requeue_count", "Requeued"], ["timeout_count", "Timed out"], ["message_count", "Messages"], ["client_count", "Clients"]];
    var cards = {};
    names.forEach(function (n) { cards[n[0]] = card(n[1], "channel-" + n[0].replace(/_/g, "-")); });
    var rateCard = card("Rate /s", "channel-rate");
    var current = null;
    var path = "/api/topics/" + enc(topic) + "/" + enc(channel);
    var pauseBtn = el("button", { "data-testid": "pause-channel", onclick: function () {
      var action = current && current.paused ? "unpause" : "pause";
      act(action + " channel " + topic + "/" + channel, "POST", path, { action: action });
    } });
    var actions = el("div", { cls: "actions" }, [
      pauseBtn,
      el("button", { "data-testid": "empty-channel", text: "Empty channel", onclick: function () { act("empty channel " + topic + "/" + channel, "POST", path, { action: "empty" }); } }),
      el("button", { cls: "danger", "data-testid": "delete-channel", text: "Delete channel", onclick: function () {
        act("delete channel " + topic + "/" + channel, "DELETE", path, undefined, function () { navigate(url("/topics/" + enc(topic))); });
      } })
    ]);
    var nodes = table("channel-nodes-table", [
      linkCol("Node", "node", function (x) { return x.hostname ? x.hostname + " (" + x.node + ")" : x.node; }, function (x) { return url("/nodes/" + enc(x.node)); }),
      numCol("Depth", "depth", function (x) { return x.depth; }),
      numCol("Memory", "memory", function (x) { return x.memory_depth; }),
      numCol("Disk", "disk", function (x) { return x.backend_depth; }),
      numCol("In flight", "in_flight", function (x) { return x.in_flight_count; }),
      numCol("Deferred", "deferred", function (x) { return x.deferred_count; }),
      numCol("Requeued", "requeued", function (x) { return x.requeue_count; }),
      numCol("Timed out", "timed_out", function (x) { return x.timeout_count; }),
      numCol("Messages", "messages", function (x) { return x.message_count; }),
      numCol("Clients", "clients", function (x) { return x.client_count; }),
      { label: "", cell: function (td, x) { td.replaceChildren(pausedBadge(x.paused) || ""); } }
    ]);
    function flags(x) {
      var out = [];
      out.push(el("span", { cls: "flag" + (x.tls ? " on" : ""), text: x.tls ? "TLS " + (x.tls_version || "") : "no TLS" }));
      if (x.snappy) out.push(el("span", { cls: "flag on", text: "snappy" }));
      if (x.deflate) out.push(el("span", { cls: "flag on", text: "deflate" }));
      if (!x.snappy && !x.deflate) out.push(el("span", { cls: "flag", text: "uncompressed" }));
      if (x.authed) out.push(el("span", { cls: "flag on", text: "auth: " + x.auth_identity }));
      return out;
    }
    var clients = table("clients-table", [
      textCol("Node", "node", function (x) { return x.node; }),
      textCol("Address", "address", function (x) { return x.remote_address; }),
      textCol("Client", "client", function (x) { return x.client_id === x.hostname ? x.client_id : x.client_id + " / " + x.hostname; }),
      { label: "User agent", key: "user_agent", cls: "ua", cell: function (td, x) { setText(td, x.user_agent || "–"); td.title = x.user_agent || ""; } },
      { label: "TLS / compression", key: "flags", cell: function (td, x) {
        var sig = [x.tls, x.tls_version, x.snappy, x.deflate, x.authed].join();
        if (td.dataset.sig !== sig) { td.dataset.sig = sig; td.replaceChildren.apply(td, flags(x)); }
      } },
      numCol("RDY", "ready", function (x) { return x.ready_count; }),
      numCol("In flight", "in_flight", function (x) { return x.in_flight_count; }),
      numCol("Finished", "finished", function (x) { return x.finish_count; }),
      numCol("Requeued", "requeued", function (x) { return x.requeue_count; }),
      numCol("Messages", "messages", function (x) { return x.message_count; }),
      textCol("Connected", "connected", function (x) { return fmtDuration(x.connected); }, true)
    ]);
    var noClients = el("div", { cls: "empty", "data-testid": "no-clients", text: "No consumer is connected to this channel." });
    return {
      name: "channel",
      title: topic + "/" + channel,
      build: function (root) {
        var grid = el("div", { cls: "cards" }, names.map(function (n) { return cards[n[0]].node; }).concat([rateCard.node]));
        root.append(title, grid, config.isAdmin ? actions : el("span"), el("h2", { text: "Clients" }), clients.node, noClients, el("h2", { text: "Nodes" }), nodes.node);
      },
      load: function () { return api("GET", path); },
      update: function (data) {
        if (!data.channel_name) throw new Error("channel " + topic + "/" + channel + " not found on any node");
        current = data;
        showWarning(data.message);
        badge.replaceChildren(pausedBadge(data.paused) || "");
        setText(pauseBtn, data.paused ? "Unpause channel" : "Pause channel");
        names.forEach(function (n) { setText(cards[n[0]].value, fmt(data[n[0]])); });
        setText(rateCard.value, fmtRate(track("channel:" + topic + ":" + channel, data.message_count)));
        setSpark(rateCard.spark, "channel:" + topic + ":" + channel, 120, 26);
        syncRows(nodes, data.nodes || [], function (x) { return x.node; }, function (tr, x) { tr.setAttribute("data-testid", "channel-node-row"); tr.dataset.node = x.node; });
        var list = data.clients || [];
        syncRows(clients, list, function (x) { return x.node + "/" + x.remote_address; }, function (tr, x) {
          tr.setAttribute("data-testid", "client-row"); tr.dataset.address = x.remote_address;
        });
        clients.node.hidden = list.length === 0;
        noClients.hidden = list.length !== 0;
      }
    };
  }

  function nodesPage() {
    var t = table("nodes-table", [
      linkCol("Hostname", "hostname", function (x) { return x.hostname; }, function (x) { return url("/nodes/" + enc(nodeAddress(x))); }),
      textCol("Broadcast address", "broadcast", function (x) { return x.broadcast_address; }),
      textCol("TCP", "tcp", function (x) { return String(x.tcp_port); }, true),
      textCol("HTTP", "http", function (x) { return String(x.http_port); }, true),
      { label: "Version", key: "version", cell: function (td, x) {
        td.replaceChildren(x.version + " ", x.out_of_date ? el("span", { cls: "badge old", text: "out of date" }) : "");
      } },
      numCol("Topics", "topics", function (x) { return (x.topics || []).length; }),
      textCol("Seen by lookupd", "lookupd", function (x) { return (x.remote_addresses || []).join(", ") || "–"; })
    ]);
    var empty = el("div", { cls: "empty", "data-testid": "empty", text: "No nsqd node found." });
    return {
      name: "nodes",
      title: "Nodes",
      build: function (root) { root.append(el("h1", { text: "Nodes" }), t.node, empty); },
      load: function () { return api("GET", "/api/nodes"); },
      update: function (data) {
        showWarning(data.message);
        var nodes = data.nodes || [];
        syncRows(t, nodes, nodeAddress, function (tr, x) { tr.setAttribute("data-testid", "node-row"); tr.dataset.node = nodeAddress(x); });
        t.node.hidden = nodes.length === 0;
        empty.hidden = nodes.length !== 0;
      }
    };
  }

  function nodeAddress(p) {
    var host = p.broadcast_address.indexOf(":") >= 0 ? "[" + p.broadcast_address + "]" : p.broadcast_address;
    return host + ":" + p.http_port;
  }

  function nodePage(node) {
    var title = el("h1", {}, [el("a", { href: url("/nodes"), "data-link": "", cls: "crumb", text: "Nodes /" }), el("span", { "data-testid": "node-name", text: node })]);
    var cards = { messages: card("Messages", "node-messages"), clients: card("Clients", "node-clients"), topics: card("Topics", "node-topics"), rate: card("Rate /s", "node-rate") };
    var t = table("node-topics-table", [
      { label: "Topic / channel", key: "name", cell: function (td, x) {
        var a = td.firstChild;
        if (!a) { a = el("a", { "data-link": "", href: x.sub ? url("/topics/" + enc(x.topic_name) + "/" + enc(x.channel_name)) : url("/topics/" + enc(x.topic_name)) }); td.appendChild(a); }
        setText(a, x.sub ? x.channel_name : x.topic_name);
      } },
      numCol("Depth", "depth", function (x) { return x.depth; }),
      numCol("Memory", "memory", function (x) { return x.memory_depth; }),
      numCol("Disk", "disk", function (x) { return x.backend_depth; }),
      textCol("In flight", "in_flight", function (x) { return x.sub ? fmt(x.in_flight_count) : ""; }, true),
      numCol("Messages", "messages", function (x) { return x.message_count; }),
      textCol("Clients", "clients", function (x) { return x.sub ? fmt((x.clients || []).length) : ""; }, true),
      { label: "", cell: function (td, x) { td.replaceChildren(pausedBadge(x.paused) || ""); } }
    ]);
    return {
      name: "node",
      title: node,
      build: function (root) {
        root.append(title, el("div", { cls: "cards" }, Object.keys(cards).map(function (k) { return cards[k].node; })), el("h2", { text: "Topics" }), t.node);
      },
      load: function () { return api("GET", "/api/nodes/" + enc(node)); },
      update: function (data) {
        showWarning(data.message);
        var topics = data.topics || [];
        setText(cards.messages.value, fmt(data.total_messages));
        setText(cards.clients.value, fmt(data.total_clients));
        setText(cards.topics.value, fmt(topics.length));
        setText(cards.rate.value, fmtRate(track("node:" + node, data.total_messages)));
        setSpark(cards.rate.spark, "node:" + node, 120, 26);
        var rows = [];
        topics.forEach(function (tp) {
          rows.push(tp);
          (tp.channels || []).forEach(function (c) { rows.push(Object.assign({}, c, { sub: true })); });
        });
        syncRows(t, rows, function (x) { return x.sub ? x.topic_name + "/" + x.channel_name : x.topic_name; }, function (tr, x) {
          if (x.sub) tr.className = "sub";
          tr.setAttribute("data-testid", x.sub ? "node-channel-row" : "node-topic-row");
        });
      }
    };
  }

  function counterPage() {
    var big = el("div", { cls: "big", "data-testid": "counter-total", text: "–" });
    var sub = el("div", { cls: "sub", "data-testid": "counter-rate", text: "messages processed" });
    var chart = el("div");
    var shown = null, target = null, animating = false;
    function animate() {
      if (shown === null || shown >= target) { shown = target; setText(big, fmt(shown)); animating = false; return; }
      shown = Math.min(target, shown + Math.max(1, Math.ceil((target - shown) / 12)));
      setText(big, fmt(shown));
      requestAnimationFrame(animate);
    }
    return {
      name: "counter",
      title: "Counter",
      build: function (root) {
        root.append(el("h1", { text: "Messages processed" }), el("div", { cls: "counter" }, [big, sub, chart]));
      },
      load: function () { return api("GET", "/api/counter"); },
      update: function (data) {
        showWarning(data.message);
        var stats = data.stats || {};
        var total = Object.keys(stats).reduce(function (s, k) { return s + stats[k].message_count; }, 0);
        var rate = track("counter", total);
        target = total;
        if (shown === null) { shown = total; setText(big, fmt(total)); }
        else if (!animating) { animating = true; requestAnimationFrame(animate); }
        setText(sub, "messages processed by every channel of every node" + (rate === null ? "" : " · " + fmtRate(rate) + " /s"));
        chart.replaceChildren(sparkline("counter", 520, 80));
      }
    };
  }

  // -- routing and the refresh loop ------------------------------------------------------

  function pageFor(pathname) {
    var rel = pathname.slice(base.length) || "/";
    var parts = rel.split("/").filter(Boolean).map(decodeURIComponent);
    if (parts.length === 0 || (parts[0] === "topics" && parts.length === 1)) return topicsPage();
    if (parts[0] === "topics" && parts.length === 2) return topicPage(parts[1]);
    if (parts[0] === "topics" && parts.length === 3) return channelPage(parts[1], parts[2]);
    if (parts[0] === "nodes" && parts.length === 1) return nodesPage();
    if (parts[0] === "nodes" && parts.length === 2) return nodePage(parts[1]);
    if (parts[0] === "counter") return counterPage();
    return topicsPage();
  }

  var current = null, timer = null, generation = 0;

  function refresh() {
    if (!current) return;
    var mine = current, gen = generation;
    clearTimeout(timer);
    mine.load().then(function (data) {
      if (gen !== generation) return;
      mine.update(data);
      showError(null);
      markUpdated();
      page.dataset.loaded = "true";
    }).catch(function (err) {
      if (gen === generation) showError(err);
    }).then(function () {
      if (gen !== generation) return;
      var every = Number(document.getElementById("interval").value);
      if (every > 0) timer = setTimeout(refresh, every);
    });
  }

  function show(pathname) {
    generation += 1;
    clearTimeout(timer);
    current = pageFor(pathname);
    page.replaceChildren();
    page.dataset.page = current.name;
    page.dataset.loaded = "false";
    showWarning(""); showError(null);
    current.build(page);
    document.title = current.title + " · nsqadmin";
    document.querySelectorAll("[data-nav]").forEach(function (a) {
      var on = a.dataset.nav === current.name || (a.dataset.nav === "topics" && (current.name === "topic" || current.name === "channel")) || (a.dataset.nav === "nodes" && current.name === "node");
      a.classList.toggle("active", on);
    });
    refresh();
  }

  function navigate(href) {
    history.pushState(null, "", href);
    show(location.pathname);
  }

  document.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("a[data-link]");
    if (!a || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(a.getAttribute("href"));
  });
  window.addEventListener("popstate", function () { show(location.pathname); });
  document.getElementById("interval").addEventListener("change", refresh);
  document.getElementById("version").textContent = "v" + config.version;

  show(location.pathname);
})();
