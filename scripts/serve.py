#!/usr/bin/env python3
"""Serve a directory on 127.0.0.1 for the Salient page.

    serve.py [--dir DIR] [--cors] [--not-isolated] [PORT]

PORT defaults to 8080; 0 picks a free port. The first stdout line is always
`serving http://127.0.0.1:PORT/` (flushed), so scripts can read the URL.
Every response is sent cross-origin isolated (COOP same-origin + COEP require-corp, so the page
may use SharedArrayBuffer, hence the multi-threaded engine) unless --not-isolated (as a plain
static host would: the page then computes on one thread), and uncached; --cors also adds Access-Control-Allow-Origin: * (and then
Cross-Origin-Resource-Policy: cross-origin) so another origin can fetch the files (e.g. models).
When DIR/index.html holds a <meta http-equiv="Content-Security-Policy">, every response also
carries that policy as a header (the worker's script gets its policy from its own response).
The full page (any .html but embed.html, and /) adds frame-ancestors 'none' and X-Frame-Options:
DENY: it downloads models and deletes cached ones, so no other site may frame it; embed.html, the
embed view, may be framed (frame-ancestors is ignored in a <meta> policy, so only a header can say
this). Request logs go to stderr.
"""
import argparse
import functools
import html.parser
import http.server
import os
import sys

MIME = {
    ".wasm": "application/wasm",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".gguf": "application/octet-stream",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}


def page_csp(root):
    """The Content-Security-Policy of ROOT/index.html's <meta http-equiv>, or None."""
    found = []

    class Meta(html.parser.HTMLParser):
        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy":
                found.append(a.get("content") or "")

    try:
        with open(os.path.join(root, "index.html"), encoding="utf-8") as f:
            Meta().feed(f.read())
    except OSError:
        return None
    return found[0] if found else None


class Handler(http.server.SimpleHTTPRequestHandler):
    cors = False
    isolated = True
    csp = None
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME}

    def end_headers(self):
        if self.isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        if self.cors:
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Expose-Headers", "Content-Length, Content-Type")
            self.send_header("Cross-Origin-Resource-Policy", "cross-origin")
        else:
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        framable = not self.is_full_page()
        if self.csp:
            self.send_header("Content-Security-Policy", self.csp + ("" if framable else "; frame-ancestors 'none'"))
        elif not framable:
            self.send_header("Content-Security-Policy", "frame-ancestors 'none'")
        if not framable:
            self.send_header("X-Frame-Options", "DENY")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def is_full_page(self):
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        return path.endswith("/") or (path.endswith(".html") and not path.endswith("/embed.html"))

    def do_OPTIONS(self):  # CORS preflight
        self.send_response(204 if self.cors else 405)
        if self.cors:
            self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "*")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, fmt, *args):
        sys.stderr.write("[serve] %s %s\n" % (self.address_string(), fmt % args))

    def copyfile(self, source, outputfile):
        try:
            super().copyfile(source, outputfile)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (page closed mid-download): not an error


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("port", nargs="?", type=int, default=8080, help="port (0 = any free port); default 8080")
    ap.add_argument("--dir", default="dist", help="directory to serve (default: dist)")
    ap.add_argument("--cors", action="store_true", help="add Access-Control-Allow-Origin: *")
    ap.add_argument("--not-isolated", action="store_true", help="omit COOP/COEP (no SharedArrayBuffer)")
    args = ap.parse_args()
    root = os.path.abspath(args.dir)
    if not os.path.isdir(root):
        sys.exit(f"serve.py: no such directory: {root}")
    csp = page_csp(root)
    handler = functools.partial(type("H", (Handler,), {"cors": args.cors, "isolated": not args.not_isolated, "csp": csp}), directory=root)
    with Server(("127.0.0.1", args.port), handler) as httpd:
        port = httpd.server_address[1]
        print(f"serving http://127.0.0.1:{port}/", flush=True)
        sys.stderr.write(f"[serve] {root}{' (CORS)' if args.cors else ''}{' (not isolated)' if args.not_isolated else ''}{' (CSP from index.html)' if csp else ''}\n")
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
