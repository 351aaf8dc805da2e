"""The bridge's own tuning variables: what it measures, and how much it holds per request and
per view. The last entries of `otel_bridge.config.variables.VARIABLES`."""

from __future__ import annotations

from typing import Any

from otel_bridge.config import parsers as p
from otel_bridge.config.parsers import Variable

__all__ = ["TUNING"]

TUNING: tuple[Variable[Any], ...] = (
    Variable(
        "OTEL_BRIDGE_BODY_SIZE_METRICS",
        "body_size_metrics",
        p._bool,
        False,
        "bool",
        "true",
        "Also record `http.server.request.body.size` / `http.server.response.body.size` "
        "(opt-in metrics of the HTTP semantic conventions).",
        bad="sometimes",
    ),
    Variable(
        "OTEL_BRIDGE_QUEUE_SIZE",
        "queue_size",
        p._int_range(1, 1_000_000),
        4096,
        "int",
        "8192",
        "Finished requests waiting for the background exporter thread, and records waiting "
        "in each view's lane. When the first is full a request waits up to 50 ms for room "
        "(the thread needs the GIL the requests hold); if none comes, the record is dropped "
        "and counted (`bridge.dropped.queue_full`), and requests wait again only once the "
        "thread made progress. A view whose lane is full drops for itself alone "
        "(`bridge.dropped.view.<name>`).",
        bad="0",
    ),
    Variable(
        "OTEL_BRIDGE_MAX_TIMERS",
        "max_timers",
        p._int_range(0, 100_000),
        512,
        "int",
        "1000",
        "Timers (child spans) kept per request; further ones are counted in the record's "
        "`timers_dropped`.",
        bad="-1",
    ),
    Variable(
        "OTEL_BRIDGE_TIMER_CPU",
        "timer_cpu",
        p._bool,
        False,
        "bool",
        "true",
        "Measure each timer's CPU time (`ru_utime` / `ru_stime`, as php-pinba's timers carry "
        "them): two getrusage() calls a timer, about 1.5 µs. Off, timers carry 0; each "
        "request's own CPU time is always measured.",
        bad="sometimes",
    ),
    Variable(
        "OTEL_BRIDGE_PURE_PYTHON",
        "pure_python",
        p._bool,
        False,
        "bool",
        "true",
        "Run timers on the Python code only, not on the compiled C core (built with the "
        "package when a C compiler is at hand; `/debug/vars` says which one runs). The two "
        "record the same; a timer costs 35-45% less on the C core "
        "(benchmarks/RESULTS.md).",
        bad="fast",
    ),
    Variable(
        "OTEL_BRIDGE_UNROUTED",
        "unrouted",
        p._choice("status", "path"),
        "status",
        "status or path",
        "path",
        "How a request no route matched is named in `/debug/vars` and Pinba's `script_name`: "
        "by its status (`<unmatched>` for 404, `<redirect>`, `<bad request>`, `<no route>`: "
        "bounded, whoever sends the requests) or by its raw path (an app with no router "
        "whose paths are its routes; any client can then add names).",
        bad="url",
    ),
    Variable(
        "OTEL_BRIDGE_ALLOWED_HOSTS",
        "allowed_hosts",
        p._hosts,
        (),
        "host list",
        "shop.example.com,.example.org",
        "The app's own hosts, as Django's `ALLOWED_HOSTS` spells them (Django's setting when "
        "unset under Django). A request's Host becomes a label (Pinba's `server_name`) only "
        "when it is one of them (a subdomain matched by `.example.com` is `.example.com`), "
        "else `<other host>`; with no list, the first 16 Hosts seen.",
        bad="bad host!",
    ),
)
