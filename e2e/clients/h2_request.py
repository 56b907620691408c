"""Sends one HTTP/2 request exactly as given, with python-hyper's h2 (header validation off): any `:method`
spelling, any `:authority`, repeated headers. Real clients refuse to build such requests; attackers do not.

Reads a JSON request from stdin: {"address": "127.0.0.1:8080", "headers": [[name, value], ...] (pseudo-headers
first), "body": "path of a file" or null, "trailers": [[name, value], ...] (optional: sent after the body)}. Prints {"status": ..., "headers": [[name, value], ...] (response
headers then trailers), "reset": RST_STREAM error code or null, "goaway": GOAWAY error code or null, "closed": whether the connection closed before the
answer ended} as JSON; no status when the peer refused the request at the protocol level.
"""
import json
import socket
import sys

import h2.config
import h2.connection
import h2.events


def main():
    request = json.load(sys.stdin)
    host, port = request["address"].rsplit(":", 1)
    body = b""
    if request.get("body"):
        with open(request["body"], "rb") as f:
            body = f.read()
    sock = socket.create_connection((host, int(port)), timeout=60)
    config = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                       normalize_outbound_headers=False, validate_inbound_headers=False,
                                       header_encoding=None)
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    conn.increment_flow_control_window(2**30)
    stream = conn.get_next_available_stream_id()
    headers = [(name.encode(), value.encode("latin-1")) for name, value in request["headers"]]
    trailers = [(name.encode(), value.encode("latin-1")) for name, value in request.get("trailers") or []]
    conn.send_headers(stream, headers, end_stream=not body and not trailers)
    sock.sendall(conn.data_to_send())

    answer = {"status": None, "headers": [], "reset": None, "goaway": None, "closed": False}
    sent = 0
    done = False
    while not done:
        # Send as much of the body as the peer's windows allow.
        while sent < len(body) and not done:
            window = min(conn.local_flow_control_window(stream), conn.max_outbound_frame_size)
            if window <= 0:
                break
            chunk = body[sent:sent + window]
            sent += len(chunk)
            conn.send_data(stream, chunk, end_stream=sent == len(body) and not trailers)
            if sent == len(body) and trailers:
                conn.send_headers(stream, trailers, end_stream=True)
            sock.sendall(conn.data_to_send())
        data = sock.recv(65536)
        if not data:
            answer["closed"] = True
            break
        for event in conn.receive_data(data):
            if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                for name, value in event.headers:
                    name, value = name.decode("latin-1"), value.decode("latin-1")
                    if name == ":status":
                        answer["status"] = int(value)
                    answer["headers"].append([name, value])
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                answer["reset"] = int(event.error_code)
                done = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                answer["goaway"] = int(event.error_code)
                done = True
            elif isinstance(event, h2.events.StreamEnded):
                done = True
        sock.sendall(conn.data_to_send())
    sock.close()
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
