#!/usr/bin/env python3
"""The headless "user" for tests/connect: `$BROWSER URL`. Opens the consent page over
HTTP, posts the form's Approve button (or Deny) from the
broker's own origin, follows the redirect to the bridge's loopback callback, and appends
one line per consent to $CONSENT_LOG. The decision is read from $DECISION_FILE when it
exists (the bridge was started earlier, with its environment fixed)."""
import html, http.client, os, re, sys, urllib.parse

url = sys.argv[-1]
u = urllib.parse.urlsplit(url)
df = os.environ.get("DECISION_FILE", "")
decision = open(df).read().strip() if df and os.path.exists(df) else "approve"

def request(method, parsed, path, body=None, headers=None):
    c = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    return r.status, dict(r.getheaders()), r.read().decode("utf-8", "replace")

status, _, page = request("GET", u, u.path + "?" + u.query)
with open(os.environ["CONSENT_LOG"], "a") as log:
    name = re.search(r"<dt>Application</dt><dd>(.*?)</dd>", page)
    log.write(f"{decision} {status} {html.unescape(name.group(1)) if name else '?'}\n")
field = lambda n: html.unescape(re.search(rf'name="{n}" value="([^"]*)"', page).group(1))
origin = f"http://{u.hostname}:{u.port}"
form = urllib.parse.urlencode({"consent_id": field("consent_id"), "csrf_token": field("csrf_token"), "decision": decision})
status, headers, _ = request("POST", u, "/authorize/consent", form,
                             {"Content-Type": "application/x-www-form-urlencoded", "Origin": origin})
loc = headers.get("Location") or headers.get("location")
cb = urllib.parse.urlsplit(loc)
request("GET", cb, cb.path + "?" + cb.query)
