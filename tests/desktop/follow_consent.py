#!/usr/bin/env python3
"""The "system browser" ($BROWSER URL) for the Claude Desktop path of the desktop e2e:
`mcp-broker connect` opens the broker's /authorize; the desktop app answers with a
waiting page that refreshes itself until the person decides in the native consent
window. This follows those refreshes like a browser tab would, then the redirect to the
bridge's loopback callback. Each URL opened is appended to $BROWSER_LOG."""
import http.client, os, sys, time, urllib.parse

url = sys.argv[-1]
with open(os.environ["BROWSER_LOG"], "a") as log:
    log.write(url + "\n")
if os.fork():  # a browser returns at once; the tab lives on
    sys.exit(0)


def get(u):
    p = urllib.parse.urlsplit(u)
    c = http.client.HTTPConnection(p.hostname, p.port, timeout=30)
    c.request("GET", p.path + ("?" + p.query if p.query else ""))
    r = c.getresponse()
    r.read()
    return r.status, {k.lower(): v for k, v in r.getheaders()}


deadline = time.time() + 300
while time.time() < deadline:
    status, headers = get(url)
    if 300 <= status < 400 and "location" in headers:
        get(urllib.parse.urljoin(url, headers["location"]))
        break
    refresh = headers.get("refresh")
    if not refresh:
        break
    time.sleep(0.5)
    url = urllib.parse.urljoin(url, refresh.split("url=", 1)[1])
