# Serves a directory over HTTP on 127.0.0.1 (an ephemeral port, printed on the first
# line as "port N"): http.server with a listen backlog uv's parallel downloads do not
# overflow (socketserver's default of 5 drops connections, which then wait for TCP's
# retransmission timer). Usage: serve.py DIR
import functools, http.server, sys


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


handler = functools.partial(Quiet, directory=sys.argv[1])
with Server(("127.0.0.1", 0), handler) as s:
    print(f"port {s.server_address[1]}", flush=True)
    s.serve_forever()
