#!/usr/bin/env python3
"""Staff-side helper for bench/staff.sh (Python standard library only).

  staff_login.py enrol BASE ENROL_LINK PASSWORD   -> prints the session cookie (name=value)
  staff_login.py storm BASE EMAIL SECONDS THREADS -> login attempts until time is up

`enrol` completes enrolment on the real page (password + TOTP computed from
the secret the page shows), then logs in with the next TOTP step and prints
the session cookie of the logged-in browser. `storm` runs THREADS concurrent
login attempts (each a fresh session: GET the form, POST email + wrong
password + a code), so every attempt costs the server one argon2 verification.
"""
import base64, hashlib, hmac, http.cookiejar, re, struct, sys, threading, time
import urllib.parse, urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def opener():
    jar = http.cookiejar.CookieJar()
    op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())
    return op, jar


def fetch(op, url, data=None):
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with op.open(url, body, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def csrf_of(html):
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    return m.group(1) if m else ""


def totp(secret_b32, at):
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    n = (struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{n:06d}"


def enrol(base, link, password):
    op, jar = opener()
    status, html = fetch(op, link)
    assert status == 200, f"enrol page: {status}"
    secret = re.search(r'<code id="totp-secret">([A-Z2-7=]+)</code>', html).group(1)
    status, html = fetch(op, link, {"csrf": csrf_of(html), "password": password,
                                    "password_again": password, "code": totp(secret, time.time() - 30)})
    assert status == 200, f"enrol post: {status}"
    op, jar = opener()
    status, html = fetch(op, base + "/staff/login")
    return op, jar, secret, csrf_of(html)


def main():
    cmd = sys.argv[1]
    if cmd == "enrol":
        base, link, email, password = sys.argv[2:6]
        op, jar, secret, csrf = enrol(base, link, password)
        status, _ = fetch(op, base + "/staff/login", {"csrf": csrf, "email": email,
                                                      "password": password, "code": totp(secret, time.time())})
        assert status == 303, f"login: {status}"
        cookie = next(c for c in jar if c.name == "portal_session")
        print(f"{cookie.name}={cookie.value}")
    elif cmd == "storm":
        base, email, seconds, threads = sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
        end = time.time() + seconds
        counts, lock = {}, threading.Lock()

        def worker():
            while time.time() < end:
                op, _ = opener()
                _, html = fetch(op, base + "/staff/login")
                t0 = time.time()
                status, _ = fetch(op, base + "/staff/login", {"csrf": csrf_of(html), "email": email,
                                                              "password": "not the password at all",
                                                              "code": "000000"})
                with lock:
                    n, total = counts.get(status, (0, 0.0))
                    counts[status] = (n + 1, total + time.time() - t0)

        ts = [threading.Thread(target=worker) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for status, (n, total) in sorted(counts.items()):
            print(f"status {status}: {n} attempts, mean {1000 * total / n:.0f} ms")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
