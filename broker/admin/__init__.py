"""nsqadmin: the web UI and JSON API over a cluster of nsqd and nsqlookupd, as a pure core.

``admin.NSQAdmin`` is the node; ``api`` its routes (Go nsqadmin 1.3.0's);
``clusterinfo`` what it asks of the cluster, as ``flow``s of HTTP requests;
``stats`` the figures and their sums over nodes; ``http_server`` the HTTP
connection whose answers may come later; ``static/`` the single-page UI
(plain JavaScript and CSS, no build step, no CDN).  The daemon is
``broker.apps.nsqadmin``; ``broker.apps.nsqadmin_screenshot`` starts a small
cluster and photographs the UI (a development tool, outside the core).
"""
